//! FTP replies: the codes RFC 959, 2228, 2428 and 3659 define, and their encoding.

use std::fmt;

/// A reply code, named after its meaning in the RFCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
#[non_exhaustive]
pub enum ReplyCode {
    /// 125 Data connection already open; transfer starting.
    DataConnectionAlreadyOpen = 125,
    /// 150 File status okay; about to open data connection.
    FileStatusOk = 150,
    /// 200 Command okay.
    CommandOk = 200,
    /// 202 Command not implemented, superfluous at this site.
    Superfluous = 202,
    /// 211 System status, or system help reply.
    SystemStatus = 211,
    /// 212 Directory status.
    DirectoryStatus = 212,
    /// 213 File status.
    FileStatus = 213,
    /// 214 Help message.
    HelpMessage = 214,
    /// 215 NAME system type.
    SystemType = 215,
    /// 220 Service ready for new user.
    ServiceReady = 220,
    /// 221 Service closing control connection.
    ClosingControl = 221,
    /// 225 Data connection open; no transfer in progress.
    DataConnectionOpen = 225,
    /// 226 Closing data connection; requested file action successful.
    ClosingDataConnection = 226,
    /// 227 Entering Passive Mode (h1,h2,h3,h4,p1,p2).
    EnteringPassiveMode = 227,
    /// 229 Entering Extended Passive Mode (|||port|).
    EnteringExtendedPassiveMode = 229,
    /// 234 Security data exchange complete (AUTH TLS accepted, RFC 2228).
    SecurityExchangeComplete = 234,
    /// 230 User logged in, proceed.
    LoggedIn = 230,
    /// 250 Requested file action okay, completed.
    FileActionOk = 250,
    /// 257 "PATHNAME" created.
    PathCreated = 257,
    /// 331 User name okay, need password.
    NeedPassword = 331,
    /// 350 Requested file action pending further information.
    PendingFurtherInformation = 350,
    /// 421 Service not available, closing control connection.
    ServiceNotAvailable = 421,
    /// 425 Can't open data connection.
    CantOpenDataConnection = 425,
    /// 426 Connection closed; transfer aborted.
    TransferAborted = 426,
    /// 450 Requested file action not taken; file unavailable (busy).
    FileBusy = 450,
    /// 451 Requested action aborted: local error in processing.
    LocalError = 451,
    /// 452 Requested action not taken; insufficient storage space in system.
    InsufficientStorage = 452,
    /// 500 Syntax error, command unrecognized (also: line too long).
    SyntaxError = 500,
    /// 501 Syntax error in parameters or arguments.
    ArgumentSyntaxError = 501,
    /// 502 Command not implemented.
    NotImplemented = 502,
    /// 503 Bad sequence of commands.
    BadSequence = 503,
    /// 504 Command not implemented for that parameter.
    ParameterNotImplemented = 504,
    /// 522 Network protocol not supported (RFC 2428).
    NetworkProtocolNotSupported = 522,
    /// 521 Data connection cannot be opened with this PROT setting (RFC 4217).
    DataProtectionRequired = 521,
    /// 530 Not logged in.
    NotLoggedIn = 530,
    /// 533 Command protection level denied for policy reasons (RFC 2228).
    ProtectionDenied = 533,
    /// 534 Request denied for policy reasons (RFC 2228).
    DeniedByPolicy = 534,
    /// 536 Requested PROT level not supported by mechanism (RFC 2228).
    ProtectionLevelNotSupported = 536,
    /// 550 Requested action not taken; file unavailable (not found, no access).
    FileUnavailable = 550,
    /// 551 Requested action aborted: page type unknown.
    PageTypeUnknown = 551,
    /// 552 Requested file action aborted; exceeded storage allocation.
    ExceededStorage = 552,
    /// 553 Requested action not taken; file name not allowed.
    FileNameNotAllowed = 553,
    /// 554 Requested action not taken: invalid REST parameter (RFC 3659).
    InvalidRestParameter = 554,
}

