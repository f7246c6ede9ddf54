//! The cache's rules, each proved with paused tokio time and a counting fetcher: no real sleeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use token_provider::testing::{Scripted, key, state_at};
use token_provider::{
    AccessToken, CacheConfig, CachedTokenProvider, Error, MemoryStore, Secret, StoreLock,
    TokenProvider, TokenState, TokenStore, TokioClock,
};

const HOUR: Duration = Duration::from_secs(3600);
const MIN: Duration = Duration::from_secs(60);

use token_provider::testing::epoch as t0;

/// A cache over a [`Scripted`] fetcher (named `key("me")` in a store) on a tokio clock.
struct Harness {
    provider: CachedTokenProvider<Scripted>,
    fetcher: Scripted,
    clock: TokioClock,
}

impl Harness {
    fn calls(&self) -> usize {
        self.fetcher.calls()
    }
    fn now(&self) -> SystemTime {
        token_provider::Clock::now(&self.clock)
    }
}

/// A fetcher taking `delay` of (tokio) time and answering `script(n, previous)`.
fn harness(
    delay: Duration,
    config: impl FnOnce(CacheConfig) -> CacheConfig,
    script: impl Fn(usize, Option<&TokenState>) -> Result<TokenState, Error> + Send + Sync + 'static,
) -> Harness {
    let clock = TokioClock::new(t0());
    let fetcher = Scripted::new(move |call| script(call.n, call.previous))
        .delay(delay)
        .store_key(key("me"));
    let config = config(CacheConfig::new().clock(Arc::new(clock.clone())));
    Harness {
        provider: CachedTokenProvider::with_config(fetcher.clone(), config),
        fetcher,
        clock,
    }
}

/// Token number `n`, valid for `lifetime` from the (tokio-driven) clock's now.
fn token_n(clock: &TokioClock, n: usize, lifetime: Duration) -> TokenState {
    let now = token_provider::Clock::now(clock);
    state_at(format!("token-{n}"), None, now, Some(lifetime))
}

fn hourly(clock: TokioClock) -> impl Fn(usize, Option<&TokenState>) -> Result<TokenState, Error> {
    move |n, _| Ok(token_n(&clock, n, HOUR))
}

