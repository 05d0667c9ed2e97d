//! `[storage]` (and a user's or host's own) with its object-store subsections `s3`, `azure`,
//! `gcs` and `cos`, and their translation into the object-storage backend's settings.
//!
//! The tuning keys every store shares (`part_size`, `parts_in_flight`, `request_timeout_secs`,
//! `retries`, `max_rename_objects`, and `path_style` for S3) are optional: a key left out keeps
//! the backend's own default (`S3Config::new`, `NativeConfig::new`), so those defaults are
//! written in one place. The daemon's own defaults (`region`, `abandoned_upload_age_secs`) are
//! [`default_region`] and [`default_abandoned_age`].

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ftpgate_storage_object::{NativeConfig, NativeService, S3Config};
use serde::Deserialize;

use super::server::Size;

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Sets on `$config` (an `S3Config` or a `NativeConfig`, which name these fields alike) the
/// tuning keys `$section` (named `$key` in messages) gives; the others keep the backend's
/// defaults. Parts must be at least `$min_part` bytes (`$min_text`).
macro_rules! apply_tuning {
    ($config:ident, $section:expr, $key:expr, $min_part:expr, $min_text:literal) => {
        if let Some(size) = &$section.part_size {
            let bytes = size
                .bytes()
                .with_context(|| format!("{}.part_size", $key))?;
            if bytes < $min_part {
                bail!("{}.part_size must be at least {}", $key, $min_text);
            }
            $config.part_size = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        if let Some(parts) = $section.parts_in_flight {
            if parts == 0 {
                bail!("{}.parts_in_flight must be at least 1", $key);
            }
            $config.parts_in_flight = parts;
        }
        if let Some(secs) = $section.request_timeout_secs {
            $config.request_timeout = Duration::from_secs(secs.max(1));
        }
        if let Some(retries) = $section.retries {
            $config.retries = retries;
        }
        if let Some(objects) = $section.max_rename_objects {
            $config.max_rename_objects = objects;
        }
    };
}

/// `[storage]` (and a user's own `[users.storage]`)
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StorageSection {
    /// "local" (homes are directories; a home written `s3://bucket/prefix` is in S3), "s3"
    /// (every home is a prefix in `[storage.s3]`'s bucket, or an `s3://` URL), or "azure",
    /// "gcs", "cos" (every home is a prefix in that section's container or bucket), "webdav"
    /// or "opendal" (every home is a folder of that service).
    #[serde(default, rename = "type")]
    pub(crate) kind: StorageKind,
    #[serde(default)]
    pub(crate) keep_partial_uploads: bool,
    /// S3-compatible object storage.
    #[serde(default)]
    pub(crate) s3: Option<S3Section>,
    /// Azure Blob Storage.
    #[serde(default)]
    pub(crate) azure: Option<AzureSection>,
    /// Google Cloud Storage.
    #[serde(default)]
    pub(crate) gcs: Option<GcsSection>,
    /// Tencent COS (native API).
    #[serde(default)]
    pub(crate) cos: Option<CosSection>,
    /// A WebDAV server.
    #[serde(default)]
    pub(crate) webdav: Option<super::WebdavSection>,
    /// Another OpenDAL service compiled in.
    #[serde(default)]
    pub(crate) opendal: Option<super::OpendalSection>,
    /// "normal", or "strict": 226 only after the file and its directory are fsynced.
    #[serde(default)]
    pub(crate) durability: DurabilitySetting,
    /// SITE CHMOD on object storage (which keeps no permission bits): "refuse" (502, the
    /// default) or "ignore" (200, nothing set).
    #[serde(default)]
    pub(crate) site_chmod: SiteChmod,
}

/// `site_chmod` of a `[storage]` section.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SiteChmod {
    #[default]
    Refuse,
    Ignore,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StorageKind {
    #[default]
    Local,
    S3,
    Azure,
    Gcs,
    Cos,
    Webdav,
    Opendal,
}

impl StorageKind {
    /// Whether a home of this kind of storage is an object-store prefix, not a directory.
    pub(crate) fn home_is_remote(self, home: &str) -> bool {
        self != StorageKind::Local || home.starts_with("s3://")
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DurabilitySetting {
    #[default]
    Normal,
    Strict,
}

impl StorageSection {
    /// Makes a relative GCS `credential_path` (and OpenDAL `fs` root) relative to `base` (see
    /// [`ConfigFile::load`](super::ConfigFile::load)).
    pub(super) fn resolve_paths(&mut self, base: &Path) {
        if let Some(path) = self.gcs.as_mut().and_then(|g| g.credential_path.as_mut()) {
            if Path::new(path.as_str()).is_relative() {
                *path = base.join(&*path).to_string_lossy().into_owned();
            }
        }
        // OpenDAL's `fs` root, like a local home, is taken from the file's folder.
        if let Some(section) = self.opendal.as_mut().filter(|o| o.scheme == "fs") {
            if let Some(root) = section.options.get_mut("root") {
                if Path::new(root.as_str()).is_relative() {
                    *root = base.join(&*root).to_string_lossy().into_owned();
                }
            }
        }
    }
}

/// `[storage.s3]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct S3Section {
    pub(crate) endpoint: String,
    #[serde(default = "default_region")]
    pub(crate) region: String,
    pub(crate) bucket: String,
    #[serde(default)]
    pub(crate) prefix: String,
    /// Defaults to the AWS_ACCESS_KEY_ID environment variable.
    #[serde(default)]
    pub(crate) access_key: Option<String>,
    /// Defaults to the AWS_SECRET_ACCESS_KEY environment variable.
    #[serde(default)]
    pub(crate) secret_key: Option<String>,
    #[serde(default)]
    pub(crate) session_token: Option<String>,
    #[serde(default)]
    pub(crate) path_style: Option<bool>,
    #[serde(default)]
    pub(crate) part_size: Option<Size>,
    #[serde(default)]
    pub(crate) parts_in_flight: Option<usize>,
    #[serde(default)]
    pub(crate) request_timeout_secs: Option<u64>,
    #[serde(default)]
    pub(crate) retries: Option<u32>,
    #[serde(default)]
    pub(crate) max_rename_objects: Option<usize>,
    /// Interrupted uploads kept for resuming are aborted after this long.
    #[serde(default = "default_abandoned_age")]
    pub(crate) abandoned_upload_age_secs: u64,
}

/// `region` of `[storage.s3]` when not given (and of the quick start's `s3://` root).
fn default_region() -> String {
    "us-east-1".to_string()
}

/// `abandoned_upload_age_secs` of `[storage.s3]` when not given: a week.
fn default_abandoned_age() -> u64 {
    7 * 24 * 3600
}

impl S3Section {
    /// A section for `bucket` at `endpoint`, every other key at its default (for the quick
    /// start's `s3://` root when the file has no `[storage.s3]`).
    pub(crate) fn new(endpoint: String, bucket: String) -> S3Section {
        S3Section {
            endpoint,
            region: default_region(),
            bucket,
            prefix: String::new(),
            access_key: None,
            secret_key: None,
            session_token: None,
            path_style: None,
            part_size: None,
            parts_in_flight: None,
            request_timeout_secs: None,
            retries: None,
            max_rename_objects: None,
            abandoned_upload_age_secs: default_abandoned_age(),
        }
    }

    /// The backend's settings (the section is named `key` in messages); credentials not in
    /// the file come from the standard environment variables.
    pub(crate) fn to_config(
        &self,
        key: &str,
        keep_partial_uploads: bool,
        max_file_size: Option<u64>,
    ) -> Result<S3Config> {
        let endpoint: url::Url = self
            .endpoint
            .parse()
            .with_context(|| format!("{key}.endpoint: bad URL {:?}", self.endpoint))?;
        let access_key = self
            .access_key
            .clone()
            .or_else(|| env_var("AWS_ACCESS_KEY_ID"));
        let secret_key = self
            .secret_key
            .clone()
            .or_else(|| env_var("AWS_SECRET_ACCESS_KEY"));
        let (Some(access_key), Some(secret_key)) = (access_key, secret_key) else {
            bail!(
                "{key}: credentials missing (set access_key/secret_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            );
        };
        let mut config = S3Config::new(
            endpoint,
            &self.region,
            &self.bucket,
            &access_key,
            &secret_key,
        );
        config.prefix = self.prefix.clone();
        config.session_token = self
            .session_token
            .clone()
            .or_else(|| env_var("AWS_SESSION_TOKEN"));
        if let Some(path_style) = self.path_style {
            config.path_style = path_style;
        }
        apply_tuning!(
            config,
            self,
            key,
            ftpgate_storage_object::MIN_PART_SIZE as u64,
            "5M"
        );
        config.keep_partial_uploads = keep_partial_uploads;
        config.max_file_size = max_file_size;
        Ok(config)
    }
}

/// `[storage.azure]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AzureSection {
    /// Defaults to `https://ACCOUNT.blob.core.windows.net`.
    #[serde(default)]
    pub(crate) endpoint: Option<String>,
    /// Defaults to the AZURE_STORAGE_ACCOUNT environment variable.
    #[serde(default)]
    pub(crate) account: Option<String>,
    /// Defaults to the AZURE_STORAGE_KEY environment variable.
    #[serde(default)]
    pub(crate) key: Option<String>,
    /// A SAS token instead of the key (or AZURE_STORAGE_SAS_TOKEN).
    #[serde(default)]
    pub(crate) sas_token: Option<String>,
    pub(crate) container: String,
    #[serde(default)]
    pub(crate) prefix: String,
    #[serde(default)]
    pub(crate) part_size: Option<Size>,
    #[serde(default)]
    pub(crate) parts_in_flight: Option<usize>,
    #[serde(default)]
    pub(crate) request_timeout_secs: Option<u64>,
    #[serde(default)]
    pub(crate) retries: Option<u32>,
    #[serde(default)]
    pub(crate) max_rename_objects: Option<usize>,
}

/// `[storage.gcs]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GcsSection {
    pub(crate) bucket: String,
    #[serde(default)]
    pub(crate) endpoint: Option<String>,
    /// A service account key file; without it, GOOGLE_APPLICATION_CREDENTIALS or the VM's
    /// metadata server.
    #[serde(default)]
    pub(crate) credential_path: Option<String>,
    #[serde(default)]
    pub(crate) prefix: String,
    #[serde(default)]
    pub(crate) part_size: Option<Size>,
    #[serde(default)]
    pub(crate) parts_in_flight: Option<usize>,
    #[serde(default)]
    pub(crate) request_timeout_secs: Option<u64>,
    #[serde(default)]
    pub(crate) retries: Option<u32>,
    #[serde(default)]
    pub(crate) max_rename_objects: Option<usize>,
}

/// `[storage.cos]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CosSection {
    /// e.g. `https://cos.ap-guangzhou.myqcloud.com`.
    pub(crate) endpoint: String,
    /// With its APPID suffix, `name-1250000000`.
    pub(crate) bucket: String,
    /// Defaults to the TENCENTCLOUD_SECRET_ID environment variable.
    #[serde(default)]
    pub(crate) secret_id: Option<String>,
    /// Defaults to the TENCENTCLOUD_SECRET_KEY environment variable.
    #[serde(default)]
    pub(crate) secret_key: Option<String>,
    #[serde(default)]
    pub(crate) prefix: String,
    #[serde(default)]
    pub(crate) part_size: Option<Size>,
    #[serde(default)]
    pub(crate) parts_in_flight: Option<usize>,
    #[serde(default)]
    pub(crate) request_timeout_secs: Option<u64>,
    #[serde(default)]
    pub(crate) retries: Option<u32>,
    #[serde(default)]
    pub(crate) max_rename_objects: Option<usize>,
}

