//! Many principals: the keyed cache against `DashMap<String, AccessToken>` (unbounded) and a
//! bounded `moka::sync::Cache<String, AccessToken>`, measured in one run.
//!
//! - heap per warm principal at 10,000 principals (the `cap` allocator counts live bytes);
//! - per-request cost of "look up the principal, get its fresh token" from 2 threads x 64 tasks
//!   (criterion), and the same through `PartnerApp::tenant(id)?.get()` against the emulator;
//! - 1,000,000 distinct principals through the default bound: the peak heap, the entries kept,
//!   and an entry with a fetch in flight throughout (it must survive).
//!
//! Writes `target/bench-keyed.md`; `cargo xtask bench` puts it into BENCHMARKS.md.

use std::fmt::Write as _;

use aurora_solar_auth::PartnerApp;
use partner_auth_benches::{
    callgrind_instructions, emulated_partner_app, hammer_tasks, median, target_dir,
    valgrind_installed, write_report,
};
use partner_auth_emulator::RunningEmulator;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cap::Cap;
use criterion::Criterion;
use dashmap::DashMap;
use token_provider::{
    AccessToken, CacheConfig, Error, KeyedCache, KeyedConfig, KeyedFetch, SharedClock, TokenState,
    async_trait, system_clock,
};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio::time::Instant;

#[global_allocator]
static ALLOCATOR: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

const PRINCIPALS: usize = 10_000;
/// The bound of the bounded maps: a quarter above the working set (each map divides its bound
/// among shards, so a map bounded at exactly the working set keeps slightly less of it).
const BOUND: usize = PRINCIPALS + PRINCIPALS / 4;
const TASKS: usize = 64;
const CHURN: usize = 1_000_000;
const LIFETIME: Duration = Duration::from_secs(13 * 3600);

/// A tenant id shaped like Aurora's (a UUID, 36 characters).
fn tenant(i: usize) -> String {
    format!("{i:08x}-5717-4562-b3fc-2c963f66afa6")
}

/// A token shaped like an Aurora temporary key.
fn key_text(n: usize) -> String {
    format!("tk_test_{n:048x}")
}

/// Mints Aurora-shaped keys for any tenant at once; the tenant `slow` waits for `gate`.
#[derive(Debug)]
struct Mint {
    clock: SharedClock,
    minted: AtomicUsize,
    gate: Notify,
}

#[async_trait]
impl KeyedFetch for Mint {
    type Principal = Arc<str>;

    async fn fetch(
        &self,
        tenant: &Arc<str>,
        _previous: Option<&TokenState>,
    ) -> Result<TokenState, Error> {
        if tenant.as_ref() == "slow" {
            self.gate.notified().await;
        }
        let n = self.minted.fetch_add(1, Ordering::Relaxed);
        Ok(AccessToken::builder(key_text(n))
            .expires_in(self.clock.now(), LIFETIME)
            .build()
            .into())
    }
}

fn keyed(config: KeyedConfig) -> KeyedCache<Mint> {
    let mint = Mint {
        clock: system_clock(),
        minted: AtomicUsize::new(0),
        gate: Notify::new(),
    };
    // The churn's waiting callers wait as long as the churn takes, not the default minute.
    let cache = CacheConfig::default().load_timeout(Duration::from_secs(3600));
    KeyedCache::new(mint, cache, config)
}

