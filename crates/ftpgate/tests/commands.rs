//! Every command, driven through a real FTP client library (suppaftp) and, where a library
//! hides the exchange, by hand.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::Cursor;

use common::*;
use suppaftp::list::{File, ListParser};
use suppaftp::types::FileType;

#[test]
fn login_pwd_and_bad_password() {
    let server = TestServer::start();
    let mut ftp = suppaftp::FtpStream::connect(server.addr).unwrap();
    assert!(ftp.get_welcome_msg().unwrap().contains("ftpgate"));
    assert_eq!(code_of(ftp.login(USER, "wrong")), 530);
    ftp.login(USER, PASS).unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/");
    ftp.quit().unwrap();
}

#[test]
fn unknown_user_and_wrong_password_get_identical_replies() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let a = (raw.cmd("USER nobody"), raw.cmd("PASS x"));
    let b = (raw.cmd(&format!("USER {USER}")), raw.cmd("PASS x"));
    assert_eq!(a, b);
    assert_eq!(a.1.0, 530);
}

#[test]
fn too_many_failed_logins_close_the_connection() {
    let server = TestServer::start();
    let mut raw = server.raw();
    for _ in 0..2 {
        raw.cmd("USER x");
        assert_eq!(raw.code("PASS y"), 530);
    }
    raw.cmd("USER x");
    assert_eq!(raw.code("PASS y"), 421);
    assert!(raw.is_closed());
}

#[test]
fn commands_before_login_are_refused() {
    let server = TestServer::start();
    let mut raw = server.raw();
    for cmd in [
        "PWD",
        "CWD /",
        "LIST",
        "RETR a",
        "STOR a",
        "MKD a",
        "PASV",
        "EPSV",
        "PORT 127,0,0,1,4,1",
        "SIZE a",
        "MLSD",
    ] {
        assert_eq!(raw.code(cmd), 530, "{cmd}");
    }
    assert_eq!(raw.code("SYST"), 215);
    assert_eq!(raw.code("FEAT"), 211);
}

#[test]
fn directories_mkd_cwd_cdup_rmd() {
    let server = TestServer::start();
    let mut ftp = server.client();
    ftp.mkdir("a").unwrap();
    ftp.mkdir("a/b").unwrap();
    assert!(server.path("a/b").is_dir());
    ftp.cwd("a/b").unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/a/b");
    ftp.cdup().unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/a");
    assert_eq!(code_of(ftp.cwd("missing")), 550);
    assert_eq!(code_of(ftp.mkdir("b")), 550); // exists
    ftp.cwd("/").unwrap();
    assert_eq!(code_of(ftp.rmdir("a")), 550); // not empty
    ftp.rmdir("a/b").unwrap();
    ftp.rmdir("a").unwrap();
    assert!(!server.path("a").exists());

    let mut raw = server.raw_logged_in();
    assert_eq!(raw.cmd("XMKD x y").0, 257);
    assert!(raw.cmd("XCWD x y").1.contains("/x y"));
    assert!(raw.cmd("XPWD").1.contains("\"/x y\""));
    assert_eq!(raw.code("XCUP"), 250);
    assert_eq!(raw.code("XRMD x y"), 250);
    assert_eq!(raw.code("RMD /"), 550);
}

#[test]
fn mkd_reply_quotes_embedded_quotes() {
    let server = TestServer::start();
    let mut raw = server.raw_logged_in();
    let (code, text) = raw.cmd("MKD say \"hi\"");
    assert_eq!(code, 257);
    assert!(text.contains("\"/say \"\"hi\"\"\""), "{text}");
}

