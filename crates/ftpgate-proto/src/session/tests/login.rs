//! Dialogue tests: USER, PASS, REIN, QUIT, HOST.

use super::*;

#[test]
fn password_is_never_shown() {
    let mut s = session();
    s.handle_line(b"USER bob");
    let step = s.handle_line(b"PASS hunter2");
    assert!(!format!("{step:?}").contains("hunter2"));
}

#[test]
fn commands_before_login_get_530() {
    let mut s = session();
    for line in [
        "PWD", "CWD /", "RETR a", "STOR a", "LIST", "PASV", "MKD x", "DELE x", "SIZE x",
    ] {
        assert_eq!(code(&s.handle_line(line.as_bytes())), 530, "{line}");
    }
    // These work without a login.
    for (line, expected) in [
        ("SYST", 215),
        ("NOOP", 200),
        ("FEAT", 211),
        ("HELP", 214),
        ("TYPE I", 200),
        ("STAT", 211),
    ] {
        assert_eq!(code(&s.handle_line(line.as_bytes())), expected, "{line}");
    }
}

#[test]
fn pass_without_user_is_bad_sequence() {
    let mut s = session();
    assert_eq!(code(&s.handle_line(b"PASS x")), 503);
}

#[test]
fn failed_logins_close_after_the_limit() {
    let mut s = session();
    for attempt in 1..=3 {
        s.handle_line(b"USER x");
        assert!(matches!(
            s.handle_line(b"PASS y"),
            Step::Authenticate { .. }
        ));
        let step = s.handle_auth_result(Err(LoginFailure::Rejected));
        if attempt < 3 {
            assert_eq!(code(&step), 530);
            assert!(!s.wants_close());
        } else {
            assert_eq!(code(&step), 421);
            assert!(s.wants_close());
        }
    }
}

#[test]
fn commands_wait_while_authenticating() {
    let mut s = session();
    s.handle_line(b"USER x");
    s.handle_line(b"PASS y");
    assert_eq!(code(&s.handle_line(b"NOOP")), 503);
}

#[test]
fn rein_logs_out() {
    let mut s = logged_in();
    assert_eq!(code(&s.handle_line(b"REIN")), 220);
    assert!(!s.is_logged_in());
    assert_eq!(code(&s.handle_line(b"PWD")), 530);
}

#[test]
fn quit_closes() {
    let mut s = session();
    assert_eq!(code(&s.handle_line(b"QUIT")), 221);
    assert!(s.wants_close());
}

#[test]
fn login_message_comes_before_the_logged_in_line_of_a_multi_line_230() {
    let mut s = Session::new(
        SessionConfig {
            login_message: Some("Welcome, friend.\nUploads go to /in.\n".to_string()),
            ..SessionConfig::default()
        },
        "127.0.0.1:40000".parse().unwrap(),
        "127.0.0.1:21".parse().unwrap(),
    );
    s.handle_line(b"USER alice");
    s.handle_line(b"PASS secret");
    let step = s.handle_auth_result(Ok(SessionUser {
        name: "alice".into(),
        permissions: PermissionMap::uniform(Permissions::ALL),
        tls_required: false,
        capabilities: Capabilities::default(),
    }));
    let Step::Reply(reply) = step else {
        panic!("expected a reply, got {step:?}")
    };
    assert_eq!(
        reply.encode(),
        b"230-Welcome, friend.\r\n Uploads go to /in.\r\n230 User alice logged in\r\n"
    );
}

#[test]
fn a_host_banner_of_several_lines_is_a_multi_line_220() {
    let mut s = session();
    let Step::Reply(reply) = s.handle_host_selected(Some("Welcome to b\nSecond line".to_string()))
    else {
        panic!("expected a reply")
    };
    assert_eq!(reply.encode(), b"220-Welcome to b\r\n220 Second line\r\n");
}

#[test]
fn an_unavailable_authenticator_closes_with_421_and_is_no_failed_login() {
    let mut s = session();
    s.handle_line(b"USER x");
    assert!(matches!(
        s.handle_line(b"PASS y"),
        Step::Authenticate { .. }
    ));
    let step = s.handle_auth_result(Err(LoginFailure::Unavailable));
    assert_eq!(code(&step), 421);
    assert!(s.wants_close());
    assert_eq!(s.login_failures, 0);
}
