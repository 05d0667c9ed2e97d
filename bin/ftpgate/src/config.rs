//! The TOML configuration file, and how it (plus command-line flags) becomes the engine's
//! settings. Unknown keys are errors, and every semantic error names its key.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ftpgate::ServerConfig;
use ftpgate_auth_file::{AnonymousEntry, UserEntry, is_valid_hash};
use ftpgate_core::{PermissionMap, Permissions, VirtualPath};
use serde::Deserialize;

use crate::tls::CertificateStore;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub(crate) server: ServerSection,
    #[serde(default)]
    pub(crate) users: Vec<UserSection>,
    #[serde(default)]
    pub(crate) anonymous: Option<AnonymousSection>,
    #[serde(default)]
    pub(crate) storage: StorageSection,
    #[serde(default)]
    pub(crate) tls: TlsSection,
    #[serde(default)]
    pub(crate) log: LogSection,
    #[serde(default)]
    pub(crate) features: FeaturesSection,
    /// Virtual hosts (RFC 7151 HOST), each with its own users and storage.
    #[serde(default)]
    pub(crate) hosts: Vec<HostSection>,
}

/// `[[hosts]]`: a virtual host chosen with HOST before login.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HostSection {
    /// The host name clients send with HOST.
    pub(crate) name: String,
    /// The 220 reply to HOST.
    #[serde(default)]
    pub(crate) banner: Option<String>,
    #[serde(default)]
    pub(crate) users: Vec<UserSection>,
    #[serde(default)]
    pub(crate) anonymous: Option<AnonymousSection>,
    #[serde(default)]
    pub(crate) storage: StorageSection,
}

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

/// `[[users]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserSection {
    pub(crate) name: String,
    pub(crate) password_hash: String,
    pub(crate) home: PathBuf,
    #[serde(default = "all_permissions")]
    pub(crate) permissions: String,
    #[serde(default)]
    pub(crate) dirs: Vec<DirSection>,
    /// This user must log in over TLS and protect data connections.
    #[serde(default)]
    pub(crate) tls_required: bool,
    /// Most bytes the user's files may take ("5G", or bytes).
    #[serde(default)]
    pub(crate) quota: Option<Size>,
    /// This user's own storage, instead of the shared `[storage]` (same keys).
    #[serde(default)]
    pub(crate) storage: Option<StorageSection>,
    /// Make the home at start if it is missing (local storage); default `server.create_homes`.
    #[serde(default)]
    pub(crate) create_home: Option<bool>,
}

/// `[tls]`: FTPS.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TlsSection {
    /// PEM certificate chain (reloaded on SIGHUP).
    pub(crate) cert: Option<PathBuf>,
    /// PEM private key.
    pub(crate) key: Option<PathBuf>,
    /// Generate a self-signed certificate at start instead.
    pub(crate) self_signed: bool,
    /// Shorthand for both `required_for_login` and `required_for_data`.
    pub(crate) required: bool,
    pub(crate) required_for_login: bool,
    pub(crate) required_for_data: bool,
    /// Which TLS session a data connection must resume: "user" (a session of the same user
    /// from the same address), "connection" (its own control connection's) or "off".
    pub(crate) session_reuse: String,
    pub(crate) allow_ccc: bool,
    /// "1.2" or "1.3".
    pub(crate) min_version: String,
    /// Implicit FTPS listeners, e.g. ["0.0.0.0:990"].
    pub(crate) implicit_listen: Vec<String>,
    pub(crate) handshake_timeout_secs: u64,
    /// CA certificates (PEM) to verify client certificates against.
    pub(crate) client_ca: Option<PathBuf>,
    /// Refuse clients without a valid certificate (needs `client_ca`).
    pub(crate) require_client_cert: bool,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            cert: None,
            key: None,
            self_signed: false,
            required: false,
            required_for_login: false,
            required_for_data: false,
            session_reuse: "user".to_string(),
            allow_ccc: false,
            min_version: "1.2".to_string(),
            implicit_listen: Vec::new(),
            handshake_timeout_secs: 10,
            client_ca: None,
            require_client_cert: false,
        }
    }
}

