//! Dialogue tests: FEAT, OPTS, HELP, STAT and the feature switches.

use super::*;

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
