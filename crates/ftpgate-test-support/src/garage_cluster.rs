//! A real three-node [Garage](https://garagehq.deuxfleurs.fr/) cluster on loopback, for tests of
//! a fleet over a distributed store: nodes on 127.0.0.11, 127.0.0.12 and 127.0.0.13, each in
//! a zone of its own, `replication_factor = 3` and `consistency_mode = "consistent"` (reads
//! and writes need two of the three copies), one bucket and one key. Nodes can be killed
//! (SIGKILL) and started again.
//!
//! ```no_run
//! let mut cluster = ftpgate_test_support::garage_cluster::start();
//! // S3 clients use cluster.endpoint(0) (node 1) with cluster.access_key / secret_key.
//! cluster.kill(2);     // one copy lost: reads and writes still reach a quorum
//! cluster.restart(2);  // back, and caught up by Garage's own repair
//! ```
//!
//! Like [`garage`](crate::garage), the API is synchronous, the `garage` program is found the
//! same way, and the cluster is stopped and its files removed when the [`GarageCluster`] is
//! dropped, or when the test process exits, by a watchdog.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::garage::{BUCKET, KEY_NAME, REGION, Watchdog, base_command, field, random_hex};

/// The nodes' addresses.
pub const NODE_IPS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(127, 0, 0, 11),
    Ipv4Addr::new(127, 0, 0, 12),
    Ipv4Addr::new(127, 0, 0, 13),
];

const START_TIMEOUT: Duration = Duration::from_secs(90);

/// One node of the cluster.
#[derive(Debug)]
struct Node {
    ip: Ipv4Addr,
    rpc_port: u16,
    s3_port: u16,
    config: PathBuf,
    log: PathBuf,
    /// `id@ip:port`, once known.
    address: String,
    server: Option<Child>,
}

/// A running three-node cluster with one bucket and one key allowed on it.
#[derive(Debug)]
pub struct GarageCluster {
    /// The S3 region (`garage`).
    pub region: String,
    /// A bucket the key may read, write and own.
    pub bucket: String,
    /// The access key ID (`GK…`).
    pub access_key: String,
    /// The secret access key.
    pub secret_key: String,
    binary: PathBuf,
    nodes: Vec<Node>,
    pids: PathBuf,
    watchdog: Option<Watchdog>,
    dir: Option<TempDir>,
}

/// Starts a cluster; it is stopped and its files removed when dropped.
///
/// # Panics
///
/// If `garage` is not installed, or the cluster is not up within 90 seconds (the panic message
/// then holds the nodes' logs).
pub fn start() -> GarageCluster {
    match try_start() {
        Ok(cluster) => cluster,
        Err(message) => panic!("{message}"),
    }
}

