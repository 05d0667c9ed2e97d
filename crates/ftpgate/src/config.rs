//! The engine's settings. The library reads no files and no environment: the daemon (or an
//! embedding program) fills in a [`ServerConfig`].

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use ftpgate_proto::Features;

use crate::address::{PassiveAddressResolver, PassiveAddressRule};
use crate::guard::LoginGuardConfig;
use crate::listing::ListingTimeZone;
use crate::proxy::{MAX_PROXY_HEADER_BYTES, MIN_PROXY_HEADER_BYTES, ProxyProtocol};
use crate::tls::TlsConfig;

/// Entries a listing sorts by default: about 2 MB of names and metadata at most, sorted in a
/// millisecond, and more than almost any directory a person browses.
pub const DEFAULT_LISTING_SORT_LIMIT: usize = 10_000;
/// The largest `listing_sort_limit` accepted (a few hundred MB per listing at worst).
pub const MAX_LISTING_SORT_LIMIT: usize = 1_000_000;

/// Everything the engine needs to know, with sane defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses to listen on (IPv4 and IPv6).
    pub listen: Vec<SocketAddr>,
    /// Ports for passive data connections; `None` lets the system pick.
    pub passive_ports: Option<RangeInclusive<u16>>,
    /// The address announced in PASV replies, as an IPv4 address or a host name (for servers
    /// behind NAT). A name is looked up at start and again every `public_host_refresh`; a
    /// failed lookup keeps the last address it gave. `None` announces the control connection's
    /// own address. [`passive_address_rules`](Self::passive_address_rules) and
    /// [`passive_address_resolver`](Self::passive_address_resolver) come first.
    pub public_host: Option<String>,
    /// How often a `public_host` name is looked up again.
    pub public_host_refresh: Duration,
    /// PASV addresses by client network, e.g. clients in `10.0.0.0/8` get the private address
    /// while everyone else gets `public_host`. The first rule whose network holds the client
    /// wins. EPSV replies carry no address, so these only shape PASV.
    pub passive_address_rules: Vec<PassiveAddressRule>,
    /// A function that picks the PASV address per client; when it returns `Some` it wins over
    /// the rules and the public host.
    pub passive_address_resolver: Option<PassiveAddressResolver>,
    /// Lets many sessions wait on one passive port, so a small firewall range serves many
    /// clients: each connection to a shared port goes to the session of its source address that
    /// asked first (PASV/EPSV order). Needs `passive_ports`. Off by default: two sessions from
    /// one address (behind one NAT) waiting on one port at once can get each other's data
    /// connections.
    pub passive_port_sharing: bool,
    /// Whether PORT and EPRT are accepted.
    pub active_mode: bool,
    /// Lowest client port PORT/EPRT may name.
    pub min_active_port: u16,
    /// The local port active-mode (PORT/EPRT) data connections are made from.
    pub active_source_port: ActiveSourcePort,
    /// Most simultaneous control connections.
    pub max_connections: usize,
    /// Most simultaneous control connections from one IP address.
    pub max_connections_per_ip: usize,
    /// A session with no command and no transfer for this long is closed with 421.
    pub idle_timeout: Duration,
    /// A connection that has not logged in within this time is closed with 421.
    pub login_timeout: Duration,
    /// Time allowed to make a data connection, and the longest a transfer may stall.
    pub data_timeout: Duration,
    /// Longest accepted command line, in bytes.
    pub max_line_length: usize,
    /// Failed logins before the connection is closed.
    pub max_login_failures: u32,
    /// The text of the 220 greeting; text of several lines is sent as a multi-line reply.
    pub banner: String,
    /// Text sent in the 230 reply to a successful login, before "User NAME logged in" (a
    /// multi-line reply). `None`: the one-line 230 only.
    pub login_message: Option<String>,
    /// On shutdown, how long running transfers may take to finish.
    pub shutdown_grace: Duration,
    /// On shutdown, how long the listeners keep accepting (and serving) new connections
    /// before they close, so a load balancer has time to see the node drain (the daemon's
    /// `/readyz` answers 503 from the start) and stop sending clients. 0 closes them at once.
    pub drain: Duration,
    /// Behind a TCP load balancer: the PROXY protocol on connections from its addresses.
    /// `None` (the default): no connection carries a header.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// FTPS: AUTH TLS on the listen addresses, and implicit TLS on `implicit_tls_listen`.
    pub tls: Option<TlsConfig>,
    /// Addresses for implicit FTPS (TLS from the first byte, usually port 990).
    pub implicit_tls_listen: Vec<SocketAddr>,
    /// Brute-force protection: growing delays and temporary bans per client address.
    pub login_guard: LoginGuardConfig,
    /// Pipelined commands per second one session may send (bursts of twice that); beyond, they
    /// wait. Only a command sent before the reply to the previous one counts, so a client that
    /// waits for its replies is never slowed.
    pub max_commands_per_second: u32,
    /// Largest file an upload may produce, enforced while the bytes arrive (552 beyond).
    pub max_file_size: Option<u64>,
    /// Optional commands switched on or off (HASH, MLSD, SITE, STAT, …).
    pub features: Features,
    /// Most digests (HASH and the X-commands) computed at once across the server; more wait.
    pub max_concurrent_hashes: usize,
    /// MODE Z (when `features.mode_z` is on): most bytes one upload may inflate to (552 beyond).
    pub mode_z_max_inflated: u64,
    /// MODE Z: most inflated bytes per compressed byte once an upload passes 1 MiB, so a small
    /// compressed upload cannot become a bomb (552 beyond).
    pub mode_z_max_ratio: u64,
    /// Directories with at most this many entries (after hidden names and wildcards are left
    /// out) are listed sorted by name; larger ones are streamed in the storage's order, so a
    /// listing never holds more than this many entries in memory. 0 never sorts.
    pub listing_sort_limit: usize,
    /// The time zone of LIST's `ls -l` times (and STAT's); MLSD, MLST and MDTM are always UTC.
    pub listing_time_zone: ListingTimeZone,
    /// Threads that sessions run on, each with its own single-threaded runtime; a session stays
    /// on one thread from start to end (no work stealing, no wake-ups of other threads).
    /// 0 runs sessions as tasks of the runtime that calls [`BoundServer::run`](crate::BoundServer::run).
    pub session_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2121))],
            passive_ports: None,
            public_host: None,
            public_host_refresh: Duration::from_secs(60),
            passive_address_rules: Vec::new(),
            passive_address_resolver: None,
            passive_port_sharing: false,
            active_mode: true,
            min_active_port: 1024,
            active_source_port: ActiveSourcePort::Ephemeral,
            max_connections: 512,
            max_connections_per_ip: 32,
            idle_timeout: Duration::from_secs(300),
            login_timeout: Duration::from_secs(60),
            data_timeout: Duration::from_secs(30),
            max_line_length: 4096,
            max_login_failures: 3,
            banner: "ftpgate ready".to_string(),
            login_message: None,
            shutdown_grace: Duration::from_secs(30),
            drain: Duration::ZERO,
            proxy_protocol: None,
            tls: None,
            implicit_tls_listen: Vec::new(),
            login_guard: LoginGuardConfig::default(),
            max_commands_per_second: 1000,
            max_file_size: None,
            features: Features::default(),
            max_concurrent_hashes: std::thread::available_parallelism().map_or(2, |n| n.get()),
            mode_z_max_inflated: 16 * 1024 * 1024 * 1024,
            mode_z_max_ratio: 1000,
            listing_sort_limit: DEFAULT_LISTING_SORT_LIMIT,
            listing_time_zone: ListingTimeZone::UTC,
            session_threads: 0,
        }
    }
}

