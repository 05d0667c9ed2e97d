//! Bad input and attacks: traversal, symlinks, NUL bytes, overlong lines, data-connection
//! hijacking and bouncing, connection limits, timeouts, permissions.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::*;
use ftpgate_core::{PermissionMap, Permissions, VirtualPath};

#[test]
fn dot_dot_and_absolute_paths_stay_inside_the_home() {
    let server = TestServer::start();
    let mut raw = server.raw_logged_in();
    assert_eq!(raw.code("CWD ../../../.."), 250);
    assert!(raw.cmd("PWD").1.contains("\"/\""));
    assert_eq!(raw.download("RETR ../../../../../../etc/passwd").0, 550);
    assert_eq!(raw.download("RETR /etc/passwd").0, 550);
    assert_eq!(raw.code("CWD /etc"), 550);
    // Backslashes and encoded dots are plain name characters, never separators or parents.
    assert_eq!(raw.download("RETR ..\\..\\etc\\passwd").0, 550);
    assert_eq!(raw.download("RETR %2e%2e/%2e%2e/etc/passwd").0, 550);
    assert_eq!(raw.upload("STOR ..\\x", b"b"), 226);
    assert!(server.path("..\\x").exists());
    assert_eq!(raw.upload("STOR ../../escape", b"e"), 226);
    assert!(
        server.path("escape").exists(),
        "the write landed inside the root"
    );
}

#[test]
fn symlinks_cannot_lead_out_of_the_home() {
    let server = TestServer::start();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"outside").unwrap();
    std::os::unix::fs::symlink(outside.path(), server.path("dirlink")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), server.path("filelink")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", server.path("dangling")).unwrap();
    write_file(&server.path("inside/real"), b"inside");
    std::os::unix::fs::symlink("inside/real", server.path("goodlink")).unwrap();

    let mut raw = server.raw_logged_in();
    assert_eq!(raw.download("RETR filelink").0, 550);
    assert_eq!(raw.download("RETR dirlink/secret").0, 550);
    assert_eq!(raw.download("RETR dangling").0, 550);
    assert_eq!(raw.code("CWD dirlink"), 550);
    assert_eq!(raw.download("LIST dirlink").0, 550);
    assert_eq!(raw.upload("STOR dirlink/planted", b"x"), 550);
    assert_eq!(raw.code("MKD dirlink/newdir"), 550);
    assert_eq!(raw.code("DELE dirlink/secret"), 550);
    assert_eq!(raw.code("RNFR dirlink/secret"), 550);
    assert!(!outside.path().join("planted").exists());
    assert!(!outside.path().join("newdir").exists());
    assert_eq!(
        std::fs::read(outside.path().join("secret")).unwrap(),
        b"outside"
    );
    // A link that stays inside the home works.
    let (code, bytes) = raw.download("RETR goodlink");
    assert_eq!((code, bytes.as_slice()), (226, &b"inside"[..]));
    // Listings show escaping links as links, without following them.
    let (_, listing) = raw.download("LIST");
    let listing = String::from_utf8(listing).unwrap();
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with('l') && l.ends_with("filelink")),
        "{listing}"
    );
}

#[test]
fn nul_and_control_characters_are_501_and_the_session_goes_on() {
    let server = TestServer::start();
    let mut raw = server.raw_logged_in();
    raw.send_bytes(b"STOR a\0b\r\n");
    assert_eq!(raw.reply().0, 501);
    raw.send_bytes(b"MKD evil\x1b[31m\r\n");
    assert_eq!(raw.reply().0, 501);
    raw.send_bytes(b"RETR \xc3\x28\r\n");
    assert_eq!(raw.reply().0, 501, "invalid UTF-8");
    assert_eq!(raw.code("NOOP"), 200);
    assert_eq!(server.names_in(""), ["pub"]);
}

#[test]
fn overlong_line_is_500_discarded_and_its_tail_never_runs() {
    let server = TestServer::start();
    write_file(&server.path("victim"), b"x");
    let mut raw = server.raw_logged_in();
    let mut line = vec![b'A'; 5000];
    line.extend_from_slice(b" DELE victim\r\n");
    raw.send_bytes(&line);
    assert_eq!(raw.reply().0, 500);
    assert_eq!(raw.code("NOOP"), 200);
    assert!(server.path("victim").exists());
    // A huge line in pieces does not grow memory or kill the session either.
    for _ in 0..64 {
        raw.send_bytes(&[b'B'; 64 * 1024]);
    }
    raw.send_bytes(b"\r\n");
    assert_eq!(raw.reply().0, 500);
    assert_eq!(raw.code("PWD"), 257);
}

