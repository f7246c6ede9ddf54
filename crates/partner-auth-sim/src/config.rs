//! What one seed simulates: the fleet, the principals, the timings and the faults it may inject,
//! all drawn from the seed; the cache configuration every replica runs; and what a run is
//! given on the command line, the fault classes and the promises that end it, each a [`Set`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use token_provider::{CacheConfig, TokenStore, TokioClock};

use crate::promise::Promise;

/// The deadline the caches put on every fetch, once the cache has one.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The caches' fetch deadline: without it a fetch that never answers would be waited on
/// forever, which the liveness check reports.
fn with_fetch_timeout(config: CacheConfig) -> CacheConfig {
    config.fetch_timeout(FETCH_TIMEOUT)
}

/// How long a caller waits for a fetch.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The first backoff after a transient failure (a correct cache waits at least half of it).
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// The longest backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a permanent failure is held.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// The store's lease on a lock (the Redis store's default).
pub const LEASE: Duration = Duration::from_secs(15);
/// How long a lock is waited for before `StoreBusy` (the Redis store's default).
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// How long after the faults stop the fleet is left to settle before every replica must get a
/// token: longer than the lease, the lock timeout, the fetch deadline, the longest backoff and
/// the longest slow answer together.
pub const SETTLE: Duration = Duration::from_secs(300);
/// How long each replica then has to get a token (it may need a refresh refused first, then a
/// new grant after the negative cache).
pub const PROBE: Duration = Duration::from_secs(120);

/// The configuration of every replica's cache.
pub(crate) fn cache_config(clock: &TokioClock, store: Arc<dyn TokenStore>) -> CacheConfig {
    with_fetch_timeout(
        CacheConfig::new()
            .name("sim")
            .clock(Arc::new(clock.clone()))
            .store(store)
            .load_timeout(LOAD_TIMEOUT)
            .negative_ttl(NEGATIVE_TTL)
            .backoff(BACKOFF_INITIAL, BACKOFF_MAX),
    )
}

/// A principal of the model provider.
#[derive(Clone, Debug)]
pub struct PrincipalSpec {
    /// `p0`, `p1`: the prefix of every token issued to it.
    pub name: String,
    /// Whether a fetch without a refresh token may log in with a password (a new token family);
    /// without one (single sign-on), only a person can, and the fetch fails with a user action.
    pub password: bool,
    /// The lifetime of its access tokens.
    pub lifetime: Duration,
}

/// One seed's world, drawn from the seed.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// How many replicas (processes) share the store.
    pub replicas: usize,
    /// The principals every replica serves.
    pub principals: Vec<PrincipalSpec>,
    /// How long faults are injected; the fleet then settles and is probed.
    pub chaos: Duration,
    /// Scales every fault's probability (0.3 to 1.5).
    pub intensity: f64,
}

impl SimConfig {
    /// The world for `seed`, drawn from `rng`.
    pub(crate) fn draw(rng: &mut fastrand::Rng) -> Self {
        let replicas = rng.usize(2..=4);
        let count = if rng.bool() { 1 } else { 2 };
        let principals = (0..count)
            .map(|i| PrincipalSpec {
                name: format!("p{i}"),
                // Mostly password principals (they recover from a lost family), some SSO.
                password: rng.u8(0..4) != 0,
                lifetime: Duration::from_secs(rng.u64(600..=1800)),
            })
            .collect::<Vec<_>>();
        let longest = principals
            .iter()
            .map(|p| p.lifetime)
            .max()
            .unwrap_or(Duration::from_secs(600));
        let chaos = longest * rng.u32(3..=5);
        let intensity = 0.3 + 1.2 * rng.f64();
        Self {
            replicas,
            principals,
            chaos,
            intensity,
        }
    }
}

/// A class of fault the nemesis may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// A store write applied, its reply lost (`StoreUnavailable`).
    LostReply,
    /// The provider processed a grant, its answer lost (`transport` or `timeout`).
    LostAnswer,
    /// A transient provider error before anything was processed (refused connection, 503).
    ProviderError,
    /// A slow answer (5 to 40 s).
    Slow,
    /// A fetch that never returns, or returns after an hour.
    Hang,
    /// A fetch that panics, before or after the provider processed it.
    Panic,
    /// `FLUSHALL`: every record, lock and fence gone.
    FlushAll,
    /// A restart without persistence: flushed, and unavailable for a few seconds.
    Restart,
    /// One key evicted: a lock, a fence or a record.
    Evict,
    /// A replica paused past its lease (its fetch, store calls and lease extender stall).
    Pause,
    /// A replica killed and started again with an empty cache.
    Kill,
    /// The provider revokes a principal's token family (a password change, an admin).
    Revoke,
}

impl Fault {
    /// Every class, in the order the CLI lists them.
    pub const ALL: [Fault; 12] = [
        Fault::LostReply,
        Fault::LostAnswer,
        Fault::ProviderError,
        Fault::Slow,
        Fault::Hang,
        Fault::Panic,
        Fault::FlushAll,
        Fault::Restart,
        Fault::Evict,
        Fault::Pause,
        Fault::Kill,
        Fault::Revoke,
    ];

