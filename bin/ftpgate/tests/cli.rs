//! The `ftpgate` binary as a user runs it: quick start, config checking, password hashing,
//! signals.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::Digest;
use support::*;

#[test]
fn quick_start_serves_data_with_a_printed_password_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, addr) = Daemon::start(dir.path(), &["--listen", "127.0.0.1:0"], &[]);
    assert!(dir.path().join("data").is_dir(), "./data is created");
    let password = daemon
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("ftpgate: password for \"ftpgate\": "))
        .unwrap_or_else(|| panic!("no password printed: {:?}", daemon.lines))
        .to_string();
    assert!(password.len() >= 12);
    assert!(login(addr, "ftpgate", &password).starts_with("230"));
    assert!(login(addr, "ftpgate", "wrong").starts_with("530"));
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn quick_start_flags_and_password_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("served");
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--root",
            root.to_str().unwrap(),
            "--user",
            "bob",
            "--passive-ports",
            "40000-40100",
        ],
        &[("FTPGATE_PASSWORD", "from-env")],
    );
    assert!(root.is_dir());
    assert!(
        !daemon.lines.iter().any(|l| l.contains("from-env")),
        "a given password is not printed"
    );
    assert!(login(addr, "bob", "from-env").starts_with("230"));
    assert!(daemon.terminate().success());
}

#[test]
fn config_file_users_with_listen_override() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let hash = Command::new(BIN)
        .args(["hash-password", "--password", "cfg-pass"])
        .output()
        .unwrap();
    assert!(hash.status.success());
    let hash = String::from_utf8(hash.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let config = dir.path().join("ftpgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:1\"]\n\n[[users]]\nname = \"carol\"\npassword_hash = \"{hash}\"\nhome = \"{}\"\npermissions = \"elr\"\n",
            home.display()
        ),
    )
    .unwrap();
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
    assert!(
        !daemon.lines.iter().any(|l| l.contains("password for")),
        "no quick-start user: {:?}",
        daemon.lines
    );
    assert!(login(addr, "carol", "cfg-pass").starts_with("230"));
    assert!(login(addr, "ftpgate", "").starts_with("530"));
    assert!(daemon.terminate().success());
}

#[test]
fn hash_password_reads_standard_input() {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .env_remove("FTPGATE_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"typed secret\n")
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(out.trim().starts_with("$argon2id$"));
}

#[test]
fn check_config_accepts_the_example_and_names_bad_keys() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/examples/ftpgate.toml"
    );
    let ok = Command::new(BIN)
        .args(["check-config", example])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[server]\nlisten = [\"127.0.0.1:21\"]\nlisten_typo = 1\n",
            "listen_typo",
        ),
        (
            "[server]\npassive_ports = \"100-50\"\n",
            "server.passive_ports",
        ),
        (
            "[[users]]\nname = \"a\"\npassword_hash = \"plain\"\nhome = \"/tmp\"\n",
            "users[0].password_hash",
        ),
        ("[server]\nmax_connections = \"many\"\n", "max_connections"),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = Command::new(BIN)
            .args(["check-config", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{key} not named in {stderr}");
    }
}

#[test]
fn help_documents_every_flag() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--config",
        "--root",
        "--listen",
        "--user",
        "--password",
        "--passive-ports",
        "--public-host",
        "FTPGATE_PASSWORD",
    ] {
        assert!(help.contains(flag), "{flag} missing from serve --help");
    }
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in ["serve", "check-config", "hash-password"] {
        assert!(help.contains(cmd), "{cmd} missing from --help");
    }
}

