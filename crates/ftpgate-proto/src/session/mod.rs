//! The session state machine: every protocol decision, no I/O.
//!
//! A [`Session`] is one control connection's protocol state. It never does I/O and has no
//! clock: the engine feeds it inputs and performs what it asks for. Like quinn-proto's
//! `Connection`, it has one convention for that:
//!
//! - **Inputs are `handle_*` methods**, one per event the engine reports: a control line
//!   ([`Session::handle_line`], [`Session::handle_decoded`]) and the result of each effect the
//!   session asked for ([`Session::handle_auth_result`], [`Session::handle_host_selected`],
//!   [`Session::handle_storage_result`], [`Session::handle_passive_opened`],
//!   [`Session::handle_tls_established`], [`Session::handle_control_cleared`],
//!   [`Session::handle_transfer_started`], [`Session::handle_transfer_done`]).
//! - **Outputs are values.** A line or an effect's result returns the [`Step`] to perform next
//!   (a reply, or one effect: authenticate, a storage call, open a passive listener, run a
//!   transfer, upgrade to TLS...); the engine performs it and reports its result with the
//!   matching input. The transfer inputs return the replies to send ([`Reply`] for the 150,
//!   `Vec<Reply>` at the end); the TLS inputs only change state.
//! - **Queries** take `&self` and change nothing ([`Session::is_logged_in`],
//!   [`Session::wants_close`], [`Session::status_reply`]...); [`Session::take_file_op`] hands
//!   over the description of a file operation that has ended, for the log.
//!
//! The engine-facing types are in `contract.rs` (re-exported here). The commands' handlers
//! are grouped by area, each file holding the whole of its commands, including what happens
//! when their storage call returns: `login.rs` (USER, PASS, REIN, QUIT, HOST), `tls.rs` (AUTH,
//! PBSZ, PROT, CCC), `files.rs` (CWD, MKD, RNFR/RNTO, SIZE, MFF...), `site.rs` (SITE),
//! `transfers.rs` (data connection setup, REST, RETR, STOR, LIST, HASH, COMB, ABOR, and the
//! transfer inputs) and `info.rs` (STAT, HELP, FEAT, OPTS, LANG, CLNT). This file holds the
//! state, the line inputs, [`Session::handle_command`] (the checks every command passes, read
//! from its [`CommandSpec`], then the dispatch), [`Session::handle_storage_result`] (which
//! hands the result to the command that asked) and the helpers handlers share, such as
//! `target` (resolve a path, check the permissions there).

mod closing;
mod contract;
mod files;
mod info;
mod login;
mod site;
#[cfg(test)]
mod tests;
mod tls;
mod transfers;

pub use contract::{
    DataEndpoint, FileOp, LoginFailure, SessionUser, StartInfo, Step, StorageOp, StorageOutcome,
    TransferKind, TransferOutcome, TransferPlan, UploadLimit,
};

use std::net::SocketAddr;
use std::time::SystemTime;

use crate::backend::{Capabilities, Facts, HashAlgorithm, StorageErrorKind};
use crate::command::{Command, CommandSpec, ListArgs, Protection, TransferType, parse_line};
use crate::extensions::Features;
use crate::line::Decoded;
use crate::listing::ListFormat;
use crate::path::VirtualPath;
use crate::perm::{Perm, PermissionMap};
use crate::reply::{Reply, ReplyCode};
use crate::reply_map::reply_for;

