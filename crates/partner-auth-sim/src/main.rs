//! `partner-auth-sim`: runs seeds of the simulation.
//!
//! ```text
//! partner-auth-sim --seeds N [--start S] [--jobs J] [--survey [--list] | --each]
//!                  [--faults LIST] [--promises LIST]
//! partner-auth-sim --seed S [--faults LIST] [--promises LIST]
//! ```
//!
//! `--seeds` runs seeds S..S+N (S defaults to 0) on J threads (default: every core) and prints
//! the first failing seed with its trace (exit 1), or a one-line summary. `--survey` runs them
//! all and counts the broken promises (`--list`: and prints each failing seed). `--each` runs
//! the seeds once per fault class, each class alone. `--seed` replays one seed with its full
//! trace.
//! `--faults` names the fault classes to inject, `--promises` the promises whose violation ends
//! a run (each `all`, the default, `none`, or a comma-separated list).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use partner_auth_sim::{Fault, Faults, Options, Outcome, Promise, Promises, Trace, run_seed};

struct Args {
    seeds: Option<u64>,
    start: u64,
    seed: Option<u64>,
    options: Options,
    jobs: usize,
    survey: bool,
    list: bool,
    each: bool,
}

fn usage() -> String {
    let faults: Vec<_> = Fault::ALL.iter().map(|f| f.name()).collect();
    let promises: Vec<_> = Promise::ALL.iter().map(|p| p.name()).collect();
    format!(
        "usage: partner-auth-sim --seeds N [--start S] [--jobs J] [--survey [--list] | --each] \
         [--faults LIST] [--promises LIST]\n\
         \x20      partner-auth-sim --seed S [--faults LIST] [--promises LIST]\n\n\
         fault classes (--faults): all, none, or a comma-separated list of: {}\n\
         promises that end a run (--promises): all, none, or a list of: {}",
        faults.join(", "),
        promises.join(", ")
    )
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        seeds: None,
        start: 0,
        seed: None,
        options: Options::default(),
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        survey: false,
        list: false,
        each: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |v: String, name: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: not a number: {v}"))
        };
        match arg.as_str() {
            "--seeds" => args.seeds = Some(number(value("--seeds")?, "--seeds")?),
            "--start" => args.start = number(value("--start")?, "--start")?,
            "--seed" => args.seed = Some(number(value("--seed")?, "--seed")?),
            "--faults" => args.options.faults = Faults::parse(&value("--faults")?)?,
            "--promises" => args.options.promises = Promises::parse(&value("--promises")?)?,
            "--jobs" => args.jobs = number(value("--jobs")?, "--jobs")?.max(1) as usize,
            "--survey" => args.survey = true,
            "--list" => args.list = true,
            "--each" => args.each = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.seeds.is_none() == args.seed.is_none() {
        return Err("give --seeds N or --seed S".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("partner-auth-sim: {e}");
            }
            eprintln!("{}", usage());
            return ExitCode::from(2);
        }
    };
    if let Some(seed) = args.seed {
        let outcome = run_seed(seed, args.options);
        print!("{}", outcome.trace);
        return verdict(&outcome);
    }
    let n = args.seeds.unwrap_or(0);
    if args.each {
        // Every fault class alone, one after another; the first failure ends the run.
        for fault in Fault::ALL {
            let options = Options {
                faults: Faults::only([fault]),
                ..args.options
            };
            #[allow(clippy::disallowed_methods)]
            let started = std::time::Instant::now();
            let outcomes = run_many(args.start, n, options, args.jobs, true);
            let code = report(&outcomes, args.start, n, options, started.elapsed());
            if code != ExitCode::SUCCESS {
                return code;
            }
        }
        return ExitCode::SUCCESS;
    }
    // The one wall-clock read: how long the seeds took, for the summary line.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let outcomes = run_many(args.start, n, args.options, args.jobs, !args.survey);
    let elapsed = started.elapsed();
    if args.survey {
        if args.list {
            for o in &outcomes {
                if let Some(v) = &o.violation {
                    println!("seed {}: {v}", o.seed);
                }
            }
        }
        return survey(&outcomes, elapsed);
    }
    report(&outcomes, args.start, n, args.options, elapsed)
}

