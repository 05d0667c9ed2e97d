//! A real ftpgate server on `127.0.0.1:0` per test ([`TestServer`], configured by [`Options`]:
//! local disk by default, or any [`StorageFactory`](ftpgate_core::StorageFactory)), and a raw
//! control-connection client ([`Raw`]) for the exchanges a client library hides. Shared by the
//! engine's tests and the storage backends' FTP-level tests (feature `server`).

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ftpgate::{CancellationToken, Server, ServerConfig};
use ftpgate_auth_file::{AnonymousEntry, FileAuthenticator, UserEntry, hash_password};
use ftpgate_core::{PermissionMap, Permissions};
use ftpgate_storage_fs::{Durability, FsStorageFactory};
use suppaftp::FtpStream;

/// The user with every permission (unless [`Options::alice_permissions`] says otherwise).
pub const USER: &str = "alice";
/// The password of [`USER`] and [`READER`].
pub const PASS: &str = "secret";
/// A user with read-only permissions, in the same home.
pub const READER: &str = "reader";

/// A server running on its own thread and runtime until dropped or [`TestServer::stop`]ped.
pub struct TestServer {
    /// The first listening address.
    pub addr: SocketAddr,
    /// Every listening address.
    pub addrs: Vec<SocketAddr>,
    /// The implicit-TLS listening addresses, if configured.
    pub implicit_addrs: Vec<SocketAddr>,
    /// The local root (the users' home unless [`Options::storage`] gives another).
    pub root: tempfile::TempDir,
    /// Cancel to shut the server down.
    pub shutdown: CancellationToken,
    /// The live sessions.
    pub sessions: ftpgate::SessionsHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How to start a [`TestServer`].
pub struct Options {
    /// The engine's configuration (loopback, short timeouts, no login delay by default).
    pub config: ServerConfig,
    /// Anonymous read-only logins into `pub/` of the root.
    pub anonymous: bool,
    /// Local storage keeps partial uploads for resuming.
    pub keep_partial_uploads: bool,
    /// What [`USER`] may do (everything by default).
    pub alice_permissions: PermissionMap,
    /// [`USER`]'s quota in bytes.
    pub alice_quota: Option<u64>,
    /// Most files alice may have.
    pub alice_quota_files: Option<u64>,
    /// [`USER`]'s rate, session and network limits.
    pub alice_limits: ftpgate_core::UserLimits,
    /// Local storage's durability.
    pub durability: Durability,
    /// Another storage for every user, and alice's home in it (the local root otherwise).
    pub storage: Option<(Arc<dyn ftpgate_core::StorageFactory>, String)>,
    /// Where the server reports events.
    pub events: Option<Arc<dyn ftpgate::EventHandler>>,
    /// Virtual hosts, by name.
    pub hosts: Vec<(String, ftpgate::VirtualHost)>,
    /// Where the server counts its metrics.
    pub metrics: Option<Arc<ftpgate::Metrics>>,
    /// An authenticator asked before the users above (in an `AuthChain`), and whether the
    /// chain goes on to them when it is unavailable.
    pub auth_in_front: Option<(Arc<dyn ftpgate_core::Authenticator>, bool)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: ServerConfig {
                listen: vec!["127.0.0.1:0".parse().unwrap()],
                data_timeout: Duration::from_secs(5),
                // Failed logins answer at once in tests, unless a test is about the delay.
                login_guard: ftpgate::LoginGuardConfig {
                    failure_delay: Duration::ZERO,
                    ..Default::default()
                },
                shutdown_grace: Duration::from_secs(10),
                ..ServerConfig::default()
            },
            anonymous: false,
            keep_partial_uploads: false,
            alice_permissions: PermissionMap::uniform(Permissions::ALL),
            alice_quota: None,
            alice_quota_files: None,
            alice_limits: Default::default(),
            durability: Durability::Normal,
            storage: None,
            events: None,
            hosts: Vec::new(),
            metrics: None,
            auth_in_front: None,
        }
    }
}

