//! The comparison's report: medians per server, ratios to ftpgate, costs, the machine and the
//! password-hash notes, as a Markdown table (printed and saved) and as JSON.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{Value, json};

use crate::scenarios::{
    Case, CaseResult, LOOPBACK, Limit, Results, Sample, ServerStatus, Settings,
};

/// The machine the run was measured on.
pub(crate) struct Machine {
    pub(crate) date: String,
    pub(crate) cpus: usize,
    pub(crate) cpu_model: String,
    pub(crate) kernel: String,
    pub(crate) memory_gib: f64,
    /// /proc/loadavg when the run started, to show whether the machine was otherwise busy.
    pub(crate) load_at_start: String,
    /// Memory reclaimed behind the servers' backs, which makes single large transfers swing.
    pub(crate) reclaim: Vec<String>,
}

impl Machine {
    pub(crate) fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or("unknown")
            .trim()
            .to_string();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            date: utc_now(),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            load_at_start: std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
                .to_string(),
            reclaim: reclaim(),
        }
    }
}

/// Proactive reclaim that evicts idle page cache during a run and hands free memory back to
/// the host: DAMON schemes that page out, and virtio-balloon free page reporting. Freshly
/// written or re-read files then cost every server page faults and host round trips, in some
/// runs and not others.
fn reclaim() -> Vec<String> {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string());
    let number = |p: &str| -> u64 { read(p).ok().and_then(|v| v.parse().ok()).unwrap_or(0) };
    let mut found = Vec::new();
    let admin = "/sys/kernel/mm/damon/admin/kdamonds";
    for k in 0..number(&format!("{admin}/nr_kdamonds")) {
        let context = format!("{admin}/{k}/contexts/0");
        let on = read(&format!("{admin}/{k}/state")).is_ok_and(|s| s == "on");
        let pageout = read(&format!("{context}/schemes/0/action")).is_ok_and(|a| a == "pageout");
        if on && pageout {
            let aggregation_us = number(&format!("{context}/monitoring_attrs/intervals/aggr_us"));
            let min_age = number(&format!("{context}/schemes/0/access_pattern/age/min"));
            found.push(format!(
                "DAMON kdamond {k} pages out memory idle for {} s",
                aggregation_us * min_age / 1_000_000
            ));
        }
    }
    if read("/sys/module/damon_reclaim/parameters/enabled").is_ok_and(|e| e == "Y") {
        found.push("DAMON_RECLAIM is on".into());
    }
    if std::path::Path::new("/sys/module/page_reporting").exists()
        && std::path::Path::new("/sys/bus/virtio/drivers/virtio_balloon").exists()
    {
        found.push("free memory is reported to the host (virtio-balloon page reporting)".into());
    }
    found
}

/// The current UTC time as 2026-01-31T12:34:56Z.
fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// How each server checks a password, which dominates login-storm.
pub(crate) fn hash_notes(servers: &[ServerStatus]) -> Vec<(String, String)> {
    let system = system_hash("ftpbench");
    servers
        .iter()
        .map(|s| {
            let note = match s.name.as_str() {
                "ftpgate" | crate::peers::BASELINE => {
                    "argon2id (m=7 MiB, t=5, p=1; m=19 MiB, t=2 before 2026-12-06), hashed at start; a verified login is \
                     cached for 5 minutes, so only the first login of a run pays for the hash \
                     (login-storm first_login_ms is that cold login)"
                        .to_string()
                }
                "vsftpd" => format!("system account via PAM (pam_unix): {system}, no cache"),
                "pure-ftpd" => format!("system account via crypt(3) (-l unix): {system}, no cache"),
                "proftpd" => format!(
                    "system account via crypt(3) (mod_auth_unix): {system}, no cache; \
                     mod_delay turned off"
                ),
                "pyftpdlib" => "DummyAuthorizer: plain-text comparison in memory, no hash".into(),
                _ => String::new(),
            };
            (s.name.clone(), note)
        })
        .collect()
}

