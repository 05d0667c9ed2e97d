//! ftpgate: an FTP server engine on tokio.
//!
//! Build a [`Server`] from a [`ServerConfig`], an [`Authenticator`](ftpgate_core::Authenticator)
//! and a [`StorageFactory`](ftpgate_core::StorageFactory), bind it, and run it until a
//! cancellation token fires:
//!
//! ```no_run
//! # async fn demo(auth: std::sync::Arc<dyn ftpgate_core::Authenticator>,
//! #               storage: std::sync::Arc<dyn ftpgate_core::StorageFactory>) -> std::io::Result<()> {
//! use ftpgate::{Server, ServerConfig};
//! let config = ServerConfig { listen: vec!["127.0.0.1:2121".parse().unwrap()], ..ServerConfig::default() };
//! let server = Server::new(config, auth, storage).bind().await?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! server.run(shutdown).await;
//! # Ok(()) }
//! ```
//!
//! Each control connection is one task that owns its [`Session`](ftpgate_proto::Session) (the
//! protocol state machine) and performs the effects it asks for; a transfer is a future that
//! task polls next to its control connection, made from an immutable plan, whose output is the
//! transfer's outcome.

#![warn(missing_docs)]

mod address;
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
mod server;
mod session_context;
mod sessions;
mod threads;
mod tls;
mod transfer;
mod zlib;

pub use address::{PassiveAddressResolver, PassiveAddressRule};
pub use config::{
    ActiveSourcePort, ConfigError, DEFAULT_LISTING_SORT_LIMIT, MAX_LISTING_SORT_LIMIT, ServerConfig,
};
pub use events::{Direction, Event, EventHandler, TransferRecord};
pub use ftpgate_core as core;
pub use ftpgate_proto as proto;
pub use ftpgate_proto::{Features, HashAlgorithm, TransferType};
pub use guard::LoginGuardConfig;
/// An IPv4 or IPv6 network (`10.0.0.0/8`), for [`PassiveAddressRule`]; from the `ipnet` crate.
pub use ipnet::IpNet;
pub use listing::{ListingTimeZone, UnknownTimeZone};
pub use live::VirtualHost;
pub use metrics::Metrics;
/// The metrics library [`Metrics`] registers into (`prometheus-client`), at the engine's version.
pub use prometheus_client;
pub use server::{BoundServer, ReloadHandle, Server};
pub use sessions::{SessionId, SessionInfo, SessionsHandle, TransferInfo};
pub use tls::{SessionReuse, TlsConfig};
pub use tokio_util::sync::CancellationToken;
