//! The `object` comparison: ftpgate in front of a real S3 store (Garage, started here) next to
//! the fastest direct S3 client that runs on this machine (rclone, tuned), in one run.
//!
//! Scenarios (`--only`, comma-separated; default all):
//! - `large`: one large file (2 GiB) up and down; ftpgate's peak RSS.
//! - `small`: 1,000 × 64 KiB uploads then downloads over one FTP session, against the direct
//!   client putting and getting the same objects one at a time (and, for reference, in parallel).
//! - `sessions`: 100 sessions at once, each uploading then downloading 20 files of 1 MiB
//!   (aggregate MB/s, p99 per file), against the direct client with 100 transfers at once.
//! - `listing`: LIST and MLSD of a prefix with 100,000 keys against the direct client's listing,
//!   with ftpgate's peak RSS for that listing and for one of a tenth of the keys.
//! - `resume`: an upload cut off half way, continued with SIZE + REST + STOR from a new
//!   session: time to continue, bytes sent twice, and the result checked byte for byte.
//!
//! Every scenario starts a daemon of its own, so each peak RSS belongs to one scenario.

mod client;
mod scenarios;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ftpgate_test_support::garage;

use crate::procfs;

pub(crate) use client::Ftp;

/// The user every scenario logs in as.
const USER: &str = "bench";
const PASSWORD: &str = "bench-object";

/// What `ftpgate-bench object` was asked to do.
pub(crate) struct Options {
    pub(crate) only: Vec<String>,
    pub(crate) size_mib: u64,
    pub(crate) small_files: usize,
    pub(crate) sessions: usize,
    pub(crate) list_keys: usize,
    pub(crate) ftpgate: PathBuf,
    pub(crate) results: PathBuf,
}

impl Options {
    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o.eq_ignore_ascii_case(scenario))
    }
}

/// One line of the results table.
pub(crate) struct Row {
    pub(crate) scenario: &'static str,
    pub(crate) measure: String,
    pub(crate) ftpgate: f64,
    pub(crate) direct: Option<f64>,
    /// Whether a larger figure is better (rates) or a smaller one (seconds).
    pub(crate) higher_is_better: bool,
    pub(crate) unit: &'static str,
    pub(crate) note: String,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        let direct = self.direct?;
        if direct <= 0.0 || self.ftpgate <= 0.0 {
            return None;
        }
        Some(if self.higher_is_better {
            self.ftpgate / direct
        } else {
            direct / self.ftpgate
        })
    }
}

/// The store and the scratch directory the scenarios share.
pub(crate) struct Bed {
    pub(crate) garage: garage::Garage,
    pub(crate) work: PathBuf,
    ftpgate: PathBuf,
    /// `ftpgate hash-password` of [`PASSWORD`].
    password_hash: String,
}

impl Bed {
    /// `store:BUCKET/PATH` for rclone.
    pub(crate) fn remote(&self, path: &str) -> String {
        format!("store:{}/{path}", self.garage.bucket)
    }

    /// Starts ftpgate serving `s3://BUCKET/PREFIX/` as a production server is set up: one
    /// `[[users]]` entry with an argon2id hash (nothing hashed at start), default settings but
    /// the per-address session cap (in the way of a hundred sessions from one address) and, for
    /// `resume`, kept partial uploads (which cost a look for one at each upload's start).
    pub(crate) fn daemon(&self, prefix: &str, keep_partial_uploads: bool) -> Result<Daemon> {
        let g = &self.garage;
        let config = self.work.join(format!("ftpgate-{prefix}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = [\"127.0.0.1:0\"]\nmax_connections = 2000\n\
                 max_connections_per_ip = 2000\n\n\
                 [storage]\nkeep_partial_uploads = {keep_partial_uploads}\n\n\
                 [storage.s3]\nendpoint = \"{}\"\nregion = \"{}\"\nbucket = \"{}\"\n\
                 access_key = \"{}\"\nsecret_key = \"{}\"\npath_style = true\n\n\
                 [[users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\nhome = \"s3://{}/{prefix}/\"\n",
                g.endpoint,
                g.region,
                g.bucket,
                g.access_key,
                g.secret_key,
                self.password_hash,
                g.bucket
            ),
        )?;
        Daemon::start(
            &self.ftpgate,
            &["--config", config.to_str().context("path")?],
            &[("RUST_LOG", "warn")],
        )
    }

