//! Object storage for ftpgate: S3-compatible stores (AWS S3, Garage, MinIO, Ceph, and the S3
//! APIs of Tencent COS and Google Cloud Storage) through a lean S3 client, and Azure Blob
//! Storage, Google Cloud Storage and Tencent COS through their own APIs (Apache OpenDAL).
//!
//! One [`ObjectStorage`] holds the logic shared by every store (directory emulation, listing,
//! commit/abort, resume bookkeeping) over the few calls a store answers (`store.rs`): an
//! `ObjectStore`, and for stores with explicit multipart uploads (S3) a `MultipartStore`.
//!
//! - Directories are emulated as S3 consoles and rclone do: key prefixes, plus an empty
//!   `dir/` marker object for a directory made empty with MKD.
//! - Listings page through the store (ListObjectsV2 with a delimiter, 1,000 keys a page) and
//!   stream entry by entry; sizes and times come from the listing, never a HEAD per entry.
//! - Downloads stream with ranged GETs: `REST n` + RETR starts at byte n.
//! - Uploads stream as multipart parts while the bytes arrive, with a bounded number of parts in
//!   flight; memory per upload stays within part size x (parts in flight + 1). The part size
//!   grows with the configured maximum file size so the 10,000-part limit is never reached.
//!   Only a completed transfer completes the multipart upload; ABOR, a dropped connection or an
//!   error aborts it, so no truncated object appears and no parts are left behind.
//! - With `keep_partial_uploads`, an interrupted upload keeps its multipart state in the store
//!   itself; SIZE reports the bytes safely stored (whole parts), and `REST n` + STOR or APPE
//!   continues the same multipart upload, from this node or any other sharing the bucket.
//!   Abandoned ones are aborted after a configurable age ([`ObjectStorageFactory::remove_abandoned_uploads`]).
//! - APPE to an existing object copies it in the store (UploadPartCopy) when it is at least
//!   5 MiB, and otherwise reads it (at most 5 MiB) into the first part.
//! - On the native APIs (Azure, GCS, COS) uploads stream through OpenDAL's writer, which
//!   completes the object on close and discards it on abort. OpenDAL keeps the multipart state
//!   to itself, so interrupted uploads there are not kept for resuming; APPE and `REST n` +
//!   STOR rewrite the object's first bytes into the new upload, streamed (bounded memory).

#![deny(missing_docs)]

mod config;
mod factory;
mod meta;
mod native;
mod observe;
mod part_buffer;
mod s3_client;
mod store;
mod upload;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use ftpgate_core::{
    Capabilities, DirEntry, EntryStream, Facts, Metadata, ReadStream, Storage, StorageError,
    StorageErrorKind, Upload, VirtualPath, WriteStart,
};
use futures_util::{StreamExt, TryStreamExt};
use tracing::{debug, warn};

pub use crate::config::{NativeConfig, S3Config};
pub use crate::factory::ObjectStorageFactory;
pub use crate::native::NativeService;
pub use crate::observe::RequestObserver;

use crate::config::Settings;
use crate::meta::{dir_meta, file_meta};
use crate::s3_client::store_error;
use crate::store::{Listed, MultipartStore, ObjectStore, Part};
use crate::upload::{MultipartUpload, StreamedUpload};

/// S3 parts must be at least this large, except the last one.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Most parts in one multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// Keys per listing page.
const PAGE: usize = 1000;

/// A prefix of a bucket, served as the root of a user's tree.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    /// The store again, as a multipart store, when it has explicit multipart uploads (which can
    /// be resumed).
    multipart: Option<Arc<dyn MultipartStore>>,
    /// `scheme://bucket`, which with a key names an object for the MLSx `unique` fact.
    store_name: Arc<str>,
    /// The scheme of `store_name` (`s3`, `azure`, `gcs`, `cos`), the backend's name.
    scheme: &'static str,
    /// The key prefix of the root: "" or ending with '/'.
    root: String,
    settings: Arc<Settings>,
}

/// A multipart upload that can be continued: its id, its parts in order without gaps, and the
/// bytes they hold.
#[derive(Debug, Clone)]
pub(crate) struct Resumable {
    pub(crate) upload_id: String,
    pub(crate) parts: Vec<Part>,
    pub(crate) stored: u64,
}

