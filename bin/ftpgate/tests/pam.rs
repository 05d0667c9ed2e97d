//! `[[auth]] type = "pam"` against the machine's real PAM: the test makes a system user
//! (useradd, chpasswd) and a PAM service file of its own (pam_unix for auth and account),
//! then logs in through the daemon: the right password (and a file uploaded and read back),
//! a wrong one (530, counted towards the ban), a locked and an expired account (530), an
//! unknown user (the next `[[auth]]` entry decides), the optional cache, and limits the entry
//! gives every user (`max_sessions`, `disabled`). Needs root (pam_unix reads /etc/shadow):
//! skipped otherwise, unless FTPGATE_REQUIRE_PAM is set (as scripts/test.sh does).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use support::*;

/// A system user and a PAM service made for one test, removed when dropped.
struct Account {
    name: String,
    home: std::path::PathBuf,
    service: String,
}

impl Account {
    fn make(password: &str) -> Account {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "{}{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let name = format!("ftpgt{tag}");
        run("useradd", &["-m", "-s", "/usr/sbin/nologin", &name]);
        let account = Account {
            home: std::path::PathBuf::from(format!("/home/{name}")),
            service: format!("ftpgate-test-{tag}"),
            name,
        };
        account.set_password(password);
        std::fs::write(
            format!("/etc/pam.d/{}", account.service),
            "auth required pam_unix.so\naccount required pam_unix.so\n",
        )
        .unwrap();
        account
    }

    fn set_password(&self, password: &str) {
        use std::io::Write;
        let mut child = Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        write!(child.stdin.take().unwrap(), "{}:{password}", self.name).unwrap();
        assert!(child.wait().unwrap().success(), "chpasswd");
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/etc/pam.d/{}", self.service));
        let _ = Command::new("userdel").args(["-r", &self.name]).output();
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the test can run: root is needed to make users and read /etc/shadow.
fn can_run() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("FTPGATE_REQUIRE_PAM").is_none(),
        "FTPGATE_REQUIRE_PAM is set but the tests do not run as root"
    );
    eprintln!("skipped: PAM tests need root (useradd, /etc/pam.d, /etc/shadow)");
    false
}