#[test]
fn store_retrieve_delete_rename() {
    let server = TestServer::start();
    let mut ftp = server.client();
    let data = random_bytes(3 * 1024 * 1024 + 17, 1);
    assert_eq!(
        ftp.put_file("f.bin", &mut Cursor::new(&data)).unwrap(),
        data.len() as u64
    );
    assert_eq!(std::fs::read(server.path("f.bin")).unwrap(), data);
    assert_eq!(ftp.retr_as_buffer("f.bin").unwrap().into_inner(), data);
    assert_eq!(ftp.size("f.bin").unwrap(), data.len());
    ftp.rename("f.bin", "g.bin").unwrap();
    assert!(server.path("g.bin").exists() && !server.path("f.bin").exists());
    assert_eq!(code_of(ftp.retr_as_buffer("f.bin")), 550);
    assert_eq!(code_of(ftp.rm("f.bin")), 550);
    ftp.mkdir("d").unwrap();
    assert_eq!(code_of(ftp.rm("d")), 550); // DELE of a directory
    ftp.rm("g.bin").unwrap();
    assert!(!server.path("g.bin").exists());
}

#[test]
fn zero_byte_file() {
    let server = TestServer::start();
    let mut ftp = server.client();
    ftp.put_file("empty", &mut Cursor::new(Vec::new())).unwrap();
    assert_eq!(std::fs::metadata(server.path("empty")).unwrap().len(), 0);
    assert!(ftp.retr_as_buffer("empty").unwrap().into_inner().is_empty());
}

#[test]
fn store_replaces_an_existing_file() {
    let server = TestServer::start();
    write_file(&server.path("f"), b"old content that is longer");
    let mut ftp = server.client();
    ftp.put_file("f", &mut Cursor::new(b"new")).unwrap();
    assert_eq!(std::fs::read(server.path("f")).unwrap(), b"new");
}

#[test]
fn rnto_requires_rnfr_immediately_before() {
    let server = TestServer::start();
    write_file(&server.path("a"), b"x");
    let mut raw = server.raw_logged_in();
    assert_eq!(raw.code("RNTO b"), 503);
    assert_eq!(raw.code("RNFR a"), 350);
    assert_eq!(raw.code("NOOP"), 200);
    assert_eq!(raw.code("RNTO b"), 503);
    assert_eq!(raw.code("RNFR missing"), 550);
    assert_eq!(raw.code("RNFR a"), 350);
    assert_eq!(raw.code("RNTO b"), 250);
    assert!(server.path("b").exists());
}

#[test]
fn special_and_utf8_names() {
    let server = TestServer::start();
    let mut ftp = server.client();
    let names = [
        "with space.txt",
        "quote\"d'.txt",
        "hash#1.txt",
        "100%.txt",
        "-dash.txt",
        "Grüße 日本.txt",
        "back\\slash",
    ];
    for (i, name) in names.iter().enumerate() {
        ftp.put_file(name, &mut Cursor::new(vec![i as u8; i + 1]))
            .unwrap();
        assert_eq!(
            std::fs::read(server.path(name)).unwrap(),
            vec![i as u8; i + 1],
            "{name}"
        );
        assert_eq!(
            ftp.retr_as_buffer(name).unwrap().into_inner(),
            vec![i as u8; i + 1],
            "{name}"
        );
    }
    let mut listed = ftp.nlst(None).unwrap();
    listed.sort();
    let mut expected: Vec<String> = names
        .iter()
        .map(|s| s.to_string())
        .chain(["pub".to_string()])
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
}

