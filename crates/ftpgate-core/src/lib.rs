//! The traits ftpgate backends implement: [`Storage`] for files and [`Authenticator`] for users.
//!
//! A backend depends on this small crate only, never on the engine. Paths reach a backend as
//! [`VirtualPath`]s, already normalised inside the user's root; the backend maps them to its own
//! keys and must keep every access beneath that root.
//!
//! Everything a backend author needs is here: the traits ([`Storage`], [`Upload`],
//! [`StorageFactory`], [`Authenticator`]), [`StorageError`], and the data types the traits
//! speak in, all in [`backend`] (and at the crate root).

#![deny(missing_docs)]

/// The attribute that makes `async fn` usable in [`Storage`], [`Upload`] and
/// [`Authenticator`] implementations (the `async-trait` crate), so a backend needs no extra
/// dependency for it.
pub use async_trait::async_trait;
pub use login_cache::LoginCache;

pub mod auth;
mod login_cache;
pub mod storage;

pub use auth::{
    AuthChain, AuthError, Authenticator, LoginRequest, NetworkRate, User, UserLimits, parse_network,
};
pub use ftpgate_proto::{Password, PermissionMap, Permissions, VirtualPath};
pub use rustls_pki_types::CertificateDer;
pub use storage::{
    EntryStream, ReadStream, Storage, StorageError, StorageFactory, Upload, error_kind_of,
};

/// The plain data a backend reads and returns: [`Metadata`], [`FileKind`] and [`DirEntry`] for
/// files, [`Capabilities`] and [`Facts`] for what the storage can do, [`WriteStart`] for where
/// an upload begins, [`HashAlgorithm`] for stored digests and [`StorageErrorKind`] for what
/// went wrong (it decides the FTP reply). Defined in `ftpgate-proto` (the session uses them
/// too) and re-exported here, as a module and each at the crate root.
pub use ftpgate_proto::backend;
pub use ftpgate_proto::backend::{
    Capabilities, DirEntry, Facts, FileKind, HashAlgorithm, Metadata, StorageErrorKind, WriteStart,
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
