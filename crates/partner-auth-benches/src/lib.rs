//! The workspace's benchmarks, in one crate so they share their helpers and their baselines
//! (moka, dashmap) stay out of the published crates:
//!
//! - `benches/cache.rs`: one token's cache against the caches users hand-roll;
//! - `benches/keyed.rs`: many principals (memory, per-request cost, churn) against `DashMap` and
//!   `moka`;
//! - `benches/cold_start.rs`: a cold start over many tenants against the emulator's rate limit;
//! - `benches/fleet.rs`: the Redis store's round trips and fetches per expiry, and its hit.
//!
//! Run them with `cargo xtask bench`, which writes their sections into `BENCHMARKS.md`.

pub mod one_token;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aurora_solar_auth::{KeyedConfig, PartnerApp, RateLimit};
use partner_auth_emulator::{
    DEFAULT_AURORA_SOLAR_APPLICATION_ID, DEFAULT_AURORA_SOLAR_APPLICATION_KEY, Emulator,
    RunningEmulator,
};
use tokio::runtime::Runtime;
use tokio::time::Instant;

/// The workspace's target directory, where criterion and the reports write.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// The median criterion measured for `group/id`, in ns.
pub fn median(group: &str, id: &str) -> Option<f64> {
    let path = target_dir()
        .join("criterion")
        .join(group)
        .join(id)
        .join("new/estimates.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// Writes a benchmark's section of the report to `target/<name>`.
pub fn write_report(name: &str, report: &str) {
    let out = target_dir().join(name);
    std::fs::write(&out, report).expect("write the report");
    eprintln!("report written to {}", out.display());
}

/// Whether `valgrind` is installed (the instruction counts need it).
pub fn valgrind_installed() -> bool {
    Command::new("valgrind").arg("--version").output().is_ok()
}

/// The instructions callgrind counts over a run of `exe` with `args` (and callgrind given
/// `options` too, such as `--toggle-collect=<function>` to count only inside that function):
/// the largest count it reports, the process's own (a process it forks is reported apart).
pub fn callgrind_instructions(exe: &Path, options: &[&str], args: &[&str]) -> u64 {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .args(options)
        .arg(exe)
        .args(args)
        .output()
        .expect("valgrind runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "callgrind failed: {stderr}");
    stderr
        .lines()
        .filter_map(|line| line.split_once("Collected :"))
        .filter_map(|(_, n)| n.trim().parse().ok())
        .max()
        .unwrap_or_else(|| panic!("no instruction count in callgrind's output: {stderr}"))
}

/// An emulator serving `tenants` (each Aurora Solar key limited to `limit` = (requests,
/// window) when given), and a partner app on it paced by `pace`, its map bounded by `keyed`.
pub async fn emulated_partner_app(
    tenants: &[String],
    limit: Option<(u32, std::time::Duration)>,
    pace: Option<RateLimit>,
    keyed: KeyedConfig,
) -> (PartnerApp, RunningEmulator) {
    let mut emulator = Emulator::builder().aurora_solar_tenants(tenants.iter().cloned());
    if let Some((requests, window)) = limit {
        emulator = emulator.aurora_solar_rate_limit(requests, window);
    }
    let emulator = emulator.start().await.expect("the emulator starts");
    let app = PartnerApp::builder()
        .base_url(emulator.aurora_solar_base())
        .application_id(DEFAULT_AURORA_SOLAR_APPLICATION_ID)
        .application_key(DEFAULT_AURORA_SOLAR_APPLICATION_KEY)
        .rate_limit(pace)
        .keyed(keyed)
        .build()
        .expect("a partner app on the emulator");
    (app, emulator)
}

/// `tasks` tasks spawned on `rt` share `iters` calls: task `t` makes its share `n` as
/// `work(t, n)`. Returns the wall time from before the first spawn to the last task's end,
/// scaled to `iters` calls (the shares are rounded up).
pub fn hammer_tasks<F, Fut>(rt: &Runtime, tasks: usize, iters: u64, work: F) -> Duration
where
    F: Fn(usize, u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let per_task = iters.div_ceil(tasks as u64);
    rt.block_on(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|task| tokio::spawn(work(task, per_task)))
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        start
            .elapsed()
            .mul_f64(iters as f64 / (per_task * tasks as u64) as f64)
    })
}
