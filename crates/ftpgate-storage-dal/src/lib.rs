//! Storage for ftpgate over [Apache OpenDAL](https://opendal.apache.org/) services: WebDAV,
//! a local directory (`fs`), and any other service compiled in (cargo features).
//!
//! These services have real directories (WebDAV collections made with MKCOL, folders on disk),
//! so directories here are the service's own, not prefixes: a directory exists when the service
//! says so, renames are one MOVE (WebDAV) or `rename(2)` (`fs`), whatever their size.
//!
//! What OpenDAL gives and what is added here:
//! - metadata (PROPFIND depth 0 on WebDAV), listings, ranged reads (`read_chunk` bytes per
//!   request), MKCOL, DELETE, MOVE: OpenDAL.
//! - WebDAV listings (`propfind.rs`): one PROPFIND depth 1 parsed as it arrives. The protocol
//!   does not page, and OpenDAL's lister parses the whole response before the first entry.
//! - uploads: to a temporary name moved into place on commit (`upload.rs`); on WebDAV the PUT
//!   is streamed here, because OpenDAL's WebDAV writer holds the whole file in memory.
//! - FTP's rules OpenDAL leaves to the caller: a parent must exist (OpenDAL's WebDAV makes
//!   missing parents on write and rename), a directory is removed only when empty (a WebDAV
//!   DELETE removes a collection with everything in it), a missing file is NotFound (OpenDAL
//!   deletes are idempotent).

#![deny(missing_docs)]

mod config;
mod propfind;
mod upload;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use ftpgate_core::{
    Capabilities, DirEntry, EntryStream, Facts, FileKind, Metadata, ReadStream, Storage,
    StorageError, StorageErrorKind, StorageFactory, Upload, User, VirtualPath, WriteStart,
};
use futures_util::{StreamExt as _, TryStreamExt as _};
use opendal::{EntryMode, Operator};

pub use config::{DalConfig, DalService, WebdavAuth, compiled_services};
use upload::{DalUpload, PutTarget, TEMP_PREFIX};

/// The [`StorageError`] of an OpenDAL error during `what`.
pub(crate) fn dal_error(what: &str, e: opendal::Error) -> StorageError {
    use opendal::ErrorKind as K;
    let kind = match e.kind() {
        K::NotFound => StorageErrorKind::NotFound,
        K::PermissionDenied => StorageErrorKind::PermissionDenied,
        K::AlreadyExists => StorageErrorKind::AlreadyExists,
        K::IsADirectory => StorageErrorKind::IsADirectory,
        K::NotADirectory => StorageErrorKind::NotADirectory,
        K::RangeNotSatisfied => StorageErrorKind::InvalidOffset,
        K::ConditionNotMatch | K::Conflict => StorageErrorKind::Busy,
        K::Unsupported => StorageErrorKind::Unsupported,
        K::RateLimited => StorageErrorKind::Transient,
        _ if e.is_temporary() => StorageErrorKind::Transient,
        // OpenDAL's HTTP services report a refused login (401) as Unexpected; its context
        // keeps the response's status.
        _ if e.to_string().contains("status: 401") => StorageErrorKind::PermissionDenied,
        _ => StorageErrorKind::Local,
    };
    StorageError::new(kind, format!("{what}: {e}"))
}

fn error(kind: StorageErrorKind, what: String) -> StorageError {
    StorageError::new(kind, what)
}

/// Opens a [`DalStorage`] at each user's home: a folder of the service (relative to its root;
/// `/` or empty for the root itself).
#[derive(Debug, Clone)]
pub struct DalStorageFactory {
    op: Operator,
    put: Option<PutTarget>,
    read_chunk: usize,
    ignore_set_mode: bool,
}

