//! [`Builder`]: a server for the common case in a few lines.
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
//! The builder fills in a [`ServerConfig`] and, unless given others, a file authenticator and a
//! local-disk storage; [`Server::new`] remains for everything the builder does not cover, and
//! [`Builder::config`] reaches any setting from here.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ftpgate_core::{Authenticator, StorageFactory};

use crate::config::ServerConfig;
use crate::events::EventHandler;
use crate::server::{BoundServer, Server};
use crate::tls::TlsConfig;
use tokio_util::sync::CancellationToken;

/// A user the builder's file authenticator knows (feature `file-auth`).
#[cfg(feature = "file-auth")]
#[derive(Debug, Clone)]
pub struct UserSpec {
    name: String,
    password: Secret,
    home: Option<PathBuf>,
    permissions: String,
    quota_bytes: Option<u64>,
    quota_files: Option<u64>,
    tls_required: bool,
    limits: ftpgate_core::UserLimits,
}

#[cfg(feature = "file-auth")]
#[derive(Clone)]
enum Secret {
    Plain(String),
    Hash(String),
}

#[cfg(feature = "file-auth")]
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Secret::Plain(_) => "Plain(..)",
            Secret::Hash(_) => "Hash(..)",
        })
    }
}

#[cfg(feature = "file-auth")]
impl UserSpec {
    /// A user with this password (hashed with argon2id when the server is built), every
    /// permission (`elradfmwMT`), the server's root as home, no quota.
    pub fn new(name: impl Into<String>, password: impl Into<String>) -> Self {
        UserSpec {
            name: name.into(),
            password: Secret::Plain(password.into()),
            home: None,
            permissions: "elradfmwMT".into(),
            quota_bytes: None,
            quota_files: None,
            tls_required: false,
            limits: ftpgate_core::UserLimits::default(),
        }
    }

    /// A user whose password is given as an argon2id or bcrypt hash (as `ftpgate
    /// hash-password` prints), so no password is kept in the program.
    pub fn with_hash(name: impl Into<String>, hash: impl Into<String>) -> Self {
        UserSpec {
            password: Secret::Hash(hash.into()),
            ..UserSpec::new(name, "")
        }
    }

    /// Permission letters, pyftpdlib's `elradfmwMT` (`elr` reads only); checked when the
    /// server is built.
    pub fn permissions(mut self, letters: &str) -> Self {
        self.permissions = letters.into();
        self
    }

    /// Home directory: relative to the builder's root (or absolute). Default: the root.
    pub fn home(mut self, home: impl AsRef<Path>) -> Self {
        self.home = Some(home.as_ref().to_path_buf());
        self
    }

    /// Most bytes the user's files may take.
    pub fn quota_bytes(mut self, bytes: u64) -> Self {
        self.quota_bytes = Some(bytes);
        self
    }

    /// Most files the user may have (replacing a file does not count; deleting frees a place).
    pub fn quota_files(mut self, files: u64) -> Self {
        self.quota_files = Some(files);
        self
    }

