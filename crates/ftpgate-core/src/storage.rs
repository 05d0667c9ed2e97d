//! The `Storage` trait: what a backend must do to serve files over FTP.

use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use futures_core::Stream;
use tokio::io::AsyncRead;

use ftpgate_proto::VirtualPath;
use ftpgate_proto::backend::{
    Capabilities, DirEntry, Facts, HashAlgorithm, Metadata, StorageErrorKind, WriteStart,
};

use crate::auth::User;

/// A storage failure: what kind (which decides the FTP reply) and the cause (for the log).
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {source}")]
pub struct StorageError {
    /// The kind, which maps to the reply.
    pub kind: StorageErrorKind,
    /// The underlying error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl StorageError {
    /// An error of `kind` caused by `source`.
    pub fn new(
        kind: StorageErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StorageError {
            kind,
            source: source.into(),
        }
    }
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        StorageError {
            kind: error_kind_of(&e),
            source: Box::new(e),
        }
    }
}

/// The kind of an I/O error, for backends built on files and sockets.
pub fn error_kind_of(e: &std::io::Error) -> StorageErrorKind {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => StorageErrorKind::NotFound,
        K::PermissionDenied => StorageErrorKind::PermissionDenied,
        K::AlreadyExists => StorageErrorKind::AlreadyExists,
        K::NotADirectory => StorageErrorKind::NotADirectory,
        K::IsADirectory => StorageErrorKind::IsADirectory,
        K::DirectoryNotEmpty => StorageErrorKind::DirectoryNotEmpty,
        K::StorageFull => StorageErrorKind::InsufficientStorage,
        K::QuotaExceeded | K::FileTooLarge => StorageErrorKind::ExceededStorage,
        K::InvalidFilename => StorageErrorKind::InvalidName,
        K::ResourceBusy | K::ExecutableFileBusy => StorageErrorKind::Busy,
        K::Interrupted | K::WouldBlock | K::TimedOut => StorageErrorKind::Transient,
        _ => match e.raw_os_error() {
            // ELOOP: a symlink loop, or a link that would lead out of the root.
            Some(40) => StorageErrorKind::PermissionDenied,
            // ENAMETOOLONG
            Some(36) => StorageErrorKind::InvalidName,
            _ => StorageErrorKind::Local,
        },
    }
}

/// A directory listing, entry by entry.
pub type EntryStream = Pin<Box<dyn Stream<Item = Result<DirEntry, StorageError>> + Send>>;

/// A file being read.
pub type ReadStream = Box<dyn AsyncRead + Send + Unpin>;

/// A file being written. Bytes written are not visible under the file's name until
/// [`Upload::commit`]; dropping an upload without committing it aborts it.
#[async_trait]
pub trait Upload: Send {
    /// Called once the client has been told to send (the 150 reply is on its way), before the
    /// first bytes are read: work a backend can do while they travel (creating the file), not
    /// needed to accept or refuse the upload. Whatever can refuse it belongs in
    /// [`Storage::write`], so that the refusal comes before 150. The default does nothing; a
    /// backend that does something here must also do it when [`Upload::write`] or
    /// [`Upload::commit`] comes first.
    async fn started(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Appends bytes. A backend may hold them (up to a bounded buffer) until enough arrive,
    /// and should make the caller wait rather than buffer without limit.
    async fn write(&mut self, data: &[u8]) -> Result<(), StorageError>;

    /// Makes the upload visible as the complete file; returns the file's size.
    async fn commit(self: Box<Self>) -> Result<u64, StorageError>;

    /// Discards the upload, leaving any previous version of the file as it was (or, where the
    /// backend keeps partial uploads for resuming, keeping what arrived).
    async fn abort(self: Box<Self>);

    /// The name the upload will have, for STOU.
    fn name(&self) -> Option<&str> {
        None
    }

    /// The local file the upload goes to, for a backend on local disk, so the engine can
    /// move bytes from a plain data connection straight into it (no TLS, TYPE I, MODE S).
    /// Everything written so far is in the file when this returns, the returned descriptor
    /// shares its position, and the engine calls [`Upload::commit`] or [`Upload::abort`]
    /// afterwards as usual. `None` (the default): bytes go through [`Upload::write`].
    async fn local_file(&mut self) -> Result<Option<std::fs::File>, StorageError> {
        Ok(None)
    }
}

/// A file system as FTP sees it, rooted at one user's home.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Metadata of a file or directory.
    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata, StorageError>;

    /// The entries of a directory, streamed; memory must not grow with the directory's size.
    async fn list(&self, path: &VirtualPath) -> Result<EntryStream, StorageError>;

    /// Opens a file for reading from `offset`.
    async fn read(&self, path: &VirtualPath, offset: u64) -> Result<ReadStream, StorageError>;

