//! Commands: the typed [`Command`], the one command table, and the parser.
//!
//! Every verb has exactly one [`CommandSpec`] in [`table::COMMANDS`]: its argument parser,
//! whether it needs a login, the permission letter it checks, the feature switch and storage
//! capability it depends on, whether it runs as a transfer, whether it is acted on while a
//! transfer runs, its HELP text and its FEAT line. The session checks all of these in one
//! place before it calls the command's handler, and builds FEAT from them.

mod table;

use std::fmt;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::SystemTime;

pub use table::{COMMANDS, lookup};

use crate::backend::{Capabilities, Facts, HashAlgorithm};
use crate::extensions::Features;
use crate::perm::Perm;
use crate::reply::{Reply, ReplyCode};

/// A password as received; its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Self {
        Password(s.into())
    }

    /// The password itself, for the authenticator.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// Representation type (RFC 959 section 3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferType {
    /// TYPE A (or A N): text, CRLF on the wire.
    Ascii,
    /// TYPE I (or L 8): bytes as they are.
    Binary,
}

/// Transfer mode (RFC 959 section 3.4, and MODE Z of draft-preston-ftpext-deflate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// S: stream.
    Stream,
    /// Z: a zlib stream (deflate).
    Deflate,
}

/// Arguments of LIST and NLST: `ls`-style options, then an optional path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListArgs {
    /// The path, if one was given.
    pub path: Option<String>,
    /// `-a`: include names starting with a dot.
    pub all: bool,
    /// The argument as sent (for servers that do not read `ls` options).
    pub raw: String,
}

/// The argument of EPSV (RFC 2428 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsvArg {
    /// No argument: the protocol of the control connection.
    Any,
    /// `1` (IPv4) or `2` (IPv6).
    Protocol(u8),
    /// `ALL`: from now on only EPSV may set up data connections.
    All,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is its verb; see the command table for what it does
pub enum Command {
    User(String),
    Pass(Password),
    Acct,
    Quit,
    Rein,
    Pwd,
    Cwd(String),
    Cdup,
    Mkd(String),
    Rmd(String),
    Dele(String),
    Rnfr(String),
    Rnto(String),
    Retr(String),
    Stor(String),
    Appe(String),
    Stou(Option<String>),
    List(ListArgs),
    Nlst(ListArgs),
    Mlsd(Option<String>),
    Mlst(Option<String>),
    Stat(Option<String>),
    Syst,
    Help(Option<String>),
    Noop,
    Feat,
    Opts {
        name: String,
        value: String,
    },
    Type(TransferType),
    Mode(TransferMode),
    Stru,
    Allo(Option<u64>),
    Abor,
    Site(String),
    Pasv,
    Epsv(EpsvArg),
    Port(SocketAddrV4),
    Eprt(SocketAddr),
    Size(String),
    Mdtm(String),
    Mfmt {
        time: SystemTime,
        path: String,
    },
    Rest(u64),
    Clnt(String),
    Auth,
    Pbsz,
    Prot(Protection),
    Ccc,
    /// HASH: the digest of a file (of the RANG range, if set).
    Hash(String),
    /// RANG: the byte range (inclusive) the next HASH covers; `RANG 1 0` resets it.
    Rang {
        start: u64,
        end: u64,
    },
    /// XCRC, XMD5, XSHA1, XSHA256, XSHA512: a digest with an optional start and end.
    XHash {
        algorithm: HashAlgorithm,
        path: String,
        start: Option<u64>,
        end: Option<u64>,
    },
    /// COMB: concatenate `parts` into `target`, then remove the parts.
    Comb {
        target: String,
        parts: Vec<String>,
    },
    /// AVBL: available space for uploads in a directory.
    Avbl(Option<String>),
    /// HOST (RFC 7151): the virtual host the client wants, before login.
    Host(String),
    /// MFCT (draft-somers-ftp-mfxx): set a file's creation time.
    Mfct {
        time: SystemTime,
        path: String,
    },
    /// LANG (RFC 2640).
    Lang(Option<String>),
    /// MFF (draft-somers-ftp-mfxx): set facts of a file.
    Mff {
        modify: Option<SystemTime>,
        mode: Option<u32>,
        path: String,
    },
}

impl Command {
    /// The subcommand named by the first word of the argument (SITE's), if the command has
    /// subcommands.
    pub fn subcommand(&self) -> Option<&str> {
        match self {
            Command::Site(arg) => arg.split(' ').next(),
            _ => None,
        }
    }
}

/// The data channel protection level of PROT (RFC 4217 section 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// C: clear.
    Clear,
    /// P: private (TLS).
    Private,
}

