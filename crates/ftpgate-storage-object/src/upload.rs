//! Uploads that commit or abort: S3 multipart uploads (which can be kept and resumed), and
//! streamed writers for stores without explicit multipart control.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use ftpgate_core::{StorageError, StorageErrorKind, Upload, WriteStart};
use tokio::io::AsyncReadExt;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

use crate::part_buffer::{PartBuffer, Shared};
use crate::s3_client::store_error;
use crate::store::{MultipartStore, ObjectStore, ObjectWriter, Part};
use crate::{MAX_PARTS, MIN_PART_SIZE, ObjectStorage, Settings};

/// An upload in progress. Bytes collect in a buffer of one part; full parts go up in the
/// background, at most `max_in_flight` at once (the writer waits beyond that).
pub(crate) struct MultipartUpload {
    client: Arc<dyn MultipartStore>,
    config: Arc<Settings>,
    key: String,
    name: String,
    max_in_flight: usize,
    keep_partial: bool,
    upload_id: Option<String>,
    /// CreateMultipartUpload, running in a task of its own: a write dropped while it runs (ABOR,
    /// a closed connection) leaves the task to finish, so the upload it creates is still known
    /// and can be aborted.
    creating: Option<JoinHandle<Result<String, StorageError>>>,
    parts: Vec<Part>,
    next_part: u16,
    /// The part being filled: a mapping of its own of one part size (see `part_buffer`).
    buffer: PartBuffer,
    /// Buffers of finished parts, reused: an upload allocates at most (parts in flight + 1)
    /// part buffers, however large the file.
    spare: Vec<PartBuffer>,
    in_flight: JoinSet<Result<(Part, Shared), StorageError>>,
    finished: bool,
}

impl MultipartUpload {
    /// Starts an upload of `key`: fresh, continuing a kept partial upload, or appending to an
    /// existing object.
    pub(crate) async fn start(
        storage: &ObjectStorage,
        client: Arc<dyn MultipartStore>,
        key: String,
        name: String,
        start: WriteStart,
    ) -> Result<MultipartUpload, StorageError> {
        let config = &storage.settings;
        let mut upload = MultipartUpload {
            client,
            config: config.clone(),
            key,
            name,
            max_in_flight: config.parts_in_flight.max(1),
            keep_partial: config.keep_partial_uploads,
            upload_id: None,
            creating: None,
            parts: Vec::new(),
            next_part: 1,
            buffer: PartBuffer::default(),
            spare: Vec::new(),
            in_flight: JoinSet::new(),
            finished: false,
        };
        let resumable = storage.resumable(&upload.key).await?;
        match start {
            WriteStart::Truncate => {
                // A new upload replaces any interrupted one.
                if let Some(old) = resumable {
                    upload
                        .client
                        .abort_upload(&upload.key, &old.upload_id)
                        .await?;
                }
            }
            WriteStart::At(0) => {
                if let Some(old) = resumable {
                    upload
                        .client
                        .abort_upload(&upload.key, &old.upload_id)
                        .await?;
                }
            }
            WriteStart::At(offset) => match resumable {
                Some(old) => upload.resume(old, offset)?,
                None => match upload.client.head(&upload.key).await? {
                    // Resuming a finished upload at its end is an append.
                    Some(info) if info.size == offset => {
                        upload.append_to_existing(info.size).await?
                    }
                    _ => {
                        return Err(store_error(
                            StorageErrorKind::InvalidOffset,
                            "no interrupted upload to resume at that offset",
                        ));
                    }
                },
            },
            WriteStart::Append => match resumable {
                Some(old) => {
                    let stored = old.stored;
                    upload.resume(old, stored)?;
                }
                None => {
                    if let Some(info) = upload.client.head(&upload.key).await? {
                        upload.append_to_existing(info.size).await?;
                    }
                }
            },
        }
        Ok(upload)
    }

    /// Continues a kept multipart upload from `offset`, which must be the end of one of its
    /// whole parts.
    fn resume(&mut self, old: crate::Resumable, offset: u64) -> Result<(), StorageError> {
        let mut kept = 0;
        let mut at = 0u64;
        for part in &old.parts {
            if at == offset {
                break;
            }
            at += part.size;
            kept += 1;
        }
        if at != offset {
            return Err(store_error(
                StorageErrorKind::InvalidOffset,
                format!(
                    "resume offset {offset} is not a part boundary of the interrupted upload ({} bytes stored)",
                    old.stored
                ),
            ));
        }
        // Later parts are dropped: CompleteMultipartUpload takes only the parts it is given.
        self.parts = old.parts.into_iter().take(kept).collect();
        self.next_part = u16::try_from(kept + 1).unwrap_or(u16::MAX);
        self.upload_id = Some(old.upload_id);
        debug!(
            key = self.key.as_str(),
            offset, "resuming an interrupted upload"
        );
        Ok(())
    }