/// FTPS as configured: the engine's settings, the certificate store (for SIGHUP and the
/// fingerprint) and the implicit listeners.
pub(crate) struct TlsSetup {
    pub(crate) config: ftpgate::TlsConfig,
    pub(crate) certs: Arc<CertificateStore>,
    pub(crate) implicit_listen: Vec<SocketAddr>,
    pub(crate) self_signed: bool,
}

impl TlsSection {
    /// Checks the section as [`build`](Self::build) does, without generating a self-signed
    /// certificate.
    pub(crate) fn check(&self) -> Result<()> {
        if self.self_signed {
            let tls = TlsSection {
                self_signed: false,
                cert: None,
                key: None,
                required: false,
                required_for_login: false,
                required_for_data: false,
                implicit_listen: Vec::new(),
                ..self.clone()
            };
            tls.build(Vec::new())?;
        } else {
            self.build(Vec::new())?;
        }
        Ok(())
    }

    /// Whether FTPS is configured at all.
    pub(crate) fn enabled(&self) -> bool {
        self.cert.is_some() || self.key.is_some() || self.self_signed
    }

    /// Loads or makes the certificate and builds the settings; `None` if FTPS is off.
    /// `names` go into a self-signed certificate.
    pub(crate) fn build(&self, names: Vec<String>) -> Result<Option<TlsSetup>> {
        if !self.enabled() {
            if self.required
                || self.required_for_login
                || self.required_for_data
                || !self.implicit_listen.is_empty()
            {
                bail!(
                    "tls: requiring TLS or listening for implicit TLS needs tls.cert and tls.key (or tls.self_signed)"
                );
            }
            return Ok(None);
        }
        let certs = match (&self.cert, &self.key, self.self_signed) {
            (Some(cert), Some(key), false) => {
                CertificateStore::from_files(cert, key).context("tls.cert / tls.key")?
            }
            (None, None, true) => CertificateStore::self_signed(names)?,
            (_, _, true) => bail!("tls: give either cert and key, or self_signed, not both"),
            (Some(_), None, _) => bail!("tls.key: missing (tls.cert is set)"),
            (None, Some(_), _) => bail!("tls.cert: missing (tls.key is set)"),
            (None, None, false) => return Ok(None),
        };
        if self.require_client_cert && self.client_ca.is_none() {
            bail!("tls.require_client_cert needs tls.client_ca");
        }
        let server_config = crate::tls::server_config(
            certs.clone(),
            &self.min_version,
            self.client_ca.as_deref(),
            self.require_client_cert,
        )
        .context("tls")?;
        let mut implicit_listen = Vec::new();
        for (i, text) in self.implicit_listen.iter().enumerate() {
            implicit_listen
                .extend(parse_listen(text).with_context(|| format!("tls.implicit_listen[{i}]"))?);
        }
        let mut config = ftpgate::TlsConfig::new(Arc::new(server_config));
        config.required_for_login = self.required || self.required_for_login;
        config.required_for_data = self.required || self.required_for_data;
        config.session_reuse = match self.session_reuse.as_str() {
            "user" => ftpgate::SessionReuse::SameUser,
            "connection" => ftpgate::SessionReuse::SameConnection,
            "off" => ftpgate::SessionReuse::Off,
            other => bail!(
                "tls.session_reuse must be \"user\", \"connection\" or \"off\", not {other:?}"
            ),
        };
        config.allow_ccc = self.allow_ccc;
        config.handshake_timeout = Duration::from_secs(self.handshake_timeout_secs.max(1));
        Ok(Some(TlsSetup {
            config,
            certs,
            implicit_listen,
            self_signed: self.self_signed,
        }))
    }
}

