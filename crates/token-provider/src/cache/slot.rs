//! [`PrincipalCache`]: one principal's cache (its published token, the one fetch in flight,
//! what went wrong), and [`CacheShared`], what every principal of one cache shares. The
//! decisions it acts on are [`decide`](super::decide)'s; the store protocol is
//! [`protocol`](super::protocol)'s.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use tokio::sync::watch;
use tracing::{Instrument, debug, info, trace, warn};

use super::config::{CacheConfig, CacheStats};
use super::counter::StripedCounter;
use super::decide::{Decision, Hold, View, after_failure, decide};
use super::entry::{Entry, Obtained, next_generation, rotated_only};
use super::local::{count_hit, count_keyed_hit, drop_dead_local_copies, local_copy, local_hit};
use super::policy;
use crate::clock::nanos;
use crate::observe::{CatchPanic, Outcome as FetchOutcome, with_metrics};
use crate::pace::Background;
use crate::store::{RefreshDigest, Refusal, StoreKey, TokenStore};
use crate::token::{self, is_b64token};
use crate::{AccessToken, Error, KeyedFetch, Secret, TokenFuture, TokenProvider, TokenState};

/// What every principal of one cache shares, paid once however many principals there are: the
/// fetcher, the configuration and the hit counter (the bulk of an empty cache's size).
pub(crate) struct CacheShared<F> {
    pub(crate) fetcher: F,
    pub(crate) config: CacheConfig,
    hits: StripedCounter,
    /// Whether the clock is the [`SystemClock`](crate::SystemClock), read directly on a hit.
    system_clock: bool,
    /// Whether threads keep copies of the tokens ([`LocalCopy`]): for a single token, which
    /// every thread hits; not for a keyed cache, whose many principals each see few concurrent
    /// hits and would only churn a thread's few copies.
    local_copies: bool,
    /// How many of `hits` the metrics were told of ([`publish_hits`](Self::publish_hits)).
    #[cfg(feature = "metrics")]
    published_hits: AtomicU64,
}

impl<F> CacheShared<F> {
    pub(crate) fn new(fetcher: F, config: CacheConfig, local_copies: bool) -> Self {
        Self {
            fetcher,
            system_clock: crate::clock::is_system(config.clock.as_ref()),
            config,
            hits: StripedCounter::default(),
            local_copies,
            #[cfg(feature = "metrics")]
            published_hits: AtomicU64::new(0),
        }
    }

    /// Shares `self`, registered (with the `metrics` feature) for [`publish`](crate::metrics::publish).
    pub(crate) fn shared(self) -> Arc<Self>
    where
        F: KeyedFetch,
    {
        let shared = Arc::new(self);
        with_metrics! {
            let weak: std::sync::Weak<dyn crate::metrics::Publish> = Arc::downgrade(&shared) as _;
            crate::metrics::register(weak);
        }
        shared
    }

