//! Uploads to local disk: a file without a name linked into place on commit (a new file), or a
//! temporary file renamed into place (one that replaces a file).

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use cap_std::fs::{Dir, OpenOptions};
use ftpgate_core::{StorageError, Upload, WriteStart};
use rand::Rng;

use crate::{blocking, io_error, on_name};

/// Names of temporary upload files start with this; listings hide them, and a leftover one
/// (after a crash) is recognisable by it.
pub const TEMP_PREFIX: &str = ".ftpgate-upload.";

fn temp_name() -> String {
    format!("{TEMP_PREFIX}{:016x}", rand::thread_rng().r#gen::<u64>())
}

/// Where the bytes go until commit.
#[derive(Debug)]
enum Target {
    /// A file without a name (O_TMPFILE) in the directory, linked to the final name on commit:
    /// for a new file (no name there when the upload began). It makes one directory entry where
    /// a named temporary makes three (create, then rename: remove and add), so a small upload
    /// costs a quarter less; an upload that does not complete leaves nothing to remove, even
    /// after a crash (the kernel frees the file).
    Unnamed,
    /// A new file not made yet: made once the client is sending (`FsUpload::create`), as
    /// `Unnamed`, or `Temp` where the file system has no O_TMPFILE. Making it is the costliest
    /// step of a small upload (the file system records the unnamed file so that a crash frees
    /// it); done before 150 it delayed the client, done after it overlaps the client's sending.
    Deferred,
    /// A temporary file, renamed to the final name on commit. `reserved` marks a final name
    /// created empty by STOU to claim it, to be removed on abort.
    Temp { temp: String, reserved: bool },
    /// The final file itself (APPE, and REST+STOR from the end of the file), which an upload
    /// that does not complete puts back as it was.
    InPlace { previous: Previous },
    /// Committed, or discarded: nothing left to undo.
    Settled,
}

/// What an in-place upload's file was before it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Previous {
    /// There was no file (APPE created it).
    Absent,
    /// The file had this many bytes.
    Length(u64),
}

/// Bytes gathered before they are written to the file in one blocking call. A small upload
/// is written at commit, in the same call that renames it into place.
const WRITE_AT: usize = 256 * 1024;

/// The largest upload committed on the calling thread: written, stat'ed and renamed into place
/// there, as the create that began it was, instead of a round trip to the blocking pool (a
/// wake-up of a pool thread and one back, which cost a 4 KiB STOR a fifth of its server time).
/// A few pages are copied into the page cache; only a system already past its dirty-page limit
/// would make that write wait. Larger uploads, and strict durability (fsync), use the pool.
const COMMIT_INLINE_UP_TO: usize = 64 * 1024;

/// A write running on the blocking pool: it gives back the file, its emptied buffer and how
/// it went.
type InFlight = tokio::task::JoinHandle<(std::fs::File, Vec<u8>, io::Result<()>)>;

/// An upload in progress. Writes are gathered in `pending` and written `WRITE_AT` bytes at a
/// time on the blocking pool, one write in flight while the next bytes arrive.
#[derive(Debug)]
pub(crate) struct FsUpload {
    /// The file; `None` while a write is in flight.
    file: Option<std::fs::File>,
    pending: Vec<u8>,
    /// The buffer the last finished write gave back, reused for the next.
    spare: Vec<u8>,
    in_flight: Option<InFlight>,
    /// Whether bytes were handed to the blocking pool before commit.
    wrote_before: bool,
    dir: Option<Dir>,
    name: String,
    target: Target,
    keep_partial: bool,
    /// fsync the file and its directory before reporting the upload complete.
    strict: bool,
}

/// Whether files without a name can be given one: `/proc/self/fd` is there for kernels that
/// refuse `linkat(AT_EMPTY_PATH)` to an unprivileged process (before Linux 6.10). Checked once.
fn can_link_unnamed() -> bool {
    static PROC_FD: OnceLock<bool> = OnceLock::new();
    *PROC_FD.get_or_init(|| std::path::Path::new("/proc/self/fd").is_dir())
}

/// Set once the kernel refused `linkat(AT_EMPTY_PATH)`: links then go through `/proc/self/fd`.
static EMPTY_PATH_REFUSED: AtomicBool = AtomicBool::new(false);

