//! Two ftpgate nodes behind HAProxy on loopback: the scale-out topology of `docs/SCALE-OUT.md`.
//!
//! Node A listens on 127.0.0.2, node B on 127.0.0.3, each with its own passive port range and
//! admin listener, both serving one local directory (the nodes share it as they would share a
//! bucket). HAProxy runs `contrib/haproxy.cfg` itself, unchanged: its addresses and ports are
//! environment variables, set here to the loopback values. It listens on 127.0.0.1 (control
//! port and both passive ranges) and connects to the nodes from 127.0.0.4, the one address
//! the nodes trust to send PROXY headers.
//!
//! [`FleetOptions`] give the nodes their store and shared state (`node_extra`: `[storage]`,
//! `[state]`), so the same bed runs the whole fleet of `docs/SCALE-OUT.md`: HAProxy in front,
//! a Garage cluster behind, one Redis between the nodes.
//!
//! The API is synchronous (processes and files); everything is stopped and removed when the
//! [`Fleet`] is dropped. The `ftpgate` binary is given by the caller (a test's
//! `CARGO_BIN_EXE_ftpgate`); `haproxy` is looked for on `PATH` and in `/usr/sbin`.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use rand::Rng;
use tempfile::TempDir;

/// The load balancer's address (control frontend and both passive ranges).
pub const LB_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// The address HAProxy connects to the nodes from: the nodes' only trusted peer.
pub const LB_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
/// The user every node serves.
pub const USER: &str = "fleet";
/// Its password.
pub const PASSWORD: &str = "fleet-pw";
/// Ports in each node's passive range.
const RANGE: u16 = 20;

/// One ftpgate node of the fleet.
#[derive(Debug)]
pub struct Node {
    /// `a` or `b`.
    pub name: &'static str,
    /// Its own address (127.0.0.2 or 127.0.0.3).
    pub addr: Ipv4Addr,
    /// Its control port (on `addr`).
    pub ftp_port: u16,
    /// Its passive range (the same ports on the load balancer).
    pub passive: RangeInclusive<u16>,
    /// Its admin listener's port (on `addr`).
    pub admin_port: u16,
    config: PathBuf,
    log: PathBuf,
    binary: PathBuf,
    child: Option<Child>,
}

/// Two nodes behind HAProxy.
#[derive(Debug)]
pub struct Fleet {
    /// The load balancer's control address (127.0.0.1:PORT).
    pub lb: SocketAddr,
    /// Node A and node B.
    pub nodes: [Node; 2],
    /// The directory both nodes serve (the user's home).
    pub data: PathBuf,
    haproxy: Option<Child>,
    haproxy_log: PathBuf,
    dir: TempDir,
    /// One fleet at a time per test binary: each takes two nodes, HAProxy and port ranges,
    /// and the tests that use one measure timings.
    _one_at_a_time: MutexGuard<'static, ()>,
}

static ONE_FLEET: Mutex<()> = Mutex::new(());

/// What the nodes are set up with beyond the fleet's defaults.
#[derive(Debug, Clone, Default)]
pub struct FleetOptions {
    /// Extra TOML for `[server]` of every node (lines such as `drain_secs = 3`).
    pub server_extra: String,
    /// Extra TOML for `[server.proxy_protocol]` of every node.
    pub proxy_extra: String,
    /// Extra TOML of node A and node B, after their `[admin]` table and before `[[users]]`:
    /// whole tables of their own, such as `[storage]` (each node may reach the store through
    /// a different endpoint) and `[state]`.
    pub node_extra: [String; 2],
    /// The user's `home`; by default the fleet's local directory ([`Fleet::data`]). With
    /// object storage, a key prefix in the bucket (such as `"fleet"`).
    pub home: Option<String>,
}

