//! The cache against the two caches users hand-roll, measured in one run:
//! a `tokio::sync::Mutex<Option<token>>` and a double-checked `tokio::sync::RwLock`.
//!
//! Run with `cargo xtask bench`, which writes BENCHMARKS.md from `target/bench-report.md`.

use std::fmt::Write as _;

use partner_auth_benches::one_token::{
    Contender, Hits, MutexCache, RwLockCache, Upstream, mutex, ours, runtime, rwlock, system,
};
use partner_auth_benches::{hammer_tasks, median, target_dir, write_report};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use token_provider::{CachedTokenProvider, ManualClock, TokenProvider};
use tokio::runtime::Runtime;
use tokio::time::Instant;

const TASKS: usize = 64;
const HERD: usize = 1000;

fn hit_latency(c: &mut Criterion, rt: &Runtime) {
    let hits = Hits::new(rt);
    let mut g = c.benchmark_group("hit");
    // One closure per contender, the contender a constant in it, so the dispatch folds away.
    macro_rules! bench {
        ($($contender:ident),*) => {$(
            g.bench_function(Contender::$contender.id(), |b| {
                b.iter(|| hits.hit(Contender::$contender))
            });
        )*};
    }
    partner_auth_benches::for_each_contender!(bench);
    g.finish();
}

/// The call each benchmark makes, so tasks hold their cache once and call it by reference.
trait Call: Send + Sync + 'static {
    fn call(&self) -> impl Future<Output = ()> + Send + '_;
}

impl Call for CachedTokenProvider<Upstream> {
    async fn call(&self) {
        self.get().await.unwrap();
    }
}

/// Through the trait object, as most applications hold a provider: `get()`.
struct Dynamic(Arc<dyn TokenProvider>);

impl Call for Dynamic {
    async fn call(&self) {
        self.0.get().await.unwrap();
    }
}

/// Through the trait object's boxed `token()`.
struct DynamicToken(Arc<dyn TokenProvider>);

impl Call for DynamicToken {
    async fn call(&self) {
        self.0.token().await.unwrap();
    }
}

impl Call for MutexCache {
    async fn call(&self) {
        self.get().await;
    }
}

impl Call for RwLockCache {
    async fn call(&self) {
        self.get().await;
    }
}

/// `TASKS` tasks on a 2-worker runtime share `iters` calls; returns the wall time.
fn hammer<C: Call>(rt: &Runtime, cache: &Arc<C>, iters: u64) -> Duration {
    hammer_tasks(rt, TASKS, iters, |_, calls| {
        let cache = Arc::clone(cache);
        async move {
            for _ in 0..calls {
                cache.call().await;
            }
        }
    })
}

fn contention(c: &mut Criterion, rt: &Runtime) {
    let p = Arc::new(ours(system(), Duration::ZERO));
    rt.block_on(p.get()).unwrap();
    let d = Arc::new(Dynamic(p.clone()));
    let dt = Arc::new(DynamicToken(p.clone()));
    let m = Arc::new(mutex(system(), Duration::ZERO));
    rt.block_on(m.get());
    let r = Arc::new(rwlock(system(), Duration::ZERO));
    rt.block_on(r.get());

    let mut g = c.benchmark_group("contention");
    g.throughput(Throughput::Elements(1));
    g.bench_function("partner-auth_get", |b| {
        b.iter_custom(|iters| hammer(rt, &p, iters))
    });
    g.bench_function("partner-auth_dyn_get", |b| {
        b.iter_custom(|iters| hammer(rt, &d, iters))
    });
    g.bench_function("partner-auth_dyn_token", |b| {
        b.iter_custom(|iters| hammer(rt, &dt, iters))
    });
    g.bench_function("mutex_baseline", |b| {
        b.iter_custom(|iters| hammer(rt, &m, iters))
    });
    g.bench_function("rwlock_baseline", |b| {
        b.iter_custom(|iters| hammer(rt, &r, iters))
    });
    g.finish();
}

/// Upstream fetch counts seen by the herd benchmark, per cache (max over all runs).
#[derive(Default)]
struct HerdCounts {
    ours: AtomicUsize,
    mutex: AtomicUsize,
    rwlock: AtomicUsize,
}

