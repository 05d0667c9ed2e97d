//! The command table: one entry per verb.

use std::time::SystemTime;

use super::{
    Command, CommandSpec, EpsvArg, Feat, FeatContext, ListArgs, Needs, Password, Protection,
    TransferMode, TransferType,
};
use crate::backend::HashAlgorithm;
use crate::extensions::{Features, parse_legacy_hash_args, parse_quoted_names};
use crate::hostport::{parse_eprt, parse_port};
use crate::listing::parse_timeval;
use crate::path::is_forbidden_char;
use crate::perm::Perm;
use crate::reply::{Reply, ReplyCode};

fn syntax(text: &str) -> Reply {
    Reply::new(ReplyCode::ArgumentSyntaxError, text)
}

fn not_for_parameter(text: &str) -> Reply {
    Reply::new(ReplyCode::ParameterNotImplemented, text)
}

fn checked_name(arg: &str) -> Result<String, Reply> {
    if arg.chars().any(is_forbidden_char) {
        return Err(syntax("Control characters are not allowed in names"));
    }
    Ok(arg.to_string())
}

fn path(arg: &str) -> Result<String, Reply> {
    if arg.is_empty() {
        return Err(syntax("A path is required"));
    }
    checked_name(arg)
}

fn optional_path(arg: &str) -> Result<Option<String>, Reply> {
    if arg.is_empty() {
        Ok(None)
    } else {
        checked_name(arg).map(Some)
    }
}

/// `ls` options that clients send with LIST and NLST; `-R` is accepted and ignored
/// (recursive listings are not served).
const LIST_FLAGS: &str = "aAlRdFtrh1CSU";

fn list_args(arg: &str) -> Result<ListArgs, Reply> {
    let mut rest = arg.trim_start();
    let mut args = ListArgs {
        raw: arg.to_string(),
        ..ListArgs::default()
    };
    while let Some(opts) = rest.strip_prefix('-') {
        let token = opts.split(' ').next().unwrap_or("");
        if token.is_empty() || !token.chars().all(|c| LIST_FLAGS.contains(c)) {
            break;
        }
        args.all |= token.contains('a') || token.contains('A');
        rest = opts[token.len()..].trim_start();
    }
    args.path = optional_path(rest)?;
    Ok(args)
}

fn parse_type(arg: &str) -> Result<Command, Reply> {
    let arg = arg.trim().to_ascii_uppercase();
    let mut words = arg.split_whitespace();
    let kind = words
        .next()
        .ok_or_else(|| syntax("TYPE needs an argument"))?;
    let param = words.next();
    if words.next().is_some() {
        return Err(syntax("Too many arguments"));
    }
    match (kind, param) {
        ("A", None | Some("N")) => Ok(Command::Type(TransferType::Ascii)),
        ("I", None) | ("L", Some("8")) | ("L8", None) => Ok(Command::Type(TransferType::Binary)),
        ("A", Some("T" | "C")) | ("E", _) | ("L", Some(_)) => {
            Err(not_for_parameter("Type not supported"))
        }
        _ => Err(syntax("Unknown TYPE")),
    }
}

fn one_letter(arg: &str, ok: &str, known: &str, cmd: Command) -> Result<Command, Reply> {
    let arg = arg.trim().to_ascii_uppercase();
    if arg == ok {
        Ok(cmd)
    } else if arg.len() == 1 && known.contains(arg.as_str()) {
        Err(not_for_parameter("Parameter not supported"))
    } else {
        Err(syntax("Unknown parameter"))
    }
}

fn parse_epsv(arg: &str) -> Result<Command, Reply> {
    match arg.trim().to_ascii_uppercase().as_str() {
        "" => Ok(Command::Epsv(EpsvArg::Any)),
        "ALL" => Ok(Command::Epsv(EpsvArg::All)),
        "1" => Ok(Command::Epsv(EpsvArg::Protocol(1))),
        "2" => Ok(Command::Epsv(EpsvArg::Protocol(2))),
        n if n.parse::<u32>().is_ok() => Err(Reply::new(
            ReplyCode::NetworkProtocolNotSupported,
            "Network protocol not supported, use (1,2)",
        )),
        _ => Err(syntax("Bad EPSV argument")),
    }
}

