//! Sending: RETR (sendfile(2) for plain binary downloads of a local file, otherwise through one
//! buffer) and listing output, on a corked connection.

use std::io;

use ftpgate_core::{StorageErrorKind, error_kind_of};
use ftpgate_proto::VirtualPath;
use ftpgate_proto::ascii::AsciiEncoder;
use ftpgate_proto::glob::ListPattern;
use ftpgate_proto::listing::ListFormat;
use ftpgate_proto::perm::Permissions;
use ftpgate_proto::session::{StartInfo, TransferOutcome, TransferPlan};
use futures_util::{FutureExt, StreamExt};
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::warn;

use super::connect::data_connection;
use super::outcome::{Ended, Side, guarded, outcome, storage_failed};
use super::{TRANSFER_BUFFER, TransferContext, paced, read_into, yield_once};
use crate::listing::Lister;
use crate::policy::Throttle;
use crate::tls::Stream;
use crate::zlib::Deflater;

/// Listing bytes gathered before a write.
const LISTING_BUFFER: usize = 64 * 1024;

/// RETR: bytes `offset..` of the file at `path`.
pub(super) async fn retrieve(
    plan: &TransferPlan,
    ctx: &mut TransferContext,
    path: &VirtualPath,
    offset: u64,
) -> Result<TransferOutcome, TransferOutcome> {
    // Bytes sent as they are, from a local file: zero-copy with sendfile(2), and one storage
    // call (the open file tells its size).
    // A throttled download goes through the loop that paces it.
    let plain = !plan.ascii && !plan.compressed && !plan.protected && ctx.throttle.is_none();
    let local = if plain {
        ctx.storage.read_local(path).await.map_err(storage_failed)?
    } else {
        None
    };
    let size_of_local = match &local {
        Some(file) => {
            let meta = file
                .metadata()
                .map_err(|e| TransferOutcome::Failed(error_kind_of(&e)))?;
            if meta.is_dir() {
                return Err(TransferOutcome::Failed(StorageErrorKind::IsADirectory));
            }
            Some(meta.len())
        }
        None => None,
    };
    // Otherwise the store opens the file and tells its size in one call (one GET on an
    // object store).
    let (file_size, reader) = match size_of_local {
        Some(size) => (size, None),
        None => {
            let (meta, reader) = ctx
                .storage
                .read_with_metadata(path, offset)
                .await
                .map_err(storage_failed)?;
            (meta.size, Some(reader))
        }
    };
    if offset > file_size {
        return Err(TransferOutcome::Failed(StorageErrorKind::InvalidOffset));
    }
    ctx.size.store(file_size - offset, Ordering::Relaxed);
    let size = if plan.ascii {
        None
    } else {
        Some(file_size.saturating_sub(offset))
    };
    let start = StartInfo {
        size,
        unique_name: None,
    };
    let data = data_connection(plan, ctx, start).await?;
    match (reader, local, data) {
        (_, Some(file), Stream::Plain(tcp)) => {
            send_with_sendfile(file, offset..file_size, tcp, ctx).await
        }
        (Some(reader), _, data) => {
            let data = Outgoing::new(data, plan.compressed);
            send_file(reader, data, plan.ascii, ctx).await
        }
        // A local file is asked for only when the connection is plain.
        _ => Err(TransferOutcome::Failed(StorageErrorKind::Local)),
    }
}

/// What LIST, NLST or MLSD lists, and how.
pub(super) struct Listing<'a> {
    pub(super) path: &'a VirtualPath,
    pub(super) format: ListFormat,
    /// Include names starting with a dot.
    pub(super) all: bool,
    pub(super) permissions: Permissions,
    pub(super) pattern: Option<&'a ListPattern>,
}

/// LIST, NLST, MLSD: the entries, formatted as they arrive, in writes of about
/// `LISTING_BUFFER` bytes.
pub(super) async fn list(
    plan: &TransferPlan,
    ctx: &mut TransferContext,
    listing: Listing<'_>,
) -> Result<TransferOutcome, TransferOutcome> {
    let (mut entries, pattern) =
        crate::listing::open(&*ctx.storage, listing.path, listing.format, listing.pattern)
            .await
            .map_err(storage_failed)?;
    let data = data_connection(plan, ctx, StartInfo::default()).await?;
    let mut data = Outgoing::new(data, plan.compressed);
    let server = &ctx.server;
    let mut lister = Lister::new(
        listing.format,
        listing.permissions,
        listing.all,
        pattern,
        server.listing_time_zone.clone(),
        server.listing_sort_limit,
    );
    let mut out = Vec::with_capacity(LISTING_BUFFER + 1024);
    loop {
        // Entries arrive in batches: take a ready one without arming a timer.
        let next = match entries.next().now_or_never() {
            Some(next) => next.transpose().map_err(storage_failed)?,
            None => guarded(ctx, Side::Storage, entries.next().map(Option::transpose)).await?,
        };
        let Some(entry) = next else { break };
        lister.push(entry, &mut out);
        if out.len() >= LISTING_BUFFER {
            data.write(&out, ctx).await?;
            out.clear();
        }
    }
    lister.finish(&mut out);
    data.write(&out, ctx).await?;
    data.close(ctx).await
}