impl Fleet {
    /// Starts both nodes and HAProxy, and waits until HAProxy sees both nodes ready.
    pub fn start(ftpgate: &Path, options: &FleetOptions) -> Fleet {
        let guard = ONE_FLEET
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = tempfile::tempdir().expect("temporary directory");
        let data = dir.path().join("data");
        fs::create_dir_all(&data).expect("data directory");
        let hash = password_hash(ftpgate);
        let lb_port = free_port(LB_ADDR);
        let ranges = free_ranges(2);
        let mut nodes = Vec::new();
        for (i, (name, addr)) in [
            ("a", Ipv4Addr::new(127, 0, 0, 2)),
            ("b", Ipv4Addr::new(127, 0, 0, 3)),
        ]
        .into_iter()
        .enumerate()
        {
            let ftp_port = free_port(addr);
            let admin_port = free_port(addr);
            let passive = ranges[i].clone();
            let config = dir.path().join(format!("node-{name}.toml"));
            fs::write(
                &config,
                format!(
                    r#"[server]
listen = ["{addr}:{ftp_port}"]
passive_ports = "{lo}-{hi}"
session_threads = 1
{server_extra}

[server.proxy_protocol]
trusted = ["{LB_SOURCE}"]
{proxy_extra}

[admin]
listen = ["{addr}:{admin_port}"]

{node_extra}

[log]
level = "info"

[tls]
self_signed = true

[[users]]
name = "{USER}"
password_hash = "{hash}"
home = "{home}"
"#,
                    lo = passive.start(),
                    hi = passive.end(),
                    server_extra = options.server_extra,
                    proxy_extra = options.proxy_extra,
                    node_extra = options.node_extra[i],
                    home = options
                        .home
                        .clone()
                        .unwrap_or_else(|| data.display().to_string()),
                ),
            )
            .expect("node config");
            nodes.push(Node {
                name,
                addr,
                ftp_port,
                passive,
                admin_port,
                config,
                log: dir.path().join(format!("node-{name}.log")),
                binary: ftpgate.to_path_buf(),
                child: None,
            });
        }
        let mut nodes: [Node; 2] = match nodes.try_into() {
            Ok(nodes) => nodes,
            Err(_) => unreachable!("two nodes"),
        };
        for node in &mut nodes {
            node.start();
        }
        let mut fleet = Fleet {
            lb: SocketAddr::from((LB_ADDR, lb_port)),
            nodes,
            data,
            haproxy: None,
            haproxy_log: dir.path().join("haproxy.log"),
            dir,
            _one_at_a_time: guard,
        };
        fleet.start_haproxy();
        fleet.wait_until_balanced(true, true);
        fleet
    }

