//! A whole control session: `Session` driven by command lines the fuzzer picks, every effect
//! it asks for answered by a small in-memory file tree and by fuzzer-chosen outcomes, the way
//! the engine in the `ftpgate` crate answers them.
//!
//! Checks, after every step:
//! - nothing panics;
//! - every reply (including 150, transfer results, STAT, AUTH, CCC and REIN replies) encodes as
//!   CRLF-terminated lines with no other CR, LF or control character; a one-line reply is
//!   `ddd text`, a multi-line one `ddd-first`, space-indented middle lines, `ddd last`;
//! - the working directory is a normalised absolute path, and changes only by a successful
//!   CWD/CDUP to a directory, a login or REIN (to `/`);
//! - no storage call, transfer, STAT listing or passive listener is asked for before a
//!   successful login (nor after REIN), and none while a transfer runs; while one runs, only
//!   ABOR, STAT, NOOP and QUIT do anything;
//! - every storage call and transfer comes from the matching verb and is on a path where the
//!   user has that verb's permission (resuming a STOR at an offset also needs `a`); RNTO
//!   renames exactly what the RNFR just before it named;
//! - REST offsets are never used in ASCII mode; unprotected transfers are never planned when
//!   TLS is required for data; PORT/EPRT never lead to a foreign host, a port below the
//!   configured minimum, another address family than the control connection, or to anything
//!   when active mode is off; a passive transfer follows a passive listener that was opened;
//! - logins only happen over TLS when TLS is required, AUTH only when TLS is configured, CCC
//!   only where allowed;
//! - transfer results: one reply per outcome, then `226 ABOR successful` after ABOR and
//!   `221` (and closing) after QUIT.

#![no_main]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::{Result, Unstructured};
use ftpgate_proto::backend::{
    Capabilities, DirEntry, Facts, FileKind, Metadata, StorageErrorKind, WriteStart,
};
use ftpgate_proto::command::{COMMANDS, CommandSpec, TransferType, parse_line};
use ftpgate_proto::extensions::Features;
use ftpgate_proto::hostport::same_host;
use ftpgate_proto::line::{Decoded, LineDecoder};
use ftpgate_proto::listing::{ListFormat, format_entry};
use ftpgate_proto::path::VirtualPath;
use ftpgate_proto::perm::{Perm, PermissionMap, Permissions};
use ftpgate_proto::reply::Reply;
use ftpgate_proto::reply_map::reply_for;
use ftpgate_proto::session::{
    DataEndpoint, LoginFailure, Session, SessionConfig, SessionUser, StartInfo, Step, StorageOp, StorageOutcome,
    TlsPolicy, TransferKind, TransferOutcome, TransferPlan, UploadLimit,
};
use libfuzzer_sys::fuzz_target;

/// With `FUZZ_TRACE` set in the environment, the dialogue is printed to stderr (for reading
/// what a crash input does: `FUZZ_TRACE=1 cargo fuzz run session artifacts/session/crash-...`).
fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

macro_rules! trace {
    ($($arg:tt)*) => {
        if tracing() {
            eprintln!($($arg)*);
        }
    };
}

// --- Reply and path checks ----------------------------------------------------------------------

fn check_reply(reply: &Reply) {
    let code = reply.code.number();
    assert!((100..600).contains(&code), "code {code}");
    let wire = reply.encode();
    let text = std::str::from_utf8(&wire).expect("replies are UTF-8");
    assert!(text.ends_with("\r\n"), "{text:?}");
    let lines: Vec<&str> = text[..text.len() - 2].split("\r\n").collect();
    assert_eq!(lines.len(), reply.lines.len().max(1), "{text:?}");
    let digits = format!("{code}");
    for (i, line) in lines.iter().enumerate() {
        assert!(
            !line.chars().any(char::is_control),
            "control character in reply line {line:?}"
        );
        let last = i + 1 == lines.len();
        if last {
            assert!(
                line.starts_with(&format!("{digits} ")),
                "last line {line:?} of {text:?}"
            );
        } else if i == 0 {
            assert!(
                line.starts_with(&format!("{digits}-")),
                "first line {line:?}"
            );
        } else {
            // Middle lines are indented so none can be read as the end of the reply.
            assert!(line.starts_with(' '), "middle line {line:?}");
        }
    }
}

fn check_normal(p: &VirtualPath) {
    let s = p.as_str();
    assert!(s.starts_with('/'), "{s:?}");
    assert!(p.is_root() || !s.ends_with('/'), "{s:?}");
    assert!(
        p.components()
            .all(|c| !c.is_empty() && c != "." && c != ".."),
        "{s:?}"
    );
    assert!(!s.chars().any(char::is_control), "{s:?}");
    assert_eq!(VirtualPath::root().resolve(s).as_ref(), Ok(p));
}

// --- The in-memory file tree --------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    File {
        size: u64,
        modified: Option<SystemTime>,
    },
}

struct Fs {
    nodes: HashMap<String, Node>,
}

fn key(p: &VirtualPath) -> String {
    p.as_str().to_string()
}

fn under(candidate: &str, dir: &str) -> bool {
    dir == "/" || candidate == dir || candidate.starts_with(&format!("{dir}/"))
}

impl Fs {
    fn new() -> Fs {
        let t = Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let mut nodes = HashMap::new();
        for (path, node) in [
            ("/", Node::Dir),
            ("/a", Node::Dir),
            (
                "/a/f",
                Node::File {
                    size: 3,
                    modified: t,
                },
            ),
            ("/pub", Node::Dir),
            (
                "/pub/readme",
                Node::File {
                    size: 1000,
                    modified: t,
                },
            ),
            ("/pub/incoming", Node::Dir),
            (
                "/x y",
                Node::File {
                    size: 0,
                    modified: None,
                },
            ),
            (
                "/.hidden",
                Node::File {
                    size: 7,
                    modified: t,
                },
            ),
        ] {
            nodes.insert(path.to_string(), node);
        }
        Fs { nodes }
    }

    fn get(&self, p: &VirtualPath) -> Option<Node> {
        self.nodes.get(p.as_str()).copied()
    }

    fn metadata(node: Node) -> Metadata {
        match node {
            Node::Dir => Metadata {
                kind: FileKind::Dir,
                size: 0,
                modified: None,
                mode: Some(0o755),
                unique: None,
            },
            Node::File { size, modified } => Metadata {
                kind: FileKind::File,
                size,
                modified,
                mode: Some(0o644),
                unique: Some("1:2".to_string()),
            },
        }
    }

