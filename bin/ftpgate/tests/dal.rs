//! The daemon serving a WebDAV server (`rclone serve webdav`, started per test) through
//! `[storage] type = "webdav"`: a 200 MiB transfer each way with the daemon's memory bounded,
//! a listing of 1,000 entries, and an interrupted upload that leaves nothing visible; and
//! `type = "opendal"` with OpenDAL's `fs` service.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use ftpgate_test_support::webdav::{self, WebdavServer};
use support::*;

/// A config serving `server` to user "dav" (password "pw"), every home the server's root.
fn config(dir: &Path, server: &WebdavServer) -> String {
    let path = dir.join("ftpgate.toml");
    std::fs::write(
        &path,
        format!(
            r#"[storage]
type = "webdav"

[storage.webdav]
endpoint = "{endpoint}"
username = "{user}"
password = "{pass}"

[[users]]
name = "dav"
password_hash = "{hash}"
home = "/"
"#,
            endpoint = server.endpoint,
            user = server.username,
            pass = server.password,
            hash = hash("pw"),
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

struct Ftp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    addr: SocketAddr,
}

impl Ftp {
    fn login(addr: SocketAddr) -> Ftp {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut ftp = Ftp {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            addr,
        };
        assert!(ftp.ask("").starts_with("220"));
        ftp.ask("USER dav");
        let reply = ftp.ask("PASS pw");
        assert!(reply.starts_with("230"), "{reply}");
        assert!(ftp.ask("TYPE I").starts_with("200"));
        ftp
    }

    /// Sends `cmd` (if not empty) and reads one reply (the last line of a multi-line one).
    fn ask(&mut self, cmd: &str) -> String {
        if !cmd.is_empty() {
            self.writer
                .write_all(format!("{cmd}\r\n").as_bytes())
                .unwrap();
        }
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return line;
        }
        let end = format!("{} ", &line[..3]);
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line.starts_with(&end) {
                return line;
            }
        }
    }

    fn data(&mut self) -> TcpStream {
        let reply = self.ask("EPSV");
        let port: u16 = reply
            .split("|||")
            .nth(1)
            .and_then(|r| r.split('|').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("EPSV: {reply}"));
        TcpStream::connect((self.addr.ip(), port)).unwrap()
    }

    fn names(&mut self, dir: &str) -> Vec<String> {
        let mut data = self.data();
        let reply = self.ask(&format!("NLST {dir}"));
        assert!(reply.starts_with("150"), "{reply}");
        let mut text = String::new();
        data.read_to_string(&mut text).unwrap();
        assert!(self.ask("").starts_with("226"));
        text.lines()
            .map(|l| l.rsplit('/').next().unwrap().to_string())
            .collect()
    }
}

/// `VmRSS` or `VmHWM` of process `pid`, in bytes.
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} missing"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// A checksum that does not depend on how the bytes are split: (sum, position-weighted sum).
#[derive(Default, PartialEq, Eq, Debug)]
struct Sum {
    len: u64,
    plain: u64,
    weighted: u64,
}

impl Sum {
    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.len += 1;
            self.plain = self.plain.wrapping_add(u64::from(b));
            self.weighted = self
                .weighted
                .wrapping_add(self.len.wrapping_mul(u64::from(b)));
        }
    }
}

#[test]
fn a_200_mib_file_streams_both_ways_in_bounded_memory() {
    const MIB: usize = 1 << 20;
    const SIZE_MIB: usize = 200;
    let server = webdav::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &server);
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &["--config", &config, "--listen", "127.0.0.1:0"],
        &[],
    );
    let pid = daemon.child.id();
    let mut ftp = Ftp::login(addr);
    assert!(ftp.names("/").is_empty());
    let before = memory(pid, "VmRSS");

    let mut sent = Sum::default();
    let mut data = ftp.data();
    assert!(ftp.ask("STOR big.bin").starts_with("150"));
    let mut chunk = vec![0u8; MIB];
    for n in 0..SIZE_MIB {
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = (i.wrapping_mul(7) ^ n) as u8;
        }
        sent.add(&chunk);
        data.write_all(&chunk).unwrap();
    }
    drop(data);
    let reply = ftp.ask("");
    assert!(reply.starts_with("226"), "{reply}");
    let on_disk = std::fs::metadata(server.dir().join("big.bin")).unwrap();
    assert_eq!(on_disk.len(), (SIZE_MIB * MIB) as u64);

    let mut data = ftp.data();
    assert!(ftp.ask("RETR big.bin").starts_with("150"));
    let mut got = Sum::default();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = data.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.add(&buf[..n]);
    }
    assert!(ftp.ask("").starts_with("226"));
    assert_eq!(got, sent, "the download is the upload");

    let peak = memory(pid, "VmHWM");
    let growth = peak.saturating_sub(before);
    eprintln!(
        "daemon RSS before {} MiB, peak {} MiB, growth {} MiB for {SIZE_MIB} MiB each way",
        before >> 20,
        peak >> 20,
        growth >> 20
    );
    assert!(
        growth < 100 * MIB as u64,
        "the daemon grew by {} MiB moving {SIZE_MIB} MiB",
        growth >> 20
    );
    assert!(daemon.terminate().success());
}

