//! A [`TokenStore`] on Redis: a fleet of replicas shares one token per principal.
//!
//! Give every replica's providers the same [`RedisStore`] and the fleet fetches once per
//! principal per expiry: the replica whose token comes due first takes the principal's lock,
//! fetches and saves; the others, at their own soft expiry, read the saved state and adopt it
//! without a request. A rotating refresh token is spent by one replica at a time, under the lock,
//! and saved before the lock is let go. Hits never touch Redis: the in-process cache
//! ([`CachedTokenProvider`](token_provider::CachedTokenProvider)) stays the first level, and
//! Redis is read only when the local token comes due or after a 401.
//!
//! ```no_run
//! use std::sync::Arc;
//! use partner_auth_redis::{RedisStore, SealKey};
//! use token_provider::{CacheConfig, TokenStore};
//!
//! # fn main() -> Result<(), token_provider::Error> {
//! let store = RedisStore::builder("redis://10.0.0.5:6379/0")
//!     .prefix("billing:")
//!     .seal_key(SealKey::from_base64(&std::env::var("PARTNER_AUTH_STORE_KEY").unwrap())?)
//!     .build()?;
//! let store: Arc<dyn TokenStore> = Arc::new(store);
//! let cache = CacheConfig::new().store(store); // hand it to every provider's builder
//! # let _ = cache; Ok(()) }
//! ```
//!
//! # Keys and values
//!
//! For the store key `K` (provider, environment, tenant, principal: see
//! [`StoreKey`]) and the prefix `P` (default `partner-auth:`):
//!
//! | Redis key | holds | lifetime |
//! | --- | --- | --- |
//! | `P` `e:` `K` | `<version>:<entry>`: the fence of the save that wrote it, then the [`FileStore`](token_provider::FileStore) format's entry (`token_provider::encode_entry`), or, with a key, `xc1:` and that entry sealed | the token's expiry plus a slack (default 60 s); with a refresh token, at least [`refresh_token_ttl`](RedisStoreBuilder::refresh_token_ttl) (default 30 days) |
//! | `P` `l:` `K` | the lock: a random token of its holder | the lease (default 15 s), extended while held |
//! | `P` `f:` `K` | the fence: a counter bumped by every lock taken | renewed to the refresh-token lifetime at every lock |
//!
//! A state with a refresh token is kept longer than its access token because the refresh token
//! is the part worth keeping: dropping it with the access token would send a refresh-token-only
//! principal back to a person for a new login, and lose a rotated one. One with neither expiry
//! nor refresh token is kept 7 days (the cache never uses such a token longer than that).
//!
//! # The lock, the lease and the fence
//!
//! - [`lock`](TokenStore::lock) runs one script: `SET l:K <random> NX PX <lease>`, and when that
//!   succeeds, `INCR f:K` (the fence, never below the version of the stored entry) and the stored
//!   entry, all in one round trip. The entry is kept with the lock and answers the
//!   [`load`](TokenStore::load) that follows, so load costs no round trip.
//! - A lock that is taken is polled with a backoff of 5 ms doubling to 100 ms (never past the
//!   holder's remaining lease) for at most [`lock_timeout`](RedisStoreBuilder::lock_timeout)
//!   (default 30 s, longer than the lease, so a dead holder's lease always runs out within one
//!   wait); then [`Error::StoreBusy`].
//! - While the lock is held a task extends the lease every third of it (a script that
//!   `PEXPIRE`s the lock only while it still holds our token).
//! - [`save`](TokenStore::save) is one script that writes the entry only while the fence is
//!   still ours (no one took the lock after us, whatever became of our lease) and the stored
//!   version is not newer, and then releases the lock: one round trip. Refused, it is
//!   [`Error::StoreFenced`], which the cache answers by reading the store again and adopting
//!   what the newer holder saved (its refresh token is the one the provider accepts next).
//! - Dropping the lock without a save releases it with a compare-and-delete script, on a task of
//!   its own: a drop never blocks.
//!
//! So the replica that fetches makes 2 round trips per expiry (lock, save-and-release) and one
//! that adopts makes 2 (lock, release), plus one per poll while another holds the lock. Each
//! script is loaded once per connection; a restart of Redis costs one reload.
//!
//! # When Redis is down or slow
//!
//! Every call is bounded by [`timeout`](RedisStoreBuilder::timeout) (default 2 s) and a connection
//! attempt by [`connect_timeout`](RedisStoreBuilder::connect_timeout); past it, and on a refused
//! or dropped connection, the call fails with [`Error::StoreUnavailable`] naming the server
//! (never its password). Callers holding a valid token keep getting it (hits never touch Redis,
//! and a failed refresh in the soft window keeps serving the token). A caller with none gets one
//! fetched without the store only when the provider's grant is safe to repeat (client
//! credentials, a password grant, an application key:
//! [`Fetch::repeatable_without_store`](token_provider::Fetch::repeatable_without_store)); a
//! principal with only a refresh token, or a single-use session token, gets the error instead.
//! The connection is re-made in the background once Redis is back.
//!
//! # Encryption at rest
//!
//! With a [`SealKey`] (32 bytes in base64; the facade and the CLI read `PARTNER_AUTH_STORE_KEY`)
//! every stored entry is sealed with XChaCha20-Poly1305 (a random 24-byte nonce per save), its
//! full Redis key as associated data: a value copied to another principal's key, altered, or read
//! under another key does not open, and the load fails with an error saying so. It is never
//! served, and nothing panics. With a key configured, entries stored in clear are refused too
//! (someone who can write Redis must not be able to plant a token). **Without a key, whoever can
//! read Redis (or its snapshots and replicas) can read every access and refresh token in it.**
//! Use `rediss://` (TLS) when the connection leaves the host.
//!
//! # Why the `redis` crate
//!
//! `redis` (redis-rs) is the most used Rust client, kept by the Redis organisation, and has what
//! this store needs and no more: a tokio connection manager that reconnects by itself, response
//! and connection timeouts, server-side scripts with `EVALSHA` and a reload on `NOSCRIPT`, and
//! TLS through rustls (the workspace's one TLS stack; no OpenSSL). `fred` has more (pools,
//! cluster, sentinel, client-side caching) that a lock and a handful of keys per principal do not
//! use, and a larger build. A single Redis (or a primary with replicas) is supported; in a
//! cluster the three keys of a principal may live on different nodes and the scripts would be
//! refused.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod seal;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use token_provider::{
    Error, SharedClock, StoreEntry, StoreKey, StoreLock, TokenState, TokenStore, decode_entry,
    encode_entry, system_clock,
};
use tracing::{debug, warn};
use zeroize::Zeroizing;

