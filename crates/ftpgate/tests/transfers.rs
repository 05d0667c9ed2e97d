//! Data connections and transfers: both modes, IPv6, resume, ABOR, integrity of interrupted
//! uploads, shutdown.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::{Cursor, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::*;
use ftpgate_storage_fs::Durability;
use suppaftp::types::Mode;

#[test]
fn passive_extended_passive_and_active_modes() {
    let server = TestServer::start();
    let data = random_bytes(512 * 1024, 2);
    for (i, mode) in [Mode::Passive, Mode::ExtendedPassive, Mode::Active]
        .into_iter()
        .enumerate()
    {
        let mut ftp = server.client();
        ftp.set_mode(mode);
        let name = format!("f{i}");
        ftp.put_file(&name, &mut Cursor::new(&data)).unwrap();
        assert_eq!(
            ftp.retr_as_buffer(&name).unwrap().into_inner(),
            data,
            "{mode:?}"
        );
        assert_eq!(ftp.list(None).unwrap().len(), i + 2, "{mode:?}");
    }
}

#[test]
fn pasv_reply_names_the_control_address() {
    let server = TestServer::start();
    let mut raw = server.raw_logged_in();
    let (code, text) = raw.cmd("PASV");
    assert_eq!(code, 227);
    assert!(text.contains("(127,0,0,1,"), "{text}");
}

#[test]
fn passive_ports_come_from_the_configured_range() {
    let probe = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = probe
        .local_addr()
        .unwrap()
        .port()
        .saturating_sub(200)
        .max(20000);
    drop(probe);
    let mut options = Options::default();
    options.config.passive_ports = Some(base..=base + 9);
    let server = TestServer::start_with(options);
    let mut raw = server.raw_logged_in();
    for _ in 0..20 {
        let port = raw.epsv().port();
        assert!((base..=base + 9).contains(&port), "{port}");
    }
}

#[test]
fn public_host_is_announced_in_pasv() {
    let mut options = Options::default();
    options.config.public_host = Some("203.0.113.7".into());
    let server = TestServer::start_with(options);
    let mut raw = server.raw_logged_in();
    let (code, text) = raw.cmd("PASV");
    assert_eq!(code, 227);
    assert!(text.contains("(203,0,113,7,"), "{text}");
}

#[test]
fn public_host_may_be_a_name() {
    let mut options = Options::default();
    options.config.public_host = Some("localhost".into());
    let server = TestServer::start_with(options);
    let mut raw = server.raw_logged_in();
    let (code, text) = raw.cmd("PASV");
    assert_eq!(code, 227);
    assert!(text.contains("(127,0,0,1,"), "{text}");
}

#[test]
fn ipv6_control_and_data() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    }
    let mut options = Options::default();
    options.config.listen = vec!["[::1]:0".parse().unwrap()];
    let server = TestServer::start_with(options);
    assert!(server.addr.is_ipv6());
    let data = random_bytes(100_000, 3);
    for mode in [Mode::ExtendedPassive, Mode::Active] {
        let mut ftp = server.client();
        ftp.set_mode(mode);
        ftp.put_file("v6", &mut Cursor::new(&data)).unwrap();
        assert_eq!(
            ftp.retr_as_buffer("v6").unwrap().into_inner(),
            data,
            "{mode:?}"
        );
    }
    let mut raw = server.raw_logged_in();
    assert_eq!(raw.code("PASV"), 522, "PASV cannot express IPv6");
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_eq!(raw.code(&format!("EPRT |2|::1|{port}|")), 200);
    assert_eq!(raw.code("EPRT |2|::2|5000|"), 501);
}

#[test]
fn several_listen_addresses() {
    let mut options = Options::default();
    options.config.listen = vec![
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.2:0".parse().unwrap(),
    ];
    let server = TestServer::start_with(options);
    assert_eq!(server.addrs.len(), 2);
    for addr in &server.addrs {
        let mut raw = Raw::connect(*addr);
        raw.login(USER, PASS);
        assert_eq!(raw.download("NLST").0, 226, "{addr}");
    }
}

