//! The storage behaviour suite, run against the in-memory backend of
//! `examples/custom_storage.rs`: an embedder's own backend meets the same contract as the
//! built-in ones.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "../examples/custom_storage.rs"]
#[allow(dead_code, unreachable_pub)]
mod custom_storage;

use std::sync::Arc;

use ftpgate_core::Storage;

async fn fresh_root() -> (Arc<dyn Storage>, ()) {
    (Arc::new(custom_storage::MemoryStorage::default()), ())
}

ftpgate_test_support::storage_suite!(fresh_root);
