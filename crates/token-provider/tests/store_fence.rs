//! What the cache does with a store that refuses a save because the lock was superseded
//! (`StoreFenced`), even right after an `invalidate`, and with a store it cannot reach
//! (`StoreUnavailable`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use token_provider::testing::{Scripted, state, token_text};
use token_provider::{
    CacheConfig, CachedTokenProvider, Error, MemoryStore, StoreKey, StoreLock, TokenProvider,
    TokenState, TokenStore, async_trait,
};

const LIFETIME: Duration = Duration::from_secs(600);

fn key() -> StoreKey {
    token_provider::testing::key("user")
}

/// A memory store whose save, when armed, first lets "another holder" save `theirs` and then
/// refuses ours as superseded; and whose lock fails as unreachable when `down`.
#[derive(Debug, Default)]
struct Fenced {
    inner: MemoryStore,
    theirs: Mutex<Option<TokenState>>,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl TokenStore for Fenced {
    async fn load(&self, key: &StoreKey) -> Result<Option<TokenState>, Error> {
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &StoreKey,
        state: &TokenState,
        lock: &StoreLock,
    ) -> Result<(), Error> {
        let theirs = self.theirs.lock().unwrap().take();
        match theirs {
            Some(theirs) => {
                self.inner.save(key, &theirs, lock).await?;
                Err(Error::store_fenced("another holder took the lock"))
            }
            None => self.inner.save(key, state, lock).await,
        }
    }

    async fn lock(&self, key: &StoreKey) -> Result<StoreLock, Error> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::store_unavailable("Redis at redis://test: refused"));
        }
        self.inner.lock(key).await
    }
}

/// Fetch n (from 1) answers `ours-n` with refresh token `our-rt-n`, named `key()`.
fn upstream(repeatable: bool) -> Scripted {
    Scripted::new(|call| {
        let n = call.n + 1;
        let refresh = format!("our-rt-{n}");
        Ok(state(&format!("ours-{n}"), Some(&refresh), LIFETIME))
    })
    .store_key(key())
    .repeatable(repeatable)
}

#[tokio::test]
async fn a_fenced_save_adopts_what_the_newer_holder_saved() {
    let store = Arc::new(Fenced::default());
    *store.theirs.lock().unwrap() = Some(state("theirs", Some("their-rt"), LIFETIME));
    let cache =
        CachedTokenProvider::with_config(upstream(false), CacheConfig::new().store(store.clone()));
    let token = cache.token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "theirs");
    // The refresh token kept for the next refresh is the fleet's, not the superseded one.
    let kept = cache.cached_state().unwrap();
    assert_eq!(kept.refresh_token.unwrap().expose_secret(), "their-rt");
    assert!(cache.store_error().is_none());
    assert_eq!(
        store.load(&key()).await.unwrap().unwrap().access_token,
        token
    );
}

#[tokio::test]
async fn an_unreachable_store_is_fetched_around_only_for_a_repeatable_grant() {
    let store = Arc::new(Fenced::default());
    store.down.store(true, Ordering::SeqCst);
    let safe =
        CachedTokenProvider::with_config(upstream(true), CacheConfig::new().store(store.clone()));
    assert_eq!(token_text(&safe).await, "ours-1");
    // Fetched from scratch: no previous state (no refresh token) is handed to the fetcher.
    assert_eq!(safe.fetcher().presented(), vec![None]);
    assert!(
        store.inner.load(&key()).await.unwrap().is_none(),
        "saved without the lock"
    );

    let unsafe_grant =
        CachedTokenProvider::with_config(upstream(false), CacheConfig::new().store(store.clone()));
    let err = unsafe_grant.token().await.unwrap_err();
    assert!(matches!(err, Error::StoreUnavailable { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(unsafe_grant.fetcher().calls(), 0);
}

/// No caller gets a token after `invalidate(t)` returned for it. The first store read refuses a
/// rejected token, but the read after a fenced save adopts whatever the store holds if it is
/// still valid, without the `rejected` check: when the holder that superseded our lock left the
/// rejected token in the store (it adopted it, not having seen the 401), the 401 retry is handed
/// the very token the server just refused.
#[tokio::test(flavor = "current_thread")]
async fn a_fenced_save_never_adopts_the_token_just_rejected() {
    let store = Arc::new(Fenced::default());
    let p = CachedTokenProvider::with_config(
        upstream(false),
        CacheConfig::new().store(Arc::clone(&store) as Arc<dyn TokenStore>),
    );
    let t1 = p.token().await.unwrap();
    assert_eq!(t1.secret().expose_secret(), "ours-1");

    // The API answered 401 to ours-1.
    p.invalidate(&t1);
    // Meanwhile another holder, which has not seen the 401, took the lock when ours ran out
    // and left ours-1 in the store.
    let stored = store.inner.load(&key()).await.unwrap().unwrap();
    *store.theirs.lock().unwrap() = Some(stored);

    let retried = p.token().await.unwrap();
    assert_ne!(
        retried.secret().expose_secret(),
        "ours-1",
        "the 401 retry was handed the token invalidate() had just dropped"
    );
    assert_ne!(
        p.cached()
            .map(|t| t.secret().expose_secret().to_owned())
            .as_deref(),
        Some("ours-1")
    );
}
