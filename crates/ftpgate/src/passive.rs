//! Passive data ports: a listener of the session's own, or a place in the queue of a shared one.
//!
//! Without port sharing (the default) each PASV/EPSV binds a listener on a free port of the
//! range, used by that session alone; it accepts only the client's own host, refusing anyone
//! else while it keeps waiting.
//!
//! With port sharing ([`ServerConfig::passive_port_sharing`]) one listener per port serves every
//! session that PASV/EPSV sent there. A session goes to a port where no other session of its
//! client address waits when the range has one, so sessions of one address share a port only
//! when the range is too small to keep them apart. The listener is owned by a small accept task; each
//! PASV/EPSV adds a waiter to that port's queue for the client's IP address, and each connection
//! accepted goes to the oldest waiter of its source address (FIFO per client IP, in the order the
//! PASV/EPSV commands were answered). A connection from an address with no waiter is closed at
//! once. A waiter leaves the queue when it is served, and when its [`SharedWait`] is dropped:
//! the transfer timed out or was aborted, another PASV replaced it, or the session ended. The
//! last waiter of a port to leave stops the accept task and closes the port.
//!
//! The trade-off: the source address is all that tells two waiting sessions apart, so two
//! sessions from one address (users behind one NAT) that wait on the same port at the same time
//! can receive each other's data connections. With TLS and `session_reuse = "connection"` such a
//! mix-up is refused (the other client cannot resume this control connection's TLS session);
//! with `"user"` only when the two sessions are of different users; plain FTP cannot tell at
//! all. That is why sharing is off by default.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ftpgate_proto::hostport::{canonical, same_host};
use rand::Rng;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::ServerConfig;
use crate::metrics::{Metrics, PortInUse};
use crate::proxy::{self, Proxied, ProxyData, ProxyProtocol};

/// Connections a passive listener may have waiting to be accepted.
const BACKLOG: u32 = 64;

/// Where a session's next passive data connection comes from, counted in
/// `ftpgate_passive_ports_in_use` until it is accepted or dropped.
pub(crate) struct Passive {
    endpoint: Endpoint,
    /// Behind a load balancer: what its data connections carry.
    proxy: Option<Arc<ProxyProtocol>>,
    _in_use: PortInUse,
}

enum Endpoint {
    /// A listener of its own, not registered with the poller until a transfer has to wait for
    /// its connection.
    Own(std::net::TcpListener),
    /// A place in the queue of a shared listener.
    Shared(SharedWait),
}

impl Passive {
    /// Opens a passive endpoint for a client at `client` whose control connection is on
    /// `local_ip`: returns it and the port to announce.
    pub(crate) fn open(
        config: &ServerConfig,
        sharing: &PortSharing,
        local_ip: IpAddr,
        client: IpAddr,
        proxy: Option<&Arc<ProxyProtocol>>,
        metrics: Option<&Metrics>,
    ) -> io::Result<(Passive, u16)> {
        let opened = Self::open_endpoint(config, sharing, local_ip, client);
        match opened {
            Ok((endpoint, port)) => Ok((
                Passive {
                    endpoint,
                    proxy: proxy.cloned(),
                    _in_use: PortInUse::new(metrics),
                },
                port,
            )),
            Err(e) => {
                if let (Some(metrics), io::ErrorKind::AddrInUse) = (metrics, e.kind()) {
                    metrics.passive_ports_exhausted.inc();
                }
                Err(e)
            }
        }
    }

    fn open_endpoint(
        config: &ServerConfig,
        sharing: &PortSharing,
        local_ip: IpAddr,
        client: IpAddr,
    ) -> io::Result<(Endpoint, u16)> {
        if config.passive_port_sharing {
            if let Some(range) = &config.passive_ports {
                let wait = sharing.register(range, local_ip, client)?;
                let port = wait.port();
                return Ok((Endpoint::Shared(wait), port));
            }
        }
        let listener = open_own(config, local_ip)?;
        let port = listener.local_addr()?.port();
        Ok((Endpoint::Own(listener), port))
    }

    /// Waits for the data connection from the client's own host (or, behind a load balancer,
    /// the one it relays for the client).
    pub(crate) async fn accept(self, client_ip: IpAddr) -> io::Result<TcpStream> {
        match self.endpoint {
            Endpoint::Own(listener) => {
                accept_from(&listener, client_ip, self.proxy.as_deref()).await
            }
            Endpoint::Shared(wait) => wait.connection().await,
        }
    }
}