fn parse_eprt_cmd(arg: &str) -> Result<Command, Reply> {
    let arg = arg.trim();
    if let Some(addr) = parse_eprt(arg) {
        return Ok(Command::Eprt(addr));
    }
    let fields: Vec<&str> = arg
        .chars()
        .next()
        .map(|d| arg.split(d).collect())
        .unwrap_or_default();
    if fields.len() == 5 && fields[1].parse::<u32>().is_ok_and(|af| af != 1 && af != 2) {
        return Err(Reply::new(
            ReplyCode::NetworkProtocolNotSupported,
            "Network protocol not supported, use (1,2)",
        ));
    }
    Err(syntax("Bad EPRT argument"))
}

fn parse_rest(arg: &str) -> Result<Command, Reply> {
    let arg = arg.trim();
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax("REST needs a non-negative byte offset"));
    }
    arg.parse::<u64>()
        .map(Command::Rest)
        .map_err(|_| syntax("REST offset too large"))
}

fn parse_mfmt(arg: &str) -> Result<Command, Reply> {
    let (time, name) = arg
        .split_once(' ')
        .ok_or_else(|| syntax("MFMT needs a time and a path"))?;
    let time: SystemTime =
        parse_timeval(time).ok_or_else(|| syntax("Bad time, expected YYYYMMDDHHMMSS"))?;
    Ok(Command::Mfmt {
        time,
        path: path(name)?,
    })
}

fn parse_rang(arg: &str) -> Result<Command, Reply> {
    let mut words = arg.split_whitespace().map(str::parse::<u64>);
    match (words.next(), words.next(), words.next()) {
        (Some(Ok(start)), Some(Ok(end)), None) => {
            if end < start && !(start == 1 && end == 0) {
                return Err(syntax("RANG end is before its start"));
            }
            Ok(Command::Rang { start, end })
        }
        _ => Err(syntax("RANG needs a start and an end byte")),
    }
}

fn legacy_hash(algorithm: HashAlgorithm, arg: &str) -> Result<Command, Reply> {
    let (name, start, end) = parse_legacy_hash_args(arg)
        .ok_or_else(|| syntax("Expected a path and an optional start and end"))?;
    if let (Some(start), Some(end)) = (start, end) {
        if end < start {
            return Err(syntax("The end is before the start"));
        }
    }
    Ok(Command::XHash {
        algorithm,
        path: path(&name)?,
        start,
        end,
    })
}

fn parse_comb(arg: &str) -> Result<Command, Reply> {
    let names = parse_quoted_names(arg).ok_or_else(|| syntax("Unterminated quote"))?;
    let Some((target, parts)) = names.split_first() else {
        return Err(syntax("COMB needs a target and the parts"));
    };
    if parts.is_empty() || parts.len() > 10_000 {
        return Err(syntax("COMB needs a target and 1 to 10,000 parts"));
    }
    Ok(Command::Comb {
        target: path(target)?,
        parts: parts.iter().map(|p| path(p)).collect::<Result<_, _>>()?,
    })
}

fn parse_allo(arg: &str) -> Result<Command, Reply> {
    // `ALLO <size> [R <record size>]`; the record size means nothing for stream mode.
    let size = arg.split_whitespace().next();
    match size {
        None => Ok(Command::Allo(None)),
        Some(size) => size
            .parse::<u64>()
            .map(|n| Command::Allo(Some(n)))
            .map_err(|_| syntax("ALLO needs a size in bytes")),
    }
}

fn parse_mff(arg: &str) -> Result<Command, Reply> {
    let (facts, name) = arg
        .split_once(' ')
        .ok_or_else(|| syntax("MFF needs facts and a path"))?;
    let (mut modify, mut mode) = (None, None);
    for fact in facts.split(';').filter(|f| !f.is_empty()) {
        let (key, value) = fact
            .split_once('=')
            .ok_or_else(|| syntax("Facts are name=value;"))?;
        match key.to_ascii_lowercase().as_str() {
            "modify" => {
                modify = Some(
                    parse_timeval(value)
                        .ok_or_else(|| syntax("Bad time, expected YYYYMMDDHHMMSS"))?,
                );
            }
            "unix.mode" => {
                mode = Some(
                    u32::from_str_radix(value, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| syntax("Bad mode, expected octal"))?,
                );
            }
            _ => return Err(not_for_parameter("Only modify and UNIX.mode can be set")),
        }
    }
    Ok(Command::Mff {
        modify,
        mode,
        path: path(name)?,
    })
}