impl TestServer {
    /// A server with the default [`Options`].
    pub fn start() -> TestServer {
        Self::start_with(Options::default())
    }

    /// A server with these options; returns once it listens.
    pub fn start_with(options: Options) -> TestServer {
        // RUST_LOG=ftpgate=debug shows the server's log while debugging a test.
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .try_init();
        }
        let root = tempfile::tempdir().unwrap();
        let home = match &options.storage {
            Some((_, home)) => home.clone(),
            None => root.path().to_string_lossy().into_owned(),
        };
        std::fs::create_dir_all(root.path().join("pub")).unwrap();
        let hash = hash_password(PASS);
        let users = vec![
            UserEntry {
                name: USER.into(),
                password_hash: hash.clone(),
                home: home.clone(),
                permissions: options.alice_permissions,
                tls_required: false,
                quota_bytes: options.alice_quota,
                quota_files: options.alice_quota_files,
                limits: options.alice_limits.clone(),
            },
            UserEntry {
                name: READER.into(),
                password_hash: hash,
                home: home.clone(),
                permissions: PermissionMap::uniform(Permissions::READ_ONLY),
                tls_required: false,
                quota_bytes: None,
                quota_files: None,
                limits: Default::default(),
            },
        ];
        let anonymous = options.anonymous.then(|| AnonymousEntry {
            home: root.path().join("pub").to_string_lossy().into_owned(),
            permissions: PermissionMap::uniform(Permissions::READ_ONLY),
        });
        let file_auth = Arc::new(FileAuthenticator::new(users, anonymous).unwrap());
        let auth: Arc<dyn ftpgate_core::Authenticator> = match options.auth_in_front {
            Some((front, fallthrough)) => Arc::new(
                ftpgate_core::AuthChain::new()
                    .push(front, fallthrough)
                    .push(file_auth, false),
            ),
            None => file_auth,
        };
        let local = FsStorageFactory {
            durability: options.durability,
            keep_partial_uploads: options.keep_partial_uploads,
        };
        let storage: Arc<dyn ftpgate_core::StorageFactory> = match options.storage {
            Some((factory, _)) => factory,
            None => Arc::new(local),
        };
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let config = options.config;
        let events = options.events;
        let hosts = options.hosts;
        let metrics = options.metrics;
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut server = Server::new(config, auth, storage);
                if let Some(events) = events {
                    server = server.with_events(events);
                }
                for (name, host) in hosts {
                    server = server.with_virtual_host(&name, host);
                }
                if let Some(metrics) = metrics {
                    server = server.with_metrics(metrics);
                }
                let server = server.bind().await.unwrap();
                tx.send((
                    server.local_addrs(),
                    server.implicit_tls_addrs(),
                    server.sessions(),
                ))
                .unwrap();
                server.run(token).await;
            });
        });
        let (addrs, implicit_addrs, sessions) = rx.recv().unwrap();
        TestServer {
            addr: addrs[0],
            addrs,
            implicit_addrs,
            root,
            shutdown,
            sessions,
            thread: Some(thread),
        }
    }

    /// A path in the local root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// A suppaftp client logged in as [`USER`], in binary mode.
    pub fn client(&self) -> FtpStream {
        let mut ftp = FtpStream::connect(self.addr).unwrap();
        ftp.login(USER, PASS).unwrap();
        ftp.transfer_type(suppaftp::types::FileType::Binary)
            .unwrap();
        ftp
    }

    /// A raw control connection, past the greeting.
    pub fn raw(&self) -> Raw {
        Raw::connect(self.addr)
    }

    /// A raw control connection logged in as [`USER`].
    pub fn raw_logged_in(&self) -> Raw {
        let mut raw = self.raw();
        raw.login(USER, PASS);
        raw
    }

    /// Stops the server and waits for `run` to return.
    pub fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }

    /// Files in a directory of the root, temporary upload files included.
    pub fn names_in(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A control connection spoken by hand.
pub struct Raw {
    reader: BufReader<TcpStream>,
    /// The socket, for what the helpers do not cover (resets, half-closes, urgent data).
    pub stream: TcpStream,
    last_command: String,
}

impl Raw {
    /// Connects to `addr` and reads the 220 greeting.
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut raw = Raw {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
            last_command: "(greeting)".into(),
        };
        let (code, _) = raw.reply();
        assert_eq!(code, 220);
        raw
    }

    /// Connects from `source` (another loopback address such as 127.0.0.2 stands for another
    /// client network).
    pub fn connect_from(source: &str, addr: SocketAddr) -> Raw {
        let stream = connect_from(source, addr);
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut raw = Raw::from_stream(stream);
        raw.last_command = "(greeting)".into();
        let (code, _) = raw.reply();
        assert_eq!(code, 220);
        raw
    }

    /// PASV, returning the address of the 227 reply as written.
    pub fn pasv(&mut self) -> SocketAddr {
        let (code, text) = self.cmd("PASV");
        assert_eq!(code, 227, "{text}");
        let inner = text
            .split('(')
            .nth(1)
            .and_then(|t| t.split(')').next())
            .unwrap_or_else(|| panic!("no address in {text:?}"));
        let n: Vec<u16> = inner
            .split(',')
            .map(|x| x.trim().parse().unwrap())
            .collect();
        assert_eq!(n.len(), 6, "{text}");
        let ip = std::net::Ipv4Addr::new(n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8);
        SocketAddr::new(ip.into(), n[4] * 256 + n[5])
    }

    /// A control connection already past the greeting.
    pub fn from_stream(stream: TcpStream) -> Raw {
        Raw {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
            last_command: String::new(),
        }
    }

    /// Sends one command line (CRLF added).
    pub fn send(&mut self, line: &str) {
        self.last_command = line.to_string();
        self.send_bytes(format!("{line}\r\n").as_bytes());
    }

    /// Sends bytes as they are.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one whole reply (multi-line aware): the code and all its text.
    pub fn reply(&mut self) -> (u16, String) {
        let mut line = String::new();
        let started = std::time::Instant::now();
        if let Err(e) = self.reader.read_line(&mut line) {
            panic!(
                "no reply to {:?} after {:?}: {e}",
                self.last_command,
                started.elapsed()
            );
        }
        assert!(line.len() >= 4, "short reply line {line:?}");
        let code: u16 = line[..3]
            .parse()
            .unwrap_or_else(|_| panic!("bad reply {line:?}"));
        let mut text = line.clone();
        if line.as_bytes()[3] == b'-' {
            let end = format!("{code} ");
            loop {
                let mut next = String::new();
                if self.reader.read_line(&mut next).unwrap() == 0 {
                    panic!("connection closed inside a multi-line reply");
                }
                text.push_str(&next);
                if next.starts_with(&end) {
                    break;
                }
            }
        }
        (code, text)
    }

    /// Whether the server closed the connection (reads nothing more).
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(line);
        self.reply()
    }

    /// Sends a command and returns its reply code.
    pub fn code(&mut self, line: &str) -> u16 {
        self.cmd(line).0
    }

    /// USER and PASS, asserting 331 and 230.
    pub fn login(&mut self, user: &str, pass: &str) {
        assert_eq!(self.code(&format!("USER {user}")), 331);
        assert_eq!(self.code(&format!("PASS {pass}")), 230);
    }

    /// EPSV, returning the data address.
    pub fn epsv(&mut self) -> SocketAddr {
        let (code, text) = self.cmd("EPSV");
        assert_eq!(code, 229, "{text}");
        let port: u16 = text
            .split("|||")
            .nth(1)
            .unwrap()
            .trim_end()
            .trim_end_matches(")")
            .trim_end_matches('|')
            .parse()
            .unwrap();
        SocketAddr::new(self.stream.peer_addr().unwrap().ip(), port)
    }

    /// Runs a data command in passive mode and returns (final code, bytes received).
    pub fn download(&mut self, command: &str) -> (u16, Vec<u8>) {
        let addr = self.epsv();
        let mut data = TcpStream::connect(addr).unwrap();
        let (code, text) = self.cmd(command);
        if code != 150 {
            return (code, text.into_bytes());
        }
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).unwrap();
        (self.reply().0, bytes)
    }

    /// STOR-like command in passive mode with these bytes; returns the final code.
    pub fn upload(&mut self, command: &str, bytes: &[u8]) -> u16 {
        self.upload_reply(command, bytes).0
    }

    /// The same, returning the final reply's code and text.
    pub fn upload_reply(&mut self, command: &str, bytes: &[u8]) -> (u16, String) {
        let addr = self.epsv();
        let mut data = TcpStream::connect(addr).unwrap();
        let (code, text) = self.cmd(command);
        if code != 150 {
            return (code, text);
        }
        // The server may refuse the upload midway (a size limit): it then closes the data
        // connection, and the rest cannot be written.
        let _ = data.write_all(bytes);
        drop(data);
        self.reply()
    }
}

