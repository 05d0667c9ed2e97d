//! ftpgate: an FTP server engine on tokio.
//!
//! A complete server, `./data` served to user `demo` until Ctrl-C or SIGTERM:
//!
//! ```no_run
//! fn main() -> std::io::Result<()> {
//!     ftpgate::Server::with_root("data")
//!         .user("demo", "secret")
//!         .listen("127.0.0.1:2121")
//!         .serve_blocking()
//! }
//! ```
//!
//! In an async program, `.serve().await` does the same on the caller's runtime.
//!
//! The [`Builder`] covers the common settings (passive ports, public host, TLS from PEM files,
//! limits, events) and reaches every other one with [`Builder::config`]. For anything else, build
//! a [`Server`] from a [`ServerConfig`], an [`Authenticator`] and a [`StorageFactory`], bind it,
//! and run it until a cancellation token fires:
//!
//! ```no_run
//! # async fn demo(auth: std::sync::Arc<dyn ftpgate::Authenticator>,
//! #               storage: std::sync::Arc<dyn ftpgate::StorageFactory>) -> std::io::Result<()> {
//! use ftpgate::{Server, ServerConfig};
//! let config = ServerConfig { listen: vec!["127.0.0.1:2121".parse().unwrap()], ..ServerConfig::default() };
//! let server = Server::new(config, auth, storage).bind().await?;
//! let shutdown = ftpgate::CancellationToken::new();
//! server.run(shutdown).await;
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! - `fs` (default): [`fs`], local directories; [`Server::with_root`].
//! - `file-auth` (default): [`auth_file`], users with password hashes; [`Builder::user`].
//! - `object`: `object`, S3-compatible stores, COS, GCS and Azure Blob. Off by default: it
//!   brings an HTTP client and cloud code that take minutes to build on a small machine.
//! - `dal`: `dal`, WebDAV and other Apache OpenDAL services; off by default for the same reason.
//! - `self-signed`: `TlsConfig::self_signed` and `Builder::tls_self_signed`.
//!
//! # Your own storage
//!
//! Implement [`Storage`] (metadata, streamed listings, reads from an offset, uploads that
//! commit or abort, directories, renames) and a [`StorageFactory`] that opens it for each
//! user, then serve it with [`Server::with_storage`]. A backend author depends on the small
//! `ftpgate-core` crate alone (re-exported here as [`core`]). `examples/custom_storage.rs` is
//! a complete in-memory backend that passes the behaviour suite every backend should pass;
//! `docs/BACKENDS.md` in the repository gives the contract of each method, which error kind
//! becomes which reply, and how to run the suite from your own crate.
//!
//! # Capabilities
//!
//! [`Storage::capabilities`] says which optional calls a storage answers; the session turns
//! the matching commands on, and refuses the others up front and leaves them out of FEAT:
//! `set_modified` (MFMT, MFF modify, SITE UTIME), `set_mode` (SITE CHMOD, MFF UNIX.mode),
//! `ignore_set_mode` (SITE CHMOD accepted without effect), `symlink` (SITE SYMLINK),
//! `available_space` (AVBL, ALLO), and `facts`, the MLSx facts every entry carries.
//!
//! # Your own users
//!
//! Implement [`Authenticator`]: from a [`LoginRequest`] (name, password, client address, TLS
//! and client certificate, virtual host, session id) to a [`User`] (home, permissions, quota,
//! TLS requirement), or [`AuthError`]: `InvalidCredentials` (wrong password), `UnknownUser`
//! (an [`AuthChain`] asks the next authenticator; the client sees a wrong password) or
//! `Unavailable` (421, the connection closes, no ban). `examples/custom_auth.rs` looks users up
//! in a table; the same shape asks a database or an HTTP service.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ftpgate::{AuthError, Authenticator, LoginRequest, Permissions, User};
//!
//! struct OneUser;
//!
//! #[ftpgate::async_trait]
//! impl Authenticator for OneUser {
//!     async fn authenticate(&self, request: &LoginRequest<'_>) -> Result<User, AuthError> {
//!         match (request.username(), request.password().expose()) {
//!             ("ann", "secret") => Ok(User::new("ann", "/srv/ftp/ann", Permissions::ALL)),
//!             ("ann", _) => Err(AuthError::InvalidCredentials),
//!             _ => Err(AuthError::UnknownUser),
//!         }
//!     }
//! }
//!
//! # fn main() -> std::io::Result<()> {
//! ftpgate::Server::with_storage(Arc::new(ftpgate::fs::FsStorageFactory::default()))
//!     .authenticator(Arc::new(OneUser))
//!     .serve_blocking()
//! # }
//! ```
//!
//! # Events
//!
//! [`Builder::events`] (or [`Server::with_events`]) reports logins, failed logins, logouts,
//! transfers, deletes, renames and directory changes as [`Event`]s, on the session's task: hand
//! slow work (a virus scan, a message queue) to a channel.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ftpgate::{Event, Server};
//!
//! # fn main() -> std::io::Result<()> {
//! let (tx, rx) = std::sync::mpsc::channel::<Event>();
//! std::thread::spawn(move || {
//!     for event in rx {
//!         if let Event::Transfer(record) = event {
//!             println!("{} {:?} {} ({} bytes)", record.user, record.direction, record.path, record.bytes);
//!         }
//!     }
//! });
//! let tx = std::sync::Mutex::new(tx);
//! Server::with_root("data")
//!     .user("demo", "secret")
//!     .events(Arc::new(move |event: &Event| {
//!         let _ = tx.lock().map(|tx| tx.send(event.clone()));
//!     }))
//!     .serve_blocking()
//! # }
//! ```
//!
//! # Virtual hosts
//!
//! Clients that send `HOST name` (RFC 7151) before logging in can get their own greeting,
//! users and storage: [`Server::with_virtual_host`] with a [`VirtualHost`]; clients that send
//! no HOST get the server's own.
//!
//! # A fleet of nodes
//!
//! Several servers over one store can share failed-login counters, bans and quota usage:
//! [`Server::with_shared_state`] with an implementation of [`SharedState`] (the `ftpgate`
//! daemon's is Redis). Each request to it is bounded by a timeout; when it fails, the server
//! decides with its own state, so logins never depend on the shared store.
//!
//! Each control connection is one task that owns its [`Session`](ftpgate_proto::Session) (the
//! protocol state machine) and performs the effects it asks for; a transfer is a future that
//! task polls next to its control connection, made from an immutable plan, whose output is the
//! transfer's outcome.

