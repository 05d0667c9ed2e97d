//! Commands on the user's files and directories: PWD, CWD/CDUP, MKD, RMD, DELE, RNFR/RNTO,
//! SIZE, MDTM, MLST, MFMT, MFCT, MFF, AVBL and ALLO. Each command that asks for a storage
//! call is followed by the `finish_*` method that answers its result.

use std::time::SystemTime;

use super::{
    Pending, Session, Step, StorageOp, StorageOutcome, available, looked_up, reply, unexpected,
};
use crate::backend::StorageErrorKind;
use crate::command::CommandSpec;
use crate::listing::{format_facts, format_timeval};
use crate::path::{VirtualPath, quote_for_257};
use crate::perm::Perm;
use crate::reply::{Reply, ReplyCode};
use crate::reply_map::reply_for;

impl Session {
    /// RFC 959 PWD.
    pub(super) fn pwd(&self) -> Step {
        reply(
            ReplyCode::PathCreated,
            format!(
                "{} is the current directory",
                quote_for_257(self.cwd.as_str())
            ),
        )
    }

    /// RFC 959 CWD: look the path up; [`Session::finish_cwd`] changes into it.
    pub(super) fn cwd_to(&mut self, spec: &CommandSpec, arg: &str) -> Step {
        match self.target(arg, spec.perm.as_slice()) {
            Ok(path) => self.storage(Pending::ChangeDir(path.clone()), StorageOp::Metadata(path)),
            Err(step) => step,
        }
    }

    /// RFC 959 CDUP: CWD to the parent.
    pub(super) fn cdup(&mut self, spec: &CommandSpec) -> Step {
        match self.permitted(self.cwd.parent(), spec.perm.as_slice()) {
            Ok(path) => self.storage(Pending::ChangeDir(path.clone()), StorageOp::Metadata(path)),
            Err(step) => step,
        }
    }

    pub(super) fn finish_cwd(
        &mut self,
        path: VirtualPath,
        result: Result<StorageOutcome, StorageErrorKind>,
    ) -> Step {
        let meta = match looked_up(&path, result) {
            Ok(meta) => meta,
            Err(step) => return step,
        };
        if !meta.is_dir() {
            return Step::Reply(reply_for(StorageErrorKind::NotADirectory, path.as_str()));
        }
        let text = format!("Directory changed to {}", quote_for_257(path.as_str()));
        self.cwd = path;
        reply(ReplyCode::FileActionOk, text)
    }

    /// RFC 959 MKD (and SITE MKDIR).
    pub(super) fn mkd(&mut self, spec: &CommandSpec, arg: &str) -> Step {
        match self.target(arg, spec.perm.as_slice()) {
            Ok(path) => self.storage(Pending::Created(path.clone()), StorageOp::MakeDir(path)),
            Err(step) => step,
        }
    }

    pub(super) fn finish_mkd(
        &mut self,
        path: VirtualPath,
        result: Result<StorageOutcome, StorageErrorKind>,
    ) -> Step {
        if let Err(step) = self.changed(&path, result) {
            return step;
        }
        let step = reply(
            ReplyCode::PathCreated,
            format!("{} created", quote_for_257(path.as_str())),
        );
        self.ended(path, None);
        step
    }

    /// RFC 959 RMD: never the root.
    pub(super) fn rmd(&mut self, spec: &CommandSpec, arg: &str) -> Step {
        let path = match self.target(arg, spec.perm.as_slice()) {
            Ok(path) => path,
            Err(step) => return step,
        };
        if path.is_root() {
            return self.refuse(path);
        }
        self.storage(
            Pending::Removed(path.clone(), "Directory removed"),
            StorageOp::RemoveDir(path),
        )
    }

    /// RFC 959 DELE.
    pub(super) fn dele(&mut self, spec: &CommandSpec, arg: &str) -> Step {
        match self.target(arg, spec.perm.as_slice()) {
            Ok(path) => self.storage(
                Pending::Removed(path.clone(), "File deleted"),
                StorageOp::Delete(path),
            ),
            Err(step) => step,
        }
    }

