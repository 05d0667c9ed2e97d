//! Dialogue tests: file commands (CWD, MKD, RNFR/RNTO, SIZE, MFF, SITE...) and the line checks around them.

use super::*;

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
        code(&s.handle_storage_result(Err(StorageErrorKind::NotFound))),
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
        code(&s.handle_storage_result(Err(StorageErrorKind::NotFound))),
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
        code(&s.handle_storage_result(Err(StorageErrorKind::AlreadyExists))),
        550
    );
    s.handle_line(b"RMD full");
    assert_eq!(
        code(&s.handle_storage_result(Err(StorageErrorKind::DirectoryNotEmpty))),
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
    // The command table refuses SITE's subcommands by name, any case, before their arguments
    // are read; the others still run.
    for (line, text) in [
        (
            &b"SITE CHMOD 644 f"[..],
            "SITE CHMOD is not supported by this storage",
        ),
        (b"site chmod", "SITE CHMOD is not supported by this storage"),
        (
            b"SITE UTIME f 20200102030405",
            "SITE UTIME is not supported by this storage",
        ),
        (
            b"SITE Symlink a b",
            "SITE SYMLINK is not supported by this storage",
        ),
    ] {
        let Step::Reply(r) = s.handle_line(line) else {
            panic!()
        };
        assert_eq!((r.code.number(), r.lines[0].as_str()), (502, text));
    }
    assert!(matches!(
        s.handle_line(b"SITE MKDIR d"),
        Step::Storage(StorageOp::MakeDir(_))
    ));
    s.handle_storage_result(Ok(StorageOutcome::Done));
    assert_eq!(code(&s.handle_line(b"SITE HELP")), 214);
    assert_eq!(
        code(&s.handle_line(b"MFF UNIX.mode=0644; f")),
        504,
        "MFF's check depends on its facts and stays in its handler"
    );
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
        code(&s.handle_storage_result(Err(StorageErrorKind::NotFound))),
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
        code(&s.handle_storage_result(Err(StorageErrorKind::NotFound))),
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
    s.handle_storage_result(Err(StorageErrorKind::NotFound));
    assert_eq!(s.take_file_op(), None, "SIZE is not a file operation");
}
