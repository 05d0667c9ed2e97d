//! SITE and its subcommands: HELP, CHMOD, UTIME, MKDIR, RMDIR and SYMLINK, and the end of
//! their storage calls.

use std::time::SystemTime;

use super::files::permission_bits_only;
use super::{Pending, Session, Step, StorageOp, StorageOutcome, reply};
use crate::backend::StorageErrorKind;
use crate::path::VirtualPath;
use crate::perm::Perm;
use crate::reply::{Reply, ReplyCode};

impl Session {
    /// SITE HELP, CHMOD, UTIME, MKDIR, RMDIR and SYMLINK. A subcommand the storage cannot run
    /// never gets here: the SITE entry of the command table names what each needs
    /// (`sub_needs`), and `handle_command` refuses it.
    pub(super) fn site(&mut self, arg: &str) -> Step {
        let (sub, rest) = arg.split_once(' ').unwrap_or((arg, ""));
        let rest = rest.trim_start();
        let sub = sub.to_ascii_uppercase();
        self.verb = match sub.as_str() {
            "CHMOD" => "SITE CHMOD",
            "UTIME" => "SITE UTIME",
            "MKDIR" => "SITE MKDIR",
            "RMDIR" => "SITE RMDIR",
            "SYMLINK" => "SITE SYMLINK",
            _ => "SITE",
        };
        match sub.as_str() {
            "HELP" => Step::Reply(Reply::multiline(
                ReplyCode::HelpMessage,
                "The following SITE commands are recognized:",
                [
                    "CHMOD <sp> mode <sp> pathname".to_string(),
                    "UTIME <sp> pathname <sp> YYYYMMDDHHMMSS".to_string(),
                    "UTIME <sp> YYYYMMDDHHMMSS <sp> pathname".to_string(),
                    "MKDIR <sp> pathname".to_string(),
                    "RMDIR <sp> pathname".to_string(),
                    "SYMLINK <sp> target <sp> link".to_string(),
                    "HELP".to_string(),
                ],
                "Help OK",
            )),
            "CHMOD" => {
                let Some((mode, name)) = rest.split_once(' ') else {
                    return reply(ReplyCode::ArgumentSyntaxError, "SITE CHMOD mode pathname");
                };
                let Some(mode) = u32::from_str_radix(mode, 8).ok().filter(|m| *m <= 0o7777) else {
                    return reply(ReplyCode::ArgumentSyntaxError, "Bad mode, expected octal");
                };
                self.mode = Some(mode);
                if let Err(step) = permission_bits_only(mode) {
                    if let Ok(path) = self.cwd.resolve(name) {
                        self.ended(path, None);
                    }
                    return step;
                }
                if !self.capabilities().set_mode {
                    // Not a refusal: the storage keeps no permission bits and is set to ignore
                    // SITE CHMOD, so the file must exist and nothing else happens (clients that
                    // set modes after each upload see no error).
                    return self.site_op(Perm::Chmod, name, |path| {
                        (
                            "SITE CHMOD ignored: this storage keeps no permissions",
                            StorageOp::Metadata(path),
                        )
                    });
                }
                self.site_op(Perm::Chmod, name, |path| {
                    (
                        "SITE CHMOD command successful",
                        StorageOp::SetMode { path, mode },
                    )
                })
            }
            "UTIME" => {
                let Some((name, time)) = parse_site_utime(rest) else {
                    return reply(
                        ReplyCode::ArgumentSyntaxError,
                        "SITE UTIME pathname YYYYMMDDHHMMSS",
                    );
                };
                self.site_op(Perm::SetTime, &name, |path| {
                    (
                        "SITE UTIME command successful",
                        StorageOp::SetModified { path, time },
                    )
                })
            }
            "MKDIR" => match self.site_target(Perm::Mkdir, rest) {
                Ok(path) => self.storage(Pending::Created(path.clone()), StorageOp::MakeDir(path)),
                Err(step) => step,
            },
            "RMDIR" => {
                if let Some(root) = self.cwd.resolve(rest).ok().filter(|p| p.is_root()) {
                    return self.refuse(root);
                }
                match self.site_target(Perm::Delete, rest) {
                    Ok(path) => self.storage(
                        Pending::Removed(path.clone(), "Directory removed"),
                        StorageOp::RemoveDir(path),
                    ),
                    Err(step) => step,
                }
            }
            "SYMLINK" => {
                let Some((target, link)) = rest.split_once(' ') else {
                    return reply(ReplyCode::ArgumentSyntaxError, "SITE SYMLINK target link");
                };
                // Both ends are paths inside the user's root, so the link cannot lead out.
                let target = match self.target(target, &[Perm::Retrieve]) {
                    Ok(target) => target,
                    Err(step) => return step,
                };
                self.site_op(Perm::Store, link, |link| {
                    (
                        "SITE SYMLINK command successful",
                        StorageOp::Symlink { target, link },
                    )
                })
            }
            _ => reply(ReplyCode::ParameterNotImplemented, "Unknown SITE command"),
        }
    }

    /// The path of a SITE subcommand, which must name one, if the user holds `perm` there.
    fn site_target(&mut self, perm: Perm, arg: &str) -> Result<VirtualPath, Step> {
        if arg.is_empty() {
            return Err(reply(ReplyCode::ArgumentSyntaxError, "A path is required"));
        }
        self.target(arg, &[perm])
    }

    /// A SITE subcommand that answers 200 with a text once its storage call succeeds
    /// ([`Session::finish_site`]).
    fn site_op(
        &mut self,
        perm: Perm,
        arg: &str,
        call: impl FnOnce(VirtualPath) -> (&'static str, StorageOp),
    ) -> Step {
        match self.site_target(perm, arg) {
            Ok(path) => {
                let (text, op) = call(path.clone());
                self.storage(Pending::SiteDone(path, text), op)
            }
            Err(step) => step,
        }
    }

    pub(super) fn finish_site(
        &mut self,
        path: VirtualPath,
        text: &'static str,
        result: Result<StorageOutcome, StorageErrorKind>,
    ) -> Step {
        if let Err(step) = self.changed(&path, result) {
            return step;
        }
        self.ended(path, None);
        reply(ReplyCode::CommandOk, text)
    }
}

/// `SITE UTIME` arguments in the forms clients send: `path YYYYMMDDhhmm[ss]`,
/// `YYYYMMDDhhmm[ss] path`, and `path atime mtime ctime UTC` (the modification time is used).
fn parse_site_utime(arg: &str) -> Option<(String, SystemTime)> {
    let is_time =
        |w: &str| (w.len() == 12 || w.len() == 14) && w.bytes().all(|b| b.is_ascii_digit());
    let time_of = |w: &str| {
        let full = if w.len() == 12 {
            format!("{w}00")
        } else {
            w.to_string()
        };
        crate::listing::parse_timeval(&full)
    };
    let words: Vec<&str> = arg.split(' ').collect();
    if words.len() >= 5 && words[words.len() - 1].eq_ignore_ascii_case("UTC") {
        let n = words.len();
        if words[n - 4..n - 1].iter().all(|w| is_time(w)) {
            return Some((words[..n - 4].join(" "), time_of(words[n - 3])?));
        }
    }
    if let Some((first, rest)) = arg.split_once(' ') {
        if is_time(first) && !rest.is_empty() {
            return Some((rest.to_string(), time_of(first)?));
        }
    }
    let (rest, last) = arg.rsplit_once(' ')?;
    if is_time(last) && !rest.is_empty() {
        return Some((rest.to_string(), time_of(last)?));
    }
    None
}
