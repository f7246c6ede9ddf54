//! Versions decide, on a real redis-server: the store keeps the version contract; a flush, or a
//! lock key evicted, during a fetch neither drops the rotated refresh token nor lets a second
//! holder present it; a lost reply to the lock script leaves no lock held; and the seal covers
//! the version, so a value written back or relabelled is refused.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use partner_auth_redis::testing::RedisServer;
use partner_auth_redis::{RedisStore, SealKey};
use token_provider::testing::stored_state;
use token_provider::{CacheConfig, CachedTokenProvider, Error, TokenProvider, TokenStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_the_version_contract_in_clear_and_sealed() {
    let server = RedisServer::start();
    token_provider::testing::store_contract(Arc::new(RedisStore::new(server.url()).unwrap())).await;
    let sealed = RedisStore::builder(server.url())
        .prefix("sealed:")
        .seal_key(SealKey::generate().unwrap())
        .build()
        .unwrap();
    token_provider::testing::store_contract(Arc::new(sealed)).await;
}

/// Before: the flush took the fence with it, the holder's save was refused, and the refresh
/// token the provider had just rotated was never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_during_a_fetch_keeps_the_rotated_refresh_token() {
    let server = RedisServer::start();
    let store = Arc::new(RedisStore::new(server.url()).unwrap());
    let k = key("flush");
    seed(&store, &k, &state("at-0", Some("rt-0"), Duration::ZERO)).await;
    let port = server.port();
    let flush: Hook = Arc::new(move |_| {
        Box::pin(async move {
            let out = std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string(), "FLUSHALL"])
                .output()
                .unwrap();
            assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
        })
    });
    let provider = provider();
    let cache = CachedTokenProvider::with_config(
        replica(&provider, "flush", Some(flush)),
        CacheConfig::new().store(store.clone()),
    );
    assert_eq!(secret(&cache.token().await.unwrap()), "at-1");
    assert!(cache.store_error().is_none(), "{:?}", cache.store_error());
    let stored = stored_state(&*store, &k).await;
    assert_eq!(
        stored.refresh_token.unwrap().expose_secret(),
        "rt-1",
        "the rotated refresh token is stored"
    );
    assert_eq!(presented(&provider), ["rt-0"]);
}

/// Before: with the lock key evicted during a fetch, a second holder took the lock and
/// presented the same refresh token. Now it finds the presentation recorded, waits for its
/// answer and adopts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_lock_never_lets_a_second_holder_present_the_same_refresh_token() {
    let server = RedisServer::start();
    let k = key("evicted");
    let seed_store = RedisStore::new(server.url()).unwrap();
    seed(
        &seed_store,
        &k,
        &state("at-0", Some("rt-0"), Duration::ZERO),
    )
    .await;
    let lock_key = seed_store.lock_key(&k);
    let provider = provider();
    let second = CachedTokenProvider::with_config(
        replica(&provider, "evicted", None),
        CacheConfig::new().store(Arc::new(RedisStore::new(server.url()).unwrap())),
    );
    let port = server.port();
    let spawned = Arc::new(std::sync::Mutex::new(None));
    let handle = spawned.clone();
    let evict: Hook = Arc::new(move |n| {
        let (lock_key, second, handle) = (lock_key.clone(), second.clone(), handle.clone());
        Box::pin(async move {
            if n > 1 {
                return;
            }
            // The lock key goes (evicted, expired in a pause) while this fetch is out, and
            // another holder asks for the principal's token meanwhile.
            let out = std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string(), "DEL", &lock_key])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
            *handle.lock().unwrap() = Some(tokio::spawn(async move { second.token().await }));
            tokio::time::sleep(Duration::from_millis(600)).await;
        })
    });
    let first = CachedTokenProvider::with_config(
        replica(&provider, "evicted", Some(evict)),
        CacheConfig::new().store(Arc::new(RedisStore::new(server.url()).unwrap())),
    );
    assert_eq!(secret(&first.token().await.unwrap()), "at-1");
    let second = spawned
        .lock()
        .unwrap()
        .take()
        .expect("the second holder asked");
    let theirs = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the second holder answered")
        .unwrap()
        .unwrap();
    assert_eq!(
        secret(&theirs),
        "at-1",
        "the second holder adopted the answer"
    );
    assert_eq!(presented(&provider), ["rt-0"], "presented once");
    let stored = seed_store.load(&k).await.unwrap().unwrap();
    assert_eq!(stored.refresh_token.unwrap().expose_secret(), "rt-1");
}