fn herd(c: &mut Criterion, rt: &Runtime, counts: &HerdCounts) {
    let upstream = Duration::from_millis(50);
    let mut g = c.benchmark_group("herd");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.warm_up_time(Duration::from_millis(500));

    /// `HERD` tasks at once on a new cache from `make` (which hands back its upstream's fetch
    /// count, kept in `max` when it is the highest yet); the wall time until all have a token.
    fn run_herd<C: Call>(
        rt: &Runtime,
        make: impl Fn() -> (C, Arc<AtomicUsize>),
        max: &AtomicUsize,
    ) -> Duration {
        let (cache, fetches) = make();
        let cache = Arc::new(cache);
        let elapsed = rt.block_on(async move {
            let start = Instant::now();
            let tasks: Vec<_> = (0..HERD)
                .map(|_| {
                    let cache = Arc::clone(&cache);
                    tokio::spawn(async move { cache.call().await })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            start.elapsed()
        });
        max.fetch_max(fetches.load(Ordering::SeqCst), Ordering::SeqCst);
        elapsed
    }

    /// The herd benchmark `name` on caches from `make`.
    fn bench_herd<C: Call>(
        g: &mut BenchmarkGroup<'_, WallTime>,
        rt: &Runtime,
        name: &str,
        make: impl Fn() -> (C, Arc<AtomicUsize>),
        max: &AtomicUsize,
    ) {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run_herd(rt, &make, max)).sum())
        });
    }

    let make_ours = || {
        let p = ours(system(), upstream);
        let f = Arc::clone(&p.fetcher().fetches);
        (p, f)
    };
    bench_herd(&mut g, rt, "partner-auth", make_ours, &counts.ours);
    let make_mutex = || {
        let m = mutex(system(), upstream);
        let f = Arc::clone(&m.upstream.fetches);
        (m, f)
    };
    bench_herd(&mut g, rt, "mutex_baseline", make_mutex, &counts.mutex);
    let make_rwlock = || {
        let r = rwlock(system(), upstream);
        let f = Arc::clone(&r.upstream.fetches);
        (r, f)
    };
    bench_herd(&mut g, rt, "rwlock_baseline", make_rwlock, &counts.rwlock);
    g.finish();
}

