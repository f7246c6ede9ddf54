//! `--store redis://…` against a real redis-server: runs share one token, `status` and `forget`
//! work on it, entries are sealed under PARTNER_AUTH_STORE_KEY, and an unreachable Redis is
//! fetched around only for a grant that is safe to repeat.

mod common;

use common::emu::*;
use partner_auth_redis::testing::RedisServer;

const KEY: &str = "0oQ2lHqCw9bS7Yk3nX1fVtR5uJ8mZ4pE6aD0gK2hL9s=";

fn with_store(mut env: Vec<(&'static str, String)>, url: &str) -> Vec<(&'static str, String)> {
    env.push(("PARTNER_AUTH_STORE", url.to_owned()));
    env.push(("PARTNER_AUTH_STORE_KEY", KEY.to_owned()));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_share_one_token_through_redis_and_status_and_forget_work_on_it() {
    let redis = RedisServer::start();
    let emu = emulator().await;
    let env = with_store(vars(&emu, "aerion"), &redis.url());
    let first = token_of(&partner_auth("aerion", &env, &[]).await);
    assert_eq!(emu.request_count(token_endpoint("aerion")), 1);
    emu.clear_requests();
    // Later runs adopt it with no request, and none waits out a lease (each released its lock).
    for _ in 0..3 {
        let out = partner_auth("aerion", &env, &[]).await;
        assert_eq!(token_of(&out), first);
        assert!(
            out.elapsed < std::time::Duration::from_secs(5),
            "{:?}",
            out.elapsed
        );
    }
    assert!(emu.requests().is_empty(), "served from Redis");
    // Sealed: the token is nowhere in Redis in clear.
    let mut everything = String::new();
    for key in redis.cli(&["--scan"]).lines() {
        everything.push_str(key);
        everything.push_str(&redis.cli(&["GET", key]));
    }
    assert!(everything.contains(":e:aerion|"), "{everything}");
    assert!(!everything.contains(&first), "a token in clear in Redis");
    for secret in secrets(&emu) {
        assert!(!everything.contains(&secret));
    }

    let vars_of = |env: &[(&'static str, String)]| -> Vec<(String, String)> {
        env.iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    };
    let owned = vars_of(&env);
    let pairs: Vec<(&str, &str)> = owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let status = common::run_async(common::command(&["status"], &pairs)).await;
    status.assert_code(0);
    assert!(status.stdout.contains("aerion"), "{}", status.stdout);
    assert!(!status.stdout.contains(&first));
    let forget = common::run_async(common::command(&["forget", "aerion"], &pairs)).await;
    forget.assert_code(0);
    assert!(forget.stdout.contains("forgot"), "{}", forget.stdout);
    // The lock was released, and the entry holds the forget's record alone: no token in it,
    // and no entry to list.
    let left = redis.cli(&["--scan", "--pattern", "partner-auth:*"]);
    let left: Vec<&str> = left.split_whitespace().collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains(":e:aerion|"), "{left:?}");
    let forgotten = redis.cli(&["GET", left[0]]);
    assert!(!forgotten.contains(&first));
    for secret in secrets(&emu) {
        assert!(!forgotten.contains(&secret));
    }
    let status = common::run_async(common::command(&["status"], &pairs)).await;
    status.assert_code(0);
    assert!(!status.stdout.contains("aerion"), "{}", status.stdout);

    // Read under another key: a clear error (exit 2), never a token.
    let token = token_of(&partner_auth("aerion", &env, &[]).await);
    let mut wrong = env.clone();
    set(
        &mut wrong,
        "PARTNER_AUTH_STORE_KEY",
        "bm90LXRoZS1yaWdodC1rZXktMzItYnl0ZXMtbG9uZyE=",
    );
    let out = partner_auth("aerion", &wrong, &[]).await;
    out.assert_failure(2, "aerion", &["does not decrypt"]);
    assert!(!out.stdout.contains(&token));
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_unreachable_a_password_grant_is_fetched_and_a_refresh_token_is_not_spent() {
    let emu = emulator().await;
    let down = format!("redis://127.0.0.1:{}/0", common::closed_port());
    // A password grant is safe to repeat: fetched without the store, with a warning.
    let env = with_store(vars(&emu, "aerion"), &down);
    let out = partner_auth("aerion", &env, &[]).await;
    out.assert_code(0);
    assert!(out.stderr.contains("warning") && out.stderr.contains("not shared"));
    let token = out.stdout.trim().to_owned();
    assert!(emulator_issued(&emu, "aerion", &token).await);
    // A refresh-token-only principal: exit 4 naming Redis, and the refresh token never sent.
    let mut env = with_store(vars(&emu, "aerion"), &down);
    unset(&mut env, "AERION_USERNAME");
    unset(&mut env, "AERION_PASSWORD");
    let rt = emu
        .issue_refresh_token(&emu.config().aerion_users[0].username)
        .unwrap();
    set(&mut env, "AERION_REFRESH_TOKEN", &rt);
    emu.clear_requests();
    let out = partner_auth("aerion", &env, &[]).await;
    out.assert_failure(4, "aerion", &["Redis"]);
    out.assert_no_secret_in_stderr(&[&rt]);
    assert!(
        emu.requests().is_empty(),
        "a refresh token was spent outside the fleet's lock"
    );
    emu.shutdown().await;
}
