//! How a transfer step that did not succeed becomes a [`TransferOutcome`]: one mapping for every
//! step, whichever end it works on, for errors, stalls (the data timeout) and cancellation
//! (ABOR, connection loss, shutdown).

use std::fmt::Display;
use std::future::poll_fn;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use ftpgate_core::{StorageError, StorageErrorKind, error_kind_of};
use ftpgate_proto::session::TransferOutcome;
use tokio::time::{Instant, Sleep};
use tracing::warn;

use super::TransferContext;

/// What a transfer step works on, which says what its failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// The storage: an error is the storage's own (by its kind), a stall is transient.
    Storage,
    /// An open data connection: an error or a stall is a lost connection.
    Data,
    /// Making the data connection (accept or connect).
    Connect,
    /// The TLS handshake on the data connection.
    Tls,
}

/// How a step ended without its value.
pub(super) enum Ended<E> {
    Failed(E),
    /// No progress within the data timeout.
    Stalled,
    Cancelled,
}

/// An error a step can fail with: it has a storage error kind.
pub(super) trait StepError: Display {
    fn kind(&self) -> StorageErrorKind;
}

impl StepError for io::Error {
    fn kind(&self) -> StorageErrorKind {
        error_kind_of(self)
    }
}

impl StepError for StorageError {
    fn kind(&self) -> StorageErrorKind {
        self.kind
    }
}

/// The one mapping from a step that ended without its value to the transfer's outcome.
pub(super) fn outcome<E: StepError>(side: Side, ended: Ended<E>) -> TransferOutcome {
    match (side, ended) {
        (_, Ended::Cancelled) => TransferOutcome::Aborted,
        (Side::Storage, Ended::Failed(e)) => {
            warn!(error = %e, "storage error");
            TransferOutcome::Failed(e.kind())
        }
        (Side::Storage, Ended::Stalled) => TransferOutcome::Failed(StorageErrorKind::Transient),
        (Side::Data, Ended::Failed(_) | Ended::Stalled) => TransferOutcome::ConnectionLost,
        (Side::Connect, Ended::Failed(e)) => {
            warn!(error = %e, "data connection failed");
            TransferOutcome::NoDataConnection
        }
        (Side::Connect, Ended::Stalled) => {
            warn!("data connection timed out");
            TransferOutcome::NoDataConnection
        }
        (Side::Tls, Ended::Failed(e)) => {
            warn!(error = %e, "TLS handshake on the data connection failed");
            TransferOutcome::TlsFailed
        }
        (Side::Tls, Ended::Stalled) => TransferOutcome::TlsFailed,
    }
}

/// A failed storage call's outcome.
pub(super) fn storage_failed(e: impl StepError) -> TransferOutcome {
    outcome(Side::Storage, Ended::Failed(e))
}

/// Runs one I/O step on `side`, giving up if the transfer is cancelled or the step stalls (no
/// result within the data timeout). A step that is ready at once touches no timer.
pub(super) async fn guarded<T, E: StepError>(
    ctx: &TransferContext,
    side: Side,
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, TransferOutcome> {
    let mut step = pin!(step);
    let mut cancelled = pin!(ctx.cancel.cancelled());
    let mut armed = false;
    let ended = poll_fn(|cx| {
        if cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(Ended::Cancelled));
        }
        match step.as_mut().poll(cx) {
            Poll::Ready(Ok(value)) => return Poll::Ready(Ok(value)),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(Ended::Failed(e))),
            Poll::Pending => {}
        }
        match ctx.stall.poll_stalled(cx, &mut armed, ctx.data_timeout) {
            true => Poll::Ready(Err(Ended::Stalled)),
            false => Poll::Pending,
        }
    })
    .await;
    let ended = match ended {
        Ok(value) => return Ok(value),
        Err(ended) => ended,
    };
    if let (Ended::Stalled, Some(metrics)) = (&ended, &ctx.server.metrics) {
        metrics.timeout(crate::metrics::Timeout::Data);
    }
    Err(outcome(side, ended))
}

/// The data timeout's timer: one per session, which its transfers' steps use in turn. A step
/// that has to wait moves the deadline to now plus the data timeout; moving an armed timer's
/// deadline later is one atomic store. A new timer for each waiting step took the timer
/// wheel's lock twice and, being the earliest timer, woke the runtime's driver through its
/// eventfd once per transfer. Between transfers the timer is left as it is: it fires once, a
/// data timeout after the last step that waited, and the session ignores that wake-up.
#[derive(Clone)]
pub(crate) struct StallTimer(Arc<Mutex<Pin<Box<Sleep>>>>);

impl StallTimer {
    pub(crate) fn new() -> StallTimer {
        StallTimer(Arc::new(Mutex::new(Box::pin(tokio::time::sleep(
            Duration::ZERO,
        )))))
    }

    /// Whether the waiting step has stalled; `armed` is false on its first wait, which starts
    /// its data timeout. (Steps never wait at once: a transfer is one sequence of them.)
    fn poll_stalled(&self, cx: &mut Context<'_>, armed: &mut bool, timeout: Duration) -> bool {
        let mut sleep = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !*armed {
            sleep.as_mut().reset(Instant::now() + timeout);
            *armed = true;
        }
        sleep.as_mut().poll(cx).is_ready()
    }
}

/// Waits for `step` unless the transfer is cancelled (no stall timeout: waiting for a permit
/// is not a stall).
pub(super) async fn cancellable<T>(
    ctx: &TransferContext,
    step: impl Future<Output = T>,
) -> Result<T, TransferOutcome> {
    tokio::select! {
        biased;
        _ = ctx.cancel.cancelled() => Err(TransferOutcome::Aborted),
        value = step => Ok(value),
    }
}
