//! The inputs that end a session from outside its command dialogue: the engine's idle and login
//! deadlines, server shutdown, and a ban of the client's address after failed logins. Each
//! returns the reply to send, the last one, and leaves the session closing
//! ([`Session::wants_close`]).

use super::Session;
use crate::reply::{Reply, ReplyCode};

impl Session {
    /// The idle or login deadline passed (the engine keeps both, and none while a transfer
    /// runs): before login it was the login timeout, after it the idle timeout.
    pub fn handle_timeout(&mut self) -> Reply {
        let text = if self.is_logged_in() {
            "Idle timeout; closing connection"
        } else {
            "Login timeout; closing connection"
        };
        self.close_with(text)
    }

    /// The server is shutting down and no transfer of this session runs (one that runs is
    /// finished first).
    pub fn handle_shutdown(&mut self) -> Reply {
        self.close_with("Server shutting down; closing connection")
    }

    /// The client's address was banned after repeated failed logins (after the reply to the
    /// failed login itself).
    pub fn handle_ban(&mut self) -> Reply {
        self.close_with("Too many failed logins from your address; try again later")
    }

    /// The server's operator ended the session (a running transfer was aborted first, as ABOR
    /// would).
    pub fn handle_ended_by_operator(&mut self) -> Reply {
        self.close_with("Session ended by the server's administrator; closing connection")
    }

    /// A direct connection to a server behind a load balancer began with a PROXY header: the
    /// peer is not one trusted to send it, so the header is a forgery and is not believed.
    pub fn handle_forged_proxy_header(&mut self) -> Reply {
        self.close_with("PROXY header from an address not trusted to send one; closing connection")
    }

    fn close_with(&mut self, text: &str) -> Reply {
        self.closing = true;
        Reply::new(ReplyCode::ServiceNotAvailable, text)
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::Capabilities;
    use crate::perm::{PermissionMap, Permissions};
    use crate::session::{LoginFailure, Session, SessionConfig, SessionUser, Step};

    fn session() -> Session {
        Session::new(
            SessionConfig::default(),
            "127.0.0.1:40000".parse().unwrap(),
            "127.0.0.1:21".parse().unwrap(),
        )
    }

    fn logged_in() -> Session {
        let mut s = session();
        s.handle_line(b"USER alice");
        assert!(matches!(
            s.handle_line(b"PASS secret"),
            Step::Authenticate { .. }
        ));
        s.handle_auth_result(Ok(SessionUser {
            name: "alice".into(),
            permissions: PermissionMap::uniform(Permissions::ALL),
            tls_required: false,
            capabilities: Capabilities::default(),
        }));
        assert!(s.is_logged_in());
        s
    }

    fn wire(reply: &crate::Reply) -> String {
        String::from_utf8(reply.encode()).unwrap()
    }

    #[test]
    fn a_forged_proxy_header_closes_the_session() {
        let mut s = session();
        let reply = s.handle_forged_proxy_header();
        assert!(wire(&reply).starts_with("421 PROXY header from an address not trusted"));
        assert!(s.wants_close());
    }

    #[test]
    fn a_timeout_before_login_is_the_login_timeout() {
        let mut s = session();
        assert!(!s.wants_close());
        let reply = s.handle_timeout();
        assert_eq!(wire(&reply), "421 Login timeout; closing connection\r\n");
        assert!(s.wants_close());
    }

    #[test]
    fn a_timeout_after_login_is_the_idle_timeout() {
        let mut s = logged_in();
        let reply = s.handle_timeout();
        assert_eq!(wire(&reply), "421 Idle timeout; closing connection\r\n");
        assert!(s.wants_close());
    }

    #[test]
    fn a_timeout_after_rein_is_the_login_timeout_again() {
        let mut s = logged_in();
        s.handle_line(b"REIN");
        assert_eq!(
            wire(&s.handle_timeout()),
            "421 Login timeout; closing connection\r\n"
        );
    }

    #[test]
    fn shutdown_closes_with_421() {
        for mut s in [session(), logged_in()] {
            let reply = s.handle_shutdown();
            assert_eq!(
                wire(&reply),
                "421 Server shutting down; closing connection\r\n"
            );
            assert!(s.wants_close());
        }
    }

    #[test]
    fn an_operator_ends_a_session_with_421() {
        for mut s in [session(), logged_in()] {
            let reply = s.handle_ended_by_operator();
            assert_eq!(
                wire(&reply),
                "421 Session ended by the server's administrator; closing connection\r\n"
            );
            assert!(s.wants_close());
        }
    }

    #[test]
    fn the_last_command_is_the_table_entry_of_the_last_line() {
        let mut s = session();
        assert!(s.last_command().is_none());
        s.handle_line(b"USER alice");
        let spec = s.last_command().unwrap();
        assert_eq!(spec.verb, "USER");
        assert!(std::ptr::eq(&crate::command::COMMANDS[spec.index()], spec));
        s.handle_line(b"XYZZY");
        assert!(s.last_command().is_none());
        s.handle_line(b"noop");
        assert_eq!(s.last_command().unwrap().verb, "NOOP");
    }

    #[test]
    fn a_ban_follows_the_failed_login_reply() {
        let mut s = session();
        s.handle_line(b"USER mallory");
        assert!(matches!(
            s.handle_line(b"PASS guess"),
            Step::Authenticate { .. }
        ));
        match s.handle_auth_result(Err(LoginFailure::Rejected)) {
            Step::Reply(reply) => assert_eq!(reply.code.number(), 530),
            other => panic!("expected a reply, got {other:?}"),
        }
        assert!(!s.wants_close());
        let reply = s.handle_ban();
        assert_eq!(
            wire(&reply),
            "421 Too many failed logins from your address; try again later\r\n"
        );
        assert!(s.wants_close());
    }
}
