//! Running the built `ftpgate` binary in tests.

#![allow(dead_code, unreachable_pub)]

pub mod through_lb;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ftpgate");

/// An argon2id hash of `password`, made by `ftpgate hash-password`, for a config's users.
pub fn hash(password: &str) -> String {
    let out = Command::new(BIN)
        .args(["hash-password", "--password", password])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A running daemon; killed if the test fails before it stops it.
pub struct Daemon {
    pub child: Child,
    pub lines: Vec<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `ftpgate serve ARGS` in `dir` and reads its start-up lines up to "listening".
    pub fn start(
        dir: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Daemon, SocketAddr) {
        let mut cmd = Command::new(BIN);
        let log = std::fs::File::create(dir.join("ftpgate.log")).unwrap();
        cmd.arg("serve")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(log);
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
            if let Some(rest) = line.strip_prefix("ftpgate: listening on ") {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        (Daemon { child, lines }, addr)
    }

    /// Has `ftpgate check-config CONFIG` accept the file (run in `dir`), then starts `ftpgate
    /// serve --config CONFIG ARGS` there: `serve` and `check-config` read a config alike.
    pub fn start_checked(
        dir: &std::path::Path,
        config: &str,
        args: &[&str],
    ) -> (Daemon, SocketAddr) {
        let check = Command::new(BIN)
            .args(["check-config", config])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let mut all = vec!["--config", config];
        all.extend_from_slice(args);
        Daemon::start(dir, &all, &[])
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
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
pub fn login(addr: SocketAddr, user: &str, pass: &str) -> String {
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

/// Logs in, uploads `bytes` as `name`, downloads it back.
pub fn round_trip(
    addr: SocketAddr,
    user: &str,
    password: &str,
    name: &str,
    bytes: &[u8],
) -> Vec<u8> {
    let control = TcpStream::connect(addr).unwrap();
    control
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(control.try_clone().unwrap());
    let mut writer = control;
    let mut ask = |cmd: &str| -> String {
        if !cmd.is_empty() {
            writer.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        }
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        line
    };
    assert!(ask("").starts_with("220"));
    ask(&format!("USER {user}"));
    assert!(ask(&format!("PASS {password}")).starts_with("230"));
    ask("TYPE I");
    let port = |reply: String| -> u16 {
        reply
            .split("|||")
            .nth(1)
            .unwrap()
            .split('|')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let mut data = TcpStream::connect((addr.ip(), port(ask("EPSV")))).unwrap();
    assert!(ask(&format!("STOR {name}")).starts_with("150"));
    data.write_all(bytes).unwrap();
    drop(data);
    assert!(ask("").starts_with("226"));
    let mut data = TcpStream::connect((addr.ip(), port(ask("EPSV")))).unwrap();
    assert!(ask(&format!("RETR {name}")).starts_with("150"));
    let mut back = Vec::new();
    data.read_to_end(&mut back).unwrap();
    assert!(ask("").starts_with("226"));
    back
}

/// A control connection spoken by hand, with EPSV data connections.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    ip: std::net::IpAddr,
}

impl Client {
    /// Connects and reads the 220 greeting.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut client = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            ip: addr.ip(),
        };
        let greeting = client.reply();
        assert!(greeting.starts_with("220"), "{greeting}");
        client
    }

    /// The client's own address, as the server sees it.
    pub fn local_addr(&self) -> SocketAddr {
        self.writer.local_addr().unwrap()
    }

    /// Connects and logs in (230 expected).
    pub fn login(addr: SocketAddr, user: &str, password: &str) -> Client {
        let mut client = Client::connect(addr);
        let reply = client.try_login(user, password);
        assert!(reply.starts_with("230"), "{reply}");
        client
    }

    /// USER then PASS; the reply to PASS.
    pub fn try_login(&mut self, user: &str, password: &str) -> String {
        let reply = self.ask(&format!("USER {user}"));
        assert!(reply.starts_with("331"), "{reply}");
        self.ask(&format!("PASS {password}"))
    }

    /// The next reply, all its lines; what arrived before the server closed, if it did.
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() >= 4 && line.as_bytes()[3] == b' ' {
                return all;
            }
        }
    }

    pub fn ask(&mut self, command: &str) -> String {
        self.writer
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }

    /// EPSV and a connection to its port.
    pub fn data(&mut self) -> TcpStream {
        let reply = self.ask("EPSV");
        let port: u16 = reply
            .split("|||")
            .nth(1)
            .and_then(|r| r.split('|').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{reply}"));
        TcpStream::connect((self.ip, port)).unwrap()
    }

    /// A whole upload; the final reply.
    pub fn upload(&mut self, command: &str, bytes: &[u8]) -> String {
        let mut data = self.data();
        let first = self.ask(command);
        assert!(first.starts_with("150"), "{first}");
        data.write_all(bytes).unwrap();
        drop(data);
        self.reply()
    }

    /// A whole download; the final reply and the bytes.
    pub fn download(&mut self, command: &str) -> (String, Vec<u8>) {
        let mut data = self.data();
        let first = self.ask(command);
        assert!(first.starts_with("150"), "{first}");
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).unwrap();
        (self.reply(), bytes)
    }

    /// Starts an upload, sends some bytes, then ABOR: an incomplete transfer.
    pub fn aborted_upload(&mut self, command: &str) {
        let mut data = self.data();
        assert!(self.ask(command).starts_with("150"));
        data.write_all(b"partial").unwrap();
        let reply = self.ask("ABOR");
        if reply.starts_with("426") {
            assert!(self.reply().starts_with("226"));
        }
        drop(data);
    }
}

/// The ftplib client script of the fleet tests.
pub fn python_client() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fleet_clients/ftplib_client.py")
}

/// A TCP connection from `source` (any port) to `to`, with a 20 s read timeout.
pub fn connect_from(source: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((source, 0)).into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// `len` bytes of a pattern that differs with `seed`.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

/// Asks `command` (through `ask`) every 100 ms until the reply is `expected`, for at most 30 s.
pub fn wait_for_reply(mut ask: impl FnMut(&str) -> String, command: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = ask(command);
        if reply.trim() == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{command} never answered {expected:?}: {reply}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