/// `[[users.dirs]]` and `[[anonymous.dirs]]`: permissions for a directory and everything beneath.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirSection {
    pub(crate) path: String,
    pub(crate) permissions: String,
}

/// `[anonymous]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnonymousSection {
    #[serde(default)]
    pub(crate) enabled: bool,
    pub(crate) home: PathBuf,
    #[serde(default = "read_only_permissions")]
    pub(crate) permissions: String,
    #[serde(default)]
    pub(crate) dirs: Vec<DirSection>,
}

/// `[storage]` (and a user's own `[users.storage]`)
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StorageSection {
    /// "local" (homes are directories; a home written `s3://bucket/prefix` is in S3), "s3"
    /// (every home is a prefix in `[storage.s3]`'s bucket, or an `s3://` URL), or "azure",
    /// "gcs", "cos" (every home is a prefix in that section's container or bucket).
    #[serde(default, rename = "type")]
    pub(crate) kind: StorageKind,
    #[serde(default)]
    pub(crate) keep_partial_uploads: bool,
    /// S3-compatible object storage.
    #[serde(default)]
    pub(crate) s3: Option<S3Section>,
    /// Azure Blob Storage.
    #[serde(default)]
    pub(crate) azure: Option<AzureSection>,
    /// Google Cloud Storage.
    #[serde(default)]
    pub(crate) gcs: Option<GcsSection>,
    /// Tencent COS (native API).
    #[serde(default)]
    pub(crate) cos: Option<CosSection>,
    /// "normal", or "strict": 226 only after the file and its directory are fsynced.
    #[serde(default)]
    pub(crate) durability: DurabilitySetting,
    /// SITE CHMOD on object storage (which keeps no permission bits): "refuse" (502, the
    /// default) or "ignore" (200, nothing set).
    #[serde(default)]
    pub(crate) site_chmod: SiteChmod,
}

/// `site_chmod` of a `[storage]` section.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SiteChmod {
    #[default]
    Refuse,
    Ignore,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StorageKind {
    #[default]
    Local,
    S3,
    Azure,
    Gcs,
    Cos,
}

impl StorageKind {
    /// Whether a home of this kind of storage is an object-store prefix, not a directory.
    pub(crate) fn home_is_remote(self, home: &str) -> bool {
        self != StorageKind::Local || home.starts_with("s3://")
    }
}

/// `[storage.azure]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AzureSection {
    /// Defaults to `https://ACCOUNT.blob.core.windows.net`.
    #[serde(default)]
    pub(crate) endpoint: Option<String>,
    /// Defaults to the AZURE_STORAGE_ACCOUNT environment variable.
    #[serde(default)]
    pub(crate) account: Option<String>,
    /// Defaults to the AZURE_STORAGE_KEY environment variable.
    #[serde(default)]
    pub(crate) key: Option<String>,
    /// A SAS token instead of the key (or AZURE_STORAGE_SAS_TOKEN).
    #[serde(default)]
    pub(crate) sas_token: Option<String>,
    pub(crate) container: String,
    #[serde(default)]
    pub(crate) prefix: String,
    #[serde(default)]
    pub(crate) part_size: Option<Size>,
    #[serde(default = "default_parts_in_flight")]
    pub(crate) parts_in_flight: usize,
    #[serde(default = "default_request_timeout")]
    pub(crate) request_timeout_secs: u64,
    #[serde(default = "default_retries")]
    pub(crate) retries: u32,
    #[serde(default = "default_rename_objects")]
    pub(crate) max_rename_objects: usize,
}

