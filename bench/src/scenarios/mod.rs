//! The scenarios: what each one does to a server, what it measures, and the loop that runs every
//! scenario on every server, alternating servers within each round.
//!
//! Each scenario has a descriptive id ([`SCENARIOS`]) and its code in a module of its own:
//! large-retr and large-stor in `large_files.rs`, small-files in `small_files.rs`, concurrent,
//! login-storm and idle-sessions in `sessions.rs`, large-listing in `listing.rs`, the machine's
//! limits (L) in `limits.rs`. Results before the ids were named call them S1 to S7, in that
//! order; `--only` still accepts those.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::client::{Ftp, Tls};
use crate::peers::{Env, Running, Server};
use crate::procfs;

mod large_files;
mod limits;
mod listing;
mod sessions;
mod small_files;

use large_files::{large_retr, large_retr_curl, large_stor};
pub(crate) use limits::LOOPBACK;
use limits::{iperf3, machine_limits, read_file};
use listing::large_listing;
use sessions::{concurrent, idle, logins};
use small_files::small_files;

/// The scenarios in the order they run: the id `--only` takes and reports show, and the short
/// id earlier results used (also accepted by `--only`).
pub(crate) const SCENARIOS: [(&str, &str); 7] = [
    ("large-retr", "S1"),
    ("large-stor", "S2"),
    ("small-files", "S3"),
    ("concurrent", "S4"),
    ("login-storm", "S5"),
    ("idle-sessions", "S6"),
    ("large-listing", "S7"),
];

/// Sizes and counts; `--quick` shrinks them.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) rounds: usize,
    /// large-retr/large-stor file size.
    pub(crate) big_mib: u64,
    /// small-files: files stored then retrieved, and their size.
    pub(crate) small_files: usize,
    pub(crate) small_kib: u64,
    /// concurrent: session counts, RETRs per session, file size.
    pub(crate) sessions: Vec<usize>,
    pub(crate) retrs_per_session: usize,
    pub(crate) medium_kib: u64,
    /// login-storm: logins, and how many are in flight at once (also the connection setup of
    /// concurrent and idle-sessions).
    pub(crate) logins: usize,
    pub(crate) in_flight: usize,
    /// idle-sessions: idle sessions.
    pub(crate) idle_sessions: usize,
    /// large-listing: files in the listed directory.
    pub(crate) list_files: usize,
    /// The longest one scenario may take on one server.
    pub(crate) timeout: Duration,
}

impl Settings {
    /// Runs per server of large-retr and large-stor (see [`Case::rounds`]).
    pub(crate) fn big_transfer_rounds(&self) -> usize {
        self.rounds * 2 + 1
    }

    /// The sizes the comparison is specified with.
    pub(crate) fn full() -> Settings {
        Settings {
            rounds: 3,
            big_mib: 1024,
            small_files: 2000,
            small_kib: 4,
            sessions: vec![100, 400],
            retrs_per_session: 20,
            medium_kib: 64,
            logins: 2000,
            in_flight: 50,
            idle_sessions: 1000,
            list_files: 100_000,
            timeout: Duration::from_secs(600),
        }
    }

    /// A run of a few minutes to check that everything works.
    pub(crate) fn quick() -> Settings {
        Settings {
            rounds: 1,
            big_mib: 128,
            small_files: 200,
            sessions: vec![20, 50],
            logins: 200,
            idle_sessions: 100,
            list_files: 10_000,
            timeout: Duration::from_secs(120),
            ..Settings::full()
        }
    }

    pub(crate) fn big_bytes(&self) -> u64 {
        self.big_mib << 20
    }
}

