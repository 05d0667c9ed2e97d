//! Running the daemon day to day: error output, log levels, homes, and reloading the config
//! on SIGHUP.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// A control connection that reads whole (multi-line) replies.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects and returns the client with the greeting.
    fn connect(addr: SocketAddr) -> (Client, String) {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut client = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let greeting = client.reply();
        (client, greeting)
    }

    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(
                self.reader.read_line(&mut line).unwrap() > 0,
                "closed: {all}"
            );
            all.push_str(&line);
            if line.len() >= 4 && line.as_bytes()[3] == b' ' {
                return all;
            }
        }
    }

    fn ask(&mut self, command: &str) -> String {
        self.writer
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }

    fn login(&mut self, user: &str, password: &str) -> String {
        self.ask(&format!("USER {user}"));
        self.ask(&format!("PASS {password}"))
    }
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("ftpgate.log")).unwrap_or_default()
}

/// Waits until the daemon's log contains `text`.
fn wait_for_log(dir: &Path, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = log_of(dir);
        if log.contains(text) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {text:?} in the log:\n{log}");
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

#[test]
fn config_errors_are_one_error_line_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[server]\nmax_connections = 0\n").unwrap();
    for args in [
        vec!["check-config", config.to_str().unwrap()],
        vec!["serve", "--config", config.to_str().unwrap()],
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .current_dir(dir.path())
            .env("RUST_BACKTRACE", "1")
            .env("RUST_LIB_BACKTRACE", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains("max_connections"),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.to_lowercase().contains("backtrace") && stderr.lines().count() == 1,
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn mistyped_log_levels_are_refused_and_common_spellings_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ftpgate.toml");
    for (level, ok) in [
        ("verbose", false),
        ("inf", false),
        ("ftpgate=loud,info", false),
        ("WARNING", true),
        ("Information", true),
        ("err", true),
        ("ftpgate=debug,info", true),
    ] {
        std::fs::write(&config, format!("[log]\nlevel = \"{level}\"\n")).unwrap();
        let out = Command::new(BIN)
            .args(["check-config", config.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), ok, "{level}: {stderr}");
        if !ok {
            assert!(
                stderr.contains("log.level") && stderr.contains(level),
                "{level}: {stderr}"
            );
        }
    }
    // serve refuses the same words, from the file and from the flag.
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-level", "inf"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--log-level") && stderr.contains("\"inf\""),
        "{stderr}"
    );
    // "WARNING" logs warnings (here: a user's home that does not exist).
    std::fs::write(
        &config,
        format!(
            "[log]\nlevel = \"WARNING\"\n\n[[users]]\nname = \"amy\"\npassword_hash = \"{}\"\nhome = \"nowhere\"\n",
            hash("pw")
        ),
    )
    .unwrap();
    let (daemon, _) = Daemon::start(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[("RUST_LOG", "")],
    );
    let log = wait_for_log(dir.path(), "WARN");
    assert!(log.contains("home of user \"amy\" does not exist"), "{log}");
    assert!(
        !log.contains(" INFO "),
        "warn level shows no info lines: {log}"
    );
    assert!(daemon.terminate().success());
}

#[test]
fn relative_homes_are_taken_from_the_config_folder_and_made_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    let cwd = dir.path().join("elsewhere");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let config = etc.join("ftpgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[[users]]
name = "amy"
password_hash = "{amy}"
home = "homes/amy"
create_home = true

[[users]]
name = "bob"
password_hash = "{bob}"
home = "homes/bob"
"#,
            amy = hash("amypw"),
            bob = hash("bobpw"),
        ),
    )
    .unwrap();
    let (daemon, addr) = Daemon::start(
        &cwd,
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert!(etc.join("homes/amy").is_dir(), "amy's home is made");
    assert!(!cwd.join("homes").exists(), "nothing under the working dir");
    assert!(login(addr, "amy", "amypw").starts_with("230"));
    // bob's home does not exist: his login fails, and the log says why.
    assert!(login(addr, "bob", "bobpw").starts_with("530"));
    let bob_home = etc.join("homes/bob");
    let log = wait_for_log(&cwd, "home of user \"bob\" does not exist");
    assert!(log.contains(&bob_home.display().to_string()), "{log}");
    assert!(daemon.terminate().success());
}

#[test]
fn a_root_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("afile"), b"x").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--root", "afile"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim(), "error: --root afile: not a directory");
}

#[test]
fn sighup_reloads_users_banner_and_login_message_without_dropping_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("f.txt"), b"hello").unwrap();
    let config = dir.path().join("ftpgate.toml");
    let (amy, bob) = (hash("amypw"), hash("bobpw"));
    let user = |name: &str, hash: &str| {
        format!(
            "[[users]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\nhome = \"{}\"\n",
            home.display()
        )
    };
    std::fs::write(
        &config,
        format!("[server]\nbanner = \"Old banner\"\n\n{}", user("amy", &amy)),
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
    let (mut old, greeting) = Client::connect(addr);
    assert_eq!(greeting, "220 Old banner\r\n");
    assert_eq!(old.login("amy", "amypw"), "230 User amy logged in\r\n");

    // bob replaces amy; a new banner and a login message.
    std::fs::write(
        &config,
        format!(
            "[server]\nbanner = \"New banner\\nSecond line\"\nlogin_message = \"Welcome back\"\n\n{}",
            user("bob", &bob)
        ),
    )
    .unwrap();
    sighup(&daemon);
    wait_for_log(dir.path(), "configuration reloaded");
    let (mut new, greeting) = Client::connect(addr);
    assert_eq!(greeting, "220-New banner\r\n220 Second line\r\n");
    assert_eq!(
        new.login("bob", "bobpw"),
        "230-Welcome back\r\n230 User bob logged in\r\n"
    );
    let reply = Client::connect(addr).0.login("amy", "amypw");
    assert!(reply.starts_with("530"), "amy is gone: {reply}");
    // The session that logged in before the reload goes on as it was.
    assert!(old.ask("NOOP").starts_with("200"));
    assert!(old.ask("TYPE I").starts_with("200"));
    assert_eq!(old.ask("SIZE f.txt"), "213 5\r\n");

    // A bad file changes nothing, and the log says why.
    std::fs::write(
        &config,
        format!(
            "[server]\nbanner = \"Broken\"\nbogus = 1\n\n{}",
            user("amy", &amy)
        ),
    )
    .unwrap();
    sighup(&daemon);
    let log = wait_for_log(dir.path(), "configuration not reloaded");
    assert!(log.contains("bogus"), "the error is named: {log}");
    let (mut client, greeting) = Client::connect(addr);
    assert_eq!(greeting, "220-New banner\r\n220 Second line\r\n");
    assert!(client.login("bob", "bobpw").starts_with("230"));
    assert!(
        Client::connect(addr)
            .0
            .login("amy", "amypw")
            .starts_with("530")
    );
    assert!(daemon.terminate().success());
}