/// Starts a cluster, or says why it could not.
pub fn try_start() -> Result<GarageCluster, String> {
    let binary = crate::garage::find_binary().ok_or_else(|| {
        "the `garage` program is needed by this test but was not found on PATH, in \
         ~/.cargo/bin or in $FTPGATE_GARAGE_BIN; install it with `cargo install garage --locked`"
            .to_string()
    })?;
    let dir = tempfile::Builder::new()
        .prefix("ftpgate-garage-cluster-")
        .tempdir()
        .map_err(|e| format!("cannot create a directory for garage: {e}"))?;
    let rpc_secret = random_hex(32);
    let mut nodes = Vec::new();
    for (i, ip) in NODE_IPS.into_iter().enumerate() {
        let [rpc_port, s3_port, admin_port] = free_ports_on(ip)?;
        let node_dir = dir.path().join(format!("node{}", i + 1));
        fs::create_dir_all(&node_dir).map_err(|e| format!("cannot create {node_dir:?}: {e}"))?;
        let config = node_dir.join("garage.toml");
        fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 3
consistency_mode = "consistent"

rpc_bind_addr = "{ip}:{rpc_port}"
rpc_public_addr = "{ip}:{rpc_port}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "{ip}:{s3_port}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "{ip}:{admin_port}"
admin_token = "{admin_token}"
"#,
                meta = node_dir.join("meta").display(),
                data = node_dir.join("data").display(),
                admin_token = random_hex(32),
            ),
        )
        .map_err(|e| format!("cannot write {config:?}: {e}"))?;
        nodes.push(Node {
            ip,
            rpc_port,
            s3_port,
            log: node_dir.join("garage.log"),
            config,
            address: String::new(),
            server: None,
        });
    }
    let pids = dir.path().join("pids");
    let mut cluster = GarageCluster {
        region: REGION.to_string(),
        bucket: BUCKET.to_string(),
        access_key: String::new(),
        secret_key: String::new(),
        binary,
        nodes,
        watchdog: Watchdog::start_for_list(&pids, dir.path()).ok(),
        pids,
        dir: Some(dir),
    };
    let started = Instant::now();
    for i in 0..3 {
        cluster.spawn(i)?;
    }
    cluster.setup(started + START_TIMEOUT).map_err(|e| {
        format!(
            "starting the garage cluster failed: {e}\n{}",
            cluster.logs()
        )
    })?;
    eprintln!(
        "garage cluster: 3 nodes up in {:.1} s (S3 at {})",
        started.elapsed().as_secs_f64(),
        cluster.endpoint(0)
    );
    Ok(cluster)
}