#![deny(missing_docs)]

mod address;
mod builder;
mod config;
mod control;
mod control_socket;
mod digest;
mod events;
mod guard;
mod limits;
mod listing;
mod live;
mod metrics;
mod passive;
mod policy;
mod proxy;
mod server;
mod session_context;
mod sessions;
mod state;
mod threads;
mod tls;
mod transfer;
mod zlib;

pub use address::{PassiveAddressResolver, PassiveAddressRule};
#[cfg(feature = "file-auth")]
pub use builder::UserSpec;
pub use builder::{BuildError, Builder};
pub use config::{
    ActiveSourcePort, ConfigError, DEFAULT_LISTING_SORT_LIMIT, MAX_LISTING_SORT_LIMIT, ServerConfig,
};
pub use events::{Direction, Event, EventHandler, TransferRecord};
/// The file authenticator: users with argon2id or bcrypt password hashes (feature `file-auth`).
#[cfg(feature = "file-auth")]
pub use ftpgate_auth_file as auth_file;
pub use ftpgate_core as core;
pub use ftpgate_core::{
    AuthChain, AuthError, Authenticator, LoginRequest, PermissionMap, Permissions, Storage,
    StorageError, StorageFactory, User, async_trait,
};
pub use ftpgate_proto as proto;
pub use ftpgate_proto::{Features, HashAlgorithm, TransferType};
/// WebDAV and other Apache OpenDAL services (feature `dal`): [`dal::DalStorageFactory`].
#[cfg(feature = "dal")]
pub use ftpgate_storage_dal as dal;
/// Local directories, confined by the kernel beneath each user's home (feature `fs`).
#[cfg(feature = "fs")]
pub use ftpgate_storage_fs as fs;
/// S3-compatible object storage, COS, GCS and Azure Blob (feature `object`).
#[cfg(feature = "object")]
pub use ftpgate_storage_object as object;
pub use guard::LoginGuardConfig;
/// An IPv4 or IPv6 network (`10.0.0.0/8`), for [`PassiveAddressRule`]; from the `ipnet` crate.
pub use ipnet::IpNet;
pub use listing::{ListingTimeZone, UnknownTimeZone};
pub use live::VirtualHost;
pub use metrics::Metrics;
/// The metrics library [`Metrics`] registers into (`prometheus-client`), at the engine's version.
pub use prometheus_client;
pub use proxy::{MAX_PROXY_HEADER_BYTES, MIN_PROXY_HEADER_BYTES, ProxyData, ProxyProtocol};
pub use server::{BoundServer, ReloadHandle, Server};
pub use sessions::{SessionId, SessionInfo, SessionsHandle, TransferInfo};
pub use state::{FailureCount, QuotaUsage, SharedState, StateError};
pub use tls::{SessionReuse, TlsConfig};
pub use tokio_util::sync::CancellationToken;