    fn parent_dir(&self, p: &VirtualPath) -> Result<(), StorageErrorKind> {
        match self.get(&p.parent()) {
            Some(Node::Dir) => Ok(()),
            Some(Node::File { .. }) => Err(StorageErrorKind::NotADirectory),
            None => Err(StorageErrorKind::NotFound),
        }
    }

    fn children<'a>(
        &'a self,
        dir: &'a VirtualPath,
    ) -> impl Iterator<Item = (&'a String, &'a Node)> {
        self.nodes.iter().filter(move |(k, _)| {
            k.as_str() != "/"
                && VirtualPath::root()
                    .resolve(k)
                    .is_ok_and(|p| p.parent() == *dir && p != *dir)
        })
    }

    fn apply(&mut self, op: &StorageOp) -> Result<StorageOutcome, StorageErrorKind> {
        match op {
            StorageOp::Metadata(p) => self
                .get(p)
                .map(|n| StorageOutcome::Metadata(Fs::metadata(n)))
                .ok_or(StorageErrorKind::NotFound),
            StorageOp::MakeDir(p) => {
                if self.get(p).is_some() {
                    return Err(StorageErrorKind::AlreadyExists);
                }
                self.parent_dir(p)?;
                self.nodes.insert(key(p), Node::Dir);
                Ok(StorageOutcome::Done)
            }
            StorageOp::RemoveDir(p) => match self.get(p) {
                None => Err(StorageErrorKind::NotFound),
                Some(Node::File { .. }) => Err(StorageErrorKind::NotADirectory),
                Some(Node::Dir) if p.is_root() => Err(StorageErrorKind::PermissionDenied),
                Some(Node::Dir) => {
                    if self.children(p).next().is_some() {
                        return Err(StorageErrorKind::DirectoryNotEmpty);
                    }
                    self.nodes.remove(p.as_str());
                    Ok(StorageOutcome::Done)
                }
            },
            StorageOp::Delete(p) => match self.get(p) {
                None => Err(StorageErrorKind::NotFound),
                Some(Node::Dir) => Err(StorageErrorKind::IsADirectory),
                Some(Node::File { .. }) => {
                    self.nodes.remove(p.as_str());
                    Ok(StorageOutcome::Done)
                }
            },
            StorageOp::Rename { from, to } => {
                let node = self.get(from).ok_or(StorageErrorKind::NotFound)?;
                if from.is_root() || to.is_root() {
                    return Err(StorageErrorKind::PermissionDenied);
                }
                if from == to {
                    return Ok(StorageOutcome::Done);
                }
                if to.starts_with(from) {
                    return Err(StorageErrorKind::InvalidName);
                }
                self.parent_dir(to)?;
                match (node, self.get(to)) {
                    (_, Some(Node::Dir)) => return Err(StorageErrorKind::AlreadyExists),
                    (Node::Dir, Some(Node::File { .. })) => {
                        return Err(StorageErrorKind::NotADirectory);
                    }
                    _ => {}
                }
                let moved: Vec<(String, Node)> = self
                    .nodes
                    .iter()
                    .filter(|(k, _)| under(k, from.as_str()))
                    .map(|(k, n)| (k.clone(), *n))
                    .collect();
                for (k, _) in &moved {
                    self.nodes.remove(k);
                }
                for (k, n) in moved {
                    let rest = &k[from.as_str().len()..];
                    self.nodes.insert(format!("{}{rest}", to.as_str()), n);
                }
                Ok(StorageOutcome::Done)
            }
            StorageOp::Available(p) => match self.get(p) {
                Some(Node::Dir) => Ok(StorageOutcome::Available(1 << 30)),
                Some(_) => Err(StorageErrorKind::NotADirectory),
                None => Err(StorageErrorKind::NotFound),
            },
            StorageOp::SetMode { path, .. } => self
                .get(path)
                .map(|_| StorageOutcome::Done)
                .ok_or(StorageErrorKind::NotFound),
            StorageOp::Symlink { link, .. } => {
                if self.get(link).is_some() {
                    return Err(StorageErrorKind::AlreadyExists);
                }
                self.parent_dir(link)?;
                self.nodes.insert(
                    key(link),
                    Node::File {
                        size: 0,
                        modified: None,
                    },
                );
                Ok(StorageOutcome::Done)
            }
            StorageOp::SetModified { path, time } => match self.get(path) {
                None => Err(StorageErrorKind::NotFound),
                Some(Node::Dir) => Err(StorageErrorKind::IsADirectory),
                Some(Node::File { size, .. }) => {
                    self.nodes.insert(
                        key(path),
                        Node::File {
                            size,
                            modified: Some(*time),
                        },
                    );
                    Ok(StorageOutcome::Done)
                }
            },
        }
    }

    /// Every node's parent is a directory in the tree.
    fn check(&self) {
        assert_eq!(self.nodes.get("/"), Some(&Node::Dir));
        for k in self.nodes.keys() {
            let p = VirtualPath::root()
                .resolve(k)
                .expect("model keys are paths");
            assert_eq!(p.as_str(), k);
            if !p.is_root() {
                assert_eq!(self.get(&p.parent()), Some(Node::Dir), "orphan {k}");
            }
        }
    }
}

// --- Input generation ----------------------------------------------------------------------------

const PARTS: &[&str] = &[
    "a", "f", "pub", "incoming", "readme", "new", "x y", ".hidden", "..", ".", "", "\\", "%2e%2e",
    "Grüße", "\"q\"", "...", "-la",
];
const ERRORS: &[StorageErrorKind] = &[
    StorageErrorKind::NotFound,
    StorageErrorKind::PermissionDenied,
    StorageErrorKind::AlreadyExists,
    StorageErrorKind::NotADirectory,
    StorageErrorKind::IsADirectory,
    StorageErrorKind::DirectoryNotEmpty,
    StorageErrorKind::InvalidName,
    StorageErrorKind::InsufficientStorage,
    StorageErrorKind::ExceededStorage,
    StorageErrorKind::InvalidOffset,
    StorageErrorKind::Busy,
    StorageErrorKind::Transient,
    StorageErrorKind::Unsupported,
    StorageErrorKind::Local,
];
const LETTERS: &str = "elradfmwMT";

fn pick<'a, T>(u: &mut Unstructured<'_>, items: &'a [T]) -> Result<&'a T> {
    u.choose(items)
}

fn gen_path(u: &mut Unstructured<'_>) -> Result<String> {
    let mut s = String::new();
    if u.arbitrary()? {
        s.push('/');
    }
    let n = u.int_in_range(0..=3)?;
    for i in 0..n {
        if i > 0 {
            s.push('/');
        }
        s.push_str(pick(u, PARTS)?);
    }
    if u.ratio(1, 8)? {
        s.push('/');
    }
    Ok(s)
}

