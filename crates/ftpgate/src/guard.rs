//! Abuse limits as plain logic with time as an input: per-IP failed-login tracking (growing
//! delay, temporary bans that grow when repeated) and a per-session command rate limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
}

impl LoginGuard {
    pub(crate) fn new(config: LoginGuardConfig) -> Self {
        LoginGuard {
            config,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// How long `ip` stays banned, if it is.
    pub(crate) fn banned_for(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let records = self.records.lock().ok()?;
        let until = records.get(&ip)?.banned_until?;
        (until > now).then(|| until - now)
    }

    /// Records a failed login from `ip`.
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

    pub(crate) fn failure(&self, ip: IpAddr, now: Instant) -> FailureDecision {
        let Ok(mut records) = self.records.lock() else {
            return FailureDecision {
                delay: self.config.failure_delay,
                banned: false,
            };
        };
        if records.len() >= MAX_TRACKED && !records.contains_key(&ip) {
            let window = self.config.failure_window;
            records.retain(|_, r| {
                r.banned_until.is_some_and(|u| u > now)
                    || now.duration_since(r.last_failure) < window
            });
            if records.len() >= MAX_TRACKED {
                return FailureDecision {
                    delay: self.config.failure_delay * 8,
                    banned: false,
                };
            }
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
        let delay = self.config.failure_delay * (1u32 << (record.failures - 1).min(3));
        if self.config.ban_after_failures > 0 && record.failures >= self.config.ban_after_failures {
            record.bans += 1;
            record.failures = 0;
            let factor = self
                .config
                .ban_growth
                .max(1.0)
                .powi(i32::try_from(record.bans - 1).unwrap_or(i32::MAX));
            let ban = self
                .config
                .ban_time
                .mul_f64(factor.min(MAX_BAN.as_secs_f64()))
                .min(MAX_BAN);
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
        LoginGuard::new(LoginGuardConfig {
            failure_delay: Duration::from_millis(100),
            ban_after_failures: 3,
            failure_window: Duration::from_secs(60),
            ban_time: Duration::from_secs(10),
            ban_growth: 3.0,
        })
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
        let g = LoginGuard::new(LoginGuardConfig {
            ban_after_failures: 0,
            ..LoginGuardConfig::default()
        });
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