/// Three free ports on `ip`.
fn free_ports_on(ip: Ipv4Addr) -> Result<[u16; 3], String> {
    let listeners = (0..3)
        .map(|_| TcpListener::bind((ip, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot find a free port on {ip}: {e}"))?;
    let mut ports = [0; 3];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener
            .local_addr()
            .map_err(|e| format!("cannot find a free port on {ip}: {e}"))?
            .port();
    }
    Ok(ports)
}

fn open(ip: Ipv4Addr, port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_millis(200)).is_ok()
}

impl GarageCluster {
    /// The S3 endpoint of node `i` (0, 1 or 2): `http://127.0.0.1x:PORT`.
    pub fn endpoint(&self, i: usize) -> String {
        let node = &self.nodes[i];
        format!("http://{}:{}", node.ip, node.s3_port)
    }

    /// Kills node `i` with SIGKILL (no chance to flush or say goodbye), and waits until the
    /// nodes left see it gone.
    ///
    /// # Panics
    ///
    /// If they still count it as connected after 60 seconds.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut server) = self.nodes[i].server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        self.write_pids();
        let up = self.nodes.iter().filter(|n| n.server.is_some()).count();
        let Some(live) = self.nodes.iter().position(|n| n.server.is_some()) else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let result = self.wait_until(deadline, "the node to be seen down", |c| {
            Ok(c.health(live).get("Storage nodes up") == Some(&up))
        });
        if let Err(e) = result {
            panic!(
                "killing garage node {}: {e}\n{:?}\n{}",
                i + 1,
                self.try_cli(live, ["health"]),
                self.logs()
            );
        }
    }

    /// `garage health` of node `i`, as numbers by label (`Connected nodes`, `Storage nodes
    /// up`, `Partitions with quorum`…); empty if it does not answer.
    pub fn health(&self, i: usize) -> std::collections::HashMap<String, usize> {
        // It exits with 1 when the cluster is unavailable, still printing the figures.
        let text = base_command(&self.binary, &self.nodes[i].config)
            .arg("health")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let (label, value) = line.split_once(':')?;
                Some((label.trim().to_string(), value.trim().parse().ok()?))
            })
            .collect()
    }

    /// Starts node `i` again (after [`kill`](Self::kill)) and waits until the cluster is
    /// healthy with all three nodes.
    ///
    /// # Panics
    ///
    /// If it does not come back within 90 seconds.
    pub fn restart(&mut self, i: usize) {
        let deadline = Instant::now() + START_TIMEOUT;
        let result = self.spawn(i).and_then(|()| {
            // Reconnect both ways at once rather than at the others' next retry (up to a
            // minute).
            self.wait_until(deadline, "the node to listen", |c| {
                Ok(c.try_cli(i, ["status"]).is_ok())
            })?;
            let others: Vec<usize> = (0..self.nodes.len())
                .filter(|&j| j != i && self.nodes[j].server.is_some())
                .collect();
            let address = self.nodes[i].address.clone();
            for &j in &others {
                let _ = self.try_cli(i, ["node", "connect", &self.nodes[j].address]);
                let _ = self.try_cli(j, ["node", "connect", &address]);
            }
            self.wait_until(deadline, "the node to rejoin", |c| {
                let up = c.nodes.iter().filter(|n| n.server.is_some()).count();
                Ok(open(c.nodes[i].ip, c.nodes[i].s3_port)
                    && c.nodes.iter().enumerate().all(|(j, n)| {
                        n.server.is_none() || c.health(j).get("Storage nodes up") == Some(&up)
                    }))
            })
        });
        if let Err(e) = result {
            panic!("restarting garage node {}: {e}\n{}", i + 1, self.logs());
        }
    }

    /// Runs the garage command line tool against node `i` with `args`; what it printed.
    ///
    /// # Panics
    ///
    /// If it fails (with its output and the nodes' logs).
    pub fn cli<const N: usize>(&self, i: usize, args: [&str; N]) -> String {
        match self.try_cli(i, args) {
            Ok(out) => out,
            Err(e) => panic!("{e}\n{}", self.logs()),
        }
    }

    /// As [`cli`](Self::cli), returning the failure.
    pub fn try_cli<const N: usize>(&self, i: usize, args: [&str; N]) -> Result<String, String> {
        let mut command = base_command(&self.binary, &self.nodes[i].config);
        command.args(args);
        crate::garage::cli_output(command, &format!("{} (node {})", args.join(" "), i + 1))
    }

    /// Every node's log, headed by its name.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let log = fs::read(&node.log)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!(
                    "--- garage node {} ({}) ---\n{}\n",
                    i + 1,
                    node.ip,
                    tail.join("\n")
                )
            })
            .collect()
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let node = &mut self.nodes[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|e| format!("cannot open {:?}: {e}", node.log))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot open {:?}: {e}", node.log))?;
        let mut command = base_command(&self.binary, &node.config);
        command
            .arg("server")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .env("NO_COLOR", "1");
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "garage=info,netapp=warn");
        }
        node.server = Some(
            command
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?,
        );
        self.write_pids();
        Ok(())
    }

    fn write_pids(&self) {
        let pids: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|n| n.server.as_ref().map(|s| s.id().to_string()))
            .collect();
        let _ = fs::write(&self.pids, pids.join("\n"));
    }

    /// Connects the nodes, lays them out (one zone each, three copies), applies the layout,
    /// makes the bucket and the key.
    fn setup(&mut self, deadline: Instant) -> Result<(), String> {
        for i in 0..3 {
            self.wait_until(deadline, "the node to listen", |c| {
                Ok(open(c.nodes[i].ip, c.nodes[i].s3_port) && c.try_cli(i, ["status"]).is_ok())
            })?;
            let id = self.try_cli(i, ["node", "id", "-q"])?;
            let id = id.trim();
            let id = id.split('@').next().unwrap_or(id);
            let node = &mut self.nodes[i];
            node.address = format!("{id}@{}:{}", node.ip, node.rpc_port);
        }
        for i in 1..3 {
            let address = self.nodes[i].address.clone();
            self.wait_until(deadline, "the nodes to connect", |c| {
                Ok(c.try_cli(0, ["node", "connect", &address]).is_ok())
            })?;
        }
        for (i, zone) in ["dc1", "dc2", "dc3"].into_iter().enumerate() {
            let id = self.nodes[i]
                .address
                .split('@')
                .next()
                .unwrap_or_default()
                .to_string();
            self.try_cli(0, ["layout", "assign", "-z", zone, "-c", "1G", &id])?;
        }
        self.try_cli(0, ["layout", "apply", "--version", "1"])?;
        self.wait_until(deadline, "the layout to take effect", |c| {
            Ok(c.try_cli(0, ["health", "-q"]).is_ok())
        })?;
        self.wait_until(deadline, "the bucket to be created", |c| {
            Ok(c.try_cli(0, ["bucket", "create", BUCKET]).is_ok()
                || c.try_cli(0, ["bucket", "info", BUCKET]).is_ok())
        })?;
        let key = self.try_cli(0, ["key", "create", KEY_NAME])?;
        self.access_key = field(&key, "Key ID:")
            .ok_or_else(|| format!("no `Key ID:` in `garage key create` output:\n{key}"))?;
        self.secret_key = field(&key, "Secret key:")
            .ok_or_else(|| format!("no `Secret key:` in `garage key create` output:\n{key}"))?;
        let access_key = self.access_key.clone();
        self.try_cli(
            0,
            [
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                BUCKET,
                "--key",
                &access_key,
            ],
        )?;
        Ok(())
    }

    fn wait_until(
        &mut self,
        deadline: Instant,
        what: &str,
        mut ready: impl FnMut(&GarageCluster) -> Result<bool, String>,
    ) -> Result<(), String> {
        loop {
            for (i, node) in self.nodes.iter_mut().enumerate() {
                if let Some(server) = node.server.as_mut() {
                    if let Ok(Some(status)) = server.try_wait() {
                        return Err(format!(
                            "garage node {} exited ({status}) while waiting for {what}",
                            i + 1
                        ));
                    }
                }
            }
            if ready(self)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("timed out waiting for {what}"));
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The directory holding the nodes' files.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), TempDir::path)
    }
}

