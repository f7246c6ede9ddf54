//! The Redis password from a file, rotated under a running store: a changed file is taken up
//! at the next call, and a rewrite the file's metadata does not show is read again once Redis
//! refuses the password it held.

mod common;

use std::time::Duration;

use partner_auth_redis::RedisStore;
use partner_auth_redis::testing::RedisServer;
use token_provider::testing::{SecretFile, key, state};
use token_provider::{Error, SecretSource, TokenState, TokenStore};

const OLD: &str = "old-redis-pass-7f3a";
const NEW: &str = "new-redis-pass-9c1e";
const VAR: &str = "PARTNER_AUTH_REDIS_PASSWORD_FILE";

/// Sets the server's password to `to` (connected with `from`), and closes every client
/// connection but this one, as a restart or a network blip would.
async fn rotate_server(server: &RedisServer, from: &str, to: &str) {
    let url = format!("redis://:{from}@127.0.0.1:{}/0", server.port());
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(to)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"][..])
        .query_async(&mut conn)
        .await
        .unwrap();
}

fn store(server: &RedisServer, file: &SecretFile) -> RedisStore {
    RedisStore::builder(server.url())
        .password_source(SecretSource::file(VAR, file.path()).unwrap())
        .build()
        .unwrap()
}

/// The first read past the blip `rotate_server` made: the command that meets the closed
/// connection fails as any blip does (`StoreUnavailable`, transient), and the connection is
/// made again.
async fn read_after_blip(store: &RedisStore) -> Result<Option<TokenState>, Error> {
    let k = key("pw-rotation");
    for _ in 0..40 {
        match store.load(&k).await {
            Err(Error::StoreUnavailable { .. }) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
    panic!("Redis stayed unavailable for 2 s");
}

/// A read that should succeed: the state saved first.
async fn assert_reads(store: &RedisStore) {
    let got = read_after_blip(store)
        .await
        .unwrap()
        .expect("the state saved before");
    assert_eq!(got.access_token.secret().expose_secret(), "at-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_file_swapped_is_taken_up_at_the_next_call() {
    let server = RedisServer::start_with(&["--requirepass", OLD]);
    let mut file = SecretFile::new("redis-pw-swap", OLD);
    let store = store(&server, &file);
    let k = key("pw-rotation");
    common::seed(&store, &k, &state("at-1", None, Duration::from_secs(3600))).await;
    assert_reads(&store).await;

    rotate_server(&server, OLD, NEW).await;
    // The file still holds the old password: refused, named, never quoted.
    let err = read_after_blip(&store).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(text.contains("WRONGPASS") && text.contains(VAR), "{text}");
    assert!(!text.contains(OLD) && !text.contains(NEW), "{text}");
    assert!(!format!("{store:?}").contains(OLD));

    // Kubernetes swaps the mounted secret: the next call connects with the new one.
    file.swap(NEW);
    assert_reads(&store).await;
}

/// Before: the password was read once, when the store was built; every call after the
/// server's rotation failed until the process restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_the_metadata_hides_is_read_again_after_a_refusal() {
    let server = RedisServer::start_with(&["--requirepass", OLD]);
    let file = SecretFile::new("redis-pw-unseen", OLD);
    let store = store(&server, &file);
    let k = key("pw-rotation");
    common::seed(&store, &k, &state("at-1", None, Duration::from_secs(3600))).await;

    // Same length, same modification time: only Redis's refusal tells.
    file.rewrite_unseen(NEW);
    rotate_server(&server, OLD, NEW).await;
    assert_reads(&store).await;
    assert!(!format!("{store:?}").contains(NEW));
}