#[test]
fn passive_connection_from_a_foreign_address_is_refused_and_the_client_still_gets_its_data() {
    let server = TestServer::start();
    write_file(&server.path("f"), b"for the real client");
    let mut raw = server.raw_logged_in();
    let addr = raw.epsv();
    // An attacker on another address connects first.
    let attacker =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    attacker
        .bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    attacker.connect(&addr.into()).unwrap();
    let mut attacker: TcpStream = attacker.into();
    raw.send("RETR f");
    attacker
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut stolen = Vec::new();
    let _ = attacker.read_to_end(&mut stolen);
    assert!(stolen.is_empty(), "the attacker received {stolen:?}");
    // The listener is still open for the real client.
    let mut data = TcpStream::connect(addr).unwrap();
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes, b"for the real client");
    assert_eq!(raw.reply().0, 150);
    assert_eq!(raw.reply().0, 226);
}

#[test]
fn port_and_eprt_cannot_bounce_to_other_hosts_or_privileged_ports() {
    let server = TestServer::start();
    let mut raw = server.raw_logged_in();
    assert_eq!(raw.code("PORT 127,0,0,2,4,1"), 501);
    assert_eq!(raw.code("PORT 10,0,0,1,0,80"), 501);
    assert_eq!(raw.code("PORT 127,0,0,1,0,25"), 501);
    assert_eq!(raw.code("EPRT |1|127.0.0.2|2000|"), 501);
    assert_eq!(raw.code("EPRT |1|127.0.0.1|1023|"), 501);
    assert_eq!(raw.code("PORT 127,0,0,1,4,0"), 200);
    assert_eq!(raw.code("PORT 1,2,3"), 501);
}

#[test]
fn active_mode_can_be_turned_off() {
    let mut options = Options::default();
    options.config.active_mode = false;
    let server = TestServer::start_with(options);
    let mut raw = server.raw_logged_in();
    assert_eq!(raw.code("PORT 127,0,0,1,4,1"), 502);
    assert_eq!(raw.code("EPRT |1|127.0.0.1|2000|"), 502);
}

#[test]
fn epsv_all_locks_out_other_setups() {
    let server = TestServer::start();
    let mut raw = server.raw_logged_in();
    assert_eq!(raw.code("EPSV ALL"), 200);
    assert_eq!(raw.code("PASV"), 503);
    assert_eq!(raw.code("PORT 127,0,0,1,4,1"), 503);
    assert_eq!(raw.download("NLST").0, 226);
}

#[test]
fn connection_limits_answer_421() {
    let mut options = Options::default();
    options.config.max_connections_per_ip = 2;
    let server = TestServer::start_with(options);
    let _a = server.raw();
    let _b = server.raw();
    let mut third = TcpStream::connect(server.addr).unwrap();
    let mut reply = String::new();
    third.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("421 "), "{reply}");
    // Another address is not affected.
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    other
        .bind(&"127.0.0.3:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    other.connect(&server.addr.into()).unwrap();
    let mut other: TcpStream = other.into();
    let mut buf = [0u8; 4];
    other.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"220 ");
    drop(_a);
    std::thread::sleep(Duration::from_millis(200));
    let _c = server.raw();

    let mut options = Options::default();
    options.config.max_connections = 1;
    let server = TestServer::start_with(options);
    let _a = server.raw();
    let mut second = TcpStream::connect(server.addr).unwrap();
    let mut reply = String::new();
    second.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("421 "), "{reply}");
}

#[test]
fn idle_and_login_timeouts_close_with_421() {
    let mut options = Options::default();
    options.config.idle_timeout = Duration::from_millis(700);
    options.config.login_timeout = Duration::from_millis(700);
    let server = TestServer::start_with(options);
    let mut idle = server.raw_logged_in();
    let mut anonymous = server.raw();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(idle.reply().0, 421);
    assert!(idle.is_closed());
    assert_eq!(anonymous.reply().0, 421);
}

