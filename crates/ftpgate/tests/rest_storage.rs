//! The HTTP/JSON backend of `examples/rest_storage.rs` against a small server of its API (a
//! directory on disk behind hyper): the storage behaviour suite, then FTP transfers, a paged
//! listing, an aborted upload and the API going down.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "../examples/rest_storage.rs"]
#[allow(dead_code, unreachable_pub)]
mod rest_storage;

use std::convert::Infallible;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ftpgate::{CancellationToken, Server};
use ftpgate_core::Storage;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use suppaftp::FtpStream;
use suppaftp::types::FileType;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, io::Error>;

/// The API's server: files under `root/tree`, uploads in progress under `root/uploads`.
struct Api {
    tree: PathBuf,
    uploads: PathBuf,
}

fn full(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(value.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
}

fn empty(status: StatusCode) -> Response<Body> {
    full(status, json!({}))
}

fn error(status: StatusCode, code: &str) -> Response<Body> {
    full(status, json!({ "error": code }))
}

fn io_error(e: &io::Error) -> Response<Body> {
    use io::ErrorKind as K;
    match e.kind() {
        K::NotFound => error(StatusCode::NOT_FOUND, "not_found"),
        K::AlreadyExists => error(StatusCode::CONFLICT, "exists"),
        K::DirectoryNotEmpty => error(StatusCode::CONFLICT, "not_empty"),
        K::NotADirectory => error(StatusCode::CONFLICT, "not_a_dir"),
        K::IsADirectory => error(StatusCode::CONFLICT, "is_a_dir"),
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, "io"),
    }
}

fn meta_json(meta: &std::fs::Metadata) -> serde_json::Value {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    json!({
        "kind": if meta.is_dir() { "dir" } else { "file" },
        "size": if meta.is_dir() { 0 } else { meta.len() },
        "modified": modified,
    })
}

/// A path of the API (`/a/b` or percent-encoded segments) beneath the tree, or `None` if it
/// would leave it.
fn beneath(tree: &Path, segments: &[&str]) -> Option<PathBuf> {
    let mut path = tree.to_path_buf();
    for segment in segments {
        let name = percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .ok()?;
        match &*name {
            "" => {}
            "." | ".." => return None,
            name if name.contains('/') => return None,
            name => path.push(name),
        }
    }
    Some(path)
}

fn json_path(tree: &Path, value: &serde_json::Value, key: &str) -> Option<PathBuf> {
    let path = value.get(key)?.as_str()?;
    let segments: Vec<&str> = path.split('/').collect();
    // Plain names here, not percent-encoded: encode the percent sign itself first.
    let encoded: Vec<String> = segments
        .iter()
        .map(|s| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        })
        .collect();
    let refs: Vec<&str> = encoded.iter().map(String::as_str).collect();
    beneath(tree, &refs)
}

async fn body_json(request: Request<Incoming>) -> Option<serde_json::Value> {
    let bytes = request.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&bytes).ok()
}

