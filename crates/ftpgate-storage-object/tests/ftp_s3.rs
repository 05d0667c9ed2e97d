//! FTP in front of a real S3-compatible store (Garage, started by the test harness): uploads
//! streamed as multipart parts that commit or abort, resume across server instances, ranged
//! downloads, paged listings, renames, limits.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use ftpgate_core::{Storage, VirtualPath};
use ftpgate_storage_object::{ObjectStorage, ObjectStorageFactory, S3Config};
use ftpgate_test_support::garage;
use ftpgate_test_support::server::*;

const MIB: usize = 1024 * 1024;

struct S3Server {
    server: TestServer,
    /// The user's home as seen through the S3 API, to check what the store holds.
    store: ObjectStorage,
    runtime: tokio::runtime::Runtime,
}

fn s3_config(keep_partial: bool) -> S3Config {
    let g = garage::shared();
    let mut config = S3Config::new(
        g.endpoint.parse().unwrap(),
        &g.region,
        &g.bucket,
        &g.access_key,
        &g.secret_key,
    );
    config.part_size = 5 * MIB;
    config.parts_in_flight = 2;
    config.keep_partial_uploads = keep_partial;
    config
}

fn start(keep_partial: bool, prefix: &str, configure: impl FnOnce(&mut Options)) -> S3Server {
    let factory = Arc::new(ObjectStorageFactory::s3(s3_config(keep_partial)).unwrap());
    // The test reads the store with a client of its own: HTTP connections belong to the
    // runtime that opened them, and the server runs on another.
    let store = ObjectStorageFactory::s3(s3_config(keep_partial))
        .unwrap()
        .storage_at(prefix)
        .unwrap();
    let mut options = Options {
        storage: Some((factory, prefix.to_string())),
        ..Options::default()
    };
    options.config.data_timeout = Duration::from_secs(20);
    configure(&mut options);
    let server = TestServer::start_with(options);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    S3Server {
        server,
        store,
        runtime,
    }
}

impl S3Server {
    fn object(&self, name: &str) -> Option<Vec<u8>> {
        let path = VirtualPath::parse_absolute(name).unwrap();
        self.runtime.block_on(async {
            let mut reader = self.store.read(&path, 0).await.ok()?;
            let mut bytes = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes)
                .await
                .ok()?;
            Some(bytes)
        })
    }

    fn incomplete(&self) -> Vec<String> {
        self.runtime
            .block_on(self.store.incomplete_uploads())
            .unwrap()
    }

    fn raw(&self) -> Raw {
        let mut raw = self.server.raw_logged_in();
        raw.cmd("TYPE I");
        raw
    }
}

#[test]
fn uploads_of_every_size_are_stored_byte_for_byte() {
    let s = start(false, &garage::unique_prefix("sizes"), |_| {});
    let mut raw = s.raw();
    for (name, size) in [
        ("empty", 0),
        ("one", 1),
        ("small", 100_000),
        ("one-part", 5 * MIB),
        ("many-parts", 17 * MIB + 123),
    ] {
        let bytes = random_bytes(size, size as u64 + 1);
        assert_eq!(raw.upload(&format!("STOR {name}"), &bytes), 226, "{name}");
        assert_eq!(s.object(name).unwrap(), bytes, "{name} through the S3 API");
        let (code, back) = raw.download(&format!("RETR {name}"));
        assert_eq!((code, back == bytes), (226, true), "{name} through FTP");
        assert_eq!(
            raw.cmd(&format!("SIZE {name}")).1.trim_end(),
            format!("213 {size}")
        );
    }
    assert!(s.incomplete().is_empty());
}

#[test]
fn abor_reset_and_dropped_control_leave_no_object_and_no_parts() {
    let s = start(false, &garage::unique_prefix("abort"), |_| {});
    let big = random_bytes(16 * MIB, 7);
    // ABOR mid-upload, with whole parts already sent.
    let mut raw = s.raw();
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("STOR aborted"), 150);
    data.write_all(&big[..12 * MIB]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    raw.send("ABOR");
    assert_eq!(raw.reply().0, 426);
    assert_eq!(raw.reply().0, 226);
    drop(data);
    // A reset data connection.
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("STOR reset"), 150);
    data.write_all(&big[..11 * MIB]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    set_reset_on_close(&data);
    drop(data);
    assert_eq!(raw.reply().0, 426);
    // A control connection that goes away.
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("STOR dropped"), 150);
    data.write_all(&big[..11 * MIB]).unwrap();
    drop(raw);
    let _ = data.read(&mut [0u8; 1]);
    // Aborting waits for parts in flight; allow for a loaded machine.
    for name in ["aborted", "reset", "dropped"] {
        for _ in 0..300 {
            if s.object(name).is_none() && s.incomplete().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            s.object(name).is_none(),
            "{name}: a truncated object appeared"
        );
    }
    assert!(
        s.incomplete().is_empty(),
        "orphaned multipart uploads: {:?}",
        s.incomplete()
    );
}

