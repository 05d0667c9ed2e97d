//! Dialogue tests: the session state machine driven line by line, with no sockets.

use super::*;
use crate::listing::{FileKind, Metadata};
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
        let step = s.handle_auth_result(Err(()));
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
fn pwd_quotes_the_path() {
    let mut s = logged_in();
    assert_eq!(
        text(&s.handle_line(b"PWD")),
        "\"/\" is the current directory"
    );
    assert_eq!(code(&s.handle_line(b"XPWD")), 257);
}

#[test]
fn cwd_checks_the_target_is_a_directory() {
    let mut s = logged_in();
    let step = s.handle_line(b"CWD docs");
    assert_eq!(
        step,
        Step::Storage(StorageOp::Metadata(
            VirtualPath::parse_absolute("/docs").unwrap()
        ))
    );
    assert_eq!(
        code(&s.handle_storage_result(Ok(StorageOutcome::Metadata(dir_meta())))),
        250
    );
    assert_eq!(s.cwd().as_str(), "/docs");

    s.handle_line(b"CWD file.txt");
    assert_eq!(
        code(&s.handle_storage_result(Ok(StorageOutcome::Metadata(file_meta(1))))),
        550
    );
    assert_eq!(s.cwd().as_str(), "/docs");

    s.handle_line(b"CWD missing");
    assert_eq!(
        code(&s.handle_storage_result(Err(ErrorKind::NotFound))),
        550
    );

    let step = s.handle_line(b"CDUP");
    assert_eq!(
        step,
        Step::Storage(StorageOp::Metadata(VirtualPath::root()))
    );
    s.handle_storage_result(Ok(StorageOutcome::Metadata(dir_meta())));
    assert_eq!(s.cwd().as_str(), "/");
}

#[test]
fn traversal_stays_inside_the_root() {
    let mut s = logged_in();
    let step = s.handle_line(b"RNFR ../../../etc/passwd");
    assert_eq!(
        step,
        Step::Storage(StorageOp::Metadata(
            VirtualPath::parse_absolute("/etc/passwd").unwrap()
        ))
    );
}

#[test]
fn nul_in_a_path_is_501_and_the_session_goes_on() {
    let mut s = logged_in();
    assert_eq!(code(&s.handle_line(b"STOR a\0b")), 501);
    assert_eq!(code(&s.handle_line(b"NOOP")), 200);
}

#[test]
fn invalid_utf8_and_overlong_lines() {
    let mut s = logged_in();
    assert_eq!(code(&s.handle_line(b"STOR \xff\xfe")), 501);
    assert_eq!(code(&s.handle_decoded(Decoded::TooLong)), 500);
    assert_eq!(code(&s.handle_line(b"NOOP")), 200);
}

#[test]
fn rnto_must_immediately_follow_rnfr() {
    let mut s = logged_in();
    assert_eq!(code(&s.handle_line(b"RNTO b")), 503);

    s.handle_line(b"RNFR a");
    assert_eq!(
        code(&s.handle_storage_result(Ok(StorageOutcome::Metadata(file_meta(1))))),
        350
    );
    assert_eq!(code(&s.handle_line(b"NOOP")), 200);
    assert_eq!(code(&s.handle_line(b"RNTO b")), 503);

    s.handle_line(b"RNFR a");
    s.handle_storage_result(Ok(StorageOutcome::Metadata(file_meta(1))));
    let step = s.handle_line(b"RNTO dir/b");
    assert_eq!(
        step,
        Step::Storage(StorageOp::Rename {
            from: VirtualPath::parse_absolute("/a").unwrap(),
            to: VirtualPath::parse_absolute("/dir/b").unwrap()
        })
    );
    assert_eq!(
        code(&s.handle_storage_result(Ok(StorageOutcome::Done))),
        250
    );
}

#[test]
fn a_bad_line_between_rnfr_and_rnto_cancels_the_rename() {
    for bad in [&b"BOGUS"[..], b"RETR \xff", b"TYPE Q"] {
        let mut s = logged_in();
        s.handle_line(b"RNFR a");
        s.handle_storage_result(Ok(StorageOutcome::Metadata(file_meta(1))));
        s.handle_line(bad);
        assert_eq!(code(&s.handle_line(b"RNTO b")), 503);
    }
    let mut s = logged_in();
    s.handle_line(b"RNFR a");
    s.handle_storage_result(Ok(StorageOutcome::Metadata(file_meta(1))));
    s.handle_decoded(Decoded::TooLong);
    assert_eq!(code(&s.handle_line(b"RNTO b")), 503);
}

