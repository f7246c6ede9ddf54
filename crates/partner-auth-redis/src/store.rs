//! [`RedisStore`]: the [`TokenStore`] on Redis (see the crate docs): versioned records read
//! and written by scripts, a lock that saves duplicate work, and a listing of every key under
//! the prefix.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use redis::Value;
use token_provider::seal::SealedBy;
use token_provider::{
    Error, ListedEntry, StoreKey, StoreLock, StoreRecord, TokenState, TokenStore,
};
use tracing::warn;

use crate::client::Inner;
use crate::codec::{self, MAX_VALUE_SIZE, Stored, text};
use crate::keys::{self, Names, Role, glob_escape};
use crate::lease::{self, Lease, millis};

/// A [`TokenStore`] on one Redis server, shared by a fleet (see the crate docs).
///
/// Cheap to clone (clones share the connection and the counters).
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("RedisStore")
            .field("server", &i.server)
            .field("prefix", &i.settings.prefix)
            .field("encrypted", &i.sealer.is_some())
            .field("lease", &i.settings.lease)
            .field("timeout", &i.settings.timeout)
            .finish_non_exhaustive()
    }
}

/// How many principals one listing call reads (their entry and lock each).
const LISTING_BATCH: usize = 100;

/// How often [`TokenStore::save`] reads again when another save came between its read and its
/// write.
const SAVE_ROUNDS: usize = 4;

impl RedisStore {
    /// The server, as `scheme://host:port/db` (no password).
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// Whether entries are sealed.
    pub fn is_encrypted(&self) -> bool {
        self.inner.sealer.is_some()
    }

    /// How many Redis calls this store has made (each one round trip; a connection's one-time
    /// set-up, the eviction check and the scripts' loading, is not counted).
    pub fn round_trips(&self) -> u64 {
        self.inner.round_trips()
    }

    /// The Redis key holding `key`'s entry.
    pub fn entry_key(&self, key: &StoreKey) -> String {
        Names::new(&self.inner.settings.prefix, key).entry
    }

    /// The Redis key holding `key`'s lock.
    pub fn lock_key(&self, key: &StoreKey) -> String {
        Names::new(&self.inner.settings.prefix, key).lock
    }
}

impl Inner {
    fn names(&self, key: &StoreKey) -> Names {
        Names::new(&self.settings.prefix, key)
    }

    /// What is stored at each of `names`, with its remaining lifetime in ms.
    async fn read(self: &Arc<Self>, names: &[String]) -> Result<Vec<(Stored, i64)>, Error> {
        let mut invocation = self.scripts.read.prepare_invoke();
        for name in names {
            invocation.key(name);
        }
        let answer: Vec<Value> = self.run_script(invocation.arg(MAX_VALUE_SIZE)).await?;
        let mut answer = answer.into_iter();
        let mut out = Vec::with_capacity(names.len());
        for _ in names {
            let mut next = || answer.next().unwrap_or(Value::Nil);
            let found = codec::stored(next(), next(), next()).ok_or_else(|| {
                Error::store(
                    format!("Redis at {} answered the read script oddly", self.server),
                    None,
                )
            })?;
            out.push(found);
        }
        Ok(out)
    }

    /// The record in what was read at `key`'s entry, with `pttl` ms left of its lifetime;
    /// refused when its version is below the highest this store had seen of it before the read
    /// (`seen`).
    fn checked(
        &self,
        key: &StoreKey,
        name: &str,
        (stored, pttl): (Stored, i64),
        seen: Option<u64>,
    ) -> Result<Option<StoreRecord>, Error> {
        self.checked_by(key, name, (stored, pttl), seen)
            .map(|found| found.map(|(record, _)| record))
    }

    /// `record`, read with `pttl` ms left of its lifetime, on this store's clock: Redis
    /// measured its age (the lifetime it was saved with, less what is left), so a writer whose
    /// clock differs from this one's is caught and its times moved ([`StoreRecord::rebased`]).
    fn on_this_clock(&self, mut record: StoreRecord, pttl: i64) -> StoreRecord {
        let kept_for = record.kept_for.take();
        let saved_here = kept_for
            .zip(u64::try_from(pttl).ok())
            .and_then(|(kept, left)| {
                let age = kept.saturating_sub(Duration::from_millis(left));
                self.clock.now().checked_sub(age)
            });
        let mut record = match saved_here {
            Some(at) => record.rebased(at),
            None => record,
        };
        record.saved_at = None;
        record
    }

