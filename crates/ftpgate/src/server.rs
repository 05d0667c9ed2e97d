//! Listeners, connection limits and shutdown.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use ftpgate_core::{Authenticator, StorageFactory};
use ftpgate_proto::Reply;
use ftpgate_proto::hostport::canonical;
use ftpgate_proto::reply::ReplyCode;
use prometheus_client::metrics::counter::Counter;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::address::PassiveAddresses;
use crate::config::{ConfigError, ServerConfig};
use crate::control;
use crate::events::{Emitter, EventHandler};
use crate::guard::LoginGuard;
use crate::limits::Quotas;
use crate::live::{Live, VirtualHost};
use crate::metrics::{Metrics, Rejection};
use crate::passive::PortSharing;
use crate::proxy::{self, Origin, Proxied};
use crate::session_context::SessionContext;
use crate::sessions::{Registry, SessionsHandle};
use crate::state::{SharedLink, SharedState};
use crate::threads::SessionThreads;
use crate::tls::ServerTls;
use crate::transfer::TransferShared;

/// What the listeners own: the sessions' context, the connection limits and the tasks.
pub(crate) struct Shared {
    /// What every session is given.
    pub(crate) sessions: Arc<SessionContext>,
    connections: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    pub(crate) tasks: TaskTracker,
    /// Where sessions run, with `session_threads` set; else on the caller's runtime.
    session_threads: Option<SessionThreads>,
}

/// Holds one per-IP connection slot; frees it when dropped.
pub(crate) struct IpSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.shared.per_ip.lock() {
            if let Some(count) = map.get_mut(&self.ip) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&self.ip);
                }
            }
        }
    }
}

fn take_ip_slot(shared: &Arc<Shared>, ip: IpAddr) -> Option<IpSlot> {
    let mut map = shared.per_ip.lock().ok()?;
    let count = map.entry(ip).or_insert(0);
    if *count >= shared.sessions.config.max_connections_per_ip {
        return None;
    }
    *count += 1;
    Some(IpSlot {
        shared: shared.clone(),
        ip,
    })
}

/// An FTP server, configured but not yet listening.
pub struct Server {
    config: ServerConfig,
    auth: Arc<dyn Authenticator>,
    storage: Arc<dyn StorageFactory>,
    events: Option<Arc<dyn EventHandler>>,
    metrics: Option<Arc<Metrics>>,
    hosts: HashMap<String, Arc<VirtualHost>>,
    /// The fleet's shared store and the timeout of each request to it.
    shared_state: Option<(Arc<dyn SharedState>, Duration)>,
}

impl Server {
    /// A server with these settings, users and storage.
    pub fn new(
        config: ServerConfig,
        auth: Arc<dyn Authenticator>,
        storage: Arc<dyn StorageFactory>,
    ) -> Self {
        Server {
            config,
            auth,
            storage,
            events: None,
            metrics: None,
            hosts: HashMap::new(),
            shared_state: None,
        }
    }

    /// Adds a virtual host, chosen by clients with `HOST name` (names compare without case).
    pub fn with_virtual_host(mut self, name: &str, host: VirtualHost) -> Self {
        self.hosts
            .insert(name.trim().to_ascii_lowercase(), Arc::new(host));
        self
    }

    /// Reports logins, logouts, transfers, deletes, renames and directory changes to
    /// `handler` (see [`Event`](crate::Event)).
    pub fn with_events(mut self, handler: Arc<dyn EventHandler>) -> Self {
        self.events = Some(handler);
        self
    }

    /// Counts connections, logins, commands, replies, transfers, TLS handshakes, passive ports,
    /// bans and timeouts in `metrics` (made with [`Metrics::register`] into the embedder's
    /// `prometheus-client` registry). Without it the engine counts nothing.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Shares failed-login counters, bans and quota usage with the other nodes of a fleet
    /// through `state`. Each request to it may take `timeout` at most; one that fails or takes
    /// longer leaves the decision to this process's own state (logins keep working), and is
    /// counted in `ftpgate_shared_state_failures`.
    pub fn with_shared_state(mut self, state: Arc<dyn SharedState>, timeout: Duration) -> Self {
        self.shared_state = Some((state, timeout));
        self
    }

