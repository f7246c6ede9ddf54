//! [`CacheConfig`], how a cache behaves, and [`CacheStats`], what it counted.

use std::sync::Arc;
use std::time::Duration;

use crate::store::TokenStore;
use crate::{SharedClock, system_clock};

/// How a [`CachedTokenProvider`](crate::CachedTokenProvider) behaves. The defaults suit tokens
/// that live minutes to days.
#[derive(Clone, Debug)]
#[must_use]
pub struct CacheConfig {
    pub(crate) margin: Option<Duration>,
    pub(crate) max_margin: Duration,
    pub(crate) default_lifetime: Duration,
    pub(crate) max_lifetime: Duration,
    pub(crate) load_timeout: Duration,
    pub(crate) fetch_timeout: Duration,
    pub(crate) negative_ttl: Duration,
    pub(crate) backoff_initial: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) clock: SharedClock,
    pub(crate) store: Option<Arc<dyn TokenStore>>,
    pub(crate) name: &'static str,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            margin: None,
            max_margin: Duration::from_secs(300),
            default_lifetime: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(7 * 24 * 3600),
            load_timeout: Duration::from_secs(60),
            fetch_timeout: Duration::from_secs(120),
            negative_ttl: Duration::from_secs(5),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            clock: system_clock(),
            store: None,
            name: "token",
        }
    }
}

impl CacheConfig {
    /// The default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    crate::builder_setters! {
        /// A fixed refresh margin instead of `min(5 min, lifetime / 5)` (jitter still applies).
        margin: Duration,
        /// The largest default margin (default 5 minutes).
        max_margin: Duration,
        /// How long a token with no expiry is used before it is refreshed (default 1 hour).
        default_lifetime: Duration,
        /// The longest a token is used before it is refreshed, whatever its expiry says
        /// (default 7 days).
        max_lifetime: Duration,
        /// How long a caller waits for a fetch before giving up with
        /// [`Error::Timeout`](crate::Error::Timeout) (default 60 s). The fetch itself carries
        /// on for the callers after it.
        load_timeout: Duration,
        /// The deadline of every fetch, store protocol included (default 2 minutes, longer
        /// than the HTTP client's retries take). A fetch past it is abandoned: its waiters get
        /// [`Error::Timeout`](crate::Error::Timeout), the store's lock is released, the failure
        /// is held as a transient one, and a refresh token it presented counts as one whose
        /// answer was lost (presented at most once more). It is also how long another replica
        /// waits for this one's answer before counting it as lost.
        fetch_timeout: Duration,
        /// How long a permanent failure is returned without asking the provider again
        /// (default 5 s).
        negative_ttl: Duration,
        /// The clock (default: the system clock).
        clock: SharedClock,
        /// Persists the provider's state in `store`, under the key its fetcher names
        /// ([`Fetch::store_key`](crate::Fetch::store_key)): one key per principal, derived by
        /// the provider, so no configuration can make two tenants or users share one state.
        store: Arc<dyn TokenStore>,
        /// The name used in log events (default `token`).
        name: &'static str,
    }

    /// The backoff after transient failures: `initial`, doubling to at most `max` (defaults
    /// 1 s and 5 minutes), with jitter; a provider's `Retry-After` wins when longer.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// No store: the state lives in memory only.
    pub fn without_store(mut self) -> Self {
        self.store = None;
        self
    }

    /// The clock in use.
    pub fn clock_ref(&self) -> &SharedClock {
        &self.clock
    }

    /// The store, if one is set.
    pub fn store_ref(&self) -> Option<&Arc<dyn TokenStore>> {
        self.store.as_ref()
    }
}

/// A snapshot of a cache's counters, for users who export metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls answered from the cache (fresh or soft window).
    pub hits: u64,
    /// Calls that found no valid token and waited for a fetch.
    pub misses: u64,
    /// Fetches started (each is one trip to the provider, or one store read).
    pub fetches: u64,
    /// Fetches that failed.
    pub failures: u64,
    /// How long the last successful fetch took.
    pub last_fetch_latency: Option<Duration>,
    /// Whether a fetch is under way.
    pub fetching: bool,
}