    /// The end of DELE, RMD and SITE RMDIR.
    pub(super) fn finish_removal(
        &mut self,
        path: VirtualPath,
        text: &'static str,
        result: Result<StorageOutcome, StorageErrorKind>,
    ) -> Step {
        if let Err(step) = self.changed(&path, result) {
            return step;
        }
        self.ended(path, None);
        reply(ReplyCode::FileActionOk, text)
    }

    /// RFC 959 RNFR: the name must exist; [`Session::finish_rnfr`] keeps it for the RNTO that
    /// must come next (any other line drops it: [`Session::handle_command`]).
    pub(super) fn rnfr(&mut self, spec: &CommandSpec, arg: &str) -> Step {
        match self.target(arg, spec.perm.as_slice()) {
            Ok(path) => self.storage(Pending::AwaitRnto(path.clone()), StorageOp::Metadata(path)),
            Err(step) => step,
        }
    }

    pub(super) fn finish_rnfr(
        &mut self,
        path: VirtualPath,
        result: Result<StorageOutcome, StorageErrorKind>,
    ) -> Step {
        match result {
            Ok(StorageOutcome::Metadata(_)) => {
                self.rename_from = Some(path);
                reply(ReplyCode::PendingFurtherInformation, "Ready for RNTO")
            }
            Ok(_) => unexpected(),
            Err(kind) => {
                let reply = reply_for(kind, path.as_str());
                self.ended(path, None);
                Step::Reply(reply)
            }
        }
    }

    /// RFC 959 RNTO, right after RNFR (`from`); neither name may be the root.
    pub(super) fn rnto(
        &mut self,
        spec: &CommandSpec,
        arg: &str,
        from: Option<VirtualPath>,
    ) -> Step {
        let Some(from) = from else {
            return reply(ReplyCode::BadSequence, "RNTO must follow RNFR");
        };
        let to = match self.target(arg, spec.perm.as_slice()) {
            Ok(path) => path,
            Err(step) => return step,
        };
        if from.is_root() || to.is_root() {
            self.ended(from, Some(to));
            return Step::Reply(reply_for(StorageErrorKind::PermissionDenied, "/"));
        }
        self.storage(
            Pending::Renamed {
                from: from.clone(),
                to: to.clone(),
            },
            StorageOp::Rename { from, to },
        )
    }

    pub(super) fn finish_rnto(
        &mut self,
        from: VirtualPath,
        to: VirtualPath,
        result: Result<StorageOutcome, StorageErrorKind>,
    ) -> Step {
        let step = match result {
            Ok(StorageOutcome::Metadata(_) | StorageOutcome::Done) => {
                reply(ReplyCode::FileActionOk, format!("Renamed to {to}"))
            }
            Ok(StorageOutcome::Available(_)) => return unexpected(),
            Err(kind) => Step::Reply(reply_for(kind, to.as_str())),
        };
        self.ended(from, Some(to));
        step
    }

    /// RFC 3659 SIZE. RFC 3659 4.1 lets a server answer SIZE in TYPE A with the stored size
    /// when it cannot cheaply count the converted bytes. That is what vsftpd and Pure-FTPd do,
    /// and what `ftplib.FTP.size()` right after login (TYPE A is the default) expects.
    /// Resuming stays exact: REST is accepted only in TYPE I.
    pub(super) fn size(&mut self, spec: &CommandSpec, arg: &str) -> Step {
        match self.target(arg, spec.perm.as_slice()) {
            Ok(path) => self.storage(Pending::ReplySize(path.clone()), StorageOp::Metadata(path)),
            Err(step) => step,
        }
    }

    pub(super) fn finish_size(
        &self,
        path: VirtualPath,
        result: Result<StorageOutcome, StorageErrorKind>,
    ) -> Step {
        match looked_up(&path, result) {
            Ok(meta) if meta.is_file() => reply(ReplyCode::FileStatus, meta.size.to_string()),
            Ok(_) => reply(
                ReplyCode::FileUnavailable,
                format!("{}: not a regular file", path),
            ),
            Err(step) => step,
        }
    }

