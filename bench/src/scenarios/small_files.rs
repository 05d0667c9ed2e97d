//! small-files (formerly S3): many small files through one session.

use std::time::Instant;

use anyhow::{Result, bail};

use crate::client::Ftp;

use super::*;

/// small-files: small files up then down, one session.
pub(super) async fn small_files(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
    s: &Settings,
) -> Result<Sample> {
    let size = s.small_kib << 10;
    let chunk = random_chunk(size as usize);
    let mut buf = vec![0u8; 1 << 16];
    let mut ftp = Ftp::open(addr, None, user, password).await?;
    let mut latencies = Vec::with_capacity(2 * s.small_files);
    let started = Instant::now();
    for i in 0..s.small_files {
        let t = Instant::now();
        ftp.stor(&format!("up/small-{i}"), size, &chunk).await?;
        latencies.push(t.elapsed());
    }
    let stor_took = started.elapsed();
    for i in 0..s.small_files {
        let t = Instant::now();
        let got = ftp.retr(&format!("up/small-{i}"), &mut buf).await?;
        latencies.push(t.elapsed());
        if got != size {
            bail!("RETR small-{i}: {got} bytes, expected {size}");
        }
    }
    let took = started.elapsed();
    ftp.quit().await?;
    let mut sample = with_latencies(
        (2 * s.small_files) as f64 / took.as_secs_f64(),
        &mut latencies,
    );
    let n = s.small_files as f64;
    sample
        .extra
        .insert("stor_ops_s".into(), n / stor_took.as_secs_f64());
    sample
        .extra
        .insert("retr_ops_s".into(), n / (took - stor_took).as_secs_f64());
    Ok(sample)
}