#[test]
fn rest_resumes_downloads_and_uploads() {
    let server = TestServer::start();
    let data = random_bytes(200_000, 4);
    write_file(&server.path("big"), &data);
    let mut ftp = server.client();
    ftp.resume_transfer(150_000).unwrap();
    assert_eq!(
        ftp.retr_as_buffer("big").unwrap().into_inner(),
        &data[150_000..]
    );
    // The offset is used once.
    assert_eq!(ftp.retr_as_buffer("big").unwrap().into_inner(), data);
    // The last byte, and nothing: each transfer ends where the file does.
    for offset in [data.len() - 1, data.len()] {
        ftp.resume_transfer(offset).unwrap();
        let tail = ftp.retr_as_buffer("big").unwrap().into_inner();
        assert_eq!(tail, &data[offset..], "offset {offset}");
    }
    // Past what a socket buffer takes at once, so the rest goes from the blocking pool.
    let large = random_bytes(12_000_000, 5);
    write_file(&server.path("large"), &large);
    // From an offset, and with just over 1 MiB left (sent on a corked connection with a short
    // queue: the last partial segment still arrives).
    for offset in [3_000_001, large.len() - (1 << 20) - 1] {
        ftp.resume_transfer(offset).unwrap();
        let tail = ftp.retr_as_buffer("large").unwrap().into_inner();
        assert!(tail == large[offset..], "large file from offset {offset}");
    }

    // Upload resume: the server holds the first part; REST + STOR sends the rest.
    write_file(&server.path("up"), &data[..120_000]);
    ftp.resume_transfer(120_000).unwrap();
    ftp.put_file("up", &mut Cursor::new(&data[120_000..]))
        .unwrap();
    assert_eq!(std::fs::read(server.path("up")).unwrap(), data);

    // APPE adds to the end.
    write_file(&server.path("log"), b"one\n");
    ftp.append_file("log", &mut Cursor::new(b"two\n")).unwrap();
    assert_eq!(std::fs::read(server.path("log")).unwrap(), b"one\ntwo\n");
    ftp.append_file("newlog", &mut Cursor::new(b"first\n"))
        .unwrap();
    assert_eq!(std::fs::read(server.path("newlog")).unwrap(), b"first\n");
}

#[test]
fn large_uploads_resume_and_append_at_the_right_place() {
    // Large enough that most of each upload goes straight from the socket to the file.
    let server = TestServer::start();
    let data = random_bytes(4_000_000, 45);
    let mut ftp = server.client();
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .unwrap();
    ftp.put_file("whole", &mut Cursor::new(&data)).unwrap();
    assert_eq!(std::fs::read(server.path("whole")).unwrap(), data);
    write_file(&server.path("resumed"), &data[..1_000_000]);
    ftp.resume_transfer(1_000_000).unwrap();
    ftp.put_file("resumed", &mut Cursor::new(&data[1_000_000..]))
        .unwrap();
    assert_eq!(std::fs::read(server.path("resumed")).unwrap(), data);
    write_file(&server.path("appended"), &data[..1_500_000]);
    ftp.append_file("appended", &mut Cursor::new(&data[1_500_000..]))
        .unwrap();
    assert_eq!(std::fs::read(server.path("appended")).unwrap(), data);
    assert_eq!(ftp.retr_as_buffer("appended").unwrap().into_inner(), data);
}

#[test]
fn rest_beyond_the_end_and_in_ascii_is_refused() {
    let server = TestServer::start();
    write_file(&server.path("f"), b"12345");
    let mut raw = server.raw_logged_in();
    assert_eq!(raw.code("REST 3"), 504, "REST in ASCII mode");
    raw.cmd("TYPE I");
    assert_eq!(raw.code("REST -1"), 501);
    assert_eq!(raw.code("REST 18446744073709551616"), 501);
    assert_eq!(raw.code("REST 6"), 350);
    assert_eq!(raw.download("RETR f").0, 554);
    assert_eq!(raw.code("REST 6"), 350);
    assert_eq!(
        raw.upload("STOR f", b"x"),
        554,
        "resuming an upload beyond the end"
    );
    assert_eq!(std::fs::read(server.path("f")).unwrap(), b"12345");
    assert_eq!(raw.code("REST 5"), 350);
    let (code, bytes) = raw.download("RETR f");
    assert_eq!((code, bytes.len()), (226, 0));
}

#[test]
fn transfer_without_data_setup_is_425() {
    let server = TestServer::start();
    let mut raw = server.raw_logged_in();
    assert_eq!(raw.code("RETR x"), 425);
    assert_eq!(raw.code("LIST"), 425);
}

#[test]
fn missing_file_is_refused_before_any_data_connection() {
    let server = TestServer::start();
    let mut raw = server.raw_logged_in();
    raw.epsv();
    assert_eq!(raw.code("RETR missing"), 550);
    assert_eq!(raw.code("NOOP"), 200);
}

/// A file big enough that a transfer is still running when ABOR arrives.
fn big_file(server: &TestServer, name: &str) {
    let file = std::fs::File::create(server.path(name)).unwrap();
    file.set_len(256 * 1024 * 1024).unwrap();
}