    /// Tells the metrics of the hits counted since the last time (never on the hit path: a
    /// fetch starting or ending, a sweep, a `stats()` call, [`publish`](crate::metrics::publish)).
    #[cfg(feature = "metrics")]
    pub(crate) fn publish_hits(&self) {
        let total = self.hits.sum();
        // Two publishers at once: the one with the larger total tells the difference.
        let before = self.published_hits.fetch_max(total, Ordering::Relaxed);
        if total > before {
            crate::metrics::hits(self.config.name, total - before);
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

#[cfg(feature = "metrics")]
impl<F: Send + Sync> crate::metrics::Publish for CacheShared<F> {
    fn publish_hits(&self) {
        CacheShared::publish_hits(self);
    }
}

#[cfg(feature = "metrics")]
impl<F> Drop for CacheShared<F> {
    fn drop(&mut self) {
        let total = self.hits.sum();
        let before = *self.published_hits.get_mut();
        if total > before {
            crate::metrics::hits(self.config.name, total - before);
        }
    }
}

/// One principal's cache: its token, the one fetch in flight for it, its failures.
///
/// In declared order (`repr(C)`): what a hit reads comes first, right behind the reference
/// counts of its `Arc` (which a keyed hit writes), so that it spans as few cache lines as it can
/// (the keyed hit's fields end 33 bytes into the allocation).
#[repr(C)]
pub(crate) struct PrincipalCache<F: KeyedFetch> {
    pub(crate) common: Arc<CacheShared<F>>,
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
    control: Mutex<Coordination>,
    counters: Counters,
    pub(crate) principal: F::Principal,
}

impl<F: KeyedFetch> fmt::Debug for PrincipalCache<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrincipalCache")
            .field("cache", &self.config().name)
            .finish_non_exhaustive()
    }
}

/// A principal dropped with a token leaves the `principals cached` gauge.
#[cfg(feature = "metrics")]
impl<F: KeyedFetch> Drop for PrincipalCache<F> {
    fn drop(&mut self) {
        if self.current.load().is_some() {
            crate::metrics::principal_cached(self.config().name, false);
        }
    }
}

type Outcome = Option<Result<AccessToken, Arc<Error>>>;

/// A slot's coordination state. What a healthy principal never needs (a held failure, a
/// retired or rejected token, a failed save) lives in `incidents`, allocated only while it holds
/// something, so a warm principal costs a few words here.
#[derive(Default)]
pub(super) struct Coordination {
    inflight: Option<watch::Receiver<Outcome>>,
    /// Bumped by `forget`: a fetch that began before it neither saves nor caches its result.
    pub(super) epoch: u32,
    pub(super) loaded_from_store: bool,
    incidents: Option<Box<Incidents>>,
}

#[derive(Default)]
pub(super) struct Incidents {
    /// The last failure and the time before which it is returned instead of a new fetch.
    failure: Option<(Arc<Error>, SystemTime)>,
    /// State kept after a token was invalidated, so the next fetch can still refresh with it.
    retired: Option<TokenState>,
    /// The last token a caller reported as rejected; never adopted again from a store.
    rejected: Option<AccessToken>,
    /// Why the state behind the current token could not be saved (cleared by the next save).
    pub(super) unsaved: Option<Arc<Error>>,
    /// Set while the fetch in flight is a background refresh (of a still-valid token).
    background: Option<Arc<Background>>,
    consecutive_failures: u32,
    /// The last refresh token the provider refused here, never presented again by this process
    /// whatever a store says (a record whose refusal was not written, or was lost).
    pub(super) refused: Option<Refusal>,
    /// The refresh tokens this process last spent (presented and answered), newest last: a
    /// record holding one of them is older than what this process holds (a store that lost
    /// writes, and a stale state written back since).
    pub(super) spent: Remembered,
    /// The refresh tokens this process presented and had no answer for (lost, or abandoned at
    /// the deadline), newest last: once the store has lost its record of that presentation,
    /// this process cannot know whether another presented it since, so it never does again.
    pub(super) unanswered: Remembered,
    /// The time of the last `forget` whose record this process acted on (made it, or dropped
    /// what it held from before it): a state held since is newer than that record.
    pub(super) forgotten_seen: Option<SystemTime>,
}

/// How many spent (and unanswered) refresh tokens a principal's cache remembers.
const SPENT_REMEMBERED: usize = 8;

/// A bounded list of refresh tokens (their digests), newest last; the oldest goes first.
#[derive(Default)]
pub(super) struct Remembered(Vec<RefreshDigest>);

impl Remembered {
    fn holds(&self, refresh_token: &Secret) -> bool {
        self.0.contains(&RefreshDigest::of(refresh_token))
    }

    fn add(&mut self, refresh_token: &Secret) {
        let digest = RefreshDigest::of(refresh_token);
        if !self.0.contains(&digest) {
            if self.0.len() == SPENT_REMEMBERED {
                self.0.remove(0);
            }
            self.0.push(digest);
        }
    }

