//! A lean S3 client: requests signed with SigV4 by `rusty-s3`, sent with `reqwest`, retried
//! with backoff when the failure is transient, every call bounded by a timeout.

use crate::observe::Observer;
use std::sync::Arc;
use std::time::Duration;

use std::collections::VecDeque;

use async_trait::async_trait;
use bytes::Bytes;
use ftpgate_core::{ReadStream, StorageError, StorageErrorKind};
use futures_core::stream::BoxStream;
use futures_util::StreamExt;
use reqwest::{Method, Response, StatusCode};
use rusty_s3::actions::{ListObjectsV2, ListObjectsV2Response, ListPartsResponse};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use tracing::{debug, warn};
use url::Url;

use crate::S3Config;
use crate::store::{
    Listed, MultipartStore, ObjectInfo, ObjectStore, ObjectWriter, Part, PendingUpload,
};

mod store;
mod xml;

use xml::{error_code, parse_time, parse_uploads, xml_text};

/// How long a signed URL is valid: just long enough for the request it is made for.
const SIGNATURE_LIFETIME: Duration = Duration::from_secs(3600);

/// A failure from the store, with the kind the FTP reply needs.
pub(crate) fn store_error(kind: StorageErrorKind, what: impl Into<String>) -> StorageError {
    StorageError::new(kind, what.into())
}

fn status_kind(status: StatusCode) -> StorageErrorKind {
    match status {
        StatusCode::NOT_FOUND => StorageErrorKind::NotFound,
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => StorageErrorKind::PermissionDenied,
        StatusCode::RANGE_NOT_SATISFIABLE => StorageErrorKind::InvalidOffset,
        StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED => StorageErrorKind::Busy,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => StorageErrorKind::Transient,
        s if s.is_server_error() => StorageErrorKind::Transient,
        _ => StorageErrorKind::Local,
    }
}

#[derive(Debug, Clone)]
pub(crate) struct S3Client {
    http: reqwest::Client,
    pub(crate) bucket: Bucket,
    credentials: Credentials,
    retries: u32,
    /// Longest a whole request may take; a streamed download is bounded per read instead.
    request_timeout: Duration,
    observer: Observer,
}

/// The HTTP client every store uses: rustls with ring and the platform's roots, a 10 s connect
/// timeout, reads bounded by `read_timeout`, and a connection pool per host.
pub(crate) fn http_client(read_timeout: Duration) -> Result<reqwest::Client, StorageError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config()?)
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(read_timeout)
        .pool_max_idle_per_host(32)
        .build()
        .map_err(|e| store_error(StorageErrorKind::Local, format!("HTTP client: {e}")))
}