fn token(n: usize) -> AccessToken {
    AccessToken::builder(key_text(n))
        .expires_in(system_clock().now(), LIFETIME)
        .build()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Heap bytes `build` leaves allocated, per principal.
fn heap_per_principal<T>(build: impl FnOnce() -> T) -> (f64, T) {
    let before = ALLOCATOR.allocated();
    let kept = build();
    let after = ALLOCATOR.allocated();
    (
        (after.saturating_sub(before)) as f64 / PRINCIPALS as f64,
        kept,
    )
}

struct Memory {
    ours: f64,
    empty: usize,
    dashmap: f64,
    moka: f64,
}

fn memory(rt: &Runtime, keys: &[String]) -> Memory {
    let before = ALLOCATOR.allocated();
    let empty_cache = keyed(KeyedConfig::new().max_entries(BOUND));
    let empty = ALLOCATOR.allocated() - before;
    drop(empty_cache);

    let (ours, cache) = heap_per_principal(|| {
        let cache = keyed(KeyedConfig::new().max_entries(BOUND));
        rt.block_on(async {
            for k in keys {
                cache.get_or_insert_with(k, |k| k).get().await.unwrap();
            }
        });
        cache
    });
    assert_eq!(cache.len(), PRINCIPALS);
    drop(cache);

    let (dashmap, map) = heap_per_principal(|| {
        let map = DashMap::new();
        for (n, k) in keys.iter().enumerate() {
            map.insert(k.clone(), token(n));
        }
        map
    });
    drop(map);

    let (moka, cache) = heap_per_principal(|| {
        let cache = moka::sync::Cache::new(BOUND as u64);
        for (n, k) in keys.iter().enumerate() {
            cache.insert(k.clone(), token(n));
        }
        cache.run_pending_tasks();
        assert_eq!(cache.entry_count(), PRINCIPALS as u64);
        cache
    });
    drop(cache);
    Memory {
        ours,
        empty,
        dashmap,
        moka,
    }
}

/// Each of 64 tasks looks up principals in its own order and takes their tokens.
fn hammer<F, Fut>(rt: &Runtime, iters: u64, call: F) -> Duration
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    hammer_tasks(rt, TASKS, iters, |task, calls| {
        let call = call.clone();
        async move {
            let mut i = task * 7919;
            for _ in 0..calls {
                i = (i + 7919) % PRINCIPALS;
                call(i).await;
            }
        }
    })
}

/// The contenders of the per-request measures, every principal of `keys` warm in each.
struct Contenders {
    cache: KeyedCache<Mint>,
    map: Arc<DashMap<String, AccessToken>>,
    moka: moka::sync::Cache<String, AccessToken>,
    app: PartnerApp,
    _emulator: RunningEmulator,
}

/// The contenders, the bounded ones bounded at `bound`.
fn contenders(rt: &Runtime, keys: &[String], bound: usize) -> Contenders {
    let cache = keyed(KeyedConfig::new().max_entries(bound));
    rt.block_on(async {
        for k in keys {
            cache.get_or_insert_with(k, |k| k).get().await.unwrap();
        }
    });
    let map = Arc::new(DashMap::new());
    let moka = moka::sync::Cache::new(bound as u64);
    for (n, k) in keys.iter().enumerate() {
        map.insert(k.clone(), token(n));
        moka.insert(k.clone(), token(n));
    }
    moka.run_pending_tasks();

    // PartnerApp against the emulator, every tenant warm (unpaced, to warm them all at once).
    let (app, _emulator) = rt.block_on(async {
        let keyed = KeyedConfig::new().max_entries(bound);
        let (app, emulator) = emulated_partner_app(keys, None, None, keyed).await;
        for k in keys {
            app.tenant(k).unwrap().get().await.unwrap();
        }
        (app, emulator)
    });
    Contenders {
        cache,
        map,
        moka,
        app,
        _emulator,
    }
}

/// The contenders' ids (criterion's, and `--requests`').
const KEYED: &str = "partner-auth_keyed";
const APP: &str = "partner-auth_partner_app";
const DASHMAP: &str = "dashmap_baseline";
const MOKA: &str = "moka_baseline";

/// Principals warm for the instruction counts: few, so the set-up (each warmed over HTTP)
/// stays short under callgrind; a lookup's instructions do not depend on the map's size.
const COUNTED_PRINCIPALS: usize = 100;
const COUNTED_REQUESTS: usize = 100_000;

/// `n` requests of contender `id`, one after another on one thread (what callgrind counts).
fn requests(id: &str, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let keys: Vec<String> = (0..COUNTED_PRINCIPALS).map(tenant).collect();
    // Ten times the principals: a bound a little above them, divided among the map's shards,
    // could leave a shard too small for the keys that hash to it, and evict one.
    let c = contenders(&rt, &keys, 10 * COUNTED_PRINCIPALS);
    counted_requests(&rt, &c, &keys, id, n);
}

/// The requests callgrind counts (`--toggle-collect`): the set-up before them (warming
/// principals over HTTP) varies from run to run.
#[inline(never)]
fn counted_requests(rt: &Runtime, c: &Contenders, keys: &[String], id: &str, n: usize) {
    rt.block_on(async {
        for i in 0..n {
            let key = &keys[i % keys.len()];
            let token = match id {
                KEYED => c.cache.get(key).unwrap().get().await.unwrap(),
                APP => c.app.tenant(key).unwrap().get().await.unwrap(),
                DASHMAP => c.map.get(key).unwrap().clone(),
                MOKA => c.moka.get(key).unwrap(),
                _ => panic!("no contender {id}"),
            };
            std::hint::black_box(token);
        }
    });
}

