//! The keyed cache: one token per principal, bounded, idle-expiring, never dropping an entry
//! somebody holds or waits on.

use std::sync::Arc;
use std::time::Duration;

use token_provider::testing::{Scripted, key, state_at};
use token_provider::{
    CacheConfig, Clock, KeyedCache, KeyedConfig, ManualClock, MemoryStore, TokenProvider,
    TokenStore,
};
use tokio::sync::Notify;

const HOUR: Duration = Duration::from_secs(3600);

use token_provider::testing::epoch as t0;

/// Issues `<principal>-<n>` tokens valid for an hour, counting fetches per principal; a
/// principal named `slow…` waits for `gate` first. Named `test|env|<principal>|me` in a store.
fn per_principal(clock: &Arc<ManualClock>, gate: &Arc<Notify>) -> Scripted {
    let (clock, gate) = (Arc::clone(clock), Arc::clone(gate));
    Scripted::new(move |call| {
        let token = format!("{}-{}", call.principal, call.n + 1);
        Ok(state_at(token, None, clock.now(), Some(HOUR)))
    })
    .pause(move |call| {
        let gate = Arc::clone(&gate);
        call.principal
            .starts_with("slow")
            .then(|| Box::pin(async move { gate.notified().await }) as _)
    })
    .store_key(key("me"))
}

/// A keyed cache of [`per_principal`], its clock and its gate.
fn keyed(keyed: KeyedConfig) -> (KeyedCache<Scripted>, Arc<ManualClock>, Arc<Notify>) {
    let clock = Arc::new(ManualClock::new(t0()));
    let gate = Arc::new(Notify::new());
    let cache = CacheConfig::new().clock(clock.clone());
    let fetcher = per_principal(&clock, &gate);
    (KeyedCache::new(fetcher, cache, keyed), clock, gate)
}

fn fetches(cache: &KeyedCache<Scripted>, principal: &str) -> usize {
    cache.fetcher().calls_for(principal)
}

async fn token_of(cache: &KeyedCache<Scripted>, key: &str) -> String {
    let principal = cache.get_or_insert_with(key, |k| k);
    let token = principal.token().await.unwrap();
    token.secret().expose_secret().to_owned()
}

#[tokio::test]
async fn each_principal_has_its_own_token_and_one_fetch() {
    let (cache, _, _) = keyed(KeyedConfig::new());
    assert_eq!(token_of(&cache, "a").await, "a-1");
    assert_eq!(token_of(&cache, "b").await, "b-1");
    assert_eq!(token_of(&cache, "a").await, "a-1");
    assert_eq!((fetches(&cache, "a"), fetches(&cache, "b")), (1, 1));
    assert_eq!(cache.len(), 2);
    // A lookup by the stored key finds the same entry.
    let a = cache.get("a").expect("cached");
    assert_eq!(a.principal().as_ref(), "a");
    assert_eq!(a.fresh().unwrap().secret().expose_secret(), "a-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_asking_for_one_new_principal_at_once_share_one_entry() {
    let (cache, _, _) = keyed(KeyedConfig::new());
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { token_of(&cache, "new").await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), "new-1");
    }
    assert_eq!(fetches(&cache, "new"), 1);
    assert_eq!(cache.len(), 1);
}

#[tokio::test]
async fn the_map_is_bounded() {
    let (cache, _, _) = keyed(KeyedConfig::new().max_entries(100));
    for i in 0..2_000 {
        token_of(&cache, &format!("p{i}")).await;
    }
    assert!(cache.len() <= 100, "{} principals kept", cache.len());
    assert!(cache.len() >= 50, "only {} principals kept", cache.len());
    // An evicted principal is fetched again when it comes back.
    let gone = (0..2_000)
        .map(|i| format!("p{i}"))
        .find(|k| cache.get(k).is_none())
        .unwrap();
    token_of(&cache, &gone).await;
    assert_eq!(fetches(&cache, &gone), 2);
}

