//! Transfers: the data connection's setup (PASV, EPSV, PORT, EPRT, TYPE, MODE, REST), the
//! commands that run as transfers (RETR, STOR, APPE, STOU, LIST, NLST, MLSD, and HASH, the
//! digest commands and COMB, which have no data connection), ABOR, and the engine's reports on
//! a running transfer ([`Session::handle_transfer_started`], [`Session::handle_transfer_done`]).

use std::net::{Ipv4Addr, SocketAddr};

use super::{
    DataEndpoint, DataSetup, Running, Session, StartInfo, Step, TransferKind, TransferOutcome,
    TransferPlan, reply,
};
use crate::backend::{HashAlgorithm, StorageErrorKind, WriteStart};
use crate::command::{CommandSpec, EpsvArg, ListArgs, Protection, TransferMode, TransferType};
use crate::glob::ListPattern;
use crate::hostport::{canonical, format_epsv, format_pasv, same_host};
use crate::listing::ListFormat;
use crate::perm::Perm;
use crate::reply::{Reply, ReplyCode};
use crate::reply_map::reply_for;

impl Session {
    // --- Data connection setup ------------------------------------------------------------------

    /// RFC 959 PASV (and EPSV, `extended`): the engine opens a listener
    /// ([`Step::OpenPassive`]) and answers with [`Session::handle_passive_opened`].
    pub(super) fn pasv(&mut self, extended: bool) -> Step {
        if !extended && self.epsv_all {
            return reply(ReplyCode::BadSequence, "EPSV ALL in effect; use EPSV");
        }
        self.data = DataSetup::None;
        Step::OpenPassive { extended }
    }

    /// RFC 2428 EPSV.
    pub(super) fn epsv(&mut self, arg: EpsvArg) -> Step {
        match arg {
            EpsvArg::All => {
                self.epsv_all = true;
                reply(ReplyCode::CommandOk, "EPSV ALL ok")
            }
            EpsvArg::Protocol(proto) => {
                let local_is_v4 = canonical(self.local.ip()).is_ipv4();
                if (proto == 1) != local_is_v4 {
                    return reply(
                        ReplyCode::NetworkProtocolNotSupported,
                        "Network protocol not supported, use the control connection's",
                    );
                }
                self.pasv(true)
            }
            EpsvArg::Any => self.pasv(true),
        }
    }

    /// The engine opened the passive listener for [`Step::OpenPassive`]: `port` is where it
    /// listens and `advertised` the IPv4 address to announce in a 227 reply (the masquerade
    /// address, or the control connection's own).
    pub fn handle_passive_opened(
        &mut self,
        extended: bool,
        result: Result<(Option<Ipv4Addr>, u16), ()>,
    ) -> Step {
        match result {
            Ok((advertised, port)) => {
                if extended {
                    self.data = DataSetup::Passive;
                    return reply(ReplyCode::EnteringExtendedPassiveMode, format_epsv(port));
                }
                match advertised {
                    Some(ip) => {
                        self.data = DataSetup::Passive;
                        reply(ReplyCode::EnteringPassiveMode, format_pasv(ip, port))
                    }
                    None => reply(
                        ReplyCode::NetworkProtocolNotSupported,
                        "PASV needs IPv4; use EPSV",
                    ),
                }
            }
            Err(()) => reply(
                ReplyCode::CantOpenDataConnection,
                "Cannot open a passive port; try again",
            ),
        }
    }

