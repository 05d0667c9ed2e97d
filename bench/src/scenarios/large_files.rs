//! large-retr and large-stor (formerly S1 and S2): one large file down, then up, on one
//! session, with and without TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::client::{Ftp, Tls};
use crate::peers::Env;

use super::{Sample, Settings, mb_s, random_chunk};

/// large-retr: RETR of the big file (from the page cache), one session.
pub(super) async fn large_retr(
    addr: SocketAddr,
    tls: Option<Arc<Tls>>,
    user: &str,
    password: &str,
    s: &Settings,
) -> Result<Sample> {
    let mut ftp = Ftp::open(addr, tls, user, password).await?;
    let mut buf = vec![0u8; 1 << 20];
    let started = Instant::now();
    let got = ftp.retr("big.bin", &mut buf).await?;
    let took = started.elapsed();
    ftp.quit().await?;
    if got != s.big_bytes() {
        bail!("RETR returned {got} bytes, expected {}", s.big_bytes());
    }
    Ok(Sample {
        value: mb_s(got, took),
        ..Sample::default()
    })
}

/// large-stor: STOR of a file as big, one session; the stored size is checked.
pub(super) async fn large_stor(
    env: &Env,
    addr: SocketAddr,
    tls: Option<Arc<Tls>>,
    user: &str,
    password: &str,
    s: &Settings,
) -> Result<Sample> {
    let mut ftp = Ftp::open(addr, tls, user, password).await?;
    let chunk = random_chunk(1 << 20);
    let started = Instant::now();
    ftp.stor("up/big.bin", s.big_bytes(), &chunk).await?;
    let took = started.elapsed();
    ftp.quit().await?;
    // Some servers answer 226 before their last write reaches the file; give them a
    // moment (bounded) before checking the size.
    let path = env.root.join("up/big.bin");
    let mut stored = 0;
    for _ in 0..30 {
        stored = std::fs::metadata(&path)?.len();
        if stored == s.big_bytes() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if stored != s.big_bytes() {
        bail!("STOR left {stored} bytes, expected {}", s.big_bytes());
    }
    Ok(Sample {
        value: mb_s(s.big_bytes(), took),
        ..Sample::default()
    })
}