    /// Runs rclone with a remote named `store` configured from the environment (no config
    /// file); returns how long it took.
    pub(crate) fn rclone(&self, args: &[&str]) -> Result<Duration> {
        let g = &self.garage;
        let started = Instant::now();
        let output = Command::new("rclone")
            .args(args)
            .args(["--config", "/dev/null"])
            .env_remove("AWS_CA_BUNDLE")
            .env("RCLONE_CONFIG_STORE_TYPE", "s3")
            .env("RCLONE_CONFIG_STORE_PROVIDER", "Other")
            .env("RCLONE_CONFIG_STORE_ENDPOINT", &g.endpoint)
            .env("RCLONE_CONFIG_STORE_REGION", &g.region)
            .env("RCLONE_CONFIG_STORE_ACCESS_KEY_ID", &g.access_key)
            .env("RCLONE_CONFIG_STORE_SECRET_ACCESS_KEY", &g.secret_key)
            .env("RCLONE_CONFIG_STORE_FORCE_PATH_STYLE", "true")
            .stdout(Stdio::null())
            .output()
            .context("rclone is not installed")?;
        if !output.status.success() {
            bail!(
                "rclone {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(started.elapsed())
    }
}

/// A running ftpgate daemon.
pub(crate) struct Daemon {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Daemon> {
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines.next().context("ftpgate exited before listening")??;
            if let Some(rest) = line.strip_prefix("ftpgate: listening on ") {
                break rest
                    .split_whitespace()
                    .next()
                    .context("bad listening line")?
                    .parse()?;
            }
        };
        // Keep draining its standard output so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Daemon { child, addr })
    }

    /// Logs in.
    pub(crate) fn login(&self) -> Result<Ftp> {
        Ftp::login(self.addr, USER, PASSWORD)
    }

    /// Peak resident memory (VmHWM) in MiB.
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        procfs::peak_rss_kib(self.child.id()) as f64 / 1024.0
    }

    /// CPU time (user + system) the daemon has used so far.
    pub(crate) fn cpu(&self) -> Duration {
        Duration::from_secs_f64(procfs::cpu_seconds(self.child.id()))
    }
}

/// Megabytes (10^6) per second.
pub(crate) fn mb_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64().max(1e-9)
}

/// Writes `size` bytes of incompressible content to `path` (a cheap xorshift stream).
pub(crate) fn write_payload(path: &Path, size: u64, seed: u64) -> Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(())
}

