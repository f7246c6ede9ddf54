//! [`KeyedCache`]: one cached token per principal (the tenants of a partner app, the users of a
//! Client SDK key), in a bounded map that forgets principals nobody uses.
//!
//! # Semantics
//!
//! - Each principal has the full behaviour of a [`CachedTokenProvider`](crate::CachedTokenProvider)
//!   (single-flight, soft and hard expiry, backoff, invalidation, the store under the key its
//!   fetcher names), in a slot of its own. What every principal shares (the fetcher, the
//!   configuration, the hit counter) is kept once per keyed cache, so a warm principal costs its
//!   token and a few hundred bytes (`BENCHMARKS.md` has the figures).
//! - A lookup takes a read lock on one of the map's shards, never a lock over the whole map, and
//!   allocates nothing when the principal is cached (`&str` lookups of the stored keys).
//! - **Bound**: at most [`max_entries`](KeyedConfig::max_entries) principals (default 10,000);
//!   past it, the least useful entry is evicted (S3-FIFO: an entry used once goes before one used
//!   often). **Idle expiry**: an entry unused for [`idle_expiry`](KeyedConfig::idle_expiry) is
//!   evicted by the next sweep, which runs as new principals arrive (so at most twice the idle
//!   time after its last use), or when [`sweep`](KeyedCache::sweep) is called.
//! - An entry is never evicted while anyone holds it: a handle given out
//!   ([`CachedPrincipal`]), a caller waiting for its fetch, or the fetch task itself. Eviction of
//!   such an entry would let the next lookup make a second one for the same principal, and so a
//!   second fetch (for a Client SDK user, a second JWT that can end the first one's session).
//!   When every entry is held, the map grows past its bound rather than drop one.
//! - An evicted entry's token and refresh token are zeroized as they are dropped (every secret
//!   is, on drop). Its stored state, if a store is set, stays in the store.
//!
//! The map is [`quick_cache`]'s: of the bounded maps measured it costs the least per entry, and
//! it pins entries (what keeps held ones), which the others do not (`BENCHMARKS.md`, "Many
//! principals"). Its hasher is seeded at random per process, so keys an attacker sends cannot be
//! made to collide.
//!
//! A hit clones the principal's shared token rather than keeping a copy per thread, as a
//! single-token cache does: many principals each see few concurrent hits, and per-thread copies
//! would only churn. A hit touches the map's entry, the key, the principal's slot and its token,
//! nothing in between.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, UnitWeighter};

use crate::cache::{CacheShared, PrincipalCache};
use crate::{
    AccessToken, CacheConfig, CacheStats, KeyedFetch, TokenFuture, TokenProvider, TokenState,
};

/// How many principals a [`KeyedCache`] keeps, and for how long unused.
#[derive(Debug, Clone)]
#[must_use]
pub struct KeyedConfig {
    max_entries: usize,
    idle_expiry: Duration,
}

impl Default for KeyedConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            idle_expiry: Duration::from_secs(12 * 3600),
        }
    }
}

impl KeyedConfig {
    /// The defaults: 10,000 principals, evicted after 12 hours unused.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most principals kept (default 10,000; at least 1).
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(1);
        self
    }

    /// How long an unused principal is kept (default 12 hours, about a token's lifetime).
    pub fn idle_expiry(mut self, idle: Duration) -> Self {
        self.idle_expiry = idle;
        self
    }
}

/// One cached token per principal: a bounded, idle-expiring map from a key (a tenant id, a
/// user's email) to that principal's cache. Cheap to clone; clones share the map.
pub struct KeyedCache<F: KeyedFetch> {
    inner: Arc<Inner<F>>,
}

struct Inner<F: KeyedFetch> {
    common: Arc<CacheShared<F>>,
    map: Cache<Arc<str>, Arc<PrincipalCache<F>>, UnitWeighter, DefaultHashBuilder, Held>,
    /// Serialize the insertion of a new key (never a lookup), a few shards of keys per mutex,
    /// so two callers asking for one new principal at once share one entry.
    inserting: [Mutex<()>; INSERT_LOCKS],
    keyed: KeyedConfig,
    last_sweep: Mutex<SystemTime>,
}

const INSERT_LOCKS: usize = 16;

