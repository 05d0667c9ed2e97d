//! [`ObjectStorageFactory`]: opens an [`ObjectStorage`] at each user's home, one client per
//! bucket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ftpgate_core::{Storage, StorageError, StorageErrorKind, StorageFactory, User};
use tracing::info;

use crate::config::{Settings, clean_prefix};
use crate::native::NativeStore;
use crate::s3_client::{S3Client, store_error};
use crate::store::ObjectStore;
use crate::{MIN_PART_SIZE, NativeConfig, NativeService, ObjectStorage, S3Config};

/// How a factory reaches a bucket.
#[derive(Debug)]
enum Connector {
    S3(Arc<S3Config>),
    Native(NativeConfig),
}

impl Connector {
    fn connect(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, StorageError> {
        match self {
            Connector::S3(config) => Ok(Arc::new(S3Client::new(config, bucket)?)),
            Connector::Native(config) => {
                let mut service = config.service.clone();
                match &mut service {
                    NativeService::Azure { container, .. } => *container = bucket.to_string(),
                    NativeService::Gcs { bucket: b, .. } | NativeService::Cos { bucket: b, .. } => {
                        *b = bucket.to_string()
                    }
                }
                Ok(Arc::new(NativeStore::new(
                    &service,
                    config.request_timeout,
                    config.retries,
                )?))
            }
        }
    }

    /// The URL scheme of a home naming another bucket: `s3`, `azure`, `gcs` or `cos`.
    fn scheme(&self) -> &'static str {
        match self {
            Connector::S3(_) => "s3",
            Connector::Native(config) => config.service.kind(),
        }
    }
}

/// Opens an [`ObjectStorage`] at each user's home: a prefix in the configured bucket, or
/// `SCHEME://bucket/prefix` for another bucket of the same store (`s3://`, `azure://`,
/// `gcs://`, `cos://`).
#[derive(Debug)]
pub struct ObjectStorageFactory {
    connector: Connector,
    bucket: String,
    prefix: String,
    settings: Arc<Settings>,
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl ObjectStorageFactory {
    /// A factory for an S3-compatible store (checks the endpoint and bucket names, makes no
    /// request).
    pub fn s3(config: S3Config) -> Result<Self, StorageError> {
        if config.part_size < MIN_PART_SIZE {
            return Err(store_error(
                StorageErrorKind::Local,
                "part_size must be at least 5 MiB",
            ));
        }
        Self::with(
            config.bucket.clone(),
            config.prefix.clone(),
            config.settings(),
            Connector::S3(Arc::new(config)),
        )
    }

    /// Objects keep no permission bits: with `ignore`, SITE CHMOD is answered 200 and does
    /// nothing (GUI clients that set permissions after every upload then show no error);
    /// without it (the default), SITE CHMOD is refused with 502.
    pub fn ignore_set_mode(mut self, ignore: bool) -> Self {
        Arc::make_mut(&mut self.settings).ignore_set_mode = ignore;
        self
    }

    /// A factory for a store reached through its own API (makes no request).
    pub fn native(config: NativeConfig) -> Result<Self, StorageError> {
        let settings = Settings {
            part_size: config.part_size,
            parts_in_flight: config.parts_in_flight,
            max_file_size: None,
            keep_partial_uploads: false,
            max_rename_objects: config.max_rename_objects,
            ignore_set_mode: false,
        };
        Self::with(
            config.service.bucket().to_string(),
            config.prefix.clone(),
            settings,
            Connector::Native(config),
        )
    }

    fn with(
        bucket: String,
        prefix: String,
        settings: Settings,
        connector: Connector,
    ) -> Result<Self, StorageError> {
        let factory = ObjectStorageFactory {
            connector,
            bucket,
            prefix: clean_prefix(&prefix),
            settings: Arc::new(settings),
            stores: Mutex::new(HashMap::new()),
        };
        factory.store(&factory.bucket)?;
        Ok(factory)
    }

    fn store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, StorageError> {
        let mut stores = self
            .stores
            .lock()
            .map_err(|_| store_error(StorageErrorKind::Local, "client cache poisoned"))?;
        if let Some(store) = stores.get(bucket) {
            return Ok(store.clone());
        }
        let store = self.connector.connect(bucket)?;
        stores.insert(bucket.to_string(), store.clone());
        Ok(store)
    }

    /// The storage rooted at `home` (a prefix, or `SCHEME://bucket/prefix`).
    pub fn storage_at(&self, home: &str) -> Result<ObjectStorage, StorageError> {
        let url_prefix = format!("{}://", self.connector.scheme());
        let (bucket, prefix) = match home.strip_prefix(&url_prefix) {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                (bucket.to_string(), clean_prefix(prefix))
            }
            None => (
                self.bucket.clone(),
                clean_prefix(&format!("{}{}", self.prefix, home.trim_matches('/'))),
            ),
        };
        let store = self.store(&bucket)?;
        Ok(ObjectStorage {
            multipart: store.multipart(),
            store,
            store_name: format!("{}://{bucket}", self.connector.scheme()).into(),
            scheme: self.connector.scheme(),
            root: prefix,
            settings: self.settings.clone(),
        })
    }

    /// Aborts multipart uploads under the configured prefix that were started more than
    /// `older_than` ago (interrupted uploads nobody resumed). Returns how many. Stores without
    /// explicit multipart control keep no such uploads.
    pub async fn remove_abandoned_uploads(
        &self,
        older_than: Duration,
    ) -> Result<usize, StorageError> {
        let Some(client) = self.store(&self.bucket)?.multipart() else {
            return Ok(0);
        };
        let cutoff = jiff::Timestamp::now()
            - jiff::SignedDuration::try_from(older_than).unwrap_or(jiff::SignedDuration::MAX);
        let mut removed = 0;
        for upload in client.pending_uploads(&self.prefix).await? {
            if upload.initiated.is_some_and(|t| t < cutoff) {
                client.abort_upload(&upload.key, &upload.upload_id).await?;
                info!(
                    key = upload.key.as_str(),
                    "aborted an abandoned partial upload"
                );
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl StorageFactory for ObjectStorageFactory {
    fn open(&self, user: &User) -> Result<Arc<dyn Storage>, StorageError> {
        Ok(Arc::new(self.storage_at(&user.home)?))
    }
}
