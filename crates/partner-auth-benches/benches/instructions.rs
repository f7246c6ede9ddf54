//! Instructions per cache hit, counted by callgrind: unlike time, the count is the same run after
//! run whatever else the machine is doing.
//!
//! Run with `cargo xtask bench` (or `cargo bench -p partner-auth-benches --bench instructions`).
//! The binary runs itself under `valgrind --tool=callgrind` twice per contender, making `N` and
//! `2 N` hits; the difference over `N` is one hit's count, without the set-up (the runtime, the
//! first fetch, a thread's first copy of the token). Each count includes the few instructions of
//! the loop and of the dispatch to the contender, the same for every one.

use std::fmt::Write as _;
use std::path::Path;

use partner_auth_benches::one_token::{Contender, Hits};
use partner_auth_benches::{callgrind_instructions, valgrind_installed, write_report};

const N: u64 = 100_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, id, n] = args.as_slice()
        && flag == "--hits"
    {
        let contender = Contender::from_id(id).expect("a contender id");
        let n: u64 = n.parse().expect("a number of hits");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        let _in_runtime = rt.enter();
        let hits = Hits::new(&rt);
        for _ in 0..n {
            hits.hit(contender);
        }
        return;
    }

    let exe = std::env::current_exe().expect("this benchmark's path");
    let mut r = String::new();
    let _ = writeln!(r, "## Instructions per hit (callgrind)\n");
    if !valgrind_installed() {
        let _ = writeln!(r, "Not measured: `valgrind` is not installed.\n");
        write_report("bench-instructions.md", &r);
        return;
    }
    let _ = writeln!(
        r,
        "`cargo bench -p partner-auth-benches --bench instructions`: each contender runs under \
         `valgrind --tool=callgrind` making {N} and then {} hits on one thread; the table gives \
         the difference over {N} (set-up excluded; a few instructions of loop and dispatch \
         included, the same for every row).\n",
        2 * N
    );
    let _ = writeln!(
        r,
        "| contender | instructions per hit | vs floor |\n| --- | --- | --- |"
    );
    let counts: Vec<(Contender, f64)> = Contender::ALL
        .into_iter()
        .map(|c| {
            let per_hit =
                (collected(&exe, c, 2 * N) as f64 - collected(&exe, c, N) as f64) / N as f64;
            eprintln!("{}: {per_hit:.1} instructions per hit", c.id());
            (c, per_hit)
        })
        .collect();
    let floor = counts
        .iter()
        .find(|(c, _)| *c == Contender::Floor)
        .map(|(_, n)| *n);
    for (c, n) in &counts {
        let _ = writeln!(
            r,
            "| {} | {n:.0} | {} |",
            c.name(),
            floor.map_or("n/a".into(), |f| format!("{:.2}x", n / f))
        );
    }
    r.push('\n');
    write_report("bench-instructions.md", &r);
}

/// The instructions callgrind collected over a run of `n` hits of `contender`.
fn collected(exe: &Path, contender: Contender, n: u64) -> u64 {
    callgrind_instructions(exe, &[], &["--hits", contender.id(), &n.to_string()])
}
