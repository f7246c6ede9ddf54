//! How the store meets the server it is given, on real redis-servers: a memory policy that
//! evicts keys is refused unless the risk is accepted, and saves can wait for replicas.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use partner_auth_redis::RedisStore;
use partner_auth_redis::testing::RedisServer;
use token_provider::{
    CacheConfig, CachedTokenProvider, Error, StoreRecord, TokenProvider, TokenStore,
};

fn quick_store(server: &RedisServer) -> RedisStore {
    RedisStore::builder(server.url())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

/// Before: a Redis that evicts keys under memory pressure was used as it was, and an evicted
/// entry took the principal's refresh token with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicting_memory_policy_is_refused_naming_the_fix() {
    for policy in ["allkeys-lru", "volatile-ttl"] {
        let server = RedisServer::start_with(&["--maxmemory-policy", policy]);
        let s = quick_store(&server);
        let err = s.lock(&key("evict")).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Config { .. }), "{err:?}");
        assert!(
            text.contains("maxmemory-policy")
                && text.contains(policy)
                && text.contains("noeviction"),
            "{text}"
        );
    }
}

/// Where `CONFIG` is refused (managed services disable it) the policy cannot be checked: the
/// store is refused unless the risk is accepted, and then it says so once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_cannot_be_read_is_accepted_only_as_a_risk() {
    let logs = token_provider::testing::capture_logs();
    let server = RedisServer::start();
    server.cli(&["ACL", "SETUSER", "default", "-config"]);
    let k = key("no-config");
    let err = quick_store(&server).lock(&k).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(
        text.contains("maxmemory-policy") && text.contains("accept_eviction_risk(true)"),
        "{text}"
    );
    let risky = RedisStore::builder(server.url())
        .accept_eviction_risk(true)
        .build()
        .unwrap();
    for _ in 0..3 {
        let lock = risky.lock(&k).await.unwrap();
        risky
            .save(&k, &state("at", None, Duration::from_secs(60)), &lock)
            .await
            .unwrap();
    }
    let warnings = logs
        .contents()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(risky.server()))
        .count();
    assert_eq!(warnings, 1, "{}", logs.contents());
    // An evicting policy, accepted: a warning too.
    let evicting = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let risky = RedisStore::builder(evicting.url())
        .accept_eviction_risk(true)
        .build()
        .unwrap();
    drop(risky.lock(&k).await.unwrap());
    assert!(
        logs.contents()
            .lines()
            .any(|l| l.contains("WARN") && l.contains(risky.server()) && l.contains("allkeys-lru")),
        "{}",
        logs.contents()
    );
}

/// A save no replica acknowledged in time fails; the cache still serves and keeps the state,
/// and reports the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_the_replicas_did_not_acknowledge_fails() {
    let server = RedisServer::start();
    let s = Arc::new(
        RedisStore::builder(server.url())
            .wait_for_replicas(1, Duration::from_millis(200))
            .build()
            .unwrap(),
    );
    let k = key("unacknowledged");
    let lock = s.lock(&k).await.unwrap();
    let record = StoreRecord::new(state("at", None, Duration::from_secs(60)), 0);
    let err = s.save_record(&k, &record, None, &lock).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::StoreUnavailable { .. }), "{err:?}");
    assert!(text.contains("0 of 1 replicas"), "{text}");
    drop(lock);
    let cache = CachedTokenProvider::with_config(
        replica(&provider(), "cached", None),
        CacheConfig::new().store(s.clone()),
    );
    assert_eq!(secret(&cache.token().await.unwrap()), "at-1");
    let reported = cache.store_error().expect("the failed save is reported");
    assert!(
        matches!(reported, Error::StoreUnavailable { .. }),
        "{reported:?}"
    );
    assert_eq!(secret(&cache.token().await.unwrap()), "at-1", "kept");
}

/// A save a replica acknowledged is there when the primary is lost and the replica promoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_a_replica_acknowledged_survives_the_primary() {
    let mut primary = RedisServer::start();
    let replica = RedisServer::replica_of(&primary);
    let s = RedisStore::builder(primary.url())
        .wait_for_replicas(1, Duration::from_secs(2))
        .build()
        .unwrap();
    let k = key("replicated");
    let saved = state(
        "at-replicated",
        Some("rt-replicated"),
        Duration::from_secs(600),
    );
    seed(&s, &k, &saved).await;
    primary.stop();
    assert!(replica.cli(&["REPLICAOF", "NO", "ONE"]).contains("OK"));
    let promoted = RedisStore::new(replica.url()).unwrap();
    assert_eq!(promoted.load(&k).await.unwrap(), Some(saved));
}
