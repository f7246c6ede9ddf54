//! [`CachedTokenProvider`]: any [`Fetch`] made into a [`TokenProvider`] worth calling before every
//! request.
//!
//! # Semantics
//!
//! - **Soft expiry** is `expires_at - margin`. The default margin is the lesser of 5 minutes and a
//!   fifth of the token's lifetime, plus a random spread of up to a tenth of the lifetime, so
//!   principals fetched together (a fleet started together, a cold start over thousands of
//!   tenants) come due spread over that tenth rather than all at once: 13-hour keys fetched in one
//!   minute are refreshed over 78 minutes. A fixed [`margin`](CacheConfig::margin) is kept to,
//!   less a jitter of up to a tenth of it. A token with no expiry is refreshed after
//!   [`default_lifetime`](CacheConfig::default_lifetime); an absurdly long one after
//!   [`max_lifetime`](CacheConfig::max_lifetime).
//! - **Fresh** (before soft expiry): the token is returned at once: no lock, no allocation, one
//!   reference count taken. Each thread clones its own copy of the current token (made on its
//!   first hit after a refresh), found by the generation the cache last published and compared
//!   with the coarse wall clock, so a hit reads one shared word and threads hitting at once never
//!   contend for one reference count; hits are counted without a locked instruction (on up to
//!   eight live threads). A copy is never served once its token is replaced, invalidated or
//!   forgotten, and is dropped at its thread's next hit. Through `Arc<dyn TokenProvider>`,
//!   [`get`](TokenProvider::get) answers a hit the same way, without boxing a future.
//! - **Soft window** (between soft and hard expiry): the still-valid token is returned at once and
//!   exactly one background refresh starts.
//! - **Empty or hard-expired**: every caller waits on exactly one fetch (single-flight), for at
//!   most [`load_timeout`](CacheConfig::load_timeout).
//! - **Transient failure** (network, 5xx, 429, garbled answer): the still-valid token keeps being
//!   served; the next attempt waits an exponential backoff with jitter, or the provider's
//!   `Retry-After` (capped at the longest backoff). Until then callers with no valid token get
//!   the same error at once rather than stampeding a struggling server. A token that arrives
//!   already expired counts as such a failure (its rotated refresh token is kept).
//! - **Permanent failure** (rejected credentials, a user action needed, bad configuration): the
//!   error is returned and held for [`negative_ttl`](CacheConfig::negative_ttl), so a thousand
//!   callers with a bad password cause one request, not a thousand. It is never retried in a loop.
//! - [`invalidate`](TokenProvider::invalidate) drops the cached token only if it is still the
//!   rejected one, so a late 401 never throws away a newer token.
//! - Fetches run on their own tokio task: a caller that drops its future cancels nothing. Every
//!   fetch has a deadline ([`fetch_timeout`](CacheConfig::fetch_timeout)): past it the fetch is
//!   dropped (the store's lock with it) and its waiters get [`Error::Timeout`]. A fetch past its
//!   deadline or one that panics is a transient failure, held with backoff.
//! - With a [`TokenStore`], the fetch goes through the store protocol for this principal's key
//!   (the key the fetcher names: [`Fetch::store_key`]; a fetcher that names none cannot use a
//!   store): the stored record is read (a fresh token another process saved is adopted without
//!   a request), the fetch gets the stored refresh token, and the new state is saved with the
//!   version read. The store's lock only saves duplicate work; what keeps a rotating refresh
//!   token from being spent twice or lost is the record ([`StoreRecord`](crate::StoreRecord)),
//!   in a store that keeps one ([`TokenStore::versioned`]):
//!   - a save succeeds while the store holds the version this holder read, or nothing; refused,
//!     it is tried again over a record whose state is still the one the fetch began from (a
//!     lock merely taken, a flush), and gives way only to a newer state, which is adopted;
//!   - a refresh token is recorded as being presented, with the fetch's deadline, before it is
//!     sent; another holder waits for that answer until the deadline, then presents it once
//!     more (the answer counts as lost), and never a third time;
//!   - a refused refresh token is recorded with the provider's reason: every holder answers that
//!     refusal without presenting it, or, for a fetcher whose fetch from scratch spends nothing
//!     ([`Fetch::repeatable_without_store`]: a password grant), fetches from scratch;
//!   - a fetch that began before [`forget`](CachedTokenProvider::forget) returned never saves
//!     after it; the forget leaves a record of itself, and a replica that finds one drops the
//!     refresh token it held from before instead of writing that state back;
//!   - when the store holds nothing of the refresh token a replica holds (a flush, a restart
//!     without persistence, an eviction), another replica may have presented it since: its
//!     presentation counts as the second (a lost answer is not followed by another), a record
//!     holding a refresh token this process spent is older than what it holds (never adopted),
//!     and a refresh token this process presented without an answer is presented again only
//!     when the store's record allows one more; a save refused by a state written back from
//!     such a memory (one obtained more than a minute before the state the fetch began from)
//!     is made over it. Replicas' clocks are assumed to agree within that minute.
//!
//!   A stored state records when it was obtained, so an adopted token gets the same margin and
//!   lifetime limits as a fetched one (one stored before that was recorded gets the full margin,
//!   and is not reused when it has no expiry). A store that cannot be reached
//!   ([`Error::StoreUnavailable`]) is fetched around only for a fetcher whose grant is safe to
//!   repeat; the result is not saved.
//! - The one window no client can close: a holder killed (or cut off) after the provider rotated
//!   the refresh token and before its save. The new token is lost with it; the next holder
//!   presents the old one once more after the recorded deadline, and a provider with reuse
//!   detection then refuses it (a person signs in again). Rotation answers are saved before they
//!   are served, so the window is one round trip to the store wide.
//! - A state that could not be saved is not lost silently: the token is still served (and the
//!   state kept in memory), the failure is logged at `ERROR`, and
//!   [`store_error`](CachedTokenProvider::store_error) (also on the trait) reports it until a
//!   later save succeeds.
//! - An access token that cannot be sent as a header value as it is (RFC 6750 `b64token`: no
//!   spaces, CR/LF, control or non-ASCII characters) is refused as [`Error::Malformed`], never
//!   cached, printed or adopted.
//! - A fetch's outcome is published, and its in-flight marker cleared, in one step under the
//!   control lock: a caller that comes after the publish starts a new fetch and never receives
//!   a finished one's result (which the clock or an `invalidate` may have overtaken).
//! - Every fetch runs in one `tracing` span, `partner_auth.fetch`, whose fields are fixed
//!   (provider, a digest of the principal, attempt, outcome). With the `metrics` feature the
//!   fetch, its duration and outcome, store errors and the principals holding a token are
//!   recorded through the `metrics` facade; hits are not (a hit stays what it is without the
//!   feature): their count is published from the slow paths (the `metrics` module docs).
//!
//! A tokio runtime is required (fetches are spawned on it).
//!
//! # Where each rule lives
//!
//! - `decide.rs`: what a call does (serve, serve and refresh, join, start, fail with the held
//!   error) and what a failure holds, with no I/O and no runtime.
//! - `policy.rs`: when a token is refreshed and how long backoff lasts, as pure functions.
//! - `protocol.rs`: one fetch through a store (versions, presentations, refusals).
//! - `slot.rs`: one principal's cache, which reads its state, asks `decide`, and acts.
//! - `entry.rs`: what a principal's cache publishes ([`Entry`](entry::Entry)) and what a
//!   fetch hands it.
//! - `local.rs`: each thread's copies of the current tokens, for the contention-free hit.
//! - `counter.rs`: the striped hit counter.
//! - `config.rs`: [`CacheConfig`] and [`CacheStats`].

