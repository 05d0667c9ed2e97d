//! Accepted logins, remembered for a while under a keyed SHA-256 of the name, the password and
//! the virtual host (never the password itself). Rejections are never put here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ftpgate_core::{LoginRequest, User};
use sha2::{Digest, Sha256};

/// Most accepted logins remembered at once.
const CACHE_ENTRIES: usize = 10_000;

pub(crate) struct LoginCache {
    key: [u8; 32],
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], (User, Instant)>>,
}

impl LoginCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        LoginCache {
            key,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn key(&self, request: &LoginRequest<'_>) -> [u8; 32] {
        let mut digest = Sha256::new();
        digest.update(self.key);
        for part in [
            request.username(),
            request.password().expose(),
            request.host().unwrap_or(""),
        ] {
            digest.update((part.len() as u64).to_le_bytes());
            digest.update(part.as_bytes());
        }
        digest.finalize().into()
    }

    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<User> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(_, expiry)| *expiry > Instant::now())
            .map(|(user, _)| user.clone())
    }

    pub(crate) fn put(&self, key: [u8; 32], user: &User) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let now = Instant::now();
        if entries.len() >= CACHE_ENTRIES {
            entries.retain(|_, (_, expiry)| *expiry > now);
            if entries.len() >= CACHE_ENTRIES {
                return;
            }
        }
        entries.insert(key, (user.clone(), now + self.ttl));
    }
}
