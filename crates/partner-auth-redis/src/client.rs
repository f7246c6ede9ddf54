//! What every clone of a store shares: the settings, the connection (to one server or to a
//! cluster, made on first use, with the eviction check), one bounded call, and the errors a
//! failed call becomes.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, RedisFuture, ScriptInvocation, Value};
use token_provider::seal::Sealer;
use token_provider::{Error, KeyLocks, Secret, SecretSource, SharedClock, StoreKey};
use tracing::warn;

use crate::codec::Stored;
use crate::errors::Context;
use crate::scripts::Scripts;
use crate::target::{Target, Topology};

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
    target: Target,
    /// The URL as messages show it (never the password).
    pub(crate) server: String,
    /// The password given apart from the URL: a file is read again when it changes.
    password: Option<SecretSource>,
    /// The connection, and the password it was made with; `None` until the first call, and
    /// again when the password changed.
    conn: Mutex<Option<Connected>>,
    /// Held while a connection is made, so that callers make one.
    connecting: tokio::sync::Mutex<()>,
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

/// An entry read with a lock: what was stored, what was left of its lifetime, and the highest
/// version seen before the read.
pub(crate) struct Snapshot {
    pub(crate) stored: Stored,
    /// What was left of the entry's lifetime, in milliseconds (negative without one).
    pub(crate) pttl: i64,
    pub(crate) seen: Option<u64>,
}

/// Keys whose highest version is remembered; past it the memory starts again.
const SEEN_KEYS: usize = 100_000;

impl Inner {
    pub(crate) fn new(
        target: Target,
        password: Option<SecretSource>,
        settings: Settings,
        sealer: Option<Sealer>,
        clock: SharedClock,
    ) -> Self {
        Self {
            server: target.shown.clone(),
            target,
            password,
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
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

    pub(crate) fn is_cluster(&self) -> bool {
        self.target.is_cluster()
    }

    fn context(&self) -> Context<'_> {
        Context {
            server: &self.server,
            username: self.target.username.as_deref(),
            cluster: self.target.is_cluster(),
        }
    }

    pub(crate) fn unavailable(&self, what: impl fmt::Display) -> Error {
        self.context().unavailable(what)
    }

    pub(crate) fn redis_error(&self, e: &redis::RedisError) -> Error {
        self.context().classify(e)
    }

    /// Makes the connection if there is none yet: a call made after it fails only once the
    /// command may have been sent.
    pub(crate) async fn connect(self: &Arc<Self>) -> Result<(), Error> {
        match self.connection().await {
            Err(Refused::Credentials(_)) if self.password_changed_after_refusal() => self
                .connection()
                .await
                .map(drop)
                .map_err(Refused::into_error),
            result => result.map(drop).map_err(Refused::into_error),
        }
    }

    /// `e`, classified, and whether it refused the credentials.
    fn failure(&self, e: &redis::RedisError) -> Refused {
        let error = self.redis_error(e);
        if crate::errors::refuses_credentials(e) {
            Refused::Credentials(error)
        } else {
            Refused::Other(error)
        }
    }

    /// The connection made with the current password, made now if there is none (or the
    /// password changed since it was made).
    async fn connection(self: &Arc<Self>) -> Result<Conn, Refused> {
        let password = self.password.as_ref().map(SecretSource::current);
        if let Some(conn) = self.connected(password.as_ref()) {
            return Ok(conn);
        }
        let limit = self.settings.connect_timeout + self.settings.timeout * 2;
        let connect = async {
            let _one = self.connecting.lock().await;
            if let Some(conn) = self.connected(password.as_ref()) {
                return Ok(conn);
            }
            let conn = self.connect_with(password.as_ref()).await?;
            *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(Connected {
                conn: conn.clone(),
                password,
            });
            Ok(conn)
        };
        match tokio::time::timeout(limit, connect).await {
            Ok(result) => result,
            Err(_) => Err(Refused::Other(
                self.unavailable(format_args!("no connection within {limit:?}")),
            )),
        }
    }

    /// The connection, if one was made with `password`.
    fn connected(&self, password: Option<&Secret>) -> Option<Conn> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.as_ref()
            .filter(|c| c.password.as_ref() == password)
            .map(|c| c.conn.clone())
    }