#[test]
fn abor_during_a_download_answers_426_then_226() {
    let server = TestServer::start();
    big_file(&server, "big");
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("RETR big"), 150);
    let mut some = [0u8; 4096];
    data.read_exact(&mut some).unwrap();
    // Only ABOR, STAT, NOOP and QUIT are acted on while the transfer runs.
    assert_eq!(raw.code("CWD /"), 503);
    assert_eq!(raw.code("NOOP"), 200);
    let (code, status) = raw.cmd("STAT");
    assert_eq!(code, 211);
    assert!(status.contains("Transfer in progress"), "{status}");
    raw.send_bytes(b"\xff\xf4\xff\xf2ABOR\r\n");
    assert_eq!(raw.reply().0, 426);
    assert_eq!(raw.reply().0, 226);
    drop(data);
    assert_eq!(raw.code("PWD"), 257);
    let (code, bytes) = raw.download("LIST");
    assert_eq!(code, 226);
    assert!(String::from_utf8(bytes).unwrap().contains("big"));
}

/// Writes "previous version" to `keep`, then starts a binary STOR over it (150 received) and
/// returns the control and data connections.
fn replace_keep(server: &TestServer) -> (Raw, TcpStream) {
    write_file(&server.path("keep"), b"previous version");
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    let addr = raw.epsv();
    let data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("STOR keep"), 150);
    (raw, data)
}

/// The server closes an upload's data connection only once the file is in place, as the C
/// servers do: a client that sees the close finds the file, and 226 right behind it. With
/// strict durability the commit waits for fsync, so a close before it would be seen first.
#[test]
fn an_upload_is_in_place_when_its_data_connection_closes() {
    for durability in [Durability::Normal, Durability::Strict] {
        let server = TestServer::start_with(Options {
            durability,
            ..Options::default()
        });
        upload_twice_and_look_at_the_close(&server);
    }
}

/// A new file, then the same name again (replaced): each is there once the data connection
/// has closed, before 226 is read.
fn upload_twice_and_look_at_the_close(server: &TestServer) {
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    let bytes = random_bytes(4096, 7);
    for name in ["new", "new"] {
        let addr = raw.epsv();
        let mut data = TcpStream::connect(addr).unwrap();
        assert_eq!(raw.code(&format!("STOR {name}")), 150);
        data.write_all(&bytes).unwrap();
        data.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        data.read_to_end(&mut rest).unwrap();
        assert_eq!(std::fs::read(server.path(name)).unwrap(), bytes);
        assert_eq!(raw.reply().0, 226);
    }
}

#[test]
fn abor_during_an_upload_keeps_nothing() {
    let server = TestServer::start();
    let (mut raw, mut data) = replace_keep(&server);
    data.write_all(&random_bytes(300_000, 5)).unwrap();
    raw.send("ABOR");
    assert_eq!(raw.reply().0, 426);
    assert_eq!(raw.reply().0, 226);
    drop(data);
    assert_eq!(
        std::fs::read(server.path("keep")).unwrap(),
        b"previous version"
    );
    assert_eq!(
        server.names_in(""),
        ["keep", "pub"],
        "no temporary file is left"
    );
}

#[test]
fn upload_cut_by_a_reset_keeps_the_previous_version() {
    let server = TestServer::start();
    let (mut raw, data) = replace_keep(&server);
    (&data).write_all(&random_bytes(100_000, 6)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // SO_LINGER 0: close with RST, as a crashed client or a cut network would.
    set_reset_on_close(&data);
    drop(data);
    let code = raw.reply().0;
    assert!(code == 426 || code == 451, "{code}");
    assert_eq!(
        std::fs::read(server.path("keep")).unwrap(),
        b"previous version"
    );
    assert_eq!(server.names_in(""), ["keep", "pub"]);
}

#[test]
fn control_connection_dropped_during_upload_keeps_nothing() {
    let server = TestServer::start();
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("STOR partial"), 150);
    data.write_all(&random_bytes(100_000, 7)).unwrap();
    drop(raw);
    // The server aborts the upload when the control connection goes; the data connection
    // is closed by it.
    let mut rest = Vec::new();
    data.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = data.read_to_end(&mut rest);
    for _ in 0..50 {
        if server.names_in("") == ["pub"] {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.names_in(""), ["pub"]);
}

#[test]
fn keep_partial_uploads_leaves_what_arrived_for_resume() {
    let server = TestServer::start_with(Options {
        keep_partial_uploads: true,
        ..Options::default()
    });
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("STOR part"), 150);
    let bytes = random_bytes(50_000, 8);
    data.write_all(&bytes).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    raw.send("ABOR");
    assert_eq!(raw.reply().0, 426);
    assert_eq!(raw.reply().0, 226);
    let kept = std::fs::read(server.path("part")).unwrap();
    assert_eq!(kept, bytes[..kept.len()]);
    let (_, size) = raw.cmd("SIZE part");
    assert_eq!(size.trim_end(), format!("213 {}", kept.len()));
}

