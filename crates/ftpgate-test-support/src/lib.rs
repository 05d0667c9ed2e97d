//! Test helpers shared by ftpgate's crates.
//!
//! - [`fleet`]: two ftpgate nodes behind HAProxy (`contrib/haproxy.cfg`) on loopback.
//! - [`garage`]: starts a real single-node Garage S3 server for tests of S3 storage.
//! - [`garage_cluster`]: starts a real three-node Garage cluster (127.0.0.11-13, three copies,
//!   consistent mode) whose nodes can be killed and restarted, for tests of a fleet.
//! - [`redis`](mod@redis): a throwaway `redis-server` on a loopback port, for shared state.
//! - [`azurite`]: starts Azurite, the Azure Blob Storage emulator, for tests of Azure storage.
//! - [`webdav`]: starts `rclone serve webdav` for tests of WebDAV storage.
//! - [`slapd`]: starts Debian's OpenLDAP server with a minimal configuration, for tests of
//!   LDAP logins.
//! - [`storage_suite`](mod@storage_suite): the behaviour every
//!   [`Storage`](ftpgate_core::Storage) backend must have, as one test per case through the
//!   [`storage_suite!`] macro.
//! - `server` (feature `server`): a real ftpgate server on `127.0.0.1:0` per test and a raw
//!   control-connection client, for the engine's tests and FTP-level tests of backends.

#![deny(missing_docs)]

pub mod azurite;
pub mod fleet;
pub mod garage;
pub mod garage_cluster;
pub mod redis;
#[cfg(feature = "server")]
pub mod server;
pub mod slapd;
pub mod storage_suite;
pub mod webdav;
