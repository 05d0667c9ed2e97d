//! The `ftpgate` binary as a user runs it: quick start, config checking, password hashing,
//! signals.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ftpgate");

/// A running daemon; killed if the test fails before it stops it.
struct Daemon {
    child: Child,
    lines: Vec<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `ftpgate serve ARGS` in `dir` and reads its start-up lines up to "listening".
    fn start(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (Daemon, SocketAddr) {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd.env_remove("FTPGATE_PASSWORD");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            assert!(Instant::now() < deadline, "daemon did not start: {lines:?}");
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                panic!("daemon exited: {lines:?}");
            }
            let line = line.trim_end().to_string();
            lines.push(line.clone());
            if let Some(addr) = line.strip_prefix("ftpgate: listening on ") {
                break addr.parse().unwrap();
            }
        };
        (Daemon { child, lines }, addr)
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Logs in over a raw control connection and returns the reply to `PASS`.
fn login(addr: SocketAddr, user: &str, pass: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("220"), "{line}");
    write!(stream, "USER {user}\r\n").unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    write!(stream, "PASS {pass}\r\n").unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    line
}

#[test]
fn quick_start_serves_data_with_a_printed_password_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, addr) = Daemon::start(dir.path(), &["--listen", "127.0.0.1:0"], &[]);
    assert!(dir.path().join("data").is_dir(), "./data is created");
    let password = daemon
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("ftpgate: password for \"ftpgate\": "))
        .unwrap_or_else(|| panic!("no password printed: {:?}", daemon.lines))
        .to_string();
    assert!(password.len() >= 12);
    assert!(login(addr, "ftpgate", &password).starts_with("230"));
    assert!(login(addr, "ftpgate", "wrong").starts_with("530"));
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn quick_start_flags_and_password_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("served");
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--root",
            root.to_str().unwrap(),
            "--user",
            "bob",
            "--passive-ports",
            "40000-40100",
        ],
        &[("FTPGATE_PASSWORD", "from-env")],
    );
    assert!(root.is_dir());
    assert!(
        !daemon.lines.iter().any(|l| l.contains("from-env")),
        "a given password is not printed"
    );
    assert!(login(addr, "bob", "from-env").starts_with("230"));
    assert!(daemon.terminate().success());
}

#[test]
fn config_file_users_with_listen_override() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let hash = Command::new(BIN)
        .args(["hash-password", "--password", "cfg-pass"])
        .output()
        .unwrap();
    assert!(hash.status.success());
    let hash = String::from_utf8(hash.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let config = dir.path().join("ftpgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:1\"]\n\n[[users]]\nname = \"carol\"\npassword_hash = \"{hash}\"\nhome = \"{}\"\npermissions = \"elr\"\n",
            home.display()
        ),
    )
    .unwrap();
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert!(
        !daemon.lines.iter().any(|l| l.contains("password for")),
        "no quick-start user: {:?}",
        daemon.lines
    );
    assert!(login(addr, "carol", "cfg-pass").starts_with("230"));
    assert!(login(addr, "ftpgate", "").starts_with("530"));
    assert!(daemon.terminate().success());
}

#[test]
fn hash_password_reads_standard_input() {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .env_remove("FTPGATE_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"typed secret\n")
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(out.trim().starts_with("$argon2id$"));
}

#[test]
fn check_config_accepts_the_example_and_names_bad_keys() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/examples/ftpgate.toml"
    );
    let ok = Command::new(BIN)
        .args(["check-config", example])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[server]\nlisten = [\"127.0.0.1:21\"]\nlisten_typo = 1\n",
            "listen_typo",
        ),
        (
            "[server]\npassive_ports = \"100-50\"\n",
            "server.passive_ports",
        ),
        (
            "[[users]]\nname = \"a\"\npassword_hash = \"plain\"\nhome = \"/tmp\"\n",
            "users[0].password_hash",
        ),
        ("[server]\nmax_connections = \"many\"\n", "max_connections"),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = Command::new(BIN)
            .args(["check-config", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{key} not named in {stderr}");
    }
}

#[test]
fn help_documents_every_flag() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--config",
        "--root",
        "--listen",
        "--user",
        "--password",
        "--passive-ports",
        "--public-host",
        "FTPGATE_PASSWORD",
    ] {
        assert!(help.contains(flag), "{flag} missing from serve --help");
    }
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in ["serve", "check-config", "hash-password"] {
        assert!(help.contains(cmd), "{cmd} missing from --help");
    }
}
