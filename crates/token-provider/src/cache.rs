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
//! - Fetches run on their own tokio task: a caller that drops its future cancels nothing, and a
//!   fetch that panics wakes its waiters with an error rather than leaving them hanging.
//! - With a [`TokenStore`], the fetch runs under the store's lock for this principal's key (the
//!   key the fetcher names: [`Fetch::store_key`]; a fetcher that names none cannot use a store):
//!   the stored state is read (a fresh token another process saved is adopted without a
//!   request), the fetch gets the stored refresh token, and the new state is saved before the
//!   lock is released, so a rotating refresh token is never spent twice nor lost. A stored state
//!   records when it was obtained, so an adopted token gets the same margin and lifetime limits
//!   as a fetched one (one stored before that was recorded gets the full margin, and is not
//!   reused when it has no expiry).
//! - A save the store refuses because this holder's lock was superseded
//!   ([`Error::StoreFenced`]: its lease ran out and another holder took over) ends with the
//!   stored state read again and adopted; the state this fetch produced is dropped. A store that
//!   cannot be reached ([`Error::StoreUnavailable`]) is fetched around only for a fetcher whose
//!   grant is safe to repeat ([`Fetch::repeatable_without_store`]); the result is not saved.
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
//!
//! A tokio runtime is required (fetches are spawned on it).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use tokio::sync::watch;
use tracing::{debug, error, info, trace, warn};

use crate::clock::nanos;
use crate::pace::Background;
use crate::store::{StoreKey, TokenStore};
use crate::token::{self, is_b64token};
use crate::{
    AccessToken, Error, Fetch, KeyedFetch, SharedClock, TokenFuture, TokenProvider, TokenState,
    system_clock,
};

/// How a [`CachedTokenProvider`] behaves. The defaults suit tokens that live minutes to days.
#[derive(Clone)]
#[must_use]
pub struct CacheConfig {
    margin: Option<Duration>,
    max_margin: Duration,
    default_lifetime: Duration,
    max_lifetime: Duration,
    load_timeout: Duration,
    negative_ttl: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    clock: SharedClock,
    store: Option<Arc<dyn TokenStore>>,
    pub(crate) name: &'static str,
}

impl fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheConfig")
            .field("name", &self.name)
            .field("margin", &self.margin)
            .field("max_margin", &self.max_margin)
            .field("default_lifetime", &self.default_lifetime)
            .field("max_lifetime", &self.max_lifetime)
            .field("load_timeout", &self.load_timeout)
            .field("negative_ttl", &self.negative_ttl)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            margin: None,
            max_margin: Duration::from_secs(300),
            default_lifetime: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(7 * 24 * 3600),
            load_timeout: Duration::from_secs(60),
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

    /// A fixed refresh margin instead of `min(5 min, lifetime / 5)` (jitter still applies).
    pub fn margin(mut self, margin: Duration) -> Self {
        self.margin = Some(margin);
        self
    }

    /// The largest default margin (default 5 minutes).
    pub fn max_margin(mut self, max: Duration) -> Self {
        self.max_margin = max;
        self
    }

    /// How long a token with no expiry is used before it is refreshed (default 1 hour).
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime;
        self
    }

    /// The longest a token is used before it is refreshed, whatever its expiry says
    /// (default 7 days).
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// How long a caller waits for a fetch before giving up with [`Error::Timeout`] (default
    /// 60 s). The fetch itself carries on for the callers after it.
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.load_timeout = timeout;
        self
    }

    /// How long a permanent failure is returned without asking the provider again (default 5 s).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The backoff after transient failures: `initial`, doubling to at most `max` (defaults
    /// 1 s and 5 minutes), with jitter; a provider's `Retry-After` wins when longer.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock in use.
    pub fn clock_ref(&self) -> &SharedClock {
        &self.clock
    }

    /// Persists the provider's state in `store`, under the key its fetcher names
    /// ([`Fetch::store_key`]): one key per principal, derived by the provider, so no
    /// configuration can make two tenants or users share one state.
    pub fn store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// No store: the state lives in memory only.
    pub fn without_store(mut self) -> Self {
        self.store = None;
        self
    }

    /// The store, if one is set.
    pub fn store_ref(&self) -> Option<&Arc<dyn TokenStore>> {
        self.store.as_ref()
    }

    /// The name used in log events (default `token`).
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
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

/// A [`Fetch`] behind a cache: the form every provider's constructor returns.
pub struct CachedTokenProvider<F: Fetch> {
    slot: Arc<Slot<Single<F>>>,
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
pub(crate) struct Single<F>(F);

#[async_trait]
impl<F: Fetch> KeyedFetch for Single<F> {
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
}

/// What every principal of one cache shares, paid once however many principals there are: the
/// fetcher, the configuration and the hit counter (the bulk of an empty cache's size).
pub(crate) struct Common<F> {
    pub(crate) fetcher: F,
    pub(crate) config: CacheConfig,
    hits: StripedCounter,
    /// Whether the clock is the [`SystemClock`](crate::SystemClock), read directly on a hit.
    system_clock: bool,
    /// Whether threads keep copies of the tokens ([`LocalCopy`]): for a single token, which
    /// every thread hits; not for a keyed cache, whose many principals each see few concurrent
    /// hits and would only churn a thread's few copies.
    local_copies: bool,
}

impl<F> Common<F> {
    pub(crate) fn new(fetcher: F, config: CacheConfig, local_copies: bool) -> Self {
        Self {
            fetcher,
            system_clock: crate::clock::is_system(config.clock.as_ref()),
            config,
            hits: StripedCounter::default(),
            local_copies,
        }
    }

    /// The time on the configured clock.
    #[inline]
    pub(crate) fn now(&self) -> SystemTime {
        if self.system_clock {
            crate::Clock::now(&crate::SystemClock)
        } else {
            self.config.clock.now()
        }
    }

