//! The traits ftpgate backends implement: [`Storage`] for files and [`Authenticator`] for users.
//!
//! A backend depends on this small crate only, never on the engine. Paths reach a backend as
//! [`VirtualPath`]s, already normalised inside the user's root; the backend maps them to its own
//! keys and must keep every access beneath that root.

#![warn(missing_docs)]

pub mod auth;
pub mod storage;

pub use auth::{AuthError, Authenticator, User};
pub use ftpgate_proto::{
    DirEntry, FileKind, Metadata, Password, PermissionMap, Permissions, StorageErrorKind,
    VirtualPath,
};
pub use storage::{
    Capabilities, EntryStream, Facts, HashAlgorithm, ReadStream, Storage, StorageError,
    StorageFactory, Upload, WriteStart, error_kind_of,
};

/// The old name of [`StorageErrorKind`], kept so code written against it still compiles.
#[deprecated(
    since = "0.1.0",
    note = "renamed to `StorageErrorKind` (it clashed with `std::io::ErrorKind`)"
)]
pub type ErrorKind = StorageErrorKind;

#[cfg(test)]
mod tests {
    #[test]
    #[allow(deprecated)]
    fn the_old_error_kind_name_still_compiles() {
        let old: crate::ErrorKind = crate::StorageErrorKind::NotFound;
        assert_eq!(old, crate::StorageErrorKind::NotFound);
        assert_eq!(old.as_str(), "No such file or directory");
    }
}