/// One measured case (a scenario, or one variant of it).
#[derive(Debug, Clone)]
pub(crate) enum Case {
    /// large-retr: RETR of the big file.
    Retr { tls: bool },
    /// large-retr with curl: the same RETR by the curl program, whose receive pattern (16 KiB
    /// reads) is what most users have.
    RetrCurl,
    /// large-stor: STOR of a file as big.
    Stor { tls: bool },
    /// small-files: many small STORs then RETRs on one session.
    Small,
    /// concurrent: concurrent sessions, each logging in and then doing RETRs.
    Concurrent { sessions: usize },
    /// login-storm: connect, login, quit, many times.
    Logins,
    /// idle-sessions: memory of idle logged-in sessions.
    Idle,
    /// large-listing: a listing of a big directory.
    List { verb: &'static str },
}

impl Case {
    /// The cases of the selected scenarios (by id or old short id, see [`SCENARIOS`]), in
    /// order.
    pub(crate) fn selected(only: &[String], settings: &Settings) -> Vec<Case> {
        let on = |id: &str| {
            let old = SCENARIOS
                .iter()
                .find(|(new, _)| *new == id)
                .map(|(_, old)| *old);
            only.is_empty()
                || only.iter().any(|o| {
                    o.eq_ignore_ascii_case(id) || old.is_some_and(|old| o.eq_ignore_ascii_case(old))
                })
        };
        let mut cases = Vec::new();
        if on("large-retr") {
            cases.extend([
                Case::Retr { tls: false },
                Case::RetrCurl,
                Case::Retr { tls: true },
            ]);
        }
        if on("large-stor") {
            cases.extend([Case::Stor { tls: false }, Case::Stor { tls: true }]);
        }
        if on("small-files") {
            cases.push(Case::Small);
        }
        if on("concurrent") {
            for &sessions in &settings.sessions {
                cases.push(Case::Concurrent { sessions });
            }
        }
        if on("login-storm") {
            cases.push(Case::Logins);
        }
        if on("idle-sessions") {
            cases.push(Case::Idle);
        }
        if on("large-listing") {
            cases.extend([Case::List { verb: "LIST" }, Case::List { verb: "MLSD" }]);
        }
        cases
    }

    /// How many times each server runs this case. A single 1 GiB transfer takes about a
    /// second and swings most from run to run (the kernel's page allocation, the host under
    /// the virtual machine: 0.4-2.6 GB/s for the same server within minutes), so large-retr and
    /// large-stor take 2n+1 runs where the other cases take n.
    pub(crate) fn rounds(&self, settings: &Settings) -> usize {
        match self {
            Case::Retr { .. } | Case::RetrCurl | Case::Stor { .. } => {
                settings.big_transfer_rounds()
            }
            _ => settings.rounds,
        }
    }

    /// Short name, as in the tables.
    pub(crate) fn id(&self) -> String {
        match self {
            Case::Retr { tls: false } => "large-retr".into(),
            Case::Retr { tls: true } => "large-retr TLS".into(),
            Case::RetrCurl => "large-retr curl".into(),
            Case::Stor { tls: false } => "large-stor".into(),
            Case::Stor { tls: true } => "large-stor TLS".into(),
            Case::Small => "small-files".into(),
            Case::Concurrent { sessions } => format!("concurrent x{sessions}"),
            Case::Logins => "login-storm".into(),
            Case::Idle => "idle-sessions".into(),
            Case::List { verb } => format!("large-listing {verb}"),
        }
    }

    /// What is done, in words.
    pub(crate) fn title(&self, s: &Settings) -> String {
        match self {
            Case::Retr { tls } => format!("RETR {} MiB, one session{}", s.big_mib, prot(*tls)),
            Case::RetrCurl => format!("RETR {} MiB by curl to /dev/null", s.big_mib),
            Case::Stor { tls } => format!("STOR {} MiB, one session{}", s.big_mib, prot(*tls)),
            Case::Small => format!(
                "{} x {} KiB STOR then RETR, one session",
                s.small_files, s.small_kib
            ),
            Case::Concurrent { sessions } => format!(
                "{sessions} sessions, login + {} x RETR {} KiB",
                s.retrs_per_session, s.medium_kib
            ),
            Case::Logins => format!(
                "{} x connect/login/quit, {} in flight",
                s.logins, s.in_flight
            ),
            Case::Idle => format!("{} idle logged-in sessions", s.idle_sessions),
            Case::List { verb } => format!("{verb} of {} files", s.list_files),
        }
    }

    /// The unit of the headline value.
    pub(crate) fn unit(&self) -> &'static str {
        match self {
            Case::Retr { .. } | Case::RetrCurl | Case::Stor { .. } => "MB/s",
            Case::Small | Case::Concurrent { .. } => "ops/s",
            Case::Logins => "logins/s",
            Case::Idle => "KiB PSS/session",
            Case::List { .. } => "s",
        }
    }

    /// Whether a larger headline value is better.
    pub(crate) fn higher_is_better(&self) -> bool {
        !matches!(self, Case::Idle | Case::List { .. })
    }

    fn tls(&self) -> bool {
        matches!(self, Case::Retr { tls: true } | Case::Stor { tls: true })
    }

    /// Whether the case is one session doing one thing after another (large-retr, large-stor,
    /// small-files, large-listing).
    fn one_session(&self) -> bool {
        matches!(
            self,
            Case::Retr { .. }
                | Case::RetrCurl
                | Case::Stor { .. }
                | Case::Small
                | Case::List { .. }
        )
    }
}

