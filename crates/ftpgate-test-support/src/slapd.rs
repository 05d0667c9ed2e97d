//! A real LDAP server for tests: Debian's `slapd` on a loopback port, with the minimal
//! configuration in `slapd/slapd.conf.in` (one mdb database for `dc=example,dc=org` in a
//! temporary directory) and the entries of `slapd/base.ldif` (`ou=people`, `ou=groups` and a
//! service account `cn=ftp-service,dc=example,dc=org` with password `service-pw`). It is not
//! the system's slapd service: no debconf, no `/etc/ldap/slapd.d`, nothing outside its
//! directory. Killed and deleted when the [`Slapd`] is dropped (a watchdog process does it if
//! the test binary dies first).
//!
//! ```no_run
//! let mut ldap = ftpgate_test_support::slapd::start();
//! ldap.add(&ftpgate_test_support::slapd::user_ldif("ann", "ann-pw", Some("/srv/ann")));
//! // ... point a client at ldap.url; ldap.stop() and ldap.restart() for outages.
//! # let _ = ldap;
//! ```
//!
//! `slapd` is looked for in `$FTPGATE_SLAPD_BIN`, then `/usr/sbin/slapd`, then on `PATH`;
//! `ldapadd` on `PATH` (`apt-get install slapd ldap-utils`; `scripts/test.sh` installs them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::garage::{Watchdog, free_ports, port_open};

/// The configuration template (shared with the end-to-end tests).
pub const CONFIG_TEMPLATE: &str = include_str!("../slapd/slapd.conf.in");
/// The entries every server starts with.
pub const BASE_LDIF: &str = include_str!("../slapd/base.ldif");
/// The suffix of the one database.
pub const BASE_DN: &str = "dc=example,dc=org";
/// Where users are added by [`user_ldif`].
pub const PEOPLE_DN: &str = "ou=people,dc=example,dc=org";
/// Where groups are added by [`group_ldif`].
pub const GROUPS_DN: &str = "ou=groups,dc=example,dc=org";
/// The read-only service account of `base.ldif`.
pub const SERVICE_DN: &str = "cn=ftp-service,dc=example,dc=org";
/// Its password.
pub const SERVICE_PASSWORD: &str = "service-pw";
/// The database's root DN (may write).
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";

/// A running (or stopped, see [`Slapd::stop`]) slapd.
#[derive(Debug)]
pub struct Slapd {
    /// `ldap://127.0.0.1:PORT`.
    pub url: String,
    /// `ldaps://127.0.0.1:PORT`, when started with a certificate.
    pub ldaps_url: Option<String>,
    /// The root DN's password.
    pub admin_password: String,
    port: u16,
    tls_port: Option<u16>,
    child: Option<Child>,
    watchdog: Option<Watchdog>,
    dir: TempDir,
}

/// A certificate and key (PEM) for slapd's TLS (StartTLS on `url`, and `ldaps_url`).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate chain, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("FTPGATE_SLAPD_BIN") {
        return PathBuf::from(bin);
    }
    let debian = Path::new("/usr/sbin/slapd");
    if debian.is_file() {
        return debian.to_path_buf();
    }
    PathBuf::from("slapd")
}

