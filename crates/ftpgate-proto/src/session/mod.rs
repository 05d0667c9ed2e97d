//! The session state machine: every protocol decision, no I/O.
//!
//! The engine feeds it control lines ([`Session::handle_line`]) and the results of the effects
//! it asked for ([`Session::handle_auth_result`], [`Session::handle_storage_result`],
//! [`Session::passive_opened`], [`Session::handle_transfer_done`]); each returns a [`Step`]:
//! a reply to send, or an effect to perform (authenticate, a storage call, open a passive
//! listener, run a transfer). Login sequence, RNFR/RNTO pairing, REST, TYPE, data-connection
//! setup, permissions and FEAT are all decided here, so the whole dialogue is testable without
//! a network.

mod closing;
#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::SystemTime;

use crate::command::{
    COMMANDS, Command, CommandSpec, EpsvArg, ListArgs, Password, Protection, TransferMode,
    TransferType, parse_line,
};
use crate::extensions::{Capabilities, Features, HashAlgorithm};
use crate::glob::ListPattern;
use crate::hostport::{canonical, format_epsv, format_pasv, same_host};
use crate::line::Decoded;
use crate::listing::{Facts, ListFormat, Metadata, format_facts, format_timeval};
use crate::path::{VirtualPath, quote_for_257};
use crate::perm::{Perm, PermissionMap, Permissions};
use crate::reply::{Reply, ReplyCode};
use crate::reply_map::{ErrorKind, reply_for};

/// Settings that shape the dialogue.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Whether PORT and EPRT are accepted.
    pub active_mode: bool,
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

/// A logged-in user, as far as the protocol needs to know.
#[derive(Debug, Clone)]
pub struct SessionUser {
    /// The login name.
    pub name: String,
    /// What the user may do where.
    pub permissions: PermissionMap,
    /// This user must log in over TLS and protect data connections.
    pub tls_required: bool,
    /// What the user's storage can do beyond the basic calls.
    pub capabilities: Capabilities,
}

/// A storage call the engine performs for the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageOp {
    /// Look up a file or directory.
    Metadata(VirtualPath),
    /// Create a directory.
    MakeDir(VirtualPath),
    /// Remove an empty directory.
    RemoveDir(VirtualPath),
    /// Remove a file.
    Delete(VirtualPath),
    /// Rename a file or directory.
    Rename {
        /// The existing name.
        from: VirtualPath,
        /// The new name.
        to: VirtualPath,
    },
    /// Space available for uploads in a directory.
    Available(VirtualPath),
    /// Set a file's permission bits.
    SetMode {
        /// The file or directory.
        path: VirtualPath,
        /// The permission bits (at most 0o777: setuid, setgid and sticky are refused).
        mode: u32,
    },
    /// Make a symbolic link at `link` to `target`, both inside the user's root.
    Symlink {
        /// What the link points to.
        target: VirtualPath,
        /// The new link.
        link: VirtualPath,
    },
    /// Set a file's modification time.
    SetModified {
        /// The file.
        path: VirtualPath,
        /// The new time.
        time: SystemTime,
    },
}

/// What a successful storage call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageOutcome {
    /// The result of [`StorageOp::Metadata`].
    Metadata(Metadata),
    /// The result of [`StorageOp::Available`]: bytes available.
    Available(u64),
    /// Any other call succeeded.
    Done,
}

/// Where an upload starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStart {
    /// A new file replaces any previous one when the upload completes.
    Truncate,
    /// Bytes are added at the end of the existing file (APPE).
    Append,
    /// Bytes are written from this offset of the existing file (REST then STOR or APPE).
    At(u64),
}

/// What a transfer moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferKind {
    /// RETR: send a file from `offset`.
    Retrieve {
        /// The file.
        path: VirtualPath,
        /// REST offset.
        offset: u64,
    },
    /// STOR or APPE: receive a file.
    Store {
        /// The file.
        path: VirtualPath,
        /// Where writing starts.
        start: WriteStart,
    },
    /// STOU: receive a file under a new unique name in `dir`.
    StoreUnique {
        /// The directory.
        dir: VirtualPath,
        /// The name to derive the unique name from.
        base: String,
    },
    /// LIST, NLST or MLSD: send a listing of a directory, or of one file.
    List {
        /// The directory or file.
        path: VirtualPath,
        /// The format.
        format: ListFormat,
        /// Include names starting with a dot.
        all: bool,
        /// The user's permissions in that directory (for the MLSD `perm` fact).
        permissions: Permissions,
        /// LIST/NLST whose last name has wildcards: when `path` does not exist as named, the
        /// entries of its parent that match.
        pattern: Option<Box<ListPattern>>,
    },
    /// COMB: concatenate parts into a file, then remove the parts; no data connection.
    Combine {
        /// The file made.
        target: VirtualPath,
        /// The parts, in order.
        parts: Vec<VirtualPath>,
    },
    /// HASH or a legacy digest command: compute a digest of a file's bytes; no data
    /// connection.
    Hash {
        /// The file.
        path: VirtualPath,
        /// The digest.
        algorithm: HashAlgorithm,
        /// The first byte.
        start: u64,
        /// One past the last byte, or the end of the file.
        end: Option<u64>,
        /// A legacy X-command (reply `250 digest`) rather than HASH (`213 …`).
        legacy: bool,
    },
}

impl TransferKind {
    /// The file or directory it concerns (for STOU, the directory).
    pub fn path(&self) -> &VirtualPath {
        match self {
            TransferKind::Retrieve { path, .. }
            | TransferKind::Store { path, .. }
            | TransferKind::List { path, .. }
            | TransferKind::Hash { path, .. }
            | TransferKind::Combine { target: path, .. }
            | TransferKind::StoreUnique { dir: path, .. } => path,
        }
    }
}

/// How the data connection is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataEndpoint {
    /// The client connects to the passive listener opened by PASV/EPSV.
    Passive,
    /// The server connects to this address (PORT/EPRT).
    Active(SocketAddr),
    /// No data connection (HASH).
    None,
}

/// A transfer to run: everything the engine needs, decided by the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferPlan {
    /// The command that asked for it (`NLST`, `MLSD`, `APPE`…), for the log.
    pub verb: &'static str,
    /// What moves.
    pub kind: TransferKind,
    /// TYPE A: convert line endings.
    pub ascii: bool,
    /// How to reach the client.
    pub data: DataEndpoint,
    /// PROT P: the data connection is TLS.
    pub protected: bool,
    /// MODE Z: the data connection carries a zlib stream.
    pub compressed: bool,
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferOutcome {
    /// All bytes moved (and an upload was committed).
    Complete {
        /// Bytes sent or received on the data connection.
        bytes: u64,
    },
    /// Stopped by ABOR.
    Aborted,
    /// The data connection could not be made.
    NoDataConnection,
    /// The data connection broke during the transfer.
    ConnectionLost,
    /// The storage failed.
    Failed(ErrorKind),
    /// The upload ran into a limit of the server's (refused with 552, nothing kept).
    OverLimit(UploadLimit),
    /// The TLS handshake on the data connection failed.
    TlsFailed,
    /// The data connection's TLS session did not resume the control connection's.
    TlsNotResumed,
    /// A digest was computed (HASH and the legacy digest commands).
    Hashed {
        /// The digest, lower-case hex.
        digest: String,
        /// The first byte hashed.
        start: u64,
        /// One past the last byte hashed.
        end: u64,
    },
}

/// A limit of the server's that an upload ran into (552).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadLimit {
    /// The largest file the server accepts (`max_file_size`), in bytes.
    MaxFileSize(u64),
    /// The user's quota, in bytes.
    Quota(u64),
}

impl std::fmt::Display for UploadLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadLimit::MaxFileSize(max) => {
                write!(f, "larger than the maximum file size of {}", Size(*max))
            }
            UploadLimit::Quota(quota) => write!(f, "over the quota of {}", Size(*quota)),
        }
    }
}

/// A size as people read it: `10 MiB` when it is a whole number of KiB, MiB, GiB or TiB (as
/// sizes are written in the configuration), else bytes.
struct Size(u64);

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        match UNITS
            .iter()
            .find(|(unit, _)| self.0 >= *unit && self.0 % unit == 0)
        {
            Some((unit, name)) => write!(f, "{} {name}", self.0 / unit),
            None => write!(f, "{} bytes", self.0),
        }
    }
}