fn parse_auth(arg: &str) -> Result<Command, Reply> {
    match arg.trim().to_ascii_uppercase().as_str() {
        "TLS" | "SSL" | "TLS-C" | "TLS-P" => Ok(Command::Auth),
        "" => Err(syntax("AUTH needs a mechanism")),
        _ => Err(not_for_parameter("Unsupported mechanism; use AUTH TLS")),
    }
}

fn parse_prot(arg: &str) -> Result<Command, Reply> {
    match arg.trim().to_ascii_uppercase().as_str() {
        "C" => Ok(Command::Prot(Protection::Clear)),
        "P" => Ok(Command::Prot(Protection::Private)),
        "S" | "E" => Err(Reply::new(
            ReplyCode::ProtectionLevelNotSupported,
            "Protection level not supported; use C or P",
        )),
        _ => Err(not_for_parameter("Unknown protection level")),
    }
}

fn parse_opts(arg: &str) -> Result<Command, Reply> {
    let (name, value) = arg.trim_start().split_once(' ').unwrap_or((arg.trim(), ""));
    if name.is_empty() {
        return Err(syntax("OPTS needs an argument"));
    }
    Ok(Command::Opts {
        name: name.to_ascii_uppercase(),
        value: value.trim().to_string(),
    })
}

macro_rules! spec {
    ($verb:literal, login: $login:expr, perm: $perm:expr, $(switch: $switch:expr,)? $(needs: $needs:expr,)? $(sub_needs: $sub_needs:expr,)?
     transfer: $transfer:expr, during: $during:expr, help: $help:literal, feat: $feat:expr, parse: $parse:expr) => {
        CommandSpec {
            verb: $verb,
            needs_login: $login,
            perm: $perm,
            switch: spec!(@optional $($switch)?),
            needs: spec!(@optional $($needs)?),
            sub_needs: spec!(@list $($sub_needs)?),
            transfer: $transfer,
            during_transfer: $during,
            help: $help,
            feat: $feat,
            parse: $parse,
        }
    };
    (@optional) => { None };
    (@optional $value:expr) => { Some($value) };
    (@list) => { &[] };
    (@list $value:expr) => { $value };
}

/// The switch of HASH, RANG and the digest commands.
fn hash_on(features: &Features) -> bool {
    features.hash
}

/// `MFF modify;UNIX.mode;`, with the facts the storage can set.
fn mff_line(context: &FeatContext<'_>) -> Option<String> {
    let caps = context.capabilities;
    if !caps.set_modified && !caps.set_mode {
        return None;
    }
    let mut line = "MFF ".to_string();
    if caps.set_modified {
        line.push_str("modify;");
    }
    if caps.set_mode {
        line.push_str("UNIX.mode;");
    }
    Some(line)
}

