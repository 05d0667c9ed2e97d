//! Object storage for ftpgate: S3-compatible stores (AWS S3, Garage, MinIO, Ceph, and the S3
//! APIs of Tencent COS and Google Cloud Storage) through a lean S3 client, and Azure Blob
//! Storage, Google Cloud Storage and Tencent COS through their own APIs (Apache OpenDAL).
//!
//! One [`ObjectStorage`] holds the logic shared by every store (directory emulation, listing,
//! commit/abort, resume bookkeeping) over the few calls a store answers (`store.rs`).
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

#![warn(missing_docs)]

mod client;
mod native;
mod store;
mod upload;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use ftpgate_core::{
    Capabilities, DirEntry, EntryStream, ErrorKind, Facts, FileKind, Metadata, ReadStream, Storage,
    StorageError, StorageFactory, Upload, User, VirtualPath, WriteStart,
};
use futures_util::{StreamExt, TryStreamExt};
use tracing::{debug, info, warn};
use url::Url;

pub use crate::native::NativeService;

use crate::client::{S3Client, store_error};
use crate::native::NativeStore;
use crate::store::{Listed, ObjectStore};
use crate::upload::{MultipartUpload, StreamedUpload};

/// S3 parts must be at least this large, except the last one.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Most parts in one multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// Keys per listing page.
const PAGE: usize = 1000;

/// Where the store is and how to use it.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The S3 endpoint, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:3900`.
    pub endpoint: Url,
    /// The region (any string the store accepts, e.g. `garage` or `us-east-1`).
    pub region: String,
    /// The bucket users' homes are in (a home may name another with `s3://bucket/prefix`).
    pub bucket: String,
    /// A key prefix under which all homes live ("" for the whole bucket).
    pub prefix: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
    /// Path-style URLs (`endpoint/bucket/key`), as most self-hosted stores need.
    pub path_style: bool,
    /// Multipart part size (at least 5 MiB).
    pub part_size: usize,
    /// Parts uploading at once per transfer.
    pub parts_in_flight: usize,
    /// The largest file expected, if known: the first part size grows so that it fits in
    /// 10,000 parts. Without it parts still double in size every 1,000 parts.
    pub max_file_size: Option<u64>,
    /// Keep interrupted uploads (their multipart state) so that they can be resumed.
    pub keep_partial_uploads: bool,
    /// Longest a single request may take.
    pub request_timeout: Duration,
    /// Retries of a request that failed transiently (timeouts, 5xx, throttling).
    pub retries: u32,
    /// Most objects a directory rename may copy.
    pub max_rename_objects: usize,
}

impl S3Config {
    /// Settings for a bucket at an endpoint, with defaults for the rest: 8 MiB parts, 4 in
    /// flight, 5-minute requests, 3 retries, renames of up to 10,000 objects.
    pub fn new(
        endpoint: Url,
        region: &str,
        bucket: &str,
        access_key: &str,
        secret_key: &str,
    ) -> Self {
        S3Config {
            endpoint,
            region: region.to_string(),
            bucket: bucket.to_string(),
            prefix: String::new(),
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            session_token: None,
            path_style: true,
            part_size: 8 * 1024 * 1024,
            parts_in_flight: 4,
            max_file_size: None,
            keep_partial_uploads: false,
            request_timeout: Duration::from_secs(300),
            retries: 3,
            max_rename_objects: 10_000,
        }
    }

    /// The first part size: at least 5 MiB, and large enough that `max_file_size` fits in
    /// 10,000 parts (rounded up to whole MiB).
    pub fn effective_part_size(&self) -> usize {
        self.settings().effective_part_size()
    }

    /// The size of part `number` (from 1): the first part size, doubled every 1,000 parts (at
    /// most 5 GiB, S3's largest part), so 10,000 parts hold more than S3's largest object.
    pub fn part_size_for(&self, number: u16) -> usize {
        self.settings().part_size_for(number)
    }

    fn settings(&self) -> Settings {
        Settings {
            part_size: self.part_size,
            parts_in_flight: self.parts_in_flight,
            max_file_size: self.max_file_size,
            keep_partial_uploads: self.keep_partial_uploads,
            max_rename_objects: self.max_rename_objects,
            ignore_set_mode: false,
        }
    }
}

/// Where a store reached through its own API is, and how to use it.
#[derive(Debug, Clone)]
pub struct NativeConfig {
    /// The store and its credentials.
    pub service: NativeService,
    /// A key prefix under which all homes live ("" for the whole container or bucket).
    pub prefix: String,
    /// Upload chunk (block) size.
    pub part_size: usize,
    /// Chunks uploading at once per transfer.
    pub parts_in_flight: usize,
    /// Longest a single request may take.
    pub request_timeout: Duration,
    /// Retries of a request that failed transiently (timeouts, 5xx, throttling).
    pub retries: u32,
    /// Most objects a directory rename may copy.
    pub max_rename_objects: usize,
}

