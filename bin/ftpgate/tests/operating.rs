//! What an operator runs the daemon with, checked on the built binary: JSON logs, log files
//! that rotate or are reopened on SIGHUP, the transfer log (xferlog and JSON), event hooks
//! (commands and URLs), `FTPGATE_*` variables, shell completions and the manual page.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// A config with user `amy` (password `pw`, home `home`) and `extra` appended.
fn write_config(dir: &Path, extra: &str) -> String {
    std::fs::create_dir_all(dir.join("home")).unwrap();
    let path = dir.join("ftpgate.toml");
    std::fs::write(
        &path,
        format!(
            "[[users]]\nname = \"amy\"\npassword_hash = \"{}\"\nhome = \"home\"\n\n{extra}",
            hash("pw")
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// Waits until `path` has at least `n` lines, and returns them.
fn lines_of(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} lines, expected {n}:\n{text}",
            path.display(),
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the file at `path` has a line containing every one of `parts`.
fn line_with(path: &Path, parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {parts:?} in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sighup(daemon: &Daemon) {
    let status = Command::new("kill")
        .arg("-HUP")
        .arg(daemon.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The 14 fields of an xferlog(5) line: the 24-character ctime date, then 13 words.
fn xferlog_fields(line: &str) -> Vec<String> {
    let (time, rest) = line.split_at(24);
    let mut fields = vec![time.to_string()];
    fields.extend(rest.split_whitespace().map(str::to_string));
    assert_eq!(fields.len(), 14, "{line:?}");
    fields
}

#[test]
fn xferlog_records_uploads_downloads_and_aborts_and_json_logs_parse() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = write_config(
        d,
        "[log]\nformat = \"json\"\nfile = \"logs/ftpgate.log\"\ntransfer_log = \"logs/xferlog\"\n",
    );
    let (daemon, addr) = Daemon::start(d, &["--config", &config, "--listen", "127.0.0.1:0"], &[]);
    let mut amy = Client::login(addr, "amy", "pw");
    amy.ask("TYPE I");
    assert!(
        amy.upload("STOR my file.bin", &[7u8; 1500])
            .starts_with("226")
    );
    amy.ask("TYPE A");
    let (reply, bytes) = amy.download("RETR my file.bin");
    assert!(reply.starts_with("226"), "{reply}");
    assert_eq!(bytes.len(), 1500);
    amy.ask("TYPE I");
    amy.aborted_upload("STOR cut.bin");
    assert!(amy.ask("QUIT").starts_with("221"));

    let lines = lines_of(&d.join("logs/xferlog"), 3);
    let up = xferlog_fields(&lines[0]);
    let down = xferlog_fields(&lines[1]);
    let cut = xferlog_fields(&lines[2]);
    // current-time: `Sun Dec  6 13:45:21 2026`, local time.
    let date = chrono::NaiveDateTime::parse_from_str(&up[0], "%a %b %e %H:%M:%S %Y").unwrap();
    let now = chrono::Local::now().naive_local();
    assert!((now - date).num_seconds().abs() < 60, "{date} vs {now}");
    assert_eq!(
        up[1..],
        [
            "0",
            "127.0.0.1",
            "1500",
            "/my_file.bin",
            "b",
            "_",
            "i",
            "r",
            "amy",
            "ftp",
            "0",
            "*",
            "c"
        ]
    );
    assert_eq!(down[4], "/my_file.bin");
    assert_eq!(down[5], "a", "TYPE A download");
    assert_eq!(down[7], "o");
    assert_eq!(down[13], "c");
    assert_eq!(cut[4], "/cut.bin");
    assert_eq!(cut[7], "i");
    assert_eq!(
        cut[13], "i",
        "an aborted upload is incomplete: {:?}",
        lines[2]
    );

    // The daemon's own log: one JSON object per line, fields as values.
    line_with(&d.join("logs/ftpgate.log"), &["\"command\":\"RETR\""]);
    let log = std::fs::read_to_string(d.join("logs/ftpgate.log")).unwrap();
    let mut saw_transfer = false;
    for line in log.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(value.get(key).is_some(), "no {key}: {line}");
        }
        if value["command"] == "STOR" && value["path"] == "/my file.bin" {
            saw_transfer = true;
            assert!(value["bytes"].is_u64() && value["secs"].is_f64(), "{line}");
            // Span fields are values too: the session's client and the login's user.
            let spans = value["spans"].as_array().unwrap();
            assert!(spans.iter().any(|s| s["user"] == "amy"), "{line}");
        }
    }
    assert!(saw_transfer, "{log}");
    assert!(daemon.terminate().success());
}

#[test]
fn json_transfer_log_and_log_files_are_reopened_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = write_config(
        d,
        "[log]\nfile = \"ftpgate.log\"\ntransfer_log = \"transfers.json\"\ntransfer_log_format = \"json\"\n",
    );
    let (daemon, addr) = Daemon::start(d, &["--config", &config, "--listen", "127.0.0.1:0"], &[]);
    let mut amy = Client::login(addr, "amy", "pw");
    amy.ask("TYPE I");
    assert!(amy.upload("STOR a.bin", b"hello").starts_with("226"));
    let first = lines_of(&d.join("transfers.json"), 1);
    let record: serde_json::Value = serde_json::from_str(&first[0]).unwrap();
    assert_eq!(record["direction"], "upload");
    assert_eq!(record["path"], "/a.bin");
    assert_eq!(record["bytes"], 5);
    assert_eq!(record["result"], "complete");
    assert_eq!(record["reason"], serde_json::Value::Null);
    assert_eq!(record["type"], "binary");
    assert_eq!(record["tls"], false);
    assert_eq!(record["storage"], "fs");
    assert!(record["duration_ms"].is_u64());
    line_with(&d.join("ftpgate.log"), &["STOR", "a.bin"]);

    // logrotate moves both files away and sends SIGHUP: new lines go to new files.
    std::fs::rename(d.join("transfers.json"), d.join("transfers.json.1")).unwrap();
    std::fs::rename(d.join("ftpgate.log"), d.join("ftpgate.log.1")).unwrap();
    sighup(&daemon);
    line_with(&d.join("ftpgate.log"), &["SIGHUP"]);
    amy.aborted_upload("STOR b.bin");
    let second = lines_of(&d.join("transfers.json"), 1);
    let record: serde_json::Value = serde_json::from_str(&second[0]).unwrap();
    assert_eq!(record["path"], "/b.bin");
    assert_eq!(record["result"], "failed");
    assert_eq!(record["reason"], "aborted");
    assert_eq!(lines_of(&d.join("transfers.json.1"), 1).len(), 1);
    let old = std::fs::read_to_string(d.join("ftpgate.log.1")).unwrap();
    assert!(!old.contains("b.bin"), "{old}");
    line_with(&d.join("ftpgate.log"), &["b.bin"]);
    assert!(daemon.terminate().success());
}

#[test]
fn rotated_logs_are_named_by_date_and_pruned_to_keep() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let logs = d.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for day in ["2020-01-01", "2020-01-02", "2020-01-03"] {
        std::fs::write(logs.join(format!("ftpgate.{day}.log")), "old\n").unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(logs.join("other.log"), "not ours\n").unwrap();
    let config = write_config(
        d,
        "[log]\nfile = \"logs/ftpgate.log\"\nrotate = \"daily\"\nkeep = 2\n",
    );
    let (daemon, addr) = Daemon::start(d, &["--config", &config, "--listen", "127.0.0.1:0"], &[]);
    Client::login(addr, "amy", "pw").ask("QUIT");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let current = logs.join(format!("ftpgate.{today}.log"));
    line_with(&current, &["login"]);
    assert!(daemon.terminate().success());
    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // keep = 2: the two newest old files stay next to the current one.
    let mut expected = vec![
        "ftpgate.2020-01-02.log".to_string(),
        "ftpgate.2020-01-03.log".to_string(),
        format!("ftpgate.{today}.log"),
        "other.log".to_string(),
    ];
    expected.sort();
    assert_eq!(names, expected);

    // Hourly files carry the hour.
    let config = write_config(
        d,
        "[log]\nfile = \"hourly/ftpgate.log\"\nrotate = \"hourly\"\n",
    );
    let before = chrono::Utc::now().format("%Y-%m-%d-%H").to_string();
    let (daemon, _) = Daemon::start(d, &["--config", &config, "--listen", "127.0.0.1:0"], &[]);
    assert!(daemon.terminate().success());
    let after = chrono::Utc::now().format("%Y-%m-%d-%H").to_string();
    let names: Vec<String> = std::fs::read_dir(d.join("hourly"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&format!("ftpgate.{before}.log"))
            || names.contains(&format!("ftpgate.{after}.log")),
        "{names:?} (hour {before})"
    );
}

/// A script that appends its arguments and its `FTPGATE_*` and secret variables to `out`.
fn recorder(dir: &Path, out: &Path) -> String {
    let script = dir.join("record.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ printf 'ARGS'; for a in \"$@\"; do printf ' [%s]' \"$a\"; done; echo; \
             env | grep -E '^(FTPGATE_|AWS_SECRET)' | sort; echo END; }} >> {}\n",
            out.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.to_str().unwrap().to_string()
}

#[test]
fn hook_commands_get_the_event_and_never_delay_the_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("hook.out");
    let script = recorder(d, &out);
    let config = write_config(
        d,
        &format!(
            r#"[[hooks]]
events = ["upload"]
command = ["{script}", "{{event}}", "{{path}}", "{{user}}", "{{size}}", "x{{{{y}}}}"]
[hooks.filter]
path = "*.zip"
result = "complete"

[[hooks]]
events = ["upload"]
command = ["/bin/sleep", "30"]
timeout_secs = 3
"#
        ),
    );
    let (daemon, addr) = Daemon::start(
        d,
        &["--config", &config, "--listen", "127.0.0.1:0"],
        &[("AWS_SECRET_ACCESS_KEY", "do-not-leak")],
    );
    let mut amy = Client::login(addr, "amy", "pw");
    amy.ask("TYPE I");
    let began = Instant::now();
    assert!(
        amy.upload("STOR scan me.zip", &[1u8; 4096])
            .starts_with("226")
    );
    assert!(amy.upload("STOR notes.txt", b"text").starts_with("226"));
    let took = began.elapsed();
    // The hanging hook (3 s timeout, twice) holds nothing up.
    assert!(took < Duration::from_secs(2), "uploads took {took:?}");

    let log = d.join("ftpgate.log");
    line_with(&log, &["hooks[1]", "timed out after 3 s"]);
    line_with(&out, &["END"]);
    let record = std::fs::read_to_string(&out).unwrap();
    assert!(
        record.starts_with("ARGS [upload] [/scan me.zip] [amy] [4096] [x{y}]"),
        "{record}"
    );
    for var in [
        "FTPGATE_EVENT=upload",
        "FTPGATE_PATH=/scan me.zip",
        "FTPGATE_USER=amy",
        "FTPGATE_CLIENT=127.0.0.1",
        "FTPGATE_SIZE=4096",
        "FTPGATE_RESULT=complete",
        "FTPGATE_STORAGE=fs",
    ] {
        assert!(record.lines().any(|l| l == var), "no {var} in {record}");
    }
    assert!(!record.contains("do-not-leak"), "{record}");
    // notes.txt does not match the path filter, an aborted zip not the result filter.
    amy.aborted_upload("STOR cut.zip");
    amy.ask("QUIT");
    std::thread::sleep(Duration::from_millis(500));
    let record = std::fs::read_to_string(&out).unwrap();
    assert_eq!(record.matches("ARGS").count(), 1, "{record}");
    assert!(daemon.terminate().success());
}

/// An HTTP server that answers the first request with 500 and then stops listening; returns
/// the request it got.
fn failing_server() -> (SocketAddr, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        drop(listener);
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .unwrap();
        head + &String::from_utf8(body).unwrap()
    });
    (addr, handle)
}

