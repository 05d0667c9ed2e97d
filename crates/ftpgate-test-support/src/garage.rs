//! A real single-node [Garage](https://garagehq.deuxfleurs.fr/) S3 server, started for tests.
//!
//! The API is synchronous (it runs the `garage` program and waits for it), so it can be called
//! from plain `#[test]`s and from inside async tests alike (it blocks the calling thread for the
//! few seconds a start takes).
//!
//! ```no_run
//! let garage = ftpgate_test_support::garage::shared();
//! let prefix = ftpgate_test_support::garage::unique_prefix("listing");
//! // Point an S3 client at garage.endpoint / garage.region / garage.bucket with
//! // garage.access_key and garage.secret_key, keeping every key under `prefix`.
//! # let _ = (garage, prefix);
//! ```
//!
//! [`start`] gives a server of one's own, stopped and deleted when the [`Garage`] is dropped.
//! [`shared`] starts one server per test binary, on first use, for tests that keep to their own
//! prefix (or their own bucket, made with [`Garage::create_bucket`]); it is stopped and deleted
//! when the test binary exits, even if it is killed, by a small watchdog process.
//!
//! The `garage` program is looked for in `$FTPGATE_GARAGE_BIN`, then on `PATH`, then in
//! `~/.cargo/bin`. Install it with `cargo install garage --locked`.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The region the server answers to.
pub const REGION: &str = "garage";
/// The bucket every server starts with.
pub const BUCKET: &str = "ftpgate";
/// The name of the key every server starts with.
pub const KEY_NAME: &str = "ftpgate-key";

/// How long a start may take before it is given up.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times a start is tried when the server dies at once (a port taken in between).
const START_ATTEMPTS: usize = 3;

/// A running Garage server with one bucket and one key allowed on it.
#[derive(Debug)]
pub struct Garage {
    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The S3 region (`garage`).
    pub region: String,
    /// A bucket the key may read, write and own.
    pub bucket: String,
    /// The access key ID (`GK…`).
    pub access_key: String,
    /// The secret access key.
    pub secret_key: String,
    /// The admin API endpoint, `http://127.0.0.1:PORT`.
    pub admin_endpoint: String,
    /// The bearer token of the admin API.
    pub admin_token: String,
    /// How long the start took, from launching the server to the key being allowed.
    pub startup: Duration,
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    server: Option<Child>,
    watchdog: Option<Watchdog>,
    dir: Option<TempDir>,
}

/// A shell that waits for its standard input to close (when the test process exits or the
/// [`Garage`] is dropped), then kills the server and removes its directory.
#[derive(Debug)]
pub(crate) struct Watchdog {
    pub(crate) child: Child,
    pub(crate) stdin: Option<ChildStdin>,
}

/// Where the `garage` program is: `$FTPGATE_GARAGE_BIN`, else `garage` on `PATH`, else
/// `~/.cargo/bin/garage`. `None` if none of them exists.
pub fn find_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("FTPGATE_GARAGE_BIN") {
        let bin = PathBuf::from(bin);
        return bin.is_file().then_some(bin);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let in_cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .map(|cargo| cargo.join("bin"));
    on_path
        .into_iter()
        .chain(in_cargo_home)
        .map(|dir| dir.join("garage"))
        .find(|bin| bin.is_file())
}

/// Starts a server of one's own; it is stopped and its files removed when dropped.
///
/// # Panics
///
/// If `garage` is not installed, or the server does not come up within 60 seconds (the panic
/// message then holds the server's log).
pub fn start() -> Garage {
    match try_start() {
        Ok(garage) => garage,
        Err(message) => panic!("{message}"),
    }
}

/// The server shared by every test of this test binary, started on first use.
///
/// Tests sharing it must keep to their own keys: a prefix from [`unique_prefix`], or a bucket
/// of their own from [`Garage::create_bucket`].
///
/// # Panics
///
/// As [`start`]; once a start failed, every later call panics with the same message.
pub fn shared() -> &'static Garage {
    static SHARED: OnceLock<Result<Garage, String>> = OnceLock::new();
    match SHARED.get_or_init(try_start) {
        Ok(garage) => garage,
        Err(message) => panic!("{message}"),
    }
}

/// A key prefix no other test uses: `label-<random hex>/`.
pub fn unique_prefix(label: &str) -> String {
    format!("{label}-{}/", random_hex(8))
}

/// Starts a server, or says why it could not.
pub fn try_start() -> Result<Garage, String> {
    if let Some(bin) = std::env::var_os("FTPGATE_GARAGE_BIN") {
        if !Path::new(&bin).is_file() {
            return Err(format!(
                "FTPGATE_GARAGE_BIN is {}, which is not a file",
                Path::new(&bin).display()
            ));
        }
    }
    let binary = find_binary().ok_or_else(|| {
        "the `garage` program (a Garage S3 server) is needed by this test but was not found \
         on PATH, in ~/.cargo/bin or in $FTPGATE_GARAGE_BIN; install it with \
         `cargo install garage --locked` (it takes 15-20 minutes to build on a 2-core machine)"
            .to_string()
    })?;
    let mut last_error = String::new();
    for _ in 0..START_ATTEMPTS {
        match Garage::launch(&binary) {
            Ok(garage) => return Ok(garage),
            Err(Launch::Retry(message)) => last_error = message,
            Err(Launch::Fatal(message)) => return Err(message),
        }
    }
    Err(last_error)
}

