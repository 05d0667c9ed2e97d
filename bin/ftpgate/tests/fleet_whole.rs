//! The whole fleet of `docs/SCALE-OUT.md` at once: HAProxy (`contrib/haproxy.cfg`, unchanged)
//! on 127.0.0.1 in front of two nodes (127.0.0.2 and 127.0.0.3), both over one three-node Garage
//! cluster (127.0.0.11-13; S3 storage, `keep_partial_uploads`) and sharing one Redis
//! (`[state] redis`). Every client goes through the load balancer:
//!
//! - curl and Python's ftplib upload and download, lftp downloads, plain and explicit TLS, PASV
//!   and EPSV, the objects in the bucket, sessions on both nodes;
//! - failed logins spread by the load balancer over both nodes earn one ban, which holds
//!   through the load balancer and on each node, for the client's address (logged as such);
//! - an upload whose node is killed (SIGKILL) mid-STOR is resumed through the load balancer,
//!   now on the surviving node, with REST+STOR by ftplib, and is byte-identical.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use ftpgate_test_support::fleet::{self, Fleet, FleetOptions, PASSWORD, USER};
use ftpgate_test_support::garage_cluster::{self, GarageCluster};
use ftpgate_test_support::redis;
use support::through_lb::{ftplib_sessions, lftp_get, node_of_port};
use support::{connect_from, pattern, wait_for_reply};

const BIN: &str = env!("CARGO_BIN_EXE_ftpgate");
/// The transferring client's address: neither the load balancer's nor a node's.
const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
/// The address that earns the ban.
const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);
/// Failed logins that earn a ban.
const BAN_AFTER: usize = 4;

/// `[storage]` over the cluster through Garage node `garage_node`, and `[state]` in Redis.
fn storage_and_state(cluster: &GarageCluster, garage_node: usize, redis_url: &str) -> String {
    format!(
        "[storage]\ntype = \"s3\"\nkeep_partial_uploads = true\n\n[storage.s3]\n\
         endpoint = \"{}\"\nregion = \"{}\"\nbucket = \"{}\"\nprefix = \"whole/\"\n\
         access_key = \"{}\"\nsecret_key = \"{}\"\npart_size = \"5M\"\n\
         request_timeout_secs = 5\nretries = 1\n\n[state]\nredis = \"{redis_url}\"\n",
        cluster.endpoint(garage_node),
        cluster.region,
        cluster.bucket,
        cluster.access_key,
        cluster.secret_key,
    )
}