impl AzureSection {
    /// The backend's settings (the section is named `key` in messages); credentials not in
    /// the file come from the standard environment variables.
    pub(crate) fn to_config(&self, key: &str) -> Result<NativeConfig> {
        let Some(account) = self
            .account
            .clone()
            .or_else(|| env_var("AZURE_STORAGE_ACCOUNT"))
        else {
            bail!("{key}: account missing (set account, or AZURE_STORAGE_ACCOUNT)");
        };
        let access_key = self.key.clone().or_else(|| env_var("AZURE_STORAGE_KEY"));
        let sas_token = self
            .sas_token
            .clone()
            .or_else(|| env_var("AZURE_STORAGE_SAS_TOKEN"));
        if access_key.is_none() && sas_token.is_none() {
            bail!(
                "{key}: credentials missing (set key or sas_token, or AZURE_STORAGE_KEY / AZURE_STORAGE_SAS_TOKEN)"
            );
        }
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
        url::Url::parse(&endpoint)
            .with_context(|| format!("{key}.endpoint: bad URL {endpoint:?}"))?;
        let service = NativeService::Azure {
            endpoint,
            account,
            key: access_key,
            sas_token,
            container: self.container.clone(),
        };
        let mut config = NativeConfig::new(service);
        config.prefix = self.prefix.clone();
        apply_tuning!(config, self, key, 1024 * 1024, "1M");
        Ok(config)
    }
}