    /// [`checked`](Self::checked), and the key that sealed the record.
    fn checked_by(
        &self,
        key: &StoreKey,
        name: &str,
        (stored, pttl): (Stored, i64),
        seen: Option<u64>,
    ) -> Result<Option<(StoreRecord, Option<SealedBy>)>, Error> {
        let found = codec::decode_by(name, stored, self.sealer.as_ref())?
            .map(|(record, by)| (self.on_this_clock(record, pttl), by));
        if let Some((record, _)) = &found {
            if let Some(seen) = seen.filter(|&seen| record.version < seen) {
                return Err(Error::store(
                    format!(
                        "the entry {name} is at version {}, older than version {seen} that this \
                         process read or wrote: an older value was written back (a rollback); \
                         refused; `partner-auth forget` removes it",
                        record.version
                    ),
                    None,
                ));
            }
            self.note_version(key, record.version);
        }
        Ok(found)
    }

    /// The version a save writes: above the one read, and at least the time in Unix
    /// milliseconds, so that a record saved anew over nothing (after a flush, an eviction, a
    /// `forget`) is above every version an earlier record reached; and above any this store
    /// has seen.
    fn next_version(&self, key: &StoreKey, read: Option<u64>) -> u64 {
        let now_ms = self
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let above = read.max(self.version_seen(key)).unwrap_or(0);
        above.saturating_add(1).max(now_ms)
    }

