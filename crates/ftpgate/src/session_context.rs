//! What every control connection is given by the server: the settings and shared state it
//! reads. The server builds one [`SessionContext`] and hands each session an `Arc` of it; the
//! control connection needs nothing else of the server (no import of `server`).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::address::PassiveAddresses;
use crate::config::ServerConfig;
use crate::events::Emitter;
use crate::guard::LoginGuard;
use crate::limits::Quotas;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::passive::PortSharing;
use crate::policy::Policy;
use crate::proxy::ProxyProtocol;
use crate::sessions::Registry;
use crate::tls::ServerTls;
use crate::transfer::TransferShared;

/// What every session shares.
pub(crate) struct SessionContext {
    /// The settings the server started with: listeners, passive ports, connection limits and
    /// TLS come from here (a reload cannot change them).
    pub(crate) config: ServerConfig,
    /// The current users, storage and per-session settings; swapped whole by a reload.
    pub(crate) live: Arc<ArcSwap<Live>>,
    /// Cancelled when shutdown starts: stop accepting, close idle sessions.
    pub(crate) graceful: CancellationToken,
    /// Cancelled when the grace period ends: abort running transfers.
    pub(crate) hard: CancellationToken,
    /// Chooses the address announced in PASV replies.
    pub(crate) passive_addresses: Arc<PassiveAddresses>,
    /// Shared passive listeners (with `passive_port_sharing`).
    pub(crate) port_sharing: PortSharing,
    pub(crate) login_guard: LoginGuard,
    /// TLS state shared by all sessions, when FTPS is configured.
    pub(crate) tls: Option<Arc<ServerTls>>,
    /// Users' quotas, shared by all of a user's sessions.
    pub(crate) quotas: Quotas,
    /// Users' session counts and bandwidth, shared by all of a user's sessions.
    pub(crate) policy: Policy,
    /// What every transfer shares (the event handler, digest permits, listing settings).
    pub(crate) transfers: Arc<TransferShared>,
    /// The embedder's event handler.
    pub(crate) events: Emitter,
    /// The embedder's metrics, if any.
    pub(crate) metrics: Option<Arc<Metrics>>,
    /// The live sessions.
    pub(crate) sessions: Arc<Registry>,
    /// The PROXY protocol settings, behind a load balancer.
    pub(crate) proxy: Option<Arc<ProxyProtocol>>,
}

impl SessionContext {
    /// The IPv4 address to announce in a 227 reply to `client`, whose control connection is
    /// on `local`.
    pub(crate) fn advertised_ipv4(&self, client: IpAddr, local: IpAddr) -> Option<Ipv4Addr> {
        self.passive_addresses.advertised(client, local)
    }

    /// The local port for an active-mode data connection of a control connection on local port
    /// `control_port`, or `None` for an ephemeral one.
    pub(crate) fn active_source_port(&self, control_port: u16) -> Option<u16> {
        self.config.active_source_port.port_for(control_port)
    }
}