    /// After Redis refused the credentials: whether the password file holds another password
    /// now (read again whatever its metadata says), in which case the next call connects with
    /// it.
    fn password_changed_after_refusal(&self) -> bool {
        let (Some(source), Some(used)) = (
            self.password.as_ref(),
            self.conn
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .and_then(|c| c.password.clone())
                .or_else(|| self.password.as_ref().map(SecretSource::current)),
        ) else {
            return false;
        };
        source.reread_after_refusal(&used).is_some()
    }

    /// A new connection with `password`, checked for eviction.
    async fn connect_with(self: &Arc<Self>, password: Option<&Secret>) -> Result<Conn, Refused> {
        let s = &self.settings;
        let target = match password {
            Some(password) => self.target.clone().with_password(password.expose_secret()),
            None => self.target.clone(),
        };
        let replicas_wait = s.replicas.map_or(Duration::ZERO, |(_, wait)| wait);
        let conn = match &target.topology {
            Topology::Single(info) => {
                let client =
                    redis::Client::open(info.as_ref().clone()).map_err(|e| self.failure(&e))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(s.connect_timeout))
                    .set_response_timeout(Some(s.timeout + replicas_wait))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                let manager = ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(|e| self.failure(&e))?;
                Conn::Single(manager)
            }
            Topology::Cluster(nodes) => {
                let client = redis::cluster::ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(s.connect_timeout)
                    .response_timeout(s.timeout + replicas_wait)
                    .retries(2)
                    .build()
                    .map_err(|e| self.failure(&e))?;
                let cluster = client
                    .get_async_connection()
                    .await
                    .map_err(|e| self.failure(&e))?;
                Conn::Cluster(cluster)
            }
        };
        self.check_eviction(conn.clone())
            .await
            .map_err(Refused::Other)?;
        Ok(conn)
    }

    /// Refuses a server that may evict keys (every key of this store has a lifetime, so the
    /// `volatile-*` policies evict them too): an evicted entry takes the principal's refresh
    /// token with it. Checked whenever a connection is made (the first, and one made with a
    /// changed password), on every master of a cluster.
    async fn check_eviction(&self, conn: Conn) -> Result<(), Error> {
        let fix = "set it to noeviction (`CONFIG SET maxmemory-policy noeviction`, and in the \
                   server's configuration), or accept the risk (accept_eviction_risk(true); \
                   PARTNER_AUTH_REDIS_ACCEPT_EVICTION=1 in the CLI)";
        let policies = match policies(conn).await {
            Ok(policies) => policies,
            Err(e) => match self.eviction_refused(&e, fix) {
                Error::Config { reason, .. }
                    if self.settings.accept_eviction_risk
                        && reason.contains("CONFIG GET was refused") =>
                {
                    warn!(
                        server = %self.server,
                        "Redis refused CONFIG GET maxmemory-policy: an evicting policy cannot \
                         be ruled out (accept_eviction_risk is set)"
                    );
                    return Ok(());
                }
                e => return Err(e),
            },
        };
        let Some(policy) = policies
            .into_iter()
            .find(|p| p.starts_with("allkeys-") || p.starts_with("volatile-"))
        else {
            return Ok(());
        };
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

    /// The error for a `CONFIG GET` that failed: a refusal of that command alone (NOPERM, or
    /// `CONFIG` renamed away) means the policy cannot be read; anything else is what it is.
    fn eviction_refused(&self, e: &redis::RedisError, fix: &str) -> Error {
        let code = e.code().unwrap_or("");
        let refused = code == "NOPERM"
            || (code == "ERR" && e.detail().is_some_and(|d| d.contains("unknown command")));
        if !refused {
            return self.redis_error(e);
        }
        Error::config(
            "maxmemory-policy",
            format!(
                "cannot be read on {} (CONFIG GET was refused: {code}); it must not evict keys: \
                 {fix}",
                self.server
            ),
        )
    }

    /// One round trip, bounded by the timeout (plus `extra`). When Redis refuses the
    /// credentials and the password file holds another password now, the call is made once
    /// more on a connection with it: Redis runs no command on a connection it has not
    /// authenticated, so the refused one did nothing.
    pub(crate) async fn call<T, F, Fut>(self: &Arc<Self>, extra: Duration, f: F) -> Result<T, Error>
    where
        F: Fn(Conn, Arc<Inner>) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match self.call_once(extra, &f).await {
            Err(Refused::Credentials(_)) if self.password_changed_after_refusal() => {
                self.call_once(extra, &f).await.map_err(Refused::into_error)
            }
            result => result.map_err(Refused::into_error),
        }
    }

    async fn call_once<T, F, Fut>(self: &Arc<Self>, extra: Duration, f: &F) -> Result<T, Refused>
    where
        F: Fn(Conn, Arc<Inner>) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let limit = self.settings.timeout + extra;
        match tokio::time::timeout(limit, f(conn, Arc::clone(self))).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.failure(&e)),
            Err(_) => Err(Refused::Other(
                self.unavailable(format_args!("no answer within {limit:?}")),
            )),
        }
    }

    /// One of this store's scripts with its keys and arguments (`invocation`, built from
    /// [`Inner::scripts`]): one round trip, the script loaded first if the server lacks it.
    pub(crate) async fn run_script<T: FromRedisValue>(
        self: &Arc<Self>,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, Error> {
        self.call(Duration::ZERO, |mut conn, _| async move {
            invocation.invoke_async(&mut conn).await
        })
        .await
    }

    /// The nodes a listing visits: the server, or every master of a cluster.
    pub(crate) async fn nodes(self: &Arc<Self>) -> Result<Vec<Node>, Error> {
        if !self.is_cluster() {
            return Ok(vec![Node::Server]);
        }
        let masters = self
            .call(Duration::ZERO, |conn, _| async move {
                match conn {
                    Conn::Cluster(mut conn) => masters(&mut conn).await,
                    Conn::Single(_) => Ok(Vec::new()),
                }
            })
            .await?;
        Ok(masters
            .into_iter()
            .map(|(host, port)| Node::Master(host, port))
            .collect())
    }

    /// `cmd` on `node`, one round trip.
    pub(crate) async fn call_on(self: &Arc<Self>, node: &Node, cmd: &Cmd) -> Result<Value, Error> {
        self.call(Duration::ZERO, |conn, _| async move {
            match (conn, node) {
                (Conn::Cluster(mut conn), Node::Master(host, port)) => {
                    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port: *port,
                    });
                    conn.route_command(cmd.clone(), routing).await
                }
                (mut conn, _) => cmd.query_async(&mut conn).await,
            }
        })
        .await
    }
}