#[test]
fn an_interrupted_upload_resumes_through_another_server_instance() {
    let prefix = garage::unique_prefix("resume");
    let bytes = random_bytes(23 * MIB + 5, 9);
    {
        let first = start(true, &prefix, |_| {});
        let mut raw = first.raw();
        let addr = raw.epsv();
        let data = TcpStream::connect(addr).unwrap();
        assert_eq!(raw.code("STOR big.bin"), 150);
        (&data).write_all(&bytes[..17 * MIB]).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        set_reset_on_close(&data);
        drop(data);
        assert_eq!(raw.reply().0, 426);
        assert!(
            first.object("big.bin").is_none(),
            "nothing complete is visible"
        );
    }
    // Another ftpgate instance sharing the bucket: SIZE reports the bytes safely stored (whole
    // parts), and REST + STOR continues the same multipart upload.
    let second = start(true, &prefix, |_| {});
    let mut raw = second.raw();
    let (code, text) = raw.cmd("SIZE big.bin");
    assert_eq!(code, 213);
    let stored: usize = text[4..].trim().parse().unwrap();
    assert!(
        stored > 0 && stored % (5 * MIB) == 0 && stored <= 17 * MIB,
        "{stored}"
    );
    assert_eq!(raw.code("REST 1234"), 350);
    assert_eq!(
        raw.upload("STOR big.bin", b"x"),
        554,
        "only a part boundary can be resumed"
    );
    assert_eq!(raw.code(&format!("REST {stored}")), 350);
    assert_eq!(raw.upload("STOR big.bin", &bytes[stored..]), 226);
    assert_eq!(second.object("big.bin").unwrap(), bytes);
    assert!(second.incomplete().is_empty());
}

#[test]
fn rest_and_retr_start_at_any_offset() {
    let s = start(false, &garage::unique_prefix("ranges"), |_| {});
    let bytes = random_bytes(11 * MIB + 17, 11);
    let mut raw = s.raw();
    assert_eq!(raw.upload("STOR f", &bytes), 226);
    for offset in [0, 1, 5 * MIB + 3, bytes.len() - 1, bytes.len()] {
        assert_eq!(raw.code(&format!("REST {offset}")), 350);
        let (code, tail) = raw.download("RETR f");
        assert_eq!(code, 226, "offset {offset}");
        assert!(tail == bytes[offset..], "offset {offset}");
    }
    assert_eq!(raw.code(&format!("REST {}", bytes.len() + 1)), 350);
    assert_eq!(raw.download("RETR f").0, 554);
}

#[test]
fn appe_extends_small_and_large_objects() {
    let s = start(false, &garage::unique_prefix("appe"), |_| {});
    let mut raw = s.raw();
    assert_eq!(raw.upload("STOR small", b"hello "), 226);
    assert_eq!(raw.upload("APPE small", b"world"), 226);
    assert_eq!(s.object("small").unwrap(), b"hello world");
    let large = random_bytes(6 * MIB, 12);
    assert_eq!(raw.upload("STOR large", &large), 226);
    assert_eq!(
        raw.upload("APPE large", b"tail"),
        226,
        "copied in the store, then appended"
    );
    let mut expected = large.clone();
    expected.extend_from_slice(b"tail");
    assert_eq!(s.object("large").unwrap(), expected);
    assert_eq!(raw.upload("APPE new", b"created"), 226);
    assert_eq!(s.object("new").unwrap(), b"created");
    assert!(s.incomplete().is_empty());
}

