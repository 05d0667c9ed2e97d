//! `[[auth]]`: the authenticators asked in turn at each login, in the order given. Without any
//! `[[auth]]`, the `[[users]]` (and `[anonymous]`) are the only ones; with some, the users sit
//! where `type = "file"` is listed, or first if it is not.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Deserialize;

/// One `[[auth]]` entry.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum AuthSection {
    /// The `[[users]]` and `[anonymous]` of this file.
    File(FileAuthSection),
    /// An HTTP service decides (see the README for the contract).
    Http(HttpAuthSection),
    /// The client certificate names the user.
    Certificate(CertificateAuthSection),
    /// An LDAP directory: a search, then a bind as the entry found (boxed: it has many keys).
    Ldap(Box<LdapAuthSection>),
    /// The machine's accounts, through PAM.
    /// (Boxed, like `ldap`: it has many keys.)
    Pam(Box<PamAuthSection>),
}

/// `[[auth]] type = "pam"` (parsed in every build; a build without the `pam` feature refuses
/// it when the chain is built).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PamAuthSection {
    /// The PAM service: `/etc/pam.d/<service>`.
    #[serde(default = "default_pam_service")]
    pub(crate) service: String,
    /// The users' home: their account's home directory without it; `{user}` is the name.
    #[serde(default)]
    pub(crate) home_template: Option<String>,
    /// The users' permissions.
    #[serde(default = "all_permissions")]
    pub(crate) permissions: String,
    /// Each user's quota in bytes ("5G", or bytes).
    #[serde(default)]
    pub(crate) quota: Option<super::server::Size>,
    /// Each user's quota in files.
    #[serde(default)]
    pub(crate) quota_files: Option<u64>,
    /// Accounts with a lower uid are not served (root and system accounts).
    #[serde(default = "default_min_uid")]
    pub(crate) min_uid: u32,
    /// Longest a login waits for PAM (seconds); then 421.
    #[serde(default = "default_pam_timeout")]
    pub(crate) timeout_secs: f64,
    /// Most PAM checks at once.
    #[serde(default = "default_pam_concurrency")]
    pub(crate) concurrency: usize,
    /// How long an accepted login is remembered (seconds; 0: not at all).
    #[serde(default = "default_pam_cache")]
    pub(crate) cache_secs: u64,
    #[serde(default)]
    pub(crate) fallthrough_when_unavailable: bool,
    /// Every user's limits: the keys of `[[users]]`.
    #[serde(flatten)]
    pub(crate) limits: super::users::LimitsSection,
}

fn default_pam_service() -> String {
    "ftpgate".to_string()
}

fn default_min_uid() -> u32 {
    1000
}

fn default_pam_timeout() -> f64 {
    10.0
}

fn default_pam_concurrency() -> usize {
    8
}

fn default_pam_cache() -> u64 {
    0
}

/// `[[auth]] type = "certificate"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertificateAuthSection {
    /// `"cn"`, `"san"`, or a table of SHA-256 fingerprints to user names.
    pub(crate) map: CertMapSetting,
    /// `"none"` (the certificate is enough) or `"required"` (the later entries check it).
    #[serde(default)]
    pub(crate) password: CertPassword,
    /// The home of a user logged in by certificate alone; `{user}` is the name.
    #[serde(default)]
    pub(crate) home_template: Option<String>,
    /// Their permissions.
    #[serde(default = "all_permissions")]
    pub(crate) permissions: String,
    #[serde(default)]
    pub(crate) fallthrough_when_unavailable: bool,
}

/// `map` of a certificate entry.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum CertMapSetting {
    /// `"cn"` or `"san"`.
    Field(String),
    /// `{ "AA:BB:..." = "alice" }`
    Fingerprints(BTreeMap<String, String>),
}

/// `password` of a certificate entry.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CertPassword {
    #[default]
    None,
    Required,
}

fn all_permissions() -> String {
    ftpgate_core::Permissions::ALL.to_string()
}