impl ObjectStorage {
    /// Keys (relative to this root) of multipart uploads in progress or kept for resuming.
    pub async fn incomplete_uploads(&self) -> Result<Vec<String>, StorageError> {
        let Some(client) = &self.multipart else {
            return Ok(Vec::new());
        };
        let uploads = client.pending_uploads(&self.root).await?;
        Ok(uploads
            .into_iter()
            .map(|u| u.key[self.root.len().min(u.key.len())..].to_string())
            .collect())
    }

    fn key(&self, path: &VirtualPath) -> String {
        format!("{}{}", self.root, path.relative())
    }

    fn dir_prefix(&self, path: &VirtualPath) -> String {
        if path.is_root() {
            self.root.clone()
        } else {
            format!("{}/", self.key(path))
        }
    }

    /// The interrupted upload of `key` that can be resumed, if partial uploads are kept.
    pub(crate) async fn resumable(&self, key: &str) -> Result<Option<Resumable>, StorageError> {
        let Some(client) = &self.multipart else {
            return Ok(None);
        };
        if !self.settings.keep_partial_uploads {
            return Ok(None);
        }
        let mut uploads: Vec<_> = client
            .pending_uploads(key)
            .await?
            .into_iter()
            .filter(|u| u.key == key)
            .collect();
        uploads.sort_by_key(|u| u.initiated);
        let Some(upload) = uploads.pop() else {
            return Ok(None);
        };
        let mut parts = match client.uploaded_parts(key, &upload.upload_id).await {
            Ok(parts) => parts,
            // Completed or aborted since it was listed: some stores (Garage) list uploads from
            // an index that lags behind the upload itself for a moment.
            Err(e) if e.kind == StorageErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // Only parts 1..n without a gap count; a part still uploading when the transfer broke
        // may be missing.
        let whole = parts
            .iter()
            .enumerate()
            .take_while(|(i, p)| usize::from(p.number) == i + 1)
            .count();
        parts.truncate(whole);
        let stored = parts.iter().map(|p| p.size).sum();
        Ok(Some(Resumable {
            upload_id: upload.upload_id,
            parts,
            stored,
        }))
    }

    async fn is_dir(&self, path: &VirtualPath) -> Result<bool, StorageError> {
        if path.is_root() {
            return Ok(true);
        }
        match self
            .store
            .list(&self.dir_prefix(path), false, 1)
            .next()
            .await
        {
            Some(Ok(_)) => Ok(true),
            None => Ok(false),
            Some(Err(e)) if e.kind == StorageErrorKind::NotFound => Ok(false),
            Some(Err(e)) => Err(e),
        }
    }

    /// Every key under `prefix` with its size, at most `limit` (None beyond it).
    async fn all_keys(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Option<Vec<(String, u64)>>, StorageError> {
        let mut keys = Vec::new();
        let mut listing = self.store.list(prefix, false, PAGE);
        while let Some(item) = listing.next().await {
            if let Listed::Object { key, info } = item? {
                keys.push((key, info.size));
                if keys.len() > limit {
                    return Ok(None);
                }
            }
        }
        Ok(Some(keys))
    }
}

#[async_trait]
impl Storage for ObjectStorage {
    fn backend_name(&self) -> &'static str {
        self.scheme
    }

    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata, StorageError> {
        if path.is_root() {
            return Ok(dir_meta(&self.store_name, &self.root));
        }
        let key = self.key(path);
        // An interrupted upload being kept for resuming counts with the bytes safely stored.
        if let Some(resumable) = self.resumable(&key).await? {
            return Ok(file_meta(&self.store_name, &key, resumable.stored, None));
        }
        if let Some(info) = self.store.head(&key).await? {
            return Ok(file_meta(&self.store_name, &key, info.size, info.modified));
        }
        if self.is_dir(path).await? {
            return Ok(dir_meta(&self.store_name, &key));
        }
        Err(store_error(
            StorageErrorKind::NotFound,
            format!("{key}: no such object or prefix"),
        ))
    }

    async fn list(&self, path: &VirtualPath) -> Result<EntryStream, StorageError> {
        if !self.is_dir(path).await? {
            return Err(store_error(
                StorageErrorKind::NotFound,
                format!("{path}: no such directory"),
            ));
        }
        let prefix = self.dir_prefix(path);
        let listing = self.store.list(&prefix, true, PAGE);
        let store_name = self.store_name.clone();
        let entries = listing.filter_map(move |item| {
            let entry = item.map(|item| {
                let (key, metadata) = match item {
                    Listed::Prefix(key) => {
                        let metadata = dir_meta(&store_name, &key);
                        (key, metadata)
                    }
                    Listed::Object { key, info } => {
                        let metadata = file_meta(&store_name, &key, info.size, info.modified);
                        (key, metadata)
                    }
                };
                let name = key
                    .get(prefix.len()..)
                    .unwrap_or("")
                    .trim_end_matches('/')
                    .to_string();
                // The directory's own marker object is not an entry.
                (!name.is_empty()).then_some(DirEntry { name, metadata })
            });
            std::future::ready(entry.transpose())
        });
        Ok(Box::pin(entries))
    }

    async fn read(&self, path: &VirtualPath, offset: u64) -> Result<ReadStream, StorageError> {
        let key = self.key(path);
        match self.store.get(&key, offset).await {
            Ok(stream) => Ok(stream),
            // Reading from the very end is an empty read, not an error.
            Err(e) if e.kind == StorageErrorKind::InvalidOffset => {
                match self.store.head(&key).await? {
                    Some(info) if info.size == offset => Ok(Box::new(tokio::io::empty())),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// One GET on S3 (its headers tell the size); a directory or a missing file costs the
    /// look-ups `metadata` makes.
    async fn read_with_metadata(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> Result<(Metadata, ReadStream), StorageError> {
        let key = self.key(path);
        if !path.is_root()
            && let Some((info, stream)) = self.store.get_with_info(&key, offset).await?
        {
            let metadata = file_meta(&self.store_name, &key, info.size, info.modified);
            return Ok((metadata, stream));
        }
        // No such object: a directory, an interrupted upload kept for resuming (not readable
        // until it is finished), or nothing.
        let kind = match self.metadata(path).await {
            Ok(metadata) if metadata.is_dir() => StorageErrorKind::IsADirectory,
            Ok(_) => StorageErrorKind::NotFound,
            Err(e) => return Err(e),
        };
        Err(store_error(kind, format!("{key}: no such object")))
    }

    async fn write(
        &self,
        path: &VirtualPath,
        start: WriteStart,
    ) -> Result<Box<dyn Upload>, StorageError> {
        let key = self.key(path);
        self.store.check_name(path.relative())?;
        if self.is_dir(path).await? {
            return Err(store_error(
                StorageErrorKind::IsADirectory,
                format!("{path} is a directory"),
            ));
        }
        let parent = path.parent();
        if !self.is_dir(&parent).await? {
            return Err(store_error(
                StorageErrorKind::NotFound,
                format!("{parent}: no such directory"),
            ));
        }
        let name = path.file_name().unwrap_or("").to_string();
        match &self.multipart {
            Some(client) => Ok(Box::new(
                MultipartUpload::start(self, client.clone(), key, name, start).await?,
            )),
            None => Ok(Box::new(
                StreamedUpload::start(self.store.as_ref(), &self.settings, key, name, start)
                    .await?,
            )),
        }
    }

    async fn write_unique(
        &self,
        dir: &VirtualPath,
        base: &str,
    ) -> Result<Box<dyn Upload>, StorageError> {
        for n in 0..1000u32 {
            let name = if n == 0 {
                base.to_string()
            } else {
                format!("{base}.{n}")
            };
            let path = dir.join(&name);
            if self.store.head(&self.key(&path)).await?.is_none() && !self.is_dir(&path).await? {
                return self.write(&path, WriteStart::Truncate).await;
            }
        }
        Err(store_error(
            StorageErrorKind::AlreadyExists,
            "no free unique name",
        ))
    }

    async fn make_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let key = self.key(path);
        self.store.check_name(path.relative())?;
        if self.store.head(&key).await?.is_some() || self.is_dir(path).await? {
            return Err(store_error(
                StorageErrorKind::AlreadyExists,
                format!("{path} exists"),
            ));
        }
        let parent = path.parent();
        if !self.is_dir(&parent).await? {
            return Err(store_error(
                StorageErrorKind::NotFound,
                format!("{parent}: no such directory"),
            ));
        }
        self.store
            .put(&self.dir_prefix(path), bytes::Bytes::new())
            .await
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let prefix = self.dir_prefix(path);
        let first: Vec<Listed> = self
            .store
            .list(&prefix, true, 2)
            .take(2)
            .try_collect()
            .await?;
        let marker = first.iter().any(|item| item.key() == prefix);
        if first.iter().any(|item| item.key() != prefix) {
            return Err(store_error(
                StorageErrorKind::DirectoryNotEmpty,
                format!("{path} is not empty"),
            ));
        }
        if !marker {
            return Err(store_error(
                StorageErrorKind::NotFound,
                format!("{path}: no such directory"),
            ));
        }
        self.store.delete(&prefix).await
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let key = self.key(path);
        let resumable = self.resumable(&key).await?;
        if let (Some(r), Some(client)) = (&resumable, &self.multipart) {
            client.abort_upload(&key, &r.upload_id).await?;
        }
        if self.store.head(&key).await?.is_none() {
            if resumable.is_some() {
                return Ok(());
            }
            let kind = if self.is_dir(path).await? {
                StorageErrorKind::IsADirectory
            } else {
                StorageErrorKind::NotFound
            };
            return Err(store_error(kind, format!("{path}: no such file")));
        }
        self.store.delete(&key).await
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        let (from_key, to_key) = (self.key(from), self.key(to));
        self.store.check_name(to.relative())?;
        if let Some(info) = self.store.head(&from_key).await? {
            self.store.copy(&from_key, &to_key, info.size).await?;
            return self.store.delete(&from_key).await;
        }
        if !self.is_dir(from).await? {
            return Err(store_error(
                StorageErrorKind::NotFound,
                format!("{from}: no such file or directory"),
            ));
        }
        // A directory is a prefix: every object under it is copied, then deleted.
        let (from_prefix, to_prefix) = (self.dir_prefix(from), self.dir_prefix(to));
        let limit = self.settings.max_rename_objects;
        let Some(keys) = self.all_keys(&from_prefix, limit).await? else {
            warn!(%from, limit, "directory rename refused: too many objects");
            return Err(store_error(
                StorageErrorKind::Unsupported,
                format!("{from} holds more than {limit} objects to rename"),
            ));
        };
        for (key, size) in &keys {
            let target = format!("{to_prefix}{}", &key[from_prefix.len()..]);
            if key.ends_with('/') {
                // A directory marker is made anew rather than copied.
                self.store.put(&target, bytes::Bytes::new()).await?;
            } else {
                self.store.copy(key, &target, *size).await?;
            }
        }
        for (key, _) in &keys {
            self.store.delete(key).await?;
        }
        Ok(())
    }

    /// Every entry has a type, size and `unique` fact (from its key), and every file its
    /// `modify` time. `modify` is offered although a directory that exists only as a key prefix
    /// has no time of its own (its entry omits the fact): without it, clients that take file
    /// times from MLSD (rclone, lftp's mirror, FileZilla) would see none at all. No `unix.mode`.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ignore_set_mode: self.settings.ignore_set_mode,
            facts: Facts {
                unique: true,
                modify: true,
                ..Facts::BASIC
            },
            ..Capabilities::none()
        }
    }

    /// A multipart upload whose parts are copies of the given objects (UploadPartCopy), when
    /// the store has multipart uploads and every part but the last is at least 5 MiB (and at
    /// most 5 GiB); otherwise Unsupported, and the engine streams the parts instead.
    async fn combine(
        &self,
        target: &VirtualPath,
        parts: &[VirtualPath],
    ) -> Result<(), StorageError> {
        let unsupported =
            || store_error(StorageErrorKind::Unsupported, "cannot compose these parts");
        let Some(client) = &self.multipart else {
            return Err(unsupported());
        };
        let mut keys = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let key = self.key(part);
            let Some(info) = self.store.head(&key).await? else {
                return Err(store_error(
                    StorageErrorKind::NotFound,
                    format!("{part}: no such file"),
                ));
            };
            let last = i + 1 == parts.len();
            if info.size == 0
                || (!last && info.size < MIN_PART_SIZE as u64)
                || info.size > 5 * 1024 * 1024 * 1024
            {
                return Err(unsupported());
            }
            keys.push((key, info.size));
        }
        let target_key = self.key(target);
        let id = client.start_upload(&target_key).await?;
        let result = async {
            let mut done = Vec::with_capacity(keys.len());
            for (number, (key, size)) in (1u16..).zip(&keys) {
                let etag = client.copy_part(&target_key, &id, number, key).await?;
                done.push(Part {
                    number,
                    etag,
                    size: *size,
                });
            }
            client.complete_upload(&target_key, &id, &done).await
        }
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = client.abort_upload(&target_key, &id).await;
                // A store that refuses this copy (Garage keeps small objects inline and cannot
                // copy them as parts) leaves the engine to stream the parts instead.
                if e.kind == StorageErrorKind::Local {
                    debug!(error = %e, "composing in the store failed; streaming instead");
                    return Err(unsupported());
                }
                Err(e)
            }
        }
    }