enum Launch {
    /// The server exited early: perhaps a port was taken between choosing and binding it.
    Retry(String),
    Fatal(String),
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        let _ = write!(out, "{:02x}", rand::random::<u8>());
    }
    out
}

/// Distinct free ports on 127.0.0.1 (held together while choosing so they differ).
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot find a free port: {e}"))
}

pub(crate) fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Sends a bare HTTP/1.0 GET and returns the status code, if anything answered.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_secs(1),
    )
    .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        match stream.read(&mut head[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    let head = std::str::from_utf8(&head[..len]).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}

impl Garage {
    fn launch(binary: &Path) -> Result<Garage, Launch> {
        let started = Instant::now();
        let fatal = |what: &str, e: std::io::Error| Launch::Fatal(format!("{what}: {e}"));
        let dir = tempfile::Builder::new()
            .prefix("ftpgate-garage-")
            .tempdir()
            .map_err(|e| fatal("cannot create a directory for garage", e))?;
        let ports = free_ports(3).map_err(Launch::Fatal)?;
        let (rpc_port, s3_port, admin_port) = (ports[0], ports[1], ports[2]);
        let admin_token = random_hex(32);
        let config = dir.path().join("garage.toml");
        let log = dir.path().join("garage.log");
        fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1

rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
admin_token = "{admin_token}"
"#,
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
                rpc_secret = random_hex(32),
            ),
        )
        .map_err(|e| fatal("cannot write garage.toml", e))?;

        let log_file = File::create(&log).map_err(|e| fatal("cannot create garage.log", e))?;
        let log_file_err = log_file
            .try_clone()
            .map_err(|e| fatal("cannot create garage.log", e))?;
        let mut server = base_command(binary, &config);
        server
            .arg("server")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_file_err);
        server.env("NO_COLOR", "1");
        if std::env::var_os("RUST_LOG").is_none() {
            server.env("RUST_LOG", "garage=info,netapp=warn");
        }
        let server = server
            .spawn()
            .map_err(|e| fatal(&format!("cannot run {}", binary.display()), e))?;
        let watchdog = Watchdog::start(server.id(), dir.path());

        let mut garage = Garage {
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            region: REGION.to_string(),
            bucket: BUCKET.to_string(),
            access_key: String::new(),
            secret_key: String::new(),
            admin_endpoint: format!("http://127.0.0.1:{admin_port}"),
            admin_token,
            startup: Duration::ZERO,
            binary: binary.to_path_buf(),
            config,
            log,
            server: Some(server),
            watchdog: watchdog.ok(),
            dir: Some(dir),
        };
        garage.setup(started, s3_port)?;
        garage.startup = started.elapsed();
        eprintln!(
            "garage: started at {} in {:.1} s",
            garage.endpoint,
            garage.startup.as_secs_f64()
        );
        Ok(garage)
    }

    /// Waits for the server, lays out the single node, makes the bucket and the key.
    fn setup(&mut self, started: Instant, s3_port: u16) -> Result<(), Launch> {
        let deadline = started + START_TIMEOUT;
        // The server's ports, then its RPC as the command line tool sees it.
        self.wait_until(deadline, "the server to listen", |g| {
            Ok(port_open(s3_port) && g.try_cli(["status"]).is_ok())
        })?;

        let node = self
            .try_cli(["node", "id", "-q"])
            .map_err(|e| self.fatal(&e))?;
        let node = node.trim();
        let node = node.split('@').next().unwrap_or(node).to_string();
        self.try_cli(["layout", "assign", "-z", "dc1", "-c", "1G", &node])
            .map_err(|e| self.fatal(&e))?;
        self.try_cli(["layout", "apply", "--version", "1"])
            .map_err(|e| self.fatal(&e))?;
        self.wait_until(deadline, "the layout to take effect", |g| {
            Ok(g.try_cli(["health", "-q"]).is_ok())
        })?;

        // Bucket creation needs the new layout to be in force everywhere; retry until it is.
        self.wait_until(deadline, "the bucket to be created", |g| {
            Ok(g.try_cli(["bucket", "create", BUCKET]).is_ok()
                || g.try_cli(["bucket", "info", BUCKET]).is_ok())
        })?;
        let key = self
            .try_cli(["key", "create", KEY_NAME])
            .map_err(|e| self.fatal(&e))?;
        self.access_key = field(&key, "Key ID:").ok_or_else(|| {
            self.fatal(&format!(
                "no `Key ID:` in `garage key create` output:\n{key}"
            ))
        })?;
        self.secret_key = field(&key, "Secret key:").ok_or_else(|| {
            self.fatal(&format!(
                "no `Secret key:` in `garage key create` output:\n{key}"
            ))
        })?;
        self.allow(BUCKET).map_err(|e| self.fatal(&e))?;

        // The S3 API answers anonymous requests with an error document once it is serving.
        self.wait_until(deadline, "the S3 API to answer", |_| {
            Ok(http_status(s3_port, "/").is_some())
        })?;
        Ok(())
    }

    /// Polls `ready` until it holds, the server dies or the deadline passes.
    fn wait_until(
        &mut self,
        deadline: Instant,
        what: &str,
        mut ready: impl FnMut(&Garage) -> Result<bool, Launch>,
    ) -> Result<(), Launch> {
        loop {
            if let Some(server) = self.server.as_mut() {
                if let Ok(Some(status)) = server.try_wait() {
                    return Err(Launch::Retry(format!(
                        "garage exited ({status}) while waiting for {what}; its log:\n{}",
                        self.log()
                    )));
                }
            }
            if ready(self)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.fatal(&format!(
                    "garage was not ready within {} s (waiting for {what})",
                    START_TIMEOUT.as_secs()
                )));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn fatal(&self, message: &str) -> Launch {
        Launch::Fatal(format!(
            "starting garage failed: {message}\n--- garage log ({}) ---\n{}",
            self.log.display(),
            self.log()
        ))
    }

    fn allow(&self, bucket: &str) -> Result<String, String> {
        self.try_cli([
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            &self.access_key,
        ])
    }

    /// The server's process id (to read its CPU time and memory from /proc).
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Child::id)
    }

    /// Creates another bucket, with the key allowed to read, write and own it.
    ///
    /// # Panics
    ///
    /// If the garage command line tool fails (with its output and the server's log).
    pub fn create_bucket(&self, name: &str) {
        self.cli(["bucket", "create", name]);
        if let Err(e) = self.allow(name) {
            panic!("{e}\n--- garage log ---\n{}", self.log());
        }
    }

    /// A `garage` command set up to talk to this server (`garage -c garage.toml`), for
    /// arguments and handling of one's own.
    pub fn command(&self) -> Command {
        base_command(&self.binary, &self.config)
    }

    /// Runs the garage command line tool with `args` and returns what it printed.
    ///
    /// # Panics
    ///
    /// If it fails; the message holds its output and the server's log.
    pub fn cli<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        match self.try_cli(args) {
            Ok(out) => out,
            Err(e) => panic!("{e}\n--- garage log ---\n{}", self.log()),
        }
    }

    /// Runs the garage command line tool with `args`: what it printed on success, or a message
    /// with the command and its output.
    pub fn try_cli<I, S>(&self, args: I) -> Result<String, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let shown = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut command = self.command();
        command.args(&args);
        cli_output(command, &shown)
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }

    /// The server's configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        // Kill without reaping first, so the watchdog cannot hit a reused process id; it then
        // removes the directory, and the server is reaped last.
        if let Some(server) = self.server.as_mut() {
            let _ = server.kill();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.child.wait();
        }
        if let Some(mut server) = self.server.take() {
            let _ = server.wait();
        }
        drop(self.dir.take());
    }
}