/// Where a command goes: the one server, or one master of a cluster.
pub(crate) enum Node {
    Server,
    Master(String, u16),
}

/// A connection and the password it was made with.
struct Connected {
    conn: Conn,
    password: Option<Secret>,
}

/// A failed call: Redis refused the credentials, or anything else.
pub(crate) enum Refused {
    Credentials(Error),
    Other(Error),
}

impl Refused {
    fn into_error(self) -> Error {
        match self {
            Self::Credentials(e) | Self::Other(e) => e,
        }
    }
}

/// The connection: to one server (re-made in the background when lost), or to a cluster
/// (commands routed by their keys' slot).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// `maxmemory-policy` of the server, or of every master of a cluster.
async fn policies(conn: Conn) -> redis::RedisResult<Vec<String>> {
    let mut get = redis::cmd("CONFIG");
    get.arg("GET").arg("maxmemory-policy");
    let answers: Vec<Vec<String>> = match conn {
        Conn::Single(mut conn) => vec![get.query_async(&mut conn).await?],
        Conn::Cluster(mut conn) => {
            let mut answers = Vec::new();
            for (host, port) in masters(&mut conn).await? {
                let routing =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                answers.push(redis::from_redis_value(
                    conn.route_command(get.clone(), routing).await?,
                )?);
            }
            answers
        }
    };
    Ok(answers
        .into_iter()
        .map(|a| a.get(1).cloned().unwrap_or_default())
        .collect())
}

/// Every master's address, from `CLUSTER SLOTS` (each slot range names its master first).
async fn masters(conn: &mut ClusterConnection) -> redis::RedisResult<Vec<(String, u16)>> {
    let answer = conn
        .route_command(
            redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await?;
    let ranges: Vec<Vec<Value>> = redis::from_redis_value(answer)?;
    let mut out: Vec<(String, u16)> = Vec::new();
    for range in ranges {
        let Some(master) = range.into_iter().nth(2) else {
            continue;
        };
        let (host, port): (String, u16) = match master {
            Value::Array(parts) => {
                let mut parts = parts.into_iter();
                let host = parts.next().map(redis::from_redis_value).transpose()?;
                let port = parts.next().map(redis::from_redis_value).transpose()?;
                match (host, port) {
                    (Some(host), Some(port)) => (host, port),
                    _ => continue,
                }
            }
            _ => continue,
        };
        if !out.contains(&(host.clone(), port)) {
            out.push((host, port));
        }
    }
    Ok(out)
}