pub use crate::seal::SealKey;
use crate::seal::{SEALED_TAG, Sealer};

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "partner-auth:";

const POLL_FIRST: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(100);

/// Takes the lock; on success bumps the fence (never below the stored entry's version) and
/// returns it with the stored entry; otherwise the lock's remaining lease.
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local fence = redis.call('INCR', KEYS[2])
  local cur = redis.call('GET', KEYS[3])
  if cur then
    local v = tonumber(string.match(cur, '^(%d+):'))
    if v and v >= fence then
      fence = v + 1
      redis.call('SET', KEYS[2], fence)
    end
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return {fence, cur or ''}
end
return {0, redis.call('PTTL', KEYS[1])}
";

/// Extends the lease while the lock is still ours.
const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Releases the lock only if it is still ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Writes (or, with an empty value, deletes) the entry while the fence is ours and the stored
/// version not newer, then releases the lock. -1: fenced out; -2: a newer version is stored;
/// otherwise 1 (written, or deleted an entry) or 0 (deleted nothing).
const SAVE: &str = r"
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[2]) then
  return -1
end
local cur = redis.call('GET', KEYS[3])
if cur then
  local v = tonumber(string.match(cur, '^(%d+):'))
  if v and v > tonumber(ARGV[2]) then
    return -2
  end
end
local out = 1
if ARGV[3] == '' then
  out = redis.call('DEL', KEYS[3])
else
  redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return out
";

