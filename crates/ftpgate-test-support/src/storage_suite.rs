//! The behaviour every [`Storage`] backend must have.
//!
//! This file is long by design: it holds one concern, the suite's cases, one short `pub async
//! fn` each, with the few helpers they share; splitting it would scatter the list a backend
//! author reads to learn what is expected.
//!
//! Each case is a `pub async fn` taking a storage whose root is empty. The
//! [`storage_suite!`](crate::storage_suite!) macro turns all of them into one `#[test]` each for
//! a backend, given a constructor that makes a fresh, empty root per case:
//!
//! ```ignore
//! async fn fresh() -> (Arc<dyn Storage>, tempfile::TempDir) {
//!     let dir = tempfile::tempdir().expect("a temporary directory");
//!     let storage = FsStorage::open(dir.path(), false).expect("open the directory");
//!     (Arc::new(storage), dir)
//! }
//!
//! ftpgate_test_support::storage_suite!(fresh);
//! ```
//!
//! The constructor is any expression callable as `ctor()` that returns a future of
//! `(Arc<dyn Storage>, G)`; `G` (a temporary directory, a bucket prefix to clean up, `()`) is
//! kept until the case ends. Each case runs on its own multi-threaded tokio runtime, so the
//! crate using the macro does not need tokio itself.
//!
//! Failures name the path and the operation, and for errors the kind expected and the error
//! got.
//!
//! The abort and drop cases expect an interrupted upload to leave nothing behind, so run the
//! suite with any "keep partial uploads for resuming" option turned off.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftpgate_core::{
    FileKind, Metadata, Storage, StorageError, StorageErrorKind, Upload, VirtualPath, WriteStart,
};
use futures_util::StreamExt as _;
use tokio::io::AsyncReadExt as _;

/// How long one case may run before it counts as hung.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a backend may take to make a dropped upload disappear.
pub const DROP_GRACE: Duration = Duration::from_secs(5);

/// Bytes written by the abort and drop cases: more than the 5 MiB minimum S3 part, so backends
/// that upload in parts have sent at least one before the upload is given up.
const LARGE: usize = 6 * 1024 * 1024 + 17;

/// Generates one `#[test]` per case of the storage suite, for the backend that `$ctor` makes.
///
/// `$ctor` is called once per case, as `$ctor()`, and must return a future of
/// `(Arc<dyn Storage>, G)` whose storage has an empty root of its own; `G` is dropped when the
/// case ends. See the [module documentation](mod@crate::storage_suite).
#[macro_export]
macro_rules! storage_suite {
    ($ctor:expr) => {
        $crate::storage_suite!(@cases $ctor;
            root_is_an_empty_directory,
            metadata_of_missing_is_not_found,
            make_dir_then_metadata_is_a_directory,
            make_dir_twice_is_already_exists,
            make_dir_in_missing_parent_is_not_found,
            write_and_read_empty_file,
            write_and_read_one_byte,
            write_and_read_3_mib_in_small_writes,
            overwrite_replaces_content,
            read_at_offset_returns_the_tail,
            read_of_missing_is_not_found,
            read_with_metadata_tells_size_and_refuses_what_it_cannot_read,
            aborted_new_upload_leaves_nothing,
            aborted_replacement_keeps_previous_content,
            dropped_new_upload_is_not_visible,
            dropped_replacement_keeps_previous_content,
            aborted_append_leaves_the_file_as_it_was,
            dropped_append_leaves_the_file_as_it_was,
            aborted_rewrite_from_an_offset_leaves_the_file_as_it_was,
            list_returns_exactly_the_entries,
            list_of_missing_is_not_found,
            special_names_round_trip,
            remove_file_then_not_found,
            remove_missing_file_is_not_found,
            remove_dir_refuses_non_empty,
            remove_dir_of_empty_directory,
            rename_file,
            rename_directory_with_contents,
            write_into_missing_parent_fails,
            list_a_thousand_entries,
        );
    };
    (@cases $ctor:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::storage_suite::run_case(
                    stringify!($case),
                    $ctor,
                    $crate::storage_suite::$case,
                );
            }
        )*
    };
}