/// Settings that shape the dialogue.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Whether PORT and EPRT are accepted.
    pub active_mode: bool,
    /// The control connection came through a load balancer (PROXY protocol): PORT and EPRT
    /// are refused, since the server cannot reach the client through it.
    pub proxied: bool,
    /// The lowest port PORT/EPRT may name (1024 keeps the server from being a bounce to
    /// privileged services).
    pub min_active_port: u16,
    /// Failed logins before the connection is closed.
    pub max_login_failures: u32,
    /// What TLS offers and requires.
    pub tls: TlsPolicy,
    /// Optional commands switched on or off.
    pub features: Features,
    /// HOST is offered (the server has virtual hosts).
    pub virtual_hosts: bool,
    /// Text sent before "User ... logged in" in the 230 reply to a successful login (one or
    /// more lines; the reply is then in the multi-line form).
    pub login_message: Option<String>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            active_mode: true,
            proxied: false,
            min_active_port: 1024,
            max_login_failures: 3,
            tls: TlsPolicy::default(),
            features: Features::default(),
            virtual_hosts: false,
            login_message: None,
        }
    }
}

/// TLS settings as the dialogue sees them (RFC 4217).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsPolicy {
    /// AUTH TLS is offered (a certificate is configured).
    pub available: bool,
    /// USER and PASS are refused on a connection that is not protected.
    pub required_for_login: bool,
    /// Transfers are refused unless the data connection is protected (PROT P).
    pub required_for_data: bool,
    /// CCC (back to a clear control connection after login) is allowed.
    pub allow_ccc: bool,
}

enum Login {
    AwaitingUser,
    AwaitingPassword { user: String },
    Authenticating,
    LoggedIn(SessionUser),
}

