//! Event hooks (`[[hooks]]`): a program run, or a URL called with the event as JSON, when
//! users upload, download, delete, rename, make or remove directories, log in or out.
//!
//! A hook never slows a session: [`Hooks::dispatch`] only puts the event on the hook's own
//! bounded queue (a full queue drops the event, counted and warned about) and returns. Each
//! hook has a task that takes events from its queue and runs at most `max_concurrent` of them
//! at once; a run is bounded by `timeout_secs` (a command still running then is killed, with
//! its process group), and a failed run is retried `retries` times with doubling pauses, then
//! dropped with a warning. Commands run directly, never through a shell, with a clean
//! environment: `PATH`, `LANG` and `TZ` kept, the event's fields as `FTPGATE_*` variables.
//! Results are counted in [`HookStats`].

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use chrono::Utc;
use ftpgate::prometheus_client::metrics::counter::Counter;
use ftpgate::{Direction, Event};
use ftpgate_proto::glob::Glob;
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, warn};

use crate::config::{HookSection, Piece, ResultFilter, template_pieces};

/// The first pause before a retry; each further one doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Bytes of a failed command's standard error kept for the log.
const STDERR_KEPT: u64 = 2048;
/// Environment variables a command inherits from the daemon (nothing else: the daemon's
/// environment may hold secrets such as FTPGATE_PASSWORD or cloud credentials).
const INHERITED_ENV: [&str; 4] = ["PATH", "LANG", "LC_ALL", "TZ"];

/// Counts of hook results, for logs and metrics.
#[derive(Debug)]
pub(crate) struct HookStats {
    /// Runs that succeeded (exit status 0, HTTP 2xx).
    pub(crate) ok: Counter,
    /// Events given up on after every attempt failed.
    pub(crate) failed: Counter,
    /// Attempts killed or abandoned at the timeout.
    pub(crate) timed_out: Counter,
    /// Attempts repeated after a failure.
    pub(crate) retried: Counter,
    /// Events dropped because the hook's queue was full.
    pub(crate) dropped: Counter,
}

impl Default for HookStats {
    /// The process's `ftpgate_hooks_total{result}` counters, shared by every hook.
    fn default() -> Self {
        HookStats {
            ok: crate::metrics::hook_counter("ok"),
            failed: crate::metrics::hook_counter("failed"),
            timed_out: crate::metrics::hook_counter("timeout"),
            retried: crate::metrics::hook_counter("retry"),
            dropped: crate::metrics::hook_counter("dropped"),
        }
    }
}

/// An event as hooks see it: named fields, those the event lacks left out.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct HookEvent {
    event: &'static str,
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    /// The file or directory (for a rename, the new name).
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    /// For transfers: `complete` or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<&'static str>,
}