/// Whether slapd and ldapadd can be run here.
pub fn available() -> bool {
    let runs = |program: &Path, arg: &str| {
        Command::new(program)
            .arg(arg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    runs(&binary(), "-VV") && runs(Path::new("ldapadd"), "-VV")
}

/// Starts a server on a free loopback port with the base entries.
///
/// # Panics
///
/// If slapd or ldapadd is missing, or the server does not answer within 30 seconds.
pub fn start() -> Slapd {
    start_with(None)
}

/// Starts a server that also speaks TLS with `tls` (StartTLS on `url`, and `ldaps_url`).
///
/// # Panics
///
/// As [`start`].
pub fn start_with_tls(tls: &TlsFiles) -> Slapd {
    start_with(Some(tls))
}

fn start_with(tls: Option<&TlsFiles>) -> Slapd {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir(dir.path().join("data")).expect("the data directory");
    let admin_password = crate::garage::random_hex(8);
    let tls_lines = match tls {
        Some(files) => {
            let cert = dir.path().join("server.crt");
            let key = dir.path().join("server.key");
            std::fs::write(&cert, &files.cert_pem).expect("write the certificate");
            std::fs::write(&key, &files.key_pem).expect("write the key");
            format!(
                "TLSCertificateFile {}\nTLSCertificateKeyFile {}",
                cert.display(),
                key.display()
            )
        }
        None => String::new(),
    };
    let config = CONFIG_TEMPLATE
        .replace("@DIR@", &dir.path().display().to_string())
        .replace("@ADMIN_PASSWORD@", &admin_password)
        .replace("@TLS@", &tls_lines);
    std::fs::write(dir.path().join("slapd.conf"), config).expect("write slapd.conf");
    let ports = free_ports(2).expect("free ports");
    let mut slapd = Slapd {
        url: format!("ldap://127.0.0.1:{}", ports[0]),
        ldaps_url: tls.map(|_| format!("ldaps://127.0.0.1:{}", ports[1])),
        admin_password,
        port: ports[0],
        tls_port: tls.map(|_| ports[1]),
        child: None,
        watchdog: None,
        dir,
    };
    slapd.restart();
    slapd.add(BASE_LDIF);
    slapd
}

impl Slapd {
    /// The server's directory (its configuration and database).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What slapd has logged since it was last started: connections and operations
    /// (`conn=1001 op=0 BIND dn="..." method=128`, ...).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// Adds entries (LDIF) as the root DN, with `ldapadd`.
    ///
    /// # Panics
    ///
    /// If ldapadd fails.
    pub fn add(&self, ldif: &str) {
        let file = self.dir.path().join("add.ldif");
        std::fs::write(&file, ldif).expect("write the LDIF");
        let out = Command::new("ldapadd")
            .args([
                "-x",
                "-H",
                &self.url,
                "-D",
                ADMIN_DN,
                "-w",
                &self.admin_password,
                "-f",
            ])
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run ldapadd (apt-get install ldap-utils)");
        assert!(
            out.status.success(),
            "ldapadd failed: {}\n{ldif}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kills the server (its data stays; [`restart`](Self::restart) brings it back on the
    /// same port).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Killed before it is reaped, so the watchdog cannot hit a reused process id.
            let _ = child.kill();
            // The watchdog is killed, not told to act: it would delete the data as well.
            if let Some(mut watchdog) = self.watchdog.take() {
                let _ = watchdog.child.kill();
                let _ = watchdog.child.wait();
            }
            let _ = child.wait();
        }
    }

    /// Starts the server again (after [`stop`](Self::stop)) and waits until it answers.
    ///
    /// # Panics
    ///
    /// If it does not answer within 30 seconds.
    pub fn restart(&mut self) {
        self.stop();
        let mut urls = self.url.clone() + "/";
        if let Some(port) = self.tls_port {
            urls.push_str(&format!(" ldaps://127.0.0.1:{port}/"));
        }
        let log = std::fs::File::create(self.dir.path().join("slapd.log")).expect("slapd.log");
        let mut child = Command::new(binary())
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .args(["-h", &urls])
            // -d keeps it in the foreground (so it is our child); 256: connections and
            // operations, in slapd.log (read when it fails to start).
            .args(["-d", "256"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("slapd.log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} ({e})", binary().display()));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if port_open(self.port) && self.tls_port.is_none_or(port_open) {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(self.dir.path().join("slapd.log"));
                let log = log.unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                panic!("slapd exited ({status}): {}", tail.join("\n"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("slapd did not listen within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.watchdog = Watchdog::start(child.id(), self.dir.path()).ok();
        self.child = Some(child);
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An `inetOrgPerson` + `posixAccount` entry `uid=NAME,ou=people,...` with a clear-text
/// password (slapd checks it on bind) and, if given, a `homeDirectory` (posixAccount requires
/// one: `/nonexistent` otherwise).
pub fn user_ldif(uid: &str, password: &str, home: Option<&str>) -> String {
    format!(
        "dn: uid={},{PEOPLE_DN}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
         uid: {uid}\ncn: {uid}\nsn: {uid}\nuidNumber: 10000\ngidNumber: 10000\n\
         homeDirectory: {}\nuserPassword: {password}\n\n",
        dn_value(uid),
        home.unwrap_or("/nonexistent")
    )
}

/// An attribute value escaped for a DN (RFC 4514: `\\`, `,`, `+`, `"`, `<`, `>`, `;`, `=`).
fn dn_value(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '+' | '"' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `groupOfNames` `cn=NAME,ou=groups,...` whose members are the users `uids`.
pub fn group_ldif(cn: &str, uids: &[&str]) -> String {
    let mut out = format!("dn: cn={cn},{GROUPS_DN}\nobjectClass: groupOfNames\ncn: {cn}\n");
    for uid in uids {
        out.push_str(&format!("member: uid={},{PEOPLE_DN}\n", dn_value(uid)));
    }
    out.push('\n');
    out
}
