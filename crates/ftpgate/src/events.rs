//! Events for embedders: what users did, as it happens.
//!
//! Give the server an [`EventHandler`] with [`Server::with_events`](crate::Server::with_events)
//! to feed an audit log, metrics, a message queue or a post-upload job. Handlers are called on
//! the session's task right after the fact: they must return quickly (hand slow work to a
//! channel or a spawned task).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ftpgate_core::StorageErrorKind;
use ftpgate_proto::VirtualPath;
use ftpgate_proto::session::{TransferOutcome, UploadLimit};

use crate::sessions::SessionId;

/// Something a user did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A user logged in.
    Login {
        /// The session.
        session: SessionId,
        /// The user.
        user: String,
        /// The client's address.
        client: IpAddr,
    },
    /// A login was refused (unknown user or wrong password alike).
    LoginFailed {
        /// The session.
        session: SessionId,
        /// The name given.
        user: String,
        /// The client's address.
        client: IpAddr,
    },
    /// A login could not be decided: the authenticator was unavailable (its backend down or
    /// too slow). The client got 421; this is no failed login (not counted towards bans).
    LoginUnavailable {
        /// The session.
        session: SessionId,
        /// The name given.
        user: String,
        /// The client's address.
        client: IpAddr,
        /// What the authenticator said.
        reason: String,
    },
    /// A user logged out (QUIT, REIN, or the connection ended).
    Logout {
        /// The session.
        session: SessionId,
        /// The user.
        user: String,
        /// The client's address.
        client: IpAddr,
    },
    /// A transfer ended.
    Transfer(TransferRecord),
    /// A file was deleted.
    Deleted {
        /// The session.
        session: SessionId,
        /// The user.
        user: String,
        /// The file.
        path: VirtualPath,
    },
    /// A file or directory was renamed.
    Renamed {
        /// The session.
        session: SessionId,
        /// The user.
        user: String,
        /// The old name.
        from: VirtualPath,
        /// The new name.
        to: VirtualPath,
    },
    /// A directory was made.
    MadeDir {
        /// The session.
        session: SessionId,
        /// The user.
        user: String,
        /// The directory.
        path: VirtualPath,
    },
    /// A directory was removed.
    RemovedDir {
        /// The session.
        session: SessionId,
        /// The user.
        user: String,
        /// The directory.
        path: VirtualPath,
    },
}

/// Which way a transfer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// RETR.
    Download,
    /// STOR, APPE or STOU.
    Upload,
}

/// One ended transfer (listings and digests are not reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRecord {
    /// The session.
    pub session: SessionId,
    /// The user.
    pub user: String,
    /// The client's address.
    pub client: IpAddr,
    /// Download or upload.
    pub direction: Direction,
    /// The file (for STOU, the directory and the name asked for).
    pub path: VirtualPath,
    /// Bytes moved on the data connection.
    pub bytes: u64,
    /// From the command to the end of the transfer.
    pub duration: Duration,
    /// Whether it completed: an upload was committed, a download sent in full. An upload
    /// that did not complete was aborted, and nothing of it is visible.
    pub complete: bool,
    /// Why it did not complete (`None` when it did): a short, stable word for logs and
    /// filters, see [`TransferRecord::failure_of`].
    pub failure: Option<&'static str>,
    /// TYPE A: line endings were converted (`false`: TYPE I, binary).
    pub ascii: bool,
    /// PROT P: the data connection was TLS.
    pub tls: bool,
    /// The storage's [`backend_name`](ftpgate_core::Storage::backend_name): `fs`, `s3`…
    pub storage: &'static str,
}

impl TransferRecord {
    /// The [`failure`](Self::failure) word of a transfer's outcome: `aborted` (ABOR, or the
    /// control connection or the server ended first), `no_data_connection`,
    /// `connection_lost` (the data connection broke or stalled past the data timeout),
    /// `storage_error`, `not_found`, `permission_denied`, `no_space`, `file_too_large`
    /// (`max_file_size`), `quota`, `tls_failed` or `tls_not_resumed`; `None` for a complete transfer.
    pub fn failure_of(outcome: &TransferOutcome) -> Option<&'static str> {
        Some(match outcome {
            TransferOutcome::Complete { .. } | TransferOutcome::Hashed { .. } => return None,
            TransferOutcome::Aborted => "aborted",
            TransferOutcome::NoDataConnection => "no_data_connection",
            TransferOutcome::ConnectionLost => "connection_lost",
            TransferOutcome::Failed(StorageErrorKind::NotFound) => "not_found",
            TransferOutcome::Failed(StorageErrorKind::PermissionDenied) => "permission_denied",
            TransferOutcome::Failed(StorageErrorKind::InsufficientStorage) => "no_space",
            TransferOutcome::Failed(StorageErrorKind::ExceededStorage) => "quota",
            TransferOutcome::Failed(_) => "storage_error",
            TransferOutcome::OverLimit(UploadLimit::MaxFileSize(_)) => "file_too_large",
            TransferOutcome::OverLimit(UploadLimit::Quota(_) | UploadLimit::QuotaFiles(_)) => {
                "quota"
            }
            TransferOutcome::TlsFailed => "tls_failed",
            TransferOutcome::TlsNotResumed => "tls_not_resumed",
        })
    }
}

/// Receives [`Event`]s.
pub trait EventHandler: Send + Sync + 'static {
    /// Called once per event, on the session's task; must not block.
    fn on_event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync + 'static> EventHandler for F {
    fn on_event(&self, event: &Event) {
        self(event)
    }
}

/// The embedder's handler, if there is one: what the engine calls to report an event.
#[derive(Clone, Default)]
pub(crate) struct Emitter(Option<Arc<dyn EventHandler>>);

impl Emitter {
    pub(crate) fn new(handler: Option<Arc<dyn EventHandler>>) -> Self {
        Emitter(handler)
    }

    /// Tells the handler, building the event only if there is one.
    pub(crate) fn emit(&self, event: impl FnOnce() -> Event) {
        if let Some(handler) = &self.0 {
            handler.on_event(&event());
        }
    }
}