fn write_self_signed(
    dir: &std::path::Path,
    tag: &str,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.join(format!("{tag}.crt"));
    let key = dir.join(format!("{tag}.key"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    (cert, key, generated.cert.der().to_vec())
}

/// Connects with AUTH TLS, accepting any certificate, and returns the certificate the server
/// presented and the TLS control stream (logged in).
fn tls_login(
    addr: SocketAddr,
    password: &str,
) -> (
    Vec<u8>,
    rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
) {
    #[derive(Debug)]
    struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(tcp.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    tcp.write_all(b"AUTH TLS\r\n").unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("234"), "{line}");
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    for (cmd, expected) in [
        ("USER ftpgate", "331"),
        (&*format!("PASS {password}"), "230"),
    ] {
        tls.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let reply = read_tls_line(&mut tls);
        assert!(reply.starts_with(expected), "{cmd}: {reply}");
    }
    let presented = tls.conn.peer_certificates().unwrap()[0].to_vec();
    (presented, tls)
}

fn read_tls_line(tls: &mut impl Read) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        if tls.read(&mut byte).unwrap() == 0 {
            break;
        }
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

#[test]
fn tls_certificate_is_reloaded_on_sighup_without_dropping_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, first) = write_self_signed(dir.path(), "first");
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--password",
            "pw",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        daemon.lines.iter().any(|l| l.contains("fingerprint")),
        "{:?}",
        daemon.lines
    );
    let (presented, mut old_session) = tls_login(addr, "pw");
    assert_eq!(presented, first);
    // Replace the files and send SIGHUP.
    let (new_cert, new_key, second) = write_self_signed(dir.path(), "second");
    std::fs::rename(new_cert, &cert).unwrap();
    std::fs::rename(new_key, &key).unwrap();
    assert!(
        Command::new("kill")
            .arg("-HUP")
            .arg(daemon.child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (presented, _) = tls_login(addr, "pw");
        if presented == second {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new certificate not served after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The session that started before the reload goes on.
    old_session.write_all(b"NOOP\r\n").unwrap();
    assert!(read_tls_line(&mut old_session).starts_with("200"));
    assert!(daemon.terminate().success());
}

#[test]
fn self_signed_quick_start_prints_the_served_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--password",
            "pw",
            "--tls-self-signed",
        ],
        &[],
    );
    let printed = daemon
        .lines
        .iter()
        .find_map(|l| l.split("SHA-256 fingerprint: ").nth(1))
        .unwrap_or_else(|| panic!("{:?}", daemon.lines))
        .to_string();
    let (presented, _) = tls_login(addr, "pw");
    let digest: String = sha2::Sha256::digest(&presented)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(printed, digest);
    assert!(daemon.terminate().success());
}

#[test]
fn virtual_hosts_and_feature_switches_from_the_config_file() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let (home_a, home_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&home_a).unwrap();
    std::fs::create_dir_all(&home_b).unwrap();
    std::fs::write(home_b.join("on-b.txt"), b"b").unwrap();
    let hash = |pw: &str| {
        let out = std::process::Command::new(BIN)
            .args(["hash-password", "--password", pw])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let config = dir.path().join("ftpgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[features]
mode_z = true
comb = true
syst = false

[[users]]
name = "amy"
password_hash = "{amy}"
home = "{a}"

[[hosts]]
name = "b.example"
banner = "Welcome to b"

[[hosts.users]]
name = "ben"
password_hash = "{ben}"
home = "{b}"
"#,
            amy = hash("amypw"),
            ben = hash("benpw"),
            a = home_a.display(),
            b = home_b.display(),
        ),
    )
    .unwrap();
    let (daemon, addr) = Daemon::start_checked(
        dir.path(),
        config.to_str().unwrap(),
        &["--listen", "127.0.0.1:0"],
    );
    let stream = std::net::TcpStream::connect(addr).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("220"), "{greeting}");
    let mut writer = stream;
    let mut ask = |cmd: &str| {
        writer.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let mut all = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            all.push_str(&line);
            if line.len() >= 4 && line.as_bytes()[3] == b' ' {
                return all;
            }
        }
    };
    let feat = ask("FEAT");
    assert!(
        feat.contains(" HOST\r\n") && feat.contains(" MODE Z\r\n") && feat.contains(" COMB\r\n"),
        "{feat}"
    );
    assert!(ask("SYST").starts_with("502"));
    assert_eq!(ask("HOST b.example").trim_end(), "220 Welcome to b");
    ask("USER ben");
    assert!(ask("PASS benpw").starts_with("230"));
    assert!(ask("TYPE I").starts_with("200"));
    assert_eq!(ask("SIZE on-b.txt").trim_end(), "213 1");
    assert!(login(addr, "amy", "amypw").starts_with("230"));
    assert!(
        login(addr, "ben", "benpw").starts_with("530"),
        "ben lives on b.example only"
    );
    assert!(daemon.terminate().success());
}
