//! A new store key rolled through a fleet sharing one Redis, replica by replica, with no
//! replica ever unable to open what another saved; `listing` names the key that sealed each
//! entry.

use std::sync::Arc;
use std::time::Duration;

use partner_auth_redis::testing::RedisServer;
use partner_auth_redis::{RedisStore, SealKey, SealKeys};
use token_provider::{AccessToken, KeyFingerprint, StoreKey, StoreRecord, TokenState, TokenStore};

/// The first entry `store` lists is sealed under the key `fingerprint` names, the current one
/// or not.
async fn assert_sealed_by(store: &RedisStore, fingerprint: KeyFingerprint, current: bool) {
    let listed = store.listing().await.unwrap();
    let by = listed[0].sealed_by.unwrap();
    assert_eq!((by.fingerprint, by.current), (fingerprint, current));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_rolls_a_new_key_with_no_decrypt_failure() {
    let server = RedisServer::start();
    token_provider::testing::key_roll_contract(|keys| {
        Arc::new(
            RedisStore::builder(server.url())
                .lease(Duration::from_secs(5))
                .seal_keys(keys.clone())
                .build()
                .unwrap(),
        )
    })
    .await;
}

/// What Redis holds under a rotated key: no token in clear, and an entry sealed under the old
/// key opens under the new set and is sealed under the new key by its next save.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_under_an_older_key_is_resealed_at_its_next_save() {
    let server = RedisServer::start();
    let (old, new) = (SealKey::generate().unwrap(), SealKey::generate().unwrap());
    let open = |keys: SealKeys| {
        RedisStore::builder(server.url())
            .seal_keys(keys)
            .build()
            .unwrap()
    };
    let before = open(SealKeys::new(old.clone()));
    let after = open(SealKeys::new(new.clone()).with_older(old.clone()));
    let key = StoreKey::new("rotate", "live", "tenant", "me");
    let record = |token: &str| {
        StoreRecord::new(
            TokenState::new(
                AccessToken::builder(token)
                    .expires_at(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(4e9 as u64))
                    .build(),
            ),
            0,
        )
    };
    let lock = before.lock(&key).await.unwrap();
    let v1 = before
        .save_record(&key, &record("at-under-old"), None, &lock)
        .await
        .unwrap();
    drop(lock);
    assert_sealed_by(&after, old.fingerprint(), false).await;

    let stored = after.load_record(&key).await.unwrap().unwrap();
    assert_eq!(stored.version, v1);
    let lock = after.lock(&key).await.unwrap();
    after
        .save_record(&key, &record("at-under-new"), Some(v1), &lock)
        .await
        .unwrap();
    drop(lock);
    assert_sealed_by(&after, new.fingerprint(), true).await;
    let raw = std::process::Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "--no-raw", "GET"])
        .arg(after.entry_key(&key))
        .output()
        .unwrap();
    let raw = String::from_utf8_lossy(&raw.stdout);
    assert!(raw.contains(":xc2:") && !raw.contains("at-under"), "{raw}");
    // The old key alone no longer opens it; its error names no key.
    let err = before.load(&key).await.unwrap_err().to_string();
    assert!(err.contains("does not decrypt"), "{err}");
}
