//! Uploads: bytes go to a temporary name beside the file and are moved into place on commit,
//! so an upload cut short never shows under the file's name.
//!
//! Two sinks carry the bytes. OpenDAL's writer streams for most services (`fs`, `sftp`), but
//! its WebDAV writer is one-shot: it collects the whole file in memory and sends one PUT. So
//! WebDAV uploads are a PUT of our own whose body streams from a small channel (chunked
//! transfer encoding): memory stays at a few chunks whatever the file's size.
//!
//! Appends and REST+STOR from an offset are streamed rewrites: the kept head of the old file
//! is read (ranged reads) and sent first, then the new bytes, to the temporary name; the old
//! file stays whole until the commit's rename replaces it. They cost a copy of the kept bytes
//! through the server.

use async_trait::async_trait;
use bytes::Bytes;
use ftpgate_core::{StorageError, StorageErrorKind, Upload};
use futures_util::StreamExt as _;
use opendal::Operator;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::WebdavAuth;
use crate::dal_error;

/// Chunks a streamed PUT holds between the FTP side and the HTTP body.
const PUT_QUEUE: usize = 4;

/// Names of temporary uploads start with this; listings leave them out.
pub(crate) const TEMP_PREFIX: &str = ".ftpgate-upload-";

/// Where WebDAV PUTs go: the server's URL for a path, and its credentials.
#[derive(Debug, Clone)]
pub(crate) struct PutTarget {
    pub(crate) http: reqwest::Client,
    /// The endpoint, with the root's segments appended.
    pub(crate) base: url::Url,
    pub(crate) auth: WebdavAuth,
}

impl PutTarget {
    pub(crate) fn url(&self, path: &str) -> Result<url::Url, StorageError> {
        let mut url = self.base.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|()| {
                StorageError::new(
                    StorageErrorKind::Local,
                    "the WebDAV endpoint cannot take a path",
                )
            })?;
            segments.pop_if_empty();
            segments.extend(path.split('/').filter(|s| !s.is_empty()));
        }
        Ok(url)
    }
}

type PutResult = Result<reqwest::Response, reqwest::Error>;

enum Sink {
    /// OpenDAL's writer.
    Dal(opendal::Writer),
    /// A streamed PUT: chunks go down `tx` into the request `task` sends.
    Put {
        tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
        task: JoinHandle<PutResult>,
    },
}

/// An upload to `temp`, renamed to `target` on commit.
pub(crate) struct DalUpload {
    op: Operator,
    temp: String,
    target: String,
    sink: Option<Sink>,
    written: u64,
}

impl DalUpload {
    /// Starts an upload of `target` through a temporary name in its folder; with `keep`, the
    /// first `keep` bytes of the current `target` are copied in first.
    pub(crate) async fn start(
        op: &Operator,
        put: Option<&PutTarget>,
        target: String,
        keep: u64,
        read_chunk: usize,
    ) -> Result<DalUpload, StorageError> {
        let (folder, name) = target.rsplit_once('/').unwrap_or(("", &target));
        let nonce: u64 = rand::random();
        let temp = if folder.is_empty() {
            format!("{TEMP_PREFIX}{nonce:016x}-{name}")
        } else {
            format!("{folder}/{TEMP_PREFIX}{nonce:016x}-{name}")
        };
        let sink = match put {
            Some(put) => {
                let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(PUT_QUEUE);
                let body = futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|item| (item, rx))
                });
                let mut request = put
                    .http
                    .put(put.url(&temp)?)
                    .body(reqwest::Body::wrap_stream(body));
                request = match &put.auth {
                    WebdavAuth::None => request,
                    WebdavAuth::Basic { username, password } => {
                        request.basic_auth(username, Some(password))
                    }
                    WebdavAuth::Bearer(token) => request.bearer_auth(token),
                };
                Sink::Put {
                    tx,
                    task: tokio::spawn(request.send()),
                }
            }
            None => Sink::Dal(op.writer(&temp).await.map_err(|e| dal_error("upload", e))?),
        };
        let mut upload = DalUpload {
            op: op.clone(),
            temp,
            target,
            sink: Some(sink),
            written: 0,
        };
        if keep > 0 {
            let reader = op
                .reader_with(&upload.target)
                .chunk(read_chunk)
                .await
                .map_err(|e| dal_error("read for append", e))?;
            let mut old = reader
                .into_bytes_stream(0..keep)
                .await
                .map_err(|e| dal_error("read for append", e))?;
            while let Some(chunk) = old.next().await {
                let chunk = chunk.map_err(StorageError::from)?;
                upload.send(chunk).await?;
            }
        }
        Ok(upload)
    }

    async fn send(&mut self, data: Bytes) -> Result<(), StorageError> {
        let len = data.len() as u64;
        match self.sink.as_mut() {
            Some(Sink::Dal(writer)) => writer
                .write(data)
                .await
                .map_err(|e| dal_error("upload", e))?,
            Some(Sink::Put { tx, .. }) => {
                if tx.send(Ok(data)).await.is_err() {
                    // The request ended early: its result says why.
                    return Err(match self.sink.take() {
                        Some(Sink::Put { task, .. }) => put_failure(task.await),
                        _ => closed(),
                    });
                }
            }
            None => return Err(closed()),
        }
        self.written += len;
        Ok(())
    }

    /// Removes the temporary file, in the background when called from `Drop`.
    fn remove_temp_later(&self) {
        let (op, temp) = (self.op.clone(), self.temp.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = op.delete(&temp).await;
            });
        }
    }
}

