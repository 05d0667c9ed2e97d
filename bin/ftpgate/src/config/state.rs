//! `[state]`: the state a fleet of nodes shares (failed-login counters, bans, quota usage), in
//! Redis. Off unless `redis` names a server: each node then keeps its own.

use std::time::Duration;

use anyhow::{Result, bail};
use serde::Deserialize;

/// `[state]`
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StateSection {
    /// `redis://[user:password@]host[:port][/db]` or `unix:///path/redis.sock`.
    pub(crate) redis: Option<String>,
    /// Put before every key (fleets sharing one Redis use different prefixes).
    pub(crate) key_prefix: Option<String>,
    /// The longest a request to Redis may take before the node decides alone.
    pub(crate) timeout_ms: Option<u64>,
}

/// `key_prefix` when not given.
pub(crate) const DEFAULT_KEY_PREFIX: &str = "ftpgate:";
/// `timeout_ms` when not given: a login waits this long at most when Redis is away.
pub(crate) const DEFAULT_TIMEOUT_MS: u64 = 250;

/// `[state]`, checked.
#[derive(Debug, Clone)]
pub(crate) struct StateSettings {
    pub(crate) redis: redis::Client,
    /// The URL without its password, for logs.
    pub(crate) shown: String,
    pub(crate) key_prefix: String,
    pub(crate) timeout: Duration,
}

impl StateSection {
    /// The checked settings; `None` when no Redis is configured. Connects to nothing.
    pub(crate) fn build(&self) -> Result<Option<StateSettings>> {
        let Some(url) = &self.redis else {
            if self.key_prefix.is_some() || self.timeout_ms.is_some() {
                bail!(
                    "state: key_prefix and timeout_ms need state.redis (the server to share state in)"
                );
            }
            return Ok(None);
        };
        let parsed = url::Url::parse(url).map_err(|e| {
            anyhow::anyhow!("state.redis: {e} (expected redis://host:port/db or unix:///path)")
        })?;
        match parsed.scheme() {
            "redis" | "unix" | "redis+unix" => {}
            "rediss" => bail!(
                "state.redis: rediss:// (TLS) is not supported; reach Redis over a private network, a \
                 local TLS tunnel or a unix socket"
            ),
            other => bail!("state.redis: unknown scheme {other:?} (expected redis:// or unix://)"),
        }
        let client =
            redis::Client::open(url.as_str()).map_err(|e| anyhow::anyhow!("state.redis: {e}"))?;
        let mut shown = parsed.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        let key_prefix = self
            .key_prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_string());
        if key_prefix.is_empty() || key_prefix.len() > 64 {
            bail!("state.key_prefix: 1 to 64 characters");
        }
        if !key_prefix.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("state.key_prefix: printable ASCII without spaces");
        }
        let timeout_ms = self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(1..=10_000).contains(&timeout_ms) {
            bail!(
                "state.timeout_ms: {timeout_ms} is out of range (1 to 10000; every login may wait this long when Redis is away)"
            );
        }
        Ok(Some(StateSettings {
            redis: client,
            shown: shown.to_string(),
            key_prefix,
            timeout: Duration::from_millis(timeout_ms),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> Result<Option<StateSettings>> {
        let section: StateSection = toml::from_str(text)?;
        section.build()
    }

    #[test]
    fn off_without_redis() {
        assert!(section("").unwrap().is_none());
        assert!(section("timeout_ms = 100").is_err());
    }

    #[test]
    fn checks_each_key() {
        let ok = section("redis = \"redis://:secret@127.0.0.1:6379/2\"")
            .unwrap()
            .unwrap();
        assert_eq!(ok.key_prefix, DEFAULT_KEY_PREFIX);
        assert_eq!(ok.timeout, Duration::from_millis(250));
        assert!(!ok.shown.contains("secret"), "{}", ok.shown);
        for bad in [
            "redis = \"http://127.0.0.1\"",
            "redis = \"rediss://127.0.0.1\"",
            "redis = \"not a url\"",
            "redis = \"redis://127.0.0.1\"\ntimeout_ms = 0",
            "redis = \"redis://127.0.0.1\"\ntimeout_ms = 60000",
            "redis = \"redis://127.0.0.1\"\nkey_prefix = \"\"",
            "redis = \"redis://127.0.0.1\"\nkey_prefix = \"a b\"",
        ] {
            assert!(section(bad).is_err(), "{bad}");
        }
    }
}