    /// RFC 3659 MDTM.
    pub(super) fn mdtm(&mut self, spec: &CommandSpec, arg: &str) -> Step {
        match self.target(arg, spec.perm.as_slice()) {
            Ok(path) => self.storage(
                Pending::ReplyModified(path.clone()),
                StorageOp::Metadata(path),
            ),
            Err(step) => step,
        }
    }

    pub(super) fn finish_mdtm(
        &self,
        path: VirtualPath,
        result: Result<StorageOutcome, StorageErrorKind>,
    ) -> Step {
        match looked_up(&path, result) {
            Ok(meta) => match meta.modified {
                Some(t) if meta.is_file() => reply(ReplyCode::FileStatus, format_timeval(t)),
                _ => reply(
                    ReplyCode::FileUnavailable,
                    format!("{}: no modification time", path),
                ),
            },
            Err(step) => step,
        }
    }

    /// RFC 3659 MLST: the facts of one entry, over the control connection.
    pub(super) fn mlst(&mut self, spec: &CommandSpec, arg: Option<String>) -> Step {
        match self.target(&arg.unwrap_or_default(), spec.perm.as_slice()) {
            Ok(path) => self.storage(Pending::ReplyFacts(path.clone()), StorageOp::Metadata(path)),
            Err(step) => step,
        }
    }

    pub(super) fn finish_mlst(
        &mut self,
        path: VirtualPath,
        result: Result<StorageOutcome, StorageErrorKind>,
    ) -> Step {
        let meta = match looked_up(&path, result) {
            Ok(meta) => meta,
            Err(step) => return step,
        };
        let perms = self.user_perms().map(|m| m.at(&path)).unwrap_or_default();
        let line = format_facts(&meta, path.as_str(), self.selected_facts(), perms);
        Step::Reply(Reply::multiline(
            ReplyCode::FileActionOk,
            format!("Listing {path}"),
            [line],
            "End",
        ))
    }

    /// MFMT (draft-somers-ftp-mfxx): set a file's modification time.
    pub(super) fn mfmt(&mut self, spec: &CommandSpec, time: SystemTime, arg: &str) -> Step {
        match self.target(arg, spec.perm.as_slice()) {
            Ok(path) => self.storage(
                Pending::ModifiedSet(path.clone(), time),
                StorageOp::SetModified { path, time },
            ),
            Err(step) => step,
        }
    }

    pub(super) fn finish_mfmt(
        &mut self,
        path: VirtualPath,
        time: SystemTime,
        result: Result<StorageOutcome, StorageErrorKind>,
    ) -> Step {
        if let Err(step) = self.changed(&path, result) {
            return step;
        }
        let step = reply(
            ReplyCode::FileStatus,
            format!("Modify={}; {}", format_timeval(time), path),
        );
        self.ended(path, None);
        step
    }

    /// MFCT (draft-somers-ftp-mfxx). No storage keeps a settable creation time (Unix file
    /// systems and object stores set it themselves), so it is answered plainly and not
    /// advertised.
    pub(super) fn mfct(&self) -> Step {
        reply(
            ReplyCode::NotImplemented,
            "Creation times cannot be set on this storage",
        )
    }

    /// MFF (draft-somers-ftp-mfxx): the modification time, then the mode, each where the
    /// storage can set it.
    pub(super) fn mff(
        &mut self,
        spec: &CommandSpec,
        modify: Option<SystemTime>,
        mode: Option<u32>,
        arg: &str,
    ) -> Step {
        // Stays here, not in the command table: what MFF needs depends on the facts its
        // argument sets (a time, a mode, or both), and the refusal is 504 (this parameter), not
        // 502 (this command). The table only keeps MFF out of FEAT's facts it cannot set.
        let caps = self.capabilities();
        if (modify.is_some() && !caps.set_modified) || (mode.is_some() && !caps.set_mode) {
            return reply(
                ReplyCode::ParameterNotImplemented,
                "This storage cannot set those facts",
            );
        }
        self.mode = mode;
        if let Some(Err(step)) = mode.map(permission_bits_only) {
            if let Ok(path) = self.cwd.resolve(arg) {
                self.ended(path, None);
            }
            return step;
        }
        let mut facts = String::new();
        if let Some(time) = modify {
            facts.push_str(&format!("Modify={};", format_timeval(time)));
        }
        if let Some(mode) = mode {
            facts.push_str(&format!("UNIX.mode={mode:04o};"));
        }
        let path = match self.target(arg, spec.perm.as_slice()) {
            Ok(path) => path,
            Err(step) => return step,
        };
        let path = match mode {
            Some(_) => match self.permitted(path, &[Perm::Chmod]) {
                Ok(path) => path,
                Err(step) => return step,
            },
            None => path,
        };
        match (modify, mode) {
            (Some(time), _) => self.storage(
                Pending::SetFacts {
                    path: path.clone(),
                    mode,
                    facts,
                },
                StorageOp::SetModified { path, time },
            ),
            (None, Some(mode)) => self.storage(
                Pending::SetFacts {
                    path: path.clone(),
                    mode: None,
                    facts,
                },
                StorageOp::SetMode { path, mode },
            ),
            (None, None) => reply(ReplyCode::ArgumentSyntaxError, "MFF needs facts to set"),
        }
    }