    /// The time on the configured clock in nanoseconds since the epoch ([`nanos`]).
    #[inline]
    fn now_nanos(&self) -> u64 {
        if self.system_clock {
            crate::SystemClock.now_nanos()
        } else {
            nanos(self.config.clock.now())
        }
    }
}

/// One principal's cache: its token, the one fetch in flight for it, its failures.
///
/// In declared order (`repr(C)`): what a hit reads comes first, right behind the reference
/// counts of its `Arc` (which a keyed hit writes), so that it spans as few cache lines as it can
/// (the keyed hit's fields end 33 bytes into the allocation).
#[repr(C)]
pub(crate) struct Slot<F: KeyedFetch> {
    pub(crate) common: Arc<Common<F>>,
    /// `current`'s token, published beside it for the keyed hit path: the token carries its
    /// refresh point, so a hit reads one allocation, the one whose reference count it takes
    /// anyway, not the entry and then the token (with thousands of principals, each allocation
    /// a hit touches is a likely cache miss).
    token: ArcSwapOption<token::Inner>,
    /// Set by each lookup through a keyed cache, cleared by its idle sweep.
    pub(crate) used: AtomicBool,
    /// Set while a fetch task runs: lets soft-window callers skip the lock.
    fetching: AtomicBool,
    /// The generation `current` was published as (0: none). Stored after `current`, under the
    /// control lock, so a thread's copy tagged with it is the current token's (or a newer one
    /// published a moment ago).
    generation: AtomicU64,
    current: ArcSwapOption<Entry>,
    control: Mutex<Control>,
    counters: Counters,
    pub(crate) principal: F::Principal,
}

impl<F: KeyedFetch> fmt::Debug for Slot<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("cache", &self.config().name)
            .finish_non_exhaustive()
    }
}

struct Entry {
    /// Its access token is published ([`AccessToken::published`]): it carries the refresh point.
    state: TokenState,
}

impl Entry {
    /// The entry for `state`, its token refreshed at `soft`.
    fn new(mut state: TokenState, soft: SystemTime) -> Self {
        state.access_token = state.access_token.published(soft);
        Self { state }
    }

    /// When the token is refreshed: served as it is before, served while a refresh runs after.
    fn soft(&self) -> SystemTime {
        self.state.access_token.refresh_at()
    }

    /// When the token stops being valid (`None`: no expiry known).
    fn hard(&self) -> Option<SystemTime> {
        self.state.access_token.expires_at()
    }
}

/// Names each entry a slot publishes, unique across every cache of the process (never 0).
fn next_generation() -> u64 {
    static GENERATION: AtomicU64 = AtomicU64::new(1);
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// How many caches' tokens one thread keeps copies of.
const LOCAL_COPIES: usize = 8;

/// One thread's copy of one cache entry's token.
///
/// Every hit hands out a clone, and a clone touches the token's reference count; were all
/// threads to clone one allocation, that count's cache line would bounce between cores on every
/// call (it dominated the hit path under contention). So a single-token cache lets each thread
/// keep its own copy of the current token and clone that.
///
/// A copy is served only while its `generation` is the one its cache publishes, so it is never
/// served after its entry was replaced, invalidated or forgotten. It is dropped (and its secret
/// zeroized) at this thread's next hit on any cache once its entry is gone (`entry` has no strong
/// reference left: replaced and released, or its cache dropped), or when the thread exits. A
/// thread keeps at most [`LOCAL_COPIES`] copies; past that, hits clone the shared token (no
/// allocation, some contention).
struct LocalCopy {
    generation: u64,
    entry: Weak<Entry>,
    /// The entry's refresh point ([`nanos`]).
    soft: u64,
    token: AccessToken,
}

/// What each thread keeps: its token copies and the hit-counter stripe it owns, in one
/// thread-local so a hit reaches both with one access.
struct Local {
    copies: RefCell<Vec<LocalCopy>>,
    /// The stripe of every [`StripedCounter`] this thread writes alone: `UNLEASED` until its
    /// first hit, `STRIPES` when none was free then (it uses the shared one).
    stripe: Cell<usize>,
}

const UNLEASED: usize = usize::MAX;

impl Local {
    #[inline]
    fn stripe(&self) -> usize {
        match self.stripe.get() {
            UNLEASED => {
                let stripe = lease_stripe();
                self.stripe.set(stripe);
                stripe
            }
            stripe => stripe,
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let stripe = self.stripe.get();
        if stripe < STRIPES {
            FREE_STRIPES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(stripe);
        }
    }
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            copies: RefCell::new(Vec::new()),
            stripe: Cell::new(UNLEASED),
        }
    };
}

/// This thread's copy of the entry published as `generation`, if it is fresh at `now` (in
/// [`nanos`]), counted as a hit in `hits`; drops the copies whose entries are gone.
#[inline]
fn local_hit(generation: u64, now: u64, hits: &StripedCounter) -> Option<AccessToken> {
    LOCAL
        .try_with(|local| {
            let mut copies = local.copies.try_borrow_mut().ok()?;
            let mut found = None;
            let mut dead = false;
            for copy in copies.iter() {
                if copy.generation == generation {
                    found = Some(copy);
                } else {
                    dead |= copy.entry.strong_count() == 0;
                }
            }
            let token = found
                .filter(|copy| now < copy.soft)
                .map(|copy| copy.token.clone());
            if dead {
                drop_dead_copies(&mut copies, generation);
            }
            if token.is_some() {
                hits.increment_stripe(local.stripe());
            }
            token
        })
        .ok()
        .flatten()
}

/// Counts a hit on a cache that keeps no copies in `hits`, and drops this thread's copies (of
/// single-token caches) whose entries are gone, so they still go at its next hit whichever
/// cache it hits: both in one access to the thread-local.
#[inline]
fn count_keyed_hit(hits: &StripedCounter) {
    let stripe = LOCAL
        .try_with(|local| {
            drop_dead_copies_of(local);
            local.stripe()
        })
        .unwrap_or(STRIPES);
    hits.increment_stripe(stripe);
}

