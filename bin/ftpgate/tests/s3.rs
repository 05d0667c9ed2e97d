//! The daemon serving a bucket: the `--root s3://` quick start with credentials from the
//! standard environment variables, and `[storage] type = "s3"` in the config file.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use ftpgate_core::{Storage, VirtualPath};
use ftpgate_storage_object::{ObjectStorageFactory, S3Config};
use ftpgate_test_support::garage;
use support::*;

fn object(key_prefix: &str, name: &str) -> Vec<u8> {
    let g = garage::shared();
    let config = S3Config::new(
        g.endpoint.parse().unwrap(),
        &g.region,
        &g.bucket,
        &g.access_key,
        &g.secret_key,
    );
    let storage = ObjectStorageFactory::s3(config)
        .unwrap()
        .storage_at(key_prefix)
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut reader = storage
            .read(&VirtualPath::parse_absolute(name).unwrap(), 0)
            .await
            .unwrap();
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes)
            .await
            .unwrap();
        bytes
    })
}

#[test]
fn quick_start_serves_a_bucket_prefix() {
    let g = garage::shared();
    let prefix = garage::unique_prefix("quick");
    let dir = tempfile::tempdir().unwrap();
    let root = format!("s3://{}/{}", g.bucket, prefix);
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--password",
            "pw",
            "--root",
            &root,
            "--s3-endpoint",
            &g.endpoint,
            "--s3-region",
            &g.region,
        ],
        &[
            ("AWS_ACCESS_KEY_ID", &g.access_key),
            ("AWS_SECRET_ACCESS_KEY", &g.secret_key),
        ],
    );
    assert!(
        !dir.path().join("data").exists(),
        "no local directory is made for an s3:// root"
    );
    let bytes: Vec<u8> = (0..7_000_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(round_trip(addr, "ftpgate", "pw", "big.bin", &bytes), bytes);
    assert_eq!(
        object(&prefix, "/big.bin"),
        bytes,
        "the object is in the bucket under the prefix"
    );
    assert!(daemon.terminate().success());
}

#[test]
fn config_file_puts_every_home_in_the_bucket() {
    let g = garage::shared();
    let prefix = garage::unique_prefix("config");
    let dir = tempfile::tempdir().unwrap();
    let hash = std::process::Command::new(BIN)
        .args(["hash-password", "--password", "s3pass"])
        .output()
        .unwrap();
    let hash = String::from_utf8(hash.stdout).unwrap().trim().to_string();
    let config = dir.path().join("ftpgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[storage]
type = "s3"
[storage.s3]
endpoint = "{endpoint}"
region = "{region}"
bucket = "{bucket}"
prefix = "{prefix}"
access_key = "{access}"
secret_key = "{secret}"
part_size = "5M"

[[users]]
name = "dana"
password_hash = "{hash}"
home = "dana"
"#,
            endpoint = g.endpoint,
            region = g.region,
            bucket = g.bucket,
            access = g.access_key,
            secret = g.secret_key,
        ),
    )
    .unwrap();
    let (daemon, addr) = Daemon::start_checked(
        dir.path(),
        config.to_str().unwrap(),
        &["--listen", "127.0.0.1:0"],
    );
    assert_eq!(
        round_trip(addr, "dana", "s3pass", "note.txt", b"in the bucket"),
        b"in the bucket"
    );
    assert_eq!(
        object(&format!("{prefix}dana"), "/note.txt"),
        b"in the bucket"
    );
    assert!(daemon.terminate().success());
}

/// `/metrics` of the admin listener at `addr`.
fn metrics_page(addr: &str) -> String {
    use std::io::{Read, Write};
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

#[test]
fn the_stores_requests_are_counted_in_the_metrics() {
    let g = garage::shared();
    let prefix = garage::unique_prefix("metrics");
    let dir = tempfile::tempdir().unwrap();
    let root = format!("s3://{}/{}", g.bucket, prefix);
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--password",
            "pw",
            "--root",
            &root,
            "--s3-endpoint",
            &g.endpoint,
            "--s3-region",
            &g.region,
        ],
        &[
            ("AWS_ACCESS_KEY_ID", &g.access_key),
            ("AWS_SECRET_ACCESS_KEY", &g.secret_key),
        ],
    );
    let admin = daemon
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("ftpgate: admin listener on http://"))
        .unwrap()
        .to_string();
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(round_trip(addr, "ftpgate", "pw", "m.bin", &bytes), bytes);
    let page = metrics_page(&admin);
    let value = |key: &str| -> f64 {
        page.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in\n{page}"))
    };
    // The upload (one part: a PUT), the download (a GET) and the HEADs around them.
    let ok = |op: &str| {
        value(&format!(
            "ftpgate_storage_requests_total{{backend=\"s3\",operation=\"{op}\",result=\"ok\"}}"
        ))
    };
    assert!(ok("PUT") >= 1.0, "{page}");
    assert!(ok("GET") >= 1.0, "{page}");
    assert!(
        value("ftpgate_storage_request_duration_seconds_count{backend=\"s3\",operation=\"GET\"}")
            >= 1.0
    );
    assert!(daemon.terminate().success());
}