mod config;
mod counter;
mod decide;
mod entry;
mod local;
mod policy;
mod protocol;
// What only the keyed cache calls (`busy`) is unused without it.
#[cfg_attr(not(feature = "keyed"), allow(dead_code))]
mod slot;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

pub use self::config::{CacheConfig, CacheStats};
pub(crate) use self::slot::{CacheShared, PrincipalCache};
use crate::store::StoreKey;
use crate::{AccessToken, Error, Fetch, KeyedFetch, TokenFuture, TokenProvider, TokenState};

/// A [`Fetch`] behind a cache: the form every provider's constructor returns.
pub struct CachedTokenProvider<F: Fetch> {
    slot: Arc<PrincipalCache<OnePrincipal<F>>>,
}

impl<F: Fetch> Clone for CachedTokenProvider<F> {
    fn clone(&self) -> Self {
        Self {
            slot: Arc::clone(&self.slot),
        }
    }
}

impl<F: Fetch> fmt::Debug for CachedTokenProvider<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedTokenProvider")
            .field("fetcher", self.fetcher())
            .field("cached", &self.slot.cached())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A [`Fetch`] as the fetch of a cache with one principal.
#[derive(Debug)]
pub(crate) struct OnePrincipal<F>(F);

#[async_trait]
impl<F: Fetch> KeyedFetch for OnePrincipal<F> {
    type Principal = ();

