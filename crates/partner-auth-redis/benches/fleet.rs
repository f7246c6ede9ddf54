//! The Redis store's costs, against a real `redis-server` on loopback, in one run:
//!
//! - Redis round trips per replica per expiry, and upstream fetches per expiry for the fleet,
//!   with 2, 4 and 8 replicas: each replica its own cache, `RedisStore` and connection (in this
//!   process, on one clock that the benchmark moves through 20 expiries). Two arrivals: all
//!   replicas coming due at the same instant (the worst case: the others poll the lock while
//!   one fetches), and one after another (the common case: jittered soft expiries).
//! - Hit latency (token fresh) with the Redis store configured and without a store.
//!
//! Run with `cargo xtask bench`, which appends `target/bench-report-redis.md` to BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use criterion::Criterion;
use partner_auth_redis::RedisStore;
use partner_auth_redis::testing::RedisServer;
use token_provider::{
    AccessToken, CacheConfig, CachedTokenProvider, Clock, Error, Fetch, ManualClock, StoreKey,
    TokenState, TokenStore, async_trait,
};
use tokio::runtime::Runtime;

const LIFETIME: Duration = Duration::from_secs(3600);
const CYCLES: u64 = 20;

/// The upstream: mints a token per call, counting calls for the whole fleet.
#[derive(Debug)]
struct Upstream {
    clock: ManualClock,
    fetches: Arc<AtomicU64>,
}

#[async_trait]
impl Fetch for Upstream {
    async fn fetch(&self, _previous: Option<&TokenState>) -> Result<TokenState, Error> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst);
        let now = self.clock.now();
        Ok(TokenState::new(
            AccessToken::builder(format!("token-{n}"))
                .expires_in(now, LIFETIME)
                .build(),
        )
        .with_obtained_at(now))
    }

    fn store_key(&self) -> Option<StoreKey> {
        Some(StoreKey::new("bench", "live", "tenant", "principal"))
    }
}

struct Replica {
    cache: CachedTokenProvider<Upstream>,
    store: RedisStore,
}

fn fleet(
    server: &RedisServer,
    clock: &ManualClock,
    n: usize,
    prefix: &str,
) -> (Vec<Replica>, Arc<AtomicU64>) {
    let fetches = Arc::new(AtomicU64::new(0));
    let replicas = (0..n)
        .map(|_| {
            let store = RedisStore::builder(server.url())
                .prefix(prefix)
                .clock(Arc::new(clock.clone()))
                .build()
                .unwrap();
            let config = CacheConfig::new()
                .clock(Arc::new(clock.clone()))
                .store(Arc::new(store.clone()) as Arc<dyn TokenStore>);
            let cache = CachedTokenProvider::with_config(
                Upstream {
                    clock: clock.clone(),
                    fetches: fetches.clone(),
                },
                config,
            );
            Replica { cache, store }
        })
        .collect();
    (replicas, fetches)
}

struct FleetFigures {
    replicas: usize,
    together_round_trips: f64,
    together_fetches: f64,
    staggered_round_trips: f64,
    staggered_fetches: f64,
}

