//! The `fleet` comparison: the overhead of the load-balancer path. Two ftpgate nodes behind
//! HAProxy (`contrib/haproxy.cfg`, through `ftpgate_test_support::fleet`) against node A
//! reached directly, in the same run, alternating: the latency of small RETRs (p50 and p99,
//! one session each) and the throughput of one large RETR.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use ftpgate_test_support::fleet::{Fleet, FleetOptions, PASSWORD, USER};
use serde_json::json;

use crate::client::Ftp;

/// What one path measured in one round.
struct Round {
    p50_us: f64,
    p99_us: f64,
    mb_per_s: f64,
}

/// Runs `rounds` rounds of `small` RETRs of 4 KiB and one RETR of `big_mib` MiB per path.
pub(crate) fn run(
    ftpgate: &Path,
    rounds: usize,
    small: usize,
    big_mib: u64,
    results: &Path,
) -> Result<()> {
    let fleet = Fleet::start(ftpgate, &FleetOptions::default());
    std::fs::write(fleet.data.join("small.bin"), vec![1u8; 4096])?;
    let big = vec![2u8; 1 << 20];
    {
        use std::io::Write;
        let mut file = std::fs::File::create(fleet.data.join("big.bin"))?;
        for _ in 0..big_mib {
            file.write_all(&big)?;
        }
    }
    let paths = [
        ("through HAProxy (2 nodes)", fleet.lb),
        ("node A direct", fleet.nodes[0].ftp_addr()),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut measured: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        // Alternate which path goes first.
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let r = runtime.block_on(measure(paths[i].1, small, big_mib))?;
            eprintln!(
                "round {round} {}: p50 {:.0} us, p99 {:.0} us, {:.0} MB/s",
                paths[i].0, r.p50_us, r.p99_us, r.mb_per_s
            );
            measured[i].push(r);
        }
    }
    let median = |values: Vec<f64>| {
        let mut v = values;
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let mut md = format!(
        "# Load-balancer overhead\n\nTwo ftpgate nodes behind HAProxy ({}) against node A \
         direct, same run, {rounds} rounds alternating, medians. Small: {small} x RETR of 4 KiB \
         in one session (latency of each RETR, EPSV included); large: one RETR of {big_mib} MiB.\n\n\
         | path | small RETR p50 (us) | small RETR p99 (us) | large RETR (MB/s) |\n|---|---|---|---|\n",
        haproxy_version()
    );
    let mut rows = Vec::new();
    for (i, (name, _)) in paths.iter().enumerate() {
        let p50 = median(measured[i].iter().map(|r| r.p50_us).collect());
        let p99 = median(measured[i].iter().map(|r| r.p99_us).collect());
        let mbs = median(measured[i].iter().map(|r| r.mb_per_s).collect());
        md.push_str(&format!("| {name} | {p50:.0} | {p99:.0} | {mbs:.0} |\n"));
        rows.push(json!({"path": name, "p50_us": p50, "p99_us": p99, "large_mb_per_s": mbs}));
    }
    println!("{md}");
    std::fs::create_dir_all(results)?;
    let stamp = chrono_stamp();
    let md_path = results.join(format!("fleet-{stamp}.md"));
    std::fs::write(&md_path, &md)?;
    let json_path = results.join(format!("fleet-{stamp}.json"));
    let doc = json!({"rounds": rounds, "small": small, "big_mib": big_mib, "results": rows});
    std::fs::write(&json_path, serde_json::to_string_pretty(&doc)? + "\n")?;
    println!("written: {} {}", md_path.display(), json_path.display());
    Ok(())
}

async fn measure(addr: SocketAddr, small: usize, big_mib: u64) -> Result<Round> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut ftp = Ftp::open(addr, None, USER, PASSWORD).await?;
    for _ in 0..10 {
        ftp.retr("small.bin", &mut buf).await?;
    }
    let mut latencies = Vec::with_capacity(small);
    for _ in 0..small {
        let began = Instant::now();
        ftp.retr("small.bin", &mut buf).await?;
        latencies.push(began.elapsed().as_secs_f64() * 1e6);
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let (p50_us, p99_us) = (at(0.5), at(0.99));
    let began = Instant::now();
    let bytes = ftp.retr("big.bin", &mut buf).await?;
    let mb_per_s = bytes as f64 / 1e6 / began.elapsed().as_secs_f64();
    anyhow::ensure!(bytes == big_mib << 20, "large RETR: {bytes} bytes");
    ftp.quit().await?;
    Ok(Round {
        p50_us,
        p99_us,
        mb_per_s,
    })
}

fn haproxy_version() -> String {
    std::process::Command::new("haproxy")
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.split(" - ").next().unwrap_or(l).to_string())
        })
        .unwrap_or_else(|| "HAProxy".to_string())
}

fn chrono_stamp() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H%M"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "now".to_string())
}
