//! One token's cache and the caches users hand-roll, shared by `benches/cache.rs` (criterion)
//! and `benches/instructions.rs` (callgrind): the upstream, the baselines, and every contender of
//! the hit benchmark.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use token_provider::{
    AccessToken, CacheConfig, CachedTokenProvider, Error, Fetch, SharedClock, TokenProvider,
    TokenState, async_trait,
};
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, RwLock};

/// A token's lifetime.
pub const HOUR: Duration = Duration::from_secs(3600);
/// The baselines' refresh margin.
pub const MARGIN: Duration = Duration::from_secs(300);

/// The upstream: counts fetches and takes `delay` (real time).
#[derive(Debug)]
pub struct Upstream {
    clock: SharedClock,
    delay: Duration,
    /// Fetches made so far.
    pub fetches: Arc<AtomicUsize>,
}

impl Upstream {
    fn new(clock: SharedClock, delay: Duration) -> Self {
        Self {
            clock,
            delay,
            fetches: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn issue(&self) -> AccessToken {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        AccessToken::builder(format!("token-{n}"))
            .expires_in(self.clock.now(), HOUR)
            .build()
    }
}

#[async_trait]
impl Fetch for Upstream {
    async fn fetch(&self, _previous: Option<&TokenState>) -> Result<TokenState, Error> {
        Ok(self.issue().await.into())
    }
}

/// Baseline 1: one async mutex around the whole check-and-fetch.
pub struct MutexCache {
    /// Its upstream.
    pub upstream: Upstream,
    slot: Mutex<Option<AccessToken>>,
}

impl MutexCache {
    /// The token, fetched under the lock when missing or due.
    pub async fn get(&self) -> AccessToken {
        let mut slot = self.slot.lock().await;
        let now = self.upstream.clock.now();
        if let Some(t) = slot
            .as_ref()
            .filter(|t| t.expires_at().unwrap() - MARGIN > now)
        {
            return t.clone();
        }
        let t = self.upstream.issue().await;
        *slot = Some(t.clone());
        t
    }
}

/// Baseline 2: read lock for the check, write lock (checked again) for the fetch.
pub struct RwLockCache {
    /// Its upstream.
    pub upstream: Upstream,
    slot: RwLock<Option<AccessToken>>,
}

impl RwLockCache {
    /// The token, fetched under the lock when missing or due.
    pub async fn get(&self) -> AccessToken {
        let fresh = |slot: &Option<AccessToken>, now| {
            slot.as_ref()
                .filter(|t| t.expires_at().unwrap() - MARGIN > now)
                .cloned()
        };
        if let Some(t) = fresh(&*self.slot.read().await, self.upstream.clock.now()) {
            return t;
        }
        let mut slot = self.slot.write().await;
        if let Some(t) = fresh(&slot, self.upstream.clock.now()) {
            return t;
        }
        let t = self.upstream.issue().await;
        *slot = Some(t.clone());
        t
    }
}

/// The standard library's wall clock, at full precision (the floor's clock).
#[allow(clippy::disallowed_methods)]
pub fn wall_clock() -> SystemTime {
    SystemTime::now()
}

/// The default (coarse) system clock.
pub fn system() -> SharedClock {
    Arc::new(token_provider::SystemClock)
}

/// partner-auth's cache over an upstream taking `delay`.
pub fn ours(clock: SharedClock, delay: Duration) -> CachedTokenProvider<Upstream> {
    CachedTokenProvider::with_config(
        Upstream::new(Arc::clone(&clock), delay),
        CacheConfig::new().clock(clock),
    )
}

/// The mutex baseline.
pub fn mutex(clock: SharedClock, delay: Duration) -> MutexCache {
    MutexCache {
        upstream: Upstream::new(clock, delay),
        slot: Mutex::new(None),
    }
}

/// The read-write-lock baseline.
pub fn rwlock(clock: SharedClock, delay: Duration) -> RwLockCache {
    RwLockCache {
        upstream: Upstream::new(clock, delay),
        slot: RwLock::new(None),
    }
}

/// Polls a future once; the hit paths complete without waiting.
#[inline(always)]
pub fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a cache hit had to wait"),
    }
}

/// A multi-threaded runtime with `workers` threads.
pub fn runtime(workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .unwrap()
}

/// Calls `$m!` with the names of every [`Contender`], in the report's order: for a benchmark
/// that wants each one a constant.
#[macro_export]
#[rustfmt::skip]
macro_rules! for_each_contender {
    ($m:ident) => {
        $m!(SystemTimeNow, CoarseClock, Floor, Get, Fresh, DynGet, DynToken, Mutex, RwLock, Moka)
    };
}

