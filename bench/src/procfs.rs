//! What a server costs, read from `/proc` and the cpuacct cgroup: CPU time and memory summed
//! over all the server's processes, since vsftpd, ProFTPD and Pure-FTPd fork one or two
//! processes per session.
//!
//! CPU time is read from a cpuacct cgroup made for the server when the machine allows it:
//! some session processes outlive their parent (vsftpd's), are reparented to init and their
//! time never reaches the server's `cutime`. Without the cgroup, the process tree is summed.

use std::collections::HashMap;
use std::path::PathBuf;

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

/// A cpuacct cgroup (v1) holding one server and every process it forks.
pub(crate) struct CpuGroup {
    dir: PathBuf,
}

impl CpuGroup {
    /// Creates the group, or returns None where cgroups are not available.
    pub(crate) fn create(name: &str) -> Option<CpuGroup> {
        let dir = PathBuf::from("/sys/fs/cgroup/cpuacct")
            .join(format!("ftpgate-bench-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        Some(CpuGroup { dir })
    }

    /// Moves `pid` into the group; its future children are born in it.
    pub(crate) fn add(&self, pid: u32) -> std::io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }

    /// CPU seconds (user + system) used by every process ever in the group.
    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        let text = std::fs::read_to_string(self.dir.join("cpuacct.usage")).ok()?;
        let nanos: u64 = text.trim().parse().ok()?;
        Some(nanos as f64 / 1e9)
    }

    /// The processes in the group now.
    pub(crate) fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        // Bounded: the killed processes leave the group within moments.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Whether `pid` exists and is not a zombie.
pub(crate) fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| {
            let state = t[t.rfind(')')? + 2..].chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
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

/// RSS summed over `pids` (cheap enough to sample often).
pub(crate) fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .copied()
        .filter_map(|p| kib(p, "status", "VmRSS:"))
        .sum()
}

/// RSS and PSS summed over `pids`, from `smaps_rollup`.
pub(crate) fn memory(pids: &[u32]) -> Memory {
    let mut m = Memory {
        processes: pids.len(),
        ..Memory::default()
    };
    for &pid in pids {
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