#[test]
fn list_is_parseable_ls_format() {
    let server = TestServer::start();
    let mut ftp = server.client();
    ftp.mkdir("dir").unwrap();
    ftp.put_file("file one.txt", &mut Cursor::new(vec![0u8; 1234]))
        .unwrap();
    let old = server.path("old.txt");
    write_file(&old, b"12");
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_262_304_000))
        .unwrap();
    let lines = ftp.list(None).unwrap();
    let files: Vec<File> = lines
        .iter()
        .map(|l| ListParser::parse_posix(l).unwrap_or_else(|e| panic!("{l:?}: {e:?}")))
        .collect();
    let by_name = |n: &str| {
        files
            .iter()
            .find(|f| f.name() == n)
            .unwrap_or_else(|| panic!("{n} missing from {lines:?}"))
    };
    assert!(by_name("dir").is_directory());
    assert_eq!(by_name("file one.txt").size(), 1234);
    assert!(by_name("file one.txt").is_file());
    let old_line = lines.iter().find(|l| l.ends_with("old.txt")).unwrap();
    assert!(old_line.contains("Jan  1  2010"), "{old_line}");
    let recent = lines.iter().find(|l| l.ends_with("file one.txt")).unwrap();
    assert!(recent.contains(':'), "recent files show the time: {recent}");
}

#[test]
fn list_options_and_hidden_files() {
    let server = TestServer::start();
    write_file(&server.path(".hidden"), b"h");
    write_file(&server.path("shown"), b"s");
    let mut raw = server.raw_logged_in();
    let (code, plain) = raw.download("LIST");
    assert_eq!(code, 226);
    let plain = String::from_utf8(plain).unwrap();
    assert!(
        plain.contains("shown") && !plain.contains(".hidden"),
        "{plain}"
    );
    for cmd in ["LIST -a", "LIST -la", "LIST -al", "NLST -a"] {
        let (code, all) = raw.download(cmd);
        assert_eq!(code, 226);
        assert!(String::from_utf8(all).unwrap().contains(".hidden"), "{cmd}");
    }
    let (_, long) = raw.download("LIST -l");
    let long = String::from_utf8(long).unwrap();
    assert!(
        long.lines()
            .any(|l| l.starts_with('-') && l.ends_with(" shown")),
        "{long}"
    );
    let (code, named) = raw.download("LIST -la shown");
    assert_eq!(code, 226);
    assert!(String::from_utf8(named).unwrap().ends_with("shown\r\n"));
}

#[test]
fn nlst_of_a_file_answers_its_name() {
    let server = TestServer::start();
    write_file(&server.path("sub/f.txt"), b"x");
    let mut ftp = server.client();
    assert_eq!(
        ftp.nlst(Some("sub/f.txt")).unwrap(),
        vec!["f.txt".to_string()]
    );
    assert_eq!(ftp.nlst(Some("sub")).unwrap(), vec!["f.txt".to_string()]);
    assert_eq!(code_of(ftp.nlst(Some("missing"))), 550);
}

#[test]
fn mlsd_and_mlst_facts() {
    let server = TestServer::start();
    write_file(&server.path("d/f.txt"), b"hello");
    let mut ftp = server.client();
    let lines = ftp.mlsd(Some("d")).unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    for fact in [
        "type=file;",
        "size=5;",
        "modify=",
        "perm=adfrw;",
        "unique=",
        "unix.mode=0644;",
    ] {
        assert!(line.contains(fact), "{fact} missing in {line}");
    }
    assert!(line.ends_with(" f.txt"));
    let file = ListParser::parse_mlsd(line).unwrap();
    assert_eq!(file.size(), 5);
    let dir = ftp.mlsd(None).unwrap();
    assert!(
        dir.iter()
            .any(|l| l.starts_with("type=dir;") && l.ends_with(" d")),
        "{dir:?}"
    );
    let mlst = ftp.mlst(Some("d/f.txt")).unwrap();
    assert!(
        mlst.contains("type=file;size=5;") && mlst.ends_with("/d/f.txt"),
        "{mlst}"
    );

    let mut raw = server.raw_logged_in();
    assert_eq!(
        raw.cmd("OPTS MLST type;size;").1.trim_end(),
        "200 MLST OPTS type;size;"
    );
    let (_, text) = raw.cmd("MLST /d/f.txt");
    assert!(
        text.contains("\r\n type=file;size=5; /d/f.txt\r\n"),
        "{text}"
    );
    let (code, _) = raw.download("MLSD d/f.txt");
    assert_eq!(code, 550);
}

