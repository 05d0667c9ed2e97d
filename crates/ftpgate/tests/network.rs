//! Network features: the PASV address chosen per client network (rules, a resolver, a public
//! host name), passive port sharing (many sessions on one port, FIFO per client address,
//! strangers refused, waits removed when they end), and active connections from a fixed
//! source port with its fallback.
//!
//! Loopback addresses other than 127.0.0.1 (127.0.0.2, …) stand for other client networks:
//! a client socket bound to one of them connects from it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::{Cursor, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ftpgate::{ActiveSourcePort, PassiveAddressResolver, PassiveAddressRule, ServerConfig};
use suppaftp::types::Mode;
use suppaftp::{RustlsConnector, RustlsFtpStream};

fn rule(cidr: &str, address: &str) -> PassiveAddressRule {
    PassiveAddressRule::new(cidr.parse().unwrap(), address.parse().unwrap())
}

fn v4(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn start(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let mut options = Options::default();
    configure(&mut options.config);
    TestServer::start_with(options)
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn one_port_sharing(config: &mut ServerConfig, port: u16) {
    config.passive_ports = Some(port..=port);
    config.passive_port_sharing = true;
}

/// Waits until nothing listens on 127.0.0.1:`port` (probing from 127.0.0.9, an address no
/// session waits for).
fn assert_port_closes(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 9], 0)).into())
            .unwrap();
        let target: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
        if socket
            .connect_timeout(&target.into(), Duration::from_secs(1))
            .is_err()
        {
            return;
        }
        assert!(Instant::now() < deadline, "port {port} still open: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_port_open(port: u16, what: &str) {
    let target: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
    // From an address no session waits for, so the probe is refused, not handed over.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 9], 0)).into())
        .unwrap();
    socket
        .connect(&target.into())
        .unwrap_or_else(|e| panic!("port {port} closed {what}: {e}"));
}

/// The server closes a connection at once (EOF or reset, well within the data timeout).
fn assert_closed_at_once(mut stream: TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("read {n} bytes from a refused connection"),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the connection was left open: {e}"
        ),
    }
}

// --- PASV address ------------------------------------------------------------------------------

#[test]
fn pasv_address_follows_the_client_network() {
    let s = start(|c| {
        c.public_host = Some("192.0.2.1".into());
        c.passive_address_rules = vec![
            rule("127.0.0.2/32", "10.2.2.2"),
            rule("127.0.0.0/30", "10.0.0.1"),
        ];
    });
    write_file(&s.path("f.bin"), &random_bytes(100_000, 1));

    // 127.0.0.1 is in the second rule only.
    let mut a = s.raw_logged_in();
    assert_eq!(a.pasv().ip(), v4("10.0.0.1"));
    // 127.0.0.2 is in both: the first rule wins.
    let mut b = Raw::connect_from("127.0.0.2", s.addr);
    b.login(USER, PASS);
    assert_eq!(b.code("TYPE I"), 200);
    let announced = b.pasv();
    assert_eq!(announced.ip(), v4("10.2.2.2"));
    // 127.0.0.5 is in no rule: the public host.
    let mut c = Raw::connect_from("127.0.0.5", s.addr);
    c.login(USER, PASS);
    assert_eq!(c.pasv().ip(), v4("192.0.2.1"));

    // The port is real: the client from 127.0.0.2 transfers through it (at the server's real
    // address, as a client behind that network's NAT would).
    let mut data = connect_from("127.0.0.2", SocketAddr::new(s.addr.ip(), announced.port()));
    assert_eq!(b.code("RETR f.bin"), 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(b.reply().0, 226);
    assert_eq!(got, random_bytes(100_000, 1));

    // EPSV carries no address and is unaffected.
    let (code, text) = b.cmd("EPSV");
    assert_eq!(code, 229, "{text}");
    assert!(text.contains("(|||"), "{text}");
}

#[test]
fn a_resolver_wins_over_the_rules_when_it_answers() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let resolver = {
        let seen = seen.clone();
        PassiveAddressResolver::new(move |client, local| {
            seen.lock().unwrap().push((client, local));
            (client == v4("127.0.0.2")).then(|| Ipv4Addr::new(10, 9, 9, 9))
        })
    };
    let s = start(|c| {
        c.passive_address_rules = vec![rule("127.0.0.0/8", "10.1.1.1")];
        c.passive_address_resolver = Some(resolver);
    });
    let mut a = s.raw_logged_in();
    assert_eq!(a.pasv().ip(), v4("10.1.1.1"));
    let mut b = Raw::connect_from("127.0.0.2", s.addr);
    b.login(USER, PASS);
    assert_eq!(b.pasv().ip(), v4("10.9.9.9"));
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (v4("127.0.0.1"), v4("127.0.0.1")),
            (v4("127.0.0.2"), v4("127.0.0.1")),
        ]
    );
}

