//! A provider that answers a refresh with an access token already expired on arrival and a
//! rotated refresh token: the access token is not cached, but the rotated refresh token must
//! be kept, because the provider has already invalidated the one the cache held. (Found by the
//! fault matrix: an Aerion SSO user was locked out after one such answer.) The same holds for
//! an answer the fetcher refuses itself and returns as [`Error::Rotated`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use token_provider::{
    AccessToken, CacheConfig, CachedTokenProvider, Error, Fetch, ManualClock, MemoryStore, Secret,
    StoreKey, TokenProvider, TokenState, TokenStore, async_trait,
};

use token_provider::testing::epoch as t0;

/// A rotating provider: each refresh must present the newest refresh token; the `dead_at`-th
/// fetch answers with an access token that expired an hour ago, and the `refused_at`-th with a
/// refusal that carries the rotated refresh token.
#[derive(Debug)]
struct Rotating {
    clock: ManualClock,
    dead_at: usize,
    refused_at: usize,
    log: Arc<Mutex<Vec<Option<String>>>>,
}

#[async_trait]
impl Fetch for Rotating {
    fn store_key(&self) -> Option<StoreKey> {
        Some(key())
    }

    async fn fetch(&self, previous: Option<&TokenState>) -> Result<TokenState, Error> {
        let presented = previous
            .and_then(|p| p.refresh_token.as_ref())
            .map(|r| r.expose_secret().to_owned());
        let mut log = self.log.lock().unwrap();
        let n = log.len();
        // The provider accepts only the refresh token it issued last.
        let newest = n.checked_sub(1).map(|i| format!("rt-{i}"));
        if presented.is_some() && presented != newest {
            log.push(presented);
            return Err(Error::user_action("refresh token refused"));
        }
        log.push(presented);
        if n == self.refused_at {
            return Err(Error::malformed("token_type `mac` is not Bearer")
                .with_rotated_refresh_token(Secret::new(format!("rt-{n}"))));
        }
        let now = token_provider::Clock::now(&self.clock);
        let expires_at = if n == self.dead_at {
            now - Duration::from_secs(3600)
        } else {
            now + Duration::from_secs(3600)
        };
        Ok(TokenState::new(
            AccessToken::builder(format!("at-{n}"))
                .expires_at(expires_at)
                .build(),
        )
        .with_refresh_token(Some(Secret::new(format!("rt-{n}")))))
    }
}

fn key() -> StoreKey {
    StoreKey::new("rotating", "test", "-", "user")
}

type Log = Arc<Mutex<Vec<Option<String>>>>;

fn provider(dead_at: usize) -> (CachedTokenProvider<Rotating>, ManualClock, Log) {
    refusing(dead_at, usize::MAX)
}

fn refusing(
    dead_at: usize,
    refused_at: usize,
) -> (CachedTokenProvider<Rotating>, ManualClock, Log) {
    let clock = ManualClock::new(t0());
    let log = Arc::new(Mutex::new(Vec::new()));
    let fetcher = Rotating {
        clock: clock.clone(),
        dead_at,
        refused_at,
        log: Arc::clone(&log),
    };
    let config = CacheConfig::new()
        .clock(Arc::new(clock.clone()))
        .backoff(Duration::from_millis(1), Duration::from_millis(1));
    (
        CachedTokenProvider::with_config(fetcher, config),
        clock,
        log,
    )
}