/// The storage call in flight ([`Step::Storage`]), named by what its result leads to. Each
/// variant is finished by the `finish_*` method next to the command that started it.
enum Pending {
    /// No call in flight.
    None,
    /// CWD, CDUP: change into the path if it is a directory (`files.rs`).
    ChangeDir(VirtualPath),
    /// SIZE: answer the file's size.
    ReplySize(VirtualPath),
    /// MDTM: answer the file's modification time.
    ReplyModified(VirtualPath),
    /// MLST: answer the entry's facts.
    ReplyFacts(VirtualPath),
    /// RNFR: the name exists; wait for RNTO.
    AwaitRnto(VirtualPath),
    /// RNTO: the rename is done.
    Renamed { from: VirtualPath, to: VirtualPath },
    /// MKD, SITE MKDIR: answer 257 with the new directory.
    Created(VirtualPath),
    /// DELE, RMD, SITE RMDIR: answer 250 with this text.
    Removed(VirtualPath, &'static str),
    /// MFMT: answer 213 with the time set.
    ModifiedSet(VirtualPath, SystemTime),
    /// AVBL: answer the bytes available.
    ReplyAvailable(VirtualPath),
    /// ALLO: answer whether this many bytes fit.
    CheckSpace(VirtualPath, u64),
    /// MFF: set the mode next, if any, then answer with the facts set.
    SetFacts {
        path: VirtualPath,
        mode: Option<u32>,
        facts: String,
    },
    /// SITE CHMOD, UTIME, SYMLINK: answer 200 with this text (`site.rs`).
    SiteDone(VirtualPath, &'static str),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DataSetup {
    None,
    Passive,
    Active(SocketAddr),
}

/// A transfer that runs, and what the client asked for meanwhile.
struct Running {
    plan: TransferPlan,
    /// ABOR came: `226 ABOR successful` follows the transfer's own reply.
    abort_requested: bool,
    /// QUIT came: `221 Goodbye` follows the transfer's own reply, then the connection closes.
    quit_requested: bool,
}

/// One control connection's protocol state.
pub struct Session {
    config: SessionConfig,
    peer: SocketAddr,
    local: SocketAddr,
    login: Login,
    login_failures: u32,
    cwd: VirtualPath,
    transfer_type: TransferType,
    rest: u64,
    /// RNFR's name. RFC 959: RNTO must immediately follow RNFR, so every line takes it
    /// ([`Session::handle_command`]) or drops it ([`Session::bad_line`]).
    rename_from: Option<VirtualPath>,
    facts: Facts,
    data: DataSetup,
    epsv_all: bool,
    pending: Pending,
    transfer: Option<Running>,
    closing: bool,
    client_name: Option<String>,
    secure: bool,
    pbsz: bool,
    protection: Protection,
    hash_algorithm: HashAlgorithm,
    /// The RANG range (inclusive) for the next HASH.
    hash_range: Option<(u64, u64)>,
    /// MODE Z.
    compressed: bool,
    /// The table entry of the last line that parsed as a command (`None` after one that did
    /// not), for the engine's live view and metrics.
    last_command: Option<&'static CommandSpec>,
    /// The command being handled and the mode it sets, for [`FileOp`].
    verb: &'static str,
    mode: Option<u32>,
    /// The file operation that has just ended, until the engine takes it.
    file_op: Option<FileOp>,
}

fn reply(code: ReplyCode, text: impl Into<String>) -> Step {
    Step::Reply(Reply::new(code, text))
}

impl Session {
    /// A new session for a client at `peer` connected to our `local` address.
    pub fn new(config: SessionConfig, peer: SocketAddr, local: SocketAddr) -> Self {
        let default_type = config.features.default_type;
        Session {
            config,
            peer,
            local,
            login: Login::AwaitingUser,
            login_failures: 0,
            cwd: VirtualPath::root(),
            transfer_type: default_type,
            rest: 0,
            rename_from: None,
            facts: Facts::default(),
            data: DataSetup::None,
            epsv_all: false,
            pending: Pending::None,
            transfer: None,
            closing: false,
            client_name: None,
            secure: false,
            pbsz: false,
            protection: Protection::Clear,
            hash_algorithm: HashAlgorithm::Sha256,
            hash_range: None,
            compressed: false,
            last_command: None,
            verb: "",
            mode: None,
            file_op: None,
        }
    }

    // --- Queries -------------------------------------------------------------------------------

    /// The file operation that has ended with the reply just returned (a transfer's, a storage
    /// call's, or a refusal), for the log; `None` after commands that are not file operations.
    pub fn take_file_op(&mut self) -> Option<FileOp> {
        self.file_op.take()
    }

    /// Whether the control connection is TLS.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Whether the engine should close the connection after sending what it has.
    pub fn wants_close(&self) -> bool {
        self.closing
    }

    /// The logged-in user's name.
    pub fn user_name(&self) -> Option<&str> {
        match &self.login {
            Login::LoggedIn(user) => Some(&user.name),
            _ => None,
        }
    }

    /// The table entry of the last line that parsed as a command; `None` when the last line
    /// was no command (unknown verb, bad argument, too long).
    pub fn last_command(&self) -> Option<&'static CommandSpec> {
        self.last_command
    }

    /// Whether data connections are protected (PROT P, or implicit FTPS).
    pub fn data_protected(&self) -> bool {
        self.protection == Protection::Private
    }

    /// Whether a user is logged in.
    pub fn is_logged_in(&self) -> bool {
        matches!(self.login, Login::LoggedIn(_))
    }

    /// Whether a transfer is running.
    pub fn in_transfer(&self) -> bool {
        self.transfer.is_some()
    }

    /// Whether the next transfer uses a passive listener (so the engine keeps one open).
    pub fn expects_passive(&self) -> bool {
        self.data == DataSetup::Passive
    }

    /// The current directory.
    pub fn cwd(&self) -> &VirtualPath {
        &self.cwd
    }

    /// The name the client gave with CLNT.
    pub fn client_name(&self) -> Option<&str> {
        self.client_name.as_deref()
    }

    // --- Control lines -------------------------------------------------------------------------

    /// Handles one decoded control line.
    pub fn handle_decoded(&mut self, decoded: Decoded) -> Step {
        match decoded {
            Decoded::Line(bytes) => self.handle_line(&bytes),
            Decoded::TooLong => {
                self.bad_line(Reply::new(ReplyCode::SyntaxError, "Command line too long"))
            }
        }
    }

    /// Handles one control line (without its line ending).
    pub fn handle_line(&mut self, line: &[u8]) -> Step {
        let Ok(line) = std::str::from_utf8(line) else {
            return self.bad_line(Reply::new(
                ReplyCode::ArgumentSyntaxError,
                "Invalid UTF-8 in command",
            ));
        };
        match parse_line(line) {
            Ok((spec, command)) => {
                self.last_command = Some(spec);
                self.handle_command(spec, command)
            }
            Err(error) => {
                self.last_command = None;
                self.bad_line(error)
            }
        }
    }

    /// A line that is no command: answered with `reply`; it cancels a rename (RFC 959: RNTO
    /// must immediately follow RNFR).
    fn bad_line(&mut self, reply: Reply) -> Step {
        self.rename_from = None;
        self.last_command = None;
        Step::Reply(reply)
    }

    /// Handles a parsed command: the checks its [`CommandSpec`] asks for (during a transfer,
    /// feature switch, login, storage capability), then its handler.
    pub fn handle_command(&mut self, spec: &'static CommandSpec, command: Command) -> Step {
        if self.transfer.is_some() && !spec.during_transfer {
            return reply(
                ReplyCode::BadSequence,
                "Transfer in progress; only ABOR, STAT, NOOP and QUIT are accepted",
            );
        }
        if matches!(self.login, Login::Authenticating) {
            return reply(ReplyCode::BadSequence, "Login in progress");
        }
        // RFC 959: RNTO must immediately follow RNFR. (No rename is pending during a transfer
        // or before login, so the refusals above leave nothing behind.)
        let rename_from = self.rename_from.take();
        if !spec.is_on(&self.config.features) {
            return reply(
                ReplyCode::NotImplemented,
                format!("{} is disabled on this server", spec.verb),
            );
        }
        if spec.needs_login && !self.is_logged_in() {
            return reply(
                ReplyCode::NotLoggedIn,
                "Please log in with USER and PASS first",
            );
        }
        if self.transfer.is_none() {
            self.verb = spec.verb;
            self.mode = None;
            self.file_op = None;
        }
        if let Some(refusal) = spec.refusal(&command, &self.capabilities()) {
            return reply(ReplyCode::NotImplemented, refusal);
        }
        let step = self.dispatch(spec, command, rename_from);
        debug_assert!(
            !matches!(step, Step::Transfer(_)) || spec.transfer,
            "{} started a transfer but its table entry says it does not",
            spec.verb
        );
        step
    }

    /// The handler of each command.
    fn dispatch(
        &mut self,
        spec: &'static CommandSpec,
        command: Command,
        rename_from: Option<VirtualPath>,
    ) -> Step {
        match command {
            // login.rs
            Command::User(name) => self.user(name),
            Command::Pass(password) => self.pass(password),
            Command::Acct => reply(ReplyCode::Superfluous, "ACCT not needed"),
            Command::Rein => self.rein(),
            Command::Quit => self.quit(),
            Command::Host(name) => self.host(name),
            // tls.rs
            Command::Auth => self.auth(),
            Command::Pbsz => self.pbsz(),
            Command::Prot(level) => self.prot(level),
            Command::Ccc => self.ccc(),
            // files.rs and site.rs
            Command::Pwd => self.pwd(),
            Command::Cwd(arg) => self.cwd_to(spec, &arg),
            Command::Cdup => self.cdup(spec),
            Command::Mkd(arg) => self.mkd(spec, &arg),
            Command::Rmd(arg) => self.rmd(spec, &arg),
            Command::Dele(arg) => self.dele(spec, &arg),
            Command::Rnfr(arg) => self.rnfr(spec, &arg),
            Command::Rnto(arg) => self.rnto(spec, &arg, rename_from),
            Command::Size(arg) => self.size(spec, &arg),
            Command::Mdtm(arg) => self.mdtm(spec, &arg),
            Command::Mlst(arg) => self.mlst(spec, arg),
            Command::Mfmt { time, path } => self.mfmt(spec, time, &path),
            Command::Mfct { .. } => self.mfct(),
            Command::Mff { modify, mode, path } => self.mff(spec, modify, mode, &path),
            Command::Avbl(arg) => self.avbl(spec, arg),
            Command::Allo(size) => self.allo(size),
            Command::Site(arg) => self.site(&arg),
            // transfers.rs
            Command::Pasv => self.pasv(false),
            Command::Epsv(arg) => self.epsv(arg),
            Command::Port(addr) => self.active(SocketAddr::V4(addr)),
            Command::Eprt(addr) => self.active(addr),
            Command::Type(t) => self.set_type(t),
            Command::Mode(mode) => self.set_mode(mode),
            Command::Stru => reply(ReplyCode::CommandOk, "Structure set to F"),
            Command::Rest(offset) => self.set_rest(offset),
            Command::Retr(arg) => self.retr(spec, &arg),
            Command::Stor(arg) => self.store(spec, &arg, false),
            Command::Appe(arg) => self.store(spec, &arg, true),
            Command::Stou(arg) => self.stou(spec, arg),
            Command::List(args) => self.list(spec, args, ListFormat::Long),
            Command::Nlst(args) => self.list(spec, args, ListFormat::Names),
            Command::Mlsd(path) => self.list(
                spec,
                ListArgs {
                    path,
                    all: true,
                    raw: String::new(),
                },
                ListFormat::Facts(self.selected_facts()),
            ),
            Command::Hash(arg) => self.hash(spec, &arg),
            Command::Rang { start, end } => self.rang(start, end),
            Command::XHash {
                algorithm,
                path,
                start,
                end,
            } => self.legacy_hash(spec, &path, algorithm, start, end),
            Command::Comb { target, parts } => self.comb(spec, &target, &parts),
            Command::Abor => self.abor(),
            // info.rs
            Command::Stat(arg) => self.stat(spec, arg),
            Command::Help(topic) => self.help(topic),
            Command::Feat => self.feat(),
            Command::Opts { name, value } => self.opts(&name, &value),
            Command::Syst => reply(ReplyCode::SystemType, "UNIX Type: L8"),
            Command::Noop => reply(ReplyCode::CommandOk, "NOOP ok"),
            Command::Lang(tag) => self.lang(tag.as_deref()),
            Command::Clnt(name) => self.clnt(name),
        }
    }

    /// The result of a [`Step::Storage`] call, finished by the command that asked for it.
    pub fn handle_storage_result(
        &mut self,
        result: Result<StorageOutcome, StorageErrorKind>,
    ) -> Step {
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::None => match result {
                Err(kind) => Step::Reply(reply_for(kind, "")),
                Ok(_) => unexpected(),
            },
            Pending::ChangeDir(path) => self.finish_cwd(path, result),
            Pending::ReplySize(path) => self.finish_size(path, result),
            Pending::ReplyModified(path) => self.finish_mdtm(path, result),
            Pending::ReplyFacts(path) => self.finish_mlst(path, result),
            Pending::AwaitRnto(path) => self.finish_rnfr(path, result),
            Pending::Renamed { from, to } => self.finish_rnto(from, to, result),
            Pending::Created(path) => self.finish_mkd(path, result),
            Pending::Removed(path, text) => self.finish_removal(path, text, result),
            Pending::ModifiedSet(path, time) => self.finish_mfmt(path, time, result),
            Pending::ReplyAvailable(path) => self.finish_avbl(path, result),
            Pending::CheckSpace(dir, size) => self.finish_allo(dir, size, result),
            Pending::SetFacts { path, mode, facts } => self.finish_mff(path, mode, facts, result),
            Pending::SiteDone(path, text) => self.finish_site(path, text, result),
        }
    }