/// Binds a listener that is not yet registered with the runtime's poller (non-blocking, ready to
/// become a [`TcpListener`]).
fn bind_listener(ip: IpAddr, port: u16) -> io::Result<std::net::TcpListener> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let family = match ip {
        IpAddr::V4(_) => AddressFamily::INET,
        IpAddr::V6(_) => AddressFamily::INET6,
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let socket = rustix::net::socket_with(family, SocketType::STREAM, flags, None)?;
    // A port of a small range is reused at once, while its last data connection may still be in
    // TIME_WAIT. (On Linux this never lets two listeners share a port; that is SO_REUSEPORT.)
    rustix::net::sockopt::set_socket_reuseaddr(&socket, true)?;
    rustix::net::bind(&socket, &SocketAddr::new(ip, port))?;
    rustix::net::listen(&socket, BACKLOG as i32)?;
    Ok(std::net::TcpListener::from(socket))
}

/// The ports of the range, starting at a random one.
fn ports_from_random_start(range: &std::ops::RangeInclusive<u16>) -> impl Iterator<Item = u16> {
    let (start, end) = (u32::from(*range.start()), u32::from(*range.end()));
    let span = end.saturating_sub(start) + 1;
    let first = rand::thread_rng().gen_range(0..span);
    let fallback = *range.start();
    (0..span).map(move |i| u16::try_from(start + (first + i) % span).unwrap_or(fallback))
}

/// Binds a listener of the session's own on the control connection's local address, on a
/// random free port of the configured range (or any port if no range is set).
fn open_own(config: &ServerConfig, local_ip: IpAddr) -> io::Result<std::net::TcpListener> {
    let Some(range) = &config.passive_ports else {
        return bind_listener(local_ip, 0);
    };
    for port in ports_from_random_start(range) {
        match bind_listener(local_ip, port) {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free port in the passive range",
    ))
}

/// Accepts the first connection from the client's own host; connections from anyone else are
/// closed and the listener keeps waiting for the real client.
///
/// Behind a load balancer, a connection from a trusted address is the client's when its PROXY
/// header names the client's host (`data = "required"`; the header is consumed here, before
/// any TLS handshake), or at once (`data = "off"`: TLS session reuse is then what ties it to
/// the session). A header is read within its timeout while the listener waits, so a slow one
/// delays only this session's data connection.
async fn accept_from(
    listener: &std::net::TcpListener,
    client_ip: IpAddr,
    proxy: Option<&ProxyProtocol>,
) -> io::Result<TcpStream> {
    // The client has usually connected by the time its transfer command arrives: the connection
    // is taken at once, and the listener never joins the poller, so the client's connect does
    // not wake the session's thread only for it to find nothing to do (on loopback the client's
    // connect took 78 us instead of 100, and one session moved 3 % more small files a second).
    let mut waiting: Option<TcpListener> = None;
    loop {
        let (mut stream, from) = match &waiting {
            Some(registered) => registered.accept().await?,
            None => match accept_nonblocking(listener) {
                Ok((stream, from)) => (TcpStream::from_std(stream)?, from),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    waiting = Some(TcpListener::from_std(listener.try_clone()?)?);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            },
        };
        match proxy.filter(|p| p.trusts(from.ip())) {
            None if same_host(from.ip(), client_ip) => return Ok(stream),
            None => {
                warn!(%from, expected = %client_ip, "refused a data connection from a foreign address");
            }
            Some(settings) if settings.data == ProxyData::Off => return Ok(stream),
            Some(settings) => match proxy::read_header(&mut stream, settings).await {
                Ok(Proxied::Client { source, .. }) if same_host(source.ip(), client_ip) => {
                    return Ok(stream);
                }
                Ok(Proxied::Client { source, .. }) => {
                    warn!(%from, client = %source, expected = %client_ip, "refused a data connection relayed for a foreign address");
                }
                Ok(Proxied::Local) => {
                    warn!(%from, "refused a data connection whose PROXY header names no client");
                }
                Err(e) => {
                    warn!(%from, error = %e, "refused a data connection without a valid PROXY header");
                }
            },
        }
    }
}

/// Accepts a waiting connection, already non-blocking (accept4 with SOCK_NONBLOCK: no second
/// call to make it so).
fn accept_nonblocking(
    listener: &std::net::TcpListener,
) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    use rustix::net::SocketFlags;
    let (fd, from) =
        rustix::net::acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?;
    let from = from
        .and_then(|from| SocketAddr::try_from(from).ok())
        .ok_or_else(|| io::Error::other("an accepted connection without an IP address"))?;
    Ok((std::net::TcpStream::from(fd), from))
}

/// The shared passive listeners, by local address and port.
#[derive(Clone)]
pub(crate) struct PortSharing {
    inner: Arc<Mutex<Registry>>,
    /// Cancelled at the hard end of shutdown: every accept task stops.
    stop: CancellationToken,
}

#[derive(Default)]
struct Registry {
    ports: HashMap<SocketAddr, SharedPort>,
    next_id: u64,
}

