//! How a transfer step that did not succeed becomes a [`TransferOutcome`]: one mapping for every
//! step, whichever end it works on, for errors, stalls (the data timeout) and cancellation
//! (ABOR, connection loss, shutdown).

use std::fmt::Display;
use std::io;

use ftpgate_core::{StorageError, StorageErrorKind, error_kind_of};
use ftpgate_proto::session::TransferOutcome;
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

/// Runs one I/O step on `side`, giving up if the transfer is cancelled or the step stalls.
pub(super) async fn guarded<T, E: StepError>(
    ctx: &TransferContext,
    side: Side,
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, TransferOutcome> {
    let ended = tokio::select! {
        biased;
        _ = ctx.cancel.cancelled() => Ended::Cancelled,
        result = tokio::time::timeout(ctx.data_timeout, step) => match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => Ended::Failed(e),
            Err(_) => Ended::Stalled,
        },
    };
    Err(outcome(side, ended))
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