fn gen_port(u: &mut Unstructured<'_>) -> Result<u16> {
    Ok(match u.int_in_range(0..=4)? {
        0 => 21,
        1 => 1023,
        2 => 1024,
        3 => 50000,
        _ => u.arbitrary()?,
    })
}

fn gen_arg(u: &mut Unstructured<'_>) -> Result<Option<String>> {
    Ok(Some(match u.int_in_range(0..=12)? {
        0 => return Ok(None),
        1..=3 => gen_path(u)?,
        4 => u.arbitrary::<String>()?,
        5 => {
            let p = gen_port(u)?;
            let host = pick(u, &["127,0,0,1", "10,0,0,1", "127,0,0,2"])?;
            format!("{host},{},{}", p >> 8, p & 0xff)
        }
        6 => {
            let p = gen_port(u)?;
            let host = pick(
                u,
                &[
                    "|1|127.0.0.1|",
                    "|2|::1|",
                    "|2|::ffff:127.0.0.1|",
                    "|1|192.0.2.1|",
                    "|2|2001:db8::1|",
                    "|3|x|",
                ],
            )?;
            format!("{host}{p}|")
        }
        7 => pick(u, &["A", "I", "L 8", "A N", "E", "X", "a n", "L 7"])?.to_string(),
        8 => match u.int_in_range(0..=2)? {
            0 => u.int_in_range(0..=5000u64)?.to_string(),
            1 => u.arbitrary::<u64>()?.to_string(),
            _ => "0".to_string(),
        },
        9 => {
            let t = pick(
                u,
                &[
                    "20200101000000",
                    "00000101000000",
                    "99991231235959",
                    "19691231235959",
                    "20240229120000.5",
                    "20241301000000",
                ],
            )?;
            format!("{t} {}", gen_path(u)?)
        }
        10 => pick(
            u,
            &[
                "MLST type;size;",
                "MLST ",
                "UTF8 ON",
                "UTF8 OFF",
                "MLST modify;perm;unique;unix.mode;",
                "utf8",
                "FOO bar",
            ],
        )?
        .to_string(),
        11 => format!(
            "{} {}",
            pick(u, &["-la", "-a", "-R", "-l", "-x"])?,
            gen_path(u)?
        ),
        _ => pick(
            u,
            &[
                "1", "2", "3", "ALL", "P", "C", "S", "E", "0", "TLS", "SSL", "HELP", "F", "B", "x",
            ],
        )?
        .to_string(),
    }))
}

fn gen_line(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    if u.ratio(1, 16)? {
        return u.arbitrary::<Vec<u8>>();
    }
    let spec = pick(u, COMMANDS)?;
    let mut verb = spec.verb.to_string();
    if u.ratio(1, 8)? {
        verb = verb.to_ascii_lowercase();
    }
    let mut line = verb;
    if let Some(arg) = gen_arg(u)? {
        line.push(' ');
        line.push_str(&arg);
    }
    Ok(line.into_bytes())
}

/// A few lines that belong together, so deep states (resumed uploads, renames, protected
/// transfers) are reached often rather than by luck.
fn gen_sequence(u: &mut Unstructured<'_>) -> Result<Vec<String>> {
    let data_setup = |u: &mut Unstructured<'_>| -> Result<String> {
        Ok(match u.int_in_range(0..=3)? {
            0 => "PASV".to_string(),
            1 => "EPSV".to_string(),
            2 => {
                let p = gen_port(u)?;
                format!("PORT 127,0,0,1,{},{}", p >> 8, p & 0xff)
            }
            _ => format!(
                "EPRT {}{}|",
                pick(u, &["|1|127.0.0.1|", "|2|::1|", "|2|::ffff:127.0.0.1|"])?,
                gen_port(u)?
            ),
        })
    };
    Ok(match u.int_in_range(0..=4)? {
        0 => vec![
            format!("USER {}", pick(u, &["alice", "anonymous", "bob"])?),
            "PASS secret".to_string(),
        ],
        1 => vec![
            format!("RNFR {}", gen_path(u)?),
            format!("RNTO {}", gen_path(u)?),
        ],
        2 => vec![
            "TYPE I".to_string(),
            format!("REST {}", u.int_in_range(0..=2000u64)?),
            data_setup(u)?,
            format!("{} {}", pick(u, &["STOR", "APPE", "RETR"])?, gen_path(u)?),
        ],
        3 => {
            let verb = pick(u, &["RETR", "STOR", "APPE", "STOU", "LIST", "NLST", "MLSD"])?;
            vec![data_setup(u)?, format!("{verb} {}", gen_path(u)?)]
        }
        _ => vec![
            "AUTH TLS".to_string(),
            "PBSZ 0".to_string(),
            format!("PROT {}", pick(u, &["P", "C"])?),
        ],
    })
}

fn gen_permissions(u: &mut Unstructured<'_>) -> Result<Permissions> {
    if u.ratio(2, 3)? {
        return Ok(Permissions::ALL);
    }
    let bits: u16 = u.arbitrary()?;
    let letters: String = LETTERS
        .chars()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, c)| c)
        .collect();
    Ok(Permissions::parse(&letters).expect("known letters"))
}

fn gen_user(u: &mut Unstructured<'_>, name: &str) -> Result<SessionUser> {
    let mut permissions = PermissionMap::uniform(gen_permissions(u)?);
    for _ in 0..u.int_in_range(0..=2)? {
        let dir = VirtualPath::root()
            .resolve(pick(u, &["/pub", "/a", "/pub/incoming", "/", "/new"])?)
            .expect("plain path");
        permissions = permissions.with_override(dir, gen_permissions(u)?);
    }
    let name = if u.ratio(1, 8)? {
        // The authenticator may canonicalise the name; it is shown sanitised.
        u.arbitrary::<String>()?
    } else {
        name.to_string()
    };
    Ok(SessionUser {
        name,
        permissions,
        tls_required: u.ratio(1, 6)?,
        capabilities: Capabilities {
            available_space: u.ratio(3, 4)?,
            set_mode: u.ratio(3, 4)?,
            symlink: u.ratio(3, 4)?,
            set_modified: u.ratio(3, 4)?,
            ignore_set_mode: u.ratio(1, 4)?,
            facts: if u.ratio(1, 2)? {
                Facts::ALL
            } else {
                Facts {
                    unique: u.arbitrary()?,
                    modify: u.arbitrary()?,
                    ..Facts::BASIC
                }
            },
        },
    })
}

// --- The harness ---------------------------------------------------------------------------------

struct Running {
    plan: TransferPlan,
    started: bool,
    abort_requested: bool,
    quit_requested: bool,
}