    /// PORT and EPRT: only to the control connection's own host, and not to privileged ports,
    /// so the server cannot be used to bounce connections elsewhere.
    pub(super) fn active(&mut self, addr: SocketAddr) -> Step {
        if !self.config.active_mode {
            return reply(
                ReplyCode::NotImplemented,
                "Active mode is disabled; use PASV or EPSV",
            );
        }
        if self.config.proxied {
            return reply(
                ReplyCode::NotImplemented,
                "Active mode is not available through the load balancer; use PASV or EPSV",
            );
        }
        if self.epsv_all {
            return reply(ReplyCode::BadSequence, "EPSV ALL in effect; use EPSV");
        }
        if !same_host(addr.ip(), self.peer.ip()) {
            return reply(
                ReplyCode::ArgumentSyntaxError,
                "Refusing a data connection to a foreign address",
            );
        }
        if addr.port() < self.config.min_active_port {
            return reply(
                ReplyCode::ArgumentSyntaxError,
                "Refusing a data connection to a privileged port",
            );
        }
        // Connect to the address family the socket really uses: the host is the peer (checked
        // above), so take the peer's own form of it, whichever form (IPv4, IPv6, IPv4-mapped)
        // the client wrote.
        let addr = SocketAddr::new(self.peer.ip(), addr.port());
        self.data = DataSetup::Active(addr);
        reply(ReplyCode::CommandOk, "Active data connection set up")
    }

    /// RFC 959 TYPE.
    pub(super) fn set_type(&mut self, transfer_type: TransferType) -> Step {
        self.transfer_type = transfer_type;
        match transfer_type {
            TransferType::Ascii => reply(ReplyCode::CommandOk, "Type set to A"),
            TransferType::Binary => reply(ReplyCode::CommandOk, "Type set to I"),
        }
    }

    /// RFC 959 MODE S, and MODE Z (draft-preston-ftpext-deflate) where it is switched on.
    pub(super) fn set_mode(&mut self, mode: TransferMode) -> Step {
        match mode {
            TransferMode::Stream => {
                self.compressed = false;
                reply(ReplyCode::CommandOk, "Mode set to S")
            }
            TransferMode::Deflate => {
                if !self.config.features.mode_z {
                    return reply(ReplyCode::ParameterNotImplemented, "MODE Z is not enabled");
                }
                if self.rest > 0 {
                    return reply(ReplyCode::BadSequence, "MODE Z cannot follow REST");
                }
                self.compressed = true;
                reply(ReplyCode::CommandOk, "Mode set to Z")
            }
        }
    }

    /// RFC 3659 REST STREAM: the offset the next RETR, STOR or APPE starts at (TYPE I and
    /// MODE S only).
    pub(super) fn set_rest(&mut self, offset: u64) -> Step {
        if offset > 0 && self.compressed {
            return reply(
                ReplyCode::ParameterNotImplemented,
                "REST is not supported in MODE Z; use MODE S",
            );
        }
        if offset > 0 && self.transfer_type == TransferType::Ascii {
            return reply(
                ReplyCode::ParameterNotImplemented,
                "REST is only supported in binary mode; use TYPE I",
            );
        }
        self.rest = offset;
        reply(
            ReplyCode::PendingFurtherInformation,
            format!("Restarting at {offset}; send STOR, APPE or RETR"),
        )
    }

    fn take_rest(&mut self) -> Result<u64, Step> {
        let offset = std::mem::take(&mut self.rest);
        if offset > 0 && self.transfer_type == TransferType::Ascii {
            return Err(reply(
                ReplyCode::ParameterNotImplemented,
                "REST is only supported in binary mode; use TYPE I",
            ));
        }
        Ok(offset)
    }

    // --- Starting a transfer ------------------------------------------------------------------

    /// A transfer over the data connection set up before (which it uses up).
    fn start_transfer(&mut self, kind: TransferKind) -> Step {
        let data = match self.data {
            DataSetup::None => {
                return reply(
                    ReplyCode::CantOpenDataConnection,
                    "Use PASV, EPSV, PORT or EPRT first",
                );
            }
            DataSetup::Passive => DataEndpoint::Passive,
            DataSetup::Active(addr) => DataEndpoint::Active(addr),
        };
        if self.protection != Protection::Private
            && (self.config.tls.required_for_data || self.user_requires_tls())
        {
            self.data = DataSetup::None;
            return reply(
                ReplyCode::DataProtectionRequired,
                "Data connections must be protected: send PBSZ 0 and PROT P",
            );
        }
        self.data = DataSetup::None;
        self.run(TransferPlan {
            verb: self.verb,
            kind,
            ascii: self.transfer_type == TransferType::Ascii,
            data,
            protected: self.protection == Protection::Private,
            compressed: self.compressed,
        })
    }

