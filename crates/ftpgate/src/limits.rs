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
        if user.quota_bytes.is_none() && user.quota_files.is_none() {
            return None;
        }
        let limits = (user.quota_bytes, user.quota_files);
        // Virtual hosts have users of their own: the same name on two hosts is two users.
        let key = format!("{host}\0{}", user.name);
        // A reload may change the limits: then the usage is measured again.
        if let Some(quota) = self.by_user.lock().ok()?.get(&key) {
            if quota.limits() == limits {
                return Some(quota.clone());
            }
        }
        let used = match user.quota_bytes {
            Some(_) => storage.used_bytes().await.unwrap_or_else(|e| {
                warn!(user = user.name.as_str(), error = %e, "cannot measure usage; counting the quota from zero");
                0
            }),
            None => 0,
        };
        let files = match user.quota_files {
            Some(_) => storage.used_files().await.unwrap_or_else(|e| {
                warn!(user = user.name.as_str(), error = %e, "cannot count files; counting the quota from zero");
                0
            }),
            None => 0,
        };
        let mut quotas = self.by_user.lock().ok()?;
        let quota = quotas.entry(key).or_insert_with(|| {
            Arc::new(Quota::new(user.quota_bytes, used).with_files(user.quota_files, files))
        });
        if quota.limits() != limits {
            *quota =
                Arc::new(Quota::new(user.quota_bytes, used).with_files(user.quota_files, files));
        }
        Some(quota.clone())
    }
}

/// One user's quota (bytes, files or both), shared by all of the user's sessions.
#[derive(Debug)]
pub(crate) struct Quota {
    limit: Option<u64>,
    used: AtomicU64,
    file_limit: Option<u64>,
    /// Files the user has, with places taken by uploads of new files still arriving.
    files: AtomicU64,
}

impl Quota {
    /// A quota of `limit` bytes (`None`: bytes are not limited), `used` of them taken.
    pub(crate) fn new(limit: Option<u64>, used: u64) -> Self {
        Quota {
            limit,
            used: AtomicU64::new(used),
            file_limit: None,
            files: AtomicU64::new(0),
        }
    }

    /// The same, with at most `limit` files, `count` of them there.
    pub(crate) fn with_files(mut self, limit: Option<u64>, count: u64) -> Self {
        self.file_limit = limit;
        self.files = AtomicU64::new(count);
        self
    }

    /// The limits: bytes and files.
    fn limits(&self) -> (Option<u64>, Option<u64>) {
        (self.limit, self.file_limit)
    }

    /// The most bytes the user's files may take, if bytes are limited.
    pub(crate) fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Bytes still free (everything when bytes are not limited).
    pub(crate) fn available(&self) -> u64 {
        self.limit.map_or(u64::MAX, |limit| {
            limit.saturating_sub(self.used.load(Ordering::Relaxed))
        })
    }

    /// A file of `size` bytes was removed: its bytes and its place are free.
    pub(crate) fn removed(&self, size: u64) {
        self.resized(size, 0);
        self.release_file();
    }

    /// The space AVBL reports: the smaller of the storage's free space (`free`) and what is
    /// left of the quota; what is left of the quota when the storage cannot tell. Without a
    /// limit on bytes, the storage's answer.
    pub(crate) fn available_of<E>(&self, free: Result<u64, E>) -> Result<u64, E> {
        match (free, self.limit) {
            (free, None) => free,
            (Ok(free), Some(_)) => Ok(free.min(self.available())),
            (Err(_), Some(_)) => Ok(self.available()),
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

    /// Takes a place for a new file; `Err(limit)` when the user has as many files as allowed.
    /// Without a limit on files, nothing is counted.
    pub(crate) fn reserve_file(&self) -> Result<(), u64> {
        let Some(limit) = self.file_limit else {
            return Ok(());
        };
        self.files
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |files| {
                (files < limit).then_some(files + 1)
            })
            .map(|_| ())
            .map_err(|_| limit)
    }

    /// A place taken by [`reserve_file`](Self::reserve_file) is given back (the upload did not
    /// complete), or a file went.
    pub(crate) fn release_file(&self) {
        if self.file_limit.is_some() {
            let _ = self
                .files
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                    Some(f.saturating_sub(1))
                });
        }
    }

    /// `removed` files went and `added` appeared (COMB).
    pub(crate) fn files_changed(&self, added: u64, removed: u64) {
        if self.file_limit.is_some() {
            let _ = self
                .files
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                    Some(f.saturating_sub(removed).saturating_add(added))
                });
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
    pub(crate) fn committed(&self, replaced: u64, size: u64) {
        if let Some(quota) = &self.quota {
            quota.resized(replaced, size);
        }
    }

    pub(crate) fn is_unlimited(&self) -> bool {
        self.max_file_size.is_none() && self.quota.is_none()
    }

    /// Takes a place in the quota of files for a new file (see [`Quota::reserve_file`]).
    pub(crate) fn reserve_file(&self) -> Result<(), UploadLimit> {
        match &self.quota {
            Some(quota) => quota.reserve_file().map_err(UploadLimit::QuotaFiles),
            None => Ok(()),
        }
    }

    /// Gives back a place taken for a new file whose upload did not complete.
    pub(crate) fn release_file(&self) {
        if let Some(quota) = &self.quota {
            quota.release_file();
        }
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
        match (
            self.max_file_size,
            self.quota.as_ref().and_then(|q| q.limit()),
        ) {
            (_, Some(quota)) if by_quota < by_size => Allowance {
                bytes: by_quota,
                limit: UploadLimit::Quota(quota),
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
            quota: Some(Arc::new(Quota::new(Some(1000), 950))),
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
        let q = Quota::new(Some(100), 10);
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
        let q = Quota::new(Some(100), 30);
        assert_eq!(q.available_of::<()>(Ok(50)), Ok(50));
        assert_eq!(q.available_of::<()>(Ok(500)), Ok(70));
        assert_eq!(q.available_of(Err(())), Ok(70));
        let files_only = Quota::new(None, 0).with_files(Some(3), 1);
        assert_eq!(files_only.available_of::<()>(Ok(500)), Ok(500));
        assert_eq!(files_only.available_of(Err(())), Err(()));
    }

    #[test]
    fn places_for_files_are_taken_given_back_and_freed() {
        let q = Quota::new(None, 0).with_files(Some(2), 1);
        assert_eq!(q.reserve_file(), Ok(()));
        assert_eq!(q.reserve_file(), Err(2), "two files already");
        q.release_file();
        assert_eq!(q.reserve_file(), Ok(()));
        q.removed(0);
        assert_eq!(q.reserve_file(), Ok(()));
        q.files_changed(1, 2);
        assert_eq!(q.reserve_file(), Ok(()));
        assert_eq!(q.reserve_file(), Err(2));
        let bytes_only = Quota::new(Some(10), 0);
        for _ in 0..5 {
            assert_eq!(bytes_only.reserve_file(), Ok(()), "files are not limited");
        }
    }

    #[test]
    fn a_commit_moves_usage_only_with_a_quota() {
        let quota = Arc::new(Quota::new(Some(100), 50));
        let limits = UploadLimits {
            quota: Some(quota.clone()),
            ..UploadLimits::default()
        };
        limits.committed(20, 60);
        assert_eq!(quota.available(), 10);
        UploadLimits::default().committed(20, 60);
    }
}
