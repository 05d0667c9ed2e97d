//! Dialogue tests: the session state machine driven line by line, with no sockets. The
//! helpers are here; the tests are grouped like the handlers.

mod files;
mod info;
mod login;
mod tls;
mod transfers;

use super::*;
use crate::backend::{FileKind, Metadata};
use crate::perm::Permissions;
use std::net::Ipv4Addr;

fn session() -> Session {
    Session::new(
        SessionConfig::default(),
        "127.0.0.1:40000".parse().unwrap(),
        "127.0.0.1:21".parse().unwrap(),
    )
}

fn code(step: &Step) -> u16 {
    match step {
        Step::Reply(r) | Step::Logout(r) => r.code.number(),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn text(step: &Step) -> String {
    match step {
        Step::Reply(r) => r.lines.join("\n"),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn logged_in_with(perms: PermissionMap) -> Session {
    let mut s = session();
    assert_eq!(code(&s.handle_line(b"USER alice")), 331);
    assert!(
        matches!(s.handle_line(b"PASS secret"), Step::Authenticate { ref user, .. } if user == "alice")
    );
    assert_eq!(
        code(&s.handle_auth_result(Ok(SessionUser {
            name: "alice".into(),
            permissions: perms,
            tls_required: false,
            capabilities: Capabilities::default(),
        }))),
        230
    );
    s
}

fn logged_in() -> Session {
    logged_in_with(PermissionMap::uniform(Permissions::ALL))
}

fn file_meta(size: u64) -> Metadata {
    Metadata {
        kind: FileKind::File,
        size,
        modified: Some(std::time::UNIX_EPOCH),
        mode: Some(0o644),
        unique: None,
    }
}

fn dir_meta() -> Metadata {
    Metadata {
        kind: FileKind::Dir,
        size: 0,
        modified: None,
        mode: Some(0o755),
        unique: None,
    }
}

fn passive(s: &mut Session) {
    assert_eq!(
        s.handle_line(b"PASV"),
        Step::OpenPassive { extended: false }
    );
    let r = s.handle_passive_opened(false, Ok((Some(Ipv4Addr::LOCALHOST), 50000)));
    assert_eq!(text(&r), "Entering Passive Mode (127,0,0,1,195,80).");
}

fn wire(step: &Step) -> String {
    match step {
        Step::Reply(r) => String::from_utf8(r.encode()).unwrap(),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn vpath(p: &str) -> VirtualPath {
    VirtualPath::parse_absolute(p).unwrap()
}

fn alice(tls_required: bool) -> SessionUser {
    SessionUser {
        name: "alice".into(),
        permissions: PermissionMap::uniform(Permissions::ALL),
        tls_required,
        capabilities: Capabilities::default(),
    }
}
