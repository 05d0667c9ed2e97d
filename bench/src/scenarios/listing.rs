//! large-listing (formerly S7): a listing of a big directory, one session.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Result, bail};

use crate::client::Ftp;

use super::{Sample, Settings, list_dir};

/// large-listing: `verb` (LIST or MLSD) of the directory of `list_files` files; the time it
/// takes, and the lines and bytes received.
pub(super) async fn large_listing(
    addr: SocketAddr,
    user: &str,
    password: &str,
    s: &Settings,
    verb: &str,
) -> Result<Sample> {
    let mut ftp = Ftp::open(addr, None, user, password).await?;
    let mut buf = vec![0u8; 1 << 16];
    let started = Instant::now();
    let (bytes, lines) = ftp.listing(verb, &list_dir(s), &mut buf).await?;
    let took = started.elapsed();
    ftp.quit().await?;
    if lines < s.list_files as u64 {
        bail!("{verb} listed {lines} lines for {} files", s.list_files);
    }
    let mut sample = Sample {
        value: took.as_secs_f64(),
        ..Sample::default()
    };
    sample.extra.insert("lines".into(), lines as f64);
    sample.extra.insert("bytes".into(), bytes as f64);
    Ok(sample)
}