struct Harness<'a, 'b> {
    u: &'a mut Unstructured<'b>,
    session: Session,
    config: SessionConfig,
    peer: SocketAddr,
    fs: Fs,
    /// The user of a successful login, until REIN.
    user: Option<SessionUser>,
    secure: bool,
    cwd: VirtualPath,
    running: Option<Running>,
    passive_ready: bool,
    /// The path of an RNFR that was just accepted, for the next command only.
    rnfr: Option<VirtualPath>,
    rnfr_previous: Option<VirtualPath>,
    closed: bool,
}

impl Harness<'_, '_> {
    fn perms(&self) -> &PermissionMap {
        &self
            .user
            .as_ref()
            .expect("effects only after a login")
            .permissions
    }

    fn assert_may_act(&self, what: &str) {
        assert!(self.user.is_some(), "{what} before a successful login");
        assert!(self.session.is_logged_in(), "{what} while not logged in");
        assert!(self.running.is_none(), "{what} while a transfer runs");
    }

    fn check_state(&self) {
        assert_eq!(self.session.is_logged_in(), self.user.is_some());
        assert_eq!(self.session.is_secure(), self.secure);
        assert_eq!(self.session.in_transfer(), self.running.is_some());
        check_normal(self.session.cwd());
        assert_eq!(
            self.session.cwd(),
            &self.cwd,
            "working directory changed unexpectedly"
        );
        if let Some(user) = &self.user {
            assert_eq!(self.session.user_name(), Some(user.name.as_str()));
        }
    }

    /// One control line, as the engine receives it.
    fn line(&mut self, bytes: &[u8]) -> Result<()> {
        let spec = std::str::from_utf8(bytes)
            .ok()
            .and_then(|l| parse_line(l).ok())
            .map(|(spec, _)| spec);
        // A parsed command consumes a pending RNFR (RFC 959: RNTO must follow it at once).
        // Any other line, even one that does not parse, cancels it.
        let previous = self.rnfr.take();
        self.rnfr_previous = if spec.is_some() { previous } else { None };
        trace!("-> {:?}", String::from_utf8_lossy(bytes));
        let step = self.session.handle_line(bytes);
        self.drive(step, spec)
    }

    fn drive(&mut self, step: Step, spec: Option<&'static CommandSpec>) -> Result<()> {
        let result = self.drive_steps(step, spec);
        self.check_state();
        result
    }