impl Watchdog {
    pub(crate) fn start(pid: u32, dir: &Path) -> std::io::Result<Watchdog> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"read -r line; kill -9 "$0" 2>/dev/null; rm -rf "$1""#)
            .arg(pid.to_string())
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take();
        Ok(Watchdog { child, stdin })
    }
}

/// `garage -c CONFIG`, with no `GARAGE_*` variables from the environment overriding it.
pub(crate) fn base_command(binary: &Path, config: &Path) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GARAGE_") {
            command.env_remove(name);
        }
    }
    command.arg("-c").arg(config);
    command
}

/// The value after `label` on the line that starts with it (`Key ID:   GK…`).
pub(crate) fn field(output: &str, label: &str) -> Option<String> {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

/// Runs a `garage` command (`shown` names it in errors): its standard output, or an error with
/// both outputs if it fails.
pub(crate) fn cli_output(mut command: Command, shown: &str) -> Result<String, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `garage {shown}`: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "`garage {shown}` failed ({}):\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_create_output() {
        let out = "==== ACCESS KEY INFORMATION ====\n\
                   Key ID:              GK0123456789abcdef01234567\n\
                   Key name:            ftpgate-key\n\
                   Secret key:          0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\
                   Created:             2025-01-01 00:00:00 +00:00\n";
        assert_eq!(
            field(out, "Key ID:").as_deref(),
            Some("GK0123456789abcdef01234567")
        );
        assert_eq!(
            field(out, "Secret key:").as_deref(),
            Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
        );
        assert_eq!(field(out, "Missing:"), None);
    }

    #[test]
    fn prefixes_differ() {
        assert_ne!(unique_prefix("a"), unique_prefix("a"));
        assert!(unique_prefix("a").starts_with("a-"));
    }
}