/// Waits until the fetcher has answered `n` times and the cache has taken the answer in.
async fn settle(log: &Mutex<Vec<Option<String>>>, n: usize) {
    for _ in 0..2_000 {
        if log.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test]
async fn a_rotated_refresh_token_survives_a_dead_access_token_in_the_soft_window() {
    let (p, clock, log) = provider(1);
    assert_eq!(p.token().await.unwrap().secret().expose_secret(), "at-0");
    // Into the soft window: a background refresh, answered with a dead token and rt-1.
    clock.advance(Duration::from_secs(3600 - 10));
    assert_eq!(p.token().await.unwrap().secret().expose_secret(), "at-0");
    settle(&log, 2).await;
    // The next refresh must present rt-1, the only refresh token the provider still accepts.
    clock.advance(Duration::from_secs(20));
    let t = p.token().await.unwrap();
    assert_eq!(t.secret().expose_secret(), "at-2");
    assert_eq!(
        *log.lock().unwrap(),
        [None, Some("rt-0".to_owned()), Some("rt-1".to_owned())]
    );
}

#[tokio::test]
async fn a_rotated_refresh_token_survives_a_dead_access_token_after_expiry() {
    let (p, clock, log) = provider(1);
    p.token().await.unwrap();
    clock.advance(Duration::from_secs(3601));
    // Hard-expired: the caller waits for the fetch, which brings a dead token and rt-1. The
    // caller gets a transient error, never the dead token.
    let err = p.token().await.unwrap_err();
    assert!(
        matches!(err, Error::Malformed { .. }) && err.is_transient(),
        "{err:?}"
    );
    // Past the (1 ms) backoff, the next fetch presents rt-1.
    clock.advance(Duration::from_secs(1));
    let t = p.token().await.unwrap();
    assert_eq!(t.secret().expose_secret(), "at-2");
    assert_eq!(
        *log.lock().unwrap(),
        [None, Some("rt-0".to_owned()), Some("rt-1".to_owned())]
    );
}

#[tokio::test]
async fn a_rotated_refresh_token_survives_a_refused_answer_in_the_soft_window() {
    let (p, clock, log) = refusing(usize::MAX, 1);
    assert_eq!(p.token().await.unwrap().secret().expose_secret(), "at-0");
    clock.advance(Duration::from_secs(3600 - 10));
    assert_eq!(p.token().await.unwrap().secret().expose_secret(), "at-0");
    settle(&log, 2).await;
    // The refused answer's token was never served; its rt-1 is presented next.
    clock.advance(Duration::from_secs(20));
    let t = p.token().await.unwrap();
    assert_eq!(t.secret().expose_secret(), "at-2");
    assert_eq!(
        *log.lock().unwrap(),
        [None, Some("rt-0".to_owned()), Some("rt-1".to_owned())]
    );
}

#[tokio::test]
async fn a_rotated_refresh_token_survives_a_refused_answer_with_nothing_cached() {
    for refused_at in [0, 1] {
        let (p, clock, log) = refusing(usize::MAX, refused_at);
        if refused_at == 1 {
            p.token().await.unwrap();
            clock.advance(Duration::from_secs(3601));
        }
        // The caller gets the refusal itself, without the refresh token.
        let err = p.token().await.unwrap_err();
        assert!(
            matches!(err, Error::Malformed { .. }) && err.is_transient(),
            "{err:?}"
        );
        assert!(err.take_rotated_refresh_token().1.is_none());
        clock.advance(Duration::from_secs(1));
        let t = p.token().await.unwrap();
        let next = refused_at + 1;
        assert_eq!(t.secret().expose_secret(), format!("at-{next}"));
        assert_eq!(
            log.lock().unwrap().last().cloned().flatten(),
            Some(format!("rt-{refused_at}")),
            "{refused_at}"
        );
    }
}

#[tokio::test]
async fn a_rotated_refresh_token_of_a_refused_answer_is_saved_for_every_holder() {
    let clock = ManualClock::new(t0());
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let store = MemoryStore::new();
    // Two processes sharing the store and the provider; `a`'s second fetch is refused.
    let cache = |refused_at| {
        let fetcher = Rotating {
            clock: clock.clone(),
            dead_at: usize::MAX,
            refused_at,
            log: Arc::clone(&log),
        };
        let config = CacheConfig::new()
            .clock(Arc::new(clock.clone()))
            .store(Arc::new(store.clone()));
        CachedTokenProvider::with_config(fetcher, config)
    };
    let (a, b) = (cache(1), cache(usize::MAX));
    assert_eq!(a.token().await.unwrap().secret().expose_secret(), "at-0");
    clock.advance(Duration::from_secs(3601));
    a.token().await.unwrap_err();
    let saved = store.load(&key()).await.unwrap().unwrap();
    assert_eq!(
        saved.refresh_token.as_ref().map(Secret::expose_secret),
        Some("rt-1")
    );
    // The other process refreshes with rt-1, the only refresh token the provider accepts.
    assert_eq!(b.token().await.unwrap().secret().expose_secret(), "at-2");
    assert_eq!(
        *log.lock().unwrap(),
        [None, Some("rt-0".to_owned()), Some("rt-1".to_owned())]
    );
}