/// Every command ftpgate knows.
pub static COMMANDS: &[CommandSpec] = &[
    // Access control (RFC 959 section 4.1.1)
    spec!("USER", login: false, perm: None, transfer: false, during: false, help: "USER <sp> username", feat: Feat::None,
        parse: |a| if a.is_empty() { Err(syntax("USER needs a name")) } else { checked_name(a).map(Command::User) }),
    spec!("PASS", login: false, perm: None, transfer: false, during: false, help: "PASS <sp> password", feat: Feat::None,
        parse: |a| Ok(Command::Pass(Password::new(a)))),
    spec!("ACCT", login: false, perm: None, transfer: false, during: false, help: "ACCT <sp> account (not needed)", feat: Feat::None,
        parse: |_| Ok(Command::Acct)),
    spec!("CWD", login: true, perm: Some(Perm::Cwd), transfer: false, during: false, help: "CWD <sp> pathname", feat: Feat::None,
        parse: |a| path(a).map(Command::Cwd)),
    spec!("XCWD", login: true, perm: Some(Perm::Cwd), transfer: false, during: false, help: "XCWD <sp> pathname", feat: Feat::None,
        parse: |a| path(a).map(Command::Cwd)),
    spec!("CDUP", login: true, perm: Some(Perm::Cwd), transfer: false, during: false, help: "CDUP", feat: Feat::None,
        parse: |_| Ok(Command::Cdup)),
    spec!("XCUP", login: true, perm: Some(Perm::Cwd), transfer: false, during: false, help: "XCUP", feat: Feat::None,
        parse: |_| Ok(Command::Cdup)),
    spec!("REIN", login: false, perm: None, transfer: false, during: false, help: "REIN", feat: Feat::None,
        parse: |_| Ok(Command::Rein)),
    spec!("QUIT", login: false, perm: None, transfer: false, during: true, help: "QUIT", feat: Feat::None,
        parse: |_| Ok(Command::Quit)),
    // Transfer parameters (RFC 959 section 4.1.2, RFC 2428)
    spec!("PORT", login: true, perm: None, transfer: false, during: false, help: "PORT <sp> h1,h2,h3,h4,p1,p2", feat: Feat::None,
        parse: |a| parse_port(a).map(Command::Port).ok_or_else(|| syntax("Bad PORT argument"))),
    spec!("EPRT", login: true, perm: None, transfer: false, during: false, help: "EPRT <sp> |af|addr|port|", feat: Feat::Line("EPRT"),
        parse: parse_eprt_cmd),
    spec!("PASV", login: true, perm: None, transfer: false, during: false, help: "PASV", feat: Feat::None,
        parse: |_| Ok(Command::Pasv)),
    spec!("EPSV", login: true, perm: None, transfer: false, during: false, help: "EPSV [<sp> 1|2|ALL]", feat: Feat::Line("EPSV"),
        parse: parse_epsv),
    spec!("TYPE", login: false, perm: None, transfer: false, during: false, help: "TYPE <sp> A [N] | I | L 8", feat: Feat::None,
        parse: parse_type),
    spec!("STRU", login: false, perm: None, transfer: false, during: false, help: "STRU <sp> F", feat: Feat::None,
        parse: |a| one_letter(a, "F", "RP", Command::Stru)),
    spec!("MODE", login: false, perm: None, transfer: false, during: false, help: "MODE <sp> S | Z", feat: Feat::Dynamic(|c| c.features.mode_z.then(|| "MODE Z".to_string())),
        parse: |a| if a.trim().eq_ignore_ascii_case("Z") { Ok(Command::Mode(TransferMode::Deflate)) } else { one_letter(a, "S", "BC", Command::Mode(TransferMode::Stream)) }),
    // Service commands (RFC 959 section 4.1.3)
    spec!("RETR", login: true, perm: Some(Perm::Retrieve), transfer: true, during: false, help: "RETR <sp> pathname", feat: Feat::None,
        parse: |a| path(a).map(Command::Retr)),
    spec!("STOR", login: true, perm: Some(Perm::Store), transfer: true, during: false, help: "STOR <sp> pathname", feat: Feat::None,
        parse: |a| path(a).map(Command::Stor)),
    spec!("STOU", login: true, perm: Some(Perm::Store), transfer: true, during: false, help: "STOU [<sp> name]", feat: Feat::None,
        parse: |a| optional_path(a).map(Command::Stou)),
    spec!("APPE", login: true, perm: Some(Perm::Append), transfer: true, during: false, help: "APPE <sp> pathname", feat: Feat::None,
        parse: |a| path(a).map(Command::Appe)),
    spec!("ALLO", login: true, perm: None, transfer: false, during: false, help: "ALLO <sp> size", feat: Feat::None,
        parse: parse_allo),
    spec!("REST", login: true, perm: None, transfer: false, during: false, help: "REST <sp> offset", feat: Feat::Line("REST STREAM"),
        parse: parse_rest),
    spec!("RNFR", login: true, perm: Some(Perm::Rename), transfer: false, during: false, help: "RNFR <sp> pathname", feat: Feat::None,
        parse: |a| path(a).map(Command::Rnfr)),
    spec!("RNTO", login: true, perm: Some(Perm::Rename), transfer: false, during: false, help: "RNTO <sp> pathname", feat: Feat::None,
        parse: |a| path(a).map(Command::Rnto)),
    spec!("ABOR", login: false, perm: None, transfer: false, during: true, help: "ABOR", feat: Feat::None,
        parse: |_| Ok(Command::Abor)),
    spec!("DELE", login: true, perm: Some(Perm::Delete), transfer: false, during: false, help: "DELE <sp> pathname", feat: Feat::None,
        parse: |a| path(a).map(Command::Dele)),
    spec!("RMD", login: true, perm: Some(Perm::Delete), transfer: false, during: false, help: "RMD <sp> pathname", feat: Feat::None,
        parse: |a| path(a).map(Command::Rmd)),
    spec!("XRMD", login: true, perm: Some(Perm::Delete), transfer: false, during: false, help: "XRMD <sp> pathname", feat: Feat::None,
        parse: |a| path(a).map(Command::Rmd)),
    spec!("MKD", login: true, perm: Some(Perm::Mkdir), transfer: false, during: false, help: "MKD <sp> pathname", feat: Feat::None,
        parse: |a| path(a).map(Command::Mkd)),
    spec!("XMKD", login: true, perm: Some(Perm::Mkdir), transfer: false, during: false, help: "XMKD <sp> pathname", feat: Feat::None,
        parse: |a| path(a).map(Command::Mkd)),
    spec!("PWD", login: true, perm: None, transfer: false, during: false, help: "PWD", feat: Feat::None,
        parse: |_| Ok(Command::Pwd)),
    spec!("XPWD", login: true, perm: None, transfer: false, during: false, help: "XPWD", feat: Feat::None,
        parse: |_| Ok(Command::Pwd)),
    spec!("LIST", login: true, perm: Some(Perm::List), transfer: true, during: false, help: "LIST [<sp> -la] [<sp> pathname]", feat: Feat::None,
        parse: |a| list_args(a).map(Command::List)),
    spec!("NLST", login: true, perm: Some(Perm::List), transfer: true, during: false, help: "NLST [<sp> -a] [<sp> pathname]", feat: Feat::None,
        parse: |a| list_args(a).map(Command::Nlst)),
    spec!("SITE", login: true, perm: None, switch: |f| f.site,
        sub_needs: &[
            // A storage set to ignore SITE CHMOD accepts it and sets nothing (site.rs).
            ("CHMOD", Needs { capability: |c| c.set_mode || c.ignore_set_mode, refusal: "SITE CHMOD is not supported by this storage" }),
            ("UTIME", Needs { capability: |c| c.set_modified, refusal: "SITE UTIME is not supported by this storage" }),
            ("SYMLINK", Needs { capability: |c| c.symlink, refusal: "SITE SYMLINK is not supported by this storage" }),
        ],
        transfer: false, during: false, help: "SITE <sp> HELP", feat: Feat::None,
        parse: |a| if a.trim().is_empty() { Err(syntax("SITE needs a command")) } else { Ok(Command::Site(a.trim().to_string())) }),
    spec!("SYST", login: false, perm: None, switch: |f| f.syst, transfer: false, during: false, help: "SYST", feat: Feat::None,
        parse: |_| Ok(Command::Syst)),
    spec!("STAT", login: false, perm: Some(Perm::List), switch: |f| f.stat, transfer: false, during: true, help: "STAT [<sp> pathname]", feat: Feat::None,
        parse: |a| optional_path(a).map(Command::Stat)),
    spec!("HELP", login: false, perm: None, transfer: false, during: false, help: "HELP [<sp> command]", feat: Feat::None,
        parse: |a| Ok(Command::Help(if a.trim().is_empty() { None } else { Some(a.trim().to_ascii_uppercase()) }))),
    spec!("NOOP", login: false, perm: None, transfer: false, during: true, help: "NOOP", feat: Feat::None,
        parse: |_| Ok(Command::Noop)),
    // RFC 2389
    spec!("FEAT", login: false, perm: None, transfer: false, during: false, help: "FEAT", feat: Feat::None,
        parse: |_| Ok(Command::Feat)),
    spec!("OPTS", login: false, perm: None, transfer: false, during: false, help: "OPTS <sp> UTF8 ON | MLST facts", feat: Feat::Line("UTF8"),
        parse: parse_opts),
    // RFC 3659 and friends
    spec!("SIZE", login: true, perm: Some(Perm::List), transfer: false, during: false, help: "SIZE <sp> pathname", feat: Feat::Line("SIZE"),
        parse: |a| path(a).map(Command::Size)),
    spec!("MDTM", login: true, perm: Some(Perm::List), transfer: false, during: false, help: "MDTM <sp> pathname", feat: Feat::Line("MDTM"),
        parse: |a| path(a).map(Command::Mdtm)),
    spec!("MFMT", login: true, perm: Some(Perm::SetTime), switch: |f| f.mfmt, needs: Needs { capability: |c| c.set_modified, refusal: "This storage keeps its own modification times" },
        transfer: false, during: false, help: "MFMT <sp> YYYYMMDDHHMMSS <sp> pathname", feat: Feat::Line("MFMT"),
        parse: parse_mfmt),
    spec!("MLST", login: true, perm: Some(Perm::List), switch: |f| f.mlst, transfer: false, during: false, help: "MLST [<sp> pathname]", feat: Feat::Dynamic(|c| Some(c.facts.feat_line(c.capabilities.facts))),
        parse: |a| optional_path(a).map(Command::Mlst)),
    spec!("MLSD", login: true, perm: Some(Perm::List), switch: |f| f.mlsd, transfer: true, during: false, help: "MLSD [<sp> pathname]", feat: Feat::None,
        parse: |a| optional_path(a).map(Command::Mlsd)),
    // RFC 4217 (FTP over TLS)
    spec!("AUTH", login: false, perm: None, transfer: false, during: false, help: "AUTH <sp> TLS", feat: Feat::Dynamic(|c| c.tls_available.then(|| "AUTH TLS".to_string())),
        parse: parse_auth),
    spec!("PBSZ", login: false, perm: None, transfer: false, during: false, help: "PBSZ <sp> 0", feat: Feat::Dynamic(|c| c.tls_available.then(|| "PBSZ".to_string())),
        parse: |a| if a.trim().parse::<u64>().is_ok() { Ok(Command::Pbsz) } else { Err(syntax("PBSZ needs a number")) }),
    spec!("PROT", login: false, perm: None, transfer: false, during: false, help: "PROT <sp> C | P", feat: Feat::Dynamic(|c| c.tls_available.then(|| "PROT".to_string())),
        parse: parse_prot),
    spec!("CCC", login: false, perm: None, transfer: false, during: false, help: "CCC", feat: Feat::Dynamic(|c| (c.tls_available && c.ccc_allowed).then(|| "CCC".to_string())),
        parse: |_| Ok(Command::Ccc)),
    // Digests (draft-bryan-ftpext-hash, draft-bryan-ftp-range, and the legacy X-commands)
    spec!("HASH", login: true, perm: Some(Perm::Retrieve), switch: hash_on, transfer: true, during: false, help: "HASH <sp> pathname", feat: Feat::Dynamic(|c| Some(HashAlgorithm::feat_line(c.hash_algorithm))),
        parse: |a| path(a).map(Command::Hash)),
    spec!("RANG", login: true, perm: None, switch: hash_on, transfer: false, during: false, help: "RANG <sp> start <sp> end", feat: Feat::Line("RANG STREAM"),
        parse: parse_rang),
    spec!("XCRC", login: true, perm: Some(Perm::Retrieve), switch: hash_on, transfer: true, during: false, help: "XCRC <sp> pathname [<sp> start <sp> end]", feat: Feat::Line("XCRC"),
        parse: |a| legacy_hash(HashAlgorithm::Crc32, a)),
    spec!("XMD5", login: true, perm: Some(Perm::Retrieve), switch: hash_on, transfer: true, during: false, help: "XMD5 <sp> pathname [<sp> start <sp> end]", feat: Feat::Line("XMD5"),
        parse: |a| legacy_hash(HashAlgorithm::Md5, a)),
    spec!("XSHA1", login: true, perm: Some(Perm::Retrieve), switch: hash_on, transfer: true, during: false, help: "XSHA1 <sp> pathname [<sp> start <sp> end]", feat: Feat::Line("XSHA1"),
        parse: |a| legacy_hash(HashAlgorithm::Sha1, a)),
    spec!("XSHA256", login: true, perm: Some(Perm::Retrieve), switch: hash_on, transfer: true, during: false, help: "XSHA256 <sp> pathname [<sp> start <sp> end]", feat: Feat::Line("XSHA256"),
        parse: |a| legacy_hash(HashAlgorithm::Sha256, a)),
    spec!("XSHA512", login: true, perm: Some(Perm::Retrieve), switch: hash_on, transfer: true, during: false, help: "XSHA512 <sp> pathname [<sp> start <sp> end]", feat: Feat::Line("XSHA512"),
        parse: |a| legacy_hash(HashAlgorithm::Sha512, a)),
    spec!("COMB", login: true, perm: Some(Perm::Store), switch: |f| f.comb, transfer: true, during: false, help: "COMB <sp> \"target\" <sp> \"part 1\" <sp> \"part 2\" ...", feat: Feat::Line("COMB"),
        parse: parse_comb),
    // RFC 7151
    spec!("HOST", login: false, perm: None, transfer: false, during: false, help: "HOST <sp> hostname", feat: Feat::Dynamic(|c| c.virtual_hosts.then(|| "HOST".to_string())),
    parse: |a| {
        let name = a.trim().trim_start_matches('[').trim_end_matches(']');
        if name.is_empty() || name.len() > 253 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b)) {
            Err(syntax("HOST needs a host name"))
        } else {
            Ok(Command::Host(name.to_ascii_lowercase()))
        }
    }),
    // Space, language and facts
    spec!("AVBL", login: true, perm: Some(Perm::List), switch: |f| f.avbl, needs: Needs { capability: |c| c.available_space, refusal: "AVBL is not supported by this storage" },
        transfer: false, during: false, help: "AVBL [<sp> pathname]", feat: Feat::Line("AVBL"),
        parse: |a| optional_path(a).map(Command::Avbl)),
    spec!("LANG", login: false, perm: None, transfer: false, during: false, help: "LANG [<sp> EN]", feat: Feat::Line("LANG EN*"),
        parse: |a| Ok(Command::Lang(if a.trim().is_empty() { None } else { Some(a.trim().to_ascii_uppercase()) }))),
    spec!("MFCT", login: true, perm: Some(Perm::SetTime), transfer: false, during: false, help: "MFCT <sp> YYYYMMDDHHMMSS <sp> pathname", feat: Feat::None,
        parse: |a| match parse_mfmt(a)? { Command::Mfmt { time, path } => Ok(Command::Mfct { time, path }), other => Ok(other) }),
    spec!("MFF", login: true, perm: Some(Perm::SetTime), switch: |f| f.mfmt, transfer: false, during: false, help: "MFF <sp> modify=YYYYMMDDHHMMSS;UNIX.mode=0644; <sp> pathname", feat: Feat::Dynamic(mff_line),
        parse: parse_mff),
    spec!("CLNT", login: false, perm: None, transfer: false, during: false, help: "CLNT <sp> client name", feat: Feat::Line("CLNT"),
        parse: |a| Ok(Command::Clnt(a.chars().filter(|c| !c.is_control()).take(128).collect()))),
];

