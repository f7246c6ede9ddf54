//! Metrics through the [`metrics`](https://docs.rs/metrics) facade 0.24 (feature `metrics`).
//!
//! `metrics` is the facade the Rust service ecosystem records through: `tokio-metrics`, axum's
//! examples and vector report through it, and its recorders export to Prometheus
//! (`metrics-exporter-prometheus`), StatsD, OpenTelemetry and others. Install a recorder (once,
//! **before** building the providers: a gauge counts up and down from what the recorder saw) and
//! the caches, the HTTP policy and the stores report to it; without a recorder every call is a
//! no-op. Without the feature, none of this is compiled.
//!
//! # The metrics
//!
//! Every name starts with `partner_auth_`; labels come only from the fixed set below, so a series
//! never names a tenant, a user or a secret.
//!
//! | name | kind | labels | what |
//! | --- | --- | --- | --- |
//! | `partner_auth_fetches_total` ([`FETCHES`]) | counter | `provider`, `outcome` | fetches ended, by how ([`Outcome`]) |
//! | `partner_auth_fetch_duration_seconds` ([`FETCH_DURATION`]) | histogram | `provider`, `outcome` | how long each fetch took, store protocol included |
//! | `partner_auth_hits_total` ([`HITS`]) | counter | `provider` | calls answered from the cache (published as described below) |
//! | `partner_auth_principals_cached` ([`PRINCIPALS_CACHED`]) | gauge | `provider` | principals holding a token in memory now (valid or not: until it is replaced, invalidated, forgotten or evicted) |
//! | `partner_auth_evictions_total` ([`EVICTIONS`]) | counter | `provider` | principals a keyed cache evicted (bound or idle expiry) |
//! | `partner_auth_store_errors_total` ([`STORE_ERRORS`]) | counter | `provider`, `store`, `operation` | store calls of the cache that failed (a save refused for a stale version is the protocol at work, not counted) |
//! | `partner_auth_pacing_waits_total` ([`PACING_WAITS`]) | counter | `provider` | requests that waited (1 ms or more) for their turn under a [`RateLimit`](crate::RateLimit) |
//! | `partner_auth_pacing_wait_seconds` ([`PACING_WAIT_DURATION`]) | histogram | `provider` | how long each of them waited |
//! | `partner_auth_http_retries_total` ([`HTTP_RETRIES`]) | counter | `provider`, `outcome` | HTTP attempts repeated under the retry policy, by what the failed attempt got |
//!
//! The label values:
//!
//! - `provider`: the cache's static name ([`CacheConfig::name`](crate::CacheConfig::name):
//!   `aerion`, `aurora-uk`, `aurora-solar`, `aurora-solar-sdk`, or your own provider's). An HTTP
//!   retry or a pacing wait outside a token fetch (an API call) is labelled `none`.
//! - `outcome` of a fetch: one of [`Outcome::ALL`]. Of an HTTP retry: `rate_limited` (429),
//!   `unavailable` (5xx, 408), `timeout`, `transport`.
//! - `store`: [`TokenStore::kind`](crate::TokenStore::kind): `file`, `memory`, `redis`, or
//!   `custom`.
//! - `operation`: `lock`, `load`, `save`, `remove`.
//!
//! # How fresh the hit count is
//!
//! A hit costs the same with the feature on as off: it is counted in the cache's own counter
//! ([`CacheStats::hits`](crate::CacheStats::hits)), never through the facade, whose every call
//! looks up the global recorder and hashes the metric's key. The count reaches
//! `partner_auth_hits_total` (as the increase since the last time) when a fetch starts or ends,
//! when the cache's [`stats`](crate::CachedTokenProvider::stats) are read, when a keyed cache
//! sweeps, when a cache is dropped, and whenever [`publish`] is called. A cache whose token lives
//! 13 hours would otherwise publish twice in that time: call [`publish`] before each scrape (or
//! from a timer) for a count that is exact at the scrape.
//!
//! # The span
//!
//! With or without the feature, each fetch runs in one `tracing` span, `partner_auth.fetch` (at
//! `INFO`), with these fields and no others: `provider` (as above), `principal` (a digest of the
//! principal's store key, or of the principal when there is no key: 8 hex digits, the same in
//! every replica, never the tenant id, the user or a secret; [`principal_digest`]), `attempt`
//! (1 for a fetch after a success, 2 after one failure, ...) and `outcome` (recorded when the
//! fetch ends, as in the metrics). The events a fetch logs (`token fetched`, `token fetch
//! failed`, the HTTP client's) are inside it, so a subscriber that prints spans shows them with
//! these fields.

