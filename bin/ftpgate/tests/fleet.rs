//! Two nodes behind HAProxy (`contrib/haproxy.cfg`, run unchanged by the test bed in
//! `ftpgate_test_support::fleet`), driven by real clients: curl, lftp and Python's ftplib
//! through the load balancer, forged and broken PROXY headers sent straight to a node, and a
//! rolling restart under load.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ftpgate_test_support::fleet::{self, Fleet, FleetOptions, LB_SOURCE, PASSWORD, USER};
use support::through_lb::{ftplib_sessions, lftp_get};
use support::{connect_from, python_client};

const BIN: &str = env!("CARGO_BIN_EXE_ftpgate");
/// The client's address in these tests: neither the load balancer's nor a node's.
const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);

fn start(options: &FleetOptions) -> Fleet {
    Fleet::start(Path::new(BIN), options)
}

/// Everything the server sends until it closes the connection (or 10 s pass).
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

fn curl(fleet: &Fleet, extra: &[&str], url_path: &str) -> std::process::Output {
    let url = format!("ftp://{}:{}/{url_path}", fleet.lb.ip(), fleet.lb.port());
    Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "--interface",
            &CLIENT.to_string(),
        ])
        .args(["--user", &format!("{USER}:{PASSWORD}")])
        .args(extra)
        .arg(url)
        .output()
        .unwrap()
}

