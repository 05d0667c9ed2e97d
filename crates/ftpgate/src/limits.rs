//! Upload size limits and per-user quotas: every piece of quota bookkeeping (the registry of
//! users' quotas, what an upload may write, what a commit, a COMB or a delete changes, the
//! space AVBL reports). Uploads are held to them while the bytes arrive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ftpgate_core::{Storage, User};
pub(crate) use ftpgate_proto::session::UploadLimit;
use tracing::warn;

/// The quotas of a server's users, shared by all of a user's sessions.
#[derive(Default)]
pub(crate) struct Quotas {
    /// By host and user name.
    by_user: Mutex<HashMap<String, Arc<Quota>>>,
}

impl Quotas {
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
        let key = format!("{host}\0{}", user.name);
        // A reload may change the limit: then the usage is measured again.
        if let Some(quota) = self.by_user.lock().ok()?.get(&key) {
            if quota.limit() == limit {
                return Some(quota.clone());
            }
        }
        let used = match storage.used_bytes().await {
            Ok(used) => used,
            Err(e) => {
                warn!(user = user.name.as_str(), error = %e, "cannot measure usage; counting the quota from zero");
                0
            }
        };
        let mut quotas = self.by_user.lock().ok()?;
        let quota = quotas
            .entry(key)
            .or_insert_with(|| Arc::new(Quota::new(limit, used)));
        if quota.limit() != limit {
            *quota = Arc::new(Quota::new(limit, used));
        }
        Some(quota.clone())
    }
}

/// One user's quota, shared by all of the user's sessions.
#[derive(Debug)]
pub(crate) struct Quota {
    limit: u64,
    used: AtomicU64,
}

impl Quota {
    pub(crate) fn new(limit: u64, used: u64) -> Self {
        Quota {
            limit,
            used: AtomicU64::new(used),
        }
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
    pub(crate) fn removed(&self, size: u64) {
        self.resized(size, 0);
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
    pub(crate) fn resized(&self, old: u64, new: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(old).saturating_add(new))
            });
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
    pub(crate) fn committed(&self, replaced: u64, size: u64) {
        if let Some(quota) = &self.quota {
            quota.resized(replaced, size);
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

    #[test]
    fn resizing_moves_usage() {
        let q = Quota::new(100, 10);
        q.resized(0, 30);
        assert_eq!(q.available(), 60);
        q.resized(30, 0);
        assert_eq!(q.available(), 90);
        q.resized(500, 0);
        assert_eq!(q.available(), 100);
        q.resized(0, 40);
        q.removed(15);
        assert_eq!(q.available(), 75);
    }

    #[test]
    fn available_space_is_the_smaller_of_free_space_and_quota() {
        let q = Quota::new(100, 30);
        assert_eq!(q.available_of::<()>(Ok(50)), 50);
        assert_eq!(q.available_of::<()>(Ok(500)), 70);
        assert_eq!(q.available_of(Err(())), 70);
    }

    #[test]
    fn a_commit_moves_usage_only_with_a_quota() {
        let quota = Arc::new(Quota::new(100, 50));
        let limits = UploadLimits {
            quota: Some(quota.clone()),
            ..UploadLimits::default()
        };
        limits.committed(20, 60);
        assert_eq!(quota.available(), 10);
        UploadLimits::default().committed(20, 60);
    }
}