/// A control connection spoken by hand.
struct Control {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Control {
    /// Connects from `source` to `to`; the connection and its first reply.
    fn open(source: Ipv4Addr, to: SocketAddr) -> (Control, String) {
        let stream = connect_from(source, to);
        let mut control = Control {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let first = control.reply();
        (control, first)
    }

    fn login(source: Ipv4Addr, to: SocketAddr) -> Control {
        let (mut control, banner) = Control::open(source, to);
        assert!(banner.starts_with("220"), "{banner}");
        assert!(control.ask(&format!("USER {USER}")).starts_with("331"));
        let reply = control.ask(&format!("PASS {PASSWORD}"));
        assert!(reply.starts_with("230"), "{reply}");
        control
    }

    /// A whole reply (the empty string once the server closed the connection).
    fn reply(&mut self) -> String {
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

    fn ask(&mut self, command: &str) -> String {
        write!(self.writer, "{command}\r\n").unwrap();
        self.reply()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn curl(fleet: &Fleet, extra: &[&str], url_path: &str) {
    let url = format!("ftp://{}:{}/{url_path}", fleet.lb.ip(), fleet.lb.port());
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "--interface",
            &CLIENT.to_string(),
        ])
        .args(["--user", &format!("{USER}:{PASSWORD}")])
        .args(extra)
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {extra:?} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// curl and ftplib through the load balancer, over the S3 store.
fn real_clients(fleet: &Fleet) {
    let work = fleet.dir().join("client");
    std::fs::create_dir_all(&work).unwrap();
    let payload = pattern(300_000, 1);
    let up = work.join("up.bin");
    std::fs::write(&up, &payload).unwrap();
    // curl: plain and explicit TLS, EPSV (its default) and PASV; each upload read back by a
    // new session, which may well be the other node's.
    for (i, extra) in [
        vec![],
        vec!["--disable-epsv"],
        vec!["--ssl-reqd", "-k"],
        vec!["--ssl-reqd", "-k", "--disable-epsv"],
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("curl-{i}.bin");
        let mut args = extra.clone();
        args.extend(["-T", up.to_str().unwrap()]);
        curl(fleet, &args, &name);
        let back = work.join(&name);
        let mut args = extra.clone();
        args.extend(["-o", back.to_str().unwrap()]);
        curl(fleet, &args, &name);
        assert_eq!(std::fs::read(&back).unwrap(), payload, "curl {extra:?}");
    }
    // lftp, plain and TLS: a download of what curl uploaded.
    for tls in [false, true] {
        let out = work.join(format!("lftp-{tls}.bin"));
        lftp_get(fleet, CLIENT, "curl-0.bin", &out, tls);
        assert_eq!(std::fs::read(&out).unwrap(), payload, "lftp tls={tls}");
    }
    // ftplib: STOR then RETR, plain and TLS, PASV and EPSV, twice: sessions on both nodes.
    let nodes_seen = ftplib_sessions(fleet, CLIENT, 2);
    assert!(
        nodes_seen[0] > 0 && nodes_seen[1] > 0,
        "both nodes serve sessions: {nodes_seen:?}"
    );
    // Every upload is in the bucket, seen alike by both nodes.
    for node in &fleet.nodes {
        let mut control = Control::login(CLIENT, node.ftp_addr());
        for i in 0..4 {
            let reply = control.ask(&format!("SIZE curl-{i}.bin"));
            assert_eq!(
                reply.trim(),
                format!("213 {}", payload.len()),
                "{}",
                node.name
            );
        }
        let reply = control.ask("SIZE py-1-tls-epsv.bin");
        assert_eq!(reply.trim(), "213 65536", "{}", node.name);
        control.ask("QUIT");
    }
}

/// Failed logins through the load balancer land on both nodes and earn one ban, which holds
/// everywhere.
fn ban_through_the_load_balancer(fleet: &Fleet, redis: &redis::Redis) {
    let failures_logged = |node: &fleet::Node| {
        node.log_text()
            .lines()
            .filter(|l| l.contains("login failed") && l.contains(&format!("client={ATTACKER}")))
            .count()
    };
    for i in 0..BAN_AFTER {
        let (mut control, banner) = Control::open(ATTACKER, fleet.lb);
        assert!(banner.starts_with("220"), "attempt {i}: {banner}");
        assert!(control.ask(&format!("USER {USER}")).starts_with("331"));
        let reply = control.ask("PASS wrong");
        assert!(reply.starts_with("530"), "attempt {i}: {reply}");
        if i + 1 == BAN_AFTER {
            let closing = control.reply();
            assert!(
                closing.starts_with("421"),
                "failure {BAN_AFTER} of the fleet bans: {closing}"
            );
        } else {
            control.ask("QUIT");
        }
    }
    // The load balancer spread the failures over both nodes; neither saw enough alone.
    let per_node = [
        failures_logged(&fleet.nodes[0]),
        failures_logged(&fleet.nodes[1]),
    ];
    assert!(
        per_node[0] > 0 && per_node[1] > 0 && per_node.iter().sum::<usize>() == BAN_AFTER,
        "failures per node, logged with the client's address: {per_node:?}"
    );
    let ttl: i64 = redis
        .cli(&["PTTL", &format!("ftpgate:ban:{ATTACKER}")])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0, "the ban is the fleet's, in Redis: {ttl}");

    // Refused through the load balancer (new connections go to both nodes) and on each node
    // directly, even before a password is tried.
    let targets: Vec<SocketAddr> = [fleet.lb, fleet.lb, fleet.lb, fleet.lb]
        .into_iter()
        .chain(fleet.nodes.iter().map(fleet::Node::ftp_addr))
        .collect();
    for to in targets {
        let mut stream = connect_from(ATTACKER, to);
        let mut greeting = String::new();
        let _ = stream.read_to_string(&mut greeting);
        assert!(
            greeting.starts_with("421") && greeting.contains("failed logins"),
            "{to}: {greeting}"
        );
    }
    for node in &fleet.nodes {
        let log = node.log_text();
        assert!(
            log.contains("connection refused: address banned")
                && log.contains(&format!("client={ATTACKER}")),
            "node {} refuses the client's address: {log}",
            node.name
        );
        assert!(
            !log.contains(&format!("client={}", fleet::LB_SOURCE)),
            "the load balancer is never the client: {log}"
        );
    }
    // Another client is not disturbed.
    Control::login(CLIENT, fleet.lb).ask("QUIT");
}

/// An upload through the load balancer whose node dies mid-STOR, resumed through the load
/// balancer on the other node.
fn resume_after_node_loss(fleet: &mut Fleet) {
    let bytes = pattern(13 * 1024 * 1024, 7);
    let mut control = Control::login(CLIENT, fleet.lb);
    assert!(control.ask("TYPE I").starts_with("200"));
    let reply = control.ask("EPSV");
    let port = fleet::epsv_port(&reply).unwrap();
    let dying = node_of_port(fleet, port);
    let surviving = 1 - dying;
    let mut data = connect_from(CLIENT, SocketAddr::from((fleet.lb.ip(), port)));
    let reply = control.ask("STOR big.bin");
    assert!(reply.starts_with("150"), "{reply}");
    data.write_all(&bytes[..11 * 1024 * 1024]).unwrap();
    // The surviving node sees the two whole 5 MiB parts once the dying one stored them.
    let mut watcher = Control::login(CLIENT, fleet.nodes[surviving].ftp_addr());
    wait_for_reply(|c| watcher.ask(c), "SIZE big.bin", "213 10485760");
    watcher.ask("QUIT");
    fleet.nodes[dying].kill();
    drop(data);
    drop(control);
    // HAProxy's health check takes the dead node out.
    fleet.wait_until_balanced(dying == 1, dying == 0);

    // ftplib through the load balancer: SIZE, then REST + STOR of the rest, then RETR.
    let whole = fleet.dir().join("whole.bin");
    std::fs::write(&whole, &bytes).unwrap();
    let script = r#"
import ftplib, hashlib, os, sys
f = ftplib.FTP(timeout=60, source_address=(os.environ["CLIENT"], 0))
f.connect(os.environ["HOST"], int(os.environ["PORT"]))
f.login(os.environ["USER_NAME"], os.environ["PASSWORD"])
ports = []
real = f.makepasv
def recording():
    h, p = real()
    ports.append(p)
    return h, p
f.makepasv = recording
f.voidcmd("TYPE I")
size = f.size("big.bin")
print("partial", size)
with open(os.environ["WHOLE"], "rb") as src:
    src.seek(size)
    print(f.storbinary("STOR big.bin", src, rest=size))
h = hashlib.sha256()
f.retrbinary("RETR big.bin", h.update)
print("sha256", h.hexdigest())
print("size", f.size("big.bin"))
print("ports", *ports)
f.quit()
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("CLIENT", CLIENT.to_string())
        .env("HOST", fleet.lb.ip().to_string())
        .env("PORT", fleet.lb.port().to_string())
        .env("USER_NAME", USER)
        .env("PASSWORD", PASSWORD)
        .env("WHOLE", &whole)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ftplib resume: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("partial {}", 10 * 1024 * 1024)),
        "two whole 5 MiB parts were stored before the kill: {stdout}"
    );
    assert!(stdout.contains("226"), "{stdout}");
    assert!(
        stdout.contains(&format!("sha256 {}", sha256_hex(&bytes))),
        "the object is byte-identical: {stdout}"
    );
    assert!(
        stdout.contains(&format!("size {}", bytes.len())),
        "{stdout}"
    );
    let ports: Vec<u16> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ports "))
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(ports.len(), 2, "{stdout}");
    for port in ports {
        assert_eq!(
            node_of_port(fleet, port),
            surviving,
            "the resumed transfers ran on the surviving node"
        );
    }
}

#[test]
fn the_whole_fleet_behind_haproxy_over_garage_and_redis() {
    let began = Instant::now();
    let cluster = garage_cluster::start();
    let redis = redis::start();
    let mut fleet = Fleet::start(
        Path::new(BIN),
        &FleetOptions {
            server_extra: format!(
                "login_failure_delay_ms = 1\nban_after_failures = {BAN_AFTER}\nban_secs = 60"
            ),
            node_extra: [
                storage_and_state(&cluster, 0, &redis.url),
                storage_and_state(&cluster, 1, &redis.url),
            ],
            home: Some("fleet".into()),
            ..FleetOptions::default()
        },
    );
    eprintln!("fleet up after {:?}", began.elapsed());
    real_clients(&fleet);
    eprintln!("real clients done after {:?}", began.elapsed());
    ban_through_the_load_balancer(&fleet, &redis);
    eprintln!("ban done after {:?}", began.elapsed());
    resume_after_node_loss(&mut fleet);
    eprintln!("resume done after {:?}", began.elapsed());
}