#[test]
fn real_clients_through_the_load_balancer() {
    let fleet = start(&FleetOptions::default());
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(fleet.data.join("big.bin"), &payload).unwrap();
    let work = fleet.dir().join("client");
    std::fs::create_dir_all(&work).unwrap();

    // curl: EPSV (its default) and PASV, plain and explicit TLS, downloads and an upload.
    for (i, extra) in [
        vec![],
        vec!["--disable-epsv"],
        vec!["--ssl-reqd", "-k"],
        vec!["--ssl-reqd", "-k", "--disable-epsv"],
    ]
    .into_iter()
    .enumerate()
    {
        let out = work.join(format!("curl-{i}.bin"));
        let mut args = extra.clone();
        let out_str = out.to_str().unwrap().to_string();
        args.extend(["-o", &out_str]);
        let result = curl(&fleet, &args, "big.bin");
        assert!(
            result.status.success(),
            "curl {extra:?}: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        assert_eq!(std::fs::read(&out).unwrap(), payload, "curl {extra:?}");
        let up = work.join(format!("up-{i}.txt"));
        std::fs::write(&up, format!("upload {i}")).unwrap();
        let mut args = extra.clone();
        let up_str = up.to_str().unwrap().to_string();
        args.extend(["-T", &up_str]);
        let result = curl(&fleet, &args, &format!("curl-up-{i}.txt"));
        assert!(result.status.success(), "curl upload {extra:?}");
        assert_eq!(
            std::fs::read_to_string(fleet.data.join(format!("curl-up-{i}.txt"))).unwrap(),
            format!("upload {i}")
        );
    }

    // lftp, plain and TLS, from the client's address.
    for (i, tls) in [false, true].into_iter().enumerate() {
        let out = work.join(format!("lftp-{i}.bin"));
        lftp_get(&fleet, CLIENT, "big.bin", &out, tls);
        assert_eq!(std::fs::read(&out).unwrap(), payload, "lftp tls={tls}");
    }

    // ftplib: every combination of TLS and PASV/EPSV, several sessions each, so both nodes
    // serve some; the data connection of each goes to the node of its control connection.
    let nodes_seen = ftplib_sessions(&fleet, CLIENT, 3);
    assert!(
        nodes_seen[0] > 0 && nodes_seen[1] > 0,
        "both nodes serve sessions: {nodes_seen:?}"
    );

    // The nodes log the client's address, never the load balancer's.
    let logs: String = fleet.nodes.iter().map(|n| n.log_text()).collect();
    assert!(
        logs.contains(&format!("client={CLIENT}")),
        "client address logged: {logs}"
    );
    assert!(
        logs.contains(&format!("proxy={LB_SOURCE}")),
        "load balancer logged as the proxy"
    );
    assert!(
        !logs.contains(&format!("client={LB_SOURCE}")),
        "the load balancer's address is never the client: {logs}"
    );
    // Active mode through the load balancer is refused with a clear reply.
    let stream = connect_from(CLIENT, fleet.lb);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    assert!(read_line(&mut reader).starts_with("220"));
    write!(writer, "USER {USER}\r\n").unwrap();
    read_line(&mut reader);
    write!(writer, "PASS {PASSWORD}\r\n").unwrap();
    assert!(read_line(&mut reader).starts_with("230"));
    write!(writer, "PORT 127,0,0,5,100,1\r\n").unwrap();
    let reply = read_line(&mut reader);
    assert!(
        reply.starts_with("502 ") && reply.contains("load balancer"),
        "{reply}"
    );
    write!(writer, "STAT\r\n").unwrap();
    let status = read_line(&mut reader);
    let mut all = status.clone();
    while !all.lines().last().unwrap_or("").starts_with("211 ") {
        all.push_str(&read_line(&mut reader));
    }
    assert!(all.contains(&format!("Connected to {CLIENT}")), "{all}");
}

/// Sends a v1 header for `client` on a fresh connection from `source` straight to `node`.
fn v1_header(client: &str, dest: &str, family: &str) -> String {
    format!("PROXY {family} {client} {dest} 40000 21\r\n")
}

#[test]
fn forged_missing_oversized_and_slow_headers_are_refused() {
    let fleet = start(&FleetOptions {
        proxy_extra: "header_timeout_ms = 1500\nmax_header_bytes = 1024".into(),
        ..FleetOptions::default()
    });
    let node = &fleet.nodes[0];
    // A session through the load balancer that must not notice anything.
    let bystander = connect_from(CLIENT, fleet.lb);
    let mut by_reader = BufReader::new(bystander.try_clone().unwrap());
    let mut by_writer = bystander;
    assert!(read_line(&mut by_reader).starts_with("220"));
    write!(by_writer, "USER {USER}\r\nPASS {PASSWORD}\r\n").unwrap();
    read_line(&mut by_reader);
    assert!(read_line(&mut by_reader).starts_with("230"));

    // A header from an untrusted address (the client itself, straight to the node): the
    // banner comes at once (no waiting for a header), and the forged header closes the
    // connection; its addresses are never believed.
    let mut forged = connect_from(CLIENT, node.ftp_addr());
    let mut banner = [0u8; 4];
    forged.read_exact(&mut banner).unwrap();
    assert_eq!(&banner, b"220 ");
    forged
        .write_all(v1_header("192.0.2.66", "127.0.0.2", "TCP4").as_bytes())
        .unwrap();
    let rest = read_to_close(&mut forged);
    assert!(
        rest.contains("421 PROXY header from an address not trusted"),
        "{rest}"
    );
    // The same with a binary (v2) header.
    let mut forged = connect_from(CLIENT, node.ftp_addr());
    forged.read_exact(&mut banner).unwrap();
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[192, 0, 2, 66, 127, 0, 0, 2, 0x9c, 0x40, 0, 21]);
    forged.write_all(&v2).unwrap();
    assert!(read_to_close(&mut forged).contains("421 PROXY header"));

    // A trusted address that sends no header: no banner, closed after the timeout.
    let began = Instant::now();
    let mut silent = connect_from(LB_SOURCE, node.ftp_addr());
    assert_eq!(read_to_close(&mut silent), "", "no banner without a header");
    let waited = began.elapsed();
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(5),
        "closed after the header timeout: {waited:?}"
    );
    // ... or that speaks FTP instead: closed at once, unanswered.
    let mut plain = connect_from(LB_SOURCE, node.ftp_addr());
    plain.write_all(b"USER fleet\r\n").unwrap();
    assert_eq!(read_to_close(&mut plain), "");
    // An oversized header (v2 announcing 2000 bytes, over the 1024-byte cap): closed as soon
    // as its length is read.
    let mut big = connect_from(LB_SOURCE, node.ftp_addr());
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11".to_vec();
    header.extend_from_slice(&2000u16.to_be_bytes());
    big.write_all(&header).unwrap();
    let began = Instant::now();
    assert_eq!(read_to_close(&mut big), "");
    assert!(began.elapsed() < Duration::from_secs(1), "refused at once");
    // A slow header, in pieces within the timeout: accepted (partial reads), and the client it
    // names (an IPv6 client through an IPv4 load balancer) is the session's.
    let mut slow = connect_from(LB_SOURCE, node.ftp_addr());
    let header = v1_header("2001:db8::7", "2001:db8::1", "TCP6");
    for piece in header.as_bytes().chunks(9) {
        slow.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(60));
    }
    let mut reader = BufReader::new(slow.try_clone().unwrap());
    assert!(read_line(&mut reader).starts_with("220"));
    slow.write_all(b"QUIT\r\n").unwrap();
    assert!(read_line(&mut reader).starts_with("221"));
    // Too slow: a header still unfinished at the timeout is refused.
    let mut too_slow = connect_from(LB_SOURCE, node.ftp_addr());
    too_slow.write_all(b"PROXY TCP4 192.0.2.").unwrap();
    assert_eq!(read_to_close(&mut too_slow), "");
    // A LOCAL header (a health check): served as a plain connection of the load balancer.
    let mut local = connect_from(LB_SOURCE, node.ftp_addr());
    local
        .write_all(b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00")
        .unwrap();
    let mut reader = BufReader::new(local.try_clone().unwrap());
    assert!(read_line(&mut reader).starts_with("220"));
    local.write_all(b"QUIT\r\n").unwrap();
    assert!(read_line(&mut reader).starts_with("221"));

    let log = node.log_text();
    assert!(
        log.contains("client=[2001:db8::7]"),
        "IPv6 client logged: {log}"
    );
    assert!(
        !log.contains("client=192.0.2.66"),
        "forged address believed: {log}"
    );
    assert!(log.contains("no valid PROXY header"), "{log}");

    // The bystander's session carries on, with a transfer.
    std::fs::write(fleet.data.join("after.txt"), b"still here").unwrap();
    write!(by_writer, "EPSV\r\n").unwrap();
    let reply = read_line(&mut by_reader);
    let port = fleet::epsv_port(&reply).unwrap();
    let mut data = connect_from(CLIENT, SocketAddr::from((fleet.lb.ip(), port)));
    write!(by_writer, "RETR after.txt\r\n").unwrap();
    assert!(read_line(&mut by_reader).starts_with("150"));
    assert_eq!(read_to_close(&mut data), "still here");
    assert!(read_line(&mut by_reader).starts_with("226"));

    // A data connection relayed for another client is refused; the real one still gets in.
    write!(by_writer, "EPSV\r\n").unwrap();
    let reply = read_line(&mut by_reader);
    let port = fleet::epsv_port(&reply).unwrap();
    let owner = fleet
        .nodes
        .iter()
        .find(|n| n.passive.contains(&port))
        .unwrap();
    // (The listener accepts once the transfer waits for its connection.)
    write!(by_writer, "RETR after.txt\r\n").unwrap();
    let mut intruder = connect_from(LB_SOURCE, SocketAddr::from((owner.addr, port)));
    intruder
        .write_all(v1_header("127.0.0.66", "127.0.0.1", "TCP4").as_bytes())
        .unwrap();
    let began = Instant::now();
    assert_eq!(read_to_close(&mut intruder), "", "intruder refused");
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "closed, not timed out"
    );
    let mut data = connect_from(CLIENT, SocketAddr::from((fleet.lb.ip(), port)));
    assert!(read_line(&mut by_reader).starts_with("150"));
    assert_eq!(read_to_close(&mut data), "still here");
    assert!(read_line(&mut by_reader).starts_with("226"));
}