/// `[storage.gcs]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GcsSection {
    pub(crate) bucket: String,
    #[serde(default)]
    pub(crate) endpoint: Option<String>,
    /// A service account key file; without it, GOOGLE_APPLICATION_CREDENTIALS or the VM's
    /// metadata server.
    #[serde(default)]
    pub(crate) credential_path: Option<String>,
    #[serde(default)]
    pub(crate) prefix: String,
    #[serde(default)]
    pub(crate) part_size: Option<Size>,
    #[serde(default = "default_parts_in_flight")]
    pub(crate) parts_in_flight: usize,
    #[serde(default = "default_request_timeout")]
    pub(crate) request_timeout_secs: u64,
    #[serde(default = "default_retries")]
    pub(crate) retries: u32,
    #[serde(default = "default_rename_objects")]
    pub(crate) max_rename_objects: usize,
}

/// `[storage.cos]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CosSection {
    /// e.g. `https://cos.ap-guangzhou.myqcloud.com`.
    pub(crate) endpoint: String,
    /// With its APPID suffix, `name-1250000000`.
    pub(crate) bucket: String,
    /// Defaults to the TENCENTCLOUD_SECRET_ID environment variable.
    #[serde(default)]
    pub(crate) secret_id: Option<String>,
    /// Defaults to the TENCENTCLOUD_SECRET_KEY environment variable.
    #[serde(default)]
    pub(crate) secret_key: Option<String>,
    #[serde(default)]
    pub(crate) prefix: String,
    #[serde(default)]
    pub(crate) part_size: Option<Size>,
    #[serde(default = "default_parts_in_flight")]
    pub(crate) parts_in_flight: usize,
    #[serde(default = "default_request_timeout")]
    pub(crate) request_timeout_secs: u64,
    #[serde(default = "default_retries")]
    pub(crate) retries: u32,
    #[serde(default = "default_rename_objects")]
    pub(crate) max_rename_objects: usize,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The keys every native store section has besides its credentials.
struct Tuning<'a> {
    prefix: &'a str,
    part_size: Option<&'a Size>,
    parts_in_flight: usize,
    request_timeout_secs: u64,
    retries: u32,
    max_rename_objects: usize,
}

macro_rules! tuning {
    ($section:expr) => {
        Tuning {
            prefix: &$section.prefix,
            part_size: $section.part_size.as_ref(),
            parts_in_flight: $section.parts_in_flight,
            request_timeout_secs: $section.request_timeout_secs,
            retries: $section.retries,
            max_rename_objects: $section.max_rename_objects,
        }
    };
}

/// The configuration of a native store section.
fn native_config(
    key: &str,
    service: ftpgate_storage_object::NativeService,
    tuning: Tuning<'_>,
) -> Result<ftpgate_storage_object::NativeConfig> {
    let Tuning {
        prefix,
        part_size,
        parts_in_flight,
        request_timeout_secs,
        retries,
        max_rename_objects,
    } = tuning;
    let mut config = ftpgate_storage_object::NativeConfig::new(service);
    config.prefix = prefix.to_string();
    if let Some(size) = part_size {
        let bytes = size.bytes().with_context(|| format!("{key}.part_size"))?;
        if bytes < 1024 * 1024 {
            bail!("{key}.part_size must be at least 1M");
        }
        config.part_size = usize::try_from(bytes).unwrap_or(usize::MAX);
    }
    if parts_in_flight == 0 {
        bail!("{key}.parts_in_flight must be at least 1");
    }
    config.parts_in_flight = parts_in_flight;
    config.request_timeout = Duration::from_secs(request_timeout_secs.max(1));
    config.retries = retries;
    config.max_rename_objects = max_rename_objects;
    Ok(config)
}

