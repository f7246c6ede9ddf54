//! The pace of requests: `RateLimit` (feature `keyed`, in `limit`), and [`Background`], the
//! mark the cache puts on a background refresh so that paced requests let callers who have no
//! token go first. `Background` is always compiled: the cache marks its refreshes whether or not
//! anything paces them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[cfg(feature = "keyed")]
mod limit;

#[cfg(feature = "keyed")]
pub use self::limit::RateLimit;

/// Marks a fetch as a background refresh of a still-valid token, until a caller who has no
/// token joins it ([`make_urgent`](Self::make_urgent)).
#[derive(Debug, Default)]
pub(crate) struct Background {
    urgent: AtomicBool,
    changed: Notify,
}

impl Background {
    #[cfg_attr(not(feature = "keyed"), allow(dead_code))]
    fn is_urgent(&self) -> bool {
        self.urgent.load(Ordering::Acquire)
    }

    /// A caller with no token now waits on this fetch: it stops yielding.
    pub(crate) fn make_urgent(&self) {
        if !self.urgent.swap(true, Ordering::AcqRel) {
            self.changed.notify_waiters();
        }
    }

    /// Runs `fetch` as this background refresh: its paced requests yield to urgent ones.
    pub(crate) async fn scope<T>(self: Arc<Self>, fetch: impl Future<Output = T>) -> T {
        BACKGROUND.scope(self, fetch).await
    }
}

tokio::task_local! {
    static BACKGROUND: Arc<Background>;
}
