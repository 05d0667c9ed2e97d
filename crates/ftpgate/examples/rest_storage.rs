//! FTP in front of an HTTP/JSON file API, streaming both ways: downloads are ranged GETs read
//! as they arrive, uploads are streamed PUTs to a hidden upload that a commit call makes
//! visible, listings are read page by page. Memory stays bounded whatever the file or
//! directory size. `crates/ftpgate/tests/rest_storage.rs` runs the storage behaviour suite and
//! real FTP transfers through it against a small server of this API.
//!
//! Run with `REST_URL=http://127.0.0.1:8080/ cargo run -p ftpgate --example rest_storage`,
//! then log in as `demo` / `demo`.
//!
//! The API (paths are percent-encoded segments after the prefix; errors are
//! `{"error": "not_found" | "exists" | "not_empty" | "not_a_dir" | "is_a_dir" | "bad_offset"}`
//! with 404, 409 or 416):
//!
//! | request | answer |
//! |---|---|
//! | `GET v1/meta/PATH` | `{"kind": "file" \| "dir", "size": N, "modified": UNIX_SECONDS}` |
//! | `GET v1/list/PATH?limit=N&after=NAME` | `{"entries": [{"name", "kind", "size", "modified"}], "more": bool}` in name order |
//! | `GET v1/data/PATH` + `Range: bytes=N-` | the bytes from N (206), streamed |
//! | `PUT v1/uploads/ID` + body | stores a hidden upload (201); a cut body stores nothing |
//! | `POST v1/commit/ID` + `{"path": "/a/b"}` | moves the upload into place (200 `{"size": N}`) |
//! | `DELETE v1/uploads/ID` | discards an upload |
//! | `POST v1/mkdir/PATH`, `DELETE v1/dir/PATH`, `DELETE v1/data/PATH` | 201, 204, 204 |
//! | `POST v1/rename` + `{"from": "/a", "to": "/b"}` | 204 |
//! | `PUT v1/mtime/PATH` + `{"modified": UNIX_SECONDS}` | 204 |

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ftpgate::Server;
use ftpgate_core::{
    DirEntry, EntryStream, FileKind, Metadata, ReadStream, Storage, StorageError, StorageErrorKind,
    StorageFactory, Upload, User, VirtualPath, WriteStart, async_trait,
};
use futures_util::TryStreamExt;
use reqwest::{Client, Response, Url};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Entries asked for per listing page.
const PAGE: usize = 200;
/// Chunks of an upload in flight between the FTP data connection and the HTTP request.
const UPLOAD_CHUNKS_IN_FLIGHT: usize = 4;

/// The files behind one HTTP/JSON API.
#[derive(Clone)]
pub struct RestStorage {
    client: Client,
    base: Url,
}

#[derive(Deserialize)]
struct Meta {
    kind: String,
    size: u64,
    modified: u64,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    #[serde(flatten)]
    meta: Meta,
}

#[derive(Deserialize)]
struct Page {
    entries: Vec<Entry>,
    more: bool,
}

#[derive(Deserialize)]
struct ApiError {
    error: String,
}

fn to_metadata(meta: &Meta) -> Metadata {
    Metadata {
        kind: if meta.kind == "dir" {
            FileKind::Dir
        } else {
            FileKind::File
        },
        size: meta.size,
        modified: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(meta.modified)),
        mode: None,
        unique: None,
    }
}

/// The API being unreachable or failing is a temporary failure (450), never a wrong answer.
fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StorageError {
    StorageError::new(StorageErrorKind::Transient, e)
}

/// A response that is not a success, as the error kind its body names.
async fn failure(response: Response, what: &str) -> StorageError {
    let status = response.status();
    let kind = match response.json::<ApiError>().await.map(|e| e.error) {
        Ok(e) if e == "not_found" => StorageErrorKind::NotFound,
        Ok(e) if e == "exists" => StorageErrorKind::AlreadyExists,
        Ok(e) if e == "not_empty" => StorageErrorKind::DirectoryNotEmpty,
        Ok(e) if e == "not_a_dir" => StorageErrorKind::NotADirectory,
        Ok(e) if e == "is_a_dir" => StorageErrorKind::IsADirectory,
        Ok(e) if e == "bad_offset" => StorageErrorKind::InvalidOffset,
        _ if status.is_server_error() => StorageErrorKind::Transient,
        _ => StorageErrorKind::Local,
    };
    StorageError::new(kind, format!("{what}: HTTP {status}"))
}

