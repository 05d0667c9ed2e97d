//! The FTP protocol as pure functions, with no sockets, files or clocks.
//!
//! Everything here can be tested and fuzzed without a network: the types storage backends
//! work with ([`backend`]), the control-line decoder
//! ([`line`](mod@line)), the command table and parser ([`command`]), reply encoding ([`reply`]), client
//! path normalisation ([`path`]), wildcards ([`glob`](mod@glob)), data-address arguments ([`hostport`]), listing formats
//! ([`listing`]), permissions ([`perm`]), the error-to-reply map ([`reply_map`]) and the session
//! state machine ([`session`]) that decides every reply. The engine in the `ftpgate` crate
//! performs the effects the session asks for and feeds the results back.

#![deny(missing_docs)]

pub mod ascii;
pub mod backend;
pub mod command;
pub mod extensions;
pub mod glob;
pub mod hostport;
pub mod line;
pub mod listing;
pub mod path;
pub mod perm;
pub mod reply;
pub mod reply_map;
pub mod session;

pub use backend::{
    Capabilities, DirEntry, Facts, FileKind, HashAlgorithm, Metadata, StorageErrorKind, WriteStart,
};
pub use command::Password;
pub use command::{Command, CommandSpec, ListArgs, Protection, TransferType};
pub use extensions::Features;
pub use path::{PathError, VirtualPath};
pub use perm::{Perm, PermissionMap, Permissions};
pub use reply::{Reply, ReplyCode};
pub use session::{Session, SessionConfig, Step, TlsPolicy};