/// The entry for `verb` (any case).
pub fn lookup(verb: &str) -> Option<&'static CommandSpec> {
    if verb.len() > 7 {
        return None;
    }
    COMMANDS
        .iter()
        .find(|spec| spec.verb.eq_ignore_ascii_case(verb))
}

#[cfg(test)]
mod tests {
    use super::super::parse_line;
    use super::*;

    fn parse(line: &str) -> Result<Command, u16> {
        parse_line(line)
            .map(|(_, c)| c)
            .map_err(|r| r.code.number())
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(parse("noop"), Ok(Command::Noop));
        assert_eq!(parse("NoOp"), Ok(Command::Noop));
    }

    #[test]
    fn unknown_verb_is_500() {
        assert_eq!(parse("FOO bar"), Err(500));
        assert_eq!(parse(""), Err(500));
        assert_eq!(parse("RETRXYZW a"), Err(500));
    }

    #[test]
    fn x_aliases() {
        assert_eq!(parse("XPWD"), Ok(Command::Pwd));
        assert_eq!(parse("XCWD a"), Ok(Command::Cwd("a".into())));
        assert_eq!(parse("XCUP"), Ok(Command::Cdup));
        assert_eq!(parse("XMKD a"), Ok(Command::Mkd("a".into())));
        assert_eq!(parse("XRMD a"), Ok(Command::Rmd("a".into())));
    }

