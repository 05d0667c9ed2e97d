//! The `Authenticator` trait: who may log in, where their home is, and what they may do.

use async_trait::async_trait;
use ftpgate_proto::{Password, PermissionMap};

/// A user who logged in.
#[derive(Debug, Clone)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The home, in the storage factory's terms (a directory on disk, a bucket prefix, ...).
    pub home: String,
    /// What the user may do where.
    pub permissions: PermissionMap,
    /// The user must log in over TLS and protect data connections.
    pub tls_required: bool,
    /// Most bytes the user's files may take, enforced while uploads arrive.
    pub quota_bytes: Option<u64>,
    /// Bandwidth, sessions, networks and validity, enforced by the engine.
    pub limits: UserLimits,
}

/// A user's policy beyond permissions and quota. The default limits nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserLimits {
    /// Bytes per second the user may upload, in each session and across all its sessions.
    pub upload_rate: Option<u64>,
    /// Bytes per second the user may download, in each session and across all its sessions.
    pub download_rate: Option<u64>,
    /// Rates for clients in particular networks (the first that holds the client wins), in
    /// place of `upload_rate` and `download_rate`.
    pub network_rates: Vec<NetworkRate>,
    /// Most sessions logged in as this user at once.
    pub max_sessions: Option<u32>,
    /// If not empty, the user may log in only from these networks.
    pub allowed_networks: Vec<ipnet::IpNet>,
    /// The user may not log in from these networks.
    pub denied_networks: Vec<ipnet::IpNet>,
    /// The account may not log in from this time on.
    pub expires_at: Option<std::time::SystemTime>,
    /// The account may not log in at all.
    pub disabled: bool,
}

/// Rates for clients in one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRate {
    /// The clients' network.
    pub network: ipnet::IpNet,
    /// Upload bytes per second (`None`: unlimited).
    pub upload_rate: Option<u64>,
    /// Download bytes per second (`None`: unlimited).
    pub download_rate: Option<u64>,
}

impl UserLimits {
    /// Why a login from `client` at `now` is refused, if it is.
    pub fn refusal(
        &self,
        client: std::net::IpAddr,
        now: std::time::SystemTime,
    ) -> Option<&'static str> {
        if self.disabled {
            return Some("the account is disabled");
        }
        if self.expires_at.is_some_and(|at| now >= at) {
            return Some("the account has expired");
        }
        if self.denied_networks.iter().any(|n| n.contains(&client)) {
            return Some("the client's network is denied to this user");
        }
        if !self.allowed_networks.is_empty()
            && !self.allowed_networks.iter().any(|n| n.contains(&client))
        {
            return Some("the client's network is not allowed for this user");
        }
        None
    }

    /// The (upload, download) rates for a client at `client`.
    pub fn rates_for(&self, client: std::net::IpAddr) -> (Option<u64>, Option<u64>) {
        match self
            .network_rates
            .iter()
            .find(|r| r.network.contains(&client))
        {
            Some(rate) => (rate.upload_rate, rate.download_rate),
            None => (self.upload_rate, self.download_rate),
        }
    }
}

impl User {
    /// A user with `permissions` everywhere in `home`, no quota and no TLS requirement; set the
    /// public fields for the rest.
    pub fn new(
        name: impl Into<String>,
        home: impl Into<String>,
        permissions: ftpgate_proto::Permissions,
    ) -> User {
        User {
            name: name.into(),
            home: home.into(),
            permissions: PermissionMap::uniform(permissions),
            tls_required: false,
            quota_bytes: None,
            limits: UserLimits::default(),
        }
    }
}

/// Why a login failed. The client is told the same in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Unknown user or wrong password.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The authenticator could not decide (a backend was unreachable).
    #[error("authentication unavailable: {0}")]
    Unavailable(String),
}

/// Checks credentials.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// The user for these credentials. Implementations should take the same time for an
    /// unknown user as for a wrong password.
    async fn authenticate(&self, username: &str, password: &Password) -> Result<User, AuthError>;
}
