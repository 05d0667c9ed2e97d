//! The admin listener: health and readiness through a drain, the token, metrics counted over a
//! scripted session, the live sessions (and ending one), and `ftpgate status`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const TOKEN: &str = "s3cret-admin-token-0123";

/// A daemon with an admin listener, killed when dropped.
struct Server {
    child: Child,
    ftp: SocketAddr,
    admin: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `ftpgate serve` with user amy (password "pw", home `dir/home`), the admin listener on
    /// a free port with [`TOKEN`], and `extra` appended to the config.
    fn start(dir: &Path, extra: &str) -> Server {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let config = dir.join("ftpgate.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[admin]\nlisten = [\"127.0.0.1:0\"]\ntoken = \"{TOKEN}\"\n\n\
                 [[users]]\nname = \"amy\"\npassword_hash = \"{}\"\nhome = \"{}\"\n{extra}\n",
                hash("pw"),
                home.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("ftpgate.log")).unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--config", config.to_str().unwrap()])
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let (mut ftp, mut admin) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while ftp.is_none() || admin.is_none() {
            assert!(Instant::now() < deadline, "the daemon did not start");
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "the daemon exited"
            );
            if let Some(rest) = line.strip_prefix("ftpgate: listening on ") {
                ftp = rest.split_whitespace().next().map(|a| a.parse().unwrap());
            }
            if let Some(rest) = line
                .trim()
                .strip_prefix("ftpgate: admin listener on http://")
            {
                admin = Some(rest.parse().unwrap());
            }
        }
        // Keep reading what the daemon prints, so it never writes to a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        Server {
            child,
            ftp: ftp.unwrap(),
            admin: admin.unwrap(),
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// One HTTP/1.1 request: status and body.
fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn sessions(server: &Server) -> serde_json::Value {
    let (status, body) = http(server.admin, "GET", "/api/sessions", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits until `check` holds for the live sessions, and returns them.
fn wait_for_sessions(
    server: &Server,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let doc = sessions(server);
        if check(&doc) {
            return doc;
        }
        assert!(Instant::now() < deadline, "never {what}: {doc}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The samples of a Prometheus text page, by name and labels as written.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn metrics(server: &Server) -> (String, HashMap<String, f64>) {
    let (status, body) = http(server.admin, "GET", "/metrics", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let parsed = samples(&body);
    (body, parsed)
}

/// promtool's verdict on a metrics page, if promtool is installed (scripts/test.sh installs it;
/// FTPGATE_REQUIRE_PROMTOOL=1 makes its absence a failure).
fn promtool_check(page: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(_) => {
            assert!(
                std::env::var("FTPGATE_REQUIRE_PROMTOOL").is_err(),
                "promtool is not installed"
            );
            eprintln!("promtool not installed: the format check is skipped");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool exits 3 for lint warnings alone (e.g. naming advice), 1 for a bad page.
    assert!(
        out.status.success() || out.status.code() == Some(3),
        "promtool: {text}"
    );
    assert!(!text.contains("error"), "promtool: {text}");
}

#[test]
fn metrics_count_a_scripted_session_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let (_, before) = metrics(&server);
    let delta = |after: &HashMap<String, f64>, key: &str| {
        after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
    };

    // A failed login on a connection of its own.
    let mut intruder = Client::connect(server.ftp);
    assert!(intruder.try_login("amy", "wrong").starts_with("530"));
    drop(intruder);

    let mut ftp = Client::connect(server.ftp);
    assert!(ftp.try_login("amy", "pw").starts_with("230"));
    assert!(ftp.ask("TYPE I").starts_with("200"));
    // Upload 1000 bytes.
    let mut data = ftp.data();
    assert!(ftp.ask("STOR up.bin").starts_with("150"));
    data.write_all(&[7u8; 1000]).unwrap();
    drop(data);
    assert!(ftp.reply().starts_with("226"));
    // Download them.
    let mut data = ftp.data();
    assert!(ftp.ask("RETR up.bin").starts_with("150"));
    let mut back = Vec::new();
    data.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), 1000);
    assert!(ftp.reply().starts_with("226"));
    // An upload aborted after 300 bytes (seen arriving in the live sessions).
    let mut data = ftp.data();
    assert!(ftp.ask("STOR aborted.bin").starts_with("150"));
    data.write_all(&[1u8; 300]).unwrap();
    wait_for_sessions(&server, "300 bytes arrived", |doc| {
        doc["sessions"][0]["transfer"]["bytes"] == 300
    });
    let abort = ftp.ask("ABOR");
    let abort = if abort.starts_with("426") {
        abort + &ftp.reply()
    } else {
        abort
    };
    assert!(abort.contains("226"), "{abort}");
    drop(data);
    assert!(!dir.path().join("home/aborted.bin").exists());
    // A listing.
    let mut data = ftp.data();
    assert!(ftp.ask("LIST").starts_with("150"));
    let mut listing = String::new();
    data.read_to_string(&mut listing).unwrap();
    assert!(listing.contains("up.bin"));
    assert!(ftp.reply().starts_with("226"));
    assert!(ftp.ask("QUIT").starts_with("221"));
    drop(ftp);
    wait_for_sessions(&server, "all sessions gone", |doc| {
        doc["totals"]["sessions"] == 0
    });

    let (page, after) = metrics(&server);
    let listener = format!(
        "ftpgate_connections_total{{listener=\"{}\",tls=\"none\"}}",
        server.ftp
    );
    let expected: &[(&str, f64)] = &[
        (&listener, 2.0),
        ("ftpgate_connections_active", 0.0),
        (
            "ftpgate_logins_total{result=\"ok\",method=\"password\"}",
            1.0,
        ),
        (
            "ftpgate_logins_total{result=\"failed\",method=\"password\"}",
            1.0,
        ),
        ("ftpgate_login_duration_seconds_count", 2.0),
        ("ftpgate_commands_total{command=\"USER\"}", 2.0),
        ("ftpgate_commands_total{command=\"PASS\"}", 2.0),
        ("ftpgate_commands_total{command=\"STOR\"}", 2.0),
        ("ftpgate_commands_total{command=\"RETR\"}", 1.0),
        ("ftpgate_commands_total{command=\"LIST\"}", 1.0),
        ("ftpgate_commands_total{command=\"ABOR\"}", 1.0),
        ("ftpgate_commands_total{command=\"EPSV\"}", 4.0),
        ("ftpgate_commands_total{command=\"unknown\"}", 0.0),
        ("ftpgate_replies_total{class=\"1xx\"}", 4.0),
        ("ftpgate_replies_total{class=\"4xx\"}", 1.0),
        ("ftpgate_replies_total{class=\"5xx\"}", 1.0),
        (
            "ftpgate_transfers_total{direction=\"upload\",result=\"complete\"}",
            1.0,
        ),
        (
            "ftpgate_transfers_total{direction=\"upload\",result=\"aborted\"}",
            1.0,
        ),
        (
            "ftpgate_transfers_total{direction=\"download\",result=\"complete\"}",
            1.0,
        ),
        (
            "ftpgate_transfers_total{direction=\"list\",result=\"complete\"}",
            1.0,
        ),
        ("ftpgate_transfer_bytes_total{direction=\"upload\"}", 1300.0),
        (
            "ftpgate_transfer_bytes_total{direction=\"download\"}",
            1000.0,
        ),
        (
            "ftpgate_transfer_size_bytes_count{direction=\"upload\"}",
            2.0,
        ),
        (
            "ftpgate_transfer_size_bytes_sum{direction=\"upload\"}",
            1300.0,
        ),
        (
            "ftpgate_transfer_duration_seconds_count{direction=\"download\"}",
            1.0,
        ),
        ("ftpgate_passive_ports_in_use", 0.0),
        ("ftpgate_bans_active", 0.0),
        ("ftpgate_timeouts_total{reason=\"idle\"}", 0.0),
    ];
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(key, want)| delta(&after, key) != *want)
        .map(|(key, want)| format!("{key}: {} (expected {want})", delta(&after, key)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}\n{page}");
    assert_eq!(after["ftpgate_build_info{version=\"0.1.0\"}"], 1.0);
    assert!(!page.contains("amy"), "no user names in labels");
    promtool_check(&page);
}

#[test]
fn the_token_is_required_everywhere_but_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    for path in ["/metrics", "/api/sessions", "/readyz", "/status"] {
        assert_eq!(http(server.admin, "GET", path, None).0, 401, "{path}");
        assert_eq!(
            http(server.admin, "GET", path, Some("s3cret-admin-token-0124")).0,
            401,
            "{path}"
        );
        assert_eq!(
            http(server.admin, "GET", path, Some(TOKEN)).0,
            200,
            "{path}"
        );
    }
    assert_eq!(
        http(server.admin, "GET", "/healthz", None),
        (200, "ok\n".into())
    );
    // The status page alone takes the token once in its URL (a browser cannot send a header).
    let with_query = format!("/status?token={TOKEN}");
    assert_eq!(http(server.admin, "GET", &with_query, None).0, 200);
    assert_eq!(http(server.admin, "GET", "/status?token=nope", None).0, 401);
    let metrics_query = format!("/metrics?token={TOKEN}");
    assert_eq!(http(server.admin, "GET", &metrics_query, None).0, 401);
    assert_eq!(http(server.admin, "DELETE", "/api/sessions/1", None).0, 401);
    assert_eq!(http(server.admin, "GET", "/nothing", Some(TOKEN)).0, 404);
}

#[test]
fn readyz_turns_503_at_sigterm_while_a_slow_upload_finishes_with_226() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    assert_eq!(
        http(server.admin, "GET", "/readyz", Some(TOKEN)),
        (200, "ready\n".into())
    );
    let mut ftp = Client::connect(server.ftp);
    assert!(ftp.try_login("amy", "pw").starts_with("230"));
    assert!(ftp.ask("TYPE I").starts_with("200"));
    let mut data = ftp.data();
    assert!(ftp.ask("STOR slow.bin").starts_with("150"));
    // The client sends at about 640 KiB/s for 2 s; SIGTERM comes in the middle.
    let chunk = vec![5u8; 32 * 1024];
    let mut sent = 0;
    for i in 0..40 {
        data.write_all(&chunk).unwrap();
        sent += chunk.len();
        std::thread::sleep(Duration::from_millis(50));
        if i == 10 {
            server.signal("-TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while http(server.admin, "GET", "/readyz", Some(TOKEN)).0 != 503 {
                assert!(Instant::now() < deadline, "/readyz never turned 503");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if i > 10 {
            // Draining: not ready, still alive, and the transfer goes on.
            assert_eq!(
                http(server.admin, "GET", "/readyz", Some(TOKEN)),
                (503, "draining\n".into())
            );
            assert_eq!(http(server.admin, "GET", "/healthz", None).0, 200);
        }
    }
    let status = Command::new(BIN)
        .args(["healthcheck", "--ready", "--admin"])
        .arg(format!("http://{}", server.admin))
        .args(["--token", TOKEN])
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(1),
        "healthcheck --ready while draining"
    );
    let live = Command::new(BIN)
        .args(["healthcheck", "--admin"])
        .arg(format!("http://{}", server.admin))
        .output()
        .unwrap();
    assert!(live.status.success(), "healthcheck while draining");
    drop(data);
    let end = ftp.reply();
    assert!(end.starts_with("226"), "{end}");
    assert_eq!(
        std::fs::metadata(dir.path().join("home/slow.bin"))
            .unwrap()
            .len(),
        sent as u64
    );
    // Then the session closes and the daemon exits.
    let mut server = server;
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the daemon did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn deleting_a_session_ends_it_with_421_and_its_upload_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let mut ftp = Client::connect(server.ftp);
    assert!(ftp.try_login("amy", "pw").starts_with("230"));
    assert!(ftp.ask("TYPE I").starts_with("200"));
    let mut data = ftp.data();
    assert!(ftp.ask("STOR cut.bin").starts_with("150"));
    data.write_all(&[9u8; 70_000]).unwrap();
    let doc = wait_for_sessions(&server, "the upload's bytes arrived", |doc| {
        doc["sessions"][0]["transfer"]["bytes"] == 70_000
    });
    let session = &doc["sessions"][0];
    assert_eq!(session["user"], "amy");
    assert_eq!(session["last_command"], "STOR");
    assert_eq!(session["listener"], server.ftp.to_string());
    assert_eq!(session["transfer"]["command"], "STOR");
    assert_eq!(session["transfer"]["path"], "/cut.bin");
    assert_eq!(session["tls"]["control"], false);
    let id = session["id"].as_u64().unwrap();

    let path = format!("/api/sessions/{id}");
    assert_eq!(http(server.admin, "DELETE", &path, Some(TOKEN)).0, 200);
    let reply = ftp.reply();
    assert!(reply.starts_with("421"), "{reply}");
    // The connection is closed after it.
    assert_eq!(ftp.reply(), "");
    drop(data);
    wait_for_sessions(&server, "the session gone", |doc| {
        doc["totals"]["sessions"] == 0
    });
    let left: Vec<_> = std::fs::read_dir(dir.path().join("home"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the aborted upload left {left:?}");
    assert_eq!(http(server.admin, "DELETE", &path, Some(TOKEN)).0, 404);
    assert_eq!(
        http(server.admin, "DELETE", "/api/sessions/999999", Some(TOKEN)).0,
        404
    );
    assert_eq!(
        http(server.admin, "DELETE", "/api/sessions/x", Some(TOKEN)).0,
        404
    );
}

#[test]
fn ftpgate_status_prints_the_live_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let mut ftp = Client::connect(server.ftp);
    assert!(ftp.try_login("amy", "pw").starts_with("230"));
    let mut anonymous = Client::connect(server.ftp);
    assert!(anonymous.ask("NOOP").starts_with("200"));
    let client = ftp.local_addr().to_string();
    // The token from the config file, the address from the flag.
    let out = Command::new(BIN)
        .args(["status", "--admin"])
        .arg(format!("http://{}", server.admin))
        .arg("--config")
        .arg(dir.path().join("ftpgate.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = text
        .lines()
        .find(|l| l.contains(&client))
        .unwrap_or_else(|| panic!("no row for {client}:\n{text}"));
    assert!(row.contains("amy") && row.contains("PASS"), "{row}");
    assert!(
        text.contains("2 sessions, 1 logged in, 0 transfers"),
        "{text}"
    );
    // Without the token: refused, with a message.
    let out = Command::new(BIN)
        .args(["status", "--admin"])
        .arg(format!("http://{}", server.admin))
        .env_remove("FTPGATE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token"));
}

#[test]
fn an_admin_listener_beyond_loopback_without_a_token_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ftpgate.toml");
    for (admin, warned) in [
        ("listen = [\"0.0.0.0:9100\"]", true),
        ("listen = [\"[::]:9100\"]", true),
        ("listen = [\"127.0.0.1:9100\", \"[::1]:9100\"]", false),
        ("listen = [\"0.0.0.0:9100\"]\ntoken_file = \"token\"", false),
    ] {
        std::fs::write(dir.path().join("token"), "0123456789abcdef0123\n").unwrap();
        std::fs::write(&config, format!("[admin]\n{admin}\n")).unwrap();
        let out = Command::new(BIN)
            .args(["check-config", config.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{admin}: {stderr}");
        assert_eq!(
            stderr.contains("warning: admin listener on") && stderr.contains("has no token"),
            warned,
            "{admin}: {stderr}"
        );
    }
}
