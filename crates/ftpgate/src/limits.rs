//! Upload size limits and per-user quotas: every piece of quota bookkeeping (the registry of
//! users' quotas, what an upload may write, what a commit, a COMB or a delete changes, the
//! space AVBL reports). Uploads are held to them while the bytes arrive.
//!
//! A user's usage (bytes and files) is measured from the storage once per process; with a
//! [`SharedState`](crate::SharedState) it is kept in the shared store instead (seeded from a
//! measurement when the store has none, read again before each upload and AVBL, and moved by
//! every commit, COMB and delete), so that every node sharing the storage holds the user to the
//! sum of all nodes' uploads. When the store does not answer, the process's own count is used.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ftpgate_core::{Storage, User};
pub(crate) use ftpgate_proto::session::UploadLimit;
use tracing::warn;

use crate::state::{QuotaUsage, SharedLink};

/// The quotas of a server's users, shared by all of a user's sessions.
#[derive(Default)]
pub(crate) struct Quotas {
    /// By host and user name.
    by_user: Mutex<HashMap<String, Arc<Quota>>>,
    shared: Option<Arc<SharedLink>>,
}

/// What `quota`'s user's files take in `storage`, measured for the limits set (0 for the
/// others, and when the storage cannot tell: logged).
async fn measure(quota: &Quota, storage: &dyn Storage) -> QuotaUsage {
    let user = quota.user.as_str();
    let bytes = match quota.limit {
        Some(_) => storage.used_bytes().await.unwrap_or_else(|e| {
            warn!(user, error = %e, "cannot measure usage; counting the quota from zero");
            0
        }),
        None => 0,
    };
    let files = match quota.file_limit {
        Some(_) => storage.used_files().await.unwrap_or_else(|e| {
            warn!(user, error = %e, "cannot count files; counting the quota from zero");
            0
        }),
        None => 0,
    };
    QuotaUsage { bytes, files }
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
        if user.quota_bytes.is_none() && user.quota_files.is_none() {
            return None;
        }
        let limits = (user.quota_bytes, user.quota_files);
        // Virtual hosts have users of their own: the same name on two hosts is two users.
        // (Host names hold no `/`.)
        let key = format!("{host}/{}", user.name);
        // A reload may change the limits: then the usage is measured again.
        let cached = self
            .by_user
            .lock()
            .ok()?
            .get(&key)
            .filter(|q| q.limits() == limits)
            .cloned();
        if let Some(quota) = cached {
            quota.sync(storage).await;
            return Some(quota);
        }
        let mut quota = Quota::new(user.quota_bytes, 0).with_files(user.quota_files, 0);
        quota.user.clone_from(&user.name);
        quota.shared = self.shared.clone().map(|link| (link, key.clone()));
        if !quota.sync(storage).await {
            let usage = measure(&quota, storage).await;
            quota.used.store(usage.bytes, Ordering::Relaxed);
            quota.files.store(usage.files, Ordering::Relaxed);
        }
        let mut quotas = self.by_user.lock().ok()?;
        match quotas.get(&key) {
            // Another session of the user got there first.
            Some(first) if first.limits() == limits => Some(first.clone()),
            _ => {
                let quota = Arc::new(quota);
                quotas.insert(key, quota.clone());
                Some(quota)
            }
        }
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
    /// Of `files`, the places taken by uploads still arriving.
    pending: AtomicU64,
    /// The shared store and the user's key in it.
    shared: Option<(Arc<SharedLink>, String)>,
    /// The user's name, for messages.
    user: String,
}

impl Quota {
    /// A quota of `limit` bytes (`None`: bytes are not limited), `used` of them taken.
    pub(crate) fn new(limit: Option<u64>, used: u64) -> Self {
        Quota {
            limit,
            used: AtomicU64::new(used),
            file_limit: None,
            files: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            shared: None,
            user: String::new(),
        }
    }

    /// Takes the usage from the shared store, seeding it from a measurement of `storage` when
    /// the store has none. Whether the store answered (else the counts stay as they were).
    pub(crate) async fn sync(&self, storage: &dyn Storage) -> bool {
        let Some((link, key)) = &self.shared else {
            return false;
        };
        let usage = match link.call("quota read", link.state.quota_used(key)).await {
            Some(Some(usage)) => usage,
            Some(None) => {
                let measured = measure(self, storage).await;
                match link
                    .call("quota seed", link.state.seed_quota(key, measured))
                    .await
                {
                    Some(usage) => usage,
                    None => return false,
                }
            }
            None => return false,
        };
        self.used.store(usage.bytes, Ordering::Relaxed);
        let pending = self.pending.load(Ordering::Relaxed);
        self.files
            .store(usage.files.saturating_add(pending), Ordering::Relaxed);
        true
    }

