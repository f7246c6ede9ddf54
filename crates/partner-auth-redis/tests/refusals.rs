//! What Redis refuses is named by its own error code as a configuration error naming the
//! server (never its password); only a server that cannot be reached is unavailable.

mod common;

use std::time::Duration;

use common::*;
use partner_auth_redis::RedisStore;
use partner_auth_redis::testing::RedisServer;
use token_provider::{Error, TokenStore};

const PASSWORD: &str = "pw-right-6c1d";
const WRONG: &str = "pw-wrong-93ab";

fn store_at(url: &str) -> RedisStore {
    RedisStore::builder(url)
        .timeout(Duration::from_millis(800))
        .connect_timeout(Duration::from_millis(800))
        .build()
        .unwrap()
}

/// A configuration error that names `server` and says each of `says`, and no secret.
#[track_caller]
fn assert_config(err: &Error, server: &str, says: &[&str]) {
    let text = err.to_string();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(text.contains(server), "does not name {server}: {text}");
    for needle in says {
        assert!(text.contains(needle), "lacks {needle:?}: {text}");
    }
    for secret in [PASSWORD, WRONG] {
        assert!(!text.contains(secret), "{text}");
    }
}

/// Before: `Io`/`AuthenticationFailed` read as "server unreachable or restarting" (so a grant
/// safe to repeat was fetched without the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_password_is_a_configuration_error() {
    let server = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let port = server.port();
    let shown = format!("redis://127.0.0.1:{port}/0");
    let k = key("auth");
    let err = store_at(&server.url()).lock(&k).await.unwrap_err();
    assert_config(&err, &shown, &["NOAUTH", "password"]);
    let wrong = format!("redis://:{WRONG}@127.0.0.1:{port}/0");
    let err = store_at(&wrong).lock(&k).await.unwrap_err();
    assert_config(&err, &shown, &["WRONGPASS", "password"]);
    let given_apart = RedisStore::builder(server.url()).password(WRONG).build();
    let err = given_apart.unwrap().lock(&k).await.unwrap_err();
    assert_config(&err, &shown, &["WRONGPASS"]);
    let right = format!("redis://:{PASSWORD}@127.0.0.1:{port}/0");
    drop(store_at(&right).lock(&k).await.unwrap());
    let apart = RedisStore::builder(server.url()).password(PASSWORD).build();
    drop(apart.unwrap().lock(&k).await.unwrap());
}

/// An ACL user without rights to the store's keys: NOPERM, naming the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_without_rights_is_a_configuration_error() {
    let server = RedisServer::start();
    let port = server.port();
    server.cli(&[
        "ACL",
        "SETUSER",
        "outsider",
        "on",
        ">outsider-pw",
        "~other:*",
        "+@all",
    ]);
    let url = format!("redis://outsider:outsider-pw@127.0.0.1:{port}/0");
    let err = store_at(&url).lock(&key("perm")).await.unwrap_err();
    assert_config(
        &err,
        &format!("127.0.0.1:{port}/0"),
        &["NOPERM", "outsider"],
    );
    assert!(!err.to_string().contains("outsider-pw"), "{err}");
}

/// A user with the rights the crate docs list does all a store does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_with_the_documented_rights_works() {
    let server = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let port = server.port();
    let set = server.cli(&[
        "ACL",
        "SETUSER",
        "app",
        "on",
        ">app-pw-77",
        "resetkeys",
        "~partner-auth:*",
        "-@all",
        "+@read",
        "+@write",
        "+@keyspace",
        "+@scripting",
        "+config|get",
    ]);
    assert!(set.contains("OK"), "{set}");
    let store = RedisStore::builder(format!("redis://app@127.0.0.1:{port}/0"))
        .password("app-pw-77")
        .build()
        .unwrap();
    let k = key("acl");
    let s = state("at-acl", Some("rt-acl"), Duration::from_secs(600));
    seed(&store, &k, &s).await;
    assert_eq!(store.load(&k).await.unwrap(), Some(s));
    assert_eq!(store.entries().await.unwrap().len(), 1);
    let lock = store.lock(&k).await.unwrap();
    assert!(store.remove(&k, &lock).await.unwrap());
}

/// A database number the server does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_out_of_range_is_a_configuration_error() {
    let server = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}/99", server.port());
    let err = store_at(&url).lock(&key("db")).await.unwrap_err();
    assert_config(&err, &url, &["no such database"]);
}

/// Out of memory under `noeviction`: writes are refused with OOM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_is_a_configuration_error() {
    let server = RedisServer::start();
    let mut raw = raw(&server).await;
    let filler = vec![b'x'; 3 << 20];
    common::set_raw(&mut raw, "filler", filler).await;
    // Below what is used: every write is refused (the policy stays noeviction).
    assert!(
        server
            .cli(&["CONFIG", "SET", "maxmemory", "1mb"])
            .contains("OK")
    );
    let err = store_at(&server.url()).lock(&key("oom")).await.unwrap_err();
    assert_config(&err, &server.url(), &["OOM", "maxmemory"]);
}

/// Only a server that does not answer is unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop();
    let err = store_at(&url).lock(&key("down")).await.unwrap_err();
    assert!(matches!(err, Error::StoreUnavailable { .. }), "{err:?}");
}
