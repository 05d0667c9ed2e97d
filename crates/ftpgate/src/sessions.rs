//! The live sessions: an id for each, and a registry the engine keeps up to date cheaply, for
//! operators (who is connected, what runs, how fast) and to end one session.
//!
//! Each session owns an `Arc<SessionEntry>`; the registry holds the same `Arc`s in a map taken
//! under a mutex only when a session starts or ends and when someone asks for a snapshot. The
//! session updates its entry in place: atomics for the TLS state and the last command (a store
//! per command, no lock, no allocation), a mutex for the user name (at login and logout) and the
//! running transfer (at its start and end); the transfer's byte counter is the atomic its
//! loops already update for STAT. Ending a session sets its flag and wakes it; the session's own task
//! then aborts its transfer (as ABOR would) and the session writes the 421.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Instant, SystemTime};

use ftpgate_proto::command::COMMANDS;
use futures_util::task::AtomicWaker;

use crate::session_context::SessionContext;

/// A session's id: unique in the process, assigned when the connection is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    /// The next id (ids start at 1 and are never reused in a process).
    pub(crate) fn next() -> SessionId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SessionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The id of this number (to look a session up, as given by [`SessionId::as_u64`]).
    pub fn from_u64(id: u64) -> SessionId {
        SessionId(id)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// No command yet, in [`SessionEntry::last_command`].
const NO_COMMAND: u16 = 0;
/// A line that was no command.
const UNKNOWN_COMMAND: u16 = u16::MAX;

/// What a session shows of itself while it runs; updated by the session's own task.
pub(crate) struct SessionEntry {
    pub(crate) id: SessionId,
    client: SocketAddr,
    listener: SocketAddr,
    since: SystemTime,
    user: Mutex<Option<String>>,
    tls_control: AtomicBool,
    tls_data: AtomicBool,
    /// `COMMANDS` index + 1, or [`NO_COMMAND`] / [`UNKNOWN_COMMAND`].
    last_command: AtomicU16,
    transfer: Mutex<Option<LiveTransfer>>,
    /// Set to end the session ([`SessionsHandle::end_session`]).
    end: AtomicBool,
    /// The session's task, woken when `end` is set. Polled on every turn of the control loop,
    /// so it is lock-free (a cancellation token's waiter list takes a mutex per poll).
    end_waker: AtomicWaker,
}

/// The running transfer, as the registry sees it.
pub(crate) struct LiveTransfer {
    pub(crate) command: &'static str,
    pub(crate) path: String,
    pub(crate) started: SystemTime,
    pub(crate) began: Instant,
    /// Bytes moved so far (the transfer loops' own counter).
    pub(crate) progress: Arc<AtomicU64>,
    /// The whole size, once known (downloads); `u64::MAX` until then.
    pub(crate) size: Arc<AtomicU64>,
}

impl SessionEntry {
    /// The user logged in (or `None` at logout).
    pub(crate) fn set_user(&self, user: Option<&str>) {
        if let Ok(mut slot) = self.user.lock() {
            *slot = user.map(str::to_string);
        }
    }

    /// The TLS state: control connection protected, data connections protected.
    pub(crate) fn set_tls(&self, control: bool, data: bool) {
        self.tls_control.store(control, Ordering::Relaxed);
        self.tls_data.store(data, Ordering::Relaxed);
    }

    /// The last command: its `COMMANDS` index, or `None` for a line that was no command.
    pub(crate) fn set_last_command(&self, index: Option<usize>) {
        let value = index
            .and_then(|i| u16::try_from(i + 1).ok())
            .unwrap_or(UNKNOWN_COMMAND);
        self.last_command.store(value, Ordering::Relaxed);
    }

    /// The running transfer (or `None` when it ended).
    pub(crate) fn set_transfer(&self, transfer: Option<LiveTransfer>) {
        if let Ok(mut slot) = self.transfer.lock() {
            *slot = transfer;
        }
    }

    /// Ready once the session is to end ([`SessionsHandle::end_session`]).
    pub(crate) async fn ended(&self) {
        std::future::poll_fn(|cx| {
            self.end_waker.register(cx.waker());
            if self.end.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    fn info(&self) -> SessionInfo {
        let last_command = match self.last_command.load(Ordering::Relaxed) {
            NO_COMMAND => None,
            UNKNOWN_COMMAND => Some("unknown"),
            i => COMMANDS.get(usize::from(i) - 1).map(|spec| spec.verb),
        };
        let transfer = self.transfer.lock().ok().and_then(|t| {
            t.as_ref().map(|t| {
                let bytes = t.progress.load(Ordering::Relaxed);
                let seconds = t.began.elapsed().as_secs_f64();
                let size = t.size.load(Ordering::Relaxed);
                TransferInfo {
                    command: t.command,
                    path: t.path.clone(),
                    bytes,
                    size: (size != u64::MAX).then_some(size),
                    rate: if seconds > 0.0 {
                        bytes as f64 / seconds
                    } else {
                        0.0
                    },
                    started: t.started,
                }
            })
        });
        SessionInfo {
            id: self.id,
            user: self.user.lock().ok().and_then(|u| u.clone()),
            client: self.client,
            listener: self.listener,
            tls_control: self.tls_control.load(Ordering::Relaxed),
            tls_data: self.tls_data.load(Ordering::Relaxed),
            since: self.since,
            last_command,
            transfer,
        }
    }
}

/// One live session, as [`SessionsHandle::snapshot`] saw it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session's id.
    pub id: SessionId,
    /// The logged-in user (`None` before login).
    pub user: Option<String>,
    /// The client's address.
    pub client: SocketAddr,
    /// The local address the client connected to.
    pub listener: SocketAddr,
    /// Whether the control connection is TLS.
    pub tls_control: bool,
    /// Whether data connections are protected (PROT P).
    pub tls_data: bool,
    /// When the connection was accepted.
    pub since: SystemTime,
    /// The verb of the last command (`"unknown"` for a line that was no command); never an
    /// argument.
    pub last_command: Option<&'static str>,
    /// The running transfer, if any.
    pub transfer: Option<TransferInfo>,
}

/// A running transfer, in a [`SessionInfo`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransferInfo {
    /// The command (RETR, STOR, APPE, STOU, LIST, ...).
    pub command: &'static str,
    /// Its path.
    pub path: String,
    /// Bytes moved so far on the data connection.
    pub bytes: u64,
    /// The file's size for a download, once known.
    pub size: Option<u64>,
    /// Average rate since the command, in bytes per second.
    pub rate: f64,
    /// When the command came.
    pub started: SystemTime,
}

/// The sessions of one server.
#[derive(Default)]
pub(crate) struct Registry {
    map: Mutex<HashMap<SessionId, Arc<SessionEntry>>>,
}

impl Registry {
    /// Registers a new session; it leaves the registry when the returned guard is dropped.
    pub(crate) fn register(
        self: &Arc<Self>,
        client: SocketAddr,
        listener: SocketAddr,
    ) -> Registration {
        let entry = Arc::new(SessionEntry {
            id: SessionId::next(),
            client,
            listener,
            since: SystemTime::now(),
            user: Mutex::new(None),
            tls_control: AtomicBool::new(false),
            tls_data: AtomicBool::new(false),
            last_command: AtomicU16::new(NO_COMMAND),
            transfer: Mutex::new(None),
            end: AtomicBool::new(false),
            end_waker: AtomicWaker::new(),
        });
        if let Ok(mut map) = self.map.lock() {
            map.insert(entry.id, entry.clone());
        }
        Registration {
            registry: self.clone(),
            entry,
        }
    }
}

/// A session's place in the registry; removes it when dropped.
pub(crate) struct Registration {
    registry: Arc<Registry>,
    pub(crate) entry: Arc<SessionEntry>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut map) = self.registry.map.lock() {
            map.remove(&self.entry.id);
        }
    }
}