/// Instructions per request of each contender: callgrind's count over `2 n` requests less its
/// count over `n`, over `n` (the loop's own start excluded).
fn instructions() -> Option<Vec<(&'static str, f64)>> {
    if !valgrind_installed() {
        return None;
    }
    let exe = std::env::current_exe().expect("this benchmark's path");
    let count = |id: &str, n: usize| {
        callgrind_instructions(
            &exe,
            &["--toggle-collect=*counted_requests*"],
            &["--requests", id, &n.to_string()],
        ) as f64
    };
    let n = COUNTED_REQUESTS;
    Some(
        [KEYED, APP, DASHMAP, MOKA]
            .into_iter()
            .map(|id| (id, (count(id, 2 * n) - count(id, n)) / n as f64))
            .collect(),
    )
}

fn per_request(c: &mut Criterion, rt: &Runtime, keys: &Arc<Vec<String>>) {
    let Contenders {
        cache,
        map,
        moka,
        app,
        _emulator,
    } = contenders(rt, keys, BOUND);

    let mut g = c.benchmark_group("principals");
    g.bench_function(KEYED, |b| {
        b.iter_custom(|iters| {
            let (cache, keys) = (cache.clone(), Arc::clone(keys));
            hammer(rt, iters, move |i| {
                let found = cache.get(&keys[i]).unwrap();
                async move {
                    found.get().await.unwrap();
                }
            })
        })
    });
    g.bench_function(APP, |b| {
        b.iter_custom(|iters| {
            let (app, keys) = (app.clone(), Arc::clone(keys));
            hammer(rt, iters, move |i| {
                let tenant = app.tenant(&keys[i]).unwrap();
                async move {
                    tenant.get().await.unwrap();
                }
            })
        })
    });
    g.bench_function(DASHMAP, |b| {
        b.iter_custom(|iters| {
            let (map, keys) = (Arc::clone(&map), Arc::clone(keys));
            hammer(rt, iters, move |i| {
                let token = map.get(&keys[i]).unwrap().clone();
                async move {
                    drop(token);
                }
            })
        })
    });
    g.bench_function(MOKA, |b| {
        b.iter_custom(|iters| {
            let (moka, keys) = (moka.clone(), Arc::clone(keys));
            hammer(rt, iters, move |i| {
                let token = moka.get(&keys[i]).unwrap();
                async move {
                    drop(token);
                }
            })
        })
    });
    g.finish();
}

struct Churn {
    peak: usize,
    baseline: usize,
    kept: usize,
    slow_kept: bool,
    slow_fetches: usize,
    elapsed: Duration,
}