/// `[[auth]] type = "file"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAuthSection {
    #[serde(default)]
    pub(crate) fallthrough_when_unavailable: bool,
}

/// `[[auth]] type = "http"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpAuthSection {
    /// Where logins are posted (`http://` or `https://`).
    pub(crate) url: String,
    /// Longest the service may take to answer (seconds).
    #[serde(default = "default_http_timeout")]
    pub(crate) timeout_secs: f64,
    /// Headers sent with every request (`Authorization`, say).
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// When the service cannot be asked, go on to the next `[[auth]]` instead of 421.
    #[serde(default)]
    pub(crate) fallthrough_when_unavailable: bool,
}

fn default_http_timeout() -> f64 {
    ftpgate_auth_http::DEFAULT_TIMEOUT.as_secs_f64()
}

impl AuthSection {
    /// The entry's `fallthrough_when_unavailable`.
    pub(crate) fn fallthrough(&self) -> bool {
        match self {
            AuthSection::File(s) => s.fallthrough_when_unavailable,
            AuthSection::Http(s) => s.fallthrough_when_unavailable,
            AuthSection::Certificate(s) => s.fallthrough_when_unavailable,
            AuthSection::Ldap(s) => s.fallthrough_when_unavailable,
            AuthSection::Pam(s) => s.fallthrough_when_unavailable,
        }
    }
}

/// Checks the list as a whole: `file` at most once.
pub(crate) fn check_auth_list(list: &[AuthSection]) -> Result<()> {
    let files: Vec<usize> = list
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, AuthSection::File(_)))
        .map(|(i, _)| i)
        .collect();
    if let [_, second, ..] = files[..] {
        bail!("auth[{second}].type: \"file\" is listed twice (the [[users]] sit in one place)");
    }
    Ok(())
}

/// How a certificate entry maps certificates to users, checked.
pub(crate) fn cert_map(
    key: &str,
    section: &CertificateAuthSection,
) -> Result<crate::cert_auth::CertMap> {
    use crate::cert_auth::{CertMap, normalise_fingerprint};
    Ok(match &section.map {
        CertMapSetting::Field(f) if f == "cn" => CertMap::CommonName,
        CertMapSetting::Field(f) if f == "san" => CertMap::AltName,
        CertMapSetting::Field(f) => {
            bail!("{key}.map: {f:?} is not \"cn\", \"san\" or a table of fingerprints")
        }
        CertMapSetting::Fingerprints(table) => {
            if table.is_empty() {
                bail!("{key}.map: the fingerprint table is empty");
            }
            let mut map = std::collections::HashMap::new();
            for (print, user) in table {
                let Some(print) = normalise_fingerprint(print) else {
                    bail!(
                        "{key}.map: {print:?} is not a SHA-256 fingerprint (32 hex bytes, colons optional)"
                    );
                };
                if user.is_empty() {
                    bail!("{key}.map: the user of {print} is empty");
                }
                map.insert(print, user.clone());
            }
            CertMap::Fingerprints(map)
        }
    })
}

/// A PAM entry's settings, checked: the same checks whether or not the build has PAM.
#[cfg_attr(not(feature = "pam"), allow(dead_code))]
pub(crate) struct PamPlan {
    pub(crate) service: String,
    pub(crate) home_template: Option<String>,
    pub(crate) permissions: ftpgate_core::Permissions,
    pub(crate) quota_bytes: Option<u64>,
    pub(crate) quota_files: Option<u64>,
    pub(crate) limits: ftpgate_core::UserLimits,
    pub(crate) min_uid: u32,
    pub(crate) timeout: Duration,
    pub(crate) concurrency: usize,
    pub(crate) cache: Duration,
}

