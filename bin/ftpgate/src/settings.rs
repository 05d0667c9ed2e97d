//! From a config file (with the command line's overrides applied) to what the engine runs.
//! [`Settings::build`] is the one place a config is checked and built: `serve`, `check-config`
//! and the SIGHUP reload all go through it, so they accept and refuse the same files. It checks
//! each section (through [`crate::config`]), the rules that join sections, and builds the
//! storage ([`crate::storage`]) and TLS ([`crate::tls`]) the sections describe.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use ftpgate::ServerConfig;
use ftpgate_auth_file::{FileAuthenticator, UserEntry};
use ftpgate_core::{AuthChain, Authenticator, VirtualPath};
use tracing::{info, warn};

use crate::cert_auth::{CertificateAuthenticator, Then};
use crate::config::{
    self, AdminSettings, AuthSection, ConfigFile, StorageKind, UserSection, log_filter,
};
use crate::storage::Backends;
use crate::tls::TlsSetup;

/// A home on the local disk, as the server will use it.
pub(crate) struct LocalHome {
    /// Whose home it is, for messages: `user "amy"`, `anonymous`, `user "ben" of host "b"`.
    pub(crate) owner: String,
    pub(crate) path: PathBuf,
    /// Created when missing (`create_home`).
    pub(crate) create: bool,
    /// The owner has a permission that writes (so the directory had better be writable).
    pub(crate) writes: bool,
}

/// A virtual host, built.
pub(crate) struct HostSettings {
    pub(crate) name: String,
    pub(crate) auth: FileAuthenticator,
    pub(crate) backends: Backends,
    pub(crate) banner: String,
}

/// Everything a config file sets that the daemon runs with, checked.
pub(crate) struct Settings {
    /// The engine's settings (listen addresses included; TLS is in [`tls`](Self::tls) until
    /// the server starts).
    pub(crate) server: ServerConfig,
    /// FTPS, if configured (certificate loaded or made).
    pub(crate) tls: Option<TlsSetup>,
    /// The filter of `log.level`.
    pub(crate) log_filter: tracing_subscriber::EnvFilter,
    /// The `[[auth]]` chain, with the `[[users]]` in it (or the users alone).
    pub(crate) auth: Arc<dyn Authenticator>,
    pub(crate) backends: Backends,
    pub(crate) hosts: Vec<HostSettings>,
    pub(crate) homes: Vec<LocalHome>,
    /// The admin listener (`[admin]`), when it is on.
    pub(crate) admin: Option<AdminSettings>,
    /// The fleet's shared state (`[state]`), when Redis is configured.
    pub(crate) state: Option<config::StateSettings>,
    /// Problems that do not stop the server (a missing home: its user cannot log in).
    pub(crate) warnings: Vec<String>,
}