    fn remove(&mut self, refresh_token: &Secret) {
        let digest = RefreshDigest::of(refresh_token);
        self.0.retain(|d| *d != digest);
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Coordination {
    pub(super) fn incidents(&mut self) -> &mut Incidents {
        self.incidents.get_or_insert_default()
    }

    fn failure(&self) -> Option<&(Arc<Error>, SystemTime)> {
        self.incidents.as_ref()?.failure.as_ref()
    }

    pub(super) fn retired(&self) -> Option<&TokenState> {
        self.incidents.as_ref()?.retired.as_ref()
    }

    pub(super) fn rejected(&self) -> Option<&AccessToken> {
        self.incidents.as_ref()?.rejected.as_ref()
    }

    pub(super) fn unsaved(&self) -> Option<&Arc<Error>> {
        self.incidents.as_ref()?.unsaved.as_ref()
    }

    pub(super) fn refused(&self) -> Option<&Refusal> {
        self.incidents.as_ref()?.refused.as_ref()
    }

    pub(super) fn forgotten_seen(&self) -> Option<SystemTime> {
        self.incidents.as_ref()?.forgotten_seen
    }

    /// Whether this process spent `refresh_token` (presented it and had an answer).
    pub(super) fn spent(&self, refresh_token: &Secret) -> bool {
        self.incidents
            .as_ref()
            .is_some_and(|i| i.spent.holds(refresh_token))
    }

    /// Remembers that this process spent `refresh_token`.
    pub(super) fn remember_spent(&mut self, refresh_token: &Secret) {
        self.update(|incidents| incidents.spent.add(refresh_token));
    }

    /// Whether this process presented `refresh_token` and has had no answer for it.
    pub(super) fn unanswered(&self, refresh_token: &Secret) -> bool {
        self.incidents
            .as_ref()
            .is_some_and(|i| i.unanswered.holds(refresh_token))
    }

    /// Remembers that this process presents `refresh_token` (until [`answered`](Self::answered)).
    pub(super) fn remember_presenting(&mut self, refresh_token: &Secret) {
        self.update(|incidents| incidents.unanswered.add(refresh_token));
    }

    /// The provider's answer to `refresh_token` reached this process.
    pub(super) fn answered(&mut self, refresh_token: &Secret) {
        self.clear_incidents(|incidents| incidents.unanswered.remove(refresh_token));
    }

    /// Sets what `f` changes in the incidents part, and frees it once it holds nothing.
    pub(super) fn update(&mut self, f: impl FnOnce(&mut Incidents)) {
        f(self.incidents());
        if let Some(incidents) = &self.incidents
            && incidents.failure.is_none()
            && incidents.retired.is_none()
            && incidents.rejected.is_none()
            && incidents.unsaved.is_none()
            && incidents.background.is_none()
            && incidents.consecutive_failures == 0
            && incidents.refused.is_none()
            && incidents.spent.is_empty()
            && incidents.unanswered.is_empty()
            && incidents.forgotten_seen.is_none()
        {
            self.incidents = None;
        }
    }

    /// Like [`update`](Self::update), but allocates nothing when there is no incidents part (for
    /// changes that only clear).
    pub(super) fn clear_incidents(&mut self, f: impl FnOnce(&mut Incidents)) {
        if self.incidents.is_some() {
            self.update(f);
        }
    }
}

/// A slot's own counters (hits are counted once per cache: [`CacheShared`]).
#[derive(Default)]
struct Counters {
    misses: AtomicU64,
    fetches: AtomicU64,
    failures: AtomicU32,
    /// Microseconds (at most about 71 minutes, which a fetch bounded by timeouts never takes).
    last_latency_us: AtomicU32,
}

fn no_store_key() -> Error {
    Error::config(
        "store",
        "is set, but this provider names no store key (implement `Fetch::store_key`)",
    )
}

impl<F: KeyedFetch> PrincipalCache<F> {
    pub(crate) fn new(common: Arc<CacheShared<F>>, principal: F::Principal) -> Self {
        Self {
            common,
            principal,
            current: ArcSwapOption::empty(),
            token: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            fetching: AtomicBool::new(false),
            used: AtomicBool::new(true),
            control: Mutex::new(Coordination::default()),
            counters: Counters::default(),
        }
    }

    pub(super) fn config(&self) -> &CacheConfig {
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
        self.lock().unsaved().map(|e| Error::clone(e))
    }

    /// Whether a fetch is in flight or anyone but the caller holds this slot (a handle given
    /// out, a caller waiting, the fetch task): a keyed cache never evicts such a slot.
    pub(crate) fn busy(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) > 1 || self.fetching.load(Ordering::Acquire)
    }

    /// The store and this principal's key in it: `Ok(None)` without a store.
    pub(super) fn store(&self) -> Result<Option<(&dyn TokenStore, StoreKey)>, Error> {
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
            // What this process holds goes whatever the store answers (the error then says
            // the store may still hold the state); under the store's lock, so that a fetch
            // queued behind the forget finds the new epoch.
            Some((store, key)) => self.forget_in_store(store, &key).await?,
            None => {
                self.forget_state();
                false
            }
        };
        info!(cache = self.config().name, removed, "token state forgotten");
        Ok(removed)
    }

