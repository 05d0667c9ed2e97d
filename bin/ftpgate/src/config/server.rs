//! `[server]` (addresses, passive and active mode, limits, timeouts, login bans) and
//! `[features]`, and the value syntaxes they use: sizes, port ranges, listen addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ftpgate::ServerConfig;
use serde::Deserialize;

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerSection {
    pub(crate) listen: Vec<String>,
    pub(crate) passive_ports: Option<String>,
    pub(crate) public_host: Option<String>,
    /// How often a `public_host` name is looked up again.
    pub(crate) public_host_refresh_secs: u64,
    /// PASV addresses by client network; the first rule that holds the client wins.
    pub(crate) passive_address_rules: Vec<PassiveAddressRuleSection>,
    /// Many sessions may wait on one passive port (told apart by client address).
    pub(crate) passive_port_sharing: bool,
    pub(crate) active_mode: bool,
    pub(crate) min_active_port: u16,
    /// The local port of active data connections: a number, "control-1" or "ephemeral".
    pub(crate) active_source_port: Option<ActiveSourcePortSetting>,
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_ip: usize,
    pub(crate) idle_timeout_secs: u64,
    pub(crate) login_timeout_secs: u64,
    pub(crate) data_timeout_secs: u64,
    pub(crate) shutdown_grace_secs: u64,
    /// On SIGTERM, seconds the listeners keep serving new connections (while `/readyz` says
    /// 503) before they close. Default: 2 with an `[admin]` listener, 0 without one.
    pub(crate) drain_secs: Option<u64>,
    /// `[server.proxy_protocol]`: behind a TCP load balancer.
    pub(crate) proxy_protocol: Option<ProxyProtocolSection>,
    pub(crate) max_line_length: usize,
    pub(crate) max_login_failures: u32,
    /// The 220 greeting; several lines make a multi-line reply.
    pub(crate) banner: String,
    /// Text sent with the 230 reply after a successful login (several lines allowed).
    pub(crate) login_message: Option<String>,
    /// Make missing local homes at start (and reload); a user's `create_home` overrides it.
    pub(crate) create_homes: bool,
    /// Commands per second one session may send; beyond, commands wait.
    pub(crate) max_commands_per_second: u32,
    /// Largest file an upload may produce ("10G", "512M" or bytes).
    pub(crate) max_file_size: Option<Size>,
    /// Directories with at most this many entries are listed sorted by name; larger ones are
    /// streamed unsorted.
    pub(crate) listing_sort_limit: usize,
    /// The time zone of LIST times (an IANA name such as "Europe/Paris"); MLSD/MDTM stay UTC.
    pub(crate) listing_time_zone: String,
    /// Delay before answering the first failed login from an address; doubles with each failure.
    pub(crate) login_failure_delay_ms: u64,
    /// Failed logins (within `ban_window_secs`) that ban an address; 0 disables bans.
    pub(crate) ban_after_failures: u32,
    pub(crate) ban_window_secs: u64,
    /// Length of a first ban; repeated bans grow by `ban_growth`.
    pub(crate) ban_secs: u64,
    pub(crate) ban_growth: f64,
    /// After binding the listen ports, switch to this unprivileged user.
    pub(crate) run_as: Option<String>,
    /// Threads sessions run on, each session on one of them; 0: tokio's work-stealing runtime.
    pub(crate) session_threads: usize,
}

/// `[server.proxy_protocol]`: the load balancers that send PROXY headers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProxyProtocolSection {
    /// Networks (`ADDRESS/PREFIX`, or one address) whose connections must start with a header.
    pub(crate) trusted: Vec<String>,
    /// What passive data connections from them carry: "required" (a header) or "off".
    #[serde(default = "default_proxy_data")]
    pub(crate) data: String,
    /// Milliseconds a trusted peer may take to send its header.
    #[serde(default = "default_proxy_header_timeout_ms")]
    pub(crate) header_timeout_ms: u64,
    /// The longest header accepted, TLVs included.
    #[serde(default = "default_proxy_max_header_bytes")]
    pub(crate) max_header_bytes: usize,
}

fn default_proxy_data() -> String {
    "required".to_string()
}

