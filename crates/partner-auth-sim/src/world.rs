//! What every part of one run shares: the seed's random numbers, virtual time, the trace, the
//! model provider's and store's state, which life of each replica is running, and what the
//! checks remember. It only holds them: the store handles, the fetches, the checker and the
//! driver, which act on them, sit above it.
//!
//! Everything runs on one thread (a current-thread runtime in paused time), so the order in
//! which tasks draw random numbers and touch this state is the same on every replay; the locks
//! are there because the cache's traits ask for `Send + Sync`, and none is held across an await.
//!
//! One order is not the sim's to fix: tokio's `watch` channel (which the cache's callers wait
//! on) parks each receiver on one of eight queues picked by tokio's own random numbers, seeded
//! anew in every process, so callers woken by one answer resume in a random order. A caller
//! that had to wait therefore takes a turn ([`World::in_turn`]): the callers woken together
//! go on in the order they were created.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use token_provider::{Clock, StoreKey, TokioClock};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::checker::memory::Checker;
use crate::config::{Fault, Faults, Promises, SimConfig};
use crate::node::Node;
use crate::promise::{Promise, Violation};
use crate::provider::server::Provider;
use crate::store::server::Server;
use crate::trace::Trace;

/// A replica's process: its current life, and until when it is paused.
#[derive(Clone, Debug, Default)]
struct Process {
    life: u32,
    paused_until: Option<Instant>,
    /// Every pause, as virtual times since the run began.
    pauses: Vec<(Duration, Duration)>,
}

/// Locks `m`, whatever a panicking holder left (the sim's own panics never hold one).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The shared state of one run.
pub(crate) struct World {
    pub(crate) cfg: SimConfig,
    pub(crate) faults: Faults,
    promises: Promises,
    /// Each principal's store key.
    keys: Vec<StoreKey>,
    rng: Mutex<fastrand::Rng>,
    trace: Mutex<Trace>,
    origin: Instant,
    pub(crate) clock: TokioClock,
    pub(crate) provider: Mutex<Provider>,
    pub(crate) store: Mutex<Server>,
    processes: Mutex<Vec<Process>>,
    pub(crate) checker: Mutex<Checker>,
    /// Set when the faults stop.
    healed: AtomicBool,
    /// Set when the run is over: tasks dropped with the runtime log nothing.
    finished: AtomicBool,
    /// Orders events that happen at one virtual instant.
    seq: AtomicU64,
    turns: Turns,
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("World")
    }
}

/// Callers woken together, waiting to go on in order.
#[derive(Default)]
struct Turns {
    waiting: Mutex<BTreeMap<u64, oneshot::Sender<()>>>,
    wake: Notify,
}

impl World {
    /// Must be called inside the runtime (the clock starts now).
    pub(crate) fn new(
        cfg: SimConfig,
        faults: Faults,
        promises: Promises,
        rng: fastrand::Rng,
    ) -> Self {
        let provider = Provider::new(&cfg.principals);
        let processes = vec![Process::default(); cfg.replicas];
        let keys = cfg
            .principals
            .iter()
            .map(|p| StoreKey::new("sim", "live", "acme", &p.name))
            .collect();
        Self {
            cfg,
            faults,
            promises,
            keys,
            rng: Mutex::new(rng),
            trace: Mutex::new(Trace::default()),
            origin: Instant::now(),
            clock: TokioClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            provider: Mutex::new(provider),
            store: Mutex::new(Server::default()),
            processes: Mutex::new(processes),
            checker: Mutex::new(Checker::default()),
            healed: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            turns: Turns::default(),
        }
    }

    /// Awaits `f` for the caller numbered `id`; if it had to wait, goes on only in its turn
    /// among the callers woken with it ([`run_turns`] must be running).
    pub(crate) async fn in_turn<F: Future>(&self, id: u64, f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut waited = false;
        let out = std::future::poll_fn(|cx| match f.as_mut().poll(cx) {
            Poll::Pending => {
                waited = true;
                Poll::Pending
            }
            ready => ready,
        })
        .await;
        if waited {
            let (tx, rx) = oneshot::channel();
            lock(&self.turns.waiting).insert(id, tx);
            self.turns.wake.notify_one();
            let _ = rx.await;
        }
        out
    }

    /// `principal`'s store key.
    pub(crate) fn key(&self, principal: usize) -> &StoreKey {
        &self.keys[principal]
    }

    /// The principal whose key is `key`.
    pub(crate) fn principal_of(&self, key: &StoreKey) -> Option<usize> {
        self.keys.iter().position(|k| k == key)
    }

    /// Virtual time since the run began.
    pub(crate) fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The wall clock every cache and the provider read.
    pub(crate) fn wall(&self) -> SystemTime {
        self.clock.now()
    }

    /// The next number in the order of events.
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a line to the trace.
    pub(crate) fn log(&self, who: impl fmt::Display, what: impl fmt::Display) {
        if self.finished.load(Ordering::Relaxed) {
            return;
        }
        let at = self.now();
        lock(&self.trace).push(at, who.to_string(), what.to_string());
    }

