//! `[admin]`: the operators' HTTP listener (health, readiness, metrics, live sessions). Off
//! unless `listen` names an address.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::parse_listen;

/// `[admin]`
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AdminSection {
    /// Addresses to serve the admin endpoints on (none: the listener is off).
    pub(crate) listen: Vec<String>,
    /// The bearer token every endpoint but `/healthz` requires.
    pub(crate) token: Option<String>,
    /// A file holding the token (its first line), instead of `token`.
    pub(crate) token_file: Option<PathBuf>,
}

/// `[admin]`, checked: where to listen and the token, if any.
#[derive(Debug, Clone)]
pub(crate) struct AdminSettings {
    pub(crate) listen: Vec<SocketAddr>,
    pub(crate) token: Option<String>,
}

impl AdminSection {
    /// The checked settings (`None` when the listener is off), and a warning when it is bound
    /// beyond loopback without a token. Reads `token_file`.
    pub(crate) fn build(&self) -> Result<(Option<AdminSettings>, Option<String>)> {
        let mut listen = Vec::new();
        for (i, text) in self.listen.iter().enumerate() {
            listen.extend(parse_listen(text).with_context(|| format!("admin.listen[{i}]"))?);
        }
        let token = match (&self.token, &self.token_file) {
            (Some(_), Some(_)) => bail!("admin: set token or token_file, not both"),
            (Some(token), None) => Some(token.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("admin.token_file: cannot read {}", path.display()))?;
                Some(text.lines().next().unwrap_or("").trim().to_string())
            }
            (None, None) => None,
        };
        if let Some(token) = &token {
            let key = if self.token.is_some() {
                "admin.token"
            } else {
                "admin.token_file"
            };
            if token.trim().is_empty() {
                bail!("{key}: the token is empty");
            }
            if token.len() < 16 {
                bail!("{key}: the token is too short (16 characters at least)");
            }
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                bail!("{key}: the token must be printable ASCII without spaces");
            }
        }
        if listen.is_empty() {
            if token.is_some() {
                bail!("admin: a token is set but admin.listen is empty (the listener is off)");
            }
            return Ok((None, None));
        }
        let exposed: Vec<String> = listen
            .iter()
            .filter(|a| !a.ip().is_loopback())
            .map(|a| a.to_string())
            .collect();
        let warning = (token.is_none() && !exposed.is_empty()).then(|| {
            format!(
                "admin listener on {} has no token: anyone who reaches it can read the \
                 sessions and end them (set admin.token or admin.token_file)",
                exposed.join(", ")
            )
        });
        Ok((Some(AdminSettings { listen, token }), warning))
    }
}
