//! The storage behaviour suite, run against the Azure Blob backend (OpenDAL) on a real Azurite
//! server.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use ftpgate_core::Storage;
use ftpgate_storage_object::{NativeConfig, NativeService, ObjectStorageFactory};
use ftpgate_test_support::{azurite, garage};

fn factory() -> ObjectStorageFactory {
    let azurite = azurite::shared();
    let config = NativeConfig::new(NativeService::Azure {
        endpoint: azurite.endpoint.clone(),
        account: azurite.account.clone(),
        key: Some(azurite.key.clone()),
        sas_token: None,
        container: azurite.container.clone(),
    });
    ObjectStorageFactory::native(config).unwrap()
}

/// A fresh, empty root: a new prefix in the shared container.
async fn fresh_root() -> (Arc<dyn Storage>, ()) {
    let storage = factory()
        .storage_at(&garage::unique_prefix("suite"))
        .unwrap();
    (Arc::new(storage), ())
}

ftpgate_test_support::storage_suite!(fresh_root);
