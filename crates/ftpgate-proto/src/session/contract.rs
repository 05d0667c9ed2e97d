//! The contract between the session and the engine that drives it: what the session asks
//! for ([`Step`], [`StorageOp`], [`TransferPlan`]) and what the engine reports back
//! ([`SessionUser`], [`StorageOutcome`], [`StartInfo`], [`TransferOutcome`]), plus the
//! [`FileOp`] record the engine logs. Plain data, no behaviour beyond formatting.

use std::net::SocketAddr;
use std::time::SystemTime;

#[cfg(doc)]
use super::Session;
use crate::backend::{Capabilities, HashAlgorithm, Metadata, StorageErrorKind, WriteStart};
use crate::command::Password;
use crate::glob::ListPattern;
use crate::listing::ListFormat;
use crate::path::VirtualPath;
use crate::perm::{PermissionMap, Permissions};
use crate::reply::Reply;

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

/// Why the engine could not log a user in ([`Session::handle_auth_result`](super::Session::handle_auth_result)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown user or wrong password (or the user's home could not be opened): 530, and it
    /// counts towards the session's limit of failed logins.
    Rejected,
    /// The authenticator could not decide (its backend is down or timed out): 421 and the
    /// connection closes; not a failed login.
    Unavailable,
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
    Failed(StorageErrorKind),
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
    /// The user's quota, in files: the upload would make one more.
    QuotaFiles(u64),
}

impl std::fmt::Display for UploadLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadLimit::MaxFileSize(max) => {
                write!(f, "larger than the maximum file size of {}", Size(*max))
            }
            UploadLimit::Quota(quota) => write!(f, "over the quota of {}", Size(*quota)),
            UploadLimit::QuotaFiles(1) => write!(f, "over the quota of 1 file"),
            UploadLimit::QuotaFiles(files) => write!(f, "over the quota of {files} files"),
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
    /// Open a passive listener, then call [`Session::handle_passive_opened`].
    OpenPassive {
        /// EPSV (229) rather than PASV (227).
        extended: bool,
    },
    /// Run a transfer: open storage, make the data connection, send the 150 reply of
    /// [`Session::handle_transfer_started`], move the bytes, then call
    /// [`Session::handle_transfer_done`].
    Transfer(TransferPlan),
    /// AUTH TLS: send this reply in the clear, drop anything the client sent after AUTH, run
    /// the TLS handshake, then call [`Session::handle_tls_established`]; close if it fails.
    UpgradeTls(Reply),
    /// CCC: send this reply over TLS, close TLS (both close_notify alerts), then go on in the
    /// clear and call [`Session::handle_control_cleared`].
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
    /// HOST: find the virtual host `name`, then call [`Session::handle_host_selected`].
    SelectHost(String),
    /// Nothing to send now (QUIT during a transfer waits for it to end).
    Nothing,
}
