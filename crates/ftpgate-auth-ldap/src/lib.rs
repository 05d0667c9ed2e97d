//! Logins checked against an LDAP directory (OpenLDAP, 389 DS, Active Directory, ...).
//!
//! Each login the cache cannot answer is:
//!
//! 1. a search under `base_dn` (subtree) with the configured filter, `(uid={user})` by default,
//!    the user name escaped as RFC 4515 asks (`*`, `(`, `)`, `\` and NUL become `\2a`, `\28`,
//!    `\29`, `\5c`, `\00`, so a name can never widen or break the filter). The search runs on a
//!    pooled connection bound as the service account (`bind_dn`/`bind_password`), or an
//!    anonymous one when none is configured;
//! 2. no entry: [`AuthError::UnknownUser`] (in a chain, the next authenticator is asked; a
//!    bind the server refuses is made anyway, so that the time taken does not tell which names
//!    exist); more
//!    than one: the login is refused ([`AuthError::InvalidCredentials`]) and the ambiguity
//!    logged, since which entry's password would count is anyone's guess;
//! 3. an empty password is refused here, with no bind at all (an LDAP bind with an empty
//!    password is an *unauthenticated* bind that servers answer with success);
//! 4. a simple bind as the entry's DN with the given password, on a fresh connection that is
//!    closed right after (so a user's bind never changes who a pooled connection is): result
//!    49 (invalid credentials) and its kin reject;
//! 5. the user, named as the entry's `uid` spells it (directories ignore case: `ANN` logs in
//!    as `ann`, so limits, quotas and the home template see one user), the home from an attribute (`homeDirectory`, say) or a template
//!    (`/srv/ftp/{user}`, `s3://bucket/{user}`), the permissions from the groups the entry is a
//!    `member` of (a second search, see [`LdapSettings::group_filter`]) mapped through
//!    `group_permissions` (several matching groups add up; none: the default permissions), and
//!    a quota from an attribute if one is named, and limits ([`LdapSettings::limits`] for
//!    every user, overridden by the attributes of [`LdapSettings::limit_attributes`]: upload
//!    and download rate, most sessions, allowed networks; a value that is not what its
//!    attribute should hold makes the login [`AuthError::Unavailable`], logged, never a user
//!    without that limit).
//!
//! Anything that keeps the directory from answering — a refused connection, a TLS failure, a
//! timeout, a refused service bind, a server busy or unavailable — is
//! [`AuthError::Unavailable`]: the client gets 421 and the failure never counts towards bans. A
//! pooled connection that fails is replaced once by a fresh one before giving up, so a server
//! that restarted is used again at the next login.
//!
//! An accepted login is remembered for `cache_ttl` under a keyed SHA-256 of the name, the
//! password and the virtual host, never the password itself; a rejection is never cached.

#![deny(missing_docs)]

mod conn;
mod limits;

pub use limits::LimitAttributes;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ftpgate_core::{AuthError, Authenticator, LoginRequest, Permissions, User, UserLimits};
use ldap3::{Ldap, Scope, SearchEntry, SearchOptions, ldap_escape};
use tracing::{debug, warn};

use crate::conn::{Connector, Pool};
use ftpgate_core::LoginCache;

/// The filter used when none is configured.
pub const DEFAULT_FILTER: &str = "(uid={user})";
/// The attribute that names a user by default.
pub const DEFAULT_NAME_ATTRIBUTE: &str = "uid";
/// How groups are found by default: those listing the entry as a `member`.
pub const DEFAULT_GROUP_FILTER: &str = "(member={dn})";
/// How long connecting (TCP and TLS) may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one operation (bind, search) may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an accepted login is remembered by default.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// How many service-bound connections are kept open by default.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// Most groups read for one login.
const MAX_GROUPS: i32 = 1000;