    /// Answers `step` and every step that follows from it, until a reply is sent.
    fn drive_steps(&mut self, mut step: Step, spec: Option<&'static CommandSpec>) -> Result<()> {
        let verb = spec.map_or("", |s| s.verb);
        if self.running.is_some() {
            // Only ABOR, STAT, NOOP and QUIT are acted on; everything else is refused.
            match &step {
                Step::Reply(_) | Step::AbortTransfer | Step::TransferStatus | Step::Nothing => {}
                other => panic!("{verb} during a transfer gave {other:?}"),
            }
            if let Step::Reply(r) = &step
                && spec.is_some_and(|s| !s.during_transfer)
            {
                assert_eq!(r.code.number(), 503, "{verb} during a transfer");
            }
        }
        loop {
            trace!("  <- {step:?}");
            step = match step {
                Step::Reply(reply) => {
                    check_reply(&reply);
                    let code = reply.code.number();
                    if matches!(verb, "PORT" | "EPRT") && code == 200 {
                        self.passive_ready = false;
                    }
                    if code == 221 {
                        assert!(self.session.wants_close());
                    }
                    if self.session.wants_close() {
                        self.closed = true;
                    }
                    return Ok(());
                }
                Step::Nothing => {
                    let running = self
                        .running
                        .as_mut()
                        .expect("Nothing only during a transfer");
                    assert_eq!(verb, "QUIT");
                    running.quit_requested = true;
                    return Ok(());
                }
                Step::Authenticate { user, password } => {
                    assert!(self.user.is_none(), "PASS while logged in");
                    assert!(matches!(verb, "PASS"));
                    assert!(!user.is_empty() && !user.chars().any(char::is_control));
                    assert!(
                        self.secure || !self.config.tls.required_for_login,
                        "login without TLS although TLS is required"
                    );
                    let _ = password.expose();
                    if self.u.ratio(3, 4)? {
                        let account = gen_user(self.u, &user)?;
                        trace!("  (authenticated as {account:?})");
                        let next = self.session.handle_auth_result(Ok(account.clone()));
                        match &next {
                            Step::Reply(r) if r.code.number() == 230 => {
                                assert!(self.secure || !account.tls_required);
                                self.user = Some(account);
                                self.cwd = VirtualPath::root();
                            }
                            Step::Reply(r) => {
                                assert_eq!(r.code.number(), 530);
                                assert!(account.tls_required && !self.secure);
                            }
                            other => panic!("login answered with {other:?}"),
                        }
                        next
                    } else {
                        trace!("  (authentication fails)");
                        let next = self.session.handle_auth_result(Err(LoginFailure::Rejected));
                        match &next {
                            Step::Reply(r) => {
                                assert!(matches!(r.code.number(), 530 | 421));
                                assert_eq!(r.code.number() == 421, self.session.wants_close());
                            }
                            other => panic!("failed login answered with {other:?}"),
                        }
                        next
                    }
                }
                Step::Storage(op) => {
                    self.assert_may_act("storage call");
                    self.check_storage(spec, &op);
                    let result = if self.u.ratio(1, 10)? {
                        Err(*pick(self.u, ERRORS)?)
                    } else {
                        self.fs.apply(&op)
                    };
                    self.fs.check();
                    trace!("  (storage answers {result:?})");
                    let next = self.session.handle_storage_result(result.clone());
                    if let Step::Reply(r) = &next {
                        assert_ne!(
                            r.lines.first().map(String::as_str),
                            Some("Unexpected storage result")
                        );
                        match (&op, &result) {
                            (_, Err(kind)) => {
                                assert_eq!(r.code, reply_for(*kind, "/x").code, "{op:?}");
                            }
                            (StorageOp::Metadata(p), Ok(StorageOutcome::Metadata(meta))) => {
                                if matches!(verb, "CWD" | "XCWD" | "CDUP" | "XCUP") && meta.is_dir()
                                {
                                    assert_eq!(r.code.number(), 250);
                                    self.cwd = p.clone();
                                }
                                if verb == "RNFR" {
                                    assert_eq!(r.code.number(), 350);
                                    self.rnfr = Some(p.clone());
                                }
                            }
                            (StorageOp::Available(_), Ok(_)) if verb == "ALLO" => {
                                assert!(matches!(r.code.number(), 200 | 552), "{r:?}");
                            }
                            _ => assert!(r.code.number() < 300, "{op:?} done gave {r:?}"),
                        }
                    } else if !(verb == "MFF"
                        && matches!(next, Step::Storage(StorageOp::SetMode { .. })))
                    {
                        panic!("storage result answered with {next:?}");
                    }
                    next
                }
                Step::OpenPassive { extended } => {
                    self.assert_may_act("passive listener");
                    assert!(matches!(verb, "PASV" | "EPSV"));
                    assert_eq!(extended, verb == "EPSV");
                    self.passive_ready = false;
                    let result = if self.u.ratio(1, 8)? {
                        Err(())
                    } else {
                        let ip = if self.u.ratio(1, 6)? {
                            None
                        } else {
                            Some(Ipv4Addr::new(127, 0, 0, 1))
                        };
                        Ok((ip, self.u.arbitrary::<u16>()?))
                    };
                    let next = self.session.handle_passive_opened(extended, result);
                    let Step::Reply(r) = &next else {
                        panic!("passive listener answered with {next:?}");
                    };
                    let ok = matches!(r.code.number(), 227 | 229);
                    assert_eq!(ok, result.is_ok_and(|(ip, _)| extended || ip.is_some()));
                    assert_eq!(self.session.expects_passive(), ok);
                    self.passive_ready = ok;
                    next
                }
                Step::Transfer(plan) => {
                    self.assert_may_act("transfer");
                    self.check_transfer(spec, &plan);
                    if plan.data == DataEndpoint::None {
                        // HASH and COMB: no data connection, the prepared one stays.
                        self.running = Some(Running {
                            plan,
                            started: false,
                            abort_requested: false,
                            quit_requested: false,
                        });
                        self.check_state();
                        return Ok(());
                    }
                    if plan.data == DataEndpoint::Passive {
                        assert!(
                            self.passive_ready,
                            "passive transfer without a passive listener"
                        );
                    }
                    self.passive_ready = false;
                    assert!(!self.session.expects_passive());
                    self.running = Some(Running {
                        plan,
                        started: false,
                        abort_requested: false,
                        quit_requested: false,
                    });
                    self.check_state();
                    return Ok(());
                }
                Step::SelectHost(name) => {
                    assert_eq!(verb, "HOST");
                    assert!(self.config.virtual_hosts && self.user.is_none());
                    assert!(!name.is_empty() && !name.chars().any(char::is_control));
                    let known = self.u.ratio(1, 2)?;
                    let next = self
                        .session
                        .handle_host_selected(known.then(|| "host ready".to_string()));
                    let Step::Reply(r) = &next else {
                        panic!("HOST answered with {next:?}");
                    };
                    assert_eq!(r.code.number(), if known { 220 } else { 504 });
                    next
                }
                Step::StatListing { path } => {
                    self.assert_may_act("STAT listing");
                    assert_eq!(verb, "STAT");
                    check_normal(&path);
                    assert!(self.perms().allows(Perm::List, &path));
                    return Ok(());
                }
                Step::UpgradeTls(reply) => {
                    check_reply(&reply);
                    assert_eq!(verb, "AUTH");
                    assert!(self.config.tls.available && !self.secure);
                    assert!(self.running.is_none());
                    if self.u.ratio(7, 8)? {
                        self.session.handle_tls_established(false);
                        self.secure = true;
                    } else {
                        // A failed handshake closes the connection.
                        self.closed = true;
                    }
                    return Ok(());
                }
                Step::ClearControl(reply) => {
                    check_reply(&reply);
                    assert_eq!(verb, "CCC");
                    assert!(self.secure && self.config.tls.allow_ccc);
                    assert!(!self.config.tls.required_for_login);
                    assert!(!self.user.as_ref().is_some_and(|u| u.tls_required));
                    self.session.handle_control_cleared();
                    self.secure = false;
                    return Ok(());
                }
                Step::AbortTransfer => {
                    assert_eq!(verb, "ABOR");
                    self.running
                        .as_mut()
                        .expect("ABOR effect only during a transfer")
                        .abort_requested = true;
                    return Ok(());
                }
                Step::TransferStatus => {
                    assert_eq!(verb, "STAT");
                    assert!(self.running.is_some());
                    let reply = self.session.status_reply(Some(self.u.arbitrary()?));
                    check_reply(&reply);
                    assert_eq!(reply.code.number(), 211);
                    return Ok(());
                }
                Step::Logout(reply) => {
                    check_reply(&reply);
                    assert_eq!(verb, "REIN");
                    assert!(self.running.is_none());
                    self.user = None;
                    self.cwd = VirtualPath::root();
                    self.passive_ready = false;
                    self.check_state();
                    return Ok(());
                }
            };
            // The session's state now reflects the answer just given.
            self.check_state();
        }
    }

    fn check_storage(&self, spec: Option<&'static CommandSpec>, op: &StorageOp) {
        let spec = spec.expect("storage call from a parsed command");
        // SITE has subcommands with permissions of their own; ALLO checks no path.
        let perm = match (spec.verb, op) {
            (_, StorageOp::SetMode { .. }) => Some(Perm::Chmod),
            (_, StorageOp::Symlink { .. }) => Some(Perm::Store),
            ("ALLO", StorageOp::Available(_)) => None,
            ("SITE", StorageOp::MakeDir(_)) => Some(Perm::Mkdir),
            ("SITE", StorageOp::RemoveDir(_)) => Some(Perm::Delete),
            ("SITE", StorageOp::SetModified { .. }) => Some(Perm::SetTime),
            _ => Some(
                spec.perm
                    .expect("storage call from a command with a permission"),
            ),
        };
        let paths: Vec<&VirtualPath> = match op {
            StorageOp::Metadata(p)
            | StorageOp::MakeDir(p)
            | StorageOp::RemoveDir(p)
            | StorageOp::Delete(p)
            | StorageOp::Available(p)
            | StorageOp::SetMode { path: p, .. }
            | StorageOp::SetModified { path: p, .. } => vec![p],
            StorageOp::Symlink { target, link } => {
                check_normal(target);
                vec![link]
            }
            StorageOp::Rename { from, to } => vec![from, to],
        };
        for p in paths {
            check_normal(p);
            if let Some(perm) = perm {
                assert!(
                    self.perms().allows(perm, p),
                    "{} on {p:?} without permission {perm:?}",
                    spec.verb
                );
            }
        }
        let verb = spec.verb;
        match op {
            StorageOp::Metadata(_) => assert!(matches!(
                verb,
                "CWD" | "XCWD" | "CDUP" | "XCUP" | "SIZE" | "MDTM" | "MLST" | "RNFR"
            )),
            StorageOp::MakeDir(_) => assert!(matches!(verb, "MKD" | "XMKD" | "SITE")),
            StorageOp::RemoveDir(p) => {
                assert!(matches!(verb, "RMD" | "XRMD" | "SITE"));
                assert!(!p.is_root());
            }
            StorageOp::Available(_) => assert!(matches!(verb, "AVBL" | "ALLO")),
            StorageOp::SetMode { mode, .. } => {
                assert!(matches!(verb, "SITE" | "MFF"));
                assert!(*mode <= 0o7777);
            }
            StorageOp::Symlink { .. } => assert_eq!(verb, "SITE"),
            StorageOp::Delete(_) => assert_eq!(verb, "DELE"),
            StorageOp::Rename { from, to } => {
                assert_eq!(verb, "RNTO");
                assert!(!from.is_root() && !to.is_root());
                assert_eq!(
                    Some(from),
                    self.rnfr_previous.as_ref(),
                    "RNTO renames something the RNFR before it did not name"
                );
            }
            StorageOp::SetModified { .. } => assert!(matches!(verb, "MFMT" | "MFF" | "SITE")),
        }
    }