    async fn fetch(&self, _: &(), previous: Option<&TokenState>) -> Result<TokenState, Error> {
        self.0.fetch(previous).await
    }

    fn store_key(&self, _: &()) -> Option<StoreKey> {
        self.0.store_key()
    }

    fn repeatable_without_store(&self, _: &()) -> bool {
        self.0.repeatable_without_store()
    }

    fn initial_refresh_token(&self, _: &()) -> Option<crate::Secret> {
        self.0.initial_refresh_token()
    }
}

impl<F: Fetch> CachedTokenProvider<F> {
    /// Caches `fetcher` with the default configuration.
    pub fn new(fetcher: F) -> Self {
        Self::with_config(fetcher, CacheConfig::default())
    }

    /// Caches `fetcher` with `config`.
    pub fn with_config(fetcher: F, config: CacheConfig) -> Self {
        let common = CacheShared::new(OnePrincipal(fetcher), config, true).shared();
        Self {
            slot: Arc::new(PrincipalCache::new(common, ())),
        }
    }

    /// The wrapped fetcher.
    pub fn fetcher(&self) -> &F {
        &self.slot.common.fetcher.0
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.slot.common.config
    }

    /// The cached token, if any, without fetching (it may be in the soft window or expired).
    pub fn cached(&self) -> Option<AccessToken> {
        self.slot.cached()
    }

    /// The cached state (token plus refresh token), if any.
    pub fn cached_state(&self) -> Option<TokenState> {
        self.slot.cached_state()
    }

    /// Why the state behind the current token could not be saved to the store, if it could not
    /// (a full disk, a store gone read-only). The token itself is valid and keeps being served;
    /// what is at risk is the state a restart needs (a rotated refresh token), so tell the
    /// operator. Cleared when a later save succeeds. Also logged at `ERROR`.
    pub fn store_error(&self) -> Option<Error> {
        self.slot.store_error()
    }

    /// Forgets this principal: drops the cached token and any state kept for the next fetch,
    /// and replaces the stored state (refresh token included) with a record of the forget,
    /// under the store's lock for its key. Returns whether the store held a state. The next call
    /// fetches from scratch.
    ///
    /// Across a fleet: another replica keeps serving the access token it holds until it expires
    /// or a caller reports it refused (hits never ask the store); its next fetch finds the
    /// record of the forget, drops the refresh token it held from before, and starts from
    /// scratch, so a forgotten state is never written back. A store that keeps no records
    /// ([`TokenStore::versioned`](crate::TokenStore::versioned) false) has the state removed
    /// instead. When the store cannot be reached, this process's state is dropped all the same
    /// and the error says why.
    pub async fn forget(&self) -> Result<bool, Error> {
        self.slot.forget().await
    }

    /// When the cached token becomes due for refresh, if one is cached.
    pub fn soft_expiry(&self) -> Option<SystemTime> {
        self.slot.soft_expiry()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> CacheStats {
        self.slot.stats()
    }

    /// Forgets the cached token and any held failure, so the next call fetches.
    pub fn clear(&self) {
        self.slot.clear();
    }

    /// The token if it is fresh (before soft expiry), without starting anything, counted as a
    /// hit: one clock read, one atomic load, one reference-count increment on this thread's copy
    /// of the token. No lock, and no allocation except a thread's first hit after each refresh
    /// (the copy).
    #[inline]
    pub fn fresh(&self) -> Option<AccessToken> {
        self.slot.fresh()
    }

    /// What [`TokenProvider::token`] answers, as [`TokenProvider::get`] does: a future ready at
    /// once, with nothing allocated, when the token is fresh; the waiting path (boxed) otherwise.
    #[inline]
    pub fn get(&self) -> TokenFuture<'_> {
        self.slot.get_now()
    }
}

crate::forward_token_provider!([F: Fetch] CachedTokenProvider<F> => |this| &this.slot);