/// The first failing seed with its trace, or a one-line summary.
fn report(
    outcomes: &[Outcome],
    start: u64,
    n: u64,
    options: Options,
    elapsed: Duration,
) -> ExitCode {
    match outcomes.iter().find(|o| o.violation.is_some()) {
        Some(failed) => {
            print!("{}", failed.trace);
            verdict(failed)
        }
        None => {
            let steps: u64 = outcomes.iter().map(|o| o.steps).sum();
            let grants: usize = outcomes.iter().map(|o| o.grants).sum();
            println!(
                "{n} seeds from {start} passed ({steps} steps, {grants} grants; faults {}, \
                 promises {}) in {:.1} s",
                options.faults,
                options.promises,
                elapsed.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
    }
}

/// Runs seeds `start..start + n` on `jobs` threads; with `stop`, seeds above the lowest
/// failing one are skipped. The outcomes come back in seed order.
fn run_many(start: u64, n: u64, options: Options, jobs: usize, stop: bool) -> Vec<Outcome> {
    let next = AtomicU64::new(start);
    let failed = AtomicU64::new(u64::MAX);
    let outcomes = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= start + n || (stop && seed > failed.load(Ordering::Relaxed)) {
                        return;
                    }
                    let mut outcome = run_seed(seed, options);
                    if outcome.violation.is_some() {
                        failed.fetch_min(seed, Ordering::Relaxed);
                    } else {
                        // Only a failing seed's trace is printed: kept for every seed, the
                        // traces of 100,000 seeds took over 20 GB.
                        outcome.trace = Trace::default();
                    }
                    outcomes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(seed, outcome);
                }
            });
        }
    });
    outcomes
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_values()
        .collect()
}

fn verdict(outcome: &Outcome) -> ExitCode {
    match &outcome.violation {
        Some(v) => {
            println!(
                "\nFAILED seed {}: {v}\nreplay: cargo xtask sim --seed {}{}",
                outcome.seed,
                outcome.seed,
                outcome.options.flags()
            );
            ExitCode::FAILURE
        }
        None => {
            println!(
                "\nseed {} passed ({} steps, {} grants, {:.0} s virtual; {} violations of \
                 promises that do not end a run)",
                outcome.seed,
                outcome.steps,
                outcome.grants,
                outcome.virtual_time.as_secs_f64(),
                outcome.violations.len()
            );
            ExitCode::SUCCESS
        }
    }
}

/// For each promise: the seeds it ended, the seeds it was broken in at all, and the first
/// seed that broke it with what happened.
fn survey(outcomes: &[Outcome], elapsed: Duration) -> ExitCode {
    #[derive(Default)]
    struct Count<'a> {
        ended: usize,
        broken: usize,
        first: Option<(u64, &'a str)>,
    }
    let mut counts: BTreeMap<Promise, Count<'_>> = BTreeMap::new();
    for o in outcomes {
        if let Some(v) = &o.violation {
            counts.entry(v.promise).or_default().ended += 1;
        }
        let mut seen = Vec::new();
        for v in &o.violations {
            if seen.contains(&v.promise) {
                continue;
            }
            seen.push(v.promise);
            let count = counts.entry(v.promise).or_default();
            count.broken += 1;
            count.first.get_or_insert((o.seed, &v.text));
        }
    }
    let failed = outcomes.iter().filter(|o| o.violation.is_some()).count();
    println!(
        "{} seeds, {failed} ended by a violation, in {:.1} s",
        outcomes.len(),
        elapsed.as_secs_f64()
    );
    println!("  {:<20} {:>6} {:>6}  first", "promise", "ended", "broken");
    for (promise, count) in &counts {
        let (seed, text) = count.first.unwrap_or((0, ""));
        println!(
            "  {:<20} {:>6} {:>6}  seed {seed}: {text}",
            promise.name(),
            count.ended,
            count.broken
        );
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
