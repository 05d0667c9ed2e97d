//! Abuse limits as plain logic with time as an input: per-IP failed-login tracking (growing
//! delay, temporary bans that grow when repeated) and a per-session command rate limit.
//!
//! With a [`SharedState`](crate::SharedState), failures are counted and bans kept in the
//! shared store, so that a fleet of nodes counts an address's failures once; the process's own
//! table mirrors what the store answered (the accept loop checks it without a request) and
//! decides alone whenever the store does not answer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::state::SharedLink;

/// Brute-force settings.
#[derive(Debug, Clone)]
pub struct LoginGuardConfig {
    /// Delay before answering the first failed login from an address; it doubles with each
    /// further failure (up to 8 times this value).
    pub failure_delay: Duration,
    /// Failed logins from one address (within `failure_window`) that earn a ban; 0 disables bans.
    pub ban_after_failures: u32,
    /// Failures older than this are forgotten.
    pub failure_window: Duration,
    /// Length of a first ban.
    pub ban_time: Duration,
    /// Each further ban of the same address lasts this many times longer (capped at a day).
    pub ban_growth: f64,
}

impl Default for LoginGuardConfig {
    fn default() -> Self {
        LoginGuardConfig {
            failure_delay: Duration::from_millis(500),
            ban_after_failures: 10,
            failure_window: Duration::from_secs(600),
            ban_time: Duration::from_secs(900),
            ban_growth: 2.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
    bans: u32,
    banned_until: Option<Instant>,
}

/// What to do after a failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FailureDecision {
    /// Wait this long before answering.
    pub(crate) delay: Duration,
    /// The address is now banned: close the connection.
    pub(crate) banned: bool,
}

/// Addresses tracked at most; beyond this, stale entries are dropped first, then new
/// addresses are not tracked (memory stays bounded under a spoofed-source flood).
const MAX_TRACKED: usize = 65_536;
const MAX_BAN: Duration = Duration::from_secs(24 * 3600);

/// Failed-login bookkeeping per client address.
#[derive(Debug)]
pub(crate) struct LoginGuard {
    config: LoginGuardConfig,
    records: Mutex<HashMap<IpAddr, Record>>,
    shared: Option<Arc<SharedLink>>,
}

impl LoginGuard {
    pub(crate) fn new(config: LoginGuardConfig, shared: Option<Arc<SharedLink>>) -> Self {
        LoginGuard {
            config,
            records: Mutex::new(HashMap::new()),
            shared,
        }
    }

    /// How long `ip` stays banned according to the shared store (`None` without one, or when
    /// it does not answer); a ban found there is mirrored into this process's table.
    pub(crate) async fn shared_ban(&self, ip: IpAddr) -> Option<Duration> {
        let link = self.shared.as_ref()?;
        let left = link
            .call("ban check", link.state.banned_for(ip))
            .await
            .flatten()?;
        let now = Instant::now();
        self.update(ip, now, |r| {
            r.banned_until = Some(r.banned_until.map_or(now + left, |u| u.max(now + left)));
        });
        Some(left)
    }

    /// Records a failed login from `ip`: in the shared store when there is one and it
    /// answers, else in this process's table.
    pub(crate) async fn failed_login(&self, ip: IpAddr, now: Instant) -> FailureDecision {
        let Some(link) = &self.shared else {
            return self.failure(ip, now);
        };
        let (window, ban_after) = (self.config.failure_window, self.config.ban_after_failures);
        let Some(count) = link
            .call(
                "failed login",
                link.state.record_failure(ip, window, ban_after),
            )
            .await
        else {
            return self.failure(ip, now);
        };
        let ban = count.ban.map(|nth| self.ban_length(nth));
        if let Some(ban) = ban {
            // A ban the store could not keep still holds on this node.
            link.call("ban", link.state.ban(ip, ban)).await;
        }
        self.update(ip, now, |r| {
            r.failures = count.failures;
            r.last_failure = now;
            if let (Some(nth), Some(ban)) = (count.ban, ban) {
                r.bans = r.bans.max(nth);
                r.banned_until = Some(now + ban);
            }
        });
        FailureDecision {
            delay: self.delay_for(count.failures.max(1)),
            banned: ban.is_some(),
        }
    }

