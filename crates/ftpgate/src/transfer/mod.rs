//! Transfers: the data-connection commands (RETR, STOR/APPE/STOU, LIST/NLST/MLSD) and the jobs
//! that run like them (HASH, COMB).
//!
//! [`run`] is the one entry point: it takes the session's immutable [`TransferPlan`] and a
//! [`TransferContext`], and its output is the transfer's [`TransferOutcome`]. The control task
//! polls that future next to its control connection (no task is spawned per transfer). The only
//! report on the way is `Started`, sent once on a oneshot when the data connection is open, so
//! the control task sends 150.
//!
//! A transfer opens the storage side first (so a missing file is refused before any data
//! connection), then makes the data connection (`connect`), then moves the bytes (`send`,
//! `receive`; `jobs` for HASH and COMB). Every I/O step is bounded by the data timeout and
//! cancellable; `outcome` turns whatever stopped it into the outcome. ABOR, a stalled or broken
//! data connection and storage errors all end an upload with an abort, never a commit.

mod connect;
mod jobs;
mod outcome;
mod receive;
mod send;

pub(crate) use outcome::StallTimer;

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ftpgate_core::Storage;
use ftpgate_proto::session::{StartInfo, TransferKind, TransferOutcome, TransferPlan};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use crate::events::{Direction, Emitter, Event, TransferRecord};
use crate::limits::UploadLimits;
use crate::listing::ListingTimeZone;
use crate::metrics::{Ending, Flow, Metrics};
use crate::passive::Passive;
use crate::policy::Throttle;
use crate::sessions::SessionId;
use crate::tls::SessionTls;

/// Bytes moved per read and write on the data connection.
const TRANSFER_BUFFER: usize = 256 * 1024;

/// What every transfer of a server shares; made once when the server binds.
pub(crate) struct TransferShared {
    pub(crate) events: Emitter,
    /// The embedder's metrics, if any.
    pub(crate) metrics: Option<Arc<Metrics>>,
    /// Permits for digests computed at once (HASH is a CPU and I/O amplifier).
    pub(crate) hash_slots: Semaphore,
    pub(crate) listing_time_zone: ListingTimeZone,
    pub(crate) listing_sort_limit: usize,
    /// Whether binding the active source port has failed yet (it is warned about once).
    pub(crate) active_bind_failed: AtomicBool,
}

/// What one transfer is given besides its plan.
pub(crate) struct TransferContext {
    pub(crate) storage: Arc<dyn Storage>,
    /// Size limit and quota for uploads.
    pub(crate) limits: UploadLimits,
    /// The control connection's TLS context, for PROT P.
    pub(crate) tls: Option<Arc<SessionTls>>,
    pub(crate) passive: Option<Passive>,
    pub(crate) peer_ip: IpAddr,
    pub(crate) local_ip: IpAddr,
    /// The local port of active connections (`None`: ephemeral).
    pub(crate) active_source_port: Option<u16>,
    pub(crate) data_timeout: Duration,
    /// The session's timer for the data timeout.
    pub(crate) stall: StallTimer,
    pub(crate) user: String,
    /// Cancelled by ABOR, the end of the control connection, or the end of the shutdown grace.
    pub(crate) cancel: CancellationToken,
    /// Bytes moved so far (STAT and the live sessions read it).
    pub(crate) progress: Arc<AtomicU64>,
    /// The user's bandwidth limit in the transfer's direction.
    pub(crate) throttle: Option<Throttle>,
    /// The bytes a download will send, once known (`u64::MAX` until then), for the live
    /// sessions.
    pub(crate) size: Arc<AtomicU64>,
    /// The session's id, for the transfer's event.
    pub(crate) session: SessionId,
    /// Takes the `Started` report; `None` once it is sent.
    pub(crate) started: Option<oneshot::Sender<StartInfo>>,
    pub(crate) server: Arc<TransferShared>,
}

impl TransferContext {
    /// The data connection is open: the control task sends 150. If the control task no longer
    /// listens, the transfer is over.
    fn report_started(&mut self, info: StartInfo) -> Result<(), TransferOutcome> {
        match self.started.take().map(|tx| tx.send(info)) {
            Some(Ok(())) => Ok(()),
            _ => Err(TransferOutcome::Aborted),
        }
    }
}

