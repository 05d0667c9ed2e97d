//! concurrent, login-storm and idle-sessions (formerly S4, S5 and S6): many sessions at once,
//! login storms, idle sessions.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::sync::{Barrier, Mutex, Semaphore};

use crate::client::Ftp;
use crate::peers::Running;
use crate::procfs;

use super::*;

/// concurrent: `sessions` sessions log in (`in_flight` at a time), wait for each other, then each
/// does its RETRs; the rate counts the RETR phase, the login phase is reported apart.
pub(super) async fn concurrent(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
    s: &Settings,
    sessions: usize,
) -> Result<Sample> {
    let gate = Arc::new(Semaphore::new(s.in_flight));
    let barrier = Arc::new(Barrier::new(sessions + 1));
    let expected = s.medium_kib << 10;
    let mut tasks = Vec::with_capacity(sessions);
    let started = Instant::now();
    for _ in 0..sessions {
        let (gate, barrier) = (gate.clone(), barrier.clone());
        let (user, password) = (user.to_string(), password.to_string());
        let retrs = s.retrs_per_session;
        tasks.push(tokio::spawn(async move {
            let session = async {
                let _permit = gate.acquire().await?;
                Ftp::open(addr, None, &user, &password).await
            }
            .await;
            // Every task reaches the barrier, logged in or not, so none waits forever.
            barrier.wait().await;
            let mut ftp = session?;
            let mut buf = vec![0u8; 1 << 16];
            let mut latencies = Vec::with_capacity(retrs);
            for _ in 0..retrs {
                let t = Instant::now();
                let got = ftp.retr("medium.bin", &mut buf).await?;
                latencies.push(t.elapsed());
                if got != expected {
                    bail!("RETR medium.bin: {got} bytes, expected {expected}");
                }
            }
            ftp.quit().await?;
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    barrier.wait().await;
    let logged_in = started.elapsed();
    let transfers = Instant::now();
    let mut latencies = Vec::with_capacity(sessions * s.retrs_per_session);
    let mut errors = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(l)) => latencies.extend(l),
            Ok(Err(e)) => errors.push(format!("{e:#}")),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let took = transfers.elapsed();
    if let Some(first) = errors.first() {
        bail!(
            "{} of {sessions} sessions failed, first: {first}",
            errors.len()
        );
    }
    let ops = latencies.len() as f64;
    let mut sample = with_latencies(ops / took.as_secs_f64(), &mut latencies);
    sample
        .extra
        .insert("login_phase_s".into(), logged_in.as_secs_f64());
    Ok(sample)
}

/// login-storm: one cold login alone (a fresh server: no cached credential), then the storm.
pub(super) async fn logins(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
    s: &Settings,
) -> Result<Sample> {
    let t = Instant::now();
    Ftp::open(addr, None, user, password).await?.quit().await?;
    let first = t.elapsed();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..s.in_flight {
        let next = next.clone();
        let (user, password) = (user.to_string(), password.to_string());
        let total = s.logins;
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            // Bounded by the shared count.
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                Ftp::open(addr, None, &user, &password)
                    .await?
                    .quit()
                    .await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(s.logins);
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let took = started.elapsed();
    let mut sample = with_latencies(latencies.len() as f64 / took.as_secs_f64(), &mut latencies);
    sample
        .extra
        .insert("first_login_ms".into(), first.as_secs_f64() * 1e3);
    Ok(sample)
}

/// idle-sessions: memory of the server's processes with `idle_sessions` logged-in sessions, minus
/// before.
pub(super) async fn idle(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
    s: &Settings,
    server: &Running,
) -> Result<Sample> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = procfs::memory(&server.pids());
    let sessions = Arc::new(Mutex::new(Vec::with_capacity(s.idle_sessions)));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..s.in_flight {
        let (next, sessions) = (next.clone(), sessions.clone());
        let (user, password) = (user.to_string(), password.to_string());
        let total = s.idle_sessions;
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let ftp = Ftp::open(addr, None, &user, &password).await?;
                sessions.lock().await.push(ftp);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let opened = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = procfs::memory(&server.pids());
    let n = s.idle_sessions as f64;
    let per = |a: u64, b: u64| (a as f64 - b as f64) / n;
    let mut sample = Sample {
        value: per(after.pss_kib, before.pss_kib),
        ..Sample::default()
    };
    let extra = &mut sample.extra;
    extra.insert(
        "rss_per_session_kib".into(),
        per(after.rss_kib, before.rss_kib),
    );
    extra.insert("pss_per_session_kib".into(), sample.value);
    extra.insert("rss_before_mib".into(), before.rss_kib as f64 / 1024.0);
    extra.insert("rss_after_mib".into(), after.rss_kib as f64 / 1024.0);
    extra.insert("pss_after_mib".into(), after.pss_kib as f64 / 1024.0);
    extra.insert("processes".into(), after.processes as f64);
    extra.insert("open_s".into(), opened.as_secs_f64());
    drop(sessions);
    Ok(sample)
}