/// Before: when the reply to the lock script was lost (a timeout, a dropped caller), the lock
/// stayed held for its whole lease with nobody to release it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_to_the_lock_script_leaves_no_lock_held() {
    let server = RedisServer::start();
    let s = RedisStore::builder(server.url())
        .lease(Duration::from_secs(30))
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let (timed_out, dropped) = (key("lost-reply"), key("dropped-caller"));
    // Connected and the script loaded first, so the pause holds up the lock script itself,
    // not the connection or the script's loading.
    drop(s.lock(&key("warm-up")).await.unwrap());
    partner_auth_redis::settle(Duration::from_secs(1)).await;
    // Writes (scripts among them) wait out the pause: the script runs after its reply is no
    // longer awaited.
    server.cli(&["CLIENT", "PAUSE", "700", "WRITE"]);
    let err = s.lock(&timed_out).await.unwrap_err();
    assert!(matches!(err, Error::StoreUnavailable { .. }), "{err:?}");
    assert!(
        tokio::time::timeout(Duration::from_millis(100), s.lock(&dropped))
            .await
            .is_err(),
        "the lock was answered during the pause"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    partner_auth_redis::settle(Duration::from_secs(2)).await;
    let other = RedisStore::builder(server.url())
        .lock_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    for k in [&timed_out, &dropped] {
        let taken = other.lock(k).await;
        assert!(taken.is_ok(), "{k}: the lock is still held: {taken:?}");
    }
}

/// Before: the version prefix sat outside the seal, and an older sealed value written back (a
/// rollback) was served. Now the seal covers the version, and a version below one this store
/// has seen for the key is refused as that entry's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_value_written_back_or_relabelled_is_refused() {
    let server = RedisServer::start();
    let s = RedisStore::builder(server.url())
        .seal_key(SealKey::generate().unwrap())
        .build()
        .unwrap();
    let k = key("rollback");
    let entry = s.entry_key(&k);
    let mut conn = raw(&server).await;
    let get = |conn: &mut redis::aio::MultiplexedConnection| {
        let entry = entry.clone();
        let mut conn = conn.clone();
        async move {
            redis::cmd("GET")
                .arg(&entry)
                .query_async::<Vec<u8>>(&mut conn)
                .await
                .unwrap()
        }
    };
    let lifetime = Duration::from_secs(600);
    seed(&s, &k, &state("at-old", Some("rt-old"), lifetime)).await;
    let old = get(&mut conn).await;
    seed(&s, &k, &state("at-new", Some("rt-new"), lifetime)).await;
    let new = get(&mut conn).await;
    assert_eq!(
        secret(&s.load(&k).await.unwrap().unwrap().access_token),
        "at-new"
    );
    // The older value written back.
    common::set_raw(&mut conn, &entry, &old).await;
    let err = s.load(&k).await.unwrap_err().to_string();
    assert!(err.contains("older"), "{err}");
    assert!(!err.contains("at-old"), "{err}");
    let err = s.load_record(&k).await.unwrap_err().to_string();
    assert!(err.contains("older"), "{err}");
    // The newer value with the older one's version (or any other) in its readable prefix.
    let colon = |v: &[u8]| v.iter().position(|&b| b == b':').unwrap();
    for prefix in [&old[..colon(&old)], b"99999999999999"] {
        let mut relabelled = prefix.to_vec();
        relabelled.extend_from_slice(&new[colon(&new)..]);
        common::set_raw(&mut conn, &entry, &relabelled).await;
        let err = s.load(&k).await.unwrap_err().to_string();
        assert!(err.contains("does not decrypt"), "{err}");
    }
    // Forgotten, then a value from before `forget` written back: refused too.
    let lock = s.lock(&k).await.unwrap();
    assert!(s.remove(&k, &lock).await.unwrap());
    drop(lock);
    common::set_raw(&mut conn, &entry, &new).await;
    let err = s.load(&k).await.unwrap_err().to_string();
    assert!(err.contains("older"), "{err}");
}
