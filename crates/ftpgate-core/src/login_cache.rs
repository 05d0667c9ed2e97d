//! Accepted logins remembered for a while, for authenticators whose check is slow or remote
//! (an HTTP service, a directory, PAM).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Most accepted logins remembered at once; past it, expired ones are dropped, and if none has
/// expired, nothing more is remembered until some do.
const ENTRIES: usize = 10_000;

/// What an authenticator learnt from accepted logins (a [`User`](crate::User), or just what
/// it needs to make one), by a keyed SHA-256 of what identifies the login (name, password,
/// virtual host): never the password itself. Put only accepted logins here, never rejections.
#[derive(Debug)]
pub struct LoginCache<V> {
    key: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], (V, Instant)>>,
}

impl<V: Clone> Default for LoginCache<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Clone> LoginCache<V> {
    /// An empty cache with a random key of its own.
    pub fn new() -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        LoginCache {
            key,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The key of a login made of `parts` (each length-prefixed, so no two lists collide).
    pub fn key(&self, parts: &[&str]) -> [u8; 32] {
        let mut digest = Sha256::new();
        digest.update(self.key);
        for part in parts {
            digest.update((part.len() as u64).to_le_bytes());
            digest.update(part.as_bytes());
        }
        digest.finalize().into()
    }

    /// What was remembered under `key`, if it has not expired.
    pub fn get(&self, key: &[u8; 32]) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(_, expiry)| *expiry > Instant::now())
            .map(|(value, _)| value.clone())
    }

    /// Remembers `value` under `key` for `ttl` (zero: not at all).
    pub fn put(&self, key: [u8; 32], value: &V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let now = Instant::now();
        if entries.len() >= ENTRIES {
            entries.retain(|_, (_, expiry)| *expiry > now);
            if entries.len() >= ENTRIES {
                return;
            }
        }
        entries.insert(key, (value.clone(), now + ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_the_ttl_and_keys_differ_by_every_part() {
        let cache = LoginCache::new();
        let key = cache.key(&["ann", "secret", ""]);
        assert_ne!(key, cache.key(&["ann", "secret2", ""]));
        assert_ne!(cache.key(&["ab", "c"]), cache.key(&["a", "bc"]));
        cache.put(key, &"home".to_string(), Duration::ZERO);
        assert_eq!(cache.get(&key), None);
        cache.put(key, &"home".to_string(), Duration::from_secs(60));
        assert_eq!(cache.get(&key).as_deref(), Some("home"));
        let other = LoginCache::<String>::new();
        assert_ne!(
            other.key(&["ann", "secret", ""]),
            key,
            "each cache has its own key"
        );
    }
}