    /// A successful login from `ip`: its failures are forgotten here and in the shared store.
    pub(crate) async fn succeeded(&self, ip: IpAddr) {
        self.success(ip);
        if let Some(link) = &self.shared {
            link.call("login", link.state.clear_failures(ip)).await;
        }
    }

    /// The delay before answering the `failures`th failure in a row.
    fn delay_for(&self, failures: u32) -> Duration {
        self.config.failure_delay * (1u32 << failures.saturating_sub(1).min(3))
    }

    /// How long the `nth` ban of an address lasts: `ban_time`, times `ban_growth` for each
    /// earlier ban, capped at a day.
    fn ban_length(&self, nth: u32) -> Duration {
        let factor = self
            .config
            .ban_growth
            .max(1.0)
            .powi(i32::try_from(nth.saturating_sub(1)).unwrap_or(i32::MAX));
        self.config
            .ban_time
            .mul_f64(factor.min(MAX_BAN.as_secs_f64()))
            .min(MAX_BAN)
    }

    /// Changes the record of `ip` (made if missing, within the table's bound).
    fn update(&self, ip: IpAddr, now: Instant, change: impl FnOnce(&mut Record)) {
        let Ok(mut records) = self.records.lock() else {
            return;
        };
        if !self.make_room(&mut records, ip, now) {
            return;
        }
        let record = records.entry(ip).or_insert(Record {
            failures: 0,
            last_failure: now,
            bans: 0,
            banned_until: None,
        });
        change(record);
    }

    /// Whether `ip` has or can have a record: beyond [`MAX_TRACKED`] addresses, stale records
    /// are dropped first, then new addresses are not tracked.
    fn make_room(&self, records: &mut HashMap<IpAddr, Record>, ip: IpAddr, now: Instant) -> bool {
        if records.len() >= MAX_TRACKED && !records.contains_key(&ip) {
            let window = self.config.failure_window;
            records.retain(|_, r| {
                r.banned_until.is_some_and(|u| u > now)
                    || now.duration_since(r.last_failure) < window
            });
        }
        records.len() < MAX_TRACKED || records.contains_key(&ip)
    }

    /// How long `ip` stays banned, if it is.
    pub(crate) fn banned_for(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let records = self.records.lock().ok()?;
        let until = records.get(&ip)?.banned_until?;
        (until > now).then(|| until - now)
    }

    /// How many addresses are banned at `now` (for the `ftpgate_bans_active` gauge; a walk of
    /// the bounded table, at scrape time only).
    pub(crate) fn active_bans(&self, now: Instant) -> usize {
        let Ok(records) = self.records.lock() else {
            return 0;
        };
        records
            .values()
            .filter(|r| r.banned_until.is_some_and(|until| until > now))
            .count()
    }

    /// Records a failed login from `ip` in this process's table.
    pub(crate) fn failure(&self, ip: IpAddr, now: Instant) -> FailureDecision {
        let Ok(mut records) = self.records.lock() else {
            return FailureDecision {
                delay: self.config.failure_delay,
                banned: false,
            };
        };
        if !self.make_room(&mut records, ip, now) {
            return FailureDecision {
                delay: self.config.failure_delay * 8,
                banned: false,
            };
        }
        let record = records.entry(ip).or_insert(Record {
            failures: 0,
            last_failure: now,
            bans: 0,
            banned_until: None,
        });
        if now.duration_since(record.last_failure) > self.config.failure_window {
            record.failures = 0;
        }
        record.failures += 1;
        record.last_failure = now;
        let delay = self.delay_for(record.failures);
        if self.config.ban_after_failures > 0 && record.failures >= self.config.ban_after_failures {
            record.bans += 1;
            record.failures = 0;
            let ban = self.ban_length(record.bans);
            record.banned_until = Some(now + ban);
            return FailureDecision {
                delay,
                banned: true,
            };
        }
        FailureDecision {
            delay,
            banned: false,
        }
    }