    /// APPE to an existing object of `size` bytes: copied in the store as the first part when
    /// it is large enough for one, otherwise read into the buffer (at most 5 MiB).
    async fn append_to_existing(&mut self, size: u64) -> Result<(), StorageError> {
        if size == 0 {
            return Ok(());
        }
        if size >= MIN_PART_SIZE as u64 {
            let id = self.client.start_upload(&self.key).await?;
            match self.client.copy_part(&self.key, &id, 1, &self.key).await {
                Ok(etag) => {
                    self.parts.push(Part {
                        number: 1,
                        etag,
                        size,
                    });
                    self.next_part = 2;
                    self.upload_id = Some(id);
                    Ok(())
                }
                Err(e) => {
                    let _ = self.client.abort_upload(&self.key, &id).await;
                    Err(store_error(
                        e.kind,
                        format!("the store cannot append to {}: {e}", self.key),
                    ))
                }
            }
        } else {
            let existing = self.client.read_range(&self.key, 0, size - 1).await?;
            self.buffer.extend_from_slice(&existing)?;
            Ok(())
        }
    }

    async fn collect_one(&mut self) -> Result<(), StorageError> {
        match self.in_flight.join_next().await {
            Some(Ok(Ok((part, body)))) => {
                self.parts.push(part);
                // The request is done with the bytes; keep the buffer for a later part.
                if let Some(buffer) = body.reclaim() {
                    self.spare.push(buffer);
                }
                Ok(())
            }
            Some(Ok(Err(e))) => Err(e),
            Some(Err(e)) => Err(store_error(
                StorageErrorKind::Local,
                format!("part upload task: {e}"),
            )),
            None => Ok(()),
        }
    }

    async fn send_part(&mut self, part: PartBuffer) -> Result<(), StorageError> {
        if u64::from(self.next_part) > MAX_PARTS {
            return Err(store_error(
                StorageErrorKind::ExceededStorage,
                "file too large for the part size",
            ));
        }
        let id = self.created().await?;
        while self.in_flight.len() >= self.max_in_flight {
            self.collect_one().await?;
        }
        let (client, key, number) = (self.client.clone(), self.key.clone(), self.next_part);
        self.next_part += 1;
        let (body, shared) = part.share();
        self.in_flight.spawn(async move {
            let size = body.len() as u64;
            let etag = client.upload_part(&key, &id, number, body).await?;
            Ok((Part { number, etag, size }, shared))
        });
        Ok(())
    }

