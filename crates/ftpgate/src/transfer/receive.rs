//! Receiving: STOR, APPE and STOU. Bytes arrive on the session's task first, through MODE Z
//! inflation, TYPE A conversion and the size limit and quota into the upload; a plain binary
//! upload to a local file goes on from the blocking pool (`receive_directly`). An upload that
//! does not reach the end is aborted, never committed.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ftpgate_core::{Upload, VirtualPath, WriteStart};
use ftpgate_proto::ascii::AsciiDecoder;
use ftpgate_proto::session::{StartInfo, TransferKind, TransferOutcome, TransferPlan};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, warn};

use super::connect::data_connection;
use super::outcome::{Ended, Side, guarded, outcome, storage_failed};
use super::{TRANSFER_BUFFER, TransferContext, paced, read_into, yield_once};
use crate::limits::{Allowance, UploadLimit};
use crate::policy::Throttle;
use crate::tls::Stream;
use crate::zlib::{InflateError, Inflater, Progress};

/// STOR and APPE (and STOR after REST): to `path`, from where `start` says.
pub(super) async fn store(
    plan: &TransferPlan,
    ctx: &mut TransferContext,
    path: &VirtualPath,
    start: WriteStart,
) -> Result<TransferOutcome, TransferOutcome> {
    // With limits, the size of the file being replaced or extended matters, and whether
    // there is one (a new file takes a place in a quota of files).
    let existing = if ctx.limits.is_unlimited() {
        Some(0)
    } else {
        ctx.storage
            .metadata(path)
            .await
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.size)
    };
    let new_file = existing.is_none();
    let existing = existing.unwrap_or(0);
    let offset = match start {
        WriteStart::Truncate => 0,
        WriteStart::Append => existing,
        WriteStart::At(n) => n,
    };
    if new_file {
        // Refused before anything is made: the upload leaves nothing behind.
        ctx.limits
            .reserve_file()
            .map_err(TransferOutcome::OverLimit)?;
    }
    let result = match ctx.storage.write(path, start).await {
        Ok(upload) => receive_upload(plan, upload, ctx, existing, offset).await,
        Err(e) => Err(storage_failed(e)),
    };
    match (new_file, &result) {
        (true, Ok(_)) => ctx.limits.file_added().await,
        (true, Err(_)) => ctx.limits.release_file(),
        (false, _) => {}
    }
    result
}

/// STOU: a new file in `dir`, its name made from `base`.
pub(super) async fn store_unique(
    plan: &TransferPlan,
    ctx: &mut TransferContext,
    dir: &VirtualPath,
    base: &str,
) -> Result<TransferOutcome, TransferOutcome> {
    ctx.limits
        .reserve_file()
        .map_err(TransferOutcome::OverLimit)?;
    let result = match ctx.storage.write_unique(dir, base).await {
        Ok(upload) => receive_upload(plan, upload, ctx, 0, 0).await,
        Err(e) => Err(storage_failed(e)),
    };
    match &result {
        Ok(_) => ctx.limits.file_added().await,
        Err(_) => ctx.limits.release_file(),
    }
    result
}