/// Opens a file without a name in `dir`, or fails where the file system or kernel has no
/// O_TMPFILE (the caller then uses a named temporary).
fn create_unnamed(dir: &Dir) -> io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    if !can_link_unnamed() {
        return Err(io::ErrorKind::Unsupported.into());
    }
    let flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, ".", flags, Mode::from_raw_mode(0o666))?;
    Ok(std::fs::File::from(fd))
}

/// Links `file` as `name` in `dir`: by the descriptor itself (`AT_EMPTY_PATH`, allowed to any
/// process for a file it opened since Linux 6.10), else by its `/proc/self/fd` path.
fn link_as(file: &std::fs::File, dir: &Dir, name: &str) -> rustix::io::Result<()> {
    use rustix::fs::{AtFlags, CWD, linkat};
    use rustix::io::Errno;
    if !EMPTY_PATH_REFUSED.load(Ordering::Relaxed) {
        match linkat(file, "", dir, name, AtFlags::EMPTY_PATH) {
            Err(Errno::NOENT | Errno::PERM | Errno::INVAL) => {
                EMPTY_PATH_REFUSED.store(true, Ordering::Relaxed);
            }
            done => return done,
        }
    }
    let own = format!("/proc/self/fd/{}", file.as_raw_fd());
    linkat(CWD, own.as_str(), dir, name, AtFlags::SYMLINK_FOLLOW)
}

