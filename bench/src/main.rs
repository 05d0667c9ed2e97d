//! `ftpgate-bench`: measures ftpgate next to what it competes with, in the same run.
//!
//! `ftpgate-bench peers` runs ftpgate and peer FTP servers (vsftpd, Pure-FTPd, ProFTPD,
//! pyftpdlib; installed by `bench/peers.sh install`) side by side on loopback, alternating
//! between them, with a load generator of its own, and prints medians with the ratio
//! ftpgate/peer for each scenario, the servers' CPU time and memory, and the machine's own
//! limits measured in the same run.
//!
//! `ftpgate-bench object` (also `s3`) runs ftpgate in front of a real S3 store (Garage, started
//! here) next to a tuned direct S3 client (rclone) on the same store: one large file, many small
//! files over one session, many sessions at once, a listing of a large prefix and a resumed
//! upload (see `object`).
//!
//! Both write their results as JSON and Markdown under `bench/results/`.

mod client;
mod fleet;
mod object;
mod peers;
mod procfs;
mod report;
mod scenarios;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::peers::{Env, Server};
use crate::scenarios::{Case, Results, Settings};

#[derive(Parser)]
#[command(about = "Benchmarks of ftpgate against peers, measured in one run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The two comparisons.
#[derive(Subcommand)]
enum Command {
    /// ftpgate in front of S3 (Garage), next to rclone talking to the same store directly.
    #[command(alias = "s3")]
    Object {
        /// Scenarios, comma-separated: large, small, sessions, listing, resume (default: all).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// large: file size in MiB.
        #[arg(long, default_value_t = 2048)]
        size_mib: u64,
        /// small: how many 64 KiB files.
        #[arg(long, default_value_t = 1000)]
        small_files: usize,
        /// sessions: how many sessions at once (each 20 files of 1 MiB up and down).
        #[arg(long, default_value_t = 100)]
        sessions: usize,
        /// listing: keys under the listed prefix.
        #[arg(long, default_value_t = 100_000)]
        list_keys: usize,
        /// The ftpgate binary (build it with `cargo build --release -p ftpgate-daemon`).
        #[arg(long, default_value = "target/release/ftpgate")]
        ftpgate: PathBuf,
        /// Where results are written.
        #[arg(long, default_value = "bench/results")]
        results: PathBuf,
    },
    /// ftpgate and peer FTP servers on loopback, same scenarios, alternating, medians.
    Peers(Box<PeersArgs>),
    /// Two nodes behind HAProxy (contrib/haproxy.cfg) against one node direct: latency of
    /// small RETRs and throughput of a large one, same run.
    Fleet {
        /// The ftpgate binary (build it with `cargo build --release -p ftpgate-daemon`).
        #[arg(long, default_value = "target/release/ftpgate")]
        ftpgate: PathBuf,
        /// Rounds per path (medians are reported).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Small RETRs per round.
        #[arg(long, default_value_t = 1000)]
        small: usize,
        /// Size of the large file in MiB.
        #[arg(long, default_value_t = 512)]
        big_mib: u64,
        /// Where results are written.
        #[arg(long, default_value = "bench/results")]
        results: PathBuf,
    },
}

/// Options of `ftpgate-bench peers`.
#[derive(clap::Args)]
struct PeersArgs {
    /// Scenarios to run, comma-separated: large-retr, large-stor, small-files, concurrent,
    /// login-storm, idle-sessions, large-listing (also by the short ids of earlier results, S1
    /// to S7 in that order), L (the machine's limits). Default: all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Servers to compare, comma-separated (default: ftpgate,vsftpd,pure-ftpd,proftpd,pyftpdlib).
    #[arg(long, value_delimiter = ',')]
    servers: Vec<String>,
    /// Small sizes and one round, to check the setup in a few minutes.
    #[arg(long)]
    quick: bool,
    /// Rounds (each server runs each scenario this many times; medians are reported).
    #[arg(long)]
    rounds: Option<usize>,
    /// large-retr/large-stor file size in MiB (default 1024).
    #[arg(long)]
    size_mib: Option<u64>,
    /// login-storm logins (default 2000).
    #[arg(long)]
    logins: Option<usize>,
    /// idle-sessions: idle sessions (default 1000).
    #[arg(long)]
    idle_sessions: Option<usize>,
    /// large-listing: files in the listed directory (default 100000).
    #[arg(long)]
    list_files: Option<usize>,
    /// Longest time one scenario may take on one server, in seconds.
    #[arg(long)]
    timeout_secs: Option<u64>,
    /// The ftpgate binary (build it with `cargo build --release -p ftpgate-daemon`).
    #[arg(long, default_value = "target/release/ftpgate")]
    ftpgate: PathBuf,
    /// A second ftpgate binary, measured as the server `ftpgate-baseline` alternating with the
    /// others (added to the servers when given): an A/B of a change against the binary before.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// The peers script.
    #[arg(long, default_value = "bench/peers.sh")]
    peers_sh: PathBuf,
    /// Data directory: the served tree (created once and kept), logs, configs.
    #[arg(long, default_value = "/var/tmp/ftpgate-bench")]
    data: PathBuf,
    /// Where results are written.
    #[arg(long, default_value = "bench/results")]
    results: PathBuf,
    /// Do not run `peers.sh install` first.
    #[arg(long)]
    no_install: bool,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Object {
            only,
            size_mib,
            small_files,
            sessions,
            list_keys,
            ftpgate,
            results,
        } => object::run(&object::Options {
            only,
            size_mib,
            small_files,
            sessions,
            list_keys,
            ftpgate,
            results,
        }),
        Command::Fleet {
            ftpgate,
            rounds,
            small,
            big_mib,
            results,
        } => fleet::run(&ftpgate, rounds, small, big_mib, &results),
        Command::Peers(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(peers_comparison(*args)),
    }
}