fn prot(tls: bool) -> &'static str {
    if tls { ", FTPS PROT P" } else { "" }
}

/// What one run of one case on one server measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    /// The headline value, in the case's unit.
    pub(crate) value: f64,
    /// Latency percentiles of the case's operations, in milliseconds.
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    /// CPU seconds used by the server's process tree during the case.
    pub(crate) server_cpu_s: f64,
    /// CPU seconds used by the bench itself (load generator and sampling).
    pub(crate) client_cpu_s: f64,
    /// Peak memory of the server: the largest sampled RSS sum over its processes, or the main
    /// process's VmHWM if larger.
    pub(crate) peak_rss_mib: f64,
    /// Case-specific figures (first login, memory per session, listing size...).
    pub(crate) extra: BTreeMap<String, f64>,
}

impl Sample {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "value": self.value,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "server_cpu_s": self.server_cpu_s,
            "client_cpu_s": self.client_cpu_s,
            "peak_rss_mib": self.peak_rss_mib,
            "extra": self.extra,
        })
    }
}

/// Every run of one case: per server, one result per round.
pub(crate) struct CaseResult {
    pub(crate) case: Case,
    pub(crate) runs: BTreeMap<String, Vec<Result<Sample, String>>>,
}

/// Whether a server could be started at all (checked once, before the cases).
pub(crate) struct ServerStatus {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) started: Result<(), String>,
    /// How its CPU time is measured.
    pub(crate) cpu_source: &'static str,
}

/// The machine's own limits, measured in the same run.
pub(crate) struct Limit {
    pub(crate) name: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) runs: Vec<Result<f64, String>>,
}

/// Everything one run measured.
pub(crate) struct Results {
    pub(crate) servers: Vec<ServerStatus>,
    pub(crate) cases: Vec<CaseResult>,
    pub(crate) limits: Vec<Limit>,
}

/// Creates the served tree once: the big file, the concurrent file, the large-listing directory; an
/// empty upload directory every server may write to.
pub(crate) fn prepare_data(env: &Env, s: &Settings) -> Result<()> {
    std::fs::create_dir_all(env.data.join("logs"))?;
    std::fs::create_dir_all(&env.root)?;
    make_file(&env.root.join("big.bin"), s.big_bytes())?;
    make_file(&env.root.join("medium.bin"), s.medium_kib << 10)?;
    let many = env.root.join(list_dir(s));
    let complete = std::fs::read_dir(&many).map(|d| d.count()).ok() == Some(s.list_files);
    if !complete {
        eprintln!(
            "creating {} empty files in {}",
            s.list_files,
            many.display()
        );
        let _ = std::fs::remove_dir_all(&many);
        std::fs::create_dir_all(&many)?;
        for i in 0..s.list_files {
            std::fs::File::create(many.join(format!("file-{i:06}.dat")))?;
        }
    }
    clear_uploads(env)
}

/// The large-listing directory, named by its size so quick and full runs keep their own.
fn list_dir(s: &Settings) -> String {
    format!("many-{}", s.list_files)
}

