//! Your own `Authenticator`: here, users are looked up in a table held by the program (it could
//! as well ask an HTTP service or a database). Each user gets a home under `./homes`, and the
//! `guest` account is read-only. Run with `cargo run -p ftpgate --example custom_auth`, then
//! log in as `alice` / `wonderland` or `guest` / `guest`.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use ftpgate::fs::FsStorageFactory;
use ftpgate::{AuthError, Authenticator, LoginRequest, Permissions, Server, User};

/// Users and passwords from a table (a real one would keep password hashes, not passwords).
struct TableAuthenticator {
    passwords: HashMap<&'static str, &'static str>,
}

#[async_trait]
impl Authenticator for TableAuthenticator {
    async fn authenticate(&self, request: &LoginRequest<'_>) -> Result<User, AuthError> {
        let (username, password) = (request.username(), request.password());
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
                let mut user = User::new(username, home, permissions);
                user.quota_bytes = Some(100 * 1024 * 1024);
                Ok(user)
            }
            Some(_) => Err(AuthError::InvalidCredentials),
            None => Err(AuthError::UnknownUser),
        }
    }
}

fn main() -> std::io::Result<()> {
    let auth = TableAuthenticator {
        passwords: HashMap::from([("alice", "wonderland"), ("guest", "guest")]),
    };
    Server::with_storage(Arc::new(FsStorageFactory::default()))
        .authenticator(Arc::new(auth))
        .listen("127.0.0.1:2121")
        .serve_blocking()
}
