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
    /// This user's own storage, instead of the shared `[storage]` (same keys).
    #[serde(default)]
    pub(crate) storage: Option<StorageSection>,
    /// Make the home at start if it is missing (local storage); default `server.create_homes`.
    #[serde(default)]
    pub(crate) create_home: Option<bool>,
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
