//! Your own `Authenticator`: here, users are looked up in a table held by the program (it could
//! as well ask an HTTP service or a database). Each user gets a home under `./homes`, and the
//! `guest` account is read-only. Run with `cargo run -p ftpgate --example custom_auth`, then
//! log in as `alice` / `wonderland` or `guest` / `guest`.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use ftpgate::{CancellationToken, Server, ServerConfig};
use ftpgate_core::{AuthError, Authenticator, Password, PermissionMap, Permissions, User};
use ftpgate_storage_fs::FsStorageFactory;

/// Users and passwords from a table (a real one would keep password hashes, not passwords).
struct TableAuthenticator {
    passwords: HashMap<&'static str, &'static str>,
}

#[async_trait]
impl Authenticator for TableAuthenticator {
    async fn authenticate(&self, username: &str, password: &Password) -> Result<User, AuthError> {
        match self.passwords.get(username) {
            Some(expected) if *expected == password.expose() => {
                let home = format!("homes/{username}");
                std::fs::create_dir_all(&home)
                    .map_err(|e| AuthError::Unavailable(e.to_string()))?;
                let permissions = if username == "guest" {
                    Permissions::READ_ONLY
                } else {
                    Permissions::ALL
                };
                Ok(User {
                    name: username.to_string(),
                    home,
                    permissions: PermissionMap::uniform(permissions),
                    tls_required: false,
                    quota_bytes: Some(100 * 1024 * 1024),
                })
            }
            _ => Err(AuthError::InvalidCredentials),
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let auth = TableAuthenticator {
        passwords: HashMap::from([("alice", "wonderland"), ("guest", "guest")]),
    };
    let server = Server::new(
        ServerConfig::default(),
        Arc::new(auth),
        Arc::new(FsStorageFactory::default()),
    )
    .bind()
    .await?;
    println!("listening on {:?}", server.local_addrs());
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    server.run(shutdown).await;
    Ok(())
}