/// The size of a cache entry (for the keyed cache's size test).
#[cfg(all(test, feature = "keyed"))]
pub(crate) fn entry_size() -> usize {
    std::mem::size_of::<entry::Entry>()
}

#[cfg(test)]
mod tests {
    use super::counter::{STRIPES, StripedCounter};
    use super::entry::{Entry, next_generation};
    use super::local::{LOCAL, count_hit, local_copies, local_copy, local_hit};
    use super::*;
    use crate::TokenProvider;
    use crate::clock::nanos;
    use crate::{Clock, ManualClock, provider_fn};
    use std::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    const HOUR: Duration = Duration::from_secs(3600);

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    /// A cache on `clock` whose fetches hand out `<name>-1`, `<name>-2`, ... for an hour.
    fn counting(
        name: &'static str,
        clock: &ManualClock,
    ) -> CachedTokenProvider<impl Fetch + use<>> {
        let fetches = Arc::new(AtomicUsize::new(0));
        let issue_clock = clock.clone();
        CachedTokenProvider::with_config(
            provider_fn(name, move || {
                let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
                let now = issue_clock.now();
                async move {
                    Ok(AccessToken::builder(format!("{name}-{n}"))
                        .expires_in(now, HOUR)
                        .build())
                }
            }),
            CacheConfig::new().clock(Arc::new(clock.clone())),
        )
    }

    fn secret(token: &AccessToken) -> &str {
        token.secret().expose_secret()
    }

