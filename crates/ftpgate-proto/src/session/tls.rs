//! FTP over TLS (RFC 4217): AUTH, PBSZ, PROT, CCC, and the engine's reports that the control
//! connection became TLS or clear again.

use super::{Login, Session, Step, reply};
use crate::command::Protection;
use crate::reply::{Reply, ReplyCode};

impl Session {
    /// RFC 4217 AUTH TLS (and its synonyms). Anything the client sent after it in the same
    /// packet is dropped by the engine before the handshake.
    pub(super) fn auth(&mut self) -> Step {
        if !self.config.tls.available {
            return reply(
                ReplyCode::NotImplemented,
                "TLS is not configured on this server",
            );
        }
        if self.secure {
            return reply(ReplyCode::BadSequence, "Already using TLS");
        }
        if !self.is_logged_in() {
            self.login = Login::AwaitingUser;
        }
        Step::UpgradeTls(Reply::new(
            ReplyCode::SecurityExchangeComplete,
            "AUTH TLS successful",
        ))
    }

    /// The control connection is now TLS ([`Step::UpgradeTls`], or an implicit FTPS
    /// listener). On an implicit FTPS listener data connections are protected from the start,
    /// as clients of implicit FTPS expect.
    pub fn handle_tls_established(&mut self, implicit: bool) {
        self.secure = true;
        if implicit {
            self.pbsz = true;
            self.protection = Protection::Private;
        }
    }

    /// RFC 4217 PBSZ: always 0 (TLS needs no buffer size).
    pub(super) fn pbsz(&mut self) -> Step {
        if !self.secure {
            return reply(ReplyCode::BadSequence, "PBSZ needs AUTH TLS first");
        }
        self.pbsz = true;
        reply(ReplyCode::CommandOk, "PBSZ=0")
    }

    /// RFC 4217 PROT.
    pub(super) fn prot(&mut self, level: Protection) -> Step {
        if !self.secure {
            return reply(ReplyCode::BadSequence, "PROT needs AUTH TLS first");
        }
        if !self.pbsz {
            return reply(ReplyCode::BadSequence, "PROT needs PBSZ first");
        }
        if level == Protection::Clear
            && (self.config.tls.required_for_data || self.user_requires_tls())
        {
            return reply(
                ReplyCode::DeniedByPolicy,
                "Data connections must be protected (PROT P)",
            );
        }
        self.protection = level;
        match level {
            Protection::Clear => reply(ReplyCode::CommandOk, "Protection level set to C"),
            Protection::Private => reply(ReplyCode::CommandOk, "Protection level set to P"),
        }
    }

    /// RFC 4217 CCC: back to a clear control connection, where the policy allows it.
    pub(super) fn ccc(&mut self) -> Step {
        if !self.secure {
            return reply(
                ReplyCode::ProtectionDenied,
                "The control connection is not protected",
            );
        }
        if !self.config.tls.allow_ccc
            || self.config.tls.required_for_login
            || self.user_requires_tls()
        {
            return reply(ReplyCode::DeniedByPolicy, "CCC is not allowed here");
        }
        Step::ClearControl(Reply::new(
            ReplyCode::CommandOk,
            "Control connection is now clear",
        ))
    }

    /// CCC completed ([`Step::ClearControl`]): the control connection is clear again (data
    /// protection is unchanged).
    pub fn handle_control_cleared(&mut self) {
        self.secure = false;
    }

    /// The logged-in user must use TLS.
    pub(super) fn user_requires_tls(&self) -> bool {
        matches!(&self.login, Login::LoggedIn(user) if user.tls_required)
    }
}