/// A TCP connection to `addr` from the loopback address `source` (any free port).
pub fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let source: std::net::IpAddr = source.parse().unwrap();
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

/// Makes closing `stream` send a TCP reset (SO_LINGER 0) instead of a FIN, as a client that
/// crashes or is killed does.
pub fn set_reset_on_close(stream: &TcpStream) {
    socket2::SockRef::from(stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// `len` pseudo-random bytes, the same for the same `seed`.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Checks that every fact FEAT's MLST line offers is in every entry of MLSD (of the current
/// directory, which holds a directory `dir` and a file `file.txt`) and of MLST, and that
/// `OPTS MLST` selects exactly the offered facts.
///
/// On object storage a directory that exists only as a key prefix has no time of its own:
/// with `prefix_dirs_without_modify`, a `type=dir` entry may lack `modify` (files never may).
pub fn check_advertised_facts(raw: &mut Raw, prefix_dirs_without_modify: bool) {
    let (code, feat) = raw.cmd("FEAT");
    assert_eq!(code, 211);
    let line = feat
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("MLST "))
        .unwrap()
        .to_string();
    let offered: Vec<String> = line
        .split(';')
        .filter(|f| !f.is_empty())
        .map(|f| f.trim_end_matches('*').to_string())
        .collect();
    assert!(offered.contains(&"type".to_string()), "{line}");
    let check = |entry: &str| {
        let facts = entry.split_once(' ').unwrap().0.to_ascii_lowercase();
        for fact in &offered {
            if prefix_dirs_without_modify && fact == "modify" && facts.contains("type=dir;") {
                continue;
            }
            assert!(
                facts.contains(&format!("{fact}=")),
                "{fact} offered in FEAT ({line}) but missing from {entry:?}"
            );
        }
    };
    let (code, listing) = raw.download("MLSD");
    assert_eq!(code, 226);
    let listing = String::from_utf8(listing).unwrap();
    assert!(listing.lines().any(|l| l.contains("type=dir")), "{listing}");
    assert!(
        listing.lines().any(|l| l.contains("type=file")),
        "{listing}"
    );
    listing.lines().for_each(check);
    for target in ["", "dir", "file.txt"] {
        let (code, mlst) = raw.cmd(&format!("MLST {target}"));
        assert_eq!(code, 250, "{mlst}");
        check(mlst.lines().nth(1).unwrap().trim_start());
    }
    // Selecting every fact selects only those offered.
    let (_, opts) = raw.cmd("OPTS MLST type;size;modify;perm;unique;unix.mode;");
    let selected = opts.split_once("MLST OPTS ").unwrap().1.trim().to_string();
    assert_eq!(selected, format!("{};", offered.join(";")));
}