/// Caller latencies while a 200 ms refresh runs: `TASKS` tasks call for 400 ms of real time after
/// the clock is moved into the refresh window. Returns every latency in nanoseconds, sorted.
fn soft_window_latencies<C: Call>(rt: &Runtime, cache: &Arc<C>, clock: &ManualClock) -> Vec<u64> {
    // Token issued at t0 for an hour; 58 minutes later it is inside the 5-minute margin.
    clock.advance(Duration::from_secs(58 * 60));
    let mut all = rt.block_on(async move {
        let stop = Instant::now() + Duration::from_millis(400);
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let cache = Arc::clone(cache);
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    while Instant::now() < stop {
                        let s = Instant::now();
                        cache.call().await;
                        lat.push(s.elapsed().as_nanos() as u64);
                        tokio::task::yield_now().await;
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    all.sort_unstable();
    all
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn main() {
    let mut c = Criterion::default()
        .output_directory(&target_dir().join("criterion"))
        .configure_from_args();
    let rt = runtime(2);
    let counts = HerdCounts::default();

    hit_latency(&mut c, &rt);
    contention(&mut c, &rt);
    herd(&mut c, &rt, &counts);

    // Soft-window caller latency, ours and the mutex baseline (whose callers queue behind the
    // refresh it does under its lock).
    let refresh = Duration::from_millis(200);
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let clock = ManualClock::new(t0);
    let p = Arc::new(ours(Arc::new(clock.clone()), refresh));
    rt.block_on(p.get()).unwrap();
    let ours_lat = soft_window_latencies(&rt, &p, &clock);
    let ours_refreshes = p.fetcher().fetches.load(Ordering::SeqCst) - 1;
    let clock = ManualClock::new(t0);
    let m = Arc::new(mutex(Arc::new(clock.clone()), refresh));
    rt.block_on(m.get());
    let mutex_lat = soft_window_latencies(&rt, &m, &clock);

    c.final_summary();

    let mut r = String::new();
    let _ = writeln!(r, "# Benchmarks\n");
    let _ = writeln!(
        r,
        "Made by `cargo xtask bench` (criterion; `crates/partner-auth-benches/benches/cache.rs`) on a \
         {}-core machine; every figure below comes from the same run. Criterion figures are \
         medians.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(r, "## Cache hit latency (one task, token fresh)\n");
    let _ = writeln!(
        r,
        "Each call's token is dropped as a caller's would be; the futures are polled once, \
         inline. The floor is what any cache of one token must do at least: an `ArcSwap` load, \
         a clock read (`SystemTime::now()`), a comparison and an `Arc` clone.\n"
    );
    let _ = writeln!(
        r,
        "| contender | median per call | vs floor |\n| --- | --- | --- |"
    );
    let floor = median("hit", Contender::Floor.id());
    for contender in Contender::ALL {
        let v = median("hit", contender.id());
        let _ = writeln!(
            r,
            "| {} | {} | {} |",
            contender.name(),
            v.map_or("n/a".into(), fmt_ns),
            match (v, floor) {
                (Some(v), Some(f)) => format!("{:.2}x", v / f),
                _ => "n/a".into(),
            }
        );
    }
    let _ = writeln!(
        r,
        "\nTargets: `get()` at most 0.5x the floor; `Arc<dyn TokenProvider>::get()` at most 0.6x \
         the floor and allocation-free (`crates/token-provider/tests/hit_alloc.rs` counts the \
         bytes: none in 1,000 hits)."
    );

    let _ = writeln!(
        r,
        "\n## Throughput under contention (2 worker threads, {TASKS} tasks calling the cache)\n"
    );
    let _ = writeln!(
        r,
        "| cache | median time per call (aggregate) | calls per second | vs mutex |\n| --- | --- | --- | --- |"
    );
    let mutex_c = median("contention", "mutex_baseline");
    for (name, id) in [
        ("partner-auth `get()`", "partner-auth_get"),
        (
            "partner-auth `Arc<dyn TokenProvider>::get()`",
            "partner-auth_dyn_get",
        ),
        (
            "partner-auth `Arc<dyn TokenProvider>::token()` (boxed future)",
            "partner-auth_dyn_token",
        ),
        ("`tokio::sync::Mutex<Option<token>>`", "mutex_baseline"),
        ("double-checked `tokio::sync::RwLock`", "rwlock_baseline"),
    ] {
        let v = median("contention", id);
        let _ = writeln!(
            r,
            "| {name} | {} | {} | {} |",
            v.map_or("n/a".into(), fmt_ns),
            v.map_or("n/a".into(), |ns| format!("{:.1} M", 1e3 / ns)),
            match (v, mutex_c) {
                (Some(v), Some(m)) => format!("{:.1}x", m / v),
                _ => "n/a".into(),
            }
        );
    }
    let _ = writeln!(
        r,
        "\nTarget: at least 8x the mutex baseline, for `get()` and through the trait object."
    );

    let _ = writeln!(
        r,
        "\n## Herd: {HERD} concurrent callers on an empty cache, 50 ms upstream\n"
    );
    let _ = writeln!(
        r,
        "| cache | upstream fetches | median wall time until all have a token |\n| --- | --- | --- |"
    );
    for (name, id, n) in [
        ("partner-auth", "partner-auth", &counts.ours),
        (
            "`tokio::sync::Mutex<Option<token>>`",
            "mutex_baseline",
            &counts.mutex,
        ),
        (
            "double-checked `tokio::sync::RwLock`",
            "rwlock_baseline",
            &counts.rwlock,
        ),
    ] {
        let _ = writeln!(
            r,
            "| {name} | {} | {} |",
            n.load(Ordering::SeqCst),
            median("herd", id).map_or("n/a".into(), fmt_ns)
        );
    }
    let _ = writeln!(
        r,
        "\nTarget: exactly 1 upstream fetch (the largest count over every herd criterion ran)."
    );

    let _ = writeln!(
        r,
        "\n## Caller latency while a 200 ms refresh is under way (soft window)\n"
    );
    let _ = writeln!(
        r,
        "{TASKS} tasks call for 400 ms of real time right after the clock enters the refresh \
         window; every call's latency is recorded.\n"
    );
    let _ = writeln!(
        r,
        "| cache | calls | p50 | p99 | max |\n| --- | --- | --- | --- | --- |"
    );
    for (name, lat) in [
        ("partner-auth", &ours_lat),
        ("`tokio::sync::Mutex<Option<token>>`", &mutex_lat),
    ] {
        let _ = writeln!(
            r,
            "| {name} | {} | {} | {} | {} |",
            lat.len(),
            fmt_ns(pct(lat, 0.5) as f64),
            fmt_ns(pct(lat, 0.99) as f64),
            fmt_ns(*lat.last().unwrap() as f64)
        );
    }
    let _ = writeln!(
        r,
        "\nTarget: p99 under 1 ms (no caller waits for the refresh). Background refreshes started: \
         {ours_refreshes}."
    );
    write_report("bench-report.md", &r);
}
