//! The object-storage scenarios, each returning its rows of the results table.

use std::io::{Read, Write};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Bed, Row, mb_s, write_payload};

const MIB: u64 = 1 << 20;

/// rclone's tuning for one large file: the fastest of the settings tried here is reported.
const LARGE_UPLOAD_TUNINGS: [&[&str]; 2] = [
    &["--s3-upload-concurrency", "4", "--s3-chunk-size", "8M"],
    &["--s3-upload-concurrency", "8", "--s3-chunk-size", "16M"],
];
const LARGE_DOWNLOAD_TUNINGS: [&[&str]; 2] = [
    &["--multi-thread-streams", "0"],
    &[
        "--multi-thread-streams",
        "4",
        "--multi-thread-cutoff",
        "64M",
    ],
];

/// The fastest of `tunings` for one rclone transfer (each one transferring, never skipping a
/// file already there): its time and its flags.
fn best_rclone(bed: &Bed, args: &[&str], tunings: &[&[&str]]) -> Result<(Duration, String)> {
    let mut best: Option<(Duration, String)> = None;
    for tuning in tunings {
        let mut all = args.to_vec();
        all.push("--ignore-times");
        all.extend_from_slice(tuning);
        let took = bed.rclone(&all)?;
        if best.as_ref().is_none_or(|(b, _)| took < *b) {
            best = Some((took, tuning.join(" ")));
        }
    }
    best.context("no tuning tried")
}

/// One large file up and down.
pub(crate) fn large(bed: &Bed, size_mib: u64) -> Result<Vec<Row>> {
    let bytes = size_mib * MIB;
    let file = bed.work.join("large.bin");
    write_payload(&file, bytes, 1)?;
    let daemon = bed.daemon("large", false)?;
    let mut ftp = daemon.login()?;
    let cpu_before = daemon.cpu();
    let stor = ftp.stor("large.bin", &mut std::fs::File::open(&file)?)?;
    let cpu_stor = daemon.cpu().saturating_sub(cpu_before);
    let peak_stor = daemon.peak_rss_mib();
    let (retr, got) = ftp.retr("large.bin", None)?;
    let cpu_retr = daemon.cpu().saturating_sub(cpu_before + cpu_stor);
    if got != bytes {
        bail!("RETR returned {got} bytes, expected {bytes}");
    }
    let peak = daemon.peak_rss_mib();
    drop(ftp);
    drop(daemon);
    let path = file.to_str().context("path")?;
    let (up, up_flags) = best_rclone(
        bed,
        &["copyto", path, &bed.remote("direct/large.bin")],
        &LARGE_UPLOAD_TUNINGS,
    )?;
    let back = bed.work.join("large-back.bin");
    let (down, down_flags) = best_rclone(
        bed,
        &[
            "copyto",
            &bed.remote("direct/large.bin"),
            back.to_str().context("path")?,
        ],
        &LARGE_DOWNLOAD_TUNINGS,
    )?;
    let _ = std::fs::remove_file(&back);
    let _ = std::fs::remove_file(&file);
    let gib = bytes as f64 / (1u64 << 30) as f64;
    let label = format!("{size_mib} MiB");
    Ok(vec![
        Row {
            scenario: "large",
            measure: format!("{label} upload"),
            ftpgate: mb_s(bytes, stor),
            direct: Some(mb_s(bytes, up)),
            higher_is_better: true,
            unit: "MB/s",
            note: format!(
                "ftpgate CPU {:.2} s/GiB; rclone {up_flags}",
                cpu_stor.as_secs_f64() / gib
            ),
        },
        Row {
            scenario: "large",
            measure: format!("{label} download"),
            ftpgate: mb_s(bytes, retr),
            direct: Some(mb_s(bytes, down)),
            higher_is_better: true,
            unit: "MB/s",
            note: format!(
                "ftpgate CPU {:.2} s/GiB; rclone {down_flags}",
                cpu_retr.as_secs_f64() / gib
            ),
        },
        Row {
            scenario: "large",
            measure: "ftpgate peak RSS".into(),
            ftpgate: peak,
            direct: None,
            higher_is_better: false,
            unit: "MiB",
            note: format!(
                "{peak_stor:.1} MiB after the upload; goal: <= (parts_in_flight 4 + 1) x part_size 8 MiB + 32 MiB = 72 MiB"
            ),
        },
    ])
}

/// Content of small file `i` of `size` bytes (its index first, so no two are alike).
fn small_content(i: usize, size: usize) -> Vec<u8> {
    let mut content = vec![0u8; size];
    let mut x = 0x2545_F491_4F6C_DD1D_u64 ^ (i as u64).wrapping_mul(0x9E37_79B9);
    for chunk in content.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    content
}