/// Facts known when a transfer's data connection is open, for the 150 reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartInfo {
    /// Bytes that will be sent, if known.
    pub size: Option<u64>,
    /// The name STOU chose.
    pub unique_name: Option<String>,
}

/// A file operation that has ended (done, failed or refused), described for the engine's log:
/// the command, what it concerned, and the mode it set. Its reply says how it ended. Taken with
/// [`Session::take_file_op`] once the command's final reply is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOp {
    /// The command: `STOR`, `NLST`, `SITE CHMOD`…
    pub verb: &'static str,
    /// The path it concerned (for a rename the old name, for SITE SYMLINK the link, for STOU
    /// the directory and the name the client asked for).
    pub path: VirtualPath,
    /// The new name, for RNTO.
    pub to: Option<VirtualPath>,
    /// The permission bits SITE CHMOD or MFF set.
    pub mode: Option<u32>,
}

/// What the engine should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Send this reply.
    Reply(Reply),
    /// Check these credentials, then call [`Session::handle_auth_result`].
    Authenticate {
        /// The name from USER.
        user: String,
        /// The password from PASS.
        password: Password,
    },
    /// Perform a storage call, then call [`Session::handle_storage_result`].
    Storage(StorageOp),
    /// Open a passive listener, then call [`Session::passive_opened`].
    OpenPassive {
        /// EPSV (229) rather than PASV (227).
        extended: bool,
    },
    /// Run a transfer: open storage, make the data connection, send
    /// [`Session::transfer_started`], move the bytes, then call [`Session::handle_transfer_done`].
    Transfer(TransferPlan),
    /// AUTH TLS: send this reply in the clear, drop anything the client sent after AUTH, run
    /// the TLS handshake, then call [`Session::tls_established`]; close if it fails.
    UpgradeTls(Reply),
    /// CCC: send this reply over TLS, close TLS (both close_notify alerts), then go on in the
    /// clear and call [`Session::control_cleared`].
    ClearControl(Reply),
    /// STAT with a path: send this listing over the control connection as a 213 reply.
    StatListing {
        /// The directory or file.
        path: VirtualPath,
    },
    /// Stop the running transfer, then report it to [`Session::handle_transfer_done`].
    AbortTransfer,
    /// STAT during a transfer: call [`Session::status_reply`] with the bytes moved so far.
    TransferStatus,
    /// REIN: forget the user (and its storage), then send this reply.
    Logout(Reply),
    /// HOST: find the virtual host `name`, then call [`Session::host_selected`].
    SelectHost(String),
    /// Nothing to send now (QUIT during a transfer waits for it to end).
    Nothing,
}

enum Login {
    AwaitingUser,
    AwaitingPassword { user: String },
    Authenticating,
    LoggedIn(SessionUser),
}

