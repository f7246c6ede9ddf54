//! [`StripedCounter`]: the hit counter, one stripe per thread.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A hit counter that costs no locked instruction on most threads.
///
/// Up to `STRIPES` live threads each own a stripe (a cache line of its own) and are its only
/// writer, so a plain load and store counts exactly; a thread hands its stripe back when it exits,
/// for the next thread to own. Threads beyond that share one stripe with an atomic add. A single
/// shared counter would make every hit fight over one cache line, which under contention cost
/// more than the rest of the call.
pub(super) struct StripedCounter {
    owned: [Stripe; STRIPES],
    shared: Stripe,
}

pub(super) const STRIPES: usize = 8;

#[repr(align(128))]
#[derive(Default)]
struct Stripe(AtomicU64);

impl Default for StripedCounter {
    fn default() -> Self {
        Self {
            owned: std::array::from_fn(|_| Stripe::default()),
            shared: Stripe::default(),
        }
    }
}

/// Stripes no live thread owns.
static FREE_STRIPES: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static NEXT_STRIPE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A stripe for a thread to own until it exits (`STRIPES`: none is free; share the last one).
pub(super) fn lease_stripe() -> usize {
    let reused = FREE_STRIPES.lock().unwrap_or_else(|e| e.into_inner()).pop();
    reused.unwrap_or_else(|| NEXT_STRIPE.fetch_add(1, Ordering::Relaxed).min(STRIPES))
}

impl StripedCounter {
    /// Counts one on `stripe`, which this thread owns (or `STRIPES`: the shared one).
    #[inline]
    pub(super) fn increment_stripe(&self, stripe: usize) {
        match self.owned.get(stripe) {
            // This thread is the stripe's only writer while it lives.
            Some(stripe) => stripe
                .0
                .store(stripe.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed),
            None => {
                self.shared.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(super) fn sum(&self) -> u64 {
        self.owned
            .iter()
            .chain(std::iter::once(&self.shared))
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

/// Hands `stripe` back when the thread that owned it exits.
pub(super) fn release_stripe(stripe: usize) {
    if stripe < STRIPES {
        FREE_STRIPES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stripe);
    }
}