#[test]
fn directories_are_prefixes_with_markers() {
    let s = start(false, &garage::unique_prefix("dirs"), |_| {});
    let mut raw = s.raw();
    assert_eq!(raw.code("MKD empty"), 257);
    assert_eq!(raw.code("MKD empty"), 550);
    assert_eq!(raw.code("CWD empty"), 250);
    assert_eq!(raw.code("CWD /missing"), 550);
    assert_eq!(raw.code("CWD /"), 250);
    assert_eq!(
        raw.upload("STOR full/f", b"x"),
        550,
        "no such directory yet"
    );
    assert_eq!(raw.code("MKD full"), 257);
    assert_eq!(raw.upload("STOR full/f", b"x"), 226);
    let (code, listing) = raw.download("MLSD");
    assert_eq!(code, 226);
    let listing = String::from_utf8(listing).unwrap();
    assert!(
        listing.contains("type=dir;")
            && listing.contains(" empty\r\n")
            && listing.contains(" full\r\n"),
        "{listing}"
    );
    assert_eq!(raw.code("RMD full"), 550, "not empty");
    assert_eq!(raw.code("DELE full/f"), 250);
    assert_eq!(raw.code("DELE full/f"), 550);
    assert_eq!(raw.code("RMD full"), 250);
    assert_eq!(raw.code("RMD empty"), 250);
    assert_eq!(raw.upload("STOR t", b"x"), 226);
    assert_eq!(
        raw.code("MFMT 20200101000000 t"),
        502,
        "object stores keep their own times: said plainly"
    );
    assert_eq!(raw.code("DELE t"), 250);
    let (code, listing) = raw.download("NLST");
    assert_eq!((code, listing.as_slice()), (226, &b""[..]));
}

#[test]
fn renames_of_files_and_directories() {
    let s = start(false, &garage::unique_prefix("rename"), |_| {});
    let mut raw = s.raw();
    assert_eq!(raw.upload("STOR a", b"file a"), 226);
    assert_eq!(raw.code("RNFR a"), 350);
    assert_eq!(raw.code("RNTO b"), 250);
    assert!(s.object("a").is_none());
    assert_eq!(s.object("b").unwrap(), b"file a");
    assert_eq!(raw.code("MKD d"), 257);
    assert_eq!(raw.code("MKD d/sub"), 257);
    for name in ["d/one", "d/two", "d/sub/three"] {
        assert_eq!(raw.upload(&format!("STOR {name}"), name.as_bytes()), 226);
    }
    assert_eq!(raw.code("RNFR d"), 350);
    assert_eq!(raw.code("RNTO e"), 250);
    assert_eq!(s.object("e/sub/three").unwrap(), b"d/sub/three");
    assert!(s.object("d/one").is_none());
    assert_eq!(raw.code("CWD d"), 550);
    assert_eq!(raw.download("NLST e").1, b"one\r\nsub\r\ntwo\r\n");
}

#[test]
fn a_directory_rename_beyond_the_limit_is_refused_clearly() {
    let factory = {
        let mut config = s3_config(false);
        config.max_rename_objects = 2;
        Arc::new(ObjectStorageFactory::s3(config).unwrap())
    };
    let prefix = garage::unique_prefix("limit");
    let store = ObjectStorageFactory::s3(s3_config(false))
        .unwrap()
        .storage_at(&prefix)
        .unwrap();
    let server = TestServer::start_with(Options {
        storage: Some((factory, prefix)),
        ..Options::default()
    });
    let mut raw = server.raw_logged_in();
    assert_eq!(raw.code("MKD d"), 257);
    for name in ["d/1", "d/2", "d/3"] {
        assert_eq!(raw.upload(&format!("STOR {name}"), b"x"), 226);
    }
    assert_eq!(raw.code("RNFR d"), 350);
    let (code, text) = raw.cmd("RNTO e");
    assert_eq!(code, 502, "{text}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(
        runtime
            .block_on(store.metadata(&VirtualPath::parse_absolute("/d/3").unwrap()))
            .is_ok(),
        "nothing moved"
    );
}