#[test]
fn rnfr_of_missing_file_is_550() {
    let mut s = logged_in();
    s.handle_line(b"RNFR nope");
    assert_eq!(
        code(&s.handle_storage_result(Err(ErrorKind::NotFound))),
        550
    );
    assert_eq!(code(&s.handle_line(b"RNTO b")), 503);
}

#[test]
fn mkd_rmd_dele_replies() {
    let mut s = logged_in();
    assert_eq!(
        s.handle_line(b"MKD new \"dir\""),
        Step::Storage(StorageOp::MakeDir(
            VirtualPath::parse_absolute("/new \"dir\"").unwrap()
        ))
    );
    assert_eq!(
        text(&s.handle_storage_result(Ok(StorageOutcome::Done))),
        "\"/new \"\"dir\"\"\" created"
    );
    s.handle_line(b"MKD exists");
    assert_eq!(
        code(&s.handle_storage_result(Err(ErrorKind::AlreadyExists))),
        550
    );
    s.handle_line(b"RMD full");
    assert_eq!(
        code(&s.handle_storage_result(Err(ErrorKind::DirectoryNotEmpty))),
        550
    );
    assert_eq!(code(&s.handle_line(b"RMD /")), 550);
    s.handle_line(b"DELE f");
    assert_eq!(
        code(&s.handle_storage_result(Ok(StorageOutcome::Done))),
        250
    );
}

#[test]
fn size_is_the_stored_size_in_either_type() {
    let mut s = logged_in();
    // TYPE A, the default: the stored size, as vsftpd and Pure-FTPd answer.
    assert!(matches!(s.handle_line(b"SIZE f"), Step::Storage(_)));
    assert_eq!(
        text(&s.handle_storage_result(Ok(StorageOutcome::Metadata(file_meta(1234))))),
        "1234"
    );
    // REST stays refused in TYPE A, so a resume never starts from a converted offset.
    assert_eq!(code(&s.handle_line(b"REST 100")), 504);
    s.handle_line(b"TYPE I");
    assert!(matches!(s.handle_line(b"SIZE f"), Step::Storage(_)));
    assert_eq!(
        text(&s.handle_storage_result(Ok(StorageOutcome::Metadata(file_meta(1234))))),
        "1234"
    );
    s.handle_line(b"SIZE d");
    assert_eq!(
        code(&s.handle_storage_result(Ok(StorageOutcome::Metadata(dir_meta())))),
        550
    );
}

#[test]
fn mdtm_and_mfmt() {
    let mut s = logged_in();
    s.handle_line(b"MDTM f");
    assert_eq!(
        text(&s.handle_storage_result(Ok(StorageOutcome::Metadata(file_meta(1))))),
        "19700101000000"
    );
    let step = s.handle_line(b"MFMT 20200102030405 f");
    assert!(matches!(step, Step::Storage(StorageOp::SetModified { .. })));
    assert_eq!(
        text(&s.handle_storage_result(Ok(StorageOutcome::Done))),
        "Modify=20200102030405; /f"
    );
}

#[test]
fn mlst_lists_facts_over_the_control_connection() {
    let mut s = logged_in();
    s.handle_line(b"MLST f");
    let step = s.handle_storage_result(Ok(StorageOutcome::Metadata(file_meta(5))));
    let Step::Reply(r) = step else { panic!() };
    assert_eq!(
        String::from_utf8(r.encode()).unwrap(),
        "250-Listing /f\r\n type=file;size=5;modify=19700101000000;perm=adfrw;unix.mode=0644; /f\r\n250 End\r\n"
    );
    assert_eq!(
        text(&s.handle_line(b"OPTS MLST type;size;")),
        "MLST OPTS type;size;"
    );
    s.handle_line(b"MLST f");
    let Step::Reply(r) = s.handle_storage_result(Ok(StorageOutcome::Metadata(file_meta(5)))) else {
        panic!()
    };
    assert_eq!(r.lines[1], "type=file;size=5; /f");
}

#[test]
fn transfers_need_a_data_connection_first() {
    let mut s = logged_in();
    assert_eq!(code(&s.handle_line(b"RETR f")), 425);
    assert_eq!(code(&s.handle_line(b"LIST")), 425);
}