fn default_proxy_header_timeout_ms() -> u64 {
    ftpgate::ProxyProtocol::default().header_timeout.as_millis() as u64
}

fn default_proxy_max_header_bytes() -> usize {
    ftpgate::ProxyProtocol::default().max_header_bytes
}

/// The drain of a daemon with an admin listener, when `drain_secs` is not set: long enough for
/// a load balancer checking `/readyz` every second to see the 503.
pub(crate) const DEFAULT_DRAIN_SECS_WITH_ADMIN: u64 = 2;
/// The longest drain accepted: it is meant to be a few health-check intervals.
const MAX_DRAIN_SECS: u64 = 300;

impl ProxyProtocolSection {
    pub(crate) fn to_engine(&self) -> Result<ftpgate::ProxyProtocol> {
        let mut trusted = Vec::new();
        for (i, text) in self.trusted.iter().enumerate() {
            trusted.push(parse_network(text).with_context(|| format!("trusted[{i}]"))?);
        }
        if trusted.is_empty() {
            bail!("trusted: name at least one network (the load balancers' addresses)");
        }
        let data = match self.data.as_str() {
            "required" => ftpgate::ProxyData::Required,
            "off" => ftpgate::ProxyData::Off,
            other => bail!("data: must be \"required\" or \"off\", not {other:?}"),
        };
        if self.header_timeout_ms == 0 {
            bail!("header_timeout_ms must be greater than zero");
        }
        if !(ftpgate::MIN_PROXY_HEADER_BYTES..=ftpgate::MAX_PROXY_HEADER_BYTES)
            .contains(&self.max_header_bytes)
        {
            bail!(
                "max_header_bytes must be from {} to {}",
                ftpgate::MIN_PROXY_HEADER_BYTES,
                ftpgate::MAX_PROXY_HEADER_BYTES
            );
        }
        Ok(ftpgate::ProxyProtocol {
            trusted,
            data,
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            max_header_bytes: self.max_header_bytes,
        })
    }
}

/// `ADDRESS/PREFIX`, or a bare address for one host.
fn parse_network(text: &str) -> Result<ftpgate::IpNet> {
    let text = text.trim();
    match text.parse::<ftpgate::IpNet>() {
        Ok(net) => Ok(net),
        Err(_) => match text.parse::<IpAddr>() {
            Ok(ip) => Ok(ftpgate::IpNet::from(ip)),
            Err(_) => bail!("{text:?} is not a network such as \"10.0.0.0/8\""),
        },
    }
}

/// One of `server.passive_address_rules`: `{ cidr = "10.0.0.0/8", address = "10.1.2.3" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PassiveAddressRuleSection {
    /// The client network, `ADDRESS/PREFIX` (a bare address is one host).
    pub(crate) cidr: String,
    /// The IPv4 address announced to those clients.
    pub(crate) address: String,
}

/// `server.active_source_port`: a port number, `"control-1"` (one below the control port) or
/// `"ephemeral"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum ActiveSourcePortSetting {
    Port(u16),
    Text(String),
}

impl ActiveSourcePortSetting {
    pub(crate) fn to_engine(&self) -> Result<ftpgate::ActiveSourcePort> {
        match self {
            ActiveSourcePortSetting::Port(0) => {
                bail!("must be a port from 1 to 65535, \"control-1\" or \"ephemeral\"")
            }
            ActiveSourcePortSetting::Port(port) => Ok(ftpgate::ActiveSourcePort::Port(*port)),
            ActiveSourcePortSetting::Text(text) => match text.as_str() {
                "control-1" => Ok(ftpgate::ActiveSourcePort::ControlMinusOne),
                "ephemeral" => Ok(ftpgate::ActiveSourcePort::Ephemeral),
                other => {
                    bail!("must be a port number, \"control-1\" or \"ephemeral\", not {other:?}")
                }
            },
        }
    }
}

