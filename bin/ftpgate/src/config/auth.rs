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
