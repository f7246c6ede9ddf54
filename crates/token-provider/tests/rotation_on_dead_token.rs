//! A provider that answers a refresh with an access token already expired on arrival and a
//! rotated refresh token: the access token is not cached, but the rotated refresh token must
//! be kept, because the provider has already invalidated the one the cache held. (Found by the
//! fault matrix: an Aerion SSO user was locked out after one such answer.) The same holds for
//! an answer the fetcher refuses itself and returns as [`Error::Rotated`].

use std::sync::Arc;
use std::time::Duration;

use token_provider::testing::{Scripted, epoch as t0, key, state_at, token_text};
use token_provider::{
    AccessToken, CacheConfig, CachedTokenProvider, Clock, Error, ManualClock, MemoryStore, Secret,
    TokenProvider, TokenStore,
};

/// A rotating provider: each refresh must present the newest refresh token; the `dead_at`-th
/// fetch answers with an access token that expired an hour ago, and the `refused_at`-th with a
/// refusal that carries the rotated refresh token. Named `key("user")` in a store.
fn rotating(clock: &ManualClock, dead_at: usize, refused_at: usize) -> Scripted {
    let clock = clock.clone();
    Scripted::new(move |call| {
        let n = call.n;
        // The provider accepts only the refresh token it issued last.
        let newest = n.checked_sub(1).map(|i| format!("rt-{i}"));
        if call.refresh_token().is_some() && call.refresh_token() != newest.as_deref() {
            return Err(Error::user_action("refresh token refused"));
        }
        let rotated = format!("rt-{n}");
        if n == refused_at {
            return Err(Error::malformed("token_type `mac` is not Bearer")
                .with_rotated_refresh_token(Secret::new(rotated)));
        }
        let hour = Duration::from_secs(3600);
        let issued = if n == dead_at {
            clock.now() - 2 * hour
        } else {
            clock.now()
        };
        Ok(state_at(
            format!("at-{n}"),
            Some(&rotated),
            issued,
            Some(hour),
        ))
    })
    .store_key(key("user"))
}

fn provider(dead_at: usize) -> (CachedTokenProvider<Scripted>, ManualClock, Scripted) {
    refusing(dead_at, usize::MAX)
}

fn refusing(
    dead_at: usize,
    refused_at: usize,
) -> (CachedTokenProvider<Scripted>, ManualClock, Scripted) {
    let clock = ManualClock::new(t0());
    let fetcher = rotating(&clock, dead_at, refused_at);
    let config = CacheConfig::new()
        .clock(Arc::new(clock.clone()))
        .backoff(Duration::from_millis(1), Duration::from_millis(1));
    (
        CachedTokenProvider::with_config(fetcher.clone(), config),
        clock,
        fetcher,
    )
}

/// Waits until the fetcher has answered `n` times and the cache has taken the answer in.
async fn settle(fetcher: &Scripted, n: usize) {
    for _ in 0..2_000 {
        if fetcher.calls() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// `at-0` served, and served still in the soft window while a background refresh runs to its
/// end; then 20 s on, past `at-0`'s expiry.
async fn through_the_soft_window(
    p: &CachedTokenProvider<Scripted>,
    clock: &ManualClock,
    upstream: &Scripted,
) {
    assert_eq!(token_text(p).await, "at-0");
    clock.advance(Duration::from_secs(3600 - 10));
    assert_eq!(token_text(p).await, "at-0");
    settle(upstream, 2).await;
    clock.advance(Duration::from_secs(20));
}

/// The error `answer` holds: the transient refusal the dead or refused answer ends in, not a
/// token.
fn refused_as_malformed(answer: Result<AccessToken, Error>) -> Error {
    let err = answer.unwrap_err();
    assert!(
        matches!(err, Error::Malformed { .. }) && err.is_transient(),
        "{err:?}"
    );
    err
}

/// The next token is `at-2`, got by presenting `rt-1`: after the first grant and `rt-0`, the
/// refresh token the dead or refused answer rotated in.
async fn assert_next_presents_rt1(p: &impl TokenProvider, upstream: &Scripted) {
    assert_eq!(token_text(p).await, "at-2");
    assert_eq!(
        upstream.presented(),
        [None, Some("rt-0".to_owned()), Some("rt-1".to_owned())]
    );
}

#[tokio::test]
async fn a_rotated_refresh_token_survives_a_dead_access_token_in_the_soft_window() {
    let (p, clock, upstream) = provider(1);
    // Into the soft window: a background refresh, answered with a dead token and rt-1.
    through_the_soft_window(&p, &clock, &upstream).await;
    // The next refresh must present rt-1, the only refresh token the provider still accepts.
    assert_next_presents_rt1(&p, &upstream).await;
}

#[tokio::test]
async fn a_rotated_refresh_token_survives_a_dead_access_token_after_expiry() {
    let (p, clock, upstream) = provider(1);
    p.token().await.unwrap();
    clock.advance(Duration::from_secs(3601));
    // Hard-expired: the caller waits for the fetch, which brings a dead token and rt-1. The
    // caller gets a transient error, never the dead token.
    refused_as_malformed(p.token().await);
    // Past the (1 ms) backoff, the next fetch presents rt-1.
    clock.advance(Duration::from_secs(1));
    assert_next_presents_rt1(&p, &upstream).await;
}

#[tokio::test]
async fn a_rotated_refresh_token_survives_a_refused_answer_in_the_soft_window() {
    let (p, clock, upstream) = refusing(usize::MAX, 1);
    through_the_soft_window(&p, &clock, &upstream).await;
    // The refused answer's token was never served; its rt-1 is presented next.
    assert_next_presents_rt1(&p, &upstream).await;
}

#[tokio::test]
async fn a_rotated_refresh_token_survives_a_refused_answer_with_nothing_cached() {
    for refused_at in [0, 1] {
        let (p, clock, upstream) = refusing(usize::MAX, refused_at);
        if refused_at == 1 {
            p.token().await.unwrap();
            clock.advance(Duration::from_secs(3601));
        }
        // The caller gets the refusal itself, without the refresh token.
        let err = refused_as_malformed(p.token().await);
        assert!(err.take_rotated_refresh_token().1.is_none());
        clock.advance(Duration::from_secs(1));
        let t = p.token().await.unwrap();
        let next = refused_at + 1;
        assert_eq!(t.secret().expose_secret(), format!("at-{next}"));
        assert_eq!(
            upstream.presented().last().cloned().flatten(),
            Some(format!("rt-{refused_at}")),
            "{refused_at}"
        );
    }
}

#[tokio::test]
async fn a_rotated_refresh_token_of_a_refused_answer_is_saved_for_every_holder() {
    let clock = ManualClock::new(t0());
    let store = MemoryStore::new();
    // Two processes sharing the store and the provider, whose second answer (to `a`) is refused.
    let upstream = rotating(&clock, usize::MAX, 1);
    let cache = || {
        let config = CacheConfig::new()
            .clock(Arc::new(clock.clone()))
            .store(Arc::new(store.clone()));
        CachedTokenProvider::with_config(upstream.clone(), config)
    };
    let (a, b) = (cache(), cache());
    assert_eq!(token_text(&a).await, "at-0");
    clock.advance(Duration::from_secs(3601));
    a.token().await.unwrap_err();
    let saved = store.load(&key("user")).await.unwrap().unwrap();
    assert_eq!(
        saved.refresh_token.as_ref().map(Secret::expose_secret),
        Some("rt-1")
    );
    // The other process refreshes with rt-1, the only refresh token the provider accepts.
    assert_next_presents_rt1(&b, &upstream).await;
}
