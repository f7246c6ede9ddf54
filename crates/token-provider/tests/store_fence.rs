//! What the cache does with a store that refuses a save because the lock was superseded
//! (`StoreFenced`), even right after an `invalidate`, and with a store it cannot reach
//! (`StoreUnavailable`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use token_provider::{
    AccessToken, CacheConfig, CachedTokenProvider, Clock, Error, Fetch, MemoryStore, Secret,
    StoreKey, StoreLock, SystemClock, TokenProvider, TokenState, TokenStore, async_trait,
};

fn state(token: &str, refresh: &str) -> TokenState {
    let now = SystemClock.now();
    TokenState::new(
        AccessToken::builder(token)
            .expires_in(now, Duration::from_secs(600))
            .build(),
    )
    .with_refresh_token(Some(Secret::from(refresh)))
    .with_obtained_at(now)
}

fn key() -> StoreKey {
    StoreKey::new("test", "live", "tenant", "user")
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

#[derive(Debug)]
struct Upstream {
    repeatable: bool,
    calls: AtomicU32,
    seen: Mutex<Vec<Option<String>>>,
}

impl Upstream {
    fn new(repeatable: bool) -> Self {
        Self {
            repeatable,
            calls: AtomicU32::new(0),
            seen: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl Fetch for Upstream {
    async fn fetch(&self, previous: Option<&TokenState>) -> Result<TokenState, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.seen.lock().unwrap().push(
            previous
                .and_then(|p| p.refresh_token.as_ref())
                .map(|r| r.expose_secret().to_owned()),
        );
        Ok(state(&format!("ours-{n}"), &format!("our-rt-{n}")))
    }

    fn store_key(&self) -> Option<StoreKey> {
        Some(key())
    }

    fn repeatable_without_store(&self) -> bool {
        self.repeatable
    }
}

#[tokio::test]
async fn a_fenced_save_adopts_what_the_newer_holder_saved() {
    let store = Arc::new(Fenced::default());
    *store.theirs.lock().unwrap() = Some(state("theirs", "their-rt"));
    let cache = CachedTokenProvider::with_config(
        Upstream::new(false),
        CacheConfig::new().store(store.clone()),
    );
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
    let safe = CachedTokenProvider::with_config(
        Upstream::new(true),
        CacheConfig::new().store(store.clone()),
    );
    assert_eq!(
        safe.token().await.unwrap().secret().expose_secret(),
        "ours-1"
    );
    // Fetched from scratch: no previous state (no refresh token) is handed to the fetcher.
    assert_eq!(*safe.fetcher().seen.lock().unwrap(), vec![None]);
    assert!(
        store.inner.load(&key()).await.unwrap().is_none(),
        "saved without the lock"
    );

    let unsafe_grant = CachedTokenProvider::with_config(
        Upstream::new(false),
        CacheConfig::new().store(store.clone()),
    );
    let err = unsafe_grant.token().await.unwrap_err();
    assert!(matches!(err, Error::StoreUnavailable { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(unsafe_grant.fetcher().calls.load(Ordering::SeqCst), 0);
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
        Upstream::new(false),
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