/// Receives an upload. `existing` is the size of the file it replaces or extends and `offset`
/// where writing starts, for size limits and quotas, which are checked before each write.
///
/// Bytes arrive on this task first. A plain binary upload that goes on past the first
/// `TRANSFER_BUFFER` bytes to a backend with a local file continues on the blocking pool,
/// from the socket straight into the file (as the C servers do: no task wake-up per chunk).
async fn receive_upload(
    plan: &TransferPlan,
    mut upload: Box<dyn Upload>,
    ctx: &mut TransferContext,
    existing: u64,
    offset: u64,
) -> Result<TransferOutcome, TransferOutcome> {
    let unique_name = match plan.kind {
        TransferKind::StoreUnique { .. } => upload.name().map(str::to_string),
        _ => None,
    };
    let start = StartInfo {
        size: None,
        unique_name,
    };
    let received = match data_connection(plan, ctx, start).await {
        Ok(data) => {
            // The control task sends 150 first; the store then gets ready while the client,
            // told to send, does.
            yield_once().await;
            match upload.started().await {
                Ok(()) => receive(plan, data, upload.as_mut(), ctx, existing, offset).await,
                Err(e) => Err(storage_failed(e)),
            }
        }
        Err(outcome) => Err(outcome),
    };
    let open = match received {
        Ok(open) => open,
        Err(outcome) => {
            upload.abort().await;
            return Err(outcome);
        }
    };
    let committed = upload.commit().await;
    // The FIN after the commit, as the C servers do: the client that wakes for it finds 226
    // right behind, instead of waiting again while the file is linked into place.
    if let Some(mut data) = open
        && let Err(outcome) = guarded(ctx, Side::Data, data.shutdown()).await
    {
        // A failed close after every byte arrived does not lose the upload.
        debug!(?outcome, "closing the data connection after an upload");
    }
    match committed {
        Ok(size) => {
            ctx.limits.committed(existing, size).await;
            Ok(TransferOutcome::Complete {
                bytes: ctx.progress.load(Ordering::Relaxed),
            })
        }
        Err(e) => {
            warn!(error = %e, "commit failed");
            Err(TransferOutcome::Failed(e.kind))
        }
    }
}

/// Moves every byte of the data connection into `upload` (not committed yet). Returns the
/// connection if it is still to be closed.
async fn receive(
    plan: &TransferPlan,
    data: Stream,
    upload: &mut dyn Upload,
    ctx: &TransferContext,
    existing: u64,
    offset: u64,
) -> Result<Option<Stream>, TransferOutcome> {
    let mut receiver = Receiver {
        inflater: plan
            .compressed
            .then(|| Inflater::new(ctx.limits.mode_z_max_inflated, ctx.limits.mode_z_max_ratio)),
        inflated: Vec::new(),
        writer: UploadWriter {
            allowance: ctx.limits.allowance(existing, offset),
            written: 0,
            ascii: plan.ascii,
            decoder: AsciiDecoder::default(),
            decoded: Vec::new(),
        },
    };
    // A throttled upload stays in the loop that paces it.
    let direct = !plan.ascii
        && !plan.compressed
        && matches!(data, Stream::Plain(_))
        && ctx.throttle.is_none();
    let mut buf = Vec::with_capacity(
        ctx.throttle
            .as_ref()
            .map_or(TRANSFER_BUFFER, Throttle::chunk),
    );
    let stop_after = direct.then_some(TRANSFER_BUFFER as u64);
    let data = match receive_to(data, &mut buf, &mut receiver, upload, ctx, stop_after).await? {
        Received::All(data) => return Ok(Some(data)),
        Received::More(data) => data,
    };
    // Only a plain connection stops early: the rest goes into the local file if there is
    // one, else on through `Upload::write`.
    match (upload.local_file().await, data) {
        (Ok(Some(file)), Stream::Plain(tcp)) => {
            let writer = &receiver.writer;
            receive_directly(tcp, file, writer.room(), writer.allowance.limit, ctx)
                .await
                .map(|()| None)
        }
        (Ok(_), data) => {
            match receive_to(data, &mut buf, &mut receiver, upload, ctx, None).await? {
                Received::All(data) | Received::More(data) => Ok(Some(data)),
            }
        }
        (Err(e), _) => Err(storage_failed(e)),
    }
}

/// How far [`receive_to`] got.
enum Received {
    /// Every byte; the data connection is still to be closed.
    All(Stream),
    /// The asked-for number of bytes; the rest is still to come on this connection.
    More(Stream),
}

/// The state of an upload's conversions and limits: MODE Z inflation, then the writer.
struct Receiver {
    inflater: Option<Inflater>,
    inflated: Vec<u8>,
    writer: UploadWriter,
}

/// What stores received (and inflated) bytes: TYPE A conversion, the size limit and quota,
/// then the upload.
struct UploadWriter {
    allowance: Allowance,
    written: u64,
    ascii: bool,
    decoder: AsciiDecoder,
    decoded: Vec<u8>,
}

