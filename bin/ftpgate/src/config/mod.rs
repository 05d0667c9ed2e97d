//! The TOML configuration file: its sections as serde types, one submodule per section, and
//! the checks and conversions that concern one section alone (a key's value, a section's keys
//! together). Unknown keys are errors, and every error names its key.
//!
//! Nothing here depends on the rest of the daemon: [`crate::settings`] puts the sections
//! together (and builds storage and TLS from them) for every command that reads a config.

mod admin;
mod auth;
mod dal;
mod hooks;
mod log;
mod server;
mod state;
mod storage;
mod tls;
mod users;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde::Deserialize;

pub(crate) use admin::{AdminSection, AdminSettings};
#[cfg(feature = "pam")]
pub(crate) use auth::pam_authenticator;
pub(crate) use auth::{
    AuthSection, CertPassword, PamPlan, cert_map, check_auth_list, http_authenticator,
    ldap_authenticator, pam_plan,
};
pub(crate) use dal::{OpendalSection, WebdavSection};
pub(crate) use hooks::{HookSection, PLACEHOLDERS, Piece, ResultFilter, template_pieces};
pub(crate) use log::{LogFormat, LogSection, Rotate, TransferLogFormat, file_parts, log_filter};
pub(crate) use server::{
    DEFAULT_DRAIN_SECS_WITH_ADMIN, FeaturesSection, ServerSection, parse_listen, parse_port_range,
};
pub(crate) use state::{StateSection, StateSettings};
pub(crate) use storage::{DurabilitySetting, S3Section, SiteChmod, StorageKind, StorageSection};
pub(crate) use tls::TlsSection;
pub(crate) use users::{
    AnonymousSection, DirSection, HostSection, UserSection, anonymous_entry_of, storage_kind_of,
    user_entries_of,
};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub(crate) server: ServerSection,
    /// The authenticators asked in turn (`[[users]]` alone without it).
    #[serde(default)]
    pub(crate) auth: Vec<AuthSection>,
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
    /// Programs to run or URLs to call on events.
    #[serde(default)]
    pub(crate) hooks: Vec<HookSection>,
    /// The operators' HTTP listener.
    #[serde(default)]
    pub(crate) admin: AdminSection,
    /// State shared with the other nodes of a fleet (Redis).
    #[serde(default)]
    pub(crate) state: StateSection,
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

    /// Makes the relative paths of the file (local homes, TLS files, GCS credentials, LDAP CAs)
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
            &mut self.log.file,
            &mut self.log.transfer_log,
            &mut self.admin.token_file,
        ]
        .into_iter()
        .flatten()
        {
            join(path);
        }
        for auth in &mut self.auth {
            if let AuthSection::Ldap(ldap) = auth {
                if let Some(path) = &mut ldap.ca_file {
                    join(path);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let err = ConfigFile::parse("[server]\nlisten = []\nbogus_key = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus_key"), "{err}");
        let err = ConfigFile::parse("[serverr]\n").unwrap_err().to_string();
        assert!(err.contains("serverr"), "{err}");
    }
}