#[test]
fn idle_timeout_never_fires_during_a_transfer() {
    let mut options = Options::default();
    options.config.idle_timeout = Duration::from_millis(500);
    let server = TestServer::start_with(options);
    let file = std::fs::File::create(server.path("big")).unwrap();
    file.set_len(8 * 1024 * 1024).unwrap();
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("RETR big"), 150);
    // Read slowly for longer than the idle timeout.
    let mut total = 0;
    let mut buf = vec![0u8; 1024 * 1024];
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(150));
        let n = data.read(&mut buf).unwrap();
        total += n;
    }
    let mut rest = Vec::new();
    data.read_to_end(&mut rest).unwrap();
    assert_eq!(total + rest.len(), 8 * 1024 * 1024);
    assert_eq!(raw.reply().0, 226);
}

#[test]
fn read_only_user_cannot_change_anything() {
    let server = TestServer::start();
    write_file(&server.path("f"), b"data");
    let mut raw = server.raw();
    raw.login(READER, PASS);
    assert_eq!(raw.download("RETR f").0, 226);
    assert_eq!(raw.upload("STOR g", b"x"), 550);
    assert_eq!(raw.upload("APPE f", b"x"), 550);
    assert_eq!(raw.code("DELE f"), 550);
    assert_eq!(raw.code("MKD d"), 550);
    assert_eq!(raw.code("RNFR f"), 550);
    assert_eq!(raw.code("MFMT 20200101000000 f"), 550);
    assert_eq!(std::fs::read(server.path("f")).unwrap(), b"data");
    assert_eq!(server.names_in(""), ["f", "pub"]);
}

#[test]
fn per_directory_permissions() {
    let permissions = PermissionMap::uniform(Permissions::ALL)
        .with_override(
            VirtualPath::parse_absolute("/archive").unwrap(),
            Permissions::READ_ONLY,
        )
        .with_override(
            VirtualPath::parse_absolute("/archive/inbox").unwrap(),
            Permissions::parse("elw").unwrap(),
        );
    let server = TestServer::start_with(Options {
        alice_permissions: permissions,
        ..Options::default()
    });
    write_file(&server.path("archive/old"), b"old");
    std::fs::create_dir(server.path("archive/inbox")).unwrap();
    let mut raw = server.raw_logged_in();
    assert_eq!(raw.upload("STOR archive/new", b"x"), 550);
    assert_eq!(raw.upload("STOR /tmp/../archive/new", b"x"), 550);
    assert_eq!(raw.code("DELE archive/old"), 550);
    assert_eq!(raw.download("RETR archive/old").0, 226);
    assert_eq!(raw.upload("STOR archive/inbox/drop", b"x"), 226);
    assert_eq!(raw.download("RETR archive/inbox/drop").0, 550);
    assert_eq!(raw.upload("STOR elsewhere", b"x"), 226);
    assert_eq!(raw.code("DELE elsewhere"), 250);
}

#[test]
fn telnet_sequences_do_not_confuse_the_parser() {
    let server = TestServer::start();
    let mut raw = server.raw_logged_in();
    raw.send_bytes(b"\xff\xfb\x01NO\xff\xf4OP\r\n");
    assert_eq!(raw.reply().0, 200);
    raw.send_bytes(b"MKD a\xff\xffb\r\n");
    // 0xFF alone is not valid UTF-8: refused cleanly.
    assert_eq!(raw.reply().0, 501);
    assert_eq!(raw.code("NOOP"), 200);
}

#[test]
fn data_port_listener_is_closed_after_use() {
    let server = TestServer::start();
    let mut raw = server.raw_logged_in();
    let addr = raw.epsv();
    assert_eq!(raw.download("NLST").0, 226);
    // A connection attempt to the old passive port fails (or is never served).
    let stale = TcpStream::connect_timeout(&addr, Duration::from_millis(500));
    if let Ok(mut stale) = stale {
        stale
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 1];
        assert!(!matches!(stale.read(&mut buf), Ok(1)));
    }
    let _ = TcpListener::bind("127.0.0.1:0");
    let _ = std::io::sink().write_all(b"");
}