/// Gives the unnamed `file` the name `name` in `dir`. A file that took the name since the upload
/// began is replaced, atomically, as with a named temporary: the file is linked under a
/// temporary name and renamed over it.
fn link_unnamed(file: &std::fs::File, dir: &Dir, name: &str) -> io::Result<()> {
    use rustix::io::Errno;
    match link_as(file, dir, name) {
        Ok(()) => return Ok(()),
        Err(Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    for _ in 0..16 {
        let temp = temp_name();
        match link_as(file, dir, &temp) {
            Ok(()) => {
                return dir.rename(&temp, dir, name).inspect_err(|_| {
                    let _ = dir.remove_file(&temp);
                });
            }
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary name",
    ))
}

/// Refuses, before the client is told to send, a new file in a directory this process may not
/// write to (permissions, a read-only mount): the file itself is made later (`Deferred`). Any
/// other answer (a kernel without `faccessat2`) leaves the refusal to the create.
fn may_create_in(dir: &Dir) -> io::Result<()> {
    use rustix::fs::{Access, AtFlags, accessat};
    use rustix::io::Errno;
    match accessat(
        dir,
        ".",
        Access::WRITE_OK | Access::EXEC_OK,
        AtFlags::EACCESS,
    ) {
        Err(e @ (Errno::ACCESS | Errno::ROFS)) => Err(e.into()),
        _ => Ok(()),
    }
}

fn create_temp(dir: &Dir) -> io::Result<(String, std::fs::File)> {
    for _ in 0..16 {
        let temp = temp_name();
        match dir.open_with(&temp, OpenOptions::new().write(true).create_new(true)) {
            Ok(file) => return Ok((temp, file.into_std())),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary name",
    ))
}

impl FsUpload {
    pub(crate) fn start(
        dir: Dir,
        name: String,
        start: WriteStart,
        keep_partial: bool,
        strict: bool,
    ) -> io::Result<FsUpload> {
        // The name itself, not what a symlink there points to: the upload replaces it.
        // (One stat of the entry, where following a link opens and closes it.)
        let existed = match dir.symlink_metadata(&name) {
            Ok(meta) if meta.is_dir() => return Err(io::Error::from(io::ErrorKind::IsADirectory)),
            Ok(_) => true,
            Err(_) => false,
        };
        let (file, target) = match start {
            WriteStart::Truncate if !existed && !keep_partial => {
                may_create_in(&dir)?;
                (None, Target::Deferred)
            }
            WriteStart::Truncate => {
                let (temp, file) = create_temp(&dir)?;
                (
                    Some(file),
                    Target::Temp {
                        temp,
                        reserved: false,
                    },
                )
            }
            WriteStart::Append => {
                let file = dir.open_with(&name, OpenOptions::new().append(true).create(true))?;
                let file = file.into_std();
                let previous = if existed {
                    Previous::Length(file.metadata()?.len())
                } else {
                    Previous::Absent
                };
                (Some(file), Target::InPlace { previous })
            }
            WriteStart::At(offset) => {
                let file = dir.open_with(&name, OpenOptions::new().write(true).read(true))?;
                let mut file = file.into_std();
                let meta = file.metadata()?;
                let length = meta.len();
                if offset > length {
                    return Err(crate::beyond_end());
                }
                if offset == length {
                    // Resuming at the end (the usual REST): bytes are added, as with APPE.
                    file.seek(SeekFrom::Start(offset))?;
                    let previous = Previous::Length(length);
                    (Some(file), Target::InPlace { previous })
                } else {
                    // Rewriting from inside the file: the new file is the first `offset` bytes
                    // (copied in the kernel, shared extents where the file system can) and
                    // what arrives, renamed into place on commit, so a failed upload leaves
                    // the old file whole.
                    let (temp, mut copy) = create_temp(&dir)?;
                    let made = std::io::copy(&mut (&file).take(offset), &mut copy).and_then(|n| {
                        if n == offset {
                            copy.set_permissions(meta.permissions())
                        } else {
                            Err(io::Error::from(io::ErrorKind::UnexpectedEof))
                        }
                    });
                    if let Err(e) = made {
                        let _ = dir.remove_file(&temp);
                        return Err(e);
                    }
                    let target = Target::Temp {
                        temp,
                        reserved: false,
                    };
                    (Some(copy), target)
                }
            }
        };
        Ok(FsUpload::new(file, dir, name, target, keep_partial, strict))
    }

    fn new(
        file: Option<std::fs::File>,
        dir: Dir,
        name: String,
        target: Target,
        keep_partial: bool,
        strict: bool,
    ) -> FsUpload {
        FsUpload {
            file,
            pending: Vec::new(),
            spare: Vec::new(),
            in_flight: None,
            wrote_before: false,
            dir: Some(dir),
            name,
            target,
            keep_partial,
            strict,
        }
    }

    pub(crate) fn start_unique(dir: Dir, base: &str, strict: bool) -> io::Result<FsUpload> {
        for n in 0..1000u32 {
            let name = if n == 0 {
                base.to_string()
            } else {
                format!("{base}.{n}")
            };
            match dir.open_with(&name, OpenOptions::new().write(true).create_new(true)) {
                Ok(_) => {
                    let (temp, file) = create_temp(&dir)?;
                    let target = Target::Temp {
                        temp,
                        reserved: true,
                    };
                    return Ok(FsUpload::new(Some(file), dir, name, target, false, strict));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free unique name",
        ))
    }

    /// Removes (or, keeping partial uploads, moves into place) what was written; a file
    /// written in place goes back to what it was.
    fn discard(dir: &Dir, name: &str, target: &Target, keep_partial: bool) {
        match target {
            Target::Temp { temp, reserved } => {
                if keep_partial && !reserved && dir.rename(temp, dir, name).is_ok() {
                    return;
                }
                let _ = dir.remove_file(temp);
                if *reserved {
                    let _ = dir.remove_file(name);
                }
            }
            // Closing the file frees it; or there is none yet.
            Target::Unnamed | Target::Deferred => {}
            // Kept partial uploads keep every byte that arrived, to be resumed.
            Target::InPlace { .. } if keep_partial => {}
            Target::InPlace {
                previous: Previous::Absent,
            } => {
                let _ = dir.remove_file(name);
            }
            Target::InPlace {
                previous: Previous::Length(length),
            } => {
                if let Ok(file) = dir.open_with(name, OpenOptions::new().write(true)) {
                    let _ = file.set_len(*length);
                }
            }
            Target::Settled => {}
        }
    }

    /// Makes the file of a `Deferred` upload; nothing for the others.
    fn create(&mut self) -> io::Result<()> {
        if !matches!(self.target, Target::Deferred) {
            return Ok(());
        }
        let Some(dir) = &self.dir else {
            return Err(finished());
        };
        let (file, target) = match create_unnamed(dir) {
            Ok(file) => (file, Target::Unnamed),
            Err(_) => {
                let (temp, file) = create_temp(dir)?;
                let reserved = false;
                (file, Target::Temp { temp, reserved })
            }
        };
        self.file = Some(file);
        self.target = target;
        Ok(())
    }

    /// Waits for the write in flight, if any, and takes the file back.
    async fn finish_write(&mut self) -> io::Result<()> {
        let Some(write) = self.in_flight.take() else {
            return Ok(());
        };
        let (file, mut buffer, result) = write.await.map_err(io::Error::other)?;
        buffer.clear();
        self.spare = buffer;
        self.file = Some(file);
        result
    }

    /// Starts writing the pending bytes on the blocking pool (after the previous write).
    async fn write_pending(&mut self) -> io::Result<()> {
        self.create()?;
        self.finish_write().await?;
        let Some(mut file) = self.file.take() else {
            return Err(finished());
        };
        let buffer = std::mem::replace(&mut self.pending, std::mem::take(&mut self.spare));
        self.wrote_before = true;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let result = file.write_all(&buffer);
            (file, buffer, result)
        }));
        Ok(())
    }
}