impl Receiver {
    /// Stores `bytes` as they came from the data connection (empty: the end).
    async fn put(
        &mut self,
        upload: &mut dyn Upload,
        bytes: &[u8],
        ctx: &TransferContext,
    ) -> Result<(), TransferOutcome> {
        match &mut self.inflater {
            None => self.writer.put(upload, bytes, bytes.is_empty(), ctx).await,
            Some(inflater) => {
                put_inflated(
                    inflater,
                    &mut self.inflated,
                    &mut self.writer,
                    upload,
                    bytes,
                    ctx,
                )
                .await
            }
        }
    }
}

impl UploadWriter {
    /// Bytes that may still be stored.
    fn room(&self) -> u64 {
        self.allowance.bytes.saturating_sub(self.written)
    }

    /// Stores `bytes` (`end`: the last call, flushing the TYPE A decoder).
    async fn put(
        &mut self,
        upload: &mut dyn Upload,
        bytes: &[u8],
        end: bool,
        ctx: &TransferContext,
    ) -> Result<(), TransferOutcome> {
        let chunk = if self.ascii {
            self.decoded.clear();
            if end {
                self.decoder.finish(&mut self.decoded);
            } else {
                self.decoder.decode(bytes, &mut self.decoded);
            }
            &self.decoded[..]
        } else {
            bytes
        };
        self.written += chunk.len() as u64;
        if self.written > self.allowance.bytes {
            let limit = self.allowance.limit;
            warn!(%limit, "upload refused");
            return Err(TransferOutcome::OverLimit(limit));
        }
        if chunk.is_empty() {
            return Ok(());
        }
        guarded(ctx, Side::Storage, upload.write(chunk)).await
    }
}

/// MODE Z: inflates `input` a bounded piece at a time into the writer.
async fn put_inflated(
    inflater: &mut Inflater,
    inflated: &mut Vec<u8>,
    writer: &mut UploadWriter,
    upload: &mut dyn Upload,
    mut input: &[u8],
    ctx: &TransferContext,
) -> Result<(), TransferOutcome> {
    let end = input.is_empty();
    loop {
        let used = match inflater.inflate(input, inflated) {
            Ok(used) => used,
            Err(InflateError::TooLarge) => {
                warn!("a MODE Z upload inflates beyond the cap");
                return Err(TransferOutcome::Failed(
                    ftpgate_core::StorageErrorKind::ExceededStorage,
                ));
            }
            Err(InflateError::Corrupt) => {
                warn!("a MODE Z upload is not a valid zlib stream");
                return Err(TransferOutcome::ConnectionLost);
            }
        };
        input = &input[used..];
        writer.put(upload, inflated, false, ctx).await?;
        match inflater.progress(used, input, inflated) {
            Progress::More => {}
            Progress::Done => break,
            Progress::Stuck => return Err(TransferOutcome::ConnectionLost),
        }
    }
    if end {
        writer.put(upload, &[], true, ctx).await?;
    }
    Ok(())
}