#[test]
fn size_mdtm_mfmt() {
    let server = TestServer::start();
    write_file(&server.path("f"), b"0123456789");
    let mut raw = server.raw_logged_in();
    assert_eq!(
        raw.cmd("SIZE f").1.trim_end(),
        "213 10",
        "SIZE answers the stored size in TYPE A, the default"
    );
    raw.cmd("TYPE I");
    assert_eq!(raw.cmd("SIZE f").1.trim_end(), "213 10");
    assert_eq!(raw.code("SIZE missing"), 550);
    assert_eq!(
        raw.cmd("MFMT 20200102030405 f").1.trim_end(),
        "213 Modify=20200102030405; /f"
    );
    assert_eq!(raw.cmd("MDTM f").1.trim_end(), "213 20200102030405");
    let mtime = std::fs::metadata(server.path("f"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime,
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_577_934_245)
    );
    assert_eq!(raw.code("MFMT 2020 f"), 501);
    assert_eq!(raw.code("MDTM missing"), 550);
}

#[test]
fn informational_commands() {
    let server = TestServer::start();
    let mut raw = server.raw_logged_in();
    assert_eq!(raw.cmd("SYST").1.trim_end(), "215 UNIX Type: L8");
    let (code, feat) = raw.cmd("FEAT");
    assert_eq!(code, 211);
    for f in [
        " UTF8\r\n",
        " EPSV\r\n",
        " EPRT\r\n",
        " SIZE\r\n",
        " MDTM\r\n",
        " MFMT\r\n",
        " REST STREAM\r\n",
        " MLST type*;",
        " CLNT\r\n",
    ] {
        assert!(feat.contains(f), "{f:?} missing in {feat}");
    }
    let (code, help) = raw.cmd("HELP");
    assert_eq!(code, 214);
    assert!(help.contains("RETR") && help.contains("MLSD"));
    assert!(raw.cmd("HELP stor").1.contains("STOR <sp> pathname"));
    assert_eq!(raw.code("SITE HELP"), 214);
    assert_eq!(raw.code("SITE NONSENSE"), 504);
    assert_eq!(raw.code("NOOP"), 200);
    assert_eq!(raw.code("ACCT x"), 202);
    assert_eq!(raw.code("ALLO 1000"), 200, "checked against the free space");
    assert_eq!(raw.code("ALLO"), 202);
    assert_eq!(raw.code("MODE S"), 200);
    assert_eq!(raw.code("MODE B"), 504);
    assert_eq!(raw.code("STRU F"), 200);
    assert_eq!(raw.code("STRU R"), 504);
    for t in ["TYPE A", "TYPE A N", "TYPE I", "TYPE L 8"] {
        assert_eq!(raw.code(t), 200, "{t}");
    }
    assert_eq!(raw.code("TYPE E"), 504);
    assert_eq!(raw.code("OPTS UTF8 ON"), 200);
    assert_eq!(raw.code("CLNT test client 1.0"), 200);
    assert_eq!(raw.code("BOGUS"), 500);
    let (code, status) = raw.cmd("STAT");
    assert_eq!(code, 211);
    assert!(status.contains("Logged in as alice"), "{status}");
}

#[test]
fn stat_path_lists_over_the_control_connection() {
    let server = TestServer::start();
    write_file(&server.path("d/one"), b"1");
    write_file(&server.path("d/two"), b"22");
    let mut raw = server.raw_logged_in();
    let (code, text) = raw.cmd("STAT d");
    assert_eq!(code, 213);
    assert!(text.starts_with("213-Status of /d:\r\n"), "{text}");
    assert!(
        text.contains(" one\r\n")
            && text.contains(" two\r\n")
            && text.ends_with("213 End of status\r\n"),
        "{text}"
    );
    assert_eq!(raw.code("STAT missing"), 550);
    let (code, text) = raw.cmd("STAT d/two");
    assert_eq!(code, 213);
    assert!(text.contains(" 2 ") && text.contains("two\r\n"), "{text}");
}

