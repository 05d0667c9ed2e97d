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

/// The names in the root, sorted.
fn names(dir: &TempDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("the root can be listed")
        .map(|e| {
            let entry = e.expect("an entry of the root");
            entry.file_name().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    names
}

/// A new file is written without a name (O_TMPFILE) and linked into place on commit: nothing
/// is in the directory while it is written, nothing after an abort, the file after a commit.
#[tokio::test]
async fn a_new_file_has_no_entry_until_its_upload_commits() {
    use ftpgate_core::{VirtualPath, WriteStart};
    let (storage, dir) = fresh_root().await;
    let path = VirtualPath::parse_absolute("/new").unwrap();

    let mut upload = storage.write(&path, WriteStart::Truncate).await.unwrap();
    upload.write(b"partial").await.unwrap();
    upload.abort().await;
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));

    let mut upload = storage.write(&path, WriteStart::Truncate).await.unwrap();
    upload.write(&vec![7u8; 600 * 1024]).await.unwrap();
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
    assert_eq!(upload.commit().await.unwrap(), 600 * 1024);
    assert_eq!(names(&dir), ["new"]);
    assert_eq!(
        std::fs::read(dir.path().join("new")).unwrap().len(),
        600 * 1024
    );
}

/// A name another writer takes while a new file's upload runs is replaced by the upload when it
/// commits, whole, as an upload over an existing file replaces it; no temporary name is left.
#[tokio::test]
async fn a_name_taken_during_a_new_files_upload_is_replaced_on_commit() {
    use ftpgate_core::{VirtualPath, WriteStart};
    let (storage, dir) = fresh_root().await;
    let path = VirtualPath::parse_absolute("/taken").unwrap();
    let mut upload = storage.write(&path, WriteStart::Truncate).await.unwrap();
    upload.write(b"from the upload").await.unwrap();
    std::fs::write(dir.path().join("taken"), b"from elsewhere").unwrap();
    assert_eq!(upload.commit().await.unwrap(), 15);
    assert_eq!(
        std::fs::read(dir.path().join("taken")).unwrap(),
        b"from the upload"
    );
    assert_eq!(names(&dir), ["taken"]);
}

/// A new file is made once its upload has started (the client told to send), not when the
/// upload is accepted: a directory removed in between fails the start and leaves nothing. An
/// upload that is never told it started (written and committed at once) makes it all the same.
#[tokio::test]
async fn a_new_file_is_made_when_its_upload_starts() {
    use ftpgate_core::{VirtualPath, WriteStart};
    let (storage, dir) = fresh_root().await;
    std::fs::create_dir(dir.path().join("gone")).unwrap();
    let path = VirtualPath::parse_absolute("/gone/new").unwrap();
    let mut upload = storage.write(&path, WriteStart::Truncate).await.unwrap();
    std::fs::remove_dir(dir.path().join("gone")).unwrap();
    assert!(
        upload.started().await.is_err(),
        "no file in a removed directory"
    );
    upload.abort().await;
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));

    let path = VirtualPath::parse_absolute("/new").unwrap();
    let mut upload = storage.write(&path, WriteStart::Truncate).await.unwrap();
    upload.started().await.unwrap();
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
    upload.write(b"started").await.unwrap();
    assert_eq!(upload.commit().await.unwrap(), 7);
    assert_eq!(std::fs::read(dir.path().join("new")).unwrap(), b"started");
}