    /// A job run like a transfer but without a data connection (HASH, COMB): one at a time,
    /// abortable, visible to STAT; a data connection set up before it stays for later.
    fn start_job(&mut self, kind: TransferKind) -> Step {
        self.run(TransferPlan {
            verb: self.verb,
            kind,
            ascii: false,
            data: DataEndpoint::None,
            protected: false,
            compressed: false,
        })
    }

    fn run(&mut self, plan: TransferPlan) -> Step {
        self.transfer = Some(Running {
            plan: plan.clone(),
            abort_requested: false,
            quit_requested: false,
        });
        Step::Transfer(plan)
    }

    /// RFC 959 RETR, from the REST offset if one was given.
    pub(super) fn retr(&mut self, spec: &CommandSpec, arg: &str) -> Step {
        let offset = match self.take_rest() {
            Ok(o) => o,
            Err(step) => return step,
        };
        match self.target(arg, spec.perm.as_slice()) {
            Ok(path) => self.start_transfer(TransferKind::Retrieve { path, offset }),
            Err(step) => step,
        }
    }

    /// RFC 959 STOR and APPE. Writing from a REST offset needs the append permission too,
    /// since it keeps what the file already holds.
    pub(super) fn store(&mut self, spec: &CommandSpec, arg: &str, append: bool) -> Step {
        let offset = match self.take_rest() {
            Ok(o) => o,
            Err(step) => return step,
        };
        let path = match self.target(arg, spec.perm.as_slice()) {
            Ok(path) => path,
            Err(step) => return step,
        };
        if path.is_root() {
            let reply = reply_for(StorageErrorKind::IsADirectory, path.as_str());
            self.ended(path, None);
            return Step::Reply(reply);
        }
        let start = match offset {
            0 if append => WriteStart::Append,
            0 => WriteStart::Truncate,
            n => {
                if !self.permits(Perm::Append, &path) {
                    return self.refuse(path);
                }
                WriteStart::At(n)
            }
        };
        self.start_transfer(TransferKind::Store { path, start })
    }

    /// RFC 959 STOU: store under a name the server makes unique.
    pub(super) fn stou(&mut self, spec: &CommandSpec, arg: Option<String>) -> Step {
        self.rest = 0;
        let (dir, base) = match arg {
            Some(arg) => match self.target(&arg, spec.perm.as_slice()) {
                Ok(path) => {
                    let base = path.file_name().unwrap_or("file").to_string();
                    (path.parent(), base)
                }
                Err(step) => return step,
            },
            None => (self.cwd.clone(), "file".to_string()),
        };
        if let Err(step) = self.permitted(dir.join(&base), spec.perm.as_slice()) {
            return step;
        }
        self.start_transfer(TransferKind::StoreUnique { dir, base })
    }

    /// LIST, NLST and MLSD.
    pub(super) fn list(
        &mut self,
        spec: &CommandSpec,
        mut args: ListArgs,
        format: ListFormat,
    ) -> Step {
        self.rest = 0;
        if !self.config.features.list_args && !matches!(format, ListFormat::Facts(_)) {
            // `ls` options are not read: the whole argument is the path.
            args.all = false;
            args.path = (!args.raw.is_empty()).then(|| args.raw.clone());
        }
        let arg = args.path.as_deref().unwrap_or("");
        let path = match self.target(arg, spec.perm.as_slice()) {
            Ok(path) => path,
            Err(step) => return step,
        };
        // RFC 3659: MLSD takes no wildcards.
        let pattern = match format {
            ListFormat::Facts(_) => None,
            _ => match ListPattern::of_argument(arg, path.file_name()) {
                Ok(pattern) => pattern.map(Box::new),
                Err(e) => return reply(ReplyCode::ArgumentSyntaxError, e.to_string()),
            },
        };
        let permissions = self.user_perms().map(|m| m.at(&path)).unwrap_or_default();
        self.start_transfer(TransferKind::List {
            path,
            format,
            all: args.all,
            permissions,
            pattern,
        })
    }