impl Settings {
    /// Checks `file` whole and builds the users, storage and settings it describes;
    /// `extra_user` (the quick-start user of the command line) replaces a user of that name.
    /// Makes no network request and changes nothing on disk (a self-signed certificate is
    /// made in memory).
    pub(crate) fn build(file: &ConfigFile, extra_user: Option<&UserEntry>) -> Result<Settings> {
        let log_filter = log_filter(&file.log.level).context("log.level")?;
        file.log.check()?;
        for (i, hook) in file.hooks.iter().enumerate() {
            hook.check(&format!("hooks[{i}]"))?;
        }
        let mut server = file.server.to_server_config()?;
        file.features.apply(&mut server)?;
        let max_file_size = server.max_file_size;

        let mut homes = Vec::new();
        let create_default = file.server.create_homes;
        let mut users = config::user_entries_of("users", &file.users)?;
        collect_local_homes(
            &mut homes,
            "",
            &file.users,
            &users,
            file.storage.kind,
            create_default,
        );
        if let Some(extra) = extra_user {
            let owner = format!("user {:?}", extra.name);
            users.retain(|u| u.name != extra.name);
            homes.retain(|h| h.owner != owner);
            if !file.storage.kind.home_is_remote(&extra.home) {
                // Made by the quick start already; listed for the write check and the
                // cleanup of interrupted uploads.
                let letters = extra.permissions.at(&VirtualPath::root()).to_string();
                homes.push(LocalHome {
                    owner,
                    path: PathBuf::from(&extra.home),
                    create: true,
                    writes: writes(&letters, &[]),
                });
            }
            users.push(extra.clone());
        }
        let anonymous = config::anonymous_entry_of("anonymous", file.anonymous.as_ref())?;
        if let (Some(anon), Some(section)) = (&anonymous, &file.anonymous) {
            if !file.storage.kind.home_is_remote(&anon.home) {
                homes.push(LocalHome {
                    owner: "anonymous".to_string(),
                    path: PathBuf::from(&anon.home),
                    create: create_default,
                    writes: writes(&section.permissions, &section.dirs),
                });
            }
        }
        if file.users.iter().any(|u| u.tls_required) && !file.tls.enabled() {
            bail!("users: tls_required needs a [tls] certificate");
        }
        let backends = Backends::build("storage", &file.storage, &file.users, max_file_size)?;
        let auth = auth_chain(file, FileAuthenticator::new(users, anonymous)?)?;

        let mut hosts = Vec::new();
        for (i, host) in file.hosts.iter().enumerate() {
            let key = format!("hosts[{i}]");
            if host.name.trim().is_empty() {
                bail!("{key}.name: a host name is needed");
            }
            if file.hosts[..i]
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(&host.name))
            {
                bail!("{key}.name: host {:?} is defined twice", host.name);
            }
            let users = config::user_entries_of(&format!("{key}.users"), &host.users)?;
            collect_local_homes(
                &mut homes,
                &host.name,
                &host.users,
                &users,
                host.storage.kind,
                create_default,
            );
            let anonymous =
                config::anonymous_entry_of(&format!("{key}.anonymous"), host.anonymous.as_ref())?;
            if let (Some(anon), Some(section)) = (&anonymous, &host.anonymous) {
                if !host.storage.kind.home_is_remote(&anon.home) {
                    homes.push(LocalHome {
                        owner: format!("anonymous of host {:?}", host.name),
                        path: PathBuf::from(&anon.home),
                        create: create_default,
                        writes: writes(&section.permissions, &section.dirs),
                    });
                }
            }
            let backends = Backends::build(
                &format!("{key}.storage"),
                &host.storage,
                &host.users,
                max_file_size,
            )?;
            hosts.push(HostSettings {
                name: host.name.clone(),
                auth: FileAuthenticator::new(users, anonymous)?,
                backends,
                banner: host
                    .banner
                    .clone()
                    .unwrap_or_else(|| format!("{} ready", host.name)),
            });
        }

        // A self-signed certificate names the addresses clients are likely to use.
        let mut names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        names.extend(server.public_host.clone());
        let tls = TlsSetup::build(&file.tls, names)?;

        let (admin, admin_warning) = file.admin.build()?;
        if file.server.drain_secs.is_none() && admin.is_some() {
            // Something can watch /readyz: give it time to see the drain.
            server.drain = std::time::Duration::from_secs(config::DEFAULT_DRAIN_SECS_WITH_ADMIN);
        }
        let state = file.state.build()?;
        let mut warnings: Vec<String> = homes
            .iter()
            .filter(|h| !h.create && !h.path.is_dir())
            .map(|h| {
                format!(
                    "home of {} does not exist: {} (its logins fail until it is made; \
                     create_home = true makes it at start)",
                    h.owner,
                    h.path.display()
                )
            })
            .collect();
        warnings.extend(admin_warning);
        warnings.extend(pam_warnings(file));
        Ok(Settings {
            server,
            tls,
            log_filter,
            auth,
            backends,
            hosts,
            homes,
            admin,
            state,
            warnings,
        })
    }
}

