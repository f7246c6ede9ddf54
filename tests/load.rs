//! Load: thousands of tasks calling `token()` on every provider kind through several expiry
//! cycles against the emulator, with faults injected on the token endpoints. Loopback only,
//! bounded in count and time; it reports requests made, errors seen by callers and p99 latency,
//! and asserts that no caller ever got an expired token (by the shared clock) and that the
//! upstream saw one fetch per cycle plus exactly the retries the injected faults explain.
//!
//! The bounded form runs in the normal suite; the full form (10,000 tasks, 6 cycles) is ignored
//! by default:
//!
//! ```text
//! cargo test --release -p partner-auth --test load -- --ignored --nocapture
//! ```
//!
//! Each cycle moves the shared `ManualClock` (the providers' and the emulator's) either past the
//! cached token's `expires_at` (every task waits on one fetch) or into its refresh window (every
//! task keeps getting the still-valid token while one background refresh runs), injects the
//! cycle's fault, and lets every task call `token()` a few times. The clock stands still while
//! the tasks call, so "expired" is decided exactly.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::token_endpoint;
use partner_auth::{
    CacheConfig, Clock, HttpClient, ProviderKind, ProviderOptions, TokenProvider, from_lookup,
};
use partner_auth_emulator::{Emulator, Fault};
use tokio::sync::Barrier;

/// One expiry cycle: where the clock goes, and the fault the token endpoint meets.
struct Cycle {
    /// `true`: into the refresh window (ten seconds before expiry); `false`: past expiry.
    soft: bool,
    fault: Option<(Fault, u32)>,
    /// Requests the fault adds to the one fetch (the retries it causes).
    extra: usize,
    /// Whether the cycle's fetch succeeds (its fault is within the retry budget).
    succeeds: bool,
}

impl Cycle {
    fn new(soft: bool, fault: Option<(Fault, u32)>, extra: usize, succeeds: bool) -> Self {
        Self {
            soft,
            fault,
            extra,
            succeeds,
        }
    }
}

fn cycles(n: usize) -> Vec<Cycle> {
    let rate_limited = Fault::RateLimited {
        retry_after: Some(1),
    };
    // (soft, fault and how many requests it meets, requests it adds, the fetch succeeds)
    let all = vec![
        // 503 twice: the third attempt succeeds.
        Cycle::new(false, Some((Fault::Status(503), 2)), 2, true),
        // A reset mid-body in the background refresh.
        Cycle::new(true, Some((Fault::ResetConnection, 1)), 1, true),
        // 429 with Retry-After: 1, then success.
        Cycle::new(false, Some((rate_limited, 1)), 1, true),
        // The background refresh fails outright (503 on every attempt): callers keep the
        // still-valid token; the next cycle's fetch makes up for it.
        Cycle::new(true, Some((Fault::Status(503), 3)), 2, false),
        // A hang past the timeout, then success.
        Cycle::new(false, Some((Fault::Hang, 1)), 1, true),
        // No fault.
        Cycle::new(false, None, 0, true),
    ];
    all.into_iter().take(n).collect()
}

/// Kinds whose token request spends what it sends (Aerion's rotating refresh grant, the Client
/// SDK's `generate_token`): it is never repeated once it may have reached the provider, so the
/// cycles' faults, which rely on retries, are not injected for them (the fault matrix shows
/// what those faults do to them).
fn spends(kind: ProviderKind) -> bool {
    matches!(kind, ProviderKind::Aerion | ProviderKind::AuroraSolarSdk)
}

fn http() -> HttpClient {
    token_provider::testing::fast_http(Duration::from_millis(500))
}

#[derive(Debug)]
struct Report {
    kind: ProviderKind,
    tasks: usize,
    cycles: usize,
    calls: usize,
    requests: usize,
    expected_requests: usize,
    errors: usize,
    expired: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    elapsed: Duration,
}

