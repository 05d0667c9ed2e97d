//! The builder: a server made in a few lines serves, and each wrong setting is named.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Cursor;
use std::net::SocketAddr;
use std::path::Path;

use ftpgate::{CancellationToken, Server, UserSpec};
use suppaftp::FtpStream;
use suppaftp::types::FileType;

/// Serves `builder` on a runtime of its own thread; returns the address and the token that
/// stops it.
fn start(
    builder: ftpgate::Builder,
) -> (SocketAddr, CancellationToken, std::thread::JoinHandle<()>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let bound = runtime.block_on(builder.bind()).unwrap();
    let addr = bound.local_addrs()[0];
    let token = CancellationToken::new();
    let stop = token.clone();
    let thread = std::thread::spawn(move || runtime.block_on(bound.run(stop)));
    (addr, token, thread)
}

fn login(addr: SocketAddr, user: &str, pass: &str) -> FtpStream {
    let mut ftp = FtpStream::connect(addr).unwrap();
    ftp.login(user, pass).unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    ftp
}

fn error_of(builder: ftpgate::Builder) -> String {
    match builder.build() {
        Ok(_) => panic!("the builder accepted a wrong setting"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_root_and_a_user_serve_files_with_permissions_and_homes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let builder = Server::with_root(&root)
        .user("demo", "secret")
        .add_user(UserSpec::new("reader", "pw").permissions("elr"))
        .add_user(UserSpec::new("alice", "pw2").home("alice"))
        .listen("127.0.0.1:0")
        .greeting("hello from the builder");
    let (addr, token, thread) = start(builder);

    let mut ftp = FtpStream::connect(addr).unwrap();
    assert!(
        ftp.get_welcome_msg()
            .unwrap()
            .contains("hello from the builder")
    );
    assert!(ftp.login("demo", "wrong").is_err());
    ftp.login("demo", "secret").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    ftp.put_file("a.txt", &mut Cursor::new(b"one two".to_vec()))
        .unwrap();
    assert_eq!(std::fs::read(root.join("a.txt")).unwrap(), b"one two");
    assert_eq!(
        ftp.retr_as_buffer("a.txt").unwrap().into_inner(),
        b"one two"
    );
    ftp.quit().unwrap();

    let mut reader = login(addr, "reader", "pw");
    assert_eq!(
        reader.retr_as_buffer("a.txt").unwrap().into_inner(),
        b"one two"
    );
    let refused = reader.put_file("b.txt", &mut Cursor::new(b"x".to_vec()));
    assert!(
        matches!(refused, Err(suppaftp::FtpError::UnexpectedResponse(ref r)) if r.status.code() == 550),
        "{refused:?}"
    );
    assert!(!root.join("b.txt").exists());

    let mut alice = login(addr, "alice", "pw2");
    alice
        .put_file("mine.txt", &mut Cursor::new(b"hers".to_vec()))
        .unwrap();
    assert_eq!(std::fs::read(root.join("alice/mine.txt")).unwrap(), b"hers");
    assert!(
        alice.retr_as_buffer("a.txt").is_err(),
        "alice's home is her own"
    );

    token.cancel();
    thread.join().unwrap();
}

#[test]
fn a_password_hash_logs_in_like_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let hash = ftpgate::auth_file::hash_password("hashed pw");
    let builder = Server::with_root(dir.path())
        .add_user(UserSpec::with_hash("h", hash))
        .listen("127.0.0.1:0");
    let (addr, token, thread) = start(builder);
    let mut ftp = login(addr, "h", "hashed pw");
    ftp.quit().unwrap();
    token.cancel();
    thread.join().unwrap();
}

#[test]
fn wrong_settings_are_named_before_anything_is_bound() {
    let dir = tempfile::tempdir().unwrap();
    let root = || Server::with_root(dir.path());
    let e = error_of(root().add_user(UserSpec::new("u", "p").permissions("elrq")));
    assert!(e.contains("\"u\"") && e.contains('q'), "{e}");
    let e = error_of(root().user("u", "p").listen("not an address"));
    assert!(e.starts_with("listen:"), "{e}");
    let e = error_of(root());
    assert!(e.contains("no users"), "{e}");
    let e = error_of(Server::builder().user("u", "p"));
    assert!(e.contains("no storage"), "{e}");
    let e = error_of(root().user("u", "p").tls_pem_files(
        Path::new("/nonexistent/cert.pem"),
        Path::new("/nonexistent/key.pem"),
    ));
    assert!(
        e.starts_with("tls:") && e.contains("/nonexistent/cert.pem"),
        "{e}"
    );
    let (high, low) = (3000, 2000);
    let e = error_of(root().user("u", "p").passive_ports(high..=low));
    assert!(e.contains("passive"), "{e}");
}

#[test]
fn tls_from_pem_files_is_offered() {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let builder = Server::with_root(dir.path().join("data"))
        .user("u", "p")
        .listen("127.0.0.1:0")
        .tls_pem_files(&cert, &key);
    let (addr, token, thread) = start(builder);
    let mut ftp = FtpStream::connect(addr).unwrap();
    let feat = ftp.feat().unwrap();
    assert!(
        feat.keys().any(|k| k.eq_ignore_ascii_case("AUTH")),
        "AUTH TLS offered: {feat:?}"
    );
    ftp.quit().unwrap();
    token.cancel();
    thread.join().unwrap();
}
