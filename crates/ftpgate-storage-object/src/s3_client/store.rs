//! The S3 client as the object-storage backend sees it: [`ObjectStore`] (objects, listings,
//! streamed writes) and [`MultipartStore`] (resumable multipart uploads), each call one or a
//! few of the client's S3 requests.

use super::*;

/// CopyObject copies at most this much in one request.
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;

#[async_trait]
impl ObjectStore for S3Client {
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        self.head_object(key).await
    }

    async fn get(&self, key: &str, offset: u64) -> Result<ReadStream, StorageError> {
        let response = self.get_response(key, offset).await?;
        let body = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other));
        Ok(Box::new(tokio_util::io::StreamReader::new(Box::pin(body))))
    }

    /// One GET: its headers tell the size (Content-Range's total, or Content-Length) and time.
    async fn get_with_info(
        &self,
        key: &str,
        offset: u64,
    ) -> Result<Option<(ObjectInfo, ReadStream)>, StorageError> {
        let response = match self.get_response(key, offset).await {
            Ok(response) => response,
            Err(e) if e.kind == StorageErrorKind::NotFound => return Ok(None),
            // 416: reading from the very end is an empty read; beyond it, the error.
            Err(e) if e.kind == StorageErrorKind::InvalidOffset => {
                return match self.head_object(key).await? {
                    Some(info) if info.size == offset => {
                        Ok(Some((info, Box::new(tokio::io::empty()))))
                    }
                    Some(_) => Err(e),
                    None => Ok(None),
                };
            }
            Err(e) => return Err(e),
        };
        let info = info_of_get(offset, response.headers());
        let body = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other));
        Ok(Some((
            info,
            Box::new(tokio_util::io::StreamReader::new(Box::pin(body))),
        )))
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<(), StorageError> {
        self.put_object(key, body).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.delete_object(key).await
    }

    /// CopyObject, or UploadPartCopy in 1 GiB ranges beyond its 5 GiB limit.
    async fn copy(&self, from: &str, to: &str, size: u64) -> Result<(), StorageError> {
        if size <= MAX_COPY {
            return self.copy_object(from, to).await;
        }
        const RANGE: u64 = 1024 * 1024 * 1024;
        let id = self.create_multipart(to).await?;
        let result = async {
            let mut parts = Vec::new();
            let mut start = 0;
            let mut number = 1u16;
            while start < size {
                let end = (start + RANGE).min(size) - 1;
                let etag = self
                    .upload_part_copy(to, &id, number, from, Some((start, end)))
                    .await?;
                parts.push(Part {
                    number,
                    etag,
                    size: end - start + 1,
                });
                start = end + 1;
                number += 1;
            }
            self.complete_multipart(to, &id, &parts).await
        }
        .await;
        if result.is_err() {
            let _ = self.abort_multipart(to, &id).await;
        }
        result
    }

    fn list(
        &self,
        prefix: &str,
        delimited: bool,
        page: usize,
    ) -> BoxStream<'static, Result<Listed, StorageError>> {
        struct State {
            client: S3Client,
            prefix: String,
            token: Option<String>,
            done: bool,
            ready: VecDeque<Listed>,
        }
        let state = State {
            client: self.clone(),
            prefix: prefix.to_string(),
            token: None,
            done: false,
            ready: VecDeque::new(),
        };
        let delimiter = delimited.then_some("/");
        Box::pin(futures_util::stream::unfold(
            state,
            move |mut state| async move {
                loop {
                    if let Some(item) = state.ready.pop_front() {
                        return Some((Ok(item), state));
                    }
                    if state.done {
                        return None;
                    }
                    let result = state
                        .client
                        .list_page(&state.prefix, delimiter, state.token.as_deref(), page)
                        .await;
                    let page = match result {
                        Ok(page) => page,
                        Err(e) => {
                            state.done = true;
                            return Some((Err(e), state));
                        }
                    };
                    // A page holds its subdirectories and its objects apart; merged by key, the
                    // listing comes out in key order across pages.
                    let mut items: Vec<Listed> = page
                        .common_prefixes
                        .into_iter()
                        .map(|common| Listed::Prefix(common.prefix))
                        .chain(page.contents.into_iter().map(|object| Listed::Object {
                            info: ObjectInfo {
                                size: object.size.unwrap_or(0),
                                modified: parse_time(object.last_modified.as_deref()),
                            },
                            key: object.key,
                        }))
                        .collect();
                    items.sort_by(|a, b| a.key().cmp(b.key()));
                    state.ready.extend(items);
                    state.token = page.next_continuation_token;
                    state.done = state.token.is_none();
                }
            },
        ))
    }

    fn multipart(&self) -> Option<Arc<dyn MultipartStore>> {
        Some(Arc::new(self.clone()))
    }

    async fn writer(
        &self,
        _key: &str,
        _chunk: usize,
        _in_flight: usize,
    ) -> Result<Box<dyn ObjectWriter>, StorageError> {
        Err(store_error(
            StorageErrorKind::Unsupported,
            "S3 uploads are multipart uploads",
        ))
    }
}