    /// The multipart upload's id: creates the upload if nobody has started to, or waits for the
    /// creation already running.
    async fn created(&mut self) -> Result<String, StorageError> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        if self.creating.is_none() {
            let (client, key) = (self.client.clone(), self.key.clone());
            self.creating = Some(tokio::spawn(async move { client.start_upload(&key).await }));
        }
        let Some(creating) = &mut self.creating else {
            return Err(store_error(
                StorageErrorKind::Local,
                "no upload being created",
            ));
        };
        // Awaiting the handle by reference: if this future is dropped, the handle stays.
        let created = creating.await;
        self.creating = None;
        let id = created.map_err(|e| {
            store_error(StorageErrorKind::Local, format!("create upload task: {e}"))
        })??;
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    async fn drain(&mut self) -> Result<(), StorageError> {
        let mut first_error = None;
        while !self.in_flight.is_empty() {
            if let Err(e) = self.collect_one().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[async_trait]
impl Upload for MultipartUpload {
    async fn write(&mut self, mut data: &[u8]) -> Result<(), StorageError> {
        while !data.is_empty() {
            let part_size = self.config.part_size_for(self.next_part);
            if self.buffer.capacity() < part_size {
                let mut fresh = match self.spare.pop().filter(|b| b.capacity() >= part_size) {
                    Some(buffer) => buffer,
                    None => PartBuffer::with_capacity(part_size)?,
                };
                fresh.extend_from_slice(self.buffer.as_slice())?;
                self.buffer = fresh;
            }
            let take = (part_size - self.buffer.len().min(part_size)).min(data.len());
            self.buffer.extend_from_slice(&data[..take])?;
            data = &data[take..];
            if self.buffer.len() >= part_size {
                let next = self.spare.pop().unwrap_or_default();
                let full = std::mem::replace(&mut self.buffer, next);
                self.send_part(full).await?;
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        let result = async {
            if self.upload_id.is_none() && self.creating.is_none() {
                // Small files (and empty ones) go up in one request.
                let (body, _) = std::mem::take(&mut self.buffer).share();
                let size = body.len() as u64;
                self.client.put(&self.key, body).await?;
                return Ok(size);
            }
            if !self.buffer.is_empty() {
                let last = std::mem::take(&mut self.buffer);
                self.send_part(last).await?;
            }
            self.drain().await?;
            self.parts.sort_by_key(|p| p.number);
            let id = self.upload_id.clone().unwrap_or_default();
            self.client
                .complete_upload(&self.key, &id, &self.parts)
                .await?;
            Ok(self.parts.iter().map(|p| p.size).sum())
        }
        .await;
        if result.is_err() {
            self.abort_now().await;
        }
        self.finished = true;
        result
    }

    async fn abort(mut self: Box<Self>) {
        self.abort_now().await;
    }

    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

impl MultipartUpload {
    async fn abort_now(&mut self) {
        // An upload still being created is aborted once it exists.
        if self.creating.is_some() {
            let _ = self.created().await;
        }
        self.finished = true;
        if self.keep_partial {
            // Let running parts finish: they become part of what can be resumed.
            let _ = self.drain().await;
            return;
        }
        // Parts still uploading could land after the abort and bring the upload back, so they
        // finish first (each is bounded by the request timeout).
        let _ = self.drain().await;
        let Some(id) = self.upload_id.take() else {
            return;
        };
        for attempt in 0..3 {
            if let Err(e) = self.client.abort_upload(&self.key, &id).await {
                warn!(key = self.key.as_str(), error = %e, "could not abort a multipart upload");
            }
            // S3 asks callers to check: abort again while the upload is still listed.
            match self.client.pending_uploads(&self.key).await {
                Ok(uploads) if uploads.iter().any(|u| u.upload_id == id) => {
                    tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                }
                _ => return,
            }
        }
    }
}

impl Drop for MultipartUpload {
    fn drop(&mut self) {
        // Neither committed nor aborted: abort in the background unless it is kept for resuming.
        if self.finished || self.keep_partial {
            return;
        }
        self.in_flight.abort_all();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (client, key) = (self.client.clone(), self.key.clone());
        let (known, creating) = (self.upload_id.take(), self.creating.take());
        runtime.spawn(async move {
            let id = match (known, creating) {
                (Some(id), _) => id,
                (None, Some(creating)) => match creating.await {
                    Ok(Ok(id)) => id,
                    _ => return,
                },
                (None, None) => return,
            };
            let _ = client.abort_upload(&key, &id).await;
        });
    }
}

/// An upload through a store's own streamed writer: the object appears on commit only. APPE
/// and `REST n` + STOR first stream the object's existing bytes (all of them, or the first n)
/// into the new upload.
pub(crate) struct StreamedUpload {
    writer: Option<Box<dyn ObjectWriter>>,
    key: String,
    name: String,
    written: u64,
}

impl StreamedUpload {
    pub(crate) async fn start(
        store: &dyn ObjectStore,
        settings: &Settings,
        key: String,
        name: String,
        start: WriteStart,
    ) -> Result<StreamedUpload, StorageError> {
        let kept = match start {
            WriteStart::Truncate | WriteStart::At(0) => 0,
            WriteStart::Append => store.head(&key).await?.map_or(0, |info| info.size),
            WriteStart::At(offset) => match store.head(&key).await? {
                Some(info) if info.size >= offset => offset,
                _ => {
                    return Err(store_error(
                        StorageErrorKind::InvalidOffset,
                        format!("{key} has fewer than {offset} bytes to keep"),
                    ));
                }
            },
        };
        let writer = store
            .writer(
                &key,
                settings.effective_part_size(),
                settings.parts_in_flight,
            )
            .await?;
        let mut upload = StreamedUpload {
            writer: Some(writer),
            key,
            name,
            written: 0,
        };
        if kept > 0 {
            debug!(
                key = upload.key.as_str(),
                kept, "rewriting the kept bytes into the new upload"
            );
            let mut existing = store.get(&upload.key, 0).await?;
            let mut buffer = vec![0u8; 256 * 1024];
            while upload.written < kept {
                let want = usize::try_from(kept - upload.written)
                    .unwrap_or(usize::MAX)
                    .min(buffer.len());
                let n = existing.read(&mut buffer[..want]).await?;
                if n == 0 {
                    return Err(store_error(
                        StorageErrorKind::Transient,
                        format!("{} ended while its bytes were being kept", upload.key),
                    ));
                }
                upload.write(&buffer[..n]).await?;
            }
        }
        Ok(upload)
    }

    fn writer(&mut self) -> Result<&mut Box<dyn ObjectWriter>, StorageError> {
        self.writer
            .as_mut()
            .ok_or_else(|| store_error(StorageErrorKind::Local, "upload already finished"))
    }
}

#[async_trait]
impl Upload for StreamedUpload {
    async fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.writer()?.write(Bytes::copy_from_slice(data)).await?;
        self.written += data.len() as u64;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| store_error(StorageErrorKind::Local, "upload already finished"))?;
        if let Err(e) = writer.close().await {
            let _ = writer.abort().await;
            return Err(e);
        }
        Ok(self.written)
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(mut writer) = self.writer.take()
            && let Err(e) = writer.abort().await
        {
            warn!(key = self.key.as_str(), error = %e, "could not abort an upload");
        }
    }

    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

impl Drop for StreamedUpload {
    fn drop(&mut self) {
        // Neither committed nor aborted: abort in the background.
        if let (Some(mut writer), Ok(runtime)) =
            (self.writer.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(async move {
                let _ = writer.abort().await;
            });
        }
    }
}
