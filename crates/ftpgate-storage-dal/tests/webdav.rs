//! The storage suite against a real WebDAV server (`rclone serve webdav`), and what WebDAV
//! storage must do beyond it: uploads that stream (bounded memory) and never show when cut.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, OnceLock};

use ftpgate_core::{FileKind, Storage, VirtualPath, WriteStart};
use ftpgate_storage_dal::{DalConfig, DalService, DalStorageFactory, WebdavAuth};
use ftpgate_test_support::webdav::{self, WebdavServer};
use futures_util::StreamExt as _;
use tokio::io::AsyncReadExt as _;

fn server() -> &'static WebdavServer {
    static SERVER: OnceLock<WebdavServer> = OnceLock::new();
    SERVER.get_or_init(webdav::start)
}

fn factory(server: &WebdavServer) -> DalStorageFactory {
    DalStorageFactory::new(&DalConfig::new(DalService::Webdav {
        endpoint: server.endpoint.clone(),
        root: "/".to_string(),
        auth: WebdavAuth::Basic {
            username: server.username.clone(),
            password: server.password.clone(),
        },
    }))
    .unwrap()
}

/// A fresh folder of its own on the shared server, as a storage root.
async fn fresh() -> (Arc<dyn Storage>, ()) {
    let server = server();
    let name = format!("case-{:016x}", rand_u64());
    let factory = factory(server);
    factory
        .operator()
        .create_dir(&format!("{name}/"))
        .await
        .unwrap();
    (Arc::new(factory.storage_at(&name)), ())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

ftpgate_test_support::storage_suite!(fresh);

fn path(p: &str) -> VirtualPath {
    VirtualPath::parse_absolute(p).unwrap()
}

#[test]
fn wrong_credentials_are_refused() {
    let server = server();
    let storage = DalStorageFactory::new(&DalConfig::new(DalService::Webdav {
        endpoint: server.endpoint.clone(),
        root: "/".to_string(),
        auth: WebdavAuth::Basic {
            username: server.username.clone(),
            password: "wrong".to_string(),
        },
    }))
    .unwrap()
    .storage_at("/");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let err = storage.metadata(&path("/anything")).await.unwrap_err();
        assert_eq!(
            err.kind,
            ftpgate_core::StorageErrorKind::PermissionDenied,
            "{err}"
        );
    });
}

#[test]
fn a_cut_upload_leaves_no_file_and_no_temporary_file() {
    let server = server();
    let factory = factory(server);
    let storage = factory.storage_at("cut");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        factory.operator().create_dir("cut/").await.unwrap();
        let mut upload = storage
            .write(&path("/big"), WriteStart::Truncate)
            .await
            .unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..8 {
            upload.write(&chunk).await.unwrap();
        }
        drop(upload);
        // The temporary file is removed in the background.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left: Vec<_> = std::fs::read_dir(server.dir().join("cut"))
                .unwrap()
                .collect();
            if left.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "left behind: {left:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut listing = storage.list(&path("/")).await.unwrap();
        assert!(listing.next().await.is_none());
    });
}

#[test]
fn append_and_resume_rewrite_through_a_temporary_file() {
    let server = server();
    let factory = factory(server);
    let storage = factory.storage_at("append");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        factory.operator().create_dir("append/").await.unwrap();
        let mut up = storage
            .write(&path("/f"), WriteStart::Truncate)
            .await
            .unwrap();
        up.write(b"hello ").await.unwrap();
        assert_eq!(up.commit().await.unwrap(), 6);
        let mut up = storage
            .write(&path("/f"), WriteStart::Append)
            .await
            .unwrap();
        up.write(b"world").await.unwrap();
        assert_eq!(up.commit().await.unwrap(), 11);
        let mut up = storage.write(&path("/f"), WriteStart::At(5)).await.unwrap();
        up.write(b"!").await.unwrap();
        assert_eq!(up.commit().await.unwrap(), 6);
        let mut back = String::new();
        storage
            .read(&path("/f"), 0)
            .await
            .unwrap()
            .read_to_string(&mut back)
            .await
            .unwrap();
        assert_eq!(back, "hello!");
        let meta = storage.metadata(&path("/f")).await.unwrap();
        assert_eq!((meta.kind, meta.size), (FileKind::File, 6));
        assert!(meta.modified.is_some(), "PROPFIND gives getlastmodified");
    });
}
