//! A lookup of a cached principal and a hit on its token allocate nothing (the process's
//! allocator counts every byte; nothing else runs on this single-threaded test).

use std::sync::Arc;
use std::time::Duration;

use cap::Cap;
use token_provider::{
    AccessToken, CacheConfig, Error, KeyedCache, KeyedConfig, KeyedFetch, SystemClock, TokenState,
    async_trait,
};

#[global_allocator]
static ALLOCATOR: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

#[derive(Debug)]
struct Issuer;

#[async_trait]
impl KeyedFetch for Issuer {
    type Principal = Arc<str>;

    async fn fetch(
        &self,
        principal: &Arc<str>,
        _previous: Option<&TokenState>,
    ) -> Result<TokenState, Error> {
        use token_provider::Clock as _;
        Ok(AccessToken::builder(format!("token-of-{principal}"))
            .expires_in(SystemClock.now(), Duration::from_secs(3600))
            .build()
            .into())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_lookup_and_a_hit_allocate_nothing() {
    let cache = KeyedCache::new(Issuer, CacheConfig::new(), KeyedConfig::new());
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
