//! Upload size limits and per-user quotas: every piece of quota bookkeeping (the registry of
//! users' quotas, what an upload may write, what a commit, a COMB or a delete changes, the
//! space AVBL reports). Uploads are held to them while the bytes arrive.
//!
//! A user's usage is measured from the storage once per process; with a
//! [`SharedState`](crate::SharedState) it is kept in the shared store instead (seeded from a
//! measurement when the store has none, read again before each upload and AVBL, and moved by
//! every commit and delete), so that every node sharing the storage holds the user to the sum
//! of all nodes' uploads. When the store does not answer, the process's own count is used.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ftpgate_core::{Storage, User};
pub(crate) use ftpgate_proto::session::UploadLimit;
use tracing::warn;

use crate::state::SharedLink;

/// The quotas of a server's users, shared by all of a user's sessions.
#[derive(Default)]
pub(crate) struct Quotas {
    /// By host and user name.
    by_user: Mutex<HashMap<String, Arc<Quota>>>,
    shared: Option<Arc<SharedLink>>,
}

/// The usage `storage` reports, or 0 (logged) when it cannot tell.
async fn measure(user: &str, storage: &dyn Storage) -> u64 {
    match storage.used_bytes().await {
        Ok(used) => used,
        Err(e) => {
            warn!(
                user,
                error = %e,
                "cannot measure usage; counting the quota from zero"
            );
            0
        }
    }
}

impl Quotas {
    pub(crate) fn new(shared: Option<Arc<SharedLink>>) -> Quotas {
        Quotas {
            by_user: Mutex::default(),
            shared,
        }
    }

    /// The quota of `user` (of virtual host `host`, `""` for the server's own users), measured
    /// from its storage the first time.
    pub(crate) async fn for_user(
        &self,
        host: &str,
        user: &User,
        storage: &dyn Storage,
    ) -> Option<Arc<Quota>> {
        let limit = user.quota_bytes?;
        // Virtual hosts have users of their own: the same name on two hosts is two users.
        // (Host names hold no `/`.)
        let key = format!("{host}/{}", user.name);
        // A reload may change the limit: then the usage is measured again.
        let cached = self
            .by_user
            .lock()
            .ok()?
            .get(&key)
            .filter(|q| q.limit() == limit)
            .cloned();
        if let Some(quota) = cached {
            quota.sync(&user.name, storage).await;
            return Some(quota);
        }
        let shared = self.shared.clone().map(|link| (link, key.clone()));
        let quota = Quota {
            limit,
            used: AtomicU64::new(0),
            shared,
        };
        if quota.shared.is_none() || !quota.sync(&user.name, storage).await {
            quota
                .used
                .store(measure(&user.name, storage).await, Ordering::Relaxed);
        }
        let mut quotas = self.by_user.lock().ok()?;
        match quotas.get(&key) {
            // Another session of the user got there first.
            Some(first) if first.limit() == limit => Some(first.clone()),
            _ => {
                let quota = Arc::new(quota);
                quotas.insert(key, quota.clone());
                Some(quota)
            }
        }
    }
}

/// One user's quota, shared by all of the user's sessions.
#[derive(Debug)]
pub(crate) struct Quota {
    limit: u64,
    used: AtomicU64,
    /// The shared store and the user's key in it.
    shared: Option<(Arc<SharedLink>, String)>,
}

impl Quota {
    #[cfg(test)]
    pub(crate) fn new(limit: u64, used: u64) -> Self {
        Quota {
            limit,
            used: AtomicU64::new(used),
            shared: None,
        }
    }

    /// Takes the usage from the shared store, seeding it from a measurement of `storage` when
    /// the store has none. Whether the store answered (else the count stays as it was).
    pub(crate) async fn sync(&self, user: &str, storage: &dyn Storage) -> bool {
        let Some((link, key)) = &self.shared else {
            return false;
        };
        let used = match link.call("quota read", link.state.quota_used(key)).await {
            Some(Some(used)) => used,
            Some(None) => {
                let measured = measure(user, storage).await;
                match link
                    .call("quota seed", link.state.seed_quota(key, measured))
                    .await
                {
                    Some(used) => used,
                    None => return false,
                }
            }
            None => return false,
        };
        self.used.store(used, Ordering::Relaxed);
        true
    }

    /// The most bytes the user's files may take.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes still free.
    pub(crate) fn available(&self) -> u64 {
        self.limit.saturating_sub(self.used.load(Ordering::Relaxed))
    }

    /// A file of `size` bytes was removed.
    pub(crate) async fn removed(&self, size: u64) {
        self.resized(size, 0).await;
    }

    /// The space AVBL reports: the smaller of the storage's free space (`free`) and what is
    /// left of the quota; what is left of the quota when the storage cannot tell.
    pub(crate) fn available_of<E>(&self, free: Result<u64, E>) -> u64 {
        match free {
            Ok(free) => free.min(self.available()),
            Err(_) => self.available(),
        }
    }

