//! Informational commands: STAT, HELP, FEAT, OPTS, LANG and CLNT (SYST and NOOP are one
//! reply each, in [`Session::handle_command`]).

use super::transfers::describe;
use super::{Login, Running, Session, Step, reply};
use crate::backend::{Facts, HashAlgorithm};
use crate::command::{COMMANDS, CommandSpec, FeatContext, TransferType};
use crate::reply::{Reply, ReplyCode};

impl Session {
    /// RFC 959 STAT: during a transfer its progress ([`Step::TransferStatus`]), without a path
    /// the session's status, with one a listing over the control connection
    /// ([`Step::StatListing`]).
    pub(super) fn stat(&mut self, spec: &CommandSpec, arg: Option<String>) -> Step {
        if self.transfer.is_some() {
            return Step::TransferStatus;
        }
        let Some(arg) = arg else {
            return Step::Reply(self.status_reply(None));
        };
        if !self.is_logged_in() {
            return reply(
                ReplyCode::NotLoggedIn,
                "Please log in with USER and PASS first",
            );
        }
        match self.target(&arg, spec.perm.as_slice()) {
            Ok(path) => Step::StatListing { path },
            Err(step) => step,
        }
    }

    /// The 211 reply to STAT without a path; during a transfer, `progress` is the bytes moved.
    pub fn status_reply(&self, progress: Option<u64>) -> Reply {
        let mut lines = vec![format!("Connected to {}", self.peer.ip())];
        match &self.login {
            Login::LoggedIn(user) => lines.push(format!(
                "Logged in as {}",
                crate::listing::display_name(&user.name)
            )),
            _ => lines.push("Not logged in".to_string()),
        }
        lines.push(format!(
            "TYPE: {}, STRUcture: File, MODE: {}",
            if self.transfer_type == TransferType::Ascii {
                "ASCII"
            } else {
                "BINARY"
            },
            if self.compressed { "Deflate" } else { "Stream" }
        ));
        match (&self.transfer, progress) {
            (Some(Running { plan, .. }), bytes) => lines.push(format!(
                "Transfer in progress: {}, {} bytes so far",
                describe(&plan.kind),
                bytes.unwrap_or(0)
            )),
            (None, _) => lines.push("No data connection".to_string()),
        }
        Reply::multiline(
            ReplyCode::SystemStatus,
            "ftpgate status:",
            lines,
            "End of status",
        )
    }

    /// RFC 959 HELP: the verbs, or one command's syntax, from the command table.
    pub(super) fn help(&self, topic: Option<String>) -> Step {
        match topic {
            Some(verb) => match crate::command::lookup(&verb) {
                Some(spec) => reply(ReplyCode::HelpMessage, format!("Syntax: {}", spec.help)),
                None => reply(ReplyCode::ArgumentSyntaxError, "Unknown command"),
            },
            None => {
                let verbs: Vec<&str> = COMMANDS.iter().map(|c| c.verb).collect();
                let lines = verbs.chunks(8).map(|chunk| {
                    chunk
                        .iter()
                        .map(|v| format!("{v:<5}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                });
                Step::Reply(Reply::multiline(
                    ReplyCode::HelpMessage,
                    "The following commands are recognized:",
                    lines,
                    "Help OK",
                ))
            }
        }
    }

    /// RFC 2389 FEAT: one line per extension, from the command table.
    pub(super) fn feat(&self) -> Step {
        let capabilities = self.capabilities();
        let context = FeatContext {
            features: &self.config.features,
            capabilities: &capabilities,
            tls_available: self.config.tls.available,
            ccc_allowed: self.config.tls.allow_ccc,
            virtual_hosts: self.config.virtual_hosts,
            facts: self.facts,
            hash_algorithm: self.hash_algorithm,
        };
        let mut lines: Vec<String> = COMMANDS
            .iter()
            .filter_map(|spec| spec.feat_line(&context))
            .collect();
        lines.push("TVFS".to_string());
        lines.sort();
        Step::Reply(Reply::multiline(
            ReplyCode::SystemStatus,
            "Features:",
            lines,
            "End",
        ))
    }

    /// RFC 2389 OPTS.
    pub(super) fn opts(&mut self, name: &str, value: &str) -> Step {
        match name {
            "UTF8" | "UTF-8" => match value.to_ascii_uppercase().as_str() {
                "" | "ON" => reply(ReplyCode::CommandOk, "Always in UTF8 mode"),
                "OFF" => reply(
                    ReplyCode::ParameterNotImplemented,
                    "UTF8 cannot be turned off",
                ),
                _ => reply(ReplyCode::ArgumentSyntaxError, "Use OPTS UTF8 ON"),
            },
            "MLST" => {
                self.facts = Facts::select(value);
                reply(
                    ReplyCode::CommandOk,
                    format!("MLST OPTS {}", self.selected_facts().names()),
                )
            }
            "HASH" if self.config.features.hash => {
                if value.is_empty() {
                    return reply(ReplyCode::CommandOk, self.hash_algorithm.name());
                }
                match HashAlgorithm::from_name(value) {
                    Some(algorithm) => {
                        self.hash_algorithm = algorithm;
                        reply(ReplyCode::CommandOk, algorithm.name())
                    }
                    None => reply(
                        ReplyCode::ParameterNotImplemented,
                        "Unknown algorithm; see FEAT",
                    ),
                }
            }
            _ => reply(ReplyCode::ArgumentSyntaxError, "Unknown option"),
        }
    }

    /// RFC 2640 LANG: English only.
    pub(super) fn lang(&self, tag: Option<&str>) -> Step {
        match tag {
            None | Some("EN") => reply(ReplyCode::CommandOk, "Using EN"),
            Some(tag) if tag.starts_with("EN-") => reply(ReplyCode::CommandOk, "Using EN"),
            Some(_) => reply(
                ReplyCode::ParameterNotImplemented,
                "Language not supported; EN only",
            ),
        }
    }

    /// CLNT: the client's name, kept for the log.
    pub(super) fn clnt(&mut self, name: String) -> Step {
        self.client_name = Some(name);
        reply(ReplyCode::CommandOk, "Noted")
    }
}
