//! [`RateLimit`]: the client-side pace of one credential's requests (feature `keyed`).
//!
//! A partner API that limits requests per key (Aurora Solar: 90 per minute, then 429) is
//! asked no faster than that: a cold start over thousands of tenants makes its requests one
//! after another at the allowed rate instead of a burst answered with 429s and backoffs.
//!
//! - The limit is a GCRA (the [`governor`] crate): requests go out evenly spaced, which no
//!   window-based limit on the server (any window of the period) can refuse. The spacing is 5%
//!   wider than `period / requests`: the server counts requests as they arrive, and a request
//!   can reach it sooner after the one before than it was sent (the earlier one was slowed by a
//!   new connection, a busy core); at 90 a minute that leaves each pair 33 ms of such jitter.
//!   That margin's worth of requests (4 of 90) may go out together, so any window still holds
//!   at most the limit. Each attempt of a request counts, retries included.
//! - Waiting requests go in arrival order (a fair queue), except that a request made for a
//!   caller who has no token at all goes ahead of one made by a background refresh of a
//!   still-valid token: a background refresh waits while any such request waits, and gives up
//!   its place when one arrives before its permit has come.
//! - The limiter's clock is tokio's monotonic one, on which the waits are timed (a rate is a
//!   matter of elapsed time, not of the wall clock; a test with paused time paces in it).

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::Notify;

use super::{BACKGROUND, Background};
use crate::Error;

/// How much wider than the limit's the spacing of requests is.
const MARGIN: f64 = 0.05;

/// A limit on how fast one credential's requests go out. Cheap to clone: clones share the
/// limit, so give the same value to every client that uses the same credential.
#[derive(Clone)]
pub struct RateLimit {
    inner: Arc<Pacer>,
}

struct Pacer {
    limiter: RateLimiter<NotKeyed, InMemoryState, TokioTime, NoOpMiddleware<std::time::Instant>>,
    requests: u32,
    period: Duration,
    /// Requests in arrival order: tokio's mutex is fair (first come, first served).
    queue: tokio::sync::Mutex<()>,
    /// Requests for callers with no token, waiting now.
    urgent: AtomicUsize,
    /// Signalled when the last of them has gone out.
    urgent_gone: Notify,
    /// Signalled when one arrives.
    urgent_arrived: Notify,
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("requests", &self.inner.requests)
            .field("period", &self.inner.period)
            .finish()
    }
}

impl RateLimit {
    /// At most `requests` per minute (Aurora Solar's default is 90 per key).
    pub fn per_minute(requests: u32) -> Result<Self, Error> {
        Self::new(requests, Duration::from_secs(60))
    }

    /// At most `requests` per `period`, evenly spaced (with the margin of the module docs).
    pub fn new(requests: u32, period: Duration) -> Result<Self, Error> {
        let count = NonZeroU32::new(requests)
            .ok_or_else(|| Error::config("rate_limit", "must allow at least one request"))?;
        let spacing = (period / count.get()).mul_f64(1.0 + MARGIN);
        // The margin's worth of requests may go together, so in any window of `period` at most
        // `burst + requests / (1 + MARGIN) <= requests` go out; a burst of two or more also
        // lets a request that went out late (a timer's tick) not delay all that follow.
        let burst = ((f64::from(requests) * MARGIN / (1.0 + MARGIN)) as u32).max(1);
        let quota = Quota::with_period(spacing)
            .ok_or_else(|| Error::config("rate_limit", "needs a period longer than zero"))?
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Ok(Self {
            inner: Arc::new(Pacer {
                limiter: RateLimiter::direct_with_clock(quota, TokioTime),
                requests,
                period,
                queue: tokio::sync::Mutex::new(()),
                urgent: AtomicUsize::new(0),
                urgent_gone: Notify::new(),
                urgent_arrived: Notify::new(),
            }),
        })
    }

    /// How many requests per how long.
    pub fn rate(&self) -> (u32, Duration) {
        (self.inner.requests, self.inner.period)
    }

    /// Waits for this request's turn: after the requests that came before it (and, for a
    /// background refresh, after every waiting request of a caller with no token).
    pub(crate) async fn ready(&self) {
        #[cfg(feature = "metrics")]
        let asked = tokio::time::Instant::now();
        self.take_turn().await;
        crate::observe::with_metrics! {
            let waited = asked.elapsed();
            // A permit at once is no wait; a wait of a timer's tick or more is.
            if waited >= std::time::Duration::from_millis(1) {
                crate::metrics::paced(waited.as_secs_f64());
            }
        }
    }

    /// [`ready`](Self::ready)'s wait.
    async fn take_turn(&self) {
        let pacer = &*self.inner;
        let background = BACKGROUND.try_with(Arc::clone).ok();
        let urgent = background.as_ref().is_none_or(|b| b.is_urgent());
        let _counted = urgent.then(|| UrgentWaiter::new(pacer));
        let Some(background) = background else {
            let _turn = pacer.queue.lock().await;
            while let Err(not_until) = pacer.limiter.check() {
                tokio::time::sleep(not_until.wait_time_from(TokioTime.now())).await;
            }
            return;
        };
        // A background refresh takes its turn only while no caller without a token waits, and
        // gives it up (for the back of the queue) when one arrives before its permit comes.
        loop {
            background.yield_to_urgent(pacer).await;
            let _turn = pacer.queue.lock().await;
            loop {
                let arrived = pacer.urgent_arrived.notified();
                tokio::pin!(arrived);
                arrived.as_mut().enable();
                if !background.is_urgent() && pacer.urgent.load(Ordering::Acquire) > 0 {
                    break;
                }
                let wait = match pacer.limiter.check() {
                    Ok(()) => return,
                    Err(not_until) => not_until.wait_time_from(TokioTime.now()),
                };
                let slept = tokio::time::sleep(wait);
                tokio::pin!(slept);
                first_of(slept, arrived).await;
            }
        }
    }
}