fn tls_config() -> Result<rustls::ClientConfig, StorageError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| store_error(StorageErrorKind::Local, format!("TLS roots: {e}")))?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| store_error(StorageErrorKind::Local, e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

impl S3Client {
    pub(crate) fn new(config: &S3Config, bucket: &str) -> Result<S3Client, StorageError> {
        let style = if config.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            config.endpoint.clone(),
            style,
            bucket.to_string(),
            config.region.clone(),
        )
        .map_err(|e| {
            store_error(
                StorageErrorKind::Local,
                format!("bucket {bucket:?} at {}: {e}", config.endpoint),
            )
        })?;
        let credentials = match &config.session_token {
            Some(token) => Credentials::new_with_token(
                config.access_key.clone(),
                config.secret_key.clone(),
                token.clone(),
            ),
            None => Credentials::new(config.access_key.clone(), config.secret_key.clone()),
        };
        let http = http_client(config.request_timeout)?;
        Ok(S3Client {
            http,
            bucket,
            credentials,
            retries: config.retries,
            request_timeout: config.request_timeout,
            observer: Observer(config.observer.clone()),
        })
    }

    /// Sends a request built by `make` (called again for each attempt), retrying transient
    /// failures with exponential backoff. `what` names the call for errors and logs.
    async fn send(
        &self,
        what: &'static str,
        make: impl Fn() -> reqwest::RequestBuilder,
        accept: &[StatusCode],
    ) -> Result<Response, StorageError> {
        self.observer
            .time("s3", what, self.send_with_retries(what, make, accept))
            .await
    }

    async fn send_with_retries(
        &self,
        what: &'static str,
        make: impl Fn() -> reqwest::RequestBuilder,
        accept: &[StatusCode],
    ) -> Result<Response, StorageError> {
        let mut attempt = 0;
        loop {
            let result = make().send().await;
            let kind = match result {
                Ok(response)
                    if response.status().is_success() || accept.contains(&response.status()) =>
                {
                    return Ok(response);
                }
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    let code = error_code(&body).unwrap_or_default();
                    let kind = match code.as_str() {
                        "NoSuchUpload" | "NoSuchKey" => StorageErrorKind::NotFound,
                        "SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout" => {
                            StorageErrorKind::Transient
                        }
                        "EntityTooLarge" => StorageErrorKind::ExceededStorage,
                        "InvalidRange" => StorageErrorKind::InvalidOffset,
                        _ => status_kind(status),
                    };
                    if kind != StorageErrorKind::Transient || attempt >= self.retries {
                        return Err(store_error(kind, format!("{what}: HTTP {status} {code}")));
                    }
                    kind
                }
                Err(e) => {
                    if attempt >= self.retries {
                        return Err(store_error(
                            StorageErrorKind::Transient,
                            format!("{what}: {e}"),
                        ));
                    }
                    debug!(error = %e, what, "request failed; retrying");
                    StorageErrorKind::Transient
                }
            };
            attempt += 1;
            warn!(what, attempt, ?kind, "transient store error; retrying");
            tokio::time::sleep(Duration::from_millis(200 << attempt.min(6))).await;
        }
    }

    /// Sends a request and reads the whole (small) response body.
    async fn send_for_text(
        &self,
        what: &'static str,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<String, StorageError> {
        let response = self.send(what, make, &[]).await?;
        response
            .text()
            .await
            .map_err(|e| store_error(StorageErrorKind::Transient, format!("{what} response: {e}")))
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.http.request(method, url).timeout(self.request_timeout)
    }

    async fn head_object(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let url = self
            .bucket
            .head_object(Some(&self.credentials), key)
            .sign(SIGNATURE_LIFETIME);
        let response = self
            .send(
                "HEAD",
                || self.request(Method::HEAD, url.clone()),
                &[StatusCode::NOT_FOUND],
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let size = response
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        let modified = response
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| httpdate::parse_http_date(v.to_str().ok()?).ok());
        Ok(Some(ObjectInfo { size, modified }))
    }

    /// A GET from `offset` (the body streams).
    async fn get_response(&self, key: &str, offset: u64) -> Result<Response, StorageError> {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(SIGNATURE_LIFETIME);
        let range = format!("bytes={offset}-");
        self.send(
            "GET",
            || {
                // No total timeout: the body streams for as long as the client reads it, and
                // each read is bounded by the client's read timeout.
                let request = self.http.request(Method::GET, url.clone());
                if offset > 0 {
                    request.header(reqwest::header::RANGE, range.clone())
                } else {
                    request
                }
            },
            &[],
        )
        .await
    }

    pub(crate) async fn get_range(
        &self,
        key: &str,
        start: u64,
        end_inclusive: u64,
    ) -> Result<Bytes, StorageError> {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(SIGNATURE_LIFETIME);
        let range = format!("bytes={start}-{end_inclusive}");
        let response = self
            .send(
                "GET",
                || {
                    self.request(Method::GET, url.clone())
                        .header(reqwest::header::RANGE, range.clone())
                },
                &[],
            )
            .await?;
        response
            .bytes()
            .await
            .map_err(|e| store_error(StorageErrorKind::Transient, format!("GET body: {e}")))
    }

    async fn put_object(&self, key: &str, body: Bytes) -> Result<(), StorageError> {
        let url = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(SIGNATURE_LIFETIME);
        self.send(
            "PUT",
            || self.request(Method::PUT, url.clone()).body(body.clone()),
            &[],
        )
        .await?;
        Ok(())
    }

    async fn delete_object(&self, key: &str) -> Result<(), StorageError> {
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), key)
            .sign(SIGNATURE_LIFETIME);
        self.send(
            "DELETE",
            || self.request(Method::DELETE, url.clone()),
            &[StatusCode::NOT_FOUND],
        )
        .await?;
        Ok(())
    }

    fn copy_source(&self, key: &str) -> String {
        let encoded: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
        // form encoding writes spaces as '+', which S3 would read literally.
        format!(
            "/{}/{}",
            self.bucket.name(),
            encoded.replace('+', "%20").replace("%2F", "/")
        )
    }

    /// Server-side copy of a whole object (up to 5 GiB, the limit of CopyObject).
    async fn copy_object(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let source = self.copy_source(from);
        let mut action = self.bucket.put_object(Some(&self.credentials), to);
        action
            .headers_mut()
            .insert("x-amz-copy-source", source.clone());
        let url = action.sign(SIGNATURE_LIFETIME);
        let response = self
            .send(
                "COPY",
                || {
                    self.request(Method::PUT, url.clone())
                        .header("x-amz-copy-source", source.clone())
                },
                &[],
            )
            .await?;
        // A copy can fail after a 200 status; the body then holds an error.
        error_in_body("COPY", response).await
    }

    /// One page of a listing with a delimiter.
    pub(crate) async fn list_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        token: Option<&str>,
        max_keys: usize,
    ) -> Result<ListObjectsV2Response, StorageError> {
        let mut action = ListObjectsV2::new(&self.bucket, Some(&self.credentials));
        action.with_prefix(prefix.to_string());
        if let Some(d) = delimiter {
            action.with_delimiter(d.to_string());
        }
        if let Some(t) = token {
            action.with_continuation_token(t.to_string());
        }
        action.with_max_keys(max_keys);
        let url = action.sign(SIGNATURE_LIFETIME);
        let text = self
            .send_for_text("LIST", || self.request(Method::GET, url.clone()))
            .await?;
        ListObjectsV2::parse_response(&text)
            .map_err(|e| store_error(StorageErrorKind::Local, format!("LIST response: {e}")))
    }

    pub(crate) async fn create_multipart(&self, key: &str) -> Result<String, StorageError> {
        let url = self
            .bucket
            .create_multipart_upload(Some(&self.credentials), key)
            .sign(SIGNATURE_LIFETIME);
        let text = self
            .send_for_text("CreateMultipartUpload", || {
                self.request(Method::POST, url.clone())
            })
            .await?;
        let parsed =
            rusty_s3::actions::CreateMultipartUpload::parse_response(&text).map_err(|e| {
                store_error(
                    StorageErrorKind::Local,
                    format!("CreateMultipartUpload response: {e}"),
                )
            })?;
        Ok(parsed.upload_id().to_string())
    }

    pub(crate) async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        body: Bytes,
    ) -> Result<String, StorageError> {
        let url = self
            .bucket
            .upload_part(Some(&self.credentials), key, number, upload_id)
            .sign(SIGNATURE_LIFETIME);
        let response = self
            .send(
                "UploadPart",
                || self.request(Method::PUT, url.clone()).body(body.clone()),
                &[],
            )
            .await?;
        etag_of(&response)
    }

    /// UploadPartCopy: part `number` is bytes `range` of object `source`, copied in the store.
    pub(crate) async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        source: &str,
        range: Option<(u64, u64)>,
    ) -> Result<String, StorageError> {
        let source = self.copy_source(source);
        let mut action = self
            .bucket
            .upload_part(Some(&self.credentials), key, number, upload_id);
        action
            .headers_mut()
            .insert("x-amz-copy-source", source.clone());
        let range = range.map(|(a, b)| format!("bytes={a}-{b}"));
        if let Some(r) = &range {
            action
                .headers_mut()
                .insert("x-amz-copy-source-range", r.clone());
        }
        let url = action.sign(SIGNATURE_LIFETIME);
        let response = self
            .send(
                "UploadPartCopy",
                || {
                    let request = self
                        .request(Method::PUT, url.clone())
                        .header("x-amz-copy-source", source.clone());
                    match &range {
                        Some(r) => request.header("x-amz-copy-source-range", r.clone()),
                        None => request,
                    }
                },
                &[],
            )
            .await?;
        let body = response.text().await.unwrap_or_default();
        xml_text(&body, "ETag").ok_or_else(|| {
            store_error(
                StorageErrorKind::Local,
                "UploadPartCopy: no ETag in the response",
            )
        })
    }

    pub(crate) async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
    ) -> Result<(), StorageError> {
        let action = self.bucket.complete_multipart_upload(
            Some(&self.credentials),
            key,
            upload_id,
            parts.iter().map(|p| p.etag.as_str()),
        );
        let url = action.sign(SIGNATURE_LIFETIME);
        let body = action.body();
        let response = self
            .send(
                "CompleteMultipartUpload",
                || self.request(Method::POST, url.clone()).body(body.clone()),
                &[],
            )
            .await?;
        error_in_body("CompleteMultipartUpload", response).await
    }

    pub(crate) async fn abort_multipart(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StorageError> {
        let url = self
            .bucket
            .abort_multipart_upload(Some(&self.credentials), key, upload_id)
            .sign(SIGNATURE_LIFETIME);
        self.send(
            "AbortMultipartUpload",
            || self.request(Method::DELETE, url.clone()),
            &[StatusCode::NOT_FOUND],
        )
        .await?;
        Ok(())
    }

    /// The parts of an upload, in order.
    pub(crate) async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<Part>, StorageError> {
        let mut parts = Vec::new();
        let mut marker = None;
        loop {
            let mut action = self
                .bucket
                .list_parts(Some(&self.credentials), key, upload_id);
            if let Some(m) = marker {
                action.set_part_number_marker(m);
            }
            let url = action.sign(SIGNATURE_LIFETIME);
            let text = self
                .send_for_text("ListParts", || self.request(Method::GET, url.clone()))
                .await?;
            let page: ListPartsResponse = rusty_s3::actions::ListParts::parse_response(&text)
                .map_err(|e| {
                    store_error(StorageErrorKind::Local, format!("ListParts response: {e}"))
                })?;
            parts.extend(page.parts.iter().map(|p| Part {
                number: p.number,
                etag: p.etag.clone(),
                size: p.size,
            }));
            match page.next_part_number_marker {
                Some(m)
                    if page.parts.len() == usize::from(page.max_parts)
                        && m > marker.unwrap_or(0) =>
                {
                    marker = Some(m)
                }
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    /// Multipart uploads in progress under `prefix` (ListMultipartUploads, which the request
    /// builder lacks, signed directly).
    pub(crate) async fn list_uploads(
        &self,
        prefix: &str,
    ) -> Result<Vec<PendingUpload>, StorageError> {
        let mut uploads = Vec::new();
        let mut key_marker = String::new();
        let mut id_marker = String::new();
        loop {
            let mut query: Vec<(&str, &str)> = vec![
                ("encoding-type", "url"),
                ("prefix", prefix),
                ("uploads", ""),
            ];
            if !key_marker.is_empty() {
                query.push(("key-marker", &key_marker));
                query.push(("upload-id-marker", &id_marker));
            }
            query.sort();
            let url = rusty_s3::signing::sign(
                &jiff::Timestamp::now(),
                rusty_s3::Method::Get,
                self.bucket.base_url().clone(),
                self.credentials.key(),
                self.credentials.secret(),
                self.credentials.token(),
                self.bucket.region(),
                SIGNATURE_LIFETIME.as_secs(),
                query.iter().copied(),
                std::iter::empty(),
            );
            let text = self
                .send_for_text("ListMultipartUploads", || {
                    self.request(Method::GET, url.clone())
                })
                .await?;
            let page = parse_uploads(&text)?;
            uploads.extend(page.uploads);
            match page.next {
                Some((k, u)) if page.truncated && (k != key_marker || u != id_marker) => {
                    key_marker = k;
                    id_marker = u;
                }
                _ => break,
            }
        }
        Ok(uploads)
    }
}

fn etag_of(response: &Response) -> Result<String, StorageError> {
    response
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| store_error(StorageErrorKind::Local, "no ETag in the response"))
}

/// The error S3 may send in the body of a 200 answer (COPY, CompleteMultipartUpload), as a
/// transient failure.
async fn error_in_body(operation: &str, response: reqwest::Response) -> Result<(), StorageError> {
    let body = response.text().await.unwrap_or_default();
    match error_code(&body) {
        Some(code) => Err(store_error(
            StorageErrorKind::Transient,
            format!("{operation}: {code}"),
        )),
        None => Ok(()),
    }
}