impl HookEvent {
    /// The event's name as `events` lists it.
    fn name_of(event: &Event) -> &'static str {
        match event {
            Event::Login { .. } => "login",
            Event::LoginFailed { .. } => "login_failed",
            Event::LoginUnavailable { .. } => "login_unavailable",
            Event::Logout { .. } => "logout",
            Event::Transfer(t) => match t.direction {
                Direction::Upload => "upload",
                Direction::Download => "download",
            },
            Event::Deleted { .. } => "delete",
            Event::Renamed { .. } => "rename",
            Event::MadeDir { .. } => "mkdir",
            Event::RemovedDir { .. } => "rmdir",
            #[allow(unreachable_patterns)]
            _ => "other",
        }
    }

    fn of(event: &Event) -> HookEvent {
        let mut e = HookEvent {
            event: Self::name_of(event),
            time: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            user: None,
            client: None,
            path: None,
            from: None,
            to: None,
            size: None,
            result: None,
            reason: None,
            duration_ms: None,
            tls: None,
            storage: None,
        };
        match event {
            Event::Login { user, client, .. }
            | Event::LoginFailed { user, client, .. }
            | Event::Logout { user, client, .. } => {
                e.user = Some(user.clone());
                e.client = Some(client.to_string());
            }
            Event::LoginUnavailable { user, client, .. } => {
                e.user = Some(user.clone());
                e.client = Some(client.to_string());
                e.reason = Some("unavailable");
            }
            Event::Transfer(t) => {
                e.user = Some(t.user.clone());
                e.client = Some(t.client.to_string());
                e.path = Some(t.path.to_string());
                e.size = Some(t.bytes);
                e.result = Some(if t.complete { "complete" } else { "failed" });
                e.reason = t.failure;
                e.duration_ms = Some(u64::try_from(t.duration.as_millis()).unwrap_or(u64::MAX));
                e.tls = Some(t.tls);
                e.storage = Some(t.storage);
            }
            Event::Deleted { user, path, .. }
            | Event::MadeDir { user, path, .. }
            | Event::RemovedDir { user, path, .. } => {
                e.user = Some(user.clone());
                e.path = Some(path.to_string());
            }
            Event::Renamed { user, from, to, .. } => {
                e.user = Some(user.clone());
                e.path = Some(to.to_string());
                e.from = Some(from.to_string());
                e.to = Some(to.to_string());
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
        e
    }

    /// A field by its placeholder name; empty when the event lacks it.
    fn field(&self, name: &str) -> String {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        match name {
            "event" => self.event.to_string(),
            "user" => text(&self.user),
            "client" => text(&self.client),
            "path" => text(&self.path),
            "from" => text(&self.from),
            "to" => text(&self.to),
            "size" => self.size.map(|s| s.to_string()).unwrap_or_default(),
            "result" => self.result.unwrap_or_default().to_string(),
            "reason" => self.reason.unwrap_or_default().to_string(),
            "duration_ms" => self.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
            "tls" => self.tls.map(|t| t.to_string()).unwrap_or_default(),
            "storage" => self.storage.unwrap_or_default().to_string(),
            _ => String::new(),
        }
    }

    /// The `FTPGATE_*` variables of the fields the event has.
    fn env(&self) -> BTreeMap<String, String> {
        crate::config::PLACEHOLDERS
            .iter()
            .map(|name| {
                (
                    format!("FTPGATE_{}", name.to_ascii_uppercase()),
                    self.field(name),
                )
            })
            .filter(|(_, value)| !value.is_empty())
            .collect()
    }
}

/// What a hook does.
enum Action {
    Command(Vec<String>),
    Url {
        url: String,
        client: reqwest::Client,
    },
}

/// One configured hook.
struct Hook {
    /// `hooks[N]`, for the log.
    name: String,
    events: Vec<String>,
    path: Option<PathFilter>,
    result: ResultFilter,
    queue: mpsc::Sender<Arc<HookEvent>>,
}

/// A `filter.path` pattern: on the file name, or the whole path if it holds a `/`.
struct PathFilter {
    whole_path: bool,
    pattern: String,
    glob: Option<Glob>,
}

impl PathFilter {
    fn matches(&self, path: &str) -> bool {
        let subject = if self.whole_path {
            path
        } else {
            path.rsplit('/').next().unwrap_or(path)
        };
        match &self.glob {
            Some(glob) => glob.matches(subject),
            None => subject == self.pattern,
        }
    }
}

/// Every hook of the config, each with its queue and task.
pub(crate) struct Hooks {
    hooks: Vec<Hook>,
    stats: Arc<HookStats>,
}

impl Hooks {
    /// Starts the hooks' tasks (on the current tokio runtime).
    pub(crate) fn start(sections: &[HookSection]) -> Result<Hooks> {
        let stats = Arc::new(HookStats::default());
        let mut hooks = Vec::new();
        for (i, section) in sections.iter().enumerate() {
            let name = format!("hooks[{i}]");
            let timeout = Duration::from_secs(section.timeout_secs);
            let action = match (&section.command, &section.url) {
                (Some(command), _) => Action::Command(command.clone()),
                (None, Some(url)) => Action::Url {
                    url: url.clone(),
                    client: http_client(timeout).with_context(|| format!("{name}.url"))?,
                },
                (None, None) => return Err(anyhow!("{name}: give a command or a url")),
            };
            let (tx, rx) = mpsc::channel(section.queue);
            let runner = Arc::new(Runner {
                name: name.clone(),
                action,
                timeout,
                retries: section.retries,
                stats: stats.clone(),
            });
            tokio::spawn(runner.serve(rx, section.max_concurrent));
            hooks.push(Hook {
                name,
                events: section.events.clone(),
                path: section.filter.path.as_ref().map(|p| PathFilter {
                    whole_path: p.contains('/'),
                    pattern: p.clone(),
                    glob: Glob::new(p).ok().flatten(),
                }),
                result: section.filter.result,
                queue: tx,
            });
        }
        Ok(Hooks { hooks, stats })
    }

    /// The counters of every hook's results.
    #[allow(dead_code)] // for the metrics endpoint
    pub(crate) fn stats(&self) -> &Arc<HookStats> {
        &self.stats
    }

    /// Hands `event` to the hooks that want it; never waits.
    pub(crate) fn dispatch(&self, event: &Event) {
        let name = HookEvent::name_of(event);
        let mut made: Option<Arc<HookEvent>> = None;
        for hook in self
            .hooks
            .iter()
            .filter(|h| h.events.iter().any(|e| e == name))
        {
            let data = made.get_or_insert_with(|| Arc::new(HookEvent::of(event)));
            if let Some(filter) = &hook.path {
                if !data.path.as_deref().is_some_and(|p| filter.matches(p)) {
                    continue;
                }
            }
            let result_ok = match (hook.result, data.result) {
                (ResultFilter::Any, _) | (_, None) => true,
                (ResultFilter::Complete, Some(r)) => r == "complete",
                (ResultFilter::Failed, Some(r)) => r == "failed",
            };
            if !result_ok {
                continue;
            }
            if hook.queue.try_send(data.clone()).is_err() {
                let dropped = self.stats.dropped.inc() + 1;
                warn!(
                    hook = %hook.name,
                    event = name,
                    dropped,
                    "hook queue full (the hook is slower than events come); event dropped"
                );
            }
        }
    }
}

/// The HTTP client of a URL hook: rustls with ring and the platform's roots (as the object
/// stores use), bounded by the hook's timeout.
fn http_client(timeout: Duration) -> Result<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| anyhow!("TLS roots: {e}"))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .user_agent(concat!("ftpgate/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Runs one hook's events.
struct Runner {
    name: String,
    action: Action,
    timeout: Duration,
    retries: u32,
    stats: Arc<HookStats>,
}

/// How one attempt went wrong.
enum Failure {
    TimedOut,
    Failed(String),
}

impl Runner {
    /// Takes events from the queue, at most `concurrent` running at once.
    async fn serve(self: Arc<Self>, mut rx: mpsc::Receiver<Arc<HookEvent>>, concurrent: usize) {
        let slots = Arc::new(Semaphore::new(concurrent));
        while let Some(event) = rx.recv().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let runner = self.clone();
            tokio::spawn(async move {
                runner.run(&event).await;
                drop(permit);
            });
        }
    }

    /// Runs the hook for `event`, retrying as configured.
    async fn run(&self, event: &HookEvent) {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                self.stats.retried.inc();
            }
            let result = match &self.action {
                Action::Command(argv) => self.run_command(argv, event).await,
                Action::Url { url, client } => self.post(client, url, event).await,
            };
            let error = match result {
                Ok(()) => {
                    self.stats.ok.inc();
                    debug!(hook = %self.name, event = event.event, "hook ran");
                    return;
                }
                Err(Failure::TimedOut) => {
                    self.stats.timed_out.inc();
                    format!("timed out after {} s", self.timeout.as_secs())
                }
                Err(Failure::Failed(error)) => error,
            };
            warn!(
                hook = %self.name,
                event = event.event,
                path = event.path.as_deref().unwrap_or_default(),
                attempt = attempt + 1,
                attempts = self.retries + 1,
                error = %error,
                "hook failed"
            );
        }
        self.stats.failed.inc();
        warn!(
            hook = %self.name,
            event = event.event,
            path = event.path.as_deref().unwrap_or_default(),
            "hook gave up; event dropped"
        );
    }

    async fn run_command(&self, argv: &[String], event: &HookEvent) -> Result<(), Failure> {
        let args: Vec<String> = argv.iter().map(|arg| render(arg, event)).collect();
        let mut command = tokio::process::Command::new(&args[0]);
        command
            .args(&args[1..])
            .env_clear()
            .envs(
                INHERITED_ENV
                    .iter()
                    .filter_map(|k| std::env::var_os(k).map(|v| (*k, v))),
            )
            .envs(event.env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so that a timeout kills what it started too.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| Failure::Failed(format!("cannot run {:?}: {e}", args[0])))?;
        let pid = child.id();
        let stderr = child.stderr.take();
        let work = async {
            let mut kept = Vec::new();
            let read = async {
                if let Some(stderr) = stderr {
                    let _ = stderr.take(STDERR_KEPT).read_to_end(&mut kept).await;
                }
            };
            let (status, ()) = tokio::join!(child.wait(), read);
            (status, kept)
        };
        match tokio::time::timeout(self.timeout, work).await {
            Err(_) => {
                if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                Err(Failure::TimedOut)
            }
            Ok((Ok(status), _)) if status.success() => Ok(()),
            Ok((Ok(status), stderr)) => {
                let stderr = String::from_utf8_lossy(&stderr);
                Err(Failure::Failed(format!(
                    "{status}; stderr: {:?}",
                    stderr.trim()
                )))
            }
            Ok((Err(e), _)) => Err(Failure::Failed(format!("cannot wait for it: {e}"))),
        }
    }

    async fn post(
        &self,
        client: &reqwest::Client,
        url: &str,
        event: &HookEvent,
    ) -> Result<(), Failure> {
        let body = serde_json::to_vec(event).map_err(|e| Failure::Failed(e.to_string()))?;
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    Failure::TimedOut
                } else {
                    // reqwest's own message is generic; its causes say what happened.
                    let mut text = format!("{url}: {e}");
                    let mut source = std::error::Error::source(&e);
                    while let Some(cause) = source {
                        text.push_str(&format!(": {cause}"));
                        source = cause.source();
                    }
                    Failure::Failed(text)
                }
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Failure::Failed(format!(
                "{url}: HTTP {}",
                response.status()
            )))
        }
    }
}

/// `arg` with its `{field}`s replaced by the event's values.
fn render(arg: &str, event: &HookEvent) -> String {
    let mut out = String::new();
    for piece in template_pieces(arg) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Field(name) => out.push_str(&event.field(name)),
            Piece::Broken => {}
        }
    }
    out
}