impl<F: KeyedFetch> Clone for KeyedCache<F> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<F: KeyedFetch> fmt::Debug for KeyedCache<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCache")
            .field("fetcher", &self.inner.common.fetcher)
            .field("principals", &self.len())
            .field("keyed", &self.inner.keyed)
            .finish_non_exhaustive()
    }
}

/// Keeps an entry that anyone holds (see the module docs).
#[derive(Clone, Copy)]
struct Held;

impl<F: KeyedFetch> Lifecycle<Arc<str>, Arc<PrincipalCache<F>>> for Held {
    type RequestState = ();

    fn is_pinned(&self, _: &Arc<str>, slot: &Arc<PrincipalCache<F>>) -> bool {
        slot.busy()
    }

    /// An entry evicted to keep the bound (the sweep counts its own).
    #[cfg(feature = "metrics")]
    fn on_evict(&self, _: &mut (), _: Arc<str>, slot: Arc<PrincipalCache<F>>) {
        crate::metrics::evicted(slot.common.config.name, 1);
    }
}

impl<F: KeyedFetch> KeyedCache<F> {
    /// A keyed cache of `fetcher`'s principals, each cached with `cache`.
    pub fn new(fetcher: F, cache: CacheConfig, keyed: KeyedConfig) -> Self {
        let now = cache.clock_ref().now();
        let max = keyed.max_entries;
        Self {
            inner: Arc::new(Inner {
                common: CacheShared::new(fetcher, cache, false).shared(),
                map: Cache::with(
                    max,
                    max as u64,
                    UnitWeighter,
                    DefaultHashBuilder::default(),
                    Held,
                ),
                inserting: std::array::from_fn(|_| Mutex::new(())),
                keyed,
                last_sweep: Mutex::new(now),
            }),
        }
    }

    /// The fetcher.
    pub fn fetcher(&self) -> &F {
        &self.inner.common.fetcher
    }

    /// The cache configuration every principal shares.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.common.config
    }

    /// The bound and idle expiry.
    pub fn keyed_config(&self) -> &KeyedConfig {
        &self.inner.keyed
    }

    /// The cached principal of `key`, if the map holds it. Marks it used.
    #[inline]
    pub fn get(&self, key: &str) -> Option<CachedPrincipal<F>> {
        let slot = self.inner.map.get(key)?;
        // Written only when it changes: a hot principal's flag stays a shared, read-only line.
        if !slot.used.load(Ordering::Relaxed) {
            slot.used.store(true, Ordering::Relaxed);
        }
        Some(CachedPrincipal { slot })
    }

    /// The cached principal of `key`, made with `principal(key)` when the map does not hold it.
    /// Two callers asking for the same new key at once get the same entry.
    pub fn get_or_insert_with(
        &self,
        key: &str,
        principal: impl FnOnce(Arc<str>) -> F::Principal,
    ) -> CachedPrincipal<F> {
        if let Some(found) = self.get(key) {
            return found;
        }
        self.sweep_if_due();
        let inner = &self.inner;
        let lock = &inner.inserting[inner.map.shard_index(key) % INSERT_LOCKS];
        let _inserting = lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = self.get(key) {
            return found;
        }
        let key: Arc<str> = Arc::from(key);
        let slot = Arc::new(PrincipalCache::new(
            Arc::clone(&inner.common),
            principal(Arc::clone(&key)),
        ));
        inner.map.insert(key, Arc::clone(&slot));
        CachedPrincipal { slot }
    }

    /// A principal cached on its own, outside the map (never shared by a lookup, never evicted):
    /// for a principal that must not share a token with anyone, such as one proving itself
    /// with a single-use credential.
    pub fn detached(&self, principal: F::Principal) -> CachedPrincipal<F> {
        CachedPrincipal {
            slot: Arc::new(PrincipalCache::new(
                Arc::clone(&self.inner.common),
                principal,
            )),
        }
    }

    /// Drops `key`'s entry from the map (handles already given out keep working on their own);
    /// whether there was one.
    pub fn remove(&self, key: &str) -> bool {
        self.inner.map.remove(key).is_some()
    }

    /// How many principals the map holds.
    pub fn len(&self) -> usize {
        self.inner.map.len()
    }

    /// Whether the map holds no principal.
    pub fn is_empty(&self) -> bool {
        self.inner.map.is_empty()
    }

    /// Evicts every entry unused since the previous sweep and not held; returns how many.
    pub fn sweep(&self) -> usize {
        let before = self.len();
        #[cfg(feature = "metrics")]
        let evicted = std::sync::atomic::AtomicU64::new(0);
        self.inner.map.retain(|_, slot| {
            // Not used since the last sweep, and nobody holds it: evicted.
            let kept = slot.busy() || slot.used.swap(false, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            if !kept {
                evicted.fetch_add(1, Ordering::Relaxed);
            }
            kept
        });
        crate::observe::with_metrics! {
            crate::metrics::evicted(self.config().name, evicted.into_inner());
            self.inner.common.publish_hits();
        }
        *self
            .inner
            .last_sweep
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = self.config().clock_ref().now();
        before.saturating_sub(self.len())
    }

    /// Sweeps when the idle expiry has passed since the last sweep.
    fn sweep_if_due(&self) {
        let now = self.config().clock_ref().now();
        let due = {
            let last = self
                .inner
                .last_sweep
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            now.duration_since(*last)
                .is_ok_and(|since| since >= self.inner.keyed.idle_expiry)
        };
        if due {
            let evicted = self.sweep();
            tracing::debug!(
                cache = self.config().name,
                evicted,
                "idle principals evicted"
            );
        }
    }
}