/// Drops (and so zeroizes) this thread's copies whose entries are gone.
#[inline]
fn drop_dead_local_copies() {
    let _ = LOCAL.try_with(drop_dead_copies_of);
}

/// Drops (and so zeroizes) `local`'s copies whose entries are gone.
#[inline]
fn drop_dead_copies_of(local: &Local) {
    if let Ok(mut copies) = local.copies.try_borrow_mut()
        && copies.iter().any(|c| c.entry.strong_count() == 0)
    {
        // No copy is tagged 0.
        drop_dead_copies(&mut copies, 0);
    }
}

/// Drops (and so zeroizes) the copies whose entries are gone, but the one of `generation`.
#[cold]
#[inline(never)]
fn drop_dead_copies(copies: &mut Vec<LocalCopy>, generation: u64) {
    copies.retain(|c| c.generation == generation || c.entry.strong_count() > 0);
}

/// The token of `entry` from this thread's copy, made now if there is none and there is room
/// (`None`: no room, the thread is exiting, or this thread's copy tagged `generation` holds
/// another entry's token).
///
/// `generation` was read before `entry` was loaded, so `entry` is the one published as
/// `generation` or a newer one whose generation is not yet stored; the copy is tagged
/// `generation` either way. A copy already tagged `generation` is used only if it is `entry`'s:
/// made in such a window, it may hold the entry this one replaces.
fn local_copy(generation: u64, entry: &Arc<Entry>) -> Option<AccessToken> {
    LOCAL
        .try_with(|local| {
            let mut copies = local.copies.try_borrow_mut().ok()?;
            drop_dead_copies(&mut copies, generation);
            if let Some(copy) = copies.iter().find(|c| c.generation == generation) {
                return std::ptr::eq(copy.entry.as_ptr(), Arc::as_ptr(entry))
                    .then(|| copy.token.clone());
            }
            if copies.len() >= LOCAL_COPIES {
                return None;
            }
            let token = entry.state.access_token.deep_copy();
            copies.push(LocalCopy {
                generation,
                entry: Arc::downgrade(entry),
                soft: nanos(entry.soft()),
                token: token.clone(),
            });
            Some(token)
        })
        .ok()
        .flatten()
}

/// How many token copies this thread holds (for tests of their bound).
#[cfg(test)]
fn local_copies() -> usize {
    LOCAL.with(|l| l.copies.borrow().len())
}

type Outcome = Option<Result<AccessToken, Arc<Error>>>;

/// What one fetch produced.
enum Fetched {
    /// A state from the provider.
    New(TokenState),
    /// An entry made from a fresh state another holder of the store saved.
    Adopted(Entry),
}

/// A slot's coordination state. What a healthy principal never needs (a held failure, a
/// retired or rejected token, a failed save) lives in `rare`, allocated only while it holds
/// something, so a warm principal costs a few words here.
#[derive(Default)]
struct Control {
    inflight: Option<watch::Receiver<Outcome>>,
    /// Bumped by `forget`: a fetch that began before it neither saves nor caches its result.
    epoch: u32,
    loaded_from_store: bool,
    rare: Option<Box<Rare>>,
}

#[derive(Default)]
struct Rare {
    /// The last failure and the time before which it is returned instead of a new fetch.
    failure: Option<(Arc<Error>, SystemTime)>,
    /// State kept after a token was invalidated, so the next fetch can still refresh with it.
    retired: Option<TokenState>,
    /// The last token a caller reported as rejected; never adopted again from a store.
    rejected: Option<AccessToken>,
    /// Why the state behind the current token could not be saved (cleared by the next save).
    unsaved: Option<Arc<Error>>,
    /// Set while the fetch in flight is a background refresh (of a still-valid token).
    background: Option<Arc<Background>>,
    consecutive_failures: u32,
}

impl Control {
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_default()
    }

    fn failure(&self) -> Option<&(Arc<Error>, SystemTime)> {
        self.rare.as_ref()?.failure.as_ref()
    }

    fn retired(&self) -> Option<&TokenState> {
        self.rare.as_ref()?.retired.as_ref()
    }

    fn rejected(&self) -> Option<&AccessToken> {
        self.rare.as_ref()?.rejected.as_ref()
    }

    fn unsaved(&self) -> Option<&Arc<Error>> {
        self.rare.as_ref()?.unsaved.as_ref()
    }

    /// Sets what `f` changes in the rare part, and frees it once it holds nothing.
    fn update(&mut self, f: impl FnOnce(&mut Rare)) {
        f(self.rare());
        if let Some(rare) = &self.rare
            && rare.failure.is_none()
            && rare.retired.is_none()
            && rare.rejected.is_none()
            && rare.unsaved.is_none()
            && rare.background.is_none()
            && rare.consecutive_failures == 0
        {
            self.rare = None;
        }
    }

    /// Like [`update`](Self::update), but allocates nothing when there is no rare part (for
    /// changes that only clear).
    fn clear_rare(&mut self, f: impl FnOnce(&mut Rare)) {
        if self.rare.is_some() {
            self.update(f);
        }
    }
}

/// A slot's own counters (hits are counted once per cache: [`Common`]).
#[derive(Default)]
struct Counters {
    misses: AtomicU64,
    fetches: AtomicU64,
    failures: AtomicU32,
    /// Microseconds (at most about 71 minutes, which a fetch bounded by timeouts never takes).
    last_latency_us: AtomicU32,
}

impl<F: Fetch> CachedTokenProvider<F> {
    /// Caches `fetcher` with the default configuration.
    pub fn new(fetcher: F) -> Self {
        Self::with_config(fetcher, CacheConfig::default())
    }

