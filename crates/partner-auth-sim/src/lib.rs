//! A deterministic simulation of a fleet of token caches, checked against the cache's promises.
//!
//! Several replicas, each its own [`CachedTokenProvider`](token_provider::CachedTokenProvider)
//! (the real cache, through its public API only), share one model store with the Redis store's
//! semantics ([`store`]) and fetch from one model OAuth provider that rotates refresh tokens and
//! revokes a family on reuse ([`provider`]). Callers ask random replicas for tokens at random
//! virtual times over several token lifetimes, report 401s and forget principals, while a
//! nemesis loses replies, flushes and restarts the store, evicts keys, pauses and kills
//! replicas, and makes fetches hang, panic, fail or crawl. After every step the [`checker`]
//! holds the run to the cache's promises; when the faults stop, every replica must get a token.
//!
//! ```no_run
//! use partner_auth_sim::{Options, run_seed};
//!
//! let outcome = run_seed(42, Options::default());
//! if let Some(violation) = &outcome.violation {
//!     println!("{}", outcome.trace);
//!     println!("seed 42: {violation}");
//! }
//! ```
//!
//! `cargo xtask sim --seeds N` runs N seeds and prints the first failing one with its trace;
//! `cargo xtask sim --seed S` replays one. `--faults` narrows the fault classes and
//! `--promises` the promises that end a run, to hunt one defect (`--help` lists both).
//!
//! # Layout
//!
//! In layers, from the bottom: a module imports modules of its own layer or below, never one
//! above it, and no module imports one that imports it (`cargo xtask modules` checks).
//!
//! - Plain data: [`trace`], every event stamped with its virtual time; `node`, which life of
//!   which replica ([`Node`]); `promise`, the promises by name and a broken one ([`Promise`],
//!   [`Violation`]).
//! - [`config`]: what a seed draws (replicas, principals, lifetimes, fault intensity), the
//!   fault classes and promises a run is given, and every replica's cache configuration, with
//!   the one place that switches on the cache's fetch deadline.
//! - The models' state, each knowing nothing of the run: `store::server`, what the model
//!   store holds (records, locks, fences) and its wipes; `provider::server`, the model
//!   provider's rules and records, which also judge each presentation of a refresh token as it
//!   is made; `checker::memory`, what the checks remember between events.
//! - `world`: the shared state of one run, holding those three, with virtual time, the seed's
//!   random numbers, replicas' lives and pauses, and the turns that keep wake-ups in order.
//! - What acts in the world: [`store`], each replica's handle on the model store (round trips,
//!   locks and leases, writes, lost replies); [`provider`], each replica's `Fetch` and the
//!   fetch faults; [`checker`], the promises, stated precisely, checked by hooks the handles
//!   and fetches call and by reading what the caches hold.
//! - `sim`: the driver: the fleet, the workload, the nemesis's events, the settling and the
//!   probe.
//!
//! # Determinism
//!
//! Everything of one seed runs on one thread: a current-thread tokio runtime with paused time
//! (a sleep of an hour returns as soon as every task waits, so hours of token lifetimes take
//! milliseconds), the caches reading [`TokioClock`](token_provider::TokioClock). Every random
//! choice the sim makes comes from one `fastrand::Rng` seeded with the seed, and the cache's own
//! jitter from that thread's `fastrand` generator, seeded with it too. Maps are `BTreeMap`s, so
//! nothing depends on a hash's order. The same seed and options replay the same trace (a test
//! holds the sim to it).
//!
//! # Why not turmoil or shuttle
//!
//! The model has no network: replicas share the store and the provider in memory, and a lost
//! reply or a hang is a decision of the model, not a dropped packet, so turmoil's simulated
//! hosts and links would add a layer without adding a behaviour. What the faults need is
//! virtual time and one thread, which tokio's paused clock gives the real cache unchanged.
//! shuttle explores thread interleavings of code written against its own primitives; the
//! cache's races that matter here are between tasks and timers (a lease lapsing during a
//! fetch, a forget queued behind a fetch), which one thread in virtual time reaches by drawing
//! the timings. Where shuttle would add something is the cache's lock-free hit path across
//! threads (its thread-local copies and generation counter), which this simulation, on one
//! thread, does not exercise.

#![warn(missing_docs)]

pub mod checker;
pub mod config;
mod node;
mod promise;
pub mod provider;
mod sim;
pub mod store;
pub mod trace;
mod world;

pub use crate::config::{Fault, Faults, Options, Promises, SimConfig};
pub use crate::node::Node;
pub use crate::promise::{Promise, Violation};
pub use crate::sim::{Outcome, run_seed};
pub use crate::trace::Trace;