    #[test]
    fn path_argument_keeps_spaces_and_leading_dash() {
        assert_eq!(
            parse("RETR  two  spaces "),
            Ok(Command::Retr(" two  spaces ".into()))
        );
        assert_eq!(parse("STOR -dash"), Ok(Command::Stor("-dash".into())));
        assert_eq!(parse("RETR"), Err(501));
    }

    #[test]
    fn nul_and_control_characters_are_501() {
        assert_eq!(parse("STOR a\0b"), Err(501));
        assert_eq!(parse("MKD a\x1bb"), Err(501));
    }

    #[test]
    fn type_arguments() {
        assert_eq!(parse("TYPE A"), Ok(Command::Type(TransferType::Ascii)));
        assert_eq!(parse("TYPE A N"), Ok(Command::Type(TransferType::Ascii)));
        assert_eq!(parse("TYPE a n"), Ok(Command::Type(TransferType::Ascii)));
        assert_eq!(parse("TYPE I"), Ok(Command::Type(TransferType::Binary)));
        assert_eq!(parse("TYPE L 8"), Ok(Command::Type(TransferType::Binary)));
        assert_eq!(parse("TYPE A T"), Err(504));
        assert_eq!(parse("TYPE E"), Err(504));
        assert_eq!(parse("TYPE L 7"), Err(504));
        assert_eq!(parse("TYPE X"), Err(501));
        assert_eq!(parse("TYPE"), Err(501));
    }

