//! The driver: builds the fleet, runs the workload and the nemesis in virtual time with the
//! promises checked before every step, then stops the faults, lets the fleet settle, and
//! probes every replica for a token.

use std::sync::{Arc, Once};
use std::time::Duration;

use token_provider::{AccessToken, CachedTokenProvider, TokenProvider, TokenStore};
use tokio::time::Instant;

use crate::checker::{self, Holding};
use crate::config::{Fault, LEASE, LOAD_TIMEOUT, Options, PROBE, SETTLE, SimConfig, cache_config};
use crate::node::Node;
use crate::promise::{Promise, Violation};
use crate::provider::server::{Cause, Delivery};
use crate::provider::{PANIC_MARKER, SimFetch};
use crate::store::StoreHandle;
use crate::store::server::Evict;
use crate::trace::{Trace, secs};
use crate::world::{World, lock, run_turns};

/// One replica's cache for one principal.
#[derive(Clone)]
pub(crate) struct Cache {
    pub(crate) node: Node,
    pub(crate) principal: usize,
    pub(crate) provider: CachedTokenProvider<SimFetch>,
}

/// What one seed did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// The world it drew.
    pub config: SimConfig,
    /// What it injected and what could end it.
    pub options: Options,
    /// The violation that ended it, if one did.
    pub violation: Option<Violation>,
    /// Every violation, including those that did not end it (the promises left out of
    /// [`Options::promises`]).
    pub violations: Vec<Violation>,
    /// Every event.
    pub trace: Trace,
    /// Steps taken (workload and nemesis events).
    pub steps: u64,
    /// Grants the provider processed.
    pub grants: usize,
    /// Virtual time the run covered.
    pub virtual_time: Duration,
}

/// Runs `seed` with `options`: the same seed and options replay exactly.
pub fn run_seed(seed: u64, options: Options) -> Outcome {
    quiet_injected_panics();
    let mut rng = fastrand::Rng::with_seed(seed);
    let config = SimConfig::draw(&mut rng);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    // The cache draws its jitter from this thread's generator, and the runtime runs every task
    // on this thread.
    fastrand::seed(seed);
    let cfg = config.clone();
    let (violation, violations, trace, steps, grants, virtual_time) =
        runtime.block_on(async move {
            let world = Arc::new(World::new(cfg, options.faults, options.promises, rng));
            tokio::spawn(run_turns(Arc::clone(&world)));
            let mut fleet = Fleet::new(Arc::clone(&world));
            fleet.run().await;
            world.finish();
            let grants = {
                let provider = lock(&world.provider);
                provider.families.len()
                    + provider
                        .refresh
                        .values()
                        .map(|r| r.presentations.len())
                        .sum::<usize>()
            };
            (
                world.violation(),
                world.violations(),
                world.trace(),
                fleet.steps,
                grants,
                world.now(),
            )
        });
    drop(runtime);
    Outcome {
        seed,
        config,
        options,
        violation,
        violations,
        trace,
        steps,
        grants,
        virtual_time,
    }
}

/// Keeps the injected panics off stderr (any other panic is reported as usual).
fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let injected = payload
                .downcast_ref::<String>()
                .is_some_and(|m| m == PANIC_MARKER)
                || payload
                    .downcast_ref::<&str>()
                    .is_some_and(|m| *m == PANIC_MARKER);
            if !injected {
                default(info);
            }
        }));
    });
}

/// One step of the run.
#[derive(Clone, Copy, Debug)]
enum Event {
    /// `burst` callers, the first on `replica`, the others spread over a few hundred ms.
    Call {
        replica: usize,
        principal: usize,
        burst: u32,
    },
    /// A caller's API call answers 401 for the last token served there.
    Invalidate {
        replica: usize,
        principal: usize,
    },
    Forget {
        replica: usize,
        principal: usize,
    },
    FlushAll,
    Restart(Duration),
    Evict {
        principal: usize,
        what: Evict,
    },
    Pause {
        replica: usize,
        length: Duration,
    },
    Kill {
        replica: usize,
    },
    Revoke {
        principal: usize,
    },
}

struct Fleet {
    world: Arc<World>,
    /// The running life of every replica, one cache per principal.
    caches: Vec<Cache>,
    steps: u64,
}

impl Fleet {
    fn new(world: Arc<World>) -> Self {
        let mut fleet = Self {
            world,
            caches: Vec::new(),
            steps: 0,
        };
        for replica in 0..fleet.world.cfg.replicas {
            let node = fleet.world.node(replica);
            fleet.start(node);
        }
        fleet
    }