/// A handle on a running server's live sessions (from
/// [`BoundServer::sessions`](crate::BoundServer::sessions)); cheap to clone, usable from any
/// task or thread.
#[derive(Clone)]
pub struct SessionsHandle {
    pub(crate) ctx: Arc<SessionContext>,
}

impl SessionsHandle {
    /// Every live session, by id.
    pub fn snapshot(&self) -> Vec<SessionInfo> {
        let entries: Vec<Arc<SessionEntry>> = match self.ctx.sessions.map.lock() {
            Ok(map) => map.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        let mut sessions: Vec<SessionInfo> = entries.iter().map(|e| e.info()).collect();
        sessions.sort_by_key(|s| s.id);
        sessions
    }

    /// Ends session `id`: a running transfer is aborted as ABOR would (an upload commits
    /// nothing), then the client gets 421 and the connection closes. `false` if there is no
    /// such session.
    pub fn end_session(&self, id: SessionId) -> bool {
        let entry = match self.ctx.sessions.map.lock() {
            Ok(map) => map.get(&id).cloned(),
            Err(_) => None,
        };
        match entry {
            Some(entry) => {
                entry.end.store(true, Ordering::Release);
                entry.end_waker.wake();
                true
            }
            None => false,
        }
    }

    /// Brings the gauges that are read rather than counted up to date (bans in force); call it
    /// before encoding the metrics.
    pub fn update_gauges(&self) {
        if let Some(metrics) = &self.ctx.metrics {
            let bans = self.ctx.login_guard.active_bans(Instant::now());
            metrics
                .bans_active
                .set(i64::try_from(bans).unwrap_or(i64::MAX));
        }
    }
}