fn closed() -> StorageError {
    StorageError::new(StorageErrorKind::Local, "the upload is already finished")
}

/// The error of a PUT that failed or answered other than 2xx.
fn put_failure(result: Result<PutResult, tokio::task::JoinError>) -> StorageError {
    match result {
        Ok(Ok(response)) => {
            let status = response.status();
            let kind = match status.as_u16() {
                404 | 409 => StorageErrorKind::NotFound,
                401 | 403 => StorageErrorKind::PermissionDenied,
                413 | 507 => StorageErrorKind::InsufficientStorage,
                408 | 429 | 500..=599 => StorageErrorKind::Transient,
                _ => StorageErrorKind::Local,
            };
            StorageError::new(kind, format!("WebDAV PUT: {status}"))
        }
        Ok(Err(e)) => StorageError::new(StorageErrorKind::Transient, format!("WebDAV PUT: {e}")),
        Err(e) => StorageError::new(StorageErrorKind::Local, format!("WebDAV PUT task: {e}")),
    }
}

#[async_trait]
impl Upload for DalUpload {
    async fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.send(Bytes::copy_from_slice(data)).await
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        let finished = match self.sink.take() {
            Some(Sink::Dal(mut writer)) => writer
                .close()
                .await
                .map(|_| ())
                .map_err(|e| dal_error("upload", e)),
            Some(Sink::Put { tx, task }) => {
                drop(tx);
                match task.await {
                    Ok(Ok(response)) if response.status().is_success() => Ok(()),
                    other => Err(put_failure(other)),
                }
            }
            None => Err(closed()),
        };
        let renamed = match finished {
            Ok(()) => self
                .op
                .rename(&self.temp, &self.target)
                .await
                .map_err(|e| dal_error("rename into place", e)),
            Err(e) => Err(e),
        };
        match renamed {
            Ok(()) => Ok(self.written),
            Err(e) => {
                let _ = self.op.delete(&self.temp).await;
                Err(e)
            }
        }
    }

    async fn abort(mut self: Box<Self>) {
        match self.sink.take() {
            Some(Sink::Dal(mut writer)) => {
                let _ = writer.abort().await;
            }
            Some(Sink::Put { tx, task }) => {
                // An error in the body cuts the request off, so the server never takes the
                // body for a whole file; the task is stopped in case it is blocked.
                let _ = tx.try_send(Err(std::io::Error::other("upload aborted")));
                drop(tx);
                task.abort();
                let _ = task.await;
            }
            None => {}
        }
        let _ = self.op.delete(&self.temp).await;
    }

    fn name(&self) -> Option<&str> {
        Some(self.target.rsplit('/').next().unwrap_or(&self.target))
    }
}

impl Drop for DalUpload {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            if let Sink::Put { task, .. } = sink {
                task.abort();
            }
            self.remove_temp_later();
        }
    }
}
