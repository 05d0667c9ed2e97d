//! The storage behaviour suite, run against the S3 backend on a real Garage server.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use ftpgate_core::Storage;
use ftpgate_storage_object::{ObjectStorageFactory, S3Config};
use ftpgate_test_support::garage;

/// A fresh, empty root: a new prefix in the shared Garage bucket.
async fn fresh_root() -> (Arc<dyn Storage>, ()) {
    let garage = garage::shared();
    let config = S3Config::new(
        garage.endpoint.parse().unwrap(),
        &garage.region,
        &garage.bucket,
        &garage.access_key,
        &garage.secret_key,
    );
    let factory = ObjectStorageFactory::s3(config).unwrap();
    let storage = factory.storage_at(&garage::unique_prefix("suite")).unwrap();
    (Arc::new(storage), ())
}

ftpgate_test_support::storage_suite!(fresh_root);