#[test]
fn a_directory_of_1000_entries_lists_whole() {
    let server = webdav::start();
    // Made before the server is first asked about it (rclone caches directory listings).
    std::fs::create_dir(server.dir().join("many")).unwrap();
    for i in 0..1000 {
        std::fs::write(server.dir().join(format!("many/file-{i:04}")), [b'x'; 3]).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &server);
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &["--config", &config, "--listen", "127.0.0.1:0"],
        &[],
    );
    let mut ftp = Ftp::login(addr);
    let mut names = ftp.names("/many");
    names.sort();
    let expected: Vec<String> = (0..1000).map(|i| format!("file-{i:04}")).collect();
    assert_eq!(names, expected);
    // MLSD gives sizes and times from PROPFIND.
    let mut data = ftp.data();
    assert!(ftp.ask("MLSD /many").starts_with("150"));
    let mut text = String::new();
    data.read_to_string(&mut text).unwrap();
    assert!(ftp.ask("").starts_with("226"));
    assert_eq!(text.lines().count(), 1000);
    let first = text.lines().find(|l| l.ends_with(" file-0000")).unwrap();
    assert!(first.contains("size=3;"), "{first}");
    assert!(first.contains("modify="), "{first}");
    assert!(daemon.terminate().success());
}

#[test]
fn an_interrupted_upload_leaves_nothing_visible() {
    let server = webdav::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &server);
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &["--config", &config, "--listen", "127.0.0.1:0"],
        &[],
    );
    let mut ftp = Ftp::login(addr);
    // A file that exists keeps its content when its replacement is cut short.
    let mut data = ftp.data();
    assert!(ftp.ask("STOR kept.txt").starts_with("150"));
    data.write_all(b"the old content").unwrap();
    drop(data);
    assert!(ftp.ask("").starts_with("226"));

    for name in ["cut.bin", "kept.txt"] {
        let mut data = ftp.data();
        assert!(ftp.ask(&format!("STOR {name}")).starts_with("150"));
        data.write_all(&vec![1u8; 6 << 20]).unwrap();
        // ABOR while the data connection is still open: the upload is given up.
        let reply = ftp.ask("ABOR");
        assert!(
            reply.starts_with("426") || reply.starts_with("226"),
            "{reply}"
        );
        if reply.starts_with("426") {
            assert!(ftp.ask("").starts_with("226"));
        }
        drop(data);
    }
    let names = ftp.names("/");
    assert_eq!(names, ["kept.txt"], "the cut upload is not listed");
    let mut data = ftp.data();
    assert!(ftp.ask("RETR kept.txt").starts_with("150"));
    let mut text = String::new();
    data.read_to_string(&mut text).unwrap();
    assert!(ftp.ask("").starts_with("226"));
    assert_eq!(text, "the old content");

    // Nor left on the server: the temporary file is deleted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut files: Vec<String> = std::fs::read_dir(server.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        if files == ["kept.txt"] {
            break;
        }
        assert!(Instant::now() < deadline, "left on the server: {files:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(daemon.terminate().success());
}

#[test]
fn an_opendal_fs_directory_is_served() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("files")).unwrap();
    let path = dir.path().join("ftpgate.toml");
    std::fs::write(
        &path,
        format!(
            "[storage]\ntype = \"opendal\"\n\n[storage.opendal]\nscheme = \"fs\"\noptions = {{ root = \"files\" }}\n\n[[users]]\nname = \"dav\"\npassword_hash = \"{}\"\nhome = \"/\"\n",
            hash("pw")
        ),
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &["--config", config, "--listen", "127.0.0.1:0"],
        &[],
    );
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 249) as u8).collect();
    assert_eq!(round_trip(addr, "dav", "pw", "f.bin", &bytes), bytes);
    assert_eq!(
        std::fs::read(dir.path().join("files/f.bin")).unwrap(),
        bytes,
        "the root is taken from the config file's folder"
    );
    let mut ftp = Ftp::login(addr);
    assert!(ftp.ask("MKD sub").starts_with("257"));
    assert!(ftp.ask("RNFR f.bin").starts_with("350"));
    assert!(ftp.ask("RNTO sub/g.bin").starts_with("250"));
    assert_eq!(ftp.names("/sub"), ["g.bin"]);
    assert!(daemon.terminate().success());
}
