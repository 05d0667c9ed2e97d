//! `[[hooks]]`: a program to run or a URL to call when users do something.

use anyhow::{Result, bail};
use serde::Deserialize;

/// The event names a hook may list, as the engine's events are named for operators.
pub(crate) const EVENT_NAMES: [&str; 10] = [
    "upload",
    "download",
    "delete",
    "rename",
    "mkdir",
    "rmdir",
    "login",
    "login_failed",
    "login_unavailable",
    "logout",
];

/// The `{name}` placeholders a command's arguments may hold; a name the event lacks is empty.
pub(crate) const PLACEHOLDERS: [&str; 12] = [
    "event",
    "user",
    "client",
    "path",
    "from",
    "to",
    "size",
    "result",
    "reason",
    "duration_ms",
    "tls",
    "storage",
];

/// `[[hooks]]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HookSection {
    /// Which events start it (names of [`EVENT_NAMES`]).
    pub(crate) events: Vec<String>,
    /// A program and its arguments, run directly (never through a shell).
    #[serde(default)]
    pub(crate) command: Option<Vec<String>>,
    /// An `http://` or `https://` URL the event is POSTed to as JSON.
    #[serde(default)]
    pub(crate) url: Option<String>,
    /// Longest one run or request may take; a command still running then is killed.
    #[serde(default = "default_timeout")]
    pub(crate) timeout_secs: u64,
    /// Runs of this hook at once; events wait in the queue for a slot.
    #[serde(default = "default_concurrent")]
    pub(crate) max_concurrent: usize,
    /// Further attempts after a failure (0.5 s, 1 s, 2 s… apart).
    #[serde(default)]
    pub(crate) retries: u32,
    /// Events waiting for a slot; beyond this, new events are dropped (and counted).
    #[serde(default = "default_queue")]
    pub(crate) queue: usize,
    #[serde(default)]
    pub(crate) filter: FilterSection,
}

/// `[hooks.filter]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilterSection {
    /// A wildcard pattern (`*`, `?`, `[...]`): on the file name, or on the whole path when it
    /// holds a `/`. Events without a path never match a path filter.
    pub(crate) path: Option<String>,
    /// For uploads and downloads: `complete`, `failed` or `any` (the default).
    #[serde(default)]
    pub(crate) result: ResultFilter,
}

/// `filter.result`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ResultFilter {
    Complete,
    Failed,
    #[default]
    Any,
}

fn default_timeout() -> u64 {
    30
}

fn default_concurrent() -> usize {
    4
}

fn default_queue() -> usize {
    1000
}

impl HookSection {
    /// Checks one hook; `key` is `hooks[N]`.
    pub(crate) fn check(&self, key: &str) -> Result<()> {
        if self.events.is_empty() {
            bail!(
                "{key}.events: name at least one of {}",
                EVENT_NAMES.join(", ")
            );
        }
        for event in &self.events {
            if !EVENT_NAMES.contains(&event.as_str()) {
                bail!(
                    "{key}.events: unknown event {event:?}; use {}",
                    EVENT_NAMES.join(", ")
                );
            }
        }
        match (&self.command, &self.url) {
            (Some(_), Some(_)) => bail!("{key}: give command or url, not both"),
            (None, None) => bail!("{key}: give a command or a url"),
            (Some(command), None) => {
                if command.first().is_none_or(|program| program.is_empty()) {
                    bail!("{key}.command: the first item must be the program to run");
                }
                for arg in command {
                    check_template(arg).map_err(|e| anyhow::anyhow!("{key}.command: {e}"))?;
                }
            }
            (None, Some(url)) => {
                let parsed =
                    url::Url::parse(url).map_err(|e| anyhow::anyhow!("{key}.url: {url:?}: {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    bail!("{key}.url: {url:?}: use an http:// or https:// URL");
                }
            }
        }
        if self.timeout_secs == 0 || self.timeout_secs > 3600 {
            bail!("{key}.timeout_secs: between 1 and 3600");
        }
        if self.max_concurrent == 0 || self.max_concurrent > 1024 {
            bail!("{key}.max_concurrent: between 1 and 1024");
        }
        if self.retries > 10 {
            bail!("{key}.retries: at most 10");
        }
        if self.queue == 0 || self.queue > 1_000_000 {
            bail!("{key}.queue: between 1 and 1000000");
        }
        if let Some(pattern) = &self.filter.path {
            ftpgate_proto::glob::Glob::new(pattern)
                .map_err(|e| anyhow::anyhow!("{key}.filter.path: {pattern:?}: {e}"))?;
        }
        Ok(())
    }
}

/// Checks that every `{...}` in `arg` names a [`PLACEHOLDERS`] entry (`{{` and `}}` are
/// literal braces).
fn check_template(arg: &str) -> Result<()> {
    for piece in template_pieces(arg) {
        if let Piece::Field(name) = piece {
            if !PLACEHOLDERS.contains(&name) {
                bail!(
                    "unknown placeholder {{{name}}} in {arg:?}; use {}",
                    PLACEHOLDERS
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        } else if let Piece::Broken = piece {
            bail!("unbalanced brace in {arg:?} (write {{{{ or }}}} for a literal brace)");
        }
    }
    Ok(())
}

/// A part of a templated argument.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Text(&'a str),
    Field(&'a str),
    /// An unmatched brace.
    Broken,
}

/// The pieces of `arg`: text, `{field}`s, and `{{`/`}}` as one-brace text.
pub(crate) fn template_pieces(arg: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = arg;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("{{") {
            pieces.push(Piece::Text("{"));
            rest = after;
        } else if let Some(after) = rest.strip_prefix("}}") {
            pieces.push(Piece::Text("}"));
            rest = after;
        } else if let Some(after) = rest.strip_prefix('{') {
            match after.find('}') {
                Some(end) => {
                    pieces.push(Piece::Field(&after[..end]));
                    rest = &after[end + 1..];
                }
                None => {
                    pieces.push(Piece::Broken);
                    return pieces;
                }
            }
        } else if rest.starts_with('}') {
            pieces.push(Piece::Broken);
            return pieces;
        } else {
            let end = rest.find(['{', '}']).unwrap_or(rest.len());
            pieces.push(Piece::Text(&rest[..end]));
            rest = &rest[end..];
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_text_and_fields() {
        assert_eq!(
            template_pieces("--file={path}{{x}}"),
            [
                Piece::Text("--file="),
                Piece::Field("path"),
                Piece::Text("{"),
                Piece::Text("x"),
                Piece::Text("}"),
            ]
        );
        assert!(check_template("{path}").is_ok());
        assert!(check_template("{nope}").is_err());
        assert!(check_template("a{path").is_err());
        assert!(check_template("a}b").is_err());
    }
}