#[test]
fn passive_ports_are_random_and_only_the_latest_listener_stays_open() {
    let probe = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = probe
        .local_addr()
        .unwrap()
        .port()
        .saturating_sub(300)
        .max(20000);
    drop(probe);
    let mut options = Options::default();
    options.config.passive_ports = Some(base..=base + 49);
    let server = TestServer::start_with(options);
    let mut raw = server.raw_logged_in();
    let ports: Vec<u16> = (0..20).map(|_| raw.epsv().port()).collect();
    let distinct: std::collections::HashSet<_> = ports.iter().collect();
    assert!(distinct.len() >= 8, "ports look predictable: {ports:?}");
    let sequential = ports.windows(2).filter(|w| w[1] == w[0] + 1).count();
    assert!(sequential < 10, "ports are handed out in order: {ports:?}");
    // A new PASV closes the previous listener: one pending passive listener per session.
    // (Ports are random: the next one may be the same again, one time in fifty; ask again.)
    let mut first = raw.epsv();
    let mut second = raw.epsv();
    for _ in 0..10 {
        if second != first {
            break;
        }
        first = second;
        second = raw.epsv();
    }
    assert_ne!(first, second);
    assert!(
        TcpStream::connect_timeout(&first, Duration::from_secs(1)).is_err(),
        "old listener still open"
    );
    assert!(TcpStream::connect_timeout(&second, Duration::from_secs(1)).is_ok());
}

#[test]
fn recursive_listing_is_not_served() {
    let server = TestServer::start();
    write_file(&server.path("a/b/c/deep.txt"), b"x");
    let mut raw = server.raw_logged_in();
    let (code, listing) = raw.download("LIST -R");
    assert_eq!(code, 226);
    let listing = String::from_utf8(listing).unwrap();
    assert!(
        listing.contains(" a\r\n") && !listing.contains("deep.txt"),
        "{listing}"
    );
}

#[test]
fn stalled_transfers_end_after_the_data_timeout() {
    let mut options = Options::default();
    options.config.data_timeout = Duration::from_millis(800);
    let server = TestServer::start_with(options);
    let big = std::fs::File::create(server.path("big")).unwrap();
    big.set_len(64 * 1024 * 1024).unwrap();
    write_file(&server.path("keep"), b"previous version");
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    // A download the client never reads.
    let addr = raw.epsv();
    let _data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("RETR big"), 150);
    assert_eq!(raw.reply().0, 426);
    // An upload that stops sending.
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("STOR keep"), 150);
    data.write_all(b"the beginning of").unwrap();
    assert_eq!(raw.reply().0, 426);
    assert_eq!(
        std::fs::read(server.path("keep")).unwrap(),
        b"previous version"
    );
    assert_eq!(server.names_in(""), ["big", "keep", "pub"]);
    assert_eq!(raw.code("NOOP"), 200);
}

#[test]
fn a_slow_transfer_that_keeps_moving_outlives_the_data_timeout() {
    let mut options = Options::default();
    options.config.data_timeout = Duration::from_millis(500);
    let server = TestServer::start_with(options);
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("STOR slow"), 150);
    // Eight pieces 200 ms apart: 1.6 s in all, three times the data timeout, which counts
    // from the last piece.
    for _ in 0..8 {
        data.write_all(b"piece ").unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(data);
    assert_eq!(raw.reply().0, 226);
    assert_eq!(
        std::fs::read(server.path("slow")).unwrap(),
        b"piece ".repeat(8)
    );
    // The next transfer, in the same session, still has its own full timeout.
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("STOR stalls"), 150);
    data.write_all(b"then nothing").unwrap();
    assert_eq!(raw.reply().0, 426);
    assert!(!server.path("stalls").exists());
}

#[test]
fn wildcards_stay_in_one_directory_and_literal_names_win() {
    let server = TestServer::start();
    write_file(&server.path("a.txt"), b"a");
    write_file(&server.path("b.txt"), b"b");
    let mut raw = server.raw_logged_in();
    let (code, listing) = raw.download("NLST *.txt");
    assert_eq!(
        (code, listing.as_slice()),
        (226, &b"a.txt\r\nb.txt\r\n"[..])
    );
    // A pattern cannot reach above the root.
    let (code, listing) = raw.download("NLST ../../*.txt");
    assert_eq!(
        (code, listing.as_slice()),
        (226, &b"../../a.txt\r\n../../b.txt\r\n"[..])
    );
    write_file(&server.path("*"), b"star");
    let (code, listing) = raw.download("NLST *");
    assert_eq!((code, listing.as_slice()), (226, &b"*\r\n"[..]));
}
