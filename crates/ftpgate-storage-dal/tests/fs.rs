//! The storage suite against OpenDAL's `fs` service (a local directory reached through
//! `type = "opendal"`, `scheme = "fs"`): the generic path, with OpenDAL's own writer.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::Arc;

use ftpgate_core::Storage;
use ftpgate_storage_dal::{DalConfig, DalService, DalStorageFactory};

async fn fresh() -> (Arc<dyn Storage>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let options = HashMap::from([("root".to_string(), dir.path().display().to_string())]);
    let factory = DalStorageFactory::new(&DalConfig::new(DalService::Other {
        scheme: "fs".to_string(),
        options,
    }))
    .unwrap();
    (Arc::new(factory.storage_at("/")), dir)
}

ftpgate_test_support::storage_suite!(fresh);

#[test]
fn a_service_not_compiled_in_is_named() {
    let err = DalStorageFactory::new(&DalConfig::new(DalService::Other {
        scheme: "nosuchservice".to_string(),
        options: HashMap::new(),
    }))
    .unwrap_err();
    assert_eq!(err.kind, ftpgate_core::StorageErrorKind::Unsupported);
    assert!(err.to_string().contains("webdav, fs"), "{err}");
}