#[test]
fn retr_uses_the_rest_offset_once() {
    let mut s = logged_in();
    s.handle_line(b"TYPE I");
    assert_eq!(code(&s.handle_line(b"REST 100")), 350);
    passive(&mut s);
    let step = s.handle_line(b"RETR f");
    assert_eq!(
        step,
        Step::Transfer(TransferPlan {
            verb: "RETR",
            kind: TransferKind::Retrieve {
                path: VirtualPath::parse_absolute("/f").unwrap(),
                offset: 100
            },
            ascii: false,
            data: DataEndpoint::Passive,
            protected: false,
            compressed: false,
        })
    );
    assert_eq!(
        s.handle_transfer_started(&StartInfo {
            size: Some(5),
            unique_name: None
        })
        .code
        .number(),
        150
    );
    assert_eq!(
        s.handle_transfer_done(TransferOutcome::Complete { bytes: 5 })[0]
            .code
            .number(),
        226
    );
    passive(&mut s);
    assert!(matches!(
        s.handle_line(b"RETR f"),
        Step::Transfer(TransferPlan {
            verb: "RETR",
            kind: TransferKind::Retrieve { offset: 0, .. },
            ..
        })
    ));
}

#[test]
fn rest_is_refused_in_ascii_mode() {
    let mut s = logged_in();
    assert_eq!(code(&s.handle_line(b"REST 10")), 504);
    assert_eq!(code(&s.handle_line(b"REST 0")), 350);
}

#[test]
fn stor_appe_and_resume() {
    let mut s = logged_in();
    s.handle_line(b"TYPE I");
    passive(&mut s);
    assert!(matches!(
        s.handle_line(b"STOR a"),
        Step::Transfer(TransferPlan {
            verb: "STOR",
            kind: TransferKind::Store {
                start: WriteStart::Truncate,
                ..
            },
            ..
        })
    ));
    s.handle_transfer_done(TransferOutcome::Complete { bytes: 0 });
    passive(&mut s);
    assert!(matches!(
        s.handle_line(b"APPE a"),
        Step::Transfer(TransferPlan {
            verb: "APPE",
            kind: TransferKind::Store {
                start: WriteStart::Append,
                ..
            },
            ..
        })
    ));
    s.handle_transfer_done(TransferOutcome::Complete { bytes: 0 });
    s.handle_line(b"REST 7");
    passive(&mut s);
    assert!(matches!(
        s.handle_line(b"STOR a"),
        Step::Transfer(TransferPlan {
            verb: "STOR",
            kind: TransferKind::Store {
                start: WriteStart::At(7),
                ..
            },
            ..
        })
    ));
}

#[test]
fn only_abor_stat_noop_quit_run_during_a_transfer() {
    let mut s = logged_in();
    passive(&mut s);
    assert!(matches!(s.handle_line(b"RETR f"), Step::Transfer(_)));
    assert_eq!(code(&s.handle_line(b"CWD /")), 503);
    assert_eq!(code(&s.handle_line(b"PASV")), 503);
    assert_eq!(code(&s.handle_line(b"NOOP")), 200);
    assert_eq!(s.handle_line(b"STAT"), Step::TransferStatus);
    assert!(
        s.status_reply(Some(42))
            .lines
            .iter()
            .any(|l| l.contains("42 bytes"))
    );
    assert_eq!(s.handle_line(b"ABOR"), Step::AbortTransfer);
    let replies: Vec<u16> = s
        .handle_transfer_done(TransferOutcome::Aborted)
        .iter()
        .map(|r| r.code.number())
        .collect();
    assert_eq!(replies, [426, 226]);
    assert!(!s.in_transfer());
    assert_eq!(code(&s.handle_line(b"PWD")), 257);
}

#[test]
fn abor_without_a_transfer() {
    let mut s = logged_in();
    assert_eq!(code(&s.handle_line(b"ABOR")), 225);
}

#[test]
fn quit_during_a_transfer_waits_for_its_reply() {
    let mut s = logged_in();
    passive(&mut s);
    s.handle_line(b"RETR f");
    assert_eq!(s.handle_line(b"QUIT"), Step::Nothing);
    assert!(!s.wants_close());
    let replies: Vec<u16> = s
        .handle_transfer_done(TransferOutcome::Complete { bytes: 1 })
        .iter()
        .map(|r| r.code.number())
        .collect();
    assert_eq!(replies, [226, 221]);
    assert!(s.wants_close());
}

#[test]
fn transfer_failures_map_to_replies() {
    let mut s = logged_in();
    for (outcome, expected) in [
        (TransferOutcome::NoDataConnection, 425),
        (TransferOutcome::ConnectionLost, 426),
        (TransferOutcome::Failed(ErrorKind::NotFound), 550),
        (TransferOutcome::Failed(ErrorKind::InsufficientStorage), 452),
    ] {
        passive(&mut s);
        s.handle_line(b"RETR f");
        assert_eq!(s.handle_transfer_done(outcome)[0].code.number(), expected);
    }
}