/// A [`TokenStore`] on one Redis server, shared by a fleet (see the crate docs).
///
/// Cheap to clone (clones share the connection and the counters).
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Unique in the process: a lock from another store is not accepted by this one's save.
    id: u64,
    client: redis::Client,
    /// `scheme://host:port/db`: for messages (never the password).
    server: String,
    conn: tokio::sync::OnceCell<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
    lease: Duration,
    lock_timeout: Duration,
    expiry_slack: Duration,
    refresh_ttl: Duration,
    sealer: Option<Sealer>,
    clock: SharedClock,
    /// Tasks of one process queue here per key before they ask Redis.
    local: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The entry read with each held lock, handed to the next `load` of that key.
    snapshots: Mutex<HashMap<String, String>>,
    round_trips: AtomicU64,
    scripts: Scripts,
}

struct Scripts {
    acquire: Script,
    extend: Script,
    release: Script,
    save: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("RedisStore")
            .field("server", &i.server)
            .field("prefix", &i.prefix)
            .field("encrypted", &i.sealer.is_some())
            .field("lease", &i.lease)
            .field("timeout", &i.timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisStore`].
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
    lease: Duration,
    lock_timeout: Duration,
    expiry_slack: Duration,
    refresh_ttl: Duration,
    seal_key: Option<SealKey>,
    clock: SharedClock,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("server", &redacted_url(&self.url))
            .field("prefix", &self.prefix)
            .field("encrypted", &self.seal_key.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// The key prefix (default [`DEFAULT_PREFIX`]): applications sharing one Redis keep apart
    /// by it.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one Redis call may take (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long one connection attempt may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The lock's lease (default 15 s): how long a holder that died keeps the others waiting.
    /// A live holder's lease is extended every third of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long [`lock`](TokenStore::lock) waits for another holder before
    /// [`Error::StoreBusy`] (default 30 s; keep it above the lease).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// How long an entry outlives its access token's expiry (default 60 s).
    pub fn expiry_slack(mut self, slack: Duration) -> Self {
        self.expiry_slack = slack;
        self
    }

    /// The least time an entry with a refresh token is kept (default 30 days).
    pub fn refresh_token_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// Seals every entry under `key` (see the crate docs).
    pub fn seal_key(mut self, key: SealKey) -> Self {
        self.seal_key = Some(key);
        self
    }

    /// Seals every entry under `key` when there is one.
    pub fn seal_key_opt(mut self, key: Option<SealKey>) -> Self {
        self.seal_key = key;
        self
    }

    /// The clock that entries' lifetimes are measured on (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The store. Nothing is sent yet: the connection is made on first use.
    pub fn build(self) -> Result<RedisStore, Error> {
        let server = redacted_url(&self.url);
        if !(self.url.starts_with("redis://") || self.url.starts_with("rediss://")) {
            return Err(Error::config(
                "store",
                "a Redis store is a redis:// or rediss:// URL",
            ));
        }
        let client = redis::Client::open(self.url.as_str()).map_err(|_| {
            Error::config(
                "store",
                format!("{server} is not a Redis URL (redis://[:PASSWORD@]HOST[:PORT][/DB])"),
            )
        })?;
        if self.lease < Duration::from_millis(30) {
            return Err(Error::config("lease", "must be at least 30 ms"));
        }
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Ok(RedisStore {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                client,
                server,
                conn: tokio::sync::OnceCell::new(),
                prefix: self.prefix,
                timeout: self.timeout,
                connect_timeout: self.connect_timeout,
                lease: self.lease,
                lock_timeout: self.lock_timeout,
                expiry_slack: self.expiry_slack,
                refresh_ttl: self.refresh_ttl,
                sealer: self.seal_key.as_ref().map(Sealer::new),
                clock: self.clock,
                local: Mutex::new(HashMap::new()),
                snapshots: Mutex::new(HashMap::new()),
                round_trips: AtomicU64::new(0),
                scripts: Scripts {
                    acquire: Script::new(ACQUIRE),
                    extend: Script::new(EXTEND),
                    release: Script::new(RELEASE),
                    save: Script::new(SAVE),
                },
            }),
        })
    }
}

/// `scheme://host:port/db` of a Redis URL, without user or password.
fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                port,
                u.path()
            )
        }
        Err(_) => "the Redis URL".to_owned(),
    }
}

