//! The Garage harness starts a working server, and stops it when dropped.

use std::net::TcpStream;
use std::path::PathBuf;

use ftpgate_test_support::garage;

fn port_of(endpoint: &str) -> u16 {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {endpoint}"))
}

#[test]
fn starts_configures_and_stops() {
    let server = garage::start();
    assert!(server.endpoint.starts_with("http://127.0.0.1:"));
    assert_eq!(server.region, "garage");
    assert_eq!(server.bucket, "ftpgate");
    assert!(server.access_key.starts_with("GK"), "{}", server.access_key);
    assert_eq!(server.secret_key.len(), 64, "{}", server.secret_key);

    // The key may read, write and own the bucket.
    let info = server.cli(["bucket", "info", "ftpgate"]);
    assert!(info.contains(&server.access_key), "{info}");
    assert!(info.contains("RWO"), "{info}");

    // More buckets, with the key allowed.
    server.create_bucket("second");
    let info = server.cli(["bucket", "info", "second"]);
    assert!(info.contains(&server.access_key), "{info}");
    let buckets = server.cli(["bucket", "list"]);
    assert!(
        buckets.contains("ftpgate") && buckets.contains("second"),
        "{buckets}"
    );
    assert!(server.try_cli(["bucket", "info", "nonexistent"]).is_err());

    let port = port_of(&server.endpoint);
    let dir: PathBuf = server
        .config_path()
        .parent()
        .expect("the config is in the server's directory")
        .to_path_buf();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(server);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server still listens after drop"
    );
    assert!(!dir.exists(), "{} is left after drop", dir.display());
}

#[test]
fn shared_server_is_started_once() {
    let a = garage::shared();
    let b = garage::shared();
    assert!(std::ptr::eq(a, b));
    assert!(a.cli(["status"]).contains("HEALTHY NODES"));
}