#[test]
fn port_refuses_foreign_hosts_and_privileged_ports() {
    let mut s = logged_in();
    assert_eq!(code(&s.handle_line(b"PORT 127,0,0,2,4,1")), 501);
    assert_eq!(code(&s.handle_line(b"PORT 127,0,0,1,0,21")), 501);
    assert_eq!(code(&s.handle_line(b"EPRT |1|10.0.0.1|2000|")), 501);
    assert_eq!(code(&s.handle_line(b"PORT 127,0,0,1,4,1")), 200);
    assert!(matches!(
        s.handle_line(b"LIST"),
        Step::Transfer(TransferPlan { data: DataEndpoint::Active(addr), .. }) if addr == "127.0.0.1:1025".parse().unwrap()
    ));
}

#[test]
fn eprt_with_a_mapped_address_connects_in_the_control_connections_family() {
    // An IPv4 client may name itself as an IPv4-mapped IPv6 address; the data connection
    // still goes to its IPv4 address, the family of the control connection.
    let mut s = logged_in();
    assert_eq!(code(&s.handle_line(b"EPRT |2|::ffff:127.0.0.1|2000|")), 200);
    assert!(matches!(
        s.handle_line(b"LIST"),
        Step::Transfer(TransferPlan { data: DataEndpoint::Active(addr), .. }) if addr == "127.0.0.1:2000".parse().unwrap()
    ));
}

#[test]
fn active_mode_can_be_disabled() {
    let mut s = Session::new(
        SessionConfig {
            active_mode: false,
            ..SessionConfig::default()
        },
        "127.0.0.1:40000".parse().unwrap(),
        "127.0.0.1:21".parse().unwrap(),
    );
    s.handle_line(b"USER a");
    s.handle_line(b"PASS b");
    s.handle_auth_result(Ok(SessionUser {
        name: "a".into(),
        permissions: PermissionMap::uniform(Permissions::ALL),
        tls_required: false,
        capabilities: Capabilities::default(),
    }));
    assert_eq!(code(&s.handle_line(b"PORT 127,0,0,1,4,1")), 502);
}

#[test]
fn epsv_all_refuses_other_setups() {
    let mut s = logged_in();
    assert_eq!(code(&s.handle_line(b"EPSV ALL")), 200);
    assert_eq!(code(&s.handle_line(b"PASV")), 503);
    assert_eq!(code(&s.handle_line(b"PORT 127,0,0,1,4,1")), 503);
    assert_eq!(s.handle_line(b"EPSV"), Step::OpenPassive { extended: true });
    assert_eq!(
        text(&s.handle_passive_opened(true, Ok((None, 2121)))),
        "Entering Extended Passive Mode (|||2121|)"
    );
    assert_eq!(code(&s.handle_line(b"EPSV 2")), 522);
}

#[test]
fn pasv_without_ipv4_is_refused() {
    let mut s = logged_in();
    s.handle_line(b"PASV");
    assert_eq!(code(&s.handle_passive_opened(false, Ok((None, 2121)))), 522);
    assert!(!s.expects_passive());
}

#[test]
fn permissions_are_checked_on_the_normalised_path() {
    let map = PermissionMap::uniform(Permissions::ALL).with_override(
        VirtualPath::parse_absolute("/ro").unwrap(),
        Permissions::READ_ONLY,
    );
    let mut s = logged_in_with(map);
    s.handle_line(b"TYPE I");
    passive(&mut s);
    assert_eq!(code(&s.handle_line(b"STOR ro/x")), 550);
    assert_eq!(code(&s.handle_line(b"STOR /a/../ro/x")), 550);
    assert_eq!(code(&s.handle_line(b"DELE /ro/x")), 550);
    assert_eq!(code(&s.handle_line(b"MKD /ro/d")), 550);
    assert_eq!(code(&s.handle_line(b"MFMT 20200101000000 /ro/x")), 550);
    assert!(matches!(s.handle_line(b"RETR /ro/x"), Step::Transfer(_)));
    s.handle_transfer_done(TransferOutcome::Complete { bytes: 0 });
    // Resuming an upload needs the append permission as well.
    let mut s = logged_in_with(PermissionMap::uniform(Permissions::parse("elrw").unwrap()));
    s.handle_line(b"TYPE I");
    s.handle_line(b"REST 5");
    passive(&mut s);
    assert_eq!(code(&s.handle_line(b"STOR f")), 550);
}

#[test]
fn feat_lists_the_extensions() {
    let mut s = session();
    let Step::Reply(r) = s.handle_line(b"FEAT") else {
        panic!()
    };
    for f in [
        "UTF8",
        "EPSV",
        "EPRT",
        "SIZE",
        "MDTM",
        "MFMT",
        "REST STREAM",
        "TVFS",
        "CLNT",
    ] {
        assert!(r.lines.iter().any(|l| l == f), "{f} missing from {r:?}");
    }
    assert!(
        r.lines
            .iter()
            .any(|l| l.starts_with("MLST type*;size*;modify*;perm*;"))
    );
    assert_eq!(r.lines.first().map(String::as_str), Some("Features:"));
}