    #[test]
    fn mode_and_stru() {
        assert_eq!(parse("MODE S"), Ok(Command::Mode(TransferMode::Stream)));
        assert_eq!(parse("MODE z"), Ok(Command::Mode(TransferMode::Deflate)));
        assert_eq!(parse("MODE B"), Err(504));
        assert_eq!(parse("MODE Q"), Err(501));
        assert_eq!(parse("STRU F"), Ok(Command::Stru));
        assert_eq!(parse("STRU R"), Err(504));
    }

    #[test]
    fn list_options_then_path() {
        assert_eq!(parse("LIST"), Ok(Command::List(ListArgs::default())));
        assert_eq!(
            parse("LIST -la"),
            Ok(Command::List(ListArgs {
                path: None,
                all: true,
                raw: "-la".into()
            }))
        );
        assert_eq!(
            parse("LIST -l"),
            Ok(Command::List(ListArgs {
                path: None,
                all: false,
                raw: "-l".into()
            }))
        );
        assert_eq!(
            parse("LIST -a -l my dir"),
            Ok(Command::List(ListArgs {
                path: Some("my dir".into()),
                all: true,
                raw: "-a -l my dir".into()
            }))
        );
        assert_eq!(
            parse("NLST -foo"),
            Ok(Command::Nlst(ListArgs {
                path: Some("-foo".into()),
                all: false,
                raw: "-foo".into()
            }))
        );
    }

