//! `ftpgate import cos-ftp`: COS FTP Server's vsftpd.conf turned into a config that
//! `check-config` accepts, bad input refused by line with no file written, and an imported
//! config served against a real S3 server (Garage, standing in for COS's S3-compatible API)
//! with the imported users logging in with their original passwords.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;

use ftpgate_test_support::garage;
use support::*;

const EXAMPLE: &str = "[COS_ACCOUNT]
cos_secretid = XXXXXX
cos_secretkey = XXXXXX
cos_bucket = mybucket-125888888888
cos_region = ap-guangzhou
cos_user_home_dir = /home/cos_ftp/data
[FTP_ACCOUNT]
login_users = user1:pass1:RW;user2:pass2:RW
[NETWORK]
masquerade_address = 203.0.113.7
listen_port = 2121
passive_ports = 60000,65535
[FILE_OPTION]
single_file_max_size = 21474836480
[OPTIONAL]
min_part_size       = default
upload_thread_num   = default
max_connection_num  = 512
max_list_file       = 10000
log_level           = INFO
log_dir             = log
";

fn ftpgate(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TENCENTCLOUD_SECRET_ID")
        .env_remove("TENCENTCLOUD_SECRET_KEY")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Imports `ini` (written to DIR/vsftpd.conf) into DIR/ftpgate.toml and checks the result with
/// `check-config`; returns the TOML.
fn import_and_check(dir: &std::path::Path, ini: &str, extra: &[&str]) -> String {
    let input = dir.join("vsftpd.conf");
    let output = dir.join("ftpgate.toml");
    std::fs::write(&input, ini).unwrap();
    let mut args = vec![
        "import",
        "cos-ftp",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = ftpgate(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let check = ftpgate(&["check-config", output.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains("OK"),
        "{}",
        text(&check.stdout)
    );
    std::fs::read_to_string(output).unwrap()
}

#[test]
fn the_example_imports_to_a_config_that_checks() {
    let dir = tempfile::tempdir().unwrap();
    let toml = import_and_check(dir.path(), EXAMPLE, &[]);
    for expected in [
        "type = \"cos\"",
        "endpoint = \"https://cos.ap-guangzhou.myqcloud.com\"",
        "bucket = \"mybucket-125888888888\"",
        "passive_ports = \"60000-65535\"",
        "public_host = \"203.0.113.7\"",
        "max_file_size = 21474836480",
        "max_connections = 512",
        "level = \"info\"",
        "# [log] file = \"log/ftpgate.log\"",
        "TENCENTCLOUD_SECRET_ID",
        "permissions = \"elradfmwMT\"",
    ] {
        assert!(toml.contains(expected), "{expected} missing from:\n{toml}");
    }
    // The same on standard output.
    let out = ftpgate(&[
        "import",
        "cos-ftp",
        dir.path().join("vsftpd.conf").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("[[users]]\nname = \"user2\""));
}

#[test]
fn read_only_users_defaults_and_unlimited_connections() {
    let dir = tempfile::tempdir().unwrap();
    let ini = EXAMPLE
        .replace("user2:pass2:RW", "user2:pass2:R")
        .replace("max_connection_num  = 512", "max_connection_num = 0")
        .replace(
            "single_file_max_size = 21474836480",
            "single_file_max_size = default",
        )
        .replace("upload_thread_num   = default", "upload_thread_num = 8")
        .replace("min_part_size       = default", "min_part_size = 524288");
    let toml = import_and_check(dir.path(), &ini, &[]);
    assert!(toml.contains("name = \"user2\""), "{toml}");
    assert!(
        toml.contains("permissions = \"elr\"   # R"),
        "R user is read-only:\n{toml}"
    );
    assert!(toml.contains("max_connections = 100000"), "{toml}");
    assert!(
        !toml.contains("max_file_size ="),
        "default keeps ftpgate's:\n{toml}"
    );
    assert!(toml.contains("parts_in_flight = 8"), "{toml}");
    assert!(
        toml.contains("part_size = 1048576"),
        "raised to COS's 1 MiB:\n{toml}"
    );
}

#[test]
fn a_bad_line_is_reported_by_number_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("vsftpd.conf");
    let output = dir.path().join("ftpgate.toml");
    std::fs::write(
        &input,
        EXAMPLE.replace(
            "listen_port = 2121",
            "listen_port = 2121\nthis is not a key line",
        ),
    )
    .unwrap();
    let out = ftpgate(&[
        "import",
        "cos-ftp",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("line 12:"), "{stderr}");
    assert!(stderr.contains("this is not a key line"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "nothing printed: {}",
        text(&out.stdout)
    );
    assert!(!output.exists(), "no output file on error");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left either"
    );

    // An unknown key too, with its line.
    std::fs::write(&input, EXAMPLE.replace("log_dir ", "log_dirr ")).unwrap();
    let out = ftpgate(&["import", "cos-ftp", input.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("line 21: [OPTIONAL] log_dirr: unknown key"),
        "{}",
        text(&out.stderr)
    );
}

/// A raw control connection.
struct Ftp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    addr: SocketAddr,
}

impl Ftp {
    fn login(addr: SocketAddr, user: &str, pass: &str) -> (Ftp, String) {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut ftp = Ftp {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            addr,
        };
        assert!(ftp.ask("").starts_with("220"));
        ftp.ask(&format!("USER {user}"));
        let reply = ftp.ask(&format!("PASS {pass}"));
        (ftp, reply)
    }

    fn ask(&mut self, cmd: &str) -> String {
        if !cmd.is_empty() {
            self.writer
                .write_all(format!("{cmd}\r\n").as_bytes())
                .unwrap();
        }
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line
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
}

#[test]
fn an_imported_config_serves_the_bucket_to_the_imported_users() {
    let g = garage::shared();
    let bucket = "mybucket-125888888888";
    g.create_bucket(bucket);
    let ini = EXAMPLE
        .replace(
            "cos_secretid = XXXXXX",
            &format!("cos_secretid = {}", g.access_key),
        )
        .replace(
            "cos_secretkey = XXXXXX",
            &format!("cos_secretkey = {}", g.secret_key),
        )
        .replace(
            "cos_region = ap-guangzhou",
            &format!("cos_region = {}", g.region),
        )
        .replace("user2:pass2:RW", "reader:read:pw:R")
        .replace(
            "masquerade_address = 203.0.113.7",
            "masquerade_address = 127.0.0.1",
        )
        .replace("min_part_size       = default", "min_part_size = 5242880");
    let dir = tempfile::tempdir().unwrap();
    let toml = import_and_check(dir.path(), &ini, &["--s3-endpoint", &g.endpoint]);
    assert!(toml.contains("type = \"s3\""), "{toml}");
    let config = dir.path().join("ftpgate.toml");
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );

    // The RW user writes (a file of several parts), with the password of the old server.
    let bytes: Vec<u8> = (0..12_000_000u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(
        round_trip(addr, "user1", "pass1", "moved.bin", &bytes),
        bytes
    );
    assert!(login(addr, "user1", "wrong").starts_with("530"));

    // The R user (a password with a colon) reads it, and is refused a STOR.
    let (mut ftp, reply) = Ftp::login(addr, "reader", "read:pw");
    assert!(reply.starts_with("230"), "{reply}");
    ftp.ask("TYPE I");
    let mut data = ftp.data();
    assert!(ftp.ask("RETR moved.bin").starts_with("150"));
    let mut back = Vec::new();
    data.read_to_end(&mut back).unwrap();
    assert!(ftp.ask("").starts_with("226"));
    assert_eq!(back.len(), bytes.len());
    let _data = ftp.data();
    let reply = ftp.ask("STOR refused.bin");
    assert!(reply.starts_with("550"), "a read-only user's STOR: {reply}");
    let mut list = ftp.data();
    assert!(ftp.ask("NLST").starts_with("150"));
    let mut names = String::new();
    list.read_to_string(&mut names).unwrap();
    assert!(ftp.ask("").starts_with("226"));
    assert_eq!(names.trim(), "moved.bin", "the refused upload left nothing");
    assert!(daemon.terminate().success());
}