/// A million distinct principals through the default bound, with one principal's fetch in
/// flight (and its callers waiting) the whole time.
fn churn(rt: &Runtime) -> Churn {
    let cache = keyed(KeyedConfig::new());
    let baseline = ALLOCATOR.allocated();
    rt.block_on(async {
        let waiting: Vec<_> = (0..4)
            .map(|_| {
                let slow = cache.get_or_insert_with("slow", |k| k);
                tokio::spawn(async move { slow.get().await.unwrap() })
            })
            .collect();
        let started = Instant::now();
        let mut peak = 0;
        for i in 0..CHURN {
            let k = format!("churn-{i:07}");
            cache.get_or_insert_with(&k, |k| k).get().await.unwrap();
            if i % 1024 == 0 {
                peak = peak.max(ALLOCATOR.allocated());
            }
        }
        let elapsed = started.elapsed();
        let slow_kept = cache.get("slow").is_some();
        let before = cache.fetcher().minted.load(Ordering::Relaxed);
        cache.fetcher().gate.notify_one();
        for w in waiting {
            w.await.unwrap();
        }
        let slow = cache.get("slow").expect("the slow principal's entry");
        slow.get().await.unwrap();
        let slow_fetches = cache.fetcher().minted.load(Ordering::Relaxed) - before;
        Churn {
            peak: peak.saturating_sub(baseline),
            baseline,
            kept: cache.len(),
            slow_kept,
            slow_fetches,
            elapsed,
        }
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, id, n] = args.as_slice()
        && flag == "--requests"
    {
        requests(id, n.parse().expect("a number of requests"));
        return;
    }
    let mut c = Criterion::default()
        .output_directory(&target_dir().join("criterion"))
        .configure_from_args();
    let rt = runtime();
    let keys: Arc<Vec<String>> = Arc::new((0..PRINCIPALS).map(tenant).collect());

    let mem = memory(&rt, &keys);
    per_request(&mut c, &rt, &keys);
    let churn = churn(&rt);
    let counted = instructions();

    let ns = |id| median("principals", id).unwrap_or(f64::NAN);
    let (ours, app, dash, moka) = (ns(KEYED), ns(APP), ns(DASHMAP), ns(MOKA));
    let mut r = String::new();
    let _ = writeln!(
        r,
        "## Many principals (`cargo xtask bench`: `crates/partner-auth-benches/benches/keyed.rs`)\n\n\
         {PRINCIPALS} warm principals (Aurora-shaped: a 36-character tenant id, a 56-character \
         key) in maps bounded at {BOUND} (moka and ours); heap counted by the `cap` allocator; per-request cost from 2 worker threads x \
         {TASKS} tasks, each looking up principals in its own order, criterion medians.\n"
    );
    let _ = writeln!(
        r,
        "| | heap per warm principal (token included) | per request | vs DashMap |\n| --- | --- | --- | --- |"
    );
    let _ = writeln!(
        r,
        "| {} | {:.0} B | {ours:.1} ns | {:.2}x |",
        contender_name(KEYED),
        mem.ours,
        ours / dash
    );
    let _ = writeln!(
        r,
        "| {} | (as above: same map and entry) | {app:.1} ns | {:.2}x |",
        contender_name(APP),
        app / dash
    );
    let _ = writeln!(
        r,
        "| {} | {:.0} B | {moka:.1} ns | {:.2}x |",
        contender_name(MOKA),
        mem.moka,
        moka / dash
    );
    let _ = writeln!(
        r,
        "| {} | {:.0} B | {dash:.1} ns | 1x |",
        contender_name(DASHMAP),
        mem.dashmap
    );
    let _ = writeln!(
        r,
        "\nTargets: at most 512 B per principal; per request at most 1.5x the DashMap lookup and \
         ahead of moka. An empty keyed cache (what every principal shares: fetcher, \
         configuration, hit counter, map) is {} B, paid once.\n",
        mem.empty
    );
    let _ = writeln!(
        r,
        "{CHURN} distinct principals through the default bound (10,000) in {:.1} s, with one \
         principal's fetch in flight and 4 callers waiting on it throughout: peak heap {:.1} MiB \
         above the start ({:.1} MiB), {} entries kept at the end; the waited-on entry {}, and the \
         fetches made for it from its release on: {} (1: the one in flight, none again).\n",
        churn.elapsed.as_secs_f64(),
        churn.peak as f64 / 1_048_576.0,
        churn.baseline as f64 / 1_048_576.0,
        churn.kept,
        if churn.slow_kept {
            "was kept"
        } else {
            "WAS EVICTED"
        },
        churn.slow_fetches,
    );
    match counted {
        None => {
            let _ = writeln!(
                r,
                "Instructions per request: not counted (`valgrind` is not installed).\n"
            );
        }
        Some(counted) => {
            let _ = writeln!(
                r,
                "Instructions per request (callgrind, repeatable where time is not: \
                 `cargo bench -p partner-auth-benches --bench keyed` runs itself under \
                 `valgrind --tool=callgrind` making {COUNTED_REQUESTS} and then {} requests on \
                 one thread over {COUNTED_PRINCIPALS} warm principals; the difference over \
                 {COUNTED_REQUESTS}):\n",
                2 * COUNTED_REQUESTS
            );
            let dash = counted
                .iter()
                .find(|(id, _)| *id == DASHMAP)
                .map_or(f64::NAN, |(_, n)| *n);
            let _ = writeln!(
                r,
                "| | instructions per request | vs DashMap |\n| --- | --- | --- |"
            );
            for (id, n) in &counted {
                let _ = writeln!(r, "| {} | {n:.0} | {:.2}x |", contender_name(id), n / dash);
            }
            r.push('\n');
        }
    }
    write_report("bench-keyed.md", &r);
}

/// How the report names contender `id`.
fn contender_name(id: &str) -> &'static str {
    match id {
        KEYED => "partner-auth `KeyedCache::get(id)` + `get()`",
        APP => "partner-auth `PartnerApp::tenant(id)?.get()`",
        DASHMAP => "`DashMap<String, AccessToken>` (unbounded)",
        _ => "`moka::sync::Cache<String, AccessToken>` (bounded)",
    }
}