/// The `[[auth]]` chain of `file`, with `users` where `type = "file"` is listed (first if it
/// is not); `users` alone without `[[auth]]`. A certificate entry that requires the password
/// takes the entries after it as the ones that check it.
fn auth_chain(file: &ConfigFile, users: FileAuthenticator) -> Result<Arc<dyn Authenticator>> {
    if file.auth.is_empty() {
        return Ok(Arc::new(users));
    }
    config::check_auth_list(&file.auth)?;
    let users: Arc<dyn Authenticator> = Arc::new(users);
    // Built from the end, so that each entry can take those after it.
    let mut tail: Vec<(Arc<dyn Authenticator>, bool)> = Vec::new();
    for (i, section) in file.auth.iter().enumerate().rev() {
        let key = format!("auth[{i}]");
        let auth: Arc<dyn Authenticator> = match section {
            AuthSection::File(_) => users.clone(),
            AuthSection::Http(http) => Arc::new(config::http_authenticator(&key, http)?),
            AuthSection::Ldap(ldap) => {
                let s3_template = ldap
                    .home_template
                    .as_deref()
                    .is_some_and(|t| t.starts_with("s3://"));
                if s3_template
                    && file.storage.kind == config::StorageKind::Local
                    && file.storage.s3.is_none()
                {
                    bail!("{key}.home_template: an s3:// home needs a [storage.s3] section");
                }
                config::ldap_authenticator(&key, ldap)?
            }
            AuthSection::Pam(pam) => pam_authenticator(&key, config::pam_plan(&key, pam)?)?,
            AuthSection::Certificate(cert) => {
                if file.tls.client_ca.is_none() {
                    bail!(
                        "{key}: type = \"certificate\" needs tls.client_ca (the CA client certificates are checked against)"
                    );
                }
                let map = config::cert_map(&key, cert)?;
                let then = match cert.password {
                    config::CertPassword::None => Then::Accept {
                        home_template: match &cert.home_template {
                            Some(t) if !t.trim().is_empty() => t.clone(),
                            _ => bail!(
                                "{key}.home_template: needed with password = \"none\" (the home of a user the certificate logs in, e.g. \"/srv/ftp/{{user}}\")"
                            ),
                        },
                        permissions: ftpgate_core::PermissionMap::uniform(
                            ftpgate_core::Permissions::parse(&cert.permissions)
                                .map_err(|e| anyhow::anyhow!("{key}.permissions: {e}"))?,
                        ),
                    },
                    config::CertPassword::Required => {
                        if cert.home_template.is_some() {
                            bail!(
                                "{key}.home_template: with password = \"required\" the entries after this one give the home"
                            );
                        }
                        if tail.is_empty() {
                            bail!(
                                "{key}.password: \"required\" needs [[auth]] entries after this one to check the password"
                            );
                        }
                        let rest = std::mem::take(&mut tail)
                            .into_iter()
                            .rev()
                            .fold(AuthChain::new(), |chain, (a, f)| chain.push(a, f));
                        Then::Password(Arc::new(rest))
                    }
                };
                Arc::new(CertificateAuthenticator { map, then })
            }
        };
        tail.push((auth, section.fallthrough()));
    }
    if !file.auth.iter().any(|a| matches!(a, AuthSection::File(_))) {
        tail.push((users, false));
    }
    Ok(Arc::new(
        tail.into_iter()
            .rev()
            .fold(AuthChain::new(), |chain, (a, f)| chain.push(a, f)),
    ))
}

/// The PAM authenticator of a checked entry; a build without the `pam` feature refuses it.
#[cfg(feature = "pam")]
fn pam_authenticator(key: &str, plan: config::PamPlan) -> Result<Arc<dyn Authenticator>> {
    Ok(Arc::new(config::pam_authenticator(key, plan)?))
}