impl RestStorage {
    /// The API at `base` (ending in `/`).
    pub fn new(base: Url) -> Self {
        // reqwest's TLS takes the process's default crypto provider; ftpgate uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        RestStorage {
            client: Client::new(),
            base,
        }
    }

    /// `base` + `v1/ACTION/` + the path's segments, percent-encoded.
    fn url(&self, action: &str, path: &VirtualPath) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["v1", action]);
            segments.extend(path.relative().split('/'));
        }
        url
    }

    fn upload_url(&self, id: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["v1", "uploads", id]);
        }
        url
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Response, StorageError> {
        let response = request.send().await.map_err(unavailable)?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(failure(response, what).await)
        }
    }

    async fn page(&self, dir: &VirtualPath, after: Option<String>) -> Result<Page, StorageError> {
        let mut url = self.url("list", dir);
        url.query_pairs_mut()
            .append_pair("limit", &PAGE.to_string());
        if let Some(after) = &after {
            url.query_pairs_mut().append_pair("after", after);
        }
        let response = self.send(self.client.get(url), dir.as_str()).await?;
        response.json::<Page>().await.map_err(unavailable)
    }
}

/// Where a listing is: the entries of the page in hand, and whether more follow the last.
struct Paging {
    storage: RestStorage,
    dir: VirtualPath,
    queue: VecDeque<Entry>,
    last: Option<String>,
    more: bool,
}

fn rand_u64() -> u64 {
    rand::random()
}

/// The chunks a channel receives, as the stream a request body reads.
fn tokio_stream_of(
    receiver: mpsc::Receiver<io::Result<Bytes>>,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    })
}

/// An upload: a streamed PUT to a hidden name, made visible by the commit call.
struct RestUpload {
    storage: RestStorage,
    path: VirtualPath,
    id: String,
    chunks: Option<mpsc::Sender<io::Result<Bytes>>>,
    request: Option<JoinHandle<Result<Response, reqwest::Error>>>,
    size: u64,
}

impl RestUpload {
    /// Ends the PUT: its body ends normally (`error` None) or with an error, which makes the
    /// server discard what it received.
    async fn finish(&mut self, error: Option<io::Error>) -> Result<(), StorageError> {
        if let (Some(chunks), Some(error)) = (self.chunks.take(), error) {
            let _ = chunks.send(Err(error)).await;
        }
        self.chunks = None;
        let Some(request) = self.request.take() else {
            return Err(unavailable("the upload request is gone"));
        };
        let response = request.await.map_err(unavailable)?.map_err(unavailable)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(failure(response, self.path.as_str()).await)
        }
    }
}

#[async_trait]
impl Upload for RestUpload {
    async fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        let sent = match &self.chunks {
            Some(chunks) => chunks.send(Ok(Bytes::copy_from_slice(data))).await.is_ok(),
            None => false,
        };
        if !sent {
            // The request ended early: its answer says why.
            self.finish(None).await?;
            return Err(unavailable("the upload request ended early"));
        }
        self.size += data.len() as u64;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        self.finish(None).await?;
        let url =
            self.storage
                .upload_url(&self.id)
                .to_string()
                .replacen("/uploads/", "/commit/", 1);
        let request = self
            .storage
            .client
            .post(url)
            .json(&serde_json::json!({ "path": self.path.as_str() }));
        self.storage.send(request, self.path.as_str()).await?;
        self.id.clear();
        Ok(self.size)
    }

    async fn abort(mut self: Box<Self>) {
        let _ = self.finish(Some(io::Error::other("upload aborted"))).await;
        let url = self.storage.upload_url(&self.id);
        let _ = self.storage.client.delete(url).send().await;
        self.id.clear();
    }

    fn name(&self) -> Option<&str> {
        self.path.file_name()
    }
}

impl Drop for RestUpload {
    /// Neither committed nor aborted (a cancelled task): the upload stays hidden; discard it.
    fn drop(&mut self) {
        if self.id.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (client, url) = (
                self.storage.client.clone(),
                self.storage.upload_url(&self.id),
            );
            let chunks = self.chunks.take();
            runtime.spawn(async move {
                if let Some(chunks) = chunks {
                    let _ = chunks.send(Err(io::Error::other("upload dropped"))).await;
                }
                let _ = client.delete(url).send().await;
            });
        }
    }
}

#[async_trait]
impl Storage for RestStorage {
    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata, StorageError> {
        let response = self
            .send(self.client.get(self.url("meta", path)), path.as_str())
            .await?;
        let meta = response.json::<Meta>().await.map_err(unavailable)?;
        Ok(to_metadata(&meta))
    }

