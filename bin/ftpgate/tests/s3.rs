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
    let check = std::process::Command::new(BIN)
        .args(["check-config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
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