impl AzureSection {
    pub(crate) fn to_config(&self, key: &str) -> Result<ftpgate_storage_object::NativeConfig> {
        let Some(account) = self
            .account
            .clone()
            .or_else(|| env_var("AZURE_STORAGE_ACCOUNT"))
        else {
            bail!("{key}: account missing (set account, or AZURE_STORAGE_ACCOUNT)");
        };
        let access_key = self.key.clone().or_else(|| env_var("AZURE_STORAGE_KEY"));
        let sas_token = self
            .sas_token
            .clone()
            .or_else(|| env_var("AZURE_STORAGE_SAS_TOKEN"));
        if access_key.is_none() && sas_token.is_none() {
            bail!(
                "{key}: credentials missing (set key or sas_token, or AZURE_STORAGE_KEY / AZURE_STORAGE_SAS_TOKEN)"
            );
        }
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
        url::Url::parse(&endpoint)
            .with_context(|| format!("{key}.endpoint: bad URL {endpoint:?}"))?;
        let service = ftpgate_storage_object::NativeService::Azure {
            endpoint,
            account,
            key: access_key,
            sas_token,
            container: self.container.clone(),
        };
        native_config(key, service, tuning!(self))
    }
}

impl GcsSection {
    pub(crate) fn to_config(&self, key: &str) -> Result<ftpgate_storage_object::NativeConfig> {
        if let Some(endpoint) = &self.endpoint {
            url::Url::parse(endpoint)
                .with_context(|| format!("{key}.endpoint: bad URL {endpoint:?}"))?;
        }
        let service = ftpgate_storage_object::NativeService::Gcs {
            bucket: self.bucket.clone(),
            endpoint: self.endpoint.clone(),
            credential_path: self.credential_path.clone(),
            credential: None,
        };
        native_config(key, service, tuning!(self))
    }
}

impl CosSection {
    pub(crate) fn to_config(&self, key: &str) -> Result<ftpgate_storage_object::NativeConfig> {
        url::Url::parse(&self.endpoint)
            .with_context(|| format!("{key}.endpoint: bad URL {:?}", self.endpoint))?;
        let secret_id = self
            .secret_id
            .clone()
            .or_else(|| env_var("TENCENTCLOUD_SECRET_ID"));
        let secret_key = self
            .secret_key
            .clone()
            .or_else(|| env_var("TENCENTCLOUD_SECRET_KEY"));
        let (Some(secret_id), Some(secret_key)) = (secret_id, secret_key) else {
            bail!(
                "{key}: credentials missing (set secret_id/secret_key, or TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY)"
            );
        };
        let service = ftpgate_storage_object::NativeService::Cos {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            secret_id,
            secret_key,
        };
        native_config(key, service, tuning!(self))
    }
}

/// `[storage.s3]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct S3Section {
    pub(crate) endpoint: String,
    #[serde(default = "default_region")]
    pub(crate) region: String,
    pub(crate) bucket: String,
    #[serde(default)]
    pub(crate) prefix: String,
    /// Defaults to the AWS_ACCESS_KEY_ID environment variable.
    #[serde(default)]
    pub(crate) access_key: Option<String>,
    /// Defaults to the AWS_SECRET_ACCESS_KEY environment variable.
    #[serde(default)]
    pub(crate) secret_key: Option<String>,
    #[serde(default)]
    pub(crate) session_token: Option<String>,
    #[serde(default = "yes")]
    pub(crate) path_style: bool,
    #[serde(default)]
    pub(crate) part_size: Option<Size>,
    #[serde(default = "default_parts_in_flight")]
    pub(crate) parts_in_flight: usize,
    #[serde(default = "default_request_timeout")]
    pub(crate) request_timeout_secs: u64,
    #[serde(default = "default_retries")]
    pub(crate) retries: u32,
    #[serde(default = "default_rename_objects")]
    pub(crate) max_rename_objects: usize,
    /// Interrupted uploads kept for resuming are aborted after this long.
    #[serde(default = "default_abandoned_age")]
    pub(crate) abandoned_upload_age_secs: u64,
}

fn default_region() -> String {
    "us-east-1".to_string()
}
fn yes() -> bool {
    true
}
fn default_parts_in_flight() -> usize {
    4
}
fn default_request_timeout() -> u64 {
    300
}
fn default_retries() -> u32 {
    3
}
fn default_rename_objects() -> usize {
    10_000
}
fn default_abandoned_age() -> u64 {
    7 * 24 * 3600
}

