//! The types a storage backend works with, in one place: what it says about files
//! ([`Metadata`], [`FileKind`], [`DirEntry`]), what it can do ([`Capabilities`], with the MLSx
//! [`Facts`] its entries carry), where an upload starts ([`WriteStart`]), which stored digest
//! is asked for ([`HashAlgorithm`]) and what went wrong ([`StorageErrorKind`], which decides
//! the reply).
//!
//! They are plain data, defined here because the session reasons with them too; the traits
//! that use them (`Storage`, `Upload`) are in `ftpgate-core`, which re-exports this module
//! whole. How they reach the wire lives with the protocol: listings and facts in
//! [`listing`](crate::listing), FEAT lines in [`extensions`](crate::extensions), replies in
//! [`reply_map`](crate::reply_map).

use std::time::SystemTime;

/// What kind of thing an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link that could not be followed inside the root.
    Symlink,
}

/// What a backend knows about a file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// File, directory or unfollowable link.
    pub kind: FileKind,
    /// Size in bytes (0 for directories where unknown).
    pub size: u64,
    /// Last modification time, if the backend keeps one.
    pub modified: Option<SystemTime>,
    /// Unix permission bits (`0o644`), if the backend has them.
    pub mode: Option<u32>,
    /// A stable identifier for the MLSx `unique` fact (device and inode on local disk).
    pub unique: Option<String>,
}

impl Metadata {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.kind == FileKind::File
    }
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (one component).
    pub name: String,
    /// Its metadata.
    pub metadata: Metadata,
}

/// A set of MLSx facts: those a client asked for with `OPTS MLST` (RFC 3659 section 7.9), or
/// those a storage gives every entry ([`Capabilities::facts`](crate::Capabilities::facts)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// `type`
    pub kind: bool,
    /// `size`
    pub size: bool,
    /// `modify`
    pub modify: bool,
    /// `perm`
    pub perm: bool,
    /// `unique`
    pub unique: bool,
    /// `unix.mode`
    pub unix_mode: bool,
}

impl Default for Facts {
    fn default() -> Self {
        Facts::ALL
    }
}

impl Facts {
    /// Every fact this server knows.
    pub const ALL: Facts = Facts {
        kind: true,
        size: true,
        modify: true,
        perm: true,
        unique: true,
        unix_mode: true,
    };

    /// The facts any storage gives every entry: `type` and `size` from its metadata, `perm`
    /// from the user's permissions.
    pub const BASIC: Facts = Facts {
        kind: true,
        size: true,
        modify: false,
        perm: true,
        unique: false,
        unix_mode: false,
    };

    /// The facts in both `self` and `other`.
    pub fn and(self, other: Facts) -> Facts {
        Facts {
            kind: self.kind && other.kind,
            size: self.size && other.size,
            modify: self.modify && other.modify,
            perm: self.perm && other.perm,
            unique: self.unique && other.unique,
            unix_mode: self.unix_mode && other.unix_mode,
        }
    }
}

/// What a user's storage can do beyond the basic calls, found at login; commands that need a
/// missing capability answer 502 and leave FEAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Free space (AVBL, ALLO checks).
    pub available_space: bool,
    /// Permission bits (SITE CHMOD, MFF UNIX.mode).
    pub set_mode: bool,
    /// Symbolic links (SITE SYMLINK).
    pub symlink: bool,
    /// Modification times (MFMT, MFF modify, SITE UTIME).
    pub set_modified: bool,
    /// Without `set_mode`: SITE CHMOD is accepted and does nothing, for clients that set
    /// permissions after every upload (the storage keeps no permission bits).
    pub ignore_set_mode: bool,
    /// The MLSx facts the storage gives every entry, file or directory: FEAT offers only
    /// these and `OPTS MLST` selects among them, so an offered fact is in every MLSD and MLST
    /// entry.
    pub facts: Facts,
}

impl Default for Capabilities {
    /// Everything: what the session assumes before it knows the user's storage.
    fn default() -> Self {
        Capabilities {
            available_space: true,
            set_mode: true,
            symlink: true,
            set_modified: true,
            ignore_set_mode: false,
            facts: Facts::ALL,
        }
    }
}

