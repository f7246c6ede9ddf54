//! The cache's decisions, synchronous and free of I/O: given what one principal's cache holds
//! and the time, what a call does ([`decide`]), and what a failed fetch changes
//! ([`after_failure`]). [`PrincipalCache`](super::PrincipalCache) reads its state, asks here,
//! and acts; every rule about serving, joining, starting and holding is in this file.

use std::time::{Duration, SystemTime};

use super::config::CacheConfig;
use super::policy;
use crate::Error;

/// What a call sees: the published token's times, the fetch in flight and the held failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct View {
    /// The published token, if any.
    pub(crate) token: Option<TokenTimes>,
    /// Whether a fetch is in flight.
    pub(crate) fetching: bool,
    /// Until when the last failure is answered instead of a new fetch.
    pub(crate) failure_until: Option<SystemTime>,
}

/// When a published token is refreshed, and when it stops being valid (`None`: no expiry known).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TokenTimes {
    pub(crate) refresh_at: SystemTime,
    pub(crate) expires_at: Option<SystemTime>,
}

/// What a call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The token is fresh, or valid with its refresh already under way or held off: answer it.
    Serve,
    /// The token is valid but due: answer it, and start one refresh in the background.
    ServeAndRefresh,
    /// No valid token, a fetch in flight: wait for its outcome.
    Join,
    /// No valid token, nothing in flight, no failure held: start a fetch and wait for it.
    Start,
    /// No valid token and a failure held: answer the failure at once.
    FailHeld,
}

/// What a call at `now` does, given `view`.
pub(crate) fn decide(view: &View, now: SystemTime) -> Decision {
    let held = view.failure_until.is_some_and(|until| now < until);
    match view.token {
        Some(t) if now < t.refresh_at => Decision::Serve,
        Some(t) if t.expires_at.is_none_or(|hard| now < hard) => {
            if view.fetching || held {
                Decision::Serve
            } else {
                Decision::ServeAndRefresh
            }
        }
        _ if view.fetching => Decision::Join,
        _ if held => Decision::FailHeld,
        _ => Decision::Start,
    }
}

/// How a failed fetch is held, and the count of transient failures in a row after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hold {
    /// How long the failure is answered instead of a new fetch.
    pub(crate) hold: Duration,
    pub(crate) consecutive_failures: u32,
}

/// What a failed fetch changes: a transient failure (network, 5xx, 429, a garbled answer, a
/// fetch past its deadline or one that panicked) backs off exponentially, or as long as the
/// provider asked; a permanent one is held for `negative_ttl`; a fetch of a principal forgotten
/// since it began (`forgotten`) holds nothing. `draw` is a random draw in `[0, 1)`.
pub(crate) fn after_failure(
    cfg: &CacheConfig,
    consecutive_failures: u32,
    error: &Error,
    forgotten: bool,
    draw: f64,
) -> Hold {
    if forgotten {
        return Hold {
            hold: Duration::ZERO,
            consecutive_failures,
        };
    }
    if error.is_transient() {
        let failures = consecutive_failures.saturating_add(1);
        Hold {
            hold: policy::backoff(cfg, failures, error.retry_after(), draw),
            consecutive_failures: failures,
        }
    } else {
        Hold {
            hold: cfg.negative_ttl,
            consecutive_failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    /// A token refreshed at 100 s and expiring at 200 s.
    fn token() -> Option<TokenTimes> {
        Some(TokenTimes {
            refresh_at: t(100),
            expires_at: Some(t(200)),
        })
    }

    #[test]
    fn a_fresh_token_is_served_whatever_else_holds() {
        for fetching in [false, true] {
            for failure_until in [None, Some(t(500))] {
                let view = View {
                    token: token(),
                    fetching,
                    failure_until,
                };
                assert_eq!(decide(&view, t(50)), Decision::Serve);
            }
        }
    }

    #[test]
    fn a_due_token_is_served_and_refreshed_once() {
        let view = View {
            token: token(),
            ..View::default()
        };
        assert_eq!(decide(&view, t(150)), Decision::ServeAndRefresh);
        let refreshing = View {
            fetching: true,
            ..view
        };
        assert_eq!(decide(&refreshing, t(150)), Decision::Serve);
        let held = View {
            failure_until: Some(t(160)),
            ..view
        };
        assert_eq!(decide(&held, t(150)), Decision::Serve);
        assert_eq!(decide(&held, t(160)), Decision::ServeAndRefresh);
    }

    #[test]
    fn a_token_without_expiry_is_valid_past_its_refresh_point() {
        let view = View {
            token: Some(TokenTimes {
                refresh_at: t(100),
                expires_at: None,
            }),
            ..View::default()
        };
        assert_eq!(decide(&view, t(10_000)), Decision::ServeAndRefresh);
    }

    #[test]
    fn without_a_valid_token_a_call_joins_fails_or_starts() {
        for token in [None, token()] {
            let now = t(200);
            let mut view = View {
                token,
                ..View::default()
            };
            assert_eq!(decide(&view, now), Decision::Start);
            view.failure_until = Some(t(201));
            assert_eq!(decide(&view, now), Decision::FailHeld);
            view.fetching = true;
            assert_eq!(decide(&view, now), Decision::Join);
            view.fetching = false;
            view.failure_until = Some(now);
            assert_eq!(
                decide(&view, now),
                Decision::Start,
                "a hold ends at its time"
            );
        }
    }

    #[test]
    fn failures_back_off_or_are_held_and_a_forgotten_fetch_holds_nothing() {
        let cfg = CacheConfig::new()
            .backoff(2 * S, 60 * S)
            .negative_ttl(7 * S);
        let transient = Error::timeout(S);
        let first = after_failure(&cfg, 0, &transient, false, 0.0);
        assert_eq!(
            first,
            Hold {
                hold: S,
                consecutive_failures: 1
            }
        );
        let third = after_failure(&cfg, 2, &transient, false, 0.0);
        assert_eq!(third.hold, 4 * S);
        let permanent = Error::rejected(Some(401), None, None);
        assert_eq!(after_failure(&cfg, 3, &permanent, false, 0.5).hold, 7 * S);
        assert_eq!(
            after_failure(&cfg, 3, &permanent, true, 0.5).hold,
            Duration::ZERO
        );
    }
}
