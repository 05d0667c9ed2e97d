//! Data connections and transfers.
//!
//! A transfer runs as its own task with an immutable [`TransferPlan`]: it opens the storage
//! side first (so a missing file is refused before any data connection), makes the data
//! connection (accepting only the control connection's own host), reports `Started` so the
//! control task can send 150, moves the bytes with a bounded buffer, closes the data
//! connection, and reports `Done`. ABOR (cancellation), a stalled or broken data connection and
//! storage errors all end an upload with an abort, never a commit.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ftpgate_core::{DirEntry, ErrorKind, Storage, Upload, error_kind_of};
use ftpgate_proto::ascii::{AsciiDecoder, AsciiEncoder};
use ftpgate_proto::hostport::canonical;
use ftpgate_proto::listing::{ListFormat, format_entry};
use ftpgate_proto::session::{
    DataEndpoint, StartInfo, TransferKind, TransferOutcome, TransferPlan, WriteStart,
};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::limits::UploadLimits;
use crate::passive::Passive;
use crate::server::Shared;
use crate::tls::{self, SessionTls, Stream};

/// Bytes moved per read and write on the data connection.
const TRANSFER_BUFFER: usize = 256 * 1024;
/// Listing bytes gathered before a write.
const LISTING_BUFFER: usize = 64 * 1024;

/// What a transfer task tells its control task.
#[derive(Debug)]
pub(crate) enum TransferEvent {
    /// The data connection is open: send 150.
    Started(StartInfo),
    /// The transfer ended.
    Done(TransferOutcome),
}

/// What a transfer task is given besides its plan.
pub(crate) struct TransferContext {
    /// Size limit and quota for uploads.
    pub(crate) limits: UploadLimits,
    /// The control connection's TLS context, for PROT P.
    pub(crate) tls: Option<Arc<SessionTls>>,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) passive: Option<Passive>,
    pub(crate) peer_ip: IpAddr,
    pub(crate) local_ip: IpAddr,
    /// The local port of active connections (`None`: ephemeral).
    pub(crate) active_source_port: Option<u16>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) data_timeout: Duration,
    pub(crate) user: String,
    pub(crate) events: mpsc::Sender<TransferEvent>,
    pub(crate) cancel: CancellationToken,
    pub(crate) progress: Arc<AtomicU64>,
}

/// Connects to the client for PORT/EPRT, from the control connection's local address and the
/// configured source port (an ephemeral one if that cannot be bound).
async fn connect_to(
    local_ip: IpAddr,
    source_port: Option<u16>,
    addr: SocketAddr,
    shared: &Shared,
) -> io::Result<TcpStream> {
    let local = canonical(local_ip);
    // Bind only to an address of the target's family (an IPv6 control connection to an
    // IPv4-mapped client address connects over IPv4).
    let bind_ip = (local.is_ipv4() == addr.is_ipv4()).then_some(local);
    if let Some(port) = source_port {
        let ip = bind_ip.unwrap_or_else(|| unspecified(addr));
        match active_socket(addr, Some(SocketAddr::new(ip, port))) {
            Ok(socket) => match socket.connect(addr).await {
                Ok(stream) => return Ok(stream),
                // The same four-tuple still in TIME_WAIT (the client reused its port).
                Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
                    debug!(port, %addr, error = %e, "cannot connect from the active source port; using an ephemeral port");
                }
                Err(e) => return Err(e),
            },
            Err(e) => {
                if shared.first_active_bind_failure() {
                    warn!(port, error = %e, "cannot bind the active source port (a port below 1024 needs root or CAP_NET_BIND_SERVICE); active connections use ephemeral ports instead");
                } else {
                    debug!(port, error = %e, "cannot bind the active source port; using an ephemeral port");
                }
            }
        }
    }
    let socket = active_socket(addr, bind_ip.map(|ip| SocketAddr::new(ip, 0)))?;
    socket.connect(addr).await
}

/// A socket for an active connection to `addr`, bound to `local` when given. SO_REUSEADDR lets
/// many connections from one fixed port run at once (to different client ports), and reuse it
/// while earlier ones are in TIME_WAIT.
fn active_socket(addr: SocketAddr, local: Option<SocketAddr>) -> io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(local) = local {
        if local.port() != 0 {
            socket.set_reuseaddr(true)?;
        }
        socket.bind(local)?;
    }
    Ok(socket)
}

fn unspecified(addr: SocketAddr) -> IpAddr {
    if addr.is_ipv4() {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    }
}