    /// HASH (draft-bryan-ftpext-hash): the digest of a file, or of the RANG range, with the
    /// algorithm chosen by `OPTS HASH`. Computed like a transfer (one at a time, abortable,
    /// STAT shows progress), without a data connection.
    pub(super) fn hash(&mut self, spec: &CommandSpec, arg: &str) -> Step {
        let (start, end) = match self.hash_range.take() {
            Some((start, end)) => (start, Some(end.saturating_add(1))),
            None => (0, None),
        };
        let algorithm = self.hash_algorithm;
        self.start_digest(spec, arg, algorithm, start, end, false)
    }

    /// XCRC, XMD5, XSHA1, XSHA256, XSHA512: a digest with an optional start and end.
    pub(super) fn legacy_hash(
        &mut self,
        spec: &CommandSpec,
        arg: &str,
        algorithm: HashAlgorithm,
        start: Option<u64>,
        end: Option<u64>,
    ) -> Step {
        self.start_digest(spec, arg, algorithm, start.unwrap_or(0), end, true)
    }

    fn start_digest(
        &mut self,
        spec: &CommandSpec,
        arg: &str,
        algorithm: HashAlgorithm,
        start: u64,
        end: Option<u64>,
        legacy: bool,
    ) -> Step {
        match self.target(arg, spec.perm.as_slice()) {
            Ok(path) => self.start_job(TransferKind::Hash {
                path,
                algorithm,
                start,
                end,
                legacy,
            }),
            Err(step) => step,
        }
    }

    /// RANG (draft-bryan-ftp-range): the byte range (inclusive) the next HASH covers;
    /// `RANG 1 0` resets it.
    pub(super) fn rang(&mut self, start: u64, end: u64) -> Step {
        if (start, end) == (1, 0) {
            self.hash_range = None;
            self.compressed = false;
            return reply(ReplyCode::PendingFurtherInformation, "Range reset");
        }
        self.hash_range = Some((start, end));
        reply(
            ReplyCode::PendingFurtherInformation,
            format!("Restarting at {start}. Ending byte at {end}; send HASH"),
        )
    }

    /// COMB: store permission on the target; retrieve and delete on every part.
    pub(super) fn comb(&mut self, spec: &CommandSpec, target: &str, parts: &[String]) -> Step {
        let target = match self.target(target, spec.perm.as_slice()) {
            Ok(path) => path,
            Err(step) => return step,
        };
        let mut resolved = Vec::with_capacity(parts.len());
        for part in parts {
            match self.target(part, &[Perm::Retrieve, Perm::Delete]) {
                Ok(path) => resolved.push(path),
                Err(step) => return step,
            }
        }
        self.start_job(TransferKind::Combine {
            target,
            parts: resolved,
        })
    }

    // --- A running transfer ---------------------------------------------------------------------

    /// The 150 reply once the transfer's data connection is open.
    pub fn handle_transfer_started(&self, info: &StartInfo) -> Reply {
        let plan = self.transfer.as_ref().map(|running| &running.plan);
        let mode = if plan.is_some_and(|t| t.ascii) {
            "ASCII"
        } else {
            "BINARY"
        };
        let text = match (plan.map(|p| &p.kind), info) {
            (
                Some(TransferKind::StoreUnique { .. }),
                StartInfo {
                    unique_name: Some(name),
                    ..
                },
            ) => {
                format!("FILE: {}", crate::listing::display_name(name))
            }
            (Some(TransferKind::List { .. }), _) => "Here comes the directory listing".to_string(),
            (
                Some(TransferKind::Retrieve { path, .. }),
                StartInfo {
                    size: Some(size), ..
                },
            ) => {
                format!(
                    "Opening {mode} mode data connection for {} ({size} bytes)",
                    crate::listing::display_name(path.as_str())
                )
            }
            (Some(kind), _) => {
                format!("Opening {mode} mode data connection for {}", describe(kind))
            }
            (None, _) => "Opening data connection".to_string(),
        };
        Reply::new(ReplyCode::FileStatusOk, text)
    }

