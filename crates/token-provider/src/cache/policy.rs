//! When a token is refreshed and how long a failure is held: pure functions of the
//! configuration, the state, the time and a random draw in `[0, 1)` (passed in, so each rule is
//! tested without a runtime and replays exactly in the simulation).

use std::time::{Duration, SystemTime};

use super::config::CacheConfig;
use crate::TokenState;

/// When `state`'s token is refreshed, with the same rules whether it was just fetched or adopted
/// from a store: the margin is a fifth of the lifetime the token had when it was obtained (at
/// most `max_margin`) plus up to a tenth of that lifetime drawn by `draw`, so principals fetched
/// together come due spread out; a fixed margin is kept to, less up to a tenth of it. The token
/// is used no longer than `max_lifetime` after it was obtained, and one with no expiry no longer
/// than `default_lifetime`. A state of unknown age (stored before `obtained_at` was recorded)
/// gets the full margin, and is not reused at all when it has no expiry.
pub(crate) fn refresh_point(
    cfg: &CacheConfig,
    state: &TokenState,
    now: SystemTime,
    draw: f64,
) -> SystemTime {
    // An issue time in the future (a writer whose clock ran ahead) or at or after the expiry
    // says nothing trustworthy about the token's age: treated as unknown.
    let obtained = state.obtained_at.filter(|obtained| {
        *obtained <= now
            && state
                .access_token
                .expires_at()
                .is_none_or(|hard| *obtained < hard)
    });
    let limit = obtained.unwrap_or(now) + cfg.max_lifetime;
    match state.access_token.expires_at() {
        Some(hard) => {
            let early = match (cfg.margin, obtained) {
                (Some(margin), _) => margin.saturating_sub(margin.mul_f64(0.1 * draw)),
                (None, Some(obtained)) => {
                    let lifetime = hard.duration_since(obtained).unwrap_or(Duration::ZERO);
                    let margin = cfg.max_margin.min(lifetime / 5);
                    margin.saturating_add((lifetime / 10).mul_f64(draw))
                }
                (None, None) => cfg.max_margin,
            };
            hard.checked_sub(early).unwrap_or(hard).min(limit)
        }
        None => match obtained {
            Some(obtained) => (obtained + cfg.default_lifetime).min(limit),
            None => now,
        },
    }
}

/// How long the `failures`-th transient failure in a row is held: `backoff_initial` doubling to
/// at most `backoff_max`, jittered over its upper half by `draw`; the provider's `retry_after`
/// wins when longer, up to `backoff_max` (a `Retry-After` of a day must not shut every caller
/// out for a day).
pub(crate) fn backoff(
    cfg: &CacheConfig,
    failures: u32,
    retry_after: Option<Duration>,
    draw: f64,
) -> Duration {
    let exp = cfg
        .backoff_initial
        .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
        .min(cfg.backoff_max);
    let half = exp / 2;
    let jittered = half + half.mul_f64(draw);
    retry_after.map_or(jittered, |ra| ra.min(cfg.backoff_max).max(jittered))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AccessToken;

    const HOUR: Duration = Duration::from_secs(3600);

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn state(lifetime: Duration, obtained: Option<SystemTime>) -> TokenState {
        TokenState::new(
            AccessToken::builder("t")
                .expires_at(t0() + lifetime)
                .build(),
        )
        .with_obtained_at(obtained)
    }

    #[test]
    fn the_margin_is_a_fifth_of_the_lifetime_at_most_five_minutes_plus_the_spread() {
        let cfg = CacheConfig::new();
        let hour = state(HOUR, Some(t0()));
        assert_eq!(
            refresh_point(&cfg, &hour, t0(), 0.0),
            t0() + HOUR - 5 * 60 * SECOND
        );
        assert_eq!(
            refresh_point(&cfg, &hour, t0(), 0.5),
            t0() + HOUR - 5 * 60 * SECOND - 3 * 60 * SECOND
        );
        let ten_minutes = state(600 * SECOND, Some(t0()));
        assert_eq!(
            refresh_point(&cfg, &ten_minutes, t0(), 0.0),
            t0() + 480 * SECOND
        );
    }

    #[test]
    fn a_state_of_unknown_age_gets_the_full_margin_and_no_expiry_is_not_reused() {
        let cfg = CacheConfig::new();
        assert_eq!(
            refresh_point(&cfg, &state(HOUR, None), t0(), 0.9),
            t0() + HOUR - 300 * SECOND
        );
        let no_expiry = TokenState::new(AccessToken::new("t"));
        assert_eq!(refresh_point(&cfg, &no_expiry, t0(), 0.5), t0());
        let obtained = no_expiry.with_obtained_at(t0());
        assert_eq!(refresh_point(&cfg, &obtained, t0(), 0.5), t0() + HOUR);
    }

    #[test]
    fn an_issue_time_in_the_future_is_taken_as_unknown() {
        let cfg = CacheConfig::new();
        let ahead = state(HOUR, Some(t0() + 60 * SECOND));
        assert_eq!(
            refresh_point(&cfg, &ahead, t0(), 0.5),
            t0() + HOUR - 300 * SECOND
        );
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_honours_retry_after_up_to_it() {
        let cfg = CacheConfig::new().backoff(SECOND, 8 * SECOND);
        assert_eq!(backoff(&cfg, 1, None, 0.0), SECOND / 2);
        assert_eq!(backoff(&cfg, 2, None, 0.999_999), 2 * SECOND - 1000 * NANO);
        assert_eq!(backoff(&cfg, 30, None, 0.0), 4 * SECOND);
        assert_eq!(backoff(&cfg, 1, Some(5 * SECOND), 0.0), 5 * SECOND);
        assert_eq!(backoff(&cfg, 1, Some(HOUR), 0.0), 8 * SECOND);
    }

    const SECOND: Duration = Duration::from_secs(1);
    const NANO: Duration = Duration::from_nanos(1);
}
