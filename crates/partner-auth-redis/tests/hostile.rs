//! What a store finds in Redis that it did not write, on a real redis-server: a garbled or huge
//! version, bytes that are not text, a value too large, a hash at an entry's key, a list at a
//! lock's key. Each is that entry's error, answered within the store's timeout, and `forget`
//! removes it; `forget --all` removes every key under the prefix and nothing else. Also: a
//! principal's keys share one hash tag.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use partner_auth_redis::RedisStore;
use partner_auth_redis::testing::RedisServer;
use token_provider::{
    CacheConfig, CachedTokenProvider, Error, StoreKey, TokenProvider, TokenStore,
};

/// Every step of these tests must answer well within this (the store's default lock timeout is
/// 30 s and its lease 15 s: a wait on either fails the test).
const PROMPT: Duration = Duration::from_secs(3);

async fn prompt<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PROMPT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} took over {PROMPT:?}"))
}

fn quick_store(server: &RedisServer) -> RedisStore {
    RedisStore::builder(server.url())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

/// Asserts `key`'s entry is an error (never "no entry") that says `says`, read with and without
/// the lock, in the listing too; then that `forget` (lock and remove) removes it, twice over.
async fn refused_then_forgotten(s: &RedisStore, k: &StoreKey, says: &str) {
    let err = prompt("a load", s.load(k))
        .await
        .expect_err("an error, not a state or no entry")
        .to_string();
    assert!(err.contains(says), "{k}: {err}");
    for _ in 0..2 {
        let _lock = prompt("a lock", s.lock(k)).await.unwrap();
        let err = prompt("a load under the lock", s.load_record(k))
            .await
            .expect_err("an error, not a record or no entry")
            .to_string();
        assert!(err.contains(says), "{k}: {err}");
    }
    let listed = prompt("the listing", s.entries()).await.unwrap();
    let (_, listed) = listed
        .iter()
        .find(|(key, _)| key == k)
        .unwrap_or_else(|| panic!("{k} is not listed: {listed:?}"));
    let err = listed.as_ref().expect_err("listed as an error").to_string();
    assert!(err.contains(says), "{k}: {err}");
    let lock = prompt("forget's lock", s.lock(k)).await.unwrap();
    assert!(prompt("forget", s.remove(k, &lock)).await.unwrap());
    drop(lock);
    assert_eq!(
        prompt("a load after forget", s.load(k)).await.unwrap(),
        None
    );
}

/// Before: a version prefix of 20 digits read as `1e+20` in the lock script; the next lock
/// failed with the lock left held, every run after waited out the lease (15 s) and failed, and
/// `forget` could not take the lock to remove the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_version_is_that_entrys_error_and_forget_removes_it() {
    let server = RedisServer::start();
    let s = quick_store(&server);
    let clear = String::from_utf8(
        token_provider::encode_entry(&state("at", Some("rt"), Duration::from_secs(600))).unwrap(),
    )
    .unwrap();
    for (name, value) in [
        ("huge", format!("99999999999999999999:{clear}")),
        ("beyond-u64", format!("99999999999999999999999999:{clear}")),
        ("leading-zero", format!("007:{clear}")),
        ("letters", format!("x1:{clear}")),
        ("no-prefix", clear.clone()),
        ("empty", String::new()),
    ] {
        let k = key(name);
        server.cli(&["SET", &s.entry_key(&k), &value]);
        refused_then_forgotten(&s, &k, "version").await;
    }
    // A cache over it fails at once with that error, and its `forget` removes the entry.
    let k = key("cached");
    server.cli(&[
        "SET",
        &s.entry_key(&k),
        &format!("99999999999999999999:{clear}"),
    ]);
    let cache = CachedTokenProvider::with_config(
        replica(&provider(), "cached", None),
        CacheConfig::new().store(Arc::new(s.clone())),
    );
    for _ in 0..2 {
        let err = prompt("a token", cache.token()).await.unwrap_err();
        assert!(matches!(err, Error::Store { .. }), "{err:?}");
    }
    assert!(prompt("the cache's forget", cache.forget()).await.unwrap());
    assert_eq!(
        secret(&prompt("a token", cache.token()).await.unwrap()),
        "at-1"
    );
}

/// Before: a value that is not UTF-8 read as "no entry" under the lock, and the next save
/// replaced it unseen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_text_are_that_entrys_error() {
    let server = RedisServer::start();
    let s = quick_store(&server);
    let k = key("bytes");
    let mut conn = raw(&server).await;
    common::set_raw(&mut conn, s.entry_key(&k), &b"1:\xff\xfe\x00{"[..]).await;
    refused_then_forgotten(&s, &k, "format").await;
}

/// Before: a 50 MB value was read whole, decoded and (by `status`) reported whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_too_large_is_refused_unread() {
    let server = RedisServer::start();
    let s = quick_store(&server);
    let k = key("large");
    server.cli(&["SETRANGE", &s.entry_key(&k), "52428799", "x"]);
    refused_then_forgotten(&s, &k, "bytes").await;
}