    /// How long Redis keeps an entry saved now: a forget's record as long as a refresh token
    /// (it must outlive the states replicas hold from before it).
    fn ttl(&self, record: &StoreRecord) -> Duration {
        let now = self.clock.now();
        let s = &self.settings;
        if record.forgotten.is_some() {
            return s.refresh_ttl;
        }
        let state = &record.state;
        let until_expiry = state
            .access_token
            .expires_at()
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO) + s.expiry_slack);
        let ttl = match (until_expiry, &state.refresh_token) {
            (Some(d), Some(_)) => d.max(s.refresh_ttl),
            (None, Some(_)) => s.refresh_ttl,
            (Some(d), None) => d,
            (None, None) => Duration::from_secs(7 * 24 * 3600),
        };
        ttl.max(Duration::from_secs(1))
    }

    /// Runs the save script (and `WAIT` for the replicas, when set): the script's answer.
    async fn run_save(
        self: &Arc<Self>,
        names: &Names,
        read: Option<u64>,
        value: &[u8],
        ttl: Duration,
        release: &str,
    ) -> Result<(Vec<Value>, Option<i64>), Error> {
        let read = read.map(|v| v.to_string()).unwrap_or_default();
        let read = &read;
        let (entry, lock, ttl_ms) = (&names.entry, &names.lock, millis(ttl));
        let Some((replicas, wait)) = self.settings.replicas else {
            let answer = self
                .run_script(
                    self.scripts
                        .save
                        .key(entry)
                        .key(lock)
                        .arg(read)
                        .arg(value)
                        .arg(ttl_ms)
                        .arg(release),
                )
                .await?;
            return Ok((answer, None));
        };
        // `WAIT` is refused inside a script: it follows the script in one pipeline, so it
        // runs on the connection that wrote. The script goes as source (EVAL): a pipeline
        // cannot load it on `NOSCRIPT`.
        let (answer, acknowledged) = self
            .call(wait, |mut conn, _| async move {
                redis::pipe()
                    .cmd("EVAL")
                    .arg(crate::scripts::SAVE)
                    .arg(2)
                    .arg(entry)
                    .arg(lock)
                    .arg(read)
                    .arg(value)
                    .arg(ttl_ms)
                    .arg(release)
                    .cmd("WAIT")
                    .arg(replicas)
                    .arg(millis(wait))
                    .query_async::<(Vec<Value>, i64)>(&mut conn)
                    .await
            })
            .await?;
        Ok((answer, Some(acknowledged)))
    }

    async fn save_record(
        self: &Arc<Self>,
        key: &StoreKey,
        record: &StoreRecord,
        read: Option<u64>,
        lock: &StoreLock,
    ) -> Result<u64, Error> {
        let names = self.names(key);
        // What was read with the lock is stale once anything is written.
        self.take_snapshot(key);
        let mut record = record.clone();
        record.version = self.next_version(key, read);
        let ttl = self.ttl(&record);
        // What a reader on another clock needs to move the record's times onto its own.
        record.saved_at = Some(self.clock.now());
        record.kept_for = Some(ttl);
        let value = codec::encode(&names.entry, &record, self.sealer.as_ref())?;
        // A record with no presentation under way is the end of the holder's work: the lock is
        // released with it, saving the round trip of a release.
        let lease = Lease::of(self, key, lock).filter(|_| record.presenting.is_none());
        let release = lease.map_or("", Lease::token);
        let (answer, acknowledged) = self.run_save(&names, read, &value, ttl, release).await?;
        let mut answer = answer.into_iter();
        match (answer.next(), answer.next().and_then(text)) {
            (Some(Value::Int(1)), _) => {}
            (Some(Value::Int(0)), stored) => {
                let stored = stored.filter(|s| !s.is_empty());
                return Err(Error::store_fenced(format!(
                    "the record of {key} changed since it was read (version {} stored, read {})",
                    stored.as_deref().unwrap_or("unreadable"),
                    read.map_or_else(|| "none".to_owned(), |v| v.to_string())
                )));
            }
            (Some(Value::Int(2)), Some(kind)) => {
                return Err(Error::store(
                    format!(
                        "the entry {} holds a {kind}, not a value of this store: not saved; \
                         `partner-auth forget` removes it",
                        names.entry
                    ),
                    None,
                ));
            }
            _ => {
                return Err(Error::store(
                    format!("Redis at {} answered the save script oddly", self.server),
                    None,
                ));
            }
        }
        if let Some(lease) = lease {
            lease.mark_released();
        }
        self.note_version(key, record.version);
        if let (Some(acknowledged), Some((replicas, wait))) = (acknowledged, self.settings.replicas)
            && acknowledged < i64::from(replicas)
        {
            return Err(self.unavailable(format_args!(
                "the save of {key} reached {acknowledged} of {replicas} replicas within \
                 {wait:?}: it is on the primary alone, and a failover may lose it"
            )));
        }
        Ok(record.version)
    }

    /// Every key name under the prefix, on every master of a cluster.
    async fn scan(self: &Arc<Self>) -> Result<Vec<Vec<u8>>, Error> {
        let pattern = format!("{}*", glob_escape(&self.settings.prefix));
        let mut names = Vec::new();
        for node in self.nodes().await? {
            let mut cursor: u64 = 0;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(500);
                let answer = self.call_on(&node, &scan).await?;
                let (next, batch): (u64, Vec<Vec<u8>>) =
                    redis::from_redis_value(answer).map_err(|_| {
                        Error::store(
                            format!("Redis at {} answered SCAN oddly", self.server),
                            None,
                        )
                    })?;
                names.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// What the listing found of one principal besides its entry.
#[derive(Default)]
struct Found {
    earlier: bool,
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<TokenState>, Error> {
        Ok(self
            .load_record(key)
            .await?
            .and_then(StoreRecord::into_state))
    }

    /// Saves over whatever version is stored (read first; read again if another save came
    /// between). A value this store cannot read is not replaced: that entry's error.
    async fn save(
        &self,
        key: &StoreKey,
        state: &TokenState,
        lock: &StoreLock,
    ) -> Result<(), Error> {
        let record = StoreRecord::new(state.clone(), 0);
        let mut last = None;
        for _ in 0..SAVE_ROUNDS {
            let read = self.load_record(key).await?.map(|r| r.version);
            match self.inner.save_record(key, &record, read, lock).await {
                Ok(_) => return Ok(()),
                Err(e @ Error::StoreFenced { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one round"))
    }

    async fn lock(&self, key: &StoreKey) -> Result<StoreLock, Error> {
        lease::take(&self.inner, key).await
    }

    /// Removes whatever is stored at `key`'s entry (whatever its type or size) and any key a
    /// pre-release build left for it; the lock is released when dropped.
    async fn remove(&self, key: &StoreKey, _lock: &StoreLock) -> Result<bool, Error> {
        let inner = &self.inner;
        inner.take_snapshot(key);
        let names = inner.names(key);
        let all: Vec<&String> = std::iter::once(&names.entry)
            .chain(&names.earlier)
            .collect();
        // A cluster refuses a DEL whose keys lie in several slots (the earlier keys have no
        // hash tag): one DEL each there.
        let groups: Vec<Vec<&String>> = if inner.is_cluster() {
            all.into_iter().map(|name| vec![name]).collect()
        } else {
            vec![all]
        };
        let mut removed: i64 = 0;
        for group in &groups {
            removed += inner
                .call(Duration::ZERO, |mut conn, _| async move {
                    redis::cmd("DEL")
                        .arg(group)
                        .query_async::<i64>(&mut conn)
                        .await
                })
                .await?;
        }
        // Whatever was removed is older than what may be saved next: a value from before the
        // removal, written back, reads as a rollback.
        if let Some(seen) = inner.version_seen(key) {
            inner.note_version(key, seen.saturating_add(1));
        }
        Ok(removed > 0)
    }

    fn versioned(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn load_record(&self, key: &StoreKey) -> Result<Option<StoreRecord>, Error> {
        let inner = &self.inner;
        let names = inner.names(key);
        // The entry read with the lock, when this key's lock was just taken: no round trip.
        let (stored, seen) = match inner.take_snapshot(key) {
            Some(snapshot) => ((snapshot.stored, snapshot.pttl), snapshot.seen),
            None => {
                let seen = inner.version_seen(key);
                let mut read = inner.read(std::slice::from_ref(&names.entry)).await?;
                (read.remove(0), seen)
            }
        };
        inner.checked(key, &names.entry, stored, seen)
    }

    async fn save_record(
        &self,
        key: &StoreKey,
        record: &StoreRecord,
        read: Option<u64>,
        lock: &StoreLock,
    ) -> Result<u64, Error> {
        self.inner.save_record(key, record, read, lock).await
    }

    /// Every principal with a key under the prefix: its state and the key that sealed it, or
    /// why it cannot be read (a value of another type or too large, a garbled version, a key
    /// of a pre-release build, a foreign value where its lock belongs). A lock alone, held by a
    /// live holder, is not an entry. Keys under the prefix that no build of this store writes
    /// are logged and left.
    async fn listing(&self) -> Result<Vec<ListedEntry>, Error> {
        let inner = &self.inner;
        let prefix = &inner.settings.prefix;
        let mut principals: BTreeMap<StoreKey, Found> = BTreeMap::new();
        for name in inner.scan().await? {
            match String::from_utf8(name)
                .ok()
                .and_then(|name| keys::parse(prefix, &name))
            {
                Some((key, role)) => {
                    principals.entry(key).or_default().earlier |= role == Role::Earlier;
                }
                None => {
                    warn!("a key under the store's prefix that it does not write is not listed")
                }
            }
        }
        let principals: Vec<(StoreKey, Found)> = principals.into_iter().collect();
        let mut out = Vec::with_capacity(principals.len());
        // One script reads keys of one slot only in a cluster: there, one principal a call.
        let batch = if inner.is_cluster() { 1 } else { LISTING_BATCH };
        for chunk in principals.chunks(batch) {
            let seen: Vec<Option<u64>> = chunk.iter().map(|(k, _)| inner.version_seen(k)).collect();
            let names: Vec<Names> = chunk.iter().map(|(k, _)| inner.names(k)).collect();
            let both: Vec<String> = names
                .iter()
                .flat_map(|n| [n.entry.clone(), n.lock.clone()])
                .collect();
            let mut read = inner.read(&both).await?.into_iter();
            for (((key, found), names), seen) in chunk.iter().zip(&names).zip(seen) {
                let (Some(entry), Some((lock, lock_ttl))) = (read.next(), read.next()) else {
                    break;
                };
                let mut sealed_by = None;
                let state = match entry {
                    (Stored::Nothing, _) => match foreign_lock(&lock, lock_ttl) {
                        Some(what) => Err(Error::store(
                            format!(
                                "{} holds {what} where the lock of {key} belongs, and there is \
                                 no entry: not a lock of this store (the next lock replaces \
                                 it); `partner-auth forget` removes it",
                                names.lock
                            ),
                            None,
                        )),
                        None if found.earlier => Err(Error::store(
                            format!(
                                "the keys of {key} were left by a pre-release build of this \
                                 store (without a hash tag): not read; `partner-auth forget` \
                                 removes them"
                            ),
                            None,
                        )),
                        // Gone since the scan (expired, removed), or a live holder's lock.
                        None => continue,
                    },
                    stored => match inner.checked_by(key, &names.entry, stored, seen) {
                        Ok(Some((record, by))) => match record.into_state() {
                            Some(state) => {
                                sealed_by = by;
                                Ok(state)
                            }
                            // A forget's record: no state to list.
                            None => continue,
                        },
                        Ok(None) => continue,
                        Err(e) => Err(e),
                    },
                };
                out.push(ListedEntry::new(key.clone(), state).sealed_by(sealed_by));
            }
        }
        Ok(out)
    }
}

/// What sits at a lock's key when it is no lock a holder set (of another type, too large, or
/// with no expiry), described.
fn foreign_lock(lock: &Stored, ttl_ms: i64) -> Option<String> {
    match lock {
        Stored::Nothing => None,
        Stored::Value(_) if ttl_ms >= 0 => None,
        Stored::Value(_) => Some("a value with no expiry".to_owned()),
        Stored::OtherType(kind) => Some(format!("a {kind}")),
        Stored::TooLarge(n) => Some(format!("a value of {n} bytes")),
    }
}