enum Guarded<T> {
    Done(T),
    Stalled,
    Cancelled,
}

/// Runs one I/O step, giving up if the transfer is cancelled or the step stalls.
async fn guarded<T>(ctx: &TransferContext, step: impl Future<Output = T>) -> Guarded<T> {
    tokio::select! {
        biased;
        _ = ctx.cancel.cancelled() => Guarded::Cancelled,
        result = tokio::time::timeout(ctx.data_timeout, step) => match result {
            Ok(value) => Guarded::Done(value),
            Err(_) => Guarded::Stalled,
        },
    }
}

/// Makes the data connection, reports `Started` (so the control task sends 150), then, for
/// PROT P, runs the TLS handshake: clients such as Python's ftplib start TLS only after they
/// have read the 150 reply.
async fn data_connection(
    plan: &TransferPlan,
    ctx: &mut TransferContext,
    info: StartInfo,
) -> Result<Stream, TransferOutcome> {
    let passive = ctx.passive.take();
    let (peer_ip, local_ip, source_port) = (ctx.peer_ip, ctx.local_ip, ctx.active_source_port);
    let shared = ctx.shared.clone();
    // Dropping this future (timeout, ABOR) drops the passive endpoint, which closes an own
    // listener or leaves a shared port's queue.
    let connect = async move {
        match (plan.data, passive) {
            (DataEndpoint::Passive, Some(passive)) => passive.accept(peer_ip).await,
            (DataEndpoint::Passive, None) => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "no passive listener",
            )),
            (DataEndpoint::Active(addr), _) => {
                connect_to(local_ip, source_port, addr, &shared).await
            }
        }
    };
    let tcp = match guarded(ctx, connect).await {
        Guarded::Done(Ok(stream)) => stream,
        Guarded::Done(Err(e)) => {
            warn!(error = %e, "data connection failed");
            return Err(TransferOutcome::NoDataConnection);
        }
        Guarded::Stalled => {
            warn!("data connection timed out");
            return Err(TransferOutcome::NoDataConnection);
        }
        Guarded::Cancelled => return Err(TransferOutcome::Aborted),
    };
    started(ctx, info).await?;
    if !plan.protected {
        return Ok(Stream::Plain(tcp));
    }
    let Some(session_tls) = ctx.tls.clone() else {
        return Err(TransferOutcome::TlsFailed);
    };
    // The client is the TLS client on the data connection whichever side connected.
    match guarded(ctx, session_tls.accept_data(tcp)).await {
        Guarded::Done(Ok(stream)) => {
            if !session_tls
                .accepts_data_connection(&stream, &ctx.user)
                .await
            {
                warn!(tls = %tls::describe(&stream), "refused a TLS data connection that did not resume the control session");
                return Err(TransferOutcome::TlsNotResumed);
            }
            Ok(Stream::Tls(Box::new(stream)))
        }
        Guarded::Done(Err(e)) => {
            warn!(error = %e, "TLS handshake on the data connection failed");
            Err(TransferOutcome::TlsFailed)
        }
        Guarded::Stalled => Err(TransferOutcome::TlsFailed),
        Guarded::Cancelled => Err(TransferOutcome::Aborted),
    }
}

async fn started(ctx: &TransferContext, info: StartInfo) -> Result<(), TransferOutcome> {
    ctx.events
        .send(TransferEvent::Started(info))
        .await
        .map_err(|_| TransferOutcome::Aborted)
}

/// Runs a transfer to its end and reports it.
pub(crate) async fn run_transfer(plan: TransferPlan, mut ctx: TransferContext) {
    let began = Instant::now();
    let outcome = match transfer(&plan, &mut ctx).await {
        Ok(outcome) | Err(outcome) => outcome,
    };
    let bytes = ctx.progress.load(Ordering::Relaxed);
    let (verb, path) = match &plan.kind {
        TransferKind::Retrieve { path, .. } => ("RETR", path.to_string()),
        TransferKind::Store { path, .. } => ("STOR", path.to_string()),
        TransferKind::StoreUnique { dir, base } => ("STOU", dir.join(base).to_string()),
        TransferKind::List { path, .. } => ("LIST", path.to_string()),
    };
    info!(
        user = %ctx.user,
        client = %ctx.peer_ip,
        command = verb,
        path = ?path,
        bytes,
        duration_ms = began.elapsed().as_millis() as u64,
        result = ?outcome,
        "transfer"
    );
    let _ = ctx.events.send(TransferEvent::Done(outcome)).await;
}

