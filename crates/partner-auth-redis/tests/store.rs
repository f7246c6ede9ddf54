//! The Redis store against a real `redis-server`: the lock and its lease, versioned saves,
//! lifetimes, encryption, and what a cache does when Redis is away.

use std::sync::Arc;
use std::time::Duration;

use partner_auth_redis::testing::RedisServer;
use partner_auth_redis::{RedisStore, SealKey};
use token_provider::testing::{Scripted, key, secret, state, stored_keys, stored_state};
use token_provider::{
    CacheConfig, CachedTokenProvider, Error, StoreKey, StoreRecord, TokenProvider, TokenStore,
};

fn store(server: &RedisServer) -> RedisStore {
    store_with_lease(server, Duration::from_millis(600))
}

/// A store at `url` that gives up on Redis after 300 ms (a command or a connection).
fn impatient(url: impl Into<String>) -> Arc<RedisStore> {
    let store = RedisStore::builder(url)
        .timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    Arc::new(store)
}

fn store_with_lease(server: &RedisServer, lease: Duration) -> RedisStore {
    RedisStore::builder(server.url())
        .lease(lease)
        .lock_timeout(Duration::from_secs(5).max(lease * 2))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_is_exclusive_across_stores_and_a_save_releases_it() {
    let server = RedisServer::start();
    // A 4 s lease, extended every 1.3 s: whenever the save comes, more than 2.6 s of it is
    // left, so a waiter that gets the lock within 2 s of the save got it from the save's
    // release, not from the lease running out.
    let lease = Duration::from_secs(4);
    let (a, b) = (
        store_with_lease(&server, lease),
        store_with_lease(&server, lease),
    );
    let k = key("exclusive");
    let held = a.lock(&k).await.unwrap();
    let waiter = {
        let (b, k) = (b.clone(), k.clone());
        tokio::spawn(async move {
            let lock = b.lock(&k).await.unwrap();
            let seen = b.load(&k).await.unwrap();
            drop(lock);
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "the second holder got the lock while it was held"
    );
    assert_eq!(a.load(&k).await.unwrap(), None);
    let saved = state("at-1", Some("rt-1"), Duration::from_secs(600));
    a.save(&k, &saved, &held).await.unwrap();
    // The save released the lock: the waiter gets it now, long before the lease would end, and
    // reads the saved state with it.
    let seen = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("the save released the lock")
        .unwrap();
    assert_eq!(seen, Some(saved));
    drop(held);
    // Keys of other principals never wait.
    let _other = b.lock(&key("someone-else")).await.unwrap();
}

/// The `store` label of the store-error metric.
#[test]
fn the_store_names_its_kind() {
    let s = RedisStore::builder("redis://127.0.0.1:1/0")
        .build()
        .unwrap();
    assert_eq!(s.kind(), "redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_lock_is_released_without_waiting_for_its_lease() {
    let server = RedisServer::start();
    let s = RedisStore::builder(server.url())
        .lease(Duration::from_secs(30))
        .lock_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let k = key("drop");
    drop(s.lock(&k).await.unwrap());
    let again = tokio::time::timeout(Duration::from_secs(1), store(&server).lock(&k)).await;
    assert!(again.expect("released on drop").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_is_extended_and_a_dead_holders_runs_out() {
    let server = RedisServer::start();
    // A 1.5 s lease, extended every 0.5 s: an extension may come up to a second late.
    let lease = Duration::from_millis(1500);
    let (a, b) = (store_with_lease(&server, lease), store(&server));
    let k = key("lease");
    let held = a.lock(&k).await.unwrap();
    // Three leases later the holder still holds it: its task extended the lease.
    tokio::time::sleep(lease * 3).await;
    let ttl: i64 = server
        .cli(&["PTTL", &a.lock_key(&k)])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0, "the lease was not extended (PTTL {ttl})");
    let quick = RedisStore::builder(server.url())
        .lock_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(matches!(quick.lock(&k).await, Err(Error::StoreBusy { .. })));
    // A holder that stops extending (a killed process: its lock's token is in Redis, nothing
    // extends it) is taken over once the lease runs out.
    std::mem::forget(held);
    server.cli(&["SET", &a.lock_key(&k), "dead-holder", "PX", "600"]);
    let started = tokio::time::Instant::now();
    let _taken = b.lock(&k).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A holder whose lease ran out, and whose principal another holder saved since, cannot
/// overwrite the newer state: the version it read is no longer stored. The lock is not what
/// decides: a lock merely taken by another, with nothing saved, refuses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_over_a_version_another_save_replaced_is_refused() {
    let server = RedisServer::start();
    let (a, b) = (store(&server), store(&server));
    let k = key("fence");
    let old = StoreRecord::new(state("at-old", Some("rt-old"), Duration::from_secs(600)), 0);
    let stale = a.lock(&k).await.unwrap();
    let read = a.load_record(&k).await.unwrap().map(|r| r.version);
    assert_eq!(read, None);
    // The holder stalls past its lease (the extension cannot run while it is stopped: here the
    // lease is taken from it by deleting the lock key, as its expiry would).
    server.cli(&["DEL", &a.lock_key(&k)]);
    let newer = b.lock(&k).await.unwrap();
    let fresh = state("at-new", Some("rt-new"), Duration::from_secs(600));
    b.save(&k, &fresh, &newer).await.unwrap();
    drop(newer);
    let err = a.save_record(&k, &old, read, &stale).await.unwrap_err();
    assert!(matches!(err, Error::StoreFenced { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(a.load(&k).await.unwrap(), Some(fresh.clone()));
    // Over a stored version, the same.
    let read = a.load_record(&k).await.unwrap().map(|r| r.version);
    let newer = b.lock(&k).await.unwrap();
    b.save(&k, &fresh, &newer).await.unwrap();
    drop(newer);
    assert!(matches!(
        a.save_record(&k, &old, read, &stale).await,
        Err(Error::StoreFenced { .. })
    ));
    drop(stale);
    // Another holder took the lock and saved nothing: the version read is still stored.
    let holder = a.lock(&k).await.unwrap();
    let read = a.load_record(&k).await.unwrap().map(|r| r.version);
    server.cli(&["DEL", &a.lock_key(&k)]);
    let other = b.lock(&k).await.unwrap();
    let saved = a.save_record(&k, &old, read, &holder).await.unwrap();
    assert!(Some(saved) > read);
    drop((other, holder));
    assert_eq!(a.load(&k).await.unwrap(), Some(old.state));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_with_their_token_but_refresh_tokens_are_kept_longer() {
    let server = RedisServer::start();
    let s = RedisStore::builder(server.url())
        .expiry_slack(Duration::from_secs(60))
        .refresh_token_ttl(Duration::from_secs(86_400))
        .build()
        .unwrap();
    let pttl = |k: &StoreKey| -> i64 {
        server
            .cli(&["PTTL", &s.entry_key(k)])
            .trim()
            .parse()
            .unwrap()
    };
    let (plain, refresh) = (key("ttl-plain"), key("ttl-refresh"));
    let lock = s.lock(&plain).await.unwrap();
    s.save(&plain, &state("at", None, Duration::from_secs(300)), &lock)
        .await
        .unwrap();
    drop(lock);
    let ttl = pttl(&plain);
    assert!((355_000..=360_000).contains(&ttl), "{ttl}");
    let lock = s.lock(&refresh).await.unwrap();
    s.save(
        &refresh,
        &state("at", Some("rt"), Duration::from_secs(300)),
        &lock,
    )
    .await
    .unwrap();
    drop(lock);
    let ttl = pttl(&refresh);
    assert!((86_000_000..=86_400_000).contains(&ttl), "{ttl}");
    // Listing sees both, under their keys; removing one leaves the other.
    let listed = stored_keys(&s).await;
    assert_eq!(listed, vec![plain.clone(), refresh.clone()]);
    let lock = s.lock(&plain).await.unwrap();
    assert!(s.remove(&plain, &lock).await.unwrap());
    drop(lock);
    let lock = s.lock(&plain).await.unwrap();
    assert!(!s.remove(&plain, &lock).await.unwrap());
    drop(lock);
    assert_eq!(s.entries().await.unwrap().len(), 1);
    // Another prefix is another store.
    let other = RedisStore::builder(server.url())
        .prefix("other*:")
        .build()
        .unwrap();
    assert!(other.entries().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_entries_leak_nothing_and_open_only_where_they_were_sealed() {
    let logs = token_provider::testing::capture_logs();
    let server = RedisServer::start();
    let seal = SealKey::generate().unwrap();
    let s = RedisStore::builder(server.url())
        .seal_key(seal.clone())
        .build()
        .unwrap();
    let (alice, bob) = (key("alice"), key("bob"));
    let secret_at = "at-SEALED-5f0c2a9e7d";
    let secret_rt = "rt-SEALED-c18a0be442";
    let lock = s.lock(&alice).await.unwrap();
    s.save(
        &alice,
        &state(secret_at, Some(secret_rt), Duration::from_secs(600)),
        &lock,
    )
    .await
    .unwrap();
    drop(lock);
    assert_eq!(
        secret(&stored_state(&s, &alice).await.access_token),
        secret_at
    );
    // Leak audit: no key or value in Redis holds either secret, nor a piece of one.
    let dump = server.cli(&["--scan"]);
    let mut everything = dump.clone();
    for k in dump.lines() {
        everything.push_str(&server.cli(&["GET", k]));
    }
    for secret in [secret_at, secret_rt] {
        assert!(
            !everything.contains(&secret[3..]),
            "{secret} in Redis: {everything}"
        );
    }
    // Moved to another principal's key: refused with a clear error, no token.
    let sealed = server.cli(&["GET", &s.entry_key(&alice)]);
    server.cli(&["SET", &s.entry_key(&bob), sealed.trim()]);
    let err = s.load(&bob).await.unwrap_err().to_string();
    assert!(err.contains("does not decrypt"), "{err}");
    assert!(!err.contains(secret_at) && !err.contains("SEALED"), "{err}");
    // Read under another key, or without one: refused, never a token.
    let wrong = RedisStore::builder(server.url())
        .seal_key(SealKey::generate().unwrap())
        .build()
        .unwrap();
    let err = wrong.load(&alice).await.unwrap_err().to_string();
    assert!(err.contains("PARTNER_AUTH_STORE_KEY"), "{err}");
    let none = RedisStore::new(server.url()).unwrap();
    let err = none.load(&alice).await.unwrap_err().to_string();
    assert!(err.contains("encrypted"), "{err}");
    // A value planted in clear is refused while encryption is on (a save never replaces a
    // value it cannot read: the copy is removed first).
    let clear = RedisStore::new(server.url()).unwrap();
    server.cli(&["DEL", &s.entry_key(&bob)]);
    let lock = clear.lock(&bob).await.unwrap();
    clear
        .save(
            &bob,
            &state("planted", None, Duration::from_secs(600)),
            &lock,
        )
        .await
        .unwrap();
    drop(lock);
    let err = s.load(&bob).await.unwrap_err().to_string();
    assert!(err.contains("in clear"), "{err}");
    // A cache over the sealed store fails with that error and serves nothing.
    let cache = CachedTokenProvider::with_config(
        counting("bob", false),
        CacheConfig::new().store(Arc::new(s.clone())),
    );
    let err = cache.token().await.unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert_eq!(cache.fetcher().calls(), 0);
    assert!(!format!("{s:?} {seal:?}").contains(seal.to_base64().as_str()));
    // And a value that is not even text, under carol's key.
    let carol = key("carol");
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SET")
        .arg(s.entry_key(&carol))
        .arg(&[0xff_u8, 0xfe, 0x00][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    // And a key under the store's prefix that is not text: none the store wrote, passed over.
    let mut stray = s.entry_key(&key("dave")).into_bytes();
    stray.push(0xff);
    let () = redis::cmd("SET")
        .arg(stray)
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    // The listing shows all three: alice's state, and bob's and carol's refusals in place of
    // theirs (one unreadable entry hides no other); their keys can still be removed, as the
    // refusal says.
    let listed = s.entries().await.unwrap();
    let keys: Vec<&StoreKey> = listed.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [&alice, &bob, &carol]);
    assert_eq!(
        listed[0]
            .1
            .as_ref()
            .unwrap()
            .access_token
            .secret()
            .expose_secret(),
        secret_at
    );
    let err = listed[1].1.as_ref().unwrap_err().to_string();
    assert!(
        err.contains("in clear") && !err.contains("planted"),
        "{err}"
    );
    let err = listed[2].1.as_ref().unwrap_err().to_string();
    assert!(err.contains("no readable version"), "{err}");
    for refused in [&bob, &carol] {
        let lock = s.lock(refused).await.unwrap();
        assert!(s.remove(refused, &lock).await.unwrap());
    }
    assert_eq!(s.entries().await.unwrap().len(), 1);
    // Nor in any log line (the failed load above logged its error).
    logs.assert_absent(&[secret_at, secret_rt, seal.to_base64().as_str(), "planted"]);
}

/// A fetcher that counts its calls and mints `token-<n>`.
/// Fetch n (from 1) answers `token-<name>-n` with refresh token `rt`, named `key(name)`.
fn counting(name: &'static str, repeatable: bool) -> Scripted {
    Scripted::new(move |call| {
        let token = format!("token-{name}-{}", call.n + 1);
        Ok(state(&token, Some("rt"), Duration::from_secs(600)))
    })
    .store_key(key(name))
    .repeatable(repeatable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_unreachable_only_a_repeatable_grant_is_fetched() {
    let mut server = RedisServer::start();
    let port = server.port();
    server.stop();
    let down = impatient(format!("redis://127.0.0.1:{port}/0"));
    let safe = CachedTokenProvider::with_config(
        counting("cc", true),
        CacheConfig::new().store(down.clone()),
    );
    let token = safe.token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "token-cc-1");
    assert_eq!(safe.fetcher().calls(), 1);
    let refresh_only = CachedTokenProvider::with_config(
        counting("rt-only", false),
        CacheConfig::new().store(down.clone()),
    );
    let err = refresh_only.token().await.unwrap_err();
    assert!(matches!(err, Error::StoreUnavailable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("Redis at redis://127.0.0.1"),
        "{err}"
    );
    assert_eq!(refresh_only.fetcher().calls(), 0, "spent outside the lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_never_fails_a_caller_holding_a_valid_token() {
    let mut server = RedisServer::start();
    let s = impatient(server.url());
    let cache = CachedTokenProvider::with_config(
        counting("restart", false),
        CacheConfig::new().store(s.clone()),
    );
    let first = cache.token().await.unwrap();
    server.stop();
    for _ in 0..50 {
        assert_eq!(cache.token().await.unwrap(), first);
    }
    server.restart();
    for _ in 0..50 {
        assert_eq!(cache.token().await.unwrap(), first);
    }
    // After the restart the store works again (its connection is re-made).
    cache.clear();
    let mut again = cache.token().await;
    for _ in 0..20 {
        if again.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        cache.clear();
        again = cache.token().await;
    }
    assert!(again.is_ok(), "{again:?}");
    assert!(s.entries().await.unwrap().len() == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_save_ends_with_the_newer_stored_state_adopted() {
    let server = RedisServer::start();
    let s = Arc::new(store(&server));
    let k = key("adopt");
    // Another replica's state, saved while this one's fetch was out: our lease is lost
    // mid-fetch and another replica takes over and saves.
    let url = server.url();
    let stalled =
        Scripted::new(|_| Ok(state("our-token", Some("our-rt"), Duration::from_secs(600))))
            .pause(move |_| {
                let url = url.clone();
                Some(Box::pin(async move {
                    let other = RedisStore::new(url.clone()).unwrap();
                    let k = key("adopt");
                    assert_eq!(redis_cli_del(&url, &other.lock_key(&k)), 1);
                    let lock = other.lock(&k).await.unwrap();
                    let theirs = state("their-token", Some("their-rt"), Duration::from_secs(600));
                    other.save(&k, &theirs, &lock).await.unwrap();
                }))
            })
            .store_key(key("adopt"));
    let cache = CachedTokenProvider::with_config(stalled, CacheConfig::new().store(s.clone()));
    let token = cache.token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "their-token");
    let kept = cache.cached_state().unwrap();
    assert_eq!(kept.refresh_token.unwrap().expose_secret(), "their-rt");
    assert_eq!(
        secret(&stored_state(&*s, &k).await.access_token),
        "their-token"
    );
}

fn redis_cli_del(url: &str, key: &str) -> i64 {
    let port = url.rsplit(':').next().unwrap().split('/').next().unwrap();
    let out = std::process::Command::new("redis-cli")
        .args(["-p", port, "DEL", key])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
