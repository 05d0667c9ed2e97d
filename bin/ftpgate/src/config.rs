//! The TOML configuration file, and how it (plus command-line flags) becomes the engine's
//! settings. Unknown keys are errors, and every semantic error names its key.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ftpgate::ServerConfig;
use ftpgate_auth_file::{AnonymousEntry, UserEntry, is_valid_hash};
use ftpgate_core::{PermissionMap, Permissions, VirtualPath};
use serde::Deserialize;

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
    pub(crate) log: LogSection,
}

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerSection {
    pub(crate) listen: Vec<String>,
    pub(crate) passive_ports: Option<String>,
    pub(crate) public_host: Option<String>,
    pub(crate) active_mode: bool,
    pub(crate) min_active_port: u16,
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_ip: usize,
    pub(crate) idle_timeout_secs: u64,
    pub(crate) login_timeout_secs: u64,
    pub(crate) data_timeout_secs: u64,
    pub(crate) shutdown_grace_secs: u64,
    pub(crate) max_line_length: usize,
    pub(crate) max_login_failures: u32,
    pub(crate) banner: String,
}

impl Default for ServerSection {
    fn default() -> Self {
        let d = ServerConfig::default();
        ServerSection {
            listen: Vec::new(),
            passive_ports: None,
            public_host: None,
            active_mode: d.active_mode,
            min_active_port: d.min_active_port,
            max_connections: d.max_connections,
            max_connections_per_ip: d.max_connections_per_ip,
            idle_timeout_secs: d.idle_timeout.as_secs(),
            login_timeout_secs: d.login_timeout.as_secs(),
            data_timeout_secs: d.data_timeout.as_secs(),
            shutdown_grace_secs: d.shutdown_grace.as_secs(),
            max_line_length: d.max_line_length,
            max_login_failures: d.max_login_failures,
            banner: d.banner,
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

/// `[storage]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StorageSection {
    #[serde(default)]
    pub(crate) keep_partial_uploads: bool,
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

impl ConfigFile {
    /// Reads and parses a file; the error names the file and the bad key.
    pub(crate) fn load(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid config {}", path.display()))
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
        let config = ServerConfig {
            listen,
            passive_ports,
            public_host: self.public_host.clone(),
            active_mode: self.active_mode,
            min_active_port: self.min_active_port,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            login_timeout: Duration::from_secs(self.login_timeout_secs),
            data_timeout: Duration::from_secs(self.data_timeout_secs),
            max_line_length: self.max_line_length,
            max_login_failures: self.max_login_failures,
            banner: self.banner.clone(),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
        };
        config.validate().map_err(|e| anyhow!("server: {e}"))?;
        Ok(config)
    }
}

impl ConfigFile {
    /// The configured users, checked.
    pub(crate) fn user_entries(&self) -> Result<Vec<UserEntry>> {
        let mut entries = Vec::new();
        for (i, user) in self.users.iter().enumerate() {
            let key = format!("users[{i}]");
            if user.name.is_empty() || user.name.chars().any(char::is_control) {
                bail!("{key}.name: must be a non-empty name without control characters");
            }
            if self.users[..i].iter().any(|u| u.name == user.name) {
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
            });
        }
        Ok(entries)
    }

    /// Anonymous access, if enabled.
    pub(crate) fn anonymous_entry(&self) -> Result<Option<AnonymousEntry>> {
        match &self.anonymous {
            Some(anon) if anon.enabled => Ok(Some(AnonymousEntry {
                home: anon.home.to_string_lossy().into_owned(),
                permissions: permission_map("anonymous", &anon.permissions, &anon.dirs)?,
            })),
            _ => Ok(None),
        }
    }

    /// Checks everything that can be checked without starting: the server section, users,
    /// anonymous access and that homes exist.
    pub(crate) fn check(&self) -> Result<Vec<String>> {
        self.server.to_server_config()?;
        let users = self.user_entries()?;
        let anon = self.anonymous_entry()?;
        let mut warnings = Vec::new();
        for user in &users {
            if !Path::new(&user.home).is_dir() {
                warnings.push(format!(
                    "home of user {:?} does not exist: {}",
                    user.name, user.home
                ));
            }
        }
        if let Some(anon) = &anon {
            if !Path::new(&anon.home).is_dir() {
                warnings.push(format!("anonymous home does not exist: {}", anon.home));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| anyhow!("log.level: {e}"))?;
        Ok(warnings)
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
}
