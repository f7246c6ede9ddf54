//! [`ProviderOptions`]: the settings every provider builder shares, resolved in one place.

use std::sync::Arc;

#[cfg(feature = "keyed")]
use crate::RateLimit;
use crate::{CacheConfig, Error, HttpClient, SharedClock, TokenStore};

/// The settings every provider builder shares: the HTTP client, the clock, the cache behaviour,
/// a store and (feature `keyed`) a rate limit. Provider builders take them one by one
/// (`.http_client(..)`, `.clock(..)`, `.cache_config(..)`, `.store(..)`, `.rate_limit(..)`) or
/// all at once (`.options(..)`), and resolve them with the methods below, so every provider
/// applies them the same way.
///
/// The struct is `#[non_exhaustive]` (it may gain a setting in a minor release): make one with
/// [`new`](Self::new) and the setters, read or change its fields directly.
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, SystemTime};
/// use token_provider::{CacheConfig, ManualClock, MemoryStore, ProviderOptions};
///
/// let options = ProviderOptions::new()
///     .clock(Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH)))
///     .cache(CacheConfig::new().load_timeout(Duration::from_secs(5)))
///     .store(Arc::new(MemoryStore::new()));
/// assert_eq!(options.resolved_clock().now(), SystemTime::UNIX_EPOCH);
/// assert!(options.store.is_some());
/// ```
///
/// A struct literal does not compile outside this crate:
///
/// ```compile_fail
/// let options = token_provider::ProviderOptions {
///     http: None, clock: None, cache: None, store: None,
/// };
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
#[non_exhaustive]
pub struct ProviderOptions {
    /// The HTTP client (default: [`HttpClient::builder`] with the clock below).
    pub http: Option<HttpClient>,
    /// The clock (default: the cache configuration's, which defaults to the system clock).
    pub clock: Option<SharedClock>,
    /// The cache behaviour (default: [`CacheConfig::default`]).
    pub cache: Option<CacheConfig>,
    /// Where provider state survives the process (default: nowhere).
    pub store: Option<Arc<dyn TokenStore>>,
    /// The pace of the provider's requests: `Some(None)` for none, `None` for the provider's
    /// default (Aurora Solar: 90 requests per minute per key; the others: none).
    #[cfg(feature = "keyed")]
    #[cfg_attr(docsrs, doc(cfg(feature = "keyed")))]
    pub rate_limit: Option<Option<RateLimit>>,
}

impl ProviderOptions {
    /// No options set: every default applies.
    pub fn new() -> Self {
        Self::default()
    }

    /// The HTTP client (sets [`http`](Self::http)).
    pub fn http(mut self, http: HttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// The clock (sets [`clock`](Self::clock)).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The cache behaviour (sets [`cache`](Self::cache)).
    pub fn cache(mut self, cache: CacheConfig) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Where provider state survives the process (sets [`store`](Self::store)).
    pub fn store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The pace of the provider's requests: `Some(limit)`, or `None` for no pacing (sets
    /// [`rate_limit`](Self::rate_limit) to `Some(limit)`; leave it unset for the provider's
    /// default).
    #[cfg(feature = "keyed")]
    #[cfg_attr(docsrs, doc(cfg(feature = "keyed")))]
    pub fn rate_limit(mut self, limit: impl Into<Option<RateLimit>>) -> Self {
        self.rate_limit = Some(limit.into());
        self
    }

    /// The clock in force: the one set here, else the cache configuration's.
    pub fn resolved_clock(&self) -> SharedClock {
        match (&self.clock, &self.cache) {
            (Some(clock), _) => Arc::clone(clock),
            (None, Some(cache)) => Arc::clone(cache.clock_ref()),
            (None, None) => crate::system_clock(),
        }
    }

    /// The HTTP client in force: the one set here, else a default client on the same clock;
    /// paced by the rate limit set here, if any.
    #[cfg(feature = "keyed")]
    pub fn resolved_http(&self) -> Result<HttpClient, Error> {
        self.resolved_http_paced(None)
    }

    /// The HTTP client in force: the one set here, else a default client on the same clock.
    #[cfg(not(feature = "keyed"))]
    pub fn resolved_http(&self) -> Result<HttpClient, Error> {
        self.unpaced_http()
    }

    /// The HTTP client set here, else a default one on the clock in force.
    fn unpaced_http(&self) -> Result<HttpClient, Error> {
        match &self.http {
            Some(http) => Ok(http.clone()),
            None => HttpClient::builder().clock(self.resolved_clock()).build(),
        }
    }

    /// [`resolved_http`](Self::resolved_http) for a provider whose API limits each credential:
    /// paced by the rate limit set here, else by the client's own (one given with
    /// [`HttpClient::with_rate_limit`]), else by `default`.
    #[cfg(feature = "keyed")]
    #[cfg_attr(docsrs, doc(cfg(feature = "keyed")))]
    pub fn resolved_http_paced(&self, default: Option<RateLimit>) -> Result<HttpClient, Error> {
        let http = self.unpaced_http()?;
        Ok(match &self.rate_limit {
            Some(Some(limit)) => http.with_rate_limit(Some(limit.clone())),
            Some(None) => http.with_rate_limit(None),
            None if http.rate_limit().is_some() => http,
            None => http.with_rate_limit(default),
        })
    }

    /// The cache configuration for one provider state: named `name` in logs, on the clock in
    /// force, and persisted in the store when one is set (under the key the fetcher names:
    /// [`Fetch::store_key`](crate::Fetch::store_key)).
    pub fn resolved_cache(&self, name: &'static str) -> CacheConfig {
        let mut cache = self
            .cache
            .clone()
            .unwrap_or_default()
            .name(name)
            .clock(self.resolved_clock());
        if let Some(store) = &self.store {
            cache = cache.store(Arc::clone(store));
        }
        cache
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::{ManualClock, MemoryStore};

    #[test]
    fn the_explicit_clock_wins_over_the_cache_configs() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let t1 = t0 + Duration::from_secs(1_000);
        let o = ProviderOptions::new();
        assert!(o.resolved_clock().now() > t1, "the system clock by default");
        let o = o.cache(CacheConfig::new().clock(Arc::new(ManualClock::new(t0))));
        assert_eq!(o.resolved_clock().now(), t0);
        let o = o.clock(Arc::new(ManualClock::new(t1)));
        assert_eq!(o.resolved_clock().now(), t1);
        assert_eq!(o.resolved_cache("x").clock_ref().now(), t1);
    }

    #[test]
    fn the_store_is_passed_on() {
        let o = ProviderOptions::new();
        assert!(o.resolved_cache("p").store_ref().is_none());
        let o = o.store(Arc::new(MemoryStore::new()));
        assert!(o.resolved_cache("p").store_ref().is_some());
    }

    #[cfg(feature = "keyed")]
    #[test]
    fn the_setters_fill_the_fields() {
        let o = ProviderOptions::new();
        assert!(o.http.is_none() && o.rate_limit.is_none());
        let limit = RateLimit::per_minute(60).expect("a limit");
        let o = o
            .http(HttpClient::builder().build().expect("a client"))
            .rate_limit(limit);
        assert!(o.http.is_some());
        assert!(matches!(o.rate_limit, Some(Some(_))));
        assert!(matches!(o.rate_limit(None).rate_limit, Some(None)));
    }
}
