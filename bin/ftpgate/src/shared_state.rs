//! The fleet's shared state in Redis (`[state] redis`): the engine's [`SharedState`] over the
//! `redis` crate's reconnecting connection manager.
//!
//! Keys (all under `key_prefix`, `ftpgate:` by default):
//! - `fail:IP`: failed logins from an address; expires `ban_window_secs` after the last one.
//! - `bans:IP`: how many bans the address earned; kept a week after the last one, so that
//!   bans keep growing (`ban_growth`) across nodes.
//! - `ban:IP`: present while the address is banned (its expiry is the ban's end).
//! - `quota:HOST/USER`: a hash of what a user's files take (`bytes`, `files`); seeded from a
//!   measurement by the first node that needs it, moved (HINCRBY) by every commit, COMB and
//!   delete, expiring a day after it was seeded (then measured again, which bounds any drift).
//!
//! Counting a failure and earning a ban is one Lua script, so two nodes cannot both count the
//! threshold. Each request is short; the engine bounds it with `timeout_ms` and decides alone
//! when Redis does not answer. While Redis is unreachable, a new connection is tried at most
//! once a second, so logins do not each wait for a connect.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ftpgate::{FailureCount, QuotaUsage, SharedState, StateError};
use ftpgate_core::async_trait;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::StateSettings;

/// How long an address's ban history is kept after its last ban.
const BAN_HISTORY: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a user's shared usage is trusted before it is measured again.
const QUOTA_TTL: Duration = Duration::from_secs(24 * 3600);
/// The least time between two connection attempts while Redis is away.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// KEYS: failures, ban history. ARGV: window (ms), failures that earn a ban (0: never), how
/// long the ban history is kept (ms). Returns {failures, nth ban or 0}.
const RECORD_FAILURE: &str = r"
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local after = tonumber(ARGV[2])
if after > 0 and n >= after then
  redis.call('DEL', KEYS[1])
  local bans = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return {0, bans}
end
return {n, 0}
";

/// KEYS: usage. ARGV: the measured bytes and files, seconds to trust them. Returns the usage
/// now {bytes, files}.
const SEED_QUOTA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'bytes', ARGV[1], 'files', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return redis.call('HMGET', KEYS[1], 'bytes', 'files')
";

/// KEYS: usage. ARGV: bytes and files to add (negative to take). Only a known usage moves (a
/// missing one is measured again by its next reader); neither goes below zero.
const ADD_QUOTA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  for i, field in ipairs({'bytes', 'files'}) do
    if redis.call('HINCRBY', KEYS[1], field, ARGV[i]) < 0 then
      redis.call('HSET', KEYS[1], field, 0)
    end
  end
end
return 0
";

/// The fleet's state in one Redis server.
pub(crate) struct RedisState {
    client: redis::Client,
    shown: String,
    prefix: String,
    timeout: Duration,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    last_attempt: std::sync::Mutex<Option<Instant>>,
    record_failure: Script,
    seed_quota: Script,
    add_quota: Script,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("redis", &self.shown)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn failed(e: redis::RedisError) -> StateError {
    StateError(format!("redis: {e}"))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisState {
    /// A client of the server in `settings`; connects on first use (a node starts, and its
    /// logins work, while Redis is away).
    pub(crate) fn new(settings: &StateSettings) -> RedisState {
        RedisState {
            client: settings.redis.clone(),
            shown: settings.shown.clone(),
            prefix: settings.key_prefix.clone(),
            timeout: settings.timeout,
            connection: tokio::sync::Mutex::new(None),
            last_attempt: std::sync::Mutex::new(None),
            record_failure: Script::new(RECORD_FAILURE),
            seed_quota: Script::new(SEED_QUOTA),
            add_quota: Script::new(ADD_QUOTA),
        }
    }

    /// The connection, made on first use; while Redis is away, one attempt a second.
    async fn connection(&self) -> Result<ConnectionManager, StateError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        {
            let now = Instant::now();
            let mut last = self
                .last_attempt
                .lock()
                .map_err(|_| StateError("redis: connection state poisoned".into()))?;
            if last.is_some_and(|at| now.duration_since(at) < RECONNECT_EVERY) {
                return Err(StateError(format!(
                    "redis at {} is not connected (trying again every second)",
                    self.shown
                )));
            }
            *last = Some(now);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(RECONNECT_EVERY);
        let connection = ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(|e| StateError(format!("redis at {}: {e}", self.shown)))?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    fn key(&self, kind: &str, id: impl std::fmt::Display) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }
}

#[async_trait]
impl SharedState for RedisState {
    async fn banned_for(&self, ip: IpAddr) -> Result<Option<Duration>, StateError> {
        let mut connection = self.connection().await?;
        let left: i64 = redis::cmd("PTTL")
            .arg(self.key("ban", ip))
            .query_async(&mut connection)
            .await
            .map_err(failed)?;
        Ok(u64::try_from(left)
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis))
    }

    async fn record_failure(
        &self,
        ip: IpAddr,
        window: Duration,
        ban_after: u32,
    ) -> Result<FailureCount, StateError> {
        let mut connection = self.connection().await?;
        let (failures, ban): (u64, u64) = self
            .record_failure
            .key(self.key("fail", ip))
            .key(self.key("bans", ip))
            .arg(millis(window))
            .arg(ban_after)
            .arg(millis(BAN_HISTORY))
            .invoke_async(&mut connection)
            .await
            .map_err(failed)?;
        Ok(FailureCount {
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
            ban: (ban > 0).then(|| u32::try_from(ban).unwrap_or(u32::MAX)),
        })
    }

    async fn ban(&self, ip: IpAddr, duration: Duration) -> Result<(), StateError> {
        let mut connection = self.connection().await?;
        redis::cmd("SET")
            .arg(self.key("ban", ip))
            .arg(1)
            .arg("PX")
            .arg(millis(duration))
            .query_async::<()>(&mut connection)
            .await
            .map_err(failed)
    }

    async fn clear_failures(&self, ip: IpAddr) -> Result<(), StateError> {
        let mut connection = self.connection().await?;
        redis::cmd("DEL")
            .arg(self.key("fail", ip))
            .query_async::<()>(&mut connection)
            .await
            .map_err(failed)
    }

    async fn quota_used(&self, key: &str) -> Result<Option<QuotaUsage>, StateError> {
        let mut connection = self.connection().await?;
        let (bytes, files): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(self.key("quota", key))
            .arg("bytes")
            .arg("files")
            .query_async(&mut connection)
            .await
            .map_err(failed)?;
        Ok(bytes.map(|bytes| QuotaUsage {
            bytes,
            files: files.unwrap_or(0),
        }))
    }

    async fn seed_quota(&self, key: &str, measured: QuotaUsage) -> Result<QuotaUsage, StateError> {
        let mut connection = self.connection().await?;
        let (bytes, files): (u64, u64) = self
            .seed_quota
            .key(self.key("quota", key))
            .arg(measured.bytes)
            .arg(measured.files)
            .arg(QUOTA_TTL.as_secs())
            .invoke_async(&mut connection)
            .await
            .map_err(failed)?;
        Ok(QuotaUsage { bytes, files })
    }

    async fn add_quota(&self, key: &str, bytes: i64, files: i64) -> Result<(), StateError> {
        let mut connection = self.connection().await?;
        self.add_quota
            .key(self.key("quota", key))
            .arg(bytes)
            .arg(files)
            .invoke_async::<()>(&mut connection)
            .await
            .map_err(failed)
    }
}