impl NativeConfig {
    /// Settings for `service`, with the defaults of [`S3Config::new`].
    pub fn new(service: NativeService) -> Self {
        NativeConfig {
            service,
            prefix: String::new(),
            part_size: 8 * 1024 * 1024,
            parts_in_flight: 4,
            request_timeout: Duration::from_secs(300),
            retries: 3,
            max_rename_objects: 10_000,
        }
    }
}

/// What the shared logic needs to know of either configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) part_size: usize,
    pub(crate) parts_in_flight: usize,
    pub(crate) max_file_size: Option<u64>,
    pub(crate) keep_partial_uploads: bool,
    pub(crate) max_rename_objects: usize,
    /// SITE CHMOD is accepted and ignored instead of refused.
    pub(crate) ignore_set_mode: bool,
}

impl Settings {
    pub(crate) fn effective_part_size(&self) -> usize {
        const MIB: u64 = 1024 * 1024;
        let needed = self
            .max_file_size
            .unwrap_or(0)
            .div_ceil(MAX_PARTS)
            .div_ceil(MIB)
            * MIB;
        let size = (self.part_size as u64)
            .max(needed)
            .max(MIN_PART_SIZE as u64);
        usize::try_from(size).unwrap_or(usize::MAX)
    }

    pub(crate) fn part_size_for(&self, number: u16) -> usize {
        let doublings = u32::from(number.saturating_sub(1) / 1000);
        let size = (self.effective_part_size() as u64).saturating_mul(1u64 << doublings.min(20));
        usize::try_from(size.min(5 * 1024 * 1024 * 1024)).unwrap_or(usize::MAX)
    }
}

fn clean_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

/// How a factory reaches a bucket.
#[derive(Debug)]
enum Connector {
    S3(Arc<S3Config>),
    Native(NativeConfig),
}

impl Connector {
    fn connect(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, StorageError> {
        match self {
            Connector::S3(config) => Ok(Arc::new(S3Client::new(config, bucket)?)),
            Connector::Native(config) => {
                let mut service = config.service.clone();
                match &mut service {
                    NativeService::Azure { container, .. } => *container = bucket.to_string(),
                    NativeService::Gcs { bucket: b, .. } | NativeService::Cos { bucket: b, .. } => {
                        *b = bucket.to_string()
                    }
                }
                Ok(Arc::new(NativeStore::new(
                    &service,
                    config.request_timeout,
                    config.retries,
                )?))
            }
        }
    }

    /// The URL scheme of a home naming another bucket: `s3`, `azure`, `gcs` or `cos`.
    fn scheme(&self) -> &'static str {
        match self {
            Connector::S3(_) => "s3",
            Connector::Native(config) => config.service.kind(),
        }
    }
}

