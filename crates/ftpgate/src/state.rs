//! State shared between the nodes of a fleet: failed-login counters, bans and quota usage,
//! behind the [`SharedState`] trait (the daemon implements it over Redis). Without one, this
//! state lives in each process, as it always has.
//!
//! The engine never waits on a shared store for long, and never fails a login because of it:
//! every call is bounded by a short timeout, and a call that fails or times out falls back to
//! the process's own bookkeeping ([`SharedLink::call`]). Failures are counted
//! (`ftpgate_shared_state_failures`) and logged at most once per [`WARN_EVERY`].

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ftpgate_core::async_trait;
use prometheus_client::metrics::counter::Counter;
use tracing::warn;

/// A shared store's failure: unreachable, refused, or an answer that makes no sense.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StateError(pub String);

/// A failed login, as counted by the shared store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    /// Failures from the address within the window, this one included (0 once it earned a ban).
    pub failures: u32,
    /// `Some(n)`: this failure reached the threshold and earned the address its `n`th ban
    /// (the engine then sets its length with [`SharedState::ban`]).
    pub ban: Option<u32>,
}

/// What a user's files take: bytes, and how many files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaUsage {
    /// Bytes.
    pub bytes: u64,
    /// Files.
    pub files: u64,
}

/// State shared by every node of a fleet. Every method is one short request to the store;
/// the engine bounds each with a timeout and falls back to its own in-process state when one
/// fails, so an implementation need not retry.
///
/// Quota keys are `host/user` (`/user` for a server's own users).
#[async_trait]
pub trait SharedState: Send + Sync + fmt::Debug {
    /// How long `ip` stays banned, if it is.
    async fn banned_for(&self, ip: IpAddr) -> Result<Option<Duration>, StateError>;
    /// Counts a failed login from `ip`: failures older than `window` (since the last one) are
    /// forgotten; the `ban_after`th (0: never) clears the count and adds a ban to the address's
    /// history, atomically, so that two nodes cannot both earn the same ban.
    async fn record_failure(
        &self,
        ip: IpAddr,
        window: Duration,
        ban_after: u32,
    ) -> Result<FailureCount, StateError>;
    /// Bans `ip` for `duration`.
    async fn ban(&self, ip: IpAddr, duration: Duration) -> Result<(), StateError>;
    /// A successful login from `ip`: its failures are forgotten (its ban history stays).
    async fn clear_failures(&self, ip: IpAddr) -> Result<(), StateError>;
    /// What a user's files take, if the store knows.
    async fn quota_used(&self, key: &str) -> Result<Option<QuotaUsage>, StateError>;
    /// Sets a user's usage to `measured` unless another node did first; the usage now.
    async fn seed_quota(&self, key: &str, measured: QuotaUsage) -> Result<QuotaUsage, StateError>;
    /// Adds `bytes` and `files` (either may be negative) to a user's usage, if the store knows
    /// it (else the next reader measures it again).
    async fn add_quota(&self, key: &str, bytes: i64, files: i64) -> Result<(), StateError>;
}

/// Failures of the shared store are logged at most this often (each is counted).
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

/// The engine's handle on a [`SharedState`]: the timeout, the failure counter, the
/// rate-limited warning.
pub(crate) struct SharedLink {
    pub(crate) state: Arc<dyn SharedState>,
    timeout: Duration,
    failures: Option<Counter>,
    last_warning: Mutex<Option<Instant>>,
    unlogged: AtomicU64,
}

impl fmt::Debug for SharedLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedLink")
            .field("state", &self.state)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SharedLink {
    pub(crate) fn new(
        state: Arc<dyn SharedState>,
        timeout: Duration,
        failures: Option<Counter>,
    ) -> SharedLink {
        SharedLink {
            state,
            timeout,
            failures,
            last_warning: Mutex::new(None),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Runs one request to the store, bounded by the timeout; `None` (counted, logged at
    /// most every [`WARN_EVERY`]) when it fails or takes too long.
    pub(crate) async fn call<T>(
        &self,
        what: &'static str,
        request: impl Future<Output = Result<T, StateError>>,
    ) -> Option<T> {
        let why = match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) => e.0,
            Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
        };
        self.failed(what, &why);
        None
    }

    fn failed(&self, what: &str, why: &str) {
        if let Some(counter) = &self.failures {
            counter.inc();
        }
        let now = Instant::now();
        let Ok(mut last) = self.last_warning.lock() else {
            return;
        };
        if last.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(now);
        let unlogged = self.unlogged.swap(0, Ordering::Relaxed);
        warn!(
            request = what,
            error = why,
            failures_not_logged = unlogged,
            "shared state unavailable; this node decides alone"
        );
    }
}