#[test]
fn stou_makes_unique_names() {
    let server = TestServer::start();
    write_file(&server.path("name.txt"), b"existing");
    let mut raw = server.raw_logged_in();
    let addr = raw.epsv();
    let mut data = std::net::TcpStream::connect(addr).unwrap();
    let (code, text) = raw.cmd("STOU name.txt");
    assert_eq!(code, 150, "{text}");
    assert!(text.contains("FILE: name.txt.1"), "{text}");
    std::io::Write::write_all(&mut data, b"fresh").unwrap();
    drop(data);
    assert_eq!(raw.reply().0, 226);
    assert_eq!(std::fs::read(server.path("name.txt")).unwrap(), b"existing");
    assert_eq!(std::fs::read(server.path("name.txt.1")).unwrap(), b"fresh");
}

#[test]
fn rein_logs_out_and_allows_a_new_login() {
    let server = TestServer::start();
    let mut raw = server.raw_logged_in();
    assert_eq!(raw.code("REIN"), 220);
    assert_eq!(raw.code("PWD"), 530);
    raw.login(READER, PASS);
    assert_eq!(raw.code("PWD"), 257);
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.send_bytes(format!("USER {USER}\r\nPASS {PASS}\r\nPWD\r\nSYST\r\nNOOP\r\n").as_bytes());
    let codes: Vec<u16> = (0..5).map(|_| raw.reply().0).collect();
    assert_eq!(codes, [331, 230, 257, 215, 200]);
}

#[test]
fn quit_says_goodbye_and_closes() {
    let server = TestServer::start();
    let mut raw = server.raw_logged_in();
    assert_eq!(raw.code("QUIT"), 221);
    assert!(raw.is_closed());
}

#[test]
fn ascii_mode_converts_line_endings_both_ways() {
    let server = TestServer::start();
    let mut ftp = server.client();
    ftp.transfer_type(FileType::Ascii(suppaftp::types::FormatControl::Default))
        .unwrap();
    ftp.put_file(
        "text.txt",
        &mut Cursor::new(b"one\r\ntwo\r\nthree".to_vec()),
    )
    .unwrap();
    assert_eq!(
        std::fs::read(server.path("text.txt")).unwrap(),
        b"one\ntwo\nthree"
    );
    write_file(&server.path("unix.txt"), b"a\nb\n");
    let mut raw = server.raw_logged_in();
    raw.cmd("TYPE A");
    let (code, bytes) = raw.download("RETR unix.txt");
    assert_eq!(code, 226);
    assert_eq!(bytes, b"a\r\nb\r\n");
    raw.cmd("TYPE I");
    let (_, bytes) = raw.download("RETR unix.txt");
    assert_eq!(bytes, b"a\nb\n");
}

#[test]
fn anonymous_login_is_off_by_default_and_read_only_when_on() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.cmd("USER anonymous");
    assert_eq!(raw.code("PASS guest@example.com"), 530);

    let server = TestServer::start_with(Options {
        anonymous: true,
        ..Options::default()
    });
    write_file(&server.path("pub/readme"), b"hello");
    let mut raw = server.raw();
    raw.login("anonymous", "guest@example.com");
    let (code, bytes) = raw.download("RETR readme");
    assert_eq!((code, bytes.as_slice()), (226, &b"hello"[..]));
    assert_eq!(raw.upload("STOR new", b"x"), 550);
    assert_eq!(raw.code("MKD d"), 550);
    assert_eq!(raw.code("DELE readme"), 550);
    // The anonymous root is pub/: the rest of the tree is out of reach.
    write_file(&server.path("secret"), b"private");
    assert_eq!(raw.download("RETR ../secret").0, 550);
    assert_eq!(raw.download("RETR /../../secret").0, 550);
}