/// The limiter's clock: tokio's, on which the waits are timed (so a test with paused time
/// paces in paused time too).
#[derive(Debug, Clone, Copy)]
struct TokioTime;

impl governor::clock::Clock for TokioTime {
    type Instant = std::time::Instant;

    fn now(&self) -> std::time::Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// Counts one urgent request while it waits.
struct UrgentWaiter<'a>(&'a Pacer);

impl<'a> UrgentWaiter<'a> {
    fn new(pacer: &'a Pacer) -> Self {
        pacer.urgent.fetch_add(1, Ordering::AcqRel);
        pacer.urgent_arrived.notify_waiters();
        Self(pacer)
    }
}

impl Drop for UrgentWaiter<'_> {
    fn drop(&mut self) {
        if self.0.urgent.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.urgent_gone.notify_waiters();
        }
    }
}

impl Background {
    async fn yield_to_urgent(&self, pacer: &Pacer) {
        loop {
            let gone = pacer.urgent_gone.notified();
            let changed = self.changed.notified();
            tokio::pin!(gone, changed);
            // Registered before the check, so a change between the check and the wait wakes us.
            gone.as_mut().enable();
            changed.as_mut().enable();
            if self.is_urgent() || pacer.urgent.load(Ordering::Acquire) == 0 {
                return;
            }
            first_of(gone, changed).await;
        }
    }
}

/// Waits for whichever of `a` and `b` finishes first.
async fn first_of(
    mut a: std::pin::Pin<&mut impl Future<Output = ()>>,
    mut b: std::pin::Pin<&mut impl Future<Output = ()>>,
) {
    std::future::poll_fn(|cx| {
        if a.as_mut().poll(cx).is_ready() || b.as_mut().poll(cx).is_ready() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn a_zero_rate_is_refused_by_name() {
        let e = RateLimit::per_minute(0).unwrap_err().to_string();
        assert!(e.contains("rate_limit"), "{e}");
        assert!(RateLimit::new(1, Duration::ZERO).is_err());
    }

    #[test]
    fn no_window_of_the_period_holds_more_than_the_limit() {
        for requests in [1, 10, 20, 90, 1000] {
            let limit = RateLimit::per_minute(requests).unwrap();
            let spacing = 60.0 / f64::from(requests) * (1.0 + MARGIN);
            let more = NonZeroU32::new(requests + 1).unwrap();
            let burst = limit.inner.limiter.check_n(more).unwrap_err();
            let burst = burst.0;
            let most = f64::from(burst) + (60.0 / spacing).floor();
            assert!(
                most <= f64::from(requests),
                "{requests}/min: {most} in a minute"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_go_out_evenly_spaced() {
        let limit = RateLimit::new(10, Duration::from_millis(500)).unwrap();
        let started = tokio::time::Instant::now();
        for _ in 0..6 {
            limit.ready().await;
        }
        // Six requests, no burst: the first at once, then one each 50 ms.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(240), "{elapsed:?}");
    }

    /// Waiting requests go out in arrival order, except that callers with no token go before a
    /// background refresh that arrived earlier. In paused time (the limiter's clock is tokio's):
    /// each task has run as far as it can before the clock moves, so the arrivals are 10 ms
    /// apart and the permits 105 ms apart whatever the load on the machine.
    #[tokio::test(start_paused = true)]
    async fn callers_without_a_token_go_before_background_refreshes() {
        let limit = RateLimit::new(1, Duration::from_millis(100)).unwrap();
        limit.ready().await; // the first permit: everyone after it waits
        let order = Arc::new(Mutex::new(Vec::new()));
        let spawn = |name: &'static str, background: bool| {
            let limit = limit.clone();
            let order = Arc::clone(&order);
            tokio::spawn(async move {
                let go = async {
                    limit.ready().await;
                    order.lock().unwrap().push(name);
                };
                if background {
                    Arc::new(Background::default()).scope(go).await;
                } else {
                    go.await;
                }
            })
        };
        let pause = || tokio::time::sleep(Duration::from_millis(10));
        let bg = spawn("refresh", true);
        pause().await;
        let first = spawn("first", false);
        pause().await;
        let second = spawn("second", false);
        for task in [bg, first, second] {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["first", "second", "refresh"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_background_refresh_that_a_caller_joins_stops_yielding() {
        let limit = RateLimit::new(1, Duration::from_millis(100)).unwrap();
        limit.ready().await;
        // An urgent request waits for a turn that will not come soon.
        let _blocker = limit.inner.urgent.fetch_add(1, Ordering::AcqRel);
        let background = Arc::new(Background::default());
        let task = {
            let limit = limit.clone();
            let background = Arc::clone(&background);
            tokio::spawn(background.scope(async move { limit.ready().await }))
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            !task.is_finished(),
            "a background refresh went before a waiting caller"
        );
        background.make_urgent();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the joined refresh goes out")
            .unwrap();
    }
}
