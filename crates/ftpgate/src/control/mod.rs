//! The control connection: one task per client, owning its [`Session`].
//!
//! The driver reads lines, hands them to the session, and performs the [`Step`] it returns:
//! send a reply, authenticate, call the storage, open a passive listener, start a transfer.
//! A transfer is a future this task polls next to the control connection; while it runs the
//! driver keeps reading commands (the session accepts only ABOR, STAT, NOOP and QUIT then),
//! sends 150 when the transfer reports `Started`, and gives the session the transfer's outcome
//! when the future ends. Deadlines and shutdown are session inputs too: the session writes
//! every reply.
//!
//! This file holds the loop (`run`, `serve`, one `turn`, the deadlines, `perform` of a
//! [`Step`]); the rest is by concern: `auth` (login, login guard, virtual host, storage opened
//! at login), `storage_call` (a `StorageOp`), `transfer` (passive endpoints, starting a
//! transfer, its start and end, the STAT listing), `tls` (AUTH TLS, CCC) and `log` (the lines
//! logged). What the server gives a session is a [`SessionContext`]; nothing here reads the
//! server itself.

mod auth;
mod log;
mod storage_call;
mod tls;
mod transfer;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ftpgate_core::{Storage, StorageError};
use ftpgate_proto::line::{Decoded, LineDecoder};
use ftpgate_proto::session::{StartInfo, TransferOutcome};
use ftpgate_proto::{Reply, ReplyCode, Session, SessionConfig, Step, TlsPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span, debug, info, info_span, warn};

use crate::control_socket::ControlSocket;
use crate::events::Event;
use crate::guard::CommandRate;
use crate::limits::Quota;
use crate::live::{Live, VirtualHost};
use crate::metrics::{Rejection, Timeout};
use crate::passive::Passive;
use crate::policy::{SessionSlot, SessionThrottles};
use crate::proxy::{self, Origin};
use crate::session_context::SessionContext;
use crate::sessions::SessionEntry;
use crate::tls::{SessionTls, Stream};
use crate::transfer::StallTimer;

use log::loggable;

/// During shutdown a session is closed (421) once it has been this long without a command or
/// a transfer: an idle session at once, a client in the middle of its dialogue (logged in, about
/// to send RETR) after it finishes, so a client that connected just before the listeners
/// closed still gets its file. A session that never pauses is ended by the grace period.
const SHUTDOWN_QUIET: Duration = Duration::from_millis(500);

/// A transfer, run by its session's own task next to the control connection (no task spawned
/// and no thread woken per transfer: a small file costs a few microseconds less each way).
struct RunningTransfer {
    cancel: CancellationToken,
    progress: Arc<AtomicU64>,
    began: Instant,
    /// The name STOU chose, once the transfer has started.
    unique_name: Option<String>,
    /// The transfer's `Started` report, until it arrives.
    started: Option<oneshot::Receiver<StartInfo>>,
    /// The transfer itself: its output is how it ended.
    work: Pin<Box<dyn Future<Output = TransferOutcome> + Send>>,
}

struct Control {
    ctx: Arc<SessionContext>,
    /// The users and settings of this session: as they were when it connected, then as they
    /// were when it logged in (a reload changes neither).
    live: Arc<Live>,
    stream: Stream<ControlSocket>,
    tls: Option<Arc<SessionTls>>,
    decoder: LineDecoder,
    session: Session,
    /// The client: the peer, or behind a load balancer the source its PROXY header named.
    /// Every limit, ban, check, log line, metric and event uses this address.
    client: SocketAddr,
    /// The socket's own address (passive listeners bind here).
    local: SocketAddr,
    /// The address the client dialled: `local`, or the PROXY header's destination (PASV
    /// announces it when no rule or public host says otherwise).
    dialled: SocketAddr,
    /// A direct connection on a server that takes PROXY headers: a header in its first bytes
    /// is a forgery, and closes it. Cleared after the first read.
    check_forged_header: bool,
    storage: Option<Arc<dyn Storage>>,
    /// The passive endpoint of the next transfer (a listener, or a place in a shared port's
    /// queue); dropped as soon as the session no longer expects a passive connection.
    passive: Option<Passive>,
    /// The data timeout's timer, made with the first transfer and kept for the next ones.
    stall: Option<StallTimer>,
    transfer: Option<RunningTransfer>,
    login_started: Instant,
    last_activity: Instant,
    shutting_down: bool,
    rate: CommandRate,
    /// Bytes arrived since the last command was taken: the next command is not pipelined.
    fresh_input: bool,
    quota: Option<Arc<Quota>>,
    /// The logged-in user's place among its sessions (`max_sessions`).
    user_slot: Option<SessionSlot>,
    /// The logged-in user's bandwidth limits.
    throttles: SessionThrottles,
    /// The virtual host chosen with HOST, by name.
    host: Option<(String, Arc<VirtualHost>)>,
    /// `login{user}`, inside the session's `session{client}` span, while a user is logged in:
    /// every line logged for the user's commands and transfers names them.
    login_span: Span,
    /// The storage error behind the current command's failure, for its log line.
    op_error: Option<StorageError>,
    /// What the live sessions show of this one (its id, user, TLS, command, transfer).
    entry: Arc<SessionEntry>,
    /// The certificate chain the client presented in the TLS handshake, if any (verified
    /// against the client CA by the TLS layer).
    client_certificates: Vec<rustls_pki_types::CertificateDer<'static>>,
}

