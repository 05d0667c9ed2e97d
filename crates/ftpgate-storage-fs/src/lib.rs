//! Local-disk storage for ftpgate.
//!
//! Every access goes through a [`cap_std::fs::Dir`] opened at the user's home, so the kernel
//! (openat2 `RESOLVE_BENEATH` where available) keeps it beneath that directory: `..`, absolute
//! symlinks, dangling links and a directory swapped for a link mid-way all fail instead of
//! escaping.
//!
//! A new file is written without a name (O_TMPFILE) and linked into place when the transfer
//! completes; uploads that replace a file are written to a hidden temporary file in the same
//! directory and renamed into place. So a failed or aborted upload never leaves a truncated
//! file under the real name. APPE and REST+STOR from the end of a file (a resumed
//! upload) add to the existing file in place, and one that does not complete cuts the file back
//! to its old length (or removes it, if APPE made it); REST+STOR from inside a file writes a
//! copy of the first REST bytes plus what arrives, renamed into place on commit. So a refused or
//! interrupted upload leaves every file as it was. With `keep_partial_uploads`, an interrupted
//! upload is kept as it is instead, so the client can resume it with REST.

#![deny(missing_docs)]

mod upload;

use cap_std::fs::MetadataExt as _;
use std::io::{self, Seek, SeekFrom};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use async_trait::async_trait;
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use ftpgate_core::{
    Capabilities, DirEntry, EntryStream, Facts, FileKind, Metadata, ReadStream, Storage,
    StorageError, StorageErrorKind, StorageFactory, Upload, User, VirtualPath, WriteStart,
};
use futures_core::Stream;
use tokio::sync::mpsc;

use upload::FsUpload;
pub use upload::TEMP_PREFIX;

/// When a completed upload is reported complete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// After the data is handed to the kernel (it survives a crash of ftpgate, not of the
    /// machine).
    #[default]
    Normal,
    /// After the file and its directory are fsynced: the 226 reply means the bytes are on disk.
    Strict,
}

/// Opens a [`FsStorage`] at each user's home directory.
#[derive(Debug, Clone, Default)]
pub struct FsStorageFactory {
    /// Keep interrupted uploads under their real name, so they can be resumed.
    pub keep_partial_uploads: bool,
    /// When uploads count as complete.
    pub durability: Durability,
}

impl StorageFactory for FsStorageFactory {
    fn open(&self, user: &User) -> Result<Arc<dyn Storage>, StorageError> {
        let mut storage =
            FsStorage::open(Path::new(&user.home), self.keep_partial_uploads).map_err(io_error)?;
        storage.durability = self.durability;
        Ok(Arc::new(storage))
    }
}

/// A directory on the local disk, served as the root of a user's tree.
#[derive(Debug, Clone)]
pub struct FsStorage {
    root: Arc<Dir>,
    keep_partial_uploads: bool,
    durability: Durability,
}

/// An offset past the end of a file, found in blocking code and carried out as an `io::Error`.
#[derive(Debug)]
struct BeyondEnd;

impl std::fmt::Display for BeyondEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("offset beyond the end of the file")
    }
}

impl std::error::Error for BeyondEnd {}

pub(crate) fn beyond_end() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, BeyondEnd)
}

/// Maps an I/O error to a storage error of the right kind.
pub(crate) fn io_error(e: io::Error) -> StorageError {
    if e.get_ref().is_some_and(|inner| inner.is::<BeyondEnd>()) {
        return StorageError::new(StorageErrorKind::InvalidOffset, e);
    }
    StorageError::from(e)
}

/// The path relative to the root, as cap-std wants it.
fn rel(path: &VirtualPath) -> &str {
    if path.is_root() { "." } else { path.relative() }
}

/// Runs an operation on names alone (open, stat, create) on the calling thread, as nginx
/// does: with the directory entries cached it takes microseconds, less than handing it to the
/// blocking pool and back (S4 measured 40 % more downloads per second this way). Anything that
/// moves file data, walks a directory or frees blocks goes through [`blocking`], except the
/// commit of a small upload (see `upload::COMMIT_INLINE_UP_TO`).
fn on_name<T>(f: impl FnOnce() -> io::Result<T>) -> Result<T, StorageError> {
    f().map_err(io_error)
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, StorageError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(io_error),
        Err(e) => Err(StorageError::new(StorageErrorKind::Local, e)),
    }
}

