//! Logins checked by an HTTP service.
//!
//! Each login the cache cannot answer is one `POST` of JSON to the configured URL:
//!
//! ```json
//! {"username": "ann", "password": "secret", "client_ip": "192.0.2.7", "protocol": "ftps",
//!  "tls_client_cert": "-----BEGIN CERTIFICATE-----\n...", "host": "ftp.example.org",
//!  "session_id": 42}
//! ```
//!
//! (`protocol` is `"ftps"` when the control connection is TLS; `tls_client_cert` is the
//! client's certificate in PEM, or `null`; `host` is the name given with HOST, or `null`.)
//!
//! The answer decides:
//! - `200` with `{"home": "/srv/ftp/ann", "permissions": "elr", "quota_bytes": 1000000,
//!   "quota_files": 500, "cache_secs": 60}` accepts (`home` is required; `permissions`
//!   defaults to all, as for `[[users]]`; `quota_bytes`, `quota_files` (most files) and
//!   `cache_secs` are optional), and so do the limits, all optional, as `[[users]]` has them:
//!   `upload_rate` and `download_rate` (bytes per second, numbers above 0, per session and
//!   across the user's sessions), `network_rates` (`[{"network": "10.0.0.0/8",
//!   "upload_rate": ..., "download_rate": ...}]`, in place of those two for clients in the
//!   network), `max_sessions` (above 0), `allowed_networks` and `denied_networks` (lists of
//!   CIDRs or addresses), `expires_at` (RFC 3339, `"2027-01-31T00:00:00Z"`: no login from
//!   then on) and `disabled` (`true`: no login). A limit the answer gets wrong — a rate of 0
//!   or in text, a network that is not one, a time that is not RFC 3339 — makes the whole
//!   answer unavailable (below), never a user without that limit;
//! - `401` or `403` rejects: a wrong password ([`AuthError::InvalidCredentials`]);
//! - `404`: the service does not know the user ([`AuthError::UnknownUser`]; in a chain the next
//!   authenticator is asked);
//! - anything else — another status, a body that is not that JSON, a timeout, a refused
//!   connection — is [`AuthError::Unavailable`]: the client gets 421 and no failed login is
//!   counted against its address.
//!
//! An accepted login with `cache_secs` is remembered for that long under a keyed SHA-256 of the
//! name, the password and the virtual host (never the password itself), so repeated logins (a
//! client opening several connections) do not each ask the service; a rejection is never
//! cached.

#![deny(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use ftpgate_core::{
    AuthError, Authenticator, LoginCache, LoginRequest, NetworkRate, Permissions, User, UserLimits,
    parse_network,
};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

/// How long the service may take to answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest answer read from the service.
const MAX_BODY: usize = 64 * 1024;

/// A setting the authenticator cannot work with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL is not an `http://` or `https://` URL.
    #[error("not an http:// or https:// URL: {0}")]
    Url(String),
    /// A header name or value is not valid in HTTP.
    #[error("header {0:?}: not a valid HTTP header")]
    Header(String),
    /// The HTTP client could not be made (TLS roots could not be loaded).
    #[error("HTTP client: {0}")]
    Client(String),
}

/// Asks an HTTP service whether a login is good; see the [crate documentation](crate).
#[derive(Debug, Clone)]
pub struct HttpAuthenticator {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    cache: Arc<LoginCache<User>>,
}

