//! The daemon serving Azure Blob Storage (on Azurite), and users with storage of their own:
//! one user on the shared local disk, one in an Azure container, one in an S3 bucket.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use ftpgate_core::{Storage, VirtualPath};
use ftpgate_storage_object::{NativeConfig, NativeService, ObjectStorageFactory};
use ftpgate_test_support::{azurite, garage};
use support::*;

/// The object `name` under `prefix` in Azurite's container, read through the backend.
fn blob(prefix: &str, name: &str) -> Option<Vec<u8>> {
    let a = azurite::shared();
    let factory = ObjectStorageFactory::native(NativeConfig::new(NativeService::Azure {
        endpoint: a.endpoint.clone(),
        account: a.account.clone(),
        key: Some(a.key.clone()),
        sas_token: None,
        container: a.container.clone(),
    }))
    .unwrap();
    let storage = factory.storage_at(prefix).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut reader = storage
            .read(&VirtualPath::parse_absolute(name).unwrap(), 0)
            .await
            .ok()?;
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes)
            .await
            .unwrap();
        Some(bytes)
    })
}

#[test]
fn users_are_served_from_local_disk_azure_and_s3_by_their_own_storage_sections() {
    let a = azurite::shared();
    let g = garage::shared();
    let prefix = garage::unique_prefix("daemon");
    let s3_prefix = garage::unique_prefix("peruser");
    let dir = tempfile::tempdir().unwrap();
    let local_home = dir.path().join("lena");
    std::fs::create_dir(&local_home).unwrap();
    let config = dir.path().join("ftpgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[storage]
type = "local"

[[users]]
name = "lena"
password_hash = "{lena}"
home = "{local}"

[[users]]
name = "azra"
password_hash = "{azra}"
home = "azra"
[users.storage]
type = "azure"
[users.storage.azure]
endpoint = "{endpoint}"
account = "{account}"
key = "{key}"
container = "{container}"
prefix = "{prefix}"
part_size = "1M"

[[users]]
name = "sami"
password_hash = "{sami}"
home = "s3://{bucket}/{s3_prefix}"
[users.storage]
type = "s3"
[users.storage.s3]
endpoint = "{s3_endpoint}"
region = "{region}"
bucket = "{bucket}"
access_key = "{access}"
secret_key = "{secret}"
"#,
            lena = hash("lenapw"),
            azra = hash("azrapw"),
            sami = hash("samipw"),
            local = local_home.display(),
            endpoint = a.endpoint,
            account = a.account,
            key = a.key,
            container = a.container,
            s3_endpoint = g.endpoint,
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
        &["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
    );
    // Several 1 MiB blocks: the upload streams as blocks and commits on 226.
    let big: Vec<u8> = (0..3_500_000u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(round_trip(addr, "azra", "azrapw", "big.bin", &big), big);
    assert_eq!(
        blob(&format!("{prefix}azra"), "/big.bin").as_deref(),
        Some(&big[..]),
        "the blob is in the container under the user's prefix"
    );
    assert_eq!(
        round_trip(addr, "lena", "lenapw", "local.txt", b"on disk"),
        b"on disk"
    );
    assert_eq!(
        std::fs::read(local_home.join("local.txt")).unwrap(),
        b"on disk"
    );
    assert_eq!(blob(&format!("{prefix}azra"), "/local.txt"), None);
    assert_eq!(
        round_trip(addr, "sami", "samipw", "s3.txt", b"in S3"),
        b"in S3"
    );
    // Both stores' requests are in the metrics, by backend.
    let admin = daemon
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("ftpgate: admin listener on http://"))
        .unwrap()
        .to_string();
    let page = metrics_page(&admin);
    for sample in [
        "ftpgate_storage_requests_total{backend=\"azure\",operation=\"Complete\",result=\"ok\"}",
        "ftpgate_storage_requests_total{backend=\"azure\",operation=\"GET\",result=\"ok\"}",
        "ftpgate_storage_requests_total{backend=\"s3\",operation=\"PUT\",result=\"ok\"}",
        "ftpgate_storage_request_duration_seconds_count{backend=\"azure\",operation=\"HEAD\"}",
    ] {
        let value: f64 = page
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {sample} in\n{page}"));
        assert!(value >= 1.0, "{sample} {value}");
    }
    assert!(daemon.terminate().success());
}

/// `/metrics` of the admin listener at `addr` (no token configured).
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
fn a_native_store_refuses_partial_upload_keeping_and_missing_credentials_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ftpgate.toml");
    let check = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let out = std::process::Command::new(BIN)
            .args(["check-config", config.to_str().unwrap()])
            .env_remove("AZURE_STORAGE_KEY")
            .env_remove("AZURE_STORAGE_SAS_TOKEN")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let no_key = check(
        "[storage]\ntype = \"azure\"\n[storage.azure]\naccount = \"acct\"\ncontainer = \"c\"\n",
    );
    assert!(
        no_key.contains("storage.azure: credentials missing"),
        "{no_key}"
    );
    let keep = check(
        "[storage]\ntype = \"azure\"\nkeep_partial_uploads = true\n[storage.azure]\naccount = \"acct\"\nkey = \"a2V5\"\ncontainer = \"c\"\n",
    );
    assert!(keep.contains("keep_partial_uploads"), "{keep}");
    let missing = check("[storage]\ntype = \"gcs\"\n");
    assert!(missing.contains("[storage.gcs]"), "{missing}");
}
