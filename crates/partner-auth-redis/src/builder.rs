//! [`RedisStoreBuilder`]: the store's settings, each checked by [`build`](RedisStoreBuilder::build).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use token_provider::{Error, Secret, SecretSource, SharedClock, system_clock};

use crate::client::{Inner, Settings};
use crate::store::RedisStore;
use crate::target;
use token_provider::seal::{SealKey, SealKeys, Sealer};

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "partner-auth:";

/// Builds a [`RedisStore`].
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    password: Option<SecretSource>,
    prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
    lease: Duration,
    lock_timeout: Duration,
    expiry_slack: Duration,
    refresh_token_ttl: Duration,
    sealer: Option<Sealer>,
    clock: SharedClock,
    accept_eviction_risk: bool,
    replicas: Option<(u32, Duration)>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("server", &redacted_url(&self.url))
            .field("password", &self.password)
            .field("prefix", &self.prefix)
            .field("encrypted", &self.sealer.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A builder for the server or cluster at `url`: `redis://[USER@]HOST[:PORT][/DB]`,
    /// `rediss://` for TLS, `redis+unix:///PATH`, `redis+cluster://HOST:PORT[,HOST:PORT…]`
    /// (see the crate docs for every form). The password is best given apart, with
    /// [`password`](RedisStoreBuilder::password).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            password: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            lease: Duration::from_secs(15),
            lock_timeout: Duration::from_secs(30),
            expiry_slack: Duration::from_secs(60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            sealer: None,
            clock: system_clock(),
            accept_eviction_risk: false,
            replicas: None,
        }
    }

    /// A store at `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Result<Self, Error> {
        Self::builder(url).build()
    }
}

impl RedisStoreBuilder {
    /// The password (of the URL's user, or of the default user), kept out of the URL so that
    /// it is never in a command line or a message. A URL that carries one too is refused.
    pub fn password(mut self, password: impl Into<Secret>) -> Self {
        self.password = Some(SecretSource::value(password));
        self
    }

    /// The password from `source`: a file is read again when it changes, and once more when
    /// Redis refuses the password, so a password rotated on disk is taken up by a running
    /// process at its next connection (see the crate docs).
    pub fn password_source(mut self, source: SecretSource) -> Self {
        self.password = Some(source);
        self
    }

    /// [`password_source`](Self::password_source) when there is one.
    pub fn password_source_opt(mut self, source: Option<SecretSource>) -> Self {
        self.password = source;
        self
    }

    /// [`password`](Self::password) when there is one.
    pub fn password_opt(mut self, password: Option<Secret>) -> Self {
        self.password = password.map(SecretSource::value);
        self
    }

    token_provider::builder_setters! {
        /// The key prefix (default [`DEFAULT_PREFIX`]): applications sharing one Redis keep apart
        /// by it. It may not hold `{` or `}` (they would change the keys' hash tag).
        prefix: impl Into<String>,
        /// How long one Redis call may take (default 2 s).
        timeout: Duration,
        /// How long one connection attempt may take (default 2 s).
        connect_timeout: Duration,
        /// The lock's lease (default 15 s): how long a holder that died keeps the others waiting.
        /// A live holder's lease is extended every third of it.
        lease: Duration,
        /// How long [`lock`](token_provider::TokenStore::lock) waits for another holder before
        /// [`Error::StoreBusy`] (default 30 s; keep it above the lease).
        lock_timeout: Duration,
        /// How long an entry outlives its access token's expiry (default 60 s).
        expiry_slack: Duration,
        /// The least time an entry with a refresh token is kept (default 30 days).
        refresh_token_ttl: Duration,
    }

    /// Seals every entry under `key` (see the crate docs).
    pub fn seal_key(mut self, key: SealKey) -> Self {
        self.sealer = Some(Sealer::new(&key));
        self
    }

    /// Seals every entry under `key` when there is one.
    pub fn seal_key_opt(mut self, key: Option<SealKey>) -> Self {
        self.sealer = key.as_ref().map(Sealer::new);
        self
    }