/// What the authenticator needs to know; [`LdapSettings::new`] fills in the defaults.
#[derive(Clone)]
#[non_exhaustive]
pub struct LdapSettings {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before anything is sent.
    pub starttls: bool,
    /// CA certificates (PEM) that the server's certificate must chain to, in place of the
    /// platform's roots (a private CA).
    pub ca_pem: Option<Vec<u8>>,
    /// DN and password of the service account that searches; anonymous searches if `None`.
    pub bind: Option<(String, String)>,
    /// Where users are searched (subtree).
    pub base_dn: String,
    /// The search filter; `{user}` is the login name, escaped.
    pub filter: String,
    /// The attribute whose value is the user's name once logged in (`uid`; Active Directory:
    /// `sAMAccountName`): directories match names without regard to case, so `ANN` finds
    /// `ann`'s entry, and the session, its limits and the home template must all see `ann`.
    /// The value equal to the login name (ignoring case) is taken, else the first; an entry
    /// without the attribute keeps the login name as typed.
    pub name_attribute: String,
    /// The attribute holding the home (`homeDirectory`); tried before the template.
    pub home_attribute: Option<String>,
    /// The home when the attribute is not set or absent; `{user}` is the login name.
    pub home_template: Option<String>,
    /// Permissions granted by membership of each group (by DN).
    pub group_permissions: Vec<(String, Permissions)>,
    /// Where groups are searched (default: `base_dn`).
    pub group_base_dn: Option<String>,
    /// The group search filter; `{dn}` is the user's DN and `{user}` the login name, both
    /// escaped. Only run when `group_permissions` is not empty.
    pub group_filter: String,
    /// Permissions when no group of `group_permissions` matches.
    pub default_permissions: Permissions,
    /// An attribute holding the user's quota in bytes.
    pub quota_attribute: Option<String>,
    /// Every user's limits (bandwidth, sessions, networks, validity), unless an attribute of
    /// [`limit_attributes`](LdapSettings::limit_attributes) says otherwise.
    pub limits: UserLimits,
    /// Attributes holding a user's own limits.
    pub limit_attributes: LimitAttributes,
    /// Longest time to connect (TCP and TLS).
    pub connect_timeout: Duration,
    /// Longest time for one operation.
    pub timeout: Duration,
    /// How long an accepted login is remembered (zero: never).
    pub cache_ttl: Duration,
    /// Service-bound connections kept open for searches.
    pub pool_size: usize,
}

impl LdapSettings {
    /// Settings for `url` and `base_dn`, the rest at their defaults: the filter `(uid={user})`,
    /// anonymous searches, all permissions, no home source (set `home_attribute` or
    /// `home_template`).
    pub fn new(url: impl Into<String>, base_dn: impl Into<String>) -> Self {
        LdapSettings {
            url: url.into(),
            starttls: false,
            ca_pem: None,
            bind: None,
            base_dn: base_dn.into(),
            filter: DEFAULT_FILTER.to_string(),
            name_attribute: DEFAULT_NAME_ATTRIBUTE.to_string(),
            home_attribute: None,
            home_template: None,
            group_permissions: Vec::new(),
            group_base_dn: None,
            group_filter: DEFAULT_GROUP_FILTER.to_string(),
            default_permissions: Permissions::ALL,
            quota_attribute: None,
            limits: UserLimits::default(),
            limit_attributes: LimitAttributes::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            cache_ttl: DEFAULT_CACHE_TTL,
            pool_size: DEFAULT_POOL_SIZE,
        }
    }
}

/// A setting the authenticator cannot work with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL is not `ldap://HOST[:PORT]` or `ldaps://HOST[:PORT]`.
    #[error("not an ldap:// or ldaps:// URL: {0:?}")]
    Url(String),
    /// StartTLS was asked for on an `ldaps://` URL.
    #[error("StartTLS is for ldap:// URLs (ldaps:// is TLS from the start)")]
    StartTls,
    /// A filter does not parse, or lacks `{user}`.
    #[error("{0}")]
    Filter(String),
    /// The group filter does not parse.
    #[error("{0}")]
    GroupFilter(String),
    /// The name attribute is empty.
    #[error("an attribute is needed (uid; sAMAccountName on Active Directory)")]
    NameAttribute,
    /// The base DN is empty.
    #[error("a base DN is needed (where users are searched, e.g. \"ou=people,dc=example,dc=org\")")]
    BaseDn,
    /// Neither a home attribute nor a home template is set.
    #[error("a home attribute or a home template is needed")]
    Home,
    /// The CA certificates could not be read.
    #[error("CA certificates: {0}")]
    Ca(String),
    /// The TLS client could not be made.
    #[error("TLS: {0}")]
    Tls(String),
}