/// Runs one case on a fresh root from `ctor`, on a runtime of its own, within
/// [`CASE_TIMEOUT`].
///
/// # Panics
///
/// If the case fails or hangs.
pub fn run_case<C, CF, G, K, KF>(name: &str, ctor: C, case: K)
where
    C: FnOnce() -> CF,
    CF: Future<Output = (Arc<dyn Storage>, G)>,
    K: FnOnce(Arc<dyn Storage>) -> KF,
    KF: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime");
    runtime.block_on(async move {
        let (storage, guard) = ctor().await;
        if tokio::time::timeout(CASE_TIMEOUT, case(storage))
            .await
            .is_err()
        {
            panic!(
                "storage suite case `{name}` did not finish within {} s",
                CASE_TIMEOUT.as_secs()
            );
        }
        drop(guard);
    });
}

// ---- helpers ----

fn path(p: &str) -> VirtualPath {
    VirtualPath::parse_absolute(p).expect("the suite uses valid paths")
}

/// `len` bytes of a repeatable pseudo-random pattern (so reordered or repeated chunks show).
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[track_caller]
fn expect_kind<T>(result: Result<T, StorageError>, kind: StorageErrorKind, what: &str) {
    match result {
        Ok(_) => panic!("{what}: expected {kind:?}, but it succeeded"),
        Err(e) => assert_eq!(e.kind, kind, "{what}: expected {kind:?}, got {e}"),
    }
}

async fn start_upload(storage: &dyn Storage, at: &str) -> Box<dyn Upload> {
    storage
        .write(&path(at), WriteStart::Truncate)
        .await
        .unwrap_or_else(|e| panic!("write {at:?}: {e}"))
}

async fn write_all(upload: &mut dyn Upload, at: &str, data: &[u8], chunk: usize) {
    for piece in data.chunks(chunk.max(1)) {
        upload
            .write(piece)
            .await
            .unwrap_or_else(|e| panic!("writing to {at:?}: {e}"));
    }
}

/// Uploads `data` to `at` in writes of `chunk` bytes and commits it.
async fn put_in_chunks(storage: &dyn Storage, at: &str, data: &[u8], chunk: usize) {
    let mut upload = start_upload(storage, at).await;
    write_all(upload.as_mut(), at, data, chunk).await;
    let size = upload
        .commit()
        .await
        .unwrap_or_else(|e| panic!("commit of {at:?}: {e}"));
    assert_eq!(size, data.len() as u64, "size reported by commit of {at:?}");
}

async fn put(storage: &dyn Storage, at: &str, data: &[u8]) {
    put_in_chunks(storage, at, data, 64 * 1024).await;
}

async fn get_from(storage: &dyn Storage, at: &str, offset: u64) -> Vec<u8> {
    let mut reader = storage
        .read(&path(at), offset)
        .await
        .unwrap_or_else(|e| panic!("read {at:?} from {offset}: {e}"));
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .await
        .unwrap_or_else(|e| panic!("reading {at:?} from {offset}: {e}"));
    out
}

async fn metadata(storage: &dyn Storage, at: &str) -> Metadata {
    storage
        .metadata(&path(at))
        .await
        .unwrap_or_else(|e| panic!("metadata of {at:?}: {e}"))
}

/// Asserts `at` is a file holding exactly `data`, by metadata and by reading it.
async fn assert_file(storage: &dyn Storage, at: &str, data: &[u8]) {
    let meta = metadata(storage, at).await;
    assert_eq!(meta.kind, FileKind::File, "kind of {at:?}");
    assert_eq!(meta.size, data.len() as u64, "size of {at:?} in metadata");
    let read = get_from(storage, at, 0).await;
    assert_eq!(read.len(), data.len(), "length of {at:?} read back");
    assert!(read == data, "content of {at:?} read back differs");
}

async fn assert_dir(storage: &dyn Storage, at: &str) {
    let meta = metadata(storage, at).await;
    assert_eq!(meta.kind, FileKind::Dir, "kind of {at:?}");
}

async fn assert_missing(storage: &dyn Storage, at: &str) {
    expect_kind(
        storage.metadata(&path(at)).await,
        StorageErrorKind::NotFound,
        &format!("metadata of {at:?}"),
    );
}