/// Runs a transfer to its end: the plan's work, then the embedder's event for a download or
/// an upload. The control task logs the transfer's line, with the reply the session gives it.
pub(crate) async fn run(plan: TransferPlan, mut ctx: TransferContext) -> TransferOutcome {
    let began = Instant::now();
    let outcome = match work(&plan, &mut ctx).await {
        Ok(outcome) | Err(outcome) => outcome,
    };
    let direction = match &plan.kind {
        TransferKind::Retrieve { .. } => Some(Direction::Download),
        TransferKind::Store { .. } | TransferKind::StoreUnique { .. } => Some(Direction::Upload),
        TransferKind::List { .. } | TransferKind::Hash { .. } | TransferKind::Combine { .. } => {
            None
        }
    };
    if let Some(metrics) = &ctx.server.metrics {
        let flow = match &plan.kind {
            TransferKind::Retrieve { .. } => Some(Flow::Download),
            TransferKind::Store { .. } | TransferKind::StoreUnique { .. } => Some(Flow::Upload),
            TransferKind::List { .. } => Some(Flow::List),
            TransferKind::Hash { .. } | TransferKind::Combine { .. } => None,
        };
        let ending = match outcome {
            TransferOutcome::Complete { .. } => Ending::Complete,
            TransferOutcome::Aborted => Ending::Aborted,
            _ => Ending::Failed,
        };
        if let Some(flow) = flow {
            let bytes = ctx.progress.load(Ordering::Relaxed);
            metrics.transfer(flow, ending, bytes, began.elapsed());
        }
    }
    if let Some(direction) = direction {
        let path = match &plan.kind {
            TransferKind::StoreUnique { dir, base } => dir.join(base),
            kind => kind.path().clone(),
        };
        ctx.server.events.emit(|| {
            Event::Transfer(TransferRecord {
                session: ctx.session,
                user: ctx.user.clone(),
                client: ctx.peer_ip,
                direction,
                path,
                bytes: ctx.progress.load(Ordering::Relaxed),
                duration: began.elapsed(),
                complete: matches!(outcome, TransferOutcome::Complete { .. }),
                failure: TransferRecord::failure_of(&outcome),
                ascii: plan.ascii,
                tls: plan.protected,
                storage: ctx.storage.backend_name(),
            })
        });
    }
    outcome
}

/// The plan's work; either way the result is the outcome (`Err` for one that ends it early).
async fn work(
    plan: &TransferPlan,
    ctx: &mut TransferContext,
) -> Result<TransferOutcome, TransferOutcome> {
    match &plan.kind {
        TransferKind::Retrieve { path, offset } => send::retrieve(plan, ctx, path, *offset).await,
        TransferKind::List {
            path,
            format,
            all,
            permissions,
            pattern,
        } => {
            let listing = send::Listing {
                path,
                format: *format,
                all: *all,
                permissions: *permissions,
                pattern: pattern.as_deref(),
            };
            send::list(plan, ctx, listing).await
        }
        TransferKind::Store { path, start } => receive::store(plan, ctx, path, *start).await,
        TransferKind::StoreUnique { dir, base } => {
            receive::store_unique(plan, ctx, dir, base).await
        }
        TransferKind::Hash {
            path,
            algorithm,
            start,
            end,
            ..
        } => jobs::hash_file(ctx, path, *algorithm, *start, *end).await,
        TransferKind::Combine { target, parts } => jobs::combine(ctx, target, parts).await,
    }
}

/// Waits until `n` bytes may move under `throttle`; ABOR and the end of the session end the
/// wait.
async fn paced(
    ctx: &TransferContext,
    throttle: &Throttle,
    n: usize,
) -> Result<(), TransferOutcome> {
    tokio::select! {
        () = throttle.take(n) => Ok(()),
        () = ctx.cancel.cancelled() => Err(TransferOutcome::Aborted),
    }
}

/// Reads into `buf`, emptied first, up to its capacity; every transfer buffer is read this way.
/// The buffer is filled as it is read, never zeroed first: zeroing a 256 KiB buffer for each
/// transfer was a noticeable share of the server's time on small transfers.
async fn read_into(reader: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.clear();
    reader.read_buf(buf).await
}

/// Lets the task's other work run once (the control task polls the transfer next to its
/// control connection). Not `tokio::task::yield_now`: that one defers the wake until the
/// runtime has polled its driver, one more `epoll_wait` per transfer; a plain self-wake
/// reschedules the task at once.
pub(super) async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            return std::task::Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}