    /// Validates the settings and binds every listen address.
    pub async fn bind(self) -> io::Result<BoundServer> {
        self.config
            .validate()
            .map_err(|e: ConfigError| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut listeners = Vec::new();
        let addrs = self
            .config
            .listen
            .iter()
            .map(|a| (a, false))
            .chain(self.config.implicit_tls_listen.iter().map(|a| (a, true)));
        for (addr, implicit) in addrs {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket
                .bind(*addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            listeners.push((socket.listen(1024)?, implicit));
        }
        let shared_link = self.shared_state.map(|(state, timeout)| {
            let failures = self
                .metrics
                .as_ref()
                .map(|m| m.shared_state_failures.clone());
            Arc::new(SharedLink::new(state, timeout, failures))
        });
        let login_guard = LoginGuard::new(self.config.login_guard.clone(), shared_link.clone());
        let tls = match &self.config.tls {
            Some(settings) => Some(Arc::new(
                ServerTls::new(settings.clone()).map_err(io::Error::other)?,
            )),
            None => None,
        };
        let passive_addresses = Arc::new(PassiveAddresses::new(
            self.config.passive_address_resolver.clone(),
            self.config.passive_address_rules.clone(),
            self.config.public_host.as_deref(),
            self.config.public_host_refresh,
        ));
        passive_addresses.resolve_now().await;
        let session_threads = match self.config.session_threads {
            0 => None,
            n => Some(SessionThreads::start(n, 512)?),
        };
        let events = Emitter::new(self.events);
        let transfers = Arc::new(TransferShared {
            events: events.clone(),
            metrics: self.metrics.clone(),
            hash_slots: Semaphore::new(self.config.max_concurrent_hashes.max(1)),
            listing_time_zone: self.config.listing_time_zone.clone(),
            listing_sort_limit: self.config.listing_sort_limit,
            active_bind_failed: AtomicBool::new(false),
        });
        let hard = CancellationToken::new();
        let live = Arc::new(ArcSwap::from_pointee(Live {
            config: self.config.clone(),
            auth: self.auth,
            storage: self.storage,
            hosts: self.hosts,
        }));
        let connections = Arc::new(Semaphore::new(self.config.max_connections));
        let proxy_protocol = self.config.proxy_protocol.clone().map(Arc::new);
        let sessions = Arc::new(SessionContext {
            config: self.config,
            live,
            graceful: CancellationToken::new(),
            port_sharing: PortSharing::new(hard.child_token()),
            hard,
            passive_addresses,
            login_guard,
            tls,
            quotas: Quotas::new(shared_link),
            policy: Default::default(),
            transfers,
            events,
            metrics: self.metrics,
            sessions: Arc::new(Registry::default()),
            proxy: proxy_protocol,
        });
        let shared = Arc::new(Shared {
            sessions,
            connections,
            per_ip: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            session_threads,
        });
        Ok(BoundServer { listeners, shared })
    }
}

/// A server whose listeners are bound.
pub struct BoundServer {
    /// Each listener, and whether it speaks implicit TLS.
    listeners: Vec<(TcpListener, bool)>,
    shared: Arc<Shared>,
}

impl BoundServer {
    /// The plain (and explicit FTPS) addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|(_, implicit)| !implicit)
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// The implicit FTPS addresses actually bound.
    pub fn implicit_tls_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|(_, implicit)| *implicit)
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// A handle that replaces the users, storage, virtual hosts and per-session settings
    /// while the server runs (see [`ReloadHandle::reload`]).
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle {
            started: self.shared.sessions.config.clone(),
            live: self.shared.sessions.live.clone(),
        }
    }

    /// The live sessions: a snapshot of each, and ending one.
    pub fn sessions(&self) -> SessionsHandle {
        SessionsHandle {
            ctx: self.shared.sessions.clone(),
        }
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, closes idle sessions with
    /// 421, lets running transfers finish within the grace period, aborts the rest, and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let shared = self.shared;
        let mut accept_tasks = Vec::new();
        for (listener, implicit) in self.listeners {
            accept_tasks.push(tokio::spawn(accept_loop(
                listener,
                implicit,
                shared.clone(),
            )));
        }
        let refresh = tokio::spawn(
            shared
                .sessions
                .passive_addresses
                .clone()
                .refresh_loop(shared.sessions.graceful.clone()),
        );
        shutdown.cancelled().await;
        let drain = shared.sessions.config.drain;
        if !drain.is_zero() {
            // Still serving, so the load balancer (which sees `/readyz` turn 503) can take
            // this node out before it refuses anyone.
            info!(
                seconds = drain.as_secs_f64(),
                "draining: still accepting connections while the load balancer takes this node out"
            );
            tokio::time::sleep(drain).await;
        }
        info!("shutting down: no new connections; waiting for transfers to finish");
        shared.sessions.graceful.cancel();
        refresh.abort();
        for task in accept_tasks {
            task.abort();
        }
        shared.tasks.close();
        if tokio::time::timeout(shared.sessions.config.shutdown_grace, shared.tasks.wait())
            .await
            .is_err()
        {
            warn!("grace period over; aborting remaining transfers");
            shared.sessions.hard.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), shared.tasks.wait()).await;
        }
        if let Some(threads) = &shared.session_threads {
            threads.stop();
        }
        info!("shutdown complete");
    }
}

/// Replaces what a running server's new sessions get, without touching running sessions.
#[derive(Clone)]
pub struct ReloadHandle {
    /// The settings the server started with, to tell which changes need a restart.
    started: ServerConfig,
    live: Arc<ArcSwap<Live>>,
}