    /// The end of each of MFF's calls: the mode is set after the modification time.
    pub(super) fn finish_mff(
        &mut self,
        path: VirtualPath,
        mode: Option<u32>,
        facts: String,
        result: Result<StorageOutcome, StorageErrorKind>,
    ) -> Step {
        if let Err(step) = self.changed(&path, result) {
            return step;
        }
        if let Some(mode) = mode {
            return self.storage(
                Pending::SetFacts {
                    path: path.clone(),
                    mode: None,
                    facts,
                },
                StorageOp::SetMode { path, mode },
            );
        }
        let step = reply(ReplyCode::FileStatus, format!("{facts} {path}"));
        self.ended(path, None);
        step
    }

    /// AVBL: the space available for uploads in a directory.
    pub(super) fn avbl(&mut self, spec: &CommandSpec, arg: Option<String>) -> Step {
        match self.target(&arg.unwrap_or_default(), spec.perm.as_slice()) {
            Ok(path) => self.storage(
                Pending::ReplyAvailable(path.clone()),
                StorageOp::Available(path),
            ),
            Err(step) => step,
        }
    }

    pub(super) fn finish_avbl(
        &self,
        path: VirtualPath,
        result: Result<StorageOutcome, StorageErrorKind>,
    ) -> Step {
        match available(&path, result) {
            Ok(bytes) => reply(ReplyCode::FileStatus, bytes.to_string()),
            Err(step) => step,
        }
    }

    /// RFC 959 ALLO: with a size, checked against the space available where the storage can
    /// tell. (Not a capability refusal: without `available_space`, or without a size, ALLO is
    /// answered 202 as RFC 959 allows, so the command table does not decide it.)
    pub(super) fn allo(&mut self, size: Option<u64>) -> Step {
        match size {
            Some(size) if self.is_logged_in() && self.capabilities().available_space => {
                let dir = self.cwd.clone();
                self.storage(
                    Pending::CheckSpace(dir.clone(), size),
                    StorageOp::Available(dir),
                )
            }
            _ => reply(ReplyCode::Superfluous, "ALLO not needed"),
        }
    }

    pub(super) fn finish_allo(
        &self,
        dir: VirtualPath,
        size: u64,
        result: Result<StorageOutcome, StorageErrorKind>,
    ) -> Step {
        match available(&dir, result) {
            Ok(bytes) if size > bytes => reply(
                ReplyCode::ExceededStorage,
                format!("Not enough space: {bytes} bytes available"),
            ),
            Ok(bytes) => reply(
                ReplyCode::CommandOk,
                format!("ALLO ok: {bytes} bytes available"),
            ),
            Err(step) => step,
        }
    }
}

/// Clients may set permission bits (0o777) only: a setuid, setgid or sticky bit is refused,
/// so a daemon running as root can never be made to create a setuid file.
pub(super) fn permission_bits_only(mode: u32) -> Result<(), Step> {
    if mode & !0o777 != 0 {
        return Err(reply(
            ReplyCode::FileUnavailable,
            format!(
                "Mode {mode:04o} refused: only permission bits (at most 0777) can be set, not setuid, setgid or sticky"
            ),
        ));
    }
    Ok(())
}
