//! A complete FTP server in a dozen lines: `./data` served to user `demo` (password `demo`) on
//! 127.0.0.1:2121 until Ctrl-C. Run with `cargo run -p ftpgate --example minimal`.

use std::sync::Arc;

use ftpgate::{CancellationToken, Server, ServerConfig};
use ftpgate_auth_file::{FileAuthenticator, UserEntry, hash_password};
use ftpgate_core::{PermissionMap, Permissions};
use ftpgate_storage_fs::FsStorageFactory;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    std::fs::create_dir_all("data")?;
    let demo = UserEntry {
        name: "demo".into(),
        password_hash: hash_password("demo"),
        home: "data".into(),
        permissions: PermissionMap::uniform(Permissions::ALL),
        tls_required: false,
        quota_bytes: None,
    };
    let auth = FileAuthenticator::new(vec![demo], None).map_err(std::io::Error::other)?;
    let server = Server::new(
        ServerConfig::default(),
        Arc::new(auth),
        Arc::new(FsStorageFactory::default()),
    )
    .bind()
    .await?;
    println!("serving ./data on {:?} as demo/demo", server.local_addrs());
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    server.run(shutdown).await;
    Ok(())
}