    /// Starts `node`: a process with its own store handle and one cache per principal.
    fn start(&mut self, node: Node) {
        let w = &self.world;
        let store: Arc<dyn TokenStore> = Arc::new(StoreHandle::new(Arc::clone(w), node));
        self.caches.retain(|c| c.node.replica != node.replica);
        for principal in 0..w.cfg.principals.len() {
            let fetch = SimFetch::new(Arc::clone(w), node, principal, w.key(principal).clone());
            let provider =
                CachedTokenProvider::with_config(fetch, cache_config(&w.clock, Arc::clone(&store)));
            self.caches.push(Cache {
                node,
                principal,
                provider,
            });
        }
    }

    /// What every cache holds now, as the checker reads it.
    fn holdings(&self) -> Vec<Holding> {
        self.caches
            .iter()
            .map(|c| Holding {
                node: c.node,
                principal: c.principal,
                state: c.provider.cached_state(),
                fetching: c.provider.stats().fetching,
            })
            .collect()
    }

    fn cache(&self, replica: usize, principal: usize) -> Cache {
        self.caches
            .iter()
            .find(|c| c.node.replica == replica && c.principal == principal)
            .expect("every replica has a cache per principal")
            .clone()
    }

    async fn run(&mut self) {
        let w = Arc::clone(&self.world);
        w.log(
            "sim",
            format_args!(
                "{} replicas; {}; chaos {}; intensity {:.2}; faults {}",
                w.cfg.replicas,
                w.cfg
                    .principals
                    .iter()
                    .map(|p| format!(
                        "{} ({}, tokens live {} s)",
                        p.name,
                        if p.password { "password" } else { "SSO" },
                        p.lifetime.as_secs()
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                secs(w.cfg.chaos),
                w.cfg.intensity,
                w.faults
            ),
        );
        self.sso_logins();
        let chaos_end = w.now() + w.cfg.chaos;
        while w.now() < chaos_end {
            if !self.step(false).await {
                return;
            }
        }
        w.heal();
        w.log("nemesis", "the faults stop");
        let settle_end = w.now() + SETTLE;
        while w.now() < settle_end {
            if !self.step(true).await {
                return;
            }
        }
        self.probe().await;
        if w.violation().is_none() {
            checker::check_rotated_kept(&w, &self.holdings());
        }
    }

    /// A person logs every SSO principal in before the fleet starts: the store holds its
    /// first state.
    fn sso_logins(&self) {
        let w = &self.world;
        for (principal, spec) in w.cfg.principals.iter().enumerate() {
            if spec.password {
                continue;
            }
            let delivery = Delivery {
                seq: w.next_seq(),
                at: w.now(),
                node: None,
                task: None,
            };
            let state = lock(&w.provider).login_by_person(principal, w.wall(), delivery);
            w.log(
                "sim",
                format_args!(
                    "a person logs {} in: the store holds {}",
                    spec.name,
                    state.access_token.secret().expose_secret()
                ),
            );
            lock(&w.store).seed(w.key(principal), state);
        }
    }

    /// Waits for the next step, checks, and takes it; false once a promise is broken.
    async fn step(&mut self, calm: bool) -> bool {
        let w = Arc::clone(&self.world);
        let gap = match w.draw(|rng| rng.u8(0..10)) {
            0..=5 => w.between(Duration::ZERO, Duration::from_secs(2)),
            6..=8 => w.between(Duration::from_secs(2), Duration::from_secs(30)),
            _ => w.between(Duration::from_secs(30), Duration::from_secs(120)),
        };
        tokio::time::sleep(gap).await;
        checker::check_rotated_kept(&w, &self.holdings());
        if w.violation().is_some() {
            return false;
        }
        self.steps += 1;
        let event = self.draw_event(calm);
        self.perform(event);
        true
    }

    fn draw_event(&self, calm: bool) -> Event {
        let w = &self.world;
        let roll = w.draw(|rng| rng.u32(0..1000));
        let replica = w.draw(|rng| rng.usize(0..w.cfg.replicas));
        let principal = w.draw(|rng| rng.usize(0..w.cfg.principals.len()));
        let call = Event::Call {
            replica,
            principal,
            burst: if w.draw(|rng| rng.u8(0..4)) == 0 {
                w.draw(|rng| rng.u32(2..=5))
            } else {
                1
            },
        };
        match roll {
            0..800 => call,
            800..880 => Event::Invalidate { replica, principal },
            880..900 if !calm => Event::Forget { replica, principal },
            _ if calm => call,
            _ => {
                // In the order of `Fault::ALL`: a seed draws the same class as before.
                let classes: Vec<Fault> = Fault::ALL
                    .into_iter()
                    .filter(|f| f.is_event() && w.faults.has(*f))
                    .collect();
                if classes.is_empty() || w.draw(|rng| rng.f64()) * 1.5 > w.cfg.intensity {
                    return call;
                }
                match classes[w.draw(|rng| rng.usize(0..classes.len()))] {
                    Fault::FlushAll => Event::FlushAll,
                    Fault::Restart => {
                        Event::Restart(w.between(Duration::from_secs(1), Duration::from_secs(10)))
                    }
                    Fault::Evict => Event::Evict {
                        principal,
                        what: match w.draw(|rng| rng.u8(0..3)) {
                            0 => Evict::Lock,
                            1 => Evict::Fence,
                            _ => Evict::Record,
                        },
                    },
                    Fault::Pause => Event::Pause {
                        replica,
                        length: LEASE + w.between(Duration::from_secs(1), Duration::from_secs(45)),
                    },
                    Fault::Kill => Event::Kill { replica },
                    _ => Event::Revoke { principal },
                }
            }
        }
    }

    fn perform(&mut self, event: Event) {
        let w = Arc::clone(&self.world);
        match event {
            Event::Call {
                replica,
                principal,
                burst,
            } => {
                for i in 0..burst {
                    let (replica, delay) = match i {
                        0 => (replica, Duration::ZERO),
                        _ => (
                            if w.draw(|rng| rng.bool()) {
                                replica
                            } else {
                                w.draw(|rng| rng.usize(0..w.cfg.replicas))
                            },
                            w.between(Duration::ZERO, Duration::from_millis(300)),
                        ),
                    };
                    let cache = self.cache(replica, principal);
                    tokio::spawn(caller(Arc::clone(&w), cache, delay));
                }
            }
            Event::Invalidate { replica, principal } => {
                let cache = self.cache(replica, principal);
                if let Some(token) = checker::last_served(&w, cache.node, principal)
                    && !w.paused(replica)
                {
                    w.log(
                        cache.node,
                        format_args!(
                            "an API call with {} answers 401",
                            token.secret().expose_secret()
                        ),
                    );
                    invalidate(&w, &cache, &token);
                }
            }
            Event::Forget { replica, principal } => {
                if w.paused(replica) {
                    return;
                }
                let cache = self.cache(replica, principal);
                tokio::spawn(forget(Arc::clone(&w), cache));
            }
            Event::FlushAll => {
                w.log("nemesis", "FLUSHALL");
                lock(&w.store).flush();
            }
            Event::Restart(down) => {
                w.log(
                    "nemesis",
                    format_args!(
                        "the store restarts without persistence, down {}",
                        secs(down)
                    ),
                );
                lock(&w.store).restart(Instant::now() + down);
            }
            Event::Evict { principal, what } => {
                let key = w.key(principal).clone();
                w.log("nemesis", format_args!("evicts the {what:?} of {key}"));
                lock(&w.store).evict(&key, what);
            }
            Event::Pause { replica, length } => {
                let node = w.node(replica);
                w.log(
                    "nemesis",
                    format_args!("pauses {node} for {}", secs(length)),
                );
                w.pause(replica, length);
            }
            Event::Kill { replica } => {
                let old = w.node(replica);
                let node = w.kill(replica);
                w.log("nemesis", format_args!("kills {old}; {node} starts, empty"));
                self.start(node);
            }
            Event::Revoke { principal } => {
                let now = w.now();
                let mut provider = lock(&w.provider);
                if let Some(family) = provider.live_family(principal) {
                    provider.revoke(family, now, Cause::Admin);
                    let name = provider.families[family].name.clone();
                    drop(provider);
                    w.log(
                        "nemesis",
                        format_args!("the provider revokes family {name}"),
                    );
                }
            }
        }
    }

    /// Every live replica must get a token for every principal within [`PROBE`].
    async fn probe(&self) {
        let w = &self.world;
        w.log(
            "sim",
            format_args!(
                "probe: the faults stopped {} ago; every replica must now get a token",
                secs(SETTLE)
            ),
        );
        let probes: Vec<_> = self
            .caches
            .iter()
            .filter(|c| w.alive(c.node))
            .map(|cache| tokio::spawn(probe(Arc::clone(w), cache.clone())))
            .collect();
        for probe in probes {
            let _ = probe.await;
        }
    }
}

/// A caller: gets a token and uses it; a 401 (the token is revoked) invalidates it and tries
/// once more; an error is retried once, soon, half the time.
async fn caller(w: Arc<World>, cache: Cache, delay: Duration) {
    tokio::time::sleep(delay).await;
    let node = cache.node;
    if w.paused(node.replica) || !w.alive(node) {
        return;
    }
    let name = &w.cfg.principals[cache.principal].name;
    for _ in 0..2 {
        let started = w.next_seq();
        if cache
            .provider
            .soft_expiry()
            .is_none_or(|soft| soft <= w.wall())
        {
            w.log(node, format_args!("get {name}: no fresh token"));
        }
        match w.in_turn(started, cache.provider.get()).await {
            Ok(token) => {
                if !w.alive(node) {
                    return;
                }
                w.log(
                    node,
                    format_args!("get {name} -> {}", token.secret().expose_secret()),
                );
                if !checker::on_served(&w, node, cache.principal, &token, started) {
                    return;
                }
                w.log(node, "the API answers 401: the token is revoked");
                invalidate(&w, &cache, &token);
            }
            Err(e) => {
                if !w.alive(node) {
                    return;
                }
                w.log(node, format_args!("get {name} failed: {e}"));
                if w.draw(|rng| rng.bool()) {
                    return;
                }
                tokio::time::sleep(w.between(Duration::ZERO, Duration::from_millis(300))).await;
            }
        }
    }
}

/// Tells `cache` that `token` was refused, as the API client does after a 401.
fn invalidate(w: &World, cache: &Cache, token: &AccessToken) {
    let before = cache.provider.cached_state();
    cache.provider.invalidate(token);
    checker::on_invalidate(w, cache.node, cache.principal, token, before);
    w.log(
        cache.node,
        format_args!("invalidate {}", token.secret().expose_secret()),
    );
}

async fn forget(w: Arc<World>, cache: Cache) {
    let node = cache.node;
    let task = tokio::task::try_id();
    let name = &w.cfg.principals[cache.principal].name;
    checker::forget_started(&w, node, cache.principal, task);
    w.log(node, format_args!("forget {name}"));
    let result = cache.provider.forget().await;
    // Every task spawned before this one (every fetch begun before the forget returned) has a
    // smaller id.
    let marker = tokio::spawn(async {}).id();
    checker::forget_returned(&w, node, cache.principal, task, result.is_ok(), marker);
    match result {
        Ok(removed) => w.log(
            node,
            format_args!("forget {name} returned (removed: {removed})"),
        ),
        Err(e) => w.log(node, format_args!("forget {name} failed: {e}")),
    }
}

/// One replica's probe for one principal (see [`Fleet::probe`]).
async fn probe(w: Arc<World>, cache: Cache) {
    let node = cache.node;
    let spec = &w.cfg.principals[cache.principal];
    let deadline = Instant::now() + PROBE;
    loop {
        let started = w.next_seq();
        let get = tokio::time::timeout(LOAD_TIMEOUT * 2, cache.provider.get());
        let failure = match w.in_turn(started, get).await {
            Ok(Ok(token)) => {
                w.log(
                    node,
                    format_args!("probe {} -> {}", spec.name, token.secret().expose_secret()),
                );
                if !checker::on_served(&w, node, cache.principal, &token, started) {
                    return;
                }
                invalidate(&w, &cache, &token);
                "a revoked token".to_owned()
            }
            Ok(Err(e)) => {
                w.log(node, format_args!("probe {} failed: {e}", spec.name));
                // An SSO principal that neither the store nor this replica holds a usable refresh
                // token for can only be signed in by a person.
                let held = [
                    lock(&w.store).stored_refresh(w.key(cache.principal)),
                    cache
                        .provider
                        .cached_state()
                        .and_then(|s| s.refresh_token)
                        .map(|rt| rt.expose_secret().to_owned()),
                ];
                let usable = {
                    let provider = lock(&w.provider);
                    held.iter().flatten().any(|rt| provider.usable(rt))
                };
                if !spec.password && !e.is_transient() && !usable {
                    w.log(
                        node,
                        "no usable refresh token: a person must sign in (not a violation)",
                    );
                    return;
                }
                e.to_string()
            }
            Err(_) => {
                w.log(node, format_args!("probe {}: no answer", spec.name));
                format!("no answer within {} s", (LOAD_TIMEOUT * 2).as_secs())
            }
        };
        if Instant::now() >= deadline {
            w.violate(
                Promise::Liveness,
                format!(
                    "{node} got no token for {} within {} s, {} s after the faults stopped: \
                     {failure}",
                    spec.name,
                    PROBE.as_secs(),
                    SETTLE.as_secs()
                ),
            );
            return;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}
