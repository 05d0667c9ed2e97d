//! Access control: USER, PASS and the authenticator's answer, REIN, QUIT, and HOST (RFC 7151)
//! with the engine's answer.

use super::{DataSetup, Login, LoginFailure, Session, SessionUser, Step, reply};
use crate::backend::Facts;
use crate::command::Password;
use crate::path::VirtualPath;
use crate::reply::{Reply, ReplyCode};

impl Session {
    /// RFC 959 USER: the reply is the same for every name, so names cannot be probed.
    pub(super) fn user(&mut self, name: String) -> Step {
        if self.is_logged_in() {
            return reply(
                ReplyCode::NotLoggedIn,
                "Already logged in; use REIN to change user",
            );
        }
        if self.config.tls.required_for_login && !self.secure {
            return reply(
                ReplyCode::NotLoggedIn,
                "TLS is required: use AUTH TLS before logging in",
            );
        }
        self.login = Login::AwaitingPassword { user: name };
        reply(ReplyCode::NeedPassword, "Password required")
    }

    /// RFC 959 PASS: the engine checks the credentials ([`Step::Authenticate`]) and answers
    /// with [`Session::handle_auth_result`].
    pub(super) fn pass(&mut self, password: Password) -> Step {
        match std::mem::replace(&mut self.login, Login::Authenticating) {
            Login::AwaitingPassword { user } => Step::Authenticate { user, password },
            Login::LoggedIn(user) => {
                self.login = Login::LoggedIn(user);
                reply(ReplyCode::BadSequence, "Already logged in")
            }
            Login::AwaitingUser | Login::Authenticating => {
                self.login = Login::AwaitingUser;
                reply(ReplyCode::BadSequence, "Send USER first")
            }
        }
    }

    /// The authenticator's answer to [`Step::Authenticate`]. A rejection gives the same reply
    /// whatever the reason (unknown user or wrong password); an authenticator that could not
    /// decide closes the connection with 421 and is not counted as a failed login.
    pub fn handle_auth_result(&mut self, result: Result<SessionUser, LoginFailure>) -> Step {
        match result {
            Ok(user) if user.tls_required && !self.secure => {
                self.login = Login::AwaitingUser;
                reply(
                    ReplyCode::NotLoggedIn,
                    "This account requires TLS: use AUTH TLS before logging in",
                )
            }
            Ok(user) => {
                let text = format!(
                    "User {} logged in",
                    crate::listing::display_name(&user.name)
                );
                self.login = Login::LoggedIn(user);
                self.cwd = VirtualPath::root();
                match &self.config.login_message {
                    Some(message) => {
                        let mut reply = Reply::from_text(ReplyCode::LoggedIn, message);
                        reply.lines.push(text);
                        Step::Reply(reply)
                    }
                    None => reply(ReplyCode::LoggedIn, text),
                }
            }
            Err(LoginFailure::Unavailable) => {
                self.login = Login::AwaitingUser;
                self.closing = true;
                reply(
                    ReplyCode::ServiceNotAvailable,
                    "Login service unavailable; try again later",
                )
            }
            Err(LoginFailure::Rejected) => {
                self.login = Login::AwaitingUser;
                self.login_failures += 1;
                if self.login_failures >= self.config.max_login_failures {
                    self.closing = true;
                    reply(
                        ReplyCode::ServiceNotAvailable,
                        "Too many failed logins; closing connection",
                    )
                } else {
                    reply(ReplyCode::NotLoggedIn, "Login incorrect")
                }
            }
        }
    }

    /// RFC 959 QUIT: if a transfer runs, its reply comes first, then 221
    /// ([`Session::handle_transfer_done`]).
    pub(super) fn quit(&mut self) -> Step {
        if let Some(running) = &mut self.transfer {
            running.quit_requested = true;
            return Step::Nothing;
        }
        self.closing = true;
        reply(ReplyCode::ClosingControl, "Goodbye")
    }

    /// RFC 959 REIN: back to the state right after connecting.
    pub(super) fn rein(&mut self) -> Step {
        self.login = Login::AwaitingUser;
        self.cwd = VirtualPath::root();
        self.transfer_type = self.config.features.default_type;
        self.rest = 0;
        self.hash_range = None;
        self.data = DataSetup::None;
        self.epsv_all = false;
        self.facts = Facts::default();
        Step::Logout(Reply::new(
            ReplyCode::ServiceReady,
            "Service ready for new user",
        ))
    }

    /// RFC 7151 HOST: before USER, on a server with virtual hosts; the engine looks the host
    /// up ([`Step::SelectHost`]) and answers with [`Session::handle_host_selected`].
    pub(super) fn host(&mut self, name: String) -> Step {
        if !self.config.virtual_hosts {
            return reply(ReplyCode::NotImplemented, "No virtual hosts on this server");
        }
        match self.login {
            Login::AwaitingUser => Step::SelectHost(name),
            _ => reply(ReplyCode::BadSequence, "HOST must come before USER"),
        }
    }

    /// The engine's answer to [`Step::SelectHost`]: the host's greeting, or `None` for an
    /// unknown host.
    pub fn handle_host_selected(&mut self, banner: Option<String>) -> Step {
        match banner {
            Some(banner) => Step::Reply(Reply::from_text(ReplyCode::ServiceReady, &banner)),
            None => reply(ReplyCode::ParameterNotImplemented, "Unknown host"),
        }
    }
}