#[test]
fn a_failing_hook_url_is_retried_then_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, request) = failing_server();
    let config = write_config(
        d,
        &format!(
            "[[hooks]]\nevents = [\"upload\", \"mkdir\"]\nurl = \"http://{server}/ftp-events\"\nretries = 2\ntimeout_secs = 5\n[hooks.filter]\npath = \"/in*\"\n"
        ),
    );
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (daemon, addr) = Daemon::start(
        d,
        &[
            "--config",
            &config,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            &admin.to_string(),
        ],
        &[],
    );
    let mut amy = Client::login(addr, "amy", "pw");
    amy.ask("TYPE I");
    assert!(amy.upload("STOR skipped.bin", b"x").starts_with("226"));
    assert!(amy.ask("MKD in").starts_with("257"));
    let request = request.join().unwrap();
    assert!(
        request.starts_with("POST /ftp-events HTTP/1.1"),
        "{request}"
    );
    let body = request.split("\r\n\r\n").nth(1).unwrap();
    let event: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        event["event"], "mkdir",
        "the upload outside /in/ is filtered out"
    );
    assert_eq!(event["path"], "/in");
    assert_eq!(event["user"], "amy");

    let log = d.join("ftpgate.log");
    line_with(&log, &["hook failed", "attempt=1", "HTTP 500"]);
    line_with(&log, &["hook failed", "attempt=3"]);
    line_with(&log, &["hook gave up", "event=\"mkdir\""]);
    // Two retries, then given up: counted for Prometheus.
    let mut http = std::net::TcpStream::connect(admin).unwrap();
    http.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut metrics = String::new();
    http.read_to_string(&mut metrics).unwrap();
    assert!(
        metrics.contains("ftpgate_hooks_total{result=\"retry\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ftpgate_hooks_total{result=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ftpgate_hooks_total{result=\"ok\"} 0"),
        "{metrics}"
    );
    amy.ask("QUIT");
    assert!(daemon.terminate().success());
}

