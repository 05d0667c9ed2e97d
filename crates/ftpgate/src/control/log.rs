//! What the control connection logs of its commands: the command line (never a password)
//! and the one line of each file operation.

use std::time::Duration;

use ftpgate_proto::Reply;
use ftpgate_proto::session::FileOp;
use tracing::{info, warn};

use super::Control;

/// The line as it may be logged: the password of PASS is never written out.
pub(super) fn loggable(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    if text.len() >= 4 && text[..4].eq_ignore_ascii_case("PASS") {
        return "PASS ****".to_string();
    }
    text.escape_debug().to_string()
}

impl Control {
    /// The one log line of a file operation that ended with `reply`: the command, its paths,
    /// the result (`ok`, or the reply's code and text, with the storage error behind it) and,
    /// for a transfer, the bytes moved and the time taken. The session's spans add the client
    /// and the user. Server-side faults (4xx from the storage) are warnings.
    pub(super) fn log_file_op(&mut self, reply: &Reply, moved: Option<Moved>) {
        let error = self.op_error.take();
        let Some(op) = self.session.take_file_op() else {
            return;
        };
        let FileOp {
            verb,
            mut path,
            to,
            mode,
        } = op;
        let number = reply.code.number();
        let ok = number < 400;
        let (bytes, secs) = match moved {
            Some(moved) => {
                if let Some(name) = moved.unique_name {
                    path = path.parent().join(&name);
                }
                // Seconds to the millisecond, as a number (a JSON log gets `"secs":0.012`).
                let secs = (moved.took.as_secs_f64() * 1000.0).round() / 1000.0;
                (Some(moved.bytes), Some(secs))
            }
            None => (None, None),
        };
        macro_rules! file_op {
            ($level:ident) => {
                $level!(
                    command = verb,
                    path = path.as_str(),
                    to = to.as_ref().map(|p| p.as_str()),
                    mode = mode.map(|m| display(Mode(m))),
                    result = if ok { "ok" } else { "failed" },
                    code = (!ok).then_some(number),
                    reason = reply.lines.first().filter(|_| !ok).map(String::as_str),
                    error = error.as_ref().map(|e| display(&e.source)),
                    bytes,
                    secs,
                    "file operation"
                )
            };
        }
        if matches!(number, 450..=452) {
            file_op!(warn);
        } else {
            file_op!(info);
        }
    }
}

/// What a transfer moved, for its log line.
pub(super) struct Moved {
    pub(super) bytes: u64,
    pub(super) took: Duration,
    /// The name STOU chose.
    pub(super) unique_name: Option<String>,
}

/// Permission bits as `chmod` takes them: `0644`.
struct Mode(u32);

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}
