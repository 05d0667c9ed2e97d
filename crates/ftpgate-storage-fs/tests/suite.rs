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

/// An upload to a name that is a symlink to a directory replaces the link with the file: the
/// bytes never land inside the directory the link pointed to, and that directory is untouched.
#[tokio::test]
async fn upload_over_a_symlink_to_a_directory_replaces_the_link() {
    use ftpgate_core::{VirtualPath, WriteStart};
    let (storage, dir) = fresh_root().await;
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
    let path = VirtualPath::parse_absolute("/link").unwrap();
    let mut upload = storage.write(&path, WriteStart::Truncate).await.unwrap();
    upload.write(b"hello").await.unwrap();
    assert_eq!(upload.commit().await.unwrap(), 5);
    let link = std::fs::symlink_metadata(dir.path().join("link")).unwrap();
    assert!(link.is_file(), "the link became the uploaded file");
    assert_eq!(std::fs::read(dir.path().join("link")).unwrap(), b"hello");
    assert!(dir.path().join("real").is_dir());
    assert_eq!(
        std::fs::read_dir(dir.path().join("real")).unwrap().count(),
        0
    );
}
