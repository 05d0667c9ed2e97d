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