/// The hash algorithm of a system account's password in /etc/shadow.
fn system_hash(user: &str) -> String {
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    let hash = shadow
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{user}:")))
        .and_then(|l| l.split(':').next())
        .unwrap_or("");
    let algorithm = match hash.split('$').nth(1) {
        Some("y") => "yescrypt",
        Some("gy") => "gost-yescrypt",
        Some("6") => "sha512crypt",
        Some("5") => "sha256crypt",
        Some("2b" | "2y" | "2a") => "bcrypt",
        Some("1") => "md5crypt",
        _ => "unknown",
    };
    // yescrypt's cost parameter is the first field after the id, e.g. $y$j9T$...
    match (algorithm, hash.split('$').nth(2)) {
        ("yescrypt", Some(params)) => format!("yescrypt (params {params})"),
        (a, _) => a.to_string(),
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The median of one figure over a server's successful runs, or why there is none.
fn median_of(
    runs: Option<&Vec<Result<Sample, String>>>,
    figure: impl Fn(&Sample) -> Option<f64>,
) -> Result<f64, String> {
    let Some(runs) = runs else {
        return Err("not run".into());
    };
    let values: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(figure)
        .collect();
    match median(values) {
        Some(m) => Ok(m),
        None => Err(runs
            .iter()
            .find_map(|r| r.as_ref().err())
            .map_or("no value".to_string(), |e| format!("failed: {e}"))),
    }
}

fn number(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A table cell: a number, or a short reason (cut so the table stays readable; the full text is
/// in the JSON and in the notes).
fn cell(v: &Result<f64, String>) -> String {
    match v {
        Ok(v) => number(*v),
        Err(e) => {
            let short: String = e.chars().take(60).collect();
            let short = short.replace('|', "/");
            if e.chars().count() > 60 {
                format!("{short}...")
            } else {
                short
            }
        }
    }
}

/// The whole report in Markdown.
pub(crate) fn markdown(
    results: &Results,
    settings: &Settings,
    machine: &Machine,
    notes: &[(String, String)],
    command: &str,
) -> String {
    let mut md = String::new();
    let names: Vec<&str> = results.servers.iter().map(|s| s.name.as_str()).collect();
    let peers: Vec<&str> = names.iter().copied().filter(|n| *n != "ftpgate").collect();
    let _ = writeln!(
        md,
        "## ftpgate and peer FTP servers, loopback, {}\n",
        machine.date
    );
    let _ = writeln!(
        md,
        "{} CPUs ({}), {:.0} GiB RAM, Linux {}; {} round(s) ({} for large-retr and large-stor), servers \
         alternating within each round, a fresh server process for every run; medians. Load average at start: {}; at \
         end: {}.\n\n`{command}`\n",
        machine.cpus,
        machine.cpu_model,
        machine.memory_gib,
        machine.kernel,
        settings.rounds,
        settings.big_transfer_rounds(),
        machine.load_at_start,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim(),
    );
    if !machine.reclaim.is_empty() {
        let _ = writeln!(
            md,
            "Memory reclaim during the run: {}. Idle page cache is evicted and free pages go back \
             to the host, so a 1 GiB transfer sometimes pays for fresh pages (slow runs with \
             several times the usual server CPU, for any server).\n",
            machine.reclaim.join("; ")
        );
    }

    let _ = writeln!(
        md,
        "### Servers\n\n| server | version | status | CPU time from |\n|---|---|---|---|"
    );
    for s in &results.servers {
        let status = match &s.started {
            Ok(()) => "started".to_string(),
            Err(e) => format!("did not start: {}", e.replace('|', "/")),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {status} | {} |",
            s.name, s.version, s.cpu_source
        );
    }

    // Headline values with ratios.
    let _ = writeln!(
        md,
        "\n### Results (ratio = ftpgate / peer; for s and KiB lower is better)\n"
    );
    let mut header = "| case | what | unit | ftpgate |".to_string();
    let mut rule = "|---|---|---|---:|".to_string();
    for p in &peers {
        let _ = write!(header, " {p} | ratio |");
        rule.push_str("---:|---:|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for r in &results.cases {
        let ours = median_of(r.runs.get("ftpgate"), |s| Some(s.value));
        let mut row = format!(
            "| {} | {} | {}{} | {} |",
            r.case.id(),
            r.case.title(settings),
            r.case.unit(),
            if r.case.higher_is_better() {
                " ↑"
            } else {
                " ↓"
            },
            cell(&not_started(&results.servers, "ftpgate", ours.clone()))
        );
        for p in &peers {
            let theirs = not_started(
                &results.servers,
                p,
                median_of(r.runs.get(*p), |s| Some(s.value)),
            );
            let ratio = match (&ours, &theirs) {
                (Ok(a), Ok(b)) if *b != 0.0 => format!("{:.2}", a / b),
                _ => "-".to_string(),
            };
            let _ = write!(row, " {} | {ratio} |", cell(&theirs));
        }
        let _ = writeln!(md, "{row}");
    }
    if !results.limits.is_empty() {
        let _ = writeln!(
            md,
            "\n### The machine's own limits, same run\n\n| limit | MB/s |\n|---|---:|"
        );
        for l in &results.limits {
            let _ = writeln!(md, "| {} | {} |", l.name, cell(&limit_median(l)));
        }
        if let Some(ratio) = s1_to_loopback(results) {
            let _ = writeln!(md, "\nftpgate large-retr / loopback TCP: {ratio:.2}");
        }
    }

    // Latencies and case-specific figures.
    let detail: Vec<&CaseResult> = results
        .cases
        .iter()
        .filter(|r| {
            r.runs.values().flatten().any(|s| {
                s.as_ref()
                    .is_ok_and(|s| s.p50_ms.is_some() || !s.extra.is_empty())
            })
        })
        .collect();
    if !detail.is_empty() {
        let _ = writeln!(
            md,
            "\n### Latency (p50 / p99 ms) and other figures (medians)\n"
        );
        let _ = writeln!(md, "| case | figure | {} |", names.join(" | "));
        let _ = writeln!(md, "|---|---|{}", "---:|".repeat(names.len()));
        for r in detail {
            let mut figures: Vec<String> = Vec::new();
            if r.runs
                .values()
                .flatten()
                .any(|s| s.as_ref().is_ok_and(|s| s.p50_ms.is_some()))
            {
                figures.push("p50 / p99 ms".into());
            }
            let mut keys: Vec<String> = r
                .runs
                .values()
                .flatten()
                .filter_map(|s| s.as_ref().ok())
                .flat_map(|s| s.extra.keys().cloned())
                .collect();
            keys.sort();
            keys.dedup();
            figures.extend(keys);
            for figure in figures {
                let mut row = format!("| {} | {figure} |", r.case.id());
                for n in &names {
                    let runs = r.runs.get(*n);
                    let text = if figure == "p50 / p99 ms" {
                        let p50 = median_of(runs, |s| s.p50_ms);
                        let p99 = median_of(runs, |s| s.p99_ms);
                        match (p50, p99) {
                            (Ok(a), Ok(b)) => format!("{} / {}", number(a), number(b)),
                            _ => "-".into(),
                        }
                    } else {
                        median_of(runs, |s| s.extra.get(&figure).copied())
                            .map_or("-".into(), number)
                    };
                    let _ = write!(row, " {text} |");
                }
                let _ = writeln!(md, "{row}");
            }
        }
    }

    // Costs.
    let _ = writeln!(
        md,
        "\n### Server CPU seconds / peak memory MiB (summed over the server's processes), bench CPU seconds\n"
    );
    let _ = writeln!(
        md,
        "| case | {} | bench CPU s (ftpgate run) |",
        names.join(" | ")
    );
    let _ = writeln!(md, "|---|{}---:|", "---:|".repeat(names.len()));
    for r in &results.cases {
        let mut row = format!("| {} |", r.case.id());
        for n in &names {
            let runs = r.runs.get(*n);
            let text = match (
                median_of(runs, |s| Some(s.server_cpu_s)),
                median_of(runs, |s| Some(s.peak_rss_mib)),
            ) {
                (Ok(cpu), Ok(mem)) => format!("{} s / {} MiB", number(cpu), number(mem)),
                _ => "-".into(),
            };
            let _ = write!(row, " {text} |");
        }
        let client = median_of(r.runs.get("ftpgate"), |s| Some(s.client_cpu_s));
        let _ = writeln!(md, "{row} {} |", client.map_or("-".into(), number));
    }

    let _ = writeln!(md, "\n### Password hashing\n");
    for (name, note) in notes {
        let _ = writeln!(md, "- {name}: {note}");
    }

    // Every failure in full.
    let mut failures = String::new();
    for r in &results.cases {
        for (name, runs) in &r.runs {
            for (round, run) in runs.iter().enumerate() {
                if let Err(e) = run {
                    let _ = writeln!(failures, "- {} {name} run {}: {e}", r.case.id(), round + 1);
                }
            }
        }
    }
    if !failures.is_empty() {
        let _ = writeln!(md, "\n### Failures\n\n{failures}");
    }
    md
}

/// A server that did not start shows that instead of "not run".
fn not_started(
    servers: &[ServerStatus],
    name: &str,
    v: Result<f64, String>,
) -> Result<f64, String> {
    match servers.iter().find(|s| s.name == name).map(|s| &s.started) {
        Some(Err(e)) => Err(format!("did not start: {e}")),
        _ => v,
    }
}

/// ftpgate's large-retr median over the loopback median measured in the same rounds.
fn s1_to_loopback(results: &Results) -> Option<f64> {
    let s1 = results
        .cases
        .iter()
        .find(|r| matches!(r.case, Case::Retr { tls: false }))?;
    let ours = median_of(s1.runs.get("ftpgate"), |s| Some(s.value)).ok()?;
    let loopback = results.limits.iter().find(|l| l.name == LOOPBACK)?;
    let machine = limit_median(loopback).ok()?;
    (machine > 0.0).then(|| ours / machine)
}

fn limit_median(l: &Limit) -> Result<f64, String> {
    let values: Vec<f64> = l
        .runs
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    median(values).ok_or_else(|| {
        l.runs
            .iter()
            .find_map(|r| r.as_ref().err().cloned())
            .unwrap_or_else(|| "not run".into())
    })
}

/// Everything, every run included, as JSON.
pub(crate) fn json(
    results: &Results,
    settings: &Settings,
    machine: &Machine,
    notes: &[(String, String)],
    command: &str,
) -> Value {
    let servers: Vec<Value> = results
        .servers
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "version": s.version,
                "started": s.started.is_ok(),
                "error": s.started.as_ref().err(),
                "cpu_source": s.cpu_source,
            })
        })
        .collect();
    let cases: Vec<Value> = results
        .cases
        .iter()
        .map(|r| {
            let per_server: serde_json::Map<String, Value> = r
                .runs
                .iter()
                .map(|(name, runs)| {
                    let runs: Vec<Value> = runs
                        .iter()
                        .map(|run| match run {
                            Ok(s) => s.to_json(),
                            Err(e) => json!({ "error": e }),
                        })
                        .collect();
                    let median = median_of(Some(&r.runs[name]), |s| Some(s.value)).ok();
                    (name.clone(), json!({ "median": median, "runs": runs }))
                })
                .collect();
            json!({
                "id": r.case.id(),
                "title": r.case.title(settings),
                "unit": r.case.unit(),
                "higher_is_better": r.case.higher_is_better(),
                "servers": per_server,
            })
        })
        .collect();
    let limits: Vec<Value> = results
        .limits
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "unit": l.unit,
                "median": limit_median(l).ok(),
                "runs": l.runs.iter().map(|r| match r {
                    Ok(v) => json!(v),
                    Err(e) => json!({ "error": e }),
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "scenario": "peers",
        "command": command,
        "date": machine.date,
        "machine": {
            "cpus": machine.cpus,
            "cpu_model": machine.cpu_model,
            "kernel": machine.kernel,
            "memory_gib": machine.memory_gib,
            "load_at_start": machine.load_at_start,
            "reclaim": machine.reclaim,
        },
        "settings": format!("{settings:?}"),
        "password_hashing": notes.iter().map(|(n, t)| json!({ "server": n, "note": t })).collect::<Vec<_>>(),
        "servers": servers,
        "cases": cases,
        "limits": limits,
        "s1_to_loopback": s1_to_loopback(results),
    })
}

/// Writes `peers-<timestamp>.md` and `.json` under `dir`; returns their paths.
pub(crate) fn save(dir: &Path, date: &str, md: &str, json: &Value) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let stamp = date.replace(':', "");
    let md_path = dir.join(format!("peers-{stamp}.md"));
    let json_path = dir.join(format!("peers-{stamp}.json"));
    std::fs::write(&md_path, md)?;
    std::fs::write(&json_path, serde_json::to_string_pretty(json)? + "\n")?;
    Ok((md_path, json_path))
}