#[test]
fn a_rolling_restart_under_load_loses_no_transfer() {
    let fleet = start(&FleetOptions {
        server_extra: "drain_secs = 3\nshutdown_grace_secs = 20".into(),
        ..FleetOptions::default()
    });
    let mut fleet = fleet;
    std::fs::write(fleet.data.join("small.bin"), vec![7u8; 4096]).unwrap();
    let stop = fleet.dir().join("stop-load");
    let load = Command::new("python3")
        .arg(python_client())
        .args(["load", &fleet.lb.ip().to_string()])
        .arg(fleet.lb.port().to_string())
        .args([USER, PASSWORD, &CLIENT.to_string(), "120", "4"])
        .arg(&stop)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..2 {
        let node = &mut fleet.nodes[i];
        node.terminate();
        let status = node.wait(Duration::from_secs(40));
        assert!(
            status.is_some_and(|s| s.success()),
            "node {} exits cleanly: {status:?}",
            node.name
        );
        node.start();
        fleet.wait_until_balanced(true, true);
        std::thread::sleep(Duration::from_secs(1));
    }
    std::fs::write(&stop, b"").unwrap();
    let output = load.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    let first = report.lines().next().unwrap_or("");
    let ok: usize = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ok="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(first.ends_with("failed=0"), "transfers failed: {report}");
    assert!(ok >= 50, "a steady load ran: {report}");
    eprintln!("rolling restart: {first}");
}