/// Checks a PAM entry (`key` names it in errors).
pub(crate) fn pam_plan(key: &str, section: &PamAuthSection) -> Result<PamPlan> {
    let service = &section.service;
    if service.is_empty()
        || service.len() > 255
        || matches!(service.as_str(), "." | "..")
        || service.contains(['/', '\0'])
        || service.chars().any(char::is_whitespace)
    {
        bail!("{key}.service: {service:?} is not a PAM service name (a file name in /etc/pam.d)");
    }
    if let Some(t) = &section.home_template {
        if t.trim().is_empty() {
            bail!(
                "{key}.home_template: empty (leave it out for the account's home, or e.g. \"/srv/ftp/{{user}}\")"
            );
        }
    }
    let permissions = ftpgate_core::Permissions::parse(&section.permissions)
        .map_err(|e| anyhow::anyhow!("{key}.permissions: {e}"))?;
    let timeout = timeout_of(key, "timeout_secs", section.timeout_secs)?;
    if !(1..=1024).contains(&section.concurrency) {
        bail!(
            "{key}.concurrency: must be 1 to 1024, not {}",
            section.concurrency
        );
    }
    let quota_bytes = match &section.quota {
        Some(size) => Some(
            size.bytes()
                .map_err(|e| anyhow::anyhow!("{key}.quota: {e}"))?,
        ),
        None => None,
    };
    Ok(PamPlan {
        service: service.clone(),
        home_template: section.home_template.clone(),
        permissions,
        quota_bytes,
        quota_files: super::users::quota_files(&format!("{key}.quota_files"), section.quota_files)?,
        limits: super::users::limits_of(key, &section.limits)?,
        min_uid: section.min_uid,
        timeout,
        concurrency: section.concurrency,
        cache: Duration::from_secs(section.cache_secs),
    })
}

/// The PAM authenticator a checked entry describes.
#[cfg(feature = "pam")]
pub(crate) fn pam_authenticator(
    key: &str,
    plan: PamPlan,
) -> Result<ftpgate_auth_pam::PamAuthenticator> {
    use ftpgate_auth_pam::{Home, PamAuthenticator};
    let e = |e: ftpgate_auth_pam::ConfigError| anyhow::anyhow!("{key}: {e}");
    Ok(PamAuthenticator::new(&plan.service)
        .map_err(e)?
        .with_home(match plan.home_template {
            Some(t) => Home::Template(t),
            None => Home::Account,
        })
        .map_err(e)?
        .with_permissions(plan.permissions)
        .with_quota(plan.quota_bytes, plan.quota_files)
        .with_limits(plan.limits)
        .with_min_uid(plan.min_uid)
        .with_timeout(plan.timeout)
        .map_err(e)?
        .with_concurrency(plan.concurrency)
        .map_err(e)?
        .with_cache_ttl(plan.cache))
}

/// The HTTP authenticator an entry describes (`key` names it in errors).
pub(crate) fn http_authenticator(
    key: &str,
    section: &HttpAuthSection,
) -> Result<ftpgate_auth_http::HttpAuthenticator> {
    let timeout = timeout_of(key, "timeout_secs", section.timeout_secs)?;
    let headers: Vec<(String, String)> = section
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ftpgate_auth_http::HttpAuthenticator::new(&section.url, timeout, &headers).map_err(
        |e| match e {
            ftpgate_auth_http::ConfigError::Url(_) => anyhow::anyhow!("{key}.url: {e}"),
            ftpgate_auth_http::ConfigError::Header(_) => anyhow::anyhow!("{key}.headers: {e}"),
            _ => anyhow::anyhow!("{key}: {e}"),
        },
    )
}

