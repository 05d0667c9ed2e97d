//! `[tls]`: FTPS. The certificates and the rustls configuration are made from it in
//! [`crate::tls`].

use std::path::PathBuf;

use serde::Deserialize;

/// `[tls]`: FTPS.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TlsSection {
    /// PEM certificate chain (reloaded on SIGHUP).
    pub(crate) cert: Option<PathBuf>,
    /// PEM private key.
    pub(crate) key: Option<PathBuf>,
    /// Generate a self-signed certificate at start instead.
    pub(crate) self_signed: bool,
    /// Shorthand for both `required_for_login` and `required_for_data`.
    pub(crate) required: bool,
    pub(crate) required_for_login: bool,
    pub(crate) required_for_data: bool,
    /// Which TLS session a data connection must resume: "user" (a session of the same user
    /// from the same address), "connection" (its own control connection's) or "off".
    pub(crate) session_reuse: String,
    pub(crate) allow_ccc: bool,
    /// "1.2" or "1.3".
    pub(crate) min_version: String,
    /// Implicit FTPS listeners, e.g. ["0.0.0.0:990"].
    pub(crate) implicit_listen: Vec<String>,
    pub(crate) handshake_timeout_secs: u64,
    /// CA certificates (PEM) to verify client certificates against.
    pub(crate) client_ca: Option<PathBuf>,
    /// Refuse clients without a valid certificate (needs `client_ca`).
    pub(crate) require_client_cert: bool,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            cert: None,
            key: None,
            self_signed: false,
            required: false,
            required_for_login: false,
            required_for_data: false,
            session_reuse: "user".to_string(),
            allow_ccc: false,
            min_version: "1.2".to_string(),
            implicit_listen: Vec::new(),
            handshake_timeout_secs: 10,
            client_ca: None,
            require_client_cert: false,
        }
    }
}

impl TlsSection {
    /// Whether FTPS is configured at all.
    pub(crate) fn enabled(&self) -> bool {
        self.cert.is_some() || self.key.is_some() || self.self_signed
    }
}
