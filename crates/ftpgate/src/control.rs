//! The control connection: one task per client, owning its [`Session`].
//!
//! The driver reads lines, hands them to the session, and performs the [`Step`] it returns:
//! send a reply, authenticate, call the storage, open a passive listener, start a transfer.
//! A transfer is a future this task polls next to the control connection; while it runs the
//! driver keeps reading commands (the session accepts only ABOR, STAT, NOOP and QUIT then),
//! sends 150 when the transfer reports `Started`, and gives the session the transfer's outcome
//! when the future ends. Deadlines and shutdown are session inputs too: the session writes
//! every reply.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ftpgate_core::{ErrorKind, Storage, StorageError};
use ftpgate_proto::hostport::canonical;
use ftpgate_proto::line::{Decoded, LineDecoder};
use ftpgate_proto::listing::{DirEntry, format_list_line};
use ftpgate_proto::reply_map::reply_for;
use ftpgate_proto::session::{
    FileOp, SessionUser, StartInfo, StorageOp, StorageOutcome, TransferOutcome, TransferPlan,
};
use ftpgate_proto::{Reply, ReplyCode, Session, SessionConfig, Step, TlsPolicy, VirtualPath};
use futures_util::StreamExt;
use std::pin::Pin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::field::display;
use tracing::{Instrument, Span, debug, error, info, info_span, warn};

use crate::control_socket::ControlSocket;
use crate::events::Event;
use crate::guard::CommandRate;
use crate::limits::{Quota, UploadLimits};
use crate::live::{Live, VirtualHost};
use crate::passive::Passive;
use crate::session_context::SessionContext;
use crate::tls::{self, SessionTls, Stream};
use crate::transfer::{self, TransferContext};

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
    peer: SocketAddr,
    local: SocketAddr,
    storage: Option<Arc<dyn Storage>>,
    /// The passive endpoint of the next transfer (a listener, or a place in a shared port's
    /// queue); dropped as soon as the session no longer expects a passive connection.
    passive: Option<Passive>,
    transfer: Option<RunningTransfer>,
    login_started: Instant,
    last_activity: Instant,
    shutting_down: bool,
    rate: CommandRate,
    /// Bytes arrived since the last command was taken: the next command is not pipelined.
    fresh_input: bool,
    quota: Option<Arc<Quota>>,
    /// The virtual host chosen with HOST, by name.
    host: Option<(String, Arc<VirtualHost>)>,
    /// `login{user}`, inside the session's `session{client}` span, while a user is logged in:
    /// every line logged for the user's commands and transfers names them.
    login_span: Span,
    /// The storage error behind the current command's failure, for its log line.
    op_error: Option<StorageError>,
}

