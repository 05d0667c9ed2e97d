//! The operators' HTTP listener (`[admin]`): `/healthz`, `/readyz`, `/metrics`,
//! `/api/sessions` (and `DELETE /api/sessions/{id}`) and the `/status` page.
//!
//! Plain hyper 1 (HTTP/1 only, no framework: five routes, one token check). Every route but
//! `/healthz` needs `Authorization: Bearer TOKEN` when a token is configured, compared in
//! constant time; `/status` also takes it once as `?token=` (a browser cannot set the header on
//! a link), and the page's script then sends it as the header.
//!
//! The listener runs on the daemon's runtime next to the FTP listeners and stays up while the
//! server drains after SIGTERM/SIGINT: from the first moment of the drain `/readyz` answers 503,
//! so a load balancer stops sending clients while running transfers finish.

pub(crate) mod client;
mod sessions;

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ftpgate::prometheus_client::registry::Registry;
use ftpgate::{CancellationToken, SessionsHandle};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

/// At most this many admin connections at once (the rest wait in the listen queue).
const MAX_CONNECTIONS: usize = 64;

/// What the admin routes read.
pub(crate) struct Admin {
    /// The bearer token, if one is configured.
    pub(crate) token: Option<String>,
    /// Cancelled when the drain starts: `/readyz` turns 503.
    pub(crate) draining: CancellationToken,
    /// The metrics registry (the engine's, the daemon's own and the storage backends').
    pub(crate) registry: Arc<Registry>,
    /// The live sessions.
    pub(crate) sessions: SessionsHandle,
}

/// Binds every admin address (before privileges are dropped).
pub(crate) async fn bind(addrs: &[SocketAddr]) -> anyhow::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (admin): {e}"))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Serves the admin routes on `listeners` until the runtime ends.
pub(crate) fn spawn(listeners: Vec<TcpListener>, admin: Arc<Admin>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    for listener in listeners {
        if let Ok(addr) = listener.local_addr() {
            // Not println!: a closed standard output must not stop the server.
            let _ = writeln!(
                std::io::stdout(),
                "ftpgate: admin listener on http://{addr}"
            );
            info!(%addr, "admin listener");
        }
        tokio::spawn(accept_loop(listener, admin.clone(), permits.clone()));
    }
}

async fn accept_loop(listener: TcpListener, admin: Arc<Admin>, permits: Arc<Semaphore>) {
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                warn!(error = %e, "admin: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(route(&admin, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "admin connection ended with an error");
            }
            drop(permit);
        });
    }
}

type Body = Full<Bytes>;

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    response(status, "text/plain; charset=utf-8", body)
}

/// Whether `req` carries the token (always, without one configured). The header's token is
/// compared in constant time; `?token=` counts only where `query_ok` (the status page).
fn authorized(admin: &Admin, req: &Request<Incoming>, query_ok: bool) -> bool {
    let Some(token) = &admin.token else {
        return true;
    };
    let from_header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let from_query = || {
        req.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("token="))
                .map(str::to_string)
        })
    };
    let given = match from_header {
        Some(given) => given.to_string(),
        None if query_ok => match from_query() {
            Some(given) => given,
            None => return false,
        },
        None => return false,
    };
    given.as_bytes().ct_eq(token.as_bytes()).into()
}

async fn route(admin: &Admin, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if path == "/healthz" {
        return match method {
            Method::GET | Method::HEAD => text(StatusCode::OK, "ok\n"),
            _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        };
    }
    if !authorized(admin, &req, path == "/status") {
        let mut refused = text(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required\n",
        );
        refused
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return refused;
    }
    match (method, path.as_str()) {
        (Method::GET | Method::HEAD, "/readyz") => {
            if admin.draining.is_cancelled() {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else {
                text(StatusCode::OK, "ready\n")
            }
        }
        (Method::GET, "/metrics") => {
            admin.sessions.update_gauges();
            let mut out = String::new();
            match ftpgate::prometheus_client::encoding::prometheus_text::encode(
                &mut out,
                &admin.registry,
            ) {
                Ok(()) => response(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    out,
                ),
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot encode the metrics\n",
                ),
            }
        }
        (Method::GET, "/api/sessions") => response(
            StatusCode::OK,
            "application/json",
            sessions::json(&admin.sessions.snapshot()),
        ),
        (Method::DELETE, p) if p.starts_with("/api/sessions/") => {
            let id = &p["/api/sessions/".len()..];
            match id.parse::<u64>() {
                Ok(id) if admin.sessions.end_session(ftpgate::SessionId::from_u64(id)) => {
                    text(StatusCode::OK, "session ended\n")
                }
                Ok(_) => text(StatusCode::NOT_FOUND, "no such session\n"),
                Err(_) => text(StatusCode::NOT_FOUND, "no such session\n"),
            }
        }
        (Method::GET, "/status") => {
            let mut page = response(
                StatusCode::OK,
                "text/html; charset=utf-8",
                Bytes::from_static(STATUS_PAGE.as_bytes()),
            );
            page.headers_mut().insert(
                "content-security-policy",
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
                ),
            );
            page.headers_mut()
                .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
            page
        }
        (_, "/readyz" | "/metrics" | "/api/sessions" | "/status") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The status page: self-contained HTML, CSS and script (nothing loaded from elsewhere).
const STATUS_PAGE: &str = include_str!("status.html");
