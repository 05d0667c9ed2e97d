//! A real Azure Blob Storage server for tests: [Azurite](https://github.com/Azure/Azurite),
//! Microsoft's emulator (`npm install -g azurite`), with the well-known development account and
//! one container.
//!
//! [`shared`] starts one server per test binary on first use; it is stopped when the test
//! binary exits, even if it is killed, by a small watchdog process. Tests keep to their own
//! prefix ([`crate::garage::unique_prefix`]).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::{Read as _, Write as _};
use tempfile::TempDir;

use crate::garage::{Watchdog, free_ports, port_open};

/// The emulator's development account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// Its well-known key (published in Azurite's documentation).
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The container every server starts with.
pub const CONTAINER: &str = "ftpgate";

/// A running Azurite blob server.
#[derive(Debug)]
pub struct Azurite {
    /// The blob endpoint, `http://127.0.0.1:PORT/devstoreaccount1`.
    pub endpoint: String,
    /// The account name.
    pub account: String,
    /// The account key.
    pub key: String,
    /// A container the account owns.
    pub container: String,
    _watchdog: Watchdog,
    _dir: TempDir,
}

/// Where `azurite-blob` is: `$FTPGATE_AZURITE_BIN`, else on `PATH`, else in npm's global
/// prefix (`/usr/local/bin`, `/usr/bin`).
pub fn find_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("FTPGATE_AZURITE_BIN") {
        let bin = PathBuf::from(bin);
        return bin.is_file().then_some(bin);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/local/bin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("azurite-blob"))
        .find(|bin| bin.is_file())
}

/// The server shared by every test of this test binary, started on first use.
///
/// # Panics
///
/// If Azurite is not installed or does not come up within 60 seconds.
pub fn shared() -> &'static Azurite {
    static SHARED: OnceLock<Result<Azurite, String>> = OnceLock::new();
    match SHARED.get_or_init(try_start) {
        Ok(azurite) => azurite,
        Err(message) => panic!("{message}"),
    }
}

/// Starts a server, or says why it could not.
pub fn try_start() -> Result<Azurite, String> {
    let binary = find_binary().ok_or_else(|| {
        "the `azurite-blob` program (Azure Blob Storage emulator) is needed by this test but \
         was not found; install it with `npm install -g azurite`"
            .to_string()
    })?;
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let port = free_ports(1)?[0];
    let log = dir.path().join("azurite.log");
    let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut server = Command::new(&binary)
        .args([
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
        ])
        .args(["--inMemoryPersistence", "--blobHost", "127.0.0.1"])
        .arg("--blobPort")
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let watchdog = Watchdog::start(server.id(), dir.path())
        .map_err(|e| format!("cannot start the watchdog: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !port_open(port) {
        if Instant::now() > deadline || !matches!(server.try_wait(), Ok(None)) {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "Azurite did not start (or not within 60 s); its log:\n{log}"
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
    create_container(port, CONTAINER)?;
    Ok(Azurite {
        endpoint: format!("http://127.0.0.1:{port}/{ACCOUNT}"),
        account: ACCOUNT.to_string(),
        key: KEY.to_string(),
        container: CONTAINER.to_string(),
        _watchdog: watchdog,
        _dir: dir,
    })
}

/// Create Container, signed with the account key (Shared Key authorization).
fn create_container(port: u16, container: &str) -> Result<(), String> {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
         /{ACCOUNT}/{ACCOUNT}/{container}\nrestype:container"
    );
    let key = STANDARD.decode(KEY).map_err(|e| e.to_string())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(to_sign.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    let request = format!(
        "PUT /{ACCOUNT}/{container}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         x-ms-date: {date}\r\nx-ms-version: {version}\r\n\
         Authorization: SharedKey {ACCOUNT}:{signature}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("Azurite: {e}"))?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("Azurite: {e}"))?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.split_whitespace().nth(1).unwrap_or("");
    if status == "201" || status == "409" {
        Ok(())
    } else {
        Err(format!("Azurite refused to create a container: {response}"))
    }
}