#[tokio::test]
async fn an_entry_somebody_holds_is_never_evicted() {
    let (cache, _, _) = keyed(KeyedConfig::new().max_entries(10));
    let held: Vec<_> = (0..50)
        .map(|i| cache.get_or_insert_with(&format!("held{i}"), |k| k))
        .collect();
    for h in &held {
        h.token().await.unwrap();
    }
    for i in 0..500 {
        token_of(&cache, &format!("passing{i}")).await;
    }
    for (i, h) in held.iter().enumerate() {
        let key = format!("held{i}");
        let found = cache.get(&key).expect("a held entry stays in the map");
        // The same entry: its token, no second fetch.
        assert_eq!(found.cached(), h.cached());
        assert_eq!(fetches(&cache, &key), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_with_a_fetch_in_flight_is_never_evicted() {
    let (cache, _, gate) = keyed(KeyedConfig::new().max_entries(10));
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { token_of(&cache, "slow").await })
        })
        .collect();
    // Wait until the fetch is out, then push a crowd of principals through the map.
    while fetches(&cache, "slow") == 0 {
        tokio::task::yield_now().await;
    }
    for i in 0..500 {
        token_of(&cache, &format!("crowd{i}")).await;
    }
    assert!(
        cache.get("slow").is_some(),
        "the entry being fetched was evicted"
    );
    gate.notify_one();
    for w in waiters {
        assert_eq!(w.await.unwrap(), "slow-1");
    }
    // The answer landed in the entry the map still holds: no second fetch.
    assert_eq!(token_of(&cache, "slow").await, "slow-1");
    assert_eq!(fetches(&cache, "slow"), 1);
}

#[tokio::test]
async fn unused_principals_expire_and_used_ones_stay() {
    let (cache, clock, _) = keyed(KeyedConfig::new().idle_expiry(HOUR));
    token_of(&cache, "idle").await;
    token_of(&cache, "busy").await;
    for _ in 0..3 {
        clock.advance(HOUR);
        // Lookups keep `busy` alive; a new principal's arrival runs the sweep.
        cache.get("busy").unwrap();
        token_of(&cache, &format!("arrival{}", cache.len())).await;
    }
    assert!(
        cache.get("idle").is_none(),
        "unused for 3 hours, still kept"
    );
    assert!(cache.get("busy").is_some());
    assert_eq!(fetches(&cache, "busy"), 1);
}

#[tokio::test]
async fn an_evicted_principal_comes_back_from_the_store_without_a_fetch() {
    let clock = Arc::new(ManualClock::new(t0()));
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let fetcher = per_principal(&clock, &Arc::new(Notify::new()));
    let config = CacheConfig::new().clock(clock.clone()).store(store);
    let cache = KeyedCache::new(fetcher, config, KeyedConfig::new().max_entries(10));
    assert_eq!(token_of(&cache, "tenant-a").await, "tenant-a-1");
    assert!(cache.remove("tenant-a"));
    assert_eq!(token_of(&cache, "tenant-a").await, "tenant-a-1");
    assert_eq!(fetches(&cache, "tenant-a"), 1);
}

#[tokio::test]
async fn principals_share_one_configuration_and_counter() {
    let (cache, _, _) = keyed(KeyedConfig::new());
    let a = cache.get_or_insert_with("a", |k| k);
    let b = cache.get_or_insert_with("b", |k| k);
    a.token().await.unwrap();
    b.token().await.unwrap();
    a.token().await.unwrap();
    assert_eq!((a.stats().fetches, b.stats().fetches), (1, 1));
    assert_eq!((a.stats().misses, b.stats().misses), (1, 1));
    // One hit counter for the map: `a`'s second call.
    assert_eq!(a.stats().hits, 1);
    assert_eq!(b.stats().hits, 1);
    assert_eq!(
        format!("{a:?}").matches("a-1").count(),
        0,
        "a token in Debug: {a:?}"
    );
}