/// A config: the PAM entry (with `pam` settings), then `[[users]]` holding `amy` (password
/// `amypw`).
fn config(dir: &std::path::Path, service: &str, server: &str, pam: &str) -> std::path::PathBuf {
    let amy_home = dir.join("amy");
    std::fs::create_dir_all(&amy_home).unwrap();
    let path = dir.join("ftpgate.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
listen = ["127.0.0.1:0"]
{server}

[[auth]]
type = "pam"
service = "{service}"
{pam}

[[auth]]
type = "file"

[[users]]
name = "amy"
password_hash = "{hash}"
home = "{amy}"
"#,
            hash = hash("amypw"),
            amy = amy_home.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn pam_accounts_log_in_and_refusals_are_rejections() {
    if !can_run() {
        return;
    }
    let account = Account::make("Right-pw-1");
    let locked = Account::make("Locked-pw-2");
    let expired = Account::make("Expired-pw-3");
    let dir = tempfile::tempdir().unwrap();
    // Bans are off here: refused logins are still counted and delayed (checked below).
    let path = config(dir.path(), &account.service, "ban_after_failures = 0", "");
    let (daemon, addr) = Daemon::start(dir.path(), &["-c", path.to_str().unwrap()], &[]);

    // The right password: logged in to the account's home, a file goes up and comes back.
    let mut client = Client::login(addr, &account.name, "Right-pw-1");
    assert!(client.ask("PWD").starts_with("257 \"/\""));
    assert!(client.ask("TYPE I").starts_with("200"));
    let reply = client.upload("STOR hello.txt", b"through PAM\n");
    assert!(reply.starts_with("226"), "{reply}");
    assert_eq!(
        std::fs::read(account.home.join("hello.txt")).unwrap(),
        b"through PAM\n"
    );
    let (reply, bytes) = client.download("RETR hello.txt");
    assert!(reply.starts_with("226"), "{reply}");
    assert_eq!(bytes, b"through PAM\n");
    client.ask("QUIT");

    // A wrong password: 530.
    let mut client = Client::connect(addr);
    let reply = client.try_login(&account.name, "Wrong-pw");
    assert!(reply.starts_with("530"), "{reply}");

    // An empty password is refused without asking PAM.
    let mut client = Client::connect(addr);
    assert!(
        client
            .ask(&format!("USER {}", account.name))
            .starts_with("331")
    );
    let reply = client.ask("PASS");
    assert!(reply.starts_with("530"), "{reply}");

    // Locked (usermod -L): the right password no longer logs in.
    let reply = Client::connect(addr).try_login(&locked.name, "Locked-pw-2");
    assert!(reply.starts_with("230"), "before locking: {reply}");
    run("usermod", &["-L", &locked.name]);
    let reply = Client::connect(addr).try_login(&locked.name, "Locked-pw-2");
    assert!(reply.starts_with("530"), "locked: {reply}");

    // Expired (pam_acct_mgmt refuses it): 530 as well.
    run("usermod", &["-e", "1970-01-02", &expired.name]);
    let reply = Client::connect(addr).try_login(&expired.name, "Expired-pw-3");
    assert!(reply.starts_with("530"), "expired: {reply}");

    // Unknown to PAM: the next entry decides (amy is a [[users]] user), and a name nobody
    // knows is refused.
    let reply = Client::connect(addr).try_login("amy", "amypw");
    assert!(reply.starts_with("230"), "{reply}");
    let reply = Client::connect(addr).try_login("ftpgt-nobody-here", "x");
    assert!(reply.starts_with("530"), "{reply}");

    daemon.terminate();
    let log = std::fs::read_to_string(dir.path().join("ftpgate.log")).unwrap();
    assert!(
        log.contains("PAM refused the login") && log.contains("account"),
        "the expired account's refusal is logged with PAM's reason: {log}"
    );
}

#[test]
fn the_cache_remembers_logins_and_wrong_passwords_count_towards_the_ban() {
    if !can_run() {
        return;
    }
    let account = Account::make("Right-pw-4");
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        dir.path(),
        &account.service,
        "ban_after_failures = 2\nlogin_failure_delay_ms = 10",
        "cache_secs = 300",
    );
    let (daemon, addr) = Daemon::start(dir.path(), &["-c", path.to_str().unwrap()], &[]);
    // With a cache, an accepted login is remembered: locking the account takes effect when
    // the entry expires (without one, at once: the test above).
    let reply = Client::connect(addr).try_login(&account.name, "Right-pw-4");
    assert!(reply.starts_with("230"), "{reply}");
    run("usermod", &["-L", &account.name]);
    let reply = Client::connect(addr).try_login(&account.name, "Right-pw-4");
    assert!(reply.starts_with("230"), "cached: {reply}");
    // A wrong password is never served from the cache.
    let reply = Client::connect(addr).try_login(&account.name, "Wrong-1");
    assert!(reply.starts_with("530"), "{reply}");
    let mut client = Client::connect(addr);
    let reply = client.try_login(&account.name, "Wrong-2");
    assert!(reply.starts_with("530"), "{reply}");
    // The second failure banned the address: it says so and closes.
    let closing = client.reply();
    assert!(closing.starts_with("421"), "{closing}");
    // A new connection from the address is refused before any password is asked.
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut greeting = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stream), &mut greeting).unwrap();
    assert!(greeting.starts_with("421"), "{greeting}");
    daemon.terminate();
}

#[test]
fn the_entrys_limits_hold_for_every_pam_user() {
    if !can_run() {
        return;
    }
    let first = Account::make("First-pw-7");
    let second = Account::make("Second-pw-8");
    // Both accounts log in through the first one's service (the same pam_unix rules).
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        dir.path(),
        &first.service,
        "ban_after_failures = 0",
        "max_sessions = 1",
    );
    let (daemon, addr) = Daemon::start(dir.path(), &["-c", path.to_str().unwrap()], &[]);

    // max_sessions = 1 from the entry: a second session of the same account is refused
    // while the first lasts; another account has its own count.
    let held = Client::login(addr, &first.name, "First-pw-7");
    let reply = Client::connect(addr).try_login(&first.name, "First-pw-7");
    assert!(reply.starts_with("530"), "second session: {reply}");
    let other = Client::login(addr, &second.name, "Second-pw-8");
    // The [[users]] after the entry keep their own (no) limits.
    let amy = Client::login(addr, "amy", "amypw");
    drop((held, other, amy));
    daemon.terminate();
    let log = std::fs::read_to_string(dir.path().join("ftpgate.log")).unwrap();
    assert!(
        log.contains("the user has its most sessions already"),
        "{log}"
    );

    // disabled = true on the entry: PAM accepts the password, the login is still refused.
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        dir.path(),
        &first.service,
        "ban_after_failures = 0",
        "disabled = true",
    );
    let (daemon, addr) = Daemon::start(dir.path(), &["-c", path.to_str().unwrap()], &[]);
    let reply = Client::connect(addr).try_login(&first.name, "First-pw-7");
    assert!(reply.starts_with("530"), "disabled: {reply}");
    let reply = Client::connect(addr).try_login("amy", "amypw");
    assert!(reply.starts_with("230"), "{reply}");
    daemon.terminate();
    let log = std::fs::read_to_string(dir.path().join("ftpgate.log")).unwrap();
    assert!(log.contains("the account is disabled"), "{log}");
}
