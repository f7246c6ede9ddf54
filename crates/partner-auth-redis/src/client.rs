//! What every clone of a store shares: the settings, the connection (made on first use, with
//! the eviction check), one bounded call, and the errors a failed call becomes.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use token_provider::{Error, KeyLocks, SharedClock, StoreKey};
use tracing::warn;

use crate::codec::Stored;
use crate::scripts::Scripts;
use crate::seal::Sealer;

/// The settings a builder validated.
pub(crate) struct Settings {
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) lease: Duration,
    pub(crate) lock_timeout: Duration,
    pub(crate) expiry_slack: Duration,
    pub(crate) refresh_ttl: Duration,
    pub(crate) accept_eviction_risk: bool,
    /// Replicas that must acknowledge each save, and how long to wait for them.
    pub(crate) replicas: Option<(u32, Duration)>,
}

pub(crate) struct Inner {
    pub(crate) client: redis::Client,
    /// `scheme://host:port/db`: for messages (never the password).
    pub(crate) server: String,
    conn: tokio::sync::OnceCell<ConnectionManager>,
    pub(crate) settings: Settings,
    pub(crate) sealer: Option<Sealer>,
    pub(crate) clock: SharedClock,
    /// Tasks of one process queue here per key before they ask Redis.
    pub(crate) local: KeyLocks,
    /// The entry read with each lock taken, handed to the next read of that key.
    pub(crate) snapshots: Mutex<HashMap<StoreKey, Snapshot>>,
    /// The highest version read or written of each key (see [`Inner::version_seen`]).
    seen: Mutex<HashMap<StoreKey, u64>>,
    round_trips: AtomicU64,
    pub(crate) scripts: Scripts,
}

/// An entry read with a lock: what was stored, and the highest version seen before the read.
pub(crate) struct Snapshot {
    pub(crate) stored: Stored,
    pub(crate) seen: Option<u64>,
}

/// Keys whose highest version is remembered; past it the memory starts again.
const SEEN_KEYS: usize = 100_000;

impl Inner {
    pub(crate) fn new(
        client: redis::Client,
        server: String,
        settings: Settings,
        sealer: Option<Sealer>,
        clock: SharedClock,
    ) -> Self {
        Self {
            client,
            server,
            conn: tokio::sync::OnceCell::new(),
            settings,
            sealer,
            clock,
            local: KeyLocks::default(),
            snapshots: Mutex::default(),
            seen: Mutex::default(),
            round_trips: AtomicU64::new(0),
            scripts: Scripts::new(),
        }
    }

    pub(crate) fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    pub(crate) fn take_snapshot(&self, key: &StoreKey) -> Option<Snapshot> {
        self.snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)
    }

    /// The highest version of `key` this store has read or written, if any. A value read later
    /// with a lower version was written before that one: an older value written back. (A read
    /// compares with what was seen before it was sent, so a save that overtakes it is no
    /// rollback.)
    pub(crate) fn version_seen(&self, key: &StoreKey) -> Option<u64> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }

    pub(crate) fn note_version(&self, key: &StoreKey, version: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= SEEN_KEYS && !seen.contains_key(key) {
            seen.clear();
        }
        let highest = seen.entry(key.clone()).or_default();
        *highest = (*highest).max(version);
    }

    pub(crate) fn unavailable(&self, what: impl fmt::Display) -> Error {
        Error::store_unavailable(format!("Redis at {}: {what}", self.server))
    }

    /// Makes the connection if there is none yet: a call made after it fails only once the
    /// command may have been sent.
    pub(crate) async fn connect(self: &Arc<Self>) -> Result<(), Error> {
        self.connection().await.map(drop)
    }

    async fn connection(self: &Arc<Self>) -> Result<ConnectionManager, Error> {
        let s = &self.settings;
        let connect = self.conn.get_or_try_init(|| async {
            let replicas_wait = s.replicas.map_or(Duration::ZERO, |(_, wait)| wait);
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(s.connect_timeout))
                .set_response_timeout(Some(s.timeout + replicas_wait))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            let conn = ConnectionManager::new_with_config(self.client.clone(), config)
                .await
                .map_err(|e| self.redis_error(&e))?;
            self.check_eviction(conn.clone()).await?;
            Ok(conn)
        });
        let limit = s.connect_timeout + s.timeout * 2;
        match tokio::time::timeout(limit, connect).await {
            Ok(Ok(conn)) => Ok(conn.clone()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.unavailable(format_args!("no connection within {limit:?}"))),
        }
    }

    /// Refuses a server that may evict keys (every key of this store has a lifetime, so the
    /// `volatile-*` policies evict them too): an evicted entry takes the principal's refresh
    /// token with it. Checked once, when the connection is first made.
    async fn check_eviction(&self, mut conn: ConnectionManager) -> Result<(), Error> {
        let fix = "set it to noeviction (`CONFIG SET maxmemory-policy noeviction`, and in the \
                   server's configuration), or accept the risk with accept_eviction_risk(true)";
        let answer: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut conn)
            .await;
        let policy = match answer {
            Ok(answer) => answer.get(1).cloned().unwrap_or_default(),
            Err(e) if is_connection_error(&e) => return Err(self.redis_error(&e)),
            Err(e) if self.settings.accept_eviction_risk => {
                warn!(
                    server = %self.server,
                    answer = ?e.kind(),
                    "Redis refused CONFIG GET maxmemory-policy: an evicting policy cannot be \
                     ruled out (accept_eviction_risk is set)"
                );
                return Ok(());
            }
            Err(e) => {
                return Err(Error::config(
                    "maxmemory-policy",
                    format!(
                        "cannot be read on {} (CONFIG GET was refused: {:?}); it must not evict \
                         keys: {fix}",
                        self.server,
                        e.kind()
                    ),
                ));
            }
        };
        if !(policy.starts_with("allkeys-") || policy.starts_with("volatile-")) {
            return Ok(());
        }
        if self.settings.accept_eviction_risk {
            warn!(
                server = %self.server,
                policy = %policy,
                "Redis may evict this store's entries (maxmemory-policy {policy}; \
                 accept_eviction_risk is set): an evicted refresh token is lost"
            );
            return Ok(());
        }
        Err(Error::config(
            "maxmemory-policy",
            format!(
                "is {policy} on {}: Redis may evict an entry, and a principal's refresh token \
                 with it; {fix}",
                self.server
            ),
        ))
    }

    /// One round trip, bounded by the timeout (plus `extra`).
    pub(crate) async fn call<T, F, Fut>(self: &Arc<Self>, extra: Duration, f: F) -> Result<T, Error>
    where
        F: FnOnce(ConnectionManager, Arc<Inner>) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let limit = self.settings.timeout + extra;
        match tokio::time::timeout(limit, f(conn, Arc::clone(self))).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.redis_error(&e)),
            Err(_) => Err(self.unavailable(format_args!("no answer within {limit:?}"))),
        }
    }

    pub(crate) fn redis_error(&self, e: &redis::RedisError) -> Error {
        // The error's text may quote a command's arguments (never ours: they hold tokens), so
        // only its kind and category are shown.
        if is_connection_error(e) {
            self.unavailable(format_args!(
                "{:?} (server unreachable or restarting)",
                e.kind()
            ))
        } else {
            Error::store(
                format!("Redis at {} refused a command: {:?}", self.server, e.kind()),
                None,
            )
        }
    }
}

fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}