enum Wake {
    Read(io::Result<usize>),
    TransferStarted(StartInfo),
    TransferEnded(TransferOutcome),
    Shutdown,
    Timeout,
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
    peer: SocketAddr,
    implicit_tls: bool,
) {
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
    let span = info_span!("session", client = %peer);
    async move {
        info!(implicit_tls, "connected");
        let live = ctx.live.load_full();
        let config = SessionConfig {
            active_mode: live.config.active_mode,
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
        let mut control = Control {
            decoder: LineDecoder::new(live.config.max_line_length),
            live,
            session: Session::new(config, peer, local),
            ctx,
            stream: Stream::Plain(stream),
            tls: None,
            peer,
            local,
            storage: None,
            passive: None,
            transfer: None,
            login_started: now,
            last_activity: now,
            shutting_down: false,
            rate: CommandRate::new(shared_rate, now.into_std()),
            fresh_input: false,
            quota: None,
            host: None,
            login_span: Span::none(),
            op_error: None,
        };
        if implicit_tls {
            if let Err(e) = control.upgrade_tls(true).await {
                info!(error = %e, "implicit TLS handshake failed");
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
    .await
}

/// The line as it may be logged: the password of PASS is never written out.
fn loggable(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    if text.len() >= 4 && text[..4].eq_ignore_ascii_case("PASS") {
        return "PASS ****".to_string();
    }
    text.escape_debug().to_string()
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
            self.perform(step).await?;
            if !self.session.expects_passive() {
                self.passive = None;
            }
            return Ok(true);
        }
        if self.shutting_down && self.transfer.is_none() {
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
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Wake::Timeout,
        };
        match wake {
            Wake::Read(Ok(0)) => return Ok(false),
            Wake::Read(Ok(n)) => {
                self.decoder.feed(&buf[..n]);
                self.fresh_input = true;
            }
            Wake::Read(Err(e)) => return Err(e),
            Wake::TransferStarted(info) => {
                let reply = self.transfer_started(info);
                self.send(&[reply]).await?;
            }
            Wake::TransferEnded(outcome) => {
                let replies = self.transfer_ended(outcome);
                self.send(&replies).await?;
            }
            Wake::Shutdown => self.shutting_down = true,
            Wake::Timeout => {
                let reply = self.session.handle_timeout();
                info!("{}", reply.lines.join(" "));
                return self.send(&[reply]).await.map(|()| false);
            }
        }
        Ok(true)
    }

    /// When the session times out: never during a transfer; before login, at the login
    /// deadline at the latest.
    fn deadline(&self) -> Option<Instant> {
        if self.transfer.is_some() {
            return None;
        }
        let idle = self.last_activity + self.live.config.idle_timeout;
        if self.session.is_logged_in() {
            Some(idle)
        } else {
            Some(idle.min(self.login_started + self.live.config.login_timeout))
        }
    }

    async fn send(&mut self, replies: &[Reply]) -> io::Result<()> {
        let mut out = Vec::with_capacity(128);
        for reply in replies {
            reply.encode_into(&mut out);
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
                Step::Authenticate { user, password } => {
                    let result = self.authenticate(&user, &password).await;
                    let ip = canonical(self.peer.ip());
                    if result.is_ok() {
                        self.ctx.login_guard.success(ip);
                        let step = self.session.handle_auth_result(result);
                        if let Some(user) = self.session.user_name() {
                            self.login_span = info_span!("login", user);
                        }
                        step
                    } else {
                        let decision = self.ctx.login_guard.failure(ip, std::time::Instant::now());
                        tokio::time::sleep(decision.delay).await;
                        let step = self.session.handle_auth_result(result);
                        if decision.banned {
                            warn!("address banned after repeated failed logins");
                            if let Step::Reply(reply) = step {
                                self.send(&[reply]).await?;
                            }
                            let reply = self.session.handle_ban();
                            return self.send(&[reply]).await;
                        }
                        step
                    }
                }
                Step::Storage(op) => {
                    let result = self.storage_call(op).await;
                    self.session.handle_storage_result(result)
                }
                Step::OpenPassive { extended } => {
                    // A second PASV replaces the first: its listener (or place in a queue) goes
                    // before the new one is made.
                    self.passive = None;
                    let result = match Passive::open(
                        &self.ctx.config,
                        &self.ctx.port_sharing,
                        self.local.ip(),
                        self.peer.ip(),
                    ) {
                        Ok((passive, port)) => {
                            self.passive = Some(passive);
                            let ip = self.ctx.advertised_ipv4(self.peer.ip(), self.local.ip());
                            Ok((ip, port))
                        }
                        Err(e) => {
                            warn!(error = %e, "cannot open a passive port");
                            Err(())
                        }
                    };
                    self.session.handle_passive_opened(extended, result)
                }
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
                Step::SelectHost(name) => {
                    let found = self.live.hosts.get(&name).cloned();
                    let banner = found.as_ref().map(|h| h.banner.clone());
                    if found.is_some() {
                        info!(host = %name, "virtual host chosen");
                    }
                    self.host = found.map(|h| (name, h));
                    self.session.handle_host_selected(banner)
                }
                Step::Logout(reply) => {
                    self.quota = None;
                    if self.session.user_name().is_some() {
                        info!("logout");
                    }
                    self.login_span = Span::none();
                    self.emit_logout();
                    self.storage = None;
                    self.passive = None;
                    self.login_started = Instant::now();
                    return self.send(&[reply]).await;
                }
            };
        }
    }

    async fn authenticate(
        &mut self,
        user: &str,
        password: &ftpgate_proto::Password,
    ) -> Result<SessionUser, ()> {
        // A login takes the users and settings in force now (a reload may have come since
        // the connection was made), and keeps them.
        self.live = self.ctx.live.load_full();
        if let Some((name, host)) = &mut self.host {
            match self.live.hosts.get(name.as_str()) {
                Some(current) => *host = current.clone(),
                None => {
                    warn!(user, host = %name, "login failed: the virtual host was removed by a reload");
                    return Err(());
                }
            }
        }
        let (auth, storage, host) = match &self.host {
            Some((name, host)) => (host.auth.clone(), host.storage.clone(), name.as_str()),
            None => (self.live.auth.clone(), self.live.storage.clone(), ""),
        };
        match auth.authenticate(user, password).await {
            Ok(found) => match storage.open(&found) {
                Ok(storage) => {
                    info!(user = found.name.as_str(), "login");
                    let (name, client) = (found.name.clone(), self.peer.ip());
                    self.ctx.events.emit(|| Event::Login { user: name, client });
                    if let Some(tls) = &self.tls {
                        tls.logged_in(&found.name);
                    }
                    self.quota = self
                        .ctx
                        .quotas
                        .for_user(host, &found, storage.as_ref())
                        .await;
                    let mut capabilities = storage.capabilities();
                    // With a quota, the space left is known whatever the storage can tell.
                    capabilities.available_space |= self.quota.is_some();
                    self.storage = Some(storage);
                    Ok(SessionUser {
                        name: found.name,
                        permissions: found.permissions,
                        tls_required: found.tls_required,
                        capabilities,
                    })
                }
                Err(e) => {
                    error!(user = found.name.as_str(), home = found.home.as_str(), error = %e, "cannot open the user's home");
                    Err(())
                }
            },
            Err(e) => {
                warn!(user, reason = %e, "login failed");
                let client = self.peer.ip();
                self.ctx.events.emit(|| Event::LoginFailed {
                    user: user.to_string(),
                    client,
                });
                Err(())
            }
        }
    }

    async fn storage_call(&mut self, op: StorageOp) -> Result<StorageOutcome, ErrorKind> {
        let Some(storage) = &self.storage else {
            return Err(ErrorKind::Local);
        };
        let user = self.session.user_name().unwrap_or("");
        let result = match &op {
            StorageOp::Metadata(path) => storage.metadata(path).await.map(StorageOutcome::Metadata),
            StorageOp::MakeDir(path) => storage.make_dir(path).await.map(|()| StorageOutcome::Done),
            StorageOp::RemoveDir(path) => storage
                .remove_dir(path)
                .await
                .map(|()| StorageOutcome::Done),
            StorageOp::Delete(path) => {
                // With a quota, the freed bytes are counted back.
                let size = match &self.quota {
                    Some(_) => storage.metadata(path).await.map(|m| m.size).unwrap_or(0),
                    None => 0,
                };
                let result = storage
                    .remove_file(path)
                    .await
                    .map(|()| StorageOutcome::Done);
                if let (Ok(_), Some(quota)) = (&result, &self.quota) {
                    quota.removed(size);
                }
                result
            }
            StorageOp::Rename { from, to } => storage
                .rename(from, to)
                .await
                .map(|()| StorageOutcome::Done),
            StorageOp::SetModified { path, time } => storage
                .set_modified(path, *time)
                .await
                .map(|()| StorageOutcome::Done),
            StorageOp::SetMode { path, mode } => storage
                .set_mode(path, *mode)
                .await
                .map(|()| StorageOutcome::Done),
            StorageOp::Symlink { target, link } => storage
                .symlink(target, link)
                .await
                .map(|()| StorageOutcome::Done),
            StorageOp::Available(dir) => {
                let free = storage.available_bytes(dir).await;
                match &self.quota {
                    Some(quota) => Ok(quota.available_of(free)),
                    None => free,
                }
                .map(StorageOutcome::Available)
            }
        };
        if result.is_ok() {
            let user = user.to_string();
            match &op {
                StorageOp::Delete(path) => self.ctx.events.emit(|| Event::Deleted {
                    user,
                    path: path.clone(),
                }),
                StorageOp::Rename { from, to } => self.ctx.events.emit(|| Event::Renamed {
                    user,
                    from: from.clone(),
                    to: to.clone(),
                }),
                StorageOp::MakeDir(path) => self.ctx.events.emit(|| Event::MadeDir {
                    user,
                    path: path.clone(),
                }),
                StorageOp::RemoveDir(path) => self.ctx.events.emit(|| Event::RemovedDir {
                    user,
                    path: path.clone(),
                }),
                _ => {}
            }
        }
        // The command's log line (`log_file_op`) tells what became of it, with this error.
        result.map_err(|e| {
            let kind = e.kind;
            self.op_error = Some(e);
            kind
        })
    }

    async fn start_transfer(&mut self, plan: TransferPlan) -> io::Result<()> {
        let Some(storage) = self.storage.clone() else {
            // Not reachable while logged in; answer rather than leave the session waiting.
            let replies = self
                .session
                .handle_transfer_done(TransferOutcome::Failed(ErrorKind::Local));
            return self.send(&replies).await;
        };
        let cancel = self.ctx.hard.child_token();
        let progress = Arc::new(AtomicU64::new(0));
        let tls = if plan.protected {
            self.session_tls().ok()
        } else {
            None
        };
        let limits = UploadLimits {
            max_file_size: self.live.config.max_file_size,
            quota: self.quota.clone(),
            mode_z_max_inflated: self.live.config.mode_z_max_inflated,
            mode_z_max_ratio: self.live.config.mode_z_max_ratio,
        };
        let (started, started_rx) = oneshot::channel();
        let ctx = TransferContext {
            storage,
            limits,
            tls,
            passive: self.passive.take(),
            peer_ip: self.peer.ip(),
            local_ip: self.local.ip(),
            active_source_port: self.ctx.active_source_port(self.local.port()),
            data_timeout: self.live.config.data_timeout,
            user: self.session.user_name().unwrap_or("").to_string(),
            cancel: cancel.clone(),
            progress: progress.clone(),
            started: Some(started),
            server: self.ctx.transfers.clone(),
        };
        // The transfer's own lines (storage errors, a refused upload) name its command and path.
        let span = info_span!(
            "transfer",
            command = plan.verb,
            path = plan.kind.path().as_str()
        );
        self.transfer = Some(RunningTransfer {
            cancel,
            progress,
            began: Instant::now(),
            unique_name: None,
            started: Some(started_rx),
            work: Box::pin(transfer::run(plan, ctx).instrument(span)),
        });
        Ok(())
    }

    /// The transfer's data connection is open: 150 (STOU's name is kept for the log line).
    fn transfer_started(&mut self, info: StartInfo) -> Reply {
        if let Some(transfer) = &mut self.transfer {
            transfer.unique_name = info.unique_name.clone();
        }
        self.session.handle_transfer_started(&info)
    }

    /// The transfer's future ended with `outcome`: its final reply, after the 150 of a
    /// transfer that is over before that was sent (a small file sent whole), so both go out in
    /// one write, one segment and one wake-up for the client.
    fn transfer_ended(&mut self, outcome: TransferOutcome) -> Vec<Reply> {
        let unsent_start = self
            .transfer
            .as_mut()
            .and_then(|t| t.started.take())
            .and_then(|mut started| started.try_recv().ok());
        let start = unsent_start.map(|info| self.transfer_started(info));
        let mut replies = self.transfer_done(outcome);
        if let Some(start) = start {
            replies.insert(0, start);
        }
        replies
    }

    fn transfer_done(&mut self, outcome: TransferOutcome) -> Vec<Reply> {
        let transfer = self.transfer.take();
        self.last_activity = Instant::now();
        let replies = self.session.handle_transfer_done(outcome);
        if let (Some(transfer), Some(reply)) = (transfer, replies.first()) {
            let moved = Moved {
                bytes: transfer.progress.load(Ordering::Relaxed),
                took: transfer.began.elapsed(),
                unique_name: transfer.unique_name,
            };
            self.log_file_op(reply, Some(moved));
        }
        replies
    }

    /// The one log line of a file operation that ended with `reply`: the command, its paths,
    /// the result (`ok`, or the reply's code and text, with the storage error behind it) and,
    /// for a transfer, the bytes moved and the time taken. The session's spans add the client
    /// and the user. Server-side faults (4xx from the storage) are warnings.
    fn log_file_op(&mut self, reply: &Reply, moved: Option<Moved>) {
        let error = self.op_error.take();
        let Some(op) = self.session.take_file_op() else {
            return;
        };
        let FileOp {
            verb,
            mut path,
            to,
            mode,
        } = op;
        let number = reply.code.number();
        let ok = number < 400;
        let (bytes, secs) = match moved {
            Some(moved) => {
                if let Some(name) = moved.unique_name {
                    path = path.parent().join(&name);
                }
                (Some(moved.bytes), Some(display(Seconds(moved.took))))
            }
            None => (None, None),
        };
        macro_rules! file_op {
            ($level:ident) => {
                $level!(
                    command = verb,
                    path = path.as_str(),
                    to = to.as_ref().map(|p| p.as_str()),
                    mode = mode.map(|m| display(Mode(m))),
                    result = if ok { "ok" } else { "failed" },
                    code = (!ok).then_some(number),
                    reason = reply.lines.first().filter(|_| !ok).map(String::as_str),
                    error = error.as_ref().map(|e| display(&e.source)),
                    bytes,
                    secs,
                    "file operation"
                )
            };
        }
        if matches!(number, 450..=452) {
            file_op!(warn);
        } else {
            file_op!(info);
        }
    }

    /// STAT with a path: the listing goes over the control connection as one 213 reply,
    /// streamed entry by entry.
    async fn stat_listing(&mut self, path: &VirtualPath) -> io::Result<()> {
        let Some(storage) = self.storage.clone() else {
            return Ok(());
        };
        let meta = match storage.metadata(path).await {
            Ok(meta) => meta,
            Err(e) => return self.send(&[reply_for(e.kind, path.as_str())]).await,
        };
        let now = std::time::SystemTime::now();
        let zone = &self.ctx.config.listing_time_zone;
        let mut out = format!(
            "213-Status of {}:\r\n",
            ftpgate_proto::listing::display_name(path.as_str())
        )
        .into_bytes();
        if meta.is_dir() {
            let mut entries = match storage.list(path).await {
                Ok(entries) => entries,
                Err(e) => return self.send(&[reply_for(e.kind, path.as_str())]).await,
            };
            while let Some(entry) = entries.next().await {
                match entry {
                    Ok(entry) => {
                        out.push(b' ');
                        let offset = zone.offset_seconds(entry.metadata.modified);
                        format_list_line(&entry, now, offset, &mut out);
                    }
                    Err(e) => {
                        warn!(error = %e, "listing failed");
                        break;
                    }
                }
                if out.len() >= 64 * 1024 {
                    self.stream.write_all(&out).await?;
                    out.clear();
                }
            }
        } else {
            let name = path.file_name().unwrap_or("").to_string();
            out.push(b' ');
            let offset = zone.offset_seconds(meta.modified);
            format_list_line(
                &DirEntry {
                    name,
                    metadata: meta,
                },
                now,
                offset,
                &mut out,
            );
        }
        out.extend_from_slice(b"213 End of status\r\n");
        self.stream.write_all(&out).await?;
        self.stream.flush().await
    }

    fn emit_logout(&self) {
        if let Some(user) = self.session.user_name() {
            let (user, client) = (user.to_string(), self.peer.ip());
            self.ctx.events.emit(|| Event::Logout { user, client });
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

    /// This connection's TLS context, made on first use.
    fn session_tls(&mut self) -> io::Result<Arc<SessionTls>> {
        if let Some(tls) = &self.tls {
            return Ok(tls.clone());
        }
        let server_tls = self
            .ctx
            .tls
            .as_ref()
            .ok_or_else(|| io::Error::other("TLS is not configured"))?;
        let tls = Arc::new(
            server_tls
                .session(self.peer.ip())
                .map_err(io::Error::other)?,
        );
        self.tls = Some(tls.clone());
        Ok(tls)
    }

    /// AUTH TLS (after its 234 reply) or an implicit TLS listener: anything the client sent
    /// beyond the AUTH line is dropped unread, then the handshake runs.
    async fn upgrade_tls(&mut self, implicit: bool) -> io::Result<()> {
        if self.decoder.has_buffered() {
            warn!("discarding commands sent after AUTH TLS before the handshake");
            self.decoder.clear();
        }
        let tls = self.session_tls()?;
        let Stream::Plain(mut tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(io::Error::other("the control connection is not clear"));
        };
        tcp.set_tls(true);
        let stream = tls
            .accept(tcp)
            .await
            .inspect_err(|e| warn!(error = %e, "TLS handshake failed"))?;
        info!(tls = %tls::describe(&stream), "control connection secured");
        if let Some(user) = self.session.user_name() {
            tls.logged_in(user);
        }
        self.stream = Stream::Tls(Box::new(stream));
        self.session.handle_tls_established(implicit);
        Ok(())
    }

    /// CCC (after its 200 reply): both sides close TLS with close_notify, and the same TCP
    /// connection goes on in the clear. The client's close_notify is read one TLS record at a
    /// time, so no clear-text command sent right after it is swallowed by the TLS layer.
    async fn clear_control(&mut self) -> io::Result<()> {
        let Stream::Tls(stream) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(io::Error::other("the control connection is not TLS"));
        };
        let (mut tcp, mut conn) = (*stream).into_inner();
        conn.send_close_notify();
        while conn.wants_write() {
            let mut out = Vec::new();
            conn.write_tls(&mut out)?;
            tcp.write_all(&out).await?;
        }
        let read_close = async {
            loop {
                let mut header = [0u8; 5];
                tcp.read_exact(&mut header).await?;
                let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
                if len > 18_432 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "oversized TLS record",
                    ));
                }
                let mut record = vec![0u8; 5 + len];
                record[..5].copy_from_slice(&header);
                tcp.read_exact(&mut record[5..]).await?;
                conn.read_tls(&mut &record[..])?;
                let state = conn.process_new_packets().map_err(io::Error::other)?;
                if state.peer_has_closed() {
                    return Ok(());
                }
            }
        };
        match tokio::time::timeout(self.live.config.data_timeout, read_close).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no close_notify after CCC",
                ));
            }
        }
        tcp.set_tls(false);
        self.stream = Stream::Plain(tcp);
        self.decoder.clear();
        self.session.handle_control_cleared();
        info!("control connection back in the clear (CCC)");
        Ok(())
    }
}

/// What a transfer moved, for its log line.
struct Moved {
    bytes: u64,
    took: Duration,
    /// The name STOU chose.
    unique_name: Option<String>,
}

/// Permission bits as `chmod` takes them: `0644`.
struct Mode(u32);

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// A duration in seconds, to the millisecond: `0.012`.
struct Seconds(Duration);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3}", self.0.as_secs_f64())
    }
}