impl ConfigError {
    /// The setting at fault, as the daemon's configuration names it.
    pub fn setting(&self) -> &'static str {
        match self {
            ConfigError::Url(_) => "url",
            ConfigError::StartTls => "starttls",
            ConfigError::Filter(_) => "filter",
            ConfigError::GroupFilter(_) => "group_filter",
            ConfigError::BaseDn => "base_dn",
            ConfigError::NameAttribute => "name_attribute",
            ConfigError::Home => "home_template",
            ConfigError::Ca(_) | ConfigError::Tls(_) => "ca_file",
        }
    }
}

/// Checks logins against an LDAP directory; see the [crate documentation](crate).
pub struct LdapAuthenticator {
    settings: LdapSettings,
    /// `group_permissions` with normalised DNs.
    groups: Vec<(String, Permissions)>,
    connector: Connector,
    pool: Pool,
    cache: LoginCache<User>,
}

impl std::fmt::Debug for LdapAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapAuthenticator")
            .field("url", &self.settings.url)
            .field("base_dn", &self.settings.base_dn)
            .finish_non_exhaustive()
    }
}

impl LdapAuthenticator {
    /// Checks `settings` and makes the authenticator; nothing is sent to the server yet.
    pub fn new(settings: LdapSettings) -> Result<Arc<LdapAuthenticator>, ConfigError> {
        let tls_url = check_url(&settings.url)?;
        if tls_url && settings.starttls {
            return Err(ConfigError::StartTls);
        }
        if settings.base_dn.trim().is_empty() {
            return Err(ConfigError::BaseDn);
        }
        if settings.name_attribute.trim().is_empty() {
            return Err(ConfigError::NameAttribute);
        }
        if !settings.filter.contains("{user}") {
            return Err(ConfigError::Filter(format!(
                "{:?} does not contain {{user}} (where the login name goes)",
                settings.filter
            )));
        }
        check_filter(&settings.filter).map_err(ConfigError::Filter)?;
        if !settings.group_permissions.is_empty() {
            check_filter(&settings.group_filter).map_err(ConfigError::GroupFilter)?;
        }
        let no_template = settings
            .home_template
            .as_deref()
            .is_none_or(|t| t.trim().is_empty());
        let no_attribute = settings
            .home_attribute
            .as_deref()
            .is_none_or(|a| a.trim().is_empty());
        if no_template && no_attribute {
            return Err(ConfigError::Home);
        }
        let tls = tls_config(settings.ca_pem.as_deref())?;
        let groups = settings
            .group_permissions
            .iter()
            .map(|(dn, perms)| (normalise_dn(dn), *perms))
            .collect();
        Ok(Arc::new(LdapAuthenticator {
            connector: Connector {
                url: settings.url.clone(),
                starttls: settings.starttls,
                tls,
                connect_timeout: settings.connect_timeout,
            },
            pool: Pool::new(settings.pool_size),
            cache: LoginCache::new(),
            groups,
            settings,
        }))
    }