    fn check_transfer(&self, spec: Option<&'static CommandSpec>, plan: &TransferPlan) {
        let spec = spec.expect("transfer from a parsed command");
        assert!(spec.transfer, "{} is not a transfer command", spec.verb);
        let perms = self.perms();
        let verb = spec.verb;
        match &plan.kind {
            TransferKind::Hash {
                path,
                start,
                end,
                legacy,
                ..
            } => {
                assert_eq!(plan.data, DataEndpoint::None);
                assert_eq!(*legacy, verb != "HASH", "{verb}");
                assert!(matches!(
                    verb,
                    "HASH" | "XCRC" | "XMD5" | "XSHA1" | "XSHA256" | "XSHA512"
                ));
                check_normal(path);
                assert!(perms.allows(Perm::Retrieve, path));
                assert!(end.is_none_or(|e| e >= *start), "range {start}..{end:?}");
                return;
            }
            TransferKind::Combine { target, parts } => {
                assert_eq!(plan.data, DataEndpoint::None);
                assert_eq!(verb, "COMB");
                check_normal(target);
                assert!(perms.allows(Perm::Store, target));
                assert!(!parts.is_empty());
                for part in parts {
                    check_normal(part);
                    assert!(perms.allows(Perm::Retrieve, part) && perms.allows(Perm::Delete, part));
                }
                return;
            }
            _ => {}
        }
        let perm = spec.perm.expect("transfer commands have a permission");
        match &plan.kind {
            TransferKind::Retrieve { path, offset } => {
                assert_eq!(verb, "RETR");
                check_normal(path);
                assert!(perms.allows(Perm::Retrieve, path));
                assert!(*offset == 0 || !plan.ascii, "REST offset in ASCII mode");
            }
            TransferKind::Store { path, start } => {
                check_normal(path);
                assert!(!path.is_root());
                assert!(perms.allows(perm, path));
                match start {
                    WriteStart::Truncate => assert_eq!(verb, "STOR"),
                    WriteStart::Append => assert_eq!(verb, "APPE"),
                    WriteStart::At(n) => {
                        assert!(matches!(verb, "STOR" | "APPE"));
                        assert!(*n > 0);
                        assert!(!plan.ascii, "REST offset in ASCII mode");
                        assert!(perms.allows(Perm::Append, path), "resume without 'a'");
                    }
                }
            }
            TransferKind::StoreUnique { dir, base } => {
                assert_eq!(verb, "STOU");
                check_normal(dir);
                assert!(!base.is_empty() && !base.contains('/') && base != "." && base != "..");
                assert!(!base.chars().any(char::is_control));
                assert!(perms.allows(Perm::Store, &dir.join(base)));
            }
            TransferKind::List {
                path,
                format,
                permissions,
                ..
            } => {
                check_normal(path);
                assert!(perms.allows(Perm::List, path));
                assert_eq!(*permissions, perms.at(path));
                match format {
                    ListFormat::Long => assert_eq!(verb, "LIST"),
                    ListFormat::Names => assert_eq!(verb, "NLST"),
                    ListFormat::Facts(_) => assert_eq!(verb, "MLSD"),
                }
            }
            TransferKind::Hash { .. } | TransferKind::Combine { .. } => {
                unreachable!("checked above")
            }
        }
        let tls_for_data =
            self.config.tls.required_for_data || self.user.as_ref().is_some_and(|u| u.tls_required);
        assert!(
            plan.protected || !tls_for_data,
            "unprotected transfer where TLS is required"
        );
        if let DataEndpoint::Active(addr) = plan.data {
            assert!(
                self.config.active_mode,
                "active transfer with active mode off"
            );
            assert!(same_host(addr.ip(), self.peer.ip()), "bounce to {addr}");
            assert!(
                addr.port() >= self.config.min_active_port,
                "privileged port {addr}"
            );
            assert_eq!(
                addr.is_ipv4(),
                self.peer.is_ipv4(),
                "data connection to {addr} in another family than the control connection from {}",
                self.peer
            );
        }
    }

    /// The data connection opened: the 150 reply.
    fn start_transfer(&mut self) -> Result<()> {
        let running = self.running.as_mut().expect("running");
        assert!(!running.started);
        running.started = true;
        let info = match &running.plan.kind {
            TransferKind::Retrieve { path, offset } => StartInfo {
                size: match self.fs.get(path) {
                    Some(Node::File { size, .. }) => Some(size.saturating_sub(*offset)),
                    _ => None,
                },
                unique_name: None,
            },
            TransferKind::StoreUnique { base, .. } => StartInfo {
                size: None,
                unique_name: Some(format!("{base}.1")),
            },
            _ => StartInfo::default(),
        };
        let reply = self.session.handle_transfer_started(&info);
        trace!("  (data connection open) <- {reply:?}");
        check_reply(&reply);
        assert!(reply.code.is_preliminary());
        Ok(())
    }