async fn handle(api: Arc<Api>, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (Some(&"v1"), Some(action)) = (segments.first(), segments.get(1)) else {
        return Ok(error(StatusCode::NOT_FOUND, "not_found"));
    };
    let rest = &segments[2..];
    let Some(target) = beneath(&api.tree, rest) else {
        return Ok(error(StatusCode::BAD_REQUEST, "bad_path"));
    };
    let response = match (request.method().clone(), *action) {
        (Method::GET, "meta") => match tokio::fs::metadata(&target).await {
            Ok(meta) => full(StatusCode::OK, meta_json(&meta)),
            Err(e) => io_error(&e),
        },
        (Method::GET, "list") => list(&target, &query).await,
        (Method::GET, "data") => read(&target, &request).await,
        (Method::PUT, "uploads") => receive(&api, rest, request).await,
        (Method::DELETE, "uploads") => {
            let id = rest.first().copied().unwrap_or("");
            let _ = tokio::fs::remove_file(api.uploads.join(id)).await;
            empty(StatusCode::NO_CONTENT)
        }
        (Method::POST, "commit") => commit(&api, rest, request).await,
        (Method::POST, "mkdir") => match tokio::fs::create_dir(&target).await {
            Ok(()) => empty(StatusCode::CREATED),
            Err(e) => io_error(&e),
        },
        (Method::DELETE, "dir") if target == api.tree => error(StatusCode::CONFLICT, "not_empty"),
        (Method::DELETE, "dir") => match tokio::fs::remove_dir(&target).await {
            Ok(()) => empty(StatusCode::NO_CONTENT),
            Err(e) => io_error(&e),
        },
        (Method::DELETE, "data") => match tokio::fs::metadata(&target).await {
            Ok(meta) if meta.is_dir() => error(StatusCode::CONFLICT, "is_a_dir"),
            _ => match tokio::fs::remove_file(&target).await {
                Ok(()) => empty(StatusCode::NO_CONTENT),
                Err(e) => io_error(&e),
            },
        },
        (Method::POST, "rename") => rename(&api, request).await,
        (Method::PUT, "mtime") => {
            let Some(body) = body_json(request).await else {
                return Ok(error(StatusCode::BAD_REQUEST, "bad_json"));
            };
            let seconds = body.get("modified").and_then(|v| v.as_u64()).unwrap_or(0);
            let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
            match std::fs::File::open(&target).and_then(|f| f.set_modified(time)) {
                Ok(()) => empty(StatusCode::NO_CONTENT),
                Err(e) => io_error(&e),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not_found"),
    };
    Ok(response)
}

async fn list(dir: &Path, query: &str) -> Response<Body> {
    let mut limit = 100;
    let mut after = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "limit" => limit = value.parse().unwrap_or(100),
            "after" => after = Some(value.into_owned()),
            _ => {}
        }
    }
    match tokio::fs::metadata(dir).await {
        Ok(meta) if !meta.is_dir() => return error(StatusCode::CONFLICT, "not_a_dir"),
        Ok(_) => {}
        Err(e) => return io_error(&e),
    }
    let mut names = Vec::new();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) => return io_error(&e),
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    let start = after.map_or(0, |after| names.partition_point(|n| *n <= after));
    let page: Vec<&String> = names[start..].iter().take(limit).collect();
    let mut out = Vec::new();
    for name in &page {
        if let Ok(meta) = tokio::fs::symlink_metadata(dir.join(name)).await {
            let mut value = meta_json(&meta);
            value["name"] = json!(name);
            out.push(value);
        }
    }
    full(
        StatusCode::OK,
        json!({ "entries": out, "more": start + page.len() < names.len() }),
    )
}

async fn read(path: &Path, request: &Request<Incoming>) -> Response<Body> {
    let offset: u64 = request
        .headers()
        .get(hyper::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let meta = match tokio::fs::metadata(path).await {
        Ok(meta) if meta.is_dir() => return error(StatusCode::CONFLICT, "is_a_dir"),
        Ok(meta) => meta,
        Err(e) => return io_error(&e),
    };
    if offset > meta.len() {
        return error(StatusCode::RANGE_NOT_SATISFIABLE, "bad_offset");
    }
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) => return io_error(&e),
    };
    if let Err(e) = file.seek(io::SeekFrom::Start(offset)).await {
        return io_error(&e);
    }
    let frames =
        futures_util::TryStreamExt::map_ok(tokio_util::io::ReaderStream::new(file), Frame::data);
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    response
}

async fn receive(api: &Api, rest: &[&str], request: Request<Incoming>) -> Response<Body> {
    let id = rest.first().copied().unwrap_or("");
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return error(StatusCode::BAD_REQUEST, "bad_id");
    }
    let path = api.uploads.join(id);
    let mut file = match tokio::fs::File::create(&path).await {
        Ok(file) => file,
        Err(e) => return io_error(&e),
    };
    let mut body = request.into_body();
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if file.write_all(&data).await.is_err() {
                        let _ = tokio::fs::remove_file(&path).await;
                        return error(StatusCode::INSUFFICIENT_STORAGE, "io");
                    }
                }
            }
            // A cut body: nothing of it is kept.
            Some(Err(_)) => {
                drop(file);
                let _ = tokio::fs::remove_file(&path).await;
                return error(StatusCode::BAD_REQUEST, "cut");
            }
        }
    }
    empty(StatusCode::CREATED)
}

