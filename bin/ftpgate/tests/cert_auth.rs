//! `[[auth]] type = "certificate"` end to end: a CA and client certificates made with rcgen,
//! the daemon verifying them against `tls.client_ca`, and curl logging in with them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

struct Ca {
    cert: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        cert,
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// A client certificate for `cn` signed by `ca`, written as `NAME.pem` and `NAME.key`.
fn client(dir: &Path, ca: &Ca, cn: &str, file: &str) -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    let digest = <sha2::Sha256 as sha2::Digest>::digest(cert.der());
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `curl` listing the home over explicit FTPS as `user` with the certificate `file`; its exit
/// code and output.
fn curl(dir: &Path, addr: std::net::SocketAddr, user: &str, file: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "20",
        "--ssl-reqd",
        "-k",
        "--user",
        user,
        "-l",
    ])
    .current_dir(dir);
    if let Some(file) = file {
        cmd.args([
            "--cert",
            &format!("{file}.pem"),
            "--key",
            &format!("{file}.key"),
        ]);
    }
    cmd.arg(format!("ftp://{addr}/"));
    let out = cmd.output().expect("curl is installed (scripts/test.sh)");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_mapped_certificate_logs_in_without_a_password_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let trusted = ca("ftpgate test CA");
    let stranger = ca("some other CA");
    std::fs::write(d.join("ca.pem"), trusted.cert.pem()).unwrap();
    client(d, &trusted, "alice", "alice");
    let dave_print = client(d, &trusted, "not-a-user-name", "dave");
    client(d, &trusted, "mallory", "mallory");
    client(d, &stranger, "alice", "forged");
    for home in ["alice", "dave"] {
        std::fs::create_dir_all(d.join("homes").join(home)).unwrap();
        std::fs::write(d.join("homes").join(home).join(format!("{home}.txt")), "x").unwrap();
    }
    let config = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]

[tls]
self_signed = true
client_ca = "ca.pem"

[[auth]]
type = "certificate"
map = "cn"
home_template = "{homes}/{{user}}"
permissions = "elr"

[[auth]]
type = "certificate"
map = {{ "{dave_print}" = "dave" }}
home_template = "{homes}/{{user}}"
"#,
        homes = d.join("homes").display(),
    );
    std::fs::write(d.join("ftpgate.toml"), config).unwrap();
    let (_daemon, addr) = Daemon::start_checked(d, "ftpgate.toml", &[]);

    // The common name is the user: no password needed.
    let (code, out) = curl(d, addr, "alice:", Some("alice"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("alice.txt"), "{out}");
    // The fingerprint table names dave, whatever the certificate's common name.
    let (code, out) = curl(d, addr, "dave:", Some("dave"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("dave.txt"), "{out}");
    // alice's certificate does not make its holder bob, nor dave.
    let (code, out) = curl(d, addr, "dave:", Some("alice"));
    assert_eq!(code, 67, "login denied: {out}");
    // mallory's certificate is good, but the home the template gives does not exist: 530.
    let (code, out) = curl(d, addr, "mallory:", Some("mallory"));
    assert_eq!(code, 67, "login denied: {out}");
    // No certificate: nobody.
    let (code, out) = curl(d, addr, "alice:", None);
    assert_eq!(code, 67, "login denied: {out}");
    // A certificate from another CA does not get through the TLS handshake.
    let (code, out) = curl(d, addr, "alice:", Some("forged"));
    assert_ne!(code, 0, "{out}");
    assert!(!out.contains("alice.txt"), "{out}");
}