/// One entry of the command table.
#[derive(Debug)]
pub struct CommandSpec {
    /// The verb, upper case.
    pub verb: &'static str,
    /// Refused with 530 before login.
    pub needs_login: bool,
    /// The permission checked on the command's path, if any.
    pub perm: Option<Perm>,
    /// The feature switch that turns the command on (502 and out of FEAT when off); `None`:
    /// always on.
    pub switch: Option<fn(&Features) -> bool>,
    /// The storage capability the command needs (502 with [`Needs::refusal`] without it, and
    /// left out of FEAT).
    pub needs: Option<Needs>,
    /// The storage capability each subcommand needs, by name (SITE's CHMOD, UTIME, SYMLINK):
    /// the first word of the argument, any case. Without it: 502 with the refusal. Checked with
    /// [`needs`](Self::needs) in [`CommandSpec::refusal`], before the handler runs.
    pub sub_needs: &'static [(&'static str, Needs)],
    /// Runs as a transfer: the session answers it with [`Step::Transfer`] when it starts
    /// (RETR, STOR, LIST..., and HASH, COMB and the digest commands, which have no data
    /// connection).
    ///
    /// [`Step::Transfer`]: crate::session::Step::Transfer
    pub transfer: bool,
    /// Acted on while a transfer runs (ABOR, STAT, NOOP, QUIT).
    pub during_transfer: bool,
    /// The syntax shown by `HELP verb`.
    pub help: &'static str,
    /// The line this command adds to FEAT.
    pub feat: Feat,
    parse: fn(&str) -> Result<Command, Reply>,
}

/// A storage capability a command needs.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// Whether the user's storage has it.
    pub capability: fn(&Capabilities) -> bool,
    /// The text of the 502 reply when it has not.
    pub refusal: &'static str,
}

/// What a command adds to FEAT (when it is switched on and its storage can run it).
#[derive(Debug, Clone, Copy)]
pub enum Feat {
    /// Nothing.
    None,
    /// This line.
    Line(&'static str),
    /// A line that depends on the session (TLS offered, facts, the HASH algorithm...), or
    /// nothing.
    Dynamic(fn(&FeatContext<'_>) -> Option<String>),
}

/// What a [`Feat::Dynamic`] line may depend on.
#[derive(Debug, Clone, Copy)]
pub struct FeatContext<'a> {
    /// The server's feature switches.
    pub features: &'a Features,
    /// What the user's storage can do (everything before login).
    pub capabilities: &'a Capabilities,
    /// AUTH TLS is offered.
    pub tls_available: bool,
    /// CCC is allowed.
    pub ccc_allowed: bool,
    /// The server has virtual hosts (HOST).
    pub virtual_hosts: bool,
    /// The MLSx facts selected with `OPTS MLST`.
    pub facts: Facts,
    /// The algorithm HASH uses (`OPTS HASH`).
    pub hash_algorithm: HashAlgorithm,
}

impl CommandSpec {
    /// Parses the argument (everything after the verb and one space).
    pub fn parse(&self, arg: &str) -> Result<Command, Reply> {
        (self.parse)(arg)
    }

    /// Whether the command is switched on.
    pub fn is_on(&self, features: &Features) -> bool {
        self.switch.is_none_or(|on| on(features))
    }

    /// The refusal text when the storage lacks what the command needs, `None` when it can run.
    pub fn missing_capability(&self, capabilities: &Capabilities) -> Option<&'static str> {
        self.needs
            .filter(|needs| !(needs.capability)(capabilities))
            .map(|needs| needs.refusal)
    }

    /// The 502 text when the storage cannot run `command` (this verb, or its subcommand),
    /// `None` when it can. The one place a command is refused for a missing capability.
    pub fn refusal(&self, command: &Command, capabilities: &Capabilities) -> Option<&'static str> {
        self.missing_capability(capabilities).or_else(|| {
            let sub = command.subcommand()?;
            self.sub_needs
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(sub))
                .filter(|(_, needs)| !(needs.capability)(capabilities))
                .map(|(_, needs)| needs.refusal)
        })
    }

    /// The line this command adds to FEAT, if any.
    pub fn feat_line(&self, context: &FeatContext<'_>) -> Option<String> {
        if !self.is_on(context.features) || self.missing_capability(context.capabilities).is_some()
        {
            return None;
        }
        match self.feat {
            Feat::None => None,
            Feat::Line(line) => Some(line.to_string()),
            Feat::Dynamic(line) => line(context),
        }
    }
}

/// Splits and parses a control line. Errors are the replies to send: 500 for an unknown verb,
/// 501 for a bad argument, 504 for an unsupported parameter.
pub fn parse_line(line: &str) -> Result<(&'static CommandSpec, Command), Reply> {
    let (verb, arg) = match line.split_once(' ') {
        Some((verb, arg)) => (verb, arg),
        None => (line, ""),
    };
    let spec = lookup(verb).ok_or_else(|| {
        let shown: String = crate::listing::display_name(verb)
            .chars()
            .take(32)
            .collect();
        Reply::new(ReplyCode::SyntaxError, format!("Unknown command {shown:?}"))
    })?;
    Ok((spec, spec.parse(arg)?))
}