impl Drop for GarageCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(server) = node.server.as_mut() {
                let _ = server.kill();
            }
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.child.wait();
        }
        for node in &mut self.nodes {
            if let Some(mut server) = node.server.take() {
                let _ = server.wait();
            }
        }
        drop(self.dir.take());
    }
}

impl Watchdog {
    /// A watchdog that, when its input closes, kills every process listed (one id a line) in
    /// `pids` and removes `dir`.
    pub(crate) fn start_for_list(pids: &Path, dir: &Path) -> std::io::Result<Watchdog> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"read -r line; for p in $(cat "$0" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done; rm -rf "$1""#)
            .arg(pids)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take();
        Ok(Watchdog { child, stdin })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cluster comes up with three copies of everything, keeps a quorum with one node
    /// down, loses it with two, and takes the nodes back.
    #[test]
    fn three_nodes_keep_a_quorum_with_one_down() {
        if crate::garage::find_binary().is_none()
            && std::env::var_os("FTPGATE_E2E_REQUIRE_TOOLS").is_none()
        {
            eprintln!("skipped: garage is not installed");
            return;
        }
        let mut cluster = start();
        let status = cluster.cli(0, ["status"]);
        for ip in NODE_IPS {
            assert!(status.contains(&format!("{ip}:")), "{status}");
        }
        let health = cluster.health(0);
        assert_eq!(health.get("Storage nodes"), Some(&3), "{health:?}");
        assert_eq!(
            health.get("Fully healthy partitions"),
            health.get("Partitions"),
            "{health:?}"
        );
        let started = Instant::now();
        cluster.kill(2);
        eprintln!(
            "node 3 seen down in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let health = cluster.health(0);
        assert_eq!(
            health.get("Partitions with quorum"),
            health.get("Partitions"),
            "one node down: every partition keeps a quorum: {health:?}"
        );
        let started = Instant::now();
        cluster.kill(1);
        eprintln!(
            "node 2 seen down in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let health = cluster.health(0);
        assert_eq!(
            health.get("Partitions with quorum"),
            Some(&0),
            "two nodes down: no quorum: {health:?}"
        );
        let started = Instant::now();
        cluster.restart(1);
        cluster.restart(2);
        eprintln!(
            "nodes 2 and 3 back in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        assert_eq!(cluster.health(0).get("Storage nodes up"), Some(&3));
    }
}