async fn commit(api: &Api, rest: &[&str], request: Request<Incoming>) -> Response<Body> {
    let id = rest.first().copied().unwrap_or("").to_string();
    let upload = api.uploads.join(&id);
    let Some(body) = body_json(request).await else {
        return error(StatusCode::BAD_REQUEST, "bad_json");
    };
    let Some(target) = json_path(&api.tree, &body, "path") else {
        return error(StatusCode::BAD_REQUEST, "bad_path");
    };
    let parent = target.parent().unwrap_or(&api.tree);
    match tokio::fs::metadata(parent).await {
        Ok(meta) if !meta.is_dir() => return error(StatusCode::CONFLICT, "not_a_dir"),
        Ok(_) => {}
        Err(e) => return io_error(&e),
    }
    if tokio::fs::metadata(&target).await.is_ok_and(|m| m.is_dir()) {
        return error(StatusCode::CONFLICT, "is_a_dir");
    }
    let size = match tokio::fs::metadata(&upload).await {
        Ok(meta) => meta.len(),
        Err(e) => return io_error(&e),
    };
    match tokio::fs::rename(&upload, &target).await {
        Ok(()) => full(StatusCode::OK, json!({ "size": size })),
        Err(e) => io_error(&e),
    }
}

async fn rename(api: &Api, request: Request<Incoming>) -> Response<Body> {
    let Some(body) = body_json(request).await else {
        return error(StatusCode::BAD_REQUEST, "bad_json");
    };
    let (Some(from), Some(to)) = (
        json_path(&api.tree, &body, "from"),
        json_path(&api.tree, &body, "to"),
    ) else {
        return error(StatusCode::BAD_REQUEST, "bad_path");
    };
    if to.starts_with(&from) {
        return error(StatusCode::CONFLICT, "exists");
    }
    match tokio::fs::rename(&from, &to).await {
        Ok(()) => empty(StatusCode::NO_CONTENT),
        Err(e) => io_error(&e),
    }
}

