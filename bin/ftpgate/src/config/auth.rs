//! `[[auth]]`: the authenticators asked in turn at each login, in the order given. Without any
//! `[[auth]]`, the `[[users]]` (and `[anonymous]`) are the only ones; with some, the users sit
//! where `type = "file"` is listed, or first if it is not.

use std::collections::BTreeMap;
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
    /// The machine's accounts, through PAM.
    Pam(PamAuthSection),
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
    let timeout = section.timeout_secs;
    if !(timeout.is_finite() && timeout > 0.0 && timeout <= 3600.0) {
        bail!("{key}.timeout_secs: must be more than 0 and at most 3600, not {timeout}");
    }
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
        min_uid: section.min_uid,
        timeout: Duration::from_secs_f64(timeout),
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
    let timeout = section.timeout_secs;
    if !(timeout.is_finite() && timeout > 0.0 && timeout <= 3600.0) {
        bail!("{key}.timeout_secs: must be more than 0 and at most 3600, not {timeout}");
    }
    let headers: Vec<(String, String)> = section
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ftpgate_auth_http::HttpAuthenticator::new(
        &section.url,
        Duration::from_secs_f64(timeout),
        &headers,
    )
    .map_err(|e| match e {
        ftpgate_auth_http::ConfigError::Url(_) => anyhow::anyhow!("{key}.url: {e}"),
        ftpgate_auth_http::ConfigError::Header(_) => anyhow::anyhow!("{key}.headers: {e}"),
        _ => anyhow::anyhow!("{key}: {e}"),
    })
}
