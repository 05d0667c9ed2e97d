//! Uploads to local disk: a temporary file renamed into place on commit.

use std::io::{self, Seek, SeekFrom};

use async_trait::async_trait;
use cap_std::fs::{Dir, OpenOptions};
use ftpgate_core::{StorageError, Upload, WriteStart};
use rand::Rng;

use crate::{blocking, io_error};

/// Names of temporary upload files start with this; listings hide them, and a leftover one
/// (after a crash) is recognisable by it.
pub const TEMP_PREFIX: &str = ".ftpgate-upload.";

fn temp_name() -> String {
    format!("{TEMP_PREFIX}{:016x}", rand::thread_rng().r#gen::<u64>())
}

/// Where the bytes go until commit.
#[derive(Debug)]
enum Target {
    /// A temporary file, renamed to the final name on commit. `reserved` marks a final name
    /// created empty by STOU to claim it, to be removed on abort.
    Temp { temp: String, reserved: bool },
    /// The final file itself (APPE, REST+STOR).
    InPlace,
}

/// An upload in progress.
#[derive(Debug)]
pub(crate) struct FsUpload {
    file: tokio::fs::File,
    dir: Option<Dir>,
    name: String,
    target: Target,
    keep_partial: bool,
    /// fsync the file and its directory before reporting the upload complete.
    strict: bool,
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
        if let Ok(meta) = dir.metadata(&name) {
            if meta.is_dir() {
                return Err(io::Error::from(io::ErrorKind::IsADirectory));
            }
        }
        let (file, target) = match start {
            WriteStart::Truncate => {
                let (temp, file) = create_temp(&dir)?;
                (
                    file,
                    Target::Temp {
                        temp,
                        reserved: false,
                    },
                )
            }
            WriteStart::Append => {
                let file = dir.open_with(&name, OpenOptions::new().append(true).create(true))?;
                (file.into_std(), Target::InPlace)
            }
            WriteStart::At(offset) => {
                let file = dir.open_with(&name, OpenOptions::new().write(true))?;
                let mut file = file.into_std();
                if offset > file.metadata()?.len() {
                    return Err(crate::beyond_end());
                }
                file.set_len(offset)?;
                file.seek(SeekFrom::Start(offset))?;
                (file, Target::InPlace)
            }
        };
        Ok(FsUpload {
            file: tokio::fs::File::from_std(file),
            dir: Some(dir),
            name,
            target,
            keep_partial,
            strict,
        })
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
                    return Ok(FsUpload {
                        file: tokio::fs::File::from_std(file),
                        dir: Some(dir),
                        name,
                        target: Target::Temp {
                            temp,
                            reserved: true,
                        },
                        keep_partial: false,
                        strict,
                    });
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

    /// Removes (or, keeping partial uploads, moves into place) what was written.
    fn discard(dir: &Dir, name: &str, target: &Target, keep_partial: bool) {
        if let Target::Temp { temp, reserved } = target {
            if keep_partial && !reserved && dir.rename(temp, dir, name).is_ok() {
                return;
            }
            let _ = dir.remove_file(temp);
            if *reserved {
                let _ = dir.remove_file(name);
            }
        }
    }
}

#[async_trait]
impl Upload for FsUpload {
    async fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        use tokio::io::AsyncWriteExt;
        self.file.write_all(data).await.map_err(io_error)
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        use tokio::io::AsyncWriteExt;
        self.file.flush().await.map_err(io_error)?;
        if self.strict {
            self.file.sync_all().await.map_err(io_error)?;
        }
        let size = self.file.metadata().await.map_err(io_error)?.len();
        let strict = self.strict;
        let Some(dir) = self.dir.take() else {
            return Err(io_error(io::Error::other("upload already finished")));
        };
        let name = self.name.clone();
        let target = std::mem::replace(&mut self.target, Target::InPlace);
        let keep_partial = self.keep_partial;
        blocking(move || {
            match &target {
                Target::Temp { temp, .. } => dir.rename(temp, &dir, &name).inspect_err(|_| {
                    FsUpload::discard(&dir, &name, &target, keep_partial);
                })?,
                Target::InPlace => {}
            }
            if strict {
                // The rename itself is durable only once the directory is.
                // (`Dir` handles are O_PATH; fsync needs a descriptor opened for reading.)
                dir.open_with(".", OpenOptions::new().read(true))?
                    .into_std()
                    .sync_all()?;
            }
            Ok(())
        })
        .await?;
        Ok(size)
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(dir) = self.dir.take() {
            let name = self.name.clone();
            let target = std::mem::replace(&mut self.target, Target::InPlace);
            let keep_partial = self.keep_partial;
            use tokio::io::AsyncWriteExt;
            let _ = self.file.flush().await;
            let _ = blocking(move || {
                FsUpload::discard(&dir, &name, &target, keep_partial);
                Ok(())
            })
            .await;
        }
    }

    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

impl Drop for FsUpload {
    fn drop(&mut self) {
        // Neither committed nor aborted: the connection or task went away.
        if let Some(dir) = self.dir.take() {
            FsUpload::discard(&dir, &self.name, &self.target, self.keep_partial);
        }
    }
}