/// `[[auth]] type = "ldap"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LdapAuthSection {
    /// `ldap://host[:port]` or `ldaps://host[:port]`.
    pub(crate) url: String,
    /// Upgrade `ldap://` with StartTLS.
    #[serde(default)]
    pub(crate) starttls: bool,
    /// CA certificates (PEM) for a server certificate from a private CA.
    #[serde(default)]
    pub(crate) ca_file: Option<PathBuf>,
    /// The service account that searches (anonymous searches without it).
    #[serde(default)]
    pub(crate) bind_dn: Option<String>,
    #[serde(default)]
    pub(crate) bind_password: Option<String>,
    /// Where users are searched (subtree).
    pub(crate) base_dn: String,
    /// `{user}` is the login name, escaped (RFC 4515).
    #[serde(default = "default_ldap_filter")]
    pub(crate) filter: String,
    /// The attribute naming the user once found (`uid`; AD: `sAMAccountName`).
    #[serde(default = "default_ldap_name_attribute")]
    pub(crate) name_attribute: String,
    /// The attribute holding the home (`homeDirectory`).
    #[serde(default)]
    pub(crate) home_attribute: Option<String>,
    /// The home when there is no attribute (or the entry lacks it): `/srv/ftp/{user}`.
    #[serde(default)]
    pub(crate) home_template: Option<String>,
    /// Permission letters by group DN.
    #[serde(default)]
    pub(crate) group_permissions: BTreeMap<String, String>,
    /// Where groups are searched (default: `base_dn`).
    #[serde(default)]
    pub(crate) group_base_dn: Option<String>,
    /// `{dn}` is the user's DN, `{user}` the login name.
    #[serde(default = "default_ldap_group_filter")]
    pub(crate) group_filter: String,
    /// Permissions when no group of `group_permissions` matches.
    #[serde(default = "all_permissions")]
    pub(crate) permissions: String,
    /// An attribute holding the quota in bytes.
    #[serde(default)]
    pub(crate) quota_attribute: Option<String>,
    /// Attributes holding a user's own limits, over the entry's defaults below.
    #[serde(default)]
    pub(crate) upload_rate_attribute: Option<String>,
    #[serde(default)]
    pub(crate) download_rate_attribute: Option<String>,
    #[serde(default)]
    pub(crate) max_sessions_attribute: Option<String>,
    #[serde(default)]
    pub(crate) allowed_networks_attribute: Option<String>,
    #[serde(default = "default_ldap_connect_timeout")]
    pub(crate) connect_timeout_secs: f64,
    #[serde(default = "default_ldap_timeout")]
    pub(crate) timeout_secs: f64,
    /// How long an accepted login is remembered (0: never).
    #[serde(default = "default_ldap_cache_secs")]
    pub(crate) cache_secs: u64,
    /// Service-bound connections kept open.
    #[serde(default = "default_ldap_pool_size")]
    pub(crate) pool_size: usize,
    #[serde(default)]
    pub(crate) fallthrough_when_unavailable: bool,
    /// Every user's limits: the keys of `[[users]]`.
    #[serde(flatten)]
    pub(crate) limits: super::users::LimitsSection,
}

fn default_ldap_filter() -> String {
    ftpgate_auth_ldap::DEFAULT_FILTER.to_string()
}

fn default_ldap_name_attribute() -> String {
    ftpgate_auth_ldap::DEFAULT_NAME_ATTRIBUTE.to_string()
}

fn default_ldap_group_filter() -> String {
    ftpgate_auth_ldap::DEFAULT_GROUP_FILTER.to_string()
}

fn default_ldap_connect_timeout() -> f64 {
    ftpgate_auth_ldap::DEFAULT_CONNECT_TIMEOUT.as_secs_f64()
}

fn default_ldap_timeout() -> f64 {
    ftpgate_auth_ldap::DEFAULT_TIMEOUT.as_secs_f64()
}

fn default_ldap_cache_secs() -> u64 {
    ftpgate_auth_ldap::DEFAULT_CACHE_TTL.as_secs()
}

fn default_ldap_pool_size() -> usize {
    ftpgate_auth_ldap::DEFAULT_POOL_SIZE
}