impl DalStorageFactory {
    /// The factory of `config`; makes no request.
    pub fn new(config: &DalConfig) -> Result<DalStorageFactory, StorageError> {
        let http = config::http_client(config.request_timeout)?;
        let op = config::operator(config, &http)?;
        let can = op.info().capability();
        if !(can.rename && can.list && can.create_dir) {
            return Err(error(
                StorageErrorKind::Unsupported,
                format!(
                    "OpenDAL service {} cannot rename, list and make directories, which uploads \
                     (a temporary file renamed into place) and directories need",
                    op.info().scheme()
                ),
            ));
        }
        let put = match &config.service {
            DalService::Webdav {
                endpoint,
                root,
                auth,
            } => {
                let mut base = url::Url::parse(endpoint).map_err(|e| {
                    error(
                        StorageErrorKind::Local,
                        format!("WebDAV endpoint {endpoint:?}: {e}"),
                    )
                })?;
                if base.cannot_be_a_base() {
                    return Err(error(
                        StorageErrorKind::Local,
                        format!("WebDAV endpoint {endpoint:?} is not an http(s) URL"),
                    ));
                }
                if let Ok(mut segments) = base.path_segments_mut() {
                    segments.pop_if_empty();
                    segments.extend(root.split('/').filter(|s| !s.is_empty()));
                }
                Some(PutTarget {
                    http,
                    base,
                    auth: auth.clone(),
                })
            }
            DalService::Other { .. } => None,
        };
        Ok(DalStorageFactory {
            op,
            put,
            read_chunk: config.read_chunk.max(64 * 1024),
            ignore_set_mode: false,
        })
    }

    /// With `true`, SITE CHMOD is answered 200 and sets nothing (these services keep no
    /// permission bits), for clients that set modes after every upload.
    pub fn ignore_set_mode(mut self, ignore: bool) -> Self {
        self.ignore_set_mode = ignore;
        self
    }

    /// The storage rooted at `home` (which must exist).
    pub fn storage_at(&self, home: &str) -> DalStorage {
        let home = home.trim_matches('/');
        DalStorage {
            op: self.op.clone(),
            put: self.put.clone(),
            home: if home.is_empty() {
                String::new()
            } else {
                format!("{home}/")
            },
            read_chunk: self.read_chunk,
            ignore_set_mode: self.ignore_set_mode,
        }
    }

    /// The operator, for tests and tools (paths relative to the service's root).
    pub fn operator(&self) -> &Operator {
        &self.op
    }
}

impl StorageFactory for DalStorageFactory {
    fn open(&self, user: &User) -> Result<Arc<dyn Storage>, StorageError> {
        Ok(Arc::new(self.storage_at(&user.home)))
    }
}

/// One user's view of an OpenDAL service, rooted at their home.
#[derive(Debug, Clone)]
pub struct DalStorage {
    op: Operator,
    /// Set for WebDAV: uploads are streamed PUTs.
    put: Option<PutTarget>,
    /// `""` or `"a/b/"`.
    home: String,
    read_chunk: usize,
    ignore_set_mode: bool,
}

fn metadata_of(meta: &opendal::Metadata) -> Metadata {
    let dir = meta.mode() == EntryMode::DIR;
    Metadata {
        kind: if dir { FileKind::Dir } else { FileKind::File },
        size: if dir { 0 } else { meta.content_length() },
        modified: meta.last_modified().map(SystemTime::from),
        mode: None,
        unique: None,
    }
}

impl DalStorage {
    /// The service's path of a file (`a/b`, or `""` for the root).
    fn key(&self, path: &VirtualPath) -> String {
        format!("{}{}", self.home, path.relative())
            .trim_end_matches('/')
            .to_string()
    }

    /// The service's path of a directory (`a/b/`, or `/` for the root).
    fn dir_key(&self, path: &VirtualPath) -> String {
        let key = self.key(path);
        if key.is_empty() {
            "/".to_string()
        } else {
            format!("{key}/")
        }
    }

    /// Metadata, or `None` when there is nothing at `path`.
    async fn find(&self, path: &VirtualPath) -> Result<Option<Metadata>, StorageError> {
        let key = self.key(path);
        if !key.is_empty() {
            match self.op.stat(&key).await {
                Ok(meta) => return Ok(Some(metadata_of(&meta))),
                Err(e)
                    if matches!(
                        e.kind(),
                        opendal::ErrorKind::NotFound
                            | opendal::ErrorKind::NotADirectory
                            | opendal::ErrorKind::IsADirectory
                    ) => {}
                Err(e) => return Err(dal_error("stat", e)),
            }
        }
        match self.op.stat(&self.dir_key(path)).await {
            Ok(meta) if meta.mode() == EntryMode::DIR => Ok(Some(metadata_of(&meta))),
            Ok(_) => Ok(None),
            Err(e)
                if matches!(
                    e.kind(),
                    opendal::ErrorKind::NotFound | opendal::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(dal_error("stat", e)),
        }
    }

    /// Fails unless `path`'s parent is a directory.
    async fn parent_is_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let parent = path.parent();
        match self.find(&parent).await? {
            Some(meta) if meta.kind == FileKind::Dir => Ok(()),
            Some(_) => Err(error(
                StorageErrorKind::NotADirectory,
                format!("{}: not a directory", parent.as_str()),
            )),
            None => Err(error(
                StorageErrorKind::NotFound,
                format!("{}: no such directory", parent.as_str()),
            )),
        }
    }