/// The contenders of the hit benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    /// `SystemTime::now()` alone.
    SystemTimeNow,
    /// partner-auth's system clock alone (coarse on Linux).
    CoarseClock,
    /// The floor: what any cache of one token must do at least (load the shared pointer, read
    /// the wall clock with the standard library, compare, clone).
    Floor,
    /// `CachedTokenProvider::get()`.
    Get,
    /// `CachedTokenProvider::fresh()`.
    Fresh,
    /// `Arc<dyn TokenProvider>::get()`.
    DynGet,
    /// `Arc<dyn TokenProvider>::token()` (the boxed future).
    DynToken,
    /// `tokio::sync::Mutex<Option<token>>`.
    Mutex,
    /// A double-checked `tokio::sync::RwLock`.
    RwLock,
    /// `moka::future::Cache::get`.
    Moka,
}

impl Contender {
    /// Every contender, in the report's order.
    pub const ALL: [Self; 10] = {
        macro_rules! all {
            ($($contender:ident),*) => {
                [$(Self::$contender),*]
            };
        }
        for_each_contender!(all)
    };

    /// Its benchmark id (criterion's and the instruction count's).
    pub fn id(self) -> &'static str {
        match self {
            Self::SystemTimeNow => "system_time_now",
            Self::CoarseClock => "coarse_clock",
            Self::Floor => "floor",
            Self::Get => "partner-auth_get",
            Self::Fresh => "partner-auth_fresh",
            Self::DynGet => "partner-auth_dyn_get",
            Self::DynToken => "partner-auth_dyn_token",
            Self::Mutex => "mutex_baseline",
            Self::RwLock => "rwlock_baseline",
            Self::Moka => "moka_future_get",
        }
    }

    /// Its row name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::SystemTimeNow => "`SystemTime::now()` alone",
            Self::CoarseClock => "partner-auth's `SystemClock` alone (coarse wall clock)",
            Self::Floor => "floor: an `ArcSwap` load + `SystemTime::now()` + an `Arc` clone",
            Self::Get => "partner-auth `get()`",
            Self::Fresh => "partner-auth `fresh()` (sync)",
            Self::DynGet => "partner-auth `Arc<dyn TokenProvider>::get()`",
            Self::DynToken => "partner-auth `Arc<dyn TokenProvider>::token()` (boxed future)",
            Self::Mutex => "`tokio::sync::Mutex<Option<token>>`",
            Self::RwLock => "double-checked `tokio::sync::RwLock`",
            Self::Moka => "`moka::future::Cache::get`",
        }
    }

    /// The contender with benchmark id `id`.
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.id() == id)
    }
}

/// Every contender of the hit benchmark, warm.
pub struct Hits {
    ours: CachedTokenProvider<Upstream>,
    dynamic: Arc<dyn TokenProvider>,
    floor: arc_swap::ArcSwap<AccessToken>,
    mutex: MutexCache,
    rwlock: RwLockCache,
    moka: moka::future::Cache<&'static str, AccessToken>,
}

impl Hits {
    /// Every contender with a token cached, on `rt`.
    pub fn new(rt: &Runtime) -> Self {
        let ours = ours(system(), Duration::ZERO);
        let token = rt.block_on(ours.get()).expect("a token");
        let dynamic: Arc<dyn TokenProvider> = Arc::new(ours.clone());
        let mutex = mutex(system(), Duration::ZERO);
        rt.block_on(mutex.get());
        let rwlock = rwlock(system(), Duration::ZERO);
        rt.block_on(rwlock.get());
        let moka = moka::future::Cache::new(16);
        rt.block_on(moka.insert("t", token.clone()));
        Self {
            ours,
            dynamic,
            floor: arc_swap::ArcSwap::from_pointee(token),
            mutex,
            rwlock,
            moka,
        }
    }

    /// One hit of `contender`, its token dropped as a caller's would be.
    #[inline(always)]
    pub fn hit(&self, contender: Contender) {
        use std::hint::black_box;
        match contender {
            Contender::SystemTimeNow => {
                black_box(wall_clock());
            }
            Contender::CoarseClock => {
                black_box(token_provider::Clock::now(&token_provider::SystemClock));
            }
            Contender::Floor => {
                let slot = self.floor.load();
                let now = wall_clock();
                let fresh = slot.expires_at().expect("an expiry") - MARGIN > now;
                drop(black_box(fresh.then(|| AccessToken::clone(&slot))));
            }
            Contender::Get => drop(black_box(ready(self.ours.get()).expect("a hit"))),
            Contender::Fresh => drop(black_box(self.ours.fresh().expect("a hit"))),
            Contender::DynGet => drop(black_box(ready(self.dynamic.get()).expect("a hit"))),
            Contender::DynToken => drop(black_box(ready(self.dynamic.token()).expect("a hit"))),
            Contender::Mutex => drop(black_box(ready(self.mutex.get()))),
            Contender::RwLock => drop(black_box(ready(self.rwlock.get()))),
            Contender::Moka => drop(black_box(ready(self.moka.get("t")).expect("a hit"))),
        }
    }
}