    /// Lists a directory of the model the way the engine streams it, checking the lines.
    fn list(&self, path: &VirtualPath, format: ListFormat, permissions: Permissions) {
        let mut out = Vec::new();
        let entries: Vec<DirEntry> = match self.fs.get(path) {
            Some(Node::Dir) => self
                .fs
                .children(path)
                .map(|(k, n)| DirEntry {
                    name: k.rsplit('/').next().unwrap_or_default().to_string(),
                    metadata: Fs::metadata(*n),
                })
                .collect(),
            Some(n) => vec![DirEntry {
                name: path.file_name().unwrap_or_default().to_string(),
                metadata: Fs::metadata(n),
            }],
            None => Vec::new(),
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for entry in &entries {
            format_entry(format, entry, permissions, now, 0, &mut out);
        }
        let text = std::str::from_utf8(&out).expect("listings are UTF-8");
        assert_eq!(text.matches("\r\n").count(), entries.len());
        assert!(text.is_empty() || text.ends_with("\r\n"));
        for line in text.split_terminator("\r\n") {
            assert!(!line.chars().any(char::is_control), "{line:?}");
        }
    }

    /// What the storage says when the transfer opens its file.
    fn open_result(&self, kind: &TransferKind) -> Result<(), StorageErrorKind> {
        match kind {
            TransferKind::Retrieve { path, offset } => match self.fs.get(path) {
                None => Err(StorageErrorKind::NotFound),
                Some(Node::Dir) => Err(StorageErrorKind::IsADirectory),
                Some(Node::File { size, .. }) if *offset > size => {
                    Err(StorageErrorKind::InvalidOffset)
                }
                Some(Node::File { .. }) => Ok(()),
            },
            TransferKind::Store { path, start } => {
                self.fs.parent_dir(path)?;
                match (self.fs.get(path), start) {
                    (Some(Node::Dir), _) => Err(StorageErrorKind::IsADirectory),
                    (Some(Node::File { size, .. }), WriteStart::At(n)) if *n > size => {
                        Err(StorageErrorKind::InvalidOffset)
                    }
                    (None, WriteStart::At(_)) => Err(StorageErrorKind::NotFound),
                    _ => Ok(()),
                }
            }
            TransferKind::StoreUnique { dir, .. } => match self.fs.get(dir) {
                Some(Node::Dir) => Ok(()),
                Some(_) => Err(StorageErrorKind::NotADirectory),
                None => Err(StorageErrorKind::NotFound),
            },
            TransferKind::List { path, .. } => self
                .fs
                .get(path)
                .map(|_| ())
                .ok_or(StorageErrorKind::NotFound),
            TransferKind::Hash { path, start, .. } => match self.fs.get(path) {
                None => Err(StorageErrorKind::NotFound),
                Some(Node::Dir) => Err(StorageErrorKind::IsADirectory),
                Some(Node::File { size, .. }) if *start > size => {
                    Err(StorageErrorKind::InvalidOffset)
                }
                Some(Node::File { .. }) => Ok(()),
            },
            TransferKind::Combine { parts, .. } => {
                parts.iter().try_for_each(|p| match self.fs.get(p) {
                    Some(Node::File { .. }) => Ok(()),
                    Some(Node::Dir) => Err(StorageErrorKind::IsADirectory),
                    None => Err(StorageErrorKind::NotFound),
                })
            }
        }
    }

    /// The transfer ended; apply a completed upload to the model.
    fn finish_transfer(&mut self) -> Result<()> {
        let running = self.running.as_ref().expect("running");
        let opened = self.open_result(&running.plan.kind);
        let outcome = if running.plan.data == DataEndpoint::None {
            // HASH and COMB: no data connection, so no 150 and no connection outcomes.
            match (opened, &running.plan.kind) {
                (Err(kind), _) => TransferOutcome::Failed(kind),
                _ if running.abort_requested && self.u.ratio(3, 4)? => TransferOutcome::Aborted,
                (_, TransferKind::Hash { start, .. }) => TransferOutcome::Hashed {
                    digest: "00ff".into(),
                    start: *start,
                    end: start + u64::from(self.u.arbitrary::<u16>()?),
                },
                _ => TransferOutcome::Complete {
                    bytes: self.u.int_in_range(0..=100_000)?,
                },
            }
        } else if !running.started {
            match (self.u.int_in_range(0..=3)?, opened) {
                (_, Err(kind)) => TransferOutcome::Failed(kind),
                (0, _) => TransferOutcome::TlsFailed,
                (1, _) => TransferOutcome::TlsNotResumed,
                (2, _) if running.abort_requested => TransferOutcome::Aborted,
                _ => TransferOutcome::NoDataConnection,
            }
        } else if running.abort_requested && self.u.ratio(3, 4)? {
            TransferOutcome::Aborted
        } else {
            match (self.u.int_in_range(0..=6)?, opened) {
                (_, Err(kind)) => TransferOutcome::Failed(kind),
                (0, _) => TransferOutcome::ConnectionLost,
                (1, _) => TransferOutcome::Failed(*pick(self.u, ERRORS)?),
                (2, _) if matches!(running.plan.kind, TransferKind::Store { .. }) => {
                    let limit = self.u.int_in_range(0..=u64::MAX)?;
                    TransferOutcome::OverLimit(if self.u.arbitrary()? {
                        UploadLimit::MaxFileSize(limit)
                    } else {
                        UploadLimit::Quota(limit)
                    })
                }
                _ => TransferOutcome::Complete {
                    bytes: self.u.int_in_range(0..=100_000)?,
                },
            }
        };
        let running = self.running.take().expect("running");
        if let TransferOutcome::Complete { bytes } = outcome {
            self.complete(&running.plan.kind, bytes);
        }
        let replies = self.session.handle_transfer_done(outcome.clone());
        trace!("  (transfer done: {outcome:?}) <- {replies:?}");
        assert!(!self.session.in_transfer());
        for r in &replies {
            check_reply(r);
        }
        let expected =
            1 + usize::from(running.abort_requested) + usize::from(running.quit_requested);
        assert_eq!(replies.len(), expected, "{replies:?}");
        let first = replies[0].code.number();
        let none = running.plan.data == DataEndpoint::None;
        match outcome {
            TransferOutcome::Complete { .. } if none => assert_eq!(first, 250),
            TransferOutcome::Hashed { .. } => {
                let legacy = matches!(running.plan.kind, TransferKind::Hash { legacy: true, .. });
                assert_eq!(first, if legacy { 250 } else { 213 });
            }
            TransferOutcome::Complete { .. } => assert_eq!(first, 226),
            TransferOutcome::Aborted | TransferOutcome::ConnectionLost => assert_eq!(first, 426),
            TransferOutcome::NoDataConnection | TransferOutcome::TlsFailed => {
                assert_eq!(first, 425)
            }
            TransferOutcome::TlsNotResumed => assert_eq!(first, 522),
            TransferOutcome::Failed(kind) => assert_eq!(first, reply_for(kind, "/x").code.number()),
            TransferOutcome::OverLimit(_) => assert_eq!(first, 552),
        }
        let mut rest = replies[1..].iter();
        if running.abort_requested {
            assert_eq!(rest.next().map(|r| r.code.number()), Some(226));
        }
        if running.quit_requested {
            assert_eq!(rest.next().map(|r| r.code.number()), Some(221));
            assert!(self.session.wants_close());
            self.closed = true;
        }
        self.check_state();
        Ok(())
    }

    fn complete(&mut self, kind: &TransferKind, bytes: u64) {
        match kind {
            TransferKind::Retrieve { .. } | TransferKind::Hash { .. } => {}
            TransferKind::Combine { target, parts } => {
                for part in parts.iter().filter(|p| *p != target) {
                    self.fs.nodes.remove(part.as_str());
                }
                if self.fs.parent_dir(target).is_ok()
                    && !matches!(self.fs.get(target), Some(Node::Dir))
                {
                    self.fs.nodes.insert(
                        key(target),
                        Node::File {
                            size: bytes,
                            modified: Some(UNIX_EPOCH),
                        },
                    );
                }
            }
            TransferKind::List {
                path,
                format,
                permissions,
                ..
            } => self.list(path, *format, *permissions),
            TransferKind::Store { path, start } => {
                let old = match self.fs.get(path) {
                    Some(Node::File { size, .. }) => size,
                    _ => 0,
                };
                let size = match start {
                    WriteStart::Truncate => bytes,
                    WriteStart::Append => old.saturating_add(bytes),
                    WriteStart::At(n) => old.max(n.saturating_add(bytes)),
                };
                self.fs.nodes.insert(
                    key(path),
                    Node::File {
                        size,
                        modified: Some(UNIX_EPOCH),
                    },
                );
            }
            TransferKind::StoreUnique { dir, base } => {
                let mut n = 1;
                let path = loop {
                    let candidate = dir.join(&format!("{base}.{n}"));
                    if self.fs.get(&candidate).is_none() {
                        break candidate;
                    }
                    n += 1;
                };
                self.fs.nodes.insert(
                    key(&path),
                    Node::File {
                        size: bytes,
                        modified: None,
                    },
                );
            }
        }
        self.fs.check();
    }
}

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let config = SessionConfig {
        active_mode: u.ratio(7, 8)?,
        proxied: u.ratio(1, 8)?,
        min_active_port: *pick(&mut u, &[1024, 0, 50000])?,
        max_login_failures: u.int_in_range(1..=4)?,
        tls: TlsPolicy {
            available: u.arbitrary()?,
            required_for_login: u.ratio(1, 4)?,
            required_for_data: u.ratio(1, 4)?,
            allow_ccc: u.arbitrary()?,
        },
        features: Features {
            hash: u.ratio(3, 4)?,
            mlsd: u.ratio(7, 8)?,
            mlst: u.ratio(7, 8)?,
            mfmt: u.ratio(7, 8)?,
            site: u.ratio(7, 8)?,
            stat: u.ratio(7, 8)?,
            syst: u.ratio(7, 8)?,
            list_args: u.ratio(3, 4)?,
            avbl: u.ratio(3, 4)?,
            mode_z: u.ratio(1, 2)?,
            comb: u.ratio(1, 2)?,
            default_type: if u.ratio(1, 4)? {
                TransferType::Binary
            } else {
                TransferType::Ascii
            },
        },
        virtual_hosts: u.ratio(1, 3)?,
        login_message: if u.ratio(1, 4)? {
            Some("Welcome\nsecond line".to_string())
        } else {
            None
        },
    };
    let (peer, local): (SocketAddr, SocketAddr) = match u.int_in_range(0..=2)? {
        0 => (
            "127.0.0.1:40000".parse().unwrap(),
            "127.0.0.1:21".parse().unwrap(),
        ),
        1 => ("[::1]:40000".parse().unwrap(), "[::1]:21".parse().unwrap()),
        _ => (
            "[::ffff:127.0.0.1]:40000".parse().unwrap(),
            "[::ffff:127.0.0.1]:21".parse().unwrap(),
        ),
    };
    trace!("session from {peer} to {local}, {config:?}");
    let mut session = Session::new(config.clone(), peer, local);
    let implicit = config.tls.available && u.ratio(1, 4)?;
    if implicit {
        session.handle_tls_established(true);
    }
    let mut h = Harness {
        u: &mut u,
        session,
        config,
        peer,
        fs: Fs::new(),
        user: None,
        secure: implicit,
        cwd: VirtualPath::root(),
        running: None,
        passive_ready: false,
        rnfr: None,
        rnfr_previous: None,
        closed: false,
    };
    let mut decoder = LineDecoder::new(h.u.int_in_range(1..=600)?);
    for _ in 0..256 {
        if h.closed || h.u.is_empty() {
            break;
        }
        if h.running.is_some() {
            match h.u.int_in_range(0..=3)? {
                0 => {
                    h.finish_transfer()?;
                    continue;
                }
                1 if !h
                    .running
                    .as_ref()
                    .is_some_and(|r| r.started || r.plan.data == DataEndpoint::None) =>
                {
                    h.start_transfer()?;
                    continue;
                }
                _ => {}
            }
        }
        match h.u.int_in_range(0..=15)? {
            0 => {
                // Through the line decoder, as the engine reads the socket: CRLF or LF, Telnet
                // bytes, maybe more than one line at once, maybe too long.
                let mut bytes = gen_line(h.u)?;
                if h.u.ratio(1, 4)? {
                    bytes.splice(0..0, [255u8, 244, 255, 242]);
                }
                bytes.extend_from_slice(if h.u.arbitrary()? { b"\r\n" } else { b"\n" });
                decoder.feed(&bytes);
                while let Some(decoded) = decoder.next_line() {
                    let spec = match &decoded {
                        Decoded::Line(l) => std::str::from_utf8(l)
                            .ok()
                            .and_then(|l| parse_line(l).ok())
                            .map(|(s, _)| s),
                        Decoded::TooLong => None,
                    };
                    let previous = h.rnfr.take();
                    h.rnfr_previous = if spec.is_some() { previous } else { None };
                    trace!("-> (decoded) {decoded:?}");
                    let step = h.session.handle_decoded(decoded);
                    h.drive(step, spec)?;
                    if h.closed {
                        break;
                    }
                }
            }
            2..=4 => {
                for line in gen_sequence(h.u)? {
                    h.line(line.as_bytes())?;
                    if h.closed {
                        break;
                    }
                }
            }
            1 => {
                h.rnfr_previous = None;
                trace!("-> (too long)");
                let step = h.session.handle_decoded(Decoded::TooLong);
                h.drive(step, None)?;
            }
            _ => {
                let line = gen_line(h.u)?;
                h.line(&line)?;
            }
        }
        h.check_state();
    }
    if h.running.is_some() && !h.closed {
        h.finish_transfer()?;
    }
    h.check_state();
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