impl GcsSection {
    /// The backend's settings (the section is named `key` in messages).
    pub(crate) fn to_config(&self, key: &str) -> Result<NativeConfig> {
        if let Some(endpoint) = &self.endpoint {
            url::Url::parse(endpoint)
                .with_context(|| format!("{key}.endpoint: bad URL {endpoint:?}"))?;
        }
        let service = NativeService::Gcs {
            bucket: self.bucket.clone(),
            endpoint: self.endpoint.clone(),
            credential_path: self.credential_path.clone(),
            credential: None,
        };
        let mut config = NativeConfig::new(service);
        config.prefix = self.prefix.clone();
        apply_tuning!(config, self, key, 1024 * 1024, "1M");
        Ok(config)
    }
}

impl CosSection {
    /// The backend's settings (the section is named `key` in messages); credentials not in
    /// the file come from the standard environment variables.
    pub(crate) fn to_config(&self, key: &str) -> Result<NativeConfig> {
        url::Url::parse(&self.endpoint)
            .with_context(|| format!("{key}.endpoint: bad URL {:?}", self.endpoint))?;
        let secret_id = self
            .secret_id
            .clone()
            .or_else(|| env_var("TENCENTCLOUD_SECRET_ID"));
        let secret_key = self
            .secret_key
            .clone()
            .or_else(|| env_var("TENCENTCLOUD_SECRET_KEY"));
        let (Some(secret_id), Some(secret_key)) = (secret_id, secret_key) else {
            bail!(
                "{key}: credentials missing (set secret_id/secret_key, or TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY)"
            );
        };
        let service = NativeService::Cos {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            secret_id,
            secret_key,
        };
        let mut config = NativeConfig::new(service);
        config.prefix = self.prefix.clone();
        apply_tuning!(config, self, key, 1024 * 1024, "1M");
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "endpoint = \"http://127.0.0.1:3900\"\nbucket = \"b\"\naccess_key = \"k\"\nsecret_key = \"s\"\n";

    #[test]
    fn keys_left_out_keep_the_backends_defaults() {
        let section: S3Section = toml::from_str(MINIMAL).unwrap();
        let config = section.to_config("storage.s3", false, None).unwrap();
        let defaults = S3Config::new(
            "http://127.0.0.1:3900".parse().unwrap(),
            "us-east-1",
            "b",
            "k",
            "s",
        );
        assert_eq!(config.region, defaults.region);
        assert_eq!(config.path_style, defaults.path_style);
        assert_eq!(config.part_size, defaults.part_size);
        assert_eq!(config.parts_in_flight, defaults.parts_in_flight);
        assert_eq!(config.request_timeout, defaults.request_timeout);
        assert_eq!(config.retries, defaults.retries);
        assert_eq!(config.max_rename_objects, defaults.max_rename_objects);
        assert_eq!(section.abandoned_upload_age_secs, 7 * 24 * 3600);

        // The quick start's section is the one the file would give.
        let quick = S3Section::new("http://127.0.0.1:3900".to_string(), "b".to_string());
        assert_eq!(quick.region, section.region);
        assert_eq!(
            quick.abandoned_upload_age_secs,
            section.abandoned_upload_age_secs
        );
        assert_eq!(quick.path_style, section.path_style);
        assert_eq!(quick.parts_in_flight, section.parts_in_flight);
    }

    #[test]
    fn tuning_keys_are_applied_and_checked() {
        let text = format!(
            "{MINIMAL}path_style = false\npart_size = \"16M\"\nparts_in_flight = 2\nrequest_timeout_secs = 0\nretries = 5\nmax_rename_objects = 7\n"
        );
        let section: S3Section = toml::from_str(&text).unwrap();
        let config = section.to_config("storage.s3", true, Some(1)).unwrap();
        assert!(!config.path_style);
        assert_eq!(config.part_size, 16 << 20);
        assert_eq!(config.parts_in_flight, 2);
        assert_eq!(config.request_timeout, Duration::from_secs(1));
        assert_eq!(config.retries, 5);
        assert_eq!(config.max_rename_objects, 7);
        assert!(config.keep_partial_uploads);
        assert_eq!(config.max_file_size, Some(1));

        for (extra, message) in [
            (
                "part_size = \"4M\"",
                "users.a.storage.s3.part_size must be at least 5M",
            ),
            (
                "parts_in_flight = 0",
                "users.a.storage.s3.parts_in_flight must be at least 1",
            ),
            ("part_size = \"big\"", "users.a.storage.s3.part_size"),
        ] {
            let section: S3Section = toml::from_str(&format!("{MINIMAL}{extra}\n")).unwrap();
            let err = format!(
                "{:#}",
                section
                    .to_config("users.a.storage.s3", false, None)
                    .unwrap_err()
            );
            assert!(err.contains(message), "{extra}: {err}");
        }

        let gcs: GcsSection = toml::from_str("bucket = \"b\"\npart_size = \"512K\"\n").unwrap();
        let err = format!("{:#}", gcs.to_config("storage.gcs").unwrap_err());
        assert!(
            err.contains("storage.gcs.part_size must be at least 1M"),
            "{err}"
        );
        let gcs: GcsSection = toml::from_str("bucket = \"b\"\nretries = 9\n").unwrap();
        let config = gcs.to_config("storage.gcs").unwrap();
        assert_eq!(config.retries, 9);
        assert_eq!(config.parts_in_flight, 4);
    }
}