    fn start_haproxy(&mut self) {
        let [a, b] = &self.nodes;
        let range = |n: &Node| format!("{}-{}", n.passive.start(), n.passive.end());
        let log = fs::File::create(&self.haproxy_log).expect("haproxy log");
        let child = Command::new(haproxy_binary())
            .arg("-db")
            .arg("-f")
            .arg(contrib_config())
            .env("LB_ADDR", LB_ADDR.to_string())
            .env("LB_FTP_PORT", self.lb.port().to_string())
            .env("LB_SOURCE", LB_SOURCE.to_string())
            .env("NODE_A_ADDR", a.addr.to_string())
            .env("NODE_A_FTP_PORT", a.ftp_port.to_string())
            .env("NODE_A_PASSIVE", range(a))
            .env("NODE_A_ADMIN", a.admin_port.to_string())
            .env("NODE_B_ADDR", b.addr.to_string())
            .env("NODE_B_FTP_PORT", b.ftp_port.to_string())
            .env("NODE_B_PASSIVE", range(b))
            .env("NODE_B_ADMIN", b.admin_port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("haproxy log"))
            .stderr(log)
            .spawn()
            .expect("haproxy starts (install the haproxy package)");
        self.haproxy = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(self.lb).is_err() {
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen on {}: {}",
                self.lb,
                self.haproxy_log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until HAProxy's health checks see node A up (`a`) or down, and node B likewise:
    /// judged by where new control connections land.
    pub fn wait_until_balanced(&self, a: bool, b: bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut seen = [false, false];
            for _ in 0..8 {
                if let Some(node) = self.node_of_new_connection() {
                    seen[node] = true;
                }
            }
            if seen == [a, b] {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "HAProxy did not reach nodes up = {:?} (saw {seen:?}): {}",
                [a, b],
                self.haproxy_log()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Which node (0 = A, 1 = B) serves a new control connection through the load balancer,
    /// told by the passive port it offers.
    pub fn node_of_new_connection(&self) -> Option<usize> {
        let mut control = crate_client::Control::connect(self.lb)?;
        control.command(&format!("USER {USER}"))?;
        control.command(&format!("PASS {PASSWORD}"))?;
        let reply = control.command("EPSV")?;
        let _ = control.command("QUIT");
        let port = epsv_port(&reply)?;
        self.nodes.iter().position(|n| n.passive.contains(&port))
    }

    /// HAProxy's output so far.
    pub fn haproxy_log(&self) -> String {
        fs::read_to_string(&self.haproxy_log).unwrap_or_default()
    }

    /// The fleet's working directory (configs and logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if let Some(mut child) = self.haproxy.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

impl Node {
    /// Starts the node and waits until it listens.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "node {} already runs", self.name);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("node log");
        let child = Command::new(&self.binary)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("node log"))
            .stderr(log)
            .spawn()
            .expect("ftpgate starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = SocketAddr::from((self.addr, self.ftp_port));
        // A direct connection is served as any client's, so a plain connect shows it is up.
        while TcpStream::connect(addr).is_err() {
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("node {} exited ({status}): {}", self.name, self.log_text());
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not listen: {}",
                self.name,
                self.log_text()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM (the node drains: `/readyz` 503, listeners open for `drain_secs`, then
    /// transfers finish) without waiting.
    pub fn terminate(&mut self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
    }

    /// Waits for the node to exit (after [`terminate`](Self::terminate)); its exit status.
    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the node at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The node's log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The node's control address.
    pub fn ftp_addr(&self) -> SocketAddr {
        SocketAddr::from((self.addr, self.ftp_port))
    }
}

/// `contrib/haproxy.cfg` of this workspace.
pub fn contrib_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/haproxy.cfg")
}

fn haproxy_binary() -> PathBuf {
    for dir in std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
    {
        let candidate = dir.join("haproxy");
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from("haproxy")
}

fn password_hash(ftpgate: &Path) -> String {
    let out = Command::new(ftpgate)
        .args(["hash-password", "--password", PASSWORD])
        .output()
        .expect("ftpgate hash-password");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A free port on `ip`.
fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `count` ranges of `RANGE` ports each, free on every fleet address.
fn free_ranges(count: usize) -> Vec<RangeInclusive<u16>> {
    let addrs = [
        LB_ADDR,
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
    ];
    let mut ranges: Vec<RangeInclusive<u16>> = Vec::new();
    let mut rng = rand::thread_rng();
    for _ in 0..1000 {
        if ranges.len() == count {
            break;
        }
        let start: u16 = rng.gen_range(20_000..30_000);
        let range = start..=start + RANGE - 1;
        let overlaps = ranges
            .iter()
            .any(|r| r.contains(range.start()) || r.contains(range.end()));
        let free = range.clone().all(|port| {
            addrs
                .iter()
                .all(|ip| TcpListener::bind((*ip, port)).is_ok())
        });
        if !overlaps && free {
            ranges.push(range);
        }
    }
    assert_eq!(ranges.len(), count, "no free passive port ranges");
    ranges
}

/// The port of a 229 reply.
pub fn epsv_port(reply: &str) -> Option<u16> {
    let inner = reply.split("(|||").nth(1)?;
    inner.split('|').next()?.parse().ok()
}

/// A minimal blocking control-connection client (the fleet's own probe).
mod crate_client {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    pub(super) struct Control {
        reader: BufReader<TcpStream>,
        writer: TcpStream,
    }

    impl Control {
        pub(super) fn connect(addr: SocketAddr) -> Option<Control> {
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            let writer = stream.try_clone().ok()?;
            let mut control = Control {
                reader: BufReader::new(stream),
                writer,
            };
            let banner = control.reply()?;
            banner.starts_with("220").then_some(control)
        }

        pub(super) fn command(&mut self, line: &str) -> Option<String> {
            self.writer
                .write_all(format!("{line}\r\n").as_bytes())
                .ok()?;
            self.reply()
        }

        fn reply(&mut self) -> Option<String> {
            let mut all = String::new();
            loop {
                let mut line = String::new();
                if self.reader.read_line(&mut line).ok()? == 0 {
                    return None;
                }
                all.push_str(&line);
                // The last line of a reply: three digits and a space.
                if line.len() >= 4 && line.as_bytes()[3] == b' ' {
                    return Some(all);
                }
            }
        }
    }
}
