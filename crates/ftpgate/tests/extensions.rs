//! Extensions through a real server: HASH and the legacy digest commands (ranges, ABOR, the
//! server-wide limit), AVBL and ALLO (free space and quotas), SITE CHMOD/UTIME/SYMLINK/MKDIR/
//! RMDIR, MFF, LANG, and switches that turn commands off.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use ftpgate::Features;
use sha2::Digest;

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn hash_and_legacy_digests_match_the_file() {
    let s = TestServer::start();
    let bytes = random_bytes(3 * 1024 * 1024 + 7, 5);
    write_file(&s.path("data file.bin"), &bytes);
    let mut raw = s.raw_logged_in();
    let (code, text) = raw.cmd("HASH data file.bin");
    assert_eq!(code, 213, "{text}");
    assert_eq!(
        text.trim_end(),
        format!(
            "213 SHA-256 0-{} {} /data file.bin",
            bytes.len(),
            sha256_hex(&bytes)
        )
    );
    // A range (RANG end is inclusive), then the whole file again.
    assert_eq!(raw.code("RANG 100 1099"), 350);
    let (_, text) = raw.cmd("HASH data file.bin");
    assert_eq!(
        text.trim_end(),
        format!(
            "213 SHA-256 100-1100 {} /data file.bin",
            sha256_hex(&bytes[100..1100])
        )
    );
    assert!(
        raw.cmd("HASH data file.bin")
            .1
            .contains(&sha256_hex(&bytes))
    );
    // Other algorithms.
    assert_eq!(raw.cmd("OPTS HASH CRC32").1.trim_end(), "200 CRC32");
    let crc = format!("{:08x}", crc32fast::hash(&bytes));
    assert!(raw.cmd("HASH data file.bin").1.contains(&crc));
    assert_eq!(
        raw.cmd("XCRC \"data file.bin\"").1.trim_end(),
        format!("250 {crc}")
    );
    assert_eq!(
        raw.cmd("XSHA256 data file.bin 10 20").1.trim_end(),
        format!("250 {}", sha256_hex(&bytes[10..20]))
    );
    let md5: String = md5::Md5::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        raw.cmd("XMD5 data file.bin").1.trim_end(),
        format!("250 {md5}")
    );
    assert_eq!(raw.code("XSHA1 missing"), 550);
    assert_eq!(raw.code("HASH /"), 550, "a directory has no digest");
    // The FEAT line stars the selected algorithm.
    assert!(
        raw.cmd("FEAT")
            .1
            .contains(" HASH SHA-256;SHA-512;SHA-1;MD5;CRC32*\r\n")
    );
}

#[test]
fn a_hash_in_progress_reports_progress_and_can_be_aborted() {
    let mut options = Options::default();
    // One digest at a time server-wide: a second session waits for the permit.
    options.config.max_concurrent_hashes = 1;
    let s = TestServer::start_with(options);
    let big = vec![7u8; 512 * 1024 * 1024];
    write_file(&s.path("big"), &big);
    drop(big);
    let mut first = s.raw_logged_in();
    first.send("HASH big");
    std::thread::sleep(Duration::from_millis(50));
    let mut second = s.raw_logged_in();
    second.send("XSHA512 big");
    std::thread::sleep(Duration::from_millis(100));
    // While it runs, only ABOR, STAT, NOOP and QUIT.
    first.send("STAT");
    let (code, text) = first.reply();
    assert_eq!(code, 211, "{text}");
    assert!(text.contains("Transfer in progress"), "{text}");
    assert_eq!(second.code("NOOP"), 200);
    second.send("ABOR");
    assert_eq!(second.reply().0, 426, "the waiting digest is aborted");
    assert_eq!(second.reply().0, 226);
    first.send("ABOR");
    let (code, _) = first.reply();
    assert!(
        code == 426 || code == 213,
        "aborted (or just finished): {code}"
    );
    if code == 426 {
        assert_eq!(first.reply().0, 226);
    }
    assert_eq!(first.code("NOOP"), 200, "the session goes on");
}