    /// Whether a directory has any entry (the service's own temporary files included).
    async fn has_entries(&self, path: &VirtualPath) -> Result<bool, StorageError> {
        let dir = self.dir_key(path);
        let mut lister = self
            .op
            .lister_with(&dir)
            .limit(8)
            .await
            .map_err(|e| dal_error("list", e))?;
        while let Some(entry) = lister.next().await {
            let entry = entry.map_err(|e| dal_error("list", e))?;
            if entry.path().trim_start_matches('/') != dir.trim_start_matches('/') {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Refuses names OpenDAL would change: it trims whitespace at the ends of a path, so a name
/// beginning or ending with a space would be stored under another name.
fn check_name(path: &VirtualPath) -> Result<(), StorageError> {
    for name in path.components() {
        if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
            return Err(error(
                StorageErrorKind::InvalidName,
                format!("{name:?}: names may not begin or end with a space here"),
            ));
        }
    }
    Ok(())
}

fn not_found(path: &VirtualPath) -> StorageError {
    error(
        StorageErrorKind::NotFound,
        format!("{}: not found", path.as_str()),
    )
}

#[async_trait]
impl Storage for DalStorage {
    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata, StorageError> {
        self.find(path).await?.ok_or_else(|| not_found(path))
    }

    async fn list(&self, path: &VirtualPath) -> Result<EntryStream, StorageError> {
        match self.find(path).await? {
            Some(meta) if meta.kind == FileKind::Dir => {}
            Some(_) => {
                return Err(error(
                    StorageErrorKind::NotADirectory,
                    format!("{}: not a directory", path.as_str()),
                ));
            }
            None => return Err(not_found(path)),
        }
        let dir = self.dir_key(path);
        if let Some(put) = &self.put {
            return propfind::list(put, &dir).await;
        }
        let lister = self
            .op
            .lister(&dir)
            .await
            .map_err(|e| dal_error("list", e))?;
        let own = dir.trim_start_matches('/').to_string();
        let entries = lister
            .map_err(|e| dal_error("list", e))
            .try_filter_map(move |entry| {
                let own = own.clone();
                async move {
                    let (entry_path, meta) = entry.into_parts();
                    let entry_path = entry_path.trim_start_matches('/');
                    let name = entry_path.trim_end_matches('/');
                    let name = name.rsplit('/').next().unwrap_or(name);
                    if entry_path == own || name.is_empty() || name.starts_with(TEMP_PREFIX) {
                        return Ok(None);
                    }
                    Ok(Some(DirEntry {
                        name: name.to_string(),
                        metadata: metadata_of(&meta),
                    }))
                }
            });
        Ok(Box::pin(entries))
    }

    async fn read(&self, path: &VirtualPath, offset: u64) -> Result<ReadStream, StorageError> {
        let meta = self.metadata(path).await?;
        if meta.kind == FileKind::Dir {
            return Err(error(
                StorageErrorKind::IsADirectory,
                format!("{}: is a directory", path.as_str()),
            ));
        }
        if offset > meta.size {
            return Err(error(
                StorageErrorKind::InvalidOffset,
                format!(
                    "{}: offset {offset} beyond the end ({} bytes)",
                    path.as_str(),
                    meta.size
                ),
            ));
        }
        let key = self.key(path);
        let reader = self
            .op
            .reader_with(&key)
            .chunk(self.read_chunk)
            .await
            .map_err(|e| dal_error("read", e))?;
        let body = reader
            .into_bytes_stream(offset..meta.size)
            .await
            .map_err(|e| dal_error("read", e))?;
        Ok(Box::new(tokio_util::io::StreamReader::new(Box::pin(body))))
    }

    async fn write(
        &self,
        path: &VirtualPath,
        start: WriteStart,
    ) -> Result<Box<dyn Upload>, StorageError> {
        if path.is_root() {
            return Err(error(
                StorageErrorKind::IsADirectory,
                "/: is a directory".into(),
            ));
        }
        check_name(path)?;
        self.parent_is_dir(path).await?;
        let existing = self.find(path).await?;
        if existing.as_ref().is_some_and(|m| m.kind == FileKind::Dir) {
            return Err(error(
                StorageErrorKind::IsADirectory,
                format!("{}: is a directory", path.as_str()),
            ));
        }
        let size = existing.map_or(0, |m| m.size);
        let keep = match start {
            WriteStart::Truncate => 0,
            WriteStart::Append => size,
            WriteStart::At(offset) if offset <= size => offset,
            WriteStart::At(offset) => {
                return Err(error(
                    StorageErrorKind::InvalidOffset,
                    format!(
                        "{}: offset {offset} beyond the end ({size} bytes)",
                        path.as_str()
                    ),
                ));
            }
        };
        let upload = DalUpload::start(
            &self.op,
            self.put.as_ref(),
            self.key(path),
            keep,
            self.read_chunk,
        )
        .await?;
        Ok(Box::new(upload))
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
            if self.find(&path).await?.is_none() {
                return self.write(&path, WriteStart::Truncate).await;
            }
        }
        Err(error(
            StorageErrorKind::AlreadyExists,
            format!("{}: no free name for {base:?}", dir.as_str()),
        ))
    }

    async fn make_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        check_name(path)?;
        if self.find(path).await?.is_some() {
            return Err(error(
                StorageErrorKind::AlreadyExists,
                format!("{}: already exists", path.as_str()),
            ));
        }
        self.parent_is_dir(path).await?;
        self.op
            .create_dir(&self.dir_key(path))
            .await
            .map_err(|e| dal_error("make directory", e))
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        match self.find(path).await? {
            Some(meta) if meta.kind == FileKind::Dir => {}
            Some(_) => {
                return Err(error(
                    StorageErrorKind::NotADirectory,
                    format!("{}: not a directory", path.as_str()),
                ));
            }
            None => return Err(not_found(path)),
        }
        if path.is_root() {
            return Err(error(
                StorageErrorKind::PermissionDenied,
                "/: the home cannot be removed".into(),
            ));
        }
        // A WebDAV DELETE of a collection removes everything in it.
        if self.has_entries(path).await? {
            return Err(error(
                StorageErrorKind::DirectoryNotEmpty,
                format!("{}: directory not empty", path.as_str()),
            ));
        }
        self.op
            .delete(&self.dir_key(path))
            .await
            .map_err(|e| dal_error("remove directory", e))
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<(), StorageError> {
        match self.find(path).await? {
            Some(meta) if meta.kind == FileKind::Dir => Err(error(
                StorageErrorKind::IsADirectory,
                format!("{}: is a directory", path.as_str()),
            )),
            Some(_) => self
                .op
                .delete(&self.key(path))
                .await
                .map_err(|e| dal_error("delete", e)),
            None => Err(not_found(path)),
        }
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        let Some(source) = self.find(from).await? else {
            return Err(not_found(from));
        };
        if from.is_root() || to.is_root() || to.starts_with(from) {
            return Err(error(
                StorageErrorKind::PermissionDenied,
                format!("cannot move {} to {}", from.as_str(), to.as_str()),
            ));
        }
        check_name(to)?;
        self.parent_is_dir(to).await?;
        if let Some(target) = self.find(to).await? {
            if target.kind == FileKind::Dir || source.kind == FileKind::Dir {
                return Err(error(
                    StorageErrorKind::AlreadyExists,
                    format!("{}: already exists", to.as_str()),
                ));
            }
        }
        self.op
            .rename(&self.key(from), &self.key(to))
            .await
            .map_err(|e| dal_error("rename", e))
    }

    async fn set_modified(
        &self,
        path: &VirtualPath,
        _time: SystemTime,
    ) -> Result<(), StorageError> {
        Err(error(
            StorageErrorKind::Unsupported,
            format!(
                "{}: this storage keeps its own modification times",
                path.as_str()
            ),
        ))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ignore_set_mode: self.ignore_set_mode,
            facts: Facts {
                modify: true,
                ..Facts::BASIC
            },
            ..Capabilities::none()
        }
    }
}