/// What [`RedisStore::lock`] puts in the [`StoreLock`]: the lease and its fence.
struct Lease {
    inner: Arc<Inner>,
    key: String,
    token: String,
    fence: u64,
    /// Set once a save released the lock (nothing left to release on drop).
    released: AtomicBool,
    extender: tokio::task::JoinHandle<()>,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.extender.abort();
        self.inner.take_snapshot(&self.key);
        if self.released.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to release on: the lease runs out by itself.
            return;
        };
        let inner = Arc::clone(&self.inner);
        let lock = inner.lock_key(&self.key);
        let token = std::mem::take(&mut self.token);
        let pending = Pending::start();
        runtime.spawn(async move {
            let _pending = pending;
            let result = inner
                .call(|mut conn, inner| async move {
                    inner
                        .scripts
                        .release
                        .key(&lock)
                        .arg(&token)
                        .invoke_async::<i64>(&mut conn)
                        .await
                })
                .await;
            if let Err(e) = result {
                debug!(error = %e, "releasing a Redis lock failed: its lease runs out instead");
            }
        });
    }
}

/// Releases under way in this process (see [`settle`]).
static PENDING_RELEASES: AtomicU64 = AtomicU64::new(0);

/// Counts one release under way until dropped.
struct Pending;

impl Pending {
    fn start() -> Self {
        PENDING_RELEASES.fetch_add(1, Ordering::AcqRel);
        Self
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        PENDING_RELEASES.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Waits (at most `limit`) for the lock releases this process has started to reach Redis.
///
/// A lock dropped without a save is released on a task of its own; a short-lived program (a
/// CLI) that is about to stop its runtime calls this first, so the next run does not wait out
/// the lease of a lock nobody holds.
pub async fn settle(limit: Duration) {
    let mut waited = Duration::ZERO;
    let step = Duration::from_millis(2);
    while PENDING_RELEASES.load(Ordering::Acquire) > 0 && waited < limit {
        tokio::time::sleep(step).await;
        waited += step;
    }
}

impl RedisStore {
    /// A builder for the server at `url` (`redis://[:PASSWORD@]HOST[:PORT][/DB]`, or `rediss://`
    /// for TLS).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            lease: Duration::from_secs(15),
            lock_timeout: Duration::from_secs(30),
            expiry_slack: Duration::from_secs(60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            seal_key: None,
            clock: system_clock(),
        }
    }

    /// A store at `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Result<Self, Error> {
        Self::builder(url).build()
    }

    /// The server, as `scheme://host:port/db` (no password).
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// Whether entries are sealed.
    pub fn is_encrypted(&self) -> bool {
        self.inner.sealer.is_some()
    }

    /// How many Redis calls this store has made (each one round trip; a script's one-time
    /// load after a connection is made is not counted).
    pub fn round_trips(&self) -> u64 {
        self.inner.round_trips.load(Ordering::Relaxed)
    }

    /// The Redis key holding `key`'s entry.
    pub fn entry_key(&self, key: &StoreKey) -> String {
        self.inner.entry_key(key.as_str())
    }