/// Runs the selected scenarios and writes their results under `options.results`.
pub(crate) fn run(options: &Options) -> Result<()> {
    let work = std::env::temp_dir().join(format!("ftpgate-bench-object-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let garage = garage::try_start().map_err(|e| anyhow::anyhow!("cannot start Garage: {e}"))?;
    let ftpgate = std::path::absolute(&options.ftpgate)?;
    let hashed = Command::new(&ftpgate)
        .args(["hash-password", "--password", PASSWORD])
        .output()
        .with_context(|| format!("cannot run {}", ftpgate.display()))?;
    if !hashed.status.success() {
        bail!("ftpgate hash-password failed");
    }
    let bed = Bed {
        garage,
        work: work.clone(),
        ftpgate,
        password_hash: String::from_utf8_lossy(&hashed.stdout).trim().to_string(),
    };
    let mut rows = Vec::new();
    let mut garage_cpu = Vec::new();
    let mut step = |name: &str, rows_of: &mut dyn FnMut(&Bed) -> Result<Vec<Row>>| {
        eprintln!("object: {name}...");
        let before = garage_cpu_time(&bed.garage);
        match rows_of(&bed) {
            Ok(mut r) => rows.append(&mut r),
            Err(e) => eprintln!("object: {name} failed: {e:#}"),
        }
        let after = garage_cpu_time(&bed.garage);
        garage_cpu.push((name.to_string(), after.saturating_sub(before)));
    };
    if options.wants("large") {
        step("large", &mut |b| scenarios::large(b, options.size_mib));
    }
    if options.wants("small") {
        step("small", &mut |b| scenarios::small(b, options.small_files));
    }
    if options.wants("sessions") {
        step("sessions", &mut |b| {
            scenarios::sessions(b, options.sessions, 20)
        });
    }
    if options.wants("listing") {
        step("listing", &mut |b| scenarios::listing(b, options.list_keys));
    }
    if options.wants("resume") {
        step("resume", &mut |b| scenarios::resume(b, 256));
    }
    let report = Report::new(&rows, &garage_cpu)?;
    println!("{}", report.markdown);
    std::fs::create_dir_all(&options.results)?;
    let stamp = report.date.replace(':', "");
    std::fs::write(
        options.results.join(format!("object-{stamp}.md")),
        &report.markdown,
    )?;
    std::fs::write(
        options.results.join(format!("object-{stamp}.json")),
        report.json.to_string() + "\n",
    )?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// Garage's own CPU time so far (to show when the store, not ftpgate, is the limit).
fn garage_cpu_time(g: &garage::Garage) -> Duration {
    g.pid().map_or(Duration::ZERO, |pid| {
        Duration::from_secs_f64(procfs::cpu_seconds(pid))
    })
}

struct Report {
    date: String,
    markdown: String,
    json: serde_json::Value,
}

impl Report {
    fn new(rows: &[Row], garage_cpu: &[(String, Duration)]) -> Result<Report> {
        let date = Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%dT%H:%M:%SZ")
            .output()?;
        let date = String::from_utf8_lossy(&date.stdout).trim().to_string();
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mut md = format!(
            "## Object storage: ftpgate in front of Garage vs rclone direct, same run\n\n\
             {date}, {cpus} CPUs, Garage {} on loopback (single node)\n\n\
             | scenario | measure | ftpgate | direct (rclone) | ftpgate/direct | note |\n\
             |---|---|---:|---:|---:|---|\n",
            garage_version()
        );
        let mut json_rows = Vec::new();
        for row in rows {
            let direct = row
                .direct
                .map_or_else(|| "-".to_string(), |d| format!("{d:.2} {}", row.unit));
            let ratio = row
                .ratio()
                .map_or_else(|| "-".to_string(), |r| format!("{r:.2}"));
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} {} | {direct} | {ratio} | {} |",
                row.scenario, row.measure, row.ftpgate, row.unit, row.note
            );
            json_rows.push(serde_json::json!({
                "scenario": row.scenario,
                "measure": row.measure,
                "unit": row.unit,
                "ftpgate": row.ftpgate,
                "direct": row.direct,
                "ratio": row.ratio(),
                "note": row.note,
            }));
        }
        md.push_str(
            "\nRatios are ftpgate/direct for rates and direct/ftpgate for times: above 1 is \
             ftpgate ahead.\n\nGarage CPU time per scenario (a store near 100 % of a core is \
             the limit, not ftpgate):",
        );
        for (name, cpu) in garage_cpu {
            let _ = write!(md, " {name} {:.1} s;", cpu.as_secs_f64());
        }
        md.push('\n');
        let json = serde_json::json!({
            "scenario": "object",
            "date": date,
            "cpus": cpus,
            "rows": json_rows,
            "garage_cpu_secs": garage_cpu
                .iter()
                .map(|(n, d)| (n.clone(), d.as_secs_f64()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        });
        Ok(Report {
            date,
            markdown: md,
            json,
        })
    }
}

fn garage_version() -> String {
    garage::find_binary()
        .and_then(|bin| Command::new(bin).arg("--version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