    pub(crate) fn stats(&self) -> CacheStats {
        with_metrics!(self.common.publish_hits());
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
            control.update(|incidents| {
                incidents.retired = Some(entry.state.clone());
                incidents.failure = None;
            });
        } else {
            control.clear_incidents(|incidents| incidents.failure = None);
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
        count_hit(&self.common.hits);
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
        // Without the lock: a held failure is looked at by `start`, which decides again.
        let view = View {
            token: Some(entry.times()),
            fetching: self.fetching.load(Ordering::Acquire),
            failure_until: None,
        };
        match decide(&view, now) {
            decision @ (Decision::Serve | Decision::ServeAndRefresh) => {
                count_hit(&self.common.hits);
                if decision == Decision::ServeAndRefresh {
                    let _ = self.start(now, true);
                }
                trace!(
                    cache = self.config().name,
                    "token cache hit in the refresh window"
                );
                Some(entry.state.access_token.clone())
            }
            Decision::Join | Decision::Start | Decision::FailHeld => None,
        }
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
                Err(e) => Err(Error::clone(e)),
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
        control.update(|incidents| {
            incidents.rejected = Some(rejected.clone());
            if let Some(entry) = current.as_ref().filter(|_| is_current) {
                incidents.retired = Some(entry.state.clone());
                // A failure held from a soft-window refresh must not stand between the caller
                // and the new token it now needs.
                incidents.failure = None;
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
    pub(super) fn forget_state(&self) {
        let mut control = self.lock();
        control.epoch = control.epoch.wrapping_add(1);
        control.incidents = None;
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
    fn set_current(
        &self,
        _control: &mut Coordination,
        entry: Option<Arc<Entry>>,
    ) -> Option<Arc<Entry>> {
        let generation = if entry.is_some() {
            next_generation()
        } else {
            0
        };
        let token = entry
            .as_ref()
            .map(|e| Arc::clone(e.state.access_token.shared()));
        #[cfg(feature = "metrics")]
        let cached = entry.is_some();
        let replaced = self.current.swap(entry);
        self.token.store(token);
        self.generation.store(generation, Ordering::Release);
        with_metrics! {
            if cached != replaced.is_some() {
                crate::metrics::principal_cached(self.config().name, cached);
            }
        }
        replaced
    }

    /// `result`, the answer of an `operation` on `store`, counted by the metrics when it is an
    /// error (a save refused for a stale version is the protocol at work, not counted).
    #[inline]
    pub(super) fn observed<T>(
        &self,
        store: &dyn TokenStore,
        operation: &'static str,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        with_metrics! {
            if let Err(error) = &result
                && !matches!(error, Error::StoreFenced { .. })
            {
                crate::metrics::store_error(self.config().name, store.kind(), operation);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (store, operation);
        result
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Coordination> {
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
        let current = self.current.load();
        let view = View {
            token: current.as_ref().map(|entry| entry.times()),
            fetching: control.inflight.is_some(),
            failure_until: control.failure().map(|(_, until)| *until),
        };
        match decide(&view, now) {
            Decision::Join => {
                if !background
                    && let Some(refresh) = control
                        .incidents
                        .as_ref()
                        .and_then(|r| r.background.as_ref())
                {
                    refresh.make_urgent();
                }
                return Ok(control.inflight.clone().expect("a fetch is in flight"));
            }
            // Another caller may have finished a fetch between our load and the lock.
            Decision::Serve => {
                let token = current.as_ref().expect("a token is served");
                let (tx, rx) = watch::channel(Some(Ok(token.state.access_token.clone())));
                drop(tx);
                return Ok(rx);
            }
            Decision::FailHeld => {
                let (error, _) = control.failure().expect("a failure is held");
                return Err(Error::clone(error));
            }
            Decision::Start | Decision::ServeAndRefresh => {}
        }
        drop(current);
        let (tx, rx) = watch::channel(None);
        control.inflight = Some(rx.clone());
        let refresh = background.then(|| Arc::new(Background::default()));
        if let Some(refresh) = &refresh {
            let refresh = Arc::clone(refresh);
            control.update(|incidents| incidents.background = Some(refresh));
        }
        self.fetching.store(true, Ordering::Release);
        let epoch = control.epoch;
        let attempt = control
            .incidents
            .as_ref()
            .map_or(0, |i| i.consecutive_failures)
            .saturating_add(1);
        drop(control);
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        with_metrics!(self.common.publish_hits());
        let span = self.fetch_span(attempt);
        tokio::spawn(Self::run(Arc::clone(self), tx, rx.clone(), refresh, epoch).instrument(span));
        Ok(rx)
    }

    /// The span a fetch runs in: `partner_auth.fetch`, with the fixed fields of the `metrics`
    /// module docs (`outcome` recorded when it ends). The principal is named by a digest, never
    /// as it is.
    fn fetch_span(&self, attempt: u32) -> tracing::Span {
        let span = tracing::info_span!(
            "partner_auth.fetch",
            provider = self.config().name,
            principal = tracing::field::Empty,
            attempt,
            outcome = tracing::field::Empty,
        );
        if !span.is_disabled() {
            let digest = match self.common.fetcher.store_key(&self.principal) {
                Some(key) => crate::observe::principal_digest(&key),
                None => {
                    crate::observe::digest(&format!("{}|{:?}", self.config().name, self.principal))
                }
            };
            span.record("principal", digest.as_str());
        }
        span
    }

    /// Ends this fetch: clears the in-flight marker and publishes `outcome` in one step under the
    /// control lock. A caller that takes the lock afterwards finds no fetch to join (so it never
    /// gets this outcome once the clock or an `invalidate` has moved past it); one that took it
    /// before has joined and gets the outcome.
    ///
    /// A fetch that `forget` detached (`inflight` is no longer its channel) only answers the
    /// callers that joined it before.
    fn publish(
        control: &mut Coordination,
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
            control.clear_incidents(|incidents| incidents.background = None);
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
        struct ClearInflightOnDrop<'a, F: KeyedFetch> {
            slot: &'a PrincipalCache<F>,
            channel: watch::Receiver<Outcome>,
        }
        impl<F: KeyedFetch> Drop for ClearInflightOnDrop<'_, F> {
            fn drop(&mut self) {
                let mut control = self.slot.lock();
                if control
                    .inflight
                    .as_ref()
                    .is_some_and(|rx| rx.same_channel(&self.channel))
                {
                    control.inflight = None;
                    control.clear_incidents(|incidents| incidents.background = None);
                    self.slot.fetching.store(false, Ordering::Release);
                }
            }
        }
        let _done = ClearInflightOnDrop {
            slot: &this,
            channel,
        };

        let started = tokio::time::Instant::now();
        // Every fetch has a deadline: past it the fetch is dropped (its store lock with it), its
        // waiters get a timeout, and a refresh token it presented counts as one whose answer was
        // lost. A panicking fetcher is a transient failure like any other.
        let limit = this.config().fetch_timeout;
        let deadline = this.common.now() + limit;
        let fetch = CatchPanic(Box::pin(this.fetch(epoch, deadline)));
        let fetch = async {
            match tokio::time::timeout(limit, fetch).await {
                Ok(result) => result,
                Err(_) => {
                    warn!(
                        cache = this.config().name,
                        limit_ms = limit.as_millis() as u64,
                        "the token fetch passed its deadline and was abandoned"
                    );
                    Err(Error::Timeout(limit))
                }
            }
        };
        #[cfg(feature = "metrics")]
        let fetch = crate::metrics::scope(this.config().name, fetch);
        let result = match background {
            Some(refresh) => refresh.scope(fetch).await,
            None => fetch.await,
        };
        let elapsed = started.elapsed();
        let now = this.common.now();
        let adopted = matches!(result, Ok(Obtained::Adopted(_)));
        let result = result.and_then(|fetched| {
            let entry = match fetched {
                Obtained::New(state) => this.entry(state, now),
                Obtained::Adopted(entry) => entry,
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
        let outcome = match &result {
            Ok(_) if adopted => FetchOutcome::Adopted,
            Ok(_) => FetchOutcome::Ok,
            Err(error) => FetchOutcome::of(error),
        };
        tracing::Span::current().record("outcome", outcome.as_str());
        with_metrics! {
            crate::metrics::fetch_ended(this.config().name, outcome, elapsed.as_secs_f64());
            this.common.publish_hits();
        }
        match result {
            Ok(entry) => {
                let token = entry.state.access_token.clone();
                let mut control = this.lock();
                // A `forget` since this fetch began: its callers get the token they waited for,
                // but the forgotten principal's cache stays empty.
                if control.epoch == epoch {
                    control.clear_incidents(|incidents| {
                        incidents.failure = None;
                        incidents.retired = None;
                        incidents.consecutive_failures = 0;
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
                // A refused answer that rotated the refresh token: the one sent is spent, so the
                // new one is kept for the next fetch; callers get only the refusal.
                let (error, rotated) = error.take_rotated_refresh_token();
                if let Some(refresh_token) = rotated {
                    this.keep_rotated(refresh_token, epoch);
                }
                this.counters.failures.fetch_add(1, Ordering::Relaxed);
                let error = Arc::new(error);
                let mut control = this.lock();
                let current = control.epoch == epoch;
                // Forgotten since it began: the failure is its joiners' alone.
                let consecutive = control
                    .incidents
                    .as_ref()
                    .map_or(0, |r| r.consecutive_failures);
                let Hold {
                    hold,
                    consecutive_failures,
                } = after_failure(
                    this.config(),
                    consecutive,
                    &error,
                    !current,
                    fastrand::f64(),
                );
                if current {
                    let held = Arc::clone(&error);
                    control.update(|incidents| {
                        incidents.consecutive_failures = consecutive_failures;
                        incidents.failure = Some((held, now + hold));
                    });
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

    /// The state a fetch without a store starts from, or that a store's holder falls back on:
    /// the cached one, or the one kept after an `invalidate`.
    pub(super) fn previous_state(&self) -> Option<TokenState> {
        let current = self.current.load();
        match current.as_ref() {
            Some(entry) => Some(entry.state.clone()),
            None => self.lock().retired().cloned(),
        }
    }

    /// Keeps a refresh token that a refused answer rotated in ([`Error::Rotated`]): in the
    /// cached state, or else in the retired one, or else in a state of its own.
    fn keep_rotated(&self, refresh_token: Secret, epoch: u32) {
        let retired = self.lock().retired().cloned();
        let state = match retired {
            Some(retired) => retired.with_refresh_token(refresh_token),
            None => rotated_only(refresh_token),
        };
        self.keep_refresh_token(state, epoch);
    }

    /// The cache entry for `state` at `now`, its refresh point drawn by [`policy`].
    pub(super) fn entry(&self, state: TokenState, now: SystemTime) -> Entry {
        let soft = policy::refresh_point(self.config(), &state, now, fastrand::f64());
        Entry::new(state, soft)
    }

    /// A state just fetched, with the time it was obtained (unless the fetcher set it).
    pub(super) fn stamp(&self, mut state: TokenState) -> TokenState {
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
            None => control.update(|incidents| incidents.retired = Some(state)),
        }
    }

    /// Forgets `refused`, a refresh token the provider refused, wherever this cache keeps it
    /// (the cached state, the retired one), so no later fetch of this process presents it
    /// again, with or without a store that recorded the refusal.
    pub(super) fn drop_refused_refresh_token(&self, refused: &Secret, reason: String) {
        self.replace_refresh_token(|held| held == Some(refused), None);
        let refusal = Refusal::new(refused, self.common.now(), reason);
        let mut control = self.lock();
        control.remember_spent(refused);
        control.update(|incidents| incidents.refused = Some(refusal));
    }

    /// Another replica forgot the principal at `at` (a record of it this process had not acted
    /// on): what this process holds is from before it, so its refresh token is dropped (the
    /// access token is still served until it expires: hits never ask the store), and a state
    /// that could not be saved is no longer owed to the store.
    pub(super) fn follow_forget(&self, at: SystemTime) {
        if self.lock().forgotten_seen() == Some(at) {
            return;
        }
        let held = self.previous_state().and_then(|s| s.refresh_token);
        self.replace_refresh_token(|held| held.is_some(), None);
        self.lock().update(|incidents| incidents.unsaved = None);
        self.void_before_forget(at, held.iter());
    }

    /// Notes that the forget at `at` was acted on here, and that `refresh_tokens` (what was
    /// held or stored before it) are void: a record holding one later (a stale state written
    /// back by a replica that missed the forget) is older than what this process holds.
    pub(super) fn void_before_forget<'a>(
        &self,
        at: SystemTime,
        refresh_tokens: impl Iterator<Item = &'a Secret>,
    ) {
        let mut control = self.lock();
        control.update(|incidents| incidents.forgotten_seen = Some(at));
        for refresh_token in refresh_tokens {
            control.remember_spent(refresh_token);
        }
    }

    /// Keeps `refresh_token`, the one the store says is the principal's now (`None`: none this
    /// process may present: another holder is presenting it, or it was refused), in place of
    /// the one this cache keeps, so that a store that later forgets its record (a flush, a
    /// forget elsewhere) never has this process present a token it knows is stale.
    pub(super) fn follow_stored_refresh_token(&self, refresh_token: Option<Secret>) {
        let replacement = refresh_token.clone();
        self.replace_refresh_token(|held| held != refresh_token.as_ref(), replacement);
    }

    /// Replaces the refresh token of the cached and retired states where `stale` says so.
    fn replace_refresh_token(
        &self,
        stale: impl Fn(Option<&Secret>) -> bool,
        refresh_token: Option<Secret>,
    ) {
        let mut control = self.lock();
        if let Some(current) = self.current.load_full()
            && stale(current.state.refresh_token.as_ref())
        {
            let mut kept = current.state.clone();
            kept.refresh_token = refresh_token.clone();
            // The same published token, so the same refresh point.
            self.set_current(&mut control, Some(Arc::new(Entry { state: kept })));
        }
        control.clear_incidents(|incidents| {
            if let Some(retired) = &mut incidents.retired
                && stale(retired.refresh_token.as_ref())
            {
                retired.refresh_token = refresh_token;
            }
        });
    }
}

/// A slot answers as a provider (the one definition the single-token cache and the keyed
/// cache's principals forward to).
#[async_trait]
impl<F: KeyedFetch> TokenProvider for Arc<PrincipalCache<F>> {
    async fn token(&self) -> Result<AccessToken, Error> {
        PrincipalCache::get(self).await
    }

    #[inline]
    fn fresh(&self) -> Option<AccessToken> {
        PrincipalCache::fresh(self)
    }

    fn invalidate(&self, rejected: &AccessToken) {
        PrincipalCache::invalidate(self, rejected);
    }

    fn store_error(&self) -> Option<Error> {
        PrincipalCache::store_error(self)
    }

    async fn forget(&self) -> Result<bool, Error> {
        PrincipalCache::forget(self).await
    }
}