/// Round trips per replica per expiry and fetches per expiry, over `CYCLES` expiries.
async fn measure(server: &RedisServer, n: usize, together: bool) -> (f64, f64) {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let prefix = format!("bench-{n}-{together}:");
    let (replicas, fetches) = fleet(server, &clock, n, &prefix);
    // The first fill (not counted).
    for r in &replicas {
        r.cache.get().await.unwrap();
    }
    let trips0: u64 = replicas.iter().map(|r| r.store.round_trips()).sum();
    let fetches0 = fetches.load(Ordering::SeqCst);
    for _ in 0..CYCLES {
        // Past every replica's soft expiry (the margin is 5 minutes less up to 10% jitter),
        // before the hard one: the replicas come due.
        let hard = replicas[0].cache.cached().unwrap().expires_at().unwrap();
        clock.set(hard - Duration::from_secs(200));
        let due: Vec<_> = replicas.iter().map(|r| r.cache.cached().unwrap()).collect();
        let wait_all = |only: Option<usize>| {
            let replicas = &replicas;
            let due = &due;
            async move {
                loop {
                    let done = replicas.iter().enumerate().all(|(i, r)| {
                        only.is_some_and(|o| o != i) || r.cache.cached().as_ref() != Some(&due[i])
                    });
                    // Release-on-drop runs on a task of its own: let it finish too.
                    if done {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        };
        if together {
            for r in &replicas {
                r.cache.get().await.unwrap(); // soft window: served, refresh started
            }
            wait_all(None).await;
        } else {
            for (i, r) in replicas.iter().enumerate() {
                r.cache.get().await.unwrap();
                wait_all(Some(i)).await;
            }
        }
    }
    let trips: u64 = replicas.iter().map(|r| r.store.round_trips()).sum::<u64>() - trips0;
    let fetched = fetches.load(Ordering::SeqCst) - fetches0;
    (
        trips as f64 / (n as u64 * CYCLES) as f64,
        fetched as f64 / CYCLES as f64,
    )
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

fn median(group: &str, id: &str) -> Option<f64> {
    let path = target_dir()
        .join("criterion")
        .join(group)
        .join(id)
        .join("new/estimates.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// Polls a future once; the hit paths complete without waiting.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a cache hit had to wait"),
    }
}

fn hit_latency(c: &mut Criterion, rt: &Runtime, server: &RedisServer) {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let upstream = || Upstream {
        clock: clock.clone(),
        fetches: Arc::new(AtomicU64::new(0)),
    };
    let plain = CachedTokenProvider::with_config(
        upstream(),
        CacheConfig::new().clock(Arc::new(clock.clone())),
    );
    let store = RedisStore::builder(server.url())
        .prefix("bench-hit:")
        .build()
        .unwrap();
    let redis = CachedTokenProvider::with_config(
        upstream(),
        CacheConfig::new()
            .clock(Arc::new(clock.clone()))
            .store(Arc::new(store.clone()) as Arc<dyn TokenStore>),
    );
    rt.block_on(async {
        plain.get().await.unwrap();
        redis.get().await.unwrap();
    });
    let trips_before = store.round_trips();
    let mut group = c.benchmark_group("redis_hit");
    group.bench_function("no_store", |b| b.iter(|| ready(plain.get()).unwrap()));
    group.bench_function("redis_store", |b| b.iter(|| ready(redis.get()).unwrap()));
    group.finish();
    assert_eq!(store.round_trips(), trips_before, "a hit touched Redis");
}

fn main() {
    let mut c = Criterion::default()
        .output_directory(&target_dir().join("criterion"))
        .configure_from_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    hit_latency(&mut c, &rt, &server);
    let figures: Vec<FleetFigures> = [2, 4, 8]
        .into_iter()
        .map(|n| {
            let (tt, tf) = rt.block_on(measure(&server, n, true));
            let (st, sf) = rt.block_on(measure(&server, n, false));
            FleetFigures {
                replicas: n,
                together_round_trips: tt,
                together_fetches: tf,
                staggered_round_trips: st,
                staggered_fetches: sf,
            }
        })
        .collect();
    c.final_summary();

    let mut r = String::new();
    let _ = writeln!(
        r,
        "## Redis fleet store (`crates/partner-auth-redis/benches/fleet.rs`)\n"
    );
    let _ = writeln!(
        r,
        "A real `redis-server` on loopback. Each replica is its own cache, `RedisStore` and \
         connection (in one process, on one clock the benchmark moves through {CYCLES} \
         expiries). Round trips are the store's own count of Redis calls (a script's one-time \
         load is not counted).\n"
    );
    let _ = writeln!(
        r,
        "| replicas | round trips per replica per expiry, one after another | fleet fetches per expiry | round trips per replica per expiry, all due at once | fleet fetches per expiry |\n| --- | --- | --- | --- | --- |"
    );
    for f in &figures {
        let _ = writeln!(
            r,
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            f.replicas,
            f.staggered_round_trips,
            f.staggered_fetches,
            f.together_round_trips,
            f.together_fetches
        );
    }
    let _ = writeln!(
        r,
        "\nTargets: at most 3 round trips per replica per expiry on the common path (one after \
         another: lock with the stored entry, then save-and-release or release), 1 upstream \
         fetch per expiry for the fleet. All due at the same instant, the replicas that wait poll \
         the lock (5 ms doubling to 100 ms) while one fetches.\n"
    );
    let fmt = |v: Option<f64>| v.map_or("n/a".to_owned(), |ns| format!("{ns:.1} ns"));
    let _ = writeln!(
        r,
        "Hit latency (token fresh, one task, `get()`), same run:\n\n| cache | median per call |\n| --- | --- |\n| no store | {} |\n| Redis store configured | {} |\n\nA hit never touches Redis (the benchmark checks the store's round-trip count is unchanged across the hits).",
        fmt(median("redis_hit", "no_store")),
        fmt(median("redis_hit", "redis_store"))
    );
    let out = target_dir().join("bench-report-redis.md");
    std::fs::write(&out, r).unwrap();
    eprintln!("wrote {}", out.display());
}
