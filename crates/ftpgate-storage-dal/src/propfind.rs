//! WebDAV listings that stream: one PROPFIND (depth 1) whose multistatus response is parsed as
//! it arrives, one `<response>` at a time, each becoming an entry as soon as it is read.
//!
//! WebDAV has no paging, so a directory comes in one response; OpenDAL's lister reads that
//! response whole and parses it into a list before giving the first entry. Reading it with a
//! pull parser (quick-xml over the body stream) keeps memory at one entry and a read buffer
//! whatever the directory's size.

use std::time::SystemTime;

use ftpgate_core::{DirEntry, EntryStream, FileKind, Metadata, StorageError, StorageErrorKind};
use futures_util::TryStreamExt as _;
use quick_xml::Reader;
use quick_xml::events::Event;
use tokio::io::BufReader;
use tokio_util::io::StreamReader;

use crate::config::WebdavAuth;
use crate::upload::{PutTarget, TEMP_PREFIX};

const BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>"#;

type Body = BufReader<
    StreamReader<
        std::pin::Pin<
            Box<dyn futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>,
        >,
        bytes::Bytes,
    >,
>;

/// Parser state: the XML reader over the response body, and the directory's own path (its
/// entry in the response is left out).
struct Listing {
    reader: Reader<Body>,
    buf: Vec<u8>,
    own: String,
}

/// One `<response>` being read.
#[derive(Default)]
struct Response {
    href: String,
    length: Option<u64>,
    modified: Option<SystemTime>,
    collection: bool,
}

/// The entries of the directory at `dir` (a path under the WebDAV root), streamed.
pub(crate) async fn list(target: &PutTarget, dir: &str) -> Result<EntryStream, StorageError> {
    let mut url = target.url(dir)?;
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.push("");
    }
    let own = percent_decode(url.path()).trim_end_matches('/').to_string();
    let method = reqwest::Method::from_bytes(b"PROPFIND")
        .map_err(|e| StorageError::new(StorageErrorKind::Local, e.to_string()))?;
    let mut request = target
        .http
        .request(method, url)
        .header("Depth", "1")
        .header("Content-Type", "application/xml; charset=utf-8")
        .body(BODY);
    request = match &target.auth {
        WebdavAuth::None => request,
        WebdavAuth::Basic { username, password } => request.basic_auth(username, Some(password)),
        WebdavAuth::Bearer(token) => request.bearer_auth(token),
    };
    let response = request
        .send()
        .await
        .map_err(|e| StorageError::new(StorageErrorKind::Transient, format!("PROPFIND: {e}")))?;
    let status = response.status();
    if status.as_u16() != 207 {
        let kind = match status.as_u16() {
            404 | 409 => StorageErrorKind::NotFound,
            401 | 403 => StorageErrorKind::PermissionDenied,
            408 | 429 | 500..=599 => StorageErrorKind::Transient,
            _ => StorageErrorKind::Local,
        };
        return Err(StorageError::new(kind, format!("PROPFIND {dir}: {status}")));
    }
    Ok(entries(
        Box::pin(response.bytes_stream().map_err(std::io::Error::other)),
        own,
    ))
}

/// The entries of a multistatus `body`, leaving out the directory's own (`own`, decoded).
fn entries(
    body: std::pin::Pin<
        Box<dyn futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>,
    >,
    own: String,
) -> EntryStream {
    let mut reader = Reader::from_reader(BufReader::new(StreamReader::new(body)));
    reader.config_mut().trim_text(true);
    let listing = Listing {
        reader,
        buf: Vec::new(),
        own,
    };
    Box::pin(futures_util::stream::try_unfold(
        listing,
        |mut listing| async move {
            let entry = listing.next_entry().await?;
            Ok(entry.map(|entry| (entry, listing)))
        },
    ))
}

fn xml_error(e: impl std::fmt::Display) -> StorageError {
    StorageError::new(
        StorageErrorKind::Transient,
        format!("PROPFIND response: {e}"),
    )
}

impl Listing {
    /// The next entry of the directory, or `None` at the end of the response.
    async fn next_entry(&mut self) -> Result<Option<DirEntry>, StorageError> {
        loop {
            let Some(response) = self.next_response().await? else {
                return Ok(None);
            };
            let href =
                if response.href.starts_with("http://") || response.href.starts_with("https://") {
                    url::Url::parse(&response.href)
                        .map(|u| u.path().to_string())
                        .map_err(xml_error)?
                } else {
                    response.href.clone()
                };
            let path = percent_decode(&href);
            let path = path.trim_end_matches('/');
            if path == self.own || path.is_empty() {
                continue;
            }
            let name = path.rsplit('/').next().unwrap_or(path);
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            return Ok(Some(DirEntry {
                name: name.to_string(),
                metadata: Metadata {
                    kind: if response.collection {
                        FileKind::Dir
                    } else {
                        FileKind::File
                    },
                    size: if response.collection {
                        0
                    } else {
                        response.length.unwrap_or(0)
                    },
                    modified: response.modified,
                    mode: None,
                    unique: None,
                },
            }));
        }
    }

