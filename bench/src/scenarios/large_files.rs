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

/// large-retr with curl: `curl -o /dev/null` of the big file. The rate is curl's own
/// transfer time (from the RETR's first byte being asked for to the last byte), so its start-up
/// and login are left out, as they are for the bench's client.
pub(super) async fn large_retr_curl(
    addr: SocketAddr,
    user: &str,
    password: &str,
    s: &Settings,
) -> Result<Sample> {
    let url = format!("ftp://{addr}/big.bin");
    let mut curl = std::process::Command::new("curl");
    curl.args(["--silent", "--show-error", "--output", "/dev/null"])
        .args(["--user", &format!("{user}:{password}")])
        .args([
            "--write-out",
            "%{size_download} %{time_pretransfer} %{time_total}",
        ])
        .arg(&url);
    // The case's time limit is curl's too.
    curl.args(["--max-time", &s.timeout.as_secs().to_string()]);
    let out = tokio::task::spawn_blocking(move || curl.output()).await??;
    if !out.status.success() {
        bail!(
            "curl failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<f64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let [size, pretransfer, total] = fields[..] else {
        bail!("unexpected curl --write-out: {text}");
    };
    if size as u64 != s.big_bytes() {
        bail!("curl received {size} bytes, expected {}", s.big_bytes());
    }
    Ok(Sample {
        value: mb_s(
            s.big_bytes(),
            Duration::from_secs_f64((total - pretransfer).max(1e-6)),
        ),
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