async fn transfer(
    plan: &TransferPlan,
    ctx: &mut TransferContext,
) -> Result<TransferOutcome, TransferOutcome> {
    let failed = |e: ftpgate_core::StorageError| {
        warn!(error = %e, "storage error");
        TransferOutcome::Failed(e.kind)
    };
    match &plan.kind {
        TransferKind::Retrieve { path, offset } => {
            let meta = ctx.storage.metadata(path).await.map_err(failed)?;
            if meta.is_dir() {
                return Err(TransferOutcome::Failed(ErrorKind::IsADirectory));
            }
            let reader = ctx.storage.read(path, *offset).await.map_err(failed)?;
            let size = if plan.ascii {
                None
            } else {
                Some(meta.size.saturating_sub(*offset))
            };
            let data = data_connection(
                plan,
                ctx,
                StartInfo {
                    size,
                    unique_name: None,
                },
            )
            .await?;
            Ok(send_file(reader, data, plan.ascii, ctx).await)
        }
        TransferKind::Store { path, start } => {
            // With limits, the size of the file being replaced or extended matters.
            let existing = if ctx.limits.is_unlimited() {
                0
            } else {
                ctx.storage
                    .metadata(path)
                    .await
                    .ok()
                    .filter(|m| m.is_file())
                    .map_or(0, |m| m.size)
            };
            let offset = match start {
                WriteStart::Truncate => 0,
                WriteStart::Append => existing,
                WriteStart::At(n) => *n,
            };
            let upload = ctx.storage.write(path, *start).await.map_err(failed)?;
            receive_upload(plan, upload, ctx, existing, offset).await
        }
        TransferKind::StoreUnique { dir, base } => {
            let upload = ctx.storage.write_unique(dir, base).await.map_err(failed)?;
            receive_upload(plan, upload, ctx, 0, 0).await
        }
        TransferKind::List {
            path,
            format,
            all,
            permissions,
        } => {
            let meta = ctx.storage.metadata(path).await.map_err(failed)?;
            let mut entries = if meta.is_dir() {
                ctx.storage.list(path).await.map_err(failed)?
            } else if matches!(format, ListFormat::Facts(_)) {
                return Err(TransferOutcome::Failed(ErrorKind::NotADirectory));
            } else {
                let name = path.file_name().unwrap_or("").to_string();
                Box::pin(futures_util::stream::iter([Ok(DirEntry {
                    name,
                    metadata: meta,
                })]))
            };
            let mut data = data_connection(plan, ctx, StartInfo::default()).await?;
            let now = SystemTime::now();
            let show_hidden = *all || matches!(format, ListFormat::Facts(_));
            let mut out = Vec::with_capacity(LISTING_BUFFER + 1024);
            loop {
                let entry = match guarded(ctx, entries.next()).await {
                    Guarded::Done(Some(Ok(entry))) => entry,
                    Guarded::Done(None) => break,
                    Guarded::Done(Some(Err(e))) => return Err(failed(e)),
                    Guarded::Stalled => return Err(TransferOutcome::Failed(ErrorKind::Transient)),
                    Guarded::Cancelled => return Err(TransferOutcome::Aborted),
                };
                if !show_hidden && entry.name.starts_with('.') {
                    continue;
                }
                format_entry(*format, &entry, *permissions, now, &mut out);
                if out.len() >= LISTING_BUFFER {
                    write_data(&mut data, &out, ctx).await?;
                    out.clear();
                }
            }
            write_data(&mut data, &out, ctx).await?;
            close_data(data, ctx).await
        }
    }
}

async fn write_data(
    data: &mut Stream,
    bytes: &[u8],
    ctx: &TransferContext,
) -> Result<(), TransferOutcome> {
    match guarded(ctx, data.write_all(bytes)).await {
        Guarded::Done(Ok(())) => {
            ctx.progress
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            Ok(())
        }
        Guarded::Done(Err(_)) | Guarded::Stalled => Err(TransferOutcome::ConnectionLost),
        Guarded::Cancelled => Err(TransferOutcome::Aborted),
    }
}

/// Closes the data connection cleanly (FIN after the last byte), before 226 is sent.
async fn close_data(
    mut data: Stream,
    ctx: &TransferContext,
) -> Result<TransferOutcome, TransferOutcome> {
    match guarded(ctx, data.shutdown()).await {
        Guarded::Done(Ok(())) => Ok(TransferOutcome::Complete {
            bytes: ctx.progress.load(Ordering::Relaxed),
        }),
        Guarded::Done(Err(_)) | Guarded::Stalled => Err(TransferOutcome::ConnectionLost),
        Guarded::Cancelled => Err(TransferOutcome::Aborted),
    }
}