    /// A successful login clears the address's failures (its ban history stays).
    pub(crate) fn success(&self, ip: IpAddr) {
        if let Ok(mut records) = self.records.lock() {
            if let Some(record) = records.get_mut(&ip) {
                record.failures = 0;
            }
        }
    }
}

/// A token bucket: `rate` commands per second, bursts up to twice that.
#[derive(Debug)]
pub(crate) struct CommandRate {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl CommandRate {
    pub(crate) fn new(per_second: u32, now: Instant) -> Self {
        let rate = f64::from(per_second.max(1));
        CommandRate {
            rate,
            burst: rate * 2.0,
            tokens: rate * 2.0,
            last: now,
        }
    }

    /// Takes a token for one command; returns how long to wait first, if the bucket is empty.
    pub(crate) fn take(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            None
        } else {
            Some(Duration::from_secs_f64(-self.tokens / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> LoginGuard {
        LoginGuard::new(
            LoginGuardConfig {
                failure_delay: Duration::from_millis(100),
                ban_after_failures: 3,
                failure_window: Duration::from_secs(60),
                ban_time: Duration::from_secs(10),
                ban_growth: 3.0,
            },
            None,
        )
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn delay_grows_then_the_address_is_banned() {
        let g = guard();
        let t = Instant::now();
        assert_eq!(
            g.failure(A, t),
            FailureDecision {
                delay: Duration::from_millis(100),
                banned: false
            }
        );
        assert_eq!(
            g.failure(A, t),
            FailureDecision {
                delay: Duration::from_millis(200),
                banned: false
            }
        );
        assert!(g.failure(A, t).banned);
        assert_eq!(g.banned_for(A, t), Some(Duration::from_secs(10)));
        assert_eq!(g.banned_for(B, t), None, "other addresses are not affected");
        assert_eq!(
            g.banned_for(A, t + Duration::from_secs(11)),
            None,
            "bans end"
        );
    }

    #[test]
    fn repeated_bans_grow() {
        let g = guard();
        let t = Instant::now();
        for _ in 0..3 {
            g.failure(A, t);
        }
        let t2 = t + Duration::from_secs(11);
        for _ in 0..3 {
            g.failure(A, t2);
        }
        assert_eq!(g.banned_for(A, t2), Some(Duration::from_secs(30)));
    }

    #[test]
    fn old_failures_are_forgotten_and_success_clears() {
        let g = guard();
        let t = Instant::now();
        g.failure(A, t);
        g.failure(A, t);
        assert!(!g.failure(A, t + Duration::from_secs(61)).banned);
        g.success(A);
        assert!(!g.failure(A, t + Duration::from_secs(62)).banned);
    }

    #[test]
    fn bans_can_be_disabled() {
        let g = LoginGuard::new(
            LoginGuardConfig {
                ban_after_failures: 0,
                ..LoginGuardConfig::default()
            },
            None,
        );
        let t = Instant::now();
        for _ in 0..100 {
            assert!(!g.failure(A, t).banned);
        }
        assert_eq!(
            g.failure(A, t).delay,
            Duration::from_millis(4000),
            "the delay is capped"
        );
    }

    #[test]
    fn command_rate_allows_bursts_then_paces() {
        let t = Instant::now();
        let mut rate = CommandRate::new(10, t);
        for _ in 0..20 {
            assert_eq!(rate.take(t), None);
        }
        let wait = rate.take(t).unwrap();
        assert!(
            wait > Duration::from_millis(90) && wait < Duration::from_millis(110),
            "{wait:?}"
        );
        assert_eq!(rate.take(t + Duration::from_secs(1)), None);
    }
}
