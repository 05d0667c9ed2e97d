//! The configurations of the two kinds of store, and the settings the shared logic takes from
//! either.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::{MAX_PARTS, MIN_PART_SIZE, NativeService, RequestObserver};

/// Where the store is and how to use it.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The S3 endpoint, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:3900`.
    pub endpoint: Url,
    /// The region (any string the store accepts, e.g. `garage` or `us-east-1`).
    pub region: String,
    /// The bucket users' homes are in (a home may name another with `s3://bucket/prefix`).
    pub bucket: String,
    /// A key prefix under which all homes live ("" for the whole bucket).
    pub prefix: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
    /// Path-style URLs (`endpoint/bucket/key`), as most self-hosted stores need.
    pub path_style: bool,
    /// Multipart part size (at least 5 MiB).
    pub part_size: usize,
    /// Parts uploading at once per transfer.
    pub parts_in_flight: usize,
    /// The largest file expected, if known: the first part size grows so that it fits in
    /// 10,000 parts. Without it parts still double in size every 1,000 parts.
    pub max_file_size: Option<u64>,
    /// Keep interrupted uploads (their multipart state) so that they can be resumed.
    pub keep_partial_uploads: bool,
    /// Longest a single request may take.
    pub request_timeout: Duration,
    /// Retries of a request that failed transiently (timeouts, 5xx, throttling).
    pub retries: u32,
    /// Most objects a directory rename may copy.
    pub max_rename_objects: usize,
    /// Told of every request to the store (for metrics); none by default.
    pub observer: Option<Arc<dyn RequestObserver>>,
}

impl S3Config {
    /// Settings for a bucket at an endpoint, with defaults for the rest: 8 MiB parts, 4 in
    /// flight, 5-minute requests, 3 retries, renames of up to 10,000 objects.
    pub fn new(
        endpoint: Url,
        region: &str,
        bucket: &str,
        access_key: &str,
        secret_key: &str,
    ) -> Self {
        S3Config {
            endpoint,
            region: region.to_string(),
            bucket: bucket.to_string(),
            prefix: String::new(),
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            session_token: None,
            path_style: true,
            part_size: 8 * 1024 * 1024,
            parts_in_flight: 4,
            max_file_size: None,
            keep_partial_uploads: false,
            request_timeout: Duration::from_secs(300),
            retries: 3,
            max_rename_objects: 10_000,
            observer: None,
        }
    }

    /// The first part size: at least 5 MiB, and large enough that `max_file_size` fits in
    /// 10,000 parts (rounded up to whole MiB).
    pub fn effective_part_size(&self) -> usize {
        self.settings().effective_part_size()
    }

    /// The size of part `number` (from 1): the first part size, doubled every 1,000 parts (at
    /// most 5 GiB, S3's largest part), so 10,000 parts hold more than S3's largest object.
    pub fn part_size_for(&self, number: u16) -> usize {
        self.settings().part_size_for(number)
    }

    pub(crate) fn settings(&self) -> Settings {
        Settings {
            part_size: self.part_size,
            parts_in_flight: self.parts_in_flight,
            max_file_size: self.max_file_size,
            keep_partial_uploads: self.keep_partial_uploads,
            max_rename_objects: self.max_rename_objects,
            ignore_set_mode: false,
        }
    }
}

/// Where a store reached through its own API is, and how to use it.
#[derive(Debug, Clone)]
pub struct NativeConfig {
    /// The store and its credentials.
    pub service: NativeService,
    /// A key prefix under which all homes live ("" for the whole container or bucket).
    pub prefix: String,
    /// Upload chunk (block) size.
    pub part_size: usize,
    /// Chunks uploading at once per transfer.
    pub parts_in_flight: usize,
    /// Longest a single request may take.
    pub request_timeout: Duration,
    /// Retries of a request that failed transiently (timeouts, 5xx, throttling).
    pub retries: u32,
    /// Most objects a directory rename may copy.
    pub max_rename_objects: usize,
    /// Told of every request to the store (for metrics); none by default.
    pub observer: Option<Arc<dyn RequestObserver>>,
}

impl NativeConfig {
    /// Settings for `service`, with the defaults of [`S3Config::new`].
    pub fn new(service: NativeService) -> Self {
        NativeConfig {
            service,
            prefix: String::new(),
            part_size: 8 * 1024 * 1024,
            parts_in_flight: 4,
            request_timeout: Duration::from_secs(300),
            retries: 3,
            max_rename_objects: 10_000,
            observer: None,
        }
    }
}

/// What the shared logic needs to know of either configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) part_size: usize,
    pub(crate) parts_in_flight: usize,
    pub(crate) max_file_size: Option<u64>,
    pub(crate) keep_partial_uploads: bool,
    pub(crate) max_rename_objects: usize,
    /// SITE CHMOD is accepted and ignored instead of refused.
    pub(crate) ignore_set_mode: bool,
}

impl Settings {
    pub(crate) fn effective_part_size(&self) -> usize {
        const MIB: u64 = 1024 * 1024;
        let needed = self
            .max_file_size
            .unwrap_or(0)
            .div_ceil(MAX_PARTS)
            .div_ceil(MIB)
            * MIB;
        let size = (self.part_size as u64)
            .max(needed)
            .max(MIN_PART_SIZE as u64);
        usize::try_from(size).unwrap_or(usize::MAX)
    }

    pub(crate) fn part_size_for(&self, number: u16) -> usize {
        let doublings = u32::from(number.saturating_sub(1) / 1000);
        let size = (self.effective_part_size() as u64).saturating_mul(1u64 << doublings.min(20));
        usize::try_from(size.min(5 * 1024 * 1024 * 1024)).unwrap_or(usize::MAX)
    }
}

pub(crate) fn clean_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}
