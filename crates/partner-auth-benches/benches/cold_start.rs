//! A cold start over 2,000 Aurora Solar tenants against the emulator's per-key rate limit, run
//! 60 times faster than the real one (90 requests per second instead of per minute, so it takes
//! about 23 s instead of 23 minutes): every tenant asked for at once, the partner app pacing
//! its application key to the same rate.
//!
//! Writes `target/bench-cold-start.md`; `cargo xtask bench` puts it into BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use aurora_solar_auth::{PartnerApp, RateLimit};
use partner_auth_emulator::{
    DEFAULT_AURORA_SOLAR_APPLICATION_ID, DEFAULT_AURORA_SOLAR_APPLICATION_KEY, Emulator, Endpoint,
};
use tokio::time::Instant;

const TENANTS: usize = 2_000;
const REQUESTS: u32 = 90;
const WINDOW: Duration = Duration::from_secs(1);

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Criterion's harness flags (`--bench`) are accepted and ignored: this runs once.
    let ids: Vec<String> = (0..TENANTS).map(|i| format!("tenant-{i:05}")).collect();
    let emulator = Emulator::builder()
        .aurora_solar_tenants(ids.iter().cloned())
        .aurora_solar_rate_limit(REQUESTS, WINDOW)
        .start()
        .await
        .unwrap();
    let app = PartnerApp::builder()
        .base_url(emulator.aurora_solar_base())
        .application_id(DEFAULT_AURORA_SOLAR_APPLICATION_ID)
        .application_key(DEFAULT_AURORA_SOLAR_APPLICATION_KEY)
        .rate_limit(RateLimit::new(REQUESTS, WINDOW).unwrap())
        .build()
        .unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let tenant = app.tenant(id).unwrap();
            tokio::spawn(async move { tenant.get().await.is_ok() })
        })
        .collect();
    let mut served = 0;
    for t in tasks {
        served += usize::from(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    // The fastest any client can go under a window limit: the limit's worth in each window, so
    // the last request goes out at the start of window `ceil(TENANTS / REQUESTS) - 1`.
    let least = WINDOW * (TENANTS.div_ceil(REQUESTS as usize) as u32 - 1);
    let mut r = String::new();
    let _ = writeln!(
        r,
        "## Cold start over {TENANTS} tenants (`crates/partner-auth-benches/benches/cold_start.rs`)\n\n\
         Every tenant asked for at once; the emulator limits the application key to {REQUESTS} \
         requests in any {}-second window (Aurora Solar's 90 a minute, run 60 times faster) and \
         answers 429 beyond; the partner app paces the key to the same rate.\n",
        WINDOW.as_secs()
    );
    let _ = writeln!(
        r,
        "| tenants served | `create_token` requests | 429s | wall time | least possible ({REQUESTS} in each window) | over the least |\n| --- | --- | --- | --- | --- | --- |"
    );
    let _ = writeln!(
        r,
        "| {served} / {TENANTS} | {} | {} | {:.2} s | {:.2} s | {:+.1}% |",
        emulator.request_count(Endpoint::AuroraSolarCreateToken),
        emulator.rate_limited(),
        elapsed.as_secs_f64(),
        least.as_secs_f64(),
        (elapsed.as_secs_f64() / least.as_secs_f64() - 1.0) * 100.0
    );
    let _ = writeln!(
        r,
        "\nTargets: zero 429s, wall time within 10% of the least possible.\n"
    );
    let out = target_dir().join("bench-cold-start.md");
    std::fs::write(&out, r).expect("write the report");
    eprintln!("report written to {}", out.display());
}