/// One principal of a [`KeyedCache`]: a [`TokenProvider`]. Cheap to clone; clones share the
/// principal's cache. While any handle lives, the entry stays in the map.
pub struct CachedPrincipal<F: KeyedFetch> {
    slot: Arc<PrincipalCache<F>>,
}

impl<F: KeyedFetch> Clone for CachedPrincipal<F> {
    fn clone(&self) -> Self {
        Self {
            slot: Arc::clone(&self.slot),
        }
    }
}

impl<F: KeyedFetch> fmt::Debug for CachedPrincipal<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedPrincipal")
            .field("principal", &self.slot.principal)
            .field("cached", &self.slot.cached())
            .field("stats", &self.stats())
            .finish()
    }
}

impl<F: KeyedFetch> CachedPrincipal<F> {
    /// The principal.
    pub fn principal(&self) -> &F::Principal {
        &self.slot.principal
    }

    /// The fetcher (shared with every principal of the map).
    pub fn fetcher(&self) -> &F {
        &self.slot.common.fetcher
    }

    /// The cached token, if any, without fetching.
    pub fn cached(&self) -> Option<AccessToken> {
        self.slot.cached()
    }

    /// The cached state (token plus refresh token), if any.
    pub fn cached_state(&self) -> Option<TokenState> {
        self.slot.cached_state()
    }

    /// When the cached token becomes due for refresh, if one is cached.
    pub fn soft_expiry(&self) -> Option<SystemTime> {
        self.slot.soft_expiry()
    }

    /// This principal's counters; `hits` counts the hits of every principal of the map (one
    /// counter per map keeps a principal small).
    pub fn stats(&self) -> CacheStats {
        self.slot.stats()
    }

    /// The token if it is fresh, without starting anything, counted as a hit.
    pub fn fresh(&self) -> Option<AccessToken> {
        self.slot.fresh()
    }

    /// What [`TokenProvider::token`] answers, as [`TokenProvider::get`] does: ready at once,
    /// with nothing allocated, when the token is fresh.
    pub fn get(&self) -> TokenFuture<'_> {
        self.slot.get_now()
    }

    /// Forgets the cached token and any held failure, so the next call fetches.
    pub fn clear(&self) {
        self.slot.clear();
    }
}

crate::forward_token_provider!([F: KeyedFetch] CachedPrincipal<F> => |this| &this.slot);

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use std::sync::Arc;

    use crate::cache::PrincipalCache;

    #[derive(Debug)]
    struct Tenants;

    #[async_trait::async_trait]
    impl crate::KeyedFetch for Tenants {
        type Principal = Arc<str>;

        async fn fetch(
            &self,
            _: &Arc<str>,
            _: Option<&crate::TokenState>,
        ) -> Result<crate::TokenState, crate::Error> {
            Err(crate::Error::config("tenant", "not used"))
        }
    }

    /// What one principal costs besides its token and key: the slot and the entry. A field
    /// added to either is paid once per principal, thousands of times.
    #[test]
    fn a_principal_stays_small() {
        assert!(std::mem::size_of::<PrincipalCache<Tenants>>() <= 120);
        assert!(crate::cache::entry_size() <= 32);
    }
}
