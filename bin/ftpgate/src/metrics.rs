//! The daemon's metrics registry: the engine's metrics ([`ftpgate::Metrics`]) and the object
//! stores' requests, counted by a [`RequestObserver`] every store is given. The daemon always
//! counts (a few atomic adds per command); `[admin]` only decides whether they are served.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ftpgate::Metrics;
use ftpgate::prometheus_client::metrics::counter::Counter;
use ftpgate::prometheus_client::metrics::family::Family;
use ftpgate::prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use ftpgate::prometheus_client::registry::Registry;
use ftpgate_storage_object::RequestObserver;

type Labels = Vec<(&'static str, &'static str)>;

/// Requests to object stores, by backend, operation and result.
#[derive(Debug)]
struct StorageMetrics {
    requests: Family<Labels, Counter>,
    durations: Family<Labels, Histogram, fn() -> Histogram>,
}

impl RequestObserver for StorageMetrics {
    fn on_request(&self, backend: &'static str, operation: &'static str, ok: bool, took: Duration) {
        let result = if ok { "ok" } else { "error" };
        self.requests
            .get_or_create(&vec![
                ("backend", backend),
                ("operation", operation),
                ("result", result),
            ])
            .inc();
        self.durations
            .get_or_create(&vec![("backend", backend), ("operation", operation)])
            .observe(took.as_secs_f64());
    }
}

/// One for the process: the stores of a reload report to the same counters.
static STORAGE: LazyLock<Arc<StorageMetrics>> = LazyLock::new(|| {
    Arc::new(StorageMetrics {
        requests: Family::default(),
        durations: Family::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        }),
    })
});

/// Hook runs by result (`ok`, `failed`, `timeout`, `retry`, `dropped`), for every hook of the
/// process.
static HOOKS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);

/// The counter of hook runs with this result.
pub(crate) fn hook_counter(result: &'static str) -> Counter {
    HOOKS.get_or_create(&vec![("result", result)]).clone()
}

/// The observer every object store the daemon builds is given.
pub(crate) fn storage_observer() -> Arc<dyn RequestObserver> {
    STORAGE.clone()
}

/// The registry the admin listener serves, and the engine's metrics in it.
pub(crate) fn registry() -> (Registry, Arc<Metrics>) {
    let mut registry = Registry::default();
    let engine = Metrics::register(&mut registry);
    registry.register(
        "ftpgate_storage_requests",
        "Requests to object storage (after retries), by backend, operation and result",
        STORAGE.requests.clone(),
    );
    registry.register(
        "ftpgate_storage_request_duration_seconds",
        "Time of requests to object storage (retries included), by backend and operation",
        STORAGE.durations.clone(),
    );
    registry.register(
        "ftpgate_hooks",
        "Hook runs by result: ok, failed (given up after its retries), timeout, retry, dropped (queue full)",
        HOOKS.clone(),
    );
    (registry, engine)
}