impl PassiveAddressRuleSection {
    pub(crate) fn to_engine(&self) -> Result<ftpgate::PassiveAddressRule> {
        let text = self.cidr.trim();
        let network = match text.parse::<ftpgate::IpNet>() {
            Ok(net) => net,
            Err(_) => match text.parse::<IpAddr>() {
                Ok(ip) => ftpgate::IpNet::from(ip),
                Err(_) => bail!("cidr: {text:?} is not a network such as \"10.0.0.0/8\""),
            },
        };
        let address = self.address.trim().parse::<Ipv4Addr>().map_err(|_| {
            anyhow!(
                "address: {:?} is not an IPv4 address (PASV announces IPv4 only)",
                self.address
            )
        })?;
        Ok(ftpgate::PassiveAddressRule::new(network, address))
    }
}

/// A size in bytes, written as a number or with a binary suffix: "512K", "10M", "2G", "1T"
/// (K = 1024 bytes, M = 1 MiB = 1,048,576 bytes, and so on).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    pub(crate) fn bytes(&self) -> Result<u64> {
        match self {
            Size::Bytes(n) => Ok(*n),
            Size::Text(text) => parse_size(text),
        }
    }
}

/// Parses "123", "512K", "10M", "2G", "1T" (optionally with "iB" or "B"), binary multiples:
/// "1M" is 1 MiB (1,048,576 bytes), never 1,000,000.
pub(crate) fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, shift) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 30),
        Some('T' | 't') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = digits.trim().parse().map_err(|_| {
        anyhow!(
            "bad size {text:?} (use e.g. 512M, 10G or a number of bytes; K, M, G and T are \
                 binary: 1M = 1 MiB = 1048576 bytes)"
        )
    })?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| anyhow!("size {text:?} is too large"))
}

