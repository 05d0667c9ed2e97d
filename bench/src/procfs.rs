//! What a server process tree costs, read from `/proc`: CPU time and memory summed over the
//! server's process and all its descendants, since vsftpd, ProFTPD and Pure-FTPd fork one or
//! two processes per session.

use std::collections::HashMap;

/// Clock ticks per second in `/proc/PID/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// One process's line of `/proc/PID/stat`, the fields used here.
struct Stat {
    ppid: u32,
    /// utime + stime + cutime + cstime: its own CPU time and that of its reaped children.
    ticks: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field numbers as in proc(5), minus 3: state is field 3.
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(Stat {
        ppid: u32::try_from(field(4)?).ok()?,
        ticks: field(14)? + field(15)? + field(16)? + field(17)?,
    })
}

/// `root` and all its descendants, alive or not yet reaped.
pub(crate) fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(s) = stat(pid) {
                children.entry(s.ppid).or_default().push(pid);
            }
        }
    }
    let mut all = vec![root];
    let mut next = 0;
    while next < all.len() {
        if let Some(kids) = children.get(&all[next]) {
            all.extend(kids);
        }
        next += 1;
    }
    all
}

/// CPU seconds (user + system) used so far by `root`'s process tree. Each process counts its
/// own time and that of its reaped children, so a session process that has exited still counts
/// (in its parent) and nothing counts twice.
pub(crate) fn cpu_seconds(root: u32) -> f64 {
    let ticks: u64 = tree(root)
        .into_iter()
        .filter_map(stat)
        .map(|s| s.ticks)
        .sum();
    ticks as f64 / TICKS_PER_SECOND
}

/// A `kB` value from a `/proc` key-value file such as `status` or `smaps_rollup`.
fn kib(pid: u32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Memory of a process tree in KiB.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Memory {
    /// Resident set sizes summed (shared pages count once per process).
    pub(crate) rss_kib: u64,
    /// Proportional set sizes summed (shared pages divided among their sharers).
    pub(crate) pss_kib: u64,
    /// Processes in the tree.
    pub(crate) processes: usize,
}

/// RSS summed over `root`'s tree (cheap enough to sample often).
pub(crate) fn rss_kib(root: u32) -> u64 {
    tree(root)
        .into_iter()
        .filter_map(|p| kib(p, "status", "VmRSS:"))
        .sum()
}

/// RSS and PSS summed over `root`'s tree, from `smaps_rollup`.
pub(crate) fn memory(root: u32) -> Memory {
    let pids = tree(root);
    let mut m = Memory {
        processes: pids.len(),
        ..Memory::default()
    };
    for pid in pids {
        m.rss_kib += kib(pid, "smaps_rollup", "Rss:").unwrap_or(0);
        m.pss_kib += kib(pid, "smaps_rollup", "Pss:").unwrap_or(0);
    }
    m
}

/// The peak resident size (VmHWM) of one process, in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> u64 {
    kib(pid, "status", "VmHWM:").unwrap_or(0)
}

/// CPU seconds used by this process so far (user + system), for the load generator's own cost.
pub(crate) fn own_cpu_seconds() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            secs(u.user_time()) + secs(u.system_time())
        }
        Err(_) => 0.0,
    }
}
