//! Who may log in: `[[users]]` (with `[[users.dirs]]` permissions), `[anonymous]`, and the
//! virtual hosts of `[[hosts]]`, each with users and storage of its own.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use ftpgate_auth_file::{AnonymousEntry, UserEntry, is_valid_hash};
use ftpgate_core::{PermissionMap, Permissions, VirtualPath};
use serde::Deserialize;

use super::server::Size;
use super::storage::{StorageKind, StorageSection};

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
    /// Most files the user may have (an upload of one more is refused with 552).
    #[serde(default)]
    pub(crate) quota_files: Option<u64>,
    /// This user's own storage, instead of the shared `[storage]` (same keys).
    #[serde(default)]
    pub(crate) storage: Option<StorageSection>,
    /// Make the home at start if it is missing (local storage); default `server.create_homes`.
    #[serde(default)]
    pub(crate) create_home: Option<bool>,
    /// Bandwidth, sessions, networks and validity.
    #[serde(flatten)]
    pub(crate) limits: LimitsSection,
}

/// The per-user limit keys, the same in `[[users]]` and in the `[[auth]]` entries that give
/// each of their users defaults (`ldap`, `pam`), checked by [`limits_of`] for all of them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LimitsSection {
    /// Upload bandwidth per second ("5M", or bytes), per session and across the user's sessions.
    #[serde(default, deserialize_with = "keyed::upload_rate")]
    pub(crate) upload_rate: Option<Size>,
    /// Download bandwidth per second, per session and across the user's sessions.
    #[serde(default, deserialize_with = "keyed::download_rate")]
    pub(crate) download_rate: Option<Size>,
    /// Rates for clients in particular networks, instead of the two above.
    #[serde(default, deserialize_with = "keyed::network_rates")]
    pub(crate) network_rates: Vec<NetworkRateSection>,
    /// Most sessions logged in as this user at once.
    #[serde(default, deserialize_with = "keyed::max_sessions")]
    pub(crate) max_sessions: Option<u32>,
    /// The user may log in only from these networks (CIDRs; empty: anywhere).
    #[serde(default, deserialize_with = "keyed::allowed_networks")]
    pub(crate) allowed_networks: Vec<String>,
    /// The user may not log in from these networks.
    #[serde(default, deserialize_with = "keyed::denied_networks")]
    pub(crate) denied_networks: Vec<String>,
    /// No login from this time on: `2027-01-31` (midnight UTC) or RFC 3339.
    #[serde(default, deserialize_with = "keyed::expires_at")]
    pub(crate) expires_at: Option<String>,
    /// No login at all.
    #[serde(default, deserialize_with = "keyed::disabled")]
    pub(crate) disabled: bool,
}

/// Deserializers of the limit keys that put the key's name before serde's error.
mod keyed {
    use serde::{Deserialize, Deserializer};

    use super::{NetworkRateSection, Size};

    macro_rules! keyed {
        ($($name:ident: $ty:ty;)*) => {$(
            pub(super) fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                <$ty>::deserialize(d).map_err(|e| {
                    serde::de::Error::custom(format_args!("{}: {e}", stringify!($name)))
                })
            }
        )*};
    }

    keyed! {
        upload_rate: Option<Size>;
        download_rate: Option<Size>;
        network_rates: Vec<NetworkRateSection>;
        max_sessions: Option<u32>;
        allowed_networks: Vec<String>;
        denied_networks: Vec<String>;
        expires_at: Option<String>;
        disabled: bool;
    }
}

/// `[[users.network_rates]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkRateSection {
    pub(crate) network: String,
    #[serde(default)]
    pub(crate) upload_rate: Option<Size>,
    #[serde(default)]
    pub(crate) download_rate: Option<Size>,
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
            quota_files: quota_files(&format!("{key}.quota_files"), user.quota_files)?,
            limits: limits_of(&key, &user.limits)?,
        });
    }
    Ok(entries)
}

/// A quota of files: more than 0 when given.
pub(crate) fn quota_files(key: &str, files: Option<u64>) -> Result<Option<u64>> {
    match files {
        Some(0) => bail!("{key}: must be more than 0 files (leave it out for no limit)"),
        files => Ok(files),
    }
}

fn rate(key: &str, rate: Option<&Size>) -> Result<Option<u64>> {
    match rate {
        None => Ok(None),
        Some(size) => match size.bytes().with_context(|| key.to_string())? {
            0 => bail!("{key}: must be more than 0 bytes per second (leave it out for no limit)"),
            n => Ok(Some(n)),
        },
    }
}

fn networks(key: &str, list: &[String]) -> Result<Vec<ipnet::IpNet>> {
    list.iter()
        .map(|n| parse_network(n).with_context(|| key.to_string()))
        .collect()
}

fn parse_network(text: &str) -> Result<ipnet::IpNet> {
    ftpgate_core::parse_network(text).map_err(|e| anyhow!(e))
}

/// `2027-01-31` (midnight UTC) or an RFC 3339 time.
fn parse_expiry(text: &str) -> Result<std::time::SystemTime> {
    let timestamp = match text.parse::<jiff::Timestamp>() {
        Ok(t) => t,
        Err(_) => match text.parse::<jiff::civil::Date>() {
            Ok(date) => date
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map_err(|e| anyhow!("{text:?}: {e}"))?
                .timestamp(),
            Err(_) => bail!("{text:?} is neither a date (2027-01-31) nor an RFC 3339 time"),
        },
    };
    Ok(std::time::SystemTime::from(timestamp))
}

/// A user's bandwidth, session, network and validity limits, checked (`key` names the
/// section in errors).
pub(crate) fn limits_of(key: &str, user: &LimitsSection) -> Result<ftpgate_core::UserLimits> {
    let mut network_rates = Vec::new();
    for (i, section) in user.network_rates.iter().enumerate() {
        let key = format!("{key}.network_rates[{i}]");
        network_rates.push(ftpgate_core::NetworkRate {
            network: parse_network(&section.network).with_context(|| format!("{key}.network"))?,
            upload_rate: rate(&format!("{key}.upload_rate"), section.upload_rate.as_ref())?,
            download_rate: rate(
                &format!("{key}.download_rate"),
                section.download_rate.as_ref(),
            )?,
        });
    }
    if user.max_sessions == Some(0) {
        bail!("{key}.max_sessions: must be at least 1 (use disabled = true to refuse every login)");
    }
    Ok(ftpgate_core::UserLimits {
        upload_rate: rate(&format!("{key}.upload_rate"), user.upload_rate.as_ref())?,
        download_rate: rate(&format!("{key}.download_rate"), user.download_rate.as_ref())?,
        network_rates,
        max_sessions: user.max_sessions,
        allowed_networks: networks(&format!("{key}.allowed_networks"), &user.allowed_networks)?,
        denied_networks: networks(&format!("{key}.denied_networks"), &user.denied_networks)?,
        expires_at: match &user.expires_at {
            Some(text) => Some(parse_expiry(text).with_context(|| format!("{key}.expires_at"))?),
            None => None,
        },
        disabled: user.disabled,
    })
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