#[test]
fn quick_start_flags_come_from_ftpgate_variables() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (daemon, addr) = Daemon::start(
        d,
        &[],
        &[
            ("FTPGATE_LISTEN", "127.0.0.1:0"),
            ("FTPGATE_ROOT", "served"),
            ("FTPGATE_USER", "bob"),
            ("FTPGATE_PASSWORD", "bobpw"),
            ("FTPGATE_PERMISSIONS", "elr"),
            ("FTPGATE_LOG_LEVEL", "debug"),
        ],
    );
    assert!(
        daemon
            .lines
            .iter()
            .any(|l| l.contains("as user \"bob\" (elr)")),
        "{:?}",
        daemon.lines
    );
    std::fs::write(d.join("served/hello.txt"), "hi").unwrap();
    let mut bob = Client::login(addr, "bob", "bobpw");
    let (reply, bytes) = bob.download("RETR hello.txt");
    assert!(reply.starts_with("226"));
    assert_eq!(bytes, b"hi");
    let reply = bob.ask("MKD nope");
    assert!(reply.starts_with("550"), "{reply}");
    bob.ask("QUIT");
    line_with(&d.join("ftpgate.log"), &["DEBUG"]);
    assert!(daemon.terminate().success());
}

#[test]
fn completions_load_in_bash_and_the_man_page_renders() {
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ftpgate.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let check = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p ftpgate",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    assert!(String::from_utf8_lossy(&check.stdout).contains("ftpgate"));
    for shell in ["zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("check-config") && text.contains("serve"),
            "{text}"
        );
    }
    let bad = Command::new(BIN)
        .args(["completions", "cmd.exe"])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    let out = Command::new(BIN).arg("man").output().unwrap();
    assert!(out.status.success());
    let roff = String::from_utf8(out.stdout).unwrap();
    assert!(roff.contains(".TH ftpgate"), "{roff}");
    let page = dir.path().join("ftpgate.1");
    std::fs::write(&page, &roff).unwrap();
    let rendered = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output();
    let text = match rendered {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        // No man(1): the roff text itself names the subcommands.
        _ => roff,
    };
    for word in ["serve", "check-config", "hash-password", "completions"] {
        assert!(text.contains(word), "no {word} in the man page:\n{text}");
    }
}