/// Many small files over one session, against the direct client one object at a time.
pub(crate) fn small(bed: &Bed, count: usize) -> Result<Vec<Row>> {
    const SIZE: usize = 64 * 1024;
    let daemon = bed.daemon("small", false)?;
    let mut ftp = daemon.login()?;
    let contents: Vec<Vec<u8>> = (0..count).map(|i| small_content(i, SIZE)).collect();
    let started = Instant::now();
    for (i, content) in contents.iter().enumerate() {
        ftp.stor_bytes(&format!("f{i:05}.bin"), content)?;
    }
    let stor = started.elapsed();
    let started = Instant::now();
    for i in 0..count {
        let (_, got) = ftp.retr(&format!("f{i:05}.bin"), None)?;
        if got != SIZE as u64 {
            bail!("RETR f{i:05}.bin gave {got} bytes");
        }
    }
    let retr = started.elapsed();
    drop(ftp);
    drop(daemon);

    let dir = bed.work.join("small");
    std::fs::create_dir_all(&dir)?;
    for (i, content) in contents.iter().enumerate() {
        std::fs::write(dir.join(format!("f{i:05}.bin")), content)?;
    }
    let local = dir.to_str().context("path")?;
    let sequential = ["--transfers", "1", "--checkers", "1", "--no-traverse"];
    let parallel = ["--transfers", "16", "--checkers", "16", "--no-traverse"];
    let mut up_args = vec!["copy", local];
    let seq_remote = bed.remote("direct-small-seq");
    up_args.push(&seq_remote);
    up_args.extend_from_slice(&sequential);
    let up = bed.rclone(&up_args)?;
    let par_remote = bed.remote("direct-small-par");
    let mut par_args = vec!["copy", local, &par_remote];
    par_args.extend_from_slice(&parallel);
    let up_par = bed.rclone(&par_args)?;
    let back = bed.work.join("small-back");
    let back_s = back.to_str().context("path")?.to_string();
    let mut down_args = vec!["copy", &seq_remote, &back_s];
    down_args.extend_from_slice(&sequential);
    let down = bed.rclone(&down_args)?;
    let _ = std::fs::remove_dir_all(&back);
    let mut down_par_args = vec!["copy", &par_remote, &back_s];
    down_par_args.extend_from_slice(&parallel);
    let down_par = bed.rclone(&down_par_args)?;
    let _ = std::fs::remove_dir_all(&back);
    let _ = std::fs::remove_dir_all(&dir);
    let ops = |took: Duration| count as f64 / took.as_secs_f64().max(1e-9);
    Ok(vec![
        Row {
            scenario: "small",
            measure: format!("{count} x 64 KiB upload, one session"),
            ftpgate: ops(stor),
            direct: Some(ops(up)),
            higher_is_better: true,
            unit: "ops/s",
            note: format!(
                "direct: rclone one at a time; with 16 at once {:.0} ops/s; goal >= 0.8x",
                ops(up_par)
            ),
        },
        Row {
            scenario: "small",
            measure: format!("{count} x 64 KiB download, one session"),
            ftpgate: ops(retr),
            direct: Some(ops(down)),
            higher_is_better: true,
            unit: "ops/s",
            note: format!(
                "direct: rclone one at a time; with 16 at once {:.0} ops/s; goal >= 0.8x",
                ops(down_par)
            ),
        },
    ])
}

