//! Defences against abuse and faults: brute force, timing, command floods, size limits and
//! quotas, durability, symlink races, a full disk, load, and connection resets.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use ftpgate_storage_fs::Durability;

fn connect_from(local: &str, server: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&format!("{local}:0").parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&server.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

fn first_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

#[test]
fn failed_logins_are_delayed_more_and_more_then_the_address_is_banned() {
    let mut options = Options::default();
    options.config.max_login_failures = 10;
    options.config.login_guard = ftpgate::LoginGuardConfig {
        failure_delay: Duration::from_millis(150),
        ban_after_failures: 3,
        failure_window: Duration::from_secs(60),
        ban_time: Duration::from_secs(2),
        ban_growth: 2.0,
    };
    let server = TestServer::start_with(options);
    let mut raw = server.raw();
    let mut took = Vec::new();
    for _ in 0..2 {
        raw.cmd("USER alice");
        let start = Instant::now();
        assert_eq!(raw.code("PASS wrong"), 530);
        took.push(start.elapsed());
    }
    assert!(took[0] >= Duration::from_millis(150), "{took:?}");
    assert!(
        took[1] >= Duration::from_millis(300),
        "the delay grows: {took:?}"
    );
    raw.cmd("USER alice");
    assert_eq!(raw.code("PASS wrong"), 530);
    assert_eq!(raw.reply().0, 421, "banned");
    assert!(raw.is_closed());
    // A banned address gets 421 at connect, even with the right password...
    let mut again = TcpStream::connect(server.addr).unwrap();
    assert!(first_line(&mut again).starts_with("421 "));
    // ...while other addresses are not affected.
    let mut other = connect_from("127.0.0.2", server.addr);
    assert!(first_line(&mut other).starts_with("220 "));
    other
        .write_all(format!("USER {USER}\r\nPASS {PASS}\r\n").as_bytes())
        .unwrap();
    assert!(first_line(&mut other).starts_with("331"));
    assert!(first_line(&mut other).starts_with("230"));
    // The ban ends.
    std::thread::sleep(Duration::from_millis(2200));
    let mut raw = server.raw();
    raw.login(USER, PASS);
}

/// An authenticator in front of the file users whose backend can be down (it cannot decide
/// for anyone) or up (it knows nobody, so the users after it decide); it counts the calls.
struct Down(AtomicU64, AtomicBool);

#[ftpgate::async_trait]
impl ftpgate_core::Authenticator for Down {
    async fn authenticate(
        &self,
        _request: &ftpgate_core::LoginRequest<'_>,
    ) -> Result<ftpgate_core::User, ftpgate_core::AuthError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        if !self.1.load(Ordering::SeqCst) {
            return Err(ftpgate_core::AuthError::UnknownUser);
        }
        Err(ftpgate_core::AuthError::Unavailable(
            "connection refused".into(),
        ))
    }
}

fn guarded_options(front: Arc<Down>, fallthrough: bool) -> Options {
    let mut options = Options::default();
    options.config.max_login_failures = 10;
    options.config.login_guard = ftpgate::LoginGuardConfig {
        failure_delay: Duration::from_millis(400),
        ban_after_failures: 3,
        failure_window: Duration::from_secs(60),
        ban_time: Duration::from_secs(60),
        ban_growth: 2.0,
    };
    options.auth_in_front = Some((front, fallthrough));
    options
}

#[test]
fn an_unavailable_authenticator_gets_421_and_never_a_ban() {
    let down = Arc::new(Down(AtomicU64::new(0), AtomicBool::new(true)));
    let server = TestServer::start_with(guarded_options(down.clone(), false));
    // Twice the ban threshold, each on a new connection from the same address: every one
    // is told to come back later and closed, none is delayed or banned.
    for attempt in 0..6 {
        let mut raw = server.raw();
        assert_eq!(raw.code(&format!("USER {USER}")), 331, "attempt {attempt}");
        let start = Instant::now();
        let (code, text) = raw.cmd(&format!("PASS {PASS}"));
        assert_eq!(code, 421, "attempt {attempt}: {text}");
        assert!(text.contains("unavailable"), "{text}");
        assert!(
            start.elapsed() < Duration::from_millis(400),
            "no failure delay"
        );
        assert!(raw.is_closed(), "attempt {attempt}: the connection closes");
    }
    assert_eq!(down.0.load(Ordering::SeqCst), 6);
    // The backend is back. Not banned: the address still gets its greeting (`raw` checks the
    // 220), and none of the six was counted: two wrong passwords are below the threshold of
    // three, and the right one logs in.
    down.1.store(false, Ordering::SeqCst);
    let mut raw = server.raw();
    for _ in 0..2 {
        raw.cmd(&format!("USER {USER}"));
        assert_eq!(raw.code("PASS wrong"), 530);
    }
    raw.login(USER, PASS);
    assert_eq!(raw.code("PWD"), 257);
}

