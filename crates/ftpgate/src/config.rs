//! The engine's settings. The library reads no files and no environment: the daemon (or an
//! embedding program) fills in a [`ServerConfig`].

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use ftpgate_proto::Features;

use crate::guard::LoginGuardConfig;
use crate::tls::TlsConfig;

/// Everything the engine needs to know, with sane defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses to listen on (IPv4 and IPv6).
    pub listen: Vec<SocketAddr>,
    /// Ports for passive data connections; `None` lets the system pick.
    pub passive_ports: Option<RangeInclusive<u16>>,
    /// The address announced in PASV replies, as an IPv4 address or a host name (for servers
    /// behind NAT). `None` announces the control connection's own address.
    pub public_host: Option<String>,
    /// Whether PORT and EPRT are accepted.
    pub active_mode: bool,
    /// Lowest client port PORT/EPRT may name.
    pub min_active_port: u16,
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
    /// The text of the 220 greeting.
    pub banner: String,
    /// On shutdown, how long running transfers may take to finish.
    pub shutdown_grace: Duration,
    /// FTPS: AUTH TLS on the listen addresses, and implicit TLS on `implicit_tls_listen`.
    pub tls: Option<TlsConfig>,
    /// Addresses for implicit FTPS (TLS from the first byte, usually port 990).
    pub implicit_tls_listen: Vec<SocketAddr>,
    /// Brute-force protection: growing delays and temporary bans per client address.
    pub login_guard: LoginGuardConfig,
    /// Commands per second one session may send (bursts of twice that); beyond, commands wait.
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2121))],
            passive_ports: None,
            public_host: None,
            active_mode: true,
            min_active_port: 1024,
            max_connections: 512,
            max_connections_per_ip: 32,
            idle_timeout: Duration::from_secs(300),
            login_timeout: Duration::from_secs(60),
            data_timeout: Duration::from_secs(30),
            max_line_length: 4096,
            max_login_failures: 3,
            banner: "ftpgate ready".to_string(),
            shutdown_grace: Duration::from_secs(30),
            tls: None,
            implicit_tls_listen: Vec::new(),
            login_guard: LoginGuardConfig::default(),
            max_commands_per_second: 1000,
            max_file_size: None,
            features: Features::default(),
            max_concurrent_hashes: std::thread::available_parallelism().map_or(2, |n| n.get()),
            mode_z_max_inflated: 16 * 1024 * 1024 * 1024,
            mode_z_max_ratio: 1000,
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
}

impl ServerConfig {
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
    }
}
