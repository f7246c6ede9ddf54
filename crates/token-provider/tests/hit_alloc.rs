//! A hit allocates nothing: a lookup of a cached principal and a hit on its token, and a hit
//! through `Arc<dyn TokenProvider>` (the process's allocator counts every byte, so this binary
//! holds one test: two would count each other's allocations).

use std::sync::Arc;
use std::time::Duration;

use cap::Cap;
use token_provider::testing::{Scripted, state_at};
use token_provider::{
    AccessToken, CacheConfig, CachedTokenProvider, Clock as _, KeyedCache, KeyedConfig,
    SystemClock, TokenProvider, provider_fn,
};

#[global_allocator]
static ALLOCATOR: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

/// `token-of-<principal>`, an hour long.
fn issuer() -> Scripted {
    Scripted::new(|call| {
        let token = format!("token-of-{}", call.principal);
        Ok(state_at(
            token,
            None,
            SystemClock.now(),
            Some(Duration::from_secs(3600)),
        ))
    })
}

#[tokio::test(flavor = "current_thread")]
async fn a_hit_allocates_nothing() {
    a_lookup_and_a_hit_allocate_nothing().await;
    a_hit_through_the_trait_object_allocates_nothing().await;
}

async fn a_lookup_and_a_hit_allocate_nothing() {
    let cache = KeyedCache::new(issuer(), CacheConfig::new(), KeyedConfig::new());
    for i in 0..100 {
        let key = format!("tenant-{i}");
        cache.get_or_insert_with(&key, |k| k).get().await.unwrap();
    }
    // This thread's first hit on each principal makes its copy of the token.
    for i in 0..100 {
        cache
            .get(&format!("tenant-{i}"))
            .unwrap()
            .get()
            .await
            .unwrap();
    }
    let before = ALLOCATOR.total_allocated();
    for _ in 0..1_000 {
        let principal = cache.get("tenant-7").expect("cached");
        let token = principal.get().await.unwrap();
        assert_eq!(token.secret().expose_secret(), "token-of-tenant-7");
        assert!(principal.fresh().is_some());
        let again = cache.get_or_insert_with("tenant-7", |_| unreachable!("cached"));
        assert!(again.fresh().is_some());
    }
    assert_eq!(
        ALLOCATOR.total_allocated() - before,
        0,
        "bytes allocated by 1,000 lookups and hits"
    );
}

async fn a_hit_through_the_trait_object_allocates_nothing() {
    let provider: Arc<dyn TokenProvider> =
        Arc::new(CachedTokenProvider::new(provider_fn("issuer", || async {
            Ok(AccessToken::builder("the-token")
                .expires_in(SystemClock.now(), Duration::from_secs(3600))
                .build())
        })));
    // The fetch, then this thread's first hit (which makes its copy of the token).
    provider.get().await.unwrap();
    provider.get().await.unwrap();

    let before = ALLOCATOR.total_allocated();
    for _ in 0..1_000 {
        let token = provider.get().await.unwrap();
        assert_eq!(token.secret().expose_secret(), "the-token");
        assert!(provider.fresh().is_some());
    }
    assert_eq!(
        ALLOCATOR.total_allocated() - before,
        0,
        "bytes allocated by 1,000 hits through `get`"
    );

    // The boxed `token()` future allocates on every call: the count sees it.
    let before = ALLOCATOR.total_allocated();
    provider.token().await.unwrap();
    assert!(ALLOCATOR.total_allocated() > before);
    assert_eq!(
        provider.fresh().unwrap().secret().expose_secret(),
        "the-token"
    );
}