impl Capabilities {
    /// None of the optional calls, and only the facts every storage has
    /// ([`Facts::BASIC`]).
    pub fn none() -> Self {
        Capabilities {
            available_space: false,
            set_mode: false,
            symlink: false,
            set_modified: false,
            ignore_set_mode: false,
            facts: Facts::BASIC,
        }
    }
}

/// A digest algorithm of HASH (draft-bryan-ftpext-hash) and the legacy X-commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256, the default.
    Sha256,
    /// SHA-512.
    Sha512,
    /// SHA-1.
    Sha1,
    /// MD5.
    Md5,
    /// CRC-32 (IEEE).
    Crc32,
}

impl HashAlgorithm {
    /// Every algorithm, in the order FEAT lists them.
    pub const ALL: [HashAlgorithm; 5] = [
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha512,
        HashAlgorithm::Sha1,
        HashAlgorithm::Md5,
        HashAlgorithm::Crc32,
    ];

    /// The name HASH uses (`SHA-256`, …, `CRC32`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "SHA-256",
            HashAlgorithm::Sha512 => "SHA-512",
            HashAlgorithm::Sha1 => "SHA-1",
            HashAlgorithm::Md5 => "MD5",
            HashAlgorithm::Crc32 => "CRC32",
        }
    }

    /// The algorithm named `name` (any case).
    pub fn from_name(name: &str) -> Option<HashAlgorithm> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// Where an upload starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStart {
    /// A new file replaces any previous one when the upload completes.
    Truncate,
    /// Bytes are added at the end of the existing file (APPE).
    Append,
    /// Bytes are written from this offset of the existing file (REST then STOR or APPE).
    At(u64),
}

/// What went wrong, in the terms FTP replies can express.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// The file or directory does not exist.
    NotFound,
    /// Access is denied (by the backend, or by a path leading outside the root).
    PermissionDenied,
    /// The target already exists.
    AlreadyExists,
    /// A directory was expected.
    NotADirectory,
    /// A file was expected but this is a directory.
    IsADirectory,
    /// RMD of a directory that still has entries.
    DirectoryNotEmpty,
    /// The name is not acceptable to the backend.
    InvalidName,
    /// The storage is out of space for now.
    InsufficientStorage,
    /// A quota or size limit was exceeded.
    ExceededStorage,
    /// A REST offset does not fit the file.
    InvalidOffset,
    /// The file is busy or locked; try again later.
    Busy,
    /// A temporary failure of the backend; try again later.
    Transient,
    /// The backend cannot do this.
    Unsupported,
    /// An unexpected local error.
    Local,
}

impl StorageErrorKind {
    /// What went wrong, as the reply (and the log) says it.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageErrorKind::NotFound => "No such file or directory",
            StorageErrorKind::PermissionDenied => "Permission denied",
            StorageErrorKind::AlreadyExists => "File exists",
            StorageErrorKind::NotADirectory => "Not a directory",
            StorageErrorKind::IsADirectory => "Is a directory",
            StorageErrorKind::DirectoryNotEmpty => "Directory not empty",
            StorageErrorKind::InvalidName => "File name not allowed",
            StorageErrorKind::InsufficientStorage => "Insufficient storage space",
            StorageErrorKind::ExceededStorage => "Exceeded storage allocation",
            StorageErrorKind::InvalidOffset => "Invalid REST parameter",
            StorageErrorKind::Busy => "File busy, try again later",
            StorageErrorKind::Transient => "Temporary storage failure, try again later",
            StorageErrorKind::Unsupported => "Not supported by this storage",
            StorageErrorKind::Local => "Local error in processing",
        }
    }

    /// Whether a retry may succeed (4xx) rather than not (5xx).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            StorageErrorKind::InsufficientStorage
                | StorageErrorKind::Busy
                | StorageErrorKind::Transient
                | StorageErrorKind::Local
        )
    }
}

impl std::fmt::Display for StorageErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