/// The local port of active-mode data connections.
///
/// Some firewalls and old clients expect active data connections from port 20, one below the
/// control port 21 (RFC 959's L-1). A port below 1024 needs root or `CAP_NET_BIND_SERVICE`; when
/// the port cannot be bound (no privilege, or a listener holds it) the connection is made from
/// an ephemeral port instead, and a warning is logged the first time. Connections from one
/// fixed port are made with `SO_REUSEADDR`, so many can run at once to different client ports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ActiveSourcePort {
    /// Any port the system picks (the default).
    #[default]
    Ephemeral,
    /// One below the port of the control connection (20 for a server on 21).
    ControlMinusOne,
    /// This port.
    Port(u16),
}

impl ActiveSourcePort {
    /// The port to bind for a control connection on local port `control_port`, or `None` for
    /// an ephemeral one.
    pub fn port_for(self, control_port: u16) -> Option<u16> {
        match self {
            ActiveSourcePort::Ephemeral => None,
            ActiveSourcePort::ControlMinusOne => control_port.checked_sub(1).filter(|p| *p != 0),
            ActiveSourcePort::Port(port) => Some(port).filter(|p| *p != 0),
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// No listen address.
    #[error("at least one listen address is required")]
    NoListenAddress,
    /// An empty or reversed passive port range.
    #[error("passive port range {0}-{1} is empty")]
    EmptyPassiveRange(u16, u16),
    /// A limit of zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// A line limit too small for any command.
    #[error("max_line_length must be at least 512 bytes")]
    LineTooShort,
    /// Implicit FTPS listeners without a TLS configuration.
    #[error("implicit TLS listeners need a TLS configuration (certificate and key)")]
    ImplicitWithoutTls,
    /// Passive port sharing without a passive port range.
    #[error("passive_port_sharing needs a passive port range")]
    SharingWithoutRange,
    /// A listing sort limit that could hold too much memory.
    #[error("listing_sort_limit must be at most {MAX_LISTING_SORT_LIMIT}")]
    SortLimitTooLarge,
    /// The PROXY protocol with no trusted address.
    #[error("proxy_protocol.trusted must name at least one network")]
    ProxyWithoutTrusted,
    /// A PROXY header size cap outside what the protocol needs.
    #[error(
        "proxy_protocol.max_header_bytes must be from {MIN_PROXY_HEADER_BYTES} to {MAX_PROXY_HEADER_BYTES}"
    )]
    ProxyHeaderSize,
    /// Passive port sharing tells sessions apart by source address, which a load balancer
    /// hides.
    #[error("passive_port_sharing cannot be used with proxy_protocol")]
    SharingBehindProxy,
}

