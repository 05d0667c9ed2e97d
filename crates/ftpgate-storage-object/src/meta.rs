//! The [`Metadata`] of objects and directories, with their MLSx `unique` fact.

use std::time::SystemTime;

use ftpgate_core::{FileKind, Metadata};

/// The MLSx `unique` fact of the file or directory (`dir`) at `key` (without a trailing `/`) in
/// `store_name`: a 64-bit FNV-1a hash, so it is the same from every session and node, and a
/// file and a directory of one name differ.
pub(crate) fn unique_id(store_name: &str, key: &str, dir: bool) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let parts: [&[u8]; 4] = [
        store_name.as_bytes(),
        b"/",
        key.as_bytes(),
        if dir { b"/" } else { b"" },
    ];
    for byte in parts.into_iter().flatten() {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

pub(crate) fn file_meta(
    store_name: &str,
    key: &str,
    size: u64,
    modified: Option<SystemTime>,
) -> Metadata {
    Metadata {
        kind: FileKind::File,
        size,
        modified,
        mode: None,
        unique: Some(unique_id(store_name, key, false)),
    }
}

/// A directory, by its key with or without the trailing `/`.
pub(crate) fn dir_meta(store_name: &str, key: &str) -> Metadata {
    Metadata {
        kind: FileKind::Dir,
        size: 0,
        modified: None,
        mode: None,
        unique: Some(unique_id(store_name, key.trim_end_matches('/'), true)),
    }
}