    /// The class's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Fault::LostReply => "lost-reply",
            Fault::LostAnswer => "lost-answer",
            Fault::ProviderError => "provider-error",
            Fault::Slow => "slow",
            Fault::Hang => "hang",
            Fault::Panic => "panic",
            Fault::FlushAll => "flushall",
            Fault::Restart => "restart",
            Fault::Evict => "evict",
            Fault::Pause => "pause",
            Fault::Kill => "kill",
            Fault::Revoke => "revoke",
        }
    }

    /// Whether the class is an event of the run of its own, drawn between calls (`FLUSHALL`, a
    /// restart, an eviction, a pause, a kill, a revocation), rather than a failure inside a
    /// fetch or a store call.
    pub fn is_event(self) -> bool {
        matches!(
            self,
            Fault::FlushAll
                | Fault::Restart
                | Fault::Evict
                | Fault::Pause
                | Fault::Kill
                | Fault::Revoke
        )
    }
}

/// What a [`Set`] is a set of: the fault classes ([`Fault`]) or the promises ([`Promise`]),
/// each with a name on the command line.
pub trait Member: Copy + Eq + 'static {
    /// What one is called where a name is not one (`no fault class x`).
    const KIND: &'static str;

    /// Every one, in the order the command line lists them.
    const ALL: &'static [Self];

    /// Its name on the command line.
    fn name(self) -> &'static str;

    /// The set named by `name` besides `all` and `none`, if it names one.
    fn preset(name: &str) -> Option<Set<Self>> {
        let _ = name;
        None
    }

    /// Its bit in a set: its place in [`Self::ALL`].
    fn bit(self) -> u32 {
        let place = Self::ALL.iter().position(|m| *m == self);
        1 << place.expect("every member is in ALL")
    }
}

impl Member for Fault {
    const KIND: &'static str = "fault class";
    const ALL: &'static [Self] = &Fault::ALL;

    fn name(self) -> &'static str {
        Fault::name(self)
    }

    fn preset(name: &str) -> Option<Faults> {
        (name == "kept").then(Faults::kept)
    }
}

impl Member for Promise {
    const KIND: &'static str = "promise";
    const ALL: &'static [Self] = &Promise::ALL;

    fn name(self) -> &'static str {
        Promise::name(self)
    }
}

/// A set of fault classes ([`Faults`]) or of promises ([`Promises`]), written on the command
/// line as `all`, `none`, or a comma-separated list of names.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Set<T> {
    bits: u32,
    of: PhantomData<T>,
}

/// The fault classes a run may inject (default all).
pub type Faults = Set<Fault>;

/// The promises whose first violation ends a run (the others are traced and counted); default
/// all, which CI runs. None lets every run go to its end (to time full runs, or to count every
/// violation).
pub type Promises = Set<Promise>;

impl<T: Member> Set<T> {
    /// Every one.
    pub fn all() -> Self {
        Self::only(T::ALL.iter().copied())
    }

    /// None at all.
    pub fn none() -> Self {
        Self::only([])
    }

    /// These only.
    pub fn only(members: impl IntoIterator<Item = T>) -> Self {
        Self {
            bits: members.into_iter().fold(0, |bits, m| bits | m.bit()),
            of: PhantomData,
        }
    }

    /// Whether `member` is in the set.
    pub fn has(self, member: T) -> bool {
        self.bits & member.bit() != 0
    }

    /// `all`, `none`, a preset (`kept` for the fault classes), or a comma-separated list of
    /// names.
    pub fn parse(list: &str) -> Result<Self, String> {
        match list {
            "all" => return Ok(Self::all()),
            "none" => return Ok(Self::none()),
            _ => {}
        }
        if let Some(preset) = T::preset(list) {
            return Ok(preset);
        }
        list.split(',')
            .map(|name| {
                T::ALL
                    .iter()
                    .copied()
                    .find(|m| m.name() == name.trim())
                    .ok_or_else(|| format!("no {} {name}", T::KIND))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self::only)
    }

    /// The ones in the set, in the order of [`Member::ALL`].
    pub fn list(self) -> Vec<T> {
        T::ALL.iter().copied().filter(|m| self.has(*m)).collect()
    }
}

impl Faults {
    /// The classes CI runs together (`kept`): lost store replies, FLUSHALL, evictions, killed
    /// replicas and revoked families. CI also runs every class alone; RELIABILITY.md counts
    /// what every class at once still breaks.
    pub fn kept() -> Self {
        Self::only([
            Fault::LostReply,
            Fault::FlushAll,
            Fault::Evict,
            Fault::Kill,
            Fault::Revoke,
        ])
    }
}

impl<T: Member> Default for Set<T> {
    fn default() -> Self {
        Self::all()
    }
}

impl<T: Member> fmt::Debug for Set<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<T: Member> fmt::Display for Set<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::all() {
            return f.write_str("all");
        }
        let names: Vec<_> = self.list().into_iter().map(T::name).collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// What a run injects and what ends it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The fault classes the nemesis may inject (default all).
    pub faults: Faults,
    /// The promises whose first violation ends the run (default all).
    pub promises: Promises,
}

impl Options {
    /// The flags that replay a run with these options (empty for the defaults).
    pub fn flags(&self) -> String {
        let mut flags = String::new();
        if self.faults != Faults::all() {
            flags.push_str(&format!(" --faults {}", self.faults));
        }
        if self.promises != Promises::all() {
            flags.push_str(&format!(" --promises {}", self.promises));
        }
        flags
    }
}