    /// Reads up to the end of the next `<response>`.
    async fn next_response(&mut self) -> Result<Option<Response>, StorageError> {
        let mut response: Option<Response> = None;
        // The element whose text is being read.
        let mut field: Option<&'static str> = None;
        let mut text = String::new();
        loop {
            self.buf.clear();
            let event = self
                .reader
                .read_event_into_async(&mut self.buf)
                .await
                .map_err(xml_error)?;
            match event {
                Event::Start(e) => match e.local_name().as_ref() {
                    "response" => response = Some(Response::default()),
                    "collection" => {
                        if let Some(r) = response.as_mut() {
                            r.collection = true;
                        }
                    }
                    "href" => field = Some("href"),
                    "getcontentlength" => field = Some("length"),
                    "getlastmodified" => field = Some("modified"),
                    _ => {}
                },
                Event::Empty(e) if e.local_name().as_ref() == "collection" => {
                    if let Some(r) = response.as_mut() {
                        r.collection = true;
                    }
                }
                Event::Text(e) if field.is_some() => text.push_str(&e.xml10_content()),
                Event::CData(e) if field.is_some() => text.push_str(&e.xml10_content()),
                Event::GeneralRef(e) if field.is_some() => {
                    if let Ok(Some(c)) = e.resolve_char_ref() {
                        text.push(c);
                    } else {
                        text.push_str(match &*e {
                            "amp" => "&",
                            "lt" => "<",
                            "gt" => ">",
                            "quot" => "\"",
                            "apos" => "'",
                            _ => "",
                        });
                    }
                }
                Event::End(e) => {
                    let name = e.local_name();
                    let name = name.as_ref();
                    if name == "response" {
                        return Ok(response);
                    }
                    if let (Some(what), Some(r)) = (field, response.as_mut()) {
                        let value = std::mem::take(&mut text);
                        let value = value.trim();
                        match (what, name) {
                            ("href", "href") => r.href = value.to_string(),
                            ("length", "getcontentlength") => r.length = value.parse().ok(),
                            ("modified", "getlastmodified") => {
                                r.modified = httpdate::parse_http_date(value).ok();
                            }
                            _ => {}
                        }
                        field = None;
                    }
                }
                Event::Eof => return Ok(None),
                _ => {}
            }
        }
    }
}

/// `%XX` sequences decoded (as UTF-8, lossily).
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use futures_util::StreamExt as _;

    /// A response as servers write it: another prefix, an absolute href, entities, a
    /// percent-encoded UTF-8 name, an upload's temporary file, a property not found.
    const MULTISTATUS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<d:multistatus xmlns:d="DAV:">
 <d:response><d:href>/dav/dir/</d:href><d:propstat><d:prop>
  <d:resourcetype><d:collection/></d:resourcetype></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
 <d:response><d:href>http://127.0.0.1:8080/dav/dir/a%20b&amp;c</d:href><d:propstat><d:prop>
  <d:resourcetype/><d:getcontentlength>12345</d:getcontentlength>
  <d:getlastmodified>Sun, 06 Nov 1994 08:49:37 GMT</d:getlastmodified></d:prop>
  <d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
 <d:response><d:href>/dav/dir/Gr%C3%BC%C3%9Fe/</d:href><d:propstat><d:prop>
  <d:resourcetype><d:collection></d:collection></d:resourcetype></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
  <d:propstat><d:prop><d:getcontentlength/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response>
 <d:response><d:href>/dav/dir/.ftpgate-upload-0123-x</d:href><d:propstat><d:prop>
  <d:resourcetype/><d:getcontentlength>1</d:getcontentlength></d:prop></d:propstat></d:response>
</d:multistatus>"#;

    #[tokio::test]
    async fn a_multistatus_is_read_entry_by_entry_across_chunk_boundaries() {
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = MULTISTATUS
            .as_bytes()
            .chunks(7)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let listed: Vec<DirEntry> = entries(
            Box::pin(futures_util::stream::iter(chunks)),
            "/dav/dir".to_string(),
        )
        .map(|e| e.unwrap())
        .collect()
        .await;
        let got: Vec<(&str, FileKind, u64)> = listed
            .iter()
            .map(|e| (e.name.as_str(), e.metadata.kind, e.metadata.size))
            .collect();
        assert_eq!(
            got,
            [
                ("a b&c", FileKind::File, 12345),
                ("Grüße", FileKind::Dir, 0)
            ]
        );
        assert_eq!(
            listed[0].metadata.modified,
            Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(784111777))
        );
    }
}
