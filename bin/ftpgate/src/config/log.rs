//! `[log]`: the level, format and file of the daemon's log, and the transfer log; and the log
//! filter a level (from the file or `--log-level`) stands for.

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use serde::Deserialize;

/// `[log]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogSection {
    pub(crate) level: String,
    /// `text` (one human-readable line per event) or `json` (one object per line).
    pub(crate) format: LogFormat,
    /// The log file; standard error when unset.
    pub(crate) file: Option<PathBuf>,
    /// When the daemon starts a new log file itself (`never`: external rotation, SIGHUP
    /// reopens the file).
    pub(crate) rotate: Rotate,
    /// Old log files kept when rotating (the current one aside).
    pub(crate) keep: usize,
    /// One line per upload or download, for xferlog tools or log shippers.
    pub(crate) transfer_log: Option<PathBuf>,
    pub(crate) transfer_log_format: TransferLogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".to_string(),
            format: LogFormat::Text,
            file: None,
            rotate: Rotate::Never,
            keep: 7,
            transfer_log: None,
            transfer_log_format: TransferLogFormat::Xferlog,
        }
    }
}

/// `log.format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// `log.rotate`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Rotate {
    Never,
    Hourly,
    Daily,
}

/// `log.transfer_log_format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TransferLogFormat {
    /// xferlog(5), as wu-ftpd and ProFTPD write it.
    Xferlog,
    Json,
}

impl LogSection {
    /// Checks the keys that go together. A rotated log prunes every file of its folder named
    /// like its own (`STEM*.EXT`), so another log there with such a name is refused.
    pub(crate) fn check(&self) -> Result<()> {
        for (key, path) in [
            ("log.file", &self.file),
            ("log.transfer_log", &self.transfer_log),
        ] {
            if let Some(path) = path {
                if path.file_name().is_none() || path.as_os_str().is_empty() {
                    bail!("{key}: {:?} is not a file name", path.display().to_string());
                }
            }
        }
        if self.rotate != Rotate::Never {
            let Some(file) = &self.file else {
                bail!("log.rotate: rotation needs log.file (standard error cannot be rotated)");
            };
            if self.keep == 0 {
                bail!("log.keep: keep at least 1 old file when rotating");
            }
            if let Some(transfer) = &self.transfer_log {
                let (stem, ext) = file_parts(file);
                let same_dir = transfer.parent() == file.parent();
                let name = transfer
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if same_dir && name.starts_with(&stem) && ext.is_none_or(|e| name.ends_with(&e)) {
                    bail!(
                        "log.transfer_log: {name:?} would be pruned as an old file of the rotated \
                         log.file; give it a name not starting with {stem:?} or another folder"
                    );
                }
            }
        }
        if self.file.is_some() && self.file == self.transfer_log {
            bail!("log.transfer_log: the same file as log.file");
        }
        Ok(())
    }
}

/// A log file's name split for rotation: `ftpgate.log` is `ftpgate` and `log`, and its
/// rotated files are `ftpgate.2026-12-06.log` (daily) or `ftpgate.2026-12-06-13.log` (hourly).
pub(crate) fn file_parts(path: &std::path::Path) -> (String, Option<String>) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
    (stem, ext)
}

/// The log filter of a `log.level` or `--log-level` value: a level (`error`, `warn`, `info`,
/// `debug`, `trace` or `off`, in any case; `err`, `warning` and `information` too), or
/// comma-separated directives, each a level or `TARGET=LEVEL` (`ftpgate=debug,info`). Anything
/// else is an error naming the value: a bare word that is not a level would otherwise be read as
/// a target name and silence the whole log.
pub(crate) fn log_filter(text: &str) -> Result<tracing_subscriber::EnvFilter> {
    fn level(word: &str) -> Option<&'static str> {
        match word.trim().to_ascii_lowercase().as_str() {
            "error" | "err" => Some("error"),
            "warn" | "warning" => Some("warn"),
            "info" | "information" => Some("info"),
            "debug" => Some("debug"),
            "trace" => Some("trace"),
            "off" => Some("off"),
            _ => None,
        }
    }
    let hint = "use error, warn, info, debug, trace or off, or TARGET=LEVEL directives such as \"ftpgate=debug,info\"";
    let mut directives = Vec::new();
    for part in text.split(',').map(str::trim) {
        let directive = match part.split_once('=') {
            Some((target, word)) => {
                let target = target.trim();
                let target_ok = target.split("::").all(|segment| {
                    !segment.is_empty()
                        && segment
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                });
                let Some(level) = level(word).filter(|_| target_ok) else {
                    bail!("bad log directive {part:?} in {text:?}: {hint}");
                };
                format!("{target}={level}")
            }
            None => match level(part) {
                Some(level) => level.to_string(),
                None if part == text.trim() => bail!("unknown log level {part:?}: {hint}"),
                None => bail!("unknown log level {part:?} in {text:?}: {hint}"),
            },
        };
        directives.push(directive);
    }
    tracing_subscriber::EnvFilter::try_new(directives.join(","))
        .map_err(|e| anyhow!("bad log level {text:?}: {e}"))
}