    /// Bandwidth, sessions, networks and validity (see [`UserLimits`](ftpgate_core::UserLimits)).
    pub fn limits(mut self, limits: ftpgate_core::UserLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The user must log in over TLS and protect data connections.
    pub fn tls_required(mut self) -> Self {
        self.tls_required = true;
        self
    }
}

/// What the builder could not build, with the setting that is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(String);

impl From<BuildError> for io::Error {
    fn from(e: BuildError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

enum Storage {
    None,
    #[cfg(feature = "fs")]
    Root(PathBuf),
    Factory(Arc<dyn StorageFactory>),
}

/// Builds a [`Server`] for the common case (see the [crate docs](crate)).
///
/// Start from [`Server::with_root`] (local directory) or [`Server::with_storage`] (any
/// [`StorageFactory`]). Errors (a bad address, bad permission letters, an unreadable
/// certificate) are kept until [`build`](Self::build), [`bind`](Self::bind) or
/// [`serve`](Self::serve) reports the first one.
#[must_use = "a builder does nothing until it is built or served"]
pub struct Builder {
    config: ServerConfig,
    listen_set: bool,
    storage: Storage,
    #[cfg(feature = "file-auth")]
    users: Vec<UserSpec>,
    auth: Option<Arc<dyn Authenticator>>,
    events: Option<Arc<dyn EventHandler>>,
    error: Option<String>,
}

impl Server {
    /// A builder serving the local directory `root` (created when the server is built if it
    /// does not exist). Users added with [`Builder::user`] get it as their home.
    #[cfg(feature = "fs")]
    pub fn with_root(root: impl AsRef<Path>) -> Builder {
        Builder::new(Storage::Root(root.as_ref().to_path_buf()))
    }

    /// A builder serving `storage` (any backend: object storage, your own); each user's home
    /// is passed to it as given with [`UserSpec::home`] ("" by default).
    pub fn with_storage(storage: Arc<dyn StorageFactory>) -> Builder {
        Builder::new(Storage::Factory(storage))
    }

    /// A builder with neither storage nor users yet: give both, e.g.
    /// [`Builder::storage`] and [`Builder::authenticator`].
    pub fn builder() -> Builder {
        Builder::new(Storage::None)
    }
}

impl Builder {
    fn new(storage: Storage) -> Self {
        Builder {
            config: ServerConfig::default(),
            listen_set: false,
            storage,
            #[cfg(feature = "file-auth")]
            users: Vec::new(),
            auth: None,
            events: None,
            error: None,
        }
    }

    fn fail(&mut self, message: String) {
        self.error.get_or_insert(message);
    }

    /// Serves `storage` instead of what the builder was started with.
    pub fn storage(mut self, storage: Arc<dyn StorageFactory>) -> Self {
        self.storage = Storage::Factory(storage);
        self
    }

    #[cfg(feature = "file-auth")]
    /// Adds a user with every permission and the root as home (see [`UserSpec::new`]).
    pub fn user(self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.add_user(UserSpec::new(name, password))
    }

    #[cfg(feature = "file-auth")]
    /// Adds a user described in full (permissions, home, quota).
    pub fn add_user(mut self, user: UserSpec) -> Self {
        self.users.push(user);
        self
    }

    /// Uses `auth` for logins instead of the builder's users (which must then be none).
    pub fn authenticator(mut self, auth: Arc<dyn Authenticator>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Listens on `addr` (`"127.0.0.1:2121"`, `"[::]:21"`); repeatable. Default
    /// 127.0.0.1:2121.
    pub fn listen(mut self, addr: impl ToSocketAddrs) -> Self {
        match addr.to_socket_addrs() {
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                if addrs.is_empty() {
                    self.fail("listen: the address names no address".into());
                }
                if !self.listen_set {
                    self.config.listen.clear();
                    self.listen_set = true;
                }
                self.config.listen.extend(addrs);
            }
            Err(e) => self.fail(format!("listen: {e}")),
        }
        self
    }

    /// Ports for passive data connections (open them in the firewall). Default: any.
    pub fn passive_ports(mut self, ports: RangeInclusive<u16>) -> Self {
        self.config.passive_ports = Some(ports);
        self
    }

    /// The address announced in PASV replies, for servers behind NAT.
    pub fn public_host(mut self, host: impl Into<String>) -> Self {
        self.config.public_host = Some(host.into());
        self
    }

    /// The 220 greeting.
    pub fn greeting(mut self, text: impl Into<String>) -> Self {
        self.config.banner = text.into();
        self
    }

    /// Most simultaneous control connections, in all and from one address.
    pub fn max_connections(mut self, total: usize, per_ip: usize) -> Self {
        self.config.max_connections = total;
        self.config.max_connections_per_ip = per_ip;
        self
    }

    /// Closes sessions idle for this long (421).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Largest file an upload may produce (552 beyond).
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.config.max_file_size = Some(bytes);
        self
    }

    /// FTPS (AUTH TLS) with a PEM certificate chain and private key read from files.
    pub fn tls_pem_files(mut self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        match TlsConfig::from_pem_files(cert.as_ref(), key.as_ref()) {
            Ok(tls) => self.config.tls = Some(tls),
            Err(e) => self.fail(format!("tls: {e}")),
        }
        self
    }

    /// FTPS (AUTH TLS) with a certificate generated now for `names` (host names or
    /// addresses): for tests and first trials; clients must be told to accept it.
    #[cfg(feature = "self-signed")]
    pub fn tls_self_signed(mut self, names: &[&str]) -> Self {
        match TlsConfig::self_signed(names) {
            Ok(tls) => self.config.tls = Some(tls),
            Err(e) => self.fail(format!("tls: {e}")),
        }
        self
    }

    /// Reports logins, transfers and file changes to `handler`.
    pub fn events(mut self, handler: Arc<dyn EventHandler>) -> Self {
        self.events = Some(handler);
        self
    }

    /// Changes any other setting of the [`ServerConfig`].
    pub fn config(mut self, change: impl FnOnce(&mut ServerConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// The [`Server`], or the first setting that is wrong.
    pub fn build(self) -> Result<Server, BuildError> {
        if let Some(message) = self.error {
            return Err(BuildError(message));
        }
        self.config
            .validate()
            .map_err(|e| BuildError(e.to_string()))?;
        let (storage, root): (Arc<dyn StorageFactory>, Option<PathBuf>) = match self.storage {
            Storage::None => {
                return Err(BuildError(
                    "no storage: start from Server::with_root or Server::with_storage".into(),
                ));
            }
            #[cfg(feature = "fs")]
            Storage::Root(root) => {
                std::fs::create_dir_all(&root)
                    .map_err(|e| BuildError(format!("root {}: {e}", root.display())))?;
                (
                    Arc::new(ftpgate_storage_fs::FsStorageFactory::default()),
                    Some(root),
                )
            }
            Storage::Factory(factory) => (factory, None),
        };
        #[cfg(feature = "file-auth")]
        let auth = match (self.auth, self.users.is_empty()) {
            (Some(auth), true) => auth,
            (Some(_), false) => {
                return Err(BuildError(
                    "users were added and an authenticator given: choose one".into(),
                ));
            }
            (None, true) => {
                return Err(BuildError(
                    "no users: add one with .user(name, password)".into(),
                ));
            }
            (None, false) => file_auth(self.users, root.as_deref())?,
        };
        #[cfg(not(feature = "file-auth"))]
        let auth = {
            let _ = root;
            self.auth.ok_or_else(|| {
                BuildError("no authenticator: give one with .authenticator(..)".into())
            })?
        };
        let mut server = Server::new(self.config, auth, storage);
        if let Some(events) = self.events {
            server = server.with_events(events);
        }
        Ok(server)
    }

    /// Builds the server and binds its listeners.
    pub async fn bind(self) -> io::Result<BoundServer> {
        self.build()?.bind().await
    }

    /// Builds, binds and serves until Ctrl-C or SIGTERM, then shuts down gracefully
    /// (running transfers may finish).
    pub async fn serve(self) -> io::Result<()> {
        let server = self.bind().await?;
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        server.run(shutdown).await;
        Ok(())
    }

    /// [`serve`](Self::serve) on a runtime of its own, for a program with no async `main`:
    /// blocks until Ctrl-C or SIGTERM.
    pub fn serve_blocking(self) -> io::Result<()> {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(self.serve())
    }

    /// Builds, binds and serves until `shutdown` is cancelled.
    pub async fn serve_until(self, shutdown: CancellationToken) -> io::Result<()> {
        self.bind().await?.run(shutdown).await;
        Ok(())
    }
}

#[cfg(feature = "file-auth")]
fn file_auth(
    users: Vec<UserSpec>,
    root: Option<&Path>,
) -> Result<Arc<dyn Authenticator>, BuildError> {
    use ftpgate_auth_file::{FileAuthenticator, UserEntry, hash_password};
    use ftpgate_core::{PermissionMap, Permissions};
    let mut entries = Vec::with_capacity(users.len());
    for user in users {
        let permissions = Permissions::parse(&user.permissions)
            .map_err(|e| BuildError(format!("user {:?}: {e}", user.name)))?;
        let home = match (root, user.home) {
            (Some(root), Some(home)) => root.join(home),
            (Some(root), None) => root.to_path_buf(),
            (None, Some(home)) => home,
            (None, None) => PathBuf::new(),
        };
        if root.is_some() {
            std::fs::create_dir_all(&home).map_err(|e| {
                BuildError(format!(
                    "user {:?}: home {}: {e}",
                    user.name,
                    home.display()
                ))
            })?;
        }
        let home = home
            .into_os_string()
            .into_string()
            .map_err(|_| BuildError(format!("user {:?}: home is not UTF-8", user.name)))?;
        entries.push(UserEntry {
            password_hash: match user.password {
                Secret::Plain(password) => hash_password(&password),
                Secret::Hash(hash) => hash,
            },
            name: user.name,
            home,
            permissions: PermissionMap::uniform(permissions),
            tls_required: user.tls_required,
            quota_bytes: user.quota_bytes,
            quota_files: user.quota_files,
            limits: user.limits,
        });
    }
    let auth = FileAuthenticator::new(entries, None).map_err(|e| BuildError(e.to_string()))?;
    Ok(Arc::new(auth))
}

/// Cancels `token` on Ctrl-C or (on Unix) SIGTERM.
pub(crate) async fn cancel_on_signal(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    token.cancel();
}