impl ReloadHandle {
    /// Takes the users, storage, virtual hosts and settings of `server` (built as for
    /// [`Server::new`]) for connections made and logins completed from now on; a session that is
    /// already logged in keeps what it logged in with. Settings that apply only at start
    /// (listen addresses, passive ports, connection limits, TLS; see
    /// [`ServerConfig::restart_only_changes`]) keep their running values: their names are
    /// returned if they changed. The event handler of `server` is ignored. Nothing is replaced
    /// if the settings are invalid.
    pub fn reload(&self, server: Server) -> Result<Vec<&'static str>, ConfigError> {
        server.config.validate()?;
        let needs_restart = self.started.restart_only_changes(&server.config);
        self.live.store(Arc::new(Live {
            config: server.config,
            auth: server.auth,
            storage: server.storage,
            hosts: server.hosts,
        }));
        Ok(needs_restart)
    }
}

async fn refuse(mut stream: TcpStream, text: &str) {
    let reply = Reply::new(ReplyCode::ServiceNotAvailable, text).encode();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(&reply)).await;
}

async fn accept_loop(listener: TcpListener, implicit_tls: bool, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(10);
    let accepted = shared
        .sessions
        .metrics
        .as_ref()
        .map(|m| m.connections_of(listener.local_addr().ok(), implicit_tls));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => {
                backoff = Duration::from_millis(10);
                conn
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, then try again.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let proxy = shared.sessions.proxy.clone();
        match proxy.filter(|p| p.trusts(peer.ip())) {
            // A load balancer's connection: its header names the client. Read in a task of
            // its own, so a slow header holds up no other connection.
            Some(settings) => {
                let (shared2, accepted) = (shared.clone(), accepted.clone());
                shared.tasks.spawn(async move {
                    let mut stream = stream;
                    let origin = match proxy::read_header(&mut stream, &settings).await {
                        Ok(Proxied::Client {
                            source,
                            destination,
                        }) => Origin {
                            client: source,
                            dialled: Some(destination),
                            via: Some(peer),
                        },
                        Ok(Proxied::Local) => Origin {
                            client: peer,
                            dialled: None,
                            via: Some(peer),
                        },
                        Err(e) => {
                            warn!(%peer, error = %e, "connection refused: no valid PROXY header from a trusted address");
                            if let Some(m) = &shared2.sessions.metrics {
                                m.rejected(Rejection::ProxyHeader);
                            }
                            return;
                        }
                    };
                    admit(&shared2, stream, origin, implicit_tls, accepted.as_ref());
                });
            }
            None => {
                let origin = Origin {
                    client: peer,
                    dialled: None,
                    via: None,
                };
                admit(&shared, stream, origin, implicit_tls, accepted.as_ref());
            }
        }
    }
}

/// Starts a session for a connection from `origin.client`, unless that address is banned or
/// a connection limit is reached (421 then).
fn admit(
    shared: &Arc<Shared>,
    stream: TcpStream,
    origin: Origin,
    implicit_tls: bool,
    accepted: Option<&Counter>,
) {
    let rejected = |why| {
        if let Some(m) = &shared.sessions.metrics {
            m.rejected(why);
        }
    };
    let client = origin.client;
    if let Some(left) = shared
        .sessions
        .login_guard
        .banned_for(canonical(client.ip()), std::time::Instant::now())
    {
        warn!(%client, seconds_left = left.as_secs(), "connection refused: address banned after failed logins");
        rejected(Rejection::Banned);
        tokio::spawn(refuse(
            stream,
            "Too many failed logins from your address; try again later",
        ));
        return;
    }
    let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
        warn!(%client, "connection refused: server full");
        rejected(Rejection::MaxConnections);
        tokio::spawn(refuse(stream, "Too many connections; try again later"));
        return;
    };
    let Some(slot) = take_ip_slot(shared, canonical(client.ip())) else {
        warn!(%client, "connection refused: too many connections from this address");
        rejected(Rejection::PerIp);
        tokio::spawn(refuse(stream, "Too many connections from your address"));
        return;
    };
    if let Some(accepted) = accepted {
        accepted.inc();
    }
    let sessions = shared.sessions.clone();
    let session = move |stream| async move {
        // A ban earned on another node of the fleet (asked here, off the accept loop).
        if let Some(left) = sessions
            .login_guard
            .shared_ban(canonical(client.ip()))
            .await
        {
            warn!(%client, seconds_left = left.as_secs(), "connection refused: address banned after failed logins");
            if let Some(m) = &sessions.metrics {
                m.rejected(Rejection::Banned);
            }
            refuse(
                stream,
                "Too many failed logins from your address; try again later",
            )
            .await;
        } else {
            control::run(sessions, stream, origin, implicit_tls).await;
        }
        drop(slot);
        drop(permit);
    };
    match &shared.session_threads {
        Some(threads) => threads.spawn_connection(&shared.tasks, stream, session),
        None => {
            shared.tasks.spawn(session(stream));
        }
    }
}