    /// The whole login, uncached.
    async fn login(&self, request: &LoginRequest<'_>) -> Result<User, AuthError> {
        let name = request.username();
        let filter = self.settings.filter.replace("{user}", &ldap_escape(name));
        let mut attrs: Vec<&str> = vec![self.settings.name_attribute.as_str()];
        attrs.extend(self.settings.home_attribute.as_deref());
        attrs.extend(self.settings.quota_attribute.as_deref());
        attrs.extend(self.settings.limit_attributes.names());
        let (mut entries, more) = self
            .search(&self.settings.base_dn, &filter, &attrs, 2)
            .await?;
        if entries.len() > 1 || (more && !entries.is_empty()) {
            let dns: Vec<&str> = entries.iter().map(|e| e.dn.as_str()).collect();
            warn!(user = name, filter = %filter, entries = ?dns,
                "LDAP: the filter finds more than one entry for this name; login refused");
            return Err(AuthError::InvalidCredentials);
        }
        let password = request.password().expose();
        let Some(entry) = entries.pop() else {
            if !password.is_empty() {
                // The same work as for a known name with a wrong password (a bind the server
                // refuses), so the time taken does not tell which names exist.
                let decoy = format!("cn=ftpgate-no-such-user,{}", self.settings.base_dn);
                let _ = self.check_password(&decoy, password).await;
            }
            return Err(AuthError::UnknownUser);
        };
        if password.is_empty() {
            debug!(user = name, "LDAP: empty password refused without a bind");
            return Err(AuthError::InvalidCredentials);
        }
        self.check_password(&entry.dn, password).await?;
        let name = self.name_of(name, &entry);
        let home = self.home_of(&name, &entry)?;
        let permissions = self.permissions_of(&name, &entry.dn).await?;
        let mut user = User::new(name, home, permissions);
        if let Some(attr) = &self.settings.quota_attribute {
            if let Some(value) = attribute(&entry, attr) {
                user.quota_bytes = Some(value.trim().parse().map_err(|_| {
                    AuthError::Unavailable(format!(
                        "LDAP entry {}: {attr} is not a number of bytes: {value:?}",
                        entry.dn
                    ))
                })?);
            }
        }
        user.limits = self
            .settings
            .limit_attributes
            .apply(&entry, &self.settings.limits)?;
        Ok(user)
    }

    /// A simple bind as `dn` on a connection of its own, closed afterwards.
    async fn check_password(&self, dn: &str, password: &str) -> Result<(), AuthError> {
        let mut ldap = self.connector.open().await?;
        let result = ldap
            .with_timeout(self.settings.timeout)
            .simple_bind(dn, password)
            .await
            .map_err(|e| self.unavailable(&e));
        let _ = ldap.unbind().await;
        let result = result?;
        match result.rc {
            0 => Ok(()),
            // invalidCredentials, inappropriateAuthentication, insufficientAccessRights,
            // unwillingToPerform (a locked or expired account on some servers).
            49 | 48 | 50 | 53 => {
                debug!(dn, rc = result.rc, text = %result.text, "LDAP: bind refused");
                Err(AuthError::InvalidCredentials)
            }
            rc => Err(AuthError::Unavailable(format!(
                "{}: bind as {dn} answered {rc} ({})",
                self.settings.url, result.text
            ))),
        }
    }

