//! The data connection: accepted on the session's passive endpoint or connected to the client
//! for PORT/EPRT, then, for PROT P, secured with TLS.

use std::io;
use std::net::{IpAddr, SocketAddr};

use ftpgate_proto::hostport::canonical;
use ftpgate_proto::session::{DataEndpoint, StartInfo, TransferOutcome, TransferPlan};
use tokio::net::{TcpSocket, TcpStream};
use tracing::{debug, warn};

use super::TransferContext;
use super::outcome::{Side, guarded};
use crate::tls::{self, Stream};

/// Makes the data connection, reports `Started` (so the control task sends 150), then, for
/// PROT P, runs the TLS handshake: clients such as Python's ftplib start TLS only after they
/// have read the 150 reply.
pub(super) async fn data_connection(
    plan: &TransferPlan,
    ctx: &mut TransferContext,
    info: StartInfo,
) -> Result<Stream, TransferOutcome> {
    let passive = ctx.passive.take();
    let (peer_ip, local_ip, source_port) = (ctx.peer_ip, ctx.local_ip, ctx.active_source_port);
    let server = ctx.server.clone();
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
                connect_to(local_ip, source_port, addr, &server.active_bind_failed).await
            }
            (DataEndpoint::None, _) => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "no data connection for this command",
            )),
        }
    };
    let tcp = guarded(ctx, Side::Connect, connect).await?;
    ctx.report_started(info)?;
    if !plan.protected {
        return Ok(Stream::Plain(tcp));
    }
    let Some(session_tls) = ctx.tls.clone() else {
        return Err(TransferOutcome::TlsFailed);
    };
    // The client is the TLS client on the data connection whichever side connected.
    let handshake = guarded(ctx, Side::Tls, session_tls.accept_data(tcp)).await;
    if let Some(metrics) = &ctx.server.metrics {
        metrics.tls_handshake(
            handshake
                .as_ref()
                .ok()
                .and_then(|s| s.get_ref().1.protocol_version()),
        );
    }
    let stream = handshake?;
    if !session_tls
        .accepts_data_connection(&stream, &ctx.user)
        .await
    {
        warn!(tls = %tls::describe(&stream), "refused a TLS data connection that did not resume the control session");
        return Err(TransferOutcome::TlsNotResumed);
    }
    Ok(Stream::Tls(Box::new(stream)))
}

/// Connects to the client for PORT/EPRT, from the control connection's local address and the
/// configured source port (an ephemeral one if that cannot be bound; the first such failure
/// of the server is a warning, marked in `bind_failed`).
async fn connect_to(
    local_ip: IpAddr,
    source_port: Option<u16>,
    addr: SocketAddr,
    bind_failed: &std::sync::atomic::AtomicBool,
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
                if !bind_failed.swap(true, std::sync::atomic::Ordering::Relaxed) {
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
