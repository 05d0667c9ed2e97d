//! The traits ftpgate backends implement: [`Storage`] for files and [`Authenticator`] for users.
//!
//! A backend depends on this small crate only, never on the engine. Paths reach a backend as
//! [`VirtualPath`]s, already normalised inside the user's root; the backend maps them to its own
//! keys and must keep every access beneath that root.

#![deny(missing_docs)]

/// The attribute that makes `async fn` usable in [`Storage`], [`Upload`] and
/// [`Authenticator`] implementations (the `async-trait` crate), so a backend needs no extra
/// dependency for it.
pub use async_trait::async_trait;

pub mod auth;
pub mod storage;

pub use auth::{AuthChain, AuthError, Authenticator, LoginRequest, NetworkRate, User, UserLimits};
pub use ftpgate_proto::{
    DirEntry, ErrorKind, FileKind, Metadata, Password, PermissionMap, Permissions, VirtualPath,
};
pub use rustls_pki_types::CertificateDer;
pub use storage::{
    Capabilities, EntryStream, Facts, HashAlgorithm, ReadStream, Storage, StorageError,
    StorageFactory, Upload, WriteStart, error_kind_of,
};