#[test]
fn quit_during_a_transfer_waits_for_it() {
    let server = TestServer::start();
    write_file(&server.path("f"), &random_bytes(2_000_000, 9));
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("RETR f"), 150);
    raw.send("QUIT");
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes.len(), 2_000_000);
    assert_eq!(raw.reply().0, 226);
    assert_eq!(raw.reply().0, 221);
    assert!(raw.is_closed());
}

#[test]
fn graceful_shutdown_lets_transfers_finish_and_closes_idle_sessions() {
    shut_down_during_a_download(TestServer::start());
}

/// Shuts `server` down while one session downloads and another is idle: the idle one gets
/// 421 at once, the download finishes (226) before its 421, and nothing is accepted after.
fn shut_down_during_a_download(mut server: TestServer) {
    write_file(&server.path("f"), &random_bytes(4_000_000, 10));
    let mut idle = server.raw_logged_in();
    let mut busy = server.raw_logged_in();
    busy.cmd("TYPE I");
    let addr = busy.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(busy.code("RETR f"), 150);
    let mut first = vec![0u8; 1000];
    data.read_exact(&mut first).unwrap();
    server.shutdown.cancel();
    assert_eq!(idle.reply().0, 421);
    let mut rest = Vec::new();
    data.read_to_end(&mut rest).unwrap();
    assert_eq!(first.len() + rest.len(), 4_000_000);
    assert_eq!(busy.reply().0, 226);
    assert_eq!(busy.reply().0, 421);
    server.stop();
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "no longer accepting"
    );
}

#[test]
fn sessions_on_session_threads_transfer_and_shut_down_gracefully() {
    let mut options = Options::default();
    options.config.session_threads = 2;
    let server = TestServer::start_with(options);
    let body = random_bytes(3_000_000, 11);
    // Several sessions at once, spread over both threads: uploads (past the first buffer, so
    // through the blocking pool), downloads and listings.
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let mut ftp = server.client();
            let body = body.clone();
            std::thread::spawn(move || {
                let name = format!("t{i}");
                ftp.transfer_type(suppaftp::types::FileType::Binary)
                    .unwrap();
                ftp.put_file(&name, &mut &body[..]).unwrap();
                let got = ftp.retr_as_buffer(&name).unwrap().into_inner();
                assert_eq!(got, body);
                assert!(ftp.nlst(None).unwrap().contains(&name));
                ftp.quit().unwrap();
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    shut_down_during_a_download(server);
}

#[test]
fn listing_streams_a_large_directory() {
    let server = TestServer::start();
    let dir = server.path("many");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..20_000 {
        std::fs::File::create(dir.join(format!("file-{i:05}"))).unwrap();
    }
    let mut ftp = server.client();
    assert_eq!(ftp.list(Some("many")).unwrap().len(), 20_000);
    assert_eq!(ftp.nlst(Some("many")).unwrap().len(), 20_000);
    assert_eq!(ftp.mlsd(Some("many")).unwrap().len(), 20_000);
}

#[test]
fn data_connection_timeout_is_425() {
    let mut options = Options::default();
    options.config.data_timeout = Duration::from_millis(500);
    let server = TestServer::start_with(options);
    write_file(&server.path("f"), b"x");
    let mut raw = server.raw_logged_in();
    raw.epsv();
    raw.send("RETR f");
    assert_eq!(raw.reply().0, 425, "nobody connected to the passive port");
    assert_eq!(raw.code("NOOP"), 200);
}

#[test]
fn an_upload_that_stalls_past_its_first_buffer_ends_and_keeps_the_old_file() {
    let mut options = Options::default();
    options.config.data_timeout = Duration::from_millis(700);
    let server = TestServer::start_with(options);
    let (mut raw, mut data) = replace_keep(&server);
    // Past the first 256 KiB, so the rest goes socket to file on the blocking pool.
    data.write_all(&random_bytes(600_000, 8)).unwrap();
    let started = std::time::Instant::now();
    let code = raw.reply().0;
    assert!(code == 426 || code == 451, "{code}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the data timeout ends a silent upload: {:?}",
        started.elapsed()
    );
    drop(data);
    assert_eq!(
        std::fs::read(server.path("keep")).unwrap(),
        b"previous version"
    );
    assert_eq!(server.names_in(""), ["keep", "pub"]);
    assert_eq!(raw.code("NOOP"), 200);
}

#[test]
fn active_mode_connects_back_to_the_client() {
    let server = TestServer::start();
    write_file(&server.path("f"), b"active bytes");
    let mut raw = server.raw_logged_in();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_eq!(
        raw.code(&format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff)),
        200
    );
    raw.send("RETR f");
    let (mut data, from): (TcpStream, SocketAddr) = listener.accept().unwrap();
    assert_eq!(from.ip(), server.addr.ip());
    assert_ne!(from.port(), 20);
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes, b"active bytes");
    assert_eq!(raw.reply().0, 150);
    assert_eq!(raw.reply().0, 226);
}
