//! A throwaway `redis-server` on a loopback port of its own (not the system's service), for
//! tests of state shared between ftpgate nodes. No persistence; killed when dropped.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A running `redis-server`.
#[derive(Debug)]
pub struct Redis {
    /// `redis://127.0.0.1:PORT/0`.
    pub url: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    server: Option<Child>,
}

/// Starts `redis-server` (from `PATH`, or `$FTPGATE_REDIS_BIN`) on a free port.
///
/// # Panics
///
/// If it is not installed (`apt-get install redis-server`) or does not listen within 10 s.
pub fn start() -> Redis {
    let bin = std::env::var_os("FTPGATE_REDIS_BIN").unwrap_or_else(|| "redis-server".into());
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"));
    let server = Command::new(&bin)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (install it: apt-get install redis-server)",
                bin.to_string_lossy()
            )
        });
    let redis = Redis {
        url: format!("redis://127.0.0.1:{port}/0"),
        port,
        server: Some(server),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis.answers() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen on {port}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    redis
}

impl Redis {
    /// Whether something accepts connections on its port.
    pub fn answers(&self) -> bool {
        TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            Duration::from_millis(200),
        )
        .is_ok()
    }

    /// Runs `redis-cli -p PORT ARGS` and returns what it printed.
    ///
    /// # Panics
    ///
    /// If `redis-cli` cannot be run.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server with SIGSTOP (`resume` sends SIGCONT): its port still accepts
    /// connections, but nothing answers: a slow Redis.
    ///
    /// # Panics
    ///
    /// If the signal cannot be sent.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    ///
    /// # Panics
    ///
    /// If the signal cannot be sent.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let Some(server) = &self.server else {
            return;
        };
        let status = Command::new("kill")
            .arg(which)
            .arg(server.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill {which} failed");
    }

    /// Kills the server (SIGKILL); its port is closed when this returns.
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // A stopped process dies of SIGKILL all the same.
        self.kill();
    }
}