/// One shared listener's queue.
struct SharedPort {
    /// Waiting sessions by client address (canonical form), oldest first.
    waiters: HashMap<IpAddr, VecDeque<Waiter>>,
    /// Registrations not yet dropped (served ones included, until their transfer takes the
    /// connection); the port closes when this reaches zero.
    registrations: usize,
    /// Woken when `registrations` reaches zero. The accept task then closes the listener and
    /// removes this entry under the registry lock, so a PASV at that moment either finds the
    /// port still here (and keeps it open) or finds it gone and closed (and binds it again).
    idle: Arc<Notify>,
}

struct Waiter {
    id: u64,
    tx: oneshot::Sender<TcpStream>,
}

impl PortSharing {
    pub(crate) fn new(stop: CancellationToken) -> Self {
        PortSharing {
            inner: Arc::new(Mutex::new(Registry::default())),
            stop,
        }
    }

    /// Adds a waiter for `client` on a port of `range` on `local_ip`, starting from a random
    /// port of the range: first a port where no other session of this client address waits
    /// (already shared or free), and only when there is none, one where such a session waits
    /// (then FIFO order decides which connection goes to whom).
    fn register(
        &self,
        range: &std::ops::RangeInclusive<u16>,
        local_ip: IpAddr,
        client: IpAddr,
    ) -> io::Result<SharedWait> {
        let client = canonical(client);
        let mut registry = self
            .inner
            .lock()
            .map_err(|_| io::Error::other("passive port registry poisoned"))?;
        let id = registry.next_id;
        registry.next_id += 1;
        let (tx, rx) = oneshot::channel();
        for share_with_same_client in [false, true] {
            for port in ports_from_random_start(range) {
                let addr = SocketAddr::new(local_ip, port);
                let same_client_waits = registry
                    .ports
                    .get(&addr)
                    .is_some_and(|p| p.waiters.contains_key(&client));
                if same_client_waits != share_with_same_client {
                    // First pass: ports without this client; second pass: only those with it (the
                    // others were all tried).
                    continue;
                }
                let shared = match registry.ports.entry(addr) {
                    Entry::Occupied(entry) => entry.into_mut(),
                    Entry::Vacant(entry) => {
                        let listener =
                            match bind_listener(local_ip, port).and_then(TcpListener::from_std) {
                                Ok(listener) => listener,
                                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                                Err(e) => return Err(e),
                            };
                        let idle = Arc::new(Notify::new());
                        debug!(%addr, "shared passive port opened");
                        tokio::spawn(accept_loop(
                            listener,
                            addr,
                            self.inner.clone(),
                            idle.clone(),
                            self.stop.clone(),
                        ));
                        entry.insert(SharedPort {
                            waiters: HashMap::new(),
                            registrations: 0,
                            idle,
                        })
                    }
                };
                shared.registrations += 1;
                shared
                    .waiters
                    .entry(client)
                    .or_default()
                    .push_back(Waiter { id, tx });
                return Ok(SharedWait {
                    rx,
                    registration: Registration {
                        registry: self.inner.clone(),
                        addr,
                        client,
                        id,
                    },
                });
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "no usable port in the passive range",
        ))
    }

    /// How many ports are shared now and how many sessions wait on them (for tests).
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let registry = self.inner.lock().unwrap();
        let waiting = registry
            .ports
            .values()
            .flat_map(|p| p.waiters.values())
            .map(VecDeque::len)
            .sum();
        (registry.ports.len(), waiting)
    }
}

enum Wake {
    Stop,
    Idle,
    Accepted(io::Result<(TcpStream, SocketAddr)>),
}

/// Accepts connections on a shared port and hands each to the oldest waiter of its source
/// address, until the last registration leaves (or shutdown ends).
async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    registry: Arc<Mutex<Registry>>,
    idle: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let wake = tokio::select! {
            _ = stop.cancelled() => Wake::Stop,
            _ = idle.notified() => Wake::Idle,
            accepted = listener.accept() => Wake::Accepted(accepted),
        };
        let (stream, from) = match wake {
            Wake::Stop | Wake::Idle => {
                let Ok(mut registry) = registry.lock() else {
                    return;
                };
                let unused = registry
                    .ports
                    .get(&addr)
                    .is_none_or(|p| p.registrations == 0);
                if matches!(wake, Wake::Stop) || unused {
                    registry.ports.remove(&addr);
                    // Closed before the lock is released: the next PASV can bind it again.
                    drop(listener);
                    debug!(%addr, "shared passive port closed");
                    return;
                }
                // Someone registered again meanwhile: keep serving.
                continue;
            }
            Wake::Accepted(Ok(conn)) => {
                backoff = Duration::from_millis(10);
                conn
            }
            Wake::Accepted(Err(e)) => {
                warn!(%addr, error = %e, "accept on a shared passive port failed");
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let ip = canonical(from.ip());
        let waiter = registry.lock().ok().and_then(|mut registry| {
            let port = registry.ports.get_mut(&addr)?;
            let queue = port.waiters.get_mut(&ip)?;
            let waiter = queue.pop_front();
            if queue.is_empty() {
                port.waiters.remove(&ip);
            }
            waiter
        });
        match waiter {
            Some(waiter) => {
                let id = waiter.id;
                if waiter.tx.send(stream).is_err() {
                    debug!(%from, "the session waiting for this data connection is gone");
                } else {
                    debug!(%from, %addr, id, "data connection handed over");
                }
            }
            None => {
                warn!(%from, %addr, "refused a data connection on a shared passive port: no session from this address is waiting");
                drop(stream);
            }
        }
    }
}

