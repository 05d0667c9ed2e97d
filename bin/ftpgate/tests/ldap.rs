//! `[[auth]] type = "ldap"` in the daemon, against a real slapd (started per test by
//! `ftpgate_test_support::slapd`, seeded with ldapadd): logins by uid, rejections, a read-only
//! group, names with filter metacharacters, and an outage (421, never a ban) and recovery.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::path::Path;

use ftpgate_test_support::slapd::{self, BASE_DN, SERVICE_DN, SERVICE_PASSWORD, Slapd};
use support::*;

/// The users: ann (in ftp-rw), ro (in ftp-ro), `st*r` and `a)(b\c` (in no group).
fn directory() -> Slapd {
    let ldap = slapd::start();
    let mut ldif = String::new();
    for (name, password) in [
        ("ann", "ann-pw"),
        ("ro", "ro-pw"),
        ("st*r", "star-pw"),
        ("a)(b\\c", "odd-pw"),
    ] {
        ldif.push_str(&slapd::user_ldif(name, password, None));
    }
    ldif.push_str(&slapd::group_ldif("ftp-ro", &["ro"]));
    ldif.push_str(&slapd::group_ldif("ftp-rw", &["ann"]));
    ldap.add(&ldif);
    ldap
}

/// A config with the LDAP entry then the file users (one: "local"); homes under `dir/homes`.
fn config(dir: &Path, ldap: &Slapd) -> String {
    let homes = dir.join("homes");
    for name in ["ann", "ro", "st*r", "a)(b\\c", "local"] {
        std::fs::create_dir_all(homes.join(name)).unwrap();
    }
    std::fs::write(homes.join("ro").join("readme.txt"), b"read me\n").unwrap();
    let text = format!(
        r#"
[server]
ban_after_failures = 3
login_failure_delay_ms = 50

[[auth]]
type = "ldap"
url = "{url}"
bind_dn = "{SERVICE_DN}"
bind_password = "{SERVICE_PASSWORD}"
base_dn = "{BASE_DN}"
home_template = "{homes}/{{user}}"
permissions = "el"
group_permissions = {{ "cn=ftp-ro,ou=groups,dc=example,dc=org" = "elr", "cn=ftp-rw,ou=groups,dc=example,dc=org" = "elradfmw" }}
timeout_secs = 2
connect_timeout_secs = 2
cache_secs = 0

[[auth]]
type = "file"

[[users]]
name = "local"
password_hash = "{hash}"
home = "{homes}/local"
"#,
        url = ldap.url,
        homes = homes.display(),
        hash = hash("local-pw"),
    );
    let path = dir.join("ftpgate.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn ldap_users_log_in_with_their_groups_permissions() {
    let ldap = directory();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &ldap);
    let (daemon, addr) = Daemon::start_checked(dir.path(), &config, &["--listen", "127.0.0.1:0"]);

    // ann (ftp-rw): uploads and reads back, into her home from the template.
    let back = round_trip(addr, "ann", "ann-pw", "up.bin", b"through LDAP");
    assert_eq!(back, b"through LDAP");
    assert_eq!(
        std::fs::read(dir.path().join("homes/ann/up.bin")).unwrap(),
        b"through LDAP"
    );

    // The directory ignores case: "ANN" is ann, with her home.
    let back = round_trip(addr, "ANN", "ann-pw", "upper.bin", b"same user");
    assert_eq!(back, b"same user");
    assert!(dir.path().join("homes/ann/upper.bin").is_file());

    // ro (ftp-ro): lists and downloads; an upload is refused with 550 and stores nothing.
    let mut ro = Client::login(addr, "ro", "ro-pw");
    let (reply, listing) = ro.download("NLST");
    assert!(reply.starts_with("226"), "{reply}");
    assert!(String::from_utf8_lossy(&listing).contains("readme.txt"));
    assert!(ro.ask("TYPE I").starts_with("200"));
    let (reply, bytes) = ro.download("RETR readme.txt");
    assert!(reply.starts_with("226"), "{reply}");
    assert_eq!(bytes, b"read me\n");
    let reply = ro.ask("STOR new.txt");
    assert!(reply.starts_with("550"), "{reply}");
    assert!(!dir.path().join("homes/ro/new.txt").exists());

    // A name with filter metacharacters logs in as itself.
    assert!(login(addr, "st*r", "star-pw").starts_with("230"));

    // A name LDAP does not know goes on to [[users]].
    assert!(login(addr, "local", "local-pw").starts_with("230"));

    // Rejections: wrong password, unknown user (the file users after LDAP do not know it
    // either), an empty password. They count: the third bans the address (unlike an outage,
    // see below).
    assert!(login(addr, "ann", "wrong").starts_with("530"));
    assert!(login(addr, "nobody", "x").starts_with("530"));
    assert!(login(addr, "ann", "").starts_with("530"));
    let mut banned = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(std::net::TcpStream::connect(addr).unwrap()),
        &mut banned,
    )
    .unwrap();
    assert!(banned.starts_with("421 Too many failed logins"), "{banned}");
    assert!(daemon.terminate().success());
}

