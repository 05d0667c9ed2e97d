//! The library's operator API: the live sessions (`BoundServer::sessions`), ending one, the
//! session id in events, and the metrics (`Server::with_metrics`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ftpgate::prometheus_client::encoding::prometheus_text::encode;
use ftpgate::prometheus_client::registry::Registry;
use ftpgate::{Event, Metrics, SessionInfo};

fn wait_for(
    server: &TestServer,
    what: &str,
    check: impl Fn(&[SessionInfo]) -> bool,
) -> Vec<SessionInfo> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sessions = server.sessions.snapshot();
        if check(&sessions) {
            return sessions;
        }
        assert!(Instant::now() < deadline, "never {what}: {sessions:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sessions_are_listed_updated_and_ended_through_the_session() {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let server = TestServer::start_with(Options {
        metrics: Some(metrics),
        events: Some(Arc::new(move |e: &Event| {
            seen.lock().unwrap().push(e.clone())
        })),
        ..Options::default()
    });

    let mut idle = server.raw();
    assert_eq!(idle.code("NOOP"), 200);
    let mut raw = server.raw_logged_in();
    let sessions = wait_for(&server, "two sessions", |s| s.len() == 2);
    let (before, after) = (&sessions[0], &sessions[1]);
    assert!(before.id < after.id, "ids grow with each accept");
    assert_eq!(before.user, None);
    assert_eq!(before.last_command, Some("NOOP"));
    assert_eq!(after.user.as_deref(), Some(USER));
    assert_eq!(after.last_command, Some("PASS"));
    assert_eq!(after.listener, server.addr);
    assert!(!after.tls_control && !after.tls_data);
    assert!(after.transfer.is_none());
    let id = after.id;
    // The login event names the same session.
    assert!(events.lock().unwrap().iter().any(
        |e| matches!(e, Event::Login { session, user, .. } if *session == id && user == USER)
    ));

    // An upload in progress shows its command, path and bytes so far.
    assert_eq!(raw.code("TYPE I"), 200);
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.cmd("STOR live.bin").0, 150);
    data.write_all(&[3u8; 5000]).unwrap();
    let sessions = wait_for(&server, "5000 bytes", |s| {
        s.iter()
            .any(|s| s.transfer.as_ref().is_some_and(|t| t.bytes == 5000))
    });
    let transfer = sessions[1].transfer.clone().unwrap();
    assert_eq!(transfer.command, "STOR");
    assert_eq!(transfer.path, "/live.bin");
    assert_eq!(transfer.size, None);

    // Ended: the transfer is aborted, the client reads 421, the connection closes.
    assert!(server.sessions.end_session(id));
    let (code, text) = raw.reply();
    assert_eq!(code, 421, "{text}");
    assert!(raw.is_closed());
    drop(data);
    wait_for(&server, "one session left", |s| s.len() == 1);
    assert!(
        !server.path("live.bin").exists(),
        "the aborted upload left a file"
    );
    assert!(!server.sessions.end_session(id), "an ended session is gone");
    let transfer_event = events
        .lock()
        .unwrap()
        .iter()
        .find_map(|e| match e {
            Event::Transfer(t) => Some(t.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(transfer_event.session, id);
    assert!(!transfer_event.complete);

    let mut page = String::new();
    encode(&mut page, &registry).unwrap();
    for line in [
        "ftpgate_connections_active 1",
        "ftpgate_commands_total{command=\"STOR\"} 1",
        "ftpgate_commands_total{command=\"NOOP\"} 1",
        "ftpgate_transfers_total{direction=\"upload\",result=\"aborted\"} 1",
        "ftpgate_transfer_bytes_total{direction=\"upload\"} 5000",
        "ftpgate_logins_total{result=\"ok\",method=\"password\"} 1",
    ] {
        assert!(page.lines().any(|l| l == line), "no {line:?} in\n{page}");
    }
}