impl S3Section {
    /// The backend's settings; credentials not in the file come from the standard
    /// environment variables.
    pub(crate) fn to_config(
        &self,
        keep_partial_uploads: bool,
        max_file_size: Option<u64>,
    ) -> Result<ftpgate_storage_object::S3Config> {
        let endpoint: url::Url = self
            .endpoint
            .parse()
            .with_context(|| format!("storage.s3.endpoint: bad URL {:?}", self.endpoint))?;
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let access_key = self
            .access_key
            .clone()
            .or_else(|| from_env("AWS_ACCESS_KEY_ID"));
        let secret_key = self
            .secret_key
            .clone()
            .or_else(|| from_env("AWS_SECRET_ACCESS_KEY"));
        let (Some(access_key), Some(secret_key)) = (access_key, secret_key) else {
            bail!(
                "storage.s3: credentials missing (set access_key/secret_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            );
        };
        let mut config = ftpgate_storage_object::S3Config::new(
            endpoint,
            &self.region,
            &self.bucket,
            &access_key,
            &secret_key,
        );
        config.prefix = self.prefix.clone();
        config.session_token = self
            .session_token
            .clone()
            .or_else(|| from_env("AWS_SESSION_TOKEN"));
        config.path_style = self.path_style;
        if let Some(size) = &self.part_size {
            let bytes = size.bytes().context("storage.s3.part_size")?;
            if bytes < ftpgate_storage_object::MIN_PART_SIZE as u64 {
                bail!("storage.s3.part_size must be at least 5M");
            }
            config.part_size = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        if self.parts_in_flight == 0 {
            bail!("storage.s3.parts_in_flight must be at least 1");
        }
        config.parts_in_flight = self.parts_in_flight;
        config.request_timeout = Duration::from_secs(self.request_timeout_secs.max(1));
        config.retries = self.retries;
        config.max_rename_objects = self.max_rename_objects;
        config.keep_partial_uploads = keep_partial_uploads;
        config.max_file_size = max_file_size;
        Ok(config)
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DurabilitySetting {
    #[default]
    Normal,
    Strict,
}

/// `[log]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogSection {
    pub(crate) level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".to_string(),
        }
    }
}

fn all_permissions() -> String {
    Permissions::ALL.to_string()
}

fn read_only_permissions() -> String {
    Permissions::READ_ONLY.to_string()
}

/// The users of a `[[users]]` list (named `prefix` in messages), checked.
pub(crate) fn user_entries_of(prefix: &str, users: &[UserSection]) -> Result<Vec<UserEntry>> {
    let mut entries = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let key = format!("{prefix}[{i}]");
        if user.name.is_empty() || user.name.chars().any(char::is_control) {
            bail!("{key}.name: must be a non-empty name without control characters");
        }
        if users[..i].iter().any(|u| u.name == user.name) {
            bail!("{key}.name: user {:?} is defined twice", user.name);
        }
        if !is_valid_hash(&user.password_hash) {
            bail!(
                "{key}.password_hash: not an argon2 or bcrypt hash (make one with `ftpgate hash-password`)"
            );
        }
        entries.push(UserEntry {
            name: user.name.clone(),
            password_hash: user.password_hash.clone(),
            home: user.home.to_string_lossy().into_owned(),
            permissions: permission_map(&key, &user.permissions, &user.dirs)?,
            tls_required: user.tls_required,
            quota_bytes: match &user.quota {
                Some(size) => Some(size.bytes().with_context(|| format!("{key}.quota"))?),
                None => None,
            },
        });
    }
    Ok(entries)
}

/// The kind of storage user `name` of `users` is served from: their own section's, else
/// `shared`.
pub(crate) fn storage_kind_of(
    users: &[UserSection],
    shared: StorageKind,
    name: &str,
) -> StorageKind {
    users
        .iter()
        .find(|u| u.name == name)
        .and_then(|u| u.storage.as_ref())
        .map_or(shared, |s| s.kind)
}