/// Before: a hash at an entry's key read as an `Extension` error, the lock taken with it was
/// never released, and the listing (so `forget --all`) passed over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_at_an_entrys_key_is_that_entrys_error() {
    let server = RedisServer::start();
    let s = quick_store(&server);
    let k = key("hash");
    server.cli(&["HSET", &s.entry_key(&k), "access_token", "planted"]);
    refused_then_forgotten(&s, &k, "hash").await;
}

/// Before: a list at a lock's key (or a lock with no expiry) made every run wait out the lock
/// timeout (30 s). Neither was set by a holder: the lock takes its place, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_at_a_locks_key_is_never_waited_for() {
    let logs = token_provider::testing::capture_logs();
    let server = RedisServer::start();
    let s = quick_store(&server);
    for (name, plant) in [
        ("list", vec!["RPUSH", "", "x"]),
        (
            "no-expiry",
            vec!["SET", "", "0123456789abcdef0123456789abcdef"],
        ),
    ] {
        let k = key(name);
        let lock_key = s.lock_key(&k);
        let mut plant = plant;
        plant[1] = &lock_key;
        server.cli(&plant);
        let lock = prompt("a lock over a foreign value", s.lock(&k))
            .await
            .unwrap();
        s.save(&k, &state("at", None, Duration::from_secs(600)), &lock)
            .await
            .unwrap();
        drop(lock);
        assert!(s.load(&k).await.unwrap().is_some());
    }
    assert!(
        logs.contents().contains("was not a lock"),
        "{}",
        logs.contents()
    );
}

/// Before: `forget --all` (the listing, then a remove of each key) left every fence key behind,
/// and passed over entries of the wrong type. Now every key under the prefix goes, and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_all_removes_every_key_under_the_prefix_and_nothing_else() {
    let server = RedisServer::start();
    let s = quick_store(&server);
    for (name, refresh) in [("a", None), ("b", Some("rt-b")), ("c", Some("rt-c"))] {
        seed(
            &s,
            &key(name),
            &state("at", refresh, Duration::from_secs(600)),
        )
        .await;
    }
    server.cli(&["HSET", &s.entry_key(&key("hash")), "f", "v"]);
    server.cli(&["SET", &s.entry_key(&key("garbled")), "1e+20:{}"]);
    // A list at the lock key of a principal with no entry.
    let lonely = key("lonely");
    let lock_key = s.lock_key(&lonely);
    server.cli(&["RPUSH", &lock_key, "x"]);
    // Keys of earlier layouts of this store (no hash tag, a fence per principal).
    for kind in ["e", "f", "l"] {
        server.cli(&[
            "SET",
            &format!("partner-auth:{kind}:test|live|tenant|old"),
            "7",
        ]);
    }
    // Outside the prefix: another prefix, one that merely starts alike, and no prefix.
    let outside = [
        "other:e:test|live|tenant|a",
        "partner-auth-2:e:test|live|tenant|a",
        "partner-auth",
        "unrelated",
    ];
    for name in outside {
        server.cli(&["SET", name, "keep"]);
    }
    let listed = prompt("the listing", s.entries()).await.unwrap();
    for (k, _) in &listed {
        let lock = prompt("a lock", s.lock(k)).await.unwrap();
        prompt("a remove", s.remove(k, &lock)).await.unwrap();
    }
    partner_auth_redis::settle(Duration::from_secs(2)).await;
    let left = all_keys(&server);
    let mut kept: Vec<String> = outside.iter().map(|s| (*s).to_owned()).collect();
    kept.sort();
    assert_eq!(left, kept, "listed: {listed:?}");
    assert!(prompt("the listing", s.entries()).await.unwrap().is_empty());
}

/// Before: a principal's keys carried no hash tag, so no Redis Cluster could run the scripts
/// that touch two of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principals_keys_share_one_hash_tag() {
    let server = RedisServer::start();
    let s = quick_store(&server);
    for name in ["tagged", "{braces}", "}close", "a{b}c"] {
        let k = key(name);
        seed(&s, &k, &state("at", None, Duration::from_secs(600))).await;
        // The entry, and the lock while it is held.
        let lock = s.lock(&k).await.unwrap();
        let keys = all_keys(&server);
        assert_eq!(keys.len(), 2, "{keys:?}");
        let tags: Vec<&str> = keys.iter().map(|k| hash_tag(k)).collect();
        assert!(!tags[0].is_empty() && tags[0] == tags[1], "{keys:?}");
        s.remove(&k, &lock).await.unwrap();
        drop(lock);
        partner_auth_redis::settle(Duration::from_secs(1)).await;
    }
}

/// The part of `key` Redis Cluster hashes: between the first `{` and the first `}` after it,
/// when that is not empty.
fn hash_tag(key: &str) -> &str {
    let Some(open) = key.find('{') else {
        return "";
    };
    match key[open + 1..].find('}') {
        Some(0) | None => "",
        Some(close) => &key[open + 1..open + 1 + close],
    }
}