#[test]
fn opts_utf8() {
    let mut s = session();
    assert_eq!(code(&s.handle_line(b"OPTS UTF8 ON")), 200);
    assert_eq!(code(&s.handle_line(b"OPTS UTF8 OFF")), 504);
    assert_eq!(code(&s.handle_line(b"OPTS FOO")), 501);
}

#[test]
fn help_site_acct_allo_clnt() {
    let mut s = logged_in();
    assert_eq!(
        text(&s.handle_line(b"HELP RETR")),
        "Syntax: RETR <sp> pathname"
    );
    assert_eq!(code(&s.handle_line(b"SITE HELP")), 214);
    assert_eq!(code(&s.handle_line(b"SITE FOO")), 504);
    assert_eq!(code(&s.handle_line(b"ACCT x")), 202);
    assert_eq!(code(&s.handle_line(b"ALLO")), 202);
    assert_eq!(code(&s.handle_line(b"CLNT curl 8")), 200);
    assert_eq!(s.client_name(), Some("curl 8"));
    assert_eq!(code(&s.handle_line(b"MODE S")), 200);
    assert_eq!(code(&s.handle_line(b"STRU F")), 200);
}

#[test]
fn stat_with_a_path_lists_it() {
    let mut s = logged_in();
    assert_eq!(
        s.handle_line(b"STAT /dir"),
        Step::StatListing {
            path: VirtualPath::parse_absolute("/dir").unwrap()
        }
    );
}

