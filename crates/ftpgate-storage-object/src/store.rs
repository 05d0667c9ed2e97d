//! The calls the shared object-storage logic needs from a store, and the two kinds of stores
//! that answer them: the S3 API (with explicit multipart control, so uploads can be resumed)
//! and the native APIs of other stores through OpenDAL (streamed uploads that commit or abort).
//!
//! The shared logic never sees a store's client type: an upload either asks the store for a
//! streamed [`ObjectWriter`] or, when [`ObjectStore::multipart`] offers one, drives a
//! [`MultipartStore`] (start, upload parts, complete or abort, and find kept uploads again to
//! resume them). Another store with addressable parts (Azure's staged blocks, say) would
//! implement [`MultipartStore`] too, and get resumable uploads and COMB without changes here.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use ftpgate_core::{ReadStream, StorageError, StorageErrorKind};
use futures_core::stream::BoxStream;

/// An object's size and modification time.
#[derive(Debug, Clone)]
pub(crate) struct ObjectInfo {
    pub(crate) size: u64,
    pub(crate) modified: Option<SystemTime>,
}

/// One item of a listing under a prefix.
#[derive(Debug, Clone)]
pub(crate) enum Listed {
    /// An object (a file, or a directory's own `dir/` marker).
    Object { key: String, info: ObjectInfo },
    /// A common prefix ending with `/` (a subdirectory), in delimited listings only.
    Prefix(String),
}

impl Listed {
    pub(crate) fn key(&self) -> &str {
        match self {
            Listed::Object { key, .. } => key,
            Listed::Prefix(prefix) => prefix,
        }
    }
}

/// A store of objects named by keys.
#[async_trait]
pub(crate) trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Size and time of `key`, or None when there is no such object.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError>;
    /// The bytes of `key` from `offset` to the end, streamed. An offset beyond the end is an
    /// `InvalidOffset` error.
    async fn get(&self, key: &str, offset: u64) -> Result<ReadStream, StorageError>;
    /// The size and time of `key` with its bytes from `offset`, streamed, in as few requests
    /// as the store allows (S3: one GET); None when there is no such object. An offset at the
    /// end is an empty stream, beyond it an `InvalidOffset` error. The default is a HEAD, then
    /// a GET.
    async fn get_with_info(
        &self,
        key: &str,
        offset: u64,
    ) -> Result<Option<(ObjectInfo, ReadStream)>, StorageError> {
        let Some(info) = self.head(key).await? else {
            return Ok(None);
        };
        if offset > info.size {
            return Err(StorageError::new(
                StorageErrorKind::InvalidOffset,
                format!(
                    "offset {offset} is past the end of {key} ({} bytes)",
                    info.size
                ),
            ));
        }
        if offset == info.size {
            return Ok(Some((info, Box::new(tokio::io::empty()))));
        }
        let stream = self.get(key, offset).await?;
        Ok(Some((info, stream)))
    }
    /// Writes a whole (small) object.
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StorageError>;
    /// Deletes `key`; a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// A copy in the store of the object `from` (of `size` bytes) to `to`.
    async fn copy(&self, from: &str, to: &str, size: u64) -> Result<(), StorageError>;
    /// The keys under `prefix` in key order, page by page (`page` keys a request). Delimited:
    /// only the level below `prefix`, subdirectories as [`Listed::Prefix`]; otherwise every key.
    fn list(
        &self,
        prefix: &str,
        delimited: bool,
        page: usize,
    ) -> BoxStream<'static, Result<Listed, StorageError>>;
    /// Refuses (with `InvalidName`) a key the store would change or could not list back.
    fn check_name(&self, _key: &str) -> Result<(), StorageError> {
        Ok(())
    }
    /// The same store with explicit multipart uploads, when it has them (the S3 API): uploads
    /// then go up part by part under an id, and can be kept and resumed. `None` (the default):
    /// uploads go through [`ObjectStore::writer`].
    fn multipart(&self) -> Option<Arc<dyn MultipartStore>> {
        None
    }
    /// A streamed writer of `key` for stores without explicit multipart control: bytes go up
    /// in chunks of `chunk` bytes, `in_flight` at once; only `close` makes the object appear.
    async fn writer(
        &self,
        key: &str,
        chunk: usize,
        in_flight: usize,
    ) -> Result<Box<dyn ObjectWriter>, StorageError>;
}

/// A streamed upload of one object.
#[async_trait]
pub(crate) trait ObjectWriter: Send {
    async fn write(&mut self, data: Bytes) -> Result<(), StorageError>;
    /// Completes the object.
    async fn close(&mut self) -> Result<(), StorageError>;
    /// Discards what was written; the object is left as it was.
    async fn abort(&mut self) -> Result<(), StorageError>;
}

/// One multipart upload in progress or kept for resuming.
#[derive(Debug, Clone)]
pub(crate) struct PendingUpload {
    pub(crate) key: String,
    pub(crate) upload_id: String,
    pub(crate) initiated: Option<jiff::Timestamp>,
}

/// An uploaded part: its number (from 1), the store's tag for it, and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) number: u16,
    pub(crate) etag: String,
    pub(crate) size: u64,
}

/// A store whose uploads are made of numbered parts under an upload id that outlives the
/// connection, so an interrupted upload can be listed, continued and completed later, and an
/// object can be composed from others in place (COMB).
#[async_trait]
pub(crate) trait MultipartStore: ObjectStore {
    /// Bytes `start..=end_inclusive` of `key`, whole (for the short tail an append re-uploads).
    async fn read_range(
        &self,
        key: &str,
        start: u64,
        end_inclusive: u64,
    ) -> Result<Bytes, StorageError>;
    /// Starts an upload of `key`; returns its id.
    async fn start_upload(&self, key: &str) -> Result<String, StorageError>;
    /// Uploads part `number` of the upload; returns the part's tag.
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        body: Bytes,
    ) -> Result<String, StorageError>;
    /// Makes the whole object `source` part `number` of the upload, in the store; returns the
    /// part's tag.
    async fn copy_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        source: &str,
    ) -> Result<String, StorageError>;
    /// Makes `key` the concatenation of `parts`.
    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
    ) -> Result<(), StorageError>;
    /// Discards the upload and its parts; `key` is left as it was.
    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), StorageError>;
    /// The parts uploaded so far, by number.
    async fn uploaded_parts(&self, key: &str, upload_id: &str) -> Result<Vec<Part>, StorageError>;
    /// Uploads in progress or kept, of keys starting with `prefix`.
    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, StorageError>;
}