enum Pending {
    None,
    Cwd(VirtualPath),
    Size(VirtualPath),
    Mdtm(VirtualPath),
    Mlst(VirtualPath),
    Rnfr(VirtualPath),
    Rnto {
        from: VirtualPath,
        to: VirtualPath,
    },
    Mkd(VirtualPath),
    Done(VirtualPath, &'static str),
    Mfmt(VirtualPath, SystemTime),
    /// A 200 reply with this text once the call succeeds.
    Ok(VirtualPath, String),
    Avbl(VirtualPath),
    Allo(VirtualPath, u64),
    /// MFF after its modification time was set: the mode to set next, if any.
    Mff {
        path: VirtualPath,
        mode: Option<u32>,
        facts: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DataSetup {
    None,
    Passive,
    Active(SocketAddr),
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
    rename_from: Option<VirtualPath>,
    facts: Facts,
    data: DataSetup,
    epsv_all: bool,
    pending: Pending,
    transfer: Option<TransferPlan>,
    abort_requested: bool,
    quit_requested: bool,
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
            abort_requested: false,
            quit_requested: false,
            closing: false,
            client_name: None,
            secure: false,
            pbsz: false,
            protection: Protection::Clear,
            hash_algorithm: HashAlgorithm::Sha256,
            hash_range: None,
            compressed: false,
            verb: "",
            mode: None,
            file_op: None,
        }
    }

    /// The file operation that has ended with the reply just returned (a transfer's, a storage
    /// call's, or a refusal), for the log; `None` after commands that are not file operations.
    pub fn take_file_op(&mut self) -> Option<FileOp> {
        self.file_op.take()
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

    /// Refuses the current command on `path`: the user's permissions do not allow it.
    fn refuse(&mut self, path: VirtualPath) -> Step {
        let reply = reply_for(ErrorKind::PermissionDenied, path.as_str());
        self.ended(path, None);
        Step::Reply(reply)
    }

    /// The control connection is now TLS. On an implicit FTPS listener data connections are
    /// protected from the start, as clients of implicit FTPS expect.
    pub fn tls_established(&mut self, implicit: bool) {
        self.secure = true;
        if implicit {
            self.pbsz = true;
            self.protection = Protection::Private;
        }
    }

    /// CCC completed: the control connection is clear again (data protection is unchanged).
    pub fn control_cleared(&mut self) {
        self.secure = false;
    }

    /// Whether the control connection is TLS.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    fn user_requires_tls(&self) -> bool {
        matches!(&self.login, Login::LoggedIn(user) if user.tls_required)
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

    /// Handles one decoded control line.
    pub fn handle_decoded(&mut self, decoded: Decoded) -> Step {
        match decoded {
            Decoded::Line(bytes) => self.handle_line(&bytes),
            Decoded::TooLong => {
                self.rename_from = None;
                reply(ReplyCode::SyntaxError, "Command line too long")
            }
        }
    }

    /// Handles one control line (without its line ending).
    pub fn handle_line(&mut self, line: &[u8]) -> Step {
        let Ok(line) = std::str::from_utf8(line) else {
            // RFC 959: RNTO must immediately follow RNFR; anything else cancels the rename.
            self.rename_from = None;
            return reply(ReplyCode::ArgumentSyntaxError, "Invalid UTF-8 in command");
        };
        let (spec, command) = match parse_line(line) {
            Ok(parsed) => parsed,
            Err(error) => {
                self.rename_from = None;
                return Step::Reply(error);
            }
        };
        self.handle_command(spec, command)
    }

    /// Handles a parsed command.
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
        if !self.config.features.allows(spec.verb) {
            self.rename_from = None;
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
        // RFC 959: RNTO must immediately follow RNFR.
        let rename_from = self.rename_from.take();
        match command {
            Command::User(name) => self.user(name),
            Command::Pass(password) => self.pass(password),
            Command::Acct => reply(ReplyCode::Superfluous, "ACCT not needed"),
            Command::Quit => self.quit(),
            Command::Rein => self.rein(),
            Command::Pwd => reply(
                ReplyCode::PathCreated,
                format!(
                    "{} is the current directory",
                    quote_for_257(self.cwd.as_str())
                ),
            ),
            Command::Cwd(arg) => self.with_path(spec, &arg, |_, path| {
                (Pending::Cwd(path.clone()), StorageOp::Metadata(path))
            }),
            Command::Cdup => {
                let parent = self.cwd.parent();
                self.with_resolved(spec, parent, |_, path| {
                    (Pending::Cwd(path.clone()), StorageOp::Metadata(path))
                })
            }
            Command::Mkd(arg) => self.with_path(spec, &arg, |_, path| {
                (Pending::Mkd(path.clone()), StorageOp::MakeDir(path))
            }),
            Command::Rmd(arg) => self.rmd(spec, &arg),
            Command::Dele(arg) => self.with_path(spec, &arg, |_, path| {
                (
                    Pending::Done(path.clone(), "File deleted"),
                    StorageOp::Delete(path),
                )
            }),
            Command::Rnfr(arg) => self.with_path(spec, &arg, |_, path| {
                (Pending::Rnfr(path.clone()), StorageOp::Metadata(path))
            }),
            Command::Rnto(arg) => self.rnto(spec, &arg, rename_from),
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
            Command::Mlst(arg) => {
                let arg = arg.unwrap_or_default();
                self.with_path(spec, &arg, |_, path| {
                    (Pending::Mlst(path.clone()), StorageOp::Metadata(path))
                })
            }
            Command::Stat(arg) => self.stat(spec, arg),
            Command::Syst => reply(ReplyCode::SystemType, "UNIX Type: L8"),
            Command::Help(topic) => self.help(topic),
            Command::Noop => reply(ReplyCode::CommandOk, "NOOP ok"),
            Command::Feat => self.feat(),
            Command::Opts { name, value } => self.opts(&name, &value),
            Command::Type(t) => {
                self.transfer_type = t;
                match t {
                    TransferType::Ascii => reply(ReplyCode::CommandOk, "Type set to A"),
                    TransferType::Binary => reply(ReplyCode::CommandOk, "Type set to I"),
                }
            }
            Command::Mode(TransferMode::Stream) => {
                self.compressed = false;
                reply(ReplyCode::CommandOk, "Mode set to S")
            }
            Command::Mode(TransferMode::Deflate) => {
                if !self.config.features.mode_z {
                    return reply(ReplyCode::ParameterNotImplemented, "MODE Z is not enabled");
                }
                if self.rest > 0 {
                    return reply(ReplyCode::BadSequence, "MODE Z cannot follow REST");
                }
                self.compressed = true;
                reply(ReplyCode::CommandOk, "Mode set to Z")
            }
            Command::Stru => reply(ReplyCode::CommandOk, "Structure set to F"),
            Command::Allo(size) => self.allo(size),
            Command::Hash(arg) => {
                let (start, end) = match self.hash_range.take() {
                    Some((start, end)) => (start, Some(end.saturating_add(1))),
                    None => (0, None),
                };
                let algorithm = self.hash_algorithm;
                self.hash(spec, &arg, algorithm, start, end, false)
            }
            Command::Rang { start, end } => {
                if (start, end) == (1, 0) {
                    self.hash_range = None;
                    self.compressed = false;
                    return reply(ReplyCode::PendingFurtherInformation, "Range reset");
                }
                self.hash_range = Some((start, end));
                reply(
                    ReplyCode::PendingFurtherInformation,
                    format!("Restarting at {start}. Ending byte at {end}; send HASH"),
                )
            }
            Command::XHash {
                algorithm,
                path,
                start,
                end,
            } => self.hash(spec, &path, algorithm, start.unwrap_or(0), end, true),
            Command::Avbl(arg) => {
                if !self.capabilities().available_space {
                    return reply(
                        ReplyCode::NotImplemented,
                        "AVBL is not supported by this storage",
                    );
                }
                let arg = arg.unwrap_or_default();
                self.with_path(spec, &arg, |_, path| {
                    (Pending::Avbl(path.clone()), StorageOp::Available(path))
                })
            }
            Command::Lang(tag) => match tag.as_deref() {
                None | Some("EN") => reply(ReplyCode::CommandOk, "Using EN"),
                Some(tag) if tag.starts_with("EN-") => reply(ReplyCode::CommandOk, "Using EN"),
                Some(_) => reply(
                    ReplyCode::ParameterNotImplemented,
                    "Language not supported; EN only",
                ),
            },
            Command::Mff { modify, mode, path } => self.mff(spec, modify, mode, &path),
            Command::Host(name) => {
                if !self.config.virtual_hosts {
                    return reply(ReplyCode::NotImplemented, "No virtual hosts on this server");
                }
                match self.login {
                    Login::AwaitingUser => Step::SelectHost(name),
                    _ => reply(ReplyCode::BadSequence, "HOST must come before USER"),
                }
            }
            Command::Comb { target, parts } => self.comb(spec, &target, &parts),
            // No storage keeps a settable creation time (Unix file systems and object stores
            // set it themselves), so MFCT is answered plainly and not advertised.
            Command::Mfct { .. } => reply(
                ReplyCode::NotImplemented,
                "Creation times cannot be set on this storage",
            ),
            Command::Abor => self.abor(),
            Command::Site(arg) => self.site(&arg),
            Command::Pasv => self.pasv(false),
            Command::Epsv(arg) => self.epsv(arg),
            Command::Port(addr) => self.active(SocketAddr::V4(addr)),
            Command::Eprt(addr) => self.active(addr),
            // RFC 3659 4.1 lets a server answer SIZE in TYPE A with the stored size when it
            // cannot cheaply count the converted bytes. That is what vsftpd and Pure-FTPd do, and
            // what `ftplib.FTP.size()` right after login (TYPE A is the default) expects.
            // Resuming stays exact: REST is accepted only in TYPE I.
            Command::Size(arg) => self.with_path(spec, &arg, |_, path| {
                (Pending::Size(path.clone()), StorageOp::Metadata(path))
            }),
            Command::Mdtm(arg) => self.with_path(spec, &arg, |_, path| {
                (Pending::Mdtm(path.clone()), StorageOp::Metadata(path))
            }),
            Command::Mfmt { .. } if !self.capabilities().set_modified => reply(
                ReplyCode::NotImplemented,
                "This storage keeps its own modification times",
            ),
            Command::Mfmt { time, path } => self.with_path(spec, &path, |_, path| {
                (
                    Pending::Mfmt(path.clone(), time),
                    StorageOp::SetModified { path, time },
                )
            }),
            Command::Rest(offset) => {
                if offset > 0 && self.compressed {
                    return reply(
                        ReplyCode::ParameterNotImplemented,
                        "REST is not supported in MODE Z; use MODE S",
                    );
                }
                if offset > 0 && self.transfer_type == TransferType::Ascii {
                    return reply(
                        ReplyCode::ParameterNotImplemented,
                        "REST is only supported in binary mode; use TYPE I",
                    );
                }
                self.rest = offset;
                reply(
                    ReplyCode::PendingFurtherInformation,
                    format!("Restarting at {offset}; send STOR, APPE or RETR"),
                )
            }
            Command::Clnt(name) => {
                self.client_name = Some(name);
                reply(ReplyCode::CommandOk, "Noted")
            }
            Command::Auth => self.auth(),
            Command::Pbsz => {
                if !self.secure {
                    return reply(ReplyCode::BadSequence, "PBSZ needs AUTH TLS first");
                }
                self.pbsz = true;
                reply(ReplyCode::CommandOk, "PBSZ=0")
            }
            Command::Prot(level) => self.prot(level),
            Command::Ccc => {
                if !self.secure {
                    return reply(
                        ReplyCode::ProtectionDenied,
                        "The control connection is not protected",
                    );
                }
                if !self.config.tls.allow_ccc
                    || self.config.tls.required_for_login
                    || self.user_requires_tls()
                {
                    return reply(ReplyCode::DeniedByPolicy, "CCC is not allowed here");
                }
                Step::ClearControl(Reply::new(
                    ReplyCode::CommandOk,
                    "Control connection is now clear",
                ))
            }
        }
    }

    /// The engine's answer to [`Step::SelectHost`]: the host's greeting, or `None` for an
    /// unknown host.
    pub fn host_selected(&mut self, banner: Option<String>) -> Step {
        match banner {
            Some(banner) => Step::Reply(Reply::from_text(ReplyCode::ServiceReady, &banner)),
            None => reply(ReplyCode::ParameterNotImplemented, "Unknown host"),
        }
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

    /// HASH and the legacy digest commands: the digest is computed like a transfer (one at a
    /// time, abortable, STAT shows progress), without a data connection.
    fn hash(
        &mut self,
        spec: &'static CommandSpec,
        arg: &str,
        algorithm: HashAlgorithm,
        start: u64,
        end: Option<u64>,
        legacy: bool,
    ) -> Step {
        let path = match self.resolve_checked(spec, arg) {
            Ok(path) => path,
            Err(step) => return step,
        };
        self.start_job(TransferKind::Hash {
            path,
            algorithm,
            start,
            end,
            legacy,
        })
    }

    /// A job run like a transfer but without a data connection (HASH, COMB): one at a time,
    /// abortable, visible to STAT; a data connection set up before it stays for later.
    fn start_job(&mut self, kind: TransferKind) -> Step {
        let plan = TransferPlan {
            verb: self.verb,
            kind,
            ascii: false,
            data: DataEndpoint::None,
            protected: false,
            compressed: false,
        };
        self.transfer = Some(plan.clone());
        self.abort_requested = false;
        Step::Transfer(plan)
    }

    /// COMB: store permission on the target; retrieve and delete on every part.
    fn comb(&mut self, spec: &'static CommandSpec, target: &str, parts: &[String]) -> Step {
        let target = match self.resolve_checked(spec, target) {
            Ok(path) => path,
            Err(step) => return step,
        };
        let mut resolved = Vec::with_capacity(parts.len());
        for part in parts {
            let path = match self.cwd.resolve(part) {
                Ok(path) => path,
                Err(e) => return reply(ReplyCode::ArgumentSyntaxError, e.to_string()),
            };
            if !self.permits(Some(Perm::Retrieve), &path)
                || !self.permits(Some(Perm::Delete), &path)
            {
                return self.refuse(path);
            }
            resolved.push(path);
        }
        self.start_job(TransferKind::Combine {
            target,
            parts: resolved,
        })
    }

    /// ALLO with a size: checked against the space available where the storage can tell.
    fn allo(&mut self, size: Option<u64>) -> Step {
        match size {
            Some(size) if self.is_logged_in() && self.capabilities().available_space => {
                let dir = self.cwd.clone();
                self.pending = Pending::Allo(dir.clone(), size);
                Step::Storage(StorageOp::Available(dir))
            }
            _ => reply(ReplyCode::Superfluous, "ALLO not needed"),
        }
    }

    /// MFF: the modification time, then the mode, each where the storage can set it.
    fn mff(
        &mut self,
        spec: &'static CommandSpec,
        modify: Option<SystemTime>,
        mode: Option<u32>,
        arg: &str,
    ) -> Step {
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
        let path = match self.resolve_checked(spec, arg) {
            Ok(path) => path,
            Err(step) => return step,
        };
        if mode.is_some() && !self.permits(Some(Perm::Chmod), &path) {
            return self.refuse(path);
        }
        match (modify, mode) {
            (Some(time), _) => {
                self.pending = Pending::Mff {
                    path: path.clone(),
                    mode,
                    facts,
                };
                Step::Storage(StorageOp::SetModified { path, time })
            }
            (None, Some(mode)) => {
                self.pending = Pending::Mff {
                    path: path.clone(),
                    mode: None,
                    facts,
                };
                Step::Storage(StorageOp::SetMode { path, mode })
            }
            (None, None) => reply(ReplyCode::ArgumentSyntaxError, "MFF needs facts to set"),
        }
    }

    fn user_perms(&self) -> Option<&PermissionMap> {
        match &self.login {
            Login::LoggedIn(user) => Some(&user.permissions),
            _ => None,
        }
    }

    fn permits(&self, perm: Option<Perm>, path: &VirtualPath) -> bool {
        match (perm, self.user_perms()) {
            (None, _) => true,
            (Some(perm), Some(map)) => map.allows(perm, path),
            (Some(_), None) => false,
        }
    }

    /// Resolves `arg`, checks the command's permission there, and asks for a storage call.
    fn with_path(
        &mut self,
        spec: &'static CommandSpec,
        arg: &str,
        then: impl FnOnce(&Self, VirtualPath) -> (Pending, StorageOp),
    ) -> Step {
        match self.cwd.resolve(arg) {
            Ok(path) => self.with_resolved(spec, path, then),
            Err(e) => reply(ReplyCode::ArgumentSyntaxError, e.to_string()),
        }
    }

    fn with_resolved(
        &mut self,
        spec: &'static CommandSpec,
        path: VirtualPath,
        then: impl FnOnce(&Self, VirtualPath) -> (Pending, StorageOp),
    ) -> Step {
        if !self.permits(spec.perm, &path) {
            return self.refuse(path);
        }
        let (pending, op) = then(self, path);
        self.pending = pending;
        Step::Storage(op)
    }

    // --- Access control -------------------------------------------------------------------

    /// RFC 959 USER: the reply is the same for every name, so names cannot be probed.
    fn user(&mut self, name: String) -> Step {
        if self.is_logged_in() {
            return reply(
                ReplyCode::NotLoggedIn,
                "Already logged in; use REIN to change user",
            );
        }
        if self.config.tls.required_for_login && !self.secure {
            return reply(
                ReplyCode::NotLoggedIn,
                "TLS is required: use AUTH TLS before logging in",
            );
        }
        self.login = Login::AwaitingPassword { user: name };
        reply(ReplyCode::NeedPassword, "Password required")
    }

    /// RFC 959 PASS.
    fn pass(&mut self, password: Password) -> Step {
        match std::mem::replace(&mut self.login, Login::Authenticating) {
            Login::AwaitingPassword { user } => Step::Authenticate { user, password },
            Login::LoggedIn(user) => {
                self.login = Login::LoggedIn(user);
                reply(ReplyCode::BadSequence, "Already logged in")
            }
            Login::AwaitingUser | Login::Authenticating => {
                self.login = Login::AwaitingUser;
                reply(ReplyCode::BadSequence, "Send USER first")
            }
        }
    }

    /// The authenticator's answer to [`Step::Authenticate`]. Failures give the same reply
    /// whatever the reason (unknown user or wrong password).
    pub fn handle_auth_result(&mut self, result: Result<SessionUser, ()>) -> Step {
        match result {
            Ok(user) if user.tls_required && !self.secure => {
                self.login = Login::AwaitingUser;
                reply(
                    ReplyCode::NotLoggedIn,
                    "This account requires TLS: use AUTH TLS before logging in",
                )
            }
            Ok(user) => {
                let text = format!(
                    "User {} logged in",
                    crate::listing::display_name(&user.name)
                );
                self.login = Login::LoggedIn(user);
                self.cwd = VirtualPath::root();
                match &self.config.login_message {
                    Some(message) => {
                        let mut reply = Reply::from_text(ReplyCode::LoggedIn, message);
                        reply.lines.push(text);
                        Step::Reply(reply)
                    }
                    None => reply(ReplyCode::LoggedIn, text),
                }
            }
            Err(()) => {
                self.login = Login::AwaitingUser;
                self.login_failures += 1;
                if self.login_failures >= self.config.max_login_failures {
                    self.closing = true;
                    reply(
                        ReplyCode::ServiceNotAvailable,
                        "Too many failed logins; closing connection",
                    )
                } else {
                    reply(ReplyCode::NotLoggedIn, "Login incorrect")
                }
            }
        }
    }

    /// RFC 959 QUIT: if a transfer runs, its reply comes first, then 221.
    fn quit(&mut self) -> Step {
        if self.transfer.is_some() {
            self.quit_requested = true;
            return Step::Nothing;
        }
        self.closing = true;
        reply(ReplyCode::ClosingControl, "Goodbye")
    }

    /// RFC 959 REIN: back to the state right after connecting.
    fn rein(&mut self) -> Step {
        self.login = Login::AwaitingUser;
        self.cwd = VirtualPath::root();
        self.transfer_type = self.config.features.default_type;
        self.rest = 0;
        self.hash_range = None;
        self.data = DataSetup::None;
        self.epsv_all = false;
        self.facts = Facts::default();
        Step::Logout(Reply::new(
            ReplyCode::ServiceReady,
            "Service ready for new user",
        ))
    }

    // --- Data connection setup --------------------------------------------------------------

    fn pasv(&mut self, extended: bool) -> Step {
        if !extended && self.epsv_all {
            return reply(ReplyCode::BadSequence, "EPSV ALL in effect; use EPSV");
        }
        self.data = DataSetup::None;
        Step::OpenPassive { extended }
    }

    /// RFC 2428 EPSV.
    fn epsv(&mut self, arg: EpsvArg) -> Step {
        match arg {
            EpsvArg::All => {
                self.epsv_all = true;
                reply(ReplyCode::CommandOk, "EPSV ALL ok")
            }
            EpsvArg::Protocol(proto) => {
                let local_is_v4 = canonical(self.local.ip()).is_ipv4();
                if (proto == 1) != local_is_v4 {
                    return reply(
                        ReplyCode::NetworkProtocolNotSupported,
                        "Network protocol not supported, use the control connection's",
                    );
                }
                self.pasv(true)
            }
            EpsvArg::Any => self.pasv(true),
        }
    }

    /// The engine opened the passive listener for [`Step::OpenPassive`]: `port` is where it
    /// listens and `advertised` the IPv4 address to announce in a 227 reply (the masquerade
    /// address, or the control connection's own).
    pub fn passive_opened(
        &mut self,
        extended: bool,
        result: Result<(Option<Ipv4Addr>, u16), ()>,
    ) -> Step {
        match result {
            Ok((advertised, port)) => {
                if extended {
                    self.data = DataSetup::Passive;
                    return reply(ReplyCode::EnteringExtendedPassiveMode, format_epsv(port));
                }
                match advertised {
                    Some(ip) => {
                        self.data = DataSetup::Passive;
                        reply(ReplyCode::EnteringPassiveMode, format_pasv(ip, port))
                    }
                    None => reply(
                        ReplyCode::NetworkProtocolNotSupported,
                        "PASV needs IPv4; use EPSV",
                    ),
                }
            }
            Err(()) => reply(
                ReplyCode::CantOpenDataConnection,
                "Cannot open a passive port; try again",
            ),
        }
    }

    /// PORT and EPRT: only to the control connection's own host, and not to privileged ports,
    /// so the server cannot be used to bounce connections elsewhere.
    fn active(&mut self, addr: SocketAddr) -> Step {
        if !self.config.active_mode {
            return reply(
                ReplyCode::NotImplemented,
                "Active mode is disabled; use PASV or EPSV",
            );
        }
        if self.epsv_all {
            return reply(ReplyCode::BadSequence, "EPSV ALL in effect; use EPSV");
        }
        if !same_host(addr.ip(), self.peer.ip()) {
            return reply(
                ReplyCode::ArgumentSyntaxError,
                "Refusing a data connection to a foreign address",
            );
        }
        if addr.port() < self.config.min_active_port {
            return reply(
                ReplyCode::ArgumentSyntaxError,
                "Refusing a data connection to a privileged port",
            );
        }
        // Connect to the address family the socket really uses: the host is the peer (checked
        // above), so take the peer's own form of it, whichever form (IPv4, IPv6, IPv4-mapped)
        // the client wrote.
        let addr = SocketAddr::new(self.peer.ip(), addr.port());
        self.data = DataSetup::Active(addr);
        reply(ReplyCode::CommandOk, "Active data connection set up")
    }

    // --- Transfers ----------------------------------------------------------------------------

    fn start_transfer(&mut self, kind: TransferKind) -> Step {
        let data = match self.data {
            DataSetup::None => {
                return reply(
                    ReplyCode::CantOpenDataConnection,
                    "Use PASV, EPSV, PORT or EPRT first",
                );
            }
            DataSetup::Passive => DataEndpoint::Passive,
            DataSetup::Active(addr) => DataEndpoint::Active(addr),
        };
        if self.protection != Protection::Private
            && (self.config.tls.required_for_data || self.user_requires_tls())
        {
            self.data = DataSetup::None;
            return reply(
                ReplyCode::DataProtectionRequired,
                "Data connections must be protected: send PBSZ 0 and PROT P",
            );
        }
        self.data = DataSetup::None;
        let protected = self.protection == Protection::Private;
        let plan = TransferPlan {
            verb: self.verb,
            kind,
            ascii: self.transfer_type == TransferType::Ascii,
            data,
            protected,
            compressed: self.compressed,
        };
        self.transfer = Some(plan.clone());
        self.abort_requested = false;
        Step::Transfer(plan)
    }

    fn take_rest(&mut self) -> Result<u64, Step> {
        let offset = std::mem::take(&mut self.rest);
        if offset > 0 && self.transfer_type == TransferType::Ascii {
            return Err(reply(
                ReplyCode::ParameterNotImplemented,
                "REST is only supported in binary mode; use TYPE I",
            ));
        }
        Ok(offset)
    }

    fn resolve_checked(
        &mut self,
        spec: &'static CommandSpec,
        arg: &str,
    ) -> Result<VirtualPath, Step> {
        let path = self
            .cwd
            .resolve(arg)
            .map_err(|e| reply(ReplyCode::ArgumentSyntaxError, e.to_string()))?;
        if !self.permits(spec.perm, &path) {
            return Err(self.refuse(path));
        }
        Ok(path)
    }

    /// RFC 959 RETR, from the REST offset if one was given.
    fn retr(&mut self, spec: &'static CommandSpec, arg: &str) -> Step {
        let offset = match self.take_rest() {
            Ok(o) => o,
            Err(step) => return step,
        };
        match self.resolve_checked(spec, arg) {
            Ok(path) => self.start_transfer(TransferKind::Retrieve { path, offset }),
            Err(step) => step,
        }
    }

    /// RFC 959 STOR and APPE. Writing from a REST offset needs the append permission too,
    /// since it keeps what the file already holds.
    fn store(&mut self, spec: &'static CommandSpec, arg: &str, append: bool) -> Step {
        let offset = match self.take_rest() {
            Ok(o) => o,
            Err(step) => return step,
        };
        let path = match self.resolve_checked(spec, arg) {
            Ok(path) => path,
            Err(step) => return step,
        };
        if path.is_root() {
            let reply = reply_for(ErrorKind::IsADirectory, path.as_str());
            self.ended(path, None);
            return Step::Reply(reply);
        }
        let start = match offset {
            0 if append => WriteStart::Append,
            0 => WriteStart::Truncate,
            n => {
                if !self.permits(Some(Perm::Append), &path) {
                    return self.refuse(path);
                }
                WriteStart::At(n)
            }
        };
        self.start_transfer(TransferKind::Store { path, start })
    }

    /// RFC 959 STOU: store under a name the server makes unique.
    fn stou(&mut self, spec: &'static CommandSpec, arg: Option<String>) -> Step {
        self.rest = 0;
        let (dir, base) = match arg {
            Some(arg) => match self.resolve_checked(spec, &arg) {
                Ok(path) => {
                    let base = path.file_name().unwrap_or("file").to_string();
                    (path.parent(), base)
                }
                Err(step) => return step,
            },
            None => (self.cwd.clone(), "file".to_string()),
        };
        if !self.permits(spec.perm, &dir.join(&base)) {
            return self.refuse(dir.join(&base));
        }
        self.start_transfer(TransferKind::StoreUnique { dir, base })
    }

    /// LIST, NLST and MLSD.
    fn list(&mut self, spec: &'static CommandSpec, mut args: ListArgs, format: ListFormat) -> Step {
        self.rest = 0;
        if !self.config.features.list_args && !matches!(format, ListFormat::Facts(_)) {
            // `ls` options are not read: the whole argument is the path.
            args.all = false;
            args.path = (!args.raw.is_empty()).then(|| args.raw.clone());
        }
        let arg = args.path.as_deref().unwrap_or("");
        let path = match self.resolve_checked(spec, arg) {
            Ok(path) => path,
            Err(step) => return step,
        };
        // RFC 3659: MLSD takes no wildcards.
        let pattern = match format {
            ListFormat::Facts(_) => None,
            _ => match ListPattern::of_argument(arg, path.file_name()) {
                Ok(pattern) => pattern.map(Box::new),
                Err(e) => return reply(ReplyCode::ArgumentSyntaxError, e.to_string()),
            },
        };
        let permissions = self.user_perms().map(|m| m.at(&path)).unwrap_or_default();
        self.start_transfer(TransferKind::List {
            path,
            format,
            all: args.all,
            permissions,
            pattern,
        })
    }

    /// The 150 reply once the data connection is open.
    pub fn transfer_started(&self, info: &StartInfo) -> Reply {
        let mode = if self.transfer.as_ref().is_some_and(|t| t.ascii) {
            "ASCII"
        } else {
            "BINARY"
        };
        let text = match (&self.transfer, info) {
            (
                Some(TransferPlan {
                    kind: TransferKind::StoreUnique { .. },
                    ..
                }),
                StartInfo {
                    unique_name: Some(name),
                    ..
                },
            ) => {
                format!("FILE: {}", crate::listing::display_name(name))
            }
            (
                Some(TransferPlan {
                    kind: TransferKind::List { .. },
                    ..
                }),
                _,
            ) => "Here comes the directory listing".to_string(),
            (
                Some(TransferPlan {
                    kind: TransferKind::Retrieve { path, .. },
                    ..
                }),
                StartInfo {
                    size: Some(size), ..
                },
            ) => {
                format!(
                    "Opening {mode} mode data connection for {} ({size} bytes)",
                    crate::listing::display_name(path.as_str())
                )
            }
            (Some(plan), _) => format!(
                "Opening {mode} mode data connection for {}",
                describe(&plan.kind)
            ),
            (None, _) => "Opening data connection".to_string(),
        };
        Reply::new(ReplyCode::FileStatusOk, text)
    }

    /// The transfer ended: the replies to send, in order.
    pub fn handle_transfer_done(&mut self, outcome: TransferOutcome) -> Vec<Reply> {
        let plan = self.transfer.take();
        let subject = plan.as_ref().map(|p| describe(&p.kind)).unwrap_or_default();
        let combined = matches!(
            plan,
            Some(TransferPlan {
                kind: TransferKind::Combine { .. },
                ..
            })
        );
        let mut replies = vec![match outcome {
            TransferOutcome::Complete { bytes } if combined => Reply::new(
                ReplyCode::FileActionOk,
                format!("Combined into {subject} ({bytes} bytes)"),
            ),
            TransferOutcome::Hashed { digest, start, end } => {
                match plan.as_ref().map(|p| &p.kind) {
                    Some(TransferKind::Hash { legacy: true, .. }) => {
                        Reply::new(ReplyCode::FileActionOk, digest)
                    }
                    Some(TransferKind::Hash { algorithm, .. }) => Reply::new(
                        ReplyCode::FileStatus,
                        format!("{} {start}-{end} {digest} {subject}", algorithm.name()),
                    ),
                    _ => Reply::new(ReplyCode::LocalError, "Unexpected digest"),
                }
            }
            TransferOutcome::Complete { .. } => {
                Reply::new(ReplyCode::ClosingDataConnection, "Transfer complete")
            }
            TransferOutcome::Aborted => Reply::new(ReplyCode::TransferAborted, "Transfer aborted"),
            TransferOutcome::NoDataConnection => Reply::new(
                ReplyCode::CantOpenDataConnection,
                "Cannot open data connection",
            ),
            TransferOutcome::ConnectionLost => Reply::new(
                ReplyCode::TransferAborted,
                "Data connection lost; transfer aborted",
            ),
            TransferOutcome::Failed(kind) => reply_for(kind, &subject),
            TransferOutcome::OverLimit(limit) => Reply::new(
                ReplyCode::ExceededStorage,
                format!("{subject}: upload refused, {limit}; nothing was stored"),
            ),
            TransferOutcome::TlsFailed => Reply::new(
                ReplyCode::CantOpenDataConnection,
                "TLS handshake on the data connection failed",
            ),
            TransferOutcome::TlsNotResumed => Reply::new(
                ReplyCode::NetworkProtocolNotSupported,
                "TLS session of the data connection must resume the control connection's session",
            ),
        }];
        if let Some(plan) = plan {
            self.verb = plan.verb;
            match plan.kind {
                TransferKind::Retrieve { path, .. }
                | TransferKind::Store { path, .. }
                | TransferKind::List { path, .. }
                | TransferKind::Combine { target: path, .. } => self.ended(path, None),
                TransferKind::StoreUnique { dir, base } => self.ended(dir.join(&base), None),
                TransferKind::Hash { .. } => {}
            }
        }
        if std::mem::take(&mut self.abort_requested) {
            replies.push(Reply::new(
                ReplyCode::ClosingDataConnection,
                "ABOR successful",
            ));
        }
        if std::mem::take(&mut self.quit_requested) {
            self.closing = true;
            replies.push(Reply::new(ReplyCode::ClosingControl, "Goodbye"));
        }
        replies
    }

    /// RFC 959 ABOR.
    fn abor(&mut self) -> Step {
        if self.transfer.is_some() {
            self.abort_requested = true;
            return Step::AbortTransfer;
        }
        self.data = DataSetup::None;
        reply(ReplyCode::DataConnectionOpen, "No transfer to abort")
    }

    // --- Results of storage calls --------------------------------------------------------------

    /// The result of a [`Step::Storage`] call.
    pub fn handle_storage_result(&mut self, result: Result<StorageOutcome, ErrorKind>) -> Step {
        let pending = std::mem::replace(&mut self.pending, Pending::None);
        let meta = match result {
            Err(kind) => {
                let reply = reply_for(
                    kind,
                    pending_path(&pending).map(|p| p.as_str()).unwrap_or(""),
                );
                match pending {
                    Pending::Rnfr(path)
                    | Pending::Mkd(path)
                    | Pending::Done(path, _)
                    | Pending::Mfmt(path, _)
                    | Pending::Ok(path, _)
                    | Pending::Mff { path, .. } => self.ended(path, None),
                    Pending::Rnto { from, to } => self.ended(from, Some(to)),
                    Pending::None
                    | Pending::Cwd(_)
                    | Pending::Size(_)
                    | Pending::Mdtm(_)
                    | Pending::Mlst(_)
                    | Pending::Avbl(_)
                    | Pending::Allo(..) => {}
                }
                return Step::Reply(reply);
            }
            Ok(StorageOutcome::Metadata(meta)) => Some(meta),
            Ok(StorageOutcome::Available(bytes)) => {
                return match pending {
                    Pending::Avbl(_) => reply(ReplyCode::FileStatus, bytes.to_string()),
                    Pending::Allo(_, size) if size > bytes => reply(
                        ReplyCode::ExceededStorage,
                        format!("Not enough space: {bytes} bytes available"),
                    ),
                    Pending::Allo(_, _) => reply(
                        ReplyCode::CommandOk,
                        format!("ALLO ok: {bytes} bytes available"),
                    ),
                    _ => reply(ReplyCode::LocalError, "Unexpected storage result"),
                };
            }
            Ok(StorageOutcome::Done) => None,
        };
        match (pending, meta) {
            (Pending::Cwd(path), Some(meta)) => {
                if !meta.is_dir() {
                    return Step::Reply(reply_for(ErrorKind::NotADirectory, path.as_str()));
                }
                let text = format!("Directory changed to {}", quote_for_257(path.as_str()));
                self.cwd = path;
                reply(ReplyCode::FileActionOk, text)
            }
            (Pending::Size(path), Some(meta)) => {
                if !meta.is_file() {
                    return reply(
                        ReplyCode::FileUnavailable,
                        format!("{}: not a regular file", path),
                    );
                }
                reply(ReplyCode::FileStatus, meta.size.to_string())
            }
            (Pending::Mdtm(path), Some(meta)) => match meta.modified {
                Some(t) if meta.is_file() => reply(ReplyCode::FileStatus, format_timeval(t)),
                _ => reply(
                    ReplyCode::FileUnavailable,
                    format!("{}: no modification time", path),
                ),
            },
            (Pending::Mlst(path), Some(meta)) => {
                let perms = self.user_perms().map(|m| m.at(&path)).unwrap_or_default();
                let line = format_facts(&meta, path.as_str(), self.selected_facts(), perms);
                Step::Reply(Reply::multiline(
                    ReplyCode::FileActionOk,
                    format!("Listing {path}"),
                    [line],
                    "End",
                ))
            }
            (Pending::Rnfr(path), Some(_)) => {
                self.rename_from = Some(path);
                reply(ReplyCode::PendingFurtherInformation, "Ready for RNTO")
            }
            (Pending::Rnto { from, to }, _) => {
                let step = reply(ReplyCode::FileActionOk, format!("Renamed to {to}"));
                self.ended(from, Some(to));
                step
            }
            (Pending::Mkd(path), _) => {
                let step = reply(
                    ReplyCode::PathCreated,
                    format!("{} created", quote_for_257(path.as_str())),
                );
                self.ended(path, None);
                step
            }
            (Pending::Done(path, text), _) => {
                self.ended(path, None);
                reply(ReplyCode::FileActionOk, text)
            }
            (Pending::Mfmt(path, time), _) => {
                let step = reply(
                    ReplyCode::FileStatus,
                    format!("Modify={}; {}", format_timeval(time), path),
                );
                self.ended(path, None);
                step
            }
            (Pending::Ok(path, text), _) => {
                self.ended(path, None);
                reply(ReplyCode::CommandOk, text)
            }
            (
                Pending::Mff {
                    path,
                    mode: Some(mode),
                    facts,
                },
                _,
            ) => {
                self.pending = Pending::Mff {
                    path: path.clone(),
                    mode: None,
                    facts,
                };
                Step::Storage(StorageOp::SetMode { path, mode })
            }
            (Pending::Mff { path, facts, .. }, _) => {
                let step = reply(ReplyCode::FileStatus, format!("{facts} {path}"));
                self.ended(path, None);
                step
            }
            (_, _) => reply(ReplyCode::LocalError, "Unexpected storage result"),
        }
    }

    fn rmd(&mut self, spec: &'static CommandSpec, arg: &str) -> Step {
        let path = match self.resolve_checked(spec, arg) {
            Ok(path) => path,
            Err(step) => return step,
        };
        if path.is_root() {
            return self.refuse(path);
        }
        self.pending = Pending::Done(path.clone(), "Directory removed");
        Step::Storage(StorageOp::RemoveDir(path))
    }

    fn rnto(&mut self, spec: &'static CommandSpec, arg: &str, from: Option<VirtualPath>) -> Step {
        let Some(from) = from else {
            return reply(ReplyCode::BadSequence, "RNTO must follow RNFR");
        };
        let to = match self.resolve_checked(spec, arg) {
            Ok(path) => path,
            Err(step) => return step,
        };
        if from.is_root() || to.is_root() {
            self.ended(from, Some(to));
            return Step::Reply(reply_for(ErrorKind::PermissionDenied, "/"));
        }
        self.pending = Pending::Rnto {
            from: from.clone(),
            to: to.clone(),
        };
        Step::Storage(StorageOp::Rename { from, to })
    }

    // --- Informational ----------------------------------------------------------------------

    fn stat(&mut self, spec: &'static CommandSpec, arg: Option<String>) -> Step {
        if self.transfer.is_some() {
            return Step::TransferStatus;
        }
        let Some(arg) = arg else {
            return Step::Reply(self.status_reply(None));
        };
        if !self.is_logged_in() {
            return reply(
                ReplyCode::NotLoggedIn,
                "Please log in with USER and PASS first",
            );
        }
        match self.resolve_checked(spec, &arg) {
            Ok(path) => Step::StatListing { path },
            Err(step) => step,
        }
    }

    /// The 211 reply to STAT without a path; during a transfer, `progress` is the bytes moved.
    pub fn status_reply(&self, progress: Option<u64>) -> Reply {
        let mut lines = vec![format!("Connected to {}", self.peer.ip())];
        match &self.login {
            Login::LoggedIn(user) => lines.push(format!(
                "Logged in as {}",
                crate::listing::display_name(&user.name)
            )),
            _ => lines.push("Not logged in".to_string()),
        }
        lines.push(format!(
            "TYPE: {}, STRUcture: File, MODE: {}",
            if self.transfer_type == TransferType::Ascii {
                "ASCII"
            } else {
                "BINARY"
            },
            if self.compressed { "Deflate" } else { "Stream" }
        ));
        match (&self.transfer, progress) {
            (Some(plan), bytes) => lines.push(format!(
                "Transfer in progress: {}, {} bytes so far",
                describe(&plan.kind),
                bytes.unwrap_or(0)
            )),
            (None, _) => lines.push("No data connection".to_string()),
        }
        Reply::multiline(
            ReplyCode::SystemStatus,
            "ftpgate status:",
            lines,
            "End of status",
        )
    }

    fn help(&self, topic: Option<String>) -> Step {
        match topic {
            Some(verb) => match crate::command::lookup(&verb) {
                Some(spec) => reply(ReplyCode::HelpMessage, format!("Syntax: {}", spec.help)),
                None => reply(ReplyCode::ArgumentSyntaxError, "Unknown command"),
            },
            None => {
                let verbs: Vec<&str> = COMMANDS.iter().map(|c| c.verb).collect();
                let lines = verbs.chunks(8).map(|chunk| {
                    chunk
                        .iter()
                        .map(|v| format!("{v:<5}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                });
                Step::Reply(Reply::multiline(
                    ReplyCode::HelpMessage,
                    "The following commands are recognized:",
                    lines,
                    "Help OK",
                ))
            }
        }
    }

    /// RFC 4217 AUTH TLS (and its synonyms). Anything the client sent after it in the same
    /// packet is dropped by the engine before the handshake.
    fn auth(&mut self) -> Step {
        if !self.config.tls.available {
            return reply(
                ReplyCode::NotImplemented,
                "TLS is not configured on this server",
            );
        }
        if self.secure {
            return reply(ReplyCode::BadSequence, "Already using TLS");
        }
        if !self.is_logged_in() {
            self.login = Login::AwaitingUser;
        }
        Step::UpgradeTls(Reply::new(
            ReplyCode::SecurityExchangeComplete,
            "AUTH TLS successful",
        ))
    }

    /// RFC 4217 PROT.
    fn prot(&mut self, level: Protection) -> Step {
        if !self.secure {
            return reply(ReplyCode::BadSequence, "PROT needs AUTH TLS first");
        }
        if !self.pbsz {
            return reply(ReplyCode::BadSequence, "PROT needs PBSZ first");
        }
        if level == Protection::Clear
            && (self.config.tls.required_for_data || self.user_requires_tls())
        {
            return reply(
                ReplyCode::DeniedByPolicy,
                "Data connections must be protected (PROT P)",
            );
        }
        self.protection = level;
        match level {
            Protection::Clear => reply(ReplyCode::CommandOk, "Protection level set to C"),
            Protection::Private => reply(ReplyCode::CommandOk, "Protection level set to P"),
        }
    }

    /// RFC 2389 FEAT: one line per extension, from the command table.
    fn feat(&self) -> Step {
        const TLS_VERBS: [&str; 4] = ["AUTH", "PBSZ", "PROT", "CCC"];
        let tls = self.config.tls;
        let caps = self.capabilities();
        let features = self.config.features;
        let mut lines: Vec<String> = COMMANDS
            .iter()
            .filter(|c| {
                !TLS_VERBS.contains(&c.verb)
                    || (tls.available && (c.verb != "CCC" || tls.allow_ccc))
            })
            .filter(|c| features.allows(c.verb))
            .filter(|c| c.verb != "MODE" || features.mode_z)
            .filter(|c| c.verb != "HOST" || self.config.virtual_hosts)
            .filter(|c| match c.verb {
                "AVBL" => caps.available_space,
                "MFMT" => caps.set_modified,
                "MFF" => caps.set_modified || caps.set_mode,
                _ => true,
            })
            .filter_map(|c| c.feat)
            .map(|f| match f {
                "MLST" => self.facts.feat_line(caps.facts),
                "HASH" => HashAlgorithm::feat_line(self.hash_algorithm),
                "MFF modify;UNIX.mode;" => {
                    let mut line = "MFF ".to_string();
                    if caps.set_modified {
                        line.push_str("modify;");
                    }
                    if caps.set_mode {
                        line.push_str("UNIX.mode;");
                    }
                    line
                }
                f => f.to_string(),
            })
            .collect();
        lines.push("TVFS".to_string());
        lines.sort();
        Step::Reply(Reply::multiline(
            ReplyCode::SystemStatus,
            "Features:",
            lines,
            "End",
        ))
    }

    /// RFC 2389 OPTS.
    fn opts(&mut self, name: &str, value: &str) -> Step {
        match name {
            "UTF8" | "UTF-8" => match value.to_ascii_uppercase().as_str() {
                "" | "ON" => reply(ReplyCode::CommandOk, "Always in UTF8 mode"),
                "OFF" => reply(
                    ReplyCode::ParameterNotImplemented,
                    "UTF8 cannot be turned off",
                ),
                _ => reply(ReplyCode::ArgumentSyntaxError, "Use OPTS UTF8 ON"),
            },
            "MLST" => {
                self.facts = Facts::select(value);
                reply(
                    ReplyCode::CommandOk,
                    format!("MLST OPTS {}", self.selected_facts().names()),
                )
            }
            "HASH" if self.config.features.hash => {
                if value.is_empty() {
                    return reply(ReplyCode::CommandOk, self.hash_algorithm.name());
                }
                match HashAlgorithm::from_name(value) {
                    Some(algorithm) => {
                        self.hash_algorithm = algorithm;
                        reply(ReplyCode::CommandOk, algorithm.name())
                    }
                    None => reply(
                        ReplyCode::ParameterNotImplemented,
                        "Unknown algorithm; see FEAT",
                    ),
                }
            }
            _ => reply(ReplyCode::ArgumentSyntaxError, "Unknown option"),
        }
    }

    /// SITE HELP, CHMOD, UTIME, MKDIR, RMDIR and SYMLINK.
    fn site(&mut self, arg: &str) -> Step {
        let (sub, rest) = arg.split_once(' ').unwrap_or((arg, ""));
        let rest = rest.trim_start();
        let caps = self.capabilities();
        let unsupported = |what: &str| {
            reply(
                ReplyCode::NotImplemented,
                format!("SITE {what} is not supported by this storage"),
            )
        };
        let sub = sub.to_ascii_uppercase();
        self.verb = match sub.as_str() {
            "CHMOD" => "SITE CHMOD",
            "UTIME" => "SITE UTIME",
            "MKDIR" => "SITE MKDIR",
            "RMDIR" => "SITE RMDIR",
            "SYMLINK" => "SITE SYMLINK",
            _ => "SITE",
        };
        match sub.as_str() {
            "HELP" => Step::Reply(Reply::multiline(
                ReplyCode::HelpMessage,
                "The following SITE commands are recognized:",
                [
                    "CHMOD <sp> mode <sp> pathname".to_string(),
                    "UTIME <sp> pathname <sp> YYYYMMDDHHMMSS".to_string(),
                    "UTIME <sp> YYYYMMDDHHMMSS <sp> pathname".to_string(),
                    "MKDIR <sp> pathname".to_string(),
                    "RMDIR <sp> pathname".to_string(),
                    "SYMLINK <sp> target <sp> link".to_string(),
                    "HELP".to_string(),
                ],
                "Help OK",
            )),
            "CHMOD" => {
                if !caps.set_mode && !caps.ignore_set_mode {
                    return unsupported("CHMOD");
                }
                let Some((mode, name)) = rest.split_once(' ') else {
                    return reply(ReplyCode::ArgumentSyntaxError, "SITE CHMOD mode pathname");
                };
                let Some(mode) = u32::from_str_radix(mode, 8).ok().filter(|m| *m <= 0o7777) else {
                    return reply(ReplyCode::ArgumentSyntaxError, "Bad mode, expected octal");
                };
                self.mode = Some(mode);
                if let Err(step) = permission_bits_only(mode) {
                    if let Ok(path) = self.cwd.resolve(name) {
                        self.ended(path, None);
                    }
                    return step;
                }
                if !caps.set_mode {
                    // The storage keeps no permission bits: the file must exist, nothing else
                    // happens (clients that set modes after each upload see no error).
                    return self.site_op(Perm::Chmod, name, |path| {
                        (
                            Pending::Ok(
                                path.clone(),
                                "SITE CHMOD ignored: this storage keeps no permissions".into(),
                            ),
                            StorageOp::Metadata(path),
                        )
                    });
                }
                self.site_op(Perm::Chmod, name, |path| {
                    (
                        Pending::Ok(path.clone(), "SITE CHMOD command successful".into()),
                        StorageOp::SetMode { path, mode },
                    )
                })
            }
            "UTIME" => {
                if !caps.set_modified {
                    return unsupported("UTIME");
                }
                let Some((name, time)) = parse_site_utime(rest) else {
                    return reply(
                        ReplyCode::ArgumentSyntaxError,
                        "SITE UTIME pathname YYYYMMDDHHMMSS",
                    );
                };
                self.site_op(Perm::SetTime, &name, |path| {
                    (
                        Pending::Ok(path.clone(), "SITE UTIME command successful".into()),
                        StorageOp::SetModified { path, time },
                    )
                })
            }
            "MKDIR" => self.site_op(Perm::Mkdir, rest, |path| {
                (Pending::Mkd(path.clone()), StorageOp::MakeDir(path))
            }),
            "RMDIR" => {
                if let Some(root) = self.cwd.resolve(rest).ok().filter(|p| p.is_root()) {
                    return self.refuse(root);
                }
                self.site_op(Perm::Delete, rest, |path| {
                    (
                        Pending::Done(path.clone(), "Directory removed"),
                        StorageOp::RemoveDir(path),
                    )
                })
            }
            "SYMLINK" => {
                if !caps.symlink {
                    return unsupported("SYMLINK");
                }
                let Some((target, link)) = rest.split_once(' ') else {
                    return reply(ReplyCode::ArgumentSyntaxError, "SITE SYMLINK target link");
                };
                // Both ends are paths inside the user's root, so the link cannot lead out.
                let target = match self.cwd.resolve(target) {
                    Ok(target) if self.permits(Some(Perm::Retrieve), &target) => target,
                    Ok(target) => return self.refuse(target),
                    Err(e) => return reply(ReplyCode::ArgumentSyntaxError, e.to_string()),
                };
                self.site_op(Perm::Store, link, |link| {
                    (
                        Pending::Ok(link.clone(), "SITE SYMLINK command successful".into()),
                        StorageOp::Symlink { target, link },
                    )
                })
            }
            _ => reply(ReplyCode::ParameterNotImplemented, "Unknown SITE command"),
        }
    }

    /// A SITE subcommand on one path: resolve, check `perm`, ask for the storage call.
    fn site_op(
        &mut self,
        perm: Perm,
        arg: &str,
        then: impl FnOnce(VirtualPath) -> (Pending, StorageOp),
    ) -> Step {
        if arg.is_empty() {
            return reply(ReplyCode::ArgumentSyntaxError, "A path is required");
        }
        let path = match self.cwd.resolve(arg) {
            Ok(path) => path,
            Err(e) => return reply(ReplyCode::ArgumentSyntaxError, e.to_string()),
        };
        if !self.permits(Some(perm), &path) {
            return self.refuse(path);
        }
        let (pending, op) = then(path);
        self.pending = pending;
        Step::Storage(op)
    }
}

/// Clients may set permission bits (0o777) only: a setuid, setgid or sticky bit is refused,
/// so a daemon running as root can never be made to create a setuid file.
fn permission_bits_only(mode: u32) -> Result<(), Step> {
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

/// `SITE UTIME` arguments in the forms clients send: `path YYYYMMDDhhmm[ss]`,
/// `YYYYMMDDhhmm[ss] path`, and `path atime mtime ctime UTC` (the modification time is used).
fn parse_site_utime(arg: &str) -> Option<(String, SystemTime)> {
    let is_time =
        |w: &str| (w.len() == 12 || w.len() == 14) && w.bytes().all(|b| b.is_ascii_digit());
    let time_of = |w: &str| {
        let full = if w.len() == 12 {
            format!("{w}00")
        } else {
            w.to_string()
        };
        crate::listing::parse_timeval(&full)
    };
    let words: Vec<&str> = arg.split(' ').collect();
    if words.len() >= 5 && words[words.len() - 1].eq_ignore_ascii_case("UTC") {
        let n = words.len();
        if words[n - 4..n - 1].iter().all(|w| is_time(w)) {
            return Some((words[..n - 4].join(" "), time_of(words[n - 3])?));
        }
    }
    if let Some((first, rest)) = arg.split_once(' ') {
        if is_time(first) && !rest.is_empty() {
            return Some((rest.to_string(), time_of(first)?));
        }
    }
    let (rest, last) = arg.rsplit_once(' ')?;
    if is_time(last) && !rest.is_empty() {
        return Some((rest.to_string(), time_of(last)?));
    }
    None
}

fn describe(kind: &TransferKind) -> String {
    let path = match kind {
        TransferKind::Retrieve { path, .. }
        | TransferKind::Store { path, .. }
        | TransferKind::List { path, .. }
        | TransferKind::Hash { path, .. }
        | TransferKind::Combine { target: path, .. } => path.clone(),
        TransferKind::StoreUnique { dir, base } => dir.join(base),
    };
    crate::listing::display_name(path.as_str()).into_owned()
}

fn pending_path(pending: &Pending) -> Option<&VirtualPath> {
    match pending {
        Pending::None => None,
        Pending::Cwd(p)
        | Pending::Size(p)
        | Pending::Mdtm(p)
        | Pending::Mlst(p)
        | Pending::Rnfr(p)
        | Pending::Rnto { to: p, .. }
        | Pending::Mkd(p)
        | Pending::Done(p, _)
        | Pending::Mfmt(p, _)
        | Pending::Ok(p, _)
        | Pending::Avbl(p)
        | Pending::Allo(p, _)
        | Pending::Mff { path: p, .. } => Some(p),
    }
}