/// Receives bytes from `data` into `upload` until the end, or until at least `stop_after`
/// bytes have arrived. At the end it answers the client's close_notify with its own (clients
/// such as Python's ftplib wait for it) and closes the data connection before 226.
async fn receive_to(
    mut data: Stream,
    buf: &mut Vec<u8>,
    receiver: &mut Receiver,
    upload: &mut dyn Upload,
    ctx: &TransferContext,
    stop_after: Option<u64>,
) -> Result<Received, TransferOutcome> {
    let mut received = 0u64;
    loop {
        if stop_after.is_some_and(|limit| received >= limit) {
            return Ok(Received::More(data));
        }
        let n = guarded(ctx, Side::Data, read_into(&mut data, buf)).await?;
        if let (Some(throttle), true) = (&ctx.throttle, n > 0) {
            // Reading no faster than the rate makes the client's sending wait (TCP flow control).
            paced(ctx, throttle, n).await?;
        }
        receiver.put(upload, &buf[..n], ctx).await?;
        if n == 0 {
            if receiver.inflater.as_ref().is_some_and(|i| !i.ended()) {
                warn!("the zlib stream of a MODE Z upload ended early");
                return Err(TransferOutcome::ConnectionLost);
            }
            break;
        }
        received += n as u64;
        ctx.progress.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(Received::All(data))
}

/// Receives the rest of a plain upload on the blocking pool: read(2) from the socket into a
/// large buffer, write(2) to the file, until the client closes the connection. ABOR is seen
/// within `POLL_INTERVAL`; a connection silent for the data timeout is a lost one.
///
/// splice(2) through a pipe (one copy instead of two) was measured and left out: faster in
/// good runs, but about one run in three fell to a fraction of the speed with several times
/// the CPU, where this loop held its speed in every run.
async fn receive_directly(
    tcp: TcpStream,
    mut file: std::fs::File,
    room: u64,
    limit: UploadLimit,
    ctx: &TransferContext,
) -> Result<(), TransferOutcome> {
    use std::io::{Read, Write};
    /// Bytes read from the socket at a time, at first: large reads drain the receive window in
    /// fewer wake-ups, on both ends.
    const DIRECT_BUFFER: usize = 512 * 1024;
    /// The most read at a time. A read that fills the buffer means the sender is faster than
    /// this loop, and the buffer doubles up to this size: a fast single upload on loopback then
    /// takes 0.46-0.54 s of server CPU per GiB instead of 0.69 and runs 1.3-1.5 times faster
    /// (4 MiB was slower again), while the many slower uploads of a busy server, whose reads
    /// never fill 512 KiB, keep the smaller buffer.
    const DIRECT_BUFFER_MAX: usize = 2 * 1024 * 1024;
    /// How long one read waits before looking for ABOR.
    const POLL_INTERVAL: Duration = Duration::from_millis(100);
    let prepared = tcp.into_std().and_then(|tcp| {
        tcp.set_nonblocking(false)?;
        tcp.set_read_timeout(Some(POLL_INTERVAL))?;
        Ok(tcp)
    });
    let mut tcp = match prepared {
        Ok(tcp) => tcp,
        Err(e) => {
            warn!(error = %e, "cannot prepare the data connection for a direct upload");
            return Err(outcome(Side::Data, Ended::Failed(e)));
        }
    };
    let (cancel, progress, timeout) = (ctx.cancel.clone(), ctx.progress.clone(), ctx.data_timeout);
    let received = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; DIRECT_BUFFER];
        let mut room = room;
        let mut last_byte = Instant::now();
        loop {
            if cancel.is_cancelled() {
                return Err(outcome::<io::Error>(Side::Data, Ended::Cancelled));
            }
            let n = match tcp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if last_byte.elapsed() >= timeout {
                        return Err(outcome::<io::Error>(Side::Data, Ended::Stalled));
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(outcome(Side::Data, Ended::Failed(e))),
            };
            last_byte = Instant::now();
            if n as u64 > room {
                warn!(%limit, "upload refused");
                return Err(TransferOutcome::OverLimit(limit));
            }
            room -= n as u64;
            if let Err(e) = file.write_all(&buf[..n]) {
                return Err(storage_failed(e));
            }
            progress.fetch_add(n as u64, Ordering::Relaxed);
            if n == buf.len() && buf.len() < DIRECT_BUFFER_MAX {
                buf.resize(buf.len() * 2, 0);
            }
        }
        if let Err(e) = tcp.shutdown(std::net::Shutdown::Write) {
            debug!(error = %e, "closing the data connection after an upload");
        }
        Ok(())
    });
    match received.await {
        Ok(result) => result,
        Err(e) => {
            warn!(error = %e, "upload task failed");
            Err(TransferOutcome::Failed(
                ftpgate_core::StorageErrorKind::Local,
            ))
        }
    }
}