fn to_metadata(meta: &cap_std::fs::Metadata) -> Metadata {
    let kind = if meta.is_dir() {
        FileKind::Dir
    } else if meta.is_symlink() {
        FileKind::Symlink
    } else {
        FileKind::File
    };
    Metadata {
        kind,
        size: if kind == FileKind::File {
            meta.len()
        } else {
            0
        },
        modified: meta.modified().ok().map(|t| t.into_std()),
        mode: Some(meta.mode() & 0o7777),
        unique: Some(format!("{:x}U{:x}", meta.dev(), meta.ino())),
    }
}

impl FsStorage {
    /// Opens `home` as a root.
    pub fn open(home: &Path, keep_partial_uploads: bool) -> io::Result<FsStorage> {
        let root = Dir::open_ambient_dir(home, ambient_authority())?;
        Ok(FsStorage {
            root: Arc::new(root),
            keep_partial_uploads,
            durability: Durability::Normal,
        })
    }

    /// Opens the parent directory of `path` and returns it with the file name.
    fn parent_of(root: &Dir, path: &VirtualPath) -> io::Result<(Dir, String)> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::from(io::ErrorKind::IsADirectory))?
            .to_string();
        let parent = root.open_dir(rel(&path.parent()))?;
        Ok((parent, name))
    }
}

/// Streams entries produced by a blocking directory walk.
/// Entries from the directory walk, a batch at a time, handed out one by one.
struct ChannelStream {
    rx: mpsc::Receiver<Result<Vec<DirEntry>, StorageError>>,
    ready: std::vec::IntoIter<DirEntry>,
}

impl Stream for ChannelStream {
    type Item = Result<DirEntry, StorageError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(entry) = self.ready.next() {
                return Poll::Ready(Some(Ok(entry)));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(batch))) => self.ready = batch.into_iter(),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Entries per batch sent from the directory walk (one wake-up of the transfer per batch).
const LIST_BATCH: usize = 256;
/// Batches buffered between the walk and the data connection.
const LIST_BATCHES: usize = 2;

fn walk(dir: Dir, tx: mpsc::Sender<Result<Vec<DirEntry>, StorageError>>) {
    let entries = match dir.entries() {
        Ok(entries) => entries,
        Err(e) => {
            let _ = tx.blocking_send(Err(io_error(e)));
            return;
        }
    };
    let mut batch = Vec::with_capacity(LIST_BATCH);
    for entry in entries {
        let item = entry.and_then(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let mut meta = entry.metadata()?;
            if meta.is_symlink() {
                // Follow links that stay inside the root; show the others as links.
                if let Ok(target) = dir.metadata(&name) {
                    meta = target;
                }
            }
            Ok(DirEntry {
                name,
                metadata: to_metadata(&meta),
            })
        });
        match item {
            Ok(entry) if entry.name.starts_with(TEMP_PREFIX) => continue,
            Ok(entry) => batch.push(entry),
            // An entry removed while listing is simply not listed.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                let _ = tx.blocking_send(Ok(std::mem::take(&mut batch)));
                let _ = tx.blocking_send(Err(io_error(e)));
                return;
            }
        }
        if batch.len() >= LIST_BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(LIST_BATCH));
            if tx.blocking_send(Ok(full)).is_err() {
                return; // The transfer was aborted.
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Ok(batch));
    }
}

/// Removes temporary upload files left beneath `home` by a crash: files named with
/// [`TEMP_PREFIX`] and last modified before `older_than` (so uploads running now are spared).
/// Returns how many were removed. Links are not followed.
pub fn remove_leftover_uploads(home: &Path, older_than: SystemTime) -> io::Result<usize> {
    let root = Dir::open_ambient_dir(home, ambient_authority())?;
    let mut removed = 0;
    for_each_file(&root, |dir, entry| {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(TEMP_PREFIX)
            && entry.metadata()?.modified()?.into_std() < older_than
        {
            dir.remove_file(&name)?;
            removed += 1;
        }
        Ok(())
    })?;
    Ok(removed)
}