#[test]
fn stou_picks_a_directory_and_base() {
    let mut s = logged_in();
    passive(&mut s);
    let Step::Transfer(plan) = s.handle_line(b"STOU sub/name.txt") else {
        panic!()
    };
    assert_eq!(
        plan.kind,
        TransferKind::StoreUnique {
            dir: VirtualPath::parse_absolute("/sub").unwrap(),
            base: "name.txt".into()
        }
    );
    let r = s.handle_transfer_started(&StartInfo {
        size: None,
        unique_name: Some("name.txt.1".into()),
    });
    assert_eq!(r.lines[0], "FILE: name.txt.1");
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

fn alice(tls_required: bool) -> SessionUser {
    SessionUser {
        name: "alice".into(),
        permissions: PermissionMap::uniform(Permissions::ALL),
        tls_required,
        capabilities: Capabilities::default(),
    }
}

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

// --- Extensions -----------------------------------------------------------------------------

fn wire(step: &Step) -> String {
    match step {
        Step::Reply(r) => String::from_utf8(r.encode()).unwrap(),
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn hash_runs_like_a_transfer_without_a_data_connection() {
    let mut s = logged_in();
    let Step::Transfer(plan) = s.handle_line(b"HASH a file") else {
        panic!("HASH starts a digest job");
    };
    assert_eq!(plan.data, DataEndpoint::None);
    assert!(matches!(
        plan.kind,
        TransferKind::Hash {
            algorithm: HashAlgorithm::Sha256,
            start: 0,
            end: None,
            legacy: false,
            ..
        }
    ));
    // Only ABOR, STAT, NOOP and QUIT while it runs.
    assert_eq!(code(&s.handle_line(b"RETR x")), 503);
    let replies = s.handle_transfer_done(TransferOutcome::Hashed {
        digest: "ab12".into(),
        start: 0,
        end: 10,
    });
    assert_eq!(
        String::from_utf8(replies[0].encode()).unwrap(),
        "213 SHA-256 0-10 ab12 /a file\r\n"
    );
}

#[test]
fn opts_hash_rang_and_legacy_commands() {
    let mut s = logged_in();
    assert_eq!(wire(&s.handle_line(b"OPTS HASH")), "200 SHA-256\r\n");
    assert_eq!(wire(&s.handle_line(b"OPTS HASH md5")), "200 MD5\r\n");
    assert_eq!(code(&s.handle_line(b"OPTS HASH SHA-3")), 504);
    let Step::Reply(feat) = s.handle_line(b"FEAT") else {
        panic!()
    };
    let feat = String::from_utf8(feat.encode()).unwrap();
    assert!(
        feat.contains(" HASH SHA-256;SHA-512;SHA-1;MD5*;CRC32\r\n"),
        "{feat}"
    );
    assert_eq!(code(&s.handle_line(b"RANG 10 19")), 350);
    let Step::Transfer(plan) = s.handle_line(b"HASH f") else {
        panic!()
    };
    assert!(matches!(
        plan.kind,
        TransferKind::Hash {
            algorithm: HashAlgorithm::Md5,
            start: 10,
            end: Some(20),
            ..
        }
    ));
    s.handle_transfer_done(TransferOutcome::Aborted);
    // The range applied to one HASH only.
    let Step::Transfer(plan) = s.handle_line(b"HASH f") else {
        panic!()
    };
    assert!(matches!(
        plan.kind,
        TransferKind::Hash {
            start: 0,
            end: None,
            ..
        }
    ));
    s.handle_transfer_done(TransferOutcome::Aborted);
    assert_eq!(code(&s.handle_line(b"RANG 5 1")), 501);
    let Step::Transfer(plan) = s.handle_line(b"XSHA256 my file 0 99") else {
        panic!()
    };
    assert!(matches!(
        plan.kind,
        TransferKind::Hash {
            algorithm: HashAlgorithm::Sha256,
            start: 0,
            end: Some(99),
            legacy: true,
            ..
        }
    ));
    let replies = s.handle_transfer_done(TransferOutcome::Hashed {
        digest: "ff".into(),
        start: 0,
        end: 99,
    });
    assert_eq!(
        String::from_utf8(replies[0].encode()).unwrap(),
        "250 ff\r\n"
    );
}

#[test]
fn switched_off_commands_answer_502_and_leave_feat() {
    let mut s = Session::new(
        SessionConfig {
            features: Features {
                hash: false,
                mlsd: false,
                site: false,
                syst: false,
                ..Features::default()
            },
            ..SessionConfig::default()
        },
        "127.0.0.1:40000".parse().unwrap(),
        "127.0.0.1:21".parse().unwrap(),
    );
    assert_eq!(code(&s.handle_line(b"SYST")), 502);
    assert_eq!(code(&s.handle_line(b"XCRC f")), 502);
    let Step::Reply(feat) = s.handle_line(b"FEAT") else {
        panic!()
    };
    let feat = String::from_utf8(feat.encode()).unwrap();
    assert!(!feat.contains("HASH") && !feat.contains("XCRC"), "{feat}");
    assert!(
        feat.contains(" AVBL\r\n") && feat.contains(" LANG EN*\r\n"),
        "{feat}"
    );
}

#[test]
fn default_type_and_list_args_switches() {
    let mut s = Session::new(
        SessionConfig {
            features: Features {
                list_args: false,
                default_type: TransferType::Binary,
                ..Features::default()
            },
            ..SessionConfig::default()
        },
        "127.0.0.1:40000".parse().unwrap(),
        "127.0.0.1:21".parse().unwrap(),
    );
    s.handle_line(b"USER a");
    s.handle_line(b"PASS b");
    s.handle_auth_result(Ok(alice(false)));
    s.handle_line(b"PASV");
    s.handle_passive_opened(false, Ok((Some(std::net::Ipv4Addr::LOCALHOST), 2000)));
    let Step::Transfer(plan) = s.handle_line(b"LIST -la") else {
        panic!()
    };
    assert!(!plan.ascii, "binary by default");
    assert!(
        matches!(plan.kind, TransferKind::List { ref path, all: false, .. } if path.as_str() == "/-la")
    );
}

#[test]
fn avbl_allo_lang_and_capabilities() {
    let mut s = logged_in();
    assert_eq!(
        s.handle_line(b"AVBL"),
        Step::Storage(StorageOp::Available(VirtualPath::root()))
    );
    assert_eq!(
        wire(&s.handle_storage_result(Ok(StorageOutcome::Available(12345)))),
        "213 12345\r\n"
    );
    assert!(matches!(
        s.handle_line(b"ALLO 100"),
        Step::Storage(StorageOp::Available(_))
    ));
    assert_eq!(
        code(&s.handle_storage_result(Ok(StorageOutcome::Available(99)))),
        552
    );
    assert!(matches!(s.handle_line(b"ALLO 100 R 10"), Step::Storage(_)));
    assert_eq!(
        code(&s.handle_storage_result(Ok(StorageOutcome::Available(100)))),
        200
    );
    assert_eq!(code(&s.handle_line(b"ALLO")), 202);
    assert_eq!(code(&s.handle_line(b"LANG")), 200);
    assert_eq!(code(&s.handle_line(b"LANG en-US")), 200);
    assert_eq!(code(&s.handle_line(b"LANG FR")), 504);

    // A storage without the optional calls.
    let mut s = session();
    s.handle_line(b"USER a");
    s.handle_line(b"PASS b");
    s.handle_auth_result(Ok(SessionUser {
        capabilities: Capabilities::none(),
        ..alice(false)
    }));
    assert_eq!(code(&s.handle_line(b"AVBL")), 502);
    assert_eq!(code(&s.handle_line(b"ALLO 100")), 202);
    assert_eq!(code(&s.handle_line(b"SITE CHMOD 644 f")), 502);
    assert_eq!(code(&s.handle_line(b"MFMT 20200101000000 f")), 502);
    let Step::Reply(feat) = s.handle_line(b"FEAT") else {
        panic!()
    };
    let feat = String::from_utf8(feat.encode()).unwrap();
    assert!(
        !feat.contains("AVBL") && !feat.contains("MFMT") && !feat.contains("MFF"),
        "{feat}"
    );

    // A storage set to accept and ignore SITE CHMOD: the file is looked up, nothing is set.
    let mut s = session();
    s.handle_line(b"USER a");
    s.handle_line(b"PASS b");
    s.handle_auth_result(Ok(SessionUser {
        capabilities: Capabilities {
            ignore_set_mode: true,
            ..Capabilities::none()
        },
        ..alice(false)
    }));
    assert_eq!(
        s.handle_line(b"SITE CHMOD 644 f"),
        Step::Storage(StorageOp::Metadata(
            VirtualPath::parse_absolute("/f").unwrap()
        ))
    );
    let done = s.handle_storage_result(Ok(StorageOutcome::Metadata(Metadata {
        kind: FileKind::File,
        size: 1,
        modified: None,
        mode: None,
        unique: None,
    })));
    assert_eq!(code(&done), 200, "{done:?}");
    s.handle_line(b"SITE CHMOD 644 missing");
    assert_eq!(
        code(&s.handle_storage_result(Err(ErrorKind::NotFound))),
        550
    );
    assert_eq!(code(&s.handle_line(b"SITE CHMOD 4755 f")), 550);
    assert_eq!(code(&s.handle_line(b"MFF UNIX.mode=0644; f")), 504);
}

#[test]
fn site_commands_and_mff() {
    let mut s = logged_in();
    assert_eq!(
        s.handle_line(b"SITE CHMOD 640 a b"),
        Step::Storage(StorageOp::SetMode {
            path: VirtualPath::parse_absolute("/a b").unwrap(),
            mode: 0o640
        })
    );
    assert_eq!(
        code(&s.handle_storage_result(Ok(StorageOutcome::Done))),
        200
    );
    assert_eq!(code(&s.handle_line(b"SITE CHMOD 99 f")), 501);
    // Setuid, setgid and sticky bits are refused, with the mode named; 0644 with a leading
    // zero is fine.
    for line in [
        &b"SITE CHMOD 4755 f"[..],
        b"SITE CHMOD 2775 d",
        b"SITE CHMOD 1777 d",
        b"MFF UNIX.mode=4755; f",
    ] {
        let step = s.handle_line(line);
        assert_eq!(code(&step), 550, "{step:?}");
        assert!(format!("{step:?}").contains("setuid"), "{step:?}");
    }
    assert_eq!(
        s.handle_line(b"SITE CHMOD 0644 f"),
        Step::Storage(StorageOp::SetMode {
            path: VirtualPath::parse_absolute("/f").unwrap(),
            mode: 0o644
        })
    );
    s.handle_storage_result(Ok(StorageOutcome::Done));
    for line in [
        &b"SITE UTIME f 20200102030405"[..],
        b"SITE UTIME 20200102030405 f",
        b"SITE UTIME f 20200102030405 20200102030405 20200102030405 UTC",
    ] {
        let Step::Storage(StorageOp::SetModified { path, time }) = s.handle_line(line) else {
            panic!("{}", String::from_utf8_lossy(line));
        };
        assert_eq!(path.as_str(), "/f");
        assert_eq!(crate::listing::format_timeval(time), "20200102030405");
        s.handle_storage_result(Ok(StorageOutcome::Done));
    }
    assert!(matches!(
        s.handle_line(b"SITE MKDIR d"),
        Step::Storage(StorageOp::MakeDir(_))
    ));
    assert_eq!(
        code(&s.handle_storage_result(Ok(StorageOutcome::Done))),
        257
    );
    assert!(matches!(
        s.handle_line(b"SITE RMDIR d"),
        Step::Storage(StorageOp::RemoveDir(_))
    ));
    s.handle_storage_result(Ok(StorageOutcome::Done));
    assert_eq!(code(&s.handle_line(b"SITE RMDIR /")), 550);
    assert_eq!(
        s.handle_line(b"SITE SYMLINK ../../etc/passwd link"),
        Step::Storage(StorageOp::Symlink {
            target: VirtualPath::parse_absolute("/etc/passwd").unwrap(),
            link: VirtualPath::parse_absolute("/link").unwrap(),
        }),
        "a target is a path inside the root, whatever dots it has"
    );
    s.handle_storage_result(Ok(StorageOutcome::Done));
    // MFF sets the time, then the mode.
    let Step::Storage(StorageOp::SetModified { .. }) =
        s.handle_line(b"MFF modify=20200102030405;UNIX.mode=0600; f")
    else {
        panic!()
    };
    assert_eq!(
        s.handle_storage_result(Ok(StorageOutcome::Done)),
        Step::Storage(StorageOp::SetMode {
            path: VirtualPath::parse_absolute("/f").unwrap(),
            mode: 0o600
        })
    );
    assert_eq!(
        wire(&s.handle_storage_result(Ok(StorageOutcome::Done))),
        "213 Modify=20200102030405;UNIX.mode=0600; /f\r\n"
    );
    assert_eq!(code(&s.handle_line(b"MFF create=20200102030405; f")), 504);
}

#[test]
fn mfct_is_answered_plainly() {
    let mut s = logged_in();
    assert_eq!(code(&s.handle_line(b"MFCT 20200102030405 f")), 502);
    assert_eq!(code(&s.handle_line(b"MFCT 2020 f")), 501);
}

#[test]
fn site_needs_the_permission_letters() {
    let mut s = logged_in_with(PermissionMap::uniform(Permissions::parse("elr").unwrap()));
    assert_eq!(code(&s.handle_line(b"SITE CHMOD 644 f")), 550);
    assert_eq!(code(&s.handle_line(b"SITE UTIME f 20200102030405")), 550);
    assert_eq!(code(&s.handle_line(b"SITE SYMLINK a b")), 550);
    assert_eq!(code(&s.handle_line(b"SITE MKDIR d")), 550);
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

fn vpath(p: &str) -> VirtualPath {
    VirtualPath::parse_absolute(p).unwrap()
}

#[test]
fn transfers_name_the_verb_that_started_them() {
    let mut s = logged_in();
    for (line, verb) in [
        (&b"NLST"[..], "NLST"),
        (b"MLSD", "MLSD"),
        (b"LIST -a", "LIST"),
        (b"APPE f", "APPE"),
    ] {
        passive(&mut s);
        match s.handle_line(line) {
            Step::Transfer(plan) => assert_eq!(plan.verb, verb),
            other => panic!("{verb}: {other:?}"),
        }
        assert_eq!(s.take_file_op(), None, "not over yet");
        s.handle_transfer_done(TransferOutcome::Complete { bytes: 1 });
        let op = s
            .take_file_op()
            .expect("a finished transfer is a file operation");
        assert_eq!(op.verb, verb);
    }
}

#[test]
fn refused_and_failed_operations_are_described() {
    let mut s = logged_in_with(PermissionMap::uniform(Permissions::parse("elr").unwrap()));
    passive(&mut s);
    assert_eq!(code(&s.handle_line(b"STOR up.txt")), 550);
    assert_eq!(
        s.take_file_op(),
        Some(FileOp {
            verb: "STOR",
            path: vpath("/up.txt"),
            to: None,
            mode: None,
        })
    );
    assert_eq!(code(&s.handle_line(b"SITE CHMOD 644 f")), 550);
    let op = s.take_file_op().unwrap();
    assert_eq!((op.verb, op.mode), ("SITE CHMOD", Some(0o644)));

    let mut s = logged_in();
    assert!(matches!(
        s.handle_line(b"DELE gone"),
        Step::Storage(StorageOp::Delete(_))
    ));
    assert_eq!(s.take_file_op(), None, "not over yet");
    assert_eq!(
        code(&s.handle_storage_result(Err(ErrorKind::NotFound))),
        550
    );
    let op = s.take_file_op().unwrap();
    assert_eq!((op.verb, op.path), ("DELE", vpath("/gone")));

    s.handle_line(b"RNFR a");
    s.handle_storage_result(Ok(StorageOutcome::Metadata(file_meta(1))));
    assert_eq!(s.take_file_op(), None, "RNFR that succeeds waits for RNTO");
    s.handle_line(b"RNTO b");
    assert_eq!(
        code(&s.handle_storage_result(Ok(StorageOutcome::Done))),
        250
    );
    let op = s.take_file_op().unwrap();
    assert_eq!(
        (op.verb, op.path, op.to),
        ("RNTO", vpath("/a"), Some(vpath("/b")))
    );

    s.handle_line(b"SIZE missing");
    s.handle_storage_result(Err(ErrorKind::NotFound));
    assert_eq!(s.take_file_op(), None, "SIZE is not a file operation");
}
