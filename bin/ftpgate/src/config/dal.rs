//! `[storage.webdav]` and `[storage.opendal]`: storage over Apache OpenDAL services
//! (`ftpgate-storage-dal`), and their translation into its settings.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ftpgate_storage_dal::{DalConfig, DalService, WebdavAuth, compiled_services};
use serde::Deserialize;

use super::server::Size;

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `[storage.webdav]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebdavSection {
    /// The server's URL, `https://dav.example.com/remote.php/dav/files/amy`.
    pub(crate) endpoint: String,
    /// A folder on the server holding every home (default: the endpoint itself).
    #[serde(default)]
    pub(crate) root: String,
    /// Basic authentication: the user name (with `password`).
    #[serde(default)]
    pub(crate) username: Option<String>,
    /// Defaults to the FTPGATE_WEBDAV_PASSWORD environment variable.
    #[serde(default)]
    pub(crate) password: Option<String>,
    /// Bearer authentication instead (or FTPGATE_WEBDAV_TOKEN).
    #[serde(default)]
    pub(crate) token: Option<String>,
    #[serde(default)]
    pub(crate) request_timeout_secs: Option<u64>,
    #[serde(default)]
    pub(crate) retries: Option<u32>,
    /// Bytes per ranged GET of a download.
    #[serde(default)]
    pub(crate) read_chunk: Option<Size>,
}

/// `[storage.opendal]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpendalSection {
    /// OpenDAL's name of the service (`fs`, `sftp`, ...), compiled in.
    pub(crate) scheme: String,
    /// The service's options, as OpenDAL names them (`root`, `endpoint`, `user`, ...).
    #[serde(default)]
    pub(crate) options: HashMap<String, String>,
    #[serde(default)]
    pub(crate) request_timeout_secs: Option<u64>,
    #[serde(default)]
    pub(crate) retries: Option<u32>,
    #[serde(default)]
    pub(crate) read_chunk: Option<Size>,
}

/// Applies the tuning keys both sections share.
fn tune(
    config: &mut DalConfig,
    key: &str,
    timeout: Option<u64>,
    retries: Option<u32>,
    read_chunk: Option<&Size>,
) -> Result<()> {
    if let Some(secs) = timeout {
        config.request_timeout = Duration::from_secs(secs.max(1));
    }
    if let Some(retries) = retries {
        config.retries = retries;
    }
    if let Some(size) = read_chunk {
        let bytes = size.bytes().with_context(|| format!("{key}.read_chunk"))?;
        if !(64 * 1024..=256 * 1024 * 1024).contains(&bytes) {
            bail!("{key}.read_chunk must be between 64K and 256M");
        }
        config.read_chunk = usize::try_from(bytes).unwrap_or(usize::MAX);
    }
    Ok(())
}

impl WebdavSection {
    /// The backend's settings (the section is named `key` in messages).
    pub(crate) fn to_config(&self, key: &str) -> Result<DalConfig> {
        let url = url::Url::parse(&self.endpoint)
            .with_context(|| format!("{key}.endpoint: bad URL {:?}", self.endpoint))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!(
                "{key}.endpoint: {:?} is not an http:// or https:// URL",
                self.endpoint
            );
        }
        let password = self
            .password
            .clone()
            .or_else(|| env_var("FTPGATE_WEBDAV_PASSWORD"));
        let token = self
            .token
            .clone()
            .or_else(|| env_var("FTPGATE_WEBDAV_TOKEN"));
        let auth = match (&self.username, password, token) {
            (Some(_), _, Some(_)) => {
                bail!("{key}: set username/password (basic) or token (bearer), not both")
            }
            (Some(username), Some(password), None) => WebdavAuth::Basic {
                username: username.clone(),
                password,
            },
            (Some(_), None, None) => {
                bail!("{key}: username needs a password (or FTPGATE_WEBDAV_PASSWORD)")
            }
            (None, Some(_), _) if self.password.is_some() => {
                bail!("{key}: password needs a username")
            }
            (None, _, Some(token)) => WebdavAuth::Bearer(token),
            (None, _, None) => WebdavAuth::None,
        };
        let mut config = DalConfig::new(DalService::Webdav {
            endpoint: self.endpoint.clone(),
            root: if self.root.is_empty() {
                "/".to_string()
            } else {
                self.root.clone()
            },
            auth,
        });
        tune(
            &mut config,
            key,
            self.request_timeout_secs,
            self.retries,
            self.read_chunk.as_ref(),
        )?;
        Ok(config)
    }
}

impl OpendalSection {
    /// The backend's settings (the section is named `key` in messages).
    pub(crate) fn to_config(&self, key: &str) -> Result<DalConfig> {
        let compiled = compiled_services();
        if !compiled.contains(&self.scheme.as_str()) {
            bail!(
                "{key}.scheme: {:?} is not compiled into this ftpgate (it has: {}; build \
                 ftpgate-storage-dal with the feature opendal/services-{})",
                self.scheme,
                compiled.join(", "),
                self.scheme
            );
        }
        if self.scheme == "webdav" {
            bail!("{key}.scheme: use type = \"webdav\" and [storage.webdav] (streamed uploads)");
        }
        let mut config = DalConfig::new(DalService::Other {
            scheme: self.scheme.clone(),
            options: self.options.clone(),
        });
        tune(
            &mut config,
            key,
            self.request_timeout_secs,
            self.retries,
            self.read_chunk.as_ref(),
        )?;
        Ok(config)
    }
}