    /// The transfer ended: the replies to send, in order (the transfer's own, then those of
    /// an ABOR or QUIT that came while it ran).
    pub fn handle_transfer_done(&mut self, outcome: TransferOutcome) -> Vec<Reply> {
        let running = self.transfer.take();
        let plan = running.as_ref().map(|running| &running.plan);
        let subject = plan.map(|p| describe(&p.kind)).unwrap_or_default();
        let combined = matches!(
            plan,
            Some(TransferPlan {
                kind: TransferKind::Combine { .. },
                ..
            })
        );
        let mut replies = vec![match outcome {
            TransferOutcome::Complete { bytes } if combined => Reply::new(
                ReplyCode::FileActionOk,
                format!("Combined into {subject} ({bytes} bytes)"),
            ),
            TransferOutcome::Hashed { digest, start, end } => match plan.map(|p| &p.kind) {
                Some(TransferKind::Hash { legacy: true, .. }) => {
                    Reply::new(ReplyCode::FileActionOk, digest)
                }
                Some(TransferKind::Hash { algorithm, .. }) => Reply::new(
                    ReplyCode::FileStatus,
                    format!("{} {start}-{end} {digest} {subject}", algorithm.name()),
                ),
                _ => Reply::new(ReplyCode::LocalError, "Unexpected digest"),
            },
            TransferOutcome::Complete { .. } => {
                Reply::new(ReplyCode::ClosingDataConnection, "Transfer complete")
            }
            TransferOutcome::Aborted => Reply::new(ReplyCode::TransferAborted, "Transfer aborted"),
            TransferOutcome::NoDataConnection => Reply::new(
                ReplyCode::CantOpenDataConnection,
                "Cannot open data connection",
            ),
            TransferOutcome::ConnectionLost => Reply::new(
                ReplyCode::TransferAborted,
                "Data connection lost; transfer aborted",
            ),
            TransferOutcome::Failed(kind) => reply_for(kind, &subject),
            TransferOutcome::OverLimit(limit) => Reply::new(
                ReplyCode::ExceededStorage,
                format!("{subject}: upload refused, {limit}; nothing was stored"),
            ),
            TransferOutcome::TlsFailed => Reply::new(
                ReplyCode::CantOpenDataConnection,
                "TLS handshake on the data connection failed",
            ),
            TransferOutcome::TlsNotResumed => Reply::new(
                ReplyCode::NetworkProtocolNotSupported,
                "TLS session of the data connection must resume the control connection's session",
            ),
        }];
        let Some(Running {
            plan,
            abort_requested,
            quit_requested,
        }) = running
        else {
            return replies;
        };
        self.verb = plan.verb;
        match plan.kind {
            TransferKind::Retrieve { path, .. }
            | TransferKind::Store { path, .. }
            | TransferKind::List { path, .. }
            | TransferKind::Combine { target: path, .. } => self.ended(path, None),
            TransferKind::StoreUnique { dir, base } => self.ended(dir.join(&base), None),
            TransferKind::Hash { .. } => {}
        }
        if abort_requested {
            replies.push(Reply::new(
                ReplyCode::ClosingDataConnection,
                "ABOR successful",
            ));
        }
        if quit_requested {
            self.closing = true;
            replies.push(Reply::new(ReplyCode::ClosingControl, "Goodbye"));
        }
        replies
    }

    /// RFC 959 ABOR: stops the running transfer ([`Step::AbortTransfer`]); its reply, then
    /// 226, come from [`Session::handle_transfer_done`].
    pub(super) fn abor(&mut self) -> Step {
        if let Some(running) = &mut self.transfer {
            running.abort_requested = true;
            return Step::AbortTransfer;
        }
        self.data = DataSetup::None;
        reply(ReplyCode::DataConnectionOpen, "No transfer to abort")
    }
}

/// What a transfer concerns, as its replies name it.
pub(super) fn describe(kind: &TransferKind) -> String {
    let path = match kind {
        TransferKind::Retrieve { path, .. }
        | TransferKind::Store { path, .. }
        | TransferKind::List { path, .. }
        | TransferKind::Hash { path, .. }
        | TransferKind::Combine { target: path, .. } => path.clone(),
        TransferKind::StoreUnique { dir, base } => dir.join(base),
    };
    crate::listing::display_name(path.as_str()).into_owned()
}