/// `n` callers asking `h`'s cache for a token at the same time (all spawned before any is
/// awaited): their answers.
async fn concurrent_tokens(h: &Harness, n: usize) -> Vec<Result<AccessToken, Error>> {
    let provider = Arc::new(h.provider.clone());
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let p = Arc::clone(&provider);
            tokio::spawn(async move { p.token().await })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

fn secret_of(t: &AccessToken) -> &str {
    t.secret().expose_secret()
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_callers_cause_one_fetch() {
    let clock = TokioClock::new(t0());
    let h = harness(Duration::from_millis(50), |c| c, hourly(clock));
    for answer in concurrent_tokens(&h, 1000).await {
        assert_eq!(secret_of(&answer.unwrap()), "token-0");
    }
    assert_eq!(h.calls(), 1);
    let stats = h.provider.stats();
    assert_eq!(stats.fetches, 1);
    assert_eq!(stats.misses, 1000);
    // A fresh token afterwards costs nothing.
    h.provider.token().await.unwrap();
    assert_eq!(h.calls(), 1);
    assert_eq!(h.provider.stats().hits, 1);
}

#[tokio::test(start_paused = true)]
async fn the_soft_window_serves_at_once_and_refreshes_once_in_the_background() {
    let clock = TokioClock::new(t0());
    let h = harness(Duration::from_millis(200), |c| c, hourly(clock));
    let first = h.provider.token().await.unwrap();
    assert_eq!(secret_of(&first), "token-0");
    let soft = h.provider.soft_expiry().unwrap();
    let until_soft = soft.duration_since(h.now()).unwrap();
    tokio::time::sleep(until_soft + Duration::from_secs(1)).await;

    // Fifty callers in the soft window: each answered before a single millisecond passes (the
    // refresh takes 200 ms), all with the still-valid token.
    for _ in 0..50 {
        let t = tokio::time::timeout(Duration::from_millis(1), h.provider.token())
            .await
            .expect("a soft-window caller waited for the refresh")
            .unwrap();
        assert_eq!(secret_of(&t), "token-0");
    }
    assert_eq!(
        h.provider.stats().fetches,
        2,
        "exactly one background refresh started"
    );
    tokio::task::yield_now().await;
    assert_eq!(h.calls(), 2, "exactly one background refresh ran");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(secret_of(&h.provider.token().await.unwrap()), "token-1");
    assert_eq!(h.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_transient_refresh_failure_keeps_the_old_token_until_hard_expiry() {
    let clock = TokioClock::new(t0());
    let c2 = clock.clone();
    let h = harness(
        Duration::from_millis(10),
        |c| c,
        move |n, _| {
            if n == 0 {
                Ok(token_n(&c2, 0, HOUR))
            } else {
                Err(Error::http_status(503))
            }
        },
    );
    let first = h.provider.token().await.unwrap();
    let expires_at = first.expires_at().unwrap();
    let soft = h.provider.soft_expiry().unwrap();
    tokio::time::sleep(soft.duration_since(h.now()).unwrap() + Duration::from_secs(1)).await;

    // Through the whole soft window (minutes), despite failing refreshes, the old token is served.
    while h.now() + Duration::from_secs(5) < expires_at {
        let t = h.provider.token().await.unwrap();
        assert_eq!(secret_of(&t), "token-0");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let refreshes = h.calls() - 1;
    // Backed off exponentially (1 s, 2 s, 4 s, ... capped): far fewer tries than the ~60 calls.
    assert!(
        (2..=12).contains(&refreshes),
        "{refreshes} refresh attempts"
    );

    // After hard expiry the failure reaches the caller.
    tokio::time::sleep(expires_at.duration_since(h.now()).unwrap() + Duration::from_secs(600))
        .await;
    let err = h.provider.token().await.unwrap_err();
    assert!(matches!(err, Error::Status { status: 503, .. }), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn transient_failures_back_off_and_honour_retry_after() {
    let h = harness(
        Duration::from_millis(10),
        |c| c,
        move |_, _| Err(Error::rate_limited(Some(Duration::from_secs(120)))),
    );
    let err = h.provider.token().await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    // Within the provider's two minutes, callers get the same answer without a request.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(matches!(
            h.provider.token().await,
            Err(Error::RateLimited { .. })
        ));
    }
    assert_eq!(h.calls(), 1);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let _ = h.provider.token().await;
    assert_eq!(h.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_is_held_not_retried_in_a_loop() {
    let h = harness(
        Duration::from_millis(20),
        |c| c.negative_ttl(Duration::from_secs(5)),
        |_, _| {
            Err(Error::rejected(
                Some(400),
                Some("invalid_grant"),
                Some("bad password"),
            ))
        },
    );
    for answer in concurrent_tokens(&h, 1000).await {
        let err = answer.unwrap_err();
        assert!(err.is_rejected(), "{err:?}");
    }
    assert_eq!(
        h.calls(),
        1,
        "a thousand callers with bad credentials: one request"
    );
    for _ in 0..100 {
        assert!(h.provider.token().await.unwrap_err().is_rejected());
    }
    assert_eq!(h.calls(), 1);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(h.provider.token().await.unwrap_err().is_rejected());
    assert_eq!(h.calls(), 2, "tried again only after the hold");
    assert_eq!(h.provider.stats().failures, 2);
}

#[tokio::test(start_paused = true)]
async fn a_stale_invalidate_keeps_the_newer_token() {
    let clock = TokioClock::new(t0());
    let h = harness(Duration::from_millis(5), |c| c, hourly(clock));
    let a = h.provider.token().await.unwrap();
    h.provider.invalidate(&a);
    let b = h.provider.token().await.unwrap();
    assert_eq!(secret_of(&b), "token-1");
    assert_eq!(h.calls(), 2);
    // A late 401 for the old token: the new one stays.
    h.provider.invalidate(&a);
    let still = h.provider.token().await.unwrap();
    assert_eq!(still, b);
    assert_eq!(h.calls(), 2);
    // An equal token built elsewhere counts as the same token.
    h.provider.invalidate(&AccessToken::new("token-1"));
    assert_eq!(secret_of(&h.provider.token().await.unwrap()), "token-2");
}

#[tokio::test(start_paused = true)]
async fn invalidate_keeps_the_refresh_token_for_the_next_fetch() {
    let clock = TokioClock::new(t0());
    let h = harness(
        Duration::from_millis(5),
        |c| c,
        move |n, _| {
            Ok(token_n(&clock, n, HOUR).with_refresh_token(Some(Secret::new(format!("rt-{n}")))))
        },
    );
    let a = h.provider.token().await.unwrap();
    h.provider.invalidate(&a);
    h.provider.token().await.unwrap();
    assert_eq!(h.fetcher.presented(), vec![None, Some("rt-0".to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_leaders_future_neither_cancels_nor_poisons_the_fetch() {
    let clock = TokioClock::new(t0());
    let h = harness(Duration::from_millis(100), |c| c, hourly(clock));
    let provider = Arc::new(h.provider.clone());
    let p = Arc::clone(&provider);
    let leader = tokio::spawn(async move { p.token().await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let p = Arc::clone(&provider);
    let follower = tokio::spawn(async move { p.token().await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let t = follower.await.unwrap().unwrap();
    assert_eq!(secret_of(&t), "token-0");
    assert_eq!(h.calls(), 1);

    // A lone caller that gives up: the fetch still lands in the cache.
    let clock = TokioClock::new(t0());
    let h = harness(Duration::from_millis(100), |c| c, hourly(clock));
    let r = tokio::time::timeout(Duration::from_millis(10), h.provider.token()).await;
    assert!(r.is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(secret_of(&h.provider.token().await.unwrap()), "token-0");
    assert_eq!(h.calls(), 1);
}

/// A panicking fetch is a transient failure: its waiters wake with an error, the failure is held
/// with backoff (20 callers in a row make no request), and the call after the backoff fetches.
#[tokio::test(start_paused = true)]
async fn a_panicking_fetch_is_held_with_backoff_and_the_call_after_it_tries_again() {
    let clock = TokioClock::new(t0());
    let h = harness(
        Duration::from_millis(10),
        |c| c.backoff(Duration::from_secs(4), Duration::from_secs(8)),
        move |n, _| {
            if n == 0 {
                panic!("fetcher bug");
            }
            Ok(token_n(&clock, n, HOUR))
        },
    );
    let err = h.provider.token().await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("transport"), "{err}");
    for _ in 0..20 {
        let again = h.provider.token().await.unwrap_err();
        assert!(matches!(again, Error::Transport { .. }), "{again:?}");
    }
    assert_eq!(h.calls(), 1, "the held failure answered, no new request");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(secret_of(&h.provider.token().await.unwrap()), "token-1");
    assert_eq!(h.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_slow_fetch_is_bounded_by_the_load_timeout() {
    let clock = TokioClock::new(t0());
    let h = harness(
        Duration::from_secs(100),
        |c| c.load_timeout(Duration::from_secs(2)),
        hourly(clock),
    );
    let err = h.provider.token().await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout(d) if d == Duration::from_secs(2)),
        "{err:?}"
    );
    // The fetch carried on (within its deadline): once it lands, callers get its token.
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert_eq!(secret_of(&h.provider.token().await.unwrap()), "token-0");
    assert_eq!(h.calls(), 1);
}

/// A fetch that hangs is abandoned at its deadline: the in-flight marker is cleared, its
/// waiters get a timeout naming the deadline, the failure is held with backoff, and the call
/// after the backoff starts a new fetch (before, the hung fetch kept the marker and no fetch
/// ever started again).
#[tokio::test(start_paused = true)]
async fn a_hung_fetch_is_abandoned_at_its_deadline_and_a_new_one_starts() {
    let clock = TokioClock::new(t0());
    let issuing = clock.clone();
    let hangs_first = Scripted::new(move |call| Ok(token_n(&issuing, call.n, HOUR)))
        .pause(|call| (call.n == 0).then(|| Box::pin(std::future::pending()) as _));
    let provider = CachedTokenProvider::with_config(
        hangs_first.clone(),
        CacheConfig::new()
            .clock(Arc::new(clock))
            .fetch_timeout(Duration::from_secs(30))
            .load_timeout(Duration::from_secs(600))
            .backoff(Duration::from_secs(2), Duration::from_secs(2)),
    );
    let started = tokio::time::Instant::now();
    let err = provider.token().await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout(d) if d == Duration::from_secs(30)),
        "{err:?}"
    );
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(30),
        "the deadline ended the wait"
    );
    assert!(
        !provider.stats().fetching,
        "the in-flight marker was cleared"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(secret_of(&provider.token().await.unwrap()), "token-1");
    assert_eq!(hangs_first.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn jitter_stays_in_bounds() {
    for (lifetime, margin) in [
        (HOUR, 5 * MIN),     // capped at 5 minutes
        (10 * MIN, 2 * MIN), // a fifth of the lifetime
        (Duration::from_secs(30), Duration::from_secs(6)),
    ] {
        let mut seen = Vec::new();
        for _ in 0..200 {
            let clock = TokioClock::new(t0());
            let h = harness(
                Duration::ZERO,
                |c| c,
                move |n, _| Ok(token_n(&clock, n, lifetime)),
            );
            let t = h.provider.token().await.unwrap();
            let exp = t.expires_at().unwrap();
            let before = exp
                .duration_since(h.provider.soft_expiry().unwrap())
                .unwrap();
            // The margin, plus a spread of up to a tenth of the lifetime.
            assert!(
                before >= margin && before <= margin + lifetime / 10,
                "lifetime {lifetime:?}: soft expiry {before:?} before expiry, margin {margin:?}"
            );
            seen.push(before);
        }
        seen.sort();
        seen.dedup();
        assert!(
            seen.len() > 100,
            "jitter is not random: {} distinct values",
            seen.len()
        );
    }
}

/// Keys fetched together (a cold start over many tenants) must not all come due together a
/// lifetime later: their refreshes spread over a tenth of the lifetime.
#[tokio::test(start_paused = true)]
async fn refreshes_of_tokens_fetched_together_are_spread() {
    let lifetime = 13 * HOUR;
    let mut soft = Vec::new();
    for _ in 0..300 {
        let clock = TokioClock::new(t0());
        let h = harness(
            Duration::ZERO,
            |c| c,
            move |n, _| Ok(token_n(&clock, n, lifetime)),
        );
        h.provider.token().await.unwrap();
        soft.push(h.provider.soft_expiry().unwrap());
    }
    soft.sort();
    let span = soft[soft.len() - 1].duration_since(soft[0]).unwrap();
    assert!(span >= 60 * MIN, "300 keys come due within {span:?}");
    // No ten-minute window holds more than 90 of them. Drawn uniformly over the 78-minute
    // spread, a window holds about 38 on average, and the fullest window of a run holds more than
    // 60 in about 2% of runs and more than 72 in about one in 100,000 (simulated); 90 is out of
    // chance's reach. Without the spread (a jitter of a tenth of a 5-minute margin), all 300 do.
    let most = soft
        .iter()
        .map(|start| {
            soft.iter()
                .filter(|t| **t >= *start && **t < *start + 10 * MIN)
                .count()
        })
        .max()
        .unwrap();
    assert!(most <= 90, "{most} of 300 keys come due within ten minutes");
}

#[tokio::test(start_paused = true)]
async fn a_fixed_margin_and_tokens_without_expiry() {
    let clock = TokioClock::new(t0());
    let h = harness(
        Duration::ZERO,
        |c| c.margin(Duration::from_secs(100)),
        hourly(clock),
    );
    let t = h.provider.token().await.unwrap();
    let before = t
        .expires_at()
        .unwrap()
        .duration_since(h.provider.soft_expiry().unwrap())
        .unwrap();
    assert!(before <= Duration::from_secs(100) && before >= Duration::from_secs(90));

    let h = harness(
        Duration::ZERO,
        |c| c.default_lifetime(Duration::from_secs(600)),
        |n, _| Ok(AccessToken::new(format!("forever-{n}")).into()),
    );
    h.provider.token().await.unwrap();
    tokio::time::sleep(Duration::from_secs(599)).await;
    h.provider.token().await.unwrap();
    assert_eq!(h.calls(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Past the default lifetime, still served (no expiry is known) while one refresh runs.
    assert_eq!(secret_of(&h.provider.token().await.unwrap()), "forever-0");
    tokio::task::yield_now().await;
    assert_eq!(h.calls(), 2);
    assert_eq!(secret_of(&h.provider.token().await.unwrap()), "forever-1");
}

#[tokio::test(start_paused = true)]
async fn an_absurd_lifetime_is_capped() {
    let clock = TokioClock::new(t0());
    let h = harness(
        Duration::ZERO,
        |c| c.max_lifetime(Duration::from_secs(24 * 3600)),
        move |n, _| {
            Ok(token_n(
                &clock,
                n,
                Duration::from_secs(100 * 365 * 24 * 3600),
            ))
        },
    );
    h.provider.token().await.unwrap();
    let soft = h.provider.soft_expiry().unwrap();
    assert!(soft <= h.now() + Duration::from_secs(24 * 3600));
}

#[tokio::test(start_paused = true)]
async fn a_token_expired_on_arrival_is_a_transient_failure_with_backoff() {
    let h = harness(
        Duration::ZERO,
        |c| c,
        |n, _| {
            Ok(AccessToken::builder(format!("dead-{n}"))
                .expires_at(t0() - Duration::from_secs(10))
                .build()
                .into())
        },
    );
    let err = h.provider.token().await.unwrap_err();
    assert!(
        matches!(err, Error::Malformed { .. }) && err.is_transient(),
        "{err:?}"
    );
    assert!(h.provider.cached().is_none());
    // Held: callers get the same error at once, not a request each.
    for _ in 0..10 {
        assert!(h.provider.token().await.is_err());
    }
    assert_eq!(h.calls(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(h.provider.token().await.is_err());
    assert_eq!(h.calls(), 2, "asked again only after the backoff");
}

#[tokio::test(start_paused = true)]
async fn a_stored_token_near_its_end_is_not_adopted() {
    let store = MemoryStore::new();
    let key = key("me");
    // Saved by another process; 30 s left: less than the 5-minute margin.
    let nearly_dead = token_n(&TokioClock::new(t0()), 99, Duration::from_secs(30))
        .with_refresh_token(Some(Secret::new("rt-stored")));
    store
        .save(&key, &nearly_dead, &StoreLock::none())
        .await
        .unwrap();
    let clock = TokioClock::new(t0());
    let s = store.clone();
    let h = harness(
        Duration::from_millis(5),
        move |c| c.store(Arc::new(s)),
        move |n, _| Ok(token_n(&clock, n, HOUR)),
    );
    assert_eq!(secret_of(&h.provider.token().await.unwrap()), "token-0");
    assert_eq!(h.calls(), 1);
    // The refresh was made with the stored refresh token.
    assert_eq!(h.fetcher.presented(), vec![Some("rt-stored".to_owned())]);

    // With ten minutes left it is adopted as is.
    let fresh_enough = token_n(&TokioClock::new(t0()), 98, 10 * MIN);
    store
        .save(&key, &fresh_enough, &StoreLock::none())
        .await
        .unwrap();
    let clock = TokioClock::new(t0());
    let s = store.clone();
    let h = harness(
        Duration::from_millis(5),
        move |c| c.store(Arc::new(s)),
        move |n, _| Ok(token_n(&clock, n, HOUR)),
    );
    assert_eq!(secret_of(&h.provider.token().await.unwrap()), "token-98");
    assert_eq!(h.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_of_a_day_is_capped_by_the_longest_backoff() {
    let h = harness(
        Duration::ZERO,
        |c| c.backoff(Duration::from_secs(1), Duration::from_secs(60)),
        |_, _| Err(Error::rate_limited(Some(Duration::from_secs(86_400)))),
    );
    assert!(h.provider.token().await.is_err());
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert!(h.provider.token().await.is_err());
    assert_eq!(h.calls(), 1, "held for the capped wait");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(h.provider.token().await.is_err());
    assert_eq!(h.calls(), 2, "asked again after 60 s, not a day");
}

#[tokio::test(start_paused = true)]
async fn with_a_store_state_is_loaded_saved_and_refresh_tokens_carried() {
    let store = MemoryStore::new();
    let key = key("me");
    // Another process already saved a fresh token: adopted without a fetch.
    let seeded =
        token_n(&TokioClock::new(t0()), 99, HOUR).with_refresh_token(Some(Secret::new("rt-seed")));
    store.save(&key, &seeded, &StoreLock::none()).await.unwrap();
    let clock = TokioClock::new(t0());
    let s = store.clone();
    let h = harness(
        Duration::from_millis(5),
        move |c| c.store(Arc::new(s)),
        move |n, prev| {
            let rt = prev.and_then(|p| p.refresh_token.clone());
            Ok(
                token_n(&clock, n, HOUR).with_refresh_token(Some(Secret::new(format!(
                    "rt-{n}-from-{}",
                    rt.map(|r| r.expose_secret().to_owned()).unwrap_or_default()
                )))),
            )
        },
    );
    assert_eq!(secret_of(&h.provider.token().await.unwrap()), "token-99");
    assert_eq!(h.calls(), 0);

    // Invalidated: the stored copy is the rejected token, so a fetch runs with the stored
    // refresh token, and its rotated refresh token is saved.
    let t = h.provider.token().await.unwrap();
    h.provider.invalidate(&t);
    assert_eq!(secret_of(&h.provider.token().await.unwrap()), "token-0");
    assert_eq!(h.calls(), 1);
    assert_eq!(h.fetcher.presented(), vec![Some("rt-seed".to_owned())]);
    let saved = store.load(&key).await.unwrap().unwrap();
    assert_eq!(secret_of(&saved.access_token), "token-0");
    assert_eq!(
        saved.refresh_token.unwrap().expose_secret(),
        "rt-0-from-rt-seed"
    );
}

#[tokio::test(start_paused = true)]
async fn debug_of_the_cache_shows_no_token() {
    let clock = TokioClock::new(t0());
    let h = harness(Duration::ZERO, |c| c, hourly(clock));
    h.provider.token().await.unwrap();
    let dbg = format!("{:?} {:?}", h.provider, h.provider.config());
    assert!(!dbg.contains("token-0"), "{dbg}");
    assert!(dbg.contains("CachedTokenProvider"), "{dbg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_thread_serves_a_superseded_copy_after_a_refresh() {
    let clock = TokioClock::new(t0());
    let h = Arc::new(harness(Duration::ZERO, |c| c, hourly(clock)));
    let all_threads_get = |want: &'static str| {
        let h = Arc::clone(&h);
        async move {
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let h = Arc::clone(&h);
                    tokio::spawn(async move {
                        let mut seen = Vec::new();
                        for _ in 0..50 {
                            seen.push(secret_of(&h.provider.token().await.unwrap()).to_owned());
                            tokio::task::yield_now().await;
                        }
                        seen
                    })
                })
                .collect();
            for t in tasks {
                for s in t.await.unwrap() {
                    assert_eq!(s, want);
                }
            }
        }
    };
    all_threads_get("token-0").await;
    let t = h.provider.token().await.unwrap();
    h.provider.invalidate(&t);
    assert_eq!(secret_of(&h.provider.token().await.unwrap()), "token-1");
    // Every worker thread had a copy of token-0; none may hand it out now.
    all_threads_get("token-1").await;
    assert_eq!(h.calls(), 2);
    // Every call counted once, as a hit or a miss, whichever thread made it.
    let stats = h.provider.stats();
    assert_eq!(stats.hits + stats.misses, 64 * 50 * 2 + 2);
}

#[tokio::test(start_paused = true)]
async fn more_caches_than_copy_slots_each_serve_their_own_token() {
    // Twelve caches hit from one thread: more than the eight per-thread copies.
    let harnesses: Vec<_> = (0..12)
        .map(|i| {
            let clock = TokioClock::new(t0());
            harness(
                Duration::ZERO,
                |c| c,
                move |n, _| {
                    Ok(AccessToken::builder(format!("cache-{i}-token-{n}"))
                        .expires_in(token_provider::Clock::now(&clock), HOUR)
                        .build()
                        .into())
                },
            )
        })
        .collect();
    for round in 0..3 {
        for (i, h) in harnesses.iter().enumerate() {
            let want = format!("cache-{i}-token-{round}");
            assert_eq!(secret_of(&h.provider.token().await.unwrap()), want);
            assert_eq!(secret_of(&h.provider.token().await.unwrap()), want);
        }
        // A refresh of every cache: no thread may keep serving the old copies.
        for h in &harnesses {
            let t = h.provider.token().await.unwrap();
            h.provider.invalidate(&t);
        }
    }
}

/// A caller that arrives just after a fetch published its outcome must start a new fetch, not
/// join the finished one: after `invalidate`, the retry of a 401 must never get the rejected
/// token back. Real threads, so the fetch task and the caller race for real.
#[test]
fn a_finished_fetch_is_never_joined_after_its_publish() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for cache in 0..8 {
            tasks.push(tokio::spawn(async move {
                let n = Arc::new(AtomicUsize::new(0));
                let counter = Arc::clone(&n);
                let provider =
                    CachedTokenProvider::new(token_provider::provider_fn("race", move || {
                        let i = counter.fetch_add(1, Ordering::SeqCst);
                        async move { Ok(AccessToken::new(format!("t-{cache}-{i}"))) }
                    }));
                for _ in 0..20_000 {
                    let rejected = provider.get().await.unwrap();
                    provider.invalidate(&rejected);
                    let next = provider.get().await.unwrap();
                    assert_ne!(next, rejected, "the rejected token was handed out again");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// Hands out clones of one token it keeps, to any cache and any principal.
fn one_token(kept: &TokenState) -> Scripted {
    let kept = kept.clone();
    Scripted::new(move |_| Ok(kept.clone()))
}

/// A token carries the refresh point of the cache that published it (so a hit reads one
/// allocation). A token several caches hold, because the fetcher keeps and hands out one, is
/// published by each as a copy: one cache's refresh point never becomes another's.
#[tokio::test]
async fn caches_holding_one_token_each_refresh_it_at_their_own_point() {
    let clock = Arc::new(token_provider::ManualClock::new(t0()));
    let kept = TokenState::from(AccessToken::builder("kept").expires_in(t0(), HOUR).build());
    let hard = t0() + HOUR;
    let config = |margin| CacheConfig::new().clock(clock.clone()).margin(margin);
    let (early, late) = (20 * MIN, Duration::from_secs(100));
    let single = |margin| CachedTokenProvider::with_config(one_token(&kept), config(margin));
    let (single_early, single_late) = (single(early), single(late));
    let keyed = |margin| {
        token_provider::KeyedCache::new(
            one_token(&kept),
            config(margin),
            token_provider::KeyedConfig::new(),
        )
        .get_or_insert_with("tenant", |k| k)
    };
    let (keyed_early, keyed_late) = (keyed(early), keyed(late));
    for token in [
        single_early.token().await,
        single_late.token().await,
        keyed_early.token().await,
        keyed_late.token().await,
    ] {
        assert_eq!(secret_of(&token.unwrap()), "kept");
    }
    // A fixed margin less a jitter of up to a tenth of it.
    let before = |soft: Option<SystemTime>| hard.duration_since(soft.unwrap()).unwrap();
    for (soft, margin) in [
        (single_early.soft_expiry(), early),
        (keyed_early.soft_expiry(), early),
        (single_late.soft_expiry(), late),
        (keyed_late.soft_expiry(), late),
    ] {
        let before = before(soft);
        assert!(
            before <= margin && before >= margin.mul_f64(0.9),
            "refreshed {before:?} before expiry, margin {margin:?}"
        );
    }
    // 10 minutes before expiry: the early caches are due, the late ones serve from the cache.
    clock.set(hard - 10 * MIN);
    assert!(single_early.fresh().is_none() && keyed_early.fresh().is_none());
    assert_eq!(secret_of(&single_late.fresh().unwrap()), "kept");
    assert_eq!(secret_of(&keyed_late.fresh().unwrap()), "kept");
}