#[cfg(not(feature = "pam"))]
fn pam_authenticator(key: &str, _plan: config::PamPlan) -> Result<Arc<dyn Authenticator>> {
    bail!(
        "{key}: type = \"pam\" needs a build with the `pam` feature (libpam0g-dev at build time); this one was built without it"
    )
}

/// What PAM entries need that the server may lack: root to check other users' passwords
/// with `pam_unix`, which `run_as` gives up after start.
fn pam_warnings(file: &ConfigFile) -> Vec<String> {
    let Some(i) = file
        .auth
        .iter()
        .position(|a| matches!(a, AuthSection::Pam(_)))
    else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    if let Some(user) = &file.server.run_as {
        warnings.push(format!(
            "auth[{i}]: PAM checks passwords as server.run_as ({user:?}) after start: pam_unix can then check no other user's password (it reads /etc/shadow as root; its unix_chkpwd helper checks only the caller's own), so such logins fail; use a PAM stack that needs no root, or leave run_as out"
        ));
    } else if !nix::unistd::geteuid().is_root() {
        warnings.push(format!(
            "auth[{i}]: the server does not run as root: pam_unix can check no other user's password (it reads /etc/shadow as root; its unix_chkpwd helper checks only the caller's own), so such logins fail"
        ));
    }
    warnings
}

/// Makes the missing homes whose owners have `create_home`.
pub(crate) fn create_homes(homes: &[LocalHome]) -> Result<()> {
    for home in homes.iter().filter(|h| h.create && !h.path.is_dir()) {
        std::fs::create_dir_all(&home.path).with_context(|| {
            format!(
                "cannot create the home of {}: {}",
                home.owner,
                home.path.display()
            )
        })?;
        info!(owner = %home.owner, path = %home.path.display(), "home created");
    }
    Ok(())
}

/// Warns about homes the server cannot write to although their owners may write (checked as
/// the user the server runs as).
pub(crate) fn warn_unwritable_homes(homes: &[LocalHome]) {
    use nix::unistd::{AccessFlags, access};
    for home in homes.iter().filter(|h| h.writes && h.path.is_dir()) {
        if let Err(e) = access(&home.path, AccessFlags::W_OK | AccessFlags::X_OK) {
            warn!(
                owner = %home.owner,
                path = %home.path.display(),
                error = %e,
                "the server cannot write to this home, though its owner has write permissions: uploads will fail"
            );
        }
    }
}

/// The local homes of `users` (`host` is empty for the server's own).
fn collect_local_homes(
    homes: &mut Vec<LocalHome>,
    host: &str,
    sections: &[UserSection],
    users: &[UserEntry],
    shared_kind: StorageKind,
    create_default: bool,
) {
    for (section, user) in sections.iter().zip(users) {
        let kind = config::storage_kind_of(sections, shared_kind, &user.name);
        if kind.home_is_remote(&user.home) {
            continue;
        }
        homes.push(LocalHome {
            owner: if host.is_empty() {
                format!("user {:?}", user.name)
            } else {
                format!("user {:?} of host {host:?}", user.name)
            },
            path: PathBuf::from(&user.home),
            create: section.create_home.unwrap_or(create_default),
            writes: writes(&section.permissions, &section.dirs),
        });
    }
}

