//! `[log]`, and the log filter a level (from the file or `--log-level`) stands for.

use anyhow::{Result, anyhow, bail};
use serde::Deserialize;

/// `[log]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogSection {
    pub(crate) level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".to_string(),
        }
    }
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
