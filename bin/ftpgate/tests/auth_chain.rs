//! The `[[auth]]` chain in the running daemon, with login services served by the test: SIGHUP
//! rebuilds the chain from the edited file; a login the chain cannot decide is a
//! `login_unavailable` event (hooks, JSON log), never a counted failure; and quotas by number of
//! files, for `[[users]]` and for users the HTTP service returns.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// A login service on a loopback port: `answer(username, password)` gives the status and
/// body. Serves until the test process ends.
fn login_service(answer: fn(&str, &str) -> (u16, String)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let login: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let (status, body) = answer(
                login["username"].as_str().unwrap_or(""),
                login["password"].as_str().unwrap_or(""),
            );
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

fn home_of(name: &str) -> String {
    std::env::temp_dir()
        .join(format!("ftpgate-auth-chain-{}-{name}", std::process::id()))
        .to_string_lossy()
        .into_owned()
}

/// Service A: `ann` / `pw`.
fn service_a(user: &str, password: &str) -> (u16, String) {
    match (user, password) {
        ("ann", "pw") => (200, format!(r#"{{"home": "{}"}}"#, home_of("ann"))),
        ("ann", _) => (401, String::new()),
        _ => (404, String::new()),
    }
}

/// Service B: `bob` / `pw`; refuses `ann`.
fn service_b(user: &str, password: &str) -> (u16, String) {
    match (user, password) {
        ("bob", "pw") => (200, format!(r#"{{"home": "{}"}}"#, home_of("bob"))),
        ("ann", _) => (403, String::new()),
        _ => (404, String::new()),
    }
}

/// Service Q: `quinn` / `pw` with at most two files.
fn service_q(user: &str, password: &str) -> (u16, String) {
    match (user, password) {
        ("quinn", "pw") => (
            200,
            format!(r#"{{"home": "{}", "quota_files": 2}}"#, home_of("quinn")),
        ),
        _ => (404, String::new()),
    }
}

fn write_config(path: &Path, auth: &str, extra: &str) {
    std::fs::write(
        path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nlogin_failure_delay_ms = 10\n{extra}\n{auth}"
        ),
    )
    .unwrap();
}

fn hup(daemon: &Daemon) {
    let status = Command::new("kill")
        .arg("-HUP")
        .arg(daemon.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The reply to PASS once it starts with `want`, trying for ten seconds (a reload is applied
/// shortly after the signal).
fn login_until(addr: SocketAddr, user: &str, password: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = Client::connect(addr).try_login(user, password);
        if reply.starts_with(want) || Instant::now() > deadline {
            return reply;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sighup_rebuilds_the_auth_chain() {
    for name in ["ann", "bob"] {
        std::fs::create_dir_all(home_of(name)).unwrap();
    }
    let (a, b) = (login_service(service_a), login_service(service_b));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ftpgate.toml");
    let http = |addr: SocketAddr| format!("[[auth]]\ntype = \"http\"\nurl = \"http://{addr}/\"\n");
    write_config(&path, &http(a), "");
    let (daemon, addr) = Daemon::start(dir.path(), &["-c", path.to_str().unwrap()], &[]);
    let reply = Client::connect(addr).try_login("ann", "pw");
    assert!(reply.starts_with("230"), "{reply}");
    let reply = Client::connect(addr).try_login("bob", "pw");
    assert!(
        reply.starts_with("530"),
        "service A does not know bob: {reply}"
    );

    // The chain's URL changes: service B decides now.
    write_config(&path, &http(b), "");
    hup(&daemon);
    let reply = login_until(addr, "bob", "pw", "230");
    assert!(reply.starts_with("230"), "bob after the reload: {reply}");
    let reply = Client::connect(addr).try_login("ann", "pw");
    assert!(reply.starts_with("530"), "service B refuses ann: {reply}");

    // The entry goes: only the (empty) [[users]] are left, and nobody logs in.
    write_config(&path, "", "");
    hup(&daemon);
    let reply = login_until(addr, "bob", "pw", "530");
    assert!(
        reply.starts_with("530"),
        "bob after the entry went: {reply}"
    );
    daemon.terminate();
}

#[test]
fn unavailable_logins_are_events_and_never_bans() {
    // A port nobody listens on: every login the service should decide is unavailable.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.txt");
    let log = dir.path().join("ftpgate.json");
    let path = dir.path().join("ftpgate.toml");
    write_config(
        &path,
        &format!(
            "[[auth]]\ntype = \"http\"\nurl = \"http://{closed}/\"\ntimeout_secs = 2\n\n\
             [[hooks]]\nevents = [\"login_failed\", \"login_unavailable\"]\n\
             command = [\"/bin/sh\", \"-c\", \"echo \\\"$FTPGATE_EVENT $FTPGATE_USER $FTPGATE_REASON\\\" >> {}\"]\n",
            events.display()
        ),
        // A low ban threshold, to show that unavailable logins never reach it.
        &format!(
            "ban_after_failures = 2\n\n[log]\nformat = \"json\"\nfile = \"{}\"\n",
            log.display()
        ),
    );
    let (daemon, addr) = Daemon::start(dir.path(), &["-c", path.to_str().unwrap()], &[]);
    // Three times the ban threshold: 421 each time, and the address is never banned.
    for _ in 0..6 {
        let mut client = Client::connect(addr);
        let reply = client.try_login("ann", "pw");
        assert!(reply.starts_with("421"), "{reply}");
    }
    let reply = Client::connect(addr).ask("NOOP");
    assert!(reply.starts_with("200"), "not banned: {reply}");

    // The hook saw each as login_unavailable (reason "unavailable"), none as login_failed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        let seen = std::fs::read_to_string(&events).unwrap_or_default();
        if seen.lines().count() >= 6 || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines.len(), 6, "{seen}");
    assert!(
        lines
            .iter()
            .all(|l| *l == "login_unavailable ann unavailable"),
        "{seen}"
    );
    daemon.terminate();
    // The JSON log has the line, with the authenticator's reason.
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("authenticator is unavailable"))
        })
        .unwrap_or_else(|| panic!("no unavailable line in {text}"));
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["user"], "ann", "{line}");
    assert!(
        line["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&closed.to_string())),
        "{line}"
    );
}

/// The reply to STOR `name` once the data connection is open: 150 (then the upload of
/// `bytes` and its end) or a refusal.
fn store(client: &mut Client, name: &str, bytes: &[u8]) -> String {
    let mut data = client.data();
    let first = client.ask(&format!("STOR {name}"));
    if !first.starts_with("150") {
        return first;
    }
    data.write_all(bytes).unwrap();
    drop(data);
    client.reply()
}

/// Two files at most, one there already: the second new file is refused whole, replacing
/// does not count, deleting frees a place.
fn check_quota_of_two_files(addr: SocketAddr, user: &str, home: &Path) {
    std::fs::write(home.join("old.txt"), b"there before").unwrap();
    let mut client = Client::login(addr, user, "pw");
    assert!(client.ask("TYPE I").starts_with("200"));
    let reply = store(&mut client, "a.txt", b"a");
    assert!(reply.starts_with("226"), "{reply}");
    let reply = store(&mut client, "b.txt", b"b");
    assert!(
        reply.starts_with("552") && reply.contains("quota of 2 files"),
        "{reply}"
    );
    assert!(
        !home.join("b.txt").exists(),
        "a refused upload leaves nothing"
    );
    let reply = store(&mut client, "a.txt", b"replaced");
    assert!(
        reply.starts_with("226"),
        "replacing counts no new file: {reply}"
    );
    assert_eq!(std::fs::read(home.join("a.txt")).unwrap(), b"replaced");
    let _data = client.data();
    let reply = client.ask("STOU");
    assert!(reply.starts_with("552"), "STOU makes a new file: {reply}");
    drop(_data);
    assert!(client.ask("DELE old.txt").starts_with("250"));
    let reply = store(&mut client, "b.txt", b"b");
    assert!(
        reply.starts_with("226"),
        "a deleted file freed a place: {reply}"
    );
    let reply = store(&mut client, "c.txt", b"c");
    assert!(reply.starts_with("552"), "{reply}");
    client.ask("QUIT");
    let mut names: Vec<String> = std::fs::read_dir(home)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a.txt", "b.txt"]);
}

#[test]
fn quotas_by_number_of_files() {
    let dir = tempfile::tempdir().unwrap();
    let amy = dir.path().join("amy");
    std::fs::create_dir_all(&amy).unwrap();
    let quinn = std::path::PathBuf::from(home_of("quinn"));
    let _ = std::fs::remove_dir_all(&quinn);
    std::fs::create_dir_all(&quinn).unwrap();
    let service = login_service(service_q);
    let path = dir.path().join("ftpgate.toml");
    write_config(
        &path,
        &format!(
            "[[auth]]\ntype = \"file\"\n\n[[auth]]\ntype = \"http\"\nurl = \"http://{service}/\"\n\n\
             [[users]]\nname = \"amy\"\npassword_hash = \"{}\"\nhome = \"{}\"\nquota_files = 2\n",
            hash("pw"),
            amy.display()
        ),
        "",
    );
    let (daemon, addr) = Daemon::start(dir.path(), &["-c", path.to_str().unwrap()], &[]);
    check_quota_of_two_files(addr, "amy", &amy);
    check_quota_of_two_files(addr, "quinn", &quinn);
    daemon.terminate();
    let _ = std::fs::remove_dir_all(&quinn);
}