async fn send_file(
    mut reader: impl AsyncRead + Unpin,
    mut data: Outgoing,
    ascii: bool,
    ctx: &TransferContext,
) -> Result<TransferOutcome, TransferOutcome> {
    let mut buf = Vec::with_capacity(
        ctx.throttle
            .as_ref()
            .map_or(TRANSFER_BUFFER, Throttle::chunk),
    );
    let mut encoder = AsciiEncoder::default();
    let mut encoded = Vec::new();
    loop {
        let n = guarded(ctx, Side::Storage, read_into(&mut reader, &mut buf)).await?;
        if n == 0 {
            break;
        }
        let chunk = if ascii {
            encoded.clear();
            encoder.encode(&buf[..n], &mut encoded);
            &encoded[..]
        } else {
            &buf[..n]
        };
        data.write(chunk, ctx).await?;
    }
    data.close(ctx).await
}

/// The sending side of a data connection: bytes go out as they are, or through a zlib
/// stream in MODE Z.
struct Outgoing {
    stream: Stream,
    deflater: Option<Deflater>,
    compressed: Vec<u8>,
}

impl Outgoing {
    /// The connection is corked until [`Outgoing::close`]: only full segments leave, and the
    /// client wakes once per segment rather than for each partial one (less CPU on both
    /// sides, notably with TLS).
    fn new(stream: Stream, compress: bool) -> Outgoing {
        let outgoing = Outgoing {
            stream,
            deflater: compress.then(Deflater::new),
            compressed: Vec::new(),
        };
        outgoing.cork(true);
        outgoing
    }

    async fn write(&mut self, bytes: &[u8], ctx: &TransferContext) -> Result<(), TransferOutcome> {
        match &mut self.deflater {
            None => write_data(&mut self.stream, bytes, ctx).await,
            Some(deflater) => {
                self.compressed.clear();
                deflater.compress(bytes, &mut self.compressed, false);
                if self.compressed.is_empty() {
                    return Ok(());
                }
                write_data(&mut self.stream, &self.compressed, ctx).await
            }
        }
    }

    /// Holds back partly filled segments (TCP_CORK) while `on`.
    fn cork(&self, on: bool) {
        let tcp = match &self.stream {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0,
            Stream::Closed => return,
        };
        let _ = rustix::net::sockopt::set_tcp_cork(tcp, on);
    }

    /// Ends the zlib stream, if any, and closes the connection.
    async fn close(mut self, ctx: &TransferContext) -> Result<TransferOutcome, TransferOutcome> {
        if let Some(deflater) = &mut self.deflater {
            self.compressed.clear();
            deflater.compress(&[], &mut self.compressed, true);
            write_data(&mut self.stream, &self.compressed, ctx).await?;
        }
        self.cork(false);
        close_data(self.stream, ctx).await
    }
}

