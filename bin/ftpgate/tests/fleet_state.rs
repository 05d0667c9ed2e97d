//! Two ftpgate nodes (127.0.0.2 and 127.0.0.3) sharing state in one Redis (`[state] redis`, a
//! `redis-server` of the test's own) and one store: bans and quotas hold across the nodes, logins
//! keep working when Redis is gone, an upload cut on one node (SIGKILL) is resumed on the other,
//! and a three-node Garage cluster (127.0.0.11-13) losing nodes mid-upload.
//!
//! Clients connect to each node directly; Python's ftplib and curl do the resumed upload and
//! the transfers during the store's node loss.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ftpgate_test_support::garage_cluster::{self, GarageCluster};
use ftpgate_test_support::redis;
use support::*;

const NODE_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const NODE_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// A node: `serve --config` with `[server] listen` on `ip`, the rest of the file from `body`.
fn node(dir: &Path, name: &str, ip: Ipv4Addr, body: &str) -> (Daemon, SocketAddr) {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("ftpgate.toml");
    std::fs::write(&config, format!("[server]\nlisten = [\"{ip}:0\"]\n{body}")).unwrap();
    Daemon::start_checked(&dir, config.to_str().unwrap(), &[])
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn metrics_page(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// The value of a counter line `name VALUE` on a metrics page.
fn counter(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{page}"))
}

/// `[state]` and a login guard that bans after three failures.
fn guard_and_state(redis_url: &str) -> String {
    format!(
        "login_failure_delay_ms = 1\nban_after_failures = 3\nban_secs = 60\n\n\
         [state]\nredis = \"{redis_url}\"\n"
    )
}

#[test]
fn a_ban_earned_on_one_node_holds_on_the_other() {
    let redis = redis::start();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // Short bans, to see the second one grow.
    let body = format!(
        "{}\n[[users]]\nname = \"ann\"\npassword_hash = \"{}\"\nhome = \"{}\"\n",
        guard_and_state(&redis.url).replace("ban_secs = 60", "ban_secs = 4"),
        hash("right"),
        home.display()
    );
    let (_a, a) = node(dir.path(), "a", NODE_A, &body);
    let (_b, b) = node(dir.path(), "b", NODE_B, &body);
    let ban_left = || -> i64 {
        redis
            .cli(&["PTTL", "ftpgate:ban:127.0.0.1"])
            .trim()
            .parse()
            .unwrap()
    };

    // The failures are counted once for the fleet: two on A and one on B earn the ban.
    for addr in [a, a] {
        let reply = login(addr, "ann", "wrong");
        assert!(reply.starts_with("530"), "{reply}");
    }
    let mut client = Client::connect(b);
    let reply = client.try_login("ann", "wrong");
    assert!(reply.starts_with("530"), "{reply}");
    let closing = client.reply();
    assert!(
        closing.starts_with("421"),
        "the third failure bans: {closing}"
    );
    let first = ban_left();
    assert!(
        (2_000..=4_000).contains(&first),
        "the ban is in Redis, for ban_secs: {first} ms"
    );

    // Both nodes refuse the address now, even with the right password.
    for addr in [a, b] {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut greeting = String::new();
        let _ = stream.read_to_string(&mut greeting);
        assert!(
            greeting.starts_with("421") && greeting.contains("failed logins"),
            "{addr}: {greeting}"
        );
    }

    // Once it ends, the next ban (earned on B, then A) lasts twice as long (ban_growth 2):
    // the ban history is the fleet's too.
    std::thread::sleep(Duration::from_millis(u64::try_from(first).unwrap() + 300));
    assert!(login(b, "ann", "wrong").starts_with("530"));
    assert!(login(a, "ann", "wrong").starts_with("530"));
    let mut client = Client::connect(a);
    assert!(client.try_login("ann", "wrong").starts_with("530"));
    assert!(client.reply().starts_with("421"));
    let second = ban_left();
    assert!(
        (6_000..=8_000).contains(&second),
        "the second ban is twice as long: {second} ms"
    );
}

#[test]
fn logins_keep_working_when_redis_is_gone_and_it_is_counted() {
    let mut redis = redis::start();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let body = format!(
        "{}timeout_ms = 200\n\n[admin]\nlisten = [\"{admin}\"]\n\n\
         [[users]]\nname = \"ann\"\npassword_hash = \"{}\"\nhome = \"{}\"\n",
        guard_and_state(&redis.url),
        hash("right"),
        home.display()
    );
    let (daemon, a) = node(dir.path(), "a", NODE_A, &body);
    let reply = login(a, "ann", "right");
    assert!(reply.starts_with("230"), "{reply}");
    let before = counter(&metrics_page(&admin), "ftpgate_shared_state_failures_total");
    assert_eq!(before, 0.0, "Redis answered every request");

    // Slow: Redis takes connections but answers nothing.
    redis.pause();
    let started = Instant::now();
    let reply = login(a, "ann", "right");
    assert!(
        reply.starts_with("230"),
        "a slow Redis delays, never refuses: {reply}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "each request waits timeout_ms at most: {:?}",
        started.elapsed()
    );
    let slow = counter(&metrics_page(&admin), "ftpgate_shared_state_failures_total");
    assert!(slow >= 1.0, "the timeouts are counted: {slow}");
    redis.resume();

    // Gone.
    redis.kill();
    let started = Instant::now();
    for _ in 0..3 {
        let reply = login(a, "ann", "right");
        assert!(reply.starts_with("230"), "logins fail open: {reply}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "each login waits the timeout at most: {:?}",
        started.elapsed()
    );
    let after = counter(&metrics_page(&admin), "ftpgate_shared_state_failures_total");
    assert!(
        after >= slow + 3.0,
        "every failed request is counted: {after}"
    );

    // The node's own guard still bans on its own.
    for _ in 0..2 {
        assert!(login(a, "ann", "wrong").starts_with("530"));
    }
    let mut client = Client::connect(a);
    assert!(client.try_login("ann", "wrong").starts_with("530"));
    assert!(client.reply().starts_with("421"));
    drop(daemon);
    let log = std::fs::read_to_string(dir.path().join("a/ftpgate.log")).unwrap();
    let warnings = log.matches("shared state unavailable").count();
    assert!(
        (1..=4).contains(&warnings),
        "the failures are logged, but not each one: {warnings} warnings\n{log}"
    );
}

#[test]
fn a_quota_holds_on_what_both_nodes_wrote() {
    let redis = redis::start();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // 40 KB already there: measured once, by the first node that needs it.
    std::fs::write(home.join("old.bin"), pattern(40_000, 1)).unwrap();
    let body = format!(
        "{}\n[[users]]\nname = \"ann\"\npassword_hash = \"{}\"\nhome = \"{}\"\nquota = \"100000\"\nquota_files = 4\n",
        guard_and_state(&redis.url),
        hash("right"),
        home.display()
    );
    let (_a, a) = node(dir.path(), "a", NODE_A, &body);
    let (_b, b) = node(dir.path(), "b", NODE_B, &body);
    // Both sessions log in (and read the usage) before either uploads.
    let mut on_a = Client::login(a, "ann", "right");
    let mut on_b = Client::login(b, "ann", "right");
    on_a.ask("TYPE I");
    on_b.ask("TYPE I");
    let reply = on_a.upload("STOR a.bin", &pattern(30_000, 2));
    assert!(reply.starts_with("226"), "{reply}");
    // 70 KB used of 100: B must know, though it measured 40 KB at its login.
    let reply = on_b.upload("STOR b.bin", &pattern(40_000, 3));
    assert!(
        reply.starts_with("552"),
        "the quota counts what node A wrote: {reply}"
    );
    assert!(
        !home.join("b.bin").exists(),
        "nothing is left of the refused upload"
    );
    let reply = on_b.upload("STOR b.bin", &pattern(25_000, 3));
    assert!(reply.starts_with("226"), "{reply}");
    let usage = || redis.cli(&["HMGET", "ftpgate:quota:/ann", "bytes", "files"]);
    assert_eq!(usage(), "95000\n3\n", "the fleet's count: bytes and files");
    // A delete on B frees space for A.
    assert!(on_b.ask("DELE old.bin").starts_with("250"));
    let reply = on_a.upload("STOR c.bin", &pattern(40_000, 4));
    assert!(reply.starts_with("226"), "{reply}");
    assert_eq!(usage(), "95000\n3\n");
    // Files too: the fourth on B, then A (which alone saw three files at most) is refused a
    // fifth.
    let reply = on_b.upload("STOR d.bin", b"small");
    assert!(reply.starts_with("226"), "{reply}");
    let data = on_a.data();
    let reply = on_a.ask("STOR e.bin");
    let _ = data.shutdown(std::net::Shutdown::Both);
    assert!(
        reply.starts_with("552"),
        "the quota of files counts what node B wrote: {reply}"
    );
    assert!(!home.join("e.bin").exists());
    assert_eq!(usage(), "95005\n4\n");
}

/// `[storage]` over the cluster, through Garage node `garage_node`.
fn s3_storage(cluster: &GarageCluster, garage_node: usize, extra: &str) -> String {
    format!(
        "[storage]\ntype = \"s3\"\n{extra}\n[storage.s3]\nendpoint = \"{}\"\nregion = \"{}\"\n\
         bucket = \"{}\"\nprefix = \"fleet/\"\naccess_key = \"{}\"\nsecret_key = \"{}\"\n\
         part_size = \"5M\"\nrequest_timeout_secs = 5\nretries = 1\n",
        cluster.endpoint(garage_node),
        cluster.region,
        cluster.bucket,
        cluster.access_key,
        cluster.secret_key,
    )
}

fn users(password: &str) -> String {
    format!(
        "[[users]]\nname = \"ann\"\npassword_hash = \"{}\"\nhome = \"ann\"\n",
        hash(password)
    )
}

/// Runs a Python ftplib script with `ADDR` and `PORT` set; its standard output.
fn ftplib(addr: SocketAddr, script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("ADDR", addr.ip().to_string())
        .env("PORT", addr.port().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ftplib failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn an_upload_cut_on_one_node_is_resumed_on_the_other() {
    let cluster = garage_cluster::start();
    let redis = redis::start();
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "{}\n{}\n{}",
        guard_and_state(&redis.url),
        s3_storage(&cluster, 0, "keep_partial_uploads = true"),
        users("right")
    );
    let (mut a, on_a) = node(dir.path(), "a", NODE_A, &body);
    let (_b, on_b) = node(dir.path(), "b", NODE_B, &body);
    let bytes = pattern(13 * 1024 * 1024, 7);

    // 11 MiB of 13 reach node A, which is then killed mid-STOR.
    let mut client = Client::login(on_a, "ann", "right");
    client.ask("TYPE I");
    let mut data = client.data();
    assert!(client.ask("STOR big.bin").starts_with("150"));
    data.write_all(&bytes[..11 * 1024 * 1024]).unwrap();
    // Node B sees the two whole 5 MiB parts once node A has stored them.
    let mut watcher = Client::login(on_b, "ann", "right");
    wait_for_reply(|c| watcher.ask(c), "SIZE big.bin", "213 10485760");
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    drop(data);

    // Node B takes the rest with REST + STOR (Python's ftplib).
    let rest_file = dir.path().join("whole.bin");
    std::fs::write(&rest_file, &bytes).unwrap();
    let out = ftplib(
        on_b,
        &format!(
            r#"
import ftplib, hashlib, os
f = ftplib.FTP()
f.connect(os.environ["ADDR"], int(os.environ["PORT"]), timeout=60)
f.login("ann", "right")
f.voidcmd("TYPE I")
size = f.size("big.bin")
print("partial", size)
with open("{path}", "rb") as src:
    src.seek(size)
    print(f.storbinary("STOR big.bin", src, rest=size))
h = hashlib.sha256()
f.retrbinary("RETR big.bin", h.update)
print("sha256", h.hexdigest())
print("size", f.size("big.bin"))
f.quit()
"#,
            path = rest_file.display()
        ),
    );
    let partial: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("partial "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        partial,
        10 * 1024 * 1024,
        "two whole 5 MiB parts were stored before the kill: {out}"
    );
    assert!(out.contains("226"), "{out}");
    let expected = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(&bytes);
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert!(
        out.contains(&format!("sha256 {expected}")),
        "the object is byte-identical: {out}"
    );
    assert!(out.contains(&format!("size {}", bytes.len())), "{out}");
}

/// The unfinished multipart uploads in the bucket (S3 ListMultipartUploads, signed by curl).
fn multipart_uploads(cluster: &GarageCluster) -> usize {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--aws-sigv4"])
        .arg(format!("aws:amz:{}:s3", cluster.region))
        .arg("--user")
        .arg(format!("{}:{}", cluster.access_key, cluster.secret_key))
        // The SHA-256 of the empty body, which the signature covers.
        .args(["-H", "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"])
        .arg(format!("{}/{}?uploads=", cluster.endpoint(0), cluster.bucket))
        .output()
        .unwrap();
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && xml.contains("ListMultipartUploadsResult"),
        "{xml}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    xml.matches("<Upload>").count()
}

/// curl on `addr` with `args`; (success, what it printed on standard error).
fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-u", "ann:right"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn losing_store_nodes_mid_upload() {
    let mut cluster = garage_cluster::start();
    let dir = tempfile::tempdir().unwrap();
    // Node A through Garage node 1, node B through Garage node 2; abandoned uploads are
    // aborted at a node's start once a few seconds old.
    let body_for = |garage_node| {
        format!(
            "{}\n{}",
            s3_storage(&cluster, garage_node, "").replace(
                "retries = 1\n",
                "retries = 1\nabandoned_upload_age_secs = 3\n"
            ),
            users("right")
        )
    };
    let (body_a, body_b) = (body_for(0), body_for(1));
    let (mut a, on_a) = node(dir.path(), "a", NODE_A, &body_a);
    let (_b, on_b) = node(dir.path(), "b", NODE_B, &body_b);
    let bytes = pattern(12 * 1024 * 1024, 9);
    let file = dir.path().join("up.bin");
    std::fs::write(&file, &bytes).unwrap();

    // One Garage node killed in the middle of an upload: the upload and the next transfers
    // complete (two copies of three are a quorum).
    let mut client = Client::login(on_a, "ann", "right");
    client.ask("TYPE I");
    let mut data = client.data();
    assert!(client.ask("STOR during.bin").starts_with("150"));
    data.write_all(&bytes[..6 * 1024 * 1024]).unwrap();
    cluster.kill(2);
    data.write_all(&bytes[6 * 1024 * 1024..]).unwrap();
    drop(data);
    let reply = client.reply();
    assert!(reply.starts_with("226"), "one node down: {reply}");
    let url_b = format!("ftp://{}:{}/", on_b.ip(), on_b.port());
    let (ok, err) = curl(&["-T", file.to_str().unwrap(), &format!("{url_b}after.bin")]);
    assert!(ok, "{err}");
    let back = dir.path().join("back.bin");
    let (ok, err) = curl(&["-o", back.to_str().unwrap(), &format!("{url_b}during.bin")]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(&back).unwrap(),
        bytes,
        "read through the other node"
    );

    // Two killed: no quorum. A STOR is refused with a 4xx and leaves nothing visible.
    let mut data = client.data();
    assert!(client.ask("STOR lost.bin").starts_with("150"));
    data.write_all(&bytes[..11 * 1024 * 1024]).unwrap();
    // The multipart upload is in the store before the second node goes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while multipart_uploads(&cluster) == 0 {
        assert!(
            Instant::now() < deadline,
            "the multipart upload never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.kill(1);
    let _ = data.write_all(&bytes[11 * 1024 * 1024..]);
    drop(data);
    let reply = client.reply();
    assert!(
        reply.starts_with('4'),
        "no quorum: the upload fails with a transient error: {reply}"
    );
    // A small one fails too, before or after its 150.
    let mut data = client.data();
    let mut small = client.ask("STOR small.bin");
    if small.starts_with("150") {
        let _ = data.write_all(b"tiny");
        drop(data);
        small = client.reply();
    }
    assert!(small.starts_with('4'), "{small}");

    // Back to three nodes: the listings agree on both nodes, with neither failed upload.
    cluster.restart(1);
    cluster.restart(2);
    let names = |addr: SocketAddr| {
        let mut c = Client::login(addr, "ann", "right");
        let (reply, listing) = c.download("NLST");
        assert!(reply.starts_with("226"), "{reply}");
        let mut names: Vec<String> = String::from_utf8(listing)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    };
    let expected = vec!["after.bin".to_string(), "during.bin".to_string()];
    assert_eq!(names(on_a), expected);
    assert_eq!(names(on_b), expected);

    // The upload cut by the loss of quorum could not be aborted then; the abandoned-upload
    // reaper of a restarted node removes it.
    std::thread::sleep(Duration::from_secs(3));
    let left = multipart_uploads(&cluster);
    assert_eq!(
        left, 1,
        "the abort failed without a quorum: the upload is left over"
    );
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let (_a, _) = node(dir.path(), "a", NODE_A, &body_a);
    let deadline = Instant::now() + Duration::from_secs(30);
    while multipart_uploads(&cluster) > 0 {
        assert!(
            Instant::now() < deadline,
            "multipart uploads left behind:\n{}",
            cluster.cli(0, ["bucket", "info", &cluster.bucket])
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = std::fs::read_to_string(dir.path().join("a/ftpgate.log")).unwrap();
    assert!(
        log.contains("aborted an abandoned partial upload"),
        "the reaper says what it did:\n{log}"
    );
}
