//! FTP in front of Azure Blob Storage through its own API (Azurite, started by the test
//! harness): streamed uploads that appear only when complete, ranged downloads, APPE and
//! `REST n` + STOR by streamed rewrite, directories, renames, paged listings.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use ftpgate_core::{Storage, VirtualPath};
use ftpgate_storage_object::{NativeConfig, NativeService, ObjectStorage, ObjectStorageFactory};
use ftpgate_test_support::server::*;
use ftpgate_test_support::{azurite, garage};

const MIB: usize = 1024 * 1024;

struct AzureServer {
    server: TestServer,
    /// The user's home read through the backend with a client of the test's own.
    store: ObjectStorage,
    runtime: tokio::runtime::Runtime,
}

fn factory() -> ObjectStorageFactory {
    let a = azurite::shared();
    let mut config = NativeConfig::new(NativeService::Azure {
        endpoint: a.endpoint.clone(),
        account: a.account.clone(),
        key: Some(a.key.clone()),
        sas_token: None,
        container: a.container.clone(),
    });
    config.part_size = MIB;
    config.parts_in_flight = 2;
    ObjectStorageFactory::native(config).unwrap()
}

fn start(label: &str) -> AzureServer {
    let prefix = garage::unique_prefix(label);
    let store = factory().storage_at(&prefix).unwrap();
    let mut options = Options {
        storage: Some((Arc::new(factory()), prefix)),
        ..Options::default()
    };
    options.config.data_timeout = Duration::from_secs(20);
    AzureServer {
        server: TestServer::start_with(options),
        store,
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    }
}

impl AzureServer {
    fn blob(&self, name: &str) -> Option<Vec<u8>> {
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

    fn raw(&self) -> Raw {
        let mut raw = self.server.raw_logged_in();
        raw.cmd("TYPE I");
        raw
    }
}

#[test]
fn uploads_of_every_size_are_stored_byte_for_byte() {
    let s = start("sizes");
    let mut raw = s.raw();
    for (name, size) in [("empty", 0), ("one", 1), ("blocks", 3 * MIB + 5)] {
        let bytes = random_bytes(size, size as u64 + 1);
        assert_eq!(raw.upload(&format!("STOR {name}"), &bytes), 226, "{name}");
        assert_eq!(s.blob(name).unwrap(), bytes, "{name} read from the store");
        let (code, back) = raw.download(&format!("RETR {name}"));
        assert_eq!((code, back == bytes), (226, true), "{name} through FTP");
        assert_eq!(
            raw.cmd(&format!("SIZE {name}")).1.trim_end(),
            format!("213 {size}")
        );
    }
}

#[test]
fn abor_reset_and_dropped_control_leave_no_blob() {
    let s = start("abort");
    let big = random_bytes(6 * MIB, 7);
    let mut raw = s.raw();
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("STOR aborted"), 150);
    data.write_all(&big[..4 * MIB]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    raw.send("ABOR");
    assert_eq!(raw.reply().0, 426);
    assert_eq!(raw.reply().0, 226);
    drop(data);
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("STOR reset"), 150);
    data.write_all(&big[..3 * MIB]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    set_reset_on_close(&data);
    drop(data);
    assert_eq!(raw.reply().0, 426);
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("STOR dropped"), 150);
    data.write_all(&big[..3 * MIB]).unwrap();
    drop(raw);
    std::thread::sleep(Duration::from_millis(500));
    for name in ["aborted", "reset", "dropped"] {
        assert_eq!(s.blob(name), None, "{name}: a truncated blob appeared");
    }
    // A replaced blob keeps its old content when the new upload is cut short.
    let mut raw = s.raw();
    assert_eq!(raw.upload("STOR kept", b"old content"), 226);
    let addr = raw.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(raw.code("STOR kept"), 150);
    data.write_all(&big[..2 * MIB]).unwrap();
    raw.send("ABOR");
    assert_eq!(raw.reply().0, 426);
    assert_eq!(raw.reply().0, 226);
    assert_eq!(s.blob("kept").unwrap(), b"old content");
}

#[test]
fn rest_retr_appe_and_rest_stor() {
    let s = start("ranges");
    let bytes = random_bytes(2 * MIB + 17, 11);
    let mut raw = s.raw();
    assert_eq!(raw.upload("STOR f", &bytes), 226);
    for offset in [0, 1, MIB + 3, bytes.len() - 1, bytes.len()] {
        assert_eq!(raw.code(&format!("REST {offset}")), 350);
        let (code, tail) = raw.download("RETR f");
        assert_eq!(code, 226, "offset {offset}");
        assert!(tail == bytes[offset..], "offset {offset}");
    }
    assert_eq!(raw.code(&format!("REST {}", bytes.len() + 1)), 350);
    assert_eq!(raw.download("RETR f").0, 554);
    // APPE rewrites the existing bytes into the new upload, streamed.
    assert_eq!(raw.upload("APPE f", b"tail"), 226);
    let mut expected = bytes.clone();
    expected.extend_from_slice(b"tail");
    assert_eq!(s.blob("f").unwrap(), expected);
    // REST n + STOR keeps the first n bytes.
    assert_eq!(raw.code("REST 1000"), 350);
    assert_eq!(raw.upload("STOR f", b"new end"), 226);
    let mut expected = bytes[..1000].to_vec();
    expected.extend_from_slice(b"new end");
    assert_eq!(s.blob("f").unwrap(), expected);
    assert_eq!(raw.code("REST 999999"), 350);
    assert_eq!(raw.upload("STOR f", b"x"), 554, "beyond the end");
    assert_eq!(raw.upload("APPE new", b"created"), 226);
    assert_eq!(s.blob("new").unwrap(), b"created");
}

#[test]
fn directories_renames_and_paged_listings() {
    let s = start("dirs");
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
    assert_eq!(raw.code("RMD full"), 550, "not empty");
    assert_eq!(raw.code("RNFR full"), 350);
    assert_eq!(raw.code("RNTO moved"), 250);
    assert_eq!(s.blob("moved/f").unwrap(), b"x");
    assert_eq!(s.blob("full/f"), None);
    assert_eq!(raw.code("RNFR moved/f"), 350);
    assert_eq!(raw.code("RNTO g"), 250);
    assert_eq!(raw.code("RMD moved"), 250);
    assert_eq!(raw.code("RMD empty"), 250);
    assert_eq!(
        raw.upload("STOR back\\slash", b"x"),
        553,
        "Azure would alter the name"
    );
    // More keys than one listing page (1,000).
    assert_eq!(raw.code("MKD many"), 257);
    let storage = &s.store;
    s.runtime.block_on(async {
        for i in 0..1_500 {
            let path = VirtualPath::parse_absolute(&format!("/many/k{i:05}")).unwrap();
            let upload = storage
                .write(&path, ftpgate_core::WriteStart::Truncate)
                .await
                .unwrap();
            upload.commit().await.unwrap();
        }
    });
    let (code, listing) = raw.download("NLST many");
    assert_eq!(code, 226);
    let names = String::from_utf8(listing).unwrap();
    assert_eq!(names.lines().count(), 1_500);
    assert!(names.contains("k00000") && names.contains("k01499"));
}