    async fn set_modified(
        &self,
        _path: &VirtualPath,
        _time: SystemTime,
    ) -> Result<(), StorageError> {
        Err(store_error(
            StorageErrorKind::Unsupported,
            "object stores keep their own modification times",
        ))
    }

    async fn used_bytes(&self) -> Result<u64, StorageError> {
        let keys = self
            .all_keys(&self.root, usize::MAX)
            .await?
            .unwrap_or_default();
        Ok(keys.iter().map(|(_, size)| size).sum())
    }

    async fn used_files(&self) -> Result<u64, StorageError> {
        let keys = self
            .all_keys(&self.root, usize::MAX)
            .await?
            .unwrap_or_default();
        // Directory markers (`dir/`) are no files.
        Ok(keys.iter().filter(|(key, _)| !key.ends_with('/')).count() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> S3Config {
        S3Config::new(
            "http://127.0.0.1:3900".parse().unwrap(),
            "garage",
            "b",
            "k",
            "s",
        )
    }

    #[test]
    fn part_size_grows_with_the_maximum_file_size() {
        let mut c = config();
        assert_eq!(c.effective_part_size(), 8 * 1024 * 1024);
        // Without a maximum, 10,000 doubling parts still hold more than S3's 5 TiB limit.
        let total: u64 = (1..=MAX_PARTS as u16)
            .map(|n| c.part_size_for(n) as u64)
            .sum();
        assert!(total > 5 * 1024 * 1024 * 1024 * 1024, "{total}");
        assert_eq!(c.part_size_for(1000), 8 * 1024 * 1024);
        assert_eq!(c.part_size_for(1001), 16 * 1024 * 1024);
        c.max_file_size = Some(1024 * 1024 * 1024 * 1024); // 1 TiB needs parts over 100 MiB
        let part = c.effective_part_size() as u64;
        assert!(part * MAX_PARTS >= 1024 * 1024 * 1024 * 1024);
        assert_eq!(part % (1024 * 1024), 0);
        c.part_size = 1;
        c.max_file_size = Some(1);
        assert_eq!(c.effective_part_size(), MIN_PART_SIZE);
    }

    #[test]
    fn homes_map_to_prefixes() {
        let mut c = config();
        c.prefix = "/ftp/".into();
        let factory = ObjectStorageFactory::s3(c).unwrap();
        assert_eq!(factory.storage_at("alice").unwrap().root, "ftp/alice/");
        assert_eq!(factory.storage_at("").unwrap().root, "ftp/");
        let other = factory.storage_at("s3://other/some/where/").unwrap();
        assert_eq!(other.root, "some/where/");
        assert!(format!("{:?}", other.store).contains("other"));
        let s = factory.storage_at("alice").unwrap();
        assert_eq!(
            s.key(&VirtualPath::parse_absolute("/a b/c").unwrap()),
            "ftp/alice/a b/c"
        );
        assert_eq!(s.dir_prefix(&VirtualPath::root()), "ftp/alice/");
        assert_eq!(
            s.dir_prefix(&VirtualPath::parse_absolute("/d").unwrap()),
            "ftp/alice/d/"
        );
    }
}
