//! Which OpenDAL service, how to reach it, and the operator built from that.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ftpgate_core::{StorageError, StorageErrorKind};
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{HttpTransporter, OperationContext, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;

use crate::dal_error;

/// Credentials of a WebDAV server.
#[derive(Clone, Default)]
pub enum WebdavAuth {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
}

impl std::fmt::Debug for WebdavAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebdavAuth::None => f.write_str("None"),
            WebdavAuth::Basic { username, .. } => write!(f, "Basic({username:?}, ****)"),
            WebdavAuth::Bearer(_) => f.write_str("Bearer(****)"),
        }
    }
}

/// The service a [`DalStorageFactory`](crate::DalStorageFactory) serves.
#[derive(Debug, Clone)]
pub enum DalService {
    /// A WebDAV server (RFC 4918).
    Webdav {
        /// The server's URL, e.g. `https://dav.example.com/remote.php/dav/files/amy`.
        endpoint: String,
        /// A folder on the server that holds every home (`/` for the endpoint itself).
        root: String,
        /// Credentials.
        auth: WebdavAuth,
    },
    /// Any OpenDAL service compiled in, by its scheme (`fs`, `sftp`, ...), with its options as
    /// OpenDAL's `Operator::via_iter` takes them.
    Other {
        /// OpenDAL's name of the service.
        scheme: String,
        /// The service's options (`root`, `endpoint`, ...).
        options: HashMap<String, String>,
    },
}

/// Settings of a [`DalStorageFactory`](crate::DalStorageFactory).
#[derive(Debug, Clone)]
pub struct DalConfig {
    /// The service.
    pub service: DalService,
    /// Every request gives up after this long without progress.
    pub request_timeout: Duration,
    /// Transient failures are retried this many times, with backoff.
    pub retries: u32,
    /// Bytes of a file read per ranged request.
    pub read_chunk: usize,
}

impl DalConfig {
    /// Settings for `service` with the defaults: 60 s requests, 3 retries, 4 MiB reads.
    pub fn new(service: DalService) -> DalConfig {
        DalConfig {
            service,
            request_timeout: Duration::from_secs(60),
            retries: 3,
            read_chunk: 4 * 1024 * 1024,
        }
    }
}

/// The schemes of the OpenDAL services compiled into this build.
pub fn compiled_services() -> Vec<&'static str> {
    let mut names = Vec::new();
    if cfg!(feature = "webdav") {
        names.push("webdav");
    }
    if cfg!(feature = "fs") {
        names.push("fs");
    }
    if cfg!(feature = "sftp") {
        names.push("sftp");
    }
    names
}

/// An HTTP client with rustls (ring) and the platform's roots, for OpenDAL's HTTP services and
/// the streamed WebDAV uploads.
pub(crate) fn http_client(read_timeout: Duration) -> Result<reqwest::Client, StorageError> {
    let local = |what: String| StorageError::new(StorageErrorKind::Local, what);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| local(format!("TLS roots: {e}")))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| local(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(read_timeout)
        .pool_max_idle_per_host(32)
        .build()
        .map_err(|e| local(format!("HTTP client: {e}")))
}

/// The operator of `config`, every request bounded by the timeout and transient failures
/// retried; `http` carries the HTTP services' requests.
pub(crate) fn operator(
    config: &DalConfig,
    http: &reqwest::Client,
) -> Result<Operator, StorageError> {
    let built = match &config.service {
        DalService::Webdav {
            endpoint,
            root,
            auth,
        } => webdav_operator(endpoint, root, auth),
        DalService::Other { scheme, options } => {
            if !compiled_services().contains(&scheme.as_str()) {
                return Err(StorageError::new(
                    StorageErrorKind::Unsupported,
                    format!(
                        "OpenDAL service {scheme:?} is not in this build (built with: {}; add the \
                         cargo feature opendal/services-{scheme} to ftpgate-storage-dal)",
                        compiled_services().join(", ")
                    ),
                ));
            }
            // The registry of schemes holds the services of this build once initialised
            // (idempotent).
            opendal::init_default_registry();
            Operator::via_iter(scheme.as_str(), options.clone())
        }
    }
    .map_err(|e| dal_error("configure", e))?;
    let context = OperationContext::new()
        .with_http_transport(HttpTransporter::new(ReqwestTransport::new(http.clone())));
    Ok(built
        .with_context(context)
        .layer(
            TimeoutLayer::new()
                .with_timeout(config.request_timeout)
                .with_io_timeout(config.request_timeout),
        )
        .layer(
            RetryLayer::new()
                .with_jitter()
                .with_max_times(config.retries as usize),
        ))
}

#[cfg(feature = "webdav")]
fn webdav_operator(endpoint: &str, root: &str, auth: &WebdavAuth) -> opendal::Result<Operator> {
    let mut builder = opendal::services::Webdav::default()
        .endpoint(endpoint)
        .root(root);
    match auth {
        WebdavAuth::None => {}
        WebdavAuth::Basic { username, password } => {
            builder = builder.username(username).password(password);
        }
        WebdavAuth::Bearer(token) => builder = builder.token(token),
    }
    Operator::new(builder)
}

#[cfg(not(feature = "webdav"))]
fn webdav_operator(_: &str, _: &str, _: &WebdavAuth) -> opendal::Result<Operator> {
    Err(opendal::Error::new(
        opendal::ErrorKind::Unsupported,
        "this build has no WebDAV (cargo feature `webdav` of ftpgate-storage-dal)",
    ))
}