use std::sync::{Arc, Mutex, Weak};

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};

/// Fetches ended: a counter, labelled `provider` and `outcome`.
pub const FETCHES: &str = "partner_auth_fetches_total";
/// How long each fetch took, in seconds: a histogram, labelled `provider` and `outcome`.
pub const FETCH_DURATION: &str = "partner_auth_fetch_duration_seconds";
/// Calls answered from the cache: a counter, labelled `provider` (see the module docs for when
/// it is published).
pub const HITS: &str = "partner_auth_hits_total";
/// Principals holding a token in memory: a gauge, labelled `provider`.
pub const PRINCIPALS_CACHED: &str = "partner_auth_principals_cached";
/// Principals evicted from a keyed cache: a counter, labelled `provider`.
pub const EVICTIONS: &str = "partner_auth_evictions_total";
/// Failed store calls: a counter, labelled `provider`, `store` and `operation`.
pub const STORE_ERRORS: &str = "partner_auth_store_errors_total";
/// Requests that waited under a rate limit: a counter, labelled `provider`.
pub const PACING_WAITS: &str = "partner_auth_pacing_waits_total";
/// How long each of them waited, in seconds: a histogram, labelled `provider`.
pub const PACING_WAIT_DURATION: &str = "partner_auth_pacing_wait_seconds";
/// HTTP attempts repeated under the retry policy: a counter, labelled `provider` and `outcome`.
pub const HTTP_RETRIES: &str = "partner_auth_http_retries_total";

/// Every metric name, in the order of the table.
pub const NAMES: [&str; 9] = [
    FETCHES,
    FETCH_DURATION,
    HITS,
    PRINCIPALS_CACHED,
    EVICTIONS,
    STORE_ERRORS,
    PACING_WAITS,
    PACING_WAIT_DURATION,
    HTTP_RETRIES,
];

pub use crate::observe::{Outcome, principal_digest};

/// Describes every metric (its unit and a line of help) to the installed recorder; the
/// Prometheus exporter prints them as `# HELP` lines. Call it once after installing the recorder.
pub fn describe() {
    describe_counter!(
        FETCHES,
        Unit::Count,
        "Token fetches ended, by provider and outcome."
    );
    describe_histogram!(
        FETCH_DURATION,
        Unit::Seconds,
        "Duration of token fetches, store protocol included."
    );
    describe_counter!(HITS, Unit::Count, "Token calls answered from the cache.");
    describe_gauge!(
        PRINCIPALS_CACHED,
        Unit::Count,
        "Principals holding a token in memory."
    );
    describe_counter!(
        EVICTIONS,
        Unit::Count,
        "Principals evicted from a keyed cache."
    );
    describe_counter!(
        STORE_ERRORS,
        Unit::Count,
        "Failed token store calls, by store kind and operation."
    );
    describe_counter!(
        PACING_WAITS,
        Unit::Count,
        "Requests that waited for their turn under a rate limit."
    );
    describe_histogram!(
        PACING_WAIT_DURATION,
        Unit::Seconds,
        "How long paced requests waited for their turn."
    );
    describe_counter!(
        HTTP_RETRIES,
        Unit::Count,
        "HTTP attempts repeated under the retry policy."
    );
}