impl ReplyCode {
    /// The three-digit number.
    pub fn number(self) -> u16 {
        self as u16
    }

    /// Whether this is a positive preliminary reply (1yz): more replies follow.
    pub fn is_preliminary(self) -> bool {
        self.number() < 200
    }
}

/// One reply: a code and one or more lines of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The code.
    pub code: ReplyCode,
    /// The text lines; a reply with more than one line is sent in the multi-line form.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: ReplyCode, text: impl Into<String>) -> Self {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply: `first`, then each of `middle`, then `last`.
    pub fn multiline(
        code: ReplyCode,
        first: impl Into<String>,
        middle: impl IntoIterator<Item = String>,
        last: impl Into<String>,
    ) -> Self {
        let mut lines = vec![first.into()];
        lines.extend(middle);
        lines.push(last.into());
        Reply { code, lines }
    }

    /// A reply whose text may span several lines (a configured greeting or message): each line
    /// of `text` (split at LF, a CR before it dropped) is one line of the reply, so text of more
    /// than one line is sent in the multi-line form. Trailing empty lines are left out.
    pub fn from_text(code: ReplyCode, text: &str) -> Self {
        let mut lines: Vec<String> = text
            .split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line).to_string())
            .collect();
        while lines.len() > 1 && lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        Reply { code, lines }
    }

    /// Appends the wire form of this reply to `out`.
    ///
    /// RFC 959 section 4.2: a multi-line reply starts with `code-` and ends with `code `; lines
    /// in between are indented by one space, so none can be mistaken for the end. CR and LF
    /// inside a text line are replaced, so text can never forge a reply line.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // Every code has three digits (100-599).
        let n = self.code.number();
        let code = [n / 100 % 10, n / 10 % 10, n % 10].map(|d| b'0' + d as u8);
        let last = self.lines.len().saturating_sub(1);
        if self.lines.is_empty() {
            out.extend_from_slice(&code);
            out.extend_from_slice(b" \r\n");
            return;
        }
        for (i, text) in self.lines.iter().enumerate() {
            if i == 0 || i == last {
                out.extend_from_slice(&code);
            }
            out.push(if i == 0 && i != last { b'-' } else { b' ' });
            out.extend(
                text.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form of this reply.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(&self.encode()).trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line() {
        assert_eq!(
            Reply::new(ReplyCode::CommandOk, "OK").encode(),
            b"200 OK\r\n"
        );
    }

    #[test]
    fn multi_line_indents_middle_lines() {
        let r = Reply::multiline(
            ReplyCode::SystemStatus,
            "Features:",
            ["UTF8".to_string(), "211 looks like an end".to_string()],
            "End",
        );
        assert_eq!(
            r.encode(),
            b"211-Features:\r\n UTF8\r\n 211 looks like an end\r\n211 End\r\n"
        );
    }

    #[test]
    fn text_of_several_lines_is_a_multi_line_reply() {
        assert_eq!(
            Reply::from_text(
                ReplyCode::ServiceReady,
                "Welcome\r\nto ftpgate\nBe nice\n\n"
            )
            .encode(),
            b"220-Welcome\r\n to ftpgate\r\n220 Be nice\r\n"
        );
        assert_eq!(
            Reply::from_text(ReplyCode::ServiceReady, "ftpgate ready").encode(),
            b"220 ftpgate ready\r\n"
        );
        assert_eq!(
            Reply::from_text(ReplyCode::ServiceReady, "").encode(),
            b"220 \r\n"
        );
    }

    #[test]
    fn text_cannot_inject_a_line() {
        let r = Reply::new(ReplyCode::FileUnavailable, "a\r\n230 fake");
        assert_eq!(r.encode(), b"550 a  230 fake\r\n");
    }

    #[test]
    fn preliminary_codes() {
        assert!(ReplyCode::FileStatusOk.is_preliminary());
        assert!(!ReplyCode::ClosingDataConnection.is_preliminary());
    }
}