/// Whether permission letters (and directory overrides) allow any change to files.
fn writes(letters: &str, dirs: &[config::DirSection]) -> bool {
    let writing = |l: &str| l.contains(['a', 'd', 'f', 'm', 'w', 'M', 'T']);
    writing(letters) || dirs.iter().any(|d| writing(&d.permissions))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The error `Settings::build` gives for `text`, with its chain of causes.
    fn error_of(text: &str) -> String {
        let file = ConfigFile::parse(text).unwrap();
        match Settings::build(&file, None) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => format!("{e:#}"),
        }
    }

    fn user(extra: &str) -> String {
        format!(
            "[[users]]\nname = \"a\"\npassword_hash = \"{}\"\nhome = \"/tmp\"\n{extra}\n",
            ftpgate_auth_file::hash_password("p")
        )
    }

    #[test]
    fn the_drain_defaults_to_a_few_seconds_only_with_an_admin_listener() {
        let build = |text: &str| {
            let file = ConfigFile::parse(text).unwrap();
            Settings::build(&file, None).unwrap().server.drain
        };
        assert_eq!(build("[server]\n"), std::time::Duration::ZERO);
        assert_eq!(
            build("[admin]\nlisten = [\"127.0.0.1:0\"]\n"),
            std::time::Duration::from_secs(config::DEFAULT_DRAIN_SECS_WITH_ADMIN)
        );
        assert_eq!(
            build("[server]\ndrain_secs = 0\n\n[admin]\nlisten = [\"127.0.0.1:0\"]\n"),
            std::time::Duration::ZERO
        );
    }

    #[test]
    fn shipped_example_configs_parse_and_check() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/examples");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let config = ConfigFile::load(&path).unwrap();
                Settings::build(&config, None)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                count += 1;
            }
        }
        assert!(count > 0, "no example configs in {}", dir.display());
    }

    #[test]
    fn bad_permission_letters_are_named() {
        let err = error_of(&user("permissions = \"elrx\""));
        assert!(err.contains("users[0].permissions"), "{err}");
    }

    #[test]
    fn bad_hash_and_ports_are_named() {
        let err =
            error_of("[[users]]\nname = \"a\"\npassword_hash = \"secret\"\nhome = \"/tmp\"\n");
        assert!(err.contains("users[0].password_hash"), "{err}");
        let err = error_of("[server]\npassive_ports = \"9-1\"\n");
        assert!(err.contains("server.passive_ports"), "{err}");
    }

    #[test]
    fn rules_across_sections_are_checked() {
        let err = error_of(&user("tls_required = true"));
        assert!(
            err.contains("users: tls_required needs a [tls] certificate"),
            "{err}"
        );
        let err = error_of("[[hosts]]\nname = \"a.example\"\n\n[[hosts]]\nname = \"A.example\"\n");
        assert!(
            err.contains("hosts[1].name: host \"A.example\" is defined twice"),
            "{err}"
        );
        let err = error_of("[storage]\nsite_chmod = \"ignore\"\n");
        assert!(err.contains("storage: site_chmod"), "{err}");
        let err = error_of("[storage]\ntype = \"s3\"\n");
        assert!(err.contains("[storage.s3] section"), "{err}");
    }

    #[test]
    fn a_self_signed_certificate_does_not_hide_other_tls_errors() {
        let err = error_of("[tls]\nself_signed = true\nmin_version = \"1.1\"\n");
        assert!(err.contains("tls.min_version"), "{err}");
        let err = error_of("[tls]\nself_signed = true\ncert = \"c.pem\"\n");
        assert!(err.contains("not both"), "{err}");
        let err = error_of("[tls]\nself_signed = true\nsession_reuse = \"always\"\n");
        assert!(err.contains("tls.session_reuse"), "{err}");
        let err = error_of("[tls]\nself_signed = true\nrequire_client_cert = true\n");
        assert!(err.contains("tls.client_ca"), "{err}");

        let file = ConfigFile::parse("[tls]\nself_signed = true\nrequired = true\n").unwrap();
        let tls = Settings::build(&file, None).unwrap().tls.unwrap();
        assert!(tls.self_signed && tls.config.required_for_login);
    }

    #[test]
    fn per_user_storage_errors_name_the_users_section() {
        let err = error_of(&user(
            "[users.storage]\ntype = \"s3\"\n[users.storage.s3]\nendpoint = \"nonsense\"\nbucket = \"b\"\n",
        ));
        assert!(err.contains("users.a.storage.s3.endpoint"), "{err}");
    }
}