    /// Every thread-local copy on this thread is dropped between tests of the bound.
    fn drop_all_copies() {
        LOCAL.with(|l| l.copies.borrow_mut().clear());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn two_caches_on_one_thread_each_get_their_own_token() {
        drop_all_copies();
        let clock = ManualClock::new(t0());
        let a = counting("a", &clock);
        let b = counting("b", &clock);
        for _ in 0..3 {
            assert_eq!(secret(&a.get().await.unwrap()), "a-1");
            assert_eq!(secret(&b.get().await.unwrap()), "b-1");
            assert_eq!(secret(&a.fresh().unwrap()), "a-1");
            assert_eq!(secret(&b.fresh().unwrap()), "b-1");
        }
        assert_eq!(local_copies(), 2);
    }

    /// The bound on what a thread's copy outlives: once its entry is gone (replaced after an
    /// `invalidate`, or its cache dropped), the next hit on this thread, on any cache, drops it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_copy_outlives_its_token_by_at_most_one_hit_on_its_thread() {
        drop_all_copies();
        let clock = ManualClock::new(t0());
        let a = counting("a", &clock);
        let b = counting("b", &clock);
        // A miss answers from the fetch; the hits after it make this thread's copies.
        let a1 = a.get().await.unwrap();
        b.get().await.unwrap();
        assert_eq!(local_copies(), 0);
        assert_eq!(a.get().await.unwrap(), a1);
        b.get().await.unwrap();
        assert_eq!(local_copies(), 2);

        // Invalidated: the copy is never served again, and the next hit (on `b`) drops it.
        a.invalidate(&a1);
        drop(a1);
        assert_eq!(secret(&b.get().await.unwrap()), "b-1");
        assert_eq!(local_copies(), 1, "the invalidated token's copy is gone");
        assert_eq!(secret(&a.get().await.unwrap()), "a-2");
        assert_eq!(secret(&a.get().await.unwrap()), "a-2");
        assert_eq!(local_copies(), 2);

        // Its cache dropped: the next hit on another cache drops the copy.
        drop(a);
        assert_eq!(secret(&b.fresh().unwrap()), "b-1");
        assert_eq!(local_copies(), 1, "the dropped cache's copy is gone");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_replaced_token_is_never_served_from_a_copy() {
        drop_all_copies();
        let clock = ManualClock::new(t0());
        let a = counting("a", &clock);
        assert_eq!(secret(&a.get().await.unwrap()), "a-1");
        a.clear();
        assert!(
            a.fresh().is_none(),
            "no copy answers once the token is cleared"
        );
        assert_eq!(secret(&a.get().await.unwrap()), "a-2");
        assert_eq!(secret(&a.fresh().unwrap()), "a-2");
    }

    /// A copy tagged with a generation is served for that tag only if it is the entry's: while a
    /// new entry is swapped in and its generation not yet stored, a reader validates the new
    /// entry under the old tag, and must not be handed the old entry's copy.
    #[test]
    fn a_copy_under_an_old_tag_is_not_served_for_the_entry_replacing_it() {
        drop_all_copies();
        let entry = |secret: &str, soft: SystemTime| {
            let token = AccessToken::builder(secret).expires_at(soft + HOUR).build();
            Arc::new(Entry::new(token.into(), soft))
        };
        let generation = next_generation();
        let old = entry("old", t0());
        assert_eq!(secret(&local_copy(generation, &old).unwrap()), "old");
        // The replacing entry, loaded before its generation was stored: not the old token.
        let new = entry("new", t0() + HOUR);
        let served = local_copy(generation, &new);
        assert!(
            served.is_none_or(|t| secret(&t) == "new"),
            "the replaced token was served"
        );
        // And the old tag still serves the old copy only while the old entry is fresh.
        let now = nanos(t0() + Duration::from_secs(1));
        assert!(local_hit(generation, now, &StripedCounter::default()).is_none());
    }

    /// A machine resumed from sleep: the wall clock jumps past the token's expiry between two
    /// calls on one thread, and the next call fetches instead of serving this thread's copy.
    #[tokio::test(flavor = "current_thread")]
    async fn a_machine_resumed_past_expiry_gets_a_new_token() {
        drop_all_copies();
        let clock = ManualClock::new(t0());
        let a = counting("a", &clock);
        assert_eq!(secret(&a.get().await.unwrap()), "a-1");
        assert_eq!(
            secret(&a.get().await.unwrap()),
            "a-1",
            "a hit from the copy"
        );
        clock.advance(10 * HOUR);
        assert!(a.fresh().is_none());
        assert_eq!(secret(&a.get().await.unwrap()), "a-2");
        assert_eq!(a.stats().fetches, 2);
    }

    /// Review: the module docs promise a dead copy is dropped "at this thread's next hit on any
    /// cache", but a hit on a keyed cache (which keeps no copies) never looks at the thread's
    /// copies, so a thread that goes on hitting only keyed principals keeps the dead copy (and
    /// its unzeroized secret) for as long as it lives.
    #[cfg(feature = "keyed")]
    #[tokio::test(flavor = "current_thread")]
    async fn a_dead_copy_is_dropped_at_the_next_hit_on_a_keyed_cache_too() {
        #[derive(Debug)]
        struct Tenants(ManualClock);

        #[async_trait]
        impl KeyedFetch for Tenants {
            type Principal = Arc<str>;

            async fn fetch(
                &self,
                tenant: &Arc<str>,
                _: Option<&TokenState>,
            ) -> Result<TokenState, Error> {
                Ok(AccessToken::builder(format!("tenant-{tenant}"))
                    .expires_in(self.0.now(), HOUR)
                    .build()
                    .into())
            }
        }

        drop_all_copies();
        let clock = ManualClock::new(t0());
        let a = counting("a", &clock);
        let a1 = a.get().await.unwrap();
        assert_eq!(a.get().await.unwrap(), a1, "a hit makes this thread's copy");
        assert_eq!(local_copies(), 1);

        let keyed = crate::KeyedCache::new(
            Tenants(clock.clone()),
            CacheConfig::new().clock(Arc::new(clock.clone())),
            crate::KeyedConfig::new(),
        );
        let tenant = keyed.get_or_insert_with("t", |key| key);
        assert_eq!(secret(&tenant.get().await.unwrap()), "tenant-t");

        // The copy's entry is gone: invalidated, and its cache dropped.
        a.invalidate(&a1);
        drop(a1);
        drop(a);
        for _ in 0..100 {
            assert_eq!(secret(&tenant.get().await.unwrap()), "tenant-t");
            assert_eq!(secret(&tenant.fresh().unwrap()), "tenant-t");
        }
        assert!(tenant.stats().hits >= 200, "those were hits");
        assert_eq!(
            local_copies(),
            0,
            "200 hits on this thread later, the dead copy (and its secret) is still held"
        );
    }

    #[test]
    fn the_hit_counter_is_exact_with_more_threads_than_stripes() {
        let counter = Arc::new(StripedCounter::default());
        let threads: Vec<_> = (0..3 * STRIPES)
            .map(|_| {
                let c = Arc::clone(&counter);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        count_hit(&c);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.sum(), 3 * STRIPES as u64 * 10_000);
    }
}