/// The entries of directory `at` by name; panics on an error or a repeated name.
async fn list(storage: &dyn Storage, at: &str) -> BTreeMap<String, Metadata> {
    let mut stream = storage
        .list(&path(at))
        .await
        .unwrap_or_else(|e| panic!("list {at:?}: {e}"));
    let mut entries = BTreeMap::new();
    while let Some(entry) = stream.next().await {
        let entry = entry.unwrap_or_else(|e| panic!("listing {at:?}: {e}"));
        let name = entry.name.clone();
        if entries.insert(entry.name, entry.metadata).is_some() {
            panic!("listing {at:?}: {name:?} appears twice");
        }
    }
    entries
}

/// What a listing should hold: name, kind, and size for files.
type Expected<'a> = &'a [(&'a str, FileKind, u64)];

async fn assert_listing(storage: &dyn Storage, at: &str, expected: Expected<'_>) {
    let got = list(storage, at).await;
    let got_names: Vec<&str> = got.keys().map(String::as_str).collect();
    let mut want_names: Vec<&str> = expected.iter().map(|(name, _, _)| *name).collect();
    want_names.sort_unstable();
    assert_eq!(got_names, want_names, "names listed in {at:?}");
    for (name, kind, size) in expected {
        let meta = &got[*name];
        assert_eq!(meta.kind, *kind, "kind of {name:?} listed in {at:?}");
        if *kind == FileKind::File {
            assert_eq!(meta.size, *size, "size of {name:?} listed in {at:?}");
        }
    }
}

/// Polls `check` until it holds (for at most [`DROP_GRACE`]), then makes sure it still holds a
/// moment later (so a backend finishing the upload in the background is caught too).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + DROP_GRACE;
    loop {
        match check().await {
            Ok(()) => break,
            Err(e) if Instant::now() >= deadline => {
                panic!("{what}: still wrong after {} s: {e}", DROP_GRACE.as_secs())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Err(e) = check().await {
        panic!("{what}: right at first, then wrong: {e}");
    }
}

/// `Ok` when `at` holds exactly `data` (or does not exist, for `None`).
async fn holds(storage: &dyn Storage, at: &str, data: Option<&[u8]>) -> Result<(), String> {
    match (storage.metadata(&path(at)).await, data) {
        (Err(e), None) if e.kind == StorageErrorKind::NotFound => {}
        (Err(e), _) => return Err(format!("metadata: {e}")),
        (Ok(meta), None) => return Err(format!("it exists: {meta:?}")),
        (Ok(meta), Some(data)) => {
            if !meta.is_file() || meta.size != data.len() as u64 {
                return Err(format!("metadata {meta:?}, expected {} bytes", data.len()));
            }
            let mut reader = storage
                .read(&path(at), 0)
                .await
                .map_err(|e| format!("read: {e}"))?;
            let mut got = Vec::new();
            reader
                .read_to_end(&mut got)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if got != data {
                return Err(format!("content differs ({} bytes read)", got.len()));
            }
        }
    }
    let parent = path(at).parent();
    let name = path(at).file_name().unwrap_or_default().to_string();
    let mut stream = storage
        .list(&parent)
        .await
        .map_err(|e| format!("list {parent}: {e}"))?;
    let mut listed = None;
    while let Some(entry) = stream.next().await {
        let entry = entry.map_err(|e| format!("listing {parent}: {e}"))?;
        if entry.name == name {
            listed = Some(entry.metadata);
        }
    }
    match (listed, data) {
        (None, None) => Ok(()),
        (Some(meta), None) => Err(format!("it is listed in {parent}: {meta:?}")),
        (None, Some(_)) => Err(format!("it is not listed in {parent}")),
        (Some(meta), Some(data)) if meta.size == data.len() as u64 => Ok(()),
        (Some(meta), Some(data)) => Err(format!(
            "listed in {parent} with {meta:?}, expected {} bytes",
            data.len()
        )),
    }
}

// ---- cases ----

/// The root is a directory, and a fresh one is empty.
pub async fn root_is_an_empty_directory(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    let meta = storage
        .metadata(&VirtualPath::root())
        .await
        .unwrap_or_else(|e| panic!("metadata of the root: {e}"));
    assert_eq!(meta.kind, FileKind::Dir, "kind of the root");
    assert_listing(storage, "/", &[]).await;
}

/// Metadata of a name that does not exist is `NotFound`, also below a missing directory.
pub async fn metadata_of_missing_is_not_found(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    assert_missing(storage, "/missing").await;
    assert_missing(storage, "/missing/deeper").await;
}

/// A new directory has directory metadata, nested ones too.
pub async fn make_dir_then_metadata_is_a_directory(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    storage
        .make_dir(&path("/dir"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /dir: {e}"));
    assert_dir(storage, "/dir").await;
    storage
        .make_dir(&path("/dir/sub"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /dir/sub: {e}"));
    assert_dir(storage, "/dir/sub").await;
}

/// Making a directory where a directory or a file already is fails with `AlreadyExists`.
pub async fn make_dir_twice_is_already_exists(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    storage
        .make_dir(&path("/dir"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /dir: {e}"));
    expect_kind(
        storage.make_dir(&path("/dir")).await,
        StorageErrorKind::AlreadyExists,
        "make_dir /dir a second time",
    );
    put(storage, "/file", b"content").await;
    expect_kind(
        storage.make_dir(&path("/file")).await,
        StorageErrorKind::AlreadyExists,
        "make_dir over the file /file",
    );
    assert_file(storage, "/file", b"content").await;
}

/// Making a directory below a missing one fails with `NotFound` and creates nothing.
pub async fn make_dir_in_missing_parent_is_not_found(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    expect_kind(
        storage.make_dir(&path("/missing/dir")).await,
        StorageErrorKind::NotFound,
        "make_dir /missing/dir",
    );
    assert_missing(storage, "/missing").await;
    assert_listing(storage, "/", &[]).await;
}

/// A committed empty upload is an empty file.
pub async fn write_and_read_empty_file(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    put(storage, "/empty", b"").await;
    assert_file(storage, "/empty", b"").await;
    assert_listing(storage, "/", &[("empty", FileKind::File, 0)]).await;
}

/// A one-byte file round-trips.
pub async fn write_and_read_one_byte(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    put(storage, "/one", b"x").await;
    assert_file(storage, "/one", b"x").await;
}

/// About 3 MiB written 1000 bytes at a time reads back the same.
pub async fn write_and_read_3_mib_in_small_writes(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    let data = content(3 * 1024 * 1024 + 123, 1);
    put_in_chunks(storage, "/big", &data, 1000).await;
    assert_file(storage, "/big", &data).await;
}

/// A new upload under an existing name replaces the file, even with fewer bytes.
pub async fn overwrite_replaces_content(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    put(storage, "/file", &content(100_000, 2)).await;
    put(storage, "/file", b"short").await;
    assert_file(storage, "/file", b"short").await;
    assert_listing(storage, "/", &[("file", FileKind::File, 5)]).await;
}

/// Reading from an offset returns the bytes from there on; at the end, none.
pub async fn read_at_offset_returns_the_tail(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    let data = content(10_000, 3);
    put(storage, "/file", &data).await;
    for offset in [0usize, 1, 4321, 9999, 10_000] {
        let tail = get_from(storage, "/file", offset as u64).await;
        assert!(
            tail == data[offset..],
            "read of /file from offset {offset}: got {} bytes, expected the last {}",
            tail.len(),
            data.len() - offset
        );
    }
}

/// Reading a file that does not exist fails with `NotFound`.
pub async fn read_of_missing_is_not_found(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    expect_kind(
        storage.read(&path("/missing"), 0).await,
        StorageErrorKind::NotFound,
        "read /missing",
    );
    expect_kind(
        storage.read(&path("/missing/deeper"), 0).await,
        StorageErrorKind::NotFound,
        "read /missing/deeper",
    );
}

/// `read_with_metadata` (what RETR calls) gives the file's size with its bytes from the
/// offset; at the end an empty read; beyond it `InvalidOffset`; a directory `IsADirectory`; a
/// missing file `NotFound`.
pub async fn read_with_metadata_tells_size_and_refuses_what_it_cannot_read(
    storage: Arc<dyn Storage>,
) {
    let storage = &*storage;
    let data = content(10_000, 5);
    put(storage, "/file", &data).await;
    for offset in [0usize, 1234, 10_000] {
        let (metadata, mut stream) = storage
            .read_with_metadata(&path("/file"), offset as u64)
            .await
            .unwrap_or_else(|e| panic!("read_with_metadata /file at {offset}: {e}"));
        assert!(metadata.is_file(), "/file at {offset}: not a file");
        assert_eq!(metadata.size, 10_000, "/file at {offset}: size");
        let mut tail = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut tail)
            .await
            .unwrap_or_else(|e| panic!("reading /file from {offset}: {e}"));
        assert!(
            tail == data[offset..],
            "read_with_metadata /file from {offset}: got {} bytes, expected {}",
            tail.len(),
            data.len() - offset
        );
    }
    expect_kind(
        storage.read_with_metadata(&path("/file"), 10_001).await,
        StorageErrorKind::InvalidOffset,
        "read_with_metadata /file past its end",
    );
    storage
        .make_dir(&path("/dir"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /dir: {e}"));
    expect_kind(
        storage.read_with_metadata(&path("/dir"), 0).await,
        StorageErrorKind::IsADirectory,
        "read_with_metadata /dir",
    );
    expect_kind(
        storage.read_with_metadata(&path("/missing"), 0).await,
        StorageErrorKind::NotFound,
        "read_with_metadata /missing",
    );
}

/// An aborted upload of a new file leaves no file and no listing entry.
pub async fn aborted_new_upload_leaves_nothing(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    let mut upload = start_upload(storage, "/file").await;
    write_all(upload.as_mut(), "/file", &content(LARGE, 4), 64 * 1024).await;
    upload.abort().await;
    assert_missing(storage, "/file").await;
    assert_listing(storage, "/", &[]).await;
}

/// An aborted upload over an existing file leaves the previous content.
pub async fn aborted_replacement_keeps_previous_content(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    put(storage, "/file", b"previous content").await;
    let mut upload = start_upload(storage, "/file").await;
    write_all(upload.as_mut(), "/file", &content(LARGE, 5), 64 * 1024).await;
    upload.abort().await;
    assert_file(storage, "/file", b"previous content").await;
    assert_listing(storage, "/", &[("file", FileKind::File, 16)]).await;
}

/// An upload dropped without commit or abort never shows up as a complete file.
pub async fn dropped_new_upload_is_not_visible(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    let mut upload = start_upload(storage, "/file").await;
    write_all(upload.as_mut(), "/file", &content(LARGE, 6), 64 * 1024).await;
    drop(upload);
    eventually("/file after its upload was dropped", || {
        holds(storage, "/file", None)
    })
    .await;
}

/// An upload over an existing file, dropped without commit or abort, leaves the previous
/// content.
pub async fn dropped_replacement_keeps_previous_content(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    put(storage, "/file", b"previous content").await;
    let mut upload = start_upload(storage, "/file").await;
    write_all(upload.as_mut(), "/file", &content(LARGE, 7), 64 * 1024).await;
    drop(upload);
    eventually("/file after the upload replacing it was dropped", || {
        holds(storage, "/file", Some(&b"previous content"[..]))
    })
    .await;
}

/// Starts an APPE or REST+STOR upload, or `None` where the backend does not offer it (object
/// stores resume only their own interrupted uploads, and refuse REST on a complete object).
async fn start_in_place(
    storage: &dyn Storage,
    at: &str,
    start: WriteStart,
) -> Option<Box<dyn Upload>> {
    match storage.write(&path(at), start).await {
        Ok(upload) => Some(upload),
        Err(e)
            if matches!(
                e.kind,
                StorageErrorKind::Unsupported | StorageErrorKind::InvalidOffset
            ) =>
        {
            None
        }
        Err(e) => panic!("write {at:?} from {start:?}: {e}"),
    }
}

/// An aborted append (APPE over the size limit or quota, ABOR) leaves the file as it was, and
/// an aborted append that would have created the file leaves none.
pub async fn aborted_append_leaves_the_file_as_it_was(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    put(storage, "/file", b"previous content").await;
    let Some(mut upload) = start_in_place(storage, "/file", WriteStart::Append).await else {
        return;
    };
    write_all(upload.as_mut(), "/file", &content(LARGE, 8), 64 * 1024).await;
    upload.abort().await;
    assert_file(storage, "/file", b"previous content").await;
    let Some(mut upload) = start_in_place(storage, "/new", WriteStart::Append).await else {
        return;
    };
    write_all(upload.as_mut(), "/new", &content(LARGE, 9), 64 * 1024).await;
    upload.abort().await;
    assert_missing(storage, "/new").await;
    assert_listing(storage, "/", &[("file", FileKind::File, 16)]).await;
}

/// An append dropped without commit or abort (the connection went away) leaves the file as
/// it was.
pub async fn dropped_append_leaves_the_file_as_it_was(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    put(storage, "/file", b"previous content").await;
    let Some(mut upload) = start_in_place(storage, "/file", WriteStart::Append).await else {
        return;
    };
    write_all(upload.as_mut(), "/file", &content(LARGE, 10), 64 * 1024).await;
    drop(upload);
    eventually("/file after an append to it was dropped", || {
        holds(storage, "/file", Some(&b"previous content"[..]))
    })
    .await;
}

/// REST+STOR from inside a file, aborted, leaves the whole old file, its tail included; from
/// its end (a resumed upload), aborted, it leaves it at its old length.
pub async fn aborted_rewrite_from_an_offset_leaves_the_file_as_it_was(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    let old = content(100_000, 11);
    put(storage, "/file", &old).await;
    for offset in [40_000, 100_000] {
        let Some(mut upload) = start_in_place(storage, "/file", WriteStart::At(offset)).await
        else {
            return;
        };
        write_all(upload.as_mut(), "/file", &content(LARGE, 12), 64 * 1024).await;
        upload.abort().await;
        assert_file(storage, "/file", &old).await;
    }
}

/// A listing holds exactly the files and directories there, with their kinds and sizes,
/// including an empty directory, and nothing from deeper down.
pub async fn list_returns_exactly_the_entries(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    put(storage, "/a", b"abc").await;
    put(storage, "/b", b"").await;
    storage
        .make_dir(&path("/d"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /d: {e}"));
    put(storage, "/d/inner", b"12345").await;
    storage
        .make_dir(&path("/d/sub"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /d/sub: {e}"));
    put(storage, "/d/sub/deep", b"z").await;
    storage
        .make_dir(&path("/e"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /e: {e}"));

    assert_listing(
        storage,
        "/",
        &[
            ("a", FileKind::File, 3),
            ("b", FileKind::File, 0),
            ("d", FileKind::Dir, 0),
            ("e", FileKind::Dir, 0),
        ],
    )
    .await;
    assert_listing(
        storage,
        "/d",
        &[("inner", FileKind::File, 5), ("sub", FileKind::Dir, 0)],
    )
    .await;
    assert_listing(storage, "/d/sub", &[("deep", FileKind::File, 1)]).await;
    assert_listing(storage, "/e", &[]).await;
}

/// Listing a directory that does not exist fails with `NotFound` (before any entry streams).
pub async fn list_of_missing_is_not_found(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    expect_kind(
        storage.list(&path("/missing")).await,
        StorageErrorKind::NotFound,
        "list /missing",
    );
    put(storage, "/present", b"x").await;
    expect_kind(
        storage.list(&path("/pres")).await,
        StorageErrorKind::NotFound,
        "list /pres (a prefix of a file's name)",
    );
}

/// Names with spaces, `#`, `%`, quotes, URL-special characters and UTF-8 round-trip through
/// write, metadata, read and list, as files and as directories.
pub async fn special_names_round_trip(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    // Names every backend must hold.
    let required = [
        "with space.txt",
        "hash#1",
        "100%",
        "a%20b",
        "double\"quote",
        "single'quote",
        "plus+and&amp=eq?q",
        "Grüße 日本語 🎉.txt",
        "~tilde",
        "-dash",
    ];
    // Names some stores cannot hold (Azure reads a backslash as '/', and XML listings trim
    // spaces at the ends): a backend may refuse them with InvalidName, but must not mangle them.
    let optional = [" leading and trailing ", "back\\slash"];
    let dir_name = "dir #% \"q\" 'q' ü";
    storage
        .make_dir(&path(&format!("/{dir_name}")))
        .await
        .unwrap_or_else(|e| panic!("make_dir {dir_name:?}: {e}"));
    let mut names: Vec<&str> = required.to_vec();
    for name in optional {
        match storage
            .write(&path(&format!("/{name}")), WriteStart::Truncate)
            .await
        {
            Ok(upload) => {
                upload.abort().await;
                names.push(name);
            }
            Err(e) => assert_eq!(
                e.kind,
                StorageErrorKind::InvalidName,
                "write of {name:?}: {e}"
            ),
        }
    }
    for name in &names {
        put(storage, &format!("/{name}"), name.as_bytes()).await;
        put(storage, &format!("/{dir_name}/{name}"), name.as_bytes()).await;
    }
    let mut at_root: Vec<(&str, FileKind, u64)> = names
        .iter()
        .map(|n| (*n, FileKind::File, n.len() as u64))
        .collect();
    at_root.push((dir_name, FileKind::Dir, 0));
    assert_listing(storage, "/", &at_root).await;
    let in_dir: Vec<(&str, FileKind, u64)> = names
        .iter()
        .map(|n| (*n, FileKind::File, n.len() as u64))
        .collect();
    assert_listing(storage, &format!("/{dir_name}"), &in_dir).await;
    for name in &names {
        assert_file(storage, &format!("/{name}"), name.as_bytes()).await;
        assert_file(storage, &format!("/{dir_name}/{name}"), name.as_bytes()).await;
    }
}

/// A removed file is gone.
pub async fn remove_file_then_not_found(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    put(storage, "/file", b"content").await;
    put(storage, "/other", b"stays").await;
    storage
        .remove_file(&path("/file"))
        .await
        .unwrap_or_else(|e| panic!("remove_file /file: {e}"));
    assert_missing(storage, "/file").await;
    expect_kind(
        storage.read(&path("/file"), 0).await,
        StorageErrorKind::NotFound,
        "read of the removed /file",
    );
    assert_listing(storage, "/", &[("other", FileKind::File, 5)]).await;
    assert_file(storage, "/other", b"stays").await;
}

/// Removing a file that does not exist fails with `NotFound`.
pub async fn remove_missing_file_is_not_found(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    expect_kind(
        storage.remove_file(&path("/missing")).await,
        StorageErrorKind::NotFound,
        "remove_file /missing",
    );
    expect_kind(
        storage.remove_file(&path("/missing/deeper")).await,
        StorageErrorKind::NotFound,
        "remove_file /missing/deeper",
    );
}

/// Removing a directory that holds a file, or only an empty directory, fails with
/// `DirectoryNotEmpty` and leaves it all in place.
pub async fn remove_dir_refuses_non_empty(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    storage
        .make_dir(&path("/full"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /full: {e}"));
    put(storage, "/full/file", b"content").await;
    expect_kind(
        storage.remove_dir(&path("/full")).await,
        StorageErrorKind::DirectoryNotEmpty,
        "remove_dir /full (holding a file)",
    );
    assert_dir(storage, "/full").await;
    assert_file(storage, "/full/file", b"content").await;

    storage
        .make_dir(&path("/nested"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /nested: {e}"));
    storage
        .make_dir(&path("/nested/empty"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /nested/empty: {e}"));
    expect_kind(
        storage.remove_dir(&path("/nested")).await,
        StorageErrorKind::DirectoryNotEmpty,
        "remove_dir /nested (holding an empty directory)",
    );
    assert_dir(storage, "/nested/empty").await;
}

/// An empty directory can be removed (also one emptied by removing its file), and is gone.
pub async fn remove_dir_of_empty_directory(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    storage
        .make_dir(&path("/empty"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /empty: {e}"));
    storage
        .remove_dir(&path("/empty"))
        .await
        .unwrap_or_else(|e| panic!("remove_dir /empty: {e}"));
    assert_missing(storage, "/empty").await;

    storage
        .make_dir(&path("/emptied"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /emptied: {e}"));
    put(storage, "/emptied/file", b"x").await;
    storage
        .remove_file(&path("/emptied/file"))
        .await
        .unwrap_or_else(|e| panic!("remove_file /emptied/file: {e}"));
    assert_dir(storage, "/emptied").await;
    storage
        .remove_dir(&path("/emptied"))
        .await
        .unwrap_or_else(|e| panic!("remove_dir /emptied: {e}"));
    assert_missing(storage, "/emptied").await;
    assert_listing(storage, "/", &[]).await;
}

/// A renamed file is gone from its old name and whole under the new one, also when moved into
/// another directory.
pub async fn rename_file(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    let data = content(100_000, 8);
    put(storage, "/old", &data).await;
    storage
        .rename(&path("/old"), &path("/new"))
        .await
        .unwrap_or_else(|e| panic!("rename /old to /new: {e}"));
    assert_missing(storage, "/old").await;
    assert_file(storage, "/new", &data).await;
    assert_listing(storage, "/", &[("new", FileKind::File, 100_000)]).await;

    storage
        .make_dir(&path("/dir"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /dir: {e}"));
    storage
        .rename(&path("/new"), &path("/dir/moved"))
        .await
        .unwrap_or_else(|e| panic!("rename /new to /dir/moved: {e}"));
    assert_missing(storage, "/new").await;
    assert_file(storage, "/dir/moved", &data).await;
    assert_listing(storage, "/", &[("dir", FileKind::Dir, 0)]).await;
}

/// A renamed directory takes its files, subdirectories and empty directories along.
pub async fn rename_directory_with_contents(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    storage
        .make_dir(&path("/src"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /src: {e}"));
    storage
        .make_dir(&path("/src/sub"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /src/sub: {e}"));
    storage
        .make_dir(&path("/src/empty"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /src/empty: {e}"));
    let big = content(LARGE, 9);
    put(storage, "/src/a", b"file a").await;
    put(storage, "/src/sub/b", &big).await;

    storage
        .rename(&path("/src"), &path("/dst"))
        .await
        .unwrap_or_else(|e| panic!("rename /src to /dst: {e}"));
    assert_missing(storage, "/src").await;
    assert_missing(storage, "/src/a").await;
    assert_missing(storage, "/src/sub/b").await;
    assert_listing(storage, "/", &[("dst", FileKind::Dir, 0)]).await;
    assert_listing(
        storage,
        "/dst",
        &[
            ("a", FileKind::File, 6),
            ("sub", FileKind::Dir, 0),
            ("empty", FileKind::Dir, 0),
        ],
    )
    .await;
    assert_file(storage, "/dst/a", b"file a").await;
    assert_file(storage, "/dst/sub/b", &big).await;
    assert_listing(storage, "/dst/empty", &[]).await;
}

/// An upload into a directory that does not exist fails with `NotFound` (when it starts or at
/// the latest when it is committed) and creates neither the file nor the directory.
pub async fn write_into_missing_parent_fails(storage: Arc<dyn Storage>) {
    let storage = &*storage;
    match storage
        .write(&path("/missing/file"), WriteStart::Truncate)
        .await
    {
        Err(e) => assert_eq!(
            e.kind,
            StorageErrorKind::NotFound,
            "write /missing/file: expected NotFound, got {e}"
        ),
        Ok(mut upload) => {
            let written = upload.write(b"content").await;
            let committed = match written {
                Ok(()) => upload.commit().await.map(|_| ()),
                Err(e) => Err(e),
            };
            expect_kind(
                committed,
                StorageErrorKind::NotFound,
                "upload to /missing/file (started, so writing or committing must fail)",
            );
        }
    }
    assert_missing(storage, "/missing/file").await;
    assert_missing(storage, "/missing").await;
    assert_listing(storage, "/", &[]).await;
}

/// A directory of 1,000 files lists all of them, once each, with their sizes.
pub async fn list_a_thousand_entries(storage: Arc<dyn Storage>) {
    const COUNT: usize = 1000;
    let storage = &*storage;
    storage
        .make_dir(&path("/many"))
        .await
        .unwrap_or_else(|e| panic!("make_dir /many: {e}"));
    let names: Vec<String> = (0..COUNT).map(|i| format!("file-{i:04}")).collect();
    futures_util::stream::iter(names.iter().enumerate())
        .for_each_concurrent(16, |(i, name)| async move {
            put(storage, &format!("/many/{name}"), &content(i % 7, i as u64)).await;
        })
        .await;
    let expected: Vec<(&str, FileKind, u64)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| (name.as_str(), FileKind::File, (i % 7) as u64))
        .collect();
    assert_listing(storage, "/many", &expected).await;
}
