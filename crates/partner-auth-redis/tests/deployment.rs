//! How the store meets the server it is given, on real redis-servers: a memory policy that
//! evicts keys is refused unless the risk is accepted.

mod common;

use std::time::Duration;

use common::*;
use partner_auth_redis::RedisStore;
use partner_auth_redis::testing::RedisServer;
use token_provider::{Error, TokenStore};

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