    #[test]
    fn rest_offsets() {
        assert_eq!(parse("REST 0"), Ok(Command::Rest(0)));
        assert_eq!(parse("REST 123"), Ok(Command::Rest(123)));
        assert_eq!(parse("REST -1"), Err(501));
        assert_eq!(parse("REST 99999999999999999999999"), Err(501));
        assert_eq!(parse("REST"), Err(501));
    }

    #[test]
    fn epsv_and_eprt() {
        assert_eq!(parse("EPSV"), Ok(Command::Epsv(EpsvArg::Any)));
        assert_eq!(parse("EPSV ALL"), Ok(Command::Epsv(EpsvArg::All)));
        assert_eq!(parse("EPSV 2"), Ok(Command::Epsv(EpsvArg::Protocol(2))));
        assert_eq!(parse("EPSV 3"), Err(522));
        assert_eq!(
            parse("EPRT |1|127.0.0.1|2000|"),
            Ok(Command::Eprt("127.0.0.1:2000".parse().unwrap()))
        );
        assert_eq!(parse("EPRT |3|x|2000|"), Err(522));
        assert_eq!(parse("EPRT junk"), Err(501));
        assert_eq!(parse("PORT 1,2,3"), Err(501));
    }

    #[test]
    fn mfmt_and_opts() {
        assert!(
            matches!(parse("MFMT 20200101000000 a b"), Ok(Command::Mfmt { path, .. }) if path == "a b")
        );
        assert_eq!(parse("MFMT 2020 a"), Err(501));
        assert_eq!(
            parse("OPTS utf8 on"),
            Ok(Command::Opts {
                name: "UTF8".into(),
                value: "on".into()
            })
        );
        assert_eq!(
            parse("OPTS MLST type;size;"),
            Ok(Command::Opts {
                name: "MLST".into(),
                value: "type;size;".into()
            })
        );
    }

    #[test]
    fn table_has_unique_verbs_and_help() {
        for (i, a) in COMMANDS.iter().enumerate() {
            assert!(!a.help.is_empty());
            assert_eq!(a.verb, a.verb.to_ascii_uppercase());
            for b in &COMMANDS[i + 1..] {
                assert_ne!(a.verb, b.verb);
            }
        }
    }

    #[test]
    fn transfer_flags() {
        let transfers: Vec<_> = COMMANDS
            .iter()
            .filter(|c| c.transfer)
            .map(|c| c.verb)
            .collect();
        assert_eq!(
            transfers,
            [
                "RETR", "STOR", "STOU", "APPE", "LIST", "NLST", "MLSD", "HASH", "XCRC", "XMD5",
                "XSHA1", "XSHA256", "XSHA512", "COMB"
            ]
        );
    }

    #[test]
    fn only_four_commands_run_during_a_transfer() {
        let during: Vec<_> = COMMANDS
            .iter()
            .filter(|c| c.during_transfer)
            .map(|c| c.verb)
            .collect();
        assert_eq!(during, ["QUIT", "ABOR", "STAT", "NOOP"]);
    }
}