    /// Caches `fetcher` with `config`.
    pub fn with_config(fetcher: F, config: CacheConfig) -> Self {
        let common = Arc::new(Common::new(Single(fetcher), config, true));
        Self {
            slot: Arc::new(Slot::new(common, ())),
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
    /// and removes the stored state (refresh token included) under the store's lock for its key.
    /// Returns whether the store held an entry. The next call fetches from scratch.
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

fn no_store_key() -> Error {
    Error::config(
        "store",
        "is set, but this provider names no store key (implement `Fetch::store_key`)",
    )
}

impl<F: KeyedFetch> Slot<F> {
    pub(crate) fn new(common: Arc<Common<F>>, principal: F::Principal) -> Self {
        Self {
            common,
            principal,
            current: ArcSwapOption::empty(),
            token: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            fetching: AtomicBool::new(false),
            used: AtomicBool::new(true),
            control: Mutex::new(Control::default()),
            counters: Counters::default(),
        }
    }

    fn config(&self) -> &CacheConfig {
        &self.common.config
    }

    pub(crate) fn cached(&self) -> Option<AccessToken> {
        self.current
            .load()
            .as_ref()
            .map(|e| e.state.access_token.clone())
    }

    pub(crate) fn cached_state(&self) -> Option<TokenState> {
        self.current.load().as_ref().map(|e| e.state.clone())
    }

    pub(crate) fn soft_expiry(&self) -> Option<SystemTime> {
        self.current.load().as_ref().map(|e| e.soft())
    }

    pub(crate) fn store_error(&self) -> Option<Error> {
        self.lock().unsaved().map(|e| e.duplicate())
    }

    /// Whether a fetch is in flight or anyone but the caller holds this slot (a handle given
    /// out, a caller waiting, the fetch task): a keyed cache never evicts such a slot.
    pub(crate) fn busy(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) > 1 || self.fetching.load(Ordering::Acquire)
    }

    /// The store and this principal's key in it: `Ok(None)` without a store.
    fn store(&self) -> Result<Option<(&dyn TokenStore, StoreKey)>, Error> {
        match &self.config().store {
            None => Ok(None),
            Some(store) => match self.common.fetcher.store_key(&self.principal) {
                Some(key) => Ok(Some((store.as_ref(), key))),
                None => Err(no_store_key()),
            },
        }
    }

    pub(crate) async fn forget(&self) -> Result<bool, Error> {
        let removed = match self.store()? {
            Some((store, key)) => {
                let lock = store.lock(&key).await?;
                let removed = store.remove(&key, &lock).await?;
                self.forget_state();
                removed
            }
            None => {
                self.forget_state();
                false
            }
        };
        info!(cache = self.config().name, removed, "token state forgotten");
        Ok(removed)
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let s = &self.counters;
        let latency = s.last_latency_us.load(Ordering::Relaxed);
        CacheStats {
            hits: self.common.hits.sum(),
            misses: s.misses.load(Ordering::Relaxed),
            fetches: s.fetches.load(Ordering::Relaxed),
            failures: u64::from(s.failures.load(Ordering::Relaxed)),
            last_fetch_latency: (latency > 0).then(|| Duration::from_micros(latency.into())),
            fetching: self.fetching.load(Ordering::Acquire),
        }
    }

    pub(crate) fn clear(&self) {
        let mut control = self.lock();
        if let Some(entry) = self.set_current(&mut control, None) {
            control.update(|rare| {
                rare.retired = Some(entry.state.clone());
                rare.failure = None;
            });
        } else {
            control.clear_rare(|rare| rare.failure = None);
        }
    }

    /// The token if one is fresh now (before its refresh point), counted as a hit; nothing is
    /// started or waited for.
    #[inline]
    pub(crate) fn fresh(&self) -> Option<AccessToken> {
        if self.common.local_copies
            && let Some(token) = self.fresh_at(self.common.now_nanos())
        {
            return Some(token);
        }
        self.fresh_shared(self.common.now())
    }

    /// The token from this thread's copy, if the cache keeps copies and this thread's is the
    /// current entry's and fresh at `now` (in [`nanos`]), counted as a hit: no lock, no shared
    /// write, no allocation.
    #[inline]
    fn fresh_at(&self, now: u64) -> Option<AccessToken> {
        if !self.common.local_copies {
            return None;
        }
        // Acquire: pairs with `set_current`'s store, so a generation seen here is one whose
        // entry is published.
        match self.generation.load(Ordering::Acquire) {
            0 => None,
            generation => local_hit(generation, now, &self.common.hits),
        }
    }

    /// The current token if it is fresh at `now`, counted as a hit (the copy made or taken if
    /// the cache keeps them).
    fn fresh_shared(&self, now: SystemTime) -> Option<AccessToken> {
        if !self.common.local_copies {
            let token = self.token.load();
            let Some(token) = token.as_ref().filter(|token| now < token.refresh_at()) else {
                drop_dead_local_copies();
                return None;
            };
            count_keyed_hit(&self.common.hits);
            return Some(AccessToken::from_shared(Arc::clone(token)));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let entry = self.current.load();
        let entry = entry.as_ref().filter(|entry| now < entry.soft())?;
        self.common.hits.increment();
        Some(self.token_of(generation, entry))
    }

    /// What [`TokenProvider::get`] answers: at its first poll, the token if it is fresh, the
    /// waiting path (a soft-window hit that starts the background refresh, or a miss) boxed
    /// otherwise.
    #[inline]
    pub(crate) fn get_now(self: &Arc<Self>) -> TokenFuture<'_> {
        TokenFuture::lazy(self)
    }

    /// `entry`'s token for a caller on this thread: from its copy (made now if need be) in a
    /// cache that keeps copies, else a clone of the shared token. `generation` was read before
    /// `entry` was loaded.
    fn token_of(&self, generation: u64, entry: &Arc<Entry>) -> AccessToken {
        if self.common.local_copies
            && generation != 0
            && let Some(token) = local_copy(generation, entry)
        {
            return token;
        }
        entry.state.access_token.clone()
    }

    pub(crate) async fn get(self: &Arc<Self>) -> Result<AccessToken, Error> {
        let now = self.common.now();
        match self.hit(now) {
            Some(token) => Ok(token),
            None => self.miss(now).await,
        }
    }

    /// The hit path: the token when one is valid at `now` (starting the one background refresh
    /// in the soft window). Kept out of the waiting path so a hit never touches its state.
    #[inline]
    fn hit(self: &Arc<Self>, now: SystemTime) -> Option<AccessToken> {
        if let Some(token) = self.fresh_at(nanos(now)).or_else(|| self.fresh_shared(now)) {
            trace!(cache = self.config().name, "token cache hit");
            return Some(token);
        }
        let entry = self.current.load();
        let entry = entry.as_ref()?;
        if entry.hard().is_none_or(|hard| now < hard) {
            self.common.hits.increment();
            if !self.fetching.load(Ordering::Acquire) {
                let _ = self.start(now, true);
            }
            trace!(
                cache = self.config().name,
                "token cache hit in the refresh window"
            );
            return Some(entry.state.access_token.clone());
        }
        None
    }

    /// No valid token: wait for the one fetch (joined or started), bounded by the load timeout.
    async fn miss(self: &Arc<Self>, now: SystemTime) -> Result<AccessToken, Error> {
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        debug!(cache = self.config().name, "token cache miss");
        let mut rx = self.start(now, false)?;
        let wait = rx.wait_for(Option::is_some);
        let load_timeout = self.config().load_timeout;
        match tokio::time::timeout(load_timeout, wait).await {
            Ok(Ok(outcome)) => match outcome.as_ref().expect("waited for Some") {
                Ok(token) => Ok(token.clone()),
                Err(e) => Err(e.duplicate()),
            },
            // The sender is gone without an answer: the fetch task panicked or was cancelled.
            Ok(Err(_)) => Err(Error::transport(
                "the token fetch task ended without a result",
            )),
            Err(_) => Err(Error::Timeout(load_timeout)),
        }
    }

    pub(crate) fn invalidate(&self, rejected: &AccessToken) {
        let mut control = self.lock();
        let current = self.current.load();
        let is_current = current
            .as_ref()
            .is_some_and(|entry| entry.state.access_token == *rejected);
        control.update(|rare| {
            rare.rejected = Some(rejected.clone());
            if let Some(entry) = current.as_ref().filter(|_| is_current) {
                rare.retired = Some(entry.state.clone());
                // A failure held from a soft-window refresh must not stand between the caller
                // and the new token it now needs.
                rare.failure = None;
            }
        });
        if is_current {
            self.set_current(&mut control, None);
            info!(cache = self.config().name, "cached token invalidated");
            return;
        }
        debug!(
            cache = self.config().name,
            "invalidate ignored: the rejected token is no longer cached"
        );
    }

    /// Drops everything held for this principal.
    ///
    /// A fetch in flight is detached: the callers that joined it still get its answer, but a call
    /// from now on starts a fetch from scratch rather than joining one that began with the
    /// forgotten state, and what the detached fetch gets is neither cached nor held.
    fn forget_state(&self) {
        let mut control = self.lock();
        control.epoch = control.epoch.wrapping_add(1);
        control.rare = None;
        control.inflight = None;
        self.fetching.store(false, Ordering::Release);
        self.set_current(&mut control, None);
    }

    /// Publishes `entry` as the current one (or none), returning the one it replaces. Every
    /// change of `current` goes through here, under the control lock (`_control`), so the
    /// generation is stored after its entry and changes in the order the entries do.
    ///
    /// `token` is stored after `current`: a keyed hit that reads `token` while an entry goes
    /// sees the old token (as a call just before would), or nothing, and then finds `current`
    /// gone too. Stored first, a hit could find no token, fall through to the old `current`,
    /// and start a refresh for an entry being invalidated or forgotten.
    fn set_current(&self, _control: &mut Control, entry: Option<Arc<Entry>>) -> Option<Arc<Entry>> {
        let generation = if entry.is_some() {
            next_generation()
        } else {
            0
        };
        let token = entry
            .as_ref()
            .map(|e| Arc::clone(e.state.access_token.shared()));
        let replaced = self.current.swap(entry);
        self.token.store(token);
        self.generation.store(generation, Ordering::Release);
        replaced
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        // The lock is never held across an await or a call that can panic midway, so a poisoned
        // state is still consistent.
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the fetch in flight or starts one; returns the held failure when one is due.
    /// `background`: the caller still has a valid token (a soft-window refresh), so the fetch's
    /// paced requests yield to those of callers who have none.
    fn start(
        self: &Arc<Self>,
        now: SystemTime,
        background: bool,
    ) -> Result<watch::Receiver<Outcome>, Error> {
        let mut control = self.lock();
        if let Some(rx) = &control.inflight {
            if !background
                && let Some(refresh) = control.rare.as_ref().and_then(|r| r.background.as_ref())
            {
                refresh.make_urgent();
            }
            return Ok(rx.clone());
        }
        // Another caller may have finished a fetch between our load and the lock.
        if let Some(entry) = self.current.load().as_ref()
            && now < entry.soft()
        {
            let (tx, rx) = watch::channel(Some(Ok(entry.state.access_token.clone())));
            drop(tx);
            return Ok(rx);
        }
        if let Some((error, until)) = control.failure()
            && now < *until
        {
            return Err(error.duplicate());
        }
        let (tx, rx) = watch::channel(None);
        control.inflight = Some(rx.clone());
        let refresh = background.then(|| Arc::new(Background::default()));
        if let Some(refresh) = &refresh {
            let refresh = Arc::clone(refresh);
            control.update(|rare| rare.background = Some(refresh));
        }
        self.fetching.store(true, Ordering::Release);
        let epoch = control.epoch;
        drop(control);
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(Self::run(Arc::clone(self), tx, rx.clone(), refresh, epoch));
        Ok(rx)
    }

    /// Ends this fetch: clears the in-flight marker and publishes `outcome` in one step under the
    /// control lock. A caller that takes the lock afterwards finds no fetch to join (so it never
    /// gets this outcome once the clock or an `invalidate` has moved past it); one that took it
    /// before has joined and gets the outcome.
    ///
    /// A fetch that `forget` detached (`inflight` is no longer its channel) only answers the
    /// callers that joined it before.
    fn publish(
        control: &mut Control,
        fetching: &AtomicBool,
        tx: &watch::Sender<Outcome>,
        outcome: Outcome,
    ) {
        if control
            .inflight
            .as_ref()
            .is_some_and(|rx| rx.same_channel(&tx.subscribe()))
        {
            control.inflight = None;
            control.clear_rare(|rare| rare.background = None);
            fetching.store(false, Ordering::Release);
        }
        tx.send_replace(outcome);
    }

    async fn run(
        this: Arc<Self>,
        tx: watch::Sender<Outcome>,
        channel: watch::Receiver<Outcome>,
        background: Option<Arc<Background>>,
        epoch: u32,
    ) {
        // Clears the in-flight marker if this task ends without publishing (a panicking fetcher,
        // a runtime shutting down), so the next caller can start again. After a publish the
        // marker is already clear, or belongs to a newer fetch, and is left alone.
        struct Done<'a, F: KeyedFetch> {
            slot: &'a Slot<F>,
            channel: watch::Receiver<Outcome>,
        }
        impl<F: KeyedFetch> Drop for Done<'_, F> {
            fn drop(&mut self) {
                let mut control = self.slot.lock();
                if control
                    .inflight
                    .as_ref()
                    .is_some_and(|rx| rx.same_channel(&self.channel))
                {
                    control.inflight = None;
                    control.clear_rare(|rare| rare.background = None);
                    self.slot.fetching.store(false, Ordering::Release);
                }
            }
        }
        let _done = Done {
            slot: &this,
            channel,
        };

        let started = tokio::time::Instant::now();
        let result = match background {
            Some(refresh) => refresh.scope(this.fetch()).await,
            None => this.fetch().await,
        };
        let elapsed = started.elapsed();
        let now = this.common.now();
        let result = result.and_then(|fetched| {
            let entry = match fetched {
                Fetched::New(state) => this.entry(state, now),
                Fetched::Adopted(entry) => entry,
            };
            if !is_b64token(entry.state.access_token.secret().expose_secret()) {
                // Printed or put in a header, it would break the line or inject another.
                this.keep_refresh_token(entry.state, epoch);
                return Err(Error::malformed(
                    "the provider issued an access token with characters a bearer token may not \
                     hold (RFC 6750 b64token: letters, digits, -._~+/ and = padding)",
                ));
            }
            if entry.hard().is_some_and(|hard| hard <= now) {
                // Handing it out would only earn a 401; a transient failure keeps serving the
                // still-valid token (if any) and backs off instead of asking again per call.
                this.keep_refresh_token(entry.state, epoch);
                return Err(Error::malformed(
                    "the provider issued an access token that had already expired",
                ));
            }
            Ok(entry)
        });
        match result {
            Ok(entry) => {
                let token = entry.state.access_token.clone();
                let mut control = this.lock();
                // A `forget` since this fetch began: its callers get the token they waited for,
                // but the forgotten principal's cache stays empty.
                if control.epoch == epoch {
                    control.clear_rare(|rare| {
                        rare.failure = None;
                        rare.retired = None;
                        rare.consecutive_failures = 0;
                    });
                    this.set_current(&mut control, Some(Arc::new(entry)));
                }
                Self::publish(&mut control, &this.fetching, &tx, Some(Ok(token.clone())));
                drop(control);
                this.counters.last_latency_us.store(
                    u32::try_from(elapsed.as_micros())
                        .unwrap_or(u32::MAX)
                        .max(1),
                    Ordering::Relaxed,
                );
                info!(
                    cache = this.config().name,
                    elapsed_ms = elapsed.as_millis() as u64,
                    expires_in_s = token.remaining(now).map(|d| d.as_secs()),
                    "token fetched"
                );
            }
            Err(error) => {
                this.counters.failures.fetch_add(1, Ordering::Relaxed);
                let error = Arc::new(error);
                let mut control = this.lock();
                let current = control.epoch == epoch;
                let hold = if !current {
                    // Forgotten since it began: the failure is its joiners' alone.
                    Duration::ZERO
                } else if error.is_transient() {
                    let mut failures = 0;
                    control.update(|rare| {
                        rare.consecutive_failures = rare.consecutive_failures.saturating_add(1);
                        failures = rare.consecutive_failures;
                    });
                    this.backoff(failures, error.retry_after())
                } else {
                    this.config().negative_ttl
                };
                if current {
                    let held = Arc::clone(&error);
                    control.update(|rare| rare.failure = Some((held, now + hold)));
                }
                Self::publish(
                    &mut control,
                    &this.fetching,
                    &tx,
                    Some(Err(Arc::clone(&error))),
                );
                drop(control);
                warn!(
                    cache = this.config().name,
                    elapsed_ms = elapsed.as_millis() as u64,
                    transient = error.is_transient(),
                    hold_ms = hold.as_millis() as u64,
                    error = %error,
                    "token fetch failed"
                );
            }
        }
    }

    /// One fetch, through the store when there is one: the new state, or the entry adopted from
    /// the store (its refresh time already drawn, so it is used as checked).
    async fn fetch(&self) -> Result<Fetched, Error> {
        let previous = || {
            let current = self.current.load();
            match current.as_ref() {
                Some(entry) => Some(entry.state.clone()),
                None => self.lock().retired().cloned(),
            }
        };
        let fetcher = &self.common.fetcher;
        let Some((store, key)) = self.store()? else {
            let state = fetcher.fetch(&self.principal, previous().as_ref()).await?;
            return Ok(Fetched::New(self.stamp(state)));
        };
        let key = &key;
        // Held across read-fetch-write, so no other holder of this store spends the same refresh
        // token; released when dropped, however this ends.
        let lock = match store.lock(key).await {
            Ok(lock) => lock,
            // The store cannot be reached: a grant that spends nothing is fetched here, once
            // per process, and not saved; any other waits for the store (a refresh token spent
            // outside the fleet's lock could be spent twice).
            Err(Error::StoreUnavailable { reason })
                if fetcher.repeatable_without_store(&self.principal) =>
            {
                warn!(
                    cache = self.config().name,
                    error = %reason,
                    "the token store is unavailable: fetching without it (the grant is safe to repeat)"
                );
                let state = fetcher.fetch(&self.principal, None).await?;
                return Ok(Fetched::New(self.stamp(state)));
            }
            Err(e) => return Err(e),
        };
        // Read under the lock: a `forget` that took it first has cleared what it forgot.
        let epoch = self.lock().epoch;
        let previous = previous();
        let stored = store.load(key).await?;
        let now = self.common.now();
        let (rejected, first_load, unsaved) = {
            let mut control = self.lock();
            let first = !control.loaded_from_store;
            control.loaded_from_store = true;
            (
                control.rejected().cloned(),
                first,
                control.unsaved().is_some(),
            )
        };
        // The stored state is moved into its entry, not cloned: a token nobody else holds is
        // published without a copy.
        let stored = match stored {
            Some(stored) => {
                let usable = self.entry(stored, now);
                let token = &usable.state.access_token;
                let is_rejected = rejected.as_ref() == Some(token);
                let ours = previous.as_ref().is_some_and(|p| p.access_token == *token);
                let sendable = is_b64token(token.secret().expose_secret());
                if now < usable.soft() && sendable && !is_rejected && (first_load || !ours) {
                    debug!(cache = self.config().name, "token adopted from the store");
                    // What the store holds now is newer than the state that could not be saved.
                    self.lock().clear_rare(|rare| rare.unsaved = None);
                    return Ok(Fetched::Adopted(usable));
                }
                Some(usable.state)
            }
            None => None,
        };
        // The store's refresh token is the newest one anybody holds, unless our last save
        // failed: then the store still holds the one that state rotated away, and ours is newer.
        let base = match (stored, previous) {
            (_, Some(previous)) if unsaved => Some(previous),
            (Some(stored), _) => Some(stored),
            (None, previous) => previous,
        };
        let state = self.stamp(fetcher.fetch(&self.principal, base.as_ref()).await?);
        if self.lock().epoch != epoch {
            // Forgotten while the request was out (only possible without the lock, i.e. never
            // with a store that locks); nothing of it is kept.
            return Ok(Fetched::New(state));
        }
        match store.save(key, &state, &lock).await {
            Ok(()) => self.lock().clear_rare(|rare| rare.unsaved = None),
            Err(Error::StoreFenced { reason }) => {
                // Our lease ran out during the fetch and another holder took the lock: what it
                // saved is what the rest of the store's users hold (its refresh token is the one
                // the provider will accept next), so it wins over ours, which is dropped.
                drop(lock);
                warn!(
                    cache = self.config().name,
                    key = %key,
                    error = %reason,
                    "the store refused our save: adopting the newer stored state"
                );
                let now = self.common.now();
                if let Some(stored) = store.load(key).await? {
                    let usable = self.entry(stored, now);
                    let valid = now < usable.soft() || usable.hard().is_some_and(|hard| now < hard);
                    let sendable = is_b64token(usable.state.access_token.secret().expose_secret());
                    // A token a caller reported as refused is never adopted, here as on the
                    // first read: the 401 retry must not get it back.
                    let is_rejected = self
                        .lock()
                        .rejected()
                        .is_some_and(|rejected| *rejected == usable.state.access_token);
                    if valid && sendable && !is_rejected {
                        self.lock().clear_rare(|rare| rare.unsaved = None);
                        return Ok(Fetched::Adopted(usable));
                    }
                    if is_rejected {
                        // The store holds the token a server just refused: ours is the good
                        // one. It is kept in memory, and reported unsaved.
                        warn!(
                            cache = self.config().name,
                            key = %key,
                            "the store holds the token just refused: keeping ours, unsaved"
                        );
                        let unsaved = Arc::new(Error::store_fenced(reason));
                        self.lock().update(|rare| rare.unsaved = Some(unsaved));
                        return Ok(Fetched::New(state));
                    }
                }
                return Err(Error::store_fenced(reason));
            }
            Err(e) => {
                // The new state is still returned and cached in memory (dropping a rotated
                // refresh token because the disk is full would lock the user out), the next
                // refresh starts from it rather than from the store, and the failure is kept for
                // `store_error`, so the caller learns that a restart would lose it.
                error!(
                    cache = self.config().name,
                    key = %key,
                    error = %e,
                    "could not save the new token state: a restart will not have it"
                );
                self.lock().update(|rare| rare.unsaved = Some(Arc::new(e)));
            }
        }
        Ok(Fetched::New(state))
    }

    /// A state just fetched, with the time it was obtained (unless the fetcher set it).
    fn stamp(&self, mut state: TokenState) -> TokenState {
        if state.obtained_at.is_none() {
            state.obtained_at = Some(self.common.now());
        }
        state
    }

    /// Keeps the refresh token of a state whose access token is unusable: it may have replaced
    /// (rotated away) the one the cached state holds, and the next refresh must not spend a dead
    /// one.
    fn keep_refresh_token(&self, state: TokenState, epoch: u32) {
        if state.refresh_token.is_none() {
            return;
        }
        let mut control = self.lock();
        if control.epoch != epoch {
            // Forgotten while the fetch was out: nothing of the forgotten principal is kept.
            return;
        }
        match self.current.load_full() {
            Some(current) => {
                let mut kept = current.state.clone();
                kept.refresh_token = state.refresh_token;
                // The same published token, so the same refresh point.
                self.set_current(&mut control, Some(Arc::new(Entry { state: kept })));
            }
            None => control.update(|rare| rare.retired = Some(state)),
        }
    }

    /// The cache entry for `state` at `now`, with the same rules whether the state was just
    /// fetched or adopted from a store: the margin is a fifth of the lifetime the token had when
    /// it was obtained (at most `max_margin`), the token is used no longer than `max_lifetime`
    /// after it was obtained, and one with no expiry no longer than `default_lifetime`. A stored
    /// state of unknown age (written before `obtained_at` was recorded) gets the full margin, and
    /// is not reused at all when it has no expiry.
    fn entry(&self, state: TokenState, now: SystemTime) -> Entry {
        let cfg = self.config();
        // An issue time in the future (a writer whose clock ran ahead) or at or after the expiry
        // says nothing trustworthy about the token's age: treated as unknown.
        let obtained = state.obtained_at.filter(|obtained| {
            *obtained <= now
                && state
                    .access_token
                    .expires_at()
                    .is_none_or(|hard| *obtained < hard)
        });
        let limit = obtained.unwrap_or(now) + cfg.max_lifetime;
        let soft = match state.access_token.expires_at() {
            Some(hard) => {
                // The refresh comes `margin` before expiry, and up to `spread` earlier still,
                // drawn at random: principals fetched together (a cold start over thousands of
                // tenants) come due spread over a tenth of their lifetime, not all at once.
                // A fixed margin is kept to, less a jitter of up to a tenth of it.
                let early = match (cfg.margin, obtained) {
                    (Some(margin), _) => {
                        margin.saturating_sub(margin.mul_f64(0.1 * fastrand::f64()))
                    }
                    (None, Some(obtained)) => {
                        let lifetime = hard.duration_since(obtained).unwrap_or(Duration::ZERO);
                        let margin = cfg.max_margin.min(lifetime / 5);
                        margin.saturating_add((lifetime / 10).mul_f64(fastrand::f64()))
                    }
                    (None, None) => cfg.max_margin,
                };
                let soft = hard.checked_sub(early).unwrap_or(hard);
                soft.min(limit)
            }
            None => match obtained {
                Some(obtained) => (obtained + cfg.default_lifetime).min(limit),
                None => now,
            },
        };
        Entry::new(state, soft)
    }

    fn backoff(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let cfg = self.config();
        let exp = cfg
            .backoff_initial
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
            .min(cfg.backoff_max);
        let half = exp / 2;
        let jittered = half + half.mul_f64(fastrand::f64());
        // The provider's wait is honoured up to the longest backoff: a `Retry-After` of a day
        // must not shut every caller out for a day.
        retry_after.map_or(jittered, |ra| ra.min(cfg.backoff_max).max(jittered))
    }
}

/// A hit counter that costs no locked instruction on most threads.
///
/// Up to `STRIPES` live threads each own a stripe (a cache line of its own) and are its only
/// writer, so a plain load and store counts exactly; a thread hands its stripe back when it exits,
/// for the next thread to own. Threads beyond that share one stripe with an atomic add. A single
/// shared counter would make every hit fight over one cache line, which under contention cost
/// more than the rest of the call.
struct StripedCounter {
    owned: [Stripe; STRIPES],
    shared: Stripe,
}

const STRIPES: usize = 8;

#[repr(align(128))]
#[derive(Default)]
struct Stripe(AtomicU64);

impl Default for StripedCounter {
    fn default() -> Self {
        Self {
            owned: std::array::from_fn(|_| Stripe::default()),
            shared: Stripe::default(),
        }
    }
}

/// Stripes no live thread owns.
static FREE_STRIPES: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static NEXT_STRIPE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A stripe for a thread to own until it exits (`STRIPES`: none is free; share the last one).
fn lease_stripe() -> usize {
    let reused = FREE_STRIPES.lock().unwrap_or_else(|e| e.into_inner()).pop();
    reused.unwrap_or_else(|| NEXT_STRIPE.fetch_add(1, Ordering::Relaxed).min(STRIPES))
}

impl StripedCounter {
    #[inline]
    fn increment(&self) {
        let stripe = LOCAL.try_with(Local::stripe).unwrap_or(STRIPES);
        self.increment_stripe(stripe);
    }

