//! The daemon under faults and privilege changes: kill -9 during uploads, leftovers cleaned at
//! start, running as an unprivileged user, control characters kept out of the logs.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use std::time::{Duration, Instant};

use support::*;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Logs in and starts `STOR name` in passive mode; returns the control and data connections.
fn start_upload(addr: SocketAddr, password: &str, name: &str) -> Option<(TcpStream, TcpStream)> {
    let mut control = TcpStream::connect(addr).ok()?;
    control
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut reader = BufReader::new(control.try_clone().ok()?);
    let mut line = String::new();
    let mut ask = |control: &mut TcpStream, cmd: &str, line: &mut String| -> Option<()> {
        control.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
        line.clear();
        reader.read_line(line).ok()?;
        Some(())
    };
    line.clear();
    BufReader::new(control.try_clone().ok()?)
        .read_line(&mut line)
        .ok()?;
    ask(&mut control, "USER ftpgate", &mut line)?;
    ask(&mut control, &format!("PASS {password}"), &mut line)?;
    ask(&mut control, "TYPE I", &mut line)?;
    ask(&mut control, "EPSV", &mut line)?;
    let port: u16 = line.split("|||").nth(1)?.split('|').next()?.parse().ok()?;
    let data = TcpStream::connect((addr.ip(), port)).ok()?;
    ask(&mut control, &format!("STOR {name}"), &mut line)?;
    line.starts_with("150").then_some((control, data))
}

#[test]
fn kill_9_during_uploads_leaves_every_file_old_or_complete_and_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir(&root).unwrap();
    let old = pattern(10_000, 1);
    let new = pattern(4_000_000, 2);
    for i in 0..100 {
        std::fs::write(root.join(format!("f{i}")), &old).unwrap();
    }
    let config = dir.path().join("ftpgate.toml");
    std::fs::write(&config, "[server]\nmax_connections_per_ip = 200\n").unwrap();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--password",
        "pw",
        "--root",
        "data",
    ];
    let (daemon, addr) = Daemon::start(dir.path(), &args, &[]);
    // 100 uploads in flight: each sends part of the new content, then the rest slowly.
    let mut uploads = Vec::new();
    for i in 0..100 {
        let (control, mut data) =
            start_upload(addr, "pw", &format!("f{i}")).expect("upload started");
        data.write_all(&new[..1_000_000]).unwrap();
        uploads.push((control, data));
    }
    // Some uploads complete before the crash.
    for (_, data) in uploads.iter_mut().take(10) {
        data.write_all(&new[1_000_000..]).unwrap();
        data.shutdown(std::net::Shutdown::Write).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut child = daemon;
    child.child.kill().unwrap(); // SIGKILL
    child.child.wait().unwrap();
    drop(uploads);
    let leftovers = || {
        std::fs::read_dir(&root)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".ftpgate-upload.")
            })
            .count()
    };
    assert!(
        leftovers() > 0,
        "the crash left temporary files behind (the test needs some)"
    );
    // Restart on the same directory: leftovers are cleaned in the background.
    let (daemon, addr) = Daemon::start(dir.path(), &args, &[]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while leftovers() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(leftovers(), 0, "temporary files are removed at start");
    let mut complete = 0;
    for i in 0..100 {
        let content = std::fs::read(root.join(format!("f{i}"))).unwrap();
        if content == new {
            complete += 1;
        } else {
            assert_eq!(
                content, old,
                "f{i} is neither the old version nor the complete new one"
            );
        }
    }
    assert!(complete >= 1, "the finished uploads were kept");
    assert!(login(addr, "ftpgate", "pw").starts_with("230"));
    assert!(daemon.terminate().success());
}

#[test]
fn leftover_cleanup_spares_uploads_started_after_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let stale = root.join("sub/.ftpgate-upload.0000000000000001");
    std::fs::write(&stale, b"stale").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let (daemon, _) = Daemon::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--password",
            "pw",
            "--root",
            "data",
        ],
        &[],
    );
    let fresh = root.join(".ftpgate-upload.0000000000000002");
    std::fs::write(&fresh, b"an upload in progress").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stale.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!stale.exists(), "the stale temporary file is removed");
    assert!(fresh.exists(), "a file newer than the start is not touched");
    assert!(daemon.terminate().success());
}

fn uid_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .map(|u| u.parse().unwrap())
        .collect()
}

#[test]
fn run_as_drops_root_after_binding() {
    if uid_of(std::process::id())[0] != 0 {
        eprintln!("not root: run_as needs root to test; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir(&root).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = dir.path().join("ftpgate.toml");
    std::fs::write(&config, "[server]\nrun_as = \"nobody\"\n").unwrap();
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--password",
            "pw",
            "--root",
            root.to_str().unwrap(),
        ],
        &[],
    );
    let nobody: u32 = 65534;
    let deadline = Instant::now() + Duration::from_secs(5);
    while uid_of(daemon.child.id()) != vec![nobody; 4] && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        uid_of(daemon.child.id()),
        vec![nobody; 4],
        "real, effective, saved and fs uid"
    );
    assert!(
        daemon
            .lines
            .iter()
            .any(|l| l.contains("running as user \"nobody\"")),
        "{:?}",
        daemon.lines
    );
    assert!(login(addr, "ftpgate", "pw").starts_with("230"));
    assert!(daemon.terminate().success());
}

#[test]
fn control_characters_never_reach_the_log_raw() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--password",
            "pw",
            "--log-level",
            "debug",
        ],
        &[],
    );
    let mut control = TcpStream::connect(addr).unwrap();
    control
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    control.write_all(b"USER evil\x1b[2J\x07\r\nPASS pw\r\nUSER ftpgate\r\nPASS pw\r\nMKD x\x1b]0;title\x07\r\nRETR \x1b[31mred\r\nQUIT\r\n").unwrap();
    let mut replies = String::new();
    control.read_to_string(&mut replies).unwrap();
    assert!(replies.contains("221"), "{replies}");
    assert!(daemon.terminate().success());
    let log = std::fs::read(dir.path().join("ftpgate.log")).unwrap();
    assert!(!log.is_empty());
    assert!(
        !log.contains(&0x1b) && !log.contains(&0x07),
        "raw control characters in the log"
    );
    let log = String::from_utf8_lossy(&log);
    assert!(log.contains("\\u{1b}"), "the escaped form is logged: {log}");
}
