//! Session threads: each runs a single-threaded tokio runtime, and a session lives on one of
//! them from its first byte to its last.
//!
//! On tokio's work-stealing runtime, a session's task moves between worker threads, and each
//! readiness event wakes another worker to look for work (futex and eventfd calls besides the
//! FTP work, on every small transfer). A session pinned to one thread makes none of them, and
//! the server spends less CPU (measured figures are in the bench results). New sessions go to
//! the thread with the fewest, so the load spreads as on a work-stealing runtime, except that
//! a running session does not move.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

/// The threads sessions run on, and how many sessions each has.
pub(crate) struct SessionThreads {
    threads: Vec<SessionThread>,
    stop: CancellationToken,
}

struct SessionThread {
    handle: Handle,
    sessions: Arc<AtomicUsize>,
}

/// Counts a session on its thread until the session ends.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SessionThreads {
    /// Starts `count` threads. Blocking work (file I/O, password hashing) runs on each
    /// runtime's own blocking pool, `max_blocking` threads in all.
    pub(crate) fn start(count: usize, max_blocking: usize) -> std::io::Result<SessionThreads> {
        // Built as it goes: if a thread cannot start, dropping this ends those already started.
        let mut started = SessionThreads {
            threads: Vec::with_capacity(count),
            stop: CancellationToken::new(),
        };
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads((max_blocking / count).max(8))
                .thread_name(format!("ftpgate-session-{i}-io"))
                .build()?;
            let handle = runtime.handle().clone();
            let stopped = started.stop.clone();
            std::thread::Builder::new()
                .name(format!("ftpgate-session-{i}"))
                .spawn(move || {
                    runtime.block_on(stopped.cancelled());
                    // Sessions have ended by now; a blocking call still running (a sendfile
                    // to a stalled client) is left to its own timeout.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                })?;
            started.threads.push(SessionThread {
                handle,
                sessions: Arc::new(AtomicUsize::new(0)),
            });
        }
        Ok(started)
    }

    /// Runs `session` on the thread with the fewest sessions, tracked by `tasks`.
    pub(crate) fn spawn<F>(&self, tasks: &TaskTracker, session: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(thread) = self
            .threads
            .iter()
            .min_by_key(|t| t.sessions.load(Ordering::Relaxed))
        else {
            warn!("no session thread; running the session on the caller's runtime");
            tasks.spawn(session);
            return;
        };
        thread.sessions.fetch_add(1, Ordering::Relaxed);
        let counted = Counted(thread.sessions.clone());
        tasks.spawn_on(
            async move {
                session.await;
                drop(counted);
            },
            &thread.handle,
        );
    }
}

impl SessionThreads {
    /// Runs the session `serve` makes of `stream` on a session thread. The stream leaves this
    /// runtime's poller and is registered on the session's own thread, so its readiness events
    /// wake that thread alone.
    pub(crate) fn spawn_connection<F>(
        &self,
        tasks: &TaskTracker,
        stream: TcpStream,
        serve: impl FnOnce(TcpStream) -> F + Send + 'static,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                warn!(error = %e, "cannot hand a connection to a session thread");
                return;
            }
        };
        self.spawn(tasks, async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream).await,
                Err(e) => warn!(error = %e, "cannot register a connection on its session thread"),
            }
        });
    }

    /// Lets the threads end once their runtimes have nothing left to run.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for SessionThreads {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_go_to_the_least_busy_thread_and_run_there() {
        let threads = SessionThreads::start(2, 16).unwrap();
        let tasks = TaskTracker::new();
        let (release, released) = tokio::sync::watch::channel(false);
        let names = Arc::new(std::sync::Mutex::new(Vec::new()));
        for _ in 0..4 {
            let (names, mut released) = (names.clone(), released.clone());
            threads.spawn(&tasks, async move {
                let name = std::thread::current().name().map(str::to_string);
                names.lock().unwrap().push(name);
                let _ = released.wait_for(|r| *r).await;
            });
        }
        let counts = |threads: &SessionThreads| -> Vec<usize> {
            threads
                .threads
                .iter()
                .map(|t| t.sessions.load(Ordering::Relaxed))
                .collect()
        };
        assert_eq!(
            counts(&threads),
            [2, 2],
            "four sessions spread over two threads"
        );
        release.send(true).unwrap();
        tasks.close();
        tasks.wait().await;
        let names = names.lock().unwrap().clone();
        assert_eq!(names.len(), 4);
        for name in &names {
            let name = name.as_deref().unwrap_or("");
            assert!(name.starts_with("ftpgate-session-"), "{name}");
        }
        assert_eq!(
            counts(&threads),
            [0, 0],
            "ended sessions are no longer counted"
        );
    }
}