    /// Asks for a storage call; `then` says what its result leads to.
    fn storage(&mut self, then: Pending, op: StorageOp) -> Step {
        self.pending = then;
        Step::Storage(op)
    }

    /// The result of a storage call that changes the user's files: `Ok` when it succeeded;
    /// a failure is answered from its kind and ends the file operation on `path`.
    fn changed(
        &mut self,
        path: &VirtualPath,
        result: Result<StorageOutcome, StorageErrorKind>,
    ) -> Result<(), Step> {
        match result {
            Ok(StorageOutcome::Metadata(_) | StorageOutcome::Done) => Ok(()),
            Ok(StorageOutcome::Available(_)) => Err(unexpected()),
            Err(kind) => {
                let reply = reply_for(kind, path.as_str());
                self.ended(path.clone(), None);
                Err(Step::Reply(reply))
            }
        }
    }

    // --- Paths, permissions, file operations ---------------------------------------------------

    /// The path `arg` names (relative to the current directory), if the user holds every one
    /// of `perms` there: the one way a command finds the path it acts on. Otherwise the reply:
    /// 501 for a path that cannot be resolved, 550 (and the operation ends) for a refusal.
    fn target(&mut self, arg: &str, perms: &[Perm]) -> Result<VirtualPath, Step> {
        let path = self
            .cwd
            .resolve(arg)
            .map_err(|e| reply(ReplyCode::ArgumentSyntaxError, e.to_string()))?;
        self.permitted(path, perms)
    }

