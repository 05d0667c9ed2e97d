//! Per-user policy the engine enforces for every authenticator: sessions per user, and
//! bandwidth (per session and across a user's sessions). Who may log in from where and until
//! when is [`UserLimits::refusal`](ftpgate_core::UserLimits::refusal), checked at login.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ftpgate_core::User;

/// The shared side of the policy: users' session counts and bandwidth buckets.
#[derive(Default)]
pub(crate) struct Policy {
    /// Logged-in sessions by host and user name.
    sessions: Arc<Mutex<HashMap<String, u32>>>,
    /// Each user's buckets, shared by its sessions while any holds them.
    buckets: Mutex<HashMap<(String, bool, u64), Weak<Bucket>>>,
}

/// A logged-in session counted against its user's `max_sessions`; uncounted when dropped.
pub(crate) struct SessionSlot {
    sessions: Arc<Mutex<HashMap<String, u32>>>,
    key: String,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        if let Ok(mut sessions) = self.sessions.lock() {
            if let Some(count) = sessions.get_mut(&self.key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    sessions.remove(&self.key);
                }
            }
        }
    }
}

/// A session's bandwidth limits, one per direction.
#[derive(Clone, Default)]
pub(crate) struct SessionThrottles {
    pub(crate) upload: Option<Throttle>,
    pub(crate) download: Option<Throttle>,
}

fn key(host: &str, user: &str) -> String {
    // Virtual hosts have users of their own: the same name on two hosts is two users.
    format!("{host}\0{user}")
}

impl Policy {
    /// Counts a session of `user`, or `None` if the user has its most sessions already.
    pub(crate) fn enter(&self, host: &str, user: &User) -> Option<SessionSlot> {
        let key = key(host, &user.name);
        let mut sessions = self.sessions.lock().ok()?;
        let count = sessions.entry(key.clone()).or_insert(0);
        if user.limits.max_sessions.is_some_and(|max| *count >= max) {
            return None;
        }
        *count += 1;
        Some(SessionSlot {
            sessions: self.sessions.clone(),
            key,
        })
    }

    /// The throttles of a session of `user` from `client`: a bucket of the session's own and
    /// one the user's sessions share, per direction with a rate.
    pub(crate) fn throttles(&self, host: &str, user: &User, client: IpAddr) -> SessionThrottles {
        let (upload, download) = user.limits.rates_for(client);
        let key = key(host, &user.name);
        SessionThrottles {
            upload: upload.map(|rate| self.throttle(&key, true, rate)),
            download: download.map(|rate| self.throttle(&key, false, rate)),
        }
    }

    fn throttle(&self, key: &str, upload: bool, rate: u64) -> Throttle {
        let shared = {
            let mut buckets = match self.buckets.lock() {
                Ok(buckets) => buckets,
                Err(poisoned) => poisoned.into_inner(),
            };
            buckets.retain(|_, bucket| bucket.strong_count() > 0);
            let id = (key.to_string(), upload, rate);
            match buckets.get(&id).and_then(Weak::upgrade) {
                Some(bucket) => bucket,
                None => {
                    let bucket = Arc::new(Bucket::new(rate));
                    buckets.insert(id, Arc::downgrade(&bucket));
                    bucket
                }
            }
        };
        Throttle {
            own: Arc::new(Bucket::new(rate)),
            shared,
        }
    }
}

/// A token bucket of bytes. A taker reserves its bytes at once and waits off any debt, so
/// takers are served in turn and the rate holds over every interval longer than a chunk; the
/// bucket holds at most a tenth of a second of bytes, so an idle moment does not become a
/// burst.
pub(crate) struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(rate: u64) -> Self {
        let rate = rate.max(1) as f64;
        Bucket {
            rate,
            burst: rate / 10.0,
            state: Mutex::new((0.0, Instant::now())),
        }
    }

    /// Reserves `n` bytes; returns how long to wait before they may move.
    fn reserve(&self, n: usize) -> Duration {
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        let (tokens, last) = *state;
        let refilled =
            (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
        let left = refilled - n as f64;
        *state = (left, now);
        if left >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-left / self.rate)
        }
    }
}

/// The bandwidth limit of one direction of a session: its own bucket and its user's.
#[derive(Clone)]
pub(crate) struct Throttle {
    own: Arc<Bucket>,
    shared: Arc<Bucket>,
}

impl Throttle {
    /// The largest piece to move at once: about 50 ms of bytes, so the flow stays smooth.
    pub(crate) fn chunk(&self) -> usize {
        ((self.own.rate / 20.0) as usize).clamp(1024, 256 * 1024)
    }

    /// Waits until `n` more bytes may move.
    pub(crate) async fn take(&self, n: usize) {
        let wait = self.own.reserve(n).max(self.shared.reserve(n));
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lends_at_most_a_tenth_of_a_second() {
        let bucket = Bucket::new(1000);
        std::thread::sleep(Duration::from_millis(300));
        // 100 bytes saved at most, so 600 more cost 0.5 s.
        let wait = bucket.reserve(700);
        assert!(
            wait >= Duration::from_millis(590) && wait <= Duration::from_millis(610),
            "{wait:?}"
        );
    }

    #[test]
    fn sessions_are_counted_per_host_and_user() {
        let policy = Policy::default();
        let mut user = User::new("ann", "", ftpgate_core::Permissions::ALL);
        user.limits.max_sessions = Some(2);
        let a = policy.enter("", &user).unwrap();
        let _b = policy.enter("", &user).unwrap();
        assert!(policy.enter("", &user).is_none());
        assert!(policy.enter("other-host", &user).is_some());
        drop(a);
        assert!(policy.enter("", &user).is_some());
    }
}