#[test]
fn without_rules_pasv_announces_the_public_host_name_or_the_local_address() {
    // A host name is looked up (at start, and again periodically).
    let s = start(|c| {
        c.listen = vec!["127.0.0.3:0".parse().unwrap()];
        c.public_host = Some("localhost".into());
    });
    let mut raw = Raw::connect(s.addr);
    raw.login(USER, PASS);
    assert_eq!(raw.pasv().ip(), v4("127.0.0.1"));

    let s = start(|c| c.listen = vec!["127.0.0.3:0".parse().unwrap()]);
    let mut raw = Raw::connect(s.addr);
    raw.login(USER, PASS);
    assert_eq!(raw.pasv().ip(), v4("127.0.0.3"));
}

// --- Passive port sharing ----------------------------------------------------------------------

#[test]
fn without_sharing_a_one_port_range_serves_one_waiting_session() {
    let port = free_port();
    let s = start(|c| c.passive_ports = Some(port..=port));
    let mut a = s.raw_logged_in();
    assert_eq!(a.epsv().port(), port);
    let mut b = s.raw_logged_in();
    assert_eq!(b.code("EPSV"), 425);
}

/// One session's loop of transfers through the shared port: uploads and downloads alternating
/// PASV and EPSV, each byte checked.
fn transfers_through(s: &TestServer, source: &'static str, port: u16, seed: u64, rounds: usize) {
    let mut raw = Raw::connect_from(source, s.addr);
    raw.login(USER, PASS);
    assert_eq!(raw.code("TYPE I"), 200);
    for round in 0..rounds {
        let seed = seed * 100 + round as u64;
        let bytes = random_bytes(200_000 + (seed as usize % 7) * 50_000, seed);
        let name = format!("{source}-{round}.bin");
        let announced = if round % 2 == 0 {
            raw.pasv().port()
        } else {
            raw.epsv().port()
        };
        assert_eq!(announced, port);
        let target = SocketAddr::new(s.addr.ip(), port);
        let mut data = connect_from(source, target);
        assert_eq!(raw.code(&format!("STOR {name}")), 150);
        data.write_all(&bytes).unwrap();
        drop(data);
        assert_eq!(raw.reply().0, 226, "{name}");

        let announced = if round % 2 == 0 {
            raw.epsv().port()
        } else {
            raw.pasv().port()
        };
        assert_eq!(announced, port);
        let mut data = connect_from(source, target);
        assert_eq!(raw.code(&format!("RETR {name}")), 150);
        let mut got = Vec::new();
        data.read_to_end(&mut got).unwrap();
        assert_eq!(raw.reply().0, 226, "{name}");
        assert!(
            got == bytes,
            "{name}: {} bytes back, not the bytes sent",
            got.len()
        );
    }
    assert_eq!(raw.code("QUIT"), 221);
}

