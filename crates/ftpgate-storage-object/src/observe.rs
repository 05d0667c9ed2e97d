//! The observer of a store's HTTP requests: how long each took and whether it succeeded, for an
//! embedder's metrics (the daemon counts them in Prometheus). No metrics library here: the
//! embedder implements [`RequestObserver`] and sets it in [`S3Config`](crate::S3Config) or
//! [`NativeConfig`](crate::NativeConfig).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftpgate_core::StorageError;

/// Told of every request to the store, after it ended (retries included: one call, one
/// report).
pub trait RequestObserver: Send + Sync + fmt::Debug + 'static {
    /// `backend` is `s3`, `azure`, `gcs` or `cos`; `operation` one of a fixed set per backend
    /// (S3: `HEAD`, `GET`, `PUT`, `DELETE`, `COPY`, `LIST`, `CreateMultipartUpload`,
    /// `UploadPart`, `UploadPartCopy`, `CompleteMultipartUpload`, `AbortMultipartUpload`,
    /// `ListParts`, `ListMultipartUploads`; the others: `HEAD`, `GET`, `PUT`, `DELETE`, `COPY`,
    /// `LIST`, `Complete`, `Abort`); `ok` is false when it failed after its retries.
    fn on_request(&self, backend: &'static str, operation: &'static str, ok: bool, took: Duration);
}

/// The observer a store was given, if any.
#[derive(Clone, Default)]
pub(crate) struct Observer(pub(crate) Option<Arc<dyn RequestObserver>>);

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Observer(set)"
        } else {
            "Observer(none)"
        })
    }
}

impl Observer {
    /// Runs `call`, then reports it.
    pub(crate) async fn time<T>(
        &self,
        backend: &'static str,
        operation: &'static str,
        call: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let Some(observer) = &self.0 else {
            return call.await;
        };
        let began = Instant::now();
        let result = call.await;
        observer.on_request(backend, operation, result.is_ok(), began.elapsed());
        result
    }
}