/// The `p`-th percentile of `samples` (sorted in place).
fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// Many sessions at once, each uploading then downloading files of 1 MiB.
pub(crate) fn sessions(bed: &Bed, sessions: usize, files: usize) -> Result<Vec<Row>> {
    let size = MIB as usize;
    let daemon = Arc::new(bed.daemon("sessions", false)?);
    let barrier = Arc::new(Barrier::new(sessions + 1));
    let mut workers = Vec::new();
    for s in 0..sessions {
        let daemon = Arc::clone(&daemon);
        let barrier = Arc::clone(&barrier);
        workers.push(std::thread::spawn(
            move || -> Result<(Vec<Duration>, Vec<Duration>)> {
                let content = small_content(s, size);
                let login = daemon.login();
                // Every worker reaches each barrier, even after an error, so none waits forever.
                barrier.wait();
                let mut ups = Vec::new();
                let mut downs = Vec::new();
                let mut result = login.and_then(|mut ftp| {
                    for f in 0..files {
                        ups.push(ftp.stor_bytes(&format!("s{s:03}-{f:02}.bin"), &content)?);
                    }
                    Ok(ftp)
                });
                barrier.wait();
                barrier.wait();
                if let Ok(ftp) = result.as_mut() {
                    for f in 0..files {
                        let (took, got) = ftp.retr(&format!("s{s:03}-{f:02}.bin"), None)?;
                        if got != size as u64 {
                            bail!("RETR gave {got} bytes");
                        }
                        downs.push(took);
                    }
                }
                barrier.wait();
                result.map(|_| (ups, downs))
            },
        ));
    }
    barrier.wait();
    let started = Instant::now();
    barrier.wait();
    let up_wall = started.elapsed();
    barrier.wait();
    let started = Instant::now();
    barrier.wait();
    let down_wall = started.elapsed();
    let mut ups = Vec::new();
    let mut downs = Vec::new();
    let mut failed = 0;
    for worker in workers {
        match worker.join() {
            Ok(Ok((u, d))) => {
                ups.extend(u);
                downs.extend(d);
            }
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("object sessions: a session failed: {e:#}");
            }
            Err(_) => failed += 1,
        }
    }
    let peak = daemon.peak_rss_mib();
    drop(daemon);
    let total = (sessions * files * size) as u64;
    let up_ok = ups.len() as u64 * size as u64;
    let down_ok = downs.len() as u64 * size as u64;

    let dir = bed.work.join("sessions");
    std::fs::create_dir_all(&dir)?;
    for s in 0..sessions {
        let content = small_content(s, size);
        for f in 0..files {
            std::fs::write(dir.join(format!("s{s:03}-{f:02}.bin")), &content)?;
        }
    }
    let concurrency = sessions.to_string();
    let flags = [
        "--transfers",
        &concurrency,
        "--checkers",
        &concurrency,
        "--no-traverse",
    ];
    let remote = bed.remote("direct-sessions");
    let local = dir.to_str().context("path")?.to_string();
    let mut args = vec!["copy", &local, &remote];
    args.extend_from_slice(&flags);
    let direct_up = bed.rclone(&args)?;
    let back = bed.work.join("sessions-back");
    let back_s = back.to_str().context("path")?.to_string();
    let mut args = vec!["copy", &remote, &back_s];
    args.extend_from_slice(&flags);
    let direct_down = bed.rclone(&args)?;
    let _ = std::fs::remove_dir_all(&back);
    let _ = std::fs::remove_dir_all(&dir);
    let note = |samples: &mut Vec<Duration>| {
        format!(
            "p99 per file {:.0} ms; {failed} sessions failed; ftpgate peak RSS {peak:.0} MiB; direct: rclone, {sessions} at once",
            percentile(samples, 99.0).as_secs_f64() * 1000.0
        )
    };
    if up_ok != total {
        eprintln!("object sessions: {up_ok} of {total} bytes uploaded");
    }
    Ok(vec![
        Row {
            scenario: "sessions",
            measure: format!("{sessions} sessions x {files} x 1 MiB upload"),
            ftpgate: mb_s(up_ok, up_wall),
            direct: Some(mb_s(total, direct_up)),
            higher_is_better: true,
            unit: "MB/s",
            note: note(&mut ups),
        },
        Row {
            scenario: "sessions",
            measure: format!("{sessions} sessions x {files} x 1 MiB download"),
            ftpgate: mb_s(down_ok, down_wall),
            direct: Some(mb_s(total, direct_down)),
            higher_is_better: true,
            unit: "MB/s",
            note: note(&mut downs),
        },
    ])
}

/// Puts `count` one-byte objects under `prefix` with the direct client (many at once).
fn seed_keys(bed: &Bed, prefix: &str, count: usize) -> Result<Duration> {
    let dir = bed.work.join(format!("seed-{}", prefix.replace('/', "-")));
    std::fs::create_dir_all(&dir)?;
    for i in 0..count {
        std::fs::write(dir.join(format!("k{i:07}")), b"x")?;
    }
    let took = bed.rclone(&[
        "copy",
        dir.to_str().context("path")?,
        &bed.remote(prefix),
        "--transfers",
        "64",
        "--checkers",
        "64",
        "--no-traverse",
        "--s3-no-check-bucket",
    ])?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(took)
}

