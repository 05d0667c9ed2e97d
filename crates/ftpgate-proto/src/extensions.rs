//! Optional commands: which are switched on ([`Features`], with the meaning of ftpserverlib's
//! settings), and how HASH names the digests it offers. What the user's storage can do
//! ([`Capabilities`](crate::backend::Capabilities)) is in [`backend`](crate::backend).

use crate::backend::HashAlgorithm;
use crate::command::TransferType;

/// Switches for optional commands and behaviours. A switched-off command answers 502 and is
/// not advertised in FEAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// HASH, RANG and XCRC/XMD5/XSHA1/XSHA256/XSHA512 (ftpserverlib's EnableHASH). On by
    /// default: hashing is bounded (one at a time per session, a server-wide limit, abortable).
    pub hash: bool,
    /// MLSD (the opposite of DisableMLSD).
    pub mlsd: bool,
    /// MLST (DisableMLST).
    pub mlst: bool,
    /// MFMT and MFF (DisableMFMT).
    pub mfmt: bool,
    /// SITE (DisableSite).
    pub site: bool,
    /// STAT (DisableSTAT).
    pub stat: bool,
    /// SYST (DisableSYST).
    pub syst: bool,
    /// `ls` options such as `-la` in LIST and NLST (DisableLISTArgs): when off, the whole
    /// argument is the path.
    pub list_args: bool,
    /// AVBL.
    pub avbl: bool,
    /// MODE Z (deflate on data connections). Off by default.
    pub mode_z: bool,
    /// COMB: concatenate uploaded parts into one file (EnableCOMB). Off by default.
    pub comb: bool,
    /// The transfer type before any TYPE command (DefaultTransferType; RFC 959 says ASCII).
    pub default_type: TransferType,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            hash: true,
            mlsd: true,
            mlst: true,
            mfmt: true,
            site: true,
            stat: true,
            syst: true,
            list_args: true,
            avbl: true,
            mode_z: false,
            comb: false,
            default_type: TransferType::Ascii,
        }
    }
}

impl Features {
    /// Whether `verb` (any case) is switched on: the switch of its command table entry
    /// ([`CommandSpec::switch`](crate::command::CommandSpec::switch)).
    pub fn allows(&self, verb: &str) -> bool {
        crate::command::lookup(verb).is_none_or(|spec| spec.is_on(self))
    }
}

/// How HASH's FEAT line names the algorithms.
impl HashAlgorithm {
    /// The FEAT line: `HASH SHA-256*;SHA-512;SHA-1;MD5;CRC32`, the selected one starred.
    pub fn feat_line(selected: HashAlgorithm) -> String {
        let names: Vec<String> = Self::ALL
            .iter()
            .map(|a| {
                if *a == selected {
                    format!("{}*", a.name())
                } else {
                    a.name().to_string()
                }
            })
            .collect();
        format!("HASH {}", names.join(";"))
    }
}

/// Arguments of COMB: names separated by spaces, each optionally in double quotes (which
/// may hold spaces). `None` for an unterminated quote.
pub fn parse_quoted_names(arg: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut rest = arg.trim_start();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let (name, tail) = quoted.split_once('"')?;
            names.push(name.to_string());
            rest = tail.trim_start();
        } else {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            names.push(name.to_string());
            rest = tail.trim_start();
        }
    }
    Some(names)
}

/// Arguments of the legacy digest commands: `XCRC "name" [start [end]]`, or unquoted
/// `XCRC name` / `XCRC name start end` (two trailing numbers are a range only when both are
/// there, so a name ending in a number stays a name).
pub fn parse_legacy_hash_args(arg: &str) -> Option<(String, Option<u64>, Option<u64>)> {
    let arg = arg.trim_start();
    if let Some(rest) = arg.strip_prefix('"') {
        let (name, tail) = rest.split_once('"')?;
        let mut numbers = tail.split_whitespace().map(str::parse::<u64>);
        let start = numbers.next().transpose().ok()?;
        let end = numbers.next().transpose().ok()?;
        if numbers.next().is_some() || name.is_empty() {
            return None;
        }
        return Some((name.to_string(), start, end));
    }
    let words: Vec<&str> = arg.rsplitn(3, ' ').collect();
    if let [end, start, name] = words[..] {
        if let (Ok(start), Ok(end)) = (start.parse::<u64>(), end.parse::<u64>()) {
            if !name.is_empty() {
                return Some((name.to_string(), Some(start), Some(end)));
            }
        }
    }
    if arg.is_empty() {
        None
    } else {
        Some((arg.to_string(), None, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_by_name() {
        assert_eq!(
            HashAlgorithm::from_name("sha-512"),
            Some(HashAlgorithm::Sha512)
        );
        assert_eq!(
            HashAlgorithm::from_name("CRC32"),
            Some(HashAlgorithm::Crc32)
        );
        assert_eq!(HashAlgorithm::from_name("SHA-3"), None);
        assert_eq!(
            HashAlgorithm::feat_line(HashAlgorithm::Sha256),
            "HASH SHA-256*;SHA-512;SHA-1;MD5;CRC32"
        );
    }

    #[test]
    fn legacy_arguments() {
        assert_eq!(
            parse_legacy_hash_args("a file"),
            Some(("a file".into(), None, None))
        );
        assert_eq!(
            parse_legacy_hash_args("file 10"),
            Some(("file 10".into(), None, None))
        );
        assert_eq!(
            parse_legacy_hash_args("my file 0 99"),
            Some(("my file".into(), Some(0), Some(99)))
        );
        assert_eq!(
            parse_legacy_hash_args("\"my file 2\" 5"),
            Some(("my file 2".into(), Some(5), None))
        );
        assert_eq!(parse_legacy_hash_args("\"unterminated"), None);
        assert_eq!(parse_legacy_hash_args(""), None);
    }

    #[test]
    fn quoted_names() {
        assert_eq!(
            parse_quoted_names("\"big file\" part.1 \"part 2\""),
            Some(vec!["big file".into(), "part.1".into(), "part 2".into()])
        );
        assert_eq!(
            parse_quoted_names("a  b"),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(parse_quoted_names("\"open"), None);
    }

    #[test]
    fn switches() {
        let mut f = Features::default();
        assert!(f.allows("XSHA256") && f.allows("RETR"));
        f.hash = false;
        assert!(!f.allows("HASH") && !f.allows("XCRC"));
    }
}
