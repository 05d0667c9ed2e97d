//! Upload size limits and per-user quotas, enforced while the bytes arrive.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) use ftpgate_proto::session::UploadLimit;

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
    }
}