async fn write_data(
    data: &mut Stream,
    bytes: &[u8],
    ctx: &TransferContext,
) -> Result<(), TransferOutcome> {
    if let Some(throttle) = &ctx.throttle {
        paced(ctx, throttle, bytes.len()).await?;
    }
    guarded(ctx, Side::Data, data.write_all(bytes)).await?;
    ctx.progress
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// Closes the data connection cleanly (FIN after the last byte), before 226 is sent.
async fn close_data(
    mut data: Stream,
    ctx: &TransferContext,
) -> Result<TransferOutcome, TransferOutcome> {
    guarded(ctx, Side::Data, data.shutdown()).await?;
    Ok(TransferOutcome::Complete {
        bytes: ctx.progress.load(Ordering::Relaxed),
    })
}

/// Unsent bytes the kernel queues on a sendfile connection before the sending thread waits.
const UNSENT_LIMIT: u32 = 16 * 1024;

/// Downloads larger than this get the short queue of [`send_from_this_thread`]; smaller ones
/// usually fit in the socket buffer at once and are left as they are.
const SHORT_QUEUE_ABOVE: u64 = 1024 * 1024;

/// Sets a sendfile connection up so that segments leave from the thread calling sendfile:
/// full segments only (TCP_CORK; the FIN after the last byte sends the tail), and at most
/// [`UNSENT_LIMIT`] bytes queued beyond what the window lets out (TCP_NOTSENT_LOWAT).
///
/// Without the limit the queue holds megabytes, and each acknowledgement from the client sends
/// more of it from whatever context processed the acknowledgement. Over loopback that is the
/// client's own system call, so the client's CPU did the sending, the looping back and its own
/// receiving: it was busy throughout while the server's was half idle (1 GiB downloads,
/// `/proc/stat` per CPU, client pinned). With the limit the queue is short, sendfile itself
/// pushes each segment, and both CPUs share the work: curl 1,823 → 3,108 MB/s, a client reading
/// 1 MiB at a time 1,855 → 5,188 MB/s (medians of 11 alternating rounds). The limit must stay
/// below one segment (64 KiB over loopback): 64 or 128 KiB gained nothing. Either option alone
/// helps one kind of client and costs the other. Set before the first call: set only once
/// sendfile blocks, after a first call filled the buffer, curl gained half as much. Both only
/// tune: a kernel that refuses them still sends the file.
fn send_from_this_thread(tcp: &TcpStream) {
    let _ = rustix::net::sockopt::set_tcp_cork(tcp, true);
    let _ = socket2::SockRef::from(tcp).set_tcp_notsent_lowat(UNSENT_LIMIT);
}

/// Sends bytes `range` of `file` with sendfile(2): the kernel moves the bytes from the page
/// cache to the socket without copying them through the process. The range ends at the size
/// the 150 reply announced, so a file that grows meanwhile is sent as announced, and no call is
/// made just to find the end; a file cut shorter ends the transfer early. What does not fit in
/// the socket buffer at once is sent from the blocking pool with the socket in blocking mode
/// (as vsftpd and ProFTPD do), in calls of up to 64 MiB: the kernel then sends as fast as the
/// peer reads, with no readiness round trips (much faster than calls of 64 KiB). ABOR shuts the
/// socket down, which ends a call at once; a stalled peer hits the socket's send timeout.
async fn send_with_sendfile(
    file: std::fs::File,
    range: std::ops::Range<u64>,
    tcp: TcpStream,
    ctx: &TransferContext,
) -> Result<TransferOutcome, TransferOutcome> {
    let (mut offset, end) = (range.start, range.end);
    // The control task sends 150 first: the client reads it while the bytes go out.
    yield_once().await;
    if end - offset > SHORT_QUEUE_ABOVE {
        send_from_this_thread(&tcp);
    }
    // Small files usually fit in the socket buffer: sent at once from this task. A connection
    // just made can take bytes, so the first call is made without waiting for the poller to
    // say so (one poll round less per download).
    loop {
        if offset >= end {
            return close_data(Stream::Plain(tcp), ctx).await;
        }
        let count = chunk(offset, end);
        match rustix::fs::sendfile(&tcp, &file, Some(&mut offset), count) {
            Ok(0) => return close_data(Stream::Plain(tcp), ctx).await,
            Ok(n) => {
                ctx.progress.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => break,
            Err(e) => {
                warn!(error = %e, "sendfile failed");
                return Err(outcome(Side::Data, Ended::Failed(io::Error::from(e))));
            }
        }
    }
    let prepared = tcp.into_std().and_then(|tcp| {
        tcp.set_nonblocking(false)?;
        tcp.set_write_timeout(Some(ctx.data_timeout))?;
        let stopper = tcp.try_clone()?;
        Ok((tcp, stopper))
    });
    let (tcp, stopper) = match prepared {
        Ok(pair) => pair,
        Err(e) => {
            warn!(error = %e, "cannot prepare the data connection for sendfile");
            return Err(outcome(Side::Data, Ended::Failed(e)));
        }
    };
    let (cancel, progress) = (ctx.cancel.clone(), ctx.progress.clone());
    let mut sending = tokio::task::spawn_blocking(move || {
        let failed = |e: io::Error| {
            let ended = match cancel.is_cancelled() {
                true => Ended::Cancelled,
                false => Ended::Failed(e),
            };
            Err(outcome(Side::Data, ended))
        };
        loop {
            if cancel.is_cancelled() {
                return Err(TransferOutcome::Aborted);
            }
            if offset >= end {
                break;
            }
            let count = chunk(offset, end);
            match rustix::fs::sendfile(&tcp, &file, Some(&mut offset), count) {
                Ok(0) => break,
                Ok(n) => {
                    progress.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    // ABOR shut the socket down; or a send timeout (EAGAIN on a blocking
                    // socket): a stalled peer.
                    if !cancel.is_cancelled() {
                        warn!(error = %e, "sendfile failed");
                    }
                    return failed(e.into());
                }
            }
        }
        // FIN after the last byte, before 226.
        match tcp.shutdown(std::net::Shutdown::Write) {
            Ok(()) => Ok(TransferOutcome::Complete {
                bytes: progress.load(Ordering::Relaxed),
            }),
            Err(e) => Err(outcome(Side::Data, Ended::Failed(e))),
        }
    });
    let sent = tokio::select! {
        sent = &mut sending => sent,
        _ = ctx.cancel.cancelled() => {
            // Wakes a sendfile call blocked on a full socket buffer.
            let _ = stopper.shutdown(std::net::Shutdown::Both);
            sending.await
        }
    };
    match sent {
        Ok(result) => result,
        Err(e) => {
            warn!(error = %e, "sendfile task failed");
            Err(TransferOutcome::ConnectionLost)
        }
    }
}

/// Bytes one sendfile call is asked for: at most 64 MiB, and not past `end`.
fn chunk(offset: u64, end: u64) -> usize {
    const CHUNK: u64 = 64 * 1024 * 1024;
    end.saturating_sub(offset).min(CHUNK) as usize
}