#[test]
fn metacharacter_names_match_nobody_else() {
    let ldap = directory();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &ldap);
    // No bans in the way of the attempts below.
    let config_text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("ban_after_failures = 3", "ban_after_failures = 0");
    std::fs::write(&config, config_text).unwrap();
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &["--config", &config, "--listen", "127.0.0.1:0"],
        &[],
    );
    for name in [
        "*",
        "a*",
        "*)(uid=*",
        "ann)(|(uid=*",
        "a)(b\\",
        "\\",
        ")(",
        "st*",
    ] {
        let reply = login(addr, name, "ann-pw");
        assert!(reply.starts_with("530"), "{name:?}: {reply}");
    }
    assert!(login(addr, "a)(b\\c", "odd-pw").starts_with("230"));
    assert!(login(addr, "a)(b\\c", "ann-pw").starts_with("530"));
    assert!(daemon.terminate().success());
}

#[test]
fn a_stopped_directory_gets_421_never_a_ban_and_logins_resume_when_it_returns() {
    let mut ldap = directory();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &ldap);
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &["--config", &config, "--listen", "127.0.0.1:0"],
        &[],
    );
    // The pool holds a service-bound connection.
    assert!(login(addr, "ann", "ann-pw").starts_with("230"));

    ldap.stop();
    // Twice the ban threshold (3), right and wrong passwords alike: all 421, none counted.
    for attempt in 0..6 {
        let password = if attempt % 2 == 0 { "ann-pw" } else { "wrong" };
        let reply = login(addr, "ann", password);
        assert!(reply.starts_with("421"), "attempt {attempt}: {reply}");
    }
    // The chain stops at LDAP (no fallthrough configured): the file user is told 421 too.
    assert!(login(addr, "local", "local-pw").starts_with("421"));

    ldap.restart();
    // Same address, at once: no ban, no delay to wait out.
    assert!(login(addr, "ann", "ann-pw").starts_with("230"));
    assert!(login(addr, "ro", "ro-pw").starts_with("230"));
    assert!(login(addr, "ann", "wrong").starts_with("530"));
    assert!(daemon.terminate().success());
}

