//! When a failed request is tried again: the per-request [`RetryPolicy`], the [`RetryBudget`]
//! shared by every caller of a client, and `Retry-After`.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, RETRY_AFTER};

/// When and how often a failed request is tried again.
///
/// The struct is `#[non_exhaustive]` (it may gain a setting in a minor release): start from
/// [`new`](Self::new) (the defaults) or [`none`](Self::none) and change what differs.
///
/// ```
/// use std::time::Duration;
/// use token_provider::RetryPolicy;
///
/// let policy = RetryPolicy::new()
///     .max_attempts(5)
///     .initial_backoff(Duration::from_millis(100))
///     .max_backoff(Duration::from_secs(2))
///     .max_retry_after(Duration::from_secs(10));
/// assert_eq!(policy.max_attempts, 5);
/// ```
///
/// A struct literal does not compile outside this crate:
///
/// ```compile_fail
/// use std::time::Duration;
/// let policy = token_provider::RetryPolicy {
///     max_attempts: 5,
///     initial_backoff: Duration::from_millis(100),
///     max_backoff: Duration::from_secs(2),
///     max_retry_after: Duration::from_secs(10),
/// };
/// ```
#[derive(Debug, Clone)]
#[must_use]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 3; 1 turns retries off).
    pub max_attempts: u32,
    /// The wait before the first retry, doubled for each one after (default 200 ms).
    pub initial_backoff: Duration,
    /// The longest backoff (default 5 s).
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured by waiting; a longer one ends the retries at once with
    /// the provider's figure in the error (default 30 s).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The defaults: 3 attempts, backoffs from 200 ms up to 5 s, a `Retry-After` up to 30 s
    /// waited for.
    pub fn new() -> Self {
        Self::default()
    }

    crate::builder_setters! {
        /// Attempts in all, the first included (sets [`max_attempts`](Self::max_attempts)).
        max_attempts: u32,
        /// The wait before the first retry (sets [`initial_backoff`](Self::initial_backoff)).
        initial_backoff: Duration,
        /// The longest backoff (sets [`max_backoff`](Self::max_backoff)).
        max_backoff: Duration,
        /// The longest `Retry-After` honoured by waiting (sets
        /// [`max_retry_after`](Self::max_retry_after)).
        max_retry_after: Duration,
    }

    /// No retries at all.
    pub fn none() -> Self {
        Self::new().max_attempts(1)
    }

    /// The backoff before retry number `retry` (1-based): exponential, capped, with "equal
    /// jitter" (half fixed, half random) so a fleet of clients does not retry in lockstep.
    #[must_use]
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        let capped = exp.min(self.max_backoff);
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// How many retries a client may make across all its callers (tower's `retry::budget` and
/// reqwest's retry budget are the models): each request deposits `ratio` of a retry, each retry
/// withdraws one, and a `reserve` lets a quiet client retry at all. A provider that fails every
/// request then costs about `1 + ratio` requests per caller, not `max_attempts`.
///
/// The struct is `#[non_exhaustive]`: start from [`new`](Self::new) (the defaults) or
/// [`unlimited`](Self::unlimited) and change what differs:
/// `RetryBudget::new().reserve(20).ratio(0.1)`. A struct literal does not compile outside this
/// crate:
///
/// ```compile_fail
/// let budget = token_provider::http::RetryBudget { reserve: 20, ratio: 0.1 };
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use]
#[non_exhaustive]
pub struct RetryBudget {
    /// Retries allowed beyond those the traffic has earned (default 10).
    pub reserve: u32,
    /// Retries earned per request sent (default 0.2: one retry per five requests).
    pub ratio: f64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            reserve: 10,
            ratio: 0.2,
        }
    }
}

impl RetryBudget {
    /// The defaults: a reserve of 10 retries, 0.2 of a retry earned per request.
    pub fn new() -> Self {
        Self::default()
    }

    crate::builder_setters! {
        /// Retries allowed beyond those the traffic has earned (sets [`reserve`](Self::reserve)).
        reserve: u32,
        /// Retries earned per request sent (sets [`ratio`](Self::ratio)).
        ratio: f64,
    }

    /// No limit beyond each request's own [`RetryPolicy::max_attempts`].
    pub fn unlimited() -> Self {
        Self {
            reserve: u32::MAX,
            ratio: 0.0,
        }
    }
}

/// A [`RetryBudget`]'s running balance.
#[derive(Debug)]
pub(crate) struct Budget {
    config: RetryBudget,
    balance: Mutex<f64>,
}

impl Budget {
    pub(crate) fn new(config: RetryBudget) -> Self {
        Self {
            config,
            balance: Mutex::new(f64::from(config.reserve)),
        }
    }

    fn cap(&self) -> f64 {
        // What the traffic earns is kept up to the reserve again: a burst of failures after a
        // long quiet spell gets the reserve, not everything saved up since.
        f64::from(self.config.reserve).max(1.0) * 2.0
    }

    /// A request is about to be sent for the first time.
    pub(crate) fn deposit(&self) {
        if self.config.reserve == u32::MAX {
            return;
        }
        let mut balance = self.balance.lock().unwrap_or_else(|e| e.into_inner());
        *balance = (*balance + self.config.ratio).min(self.cap());
    }

    /// Whether one more retry is allowed; takes it from the balance when it is.
    pub(crate) fn withdraw(&self) -> bool {
        if self.config.reserve == u32::MAX {
            return true;
        }
        let mut balance = self.balance.lock().unwrap_or_else(|e| e.into_inner());
        if *balance >= 1.0 {
            *balance -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(20));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(20)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn backoff_is_exponential_capped_and_jittered() {
        let p = RetryPolicy::default();
        for retry in 1..10 {
            let full = p
                .initial_backoff
                .saturating_mul(1 << (retry - 1))
                .min(p.max_backoff);
            for _ in 0..50 {
                let b = p.backoff(retry);
                assert!(
                    b >= full / 2 && b <= full,
                    "retry {retry}: {b:?} vs {full:?}"
                );
            }
        }
    }

    #[test]
    fn the_budget_allows_the_reserve_then_a_share_of_the_traffic() {
        let budget = Budget::new(RetryBudget {
            reserve: 2,
            ratio: 0.5,
        });
        assert!(budget.withdraw());
        assert!(budget.withdraw());
        assert!(!budget.withdraw());
        budget.deposit();
        assert!(!budget.withdraw());
        budget.deposit();
        assert!(budget.withdraw());
        let unlimited = Budget::new(RetryBudget::unlimited());
        assert!((0..1000).all(|_| unlimited.withdraw()));
    }
}