    fn lease_of<'a>(&self, key: &StoreKey, lock: &'a StoreLock) -> Result<&'a Lease, Error> {
        lock.held::<Lease>()
            .filter(|l| l.inner.id == self.inner.id && l.key == key.as_str())
            .ok_or_else(|| {
                Error::store(
                    format!("a save of {key} without this Redis store's lock for it"),
                    None,
                )
            })
    }

    /// Runs the save script: `value` empty deletes.
    async fn fenced_write(
        &self,
        key: &StoreKey,
        lease: &Lease,
        value: String,
        ttl: Duration,
    ) -> Result<i64, Error> {
        let inner = &self.inner;
        let (lock, fence, entry) = inner.keys(key.as_str());
        let token = lease.token.clone();
        let fence_value = lease.fence;
        let out = inner
            .call(|mut conn, inner| async move {
                inner
                    .scripts
                    .save
                    .key(&lock)
                    .key(&fence)
                    .key(&entry)
                    .arg(&token)
                    .arg(fence_value)
                    .arg(value.as_str())
                    .arg(ttl.as_millis().max(1) as u64)
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await?;
        if out == -1 || out == -2 {
            return Err(Error::store_fenced(format!(
                "{key}: this holder's lease on {} ran out and another holder took the lock \
                 (fence {fence_value})",
                inner.server
            )));
        }
        lease.released.store(true, Ordering::Release);
        lease.extender.abort();
        Ok(out)
    }
}

impl Inner {
    fn entry_key(&self, key: &str) -> String {
        format!("{}e:{key}", self.prefix)
    }

    fn lock_key(&self, key: &str) -> String {
        format!("{}l:{key}", self.prefix)
    }

    fn keys(&self, key: &str) -> (String, String, String) {
        (
            self.lock_key(key),
            format!("{}f:{key}", self.prefix),
            self.entry_key(key),
        )
    }

    fn take_snapshot(&self, key: &str) -> Option<String> {
        self.snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)
    }

    fn unavailable(&self, what: impl fmt::Display) -> Error {
        Error::store_unavailable(format!("Redis at {}: {what}", self.server))
    }

    async fn connection(self: &Arc<Self>) -> Result<ConnectionManager, Error> {
        let connect = self.conn.get_or_try_init(|| async {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.connect_timeout))
                .set_response_timeout(Some(self.timeout))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            ConnectionManager::new_with_config(self.client.clone(), config).await
        });
        match tokio::time::timeout(self.connect_timeout + self.timeout, connect).await {
            Ok(Ok(conn)) => Ok(conn.clone()),
            Ok(Err(e)) => Err(self.redis_error(&e)),
            Err(_) => Err(self.unavailable(format_args!(
                "no connection within {:?}",
                self.connect_timeout + self.timeout
            ))),
        }
    }

    /// One round trip, bounded by the timeout.
    async fn call<T, F, Fut>(self: &Arc<Self>, f: F) -> Result<T, Error>
    where
        F: FnOnce(ConnectionManager, Arc<Inner>) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(self.timeout, f(conn, Arc::clone(self))).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.redis_error(&e)),
            Err(_) => Err(self.unavailable(format_args!("no answer within {:?}", self.timeout))),
        }
    }

    fn redis_error(&self, e: &redis::RedisError) -> Error {
        // The error's text may quote a command's arguments (never ours: they hold tokens), so
        // only its kind and category are shown.
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
        {
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

    /// The state in a stored value read from `redis_key`.
    fn decode(&self, redis_key: &str, value: &str) -> Result<TokenState, Error> {
        let body = value
            .split_once(':')
            .filter(|(v, _)| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .map(|(_, body)| body)
            .ok_or_else(|| {
                Error::store(
                    format!("the entry {redis_key} is not in this store's format"),
                    None,
                )
            })?;
        match (body.strip_prefix(SEALED_TAG), &self.sealer) {
            (Some(sealed), Some(sealer)) => decode_entry(&sealer.open(redis_key, sealed)?),
            (Some(_), None) => Err(Error::store(
                format!(
                    "the entry {redis_key} is encrypted and no key is configured \
                     (set PARTNER_AUTH_STORE_KEY)"
                ),
                None,
            )),
            (None, Some(_)) => Err(Error::store(
                format!(
                    "the entry {redis_key} is stored in clear while encryption is on: refused \
                     (`partner-auth forget` removes it)"
                ),
                None,
            )),
            (None, None) => decode_entry(body.as_bytes()),
        }
    }

    /// `<fence>:<entry>`, sealed when a key is set.
    fn encode(&self, redis_key: &str, fence: u64, state: &TokenState) -> Result<String, Error> {
        let plain = Zeroizing::new(encode_entry(state)?);
        let body = match &self.sealer {
            Some(sealer) => sealer.seal(redis_key, &plain)?,
            None => String::from_utf8(plain.to_vec())
                .map_err(|_| Error::store("a stored entry is not UTF-8", None))?,
        };
        Ok(format!("{fence}:{body}"))
    }

    /// How long Redis keeps an entry saved now.
    fn ttl(&self, state: &TokenState) -> Duration {
        let now = self.clock.now();
        let until_expiry = state
            .access_token
            .expires_at()
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO) + self.expiry_slack);
        let ttl = match (until_expiry, &state.refresh_token) {
            (Some(d), Some(_)) => d.max(self.refresh_ttl),
            (None, Some(_)) => self.refresh_ttl,
            (Some(d), None) => d,
            (None, None) => Duration::from_secs(7 * 24 * 3600),
        };
        ttl.max(Duration::from_secs(1))
    }

    async fn local_lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let mutex = {
            let mut map = self.local.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() > 64 {
                map.retain(|_, m| Arc::strong_count(m) > 1);
            }
            Arc::clone(map.entry(key.to_owned()).or_default())
        };
        mutex.lock_owned().await
    }

    /// Extends the lease every third of it until aborted or the lock is no longer ours.
    fn extend_lease(self: &Arc<Self>, lock: String, token: String) -> tokio::task::JoinHandle<()> {
        let inner = Arc::clone(self);
        let every = self.lease / 3;
        let lease_ms = self.lease.as_millis() as u64;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let (lock, token) = (lock.clone(), token.clone());
                let result = inner
                    .call(|mut conn, inner| async move {
                        inner
                            .scripts
                            .extend
                            .key(&lock)
                            .arg(&token)
                            .arg(lease_ms)
                            .invoke_async::<i64>(&mut conn)
                            .await
                    })
                    .await;
                match result {
                    Ok(1) => {}
                    Ok(_) => {
                        warn!("a Redis lock's lease ran out before it could be extended");
                        return;
                    }
                    Err(e) => debug!(error = %e, "extending a Redis lock's lease failed"),
                }
            }
        })
    }
}

fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::store(format!("no random numbers for a lock token: {e}"), None))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `text` with Redis glob characters escaped, for `SCAN MATCH`.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn value_string(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<TokenState>, Error> {
        let inner = &self.inner;
        let redis_key = inner.entry_key(key.as_str());
        // The entry read with the lock, when this key's lock was just taken: no round trip.
        let value = match inner.take_snapshot(key.as_str()) {
            Some(snapshot) => Some(snapshot).filter(|s| !s.is_empty()),
            None => {
                let k = redis_key.clone();
                inner
                    .call(|mut conn, _| async move {
                        redis::cmd("GET")
                            .arg(&k)
                            .query_async::<Option<String>>(&mut conn)
                            .await
                    })
                    .await?
            }
        };
        let Some(value) = value.map(Zeroizing::new) else {
            return Ok(None);
        };
        inner.decode(&redis_key, &value).map(Some)
    }

    async fn save(
        &self,
        key: &StoreKey,
        state: &TokenState,
        lock: &StoreLock,
    ) -> Result<(), Error> {
        let lease = self.lease_of(key, lock)?;
        let redis_key = self.inner.entry_key(key.as_str());
        let value = self.inner.encode(&redis_key, lease.fence, state)?;
        let ttl = self.inner.ttl(state);
        self.fenced_write(key, lease, value, ttl).await.map(drop)
    }

    async fn lock(&self, key: &StoreKey) -> Result<StoreLock, Error> {
        let inner = &self.inner;
        let local = inner.local_lock(key.as_str()).await;
        let (lock, fence, entry) = inner.keys(key.as_str());
        let token = random_token()?;
        let lease_ms = inner.lease.as_millis() as u64;
        let fence_ttl_ms = inner.refresh_ttl.max(inner.lease).as_millis() as u64;
        let mut waited = Duration::ZERO;
        let mut pause = POLL_FIRST;
        loop {
            let (l, f, e, t) = (lock.clone(), fence.clone(), entry.clone(), token.clone());
            let answer: Vec<Value> = inner
                .call(|mut conn, inner| async move {
                    inner
                        .scripts
                        .acquire
                        .key(&l)
                        .key(&f)
                        .key(&e)
                        .arg(&t)
                        .arg(lease_ms)
                        .arg(fence_ttl_ms)
                        .invoke_async(&mut conn)
                        .await
                })
                .await?;
            let mut answer = answer.into_iter();
            let first = match answer.next() {
                Some(Value::Int(n)) => n,
                _ => {
                    return Err(Error::store(
                        format!("Redis at {} answered the lock script oddly", inner.server),
                        None,
                    ));
                }
            };
            if first > 0 {
                let snapshot = answer.next().and_then(value_string).unwrap_or_default();
                inner
                    .snapshots
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.as_str().to_owned(), snapshot);
                let extender = inner.extend_lease(lock.clone(), token.clone());
                return Ok(StoreLock::new(Lease {
                    inner: Arc::clone(inner),
                    key: key.as_str().to_owned(),
                    token,
                    fence: first as u64,
                    released: AtomicBool::new(false),
                    extender,
                    _local: local,
                }));
            }
            if waited >= inner.lock_timeout {
                return Err(Error::store_busy(format!(
                    "another replica has held the Redis lock for {key} on {} for over {:?}",
                    inner.server, inner.lock_timeout
                )));
            }
            let remaining = match answer.next() {
                Some(Value::Int(ms)) if ms > 0 => Duration::from_millis(ms as u64),
                _ => pause,
            };
            let sleep = pause
                .min(remaining)
                .min(inner.lock_timeout - waited)
                .max(Duration::from_millis(1));
            tokio::time::sleep(sleep).await;
            waited += sleep;
            pause = (pause * 2).min(POLL_MAX);
        }
    }

    async fn remove(&self, key: &StoreKey, lock: &StoreLock) -> Result<bool, Error> {
        let lease = self.lease_of(key, lock)?;
        self.fenced_write(key, lease, String::new(), Duration::ZERO)
            .await
            .map(|n| n > 0)
    }

    async fn entries(&self) -> Result<Vec<StoreEntry>, Error> {
        let inner = &self.inner;
        let pattern = format!("{}*", glob_escape(&inner.entry_key("")));
        let mut cursor: u64 = 0;
        let mut names: Vec<String> = Vec::new();
        loop {
            let p = pattern.clone();
            // Names as bytes: a name that is not UTF-8 is none this store wrote (its keys are
            // text), so it is passed over (and logged) rather than failing the listing.
            let (next, batch): (u64, Vec<Vec<u8>>) = inner
                .call(|mut conn, _| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&p)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            for name in batch {
                match String::from_utf8(name) {
                    Ok(name) => names.push(name),
                    Err(_) => {
                        warn!("a key under the store's prefix that is not UTF-8 is not listed")
                    }
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        names.sort();
        names.dedup();
        let mut out = Vec::with_capacity(names.len());
        for chunk in names.chunks(200) {
            let keys = chunk.to_vec();
            // Bytes, not text: a value that is not UTF-8 is that one entry's error, not the
            // listing's.
            let values: Vec<Option<Vec<u8>>> = inner
                .call(|mut conn, _| async move {
                    redis::cmd("MGET").arg(&keys).query_async(&mut conn).await
                })
                .await?;
            for (name, value) in chunk.iter().zip(values) {
                // Gone since the scan (expired, removed): not listed.
                let Some(value) = value.map(Zeroizing::new) else {
                    continue;
                };
                let key = name
                    .strip_prefix(&inner.entry_key(""))
                    .unwrap_or(name)
                    .to_owned();
                let state = match std::str::from_utf8(&value) {
                    Ok(text) => inner.decode(name, text),
                    Err(_) => Err(Error::store(
                        format!("the entry {name} is not in this store's format (not UTF-8)"),
                        None,
                    )),
                };
                out.push((StoreKey::from_stored(key), state));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(
            redacted_url("redis://:hunter2@cache.internal:6380/2"),
            "redis://cache.internal:6380/2"
        );
        let err = RedisStore::new("http://x").unwrap_err().to_string();
        assert!(err.contains("redis://"), "{err}");
        let store = RedisStore::new("rediss://user:hunter2@h:1/0").unwrap();
        assert!(!format!("{store:?}").contains("hunter2"));
        assert_eq!(store.server(), "rediss://h:1/0");
    }

    #[test]
    fn scan_patterns_match_the_prefix_literally() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