    /// A file grew from `old` to `new` bytes (or was removed: `new` = 0).
    /// The shared store, if any, is told the difference.
    pub(crate) async fn resized(&self, old: u64, new: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(old).saturating_add(new))
            });
        if let Some((link, key)) = &self.shared {
            let delta = i64::try_from(new)
                .unwrap_or(i64::MAX)
                .saturating_sub(i64::try_from(old).unwrap_or(i64::MAX));
            if delta != 0 {
                link.call("quota update", link.state.add_quota(key, delta))
                    .await;
            }
        }
    }
}

/// The limits that apply to one upload.
#[derive(Debug, Clone, Default)]
pub(crate) struct UploadLimits {
    pub(crate) max_file_size: Option<u64>,
    pub(crate) quota: Option<Arc<Quota>>,
    /// MODE Z: most bytes one upload may inflate to.
    pub(crate) mode_z_max_inflated: u64,
    /// MODE Z: most inflated bytes per compressed byte (beyond the first MiB).
    pub(crate) mode_z_max_ratio: u64,
}

impl UploadLimits {
    /// An upload (or COMB) committed: files of `replaced` bytes in all became one of `size`.
    pub(crate) async fn committed(&self, replaced: u64, size: u64) {
        if let Some(quota) = &self.quota {
            quota.resized(replaced, size).await;
        }
    }

    pub(crate) fn is_unlimited(&self) -> bool {
        self.max_file_size.is_none() && self.quota.is_none()
    }

    /// How many bytes an upload may write, given the size of the file it replaces or extends
    /// (`existing`) and the offset it starts writing at (`start`), and the limit that sets it.
    pub(crate) fn allowance(&self, existing: u64, start: u64) -> Allowance {
        let by_size = self
            .max_file_size
            .map_or(u64::MAX, |max| max.saturating_sub(start));
        // Bytes beyond `start` in the old file are given back when it is replaced.
        let by_quota = self.quota.as_ref().map_or(u64::MAX, |q| {
            q.available().saturating_add(existing.saturating_sub(start))
        });
        match (self.max_file_size, &self.quota) {
            (_, Some(quota)) if by_quota < by_size => Allowance {
                bytes: by_quota,
                limit: UploadLimit::Quota(quota.limit()),
            },
            (Some(max), _) => Allowance {
                bytes: by_size,
                limit: UploadLimit::MaxFileSize(max),
            },
            (None, _) => Allowance {
                bytes: u64::MAX,
                limit: UploadLimit::MaxFileSize(u64::MAX),
            },
        }
    }
}

/// What an upload may write, and which limit says so (named in the 552 reply when it is hit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Allowance {
    pub(crate) bytes: u64,
    pub(crate) limit: UploadLimit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowance_takes_the_tighter_limit() {
        let limits = UploadLimits {
            max_file_size: Some(100),
            quota: Some(Arc::new(Quota::new(1000, 950))),
            ..UploadLimits::default()
        };
        assert_eq!(
            limits.allowance(0, 0),
            Allowance {
                bytes: 50,
                limit: UploadLimit::Quota(1000)
            }
        );
        assert_eq!(
            limits.allowance(40, 0).bytes,
            90,
            "replacing a 40-byte file frees its bytes"
        );
        assert_eq!(
            limits.allowance(40, 40).bytes,
            50,
            "appending frees nothing"
        );
        assert_eq!(
            limits.allowance(1000, 0),
            Allowance {
                bytes: 100,
                limit: UploadLimit::MaxFileSize(100)
            },
            "the file size limit is the tighter one here"
        );
        let size_only = UploadLimits {
            max_file_size: Some(100),
            quota: None,
            ..UploadLimits::default()
        };
        assert_eq!(size_only.allowance(60, 60).bytes, 40);
        assert!(UploadLimits::default().is_unlimited());
    }

    #[tokio::test]
    async fn resizing_moves_usage() {
        let q = Quota::new(100, 10);
        q.resized(0, 30).await;
        assert_eq!(q.available(), 60);
        q.resized(30, 0).await;
        assert_eq!(q.available(), 90);
        q.resized(500, 0).await;
        assert_eq!(q.available(), 100);
        q.resized(0, 40).await;
        q.removed(15).await;
        assert_eq!(q.available(), 75);
    }

    #[test]
    fn available_space_is_the_smaller_of_free_space_and_quota() {
        let q = Quota::new(100, 30);
        assert_eq!(q.available_of::<()>(Ok(50)), 50);
        assert_eq!(q.available_of::<()>(Ok(500)), 70);
        assert_eq!(q.available_of(Err(())), 70);
    }

    #[tokio::test]
    async fn a_commit_moves_usage_only_with_a_quota() {
        let quota = Arc::new(Quota::new(100, 50));
        let limits = UploadLimits {
            quota: Some(quota.clone()),
            ..UploadLimits::default()
        };
        limits.committed(20, 60).await;
        assert_eq!(quota.available(), 10);
        UploadLimits::default().committed(20, 60).await;
    }
}