/// A running API server over a fresh directory; stops when dropped.
struct ApiServer {
    url: reqwest::Url,
    dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApiServer {
    async fn start() -> ApiServer {
        let dir = tempfile::tempdir().unwrap();
        let api = Arc::new(Api {
            tree: dir.path().join("tree"),
            uploads: dir.path().join("uploads"),
        });
        std::fs::create_dir(&api.tree).unwrap();
        std::fs::create_dir(&api.uploads).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let task = tokio::spawn(async move {
            // Connections end with the server: aborting this task drops the set.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let api = api.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |r| handle(api.clone(), r));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ApiServer { url, dir, task }
    }

    fn tree(&self) -> PathBuf {
        self.dir.path().join("tree")
    }

    fn uploads_left(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("uploads"))
            .unwrap()
            .count()
    }
}

async fn fresh_root() -> (Arc<dyn Storage>, ApiServer) {
    let server = ApiServer::start().await;
    let storage = rest_storage::RestStorage::new(server.url.clone());
    (Arc::new(storage), server)
}

ftpgate_test_support::storage_suite!(fresh_root);

/// An FTP server in front of a fresh API server, on a runtime of its own thread.
struct Gateway {
    runtime: tokio::runtime::Runtime,
    api: Option<ApiServer>,
    addr: std::net::SocketAddr,
    stop: CancellationToken,
}

impl Gateway {
    fn start() -> Gateway {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let api = runtime.block_on(ApiServer::start());
        let storage = rest_storage::RestStorage::new(api.url.clone());
        let bound = runtime
            .block_on(
                Server::with_storage(Arc::new(rest_storage::OneApi(storage)))
                    .user("demo", "demo")
                    .listen("127.0.0.1:0")
                    .bind(),
            )
            .unwrap();
        let addr = bound.local_addrs()[0];
        let stop = CancellationToken::new();
        runtime.spawn(bound.run(stop.clone()));
        Gateway {
            runtime,
            api: Some(api),
            addr,
            stop,
        }
    }

    fn login(&self) -> FtpStream {
        let mut ftp = FtpStream::connect(self.addr).unwrap();
        ftp.login("demo", "demo").unwrap();
        ftp.transfer_type(FileType::Binary).unwrap();
        ftp
    }

    fn api(&self) -> &ApiServer {
        self.api.as_ref().unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
        let _guard = self.runtime.enter();
        self.api.take();
    }
}

#[test]
fn ftp_transfers_stream_through_the_api() {
    let gateway = Gateway::start();
    let mut ftp = gateway.login();
    let payload: Vec<u8> = (0..24 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    ftp.mkdir("dir").unwrap();
    ftp.put_file("dir/big.bin", &mut io::Cursor::new(payload.clone()))
        .unwrap();
    assert_eq!(
        std::fs::read(gateway.api().tree().join("dir/big.bin")).unwrap(),
        payload
    );
    assert_eq!(ftp.size("dir/big.bin").unwrap(), payload.len());
    assert_eq!(
        ftp.retr_as_buffer("dir/big.bin").unwrap().into_inner(),
        payload
    );
    // REST: a ranged GET.
    ftp.resume_transfer(20 * 1024 * 1024).unwrap();
    let tail = ftp.retr_as_buffer("dir/big.bin").unwrap().into_inner();
    assert_eq!(tail, payload[20 * 1024 * 1024..]);
    ftp.rename("dir/big.bin", "moved.bin").unwrap();
    assert!(gateway.api().tree().join("moved.bin").exists());
    ftp.rm("moved.bin").unwrap();
    ftp.rmdir("dir").unwrap();
    assert_eq!(std::fs::read_dir(gateway.api().tree()).unwrap().count(), 0);
    assert_eq!(gateway.api().uploads_left(), 0);
}

#[test]
fn a_listing_of_many_entries_is_read_page_by_page() {
    let gateway = Gateway::start();
    for i in 0..1000 {
        std::fs::write(gateway.api().tree().join(format!("f{i:04}")), b"x").unwrap();
    }
    let mut ftp = gateway.login();
    let mut names = ftp.nlst(None).unwrap();
    names.sort();
    let expected: Vec<String> = (0..1000).map(|i| format!("f{i:04}")).collect();
    assert_eq!(names, expected);
    let long = ftp.list(None).unwrap();
    assert_eq!(long.len(), 1000);
}

#[test]
fn an_aborted_upload_leaves_nothing_visible() {
    let gateway = Gateway::start();
    // By hand: ABOR while the data connection stays open, so the server cannot take the
    // connection's end for the end of the file.
    let control = std::net::TcpStream::connect(gateway.addr).unwrap();
    let mut reader = io::BufReader::new(control.try_clone().unwrap());
    let mut writer = control;
    let mut reply = |writer: &mut std::net::TcpStream, line: Option<&str>| -> String {
        if let Some(line) = line {
            writer.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        }
        let mut text = String::new();
        io::BufRead::read_line(&mut reader, &mut text).unwrap();
        text
    };
    assert!(reply(&mut writer, None).starts_with("220"));
    assert!(reply(&mut writer, Some("USER demo")).starts_with("331"));
    assert!(reply(&mut writer, Some("PASS demo")).starts_with("230"));
    assert!(reply(&mut writer, Some("TYPE I")).starts_with("200"));
    let epsv = reply(&mut writer, Some("EPSV"));
    let port: u16 = epsv
        .split("|||")
        .nth(1)
        .unwrap()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap();
    let mut data = std::net::TcpStream::connect((gateway.addr.ip(), port)).unwrap();
    assert!(reply(&mut writer, Some("STOR cut.bin")).starts_with("150"));
    data.write_all(&vec![7u8; 4 * 1024 * 1024]).unwrap();
    assert!(reply(&mut writer, Some("ABOR")).starts_with("426"));
    assert!(reply(&mut writer, None).starts_with("226"));
    drop(data);
    let mut ftp = gateway.login();
    // The aborted upload is discarded by the API server asynchronously.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gateway.api().uploads_left() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(gateway.api().uploads_left(), 0);
    assert!(!gateway.api().tree().join("cut.bin").exists());
    assert!(ftp.nlst(None).unwrap().is_empty());
}

#[test]
fn the_api_down_is_a_temporary_failure() {
    let mut gateway = Gateway::start();
    let mut ftp = gateway.login();
    std::fs::write(gateway.api().tree().join("a"), b"x").unwrap();
    assert_eq!(ftp.size("a").unwrap(), 1);
    {
        let _guard = gateway.runtime.enter();
        gateway.api.take();
    }
    let answer = ftp.size("a");
    assert!(
        matches!(answer, Err(suppaftp::FtpError::UnexpectedResponse(ref r)) if r.status.code() == 450),
        "{answer:?}"
    );
}
