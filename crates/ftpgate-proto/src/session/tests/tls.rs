//! Dialogue tests: AUTH, PBSZ, PROT, CCC and the TLS requirements.

use super::*;

fn tls_session(tls: TlsPolicy) -> Session {
    Session::new(
        SessionConfig {
            tls,
            ..SessionConfig::default()
        },
        "127.0.0.1:40000".parse().unwrap(),
        "127.0.0.1:21".parse().unwrap(),
    )
}

const TLS_ON: TlsPolicy = TlsPolicy {
    available: true,
    required_for_login: false,
    required_for_data: false,
    allow_ccc: false,
};

#[test]
fn auth_tls_when_not_configured() {
    let mut s = session();
    assert_eq!(code(&s.handle_line(b"AUTH TLS")), 502);
    let Step::Reply(r) = s.handle_line(b"FEAT") else {
        panic!()
    };
    assert!(
        !r.lines
            .iter()
            .any(|l| l.starts_with("AUTH") || l == "PBSZ" || l == "PROT")
    );
}

#[test]
fn auth_pbsz_prot_sequence() {
    let mut s = tls_session(TLS_ON);
    let Step::Reply(r) = s.handle_line(b"FEAT") else {
        panic!()
    };
    for f in ["AUTH TLS", "PBSZ", "PROT"] {
        assert!(r.lines.iter().any(|l| l == f), "{f}");
    }
    assert!(!r.lines.iter().any(|l| l == "CCC"));
    assert_eq!(code(&s.handle_line(b"PBSZ 0")), 503);
    assert_eq!(code(&s.handle_line(b"PROT P")), 503);
    assert!(
        matches!(s.handle_line(b"AUTH TLS"), Step::UpgradeTls(ref r) if r.code.number() == 234)
    );
    s.handle_tls_established(false);
    assert_eq!(code(&s.handle_line(b"AUTH TLS")), 503);
    assert_eq!(code(&s.handle_line(b"PROT P")), 503, "PBSZ first");
    assert_eq!(text(&s.handle_line(b"PBSZ 0")), "PBSZ=0");
    assert_eq!(code(&s.handle_line(b"PROT P")), 200);
    s.handle_line(b"USER alice");
    s.handle_line(b"PASS x");
    s.handle_auth_result(Ok(alice(false)));
    passive(&mut s);
    assert!(matches!(
        s.handle_line(b"LIST"),
        Step::Transfer(TransferPlan {
            protected: true,
            ..
        })
    ));
}

#[test]
fn tls_required_for_login_refuses_user_in_the_clear() {
    let mut s = tls_session(TlsPolicy {
        required_for_login: true,
        ..TLS_ON
    });
    assert_eq!(code(&s.handle_line(b"USER alice")), 530);
    s.handle_line(b"AUTH TLS");
    s.handle_tls_established(false);
    assert_eq!(code(&s.handle_line(b"USER alice")), 331);
}

#[test]
fn tls_required_for_data_refuses_clear_transfers() {
    let mut s = tls_session(TlsPolicy {
        required_for_data: true,
        ..TLS_ON
    });
    s.handle_line(b"AUTH TLS");
    s.handle_tls_established(false);
    s.handle_line(b"USER alice");
    s.handle_line(b"PASS x");
    s.handle_auth_result(Ok(alice(false)));
    passive(&mut s);
    assert_eq!(code(&s.handle_line(b"RETR f")), 521);
    s.handle_line(b"PBSZ 0");
    assert_eq!(code(&s.handle_line(b"PROT C")), 534);
    assert_eq!(code(&s.handle_line(b"PROT P")), 200);
    passive(&mut s);
    assert!(matches!(
        s.handle_line(b"RETR f"),
        Step::Transfer(TransferPlan {
            protected: true,
            ..
        })
    ));
}

#[test]
fn per_user_tls_requirement() {
    let mut s = tls_session(TLS_ON);
    s.handle_line(b"USER alice");
    s.handle_line(b"PASS x");
    assert_eq!(code(&s.handle_auth_result(Ok(alice(true)))), 530);
    assert!(!s.is_logged_in());
    s.handle_line(b"AUTH TLS");
    s.handle_tls_established(false);
    s.handle_line(b"USER alice");
    s.handle_line(b"PASS x");
    assert_eq!(code(&s.handle_auth_result(Ok(alice(true)))), 230);
    passive(&mut s);
    assert_eq!(code(&s.handle_line(b"STOR f")), 521);
}

#[test]
fn implicit_tls_protects_data_from_the_start() {
    let mut s = tls_session(TLS_ON);
    s.handle_tls_established(true);
    s.handle_line(b"USER alice");
    s.handle_line(b"PASS x");
    s.handle_auth_result(Ok(alice(false)));
    passive(&mut s);
    assert!(matches!(
        s.handle_line(b"NLST"),
        Step::Transfer(TransferPlan {
            protected: true,
            ..
        })
    ));
}

#[test]
fn ccc_is_refused_unless_allowed() {
    let mut s = tls_session(TLS_ON);
    assert_eq!(code(&s.handle_line(b"CCC")), 533);
    s.handle_line(b"AUTH TLS");
    s.handle_tls_established(false);
    assert_eq!(code(&s.handle_line(b"CCC")), 534);
    let mut s = tls_session(TlsPolicy {
        allow_ccc: true,
        ..TLS_ON
    });
    s.handle_line(b"AUTH TLS");
    s.handle_tls_established(false);
    assert!(matches!(s.handle_line(b"CCC"), Step::ClearControl(_)));
    s.handle_control_cleared();
    assert!(!s.is_secure());
}

#[test]
fn tls_transfer_failures() {
    let mut s = logged_in();
    passive(&mut s);
    s.handle_line(b"RETR f");
    assert_eq!(
        s.handle_transfer_done(TransferOutcome::TlsNotResumed)[0]
            .code
            .number(),
        522
    );
    passive(&mut s);
    s.handle_line(b"RETR f");
    assert_eq!(
        s.handle_transfer_done(TransferOutcome::TlsFailed)[0]
            .code
            .number(),
        425
    );
}