    /// Seals every entry under `keys`' current key and opens entries sealed under any of them:
    /// an entry sealed under an older key is read, and sealed under the current one at its next
    /// save ([rotation](token_provider::seal#rotating-the-key)).
    pub fn seal_keys(mut self, keys: impl Into<SealKeys>) -> Self {
        self.sealer = Some(Sealer::with_keys(&keys.into()));
        self
    }

    /// [`seal_keys`](Self::seal_keys) when there are some.
    pub fn seal_keys_opt(mut self, keys: Option<SealKeys>) -> Self {
        self.sealer = keys.as_ref().map(Sealer::with_keys);
        self
    }

    token_provider::builder_setters! {
        /// Seals with `sealer` (one made from a key file reads the file again when it changes:
        /// [`Sealer::from_source`]).
        sealer: Sealer,
    }

    /// [`sealer`](Self::sealer) when there is one.
    pub fn sealer_opt(mut self, sealer: Option<Sealer>) -> Self {
        self.sealer = sealer;
        self
    }

    token_provider::builder_setters! {
        /// The clock that entries' lifetimes and versions are measured on (default: the system
        /// clock); give the cache's. Redis measures an entry's age in real time and a reader moves
        /// the entry's times onto this clock (see the crate docs), so a clock that does not follow
        /// real time (a test's manual clock) sees entries moved by however far it jumped.
        clock: SharedClock,
        /// Uses a server that may evict keys (a `maxmemory-policy` of `allkeys-*` or `volatile-*`),
        /// or whose policy cannot be read (`CONFIG` disabled, as on some managed services), logging
        /// one warning instead of refusing it (default `false`). An evicted entry takes its refresh
        /// token with it: that principal signs in again.
        accept_eviction_risk: bool,
    }

    /// Waits after each save until `replicas` replicas hold it (`WAIT`), for at most `timeout`;
    /// a save they did not all acknowledge fails with [`Error::StoreUnavailable`] (it is on the
    /// primary, and a failover may lose it). Default: no waiting.
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replicas = (replicas > 0).then_some((replicas, timeout));
        self
    }

    /// The store. Nothing is sent yet: the connection is made on first use.
    pub fn build(self) -> Result<RedisStore, Error> {
        let target = target::parse(&self.url)?;
        if self.password.is_some() && target.has_password {
            return Err(Error::config(
                "store",
                format!(
                    "{} carries a password, and one is given apart: give it once, apart \
                     from the URL",
                    target.shown
                ),
            ));
        }
        if self.lease < Duration::from_millis(30) {
            return Err(Error::config("lease", "must be at least 30 ms"));
        }
        if self.prefix.contains(['{', '}']) {
            return Err(Error::config(
                "prefix",
                "may not hold `{` or `}` (they would change the keys' hash tag)",
            ));
        }
        let settings = Settings {
            prefix: self.prefix,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            lease: self.lease,
            lock_timeout: self.lock_timeout,
            expiry_slack: self.expiry_slack,
            refresh_ttl: self.refresh_token_ttl,
            accept_eviction_risk: self.accept_eviction_risk,
            replicas: self.replicas,
        };
        let sealer = self.sealer;
        Ok(RedisStore {
            inner: Arc::new(Inner::new(
                target,
                self.password,
                settings,
                sealer,
                self.clock,
            )),
        })
    }
}

/// A Redis URL as messages show it: without user or password.
pub(crate) fn redacted_url(url: &str) -> String {
    target::parse(url).map_or_else(|_| "the Redis URL".to_owned(), |t| t.shown)
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
        let twice = RedisStore::builder("redis://:hunter2@h/0")
            .password("hunter3")
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            twice.contains("once") && !twice.contains("hunter"),
            "{twice}"
        );
        let store = RedisStore::new("rediss://user:hunter2@h:1/0").unwrap();
        assert!(!format!("{store:?}").contains("hunter2"));
        assert_eq!(store.server(), "rediss://h:1/0");
    }

    #[test]
    fn a_prefix_with_a_brace_is_refused() {
        let err = RedisStore::builder("redis://h/0")
            .prefix("app{1}:")
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("prefix") && err.contains("hash tag"), "{err}");
    }
}
