//! The authenticator against a real HTTP service (hyper on 127.0.0.1:0) that answers by user
//! name and counts the requests it gets.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ftpgate_auth_http::HttpAuthenticator;
use ftpgate_core::{
    AuthChain, AuthError, Authenticator, CertificateDer, LoginRequest, Password, Permissions, User,
};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Default)]
struct Seen {
    calls: AtomicUsize,
    last: Mutex<Option<serde_json::Value>>,
    authorization: Mutex<Option<String>>,
}

struct Service {
    url: String,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    seen: Arc<Seen>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    *seen.authorization.lock().unwrap() = request
        .headers()
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let login: serde_json::Value = serde_json::from_slice(&body).unwrap();
    *seen.last.lock().unwrap() = Some(login.clone());
    let user = login["username"].as_str().unwrap().to_string();
    let password = login["password"].as_str().unwrap().to_string();
    let (status, body) = match (user.as_str(), password.as_str()) {
        ("ann", "good") => (
            StatusCode::OK,
            r#"{"home": "/srv/ann", "permissions": "elr", "quota_bytes": 1000, "quota_files": 7, "cache_secs": 60}"#
                .to_string(),
        ),
        ("ann", _) => (StatusCode::UNAUTHORIZED, String::new()),
        ("locked", _) => (StatusCode::FORBIDDEN, String::new()),
        ("nocache", _) => (StatusCode::OK, r#"{"home": "/srv/nocache"}"#.to_string()),
        ("slow", _) => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (StatusCode::OK, r#"{"home": "/srv/slow"}"#.to_string())
        }
        ("garbled", _) => (StatusCode::OK, "<html>oops</html>".to_string()),
        ("nohome", _) => (StatusCode::OK, r#"{"permissions": "elr"}"#.to_string()),
        ("badperms", _) => (
            StatusCode::OK,
            r#"{"home": "/srv/x", "permissions": "elrZ"}"#.to_string(),
        ),
        ("broken", _) => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
        _ => (StatusCode::NOT_FOUND, String::new()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    Ok(response)
}

async fn service() -> Service {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/login", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let shared = seen.clone();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let seen = shared.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |r| answer(seen.clone(), r));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Service { url, seen, task }
}

fn authenticator(service: &Service) -> HttpAuthenticator {
    let headers = [("Authorization".to_string(), "Bearer t0ken".to_string())];
    HttpAuthenticator::new(&service.url, Duration::from_secs(1), &headers).unwrap()
}

async fn login(auth: &dyn Authenticator, name: &str, pw: &str) -> Result<User, AuthError> {
    let password = Password::new(pw);
    auth.authenticate(&LoginRequest::new(name, &password)).await
}

#[tokio::test]
async fn the_service_accepts_rejects_and_does_not_know() {
    let service = service().await;
    let auth = authenticator(&service);
    let user = login(&auth, "ann", "good").await.unwrap();
    assert_eq!(user.name, "ann");
    assert_eq!(user.home, "/srv/ann");
    assert_eq!(
        user.permissions,
        ftpgate_core::PermissionMap::uniform(Permissions::parse("elr").unwrap())
    );
    assert_eq!(user.quota_bytes, Some(1000));
    assert_eq!(user.quota_files, Some(7));
    assert_eq!(
        service.seen.authorization.lock().unwrap().as_deref(),
        Some("Bearer t0ken")
    );
    // Without permissions in the answer, the user may do everything in the home.
    let user = login(&auth, "nocache", "x").await.unwrap();
    assert_eq!(
        user.permissions,
        ftpgate_core::PermissionMap::uniform(Permissions::ALL)
    );
    assert!(matches!(
        login(&auth, "ann", "bad").await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(matches!(
        login(&auth, "locked", "x").await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(matches!(
        login(&auth, "stranger", "x").await,
        Err(AuthError::UnknownUser)
    ));
}

#[tokio::test]
async fn the_request_describes_the_connection() {
    let service = service().await;
    let auth = authenticator(&service);
    let password = Password::new("good");
    let client: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:21".parse().unwrap();
    let certs = [CertificateDer::from(vec![1u8, 2, 3])];
    let request = LoginRequest::new("ann", &password)
        .with_addresses(client, local)
        .with_tls(true, &certs)
        .with_host(Some("ftp.example.org"))
        .with_session_id(42);
    auth.authenticate(&request).await.unwrap();
    let sent = service.seen.last.lock().unwrap().clone().unwrap();
    assert_eq!(sent["username"], "ann");
    assert_eq!(sent["password"], "good");
    assert_eq!(sent["client_ip"], "192.0.2.7");
    assert_eq!(sent["protocol"], "ftps");
    assert_eq!(
        sent["tls_client_cert"],
        "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n"
    );
    assert_eq!(sent["host"], "ftp.example.org");
    assert_eq!(sent["session_id"], 42);

    login(&auth, "nocache", "x").await.unwrap();
    let sent = service.seen.last.lock().unwrap().clone().unwrap();
    assert_eq!(sent["protocol"], "ftp");
    assert!(sent["tls_client_cert"].is_null());
    assert!(sent["host"].is_null());
}

#[tokio::test]
async fn trouble_with_the_service_is_unavailable() {
    let service = service().await;
    let auth = authenticator(&service);
    let start = Instant::now();
    let slow = login(&auth, "slow", "x").await;
    assert!(matches!(slow, Err(AuthError::Unavailable(_))), "{slow:?}");
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "the 1 s timeout applies: {:?}",
        start.elapsed()
    );
    for name in ["garbled", "nohome", "badperms", "broken"] {
        let result = login(&auth, name, "x").await;
        assert!(
            matches!(result, Err(AuthError::Unavailable(_))),
            "{name}: {result:?}"
        );
    }
    // Nobody listening.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let gone = HttpAuthenticator::new(
        &format!("http://127.0.0.1:{port}/"),
        Duration::from_secs(1),
        &[],
    )
    .unwrap();
    assert!(matches!(
        login(&gone, "ann", "good").await,
        Err(AuthError::Unavailable(_))
    ));
}

#[tokio::test]
async fn accepted_logins_are_cached_for_cache_secs_and_rejections_never() {
    let service = service().await;
    let auth = authenticator(&service);
    for _ in 0..5 {
        login(&auth, "ann", "good").await.unwrap();
    }
    assert_eq!(service.seen.calls.load(Ordering::SeqCst), 1);
    // Another password is not served from the cache.
    for _ in 0..3 {
        assert!(login(&auth, "ann", "bad").await.is_err());
    }
    assert_eq!(service.seen.calls.load(Ordering::SeqCst), 4);
    // No cache_secs in the answer: every login asks.
    for _ in 0..3 {
        login(&auth, "nocache", "x").await.unwrap();
    }
    assert_eq!(service.seen.calls.load(Ordering::SeqCst), 7);
}

#[tokio::test]
async fn in_a_chain_an_unknown_user_goes_on_to_the_next() {
    let service = service().await;
    let users = ftpgate_auth_file::FileAuthenticator::new(
        vec![ftpgate_auth_file::UserEntry::new(
            "local",
            ftpgate_auth_file::hash_password("pw"),
            "/srv/local",
            Permissions::ALL,
        )],
        None,
    )
    .unwrap();
    let chain = AuthChain::new()
        .push(Arc::new(authenticator(&service)), false)
        .push(Arc::new(users), false);
    assert_eq!(login(&chain, "ann", "good").await.unwrap().home, "/srv/ann");
    assert_eq!(
        login(&chain, "local", "pw").await.unwrap().home,
        "/srv/local"
    );
    assert!(matches!(
        login(&chain, "local", "nope").await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(matches!(
        login(&chain, "ann", "bad").await,
        Err(AuthError::InvalidCredentials)
    ));
    // The service is down: the chain stops there (no fallthrough), even for a local user.
    drop(service);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(
        login(&chain, "local", "pw").await,
        Err(AuthError::Unavailable(_))
    ));
}
