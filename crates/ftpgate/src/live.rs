//! What a reload replaces ([`Live`]) and the virtual hosts in it.

use std::collections::HashMap;
use std::sync::Arc;

use ftpgate_core::{Authenticator, StorageFactory};

use crate::config::ServerConfig;

/// What a reload replaces: the users, storage and virtual hosts, and the settings a session
/// takes when it connects and again when it logs in. A session keeps the snapshot it has, so
/// a reload never changes a running session.
pub(crate) struct Live {
    pub(crate) config: ServerConfig,
    pub(crate) auth: Arc<dyn Authenticator>,
    pub(crate) storage: Arc<dyn StorageFactory>,
    /// Virtual hosts by lower-case name.
    pub(crate) hosts: HashMap<String, Arc<VirtualHost>>,
}

/// A virtual host (RFC 7151): clients choose it with HOST before logging in, and get its
/// greeting, its users and its storage. Clients that send no HOST get the server's own.
pub struct VirtualHost {
    /// The host's users.
    pub auth: Arc<dyn Authenticator>,
    /// Where the host's users' files are.
    pub storage: Arc<dyn StorageFactory>,
    /// The text of the 220 reply to HOST.
    pub banner: String,
}
