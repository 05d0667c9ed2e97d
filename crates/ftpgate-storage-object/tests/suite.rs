//! The storage behaviour suite, run against the S3 backend on a real Garage server.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use ftpgate_core::{Storage, VirtualPath, WriteStart};
use ftpgate_storage_object::{ObjectStorageFactory, S3Config};
use ftpgate_test_support::garage;

/// The shared Garage server's bucket and key.
fn garage_config() -> S3Config {
    let garage = garage::shared();
    S3Config::new(
        garage.endpoint.parse().unwrap(),
        &garage.region,
        &garage.bucket,
        &garage.access_key,
        &garage.secret_key,
    )
}

/// A fresh, empty root: a new prefix in the shared Garage bucket.
async fn fresh_root() -> (Arc<dyn Storage>, ()) {
    let factory = ObjectStorageFactory::s3(garage_config()).unwrap();
    let storage = factory.storage_at(&garage::unique_prefix("suite")).unwrap();
    (Arc::new(storage), ())
}

ftpgate_test_support::storage_suite!(fresh_root);

/// The part size of the dropped-write test.
const PART: usize = 5 * 1024 * 1024;

/// The first full part starts CreateMultipartUpload. Dropping the write at moments from before
/// the request goes out to after it is answered, then aborting (or dropping the upload), must
/// abort whatever upload the store created.
#[tokio::test]
async fn a_write_dropped_while_the_upload_is_created_leaves_no_upload() {
    let mut config = garage_config();
    config.part_size = PART;
    let factory = ObjectStorageFactory::s3(config).unwrap();
    let storage = factory
        .storage_at(&garage::unique_prefix("cancel"))
        .unwrap();
    let part = vec![7u8; PART];
    let mut cases = 0;
    let mut paths = Vec::new();
    for delay_ms in [0u64, 1, 2, 3, 5, 8, 13, 21] {
        for drop_it in [false, true] {
            let path = VirtualPath::parse_absolute(&format!("/f-{delay_ms}-{drop_it}")).unwrap();
            paths.push(path.clone());
            let mut upload = storage.write(&path, WriteStart::Truncate).await.unwrap();
            let written =
                tokio::time::timeout(Duration::from_millis(delay_ms), upload.write(&part)).await;
            if written.is_err() {
                cases += 1;
            }
            if drop_it {
                drop(upload);
            } else {
                upload.abort().await;
            }
        }
    }
    assert!(cases > 0, "no write was dropped part-way");
    let mut left = Vec::new();
    for _ in 0..100 {
        left = storage.incomplete_uploads().await.unwrap();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left.is_empty(), "uploads left behind: {left:?}");
    for path in &paths {
        assert!(
            storage.metadata(path).await.is_err(),
            "{path:?}: an aborted upload became an object"
        );
    }
}
