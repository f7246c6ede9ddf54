//! What the model store's server holds, and what the nemesis does to it: per key a record, a
//! lock (its holder's token and lease) and a fence; FLUSHALL, a restart without persistence,
//! one key's lock, fence or record evicted. It counts every wipe of a key's record, so that the
//! checker can tell what a process's read may descend from. The protocol run on it (locks,
//! fenced and versioned writes) is each replica's handle's, in [`super`].

use std::collections::BTreeMap;

use token_provider::{StoreKey, StoreRecord, TokenState};
use tokio::time::Instant;

use crate::node::Node;

/// What the server holds for one key.
#[derive(Default)]
pub(crate) struct KeyState {
    pub(super) record: Option<StoreRecord>,
    pub(super) held: Option<Held>,
    pub(super) fence: Option<u64>,
}

/// A lock on the server: its holder's random token (here a counter) and its lease.
pub(super) struct Held {
    pub(super) token: u64,
    pub(super) holder: Node,
    pub(super) expires: Instant,
}

/// The shared server.
#[derive(Default)]
pub(crate) struct Server {
    pub(super) keys: BTreeMap<StoreKey, KeyState>,
    pub(crate) unavailable_until: Option<Instant>,
    /// The last lock token handed out.
    pub(super) tokens: u64,
    /// How many times everything was wiped (FLUSHALL, a restart).
    flushes: u64,
    /// How many times each key's record was evicted or removed.
    removals: BTreeMap<StoreKey, u64>,
}

/// What the nemesis evicts from one key.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Evict {
    Lock,
    Fence,
    Record,
}

impl Server {
    /// FLUSHALL: every record, lock and fence gone.
    pub(crate) fn flush(&mut self) {
        self.keys.clear();
        self.flushes += 1;
    }

    /// A restart without persistence: flushed, and down until `until`.
    pub(crate) fn restart(&mut self, until: Instant) {
        self.flush();
        self.unavailable_until = Some(until);
    }

    /// Whether the server is down (restarting) at `now`: it answers nothing.
    pub(super) fn down(&self, now: Instant) -> bool {
        self.unavailable_until.is_some_and(|until| until > now)
    }

    /// Counts a wipe of `key`'s record (evicted or removed).
    pub(super) fn wiped(&mut self, key: &StoreKey) {
        *self.removals.entry(key.clone()).or_default() += 1;
    }

    /// [`epoch`](Self::epoch) as an answer arriving at `now` is judged: one that arrives while
    /// the store is down for a restart counts as arriving before that restart's wipe (nothing
    /// can be saved until the store is back, empty).
    pub(crate) fn delivery_epoch(&self, key: &StoreKey, now: Instant) -> u64 {
        self.epoch(key) - u64::from(self.down(now))
    }

    /// How many times `key`'s record was wiped (flushed, evicted, removed): what a process read
    /// may not descend from what was there before.
    pub(crate) fn epoch(&self, key: &StoreKey) -> u64 {
        self.flushes + self.removals.get(key).copied().unwrap_or(0)
    }

    /// Drops one part of `key`'s state.
    pub(crate) fn evict(&mut self, key: &StoreKey, what: Evict) {
        if let Some(k) = self.keys.get_mut(key) {
            match what {
                Evict::Lock => k.held = None,
                Evict::Fence => k.fence = None,
                Evict::Record => {
                    k.record = None;
                    self.wiped(key);
                }
            }
        }
    }

    /// The refresh token stored for `key`.
    pub(crate) fn stored_refresh(&self, key: &StoreKey) -> Option<String> {
        let record = self.keys.get(key)?.record.as_ref()?;
        let rt = record.state.refresh_token.as_ref()?;
        Some(rt.expose_secret().to_owned())
    }

    /// Writes `state` as a person's login would (the SSO principals' first state).
    pub(crate) fn seed(&mut self, key: &StoreKey, state: TokenState) {
        self.keys.entry(key.clone()).or_default().record = Some(StoreRecord::new(state, 1));
    }
}
