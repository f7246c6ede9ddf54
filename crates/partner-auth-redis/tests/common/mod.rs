//! Helpers shared by the Redis store's tests: keys, states, a provider that rotates refresh
//! tokens, and raw access to the server.

#![allow(dead_code, unreachable_pub)] // each test binary uses its own share of these

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use partner_auth_redis::RedisStore;
use partner_auth_redis::testing::RedisServer;
pub use token_provider::testing::{Scripted, key, state};
use token_provider::{AccessToken, StoreKey, TokenState, TokenStore};

/// Saves `state` under `key` as a holder would: lock, save, release.
pub async fn seed(store: &RedisStore, key: &StoreKey, state: &TokenState) {
    let lock = store.lock(key).await.unwrap();
    store.save(key, state, &lock).await.unwrap();
}

/// A connection of the test's own, for what `redis-cli` cannot send (bytes, large values).
pub async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// `SET key value` on `conn`, bytes as they are.
pub async fn set_raw(
    conn: &mut redis::aio::MultiplexedConnection,
    key: impl redis::ToRedisArgs,
    value: impl redis::ToRedisArgs,
) {
    let () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(conn)
        .await
        .unwrap();
}

/// Every key on the server, sorted.
pub fn all_keys(server: &RedisServer) -> Vec<String> {
    let mut keys: Vec<String> = server.cli(&["--scan"]).lines().map(str::to_owned).collect();
    keys.sort();
    keys
}

/// What a replica does in the middle of a fetch (with the fetch's number, from 1).
pub type Hook = Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A provider that rotates refresh tokens: `rt-N` (or a login) buys `at-M` and `rt-M`, `M`
/// counting every answer. Every replica's fetcher is a clone of it, so its record holds every
/// refresh token presented.
pub fn provider() -> Scripted {
    Scripted::new(|call| {
        let n = call.n + 1;
        let refresh = format!("rt-{n}");
        Ok(state(
            &format!("at-{n}"),
            Some(&refresh),
            Duration::from_secs(600),
        ))
    })
}

/// One replica's fetcher for the principal `name`: asks the shared provider, running its hook
/// (if any) between presenting and answering.
pub fn replica(provider: &Scripted, name: &str, hook: Option<Hook>) -> Scripted {
    let fetcher = provider.clone().store_key(key(name));
    match hook {
        Some(hook) => fetcher.pause(move |call| Some(hook(call.n + 1))),
        None => fetcher,
    }
}

/// The refresh tokens presented to `provider`, in order (`(login)` for none).
pub fn presented(provider: &Scripted) -> Vec<String> {
    provider
        .presented()
        .into_iter()
        .map(|rt| rt.unwrap_or_else(|| "(login)".to_owned()))
        .collect()
}

pub fn secret(token: &AccessToken) -> &str {
    token.secret().expose_secret()
}

/// This test binary run again as its `replica` test, with `own` (the variables that make it a
/// replica of the calling test), Aerion at `emulator` (base URL, tenant, client credentials) and
/// `env` on top; stdout piped, stderr dropped, killed on drop.
pub fn replica_command(
    emulator: &partner_auth_emulator::RunningEmulator,
    own: &[(&str, String)],
    env: &[(&str, String)],
) -> tokio::process::Command {
    use std::process::Stdio;

    let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "replica", "--nocapture", "--test-threads", "1"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(own.iter().map(|(name, value)| (name, value)))
        .env("AERION_BASE_URL", emulator.aerion_base())
        .env("AERION_COMPANY_URL", emulator.aerion_tenant())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in emulator.env_vars() {
        if name.starts_with("AERION_CLIENT_") {
            cmd.env(name, value);
        }
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd
}