    /// Opens a file for reading from `offset` and tells its metadata, as RETR needs both. The
    /// default asks [`Storage::metadata`], refuses a directory (`IsADirectory`) and an offset
    /// past the end (`InvalidOffset`), then calls [`Storage::read`]. A store whose read itself
    /// tells the size (an object store's GET) overrides it to save a request per download.
    async fn read_with_metadata(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> Result<(Metadata, ReadStream), StorageError> {
        let metadata = self.metadata(path).await?;
        if metadata.is_dir() {
            return Err(StorageError::new(
                StorageErrorKind::IsADirectory,
                format!("{path} is a directory"),
            ));
        }
        if offset > metadata.size {
            return Err(StorageError::new(
                StorageErrorKind::InvalidOffset,
                format!("offset {offset} is past the end of {path}"),
            ));
        }
        let stream = self.read(path, offset).await?;
        Ok((metadata, stream))
    }

    /// Starts an upload to `path`.
    async fn write(
        &self,
        path: &VirtualPath,
        start: WriteStart,
    ) -> Result<Box<dyn Upload>, StorageError>;

    /// Starts an upload under a new name in `dir` derived from `base` (STOU).
    async fn write_unique(
        &self,
        dir: &VirtualPath,
        base: &str,
    ) -> Result<Box<dyn Upload>, StorageError>;

    /// Creates a directory.
    async fn make_dir(&self, path: &VirtualPath) -> Result<(), StorageError>;

    /// Removes an empty directory.
    async fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError>;

    /// Removes a file.
    async fn remove_file(&self, path: &VirtualPath) -> Result<(), StorageError>;

    /// Renames a file or directory.
    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError>;

    /// Sets a file's modification time.
    async fn set_modified(&self, path: &VirtualPath, time: SystemTime) -> Result<(), StorageError>;

    /// Bytes used by all files under the root, for quotas. Backends that cannot tell keep
    /// this default, and quotas are then counted from zero.
    async fn used_bytes(&self) -> Result<u64, StorageError> {
        Err(StorageError::new(
            StorageErrorKind::Unsupported,
            "this storage cannot measure its usage",
        ))
    }

    /// Files under the root, for quotas by number of files. Backends that cannot tell keep
    /// this default, and the count then starts from zero.
    async fn used_files(&self) -> Result<u64, StorageError> {
        Err(StorageError::new(
            StorageErrorKind::Unsupported,
            "this storage cannot count its files",
        ))
    }

    /// Which optional calls below this storage answers, so that commands needing a missing
    /// one are refused up front and left out of FEAT. The default claims modification times
    /// (the required [`Storage::set_modified`], and a `modify` fact for every entry) and
    /// nothing else.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            set_modified: true,
            facts: Facts {
                modify: true,
                ..Facts::BASIC
            },
            ..Capabilities::none()
        }
    }

    /// A short name of the kind of storage (`fs`, `s3`, `azure`…), for logs and events.
    /// The default, `custom`, suits a backend that has no better name.
    fn backend_name(&self) -> &'static str {
        "custom"
    }

    /// Bytes available for new files in `dir` (AVBL, and ALLO's check).
    async fn available_bytes(&self, dir: &VirtualPath) -> Result<u64, StorageError> {
        let _ = dir;
        Err(unsupported("free space"))
    }

    /// Sets permission bits (SITE CHMOD, MFF UNIX.mode); the session passes at most 0o777.
    async fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<(), StorageError> {
        let _ = (path, mode);
        Err(unsupported("permission bits"))
    }

    /// Makes a symbolic link at `link` pointing to `target`; both are inside the root, and the
    /// link must resolve inside it too.
    async fn symlink(&self, target: &VirtualPath, link: &VirtualPath) -> Result<(), StorageError> {
        let _ = (target, link);
        Err(unsupported("symbolic links"))
    }

    /// The file as a local file descriptor, for zero-copy sending (sendfile(2)) when nothing
    /// must transform the bytes (TYPE I, MODE S, no TLS). `None` (the default): the engine uses
    /// [`Storage::read`]. The engine sends from `offset` (the file's position does not matter)
    /// and learns the size and kind from the open file, so a directory may be returned too.
    async fn read_local(&self, path: &VirtualPath) -> Result<Option<std::fs::File>, StorageError> {
        let _ = path;
        Ok(None)
    }

    /// Makes `target` the concatenation of `parts` in the store itself (an object store's
    /// multipart compose), if it can; the engine removes the parts afterwards. The default
    /// answers Unsupported and the engine streams the parts into an upload instead.
    async fn combine(
        &self,
        target: &VirtualPath,
        parts: &[VirtualPath],
    ) -> Result<(), StorageError> {
        let _ = (target, parts);
        Err(unsupported("combining in place"))
    }

    /// A digest of the whole file that the store already keeps (an object's checksum), so
    /// HASH need not read the file. `None` (the default): the engine reads and hashes it.
    async fn stored_digest(
        &self,
        path: &VirtualPath,
        algorithm: HashAlgorithm,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let _ = (path, algorithm);
        Ok(None)
    }
}

fn unsupported(what: &str) -> StorageError {
    StorageError::new(
        StorageErrorKind::Unsupported,
        format!("this storage does not support {what}"),
    )
}

/// Makes the storage for a user who just logged in (for example a directory rooted at the
/// user's home).
pub trait StorageFactory: Send + Sync + 'static {
    /// The storage rooted at `user`'s home.
    fn open(&self, user: &User) -> Result<Arc<dyn Storage>, StorageError>;
}