/// LIST and MLSD of a large prefix, against the direct client's listing.
pub(crate) fn listing(bed: &Bed, keys: usize) -> Result<Vec<Row>> {
    let tenth = (keys / 10).max(1);
    let seed_big = seed_keys(bed, "list/big", keys)?;
    seed_keys(bed, "list/tenth", tenth)?;
    // Peak RSS of a daemon that lists only the small prefix, then of one that lists the big one.
    let small_peak = {
        let daemon = bed.daemon("list", false)?;
        let mut ftp = daemon.login()?;
        let (_, lines) = ftp.listing("MLSD", "tenth")?;
        if lines != tenth {
            bail!("MLSD tenth gave {lines} lines, expected {tenth}");
        }
        ftp.listing("LIST", "tenth")?;
        daemon.peak_rss_mib()
    };
    let daemon = bed.daemon("list", false)?;
    let mut ftp = daemon.login()?;
    let (list, lines) = ftp.listing("LIST", "big")?;
    if lines != keys {
        bail!("LIST big gave {lines} lines, expected {keys}");
    }
    let (mlsd, lines) = ftp.listing("MLSD", "big")?;
    if lines != keys {
        bail!("MLSD big gave {lines} lines, expected {keys}");
    }
    let big_peak = daemon.peak_rss_mib();
    drop(ftp);
    drop(daemon);
    let direct = bed.rclone(&["lsf", &bed.remote("list/big")])?;
    let secs = |d: Duration| d.as_secs_f64();
    Ok(vec![
        Row {
            scenario: "listing",
            measure: format!("LIST of {keys} keys"),
            ftpgate: secs(list),
            direct: Some(secs(direct)),
            higher_is_better: false,
            unit: "s",
            note: format!(
                "direct: rclone lsf; keys seeded in {:.0} s",
                seed_big.as_secs_f64()
            ),
        },
        Row {
            scenario: "listing",
            measure: format!("MLSD of {keys} keys"),
            ftpgate: secs(mlsd),
            direct: Some(secs(direct)),
            higher_is_better: false,
            unit: "s",
            note: "direct: rclone lsf".into(),
        },
        Row {
            scenario: "listing",
            measure: format!("ftpgate peak RSS, {keys} keys listed"),
            ftpgate: big_peak,
            direct: None,
            higher_is_better: false,
            unit: "MiB",
            note: format!("{small_peak:.1} MiB listing {tenth} keys: must not grow with the count"),
        },
    ])
}

/// Closes `stream` with a reset (SO_LINGER 0), as a client that dies does.
fn reset(stream: std::net::TcpStream) -> Result<()> {
    let linger = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::Linger, &linger)?;
    drop(stream);
    Ok(())
}

/// An upload cut off half way and continued from a new session.
pub(crate) fn resume(bed: &Bed, size_mib: u64) -> Result<Vec<Row>> {
    let bytes = size_mib * MIB;
    let file = bed.work.join("resume.bin");
    write_payload(&file, bytes, 7)?;
    let daemon = bed.daemon("resume", true)?;
    // Send a little over half, not on a part boundary, then die.
    let cut = bytes / 2 + 3 * MIB + 12_345;
    {
        let mut ftp = daemon.login()?;
        let mut data = ftp.stor_start("resume.bin", None)?;
        let mut source = std::fs::File::open(&file)?.take(cut);
        std::io::copy(&mut source, &mut data)?;
        data.flush()?;
        reset(data)?;
        // The server answers the broken transfer with a 4xx.
        ftp.expect("", "4")?;
    }
    let started = Instant::now();
    let mut ftp = daemon.login()?;
    // The kept bytes settle once the parts in flight are stored.
    let mut offset = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let size = ftp.size("resume.bin").unwrap_or(0);
        if size > 0 && size == offset {
            break;
        }
        if Instant::now() > deadline {
            bail!("SIZE never settled (last {size})");
        }
        offset = size;
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut data = ftp.stor_start("resume.bin", Some(offset))?;
    let to_continue = started.elapsed();
    let mut source = std::fs::File::open(&file)?;
    std::io::Seek::seek(&mut source, std::io::SeekFrom::Start(offset))?;
    let resumed = Instant::now();
    std::io::copy(&mut source, &mut data)?;
    ftp.finish(data, "226")?;
    let rest_took = resumed.elapsed();
    let mut back = Vec::with_capacity(bytes as usize);
    ftp.retr("resume.bin", Some(&mut back))?;
    let original = std::fs::read(&file)?;
    if back != original {
        bail!(
            "the resumed upload differs from the original ({} vs {} bytes)",
            back.len(),
            original.len()
        );
    }
    drop(ftp);
    drop(daemon);
    let _ = std::fs::remove_file(&file);
    let twice = cut - offset;
    Ok(vec![
        Row {
            scenario: "resume",
            measure: format!("{size_mib} MiB cut at {:.1} MiB: time to continue", cut as f64 / MIB as f64),
            ftpgate: to_continue.as_secs_f64() * 1000.0,
            direct: None,
            higher_is_better: false,
            unit: "ms",
            note: format!(
                "login + SIZE (settled) + REST + STOR to 150; the rest at {:.0} MB/s; byte-identical",
                mb_s(bytes - offset, rest_took)
            ),
        },
        Row {
            scenario: "resume",
            measure: "bytes sent twice".into(),
            ftpgate: twice as f64 / MIB as f64,
            direct: Some(cut as f64 / MIB as f64),
            higher_is_better: false,
            unit: "MiB",
            note: "direct: rclone cannot continue another process's multipart upload: it sends all again".into(),
        },
    ])
}