    async fn list(&self, path: &VirtualPath) -> Result<EntryStream, StorageError> {
        // The first page now, so a missing directory fails the command rather than the
        // listing; the rest as the listing is sent, so one page at most is held at a time.
        let first = self.page(path, None).await?;
        let paging = Paging {
            storage: self.clone(),
            dir: path.clone(),
            queue: first.entries.into(),
            last: None,
            more: first.more,
        };
        let stream = futures_util::stream::try_unfold(paging, |mut paging| async move {
            loop {
                if let Some(entry) = paging.queue.pop_front() {
                    paging.last = Some(entry.name.clone());
                    let item = DirEntry {
                        name: entry.name,
                        metadata: to_metadata(&entry.meta),
                    };
                    return Ok(Some((item, paging)));
                }
                if !paging.more {
                    return Ok(None);
                }
                let page = paging
                    .storage
                    .page(&paging.dir, paging.last.clone())
                    .await?;
                paging.more = page.more && !page.entries.is_empty();
                paging.queue = page.entries.into();
            }
        });
        Ok(Box::pin(stream))
    }

    async fn read(&self, path: &VirtualPath, offset: u64) -> Result<ReadStream, StorageError> {
        let request = self
            .client
            .get(self.url("data", path))
            .header(reqwest::header::RANGE, format!("bytes={offset}-"));
        let response = self.send(request, path.as_str()).await?;
        let body = response.bytes_stream().map_err(io::Error::other);
        Ok(Box::new(tokio_util::io::StreamReader::new(body)))
    }

    async fn write(
        &self,
        path: &VirtualPath,
        start: WriteStart,
    ) -> Result<Box<dyn Upload>, StorageError> {
        if start != WriteStart::Truncate {
            return Err(StorageError::new(
                StorageErrorKind::Unsupported,
                "this API stores whole files only",
            ));
        }
        // Fail now, not at the commit, where the directory is missing or the name a directory.
        let parent = self.metadata(&path.parent()).await?;
        if !parent.is_dir() {
            return Err(StorageError::new(
                StorageErrorKind::NotADirectory,
                path.parent().as_str().to_string(),
            ));
        }
        match self.metadata(path).await {
            Ok(meta) if meta.is_dir() => {
                return Err(StorageError::new(
                    StorageErrorKind::IsADirectory,
                    path.as_str().to_string(),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind == StorageErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let id = format!("{:016x}{:016x}", rand_u64(), rand_u64());
        let (chunks, receiver) = mpsc::channel::<io::Result<Bytes>>(UPLOAD_CHUNKS_IN_FLIGHT);
        let body = reqwest::Body::wrap_stream(tokio_stream_of(receiver));
        let request = self.client.put(self.upload_url(&id)).body(body).send();
        Ok(Box::new(RestUpload {
            storage: self.clone(),
            path: path.clone(),
            id,
            chunks: Some(chunks),
            request: Some(tokio::spawn(request)),
            size: 0,
        }))
    }

    async fn write_unique(
        &self,
        dir: &VirtualPath,
        base: &str,
    ) -> Result<Box<dyn Upload>, StorageError> {
        for n in 0..1000 {
            let name = if n == 0 {
                base.to_string()
            } else {
                format!("{base}.{n}")
            };
            let path = dir.join(&name);
            match self.metadata(&path).await {
                Err(e) if e.kind == StorageErrorKind::NotFound => {
                    return self.write(&path, WriteStart::Truncate).await;
                }
                Err(e) => return Err(e),
                Ok(_) => {}
            }
        }
        Err(StorageError::new(
            StorageErrorKind::AlreadyExists,
            "no free unique name",
        ))
    }

    async fn make_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.send(self.client.post(self.url("mkdir", path)), path.as_str())
            .await
            .map(drop)
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.send(self.client.delete(self.url("dir", path)), path.as_str())
            .await
            .map(drop)
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.send(self.client.delete(self.url("data", path)), path.as_str())
            .await
            .map(drop)
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["v1", "rename"]);
        }
        let body = serde_json::json!({ "from": from.as_str(), "to": to.as_str() });
        self.send(self.client.post(url).json(&body), from.as_str())
            .await
            .map(drop)
    }

    async fn set_modified(&self, path: &VirtualPath, time: SystemTime) -> Result<(), StorageError> {
        let seconds = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let body = serde_json::json!({ "modified": seconds });
        self.send(
            self.client.put(self.url("mtime", path)).json(&body),
            path.as_str(),
        )
        .await
        .map(drop)
    }
}

/// Opens the same API for every user.
pub struct OneApi(pub RestStorage);

impl StorageFactory for OneApi {
    fn open(&self, _user: &User) -> Result<Arc<dyn Storage>, StorageError> {
        Ok(Arc::new(self.0.clone()))
    }
}

#[allow(dead_code)] // when this file is included by its test
fn main() -> std::io::Result<()> {
    let base = std::env::var("REST_URL").unwrap_or_else(|_| "http://127.0.0.1:8080/".into());
    let base = Url::parse(&base).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    Server::with_storage(Arc::new(OneApi(RestStorage::new(base))))
        .user("demo", "demo")
        .listen("127.0.0.1:2121")
        .serve_blocking()
}