/// Gives the next run an empty upload directory; it is world-writable since some servers write
/// as the system user and others as root.
fn clear_uploads(env: &Env) -> Result<()> {
    let up = env.root.join("up");
    // The big upload goes (a few inodes); the small files of small-files are moved aside, not
    // deleted: on ext4 without a journal a new inode skips every inode freed in the last minute, so
    // deleting 2,000 files before each run made every later run's file creations slower
    // (small-files 1,700 ops/s after a few runs, 2,900 after a minute's pause, for the same
    // server).
    let _ = std::fs::remove_file(up.join("big.bin"));
    if up.exists() {
        let trash = env.data.join("trash");
        std::fs::create_dir_all(&trash)?;
        let aside = trash.join(format!(
            "up-{}",
            SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos()
        ));
        if std::fs::rename(&up, &aside).is_err() {
            let _ = std::fs::remove_dir_all(&up);
        }
    }
    std::fs::create_dir_all(&up)?;
    std::fs::set_permissions(&up, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
    Ok(())
}

/// Deletes what [`clear_uploads`] moved aside, once no run is being measured.
fn empty_trash(env: &Env) {
    let _ = std::fs::remove_dir_all(env.data.join("trash"));
}

/// Writes `bytes` of incompressible data to `path` unless it already has that size.
fn make_file(path: &Path, bytes: u64) -> Result<()> {
    if std::fs::metadata(path).map(|m| m.len()).ok() == Some(bytes) {
        return Ok(());
    }
    eprintln!("writing {} ({} bytes)", path.display(), bytes);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut left = bytes;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    while left > 0 {
        fill(&mut block, &mut x);
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(())
}

/// Fills `block` with xorshift output (incompressible, cheap).
fn fill(block: &mut [u8], x: &mut u64) {
    for chunk in block.chunks_mut(8) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

/// Starts each server once and logs in, so a peer that cannot run is reported, not dropped.
pub(crate) async fn check_servers(env: &Env, servers: &[Server]) -> Vec<ServerStatus> {
    let mut statuses = Vec::new();
    for server in servers {
        let mut cpu_source = "";
        let started = async {
            let running = server.start(env).await?;
            cpu_source = running.cpu_source();
            let ftp = Ftp::open(server.addr(), None, &env.user, &env.password).await?;
            ftp.quit().await?;
            drop(running);
            Ok::<(), anyhow::Error>(())
        }
        .await
        .map_err(|e| format!("{e:#}"));
        if let Err(e) = &started {
            eprintln!("{}: did not start: {e}", server.name);
        }
        statuses.push(ServerStatus {
            name: server.name.clone(),
            version: crate::peers::version(env, &server.name),
            started,
            cpu_source,
        });
    }
    statuses
}

/// Runs every case on every server that started, `rounds` times, rotating the order of the
/// servers each round; the limits are measured once per round.
pub(crate) async fn run_all(
    env: &Env,
    settings: &Settings,
    servers: &[Server],
    statuses: &[ServerStatus],
    cases: Vec<Case>,
    limits: bool,
) -> Result<(Vec<CaseResult>, Vec<Limit>)> {
    let tls = Tls::new()?;
    let usable: Vec<&Server> = servers
        .iter()
        .filter(|s| {
            statuses
                .iter()
                .any(|st| st.name == s.name && st.started.is_ok())
        })
        .collect();
    let mut results = Vec::new();
    // Loopback TCP is measured in large-retr's rounds, moving the same bytes, so the
    // large-retr/loopback ratio compares runs minutes apart at most, not a run at the end of the
    // bench.
    let mut loopback = Vec::new();
    for case in cases {
        let mut runs: BTreeMap<String, Vec<Result<Sample, String>>> = BTreeMap::new();
        let rounds = case.rounds(settings);
        for round in 0..rounds {
            if limits && matches!(case, Case::Retr { tls: false }) {
                eprintln!("{} round {}/{}: iperf3", case.id(), round + 1, rounds);
                loopback.push(iperf3(settings.big_bytes()).map_err(|e| format!("{e:#}")));
            }
            for i in 0..usable.len() {
                let server = usable[(i + round) % usable.len()];
                eprintln!(
                    "{} round {}/{}: {}",
                    case.id(),
                    round + 1,
                    rounds,
                    server.name
                );
                let outcome = measure(env, settings, server, &case, &tls)
                    .await
                    .map_err(|e| format!("{e:#}"));
                match &outcome {
                    Ok(s) => eprintln!("  {:.1} {}", s.value, case.unit()),
                    Err(e) => eprintln!("  failed: {e}"),
                }
                runs.entry(server.name.clone()).or_default().push(outcome);
            }
        }
        results.push(CaseResult { case, runs });
    }
    empty_trash(env);
    let mut limit_results = Vec::new();
    if limits {
        limit_results = machine_limits(env, settings, loopback);
    }
    Ok((results, limit_results))
}

/// Starts a fresh server, runs one case against it while sampling its memory, and stops it.
async fn measure(
    env: &Env,
    s: &Settings,
    server: &Server,
    case: &Case,
    tls: &Arc<Tls>,
) -> Result<Sample> {
    clear_uploads(env)?;
    if let Case::Retr { .. } | Case::RetrCurl = case {
        // large-retr reads from the page cache: a STOR case or another program may have pushed the
        // file out, and then the first server measured would pay for the disk.
        read_file(&env.root.join("big.bin"))?;
    }
    let running = Arc::new(server.start(env).await?);
    let sampler = Sampler::start(running.clone());
    let cpu_before = running.cpu_seconds();
    let own_before = procfs::own_cpu_seconds();
    let tls = case.tls().then(|| tls.clone());
    let body = async {
        match tokio::time::timeout(s.timeout, run_case(env, s, server, case, tls, &running)).await {
            Ok(result) => result,
            Err(_) => bail!("did not finish within {} s", s.timeout.as_secs()),
        }
    };
    let mut sample = if case.one_session() {
        on_own_thread(body)?
    } else {
        body.await?
    };
    sample.server_cpu_s = running.cpu_seconds() - cpu_before;
    sample.client_cpu_s = procfs::own_cpu_seconds() - own_before;
    let peak_kib = sampler.stop().max(procfs::peak_rss_kib(running.pid));
    sample.peak_rss_mib = peak_kib as f64 / 1024.0;
    drop(running);
    Ok(sample)
}

/// Runs a one-session case on a single-threaded runtime of its own thread. On the work-stealing
/// runtime each step of a session (a reply read, a data connection accepted) can wake the other
/// worker and move the task across threads: small-files cost the client 170 µs of CPU per operation
/// that way, more than most servers spent, and it slowed every server alike.
fn on_own_thread<T: Send>(body: impl Future<Output = Result<T>> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(body)
            })
            .join()
            .unwrap_or_else(|_| bail!("the client thread panicked"))
    })
}