#[test]
fn a_file_over_the_maximum_size_is_refused_and_nothing_kept() {
    let s = start(false, &garage::unique_prefix("max"), |o| {
        o.config.max_file_size = Some(6 * MIB as u64)
    });
    let mut raw = s.raw();
    assert_eq!(raw.upload("STOR big", &random_bytes(12 * MIB, 13)), 552);
    assert!(s.object("big").is_none());
    for _ in 0..30 {
        if s.incomplete().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(s.incomplete().is_empty());
    assert_eq!(raw.upload("STOR fits", &random_bytes(6 * MIB, 14)), 226);
}

#[test]
fn listings_page_through_twenty_thousand_keys() {
    let prefix = garage::unique_prefix("many");
    let s = start(false, &prefix, |_| {});
    // 20,000 objects put straight into the store, a few at a time.
    s.runtime.block_on(async {
        let store = Arc::new(s.store.clone());
        store
            .make_dir(&VirtualPath::parse_absolute("/many").unwrap())
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20_000u32 {
            if tasks.len() >= 32 {
                tasks.join_next().await.unwrap().unwrap();
            }
            let store = store.clone();
            tasks.spawn(async move {
                let path = VirtualPath::parse_absolute(&format!("/many/f{i:05}")).unwrap();
                let mut upload = store
                    .write(&path, ftpgate_core::WriteStart::Truncate)
                    .await
                    .unwrap();
                upload.write(format!("{i}").as_bytes()).await.unwrap();
                upload.commit().await.unwrap();
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
    });
    let mut raw = s.raw();
    raw.stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let started = std::time::Instant::now();
    let (code, names) = raw.download("NLST many");
    eprintln!("NLST of 20,000 keys: {:?}", started.elapsed());
    assert_eq!(code, 226);
    let names = String::from_utf8(names).unwrap();
    assert_eq!(names.lines().count(), 20_000);
    assert!(names.lines().any(|l| l == "f19999"));
    let (code, facts) = raw.download("MLSD many");
    assert_eq!(code, 226);
    let facts = String::from_utf8(facts).unwrap();
    assert_eq!(
        facts.lines().filter(|l| l.contains("size=")).count(),
        20_000
    );
    assert!(
        facts.lines().all(|l| l.contains("modify=")),
        "times come from the listing"
    );
}

#[test]
fn abandoned_partial_uploads_are_cleaned_after_their_age() {
    let prefix = garage::unique_prefix("abandoned");
    let s = start(true, &prefix, |_| {});
    let mut raw = s.raw();
    let addr = raw.epsv();
    let data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("STOR left.bin"), 150);
    (&data).write_all(&random_bytes(11 * MIB, 15)).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    set_reset_on_close(&data);
    drop(data);
    assert_eq!(raw.reply().0, 426);
    assert_eq!(s.incomplete(), ["left.bin"], "kept for resuming");
    let mut config = s3_config(true);
    config.prefix = prefix.clone();
    let factory = ObjectStorageFactory::s3(config).unwrap();
    let young = s
        .runtime
        .block_on(factory.remove_abandoned_uploads(Duration::from_secs(3600)))
        .unwrap();
    assert_eq!(young, 0, "a recent upload is kept");
    std::thread::sleep(Duration::from_millis(1100));
    let old = s
        .runtime
        .block_on(factory.remove_abandoned_uploads(Duration::from_secs(1)))
        .unwrap();
    assert_eq!(old, 1);
    assert!(s.incomplete().is_empty());
}

#[test]
fn an_unreachable_store_gives_a_transient_error_and_never_hangs_the_session() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = S3Config::new(
        format!("http://127.0.0.1:{port}").parse().unwrap(),
        "garage",
        "nowhere",
        "k",
        "s",
    );
    config.retries = 1;
    config.request_timeout = Duration::from_secs(2);
    let factory = Arc::new(ObjectStorageFactory::s3(config).unwrap());
    let server = TestServer::start_with(Options {
        storage: Some((factory, "home".into())),
        ..Options::default()
    });
    let mut raw = server.raw_logged_in();
    let started = std::time::Instant::now();
    let (code, _) = raw.cmd("CWD somewhere");
    assert!(code == 450 || code == 451, "{code}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(raw.code("NOOP"), 200, "the session goes on");
}

#[test]
fn comb_composes_large_parts_in_the_store_and_streams_small_ones() {
    let s = start(false, &garage::unique_prefix("comb"), |o| {
        o.config.features.comb = true;
    });
    let mut raw = s.raw();
    let a = random_bytes(5 * MIB, 21);
    let b = random_bytes(5 * MIB + 3, 22);
    let c = random_bytes(100_000, 23);
    assert_eq!(raw.upload("STOR a", &a), 226);
    assert_eq!(raw.upload("STOR b", &b), 226);
    assert_eq!(raw.upload("STOR c", &c), 226);
    // Parts of at least 5 MiB (but the last): UploadPartCopy in the store.
    assert_eq!(raw.code("COMB whole a b c"), 250);
    assert_eq!(s.object("whole").unwrap(), [a, b, c.clone()].concat());
    assert!(s.object("a").is_none() && s.object("b").is_none() && s.object("c").is_none());
    // The store itself composes (no fallback to streaming).
    assert_eq!(raw.upload("STOR d", &random_bytes(5 * MIB, 24)), 226);
    assert_eq!(raw.upload("STOR e", &random_bytes(10, 25)), 226);
    let p = |n: &str| VirtualPath::parse_absolute(n).unwrap();
    s.runtime
        .block_on(s.store.combine(&p("/composed"), &[p("/whole"), p("/d")]))
        .expect("composed in the store");
    // Small parts: streamed through an upload.
    assert_eq!(raw.upload("STOR s1", b"small "), 226);
    assert_eq!(raw.upload("STOR s2", &c), 226);
    assert_eq!(raw.code("COMB joined s1 s2"), 250);
    assert_eq!(
        s.object("joined").unwrap(),
        [b"small ".to_vec(), c].concat()
    );
    assert!(s.incomplete().is_empty());
}

#[test]
fn every_fact_feat_offers_is_in_every_entry_on_s3() {
    let prefix = garage::unique_prefix("facts");
    let s = start(false, &prefix, |_| {});
    let mut raw = s.raw();
    assert_eq!(raw.code("MKD dir"), 257);
    assert_eq!(raw.upload("STOR file.txt", b"abc"), 226);
    assert_eq!(raw.upload("STOR dir/inner", b"x"), 226);
    // A directory that is only a key prefix (no marker object), as other S3 clients make: an
    // object written through a storage rooted inside it.
    let inside = ObjectStorageFactory::s3(s3_config(false))
        .unwrap()
        .storage_at(&format!("{prefix}bare"))
        .unwrap();
    let object = VirtualPath::parse_absolute("/object").unwrap();
    s.runtime.block_on(async {
        let mut upload = inside
            .write(&object, ftpgate_core::WriteStart::Truncate)
            .await
            .unwrap();
        upload.write(b"y").await.unwrap();
        upload.commit().await.unwrap();
    });
    check_advertised_facts(&mut raw, true);
    let (_, feat) = raw.cmd("FEAT");
    assert!(
        feat.contains("MLST type*;size*;modify*;perm*;unique*;"),
        "{feat}"
    );
    // Every file has its time, in MLSD as in MLST.
    let (_, listing) = raw.download("MLSD");
    let listing = String::from_utf8(listing).unwrap();
    for line in listing.lines().filter(|l| l.contains("type=file;")) {
        assert!(line.contains("modify="), "{line}");
    }
    // The unique fact is the same in every session and differs between entries.
    let unique = |raw: &mut Raw, target: &str| {
        let (_, mlst) = raw.cmd(&format!("MLST {target}"));
        let fact = mlst.split("unique=").nth(1).unwrap();
        fact.split(';').next().unwrap().to_string()
    };
    let file = unique(&mut raw, "file.txt");
    let dir = unique(&mut raw, "dir");
    assert_ne!(file, dir);
    assert_ne!(unique(&mut raw, "bare"), dir);
    let mut other = s.raw();
    assert_eq!(unique(&mut other, "/file.txt"), file);
    let (_, listing) = other.download("MLSD");
    let listing = String::from_utf8(listing).unwrap();
    assert!(listing.contains(&format!("unique={dir}; dir")), "{listing}");
}

#[test]
fn site_chmod_is_refused_or_accepted_and_ignored_as_configured() {
    let prefix = garage::unique_prefix("chmod");
    // The default: objects keep no permission bits, so SITE CHMOD is refused.
    let s = start(false, &prefix, |_| {});
    let mut raw = s.raw();
    assert_eq!(raw.upload("STOR f.txt", b"abc"), 226);
    assert_eq!(raw.code("SITE CHMOD 644 f.txt"), 502);
    // Accepted and ignored: 200 for an existing file, 550 for a missing one, setuid refused.
    let s = start(false, &prefix, |options| {
        let factory = ObjectStorageFactory::s3(s3_config(false))
            .unwrap()
            .ignore_set_mode(true);
        options.storage = Some((Arc::new(factory), prefix.clone()));
    });
    let mut raw = s.raw();
    assert_eq!(raw.code("SITE CHMOD 644 f.txt"), 200);
    assert_eq!(raw.code("SITE CHMOD 644 missing.txt"), 550);
    assert_eq!(raw.code("SITE CHMOD 4755 f.txt"), 550);
    assert_eq!(s.object("/f.txt").as_deref(), Some(&b"abc"[..]));
    let (_, feat) = raw.cmd("FEAT");
    assert!(!feat.contains("UNIX.mode"), "{feat}");
}
