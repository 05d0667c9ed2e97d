//! Listings on local disk: names sorted up to `listing_sort_limit` and streamed beyond it,
//! wildcards in LIST and NLST, `listing_time_zone` in LIST times, and MLSx facts that FEAT
//! offers present in every entry.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use ftpgate::ListingTimeZone;

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

fn lines(bytes: Vec<u8>) -> Vec<String> {
    text(bytes).lines().map(str::to_string).collect()
}

/// Files made in an order that is neither sorted nor reversed.
const NAMES: [&str; 8] = [
    "m.txt", "b.txt", "z.log", "a.txt", "q.dat", "c.TXT", "y.txt", "k.log",
];

fn server_with(configure: impl FnOnce(&mut Options)) -> TestServer {
    let mut options = Options::default();
    configure(&mut options);
    let s = TestServer::start_with(options);
    for name in NAMES {
        write_file(&s.path(name), name.as_bytes());
    }
    s
}

#[test]
fn small_directories_are_listed_sorted() {
    let s = server_with(|_| {});
    let mut raw = s.raw_logged_in();
    let mut sorted: Vec<String> = NAMES
        .iter()
        .map(|n| n.to_string())
        .chain(["pub".into()])
        .collect();
    sorted.sort();
    let (code, names) = raw.download("NLST");
    assert_eq!(code, 226);
    assert_eq!(lines(names), sorted);
    let (code, list) = raw.download("LIST");
    assert_eq!(code, 226);
    let listed: Vec<String> = lines(list)
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(listed, sorted);
    let (code, facts) = raw.download("MLSD");
    assert_eq!(code, 226);
    let listed: Vec<String> = lines(facts)
        .iter()
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect();
    assert_eq!(listed, sorted);
}

#[test]
fn directories_beyond_the_sort_limit_stream_every_entry() {
    let s = server_with(|o| o.config.listing_sort_limit = 3);
    let mut raw = s.raw_logged_in();
    let (code, names) = raw.download("NLST");
    assert_eq!(code, 226);
    let mut listed = lines(names);
    assert_eq!(listed.len(), NAMES.len() + 1);
    listed.sort();
    let mut expected: Vec<String> = NAMES
        .iter()
        .map(|n| n.to_string())
        .chain(["pub".into()])
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
}

#[test]
fn wildcards_in_nlst_and_list() {
    let s = server_with(|_| {});
    std::fs::create_dir(s.path("sub")).unwrap();
    for name in ["two.txt", "one.txt", "three.log", ".hidden.txt"] {
        write_file(&s.path(&format!("sub/{name}")), b"x");
    }
    // A file whose name holds a wildcard is listed as itself.
    write_file(&s.path("a*b"), b"x");
    let mut raw = s.raw_logged_in();
    let nlst = |raw: &mut Raw, arg: &str| {
        let (code, names) = raw.download(&format!("NLST {arg}"));
        assert_eq!(code, 226, "NLST {arg}");
        lines(names)
    };
    assert_eq!(
        nlst(&mut raw, "*.txt"),
        ["a.txt", "b.txt", "m.txt", "y.txt"]
    );
    assert_eq!(nlst(&mut raw, "?.log"), ["k.log", "z.log"]);
    assert_eq!(nlst(&mut raw, "[a-c].*"), ["a.txt", "b.txt", "c.TXT"]);
    assert_eq!(nlst(&mut raw, "[!a-y]*"), ["z.log"]);
    // The directory part is kept, so `mget sub/*.txt` can retrieve what it gets.
    assert_eq!(nlst(&mut raw, "sub/*.txt"), ["sub/one.txt", "sub/two.txt"]);
    assert_eq!(
        nlst(&mut raw, "/sub/t*"),
        ["/sub/three.log", "/sub/two.txt"]
    );
    assert_eq!(nlst(&mut raw, "sub/.*"), ["sub/.hidden.txt"]);
    assert_eq!(nlst(&mut raw, "a*b"), ["a*b"]);
    // Nothing matches: an empty listing, as vsftpd sends.
    assert!(nlst(&mut raw, "*.none").is_empty());
    let (code, list) = raw.download("LIST sub/*.txt");
    assert_eq!(code, 226);
    let list = lines(list);
    assert_eq!(list.len(), 2);
    assert!(
        list[0].ends_with(" one.txt") && list[1].ends_with(" two.txt"),
        "{list:?}"
    );
    let (code, list) = raw.download("LIST -l *.log");
    assert_eq!(code, 226);
    assert_eq!(lines(list).len(), 2);
    // No wildcards in directory names, and none for MLSD (RFC 3659).
    assert_eq!(raw.download("NLST s*/one.txt").0, 550);
    assert_eq!(raw.download("MLSD s*").0, 550);
    // Patterns are bounded.
    assert_eq!(raw.cmd(&format!("NLST {}", "*a".repeat(17))).0, 501);
}

#[test]
fn list_times_in_the_configured_zone() {
    let s = server_with(|o| {
        o.config.listing_time_zone = ListingTimeZone::named("Asia/Kolkata").unwrap();
    });
    // An hour ago, so LIST shows the time of day.
    let when = SystemTime::now() - Duration::from_secs(3600);
    let file = std::fs::File::options()
        .write(true)
        .open(s.path("a.txt"))
        .unwrap();
    file.set_modified(when).unwrap();
    drop(file);
    let secs = when.duration_since(UNIX_EPOCH).unwrap().as_secs();
    // India is UTC+05:30 all year.
    let local = secs + 5 * 3600 + 1800;
    let expected = format!("{:02}:{:02} a.txt", local / 3600 % 24, local / 60 % 60);
    let mut raw = s.raw_logged_in();
    let (code, list) = raw.download("LIST a.txt");
    assert_eq!(code, 226);
    let list = text(list);
    assert!(list.trim_end().ends_with(&expected), "{list} vs {expected}");
    // STAT shows the same time; MLST stays UTC.
    let (_, stat) = raw.cmd("STAT a.txt");
    assert!(stat.contains(&expected), "{stat}");
    let (_, mlst) = raw.cmd("MLST a.txt");
    let utc = format!(
        "{:02}{:02}{:02};",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    );
    let modify = mlst.split("modify=").nth(1).unwrap();
    assert_eq!(&modify[8..15], utc, "{mlst}");
}

#[test]
fn every_fact_feat_offers_is_in_every_entry_on_disk() {
    let s = TestServer::start();
    std::fs::create_dir(s.path("dir")).unwrap();
    write_file(&s.path("file.txt"), b"abc");
    let mut raw = s.raw_logged_in();
    check_advertised_facts(&mut raw, false);
    let (_, feat) = raw.cmd("FEAT");
    assert!(
        feat.contains("MLST type*;size*;modify*;perm*;unique*;unix.mode*;"),
        "{feat}"
    );
}