/// A session's place in a shared port's queue; leaving it (dropping) removes the waiter.
pub(crate) struct SharedWait {
    rx: oneshot::Receiver<TcpStream>,
    registration: Registration,
}

impl SharedWait {
    fn port(&self) -> u16 {
        self.registration.addr.port()
    }

    /// The data connection, once the client has made it.
    async fn connection(self) -> io::Result<TcpStream> {
        let SharedWait { rx, registration } = self;
        let stream = rx
            .await
            .map_err(|_| io::Error::other("the shared passive port closed"))?;
        drop(registration);
        Ok(stream)
    }
}

struct Registration {
    registry: Arc<Mutex<Registry>>,
    addr: SocketAddr,
    client: IpAddr,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Ok(mut registry) = self.registry.lock() else {
            return;
        };
        let Some(port) = registry.ports.get_mut(&self.addr) else {
            return;
        };
        if let Some(queue) = port.waiters.get_mut(&self.client) {
            queue.retain(|w| w.id != self.id);
            if queue.is_empty() {
                port.waiters.remove(&self.client);
            }
        }
        port.registrations = port.registrations.saturating_sub(1);
        if port.registrations == 0 {
            // The accept task closes the port (it owns the listener).
            port.idle.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpSocket;

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    async fn connect_from(source: &str, port: u16) -> TcpStream {
        let socket = TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(source.parse().unwrap(), 0))
            .unwrap();
        socket
            .connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn sessions_of_one_address_share_a_port_only_when_they_must() {
        let sharing = PortSharing::new(CancellationToken::new());
        let (p1, p2) = loop {
            let p = free_port();
            if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
                break (p, p + 1);
            }
        };
        let range = p1..=p2;
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let client: IpAddr = "127.0.0.1".parse().unwrap();
        let a = sharing.register(&range, local, client).unwrap();
        let b = sharing.register(&range, local, client).unwrap();
        assert_ne!(a.port(), b.port());
        let other = sharing
            .register(&range, local, "127.0.0.2".parse().unwrap())
            .unwrap();
        let c = sharing.register(&range, local, client).unwrap();
        assert_eq!(sharing.counts(), (2, 4));
        drop((a, b, c, other));
    }

    #[tokio::test]
    async fn connections_go_to_waiters_of_their_address_in_order_and_leaving_cleans_up() {
        let sharing = PortSharing::new(CancellationToken::new());
        let port = free_port();
        let range = port..=port;
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let first = sharing
            .register(&range, local, "127.0.0.1".parse().unwrap())
            .unwrap();
        let second = sharing
            .register(&range, local, "127.0.0.1".parse().unwrap())
            .unwrap();
        let other = sharing
            .register(&range, local, "127.0.0.3".parse().unwrap())
            .unwrap();
        assert_eq!((first.port(), second.port()), (port, port));
        assert_eq!(sharing.counts(), (1, 3));

        // A connection from an address nobody waits for is closed at once.
        let mut stranger = connect_from("127.0.0.2", port).await;
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), stranger.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert_eq!(sharing.counts(), (1, 3));

        let mut a = connect_from("127.0.0.1", port).await;
        a.write_all(b"A").await.unwrap();
        let mut b = connect_from("127.0.0.1", port).await;
        b.write_all(b"B").await.unwrap();
        let mut got = first.connection().await.unwrap();
        got.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"A");
        let mut got = second.connection().await.unwrap();
        got.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"B");
        assert_eq!(sharing.counts(), (1, 1));

        // Leaving and coming back at once (a second PASV) keeps the port usable.
        drop(other);
        let again = sharing
            .register(&range, local, "127.0.0.3".parse().unwrap())
            .unwrap();
        assert_eq!(again.port(), port);
        assert_eq!(sharing.counts(), (1, 1));

        // The last waiter leaving closes the port.
        drop(again);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while sharing.counts() != (0, 0) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "port still registered"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let socket = TcpSocket::new_v4().unwrap();
            if socket
                .connect(SocketAddr::from(([127, 0, 0, 1], port)))
                .await
                .is_err()
            {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "port still open");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