/// Samples the RSS summed over a server's processes every 200 ms, on its own thread, keeping
/// the largest.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(server: Arc<Running>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                // Bounded: at most one hour of samples, however the case ends.
                for _ in 0..18_000 {
                    peak.fetch_max(procfs::rss_kib(&server.pids()), Ordering::Relaxed);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        Sampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// Stops sampling; returns the peak in KiB.
    fn stop(mut self) -> u64 {
        self.halt();
        self.peak.load(Ordering::Relaxed)
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A case that fails stops the sampler too, so the server it holds is killed at once.
impl Drop for Sampler {
    fn drop(&mut self) {
        self.halt();
    }
}

async fn run_case(
    env: &Env,
    s: &Settings,
    server: &Server,
    case: &Case,
    tls: Option<Arc<Tls>>,
    running: &Running,
) -> Result<Sample> {
    let addr = server.addr();
    let (user, password) = (env.user.as_str(), env.password.as_str());
    match case {
        Case::Retr { .. } => large_retr(addr, tls, user, password, s).await,
        Case::RetrCurl => large_retr_curl(addr, user, password, s).await,
        Case::Stor { .. } => large_stor(env, addr, tls, user, password, s).await,
        Case::Small => small_files(addr, user, password, s).await,
        Case::Concurrent { sessions } => concurrent(addr, user, password, s, *sessions).await,
        Case::Logins => logins(addr, user, password, s).await,
        Case::Idle => idle(addr, user, password, s, running).await,
        Case::List { verb } => large_listing(addr, user, password, s, verb).await,
    }
}

fn mb_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

fn random_chunk(len: usize) -> Vec<u8> {
    let mut chunk = vec![0u8; len];
    fill(&mut chunk, &mut 0x2545_F491_4F6C_DD1D);
    chunk
}

/// A sample with `value` and the p50/p99 of `latencies`.
fn with_latencies(value: f64, latencies: &mut [Duration]) -> Sample {
    latencies.sort();
    let pick = |q: f64| -> Option<f64> {
        let last = latencies.len().checked_sub(1)?;
        let i = ((last as f64) * q).round() as usize;
        Some(latencies[i.min(last)].as_secs_f64() * 1e3)
    };
    Sample {
        value,
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        ..Sample::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(only: &[&str]) -> Vec<String> {
        let only: Vec<String> = only.iter().map(|s| s.to_string()).collect();
        Case::selected(&only, &Settings::quick())
            .iter()
            .map(Case::id)
            .collect()
    }

    #[test]
    fn scenarios_are_selected_by_id_or_by_their_old_short_id() {
        assert_eq!(ids(&["small-files"]), ["small-files"]);
        assert_eq!(ids(&["S3"]), ids(&["small-files"]));
        assert_eq!(ids(&["s1", "S7"]), ids(&["large-retr", "large-listing"]));
        assert_eq!(
            ids(&["large-listing", "concurrent"]),
            [
                "concurrent x20",
                "concurrent x50",
                "large-listing LIST",
                "large-listing MLSD"
            ]
        );
        for (new, old) in SCENARIOS {
            assert!(!ids(&[new]).is_empty(), "{new}");
            assert_eq!(ids(&[old]), ids(&[new]), "{old}");
        }
        // Every case, in the order of the table.
        assert_eq!(ids(&[]).len(), 3 + 2 + 1 + 2 + 1 + 1 + 2);
        assert!(ids(&["S8"]).is_empty());
    }
}