    /// The user's name as the directory spells it (see [`LdapSettings::name_attribute`]).
    fn name_of(&self, login: &str, entry: &SearchEntry) -> String {
        let values = entry
            .attrs
            .iter()
            .find(|(attr, _)| attr.eq_ignore_ascii_case(&self.settings.name_attribute))
            .map(|(_, values)| values.as_slice())
            .unwrap_or_default();
        values
            .iter()
            .find(|v| v.eq_ignore_ascii_case(login))
            .or_else(|| values.first())
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| login.to_string())
    }

    /// The home: the attribute's value if it has one, else the template.
    fn home_of(&self, name: &str, entry: &SearchEntry) -> Result<String, AuthError> {
        if let Some(attr) = &self.settings.home_attribute {
            if let Some(home) = attribute(entry, attr).filter(|h| !h.trim().is_empty()) {
                return Ok(home.to_string());
            }
        }
        match &self.settings.home_template {
            Some(template) if !template.trim().is_empty() => {
                if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
                    return Err(AuthError::Unavailable(format!(
                        "the name {name:?} cannot be put in the home template"
                    )));
                }
                Ok(template.replace("{user}", name))
            }
            _ => Err(AuthError::Unavailable(format!(
                "LDAP entry {}: no {} and no home template",
                entry.dn,
                self.settings.home_attribute.as_deref().unwrap_or("home")
            ))),
        }
    }

    /// The permissions of the groups the user is in, or the default ones.
    async fn permissions_of(&self, name: &str, dn: &str) -> Result<Permissions, AuthError> {
        if self.groups.is_empty() {
            return Ok(self.settings.default_permissions);
        }
        let filter = self
            .settings
            .group_filter
            .replace("{dn}", &ldap_escape(dn))
            .replace("{user}", &ldap_escape(name));
        let base = self
            .settings
            .group_base_dn
            .as_deref()
            .unwrap_or(&self.settings.base_dn);
        let (groups, _) = self.search(base, &filter, &["1.1"], MAX_GROUPS).await?;
        let mut letters = String::new();
        for group in &groups {
            let group = normalise_dn(&group.dn);
            for (dn, perms) in &self.groups {
                if *dn == group {
                    letters.push_str(&perms.to_string());
                }
            }
        }
        if letters.is_empty() {
            return Ok(self.settings.default_permissions);
        }
        Permissions::parse(&letters).map_err(|e| AuthError::Unavailable(format!("{e:?}")))
    }

    /// A subtree search on a pooled service connection (one fresh retry if a pooled one
    /// fails): the entries, and whether the size limit cut the answer short.
    async fn search(
        &self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        limit: i32,
    ) -> Result<(Vec<SearchEntry>, bool), AuthError> {
        let pooled = self.pool.take();
        let was_pooled = pooled.is_some();
        let mut ldap = match pooled {
            Some(ldap) => ldap,
            None => self.service_connection().await?,
        };
        match self.search_on(&mut ldap, base, filter, attrs, limit).await {
            Ok(found) => {
                self.pool.put(ldap);
                Ok(found)
            }
            Err(e) if was_pooled => {
                debug!(error = %e, "LDAP: a pooled connection failed; trying a new one");
                self.pool.clear();
                let mut ldap = self.service_connection().await?;
                let found = self
                    .search_on(&mut ldap, base, filter, attrs, limit)
                    .await?;
                self.pool.put(ldap);
                Ok(found)
            }
            Err(e) => Err(e),
        }
    }

    async fn search_on(
        &self,
        ldap: &mut Ldap,
        base: &str,
        filter: &str,
        attrs: &[&str],
        limit: i32,
    ) -> Result<(Vec<SearchEntry>, bool), AuthError> {
        let result = ldap
            .with_timeout(self.settings.timeout)
            .with_search_options(SearchOptions::new().sizelimit(limit))
            .search(base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(|e| self.unavailable(&e))?;
        let ldap3::SearchResult(raw, status) = result;
        // 0: success; 4: sizeLimitExceeded (more entries than asked for).
        if status.rc != 0 && status.rc != 4 {
            return Err(AuthError::Unavailable(format!(
                "{}: search under {base:?} answered {} ({})",
                self.settings.url, status.rc, status.text
            )));
        }
        let mut entries = Vec::new();
        for entry in raw {
            if entry.is_ref() || entry.is_intermediate() {
                continue;
            }
            // ldap3 panics on an entry it cannot parse; a broken answer is an unavailable
            // directory, not a crashed session.
            let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                SearchEntry::construct(entry)
            }))
            .map_err(|_| {
                AuthError::Unavailable(format!(
                    "{}: an entry in the answer could not be parsed",
                    self.settings.url
                ))
            })?;
            entries.push(parsed);
        }
        Ok((entries, status.rc == 4))
    }

    /// A new connection bound as the service account (or left anonymous).
    async fn service_connection(&self) -> Result<Ldap, AuthError> {
        let mut ldap = self.connector.open().await?;
        if let Some((dn, password)) = &self.settings.bind {
            let result = ldap
                .with_timeout(self.settings.timeout)
                .simple_bind(dn, password)
                .await
                .map_err(|e| self.unavailable(&e))?;
            if result.rc != 0 {
                let _ = ldap.unbind().await;
                return Err(AuthError::Unavailable(format!(
                    "{}: the service bind as {dn} was refused: {} ({})",
                    self.settings.url, result.rc, result.text
                )));
            }
        }
        Ok(ldap)
    }

    fn unavailable(&self, e: &ldap3::LdapError) -> AuthError {
        AuthError::Unavailable(format!("{}: {e}", self.settings.url))
    }
}