/// Publishes the hit count of every live cache now (see the module docs); cheap, a few atomic
/// reads per cache. Call it before a scrape for an exact `partner_auth_hits_total`.
pub fn publish() {
    let caches: Vec<Arc<dyn Publish>> = {
        let mut caches = CACHES.lock().unwrap_or_else(|e| e.into_inner());
        caches.retain(|cache| cache.strong_count() > 0);
        caches.iter().filter_map(Weak::upgrade).collect()
    };
    for cache in caches {
        cache.publish_hits();
    }
}

/// A cache whose hit count [`publish`] publishes.
pub(crate) trait Publish: Send + Sync {
    fn publish_hits(&self);
}

/// Every cache made, as long as it lives.
static CACHES: Mutex<Vec<Weak<dyn Publish>>> = Mutex::new(Vec::new());

/// Registers `cache` for [`publish`] (once, when it is made).
pub(crate) fn register(cache: Weak<dyn Publish>) {
    let mut caches = CACHES.lock().unwrap_or_else(|e| e.into_inner());
    // Dead caches go as new ones come, so the list stays as long as the set of live ones.
    if caches.len() >= 64 && caches.len().is_power_of_two() {
        caches.retain(|cache| cache.strong_count() > 0);
    }
    caches.push(cache);
}

/// Counts `increase` more hits of `provider`'s caches.
pub(crate) fn hits(provider: &'static str, increase: u64) {
    counter!(HITS, "provider" => provider).increment(increase);
}

/// A principal of `provider` now holds a token (`true`) or no longer does.
pub(crate) fn principal_cached(provider: &'static str, cached: bool) {
    let gauge = gauge!(PRINCIPALS_CACHED, "provider" => provider);
    if cached {
        gauge.increment(1.0);
    } else {
        gauge.decrement(1.0);
    }
}

/// `count` principals of `provider` evicted.
#[cfg(feature = "keyed")]
pub(crate) fn evicted(provider: &'static str, count: u64) {
    if count > 0 {
        counter!(EVICTIONS, "provider" => provider).increment(count);
    }
}

/// A fetch of `provider` ended with `outcome` after `seconds`.
pub(crate) fn fetch_ended(provider: &'static str, outcome: Outcome, seconds: f64) {
    let outcome = outcome.as_str();
    counter!(FETCHES, "provider" => provider, "outcome" => outcome).increment(1);
    metrics::histogram!(FETCH_DURATION, "provider" => provider, "outcome" => outcome)
        .record(seconds);
}

/// A store call (`operation` on a `store` store) of `provider`'s cache failed.
pub(crate) fn store_error(provider: &'static str, store: &'static str, operation: &'static str) {
    counter!(
        STORE_ERRORS,
        "provider" => provider,
        "store" => store,
        "operation" => operation
    )
    .increment(1);
}

/// A request waited `seconds` for its turn under a rate limit.
#[cfg(feature = "keyed")]
pub(crate) fn paced(seconds: f64) {
    let provider = current_provider();
    counter!(PACING_WAITS, "provider" => provider).increment(1);
    metrics::histogram!(PACING_WAIT_DURATION, "provider" => provider).record(seconds);
}

/// An HTTP attempt that got `outcome` is repeated.
pub(crate) fn http_retry(outcome: &'static str) {
    counter!(HTTP_RETRIES, "provider" => current_provider(), "outcome" => outcome).increment(1);
}

tokio::task_local! {
    /// The provider whose fetch the task is running, for what the HTTP client and the rate
    /// limit record (they are shared by providers, and know none).
    static PROVIDER: &'static str;
}

/// Runs `fetch` as a fetch of `provider`.
pub(crate) async fn scope<T>(provider: &'static str, fetch: impl Future<Output = T>) -> T {
    PROVIDER.scope(provider, fetch).await
}

/// The provider of the fetch this task runs, or `none`.
fn current_provider() -> &'static str {
    PROVIDER.try_with(|p| *p).unwrap_or("none")
}