#[test]
fn avbl_and_allo_tell_free_space_and_the_quota() {
    let s = TestServer::start();
    let mut raw = s.raw_logged_in();
    let (code, text) = raw.cmd("AVBL");
    assert_eq!(code, 213, "{text}");
    let free: u64 = text[4..].trim().parse().unwrap();
    assert!(free > 0);
    assert_eq!(raw.code("ALLO 1000"), 200);
    assert_eq!(raw.code(&format!("ALLO {}", u64::MAX)), 552);
    assert_eq!(raw.code("AVBL missing-dir"), 550);

    let s = TestServer::start_with(Options {
        alice_quota: Some(10_000),
        ..Options::default()
    });
    let mut raw = s.raw_logged_in();
    raw.cmd("TYPE I");
    assert_eq!(raw.upload("STOR f", &[1u8; 4_000]), 226);
    assert_eq!(
        raw.cmd("AVBL").1.trim_end(),
        "213 6000",
        "the quota's remainder"
    );
    assert_eq!(raw.code("ALLO 7000"), 552);
    assert_eq!(raw.code("ALLO 6000"), 200);
}

#[test]
fn site_commands_and_mff_change_the_files() {
    let s = TestServer::start();
    write_file(&s.path("f"), b"hello");
    std::fs::create_dir(s.path("sub")).unwrap();
    let mut raw = s.raw_logged_in();
    assert_eq!(raw.code("SITE CHMOD 600 f"), 200);
    let mode = std::fs::metadata(s.path("f")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(raw.code("SITE UTIME f 20200102030405"), 200);
    assert_eq!(raw.cmd("MDTM f").1.trim_end(), "213 20200102030405");
    assert_eq!(raw.code("SITE UTIME 20210102030405 f"), 200);
    assert_eq!(raw.cmd("MDTM f").1.trim_end(), "213 20210102030405");
    assert_eq!(
        raw.cmd("MFF modify=20220102030405;UNIX.mode=0640; f")
            .1
            .trim_end(),
        "213 Modify=20220102030405;UNIX.mode=0640; /f"
    );
    assert_eq!(raw.cmd("MDTM f").1.trim_end(), "213 20220102030405");
    let mode = std::fs::metadata(s.path("f")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    assert_eq!(raw.code("SITE MKDIR made"), 257);
    assert!(s.path("made").is_dir());
    assert_eq!(raw.code("SITE RMDIR made"), 250);
    assert!(!s.path("made").exists());
    // A link inside the root, relative, readable through FTP; dots cannot take it out.
    assert_eq!(raw.code("SITE SYMLINK f sub/link"), 200);
    assert_eq!(
        std::fs::read_link(s.path("sub/link")).unwrap().to_str(),
        Some("../f")
    );
    raw.cmd("TYPE I");
    assert_eq!(raw.download("RETR sub/link"), (226, b"hello".to_vec()));
    assert_eq!(raw.code("SITE SYMLINK ../../../../etc/passwd up"), 200);
    assert_eq!(
        std::fs::read_link(s.path("up")).unwrap().to_str(),
        Some("etc/passwd"),
        "the target is the path inside the root"
    );
    assert_eq!(
        raw.download("RETR up").0,
        550,
        "and it does not exist there"
    );
    let help = raw.cmd("SITE HELP").1;
    assert!(help.contains("CHMOD") && help.contains("SYMLINK"), "{help}");
    assert_eq!(raw.code("SITE CHMOD 999 f"), 501);
    assert_eq!(raw.code("SITE FROB"), 504);
}

#[test]
fn lang_and_feat() {
    let s = TestServer::start();
    let mut raw = s.raw();
    assert_eq!(raw.code("LANG EN"), 200);
    assert_eq!(raw.code("LANG de"), 504);
    let feat = raw.cmd("FEAT").1;
    for line in [
        " LANG EN*\r\n",
        " AVBL\r\n",
        " XCRC\r\n",
        " MFF modify;UNIX.mode;\r\n",
    ] {
        assert!(feat.contains(line), "{line:?} in {feat}");
    }
}

#[test]
fn switched_off_commands_are_refused_and_not_advertised() {
    let mut options = Options::default();
    options.config.features = Features {
        hash: false,
        mlsd: false,
        site: false,
        stat: false,
        syst: false,
        avbl: false,
        list_args: false,
        default_type: ftpgate::TransferType::Binary,
        ..Features::default()
    };
    let s = TestServer::start_with(options);
    write_file(&s.path("-la"), b"a file named like an option");
    let mut raw = s.raw_logged_in();
    for command in [
        "HASH f",
        "XCRC f",
        "MLSD",
        "SITE HELP",
        "STAT",
        "SYST",
        "AVBL",
    ] {
        assert_eq!(raw.code(command), 502, "{command}");
    }
    let feat = raw.cmd("FEAT").1;
    assert!(
        !feat.contains("HASH") && !feat.contains("AVBL") && !feat.contains("XCRC"),
        "{feat}"
    );
    // Binary by default, and LIST takes its argument as a path.
    let (code, listing) = raw.download("NLST -la");
    assert_eq!(code, 226);
    assert_eq!(String::from_utf8(listing).unwrap().trim_end(), "-la");
    assert_eq!(raw.cmd("SIZE -la").1.trim_end(), "213 27");
}

#[test]
fn embedders_get_events_for_what_users_do() {
    use ftpgate::{Direction, Event};
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = seen.clone();
    let s = TestServer::start_with(Options {
        events: Some(Arc::new(move |e: &Event| {
            sink.lock().unwrap().push(e.clone())
        })),
        ..Options::default()
    });
    let mut raw = s.raw();
    raw.code(&format!("USER {USER}"));
    assert_eq!(raw.code("PASS wrong"), 530);
    let mut raw = s.raw_logged_in();
    raw.cmd("TYPE I");
    assert_eq!(raw.upload("STOR up.bin", &[1u8; 1000]), 226);
    assert_eq!(raw.download("RETR up.bin").0, 226);
    assert_eq!(raw.code("MKD d"), 257);
    assert_eq!(raw.code("RNFR up.bin"), 350);
    assert_eq!(raw.code("RNTO d/moved.bin"), 250);
    assert_eq!(raw.code("DELE d/moved.bin"), 250);
    assert_eq!(raw.code("RMD d"), 250);
    // An aborted upload is reported as not complete.
    let addr = raw.epsv();
    let data = std::net::TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("STOR cut.bin"), 150);
    raw.send("ABOR");
    assert_eq!(raw.reply().0, 426);
    assert_eq!(raw.reply().0, 226);
    drop(data);
    assert_eq!(raw.code("QUIT"), 221);
    std::thread::sleep(Duration::from_millis(300));
    let seen = seen.lock().unwrap().clone();
    let kinds: Vec<String> = seen
        .iter()
        .map(|e| match e {
            Event::Transfer(t) => format!(
                "{:?} {} {} {} {} {} {}",
                t.direction,
                t.path,
                t.bytes,
                t.failure.unwrap_or("complete"),
                if t.ascii { "ascii" } else { "binary" },
                if t.tls { "tls" } else { "clear" },
                t.storage,
            ),
            Event::Login { user, .. } => format!("login {user}"),
            Event::LoginFailed { user, .. } => format!("failed {user}"),
            Event::LoginUnavailable { user, .. } => format!("unavailable {user}"),
            Event::Logout { user, .. } => format!("logout {user}"),
            Event::Deleted { path, .. } => format!("deleted {path}"),
            Event::Renamed { from, to, .. } => format!("renamed {from} {to}"),
            Event::MadeDir { path, .. } => format!("mkdir {path}"),
            Event::RemovedDir { path, .. } => format!("rmdir {path}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "failed alice",
            "login alice",
            "Upload /up.bin 1000 complete binary clear fs",
            "Download /up.bin 1000 complete binary clear fs",
            "mkdir /d",
            "renamed /up.bin /d/moved.bin",
            "deleted /d/moved.bin",
            "rmdir /d",
            "Upload /cut.bin 0 aborted binary clear fs",
            "logout alice",
        ]
    );
    assert!(matches!(&seen[2], Event::Transfer(t) if t.direction == Direction::Upload));
}

fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn inflate(data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn mode_z_compresses_both_ways_and_refuses_bombs() {
    let s = TestServer::start();
    assert_eq!(s.raw_logged_in().code("MODE Z"), 504, "off by default");

    let mut options = Options::default();
    options.config.features.mode_z = true;
    options.config.mode_z_max_inflated = 64 * 1024 * 1024;
    let s = TestServer::start_with(options);
    let mut raw = s.raw_logged_in();
    assert!(raw.cmd("FEAT").1.contains(" MODE Z\r\n"));
    raw.cmd("TYPE I");
    assert_eq!(raw.code("MODE Z"), 200);
    let text: Vec<u8> = (0..2_000_000u32)
        .flat_map(|i| format!("line {}\n", i % 1000).into_bytes())
        .collect();
    let compressed = deflate(&text);
    assert!(compressed.len() < text.len() / 10);
    assert_eq!(raw.upload("STOR text.txt", &compressed), 226);
    assert_eq!(std::fs::read(s.path("text.txt")).unwrap(), text);
    let (code, back) = raw.download("RETR text.txt");
    assert_eq!(code, 226);
    assert!(back.len() < text.len() / 5, "sent compressed");
    assert_eq!(inflate(&back), text);
    let (code, listing) = raw.download("NLST");
    assert_eq!(code, 226);
    let names = String::from_utf8(inflate(&listing)).unwrap();
    assert!(names.lines().any(|l| l == "text.txt"), "{names}");
    assert_eq!(raw.code("REST 10"), 504, "no resume in MODE Z");
    // A bomb: 80 MiB of zeros in well under 1 MiB, beyond the 64 MiB cap.
    let bomb = deflate(&vec![0u8; 80 * 1024 * 1024]);
    assert!(bomb.len() < 1024 * 1024);
    assert_eq!(raw.upload("STOR bomb", &bomb), 552);
    assert!(!s.path("bomb").exists(), "nothing kept");
    // A stream cut short, and garbage, are not stored either.
    assert_eq!(
        raw.upload("STOR cut", &compressed[..compressed.len() / 2]),
        426
    );
    assert!(!s.path("cut").exists());
    assert_eq!(raw.upload("STOR junk", b"this is not zlib at all"), 426);
    assert!(!s.path("junk").exists());
    assert_eq!(raw.code("MODE S"), 200);
    assert_eq!(raw.download("RETR text.txt"), (226, text));

    // Under the size cap, the ratio cap stops a bomb early.
    let mut options = Options::default();
    options.config.features.mode_z = true;
    options.config.mode_z_max_ratio = 100;
    let s = TestServer::start_with(options);
    let mut raw = s.raw_logged_in();
    raw.cmd("TYPE I");
    raw.cmd("MODE Z");
    let bomb = deflate(&vec![0u8; 16 * 1024 * 1024]);
    assert_eq!(raw.upload("STOR bomb", &bomb), 552);
    assert!(!s.path("bomb").exists());
}

#[test]
fn comb_joins_parts_and_removes_them() {
    let s = TestServer::start();
    assert_eq!(s.raw_logged_in().code("COMB a b"), 502, "off by default");
    let mut options = Options::default();
    options.config.features.comb = true;
    let s = TestServer::start_with(options);
    let parts: Vec<Vec<u8>> = (0..3)
        .map(|i| random_bytes(300_000 + i, i as u64))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        write_file(&s.path(&format!("part {i}")), part);
    }
    let mut raw = s.raw_logged_in();
    assert!(raw.cmd("FEAT").1.contains(" COMB\r\n"));
    let (code, text) = raw.cmd("COMB \"big file\" \"part 0\" \"part 1\" \"part 2\"");
    assert_eq!(code, 250, "{text}");
    assert_eq!(std::fs::read(s.path("big file")).unwrap(), parts.concat());
    for i in 0..3 {
        assert!(!s.path(&format!("part {i}")).exists(), "part {i} removed");
    }
    // The target may be the first part (appending the rest to it).
    write_file(&s.path("t"), b"head-");
    write_file(&s.path("t.2"), b"tail");
    assert_eq!(raw.code("COMB t t t.2"), 250);
    assert_eq!(std::fs::read(s.path("t")).unwrap(), b"head-tail");
    assert!(!s.path("t.2").exists());
    // A missing part changes nothing.
    write_file(&s.path("x.1"), b"x");
    assert_eq!(raw.code("COMB x x.1 x.missing"), 550);
    assert!(s.path("x.1").exists() && !s.path("x").exists());
    assert_eq!(raw.code("COMB \"unterminated"), 501);
}

#[test]
fn comb_needs_delete_on_the_parts() {
    let mut options = Options::default();
    options.config.features.comb = true;
    options.alice_permissions =
        ftpgate::core::PermissionMap::uniform(ftpgate::core::Permissions::parse("elrw").unwrap());
    let s = TestServer::start_with(options);
    write_file(&s.path("p"), b"p");
    let mut raw = s.raw_logged_in();
    assert_eq!(raw.code("COMB t p"), 550);
    assert!(!s.path("t").exists());
}

#[test]
fn host_selects_a_virtual_host_with_its_own_users_and_root() {
    use ftpgate_auth_file::{FileAuthenticator, UserEntry, hash_password};
    use std::sync::Arc;
    let other_root = tempfile::tempdir().unwrap();
    write_file(&other_root.path().join("only-on-b.txt"), b"b");
    let auth = FileAuthenticator::new(
        vec![UserEntry {
            name: "bob".into(),
            password_hash: hash_password("bobpw"),
            home: other_root.path().to_string_lossy().into_owned(),
            permissions: ftpgate::core::PermissionMap::uniform(ftpgate::core::Permissions::ALL),
            tls_required: false,
            quota_bytes: None,
            quota_files: None,
            limits: Default::default(),
        }],
        None,
    )
    .unwrap();
    let host = ftpgate::VirtualHost {
        auth: Arc::new(auth),
        storage: Arc::new(ftpgate_storage_fs::FsStorageFactory {
            durability: ftpgate_storage_fs::Durability::Normal,
            keep_partial_uploads: false,
        }),
        banner: "b.example ready".into(),
    };
    let s = TestServer::start_with(Options {
        hosts: vec![("B.Example".into(), host)],
        ..Options::default()
    });
    write_file(&s.path("only-on-default.txt"), b"a");
    // HOST chooses the host: its greeting, its users, its root.
    let mut raw = s.raw();
    assert!(raw.cmd("FEAT").1.contains(" HOST\r\n"));
    assert_eq!(
        raw.cmd("HOST b.example").1.trim_end(),
        "220 b.example ready"
    );
    raw.code("USER bob");
    assert_eq!(raw.code("PASS bobpw"), 230);
    raw.cmd("TYPE I");
    let (_, names) = raw.download("NLST");
    assert_eq!(String::from_utf8(names).unwrap(), "only-on-b.txt\r\n");
    // The default host's users are not the virtual host's.
    let mut raw = s.raw();
    assert_eq!(raw.code("HOST b.example"), 220);
    raw.code(&format!("USER {USER}"));
    assert_eq!(raw.code(&format!("PASS {PASS}")), 530);
    // Without HOST: the default host.
    let mut raw = s.raw_logged_in();
    assert_eq!(raw.code("HOST b.example"), 503, "after login");
    let (_, names) = raw.download("NLST");
    assert!(
        String::from_utf8(names)
            .unwrap()
            .contains("only-on-default.txt")
    );
    let mut raw = s.raw();
    assert_eq!(raw.code("HOST nowhere.example"), 504);
    assert_eq!(raw.code("HOST bad/name"), 501);
    raw.code(&format!("USER {USER}"));
    assert_eq!(raw.code("HOST b.example"), 503, "after USER");
    // A server without virtual hosts does not offer HOST.
    let plain = TestServer::start();
    let mut raw = plain.raw();
    assert!(!raw.cmd("FEAT").1.contains("HOST"));
    assert_eq!(raw.code("HOST b.example"), 502);
}
