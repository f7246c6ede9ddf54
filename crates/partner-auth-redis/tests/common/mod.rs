//! Helpers shared by the Redis store's tests: keys, states, a provider that rotates refresh
//! tokens, and raw access to the server.

#![allow(dead_code, unreachable_pub)] // each test binary uses its own share of these

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use partner_auth_redis::RedisStore;
use partner_auth_redis::testing::RedisServer;
use token_provider::{
    AccessToken, Clock, Error, Fetch, Secret, StoreKey, SystemClock, TokenState, TokenStore,
    async_trait,
};

pub fn key(name: &str) -> StoreKey {
    StoreKey::new("test", "live", "tenant", name)
}

/// A state expiring `lifetime` from now (whole seconds, as stored).
pub fn state(token: &str, refresh: Option<&str>, lifetime: Duration) -> TokenState {
    let now = SystemClock.now();
    let now = UNIX_EPOCH + Duration::from_secs(now.duration_since(UNIX_EPOCH).unwrap().as_secs());
    TokenState::new(
        AccessToken::builder(token)
            .expires_in(now, lifetime)
            .build(),
    )
    .with_refresh_token(refresh.map(Secret::from))
    .with_obtained_at(now)
}

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

/// Every key on the server, sorted.
pub fn all_keys(server: &RedisServer) -> Vec<String> {
    let mut keys: Vec<String> = server.cli(&["--scan"]).lines().map(str::to_owned).collect();
    keys.sort();
    keys
}

/// What a replica does in the middle of a fetch (with the fetch's number, from 1).
pub type Hook = Arc<dyn Fn(u32) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A provider that rotates refresh tokens: `rt-N` (or a login) buys `at-M` and `rt-M`, `M`
/// counting every answer; it records every refresh token presented.
#[derive(Debug, Default)]
pub struct Provider {
    pub presented: Mutex<Vec<String>>,
    issued: AtomicU32,
}

impl Provider {
    pub fn presented(&self) -> Vec<String> {
        self.presented.lock().unwrap().clone()
    }
}

/// One replica's fetcher for the principal `name`: asks the shared provider, running its hook
/// (if any) between presenting and answering.
#[derive(Clone)]
pub struct Replica {
    pub provider: Arc<Provider>,
    pub name: &'static str,
    pub hook: Option<Hook>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("name", &self.name).finish()
    }
}

#[async_trait]
impl Fetch for Replica {
    fn store_key(&self) -> Option<StoreKey> {
        Some(key(self.name))
    }

    async fn fetch(&self, previous: Option<&TokenState>) -> Result<TokenState, Error> {
        let rt = previous
            .and_then(|p| p.refresh_token.as_ref())
            .map_or_else(|| "(login)".to_owned(), |r| r.expose_secret().to_owned());
        self.provider.presented.lock().unwrap().push(rt);
        let n = self.provider.issued.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(hook) = &self.hook {
            hook(n).await;
        }
        Ok(state(
            &format!("at-{n}"),
            Some(&format!("rt-{n}")),
            Duration::from_secs(600),
        ))
    }
}

pub fn secret(token: &AccessToken) -> &str {
    token.secret().expose_secret()
}
