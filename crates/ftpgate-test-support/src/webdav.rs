//! A real WebDAV server for tests: `rclone serve webdav` on a loopback port, serving a
//! temporary directory, with basic authentication. Stopped (killed) and deleted when the
//! [`WebdavServer`] is dropped, or, for one kept in a `static` (never dropped), when the test
//! binary exits, even if it is killed: a small watchdog process does it, as for Garage.
//!
//! ```no_run
//! let dav = ftpgate_test_support::webdav::start();
//! // Point a WebDAV client at dav.endpoint with dav.username / dav.password; the files are
//! // in dav.dir().
//! # let _ = dav;
//! ```
//!
//! The `rclone` program is looked for in `$FTPGATE_RCLONE_BIN`, then on `PATH`
//! (`apt-get install rclone`; `scripts/test.sh` installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::garage::{Watchdog, free_ports, port_open, random_hex};

/// A running `rclone serve webdav`.
#[derive(Debug)]
pub struct WebdavServer {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The basic-auth user.
    pub username: String,
    /// The basic-auth password.
    pub password: String,
    /// The server's process id.
    pub pid: u32,
    child: Child,
    watchdog: Option<Watchdog>,
    dir: TempDir,
}

impl WebdavServer {
    /// The directory served.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for WebdavServer {
    fn drop(&mut self) {
        // Killed before it is reaped, so the watchdog cannot hit a reused process id.
        let _ = self.child.kill();
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.child.wait();
        }
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    std::env::var_os("FTPGATE_RCLONE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("rclone"))
}

/// Starts a server on a free loopback port.
///
/// # Panics
///
/// If rclone is missing or the server does not answer within 30 seconds.
pub fn start() -> WebdavServer {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let username = "dav".to_string();
    let password = random_hex(8);
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_ports(1).expect("a free port")[0];
        let mut child = Command::new(binary())
            .args(["serve", "webdav", "--addr"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--user", &username, "--pass", &password])
            // Straight to the directory: no VFS cache between the server and the disk.
            .args(["--vfs-cache-mode", "off", "--log-level", "ERROR"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run rclone ({}): {e}", binary().display()));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if port_open(port) {
                let watchdog = Watchdog::start(child.id(), dir.path()).ok();
                return WebdavServer {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    username,
                    password,
                    pid: child.id(),
                    child,
                    watchdog,
                    dir,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                last = format!("rclone exited: {status}");
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                last = "rclone did not listen within 30 s".to_string();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("cannot start rclone serve webdav: {last}");
}
