//! The simulation as a test: 200 seeds must keep every promise, a seed must replay exactly, and
//! the nemesis must really inject every class of fault (a sim that injects nothing passes
//! everything).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use partner_auth_sim::{Fault, Faults, Options, Outcome, Promises, run_seed};

/// Runs `seeds` on two threads; the outcomes in seed order.
fn run(seeds: std::ops::Range<u64>, options: Options) -> Vec<Outcome> {
    let next = AtomicU64::new(seeds.start);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        return;
                    }
                    let outcome = run_seed(seed, options);
                    outcomes.lock().unwrap().push(outcome);
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by_key(|o| o.seed);
    outcomes
}

/// Under the fault classes the cache keeps every promise under today ([`Faults::kept`]); the
/// others are counted in RELIABILITY.md.
#[test]
fn two_hundred_seeds_keep_every_promise() {
    let options = Options {
        faults: Faults::kept(),
        ..Options::default()
    };
    let outcomes = run(0..200, options);
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.violation.is_some()).collect();
    if let Some(first) = failed.first() {
        let tail: Vec<String> = first.trace.tail(40).iter().map(|l| l.to_string()).collect();
        panic!(
            "{} of 200 seeds broke a promise; the first, seed {}: {}\n\nthe end of its \
             trace:\n{}\n\nreplay it: cargo xtask sim --seed {}",
            failed.len(),
            first.seed,
            first.violation.as_ref().unwrap(),
            tail.join("\n"),
            first.seed
        );
    }
}

#[test]
fn a_seed_replays_exactly() {
    // Full-length runs, so the replay covers the settling and the probe too.
    let options = Options {
        faults: Faults::all(),
        promises: Promises::none(),
    };
    for seed in 0..20 {
        let first = run_seed(seed, options);
        let again = run_seed(seed, options);
        assert_eq!(first.violations, again.violations, "seed {seed}");
        if first.trace != again.trace {
            let at = first
                .trace
                .lines()
                .iter()
                .zip(again.trace.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(first.trace.lines().len().min(again.trace.lines().len()));
            panic!(
                "seed {seed} did not replay: line {at} was\n  {}\nthen\n  {}",
                first
                    .trace
                    .lines()
                    .get(at)
                    .map_or("(none)".into(), |l| l.to_string()),
                again
                    .trace
                    .lines()
                    .get(at)
                    .map_or("(none)".into(), |l| l.to_string())
            );
        }
    }
}

/// What a trace shows when each class of fault was injected.
fn sign(fault: Fault) -> &'static str {
    match fault {
        Fault::LostReply => "the reply was lost",
        Fault::LostAnswer => "[LostAnswer",
        Fault::ProviderError => "[ProviderError",
        Fault::Slow => "[Slow]",
        Fault::Hang => "[Hang",
        Fault::Panic => "[Panic",
        Fault::FlushAll => "FLUSHALL",
        Fault::Restart => "restarts without persistence",
        Fault::Evict => "evicts the",
        Fault::Pause => "pauses r",
        Fault::Kill => "kills r",
        Fault::Revoke => "the provider revokes family",
    }
}

#[test]
fn every_class_of_fault_is_injected_and_only_when_asked() {
    let everything = Options {
        faults: Faults::all(),
        promises: Promises::none(),
    };
    let traces: Vec<String> = run(0..40, everything)
        .iter()
        .map(|o| o.trace.to_string())
        .collect();
    for fault in Fault::ALL {
        let seeds = traces.iter().filter(|t| t.contains(sign(fault))).count();
        assert!(
            seeds >= 3,
            "{} was injected in {seeds} of 40 seeds",
            fault.name()
        );
    }
    let calm = Options {
        faults: Faults::none(),
        promises: Promises::none(),
    };
    for outcome in run(0..10, calm) {
        let trace = outcome.trace.to_string();
        for fault in Fault::ALL {
            assert!(
                !trace.contains(sign(fault)),
                "seed {} injected {} with no faults asked for",
                outcome.seed,
                fault.name()
            );
        }
    }
}