    /// Draws from the seed's random numbers.
    pub(crate) fn draw<T>(&self, f: impl FnOnce(&mut fastrand::Rng) -> T) -> T {
        f(&mut lock(&self.rng))
    }

    /// A draw of `fault` with probability `p` (scaled by the seed's intensity): never when the
    /// class is off or the faults have stopped. A class that is off draws nothing, so turning
    /// one off does not move the others' draws much.
    pub(crate) fn chance(&self, fault: Fault, p: f64) -> bool {
        if !self.faults.has(fault) || self.healed() {
            return false;
        }
        let p = p * self.cfg.intensity;
        self.draw(|rng| rng.f64() < p)
    }

    /// A duration drawn uniformly from `lo..hi`.
    pub(crate) fn between(&self, lo: Duration, hi: Duration) -> Duration {
        let (lo, hi) = (lo.as_millis() as u64, hi.as_millis() as u64);
        Duration::from_millis(self.draw(|rng| rng.u64(lo..hi.max(lo + 1))))
    }

    pub(crate) fn healed(&self) -> bool {
        self.healed.load(Ordering::Relaxed)
    }

    /// The faults stop: pauses end, the store comes back. Hangs already under way stay hung.
    pub(crate) fn heal(&self) {
        self.healed.store(true, Ordering::Relaxed);
        let now = self.now();
        for p in lock(&self.processes).iter_mut() {
            p.paused_until = None;
            if let Some(last) = p.pauses.last_mut() {
                last.1 = last.1.min(now);
            }
        }
        lock(&self.store).unavailable_until = None;
    }

    pub(crate) fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }

    pub(crate) fn trace(&self) -> Trace {
        lock(&self.trace).clone()
    }

    /// The running life of `replica`.
    pub(crate) fn node(&self, replica: usize) -> Node {
        Node {
            replica,
            life: lock(&self.processes)[replica].life,
        }
    }

    /// Whether `node` is the running life of its replica.
    pub(crate) fn alive(&self, node: Node) -> bool {
        lock(&self.processes)[node.replica].life == node.life
    }

    pub(crate) fn paused(&self, replica: usize) -> bool {
        lock(&self.processes)[replica]
            .paused_until
            .is_some_and(|until| until > Instant::now())
    }

    /// Pauses `replica` until `until`.
    pub(crate) fn pause(&self, replica: usize, length: Duration) {
        let now = self.now();
        let mut processes = lock(&self.processes);
        processes[replica].paused_until = Some(Instant::now() + length);
        processes[replica].pauses.push((now, now + length));
    }

    /// Whether `node` was killed, or paused at some moment since `since`: what it received
    /// then may never have gone further.
    pub(crate) fn stalled_since(&self, node: Node, since: Duration) -> bool {
        let now = self.now();
        let processes = lock(&self.processes);
        let p = &processes[node.replica];
        p.life != node.life
            || p.pauses
                .iter()
                .any(|(start, end)| *start <= now && *end >= since)
    }

    /// Kills `replica`'s running life; returns the next one.
    pub(crate) fn kill(&self, replica: usize) -> Node {
        let mut processes = lock(&self.processes);
        let p = &mut processes[replica];
        p.life += 1;
        p.paused_until = None;
        Node {
            replica,
            life: p.life,
        }
    }

    /// Where every step of `node`'s process passes: a paused process waits here until its
    /// pause ends, a dead one never passes again.
    pub(crate) async fn gate(&self, node: Node) {
        loop {
            let process = lock(&self.processes)[node.replica].clone();
            if process.life != node.life {
                std::future::pending::<()>().await;
            }
            match process.paused_until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }

    /// Records a broken promise; the first one of those that end the run ends it.
    pub(crate) fn violate(&self, promise: Promise, text: impl Into<String>) {
        if self.finished.load(Ordering::Relaxed) {
            return;
        }
        let text = text.into();
        self.log(
            "CHECKER",
            format_args!("VIOLATION [{}] {text}", promise.name()),
        );
        let at = self.now();
        let violation = Violation { promise, at, text };
        let mut checker = lock(&self.checker);
        if checker.violation.is_none() && self.promises.has(promise) {
            checker.violation = Some(violation.clone());
        }
        checker.violations.push(violation);
    }

    /// The violation that ends the run, if one happened.
    pub(crate) fn violation(&self) -> Option<Violation> {
        lock(&self.checker).violation.clone()
    }

    /// Every violation so far.
    pub(crate) fn violations(&self) -> Vec<Violation> {
        lock(&self.checker).violations.clone()
    }
}

/// Lets the callers woken together go on in the order of their numbers: woken by the first of
/// them, it yields once, so that every task woken with it has run up to its turn, then releases
/// them all, lowest number first (the runtime then runs them in that order).
pub(crate) async fn run_turns(world: std::sync::Arc<World>) {
    loop {
        world.turns.wake.notified().await;
        tokio::task::yield_now().await;
        let waiting = std::mem::take(&mut *lock(&world.turns.waiting));
        for (_, go) in waiting {
            let _ = go.send(());
        }
    }
}