/// Calls `visit` with every regular file beneath `dir` and the directory holding it (links are
/// not followed).
fn for_each_file(
    dir: &Dir,
    mut visit: impl FnMut(&Dir, &cap_std::fs::DirEntry) -> io::Result<()>,
) -> io::Result<()> {
    let mut pending = vec![dir.try_clone()?];
    while let Some(dir) = pending.pop() {
        for entry in dir.entries()? {
            let entry = entry?;
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                pending.push(entry.open_dir()?);
            } else if file_type.is_file() {
                visit(&dir, &entry)?;
            }
        }
    }
    Ok(())
}

/// Bytes in all regular files beneath `dir` (links are not followed).
fn du(dir: &Dir) -> io::Result<u64> {
    let mut total = 0u64;
    for_each_file(dir, |_, entry| {
        total = total.saturating_add(entry.metadata()?.len());
        Ok(())
    })?;
    Ok(total)
}

#[async_trait]
impl Storage for FsStorage {
    fn backend_name(&self) -> &'static str {
        "fs"
    }

    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata, StorageError> {
        on_name(|| self.root.metadata(rel(path)).map(|m| to_metadata(&m)))
    }

    async fn list(&self, path: &VirtualPath) -> Result<EntryStream, StorageError> {
        let root = self.root.clone();
        let path = path.clone();
        let dir = blocking(move || root.open_dir(rel(&path))).await?;
        let (tx, rx) = mpsc::channel(LIST_BATCHES);
        tokio::task::spawn_blocking(move || walk(dir, tx));
        Ok(Box::pin(ChannelStream {
            rx,
            ready: Vec::new().into_iter(),
        }))
    }

    async fn read(&self, path: &VirtualPath, offset: u64) -> Result<ReadStream, StorageError> {
        let root = self.root.clone();
        let path = path.clone();
        let file = blocking(move || {
            let file = root.open(rel(&path))?;
            let meta = file.metadata()?;
            if meta.is_dir() {
                return Err(io::Error::from(io::ErrorKind::IsADirectory));
            }
            let mut file = file.into_std();
            if offset > meta.len() {
                return Err(beyond_end());
            }
            file.seek(SeekFrom::Start(offset))?;
            Ok(file)
        })
        .await?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn write(
        &self,
        path: &VirtualPath,
        start: WriteStart,
    ) -> Result<Box<dyn Upload>, StorageError> {
        let keep_partial = self.keep_partial_uploads;
        let strict = self.durability == Durability::Strict;
        let begin = move |root: &Dir, path: &VirtualPath| {
            let (parent, name) = FsStorage::parent_of(root, path)?;
            FsUpload::start(parent, name, start, keep_partial, strict)
        };
        let upload = match start {
            // Cutting an existing file short (REST + STOR) frees its blocks: not on a name alone.
            WriteStart::At(_) => {
                let (root, path) = (self.root.clone(), path.clone());
                blocking(move || begin(&root, &path)).await?
            }
            WriteStart::Truncate | WriteStart::Append => on_name(|| begin(&self.root, path))?,
        };
        Ok(Box::new(upload))
    }

    async fn write_unique(
        &self,
        dir: &VirtualPath,
        base: &str,
    ) -> Result<Box<dyn Upload>, StorageError> {
        let strict = self.durability == Durability::Strict;
        let upload = on_name(|| {
            let parent = self.root.open_dir(rel(dir))?;
            FsUpload::start_unique(parent, base, strict)
        })?;
        Ok(Box::new(upload))
    }

    async fn make_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let root = self.root.clone();
        let path = path.clone();
        blocking(move || root.create_dir(rel(&path))).await
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let root = self.root.clone();
        let path = path.clone();
        blocking(move || root.remove_dir(rel(&path))).await
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let root = self.root.clone();
        let path = path.clone();
        blocking(move || root.remove_file(rel(&path))).await
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        let root = self.root.clone();
        let (from, to) = (from.clone(), to.clone());
        blocking(move || root.rename(rel(&from), &root, rel(&to))).await
    }

    async fn used_bytes(&self) -> Result<u64, StorageError> {
        let root = self.root.clone();
        blocking(move || du(&root)).await
    }

    async fn used_files(&self) -> Result<u64, StorageError> {
        let root = self.root.clone();
        blocking(move || {
            let mut count = 0u64;
            for_each_file(&root, |_, _| {
                count += 1;
                Ok(())
            })?;
            Ok(count)
        })
        .await
    }

    async fn set_modified(&self, path: &VirtualPath, time: SystemTime) -> Result<(), StorageError> {
        let root = self.root.clone();
        let path = path.clone();
        blocking(move || {
            let file = match root.open(rel(&path)) {
                Ok(file) => file.into_std(),
                // A directory: `open_dir` handles are O_PATH, which cannot set times.
                Err(e) if e.kind() == io::ErrorKind::IsADirectory => root
                    .open_dir(rel(&path))?
                    .open_with(".", cap_std::fs::OpenOptions::new().read(true))?
                    .into_std(),
                Err(e) => return Err(e),
            };
            file.set_modified(time)
        })
        .await
    }

    async fn read_local(&self, path: &VirtualPath) -> Result<Option<std::fs::File>, StorageError> {
        // The engine's fstat of the open file tells its size and kind.
        on_name(|| Ok(Some(self.root.open(rel(path))?.into_std())))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            available_space: true,
            set_mode: true,
            symlink: true,
            set_modified: true,
            ignore_set_mode: false,
            // Every entry has its times, mode bits, device and inode.
            facts: Facts::ALL,
        }
    }

    async fn available_bytes(&self, dir: &VirtualPath) -> Result<u64, StorageError> {
        let root = self.root.clone();
        let dir = dir.clone();
        blocking(move || {
            let dir = root.open_dir(rel(&dir))?;
            let stat = rustix::fs::fstatvfs(&dir)?;
            Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
        })
        .await
    }

    async fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<(), StorageError> {
        use std::os::unix::fs::PermissionsExt as _;
        // Setuid, setgid and sticky bits are never set for a client (the session refuses
        // them first; this holds for any other caller too).
        if mode & !0o777 != 0 {
            return Err(StorageError::new(
                StorageErrorKind::PermissionDenied,
                "only permission bits (at most 777) can be set",
            ));
        }
        let root = self.root.clone();
        let path = path.clone();
        blocking(move || {
            let permissions =
                cap_std::fs::Permissions::from_std(std::fs::Permissions::from_mode(mode & 0o777));
            root.set_permissions(rel(&path), permissions)
        })
        .await
    }

    async fn symlink(&self, target: &VirtualPath, link: &VirtualPath) -> Result<(), StorageError> {
        // A relative target from the link's directory: the link resolves inside the root
        // wherever the root is mounted (and cap-std refuses any access that would leave it).
        let from = link.parent();
        let target = relative_target(&from, target);
        let root = self.root.clone();
        let link = link.clone();
        blocking(move || root.symlink(target, rel(&link))).await
    }
}

/// The path to `target` relative to the directory `from`, e.g. `../c/d` from `/a/b` to `/a/c/d`.
fn relative_target(from: &VirtualPath, target: &VirtualPath) -> String {
    let from: Vec<&str> = from
        .relative()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let to: Vec<&str> = target
        .relative()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; from.len() - common];
    parts.extend(&to[common..]);
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod symlink_tests {
    use super::*;

    fn p(s: &str) -> VirtualPath {
        VirtualPath::parse_absolute(s).unwrap_or_else(|_| VirtualPath::root())
    }

    #[test]
    fn relative_targets_stay_inside() {
        assert_eq!(relative_target(&p("/a/b"), &p("/a/c/d")), "../c/d");
        assert_eq!(relative_target(&p("/"), &p("/x")), "x");
        assert_eq!(relative_target(&p("/a"), &p("/a")), ".");
        assert_eq!(relative_target(&p("/a/b/c"), &p("/")), "../../..");
    }
}
