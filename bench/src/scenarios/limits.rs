//! L: the machine's own limits (loopback TCP, page-cache reads, disk writes).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::peers::Env;

use super::*;

/// L: loopback TCP (iperf3), reading the big file from the page cache, and writing as much to
/// the disk without fsync (as the servers write), once per round.
pub(super) fn machine_limits(
    env: &Env,
    s: &Settings,
    mut iperf: Vec<Result<f64, String>>,
) -> Vec<Limit> {
    let mut read = Vec::new();
    let mut write = Vec::new();
    for round in 0..s.rounds {
        eprintln!("L round {}/{}", round + 1, s.rounds);
        if iperf.len() < s.rounds {
            // large-retr was not run: loopback on its own.
            iperf.push(iperf3(s.big_bytes()).map_err(|e| format!("{e:#}")));
        }
        read.push(read_file(&env.root.join("big.bin")).map_err(|e| format!("{e:#}")));
        write.push(
            write_file(&env.data.join("write-test.bin"), s.big_bytes())
                .map_err(|e| format!("{e:#}")),
        );
    }
    vec![
        Limit {
            name: LOOPBACK,
            unit: "MB/s",
            runs: iperf,
        },
        Limit {
            name: "read the big file from page cache",
            unit: "MB/s",
            runs: read,
        },
        Limit {
            name: "write as much to disk, no fsync",
            unit: "MB/s",
            runs: write,
        },
    ]
}

/// The name of the loopback limit, which large-retr is compared with.
pub(crate) const LOOPBACK: &str =
    "loopback TCP, one stream, large-retr's bytes (iperf3 -n, in large-retr's rounds)";

/// Loopback TCP throughput of one iperf3 stream sending `bytes`.
pub(super) fn iperf3(bytes: u64) -> Result<f64> {
    let port = "21299";
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-B", "127.0.0.1", "-p", port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("iperf3 is not installed (bench/peers.sh install)")?;
    std::thread::sleep(Duration::from_millis(300));
    let output = Command::new("iperf3")
        .args([
            "-c",
            "127.0.0.1",
            "-p",
            port,
            "-J",
            "-n",
            &bytes.to_string(),
        ])
        .output();
    let _ = server.kill();
    let _ = server.wait();
    let output = output?;
    let report: Value = serde_json::from_slice(&output.stdout).context("iperf3 output")?;
    let bits = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("iperf3: {}", String::from_utf8_lossy(&output.stderr)))?;
    Ok(bits / 8e6)
}

pub(super) fn read_file(path: &Path) -> Result<f64> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let started = Instant::now();
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    Ok(mb_s(total, started.elapsed()))
}

pub(super) fn write_file(path: &Path, bytes: u64) -> Result<f64> {
    let chunk = random_chunk(1 << 20);
    let started = Instant::now();
    {
        let mut file = std::fs::File::create(path)?;
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n])?;
            left -= n as u64;
        }
    }
    let took = started.elapsed();
    std::fs::remove_file(path)?;
    Ok(mb_s(bytes, took))
}