    /// Counts one on `stripe`, which this thread owns (or `STRIPES`: the shared one).
    #[inline]
    fn increment_stripe(&self, stripe: usize) {
        match self.owned.get(stripe) {
            // This thread is the stripe's only writer while it lives.
            Some(stripe) => stripe
                .0
                .store(stripe.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed),
            None => {
                self.shared.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn sum(&self) -> u64 {
        self.owned
            .iter()
            .chain(std::iter::once(&self.shared))
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

/// A slot answers as a provider (the one definition the single-token cache and the keyed
/// cache's principals forward to).
#[async_trait]
impl<F: KeyedFetch> TokenProvider for Arc<Slot<F>> {
    async fn token(&self) -> Result<AccessToken, Error> {
        Slot::get(self).await
    }

    #[inline]
    fn fresh(&self) -> Option<AccessToken> {
        Slot::fresh(self)
    }

    fn invalidate(&self, rejected: &AccessToken) {
        Slot::invalidate(self, rejected);
    }

    fn store_error(&self) -> Option<Error> {
        Slot::store_error(self)
    }

    async fn forget(&self) -> Result<bool, Error> {
        Slot::forget(self).await
    }
}

crate::forward_token_provider!([F: Fetch] CachedTokenProvider<F> => |this| &this.slot);

/// The size of a cache entry (for the keyed cache's size test).
#[cfg(test)]
pub(crate) fn entry_size() -> usize {
    std::mem::size_of::<Entry>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Clock, ManualClock, provider_fn};
    use std::sync::atomic::AtomicUsize;

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
                        c.increment();
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