    /// Tells the shared store, if any, that `bytes` and `files` changed by these amounts.
    async fn tell(&self, bytes: i64, files: i64) {
        if let (Some((link, key)), false) = (&self.shared, bytes == 0 && files == 0) {
            link.call("quota update", link.state.add_quota(key, bytes, files))
                .await;
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
    pub(crate) async fn removed(&self, size: u64) {
        self.resize_here(size, 0);
        self.files_here(0, 1);
        self.tell(-signed(size), -1).await;
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
    pub(crate) async fn resized(&self, old: u64, new: u64) {
        self.resize_here(old, new);
        self.tell(signed(new).saturating_sub(signed(old)), 0).await;
    }

    fn resize_here(&self, old: u64, new: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(old).saturating_add(new))
            });
    }

    fn files_here(&self, added: u64, removed: u64) {
        if self.file_limit.is_some() || self.shared.is_some() {
            let _ = self
                .files
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                    Some(f.saturating_sub(removed).saturating_add(added))
                });
        }
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
            .map_err(|_| limit)?;
        self.pending.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A place taken by [`reserve_file`](Self::reserve_file) is given back: the upload did not
    /// complete.
    pub(crate) fn release_file(&self) {
        if self.file_limit.is_some() {
            self.files_here(0, 1);
            self.unpend();
        }
    }

    /// The upload of a new file completed: its place (taken, with a limit on files) is the
    /// file's now.
    pub(crate) async fn file_added(&self) {
        if self.file_limit.is_some() {
            self.unpend();
        } else {
            self.files_here(1, 0);
        }
        self.tell(0, 1).await;
    }

    fn unpend(&self) {
        let _ = self
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                Some(p.saturating_sub(1))
            });
    }

    /// `removed` files went and `added` appeared (COMB).
    pub(crate) async fn files_changed(&self, added: u64, removed: u64) {
        self.files_here(added, removed);
        self.tell(0, signed(added).saturating_sub(signed(removed)))
            .await;
    }
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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

    /// The upload of a new file completed (see [`Quota::file_added`]).
    pub(crate) async fn file_added(&self) {
        if let Some(quota) = &self.quota {
            quota.file_added().await;
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

    #[tokio::test]
    async fn resizing_moves_usage() {
        let q = Quota::new(Some(100), 10);
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
        let q = Quota::new(Some(100), 30);
        assert_eq!(q.available_of::<()>(Ok(50)), Ok(50));
        assert_eq!(q.available_of::<()>(Ok(500)), Ok(70));
        assert_eq!(q.available_of(Err(())), Ok(70));
        let files_only = Quota::new(None, 0).with_files(Some(3), 1);
        assert_eq!(files_only.available_of::<()>(Ok(500)), Ok(500));
        assert_eq!(files_only.available_of(Err(())), Err(()));
    }

    #[tokio::test]
    async fn places_for_files_are_taken_given_back_and_freed() {
        let q = Quota::new(None, 0).with_files(Some(2), 1);
        assert_eq!(q.reserve_file(), Ok(()));
        assert_eq!(q.reserve_file(), Err(2), "two files already");
        q.release_file();
        assert_eq!(q.reserve_file(), Ok(()));
        q.removed(0).await;
        assert_eq!(q.reserve_file(), Ok(()));
        q.files_changed(1, 2).await;
        assert_eq!(q.reserve_file(), Ok(()));
        assert_eq!(q.reserve_file(), Err(2));
        let bytes_only = Quota::new(Some(10), 0);
        for _ in 0..5 {
            assert_eq!(bytes_only.reserve_file(), Ok(()), "files are not limited");
        }
    }

    #[tokio::test]
    async fn a_commit_moves_usage_only_with_a_quota() {
        let quota = Arc::new(Quota::new(Some(100), 50));
        let limits = UploadLimits {
            quota: Some(quota.clone()),
            ..UploadLimits::default()
        };
        limits.committed(20, 60).await;
        assert_eq!(quota.available(), 10);
        UploadLimits::default().committed(20, 60).await;
    }
}