async fn send_file(
    mut reader: impl AsyncRead + Unpin,
    mut data: Stream,
    ascii: bool,
    ctx: &TransferContext,
) -> TransferOutcome {
    let mut buf = vec![0u8; TRANSFER_BUFFER];
    let mut encoder = AsciiEncoder::default();
    let mut encoded = Vec::new();
    loop {
        let n = match guarded(ctx, reader.read(&mut buf)).await {
            Guarded::Done(Ok(0)) => break,
            Guarded::Done(Ok(n)) => n,
            Guarded::Done(Err(e)) => {
                warn!(error = %e, "read from storage failed");
                return TransferOutcome::Failed(error_kind_of(&e));
            }
            Guarded::Stalled => return TransferOutcome::Failed(ErrorKind::Transient),
            Guarded::Cancelled => return TransferOutcome::Aborted,
        };
        let chunk = if ascii {
            encoded.clear();
            encoder.encode(&buf[..n], &mut encoded);
            &encoded[..]
        } else {
            &buf[..n]
        };
        if let Err(outcome) = write_data(&mut data, chunk, ctx).await {
            return outcome;
        }
    }
    match close_data(data, ctx).await {
        Ok(outcome) | Err(outcome) => outcome,
    }
}

/// Receives an upload. `existing` is the size of the file it replaces or extends and `offset`
/// where writing starts, for size limits and quotas, which are checked before each write.
async fn receive_upload(
    plan: &TransferPlan,
    mut upload: Box<dyn Upload>,
    ctx: &mut TransferContext,
    existing: u64,
    offset: u64,
) -> Result<TransferOutcome, TransferOutcome> {
    let allowance = ctx.limits.allowance(existing, offset);
    let mut written = 0u64;
    let unique_name = match plan.kind {
        TransferKind::StoreUnique { .. } => upload.name().map(str::to_string),
        _ => None,
    };
    let mut data = match data_connection(
        plan,
        ctx,
        StartInfo {
            size: None,
            unique_name,
        },
    )
    .await
    {
        Ok(data) => data,
        Err(outcome) => {
            upload.abort().await;
            return Err(outcome);
        }
    };
    let mut buf = vec![0u8; TRANSFER_BUFFER];
    let mut decoder = AsciiDecoder::default();
    let mut decoded = Vec::new();
    loop {
        let n = match guarded(ctx, data.read(&mut buf)).await {
            Guarded::Done(Ok(n)) => n,
            Guarded::Done(Err(_)) | Guarded::Stalled => {
                upload.abort().await;
                return Err(TransferOutcome::ConnectionLost);
            }
            Guarded::Cancelled => {
                upload.abort().await;
                return Err(TransferOutcome::Aborted);
            }
        };
        let chunk = if plan.ascii {
            decoded.clear();
            if n == 0 {
                decoder.finish(&mut decoded);
            } else {
                decoder.decode(&buf[..n], &mut decoded);
            }
            &decoded[..]
        } else {
            &buf[..n]
        };
        written += chunk.len() as u64;
        if written > allowance {
            warn!(allowance, "upload exceeds the size limit or quota");
            upload.abort().await;
            return Err(TransferOutcome::Failed(ErrorKind::ExceededStorage));
        }
        if !chunk.is_empty() {
            match guarded(ctx, upload.write(chunk)).await {
                Guarded::Done(Ok(())) => {}
                Guarded::Done(Err(e)) => {
                    warn!(error = %e, "write to storage failed");
                    upload.abort().await;
                    return Err(TransferOutcome::Failed(e.kind));
                }
                Guarded::Stalled => {
                    upload.abort().await;
                    return Err(TransferOutcome::Failed(ErrorKind::Transient));
                }
                Guarded::Cancelled => {
                    upload.abort().await;
                    return Err(TransferOutcome::Aborted);
                }
            }
        }
        if n == 0 {
            break;
        }
        ctx.progress.fetch_add(n as u64, Ordering::Relaxed);
    }
    // Answer the client's close_notify with ours (clients such as Python's ftplib wait for it)
    // and close the data connection before 226.
    if let Guarded::Done(Err(e)) = guarded(ctx, data.shutdown()).await {
        debug!(error = %e, "closing the data connection after an upload");
    }
    drop(data);
    match upload.commit().await {
        Ok(size) => {
            if let Some(quota) = &ctx.limits.quota {
                quota.resized(existing, size);
            }
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