/// The S3 API's multipart calls, under the names the shared upload logic uses.
#[async_trait]
impl MultipartStore for S3Client {
    async fn read_range(
        &self,
        key: &str,
        start: u64,
        end_inclusive: u64,
    ) -> Result<Bytes, StorageError> {
        self.get_range(key, start, end_inclusive).await
    }

    async fn start_upload(&self, key: &str) -> Result<String, StorageError> {
        self.create_multipart(key).await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        body: Bytes,
    ) -> Result<String, StorageError> {
        S3Client::upload_part(self, key, upload_id, number, body).await
    }

    async fn copy_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        source: &str,
    ) -> Result<String, StorageError> {
        self.upload_part_copy(key, upload_id, number, source, None)
            .await
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
    ) -> Result<(), StorageError> {
        self.complete_multipart(key, upload_id, parts).await
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        self.abort_multipart(key, upload_id).await
    }

    async fn uploaded_parts(&self, key: &str, upload_id: &str) -> Result<Vec<Part>, StorageError> {
        self.list_parts(key, upload_id).await
    }

    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, StorageError> {
        self.list_uploads(prefix).await
    }
}

/// The object's size and time from a GET's headers: the total of `Content-Range` (a ranged
/// GET), else `offset` + `Content-Length`.
fn info_of_get(offset: u64, headers: &reqwest::header::HeaderMap) -> ObjectInfo {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let total = header(reqwest::header::CONTENT_RANGE)
        .and_then(|range| range.rsplit_once('/'))
        .and_then(|(_, total)| total.trim().parse::<u64>().ok());
    let size = total.unwrap_or_else(|| {
        offset
            + header(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
    });
    let modified =
        header(reqwest::header::LAST_MODIFIED).and_then(|v| httpdate::parse_http_date(v).ok());
    ObjectInfo { size, modified }
}

#[cfg(test)]
mod get_info_tests {
    use super::*;
    use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, HeaderMap, HeaderValue, LAST_MODIFIED};

    #[test]
    fn size_from_a_ranged_get_or_a_whole_one() {
        let mut ranged = HeaderMap::new();
        ranged.insert(
            CONTENT_RANGE,
            HeaderValue::from_static("bytes 100-999/1000"),
        );
        ranged.insert(CONTENT_LENGTH, HeaderValue::from_static("900"));
        ranged.insert(
            LAST_MODIFIED,
            HeaderValue::from_static("Sun, 06 Dec 2026 12:00:00 GMT"),
        );
        let info = info_of_get(100, &ranged);
        assert_eq!(info.size, 1000);
        assert!(info.modified.is_some());
        let mut whole = HeaderMap::new();
        whole.insert(CONTENT_LENGTH, HeaderValue::from_static("4096"));
        assert_eq!(info_of_get(0, &whole).size, 4096);
    }
}
