//! Each thread's copies of the single-token caches' current tokens, and the hit-counter stripe
//! it owns: what lets a hit clone a token no other thread touches.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Weak};

use super::counter::{STRIPES, StripedCounter, lease_stripe, release_stripe};
use super::entry::Entry;
use crate::AccessToken;
use crate::clock::nanos;

/// How many caches' tokens one thread keeps copies of.
const LOCAL_COPIES: usize = 8;

/// One thread's copy of one cache entry's token.
///
/// Every hit hands out a clone, and a clone touches the token's reference count; were all
/// threads to clone one allocation, that count's cache line would bounce between cores on every
/// call (it dominated the hit path under contention). So a single-token cache lets each thread
/// keep its own copy of the current token and clone that.
///
/// A copy is served only while its `generation` is the one its cache publishes, so it is never
/// served after its entry was replaced, invalidated or forgotten. It is dropped (and its secret
/// zeroized) at this thread's next hit on any cache once its entry is gone (`entry` has no strong
/// reference left: replaced and released, or its cache dropped), or when the thread exits. A
/// thread keeps at most [`LOCAL_COPIES`] copies; past that, hits clone the shared token (no
/// allocation, some contention).
pub(super) struct LocalCopy {
    generation: u64,
    entry: Weak<Entry>,
    /// The entry's refresh point ([`nanos`]).
    soft: u64,
    token: AccessToken,
}

/// What each thread keeps: its token copies and the hit-counter stripe it owns, in one
/// thread-local so a hit reaches both with one access.
pub(super) struct ThreadCopies {
    pub(super) copies: RefCell<Vec<LocalCopy>>,
    /// The stripe of every [`StripedCounter`] this thread writes alone: `UNLEASED` until its
    /// first hit, `STRIPES` when none was free then (it uses the shared one).
    stripe: Cell<usize>,
}

const UNLEASED: usize = usize::MAX;

impl ThreadCopies {
    #[inline]
    fn stripe(&self) -> usize {
        match self.stripe.get() {
            UNLEASED => {
                let stripe = lease_stripe();
                self.stripe.set(stripe);
                stripe
            }
            stripe => stripe,
        }
    }
}

impl Drop for ThreadCopies {
    fn drop(&mut self) {
        release_stripe(self.stripe.get());
    }
}

thread_local! {
    pub(super) static LOCAL: ThreadCopies = const {
        ThreadCopies {
            copies: RefCell::new(Vec::new()),
            stripe: Cell::new(UNLEASED),
        }
    };
}

/// This thread's copy of the entry published as `generation`, if it is fresh at `now` (in
/// [`nanos`]), counted as a hit in `hits`; drops the copies whose entries are gone.
#[inline]
pub(super) fn local_hit(generation: u64, now: u64, hits: &StripedCounter) -> Option<AccessToken> {
    LOCAL
        .try_with(|local| {
            let mut copies = local.copies.try_borrow_mut().ok()?;
            let mut found = None;
            let mut dead = false;
            for copy in copies.iter() {
                if copy.generation == generation {
                    found = Some(copy);
                } else {
                    dead |= copy.entry.strong_count() == 0;
                }
            }
            let token = found
                .filter(|copy| now < copy.soft)
                .map(|copy| copy.token.clone());
            if dead {
                drop_dead_copies(&mut copies, generation);
            }
            if token.is_some() {
                hits.increment_stripe(local.stripe());
            }
            token
        })
        .ok()
        .flatten()
}

/// Counts a hit on a cache that keeps no copies in `hits`, and drops this thread's copies (of
/// single-token caches) whose entries are gone, so they still go at its next hit whichever
/// cache it hits: both in one access to the thread-local.
#[inline]
pub(super) fn count_keyed_hit(hits: &StripedCounter) {
    let stripe = LOCAL
        .try_with(|local| {
            drop_dead_copies_of(local);
            local.stripe()
        })
        .unwrap_or(STRIPES);
    hits.increment_stripe(stripe);
}

/// Drops (and so zeroizes) this thread's copies whose entries are gone.
#[inline]
pub(super) fn drop_dead_local_copies() {
    let _ = LOCAL.try_with(drop_dead_copies_of);
}

/// Drops (and so zeroizes) `local`'s copies whose entries are gone.
#[inline]
fn drop_dead_copies_of(local: &ThreadCopies) {
    if let Ok(mut copies) = local.copies.try_borrow_mut()
        && copies.iter().any(|c| c.entry.strong_count() == 0)
    {
        // No copy is tagged 0.
        drop_dead_copies(&mut copies, 0);
    }
}

/// Drops (and so zeroizes) the copies whose entries are gone, but the one of `generation`.
#[cold]
#[inline(never)]
fn drop_dead_copies(copies: &mut Vec<LocalCopy>, generation: u64) {
    copies.retain(|c| c.generation == generation || c.entry.strong_count() > 0);
}

/// The token of `entry` from this thread's copy, made now if there is none and there is room
/// (`None`: no room, the thread is exiting, or this thread's copy tagged `generation` holds
/// another entry's token).
///
/// `generation` was read before `entry` was loaded, so `entry` is the one published as
/// `generation` or a newer one whose generation is not yet stored; the copy is tagged
/// `generation` either way. A copy already tagged `generation` is used only if it is `entry`'s:
/// made in such a window, it may hold the entry this one replaces.
pub(super) fn local_copy(generation: u64, entry: &Arc<Entry>) -> Option<AccessToken> {
    LOCAL
        .try_with(|local| {
            let mut copies = local.copies.try_borrow_mut().ok()?;
            drop_dead_copies(&mut copies, generation);
            if let Some(copy) = copies.iter().find(|c| c.generation == generation) {
                return std::ptr::eq(copy.entry.as_ptr(), Arc::as_ptr(entry))
                    .then(|| copy.token.clone());
            }
            if copies.len() >= LOCAL_COPIES {
                return None;
            }
            let token = entry.state.access_token.deep_copy();
            copies.push(LocalCopy {
                generation,
                entry: Arc::downgrade(entry),
                soft: nanos(entry.soft()),
                token: token.clone(),
            });
            Some(token)
        })
        .ok()
        .flatten()
}

/// How many token copies this thread holds (for tests of their bound).
#[cfg(test)]
pub(super) fn local_copies() -> usize {
    LOCAL.with(|l| l.copies.borrow().len())
}

/// Counts a hit in `hits`, on the stripe this thread owns (or the shared one).
#[inline]
pub(super) fn count_hit(hits: &StripedCounter) {
    hits.increment_stripe(LOCAL.try_with(ThreadCopies::stripe).unwrap_or(STRIPES));
}