#[async_trait]
impl Authenticator for LdapAuthenticator {
    async fn authenticate(&self, request: &LoginRequest<'_>) -> Result<User, AuthError> {
        let key = self.cache.key(&[
            request.username(),
            request.password().expose(),
            request.host().unwrap_or(""),
        ]);
        if let Some(user) = self.cache.get(&key) {
            return Ok(user);
        }
        // Each step has its own timeout; this bounds the whole (two connections, a bind on
        // each, two searches).
        let limit = 2 * self.settings.connect_timeout + 5 * self.settings.timeout;
        let user = tokio::time::timeout(limit, self.login(request))
            .await
            .map_err(|_| {
                AuthError::Unavailable(format!("{}: no answer within {limit:?}", self.settings.url))
            })??;
        self.cache.put(key, &user, self.settings.cache_ttl);
        Ok(user)
    }
}

/// The first value of `attr` (by name, case-insensitively).
fn attribute<'e>(entry: &'e SearchEntry, attr: &str) -> Option<&'e str> {
    entry
        .attrs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(attr))
        .and_then(|(_, values)| values.first())
        .map(String::as_str)
}

/// A DN compared loosely: lower case, no spaces around `,` and `=`.
fn normalise_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

/// Whether the URL is TLS from the start (`ldaps://`); an error if it is not an LDAP URL.
fn check_url(url: &str) -> Result<bool, ConfigError> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("ldaps://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("ldap://") {
        (false, rest)
    } else {
        return Err(ConfigError::Url(url.to_string()));
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains(['/', '?', ' ']) {
        return Err(ConfigError::Url(url.to_string()));
    }
    Ok(tls)
}

/// Checks that a filter with its placeholders filled parses.
fn check_filter(filter: &str) -> Result<(), String> {
    let filled = filter
        .replace("{user}", "x")
        .replace("{dn}", "cn=x,dc=example");
    ldap3::parse_filter(&filled)
        .map(|_| ())
        .map_err(|()| format!("{filter:?} is not an LDAP filter (RFC 4515)"))
}

fn tls_config(ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(e.to_string()))?;
    let config = match ca_pem {
        Some(pem) => {
            use rustls_pki_types::pem::PemObject as _;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| ConfigError::Ca(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| ConfigError::Ca(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ConfigError::Ca("no certificate in the file".to_string()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| ConfigError::Tls(format!("TLS roots: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LdapSettings {
        let mut s = LdapSettings::new("ldap://127.0.0.1:389", "dc=example,dc=org");
        s.home_template = Some("/srv/ftp/{user}".to_string());
        s
    }

    fn error(s: LdapSettings) -> ConfigError {
        match LdapAuthenticator::new(s) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn good_settings_are_accepted() {
        assert!(LdapAuthenticator::new(settings()).is_ok());
        let mut s = settings();
        s.url = "ldaps://ldap.example.org".to_string();
        assert!(LdapAuthenticator::new(s).is_ok());
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let mut s = settings();
        s.url = "http://x".to_string();
        assert_eq!(error(s).setting(), "url");
        let mut s = settings();
        s.url = "ldaps://x".to_string();
        s.starttls = true;
        assert_eq!(error(s).setting(), "starttls");
        let mut s = settings();
        s.filter = "(cn=fixed)".to_string();
        assert_eq!(error(s).setting(), "filter");
        let mut s = settings();
        s.filter = "(uid={user}".to_string();
        assert_eq!(error(s).setting(), "filter");
        let mut s = settings();
        s.home_template = None;
        assert_eq!(error(s).setting(), "home_template");
        let mut s = settings();
        s.base_dn = " ".to_string();
        assert_eq!(error(s).setting(), "base_dn");
        let mut s = settings();
        s.ca_pem = Some(b"not a certificate".to_vec());
        assert_eq!(error(s).setting(), "ca_file");
    }

    #[test]
    fn dns_compare_loosely() {
        assert_eq!(
            normalise_dn("CN=ftp-ro, ou=Groups,dc=example, dc=org"),
            "cn=ftp-ro,ou=groups,dc=example,dc=org"
        );
    }
}
