//! Stores reached through their own APIs with Apache OpenDAL: Azure Blob Storage, Google Cloud
//! Storage (JSON API) and Tencent COS. OpenDAL gives streamed writers that commit on close and
//! leave nothing behind on abort, ranged reads and paged listings; it does not expose the
//! multipart state, so interrupted uploads on these stores cannot be resumed.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ftpgate_core::{ReadStream, StorageError, StorageErrorKind};
use futures_core::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{EntryMode, HttpTransporter, OperationContext, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;

use crate::s3_client::store_error;
use crate::store::{Listed, ObjectInfo, ObjectStore, ObjectWriter};

/// Which store, and how to reach it.
#[derive(Debug, Clone)]
pub enum NativeService {
    /// Azure Blob Storage: a container of an account, with the account key or a SAS token.
    Azure {
        /// The blob endpoint, e.g. `https://ACCOUNT.blob.core.windows.net` (or Azurite's
        /// `http://127.0.0.1:10000/ACCOUNT`).
        endpoint: String,
        /// The storage account.
        account: String,
        /// The account key (base64), if signing with it.
        key: Option<String>,
        /// A shared access signature, if signing with one instead.
        sas_token: Option<String>,
        /// The container homes live in.
        container: String,
    },
    /// Google Cloud Storage through its JSON API.
    Gcs {
        /// The bucket homes live in.
        bucket: String,
        /// The API endpoint (default `https://storage.googleapis.com`).
        endpoint: Option<String>,
        /// A service account key file (JSON); without one (and without `credential`), the
        /// standard Google environment (GOOGLE_APPLICATION_CREDENTIALS, VM metadata) is used.
        credential_path: Option<String>,
        /// A service account key (JSON, base64-encoded).
        credential: Option<String>,
    },
    /// Tencent COS through its native API.
    Cos {
        /// The COS endpoint, e.g. `https://cos.ap-guangzhou.myqcloud.com`.
        endpoint: String,
        /// The bucket, with its APPID suffix (`name-1250000000`).
        bucket: String,
        /// SecretId.
        secret_id: String,
        /// SecretKey.
        secret_key: String,
    },
}

impl NativeService {
    /// The container or bucket.
    pub fn bucket(&self) -> &str {
        match self {
            NativeService::Azure { container, .. } => container,
            NativeService::Gcs { bucket, .. } | NativeService::Cos { bucket, .. } => bucket,
        }
    }

    /// The store's name for messages: `azure`, `gcs` or `cos`.
    pub fn kind(&self) -> &'static str {
        match self {
            NativeService::Azure { .. } => "azure",
            NativeService::Gcs { .. } => "gcs",
            NativeService::Cos { .. } => "cos",
        }
    }
}

/// A store reached through OpenDAL.
#[derive(Debug, Clone)]
pub(crate) struct NativeStore {
    operator: Operator,
    service: NativeService,
}

fn opendal_error(what: &str, e: opendal::Error) -> StorageError {
    use opendal::ErrorKind as K;
    let kind = match e.kind() {
        K::NotFound => StorageErrorKind::NotFound,
        K::PermissionDenied => StorageErrorKind::PermissionDenied,
        K::AlreadyExists => StorageErrorKind::AlreadyExists,
        K::IsADirectory => StorageErrorKind::IsADirectory,
        K::NotADirectory => StorageErrorKind::NotFound,
        K::RangeNotSatisfied => StorageErrorKind::InvalidOffset,
        K::ConditionNotMatch | K::Conflict => StorageErrorKind::Busy,
        K::Unsupported => StorageErrorKind::Unsupported,
        K::RateLimited => StorageErrorKind::Transient,
        _ if e.is_temporary() => StorageErrorKind::Transient,
        _ => StorageErrorKind::Local,
    };
    store_error(kind, format!("{what}: {e}"))
}

impl NativeStore {
    /// An operator for `service`, every request bounded by `request_timeout` and transient
    /// failures retried `retries` times with backoff.
    pub(crate) fn new(
        service: &NativeService,
        request_timeout: Duration,
        retries: u32,
    ) -> Result<NativeStore, StorageError> {
        let built = match service.clone() {
            NativeService::Azure {
                endpoint,
                account,
                key,
                sas_token,
                container,
            } => {
                let mut builder = opendal::services::Azblob::default()
                    .endpoint(&endpoint)
                    .account_name(&account)
                    .container(&container);
                if let Some(key) = &key {
                    builder = builder.account_key(key);
                }
                if let Some(token) = &sas_token {
                    builder = builder.sas_token(token);
                }
                Operator::new(builder)
            }
            NativeService::Gcs {
                bucket,
                endpoint,
                credential_path,
                credential,
            } => {
                let mut builder = opendal::services::Gcs::default().bucket(&bucket);
                if let Some(endpoint) = &endpoint {
                    builder = builder.endpoint(endpoint);
                }
                if let Some(path) = &credential_path {
                    builder = builder.credential_path(path);
                }
                if let Some(credential) = &credential {
                    builder = builder.credential(credential);
                }
                Operator::new(builder)
            }
            NativeService::Cos {
                endpoint,
                bucket,
                secret_id,
                secret_key,
            } => Operator::new(
                opendal::services::Cos::default()
                    .endpoint(&endpoint)
                    .bucket(&bucket)
                    .secret_id(&secret_id)
                    .secret_key(&secret_key),
            ),
        }
        .map_err(|e| opendal_error(service.kind(), e))?;
        let http = crate::s3_client::http_client(request_timeout)?;
        let context = OperationContext::new()
            .with_http_transport(HttpTransporter::new(ReqwestTransport::new(http)));
        let operator = built
            .with_context(context)
            .layer(
                TimeoutLayer::new()
                    .with_timeout(request_timeout)
                    .with_io_timeout(request_timeout),
            )
            .layer(
                RetryLayer::new()
                    .with_jitter()
                    .with_max_times(retries as usize),
            );
        Ok(NativeStore {
            operator,
            service: service.clone(),
        })
    }
}