impl HttpAuthenticator {
    /// An authenticator posting to `url` (`http://` or `https://`, checked against the
    /// platform's roots), waiting at most `timeout` for the whole answer, sending `headers`
    /// with each request (an `Authorization` the service expects, say).
    pub fn new(
        url: &str,
        timeout: Duration,
        headers: &[(String, String)],
    ) -> Result<HttpAuthenticator, ConfigError> {
        let url = reqwest::Url::parse(url).map_err(|e| ConfigError::Url(format!("{url}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConfigError::Url(url.to_string()));
        }
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let bad = || ConfigError::Header(name.clone());
            let mut value = HeaderValue::from_str(value).map_err(|_| bad())?;
            value.set_sensitive(true);
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?,
                value,
            );
        }
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config()?)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        Ok(HttpAuthenticator {
            client,
            url,
            headers: map,
            cache: Arc::new(LoginCache::new()),
        })
    }

    async fn ask(&self, request: &LoginRequest<'_>) -> Result<(User, Duration), AuthError> {
        let body = LoginBody {
            username: request.username(),
            password: request.password().expose(),
            client_ip: request.client().ip().to_string(),
            protocol: if request.is_tls() { "ftps" } else { "ftp" },
            tls_client_cert: request.client_certificates().first().map(|c| pem(c)),
            host: request.host(),
            session_id: request.session_id(),
        };
        let body = serde_json::to_vec(&body).map_err(|e| unavailable(&e))?;
        let mut response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(AuthError::InvalidCredentials);
            }
            StatusCode::NOT_FOUND => return Err(AuthError::UnknownUser),
            other => {
                return Err(AuthError::Unavailable(format!(
                    "{}: answered {other}",
                    self.url
                )));
            }
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| unavailable(&e))? {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(AuthError::Unavailable(format!(
                    "{}: answer longer than {MAX_BODY} bytes",
                    self.url
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let accepted: Accepted = serde_json::from_slice(&bytes).map_err(|e| {
            AuthError::Unavailable(format!("{}: not a user in the answer: {e}", self.url))
        })?;
        let permissions = match &accepted.permissions {
            Some(letters) => Permissions::parse(letters).map_err(|e| {
                AuthError::Unavailable(format!("{}: answer's permissions: {e}", self.url))
            })?,
            None => Permissions::ALL,
        };
        if accepted.home.is_empty() {
            return Err(AuthError::Unavailable(format!(
                "{}: the answer's home is empty",
                self.url
            )));
        }
        let limits = accepted.limits().map_err(|e| {
            AuthError::Unavailable(format!("{}: the answer's limits: {e}", self.url))
        })?;
        let mut user = User::new(request.username(), accepted.home, permissions);
        user.quota_bytes = accepted.quota_bytes;
        user.quota_files = accepted.quota_files;
        user.limits = limits;
        Ok((user, Duration::from_secs(accepted.cache_secs.unwrap_or(0))))
    }
}

#[async_trait]
impl Authenticator for HttpAuthenticator {
    async fn authenticate(&self, request: &LoginRequest<'_>) -> Result<User, AuthError> {
        let key = self.cache.key(&[
            request.username(),
            request.password().expose(),
            request.host().unwrap_or(""),
        ]);
        if let Some(user) = self.cache.get(&key) {
            return Ok(user);
        }
        let (user, ttl) = self.ask(request).await?;
        self.cache.put(key, &user, ttl);
        Ok(user)
    }
}

#[derive(Serialize)]
struct LoginBody<'a> {
    username: &'a str,
    password: &'a str,
    client_ip: String,
    protocol: &'static str,
    tls_client_cert: Option<String>,
    host: Option<&'a str>,
    session_id: u64,
}

#[derive(Deserialize)]
struct Accepted {
    home: String,
    #[serde(default)]
    permissions: Option<String>,
    #[serde(default)]
    quota_bytes: Option<u64>,
    #[serde(default)]
    quota_files: Option<u64>,
    #[serde(default)]
    cache_secs: Option<u64>,
    #[serde(default)]
    upload_rate: Option<u64>,
    #[serde(default)]
    download_rate: Option<u64>,
    #[serde(default)]
    network_rates: Vec<AcceptedNetworkRate>,
    #[serde(default)]
    max_sessions: Option<u32>,
    #[serde(default)]
    allowed_networks: Vec<String>,
    #[serde(default)]
    denied_networks: Vec<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    disabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptedNetworkRate {
    network: String,
    #[serde(default)]
    upload_rate: Option<u64>,
    #[serde(default)]
    download_rate: Option<u64>,
}

impl Accepted {
    /// The user's limits, checked: a value that is not what its key should hold is an error,
    /// never a limit left out.
    fn limits(&self) -> Result<UserLimits, String> {
        let networks = |key: &str, list: &[String]| {
            list.iter()
                .map(|n| parse_network(n).map_err(|e| format!("{key}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        let limits = UserLimits {
            upload_rate: self.upload_rate,
            download_rate: self.download_rate,
            network_rates: self
                .network_rates
                .iter()
                .map(|r| {
                    Ok(NetworkRate {
                        network: parse_network(&r.network)
                            .map_err(|e| format!("network_rates: {e}"))?,
                        upload_rate: r.upload_rate,
                        download_rate: r.download_rate,
                    })
                })
                .collect::<Result<_, String>>()?,
            max_sessions: self.max_sessions,
            allowed_networks: networks("allowed_networks", &self.allowed_networks)?,
            denied_networks: networks("denied_networks", &self.denied_networks)?,
            expires_at: match &self.expires_at {
                Some(text) => Some(SystemTime::from(text.parse::<jiff::Timestamp>().map_err(
                    |e| format!("expires_at: {text:?} is not an RFC 3339 time: {e}"),
                )?)),
                None => None,
            },
            disabled: self.disabled,
        };
        limits.check()?;
        Ok(limits)
    }
}

fn unavailable(e: &dyn std::fmt::Display) -> AuthError {
    AuthError::Unavailable(e.to_string())
}

/// A DER certificate as PEM.
fn pem(der: &[u8]) -> String {
    let base64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in base64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn tls_config() -> Result<rustls::ClientConfig, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| ConfigError::Client(format!("TLS roots: {e}")))?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Client(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_wraps_base64_at_64_columns() {
        let pem = pem(&[0u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
    }

    fn accepted(json: &str) -> Accepted {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_answers_limits_become_the_users() {
        let limits = accepted(
            r#"{"home": "/h", "upload_rate": 1000, "download_rate": 2000, "max_sessions": 2,
                "allowed_networks": ["10.0.0.0/8", "192.0.2.7"], "denied_networks": ["10.9.0.0/16"],
                "network_rates": [{"network": "10.1.0.0/16", "download_rate": 50}],
                "expires_at": "2027-01-31T00:00:00Z", "disabled": false}"#,
        )
        .limits()
        .unwrap();
        assert_eq!(
            (limits.upload_rate, limits.download_rate),
            (Some(1000), Some(2000))
        );
        assert_eq!(limits.max_sessions, Some(2));
        assert_eq!(limits.allowed_networks.len(), 2);
        assert_eq!(limits.network_rates[0].download_rate, Some(50));
        let at = limits.expires_at.unwrap();
        assert_eq!(
            at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_801_353_600
        );
        assert_eq!(
            accepted(r#"{"home": "/h"}"#).limits().unwrap(),
            UserLimits::default()
        );
    }

    #[test]
    fn a_limit_that_is_wrong_is_an_error_never_no_limit() {
        for bad in [
            r#"{"home": "/h", "upload_rate": 0}"#,
            r#"{"home": "/h", "max_sessions": 0}"#,
            r#"{"home": "/h", "allowed_networks": ["10.0.0.0/33"]}"#,
            r#"{"home": "/h", "denied_networks": ["everyone"]}"#,
            r#"{"home": "/h", "network_rates": [{"network": "x", "upload_rate": 5}]}"#,
            r#"{"home": "/h", "network_rates": [{"network": "10.0.0.0/8", "upload_rate": 0}]}"#,
            r#"{"home": "/h", "expires_at": "2027-01-31"}"#,
        ] {
            assert!(accepted(bad).limits().is_err(), "{bad}");
        }
        for bad in [
            r#"{"home": "/h", "upload_rate": "1M"}"#,
            r#"{"home": "/h", "download_rate": -1}"#,
            r#"{"home": "/h", "max_sessions": 1.5}"#,
            r#"{"home": "/h", "disabled": "yes"}"#,
            r#"{"home": "/h", "network_rates": [{"network": "10.0.0.0/8", "rate": 5}]}"#,
        ] {
            assert!(serde_json::from_str::<Accepted>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_urls_and_headers_are_refused() {
        assert!(matches!(
            HttpAuthenticator::new("ftp://x/", DEFAULT_TIMEOUT, &[]),
            Err(ConfigError::Url(_))
        ));
        assert!(matches!(
            HttpAuthenticator::new("not a url", DEFAULT_TIMEOUT, &[]),
            Err(ConfigError::Url(_))
        ));
        let header = [("Bad Name".to_string(), "x".to_string())];
        assert!(matches!(
            HttpAuthenticator::new("http://127.0.0.1/", DEFAULT_TIMEOUT, &header),
            Err(ConfigError::Header(_))
        ));
    }
}