    /// `path`, if the user holds every one of `perms` there; otherwise the refusal.
    fn permitted(&mut self, path: VirtualPath, perms: &[Perm]) -> Result<VirtualPath, Step> {
        if perms.iter().all(|perm| self.permits(*perm, &path)) {
            Ok(path)
        } else {
            Err(self.refuse(path))
        }
    }

    fn permits(&self, perm: Perm, path: &VirtualPath) -> bool {
        self.user_perms().is_some_and(|map| map.allows(perm, path))
    }

    fn user_perms(&self) -> Option<&PermissionMap> {
        match &self.login {
            Login::LoggedIn(user) => Some(&user.permissions),
            _ => None,
        }
    }

    /// Refuses the current command on `path`: the user's permissions do not allow it.
    fn refuse(&mut self, path: VirtualPath) -> Step {
        let reply = reply_for(StorageErrorKind::PermissionDenied, path.as_str());
        self.ended(path, None);
        Step::Reply(reply)
    }

    /// Notes that the current command's file operation on `path` has ended.
    fn ended(&mut self, path: VirtualPath, to: Option<VirtualPath>) {
        self.file_op = Some(FileOp {
            verb: self.verb,
            path,
            to,
            mode: self.mode,
        });
    }

    /// What the logged-in user's storage can do (everything before login).
    fn capabilities(&self) -> Capabilities {
        match &self.login {
            Login::LoggedIn(user) => user.capabilities,
            _ => Capabilities::default(),
        }
    }

