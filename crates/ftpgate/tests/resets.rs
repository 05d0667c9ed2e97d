//! Connections reset by the thousand, on the control port and on passive ports. In a test
//! binary of its own: it counts the process's open descriptors, which concurrent tests would
//! change.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn thousands_of_reset_connections_leave_no_trace() {
    let server = TestServer::start();
    write_file(&server.path("f"), &random_bytes(10_000, 50));
    // Warm up, then take the baseline.
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    assert_eq!(raw.download("RETR f").0, 226);
    let baseline = open_fds();
    let reset = |stream: TcpStream| {
        set_reset_on_close(&stream);
        drop(stream);
    };
    for _ in 0..5000 {
        reset(TcpStream::connect(server.addr).unwrap());
    }
    for _ in 0..5000 {
        let addr = raw.epsv();
        reset(TcpStream::connect(addr).unwrap());
        let (code, _) = raw.cmd("RETR f");
        if code == 150 {
            let code = raw.reply().0;
            assert!(code == 426 || code == 226 || code == 425, "{code}");
        } else {
            assert_eq!(code, 425);
        }
    }
    // The server still serves, and descriptors return to where they were.
    let mut fresh = server.raw_logged_in();
    fresh.cmd("TYPE I");
    assert_eq!(fresh.download("RETR f"), (226, random_bytes(10_000, 50)));
    drop(fresh);
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds() > baseline + 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        open_fds() <= baseline + 4,
        "descriptors: baseline {baseline}, now {}",
        open_fds()
    );
}