/// Anonymous access of an `[anonymous]` section, if enabled.
pub(crate) fn anonymous_entry_of(
    key: &str,
    anon: Option<&AnonymousSection>,
) -> Result<Option<AnonymousEntry>> {
    match anon {
        Some(anon) if anon.enabled => Ok(Some(AnonymousEntry {
            home: anon.home.to_string_lossy().into_owned(),
            permissions: permission_map(key, &anon.permissions, &anon.dirs)?,
        })),
        _ => Ok(None),
    }
}

impl ConfigFile {
    /// Reads and parses a file; the error names the file and the bad key.
    /// Relative paths in it are taken from the file's folder.
    pub(crate) fn load(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut config =
            Self::parse(&text).with_context(|| format!("invalid config {}", path.display()))?;
        let base = std::path::absolute(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        config.resolve_paths(&base);
        Ok(config)
    }

    /// Parses TOML text.
    pub(crate) fn parse(text: &str) -> Result<ConfigFile> {
        toml::from_str(text).map_err(|e| anyhow!("{e}"))
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

fn permission_map(key: &str, letters: &str, dirs: &[DirSection]) -> Result<PermissionMap> {
    let default = Permissions::parse(letters).map_err(|e| anyhow!("{key}.permissions: {e}"))?;
    let mut map = PermissionMap::uniform(default);
    for (i, dir) in dirs.iter().enumerate() {
        let perms = Permissions::parse(&dir.permissions)
            .map_err(|e| anyhow!("{key}.dirs[{i}].permissions: {e}"))?;
        let path = VirtualPath::parse_absolute(&dir.path)
            .map_err(|e| anyhow!("{key}.dirs[{i}].path: {e}"))?;
        map = map.with_override(path, perms);
    }
    Ok(map)
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

impl ConfigFile {
    /// Anonymous access, if enabled.
    pub(crate) fn anonymous_entry(&self) -> Result<Option<AnonymousEntry>> {
        anonymous_entry_of("anonymous", self.anonymous.as_ref())
    }

    /// Checks everything that can be checked without starting, with the same
    /// [`Settings::build`](crate::settings::Settings::build) `serve` uses, plus the TLS
    /// section (without generating a self-signed certificate); returns the warnings.
    pub(crate) fn check(&self) -> Result<Vec<String>> {
        let settings = crate::settings::Settings::build(self, None)?;
        self.tls.check()?;
        Ok(settings.warnings)
    }

    /// Makes the relative paths of the file (local homes, TLS files, GCS credentials)
    /// relative to `base`, the folder of the config file, not to the working directory.
    fn resolve_paths(&mut self, base: &Path) {
        let join = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        let join_users = |users: &mut [UserSection], shared: StorageKind| {
            for user in users {
                let kind = user.storage.as_ref().map_or(shared, |s| s.kind);
                if !kind.home_is_remote(&user.home.to_string_lossy()) {
                    join(&mut user.home);
                }
                if let Some(storage) = &mut user.storage {
                    storage.resolve_paths(base);
                }
            }
        };
        join_users(&mut self.users, self.storage.kind);
        if let Some(anon) = &mut self.anonymous {
            if !self
                .storage
                .kind
                .home_is_remote(&anon.home.to_string_lossy())
            {
                join(&mut anon.home);
            }
        }
        self.storage.resolve_paths(base);
        for host in &mut self.hosts {
            join_users(&mut host.users, host.storage.kind);
            if let Some(anon) = &mut host.anonymous {
                if !host
                    .storage
                    .kind
                    .home_is_remote(&anon.home.to_string_lossy())
                {
                    join(&mut anon.home);
                }
            }
            host.storage.resolve_paths(base);
        }
        for path in [
            &mut self.tls.cert,
            &mut self.tls.key,
            &mut self.tls.client_ca,
        ]
        .into_iter()
        .flatten()
        {
            join(path);
        }
    }
}

impl StorageSection {
    /// See [`ConfigFile::resolve_paths`].
    fn resolve_paths(&mut self, base: &Path) {
        if let Some(path) = self.gcs.as_mut().and_then(|g| g.credential_path.as_mut()) {
            if Path::new(path.as_str()).is_relative() {
                *path = base.join(&*path).to_string_lossy().into_owned();
            }
        }
    }
}

/// The log filter of a `log.level` or `--log-level` value: a level (`error`, `warn`, `info`,
/// `debug`, `trace` or `off`, in any case; `err`, `warning` and `information` too), or
/// comma-separated directives, each a level or `TARGET=LEVEL` (`ftpgate=debug,info`). Anything
/// else is an error naming the value: a bare word that is not a level would otherwise be read as
/// a target name and silence the whole log.
pub(crate) fn log_filter(text: &str) -> Result<tracing_subscriber::EnvFilter> {
    fn level(word: &str) -> Option<&'static str> {
        match word.trim().to_ascii_lowercase().as_str() {
            "error" | "err" => Some("error"),
            "warn" | "warning" => Some("warn"),
            "info" | "information" => Some("info"),
            "debug" => Some("debug"),
            "trace" => Some("trace"),
            "off" => Some("off"),
            _ => None,
        }
    }
    let hint = "use error, warn, info, debug, trace or off, or TARGET=LEVEL directives such as \"ftpgate=debug,info\"";
    let mut directives = Vec::new();
    for part in text.split(',').map(str::trim) {
        let directive = match part.split_once('=') {
            Some((target, word)) => {
                let target = target.trim();
                let target_ok = target.split("::").all(|segment| {
                    !segment.is_empty()
                        && segment
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                });
                let Some(level) = level(word).filter(|_| target_ok) else {
                    bail!("bad log directive {part:?} in {text:?}: {hint}");
                };
                format!("{target}={level}")
            }
            None => match level(part) {
                Some(level) => level.to_string(),
                None if part == text.trim() => bail!("unknown log level {part:?}: {hint}"),
                None => bail!("unknown log level {part:?} in {text:?}: {hint}"),
            },
        };
        directives.push(directive);
    }
    tracing_subscriber::EnvFilter::try_new(directives.join(","))
        .map_err(|e| anyhow!("bad log level {text:?}: {e}"))
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

    #[test]
    fn shipped_example_configs_parse_and_check() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/examples");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let config = ConfigFile::load(&path).unwrap();
                config
                    .check()
                    .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                count += 1;
            }
        }
        assert!(count > 0, "no example configs in {}", dir.display());
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = ConfigFile::parse("[server]\nlisten = []\nbogus_key = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus_key"), "{err}");
        let err = ConfigFile::parse("[serverr]\n").unwrap_err().to_string();
        assert!(err.contains("serverr"), "{err}");
    }

    #[test]
    fn bad_permission_letters_are_named() {
        let text = format!(
            "[[users]]\nname = \"a\"\npassword_hash = \"{}\"\nhome = \"/tmp\"\npermissions = \"elrx\"\n",
            ftpgate_auth_file::hash_password("p")
        );
        let err = ConfigFile::parse(&text)
            .unwrap()
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("users[0].permissions"), "{err}");
    }

    #[test]
    fn bad_hash_and_ports_are_named() {
        let err = ConfigFile::parse(
            "[[users]]\nname = \"a\"\npassword_hash = \"secret\"\nhome = \"/tmp\"\n",
        )
        .unwrap()
        .check()
        .unwrap_err()
        .to_string();
        assert!(err.contains("users[0].password_hash"), "{err}");
        let err = format!(
            "{:#}",
            ConfigFile::parse("[server]\npassive_ports = \"9-1\"\n")
                .unwrap()
                .check()
                .unwrap_err()
        );
        assert!(err.contains("server.passive_ports"), "{err}");
    }

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