#[test]
fn two_clients_share_one_passive_port() {
    let port = free_port();
    let s = start(|c| one_port_sharing(c, port));
    write_file(&s.path("a.bin"), &random_bytes(3_000_000, 21));
    write_file(&s.path("b.bin"), &random_bytes(3_000_000, 22));

    // Both wait on the one port at once; the second client connects first and still gets its
    // own transfer.
    let mut a = Raw::connect_from("127.0.0.1", s.addr);
    a.login(USER, PASS);
    let mut b = Raw::connect_from("127.0.0.2", s.addr);
    b.login(USER, PASS);
    assert_eq!(a.code("TYPE I"), 200);
    assert_eq!(b.code("TYPE I"), 200);
    assert_eq!(a.pasv().port(), port);
    assert_eq!(b.epsv().port(), port);
    let target = SocketAddr::new(s.addr.ip(), port);
    let mut data_b = connect_from("127.0.0.2", target);
    let mut data_a = connect_from("127.0.0.1", target);
    assert_eq!(b.code("RETR b.bin"), 150);
    assert_eq!(a.code("RETR a.bin"), 150);
    // Both transfers are open at once (3 MB each does not fit the socket buffers).
    let reader_a = std::thread::spawn(move || {
        let mut got = Vec::new();
        data_a.read_to_end(&mut got).unwrap();
        got
    });
    let mut got_b = Vec::new();
    data_b.read_to_end(&mut got_b).unwrap();
    let got_a = reader_a.join().unwrap();
    assert_eq!(a.reply().0, 226);
    assert_eq!(b.reply().0, 226);
    assert!(got_a == random_bytes(3_000_000, 21), "a.bin differs");
    assert!(got_b == random_bytes(3_000_000, 22), "b.bin differs");

    // And many rounds of both, concurrently.
    let s = Arc::new(s);
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = [("127.0.0.1", 1u64), ("127.0.0.2", 2u64)]
        .into_iter()
        .map(|(source, seed)| {
            let (s, barrier) = (s.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                transfers_through(&s, source, port, seed, 6);
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn sessions_of_one_address_are_served_in_the_order_they_asked() {
    let port = free_port();
    let s = start(|c| one_port_sharing(c, port));
    write_file(&s.path("first.txt"), b"for the first session");
    write_file(&s.path("second.txt"), b"for the second session");
    let mut first = s.raw_logged_in();
    let mut second = s.raw_logged_in();
    assert_eq!(first.epsv().port(), port);
    assert_eq!(second.pasv().port(), port);
    let target = SocketAddr::new(s.addr.ip(), port);
    let mut d1 = TcpStream::connect(target).unwrap();
    // The hand-over happens on accept: make sure the first connection is taken first.
    std::thread::sleep(Duration::from_millis(200));
    let mut d2 = TcpStream::connect(target).unwrap();
    assert_eq!(second.code("RETR second.txt"), 150);
    assert_eq!(first.code("RETR first.txt"), 150);
    let (mut got1, mut got2) = (Vec::new(), Vec::new());
    d1.read_to_end(&mut got1).unwrap();
    d2.read_to_end(&mut got2).unwrap();
    assert_eq!(first.reply().0, 226);
    assert_eq!(second.reply().0, 226);
    assert_eq!(got1, b"for the first session");
    assert_eq!(got2, b"for the second session");
}

#[test]
fn a_stranger_on_a_shared_port_is_refused_without_disturbing_the_waiting_session() {
    let port = free_port();
    let s = start(|c| one_port_sharing(c, port));
    write_file(&s.path("f.bin"), &random_bytes(500_000, 31));
    let mut raw = s.raw_logged_in();
    assert_eq!(raw.code("TYPE I"), 200);
    assert_eq!(raw.pasv().port(), port);
    let target = SocketAddr::new(s.addr.ip(), port);

    // A connection from an address with no waiting session is closed at once, before and
    // after the transfer command.
    assert_closed_at_once(connect_from("127.0.0.7", target));
    assert_eq!(raw.code("NOOP"), 200);
    assert_closed_at_once(connect_from("127.0.0.8", target));

    let mut data = TcpStream::connect(target).unwrap();
    assert_eq!(raw.code("RETR f.bin"), 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(raw.reply().0, 226);
    assert!(got == random_bytes(500_000, 31));
}

#[test]
fn a_shared_port_wait_ends_with_abor_timeout_replacement_and_session_end() {
    let port = free_port();
    let s = start(|c| {
        one_port_sharing(c, port);
        c.data_timeout = Duration::from_secs(1);
    });
    write_file(&s.path("f.txt"), b"contents");
    let target = SocketAddr::new(s.addr.ip(), port);
    let mut raw = s.raw_logged_in();

    // ABOR with no transfer forgets the PASV: the port closes (no one else waits on it).
    assert_eq!(raw.epsv().port(), port);
    assert_port_open(port, "while a session waits");
    assert_eq!(raw.code("ABOR"), 225);
    assert_port_closes(port, "after ABOR");

    // A transfer whose data connection never comes times out, and its wait goes with it.
    assert_eq!(raw.epsv().port(), port);
    assert_eq!(raw.code("RETR f.txt"), 425);
    assert_port_closes(port, "after the data connection timed out");

    // ABOR during the wait for the data connection.
    assert_eq!(raw.epsv().port(), port);
    raw.send("RETR f.txt");
    std::thread::sleep(Duration::from_millis(100));
    let (code, text) = raw.cmd("ABOR");
    assert!(code == 426 || code == 425, "{code} {text}");
    let mut final_code = code;
    while final_code != 226 && final_code != 225 {
        final_code = raw.reply().0;
    }
    assert_port_closes(port, "after ABOR during the wait");

    // A second PASV replaces the first: one wait, not two (one connection is served, the
    // next finds no waiter and is refused).
    assert_eq!(raw.pasv().port(), port);
    assert_eq!(raw.epsv().port(), port);
    let mut data = TcpStream::connect(target).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_closed_at_once(TcpStream::connect(target).unwrap());
    assert_eq!(raw.code("RETR f.txt"), 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(raw.reply().0, 226);
    assert_eq!(got, b"contents");
    assert_port_closes(port, "after the transfer");

    // Two sessions wait; one leaving keeps the port open for the other; the other's end
    // closes it.
    let mut other = Raw::connect_from("127.0.0.2", s.addr);
    other.login(USER, PASS);
    assert_eq!(raw.epsv().port(), port);
    assert_eq!(other.epsv().port(), port);
    assert_eq!(raw.code("QUIT"), 221);
    assert!(raw.is_closed());
    std::thread::sleep(Duration::from_millis(200));
    let mut data = connect_from("127.0.0.2", target);
    assert_eq!(other.code("RETR f.txt"), 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(other.reply().0, 226);
    assert_eq!(got, b"contents");
    assert_eq!(other.epsv().port(), port);
    drop(other);
    assert_port_closes(port, "after the last session ended");
}

#[test]
fn tls_data_connections_work_through_a_shared_port() {
    let port = free_port();
    let (server_config, cert) = tls_server_config();
    let s = start(|c| {
        one_port_sharing(c, port);
        c.tls = Some(ftpgate::TlsConfig::new(server_config));
    });
    let data = random_bytes(1_000_000, 41);
    let s = Arc::new(s);
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = ["127.0.0.1", "127.0.0.2"]
        .into_iter()
        .enumerate()
        .map(|(i, source)| {
            // Each client has its own TLS session cache, as separate programs would.
            let client = tls_client_config(&cert);
            let (s, barrier, data) = (s.clone(), barrier.clone(), data.clone());
            std::thread::spawn(move || {
                let control = connect_from(source, s.addr);
                let ftp = RustlsFtpStream::connect_with_stream(control)
                    .unwrap()
                    .passive_stream_builder(move |addr| Ok(connect_from(source, addr)));
                let mut ftp = ftp
                    .into_secure(RustlsConnector::from(client), "localhost")
                    .unwrap();
                ftp.login(USER, PASS).unwrap();
                ftp.transfer_type(suppaftp::types::FileType::Binary)
                    .unwrap();
                barrier.wait();
                for (round, mode) in [Mode::Passive, Mode::ExtendedPassive, Mode::Passive]
                    .into_iter()
                    .enumerate()
                {
                    ftp.set_mode(mode);
                    let name = format!("tls-{i}-{round}.bin");
                    ftp.put_file(&name, &mut Cursor::new(&data)).unwrap();
                    assert!(ftp.retr_as_buffer(&name).unwrap().into_inner() == data);
                }
                ftp.quit().unwrap();
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    for i in 0..2 {
        for round in 0..3 {
            assert!(std::fs::read(s.path(&format!("tls-{i}-{round}.bin"))).unwrap() == data);
        }
    }
}

// --- Active mode source port -------------------------------------------------------------------

/// PORT to a listener of the test's, RETR, and the data connection's source port and bytes.
fn active_retr(raw: &mut Raw, name: &str) -> (u16, Vec<u8>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (code, text) = raw.cmd(&format!("PORT 127,0,0,1,{},{}", port / 256, port % 256));
    assert_eq!(code, 200, "{text}");
    assert_eq!(raw.code(&format!("RETR {name}")), 150);
    let (mut data, from) = listener.accept().unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(raw.reply().0, 226);
    (from.port(), got)
}

#[test]
fn active_connections_are_made_from_an_ephemeral_port_by_default() {
    let s = TestServer::start();
    write_file(&s.path("f.txt"), b"active");
    let mut raw = s.raw_logged_in();
    let (from, got) = active_retr(&mut raw, "f.txt");
    assert_eq!(got, b"active");
    assert!(from >= 1024, "from port {from}");
    assert_ne!(from, s.addr.port() - 1);
}

#[test]
fn active_connections_come_from_the_configured_source_port_many_at_once() {
    let source = free_port();
    let s = start(|c| c.active_source_port = ActiveSourcePort::Port(source));
    let big = random_bytes(4_000_000, 51);
    write_file(&s.path("big.bin"), &big);
    let mut a = s.raw_logged_in();
    let mut b = s.raw_logged_in();
    assert_eq!(a.code("TYPE I"), 200);
    assert_eq!(b.code("TYPE I"), 200);
    let (la, lb) = (
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    for (raw, listener) in [(&mut a, &la), (&mut b, &lb)] {
        let port = listener.local_addr().unwrap().port();
        assert_eq!(raw.code(&format!("EPRT |1|127.0.0.1|{port}|")), 200);
        assert_eq!(raw.code("RETR big.bin"), 150);
    }
    // Both data connections are open at the same time, from the same local port.
    let (mut da, from_a) = la.accept().unwrap();
    let (mut db, from_b) = lb.accept().unwrap();
    assert_eq!(from_a.port(), source);
    assert_eq!(from_b.port(), source);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        da.read_to_end(&mut got).unwrap();
        got
    });
    let mut got_b = Vec::new();
    db.read_to_end(&mut got_b).unwrap();
    let got_a = reader.join().unwrap();
    assert_eq!(a.reply().0, 226);
    assert_eq!(b.reply().0, 226);
    assert!(got_a == big && got_b == big);

    // Again from the same port right away (the earlier connections are in TIME_WAIT).
    let (from, got) = active_retr(&mut a, "big.bin");
    assert_eq!(from, source);
    assert!(got == big);
}

#[test]
fn active_source_port_falls_back_to_an_ephemeral_port_when_it_cannot_be_bound() {
    // A listener holds the port, so the server cannot bind it.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let held = holder.local_addr().unwrap().port();
    let s = start(|c| c.active_source_port = ActiveSourcePort::Port(held));
    write_file(&s.path("f.txt"), b"fallback");
    let mut raw = s.raw_logged_in();
    for _ in 0..2 {
        let (from, got) = active_retr(&mut raw, "f.txt");
        assert_eq!(got, b"fallback");
        assert_ne!(from, held);
    }
}

#[test]
fn active_connections_from_port_20_when_privileged() {
    // Port 20 needs root or CAP_NET_BIND_SERVICE: with it the connection comes from port 20,
    // without it from an ephemeral port (the fallback), and the transfer works either way.
    let privileged = match TcpListener::bind("127.0.0.1:20") {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => false,
        Err(e) => {
            println!("skipped: cannot tell whether port 20 can be bound ({e})");
            return;
        }
    };
    let s = start(|c| c.active_source_port = ActiveSourcePort::Port(20));
    write_file(&s.path("f.txt"), b"from twenty");
    let mut raw = s.raw_logged_in();
    let (from, got) = active_retr(&mut raw, "f.txt");
    assert_eq!(got, b"from twenty");
    if privileged {
        assert_eq!(from, 20);
    } else {
        println!("not privileged: checked the fallback to an ephemeral port instead");
        assert_ne!(from, 20);
    }
}

#[test]
fn active_connections_from_one_below_the_control_port() {
    let s = start(|c| c.active_source_port = ActiveSourcePort::ControlMinusOne);
    let below = s.addr.port() - 1;
    // Another socket may hold that port on this machine; then the fallback is what we see.
    let probe = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    probe.set_reuse_address(true).unwrap();
    if probe
        .bind(&SocketAddr::from(([127, 0, 0, 1], below)).into())
        .is_err()
    {
        println!("skipped: port {below} is taken on this machine");
        return;
    }
    drop(probe);
    write_file(&s.path("f.txt"), b"L-1");
    let mut raw = s.raw_logged_in();
    let (from, got) = active_retr(&mut raw, "f.txt");
    assert_eq!(got, b"L-1");
    assert_eq!(from, below);
}