#[test]
fn an_unavailable_authenticator_that_falls_through_lets_the_next_decide() {
    let down = Arc::new(Down(AtomicU64::new(0), AtomicBool::new(true)));
    let server = TestServer::start_with(guarded_options(down.clone(), true));
    let mut raw = server.raw();
    raw.login(USER, PASS);
    assert_eq!(raw.code("PWD"), 257);
    assert_eq!(down.0.load(Ordering::SeqCst), 1);
    // A name nobody after it knows may exist where nobody could look: 421, not 530.
    let mut raw = server.raw();
    raw.cmd("USER nobody");
    assert_eq!(raw.code("PASS x"), 421);
}

#[test]
fn a_command_flood_is_paced() {
    let mut options = Options::default();
    options.config.max_commands_per_second = 40;
    let server = TestServer::start_with(options);
    let mut raw = server.raw_logged_in();
    let start = Instant::now();
    raw.send_bytes("NOOP\r\n".repeat(160).as_bytes());
    for _ in 0..160 {
        assert_eq!(raw.reply().0, 200);
    }
    // 2 logins + 160 commands at 40/s with a burst of 80: at least two seconds.
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_client_that_waits_for_its_replies_is_never_paced() {
    let mut options = Options::default();
    options.config.max_commands_per_second = 40;
    let server = TestServer::start_with(options);
    let mut raw = server.raw_logged_in();
    let start = Instant::now();
    // 400 commands one at a time: ten seconds at 40 per second if each one cost a token.
    for _ in 0..400 {
        raw.send_bytes(b"NOOP\r\n");
        assert_eq!(raw.reply().0, 200);
    }
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn max_file_size_is_enforced_while_the_bytes_arrive() {
    let mut options = Options::default();
    options.config.max_file_size = Some(100_000);
    let server = TestServer::start_with(options);
    write_file(&server.path("keep"), &random_bytes(60_000, 20));
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    assert_eq!(raw.upload("STOR keep", &random_bytes(300_000, 21)), 552);
    assert_eq!(
        std::fs::read(server.path("keep")).unwrap(),
        random_bytes(60_000, 20)
    );
    let (code, text) = raw.upload_reply("APPE keep", &random_bytes(50_000, 22));
    assert_eq!(code, 552, "60k + 50k is over 100k: {text}");
    assert!(
        text.contains("maximum file size of 100000 bytes"),
        "the reply names the limit: {text}"
    );
    assert_eq!(
        std::fs::read(server.path("keep")).unwrap(),
        random_bytes(60_000, 20),
        "a refused APPE leaves the file as it was"
    );
    // REST+STOR from inside the file, refused, leaves the whole file too.
    assert_eq!(raw.cmd("REST 30000").0, 350);
    assert_eq!(raw.upload("STOR keep", &random_bytes(200_000, 24)), 552);
    assert_eq!(
        std::fs::read(server.path("keep")).unwrap(),
        random_bytes(60_000, 20)
    );
    assert_eq!(
        raw.upload("STOR small", &random_bytes(100_000, 23)),
        226,
        "exactly the limit is fine"
    );
    assert_eq!(
        server.names_in(""),
        ["keep", "pub", "small"],
        "nothing partial left"
    );
}

#[test]
fn quotas_count_existing_files_uploads_and_deletes() {
    let server = TestServer::start_with(Options {
        alice_quota: Some(300_000),
        ..Options::default()
    });
    write_file(&server.path("existing"), &random_bytes(150_000, 30));
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    assert_eq!(raw.upload("STOR a", &random_bytes(100_000, 31)), 226);
    let (code, text) = raw.upload_reply("STOR b", &random_bytes(100_000, 32));
    assert_eq!(code, 552, "150k + 100k + 100k > 300k");
    assert!(text.contains("over the quota of 300000 bytes"), "{text}");
    assert!(!server.path("b").exists());
    // Replacing a file only counts the difference.
    assert_eq!(raw.upload("STOR a", &random_bytes(140_000, 33)), 226);
    assert_eq!(raw.code("DELE existing"), 250);
    assert_eq!(
        raw.upload("STOR b", &random_bytes(150_000, 34)),
        226,
        "the deleted bytes are free again"
    );
    // Another session of the same user shares the count.
    let mut other = server.raw_logged_in();
    other.cmd("TYPE I");
    assert_eq!(other.upload("STOR c", &random_bytes(20_000, 35)), 552);
}

#[test]
fn quotas_of_files_count_new_files_only() {
    let server = TestServer::start_with(Options {
        alice_quota_files: Some(3),
        ..Options::default()
    });
    write_file(&server.path("existing"), b"x");
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    assert_eq!(raw.upload("STOR a", b"a"), 226);
    assert_eq!(raw.upload("STOR b", b"b"), 226);
    let (code, text) = raw.upload_reply("STOR c", b"c");
    assert_eq!(code, 552, "{text}");
    assert!(text.contains("over the quota of 3 files"), "{text}");
    assert!(
        !server.path("c").exists(),
        "a refused upload leaves nothing"
    );
    // Replacing or extending a file makes none; a directory is no file.
    assert_eq!(raw.upload("STOR a", b"again"), 226);
    assert_eq!(raw.upload("APPE b", b"more"), 226);
    assert_eq!(raw.code("MKD dir"), 257);
    // Another session of the same user shares the count.
    let mut other = server.raw_logged_in();
    other.cmd("TYPE I");
    assert_eq!(other.upload("STOR c", b"c"), 552);
    // A file renamed over another: one file fewer, a place free.
    assert_eq!(raw.code("RNFR b"), 350);
    assert_eq!(raw.code("RNTO a"), 250);
    // An upload of a new file that does not complete gives its place back.
    let data_addr = other.epsv();
    let mut data = TcpStream::connect(data_addr).unwrap();
    assert_eq!(other.code("STOR partial"), 150);
    data.write_all(b"some of it").unwrap();
    other.send("ABOR");
    let (code, _) = other.reply();
    if code == 426 {
        assert_eq!(other.reply().0, 226);
    }
    drop(data);
    assert!(!server.path("partial").exists());
    assert_eq!(other.upload("STOR c", b"c"), 226);
    assert_eq!(other.upload("STOR d", b"d"), 552);
    assert_eq!(raw.code("DELE existing"), 250);
    assert_eq!(other.upload("STOR d", b"d"), 226);
}

#[test]
fn strict_durability_still_commits_atomically() {
    let server = TestServer::start_with(Options {
        durability: Durability::Strict,
        ..Options::default()
    });
    write_file(&server.path("f"), b"old");
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    let bytes = random_bytes(500_000, 36);
    assert_eq!(raw.upload("STOR f", &bytes), 226);
    assert_eq!(std::fs::read(server.path("f")).unwrap(), bytes);
    assert_eq!(raw.upload("APPE f", b"tail"), 226);
    assert_eq!(std::fs::metadata(server.path("f")).unwrap().len(), 500_004);
}

#[test]
fn a_directory_swapped_for_a_symlink_in_a_race_never_leads_outside() {
    let server = TestServer::start();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("f"), b"OUTSIDE").unwrap();
    let race = server.path("race");
    std::fs::create_dir(&race).unwrap();
    let real = server.path("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::write(real.join("f"), b"inside").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (stop, swaps, race, real, outside) = (
            stop.clone(),
            swaps.clone(),
            race.clone(),
            real.clone(),
            outside.path().to_path_buf(),
        );
        std::thread::spawn(move || {
            let link = race.join("d");
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(&link);
                let _ = std::os::unix::fs::symlink(&real, &link);
                let _ = std::fs::remove_file(&link);
                let _ = std::os::unix::fs::symlink(&outside, &link);
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut raw = server.raw_logged_in();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut served = 0;
    while Instant::now() < deadline {
        let (code, bytes) = raw.download("RETR race/d/f");
        assert_ne!(bytes, b"OUTSIDE", "read through a swapped link");
        if code == 226 {
            served += 1;
        }
        let _ = raw.upload("STOR race/d/planted", b"x");
        assert!(
            !outside.path().join("planted").exists(),
            "wrote through a swapped link"
        );
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(swaps.load(Ordering::Relaxed) > 100);
    // Links inside the root are followed, so the inside target was served at times.
    eprintln!("served {served} times from inside while racing");
}

/// Mounts a small tmpfs on `dir` for the life of the value (root only).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_gives_452_keeps_nothing_and_the_server_goes_on() {
    let server = TestServer::start();
    let disk = server.path("disk");
    std::fs::create_dir(&disk).unwrap();
    let Some(_tmpfs) = Tmpfs::mount(&disk, "1m") else {
        assert_ne!(
            nix_uid(),
            0,
            "mounting a tmpfs failed although running as root"
        );
        eprintln!("not root: cannot mount a small filesystem; skipping the disk-full test");
        return;
    };
    std::fs::write(disk.join("old"), b"previous version").unwrap();
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    let code = raw.upload("STOR disk/old", &random_bytes(3_000_000, 40));
    assert!(code == 452 || code == 552, "{code}");
    assert_eq!(
        std::fs::read(disk.join("old")).unwrap(),
        b"previous version"
    );
    let names: Vec<_> = std::fs::read_dir(&disk)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["old"], "no temporary file left on the full disk");
    assert_eq!(raw.code("NOOP"), 200);
    assert_eq!(raw.upload("STOR disk/small", b"fits"), 226);
    assert_eq!(
        raw.upload("STOR elsewhere", &random_bytes(2_000_000, 41)),
        226
    );
}

fn nix_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

#[test]
fn hundreds_of_concurrent_sessions_move_every_byte_correctly() {
    let seconds: u64 = std::env::var("FTPGATE_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let sessions: usize = std::env::var("FTPGATE_LOAD_SESSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let mut options = Options::default();
    options.config.max_connections = sessions + 16;
    options.config.max_connections_per_ip = sessions + 16;
    options.config.data_timeout = Duration::from_secs(60);
    options.config.max_commands_per_second = 100_000;
    // Hundreds of transfers a second leave their ports in TIME_WAIT for a minute: on the
    // system's ephemeral ports that comes close to exhausting them, so, as in production, the
    // passive ports are a configured range (reusable while in TIME_WAIT).
    options.config.passive_ports = Some(20_000..=24_999);
    let server = TestServer::start_with(options);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let transfers = Arc::new(AtomicU64::new(0));
    let idle_sessions = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..sessions)
        .map(|i| {
            let (addr, transfers, idle_sessions) =
                (server.addr, transfers.clone(), idle_sessions.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut raw = Raw::connect(addr);
                    raw.login(USER, PASS);
                    raw.cmd("TYPE I");
                    let mut round = 0u64;
                    while Instant::now() < deadline {
                        let name = format!("s{i}-{}", round % 3);
                        let bytes = random_bytes(
                            4096 + (round as usize * 7919 + i * 104_729) % 60_000,
                            i as u64 * 1000 + round,
                        );
                        assert_eq!(
                            raw.upload(&format!("STOR {name}"), &bytes),
                            226,
                            "session {i} STOR"
                        );
                        let (code, back) = raw.download(&format!("RETR {name}"));
                        assert_eq!(code, 226, "session {i} RETR");
                        assert!(back == bytes, "session {i}: bytes differ");
                        if round % 5 == 0 {
                            assert_eq!(raw.download("NLST").0, 226);
                        }
                        transfers.fetch_add(2, Ordering::Relaxed);
                        round += 1;
                    }
                    if round == 0 {
                        idle_sessions.fetch_add(1, Ordering::Relaxed);
                    }
                    assert_eq!(raw.code("QUIT"), 221);
                })
                .unwrap()
        })
        .collect();
    let failed = threads
        .into_iter()
        .map(|t| t.join())
        .filter(Result::is_err)
        .count();
    let done = transfers.load(Ordering::Relaxed);
    eprintln!("{sessions} sessions, {seconds} s: {done} verified transfers");
    assert_eq!(failed, 0, "{failed} sessions failed");
    assert_eq!(
        idle_sessions.load(Ordering::Relaxed),
        0,
        "every session completed transfers"
    );
}

#[test]
fn limits_hold_for_large_uploads_past_the_first_buffer() {
    // Past its first 256 KiB a plain upload goes straight from the socket to the file; the
    // size limit and the quota still hold to the byte there.
    let mut options = Options::default();
    options.config.max_file_size = Some(3_000_000);
    options.alice_quota = Some(5_000_000);
    let server = TestServer::start_with(options);
    let old = random_bytes(1_000_000, 40);
    write_file(&server.path("keep"), &old);
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE I");
    assert_eq!(raw.upload("STOR keep", &random_bytes(3_000_001, 41)), 552);
    assert_eq!(std::fs::read(server.path("keep")).unwrap(), old);
    let exact = random_bytes(3_000_000, 42);
    assert_eq!(raw.upload("STOR keep", &exact), 226, "exactly the limit");
    assert_eq!(std::fs::read(server.path("keep")).unwrap(), exact);
    // 3,000,000 used: 2,500,000 more would pass the 5,000,000 quota.
    assert_eq!(raw.upload("STOR other", &random_bytes(2_500_000, 43)), 552);
    assert_eq!(raw.upload("STOR other", &random_bytes(2_000_000, 44)), 226);
    assert_eq!(
        server.names_in(""),
        ["keep", "other", "pub"],
        "nothing partial left"
    );
}