/// Opens an [`ObjectStorage`] at each user's home: a prefix in the configured bucket, or
/// `SCHEME://bucket/prefix` for another bucket of the same store (`s3://`, `azure://`,
/// `gcs://`, `cos://`).
#[derive(Debug)]
pub struct ObjectStorageFactory {
    connector: Connector,
    bucket: String,
    prefix: String,
    settings: Arc<Settings>,
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl ObjectStorageFactory {
    /// A factory for an S3-compatible store (checks the endpoint and bucket names, makes no
    /// request).
    pub fn s3(config: S3Config) -> Result<Self, StorageError> {
        if config.part_size < MIN_PART_SIZE {
            return Err(store_error(
                ErrorKind::Local,
                "part_size must be at least 5 MiB",
            ));
        }
        Self::with(
            config.bucket.clone(),
            config.prefix.clone(),
            config.settings(),
            Connector::S3(Arc::new(config)),
        )
    }

    /// Objects keep no permission bits: with `ignore`, SITE CHMOD is answered 200 and does
    /// nothing (GUI clients that set permissions after every upload then show no error);
    /// without it (the default), SITE CHMOD is refused with 502.
    pub fn ignore_set_mode(mut self, ignore: bool) -> Self {
        Arc::make_mut(&mut self.settings).ignore_set_mode = ignore;
        self
    }

    /// A factory for a store reached through its own API (makes no request).
    pub fn native(config: NativeConfig) -> Result<Self, StorageError> {
        let settings = Settings {
            part_size: config.part_size,
            parts_in_flight: config.parts_in_flight,
            max_file_size: None,
            keep_partial_uploads: false,
            max_rename_objects: config.max_rename_objects,
            ignore_set_mode: false,
        };
        Self::with(
            config.service.bucket().to_string(),
            config.prefix.clone(),
            settings,
            Connector::Native(config),
        )
    }

    fn with(
        bucket: String,
        prefix: String,
        settings: Settings,
        connector: Connector,
    ) -> Result<Self, StorageError> {
        let factory = ObjectStorageFactory {
            connector,
            bucket,
            prefix: clean_prefix(&prefix),
            settings: Arc::new(settings),
            stores: Mutex::new(HashMap::new()),
        };
        factory.store(&factory.bucket)?;
        Ok(factory)
    }

    fn store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, StorageError> {
        let mut stores = self
            .stores
            .lock()
            .map_err(|_| store_error(ErrorKind::Local, "client cache poisoned"))?;
        if let Some(store) = stores.get(bucket) {
            return Ok(store.clone());
        }
        let store = self.connector.connect(bucket)?;
        stores.insert(bucket.to_string(), store.clone());
        Ok(store)
    }

    /// The storage rooted at `home` (a prefix, or `SCHEME://bucket/prefix`).
    pub fn storage_at(&self, home: &str) -> Result<ObjectStorage, StorageError> {
        let url_prefix = format!("{}://", self.connector.scheme());
        let (bucket, prefix) = match home.strip_prefix(&url_prefix) {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                (bucket.to_string(), clean_prefix(prefix))
            }
            None => (
                self.bucket.clone(),
                clean_prefix(&format!("{}{}", self.prefix, home.trim_matches('/'))),
            ),
        };
        let store = self.store(&bucket)?;
        Ok(ObjectStorage {
            multipart: store.multipart(),
            store,
            store_name: format!("{}://{bucket}", self.connector.scheme()).into(),
            root: prefix,
            settings: self.settings.clone(),
        })
    }