async fn run(kind: ProviderKind, tasks: usize, n_cycles: usize, calls_per_phase: usize) -> Report {
    let started = tokio::time::Instant::now();
    let clock = token_provider::testing::fixed_clock();
    let emulator = Emulator::builder()
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .unwrap();
    let vars: HashMap<String, String> = emulator
        .env_vars()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let options = ProviderOptions::new()
        .http(http())
        .clock(Arc::new(clock.clone()))
        .cache(
            CacheConfig::new()
                .backoff(Duration::from_secs(1), Duration::from_secs(2))
                .load_timeout(Duration::from_secs(20)),
        );
    let provider: Arc<dyn TokenProvider> =
        from_lookup(|n| vars.get(n).cloned(), kind, &options).unwrap();
    let endpoint = token_endpoint(kind);

    // The first fetch, before the cycles: the baseline token.
    let mut current = provider.token().await.unwrap();
    let cycles = cycles(n_cycles);
    let mut expected_requests = 1;

    let errors = Arc::new(AtomicUsize::new(0));
    let expired = Arc::new(AtomicUsize::new(0));
    let mut latencies: Vec<Duration> = Vec::with_capacity(tasks * n_cycles * calls_per_phase);
    let mut calls = 0;
    for cycle in &cycles {
        let expires_at = current.expires_at().expect("emulator tokens expire");
        if cycle.soft {
            clock.set(expires_at - Duration::from_secs(10));
        } else {
            clock.set(expires_at + Duration::from_secs(1));
        }
        let fault = cycle.fault.as_ref().filter(|_| !spends(kind));
        if let Some((fault, times)) = fault {
            emulator.inject(endpoint, fault.clone(), *times);
        }
        expected_requests += 1 + if fault.is_some() { cycle.extra } else { 0 };
        let succeeds = cycle.succeeds || fault.is_none();

        let start = Arc::new(Barrier::new(tasks));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..tasks {
            let (provider, clock, errors, expired, start) = (
                Arc::clone(&provider),
                clock.clone(),
                Arc::clone(&errors),
                Arc::clone(&expired),
                Arc::clone(&start),
            );
            set.spawn(async move {
                start.wait().await;
                let mut lat = Vec::with_capacity(calls_per_phase);
                for _ in 0..calls_per_phase {
                    let t0 = tokio::time::Instant::now();
                    let result = provider.token().await;
                    lat.push(t0.elapsed());
                    match result {
                        Ok(t) if t.is_expired(clock.now()) => {
                            expired.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tokio::task::yield_now().await;
                }
                lat
            });
        }
        while let Some(done) = set.join_next().await {
            let lat = done.unwrap();
            calls += lat.len();
            latencies.extend(lat);
        }
        // Let a background refresh (soft window) finish before the clock moves again.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while emulator.request_count(endpoint) < expected_requests
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let next = provider.token().await.unwrap();
        if succeeds {
            assert_ne!(
                next, current,
                "{kind}: the cycle's fetch did not replace the token"
            );
        } else {
            assert_eq!(
                next, current,
                "{kind}: a failed refresh threw the valid token away"
            );
        }
        current = next;
    }
    let requests = emulator.request_count(endpoint);
    emulator.shutdown().await;

    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Report {
        kind,
        tasks,
        cycles: n_cycles,
        calls,
        requests,
        expected_requests,
        errors: errors.load(Ordering::Relaxed),
        expired: expired.load(Ordering::Relaxed),
        p50: pct(0.50),
        p99: pct(0.99),
        max: *latencies.last().unwrap(),
        elapsed: started.elapsed(),
    }
}

fn check(report: &Report) {
    println!(
        "{:<16} tasks {:>6}  cycles {}  calls {:>7}  token requests {:>3} (expected {:>3})  caller errors {}  expired {}  p50 {:>9.3?}  p99 {:>9.3?}  max {:>9.3?}  wall {:.2?}",
        report.kind.as_str(),
        report.tasks,
        report.cycles,
        report.calls,
        report.requests,
        report.expected_requests,
        report.errors,
        report.expired,
        report.p50,
        report.p99,
        report.max,
        report.elapsed,
    );
    assert_eq!(report.expired, 0, "{report:?}");
    assert_eq!(report.requests, report.expected_requests, "{report:?}");
    // Every injected fault is within the retry budget or hits a background refresh, so no
    // caller ever sees an error.
    assert_eq!(report.errors, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_bounded() {
    for kind in ProviderKind::ALL {
        check(&run(*kind, 2_000, 3, 2).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the full load run: cargo test --release -p partner-auth --test load -- --ignored --nocapture"]
async fn load_full() {
    for kind in ProviderKind::ALL {
        check(&run(*kind, 10_000, 6, 3).await);
    }
}
