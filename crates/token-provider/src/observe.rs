//! What the fetch span and the metrics say about a fetch, compiled with or without the
//! `metrics` feature (the span is always there): its [`Outcome`] and the [`principal_digest`].
//! [`with_metrics!`] runs a statement only with the feature.

// Reached through `crate::metrics` only with the feature; the span uses them without it.
#![cfg_attr(not(feature = "metrics"), allow(unreachable_pub, dead_code))]

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::Error;
use crate::store::StoreKey;

/// Runs the statements only with the `metrics` feature: without it they are not compiled.
macro_rules! with_metrics {
    ($($body:tt)*) => {
        #[cfg(feature = "metrics")]
        {
            $($body)*
        }
    };
}
pub(crate) use with_metrics;

/// How a fetch ended: the `outcome` label of `partner_auth_fetches_total` and the `outcome`
/// field of the `partner_auth.fetch` span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// A new token from the provider.
    Ok,
    /// A fresh token another holder of the store saved, adopted without a request.
    Adopted,
    /// The provider refused the credentials ([`Error::Rejected`]).
    Rejected,
    /// A person must act: sign in again, a new session token ([`Error::UserAction`]).
    UserAction,
    /// The configuration is wrong ([`Error::Config`]).
    Config,
    /// The provider said 429 ([`Error::RateLimited`]).
    RateLimited,
    /// The network, a 5xx, a garbled or oversized answer: tried again after a backoff.
    Transient,
    /// The fetch or its requests ran out of time ([`Error::Timeout`], [`Error::TimedOut`]).
    Timeout,
    /// The fetcher panicked (held like a transient failure).
    Panicked,
    /// The store failed, was busy, or refused a stale write.
    Store,
}

impl Outcome {
    /// Every outcome, in declared order.
    pub const ALL: [Outcome; 10] = [
        Outcome::Ok,
        Outcome::Adopted,
        Outcome::Rejected,
        Outcome::UserAction,
        Outcome::Config,
        Outcome::RateLimited,
        Outcome::Transient,
        Outcome::Timeout,
        Outcome::Panicked,
        Outcome::Store,
    ];

    /// The label value: `ok`, `adopted`, `rejected`, `user_action`, `config`, `rate_limited`,
    /// `transient`, `timeout`, `panicked` or `store`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Adopted => "adopted",
            Outcome::Rejected => "rejected",
            Outcome::UserAction => "user_action",
            Outcome::Config => "config",
            Outcome::RateLimited => "rate_limited",
            Outcome::Transient => "transient",
            Outcome::Timeout => "timeout",
            Outcome::Panicked => "panicked",
            Outcome::Store => "store",
        }
    }

    /// The outcome of a fetch that failed with `error`.
    pub fn of(error: &Error) -> Self {
        match error {
            Error::Config { .. } => Outcome::Config,
            Error::Rejected { .. } | Error::Rotated(_) => Outcome::Rejected,
            Error::UserAction { .. } => Outcome::UserAction,
            Error::RateLimited { .. } => Outcome::RateLimited,
            Error::Transport { source, .. } if source.is::<Panicked>() => Outcome::Panicked,
            Error::Transport { .. }
            | Error::Status { .. }
            | Error::Unavailable { .. }
            | Error::Malformed { .. }
            | Error::TooLarge { .. } => Outcome::Transient,
            Error::Timeout(_) | Error::TimedOut { .. } => Outcome::Timeout,
            Error::Store { .. }
            | Error::StoreBusy { .. }
            | Error::StoreUnavailable { .. }
            | Error::StoreFenced { .. } => Outcome::Store,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a panicking fetch fails with: the source of its [`Error::Transport`], so its outcome is
/// told apart from a network failure.
#[derive(Debug)]
pub(crate) struct Panicked;

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the token fetch panicked")
    }
}

impl std::error::Error for Panicked {}

/// The `principal` field of the fetch span: 8 hex digits of the SHA-256 of a fixed label and
/// the principal's store key. The same in every replica and every restart, so one principal's
/// fetches can be followed across a fleet; never the key's parts (a tenant id, a user). A digest
/// is not encryption: whoever can guess a principal's key can check the guess.
pub fn principal_digest(key: &StoreKey) -> String {
    digest(key.as_str())
}

/// [`principal_digest`] of any text (a principal with no store key, by its `Debug` form).
pub(crate) fn digest(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"partner-auth principal\0")
        .chain_update(text.as_bytes())
        .finalize();
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// A fetch whose panic is its result: a transient failure, held with backoff like any other,
/// rather than a task that ends without an answer. (Over a boxed future, so it is polled
/// without a pin projection.) Around the fetcher itself, so the store protocol
/// records what became of the refresh token it presented; around the whole fetch too.
pub(crate) struct CatchPanic<Fut>(pub(crate) Fut);

impl<T, Fut: Future<Output = Result<T, Error>> + Unpin> Future for CatchPanic<Fut> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = Pin::new(&mut self.0);
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(poll) => poll,
            Err(_) => Poll::Ready(Err(Error::transport(Panicked))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_short_stable_and_names_nothing() {
        let key = StoreKey::new("aurora-solar", "production", "tenant-1234", "");
        let digest = principal_digest(&key);
        assert_eq!(digest.len(), 8);
        assert!(digest.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(digest, principal_digest(&key.clone()));
        let other = StoreKey::new("aurora-solar", "production", "tenant-1235", "");
        assert_ne!(digest, principal_digest(&other));
        assert!(!digest.contains("1234"));
    }

    #[test]
    fn every_error_has_an_outcome_and_every_outcome_a_distinct_label() {
        let labels: std::collections::HashSet<_> =
            Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(labels.len(), Outcome::ALL.len());
        assert_eq!(Outcome::of(&Error::transport(Panicked)), Outcome::Panicked);
        assert_eq!(Outcome::of(&Error::transport("reset")), Outcome::Transient);
        assert_eq!(
            Outcome::of(&Error::Timeout(std::time::Duration::from_secs(1))),
            Outcome::Timeout
        );
        assert_eq!(
            Outcome::of(&Error::store("disk full", None)),
            Outcome::Store
        );
    }
}