    /// Aborts multipart uploads under the configured prefix that were started more than
    /// `older_than` ago (interrupted uploads nobody resumed). Returns how many. Stores without
    /// explicit multipart control keep no such uploads.
    pub async fn remove_abandoned_uploads(
        &self,
        older_than: Duration,
    ) -> Result<usize, StorageError> {
        let Some(client) = self.store(&self.bucket)?.multipart() else {
            return Ok(0);
        };
        let cutoff = jiff::Timestamp::now()
            - jiff::SignedDuration::try_from(older_than).unwrap_or(jiff::SignedDuration::MAX);
        let mut removed = 0;
        for upload in client.list_uploads(&self.prefix).await? {
            if upload.initiated.is_some_and(|t| t < cutoff) {
                client
                    .abort_multipart(&upload.key, &upload.upload_id)
                    .await?;
                info!(key = ?upload.key, "aborted an abandoned partial upload");
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl StorageFactory for ObjectStorageFactory {
    fn open(&self, user: &User) -> Result<Arc<dyn Storage>, StorageError> {
        Ok(Arc::new(self.storage_at(&user.home)?))
    }
}

/// A prefix of a bucket, served as the root of a user's tree.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    /// The S3 client when the store has explicit multipart uploads (which can be resumed).
    multipart: Option<Arc<S3Client>>,
    /// `scheme://bucket`, which with a key names an object for the MLSx `unique` fact.
    store_name: Arc<str>,
    /// The key prefix of the root: "" or ending with '/'.
    root: String,
    settings: Arc<Settings>,
}

/// The MLSx `unique` fact of the file or directory (`dir`) at `key` (without a trailing `/`) in
/// `store_name`: a 64-bit FNV-1a hash, so it is the same from every session and node, and a
/// file and a directory of one name differ.
fn unique_id(store_name: &str, key: &str, dir: bool) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let parts: [&[u8]; 4] = [
        store_name.as_bytes(),
        b"/",
        key.as_bytes(),
        if dir { b"/" } else { b"" },
    ];
    for byte in parts.into_iter().flatten() {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn file_meta(store_name: &str, key: &str, size: u64, modified: Option<SystemTime>) -> Metadata {
    Metadata {
        kind: FileKind::File,
        size,
        modified,
        mode: None,
        unique: Some(unique_id(store_name, key, false)),
    }
}

/// A directory, by its key with or without the trailing `/`.
fn dir_meta(store_name: &str, key: &str) -> Metadata {
    Metadata {
        kind: FileKind::Dir,
        size: 0,
        modified: None,
        mode: None,
        unique: Some(unique_id(store_name, key.trim_end_matches('/'), true)),
    }
}

/// A multipart upload that can be continued: its id, its parts in order without gaps, and the
/// bytes they hold.
#[derive(Debug, Clone)]
pub(crate) struct Resumable {
    pub(crate) upload_id: String,
    pub(crate) parts: Vec<client::Part>,
    pub(crate) stored: u64,
}

impl ObjectStorage {
    /// Keys (relative to this root) of multipart uploads in progress or kept for resuming.
    pub async fn incomplete_uploads(&self) -> Result<Vec<String>, StorageError> {
        let Some(client) = &self.multipart else {
            return Ok(Vec::new());
        };
        let uploads = client.list_uploads(&self.root).await?;
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
            .list_uploads(key)
            .await?
            .into_iter()
            .filter(|u| u.key == key)
            .collect();
        uploads.sort_by_key(|u| u.initiated);
        let Some(upload) = uploads.pop() else {
            return Ok(None);
        };
        let mut parts = client.list_parts(key, &upload.upload_id).await?;
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
            Some(Err(e)) if e.kind == ErrorKind::NotFound => Ok(false),
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
            ErrorKind::NotFound,
            format!("{key}: no such object or prefix"),
        ))
    }

    async fn list(&self, path: &VirtualPath) -> Result<EntryStream, StorageError> {
        if !self.is_dir(path).await? {
            return Err(store_error(
                ErrorKind::NotFound,
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
            Err(e) if e.kind == ErrorKind::InvalidOffset => match self.store.head(&key).await? {
                Some(info) if info.size == offset => Ok(Box::new(tokio::io::empty())),
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
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
                ErrorKind::IsADirectory,
                format!("{path} is a directory"),
            ));
        }
        let parent = path.parent();
        if !self.is_dir(&parent).await? {
            return Err(store_error(
                ErrorKind::NotFound,
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
        Err(store_error(ErrorKind::AlreadyExists, "no free unique name"))
    }

    async fn make_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let key = self.key(path);
        self.store.check_name(path.relative())?;
        if self.store.head(&key).await?.is_some() || self.is_dir(path).await? {
            return Err(store_error(
                ErrorKind::AlreadyExists,
                format!("{path} exists"),
            ));
        }
        let parent = path.parent();
        if !self.is_dir(&parent).await? {
            return Err(store_error(
                ErrorKind::NotFound,
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
                ErrorKind::DirectoryNotEmpty,
                format!("{path} is not empty"),
            ));
        }
        if !marker {
            return Err(store_error(
                ErrorKind::NotFound,
                format!("{path}: no such directory"),
            ));
        }
        self.store.delete(&prefix).await
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let key = self.key(path);
        let resumable = self.resumable(&key).await?;
        if let (Some(r), Some(client)) = (&resumable, &self.multipart) {
            client.abort_multipart(&key, &r.upload_id).await?;
        }
        if self.store.head(&key).await?.is_none() {
            if resumable.is_some() {
                return Ok(());
            }
            let kind = if self.is_dir(path).await? {
                ErrorKind::IsADirectory
            } else {
                ErrorKind::NotFound
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
                ErrorKind::NotFound,
                format!("{from}: no such file or directory"),
            ));
        }
        // A directory is a prefix: every object under it is copied, then deleted.
        let (from_prefix, to_prefix) = (self.dir_prefix(from), self.dir_prefix(to));
        let limit = self.settings.max_rename_objects;
        let Some(keys) = self.all_keys(&from_prefix, limit).await? else {
            warn!(%from, limit, "directory rename refused: too many objects");
            return Err(store_error(
                ErrorKind::Unsupported,
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
        let unsupported = || store_error(ErrorKind::Unsupported, "cannot compose these parts");
        let Some(client) = &self.multipart else {
            return Err(unsupported());
        };
        let mut keys = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let key = self.key(part);
            let Some(info) = self.store.head(&key).await? else {
                return Err(store_error(
                    ErrorKind::NotFound,
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
        let id = client.create_multipart(&target_key).await?;
        let result = async {
            let mut done = Vec::with_capacity(keys.len());
            for (number, (key, size)) in (1u16..).zip(&keys) {
                let etag = client
                    .upload_part_copy(&target_key, &id, number, key, None)
                    .await?;
                done.push(client::Part {
                    number,
                    etag,
                    size: *size,
                });
            }
            client.complete_multipart(&target_key, &id, &done).await
        }
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = client.abort_multipart(&target_key, &id).await;
                // A store that refuses this copy (Garage keeps small objects inline and cannot
                // copy them as parts) leaves the engine to stream the parts instead.
                if e.kind == ErrorKind::Local {
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
            ErrorKind::Unsupported,
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