enum Wake {
    Read(io::Result<usize>),
    TransferStarted(StartInfo),
    TransferEnded(TransferOutcome),
    Shutdown,
    Timeout,
    /// The operator ended the session.
    Ended,
}

/// The running transfer's `Started` report (pending forever without one, or once it came).
async fn transfer_started(started: Option<&mut Option<oneshot::Receiver<StartInfo>>>) -> StartInfo {
    if let Some(slot) = started {
        if let Some(receiver) = slot {
            let report = receiver.await;
            *slot = None;
            // No report: the transfer ended before its data connection; its end comes next.
            if let Ok(info) = report {
                return info;
            }
        }
    }
    std::future::pending().await
}

/// Runs the transfer to its end (pending forever without one).
async fn transfer_ended(
    work: Option<&mut Pin<Box<dyn Future<Output = TransferOutcome> + Send>>>,
) -> TransferOutcome {
    match work {
        Some(work) => work.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Serves one control connection to its end.
pub(crate) async fn run(
    ctx: Arc<SessionContext>,
    stream: TcpStream,
    origin: Origin,
    implicit_tls: bool,
) {
    let client = origin.client;
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let stream = match ControlSocket::new(stream) {
        Ok(socket) => socket,
        Err(e) => {
            debug!(error = %e, "cannot set up the control socket");
            return;
        }
    };
    let dialled = origin.dialled.unwrap_or(local);
    let registration = ctx.sessions.register(client, local);
    let entry = registration.entry.clone();
    let _active = ctx.metrics.as_ref().map(|m| {
        m.connections_active.inc();
        ActiveConnection(m.connections_active.clone())
    });
    let span = info_span!("session", client = %client, id = %entry.id);
    async move {
        match origin.via {
            Some(proxy) => info!(implicit_tls, %proxy, "connected"),
            None => info!(implicit_tls, "connected"),
        }
        let live = ctx.live.load_full();
        let config = SessionConfig {
            active_mode: live.config.active_mode,
            proxied: origin.via.is_some(),
            min_active_port: live.config.min_active_port,
            max_login_failures: live.config.max_login_failures,
            tls: match &ctx.config.tls {
                Some(tls) => TlsPolicy {
                    available: true,
                    required_for_login: tls.required_for_login,
                    required_for_data: tls.required_for_data,
                    allow_ccc: tls.allow_ccc,
                },
                None => TlsPolicy::default(),
            },
            features: live.config.features,
            virtual_hosts: !live.hosts.is_empty(),
            login_message: live.config.login_message.clone(),
        };
        let now = Instant::now();
        let shared_rate = live.config.max_commands_per_second;
        let check_forged_header = origin.via.is_none() && ctx.proxy.is_some();
        let mut control = Control {
            decoder: LineDecoder::new(live.config.max_line_length),
            live,
            session: Session::new(config, client, dialled),
            ctx,
            stream: Stream::Plain(stream),
            tls: None,
            client,
            local,
            dialled,
            check_forged_header,
            storage: None,
            passive: None,
            stall: None,
            transfer: None,
            login_started: now,
            last_activity: now,
            shutting_down: false,
            rate: CommandRate::new(shared_rate, now.into_std()),
            fresh_input: false,
            quota: None,
            user_slot: None,
            throttles: SessionThrottles::default(),
            host: None,
            login_span: Span::none(),
            op_error: None,
            entry,
            client_certificates: Vec::new(),
        };
        if implicit_tls {
            if let Err(e) = control.upgrade_tls(true).await {
                info!(error = %e, "implicit TLS handshake failed");
                if let Some(metrics) = &control.ctx.metrics {
                    metrics.rejected(Rejection::Tls);
                }
                return;
            }
        }
        if let Err(e) = control.serve().await {
            debug!(error = %e, "control connection ended with an error");
        }
        let span = control.login_span.clone();
        control.finish().instrument(span).await;
        info!("disconnected");
    }
    .instrument(span)
    .await;
    drop(registration);
}

/// One open control connection in `ftpgate_connections_active`, until dropped.
struct ActiveConnection(prometheus_client::metrics::gauge::Gauge);

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Control {
    async fn serve(&mut self) -> io::Result<()> {
        let banner = Reply::from_text(ReplyCode::ServiceReady, &self.live.config.banner);
        self.send(&[banner]).await?;
        // Control lines are short: a small buffer keeps idle sessions small (a burst of
        // pipelined commands takes a few more reads).
        let mut buf = vec![0u8; 1024];
        loop {
            let span = self.login_span.clone();
            if !self.turn(&mut buf).instrument(span).await? {
                return Ok(());
            }
        }
    }

    /// One command, or one wait for input, a transfer's report or a deadline, in the logged-in
    /// user's span. `Ok(false)` ends the session.
    async fn turn(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        if self.session.wants_close() {
            return Ok(false);
        }
        // Commands already received run first, in order.
        if let Some(decoded) = self.decoder.next_line() {
            // A command sent before the reply to the previous one (pipelined) costs a token:
            // a flood waits its turn instead of taking the CPU. A client that waits for
            // each reply, as FTP clients do, is paced by its own round trips and never
            // throttled, however many small files it mirrors.
            let pipelined = !std::mem::replace(&mut self.fresh_input, false);
            if pipelined {
                if let Some(wait) = self.rate.take(std::time::Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
            }
            self.last_activity = Instant::now();
            if let Decoded::Line(line) = &decoded {
                debug!(command = %loggable(line), "command");
            }
            let step = self.session.handle_decoded(decoded);
            // The live view and the metrics: an index stored and an atomic add, no lookup.
            let index = self.session.last_command().map(|spec| spec.index());
            self.entry.set_last_command(index);
            if let Some(metrics) = &self.ctx.metrics {
                metrics.command(index);
            }
            self.perform(step).await?;
            self.entry
                .set_tls(self.session.is_secure(), self.session.data_protected());
            if !self.session.expects_passive() {
                self.passive = None;
            }
            return Ok(true);
        }
        if self.shutting_down
            && self.transfer.is_none()
            && self.last_activity + SHUTDOWN_QUIET <= Instant::now()
        {
            let reply = self.session.handle_shutdown();
            return self.send(&[reply]).await.map(|()| false);
        }
        let deadline = self.deadline();
        let (started, work) = match &mut self.transfer {
            Some(t) => (Some(&mut t.started), Some(&mut t.work)),
            None => (None, None),
        };
        let wake = tokio::select! {
            read = self.stream.read(buf) => Wake::Read(read),
            info = transfer_started(started) => Wake::TransferStarted(info),
            outcome = transfer_ended(work) => Wake::TransferEnded(outcome),
            _ = self.ctx.graceful.cancelled(), if !self.shutting_down => Wake::Shutdown,
            () = self.entry.ended() => Wake::Ended,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Wake::Timeout,
        };
        match wake {
            Wake::Read(Ok(0)) => return Ok(false),
            Wake::Read(Ok(n)) => {
                if std::mem::take(&mut self.check_forged_header)
                    && proxy::looks_like_header(&buf[..n])
                {
                    warn!("a PROXY header from an address not trusted to send one; closing");
                    if let Some(metrics) = &self.ctx.metrics {
                        metrics.rejected(Rejection::ProxyHeader);
                    }
                    let reply = self.session.handle_forged_proxy_header();
                    return self.send(&[reply]).await.map(|()| false);
                }
                self.decoder.feed(&buf[..n]);
                self.fresh_input = true;
            }
            Wake::Read(Err(e)) => return Err(e),
            Wake::TransferStarted(info) => {
                let reply = self.transfer_started(info);
                self.send(&[reply]).await?;
            }
            Wake::TransferEnded(outcome) => {
                self.last_activity = Instant::now();
                let replies = self.transfer_ended(outcome);
                self.send(&replies).await?;
            }
            Wake::Shutdown => self.shutting_down = true,
            Wake::Timeout if self.shutting_down => {}
            Wake::Timeout => {
                if let Some(metrics) = &self.ctx.metrics {
                    metrics.timeout(if self.session.is_logged_in() {
                        Timeout::Idle
                    } else {
                        Timeout::Login
                    });
                }
                let reply = self.session.handle_timeout();
                info!("{}", reply.lines.join(" "));
                return self.send(&[reply]).await.map(|()| false);
            }
            Wake::Ended => return self.end_by_operator().await.map(|()| false),
        }
        Ok(true)
    }

    /// When the session times out: never during a transfer; before login, at the login
    /// deadline at the latest.
    fn deadline(&self) -> Option<Instant> {
        if self.transfer.is_some() {
            return None;
        }
        if self.shutting_down {
            return Some(self.last_activity + SHUTDOWN_QUIET);
        }
        let idle = self.last_activity + self.live.config.idle_timeout;
        if self.session.is_logged_in() {
            Some(idle)
        } else {
            Some(idle.min(self.login_started + self.live.config.login_timeout))
        }
    }

    /// The operator ended the session: a running transfer is aborted as ABOR would (an upload
    /// commits nothing) and waited for, then the session answers 421.
    async fn end_by_operator(&mut self) -> io::Result<()> {
        if let Some(transfer) = &mut self.transfer {
            transfer.cancel.cancel();
            if let Ok(outcome) =
                tokio::time::timeout(Duration::from_secs(10), transfer.work.as_mut()).await
            {
                // Logged and counted as any transfer's end; its replies are not sent, the
                // session's last reply is the 421.
                let _ = self.transfer_ended(outcome);
            }
        }
        let reply = self.session.handle_ended_by_operator();
        info!("session ended by the operator");
        self.send(&[reply]).await
    }

    async fn send(&mut self, replies: &[Reply]) -> io::Result<()> {
        let mut out = Vec::with_capacity(128);
        for reply in replies {
            reply.encode_into(&mut out);
            if let Some(metrics) = &self.ctx.metrics {
                metrics.reply(reply.code.number());
            }
        }
        // One write per batch of replies, so a reply never leaves in pieces (Nagle and delayed
        // ACK would otherwise add tens of milliseconds).
        self.stream.write_all(&out).await?;
        self.stream.flush().await
    }

    async fn perform(&mut self, mut step: Step) -> io::Result<()> {
        loop {
            step = match step {
                Step::Reply(reply) => {
                    self.log_file_op(&reply, None);
                    return self.send(&[reply]).await;
                }
                Step::Nothing => return Ok(()),
                Step::Authenticate { user, password } => self.login(&user, &password).await?,
                Step::Storage(op) => {
                    let result = self.storage_call(op).await;
                    self.session.handle_storage_result(result)
                }
                Step::OpenPassive { extended } => self.open_passive(extended),
                Step::Transfer(plan) => return self.start_transfer(plan).await,
                Step::StatListing { path } => return self.stat_listing(&path).await,
                Step::UpgradeTls(reply) => {
                    self.send(&[reply]).await?;
                    return self.upgrade_tls(false).await;
                }
                Step::ClearControl(reply) => {
                    self.send(&[reply]).await?;
                    return self.clear_control().await;
                }
                Step::AbortTransfer => {
                    if let Some(transfer) = &self.transfer {
                        transfer.cancel.cancel();
                    }
                    return Ok(());
                }
                Step::TransferStatus => {
                    let progress = self
                        .transfer
                        .as_ref()
                        .map(|t| t.progress.load(Ordering::Relaxed));
                    let reply = self.session.status_reply(progress);
                    return self.send(&[reply]).await;
                }
                Step::SelectHost(name) => self.select_host(name),
                Step::Logout(reply) => {
                    self.quota = None;
                    self.user_slot = None;
                    self.throttles = SessionThrottles::default();
                    if self.session.user_name().is_some() {
                        info!("logout");
                    }
                    self.login_span = Span::none();
                    self.emit_logout();
                    self.entry.set_user(None);
                    self.storage = None;
                    self.passive = None;
                    self.login_started = Instant::now();
                    return self.send(&[reply]).await;
                }
            };
        }
    }

    fn emit_logout(&self) {
        if let Some(user) = self.session.user_name() {
            let (user, client, session) = (user.to_string(), self.client.ip(), self.entry.id);
            self.ctx.events.emit(|| Event::Logout {
                session,
                user,
                client,
            });
        }
    }

    /// The connection is over: stop any transfer (aborting an upload) and wait for it.
    async fn finish(&mut self) {
        if let Some(transfer) = self.transfer.take() {
            transfer.cancel.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(10), transfer.work).await;
        }
        self.emit_logout();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.stream.shutdown()).await;
    }
}