impl Default for ServerSection {
    fn default() -> Self {
        let d = ServerConfig::default();
        ServerSection {
            listen: Vec::new(),
            passive_ports: None,
            public_host: None,
            public_host_refresh_secs: d.public_host_refresh.as_secs(),
            passive_address_rules: Vec::new(),
            passive_port_sharing: d.passive_port_sharing,
            active_mode: d.active_mode,
            min_active_port: d.min_active_port,
            active_source_port: None,
            max_connections: d.max_connections,
            max_connections_per_ip: d.max_connections_per_ip,
            idle_timeout_secs: d.idle_timeout.as_secs(),
            login_timeout_secs: d.login_timeout.as_secs(),
            data_timeout_secs: d.data_timeout.as_secs(),
            shutdown_grace_secs: d.shutdown_grace.as_secs(),
            drain_secs: None,
            proxy_protocol: None,
            max_line_length: d.max_line_length,
            max_login_failures: d.max_login_failures,
            banner: d.banner,
            login_message: d.login_message,
            create_homes: false,
            max_commands_per_second: d.max_commands_per_second,
            max_file_size: None,
            listing_sort_limit: d.listing_sort_limit,
            listing_time_zone: d.listing_time_zone.name().to_string(),
            login_failure_delay_ms: d.login_guard.failure_delay.as_millis() as u64,
            ban_after_failures: d.login_guard.ban_after_failures,
            ban_window_secs: d.login_guard.failure_window.as_secs(),
            ban_secs: d.login_guard.ban_time.as_secs(),
            ban_growth: d.login_guard.ban_growth,
            run_as: None,
            session_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Parses `LO-HI`.
pub(crate) fn parse_port_range(text: &str) -> Result<std::ops::RangeInclusive<u16>> {
    let (lo, hi) = text
        .split_once('-')
        .ok_or_else(|| anyhow!("expected LO-HI, got {text:?}"))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .with_context(|| format!("bad port {lo:?}"))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .with_context(|| format!("bad port {hi:?}"))?;
    if lo == 0 || lo > hi {
        bail!("port range {lo}-{hi} is empty");
    }
    Ok(lo..=hi)
}

/// Resolves `ADDR:PORT` (IPv6 in brackets, or a host name).
pub(crate) fn parse_listen(text: &str) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .with_context(|| format!("bad listen address {text:?}"))?
        .collect();
    if addrs.is_empty() {
        bail!("listen address {text:?} resolves to nothing");
    }
    Ok(addrs)
}
impl ServerSection {
    /// The engine settings, with `listen` given (flags may override the file).
    pub(crate) fn to_server_config(&self) -> Result<ServerConfig> {
        let mut listen = Vec::new();
        for (i, text) in self.listen.iter().enumerate() {
            listen.extend(parse_listen(text).with_context(|| format!("server.listen[{i}]"))?);
        }
        if listen.is_empty() {
            listen = ServerConfig::default().listen;
        }
        let passive_ports = match &self.passive_ports {
            Some(text) => Some(parse_port_range(text).context("server.passive_ports")?),
            None => None,
        };
        let mut passive_address_rules = Vec::new();
        for (i, rule) in self.passive_address_rules.iter().enumerate() {
            passive_address_rules.push(
                rule.to_engine()
                    .with_context(|| format!("server.passive_address_rules[{i}]"))?,
            );
        }
        if self.public_host_refresh_secs == 0 {
            bail!("server.public_host_refresh_secs must be greater than zero");
        }
        if let Some(host) = &self.public_host {
            if host.parse::<std::net::Ipv6Addr>().is_ok() {
                bail!(
                    "server.public_host: PASV announces IPv4 only; give an IPv4 address or a name"
                );
            }
        }
        if self.passive_port_sharing && passive_ports.is_none() {
            bail!("server.passive_port_sharing needs server.passive_ports (a port range)");
        }
        let proxy_protocol = match &self.proxy_protocol {
            Some(section) => Some(section.to_engine().context("server.proxy_protocol")?),
            None => None,
        };
        if proxy_protocol.is_some() && self.passive_port_sharing {
            bail!(
                "server.passive_port_sharing cannot be used with server.proxy_protocol (sessions \
                 would be told apart by the load balancer's address)"
            );
        }
        if self.drain_secs.is_some_and(|secs| secs > MAX_DRAIN_SECS) {
            bail!("server.drain_secs must be at most {MAX_DRAIN_SECS}");
        }
        let config = ServerConfig {
            listen,
            passive_ports,
            public_host: self.public_host.clone(),
            public_host_refresh: Duration::from_secs(self.public_host_refresh_secs),
            passive_address_rules,
            passive_address_resolver: None,
            passive_port_sharing: self.passive_port_sharing,
            active_mode: self.active_mode,
            min_active_port: self.min_active_port,
            active_source_port: match &self.active_source_port {
                Some(setting) => setting.to_engine().context("server.active_source_port")?,
                None => ftpgate::ActiveSourcePort::Ephemeral,
            },
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            login_timeout: Duration::from_secs(self.login_timeout_secs),
            data_timeout: Duration::from_secs(self.data_timeout_secs),
            max_line_length: self.max_line_length,
            max_login_failures: self.max_login_failures,
            banner: self.banner.clone(),
            login_message: self.login_message.clone(),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            drain: Duration::from_secs(self.drain_secs.unwrap_or(0)),
            proxy_protocol,
            tls: None,
            implicit_tls_listen: Vec::new(),
            login_guard: ftpgate::LoginGuardConfig {
                failure_delay: Duration::from_millis(self.login_failure_delay_ms),
                ban_after_failures: self.ban_after_failures,
                failure_window: Duration::from_secs(self.ban_window_secs),
                ban_time: Duration::from_secs(self.ban_secs),
                ban_growth: self.ban_growth,
            },
            max_commands_per_second: self.max_commands_per_second,
            session_threads: self.session_threads,
            max_file_size: match &self.max_file_size {
                Some(size) => Some(size.bytes().context("server.max_file_size")?),
                None => None,
            },
            listing_sort_limit: self.listing_sort_limit,
            listing_time_zone: ftpgate::ListingTimeZone::named(&self.listing_time_zone)
                .context("server.listing_time_zone")?,
            ..ServerConfig::default()
        };
        if !(1.0..=100.0).contains(&self.ban_growth) {
            bail!("server.ban_growth must be between 1 and 100");
        }
        if let Some(user) = &self.run_as {
            if nix::unistd::User::from_name(user).ok().flatten().is_none() {
                bail!("server.run_as: no such user {user:?}");
            }
        }
        config.validate().map_err(|e| anyhow!("server: {e}"))?;
        Ok(config)
    }
}

/// `[features]`: optional commands on or off, with the meaning of ftpserverlib's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FeaturesSection {
    /// HASH, RANG, XCRC, XMD5, XSHA1, XSHA256, XSHA512.
    pub(crate) hash: bool,
    pub(crate) mlsd: bool,
    pub(crate) mlst: bool,
    /// MFMT and MFF.
    pub(crate) mfmt: bool,
    pub(crate) site: bool,
    pub(crate) stat: bool,
    pub(crate) syst: bool,
    /// `ls` options (`-la`) in LIST and NLST; off: the whole argument is the path.
    pub(crate) list_args: bool,
    pub(crate) avbl: bool,
    /// "ascii" (RFC 959) or "binary": the transfer type before any TYPE command.
    pub(crate) default_transfer_type: String,
    /// Most digests computed at once across the server (more wait their turn).
    pub(crate) max_concurrent_hashes: usize,
    /// MODE Z (deflate on data connections); off by default.
    pub(crate) mode_z: bool,
    /// COMB (join uploaded parts); off by default.
    pub(crate) comb: bool,
    /// MODE Z: most bytes one upload may inflate to ("16G").
    pub(crate) mode_z_max_inflated: Option<Size>,
    /// MODE Z: most inflated bytes per compressed byte (bomb protection).
    pub(crate) mode_z_max_ratio: u64,
}

impl Default for FeaturesSection {
    fn default() -> Self {
        let f = ftpgate::Features::default();
        FeaturesSection {
            hash: f.hash,
            mlsd: f.mlsd,
            mlst: f.mlst,
            mfmt: f.mfmt,
            site: f.site,
            stat: f.stat,
            syst: f.syst,
            list_args: f.list_args,
            avbl: f.avbl,
            default_transfer_type: "ascii".to_string(),
            max_concurrent_hashes: ServerConfig::default().max_concurrent_hashes,
            mode_z: f.mode_z,
            comb: f.comb,
            mode_z_max_inflated: None,
            mode_z_max_ratio: ServerConfig::default().mode_z_max_ratio,
        }
    }
}

impl FeaturesSection {
    /// Applies the switches to the engine settings.
    pub(crate) fn apply(&self, config: &mut ServerConfig) -> Result<()> {
        let default_type = match self.default_transfer_type.to_ascii_lowercase().as_str() {
            "ascii" | "a" => ftpgate::TransferType::Ascii,
            "binary" | "i" | "image" => ftpgate::TransferType::Binary,
            other => {
                bail!("features.default_transfer_type: {other:?} is not \"ascii\" or \"binary\"")
            }
        };
        if self.max_concurrent_hashes == 0 {
            bail!("features.max_concurrent_hashes must be at least 1");
        }
        config.features = ftpgate::Features {
            hash: self.hash,
            mlsd: self.mlsd,
            mlst: self.mlst,
            mfmt: self.mfmt,
            site: self.site,
            stat: self.stat,
            syst: self.syst,
            list_args: self.list_args,
            avbl: self.avbl,
            mode_z: self.mode_z,
            comb: self.comb,
            default_type,
        };
        config.max_concurrent_hashes = self.max_concurrent_hashes;
        if let Some(size) = &self.mode_z_max_inflated {
            config.mode_z_max_inflated = size.bytes().context("features.mode_z_max_inflated")?;
        }
        if self.mode_z_max_ratio == 0 {
            bail!("features.mode_z_max_ratio must be at least 1");
        }
        config.mode_z_max_ratio = self.mode_z_max_ratio;
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("[::1]:21").unwrap(),
            vec!["[::1]:21".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            parse_listen("127.0.0.1:2121").unwrap(),
            vec!["127.0.0.1:2121".parse::<SocketAddr>().unwrap()]
        );
        assert!(parse_listen("nonsense").is_err());
        assert_eq!(parse_port_range("50000-50010").unwrap(), 50000..=50010);
        assert!(parse_port_range("5-").is_err());
    }