/// A timeout setting, checked: more than 0 and at most an hour.
fn timeout_of(key: &str, name: &str, secs: f64) -> Result<Duration> {
    if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
        bail!("{key}.{name}: must be more than 0 and at most 3600, not {secs}");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The LDAP authenticator an entry describes (`key` names it in errors). Reads `ca_file`;
/// sends nothing to the server.
pub(crate) fn ldap_authenticator(
    key: &str,
    section: &LdapAuthSection,
) -> Result<std::sync::Arc<ftpgate_auth_ldap::LdapAuthenticator>> {
    use ftpgate_core::Permissions;
    let mut settings = ftpgate_auth_ldap::LdapSettings::new(&section.url, &section.base_dn);
    settings.starttls = section.starttls;
    settings.bind = match (&section.bind_dn, &section.bind_password) {
        (Some(dn), Some(password)) if !dn.trim().is_empty() => Some((dn.clone(), password.clone())),
        (None, None) => None,
        (Some(_), Some(_)) => {
            bail!("{key}.bind_dn: empty (leave bind_dn out for anonymous searches)")
        }
        (Some(_), None) => bail!("{key}.bind_password: needed with bind_dn"),
        (None, Some(_)) => bail!("{key}.bind_dn: needed with bind_password"),
    };
    if let Some(path) = &section.ca_file {
        if !section.starttls && !section.url.starts_with("ldaps://") {
            bail!(
                "{key}.ca_file: is for ldaps:// URLs or starttls = true (this connection has no TLS)"
            );
        }
        settings.ca_pem =
            Some(std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("{key}.ca_file: cannot read {}: {e}", path.display())
            })?);
    }
    settings.filter = section.filter.clone();
    settings.name_attribute = section.name_attribute.clone();
    settings.home_attribute = section.home_attribute.clone();
    settings.home_template = section.home_template.clone();
    for (dn, letters) in &section.group_permissions {
        let perms = Permissions::parse(letters)
            .map_err(|e| anyhow::anyhow!("{key}.group_permissions.{dn:?}: {e}"))?;
        settings.group_permissions.push((dn.clone(), perms));
    }
    settings.group_base_dn = section.group_base_dn.clone();
    settings.group_filter = section.group_filter.clone();
    settings.default_permissions = Permissions::parse(&section.permissions)
        .map_err(|e| anyhow::anyhow!("{key}.permissions: {e}"))?;
    settings.quota_attribute = section.quota_attribute.clone();
    settings.limits = super::users::limits_of(key, &section.limits)?;
    let mut attributes = ftpgate_auth_ldap::LimitAttributes::default();
    for (name, given, slot) in [
        (
            "upload_rate_attribute",
            &section.upload_rate_attribute,
            &mut attributes.upload_rate,
        ),
        (
            "download_rate_attribute",
            &section.download_rate_attribute,
            &mut attributes.download_rate,
        ),
        (
            "max_sessions_attribute",
            &section.max_sessions_attribute,
            &mut attributes.max_sessions,
        ),
        (
            "allowed_networks_attribute",
            &section.allowed_networks_attribute,
            &mut attributes.allowed_networks,
        ),
    ] {
        if let Some(attr) = given {
            if attr.trim().is_empty() || attr.contains(|c: char| c.is_whitespace() || c == ',') {
                bail!("{key}.{name}: {attr:?} is not an attribute name");
            }
        }
        *slot = given.clone();
    }
    settings.limit_attributes = attributes;
    settings.connect_timeout =
        timeout_of(key, "connect_timeout_secs", section.connect_timeout_secs)?;
    settings.timeout = timeout_of(key, "timeout_secs", section.timeout_secs)?;
    if section.cache_secs > 86_400 {
        bail!(
            "{key}.cache_secs: at most 86400 (a day), not {}",
            section.cache_secs
        );
    }
    settings.cache_ttl = Duration::from_secs(section.cache_secs);
    if !(1..=64).contains(&section.pool_size) {
        bail!("{key}.pool_size: from 1 to 64, not {}", section.pool_size);
    }
    settings.pool_size = section.pool_size;
    ftpgate_auth_ldap::LdapAuthenticator::new(settings)
        .map_err(|e| anyhow::anyhow!("{key}.{}: {e}", e.setting()))
}