impl ServerConfig {
    /// The settings that differ between `self` and `new` and that take effect only when the
    /// server starts (listeners, passive ports, connection limits, TLS policy, threads), by
    /// name. The others apply to new connections after a
    /// [`ReloadHandle::reload`](crate::ReloadHandle::reload).
    pub fn restart_only_changes(&self, new: &ServerConfig) -> Vec<&'static str> {
        let debug_differs =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
        [
            ("listen", self.listen != new.listen),
            (
                "implicit_tls_listen",
                self.implicit_tls_listen != new.implicit_tls_listen,
            ),
            ("passive_ports", self.passive_ports != new.passive_ports),
            ("public_host", self.public_host != new.public_host),
            (
                "public_host_refresh",
                self.public_host_refresh != new.public_host_refresh,
            ),
            (
                "passive_address_rules",
                self.passive_address_rules != new.passive_address_rules,
            ),
            (
                "passive_port_sharing",
                self.passive_port_sharing != new.passive_port_sharing,
            ),
            (
                "active_source_port",
                self.active_source_port != new.active_source_port,
            ),
            (
                "max_connections",
                self.max_connections != new.max_connections,
            ),
            (
                "max_connections_per_ip",
                self.max_connections_per_ip != new.max_connections_per_ip,
            ),
            ("shutdown_grace", self.shutdown_grace != new.shutdown_grace),
            ("drain", self.drain != new.drain),
            ("proxy_protocol", self.proxy_protocol != new.proxy_protocol),
            (
                "login_guard",
                debug_differs(&self.login_guard, &new.login_guard),
            ),
            (
                "max_concurrent_hashes",
                self.max_concurrent_hashes != new.max_concurrent_hashes,
            ),
            (
                "session_threads",
                self.session_threads != new.session_threads,
            ),
            ("tls", self.tls.is_some() != new.tls.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.is_empty() && self.implicit_tls_listen.is_empty() {
            return Err(ConfigError::NoListenAddress);
        }
        if let Some(range) = &self.passive_ports {
            if range.is_empty() || *range.start() == 0 {
                return Err(ConfigError::EmptyPassiveRange(*range.start(), *range.end()));
            }
        }
        for (value, name) in [
            (self.max_connections, "max_connections"),
            (self.max_connections_per_ip, "max_connections_per_ip"),
            (self.max_login_failures as usize, "max_login_failures"),
            (
                self.max_commands_per_second as usize,
                "max_commands_per_second",
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        for (value, name) in [
            (self.idle_timeout, "idle_timeout"),
            (self.login_timeout, "login_timeout"),
            (self.data_timeout, "data_timeout"),
            (self.public_host_refresh, "public_host_refresh"),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.max_line_length < 512 {
            return Err(ConfigError::LineTooShort);
        }
        if !self.implicit_tls_listen.is_empty() && self.tls.is_none() {
            return Err(ConfigError::ImplicitWithoutTls);
        }
        if self.passive_port_sharing && self.passive_ports.is_none() {
            return Err(ConfigError::SharingWithoutRange);
        }
        if self.active_source_port == ActiveSourcePort::Port(0) {
            return Err(ConfigError::Zero("active_source_port"));
        }
        if self.listing_sort_limit > MAX_LISTING_SORT_LIMIT {
            return Err(ConfigError::SortLimitTooLarge);
        }
        if let Some(proxy) = &self.proxy_protocol {
            if proxy.trusted.is_empty() {
                return Err(ConfigError::ProxyWithoutTrusted);
            }
            if !(MIN_PROXY_HEADER_BYTES..=MAX_PROXY_HEADER_BYTES).contains(&proxy.max_header_bytes)
            {
                return Err(ConfigError::ProxyHeaderSize);
            }
            if proxy.header_timeout.is_zero() {
                return Err(ConfigError::Zero("proxy_protocol.header_timeout"));
            }
            if self.passive_port_sharing {
                return Err(ConfigError::SharingBehindProxy);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ServerConfig::default().validate(), Ok(()));
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = ServerConfig {
            passive_ports: Some(RangeInclusive::new(50010, 50000)),
            ..ServerConfig::default()
        };
        assert_eq!(
            bad.validate(),
            Err(ConfigError::EmptyPassiveRange(50010, 50000))
        );
        let bad = ServerConfig {
            max_connections: 0,
            ..ServerConfig::default()
        };
        assert_eq!(bad.validate(), Err(ConfigError::Zero("max_connections")));
        let bad = ServerConfig {
            listen: vec![],
            ..ServerConfig::default()
        };
        assert_eq!(bad.validate(), Err(ConfigError::NoListenAddress));
        let bad = ServerConfig {
            passive_port_sharing: true,
            ..ServerConfig::default()
        };
        assert_eq!(bad.validate(), Err(ConfigError::SharingWithoutRange));
        let bad = ServerConfig {
            public_host_refresh: Duration::ZERO,
            ..ServerConfig::default()
        };
        assert_eq!(
            bad.validate(),
            Err(ConfigError::Zero("public_host_refresh"))
        );
    }

    #[test]
    fn active_source_ports() {
        assert_eq!(ActiveSourcePort::Ephemeral.port_for(21), None);
        assert_eq!(ActiveSourcePort::ControlMinusOne.port_for(21), Some(20));
        assert_eq!(ActiveSourcePort::ControlMinusOne.port_for(2121), Some(2120));
        assert_eq!(ActiveSourcePort::ControlMinusOne.port_for(1), None);
        assert_eq!(ActiveSourcePort::Port(20).port_for(2121), Some(20));
    }
}