    #[test]
    fn proxy_protocol_settings() {
        let config = ConfigFile::parse(
            r#"
[server]
drain_secs = 4

[server.proxy_protocol]
trusted = ["10.0.0.10", "fd00::/64"]
data = "off"
"#,
        )
        .unwrap()
        .server
        .to_server_config()
        .unwrap();
        assert_eq!(config.drain, Duration::from_secs(4));
        let proxy = config.proxy_protocol.unwrap();
        assert_eq!(
            proxy.trusted,
            vec![
                "10.0.0.10/32".parse::<ftpgate::IpNet>().unwrap(),
                "fd00::/64".parse().unwrap()
            ]
        );
        assert_eq!(proxy.data, ftpgate::ProxyData::Off);
        assert_eq!(proxy.header_timeout, Duration::from_secs(5));
        assert_eq!(proxy.max_header_bytes, 4096);
        let plain = ConfigFile::parse("[server]\n")
            .unwrap()
            .server
            .to_server_config()
            .unwrap();
        assert_eq!(plain.proxy_protocol, None);
        assert_eq!(plain.drain, Duration::ZERO);
    }

    #[test]
    fn network_settings() {
        let config = ConfigFile::parse(
            r#"
[server]
passive_ports = "50000-50000"
passive_port_sharing = true
public_host = "ftp.example.com"
public_host_refresh_secs = 30
active_source_port = 20
passive_address_rules = [
    { cidr = "10.0.0.0/8", address = "10.1.2.3" },
    { cidr = "192.168.7.9", address = "192.168.7.1" },
]
"#,
        )
        .unwrap()
        .server
        .to_server_config()
        .unwrap();
        assert!(config.passive_port_sharing);
        assert_eq!(config.public_host_refresh, Duration::from_secs(30));
        assert_eq!(
            config.active_source_port,
            ftpgate::ActiveSourcePort::Port(20)
        );
        assert_eq!(
            config.passive_address_rules,
            vec![
                ftpgate::PassiveAddressRule::new(
                    "10.0.0.0/8".parse().unwrap(),
                    "10.1.2.3".parse().unwrap()
                ),
                ftpgate::PassiveAddressRule::new(
                    "192.168.7.9/32".parse().unwrap(),
                    "192.168.7.1".parse().unwrap()
                ),
            ]
        );

        // The table form works too.
        let config = ConfigFile::parse(
            "[server]\nactive_source_port = \"control-1\"\n\n[[server.passive_address_rules]]\ncidr = \"fd00::/8\"\naddress = \"10.0.0.1\"\n",
        )
        .unwrap()
        .server
        .to_server_config()
        .unwrap();
        assert_eq!(
            config.active_source_port,
            ftpgate::ActiveSourcePort::ControlMinusOne
        );
        assert_eq!(config.passive_address_rules.len(), 1);

        let defaults = ConfigFile::parse("")
            .unwrap()
            .server
            .to_server_config()
            .unwrap();
        assert!(!defaults.passive_port_sharing);
        assert_eq!(
            defaults.active_source_port,
            ftpgate::ActiveSourcePort::Ephemeral
        );
        assert_eq!(defaults.public_host_refresh, Duration::from_secs(60));

        for (text, key) in [
            (
                "passive_address_rules = [{ cidr = \"10.0.0.0/33\", address = \"10.1.2.3\" }]",
                "server.passive_address_rules[0]",
            ),
            (
                "passive_address_rules = [{ cidr = \"10.0.0.0/8\", address = \"fd00::1\" }]",
                "server.passive_address_rules[0]",
            ),
            (
                "active_source_port = \"twenty\"",
                "server.active_source_port",
            ),
            ("active_source_port = 0", "server.active_source_port"),
            (
                "public_host_refresh_secs = 0",
                "server.public_host_refresh_secs",
            ),
            ("passive_port_sharing = true", "server.passive_port_sharing"),
        ] {
            let err = format!(
                "{:#}",
                ConfigFile::parse(&format!("[server]\n{text}\n"))
                    .unwrap()
                    .server
                    .to_server_config()
                    .unwrap_err()
            );
            assert!(err.contains(key), "{text}: {err}");
        }
        let err = ConfigFile::parse(
            "[server]\npassive_address_rules = [{ cidr = \"10.0.0.0/8\", address = \"10.1.2.3\", port = 1 }]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("port"), "{err}");
    }
}