/// The `ENV` settings of the repository's Dockerfile.
fn dockerfile_env() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Dockerfile");
    let text = std::fs::read_to_string(path).unwrap();
    let joined = text.replace("\\\n", " ");
    let mut vars = Vec::new();
    for line in joined.lines() {
        if let Some(rest) = line.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=').unwrap();
                vars.push((k.to_string(), v.to_string()));
            }
        }
    }
    vars
}

#[test]
fn the_container_image_settings_reach_the_daemon() {
    let vars = dockerfile_env();
    assert!(!vars.is_empty());
    let help = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for (name, _) in &vars {
        assert!(
            help.contains(&format!("[env: {name}=")),
            "serve does not read {name}"
        );
    }
    // As the image runs it (but on a free local port): the quick-start root is ./data in the
    // working directory, passive ports come from the image's range.
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(&str, &str)> = vars
        .iter()
        .filter(|(k, _)| k != "FTPGATE_LISTEN")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.extend([
        ("FTPGATE_LISTEN", "127.0.0.1:0"),
        ("FTPGATE_PASSWORD", "pw"),
    ]);
    let (daemon, addr) = Daemon::start(dir.path(), &[], &env);
    let mut client = Client::login(addr, "ftpgate", "pw");
    let reply = client.ask("EPSV");
    let port: u16 = reply
        .split("|||")
        .nth(1)
        .unwrap()
        .split('|')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (lo, hi) = vars
        .iter()
        .find(|(k, _)| k == "FTPGATE_PASSIVE_PORTS")
        .map(|(_, v)| v.split_once('-').unwrap())
        .map(|(lo, hi)| (lo.parse::<u16>().unwrap(), hi.parse::<u16>().unwrap()))
        .unwrap();
    assert!((lo..=hi).contains(&port), "{reply}");
    assert!(dir.path().join("data").is_dir());
    client.ask("QUIT");
    assert!(daemon.terminate().success());
}