    /// The MLSx facts sent: those selected with `OPTS MLST` (all by default) that the user's
    /// storage gives every entry.
    fn selected_facts(&self) -> Facts {
        self.facts.and(self.capabilities().facts)
    }
}

/// The answer to a storage result that does not fit the call asked for.
fn unexpected() -> Step {
    reply(ReplyCode::LocalError, "Unexpected storage result")
}

/// The metadata a lookup returned; a failure is answered from its kind (a lookup is no file
/// operation of its own).
fn looked_up(
    path: &VirtualPath,
    result: Result<StorageOutcome, StorageErrorKind>,
) -> Result<crate::backend::Metadata, Step> {
    match result {
        Ok(StorageOutcome::Metadata(meta)) => Ok(meta),
        Ok(_) => Err(unexpected()),
        Err(kind) => Err(Step::Reply(reply_for(kind, path.as_str()))),
    }
}

/// The bytes available that an AVBL or ALLO call returned; a failure is answered from its
/// kind.
fn available(
    path: &VirtualPath,
    result: Result<StorageOutcome, StorageErrorKind>,
) -> Result<u64, Step> {
    match result {
        Ok(StorageOutcome::Available(bytes)) => Ok(bytes),
        Ok(_) => Err(unexpected()),
        Err(kind) => Err(Step::Reply(reply_for(kind, path.as_str()))),
    }
}