#[test]
fn ldaps_and_starttls_with_a_private_ca_file_next_to_the_config() {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(params, ca_key);
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = server.signed_by(&key, &issuer).unwrap();
    let ldap = slapd::start_with_tls(&slapd::TlsFiles {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    });
    ldap.add(&slapd::user_ldif("ann", "ann-pw", None));

    for (url, starttls) in [
        (ldap.ldaps_url.clone().unwrap(), false),
        (ldap.url.clone(), true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("homes/ann")).unwrap();
        // A relative ca_file is taken from the config file's folder.
        std::fs::write(dir.path().join("ldap-ca.pem"), ca_cert.pem()).unwrap();
        let config = dir.path().join("ftpgate.toml");
        std::fs::write(
            &config,
            format!(
                "[[auth]]\ntype = \"ldap\"\nurl = \"{url}\"\nstarttls = {starttls}\n\
                 ca_file = \"ldap-ca.pem\"\nbase_dn = \"{BASE_DN}\"\n\
                 home_template = \"{}/homes/{{user}}\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let config = config.to_str().unwrap();
        // Started from another folder, so a path taken from the working directory would fail.
        let elsewhere = tempfile::tempdir().unwrap();
        let (daemon, addr) = Daemon::start(
            elsewhere.path(),
            &["--config", config, "--listen", "127.0.0.1:0"],
            &[],
        );
        assert!(login(addr, "ann", "ann-pw").starts_with("230"), "{url}");
        assert!(login(addr, "ann", "nope").starts_with("530"), "{url}");
        assert!(daemon.terminate().success());
    }
}

/// `user_ldif` with extra attribute lines (`attr: value\n`...).
fn user_with(uid: &str, password: &str, extra: &str) -> String {
    let mut ldif = slapd::user_ldif(uid, password, None).trim_end().to_string();
    for line in extra.lines() {
        ldif.push('\n');
        ldif.push_str(line);
    }
    ldif.push_str("\n\n");
    ldif
}

#[test]
fn limits_come_from_the_entry_defaults_and_the_users_attributes() {
    let ldap = slapd::start();
    let mut ldif = String::new();
    // solo: employeeNumber 1 (its own max_sessions); duo: none (the entry's default, 2);
    // away: roomNumber (its allowed networks) leaves out the loopback; broken: a session
    // count that is no number.
    ldif.push_str(&user_with("solo", "pw", "employeeNumber: 1"));
    ldif.push_str(&user_with("duo", "pw", ""));
    ldif.push_str(&user_with(
        "away",
        "pw",
        "roomNumber: 192.0.2.0/24\nroomNumber: 10.0.0.0/8",
    ));
    ldif.push_str(&user_with("near", "pw", "roomNumber: 127.0.0.0/8"));
    ldif.push_str(&user_with("broken", "pw", "employeeNumber: many"));
    ldap.add(&ldif);
    let dir = tempfile::tempdir().unwrap();
    let homes = dir.path().join("homes");
    for name in ["solo", "duo", "away", "near", "broken"] {
        std::fs::create_dir_all(homes.join(name)).unwrap();
    }
    let config = dir.path().join("ftpgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
ban_after_failures = 0
login_failure_delay_ms = 0

[[auth]]
type = "ldap"
url = "{url}"
bind_dn = "{SERVICE_DN}"
bind_password = "{SERVICE_PASSWORD}"
base_dn = "{BASE_DN}"
home_template = "{homes}/{{user}}"
cache_secs = 0
max_sessions = 2
max_sessions_attribute = "employeeNumber"
allowed_networks_attribute = "roomNumber"
"#,
            url = ldap.url,
            homes = homes.display(),
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &["--config", config, "--listen", "127.0.0.1:0"],
        &[],
    );

    // solo's attribute: one session; a second is refused while the first lasts.
    let first = Client::login(addr, "solo", "pw");
    let second = login(addr, "solo", "pw");
    assert!(second.starts_with("530"), "{second}");
    drop(first);

    // duo has no attribute: the entry's max_sessions = 2 holds.
    let a = Client::login(addr, "duo", "pw");
    let b = Client::login(addr, "duo", "pw");
    let third = login(addr, "duo", "pw");
    assert!(third.starts_with("530"), "{third}");
    drop((a, b));

    // Networks from a multi-valued attribute: away is kept out, near is let in.
    let away = login(addr, "away", "pw");
    assert!(away.starts_with("530"), "{away}");
    assert!(login(addr, "near", "pw").starts_with("230"));

    // A bad value is no unlimited user: the login is unavailable (421) and logged.
    let broken = login(addr, "broken", "pw");
    assert!(broken.starts_with("421"), "{broken}");
    assert!(daemon.terminate().success());
}