fn info_of(meta: &opendal::Metadata) -> ObjectInfo {
    ObjectInfo {
        size: meta.content_length(),
        modified: meta.last_modified().map(std::time::SystemTime::from),
    }
}

#[async_trait]
impl ObjectStore for NativeStore {
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        match self.operator.stat(key).await {
            Ok(meta) if meta.mode() == EntryMode::FILE => Ok(Some(info_of(&meta))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(opendal_error("HEAD", e)),
        }
    }

    async fn get(&self, key: &str, offset: u64) -> Result<ReadStream, StorageError> {
        let size = match self.head(key).await? {
            Some(info) => info.size,
            None => {
                return Err(store_error(
                    StorageErrorKind::NotFound,
                    format!("{key}: no such object"),
                ));
            }
        };
        if offset > size {
            return Err(store_error(
                StorageErrorKind::InvalidOffset,
                format!("{key}: offset {offset} beyond the end ({size} bytes)"),
            ));
        }
        let reader = self
            .operator
            .reader_with(key)
            .chunk(4 * 1024 * 1024)
            .await
            .map_err(|e| opendal_error("GET", e))?;
        let body = reader
            .into_bytes_stream(offset..size)
            .await
            .map_err(|e| opendal_error("GET", e))?;
        Ok(Box::new(tokio_util::io::StreamReader::new(Box::pin(body))))
    }

    fn check_name(&self, key: &str) -> Result<(), StorageError> {
        let azure = matches!(self.service, NativeService::Azure { .. });
        let xml_listing = azure || matches!(self.service, NativeService::Cos { .. });
        for name in key.split('/') {
            // Azure reads a backslash as '/' and drops a trailing dot; XML listings lose
            // whitespace at the end of a name.
            let refused = (azure && (name.contains('\\') || name.ends_with('.')))
                || (xml_listing && name.ends_with(char::is_whitespace));
            if refused {
                return Err(store_error(
                    StorageErrorKind::InvalidName,
                    format!("{:?}: the store cannot hold this name", name),
                ));
            }
        }
        Ok(())
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<(), StorageError> {
        if key.ends_with('/') {
            // A directory marker: OpenDAL writes it as an empty `dir/` object.
            return self
                .operator
                .create_dir(key)
                .await
                .map_err(|e| opendal_error("PUT", e));
        }
        self.operator
            .write(key, body)
            .await
            .map(|_| ())
            .map_err(|e| opendal_error("PUT", e))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.operator.delete(key).await {
            Err(e) if e.kind() != opendal::ErrorKind::NotFound => Err(opendal_error("DELETE", e)),
            _ => Ok(()),
        }
    }

    async fn copy(&self, from: &str, to: &str, _size: u64) -> Result<(), StorageError> {
        self.operator
            .copy(from, to)
            .await
            .map(|_| ())
            .map_err(|e| opendal_error("COPY", e))
    }

    fn list(
        &self,
        prefix: &str,
        delimited: bool,
        page: usize,
    ) -> BoxStream<'static, Result<Listed, StorageError>> {
        let operator = self.operator.clone();
        let prefix = prefix.to_string();
        let listing = async move {
            // OpenDAL lists "" as the root, and a directory path ending with '/'.
            let path = if prefix.is_empty() {
                "/"
            } else {
                prefix.as_str()
            };
            let lister = operator
                .lister_with(path)
                .recursive(!delimited)
                .limit(page)
                .await
                .map_err(|e| opendal_error("LIST", e))?;
            Ok::<_, StorageError>(lister.map(move |entry| {
                let entry = entry.map_err(|e| opendal_error("LIST", e))?;
                let key = entry.path().trim_start_matches('/').to_string();
                let meta = entry.metadata();
                if delimited && meta.mode() == EntryMode::DIR && key != prefix {
                    Ok(Listed::Prefix(key))
                } else {
                    Ok(Listed::Object {
                        info: info_of(meta),
                        key,
                    })
                }
            }))
        };
        Box::pin(futures_util::stream::once(listing).try_flatten())
    }

    async fn writer(
        &self,
        key: &str,
        chunk: usize,
        in_flight: usize,
    ) -> Result<Box<dyn ObjectWriter>, StorageError> {
        let writer = self
            .operator
            .writer_with(key)
            .chunk(chunk)
            .concurrent(in_flight.max(1))
            .await
            .map_err(|e| opendal_error("upload", e))?;
        Ok(Box::new(NativeWriter { writer }))
    }
}

struct NativeWriter {
    writer: opendal::Writer,
}

#[async_trait]
impl ObjectWriter for NativeWriter {
    async fn write(&mut self, data: Bytes) -> Result<(), StorageError> {
        self.writer
            .write(data)
            .await
            .map_err(|e| opendal_error("upload", e))
    }

    async fn close(&mut self) -> Result<(), StorageError> {
        self.writer
            .close()
            .await
            .map(|_| ())
            .map_err(|e| opendal_error("upload", e))
    }

    async fn abort(&mut self) -> Result<(), StorageError> {
        self.writer
            .abort()
            .await
            .map_err(|e| opendal_error("abort upload", e))
    }
}
