//! Connections to the directory: opening one (TCP, then StartTLS or TLS as the URL says, with
//! the connect timeout), and the pool of connections bound as the service account that the
//! searches reuse.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ftpgate_core::AuthError;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};

/// How to reach the server.
#[derive(Clone)]
pub(crate) struct Connector {
    pub(crate) url: String,
    pub(crate) starttls: bool,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) connect_timeout: Duration,
}

impl Connector {
    /// A new connection (not yet bound: anonymous), its driver running on the runtime.
    pub(crate) async fn open(&self) -> Result<Ldap, AuthError> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.connect_timeout)
            .set_starttls(self.starttls)
            .set_config(self.tls.clone());
        // The connect timeout covers TCP; TLS and StartTLS are bounded here as well.
        let opened = tokio::time::timeout(
            self.connect_timeout,
            LdapConnAsync::with_settings(settings, &self.url),
        )
        .await
        .map_err(|_| {
            AuthError::Unavailable(format!(
                "{}: no connection within {:?}",
                self.url, self.connect_timeout
            ))
        })?
        .map_err(|e| AuthError::Unavailable(format!("{}: {e}", self.url)))?;
        let (conn, ldap) = opened;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended");
            }
        });
        Ok(ldap)
    }
}

/// Idle connections bound as the service account (or anonymous), at most `size` kept.
pub(crate) struct Pool {
    idle: Mutex<Vec<Ldap>>,
    size: usize,
}

impl Pool {
    pub(crate) fn new(size: usize) -> Self {
        Pool {
            idle: Mutex::new(Vec::new()),
            size,
        }
    }

    /// An idle connection that still looks open, if any.
    pub(crate) fn take(&self) -> Option<Ldap> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(mut ldap) = idle.pop() {
            if !ldap.is_closed() {
                return Some(ldap);
            }
        }
        None
    }

    /// Returns a connection that worked; dropped when the pool is full.
    pub(crate) fn put(&self, ldap: Ldap) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.size {
                idle.push(ldap);
            }
        }
    }

    /// Forgets every idle connection (after one failed: the others likely went with it).
    pub(crate) fn clear(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}
