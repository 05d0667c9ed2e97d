//! Starting and stopping the servers under test: ftpgate (by its CLI and a TOML file written
//! here) and the peers (by `bench/peers.sh run`), each on its own loopback port and passive
//! range, each in the foreground so the bench owns its process tree.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::client::Ftp;
use crate::procfs;

/// Every server the bench knows, ftpgate first.
pub(crate) const ALL: [&str; 5] = ["ftpgate", "vsftpd", "pure-ftpd", "proftpd", "pyftpdlib"];

/// A second ftpgate binary (`--baseline`), measured as one more server in the same run: an
/// alternating A/B of a change against the binary before it.
pub(crate) const BASELINE: &str = "ftpgate-baseline";

/// Where things are, shared by every server.
pub(crate) struct Env {
    /// The ftpgate binary.
    pub(crate) ftpgate: PathBuf,
    /// The baseline ftpgate binary, if any (server [`BASELINE`]).
    pub(crate) baseline: Option<PathBuf>,
    /// `bench/peers.sh`.
    pub(crate) peers_sh: PathBuf,
    /// The bench's data directory (served tree, logs, configs).
    pub(crate) data: PathBuf,
    /// The directory every server serves.
    pub(crate) root: PathBuf,
    /// PEM certificate and key shared by every server's FTPS.
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    /// The one user and password every server accepts.
    pub(crate) user: String,
    pub(crate) password: String,
}

impl Env {
    /// The binary of server `name` if it is an ftpgate (the one measured, or the baseline).
    fn ftpgate_binary(&self, name: &str) -> Option<&Path> {
        match name {
            "ftpgate" => Some(&self.ftpgate),
            BASELINE => self.baseline.as_deref(),
            _ => None,
        }
    }
}

/// One server under test: its name, control port and passive range.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) passive: (u16, u16),
}

impl Server {
    /// The named servers, each with its own control port and passive range (below the
    /// kernel's ephemeral range, so client ports never collide with them).
    pub(crate) fn named(names: &[String]) -> Result<Vec<Server>> {
        names
            .iter()
            .map(|name| {
                let index = ALL
                    .iter()
                    .chain([&BASELINE])
                    .position(|n| n == name)
                    .with_context(|| format!("unknown server {name:?} (known: {ALL:?})"))?;
                let index = index as u16;
                Ok(Server {
                    name: name.clone(),
                    port: 21210 + index,
                    passive: (10000 + index * 4000, 13999 + index * 4000),
                })
            })
            .collect()
    }

    /// The control address.
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Starts the server and waits (at most 20 s) until it greets on its port.
    pub(crate) async fn start(&self, env: &Env) -> Result<Running> {
        let log_path = env.data.join("logs").join(format!("{}.log", self.name));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let mut command = self.command(env)?;
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        // A server left over from an earlier run would answer in place of this one.
        if std::net::TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500)).is_ok() {
            bail!("port {} is already in use by another process", self.port);
        }
        let group = procfs::CpuGroup::create(&self.name);
        let child = command
            .spawn()
            .with_context(|| format!("cannot run {:?}", command.get_program()))?;
        let mut running = Running {
            pid: child.id(),
            child,
            group: None,
        };
        if let Some(group) = group {
            // Before the server can accept a session, so every session process is born in it.
            if group.add(running.pid).is_ok() {
                running.group = Some(group);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = running.child.try_wait()? {
                bail!("exited ({status}): {}", last_line(&log_path));
            }
            if let Ok(Ok(ftp)) =
                tokio::time::timeout(Duration::from_secs(2), Ftp::connect(self.addr(), None)).await
            {
                drop(ftp);
                if let Some(status) = running.child.try_wait()? {
                    bail!("exited ({status}): {}", last_line(&log_path));
                }
                return Ok(running);
            }
            if Instant::now() > deadline {
                bail!("no greeting on {} within 20 s", self.addr());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn command(&self, env: &Env) -> Result<Command> {
        let port = self.port.to_string();
        let (lo, hi) = (self.passive.0.to_string(), self.passive.1.to_string());
        if let Some(binary) = env.ftpgate_binary(&self.name) {
            let config = env.data.join("ftpgate.toml");
            std::fs::write(&config, FTPGATE_CONFIG)?;
            let mut command = Command::new(binary);
            command
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .arg("--root")
                .arg(&env.root)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--user", &env.user, "--password", &env.password])
                .args(["--passive-ports", &format!("{lo}-{hi}")])
                .arg("--tls-cert")
                .arg(&env.cert)
                .arg("--tls-key")
                .arg(&env.key)
                .env_remove("RUST_LOG");
            Ok(command)
        } else {
            let mut command = Command::new("bash");
            command
                .arg(&env.peers_sh)
                .args(["run", &self.name])
                .arg(&env.root)
                .args([&port, &lo, &hi, &env.user, &env.password]);
            Ok(command)
        }
    }
}

/// ftpgate's settings for the bench: connection limits high enough for 1,000 sessions from one
/// address; everything else, the command rate limit included, stays at its default.
const FTPGATE_CONFIG: &str = "\
[server]
max_connections = 5000
max_connections_per_ip = 5000
idle_timeout_secs = 600

[log]
level = \"warn\"
";

/// The last non-empty line of a log file, as the reason a server did not start.
fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .to_string()
}

/// A started server; dropping it kills its whole process tree.
pub(crate) struct Running {
    child: Child,
    /// The server's main process.
    pub(crate) pid: u32,
    /// Its cpuacct cgroup, where the machine has one.
    group: Option<procfs::CpuGroup>,
}

impl Running {
    /// Every process of the server: its cgroup's, or its process tree.
    pub(crate) fn pids(&self) -> Vec<u32> {
        match &self.group {
            Some(g) => g.pids(),
            None => procfs::tree(self.pid),
        }
    }

    /// CPU seconds used so far by all the server's processes, exited ones included.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        self.group
            .as_ref()
            .and_then(|g| g.cpu_seconds())
            .unwrap_or_else(|| procfs::cpu_seconds(self.pid))
    }

    /// How CPU time is measured, for the report.
    pub(crate) fn cpu_source(&self) -> &'static str {
        if self.group.is_some() {
            "cpuacct cgroup"
        } else {
            "/proc process tree"
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Kill until nothing is left: a forking server may fork while being killed, and its
        // new child (born in the cgroup) must not survive to answer on the port later.
        // Bounded: at most 100 passes, 2 s.
        for _ in 0..100 {
            let mut pids = self.pids();
            pids.extend(procfs::tree(self.pid));
            pids.retain(|&p| p != std::process::id());
            if let Ok(pid) = i32::try_from(self.pid) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = self.child.kill();
            let _ = self.child.try_wait();
            let alive: Vec<u32> = pids
                .into_iter()
                .filter(|&p| procfs::is_running(p))
                .collect();
            if alive.is_empty() {
                break;
            }
            for pid in alive {
                if let Ok(pid) = i32::try_from(pid) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
        // The group itself is removed by its Drop, once its processes are gone.
    }
}

/// The server's version, as `peers.sh version` reports it (ftpgate: its `--version`).
pub(crate) fn version(env: &Env, name: &str) -> String {
    let output = if let Some(binary) = env.ftpgate_binary(name) {
        Command::new(binary).arg("--version").output()
    } else {
        Command::new("bash")
            .arg(&env.peers_sh)
            .args(["version", name])
            .output()
    };
    match output {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "unknown".to_string(),
    }
}
