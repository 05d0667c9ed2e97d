//! The storage each user is served from, built from the config's `[storage]` sections: the
//! shared one (of the server or a virtual host), or a user's own `[users.storage]`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use ftpgate_core::{Storage, StorageError, StorageErrorKind, StorageFactory, User};
use ftpgate_storage_fs::{Durability, FsStorageFactory};
use ftpgate_storage_object::ObjectStorageFactory;
use tracing::{info, warn};

use crate::config::{DurabilitySetting, SiteChmod, StorageKind, StorageSection, UserSection};

/// The storage one `[storage]` section describes.
pub(crate) struct Backend {
    kind: StorageKind,
    local: FsStorageFactory,
    /// The S3 store: every home with `type = "s3"`, `s3://` homes otherwise.
    s3: Option<S3Store>,
    /// The Azure, GCS or COS store of `type = "azure" | "gcs" | "cos"`.
    native: Option<Arc<ObjectStorageFactory>>,
}

/// An S3 store and the age at which its abandoned partial uploads are aborted.
struct S3Store {
    factory: Arc<ObjectStorageFactory>,
    abandoned_upload_age: Duration,
}

impl Backend {
    /// Builds the storage of `section` (named `key` in messages); makes no request.
    pub(crate) fn build(
        key: &str,
        section: &StorageSection,
        max_file_size: Option<u64>,
    ) -> Result<Backend> {
        let local = FsStorageFactory {
            durability: match section.durability {
                DurabilitySetting::Normal => Durability::Normal,
                DurabilitySetting::Strict => Durability::Strict,
            },
            keep_partial_uploads: section.keep_partial_uploads,
        };
        let ignore_chmod = section.site_chmod == SiteChmod::Ignore;
        if ignore_chmod && section.kind == StorageKind::Local && section.s3.is_none() {
            bail!(
                "{key}: site_chmod = \"ignore\" is for object storage; local files keep their permission bits"
            );
        }
        let s3 = match &section.s3 {
            Some(s3) => {
                let config = s3.to_config(
                    &format!("{key}.s3"),
                    section.keep_partial_uploads,
                    max_file_size,
                )?;
                Some(S3Store {
                    factory: Arc::new(
                        ObjectStorageFactory::s3(config)
                            .map_err(|e| anyhow!("{key}.s3: {e}"))?
                            .ignore_set_mode(ignore_chmod),
                    ),
                    abandoned_upload_age: Duration::from_secs(s3.abandoned_upload_age_secs),
                })
            }
            None => None,
        };
        let native_config = match section.kind {
            StorageKind::Local | StorageKind::S3 => None,
            StorageKind::Azure => Some(
                section
                    .azure
                    .as_ref()
                    .ok_or_else(|| {
                        anyhow!("{key}: type = \"azure\" needs a [{key}.azure] section")
                    })?
                    .to_config(&format!("{key}.azure"))?,
            ),
            StorageKind::Gcs => Some(
                section
                    .gcs
                    .as_ref()
                    .ok_or_else(|| anyhow!("{key}: type = \"gcs\" needs a [{key}.gcs] section"))?
                    .to_config(&format!("{key}.gcs"))?,
            ),
            StorageKind::Cos => Some(
                section
                    .cos
                    .as_ref()
                    .ok_or_else(|| anyhow!("{key}: type = \"cos\" needs a [{key}.cos] section"))?
                    .to_config(&format!("{key}.cos"))?,
            ),
        };
        if section.kind == StorageKind::S3 && s3.is_none() {
            bail!("{key}: type = \"s3\" needs a [{key}.s3] section");
        }
        if native_config.is_some() && section.keep_partial_uploads {
            bail!(
                "{key}: keep_partial_uploads needs explicit multipart uploads, which only the S3 API offers (COS and GCS have S3-compatible endpoints)"
            );
        }
        let native = match native_config {
            Some(config) => Some(Arc::new(
                ObjectStorageFactory::native(config)
                    .map_err(|e| anyhow!("{key}: {e}"))?
                    .ignore_set_mode(ignore_chmod),
            )),
            None => None,
        };
        Ok(Backend {
            kind: section.kind,
            local,
            s3,
            native,
        })
    }

    fn open(&self, user: &User) -> Result<Arc<dyn Storage>, StorageError> {
        let missing = |what: &str| StorageError::new(StorageErrorKind::Local, what.to_string());
        match self.kind {
            StorageKind::Local if user.home.starts_with("s3://") => self
                .s3
                .as_ref()
                .ok_or_else(|| missing("an s3:// home needs a [storage.s3] section"))?
                .factory
                .open(user),
            StorageKind::Local => self.local.open(user),
            StorageKind::S3 => self
                .s3
                .as_ref()
                .ok_or_else(|| missing("no [storage.s3] section"))?
                .factory
                .open(user),
            StorageKind::Azure | StorageKind::Gcs | StorageKind::Cos => self
                .native
                .as_ref()
                .ok_or_else(|| missing("no object store section"))?
                .open(user),
        }
    }

    /// Aborts, every hour, interrupted S3 uploads kept for resuming and never resumed.
    fn spawn_cleanup(&self) -> Option<tokio::task::JoinHandle<()>> {
        let S3Store {
            factory,
            abandoned_upload_age: age,
        } = self.s3.as_ref()?;
        let (s3, age) = (factory.clone(), *age);
        Some(tokio::spawn(async move {
            loop {
                match s3.remove_abandoned_uploads(age).await {
                    Ok(0) => {}
                    Ok(n) => info!(removed = n, "aborted abandoned partial uploads"),
                    Err(e) => warn!(error = %e, "cannot clean abandoned partial uploads"),
                }
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }))
    }
}

/// The shared storage and users' own.
pub(crate) struct Backends {
    pub(crate) shared: Backend,
    pub(crate) per_user: HashMap<String, Backend>,
}

impl Backends {
    /// The storage of `section` (named `key`) and of each of `users`' own sections.
    pub(crate) fn build(
        key: &str,
        section: &StorageSection,
        users: &[UserSection],
        max_file_size: Option<u64>,
    ) -> Result<Backends> {
        Ok(Backends {
            shared: Backend::build(key, section, max_file_size)?,
            per_user: users
                .iter()
                .filter_map(|u| Some((u, u.storage.as_ref()?)))
                .map(|(u, own)| {
                    let key = format!("users.{}.storage", u.name);
                    Ok((u.name.clone(), Backend::build(&key, own, max_file_size)?))
                })
                .collect::<Result<_>>()?,
        })
    }

    /// Starts the cleanup of abandoned uploads for every S3 store; the tasks run until
    /// aborted.
    pub(crate) fn spawn_cleanup(&self) -> Vec<tokio::task::JoinHandle<()>> {
        std::iter::once(&self.shared)
            .chain(self.per_user.values())
            .filter_map(Backend::spawn_cleanup)
            .collect()
    }
}

impl StorageFactory for Backends {
    fn open(&self, user: &User) -> Result<Arc<dyn Storage>, StorageError> {
        self.per_user
            .get(&user.name)
            .unwrap_or(&self.shared)
            .open(user)
    }
}