fn finished() -> io::Error {
    io::Error::other("upload already finished")
}

#[async_trait]
impl Upload for FsUpload {
    async fn started(&mut self) -> Result<(), StorageError> {
        self.create().map_err(io_error)
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.pending.extend_from_slice(data);
        if self.pending.len() >= WRITE_AT {
            self.write_pending().await.map_err(io_error)?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        self.create().map_err(io_error)?;
        self.finish_write().await.map_err(io_error)?;
        let (Some(mut file), Some(dir)) = (self.file.take(), self.dir.take()) else {
            return Err(io_error(finished()));
        };
        let pending = std::mem::take(&mut self.pending);
        let strict = self.strict;
        let inline = !self.wrote_before && !strict && pending.len() <= COMMIT_INLINE_UP_TO;
        let name = self.name.clone();
        let target = std::mem::replace(&mut self.target, Target::Settled);
        let keep_partial = self.keep_partial;
        let finish = move || {
            let written = file
                .write_all(&pending)
                .and_then(|()| if strict { file.sync_all() } else { Ok(()) })
                .and_then(|()| file.metadata());
            let size = match written {
                Ok(meta) => meta.len(),
                Err(e) => {
                    FsUpload::discard(&dir, &name, &target, keep_partial);
                    return Err(e);
                }
            };
            match &target {
                Target::Temp { temp, .. } => dir.rename(temp, &dir, &name).inspect_err(|_| {
                    FsUpload::discard(&dir, &name, &target, keep_partial);
                })?,
                Target::Unnamed => link_unnamed(&file, &dir, &name)?,
                Target::InPlace { .. } | Target::Deferred | Target::Settled => {}
            }
            if strict {
                // The rename itself is durable only once the directory is.
                // (`Dir` handles are O_PATH; fsync needs a descriptor opened for reading.)
                dir.open_with(".", OpenOptions::new().read(true))?
                    .into_std()
                    .sync_all()?;
            }
            Ok(size)
        };
        if inline {
            on_name(finish)
        } else {
            // One blocking call: the last bytes, the size, the rename.
            blocking(finish).await
        }
    }

    async fn abort(mut self: Box<Self>) {
        let _ = self.finish_write().await;
        if let Some(dir) = self.dir.take() {
            let name = self.name.clone();
            let target = std::mem::replace(&mut self.target, Target::Settled);
            let keep_partial = self.keep_partial;
            let pending = std::mem::take(&mut self.pending);
            let file = self.file.take();
            let _ = blocking(move || {
                // Kept partial uploads keep every byte that arrived.
                if let (true, Some(mut file)) = (keep_partial, file) {
                    let _ = file.write_all(&pending);
                }
                FsUpload::discard(&dir, &name, &target, keep_partial);
                Ok(())
            })
            .await;
        }
    }

    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    async fn local_file(&mut self) -> Result<Option<std::fs::File>, StorageError> {
        self.create().map_err(io_error)?;
        if !self.pending.is_empty() {
            self.write_pending().await.map_err(io_error)?;
        }
        self.finish_write().await.map_err(io_error)?;
        match &self.file {
            Some(file) => Ok(Some(file.try_clone().map_err(io_error)?)),
            None => Err(io_error(finished())),
        }
    }
}

impl Drop for FsUpload {
    fn drop(&mut self) {
        // Neither committed nor aborted: the connection or task went away.
        let Some(dir) = self.dir.take() else {
            return;
        };
        let (name, keep_partial) = (std::mem::take(&mut self.name), self.keep_partial);
        let target = std::mem::replace(&mut self.target, Target::Settled);
        // A file written in place is put back once the write still in flight has ended, or
        // that write would make it grow again.
        if let (Some(write), Target::InPlace { .. }) = (self.in_flight.take(), &target) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = write.await;
                    let _ = blocking(move || {
                        FsUpload::discard(&dir, &name, &target, keep_partial);
                        Ok(())
                    })
                    .await;
                });
                return;
            }
        }
        FsUpload::discard(&dir, &name, &target, keep_partial);
    }
}
