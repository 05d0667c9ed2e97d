//! The storage behaviour suite, run against the local-disk backend.

use std::sync::Arc;

use ftpgate_core::Storage;
use ftpgate_storage_fs::FsStorage;
use tempfile::TempDir;

/// A fresh, empty root in a temporary directory, removed when the case ends.
async fn fresh_root() -> (Arc<dyn Storage>, TempDir) {
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let storage = FsStorage::open(dir.path(), false).expect("cannot open the temporary directory");
    (Arc::new(storage), dir)
}

ftpgate_test_support::storage_suite!(fresh_root);
