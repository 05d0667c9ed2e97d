//! Dialogue tests: data connection setup, REST, the commands that run as transfers, ABOR.

use super::*;
use crate::backend::WriteStart;

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
        (TransferOutcome::Failed(StorageErrorKind::NotFound), 550),
        (
            TransferOutcome::Failed(StorageErrorKind::InsufficientStorage),
            452,
        ),
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
fn active_mode_is_refused_through_a_load_balancer() {
    let mut s = Session::new(
        SessionConfig {
            proxied: true,
            ..SessionConfig::default()
        },
        "192.0.2.7:40000".parse().unwrap(),
        "198.51.100.1:21".parse().unwrap(),
    );
    s.handle_line(b"USER a");
    s.handle_line(b"PASS b");
    s.handle_auth_result(Ok(SessionUser {
        name: "a".into(),
        permissions: PermissionMap::uniform(Permissions::ALL),
        tls_required: false,
        capabilities: Capabilities::default(),
    }));
    let refusal = s.handle_line(b"PORT 192,0,2,7,4,1");
    assert_eq!(code(&refusal), 502);
    assert!(text(&refusal).contains("load balancer"));
    assert_eq!(code(&s.handle_line(b"EPRT |1|192.0.2.7|2000|")), 502);
    assert_eq!(s.handle_line(b"EPSV"), Step::OpenPassive { extended: true });
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
fn the_command_table_says_which_commands_run_as_transfers() {
    let lines = [
        "RETR a",
        "STOR a",
        "APPE a",
        "STOU",
        "LIST",
        "NLST",
        "MLSD",
        "HASH a",
        "XCRC a",
        "XMD5 a",
        "XSHA1 a",
        "XSHA256 a",
        "XSHA512 a",
        "COMB t p",
        "SIZE a",
        "RANG 0 9",
        "MKD d",
        "STAT",
        "NOOP",
    ];
    for line in lines {
        let mut s = logged_in();
        s.config.features.comb = true;
        passive(&mut s);
        let (spec, _) = parse_line(line).unwrap();
        let step = s.handle_line(line.as_bytes());
        assert_eq!(
            matches!(step, Step::Transfer(_)),
            spec.transfer,
            "{line}: {step:?}"
        );
    }
}
