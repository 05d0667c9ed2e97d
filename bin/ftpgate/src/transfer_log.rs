//! The transfer log: one line per upload or download, complete or not, in xferlog(5) form (as
//! wu-ftpd and ProFTPD write it, for the tools that read those) or as JSON.
//!
//! A session never waits for the disk: [`TransferLog::record`] puts the record on a bounded
//! channel and returns; a writer thread formats and appends the lines. When the channel is
//! full (the disk stalled), records are dropped and counted, with a warning. SIGHUP
//! ([`TransferLog::reopen`]) makes the writer open the file again at its path.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Local, Utc};
use ftpgate::{Direction, TransferRecord};
use tokio::sync::mpsc;
use tracing::{error, warn};

use crate::config::TransferLogFormat;

/// Records waiting for the writer; beyond this they are dropped.
const QUEUE: usize = 10_000;

/// What the writer thread is sent.
enum Message {
    Record(Box<TransferRecord>, DateTime<Utc>),
    /// Open the file again (SIGHUP).
    Reopen,
}

/// The handle sessions (through the event handler) and the signal task use.
pub(crate) struct TransferLog {
    tx: mpsc::Sender<Message>,
    dropped: AtomicU64,
}

impl TransferLog {
    /// Opens (creates, appends to) `path` and starts the writer thread.
    pub(crate) fn start(path: PathBuf, format: TransferLogFormat) -> io::Result<Arc<TransferLog>> {
        let file = open(&path)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("transfer-log".to_string())
            .spawn(move || write_lines(rx, path, file, format))?;
        Ok(Arc::new(TransferLog {
            tx,
            dropped: AtomicU64::new(0),
        }))
    }

    /// Queues a record; never waits.
    pub(crate) fn record(&self, record: &TransferRecord) {
        let message = Message::Record(Box::new(record.clone()), Utc::now());
        if self.tx.try_send(message).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // One warning for the first drop, then one per thousand.
            if dropped == 1 || dropped % 1000 == 0 {
                warn!(
                    dropped,
                    "transfer log: the writer is behind; records dropped"
                );
            }
        }
    }

    /// Records dropped so far because the writer was behind.
    #[allow(dead_code)] // for the metrics endpoint
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Makes the writer open the file again at its path.
    pub(crate) fn reopen(&self) {
        if self.tx.try_send(Message::Reopen).is_err() {
            warn!("transfer log: the writer is behind; the file is not reopened");
        }
    }
}

fn open(path: &std::path::Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// The writer thread: formats and appends each record until every sender is gone.
fn write_lines(
    mut rx: mpsc::Receiver<Message>,
    path: PathBuf,
    mut file: File,
    format: TransferLogFormat,
) {
    while let Some(message) = rx.blocking_recv() {
        match message {
            Message::Record(record, at) => {
                let line = match format {
                    TransferLogFormat::Xferlog => xferlog_line(&record, at.with_timezone(&Local)),
                    TransferLogFormat::Json => json_line(&record, at),
                };
                if let Err(e) = file.write_all(line.as_bytes()) {
                    error!(path = %path.display(), error = %e, "transfer log: cannot write");
                }
            }
            Message::Reopen => match open(&path) {
                Ok(fresh) => file = fresh,
                Err(e) => {
                    error!(path = %path.display(), error = %e, "transfer log: cannot reopen; writing to the old file")
                }
            },
        }
    }
}

/// One xferlog(5) line (with its newline): current-time, transfer-time (whole seconds,
/// truncated as ProFTPD does), remote-host, file-size, filename (white space and control
/// characters as `_`, as ProFTPD writes them), transfer-type (`a`/`b`), special-action-flag
/// (`_`), direction (`o` download, `i` upload), access-mode (`r`), username, service-name
/// (`ftp`), authentication-method (`0`), authenticated-user-id (`*`), completion-status (`c`
/// complete, `i` incomplete).
pub(crate) fn xferlog_line(record: &TransferRecord, at: DateTime<Local>) -> String {
    let name: String = record
        .path
        .as_str()
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let user: String = record
        .user
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!(
        "{} {} {} {} {} {} _ {} r {} ftp 0 * {}\n",
        at.format("%a %b %e %H:%M:%S %Y"),
        record.duration.as_secs(),
        record.client,
        record.bytes,
        name,
        if record.ascii { 'a' } else { 'b' },
        match record.direction {
            Direction::Download => 'o',
            Direction::Upload => 'i',
        },
        if user.is_empty() { "*" } else { &user },
        if record.complete { 'c' } else { 'i' },
    )
}

/// One JSON object per line: the xferlog fields with their names, and what xferlog has no
/// room for. (The session's id will join them when the engine's events carry it.)
pub(crate) fn json_line(record: &TransferRecord, at: DateTime<Utc>) -> String {
    let value = serde_json::json!({
        "time": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "user": record.user,
        "client": record.client.to_string(),
        "direction": match record.direction {
            Direction::Download => "download",
            Direction::Upload => "upload",
        },
        "path": record.path.as_str(),
        "bytes": record.bytes,
        "duration_ms": u64::try_from(record.duration.as_millis()).unwrap_or(u64::MAX),
        "type": if record.ascii { "ascii" } else { "binary" },
        "tls": record.tls,
        "result": if record.complete { "complete" } else { "failed" },
        "reason": record.failure,
        "storage": record.storage,
    });
    format!("{value}\n")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;
    use ftpgate_core::VirtualPath;

    use super::*;

    fn record() -> TransferRecord {
        TransferRecord {
            user: "amy".to_string(),
            client: "192.0.2.7"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
            direction: Direction::Upload,
            path: VirtualPath::parse_absolute("/in/a b c.zip")
                .unwrap_or_else(|_| VirtualPath::root()),
            bytes: 1234,
            duration: Duration::from_millis(2900),
            complete: false,
            failure: Some("aborted"),
            ascii: false,
            tls: true,
            storage: "fs",
        }
    }

    #[test]
    fn xferlog_lines_have_the_fourteen_fields() {
        let at = Local
            .with_ymd_and_hms(2026, 12, 6, 9, 5, 1)
            .single()
            .unwrap_or_else(Local::now);
        let line = xferlog_line(&record(), at);
        assert_eq!(
            line,
            "Sun Dec  6 09:05:01 2026 2 192.0.2.7 1234 /in/a_b_c.zip b _ i r amy ftp 0 * i\n"
        );
    }

    #[test]
    fn json_lines_carry_the_reason_and_more() {
        let line = json_line(&record(), Utc::now());
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(value["path"], "/in/a b c.zip");
        assert_eq!(value["reason"], "aborted");
        assert_eq!(value["duration_ms"], 2900);
        assert_eq!(value["tls"], true);
        assert_eq!(value["storage"], "fs");
    }
}
