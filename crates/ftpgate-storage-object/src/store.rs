//! The calls the shared object-storage logic needs from a store, and the two kinds of stores
//! that answer them: the S3 API (with explicit multipart control, so uploads can be resumed)
//! and the native APIs of other stores through OpenDAL (streamed uploads that commit or abort).

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use ftpgate_core::{ReadStream, StorageError};
use futures_core::stream::BoxStream;

use crate::s3_client::S3Client;

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
    /// The S3 client, when the store speaks the S3 API: multipart uploads are then explicit and
    /// can be kept and resumed.
    fn multipart(&self) -> Option<Arc<S3Client>> {
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