/// `ftpgate-bench peers`.
async fn peers_comparison(args: PeersArgs) -> Result<()> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut settings = if args.quick {
        Settings::quick()
    } else {
        Settings::full()
    };
    if let Some(r) = args.rounds {
        settings.rounds = r.max(1);
    }
    if let Some(m) = args.size_mib {
        settings.big_mib = m;
    }
    if let Some(n) = args.logins {
        settings.logins = n;
    }
    if let Some(n) = args.idle_sessions {
        settings.idle_sessions = n;
    }
    if let Some(n) = args.list_files {
        settings.list_files = n;
    }
    if let Some(t) = args.timeout_secs {
        settings.timeout = Duration::from_secs(t);
    }
    raise_open_files_limit();

    if !args.no_install {
        let status = std::process::Command::new("bash")
            .arg(&args.peers_sh)
            .arg("install")
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("peers.sh install failed; peers that cannot start are reported as such");
        }
    }
    let tls_dir = args
        .peers_sh
        .parent()
        .context("peers.sh has no directory")?
        .join(".peers/tls");
    let data = std::path::absolute(&args.data)?;
    let env = Env {
        ftpgate: std::path::absolute(&args.ftpgate)?,
        baseline: args
            .baseline
            .as_deref()
            .map(std::path::absolute)
            .transpose()?,
        peers_sh: std::path::absolute(&args.peers_sh)?,
        root: data.join("root"),
        data,
        cert: std::path::absolute(tls_dir.join("cert.pem"))?,
        key: std::path::absolute(tls_dir.join("key.pem"))?,
        user: "ftpbench".into(),
        password: "bench-Pw-2718".into(),
    };
    let mut names: Vec<String> = if args.servers.is_empty() {
        peers::ALL.iter().map(|s| s.to_string()).collect()
    } else {
        args.servers.clone()
    };
    if env.baseline.is_some() && !names.iter().any(|n| n == peers::BASELINE) {
        names.insert(1, peers::BASELINE.to_string());
    }
    let servers = Server::named(&names)?;
    let cases = Case::selected(&args.only, &settings);
    let limits = args.only.is_empty() || args.only.iter().any(|o| o.eq_ignore_ascii_case("L"));

    scenarios::prepare_data(&env, &settings)?;
    let statuses = scenarios::check_servers(&env, &servers).await;
    let machine = report::Machine::describe();
    let (cases, limits) =
        scenarios::run_all(&env, &settings, &servers, &statuses, cases, limits).await?;
    let results = Results {
        servers: statuses,
        cases,
        limits,
    };
    let notes = report::hash_notes(&results.servers);
    let md = report::markdown(&results, &settings, &machine, &notes, &command);
    let json = report::json(&results, &settings, &machine, &notes, &command);
    println!("{md}");
    let (md_path, json_path) = report::save(&args.results, &machine.date, &md, &json)?;
    eprintln!("wrote {} and {}", md_path.display(), json_path.display());
    Ok(())
}

/// Raises the soft limit of open files to the hard limit: 1,000 sessions need more than the
/// usual 1,024 descriptors, here and in the servers, which inherit the limit.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                eprintln!("cannot raise the open files limit from {soft}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => eprintln!("cannot read the open files limit: {e}"),
    }
}
