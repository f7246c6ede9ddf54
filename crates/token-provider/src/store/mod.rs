//! [`TokenStore`]: where a provider's state (access token, expiry, refresh token) outlives the
//! process.
//!
//! The [`CachedTokenProvider`](crate::CachedTokenProvider) uses a store like this: take
//! [`lock`](TokenStore::lock) for the one state it needs, [`load`](TokenStore::load) (adopting a
//! fresh token another process saved), fetch with the stored refresh token,
//! [`save`](TokenStore::save), release. So a rotating refresh token is written before anyone can
//! use it again, and two holders of the same store never spend the same one. Locks are per key:
//! one principal's slow fetch never holds up another's.
//!
//! Keys are derived by the providers, one per principal ([`Fetch::store_key`]): no configuration
//! can make two tenants, users or identities share one.
//!
//! [`Fetch::store_key`]: crate::Fetch::store_key
//!
//! # The file format (version 1)
//!
//! [`FileStore`] keeps every key in one JSON file:
//!
//! ```json
//! {
//!   "version": 1,
//!   "entries": {
//!     "aerion|live|companyurl=acme.example|me@acme.example": {
//!       "access_token": "…",
//!       "token_type": "Bearer",
//!       "expires_at": 1767225600,
//!       "obtained_at": 1767222000,
//!       "scope": null,
//!       "refresh_token": "…"
//!     }
//!   }
//! }
//! ```
//!
//! `expires_at` and `obtained_at` are Unix seconds (or null when unknown; files written before
//! `obtained_at` was recorded lack it and still load: such a token is adopted only with the full
//! refresh margin ahead, and one with no expiry is not adopted at all). Fields this release does
//! not know, at the top or in an entry, are kept when the file is rewritten, so later versions
//! may add fields without bumping `version`; a file with a higher `version` is refused rather
//! than misread. The file holds tokens, never a password or a client secret.
//!
//! The key's four parts are joined with `|`; a `|` or `%` inside a part is written `%7C` or `%25`,
//! so no two principals' keys can ever collide.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::token::MAX_EXPIRY_UNIX_SECS;
use crate::{AccessToken, Error, Secret, TokenState};

mod record;

pub use record::{Presenting, RefreshDigest, Refusal, StoreRecord};

/// Names one principal's state in a store: provider, environment, tenant and principal.
///
/// Providers derive it ([`Fetch::store_key`](crate::Fetch::store_key)); none of its parts may be
/// secret (use a username, a client id or a digest, never a password or key).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey(String);

impl StoreKey {
    /// A key from its four parts (`|` and `%` inside a part are escaped, so distinct parts always
    /// make distinct keys).
    pub fn new(provider: &str, environment: &str, tenant: &str, principal: &str) -> Self {
        let parts = [provider, environment, tenant, principal].map(escape_part);
        Self(parts.join("|"))
    }

    /// A key as a store wrote it ([`as_str`](Self::as_str)).
    pub fn from_stored(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The four parts (provider, environment, tenant, principal), unescaped. A key not made by
    /// [`new`](Self::new) gives whatever its `|`-separated fields are, missing ones empty.
    pub fn parts(&self) -> [String; 4] {
        let mut fields = self.0.splitn(4, '|').map(unescape_part);
        std::array::from_fn(|_| fields.next().unwrap_or_default())
    }
}

fn escape_part(part: &str) -> String {
    part.replace('%', "%25").replace('|', "%7C")
}

fn unescape_part(part: &str) -> String {
    part.replace("%7C", "|").replace("%25", "%")
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Held while a caller reads, refreshes and writes one key's state; released on drop.
///
/// A store may keep what it needs in it (an OS lock, a lease and its fencing token) and find it
/// again in [`save`](TokenStore::save) with [`held`](Self::held).
#[must_use = "the lock is released when this is dropped"]
pub struct StoreLock {
    held: Option<Box<dyn Any + Send + Sync>>,
}

impl StoreLock {
    /// A lock that holds nothing (for stores with no concurrent writers).
    pub fn none() -> Self {
        Self { held: None }
    }

    /// A lock that releases whatever `held` holds when dropped.
    pub fn new(held: impl Any + Send + Sync) -> Self {
        Self {
            held: Some(Box::new(held)),
        }
    }

    /// What the store put in this lock, if it is a `T`.
    pub fn held<T: Any>(&self) -> Option<&T> {
        self.held.as_ref()?.downcast_ref()
    }
}

impl fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreLock")
    }
}

/// Persistent provider state, one entry per [`StoreKey`]. Object safe; share it as
/// `Arc<dyn TokenStore>`.
///
/// `save` and `remove` are called with the key's [`lock`](TokenStore::lock) held (and given it);
/// `load` may be called with or without it.
#[async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The state saved under `key`, if any.
    async fn load(&self, key: &StoreKey) -> Result<Option<TokenState>, Error>;

    /// Saves `state` under `key`, replacing what was there. `lock` is the key's lock, held by the
    /// caller (a store with leases can refuse a save whose lease was lost).
    async fn save(&self, key: &StoreKey, state: &TokenState, lock: &StoreLock)
    -> Result<(), Error>;

    /// Takes the lock that makes load-refresh-save of `key` atomic among everyone sharing this
    /// store. Other keys are not held up.
    async fn lock(&self, key: &StoreKey) -> Result<StoreLock, Error> {
        let _ = key;
        Ok(StoreLock::none())
    }

    /// Removes `key`'s state (its refresh token with it); whether there was one.
    async fn remove(&self, key: &StoreKey, lock: &StoreLock) -> Result<bool, Error> {
        let _ = (key, lock);
        Err(Error::store("this store cannot remove entries", None))
    }

    /// Whether this store keeps versions and records ([`StoreRecord`]): then
    /// [`save_record`](TokenStore::save_record) refuses a save over a newer version, and the
    /// cache records presentations and refusals of refresh tokens in it. A store that keeps none
    /// (the default) relies on its lock alone.
    fn versioned(&self) -> bool {
        false
    }

    /// The record under `key`, if any. The default reads [`load`](TokenStore::load), at
    /// version 0 with nothing recorded.
    async fn load_record(&self, key: &StoreKey) -> Result<Option<StoreRecord>, Error> {
        Ok(self
            .load(key)
            .await?
            .map(|state| StoreRecord::new(state, 0)))
    }

    /// Saves `record` under `key` if the store still holds the version this writer read
    /// (`read`: `None` when it read no record) or holds nothing for the key; returns the new
    /// version. A store holding another version refuses with [`Error::StoreFenced`]: the writer
    /// reads again. `record.version` is ignored. The default (a store with no versions) saves
    /// the state through [`save`](TokenStore::save) and returns 0.
    async fn save_record(
        &self,
        key: &StoreKey,
        record: &StoreRecord,
        read: Option<u64>,
        lock: &StoreLock,
    ) -> Result<u64, Error> {
        let _ = read;
        self.save(key, &record.state, lock).await?;
        Ok(0)
    }

    /// Every stored entry, for listing (`partner-auth status`) and clearing (`forget --all`):
    /// its key with its state, or why that one state cannot be read (sealed under another key,
    /// damaged). One unreadable entry does not hide the others, and its key can still be
    /// removed; `Err` means the store itself could not be listed.
    async fn entries(&self) -> Result<Vec<StoreEntry>, Error> {
        Err(Error::store("this store cannot list its entries", None))
    }
}

/// One entry of a store's listing ([`TokenStore::entries`]): its key, and its state or why the
/// state cannot be read.
pub type StoreEntry = (StoreKey, Result<TokenState, Error>);

/// The version a save writes, given the version stored (`None`: no record) and the one its
/// writer read: [`Error::StoreFenced`] when the store holds another one.
pub fn next_version(key: &StoreKey, stored: Option<u64>, read: Option<u64>) -> Result<u64, Error> {
    match stored {
        Some(stored) if Some(stored) != read => Err(Error::store_fenced(format!(
            "the record of {key} changed since it was read (version {stored}, read {})",
            read.map_or_else(|| "none".to_owned(), |v| v.to_string())
        ))),
        _ => Ok(read.unwrap_or(0).max(stored.unwrap_or(0)) + 1),
    }
}

/// One async mutex per key: the in-process half of a per-key lock.
#[derive(Debug, Default)]
struct KeyLocks(Mutex<HashMap<StoreKey, Arc<tokio::sync::Mutex<()>>>>);

impl KeyLocks {
    async fn lock(&self, key: &StoreKey) -> tokio::sync::OwnedMutexGuard<()> {
        let mutex = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // Drop the mutexes nobody holds or waits for, so the map stays as small as the set
            // of keys in use.
            if map.len() > 64 {
                map.retain(|_, m| Arc::strong_count(m) > 1);
            }
            Arc::clone(map.entry(key.clone()).or_default())
        };
        mutex.lock_owned().await
    }
}

/// A store in memory: shares state among providers of one process (and survives a provider
/// being rebuilt), not across processes.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    entries: Arc<Mutex<HashMap<StoreKey, StoreRecord>>>,
    locks: Arc<KeyLocks>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<StoreKey, StoreRecord>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<TokenState>, Error> {
        Ok(self.map().get(key).map(|r| r.state.clone()))
    }

    async fn save(
        &self,
        key: &StoreKey,
        state: &TokenState,
        _lock: &StoreLock,
    ) -> Result<(), Error> {
        let mut map = self.map();
        let version = map.get(key).map_or(0, |r| r.version) + 1;
        map.insert(key.clone(), StoreRecord::new(state.clone(), version));
        Ok(())
    }

    fn versioned(&self) -> bool {
        true
    }

    async fn load_record(&self, key: &StoreKey) -> Result<Option<StoreRecord>, Error> {
        Ok(self.map().get(key).cloned())
    }

    async fn save_record(
        &self,
        key: &StoreKey,
        record: &StoreRecord,
        read: Option<u64>,
        _lock: &StoreLock,
    ) -> Result<u64, Error> {
        let mut map = self.map();
        let version = next_version(key, map.get(key).map(|r| r.version), read)?;
        let mut record = record.clone();
        record.version = version;
        map.insert(key.clone(), record);
        Ok(version)
    }

    async fn lock(&self, key: &StoreKey) -> Result<StoreLock, Error> {
        Ok(StoreLock::new(self.locks.lock(key).await))
    }

    async fn remove(&self, key: &StoreKey, _lock: &StoreLock) -> Result<bool, Error> {
        Ok(self.map().remove(key).is_some())
    }

    async fn entries(&self) -> Result<Vec<StoreEntry>, Error> {
        let mut all: Vec<_> = self
            .map()
            .iter()
            .map(|(k, v)| (k.clone(), Ok(v.state.clone())))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }
}

/// The current file format version.
pub const FILE_FORMAT_VERSION: u32 = 1;

/// The largest store file read (a store of ten thousand principals is a few MiB).
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);
const LOCK_POLL: Duration = Duration::from_millis(20);

/// A store in one JSON file (format above), safe to share between processes.
///
/// - Writes are atomic: a temporary file in the same directory, `fsync`, `rename` over the old
///   file, `fsync` of the directory. A crash leaves the old state or the new, never half of one;
///   temporary files a killed process left behind are removed by the next save.
/// - Locks are per key: [`lock`](TokenStore::lock) takes an exclusive OS lock on one file in the
///   directory `<file>.locks/` (named by a digest of the key; held across read-refresh-write by
///   the cache), so two processes never spend the same refresh token while other principals go
///   on. Each save holds `<file>.locks/write.lock` for the moment it rewrites the file. Every key
///   lock also holds `<file>.lock` shared, so a 0.1.0 process (which holds it exclusively
///   across its fetch) and this release never refresh at once. A lock held longer than the lock
///   timeout is [`Error::StoreBusy`] (transient).
/// - The file, its lock files and directory are created with mode 0600/0700 and must belong to
///   the user running the process; a file that others can read or write is refused with an error
///   saying to `chmod 600` it. Symbolic links (the store, its lock file or lock directory) and
///   anything that is not a regular file (a directory, a FIFO) are refused at once, before
///   anything is created. Files over [`MAX_FILE_SIZE`] are refused unread.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
    lock_path: PathBuf,
    locks_dir: PathBuf,
    lock_timeout: Duration,
    // Tasks of one process queue here first, per key; the OS lock then orders processes.
    in_process: Arc<KeyLocks>,
}

impl FileStore {
    /// A store at `path` (created on first save; its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let sibling = |suffix: &str| {
            let mut name = path
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            name.push(suffix);
            path.with_file_name(name)
        };
        Self {
            lock_path: sibling(".lock"),
            locks_dir: sibling(".locks"),
            path,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            in_process: Arc::new(KeyLocks::default()),
        }
    }

    /// How long [`lock`](TokenStore::lock) waits for another holder (say a stopped process)
    /// before giving up with [`Error::StoreBusy`] (default 30 s).
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&FileStore) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| Error::store(format!("store task failed: {e}"), None))?
    }

    /// Rewrites the file under its write lock: `edit` changes the parsed file.
    /// Called with a key's lock held (so with `<file>.lock` held shared).
    fn rewrite<T>(&self, edit: impl FnOnce(&mut StoreFile) -> T) -> Result<T, Error> {
        check_store_path(&self.path)?;
        ensure_private_dir(&self.locks_dir)?;
        let write_lock = self.locks_dir.join("write.lock");
        let lock = open_private(&write_lock)?;
        poll_lock(&lock, &write_lock, self.lock_timeout, Held::Exclusive)?;
        // Holding the write lock, nobody else is between creating a temporary file and renaming
        // it: any temporary file there is a killed writer's, holding tokens. Remove them.
        remove_stale_temporaries(&self.path);
        let mut file = read_file(&self.path)?;
        let out = edit(&mut file);
        write_atomically(&self.path, &file)?;
        Ok(out)
    }
}

#[async_trait]
impl TokenStore for FileStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<TokenState>, Error> {
        let key = key.clone();
        self.blocking(move |store| {
            let file = read_file(&store.path)?;
            file.entries.get(key.as_str()).map(entry_state).transpose()
        })
        .await
    }

    async fn save(
        &self,
        key: &StoreKey,
        state: &TokenState,
        _lock: &StoreLock,
    ) -> Result<(), Error> {
        let key = key.clone();
        let state = state.clone();
        self.blocking(move |store| {
            // Fields a later release wrote about the replaced token do not describe this one:
            // they go with it. Those of other entries and of the file are kept.
            store.rewrite(|file| {
                let version = file.entries.get(key.as_str()).map_or(0, entry_version) + 1;
                let record = StoreRecord::new(state, version);
                file.entries
                    .insert(key.0, StoredEntry::from_record(&record).to_value());
            })
        })
        .await
    }

    fn versioned(&self) -> bool {
        true
    }

    async fn load_record(&self, key: &StoreKey) -> Result<Option<StoreRecord>, Error> {
        let key = key.clone();
        self.blocking(move |store| {
            let file = read_file(&store.path)?;
            file.entries
                .get(key.as_str())
                .map(|value| entry_of(value)?.to_record())
                .transpose()
        })
        .await
    }

    async fn save_record(
        &self,
        key: &StoreKey,
        record: &StoreRecord,
        read: Option<u64>,
        _lock: &StoreLock,
    ) -> Result<u64, Error> {
        let key = key.clone();
        let mut record = record.clone();
        self.blocking(move |store| {
            store.rewrite(|file| {
                let stored = file.entries.get(key.as_str()).map(entry_version);
                record.version = next_version(&key, stored, read)?;
                file.entries
                    .insert(key.0, StoredEntry::from_record(&record).to_value());
                Ok(record.version)
            })?
        })
        .await
    }

    async fn lock(&self, key: &StoreKey) -> Result<StoreLock, Error> {
        // Refused before anything is created beside it (`--store DIR` must not make `DIR.lock`).
        let path = self.path.clone();
        self.blocking(move |_| check_store_path(&path)).await?;
        let in_process = self.in_process.lock(key).await;
        let name = lock_file_name(key);
        let files = self
            .blocking(move |store| {
                // `<file>.lock` shared: holders of different keys go on together, while a
                // release that locks the whole file (exclusively, across its fetch) excludes
                // them all and is excluded by them.
                let whole = open_private(&store.lock_path)?;
                poll_lock(&whole, &store.lock_path, store.lock_timeout, Held::Shared)?;
                ensure_private_dir(&store.locks_dir)?;
                let path = store.locks_dir.join(name);
                let file = open_private(&path)?;
                poll_lock(&file, &path, store.lock_timeout, Held::Exclusive)?;
                Ok((file, whole))
            })
            .await?;
        // Closing the files releases the OS locks; the in-process guard goes with them.
        Ok(StoreLock::new((files, in_process)))
    }

    async fn remove(&self, key: &StoreKey, _lock: &StoreLock) -> Result<bool, Error> {
        let key = key.clone();
        self.blocking(move |store| {
            store.rewrite(|file| file.entries.remove(key.as_str()).is_some())
        })
        .await
    }

    async fn entries(&self) -> Result<Vec<StoreEntry>, Error> {
        self.blocking(|store| {
            Ok(read_file(&store.path)?
                .entries
                .iter()
                .map(|(k, e)| (StoreKey::from_stored(k.clone()), entry_state(e)))
                .collect())
        })
        .await
    }
}

/// A key's lock file name: 32 hex digits of the SHA-256 of the key. Stable across processes,
/// does not spell out the key, and cannot be made to collide with another principal's (a tenant
/// id chosen by an attacker must not stall a victim's lock).
fn lock_file_name(key: &StoreKey) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_str().as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.lock")
}

#[derive(Clone, Copy)]
enum Held {
    Shared,
    Exclusive,
}

/// Takes `file`'s OS lock, polling (so a holder that never lets go, a stopped process, ends in
/// an error instead of a wait that never ends).
fn poll_lock(file: &File, path: &Path, timeout: Duration, held: Held) -> Result<(), Error> {
    let mut waited = Duration::ZERO;
    loop {
        let attempt = match held {
            Held::Shared => file.try_lock_shared(),
            Held::Exclusive => file.try_lock(),
        };
        match attempt {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::WouldBlock) if waited < timeout => {
                std::thread::sleep(LOCK_POLL);
                waited += LOCK_POLL;
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::store_busy(format!(
                    "another process has held {} for over {timeout:?}",
                    path.display()
                )));
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_error("cannot lock", path, e)),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    /// Each entry read on its own ([`entry_state`]): one that cannot be read is reported for
    /// itself, and kept as it is until it is replaced or removed.
    #[serde(default)]
    entries: BTreeMap<String, serde_json::Value>,
    /// Fields a later release added: kept as they were.
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct StoredEntry {
    access_token: String,
    #[serde(default = "bearer")]
    token_type: String,
    #[serde(default)]
    expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    obtained_at: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    /// The record's version ([`StoreRecord::version`]); missing in entries written before
    /// versions were kept (read as 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    presenting: Option<PresentingEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refused: Option<RefusalEntry>,
    /// Fields a later release added: kept as they were.
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// [`Presenting`] in the file format: the deadline in Unix milliseconds.
#[derive(Debug, Serialize, Deserialize)]
struct PresentingEntry {
    refresh_digest: String,
    deadline_ms: u64,
    attempt: u32,
}

/// [`Refusal`] in the file format: its time in Unix seconds.
#[derive(Debug, Serialize, Deserialize)]
struct RefusalEntry {
    refresh_digest: String,
    at: u64,
    reason: String,
}

fn digest_field(hex: &str) -> Result<RefreshDigest, Error> {
    RefreshDigest::from_hex(hex)
        .ok_or_else(|| Error::store("a stored entry has a malformed refresh_digest", None))
}

impl fmt::Debug for StoredEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredEntry")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("obtained_at", &self.obtained_at)
            .finish_non_exhaustive()
    }
}

fn bearer() -> String {
    "Bearer".to_owned()
}

fn unix_secs(at: SystemTime) -> Option<u64> {
    at.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Unix seconds as a time, clamped to what a token can carry (a file written before expiries
/// were capped may hold 9e12).
fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.min(MAX_EXPIRY_UNIX_SECS))
}

impl StoredEntry {
    fn from_state(state: &TokenState, extra: serde_json::Map<String, serde_json::Value>) -> Self {
        let t = &state.access_token;
        Self {
            access_token: t.secret().expose_secret().to_owned(),
            token_type: t.token_type().to_owned(),
            expires_at: t.expires_at().and_then(unix_secs),
            obtained_at: state.obtained_at.and_then(unix_secs),
            scope: t.scope().map(str::to_owned),
            refresh_token: state
                .refresh_token
                .as_ref()
                .map(|r| r.expose_secret().to_owned()),
            version: None,
            presenting: None,
            refused: None,
            extra,
        }
    }

    fn from_record(record: &StoreRecord) -> Self {
        let mut entry = Self::from_state(&record.state, Default::default());
        entry.version = Some(record.version);
        entry.presenting = record.presenting.as_ref().map(|p| PresentingEntry {
            refresh_digest: p.refresh_digest.to_hex(),
            deadline_ms: p
                .deadline
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            attempt: p.attempt,
        });
        entry.refused = record.refused.as_ref().map(|r| RefusalEntry {
            refresh_digest: r.refresh_digest.to_hex(),
            at: unix_secs(r.at).unwrap_or(0),
            reason: r.reason.clone(),
        });
        entry
    }

    fn to_record(&self) -> Result<StoreRecord, Error> {
        let presenting = match &self.presenting {
            Some(p) => Some(Presenting {
                refresh_digest: digest_field(&p.refresh_digest)?,
                deadline: UNIX_EPOCH
                    + Duration::from_millis(p.deadline_ms.min(MAX_EXPIRY_UNIX_SECS * 1000)),
                attempt: p.attempt,
            }),
            None => None,
        };
        let refused = match &self.refused {
            Some(r) => Some(Refusal {
                refresh_digest: digest_field(&r.refresh_digest)?,
                at: from_unix_secs(r.at),
                reason: r.reason.clone(),
            }),
            None => None,
        };
        Ok(
            StoreRecord::new(self.to_state()?, self.version.unwrap_or(0))
                .with_presenting(presenting)
                .with_refused(refused),
        )
    }

    fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("strings and numbers always serialize")
    }

    fn to_state(&self) -> Result<TokenState, Error> {
        if self.access_token.is_empty() {
            return Err(Error::store(
                "a stored entry has an empty access token",
                None,
            ));
        }
        let token = AccessToken::builder(self.access_token.as_str())
            .token_type(self.token_type.as_str())
            .expires_at(self.expires_at.map(from_unix_secs))
            .scope(self.scope.clone())
            .build();
        Ok(TokenState::new(token)
            .with_refresh_token(self.refresh_token.as_deref().map(Secret::from))
            .with_obtained_at(self.obtained_at.map(from_unix_secs)))
    }
}

/// One state in the file format's entry encoding (the JSON object under `entries` above), for a
/// store that keeps each entry apart (one Redis value per key): the same fields, the same rules,
/// readable by [`decode_entry`]. The bytes hold the tokens in clear.
pub fn encode_entry(state: &TokenState) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(&StoredEntry::from_state(state, Default::default()))
        .map_err(|e| Error::store(format!("cannot encode a stored entry: {e}"), None))
}

/// One record in the file format's entry encoding: [`encode_entry`]'s fields with the record's
/// version and what it recorded, readable by [`decode_record`] (and by [`decode_entry`], which
/// reads the state alone).
pub fn encode_record(record: &StoreRecord) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(&StoredEntry::from_record(record))
        .map_err(|e| Error::store(format!("cannot encode a stored entry: {e}"), None))
}

/// A record from [`encode_record`]'s (or [`encode_entry`]'s, at version 0) bytes. The error
/// never quotes the bytes.
pub fn decode_record(bytes: &[u8]) -> Result<StoreRecord, Error> {
    parse_entry(bytes)?.to_record()
}

/// The state of one entry of a store file. The error never quotes the entry (a value in it may
/// be a token).
fn entry_state(value: &serde_json::Value) -> Result<TokenState, Error> {
    entry_of(value)?.to_state()
}

fn entry_of(value: &serde_json::Value) -> Result<StoredEntry, Error> {
    StoredEntry::deserialize(value)
        .map_err(|_| Error::store("a stored entry is not in the token store format", None))
}

/// The version of one entry of a store file, read even when the rest cannot be (0 when none).
fn entry_version(value: &serde_json::Value) -> u64 {
    value
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

/// A state from [`encode_entry`]'s bytes (or one entry of a store file). The error never quotes
/// the bytes.
pub fn decode_entry(bytes: &[u8]) -> Result<TokenState, Error> {
    parse_entry(bytes)?.to_state()
}

fn parse_entry(bytes: &[u8]) -> Result<StoredEntry, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::store(
            format!(
                "a stored entry is not in the token store format (line {}, column {})",
                e.line(),
                e.column()
            ),
            None,
        )
    })
}

fn io_error(what: &str, path: &Path, e: io::Error) -> Error {
    #[cfg(unix)]
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        return Error::store(
            format!(
                "{} is a symbolic link; give the store's real path",
                path.display()
            ),
            None,
        );
    }
    Error::store(format!("{what} {}", path.display()), e)
}

/// Refuses a store path that is a symbolic link or not a regular file (a directory, a FIFO), or
/// that belongs to another user. A missing file is fine (it is created on first save).
fn check_store_path(path: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(path) {
        Ok(meta) => check_metadata(path, &meta, false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("cannot stat", path, e)),
    }
}

fn check_metadata(path: &Path, meta: &fs::Metadata, dir: bool) -> Result<(), Error> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(Error::store(
            format!(
                "{} is a symbolic link; give the store's real path",
                path.display()
            ),
            None,
        ));
    }
    if (dir && !kind.is_dir()) || (!dir && !kind.is_file()) {
        return Err(Error::store(
            format!(
                "{} is not a {}",
                path.display(),
                if dir { "directory" } else { "regular file" }
            ),
            None,
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(Error::store(
                format!(
                    "{} belongs to another user (uid {}); a token store is used only by its owner",
                    path.display(),
                    meta.uid()
                ),
                None,
            ));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(Error::store(
                format!(
                    "{} is accessible to other users (mode {:o}); run `chmod {}` on it",
                    path.display(),
                    meta.mode() & 0o777,
                    if dir { 700 } else { 600 }
                ),
                None,
            ));
        }
    }
    Ok(())
}

/// Opens (creating with mode 0600) a lock file, refusing a symbolic link, a non-regular file or
/// another user's file.
fn open_private(path: &Path) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    no_follow(&mut options);
    let file = options
        .open(path)
        .map_err(|e| io_error("cannot open", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| io_error("cannot stat", path, e))?;
    check_metadata(path, &meta, false)?;
    Ok(file)
}

/// Creates `dir` (mode 0700) when missing; refuses it when it is a link, not a directory or
/// another user's.
fn ensure_private_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error("cannot create", dir, e)),
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| io_error("cannot stat", dir, e))?;
    check_metadata(dir, &meta, true)
}

fn no_follow(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: a FIFO in the file's place must not block the open; regular files ignore it.
        options.mode(0o600).custom_flags(no_follow_flags());
    }
    #[cfg(not(unix))]
    let _ = options;
}

#[cfg(unix)]
fn no_follow_flags() -> i32 {
    use rustix::fs::OFlags;
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    flags.bits() as i32
}

/// Reads the store file; a missing file is an empty store.
fn read_file(path: &Path) -> Result<StoreFile, Error> {
    let mut options = OpenOptions::new();
    options.read(true);
    no_follow(&mut options);
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(StoreFile {
                version: FILE_FORMAT_VERSION,
                entries: BTreeMap::new(),
                extra: serde_json::Map::new(),
            });
        }
        Err(e) => return Err(io_error("cannot read", path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| io_error("cannot stat", path, e))?;
    check_metadata(path, &meta, false)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error("cannot read", path, e))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(Error::store(
            format!(
                "{} is larger than {} MiB: not a token store file",
                path.display(),
                MAX_FILE_SIZE / (1024 * 1024)
            ),
            None,
        ));
    }
    let file: StoreFile = serde_json::from_slice(&bytes).map_err(|e| {
        Error::store(
            format!(
                "{} is not a token store file (line {}, column {})",
                path.display(),
                e.line(),
                e.column()
            ),
            None,
        )
    })?;
    if file.version > FILE_FORMAT_VERSION {
        return Err(Error::store(
            format!(
                "{} has format version {}, newer than this release reads ({FILE_FORMAT_VERSION})",
                path.display(),
                file.version
            ),
            None,
        ));
    }
    Ok(file)
}

/// The prefix of the temporary files a save of `path` writes.
fn temporary_prefix(path: &Path) -> Option<String> {
    Some(format!(".{}.tmp.", path.file_name()?.to_str()?))
}

fn remove_stale_temporaries(path: &Path) {
    let (Some(prefix), Some(dir)) = (temporary_prefix(path), parent_dir(path)) else {
        return;
    };
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    // `<prefix><pid>.<random>` exactly: `.a.tmp.x.tmp.1.2`, a temporary file of the store
    // `a.tmp.x` beside this one, is not ours.
    let ours = |name: &str| {
        name.strip_prefix(&prefix)
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(pid, n)| {
                [pid, n]
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            })
    };
    for entry in entries.flatten() {
        if entry.file_name().to_str().is_some_and(ours)
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn parent_dir(path: &Path) -> Option<PathBuf> {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => Some(d.to_path_buf()),
        Some(_) => Some(PathBuf::from(".")),
        None => None,
    }
}

fn write_atomically(path: &Path, file: &StoreFile) -> Result<(), Error> {
    let dir = parent_dir(path).unwrap_or_else(|| PathBuf::from("."));
    let prefix = temporary_prefix(path)
        .ok_or_else(|| Error::store(format!("{} is not a file path", path.display()), None))?;
    let tmp = dir.join(format!(
        "{prefix}{}.{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let bytes = serde_json::to_vec_pretty(file)
        .map_err(|e| Error::store(format!("cannot encode the store: {e}"), None))?;
    let result = (|| -> io::Result<()> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        no_follow(&mut options);
        let mut f = options.open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // The rename is durable only once the directory entry is.
        #[cfg(unix)]
        File::open(&dir)?.sync_all()?;
        Ok(())
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_error("cannot write", path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(token: &str, refresh: Option<&str>) -> TokenState {
        TokenState::new(
            AccessToken::builder(token)
                .expires_at(UNIX_EPOCH + Duration::from_secs(2_000_000_000))
                .build(),
        )
        .with_refresh_token(refresh.map(Secret::from))
    }

    #[test]
    fn keys_join_their_parts() {
        let key = StoreKey::new("aerion", "live", "acme", "me@x");
        assert_eq!(key.as_str(), "aerion|live|acme|me@x");
        assert_eq!(
            key.parts(),
            ["aerion", "live", "acme", "me@x"].map(String::from)
        );
    }

    #[test]
    fn parts_holding_the_separator_never_make_one_key() {
        let a = StoreKey::new("p", "e", "t|x", "u");
        let b = StoreKey::new("p", "e", "t", "x|u");
        assert_ne!(a, b);
        assert_eq!(b.parts()[3], "x|u");
        let c = StoreKey::new("p", "e", "100%7C", "u");
        assert_eq!(c.parts()[2], "100%7C");
        assert_ne!(c, StoreKey::new("p", "e", "100|", "u"));
    }

    #[test]
    fn entries_round_trip() {
        let s = state("at-1", Some("rt-1"));
        let s = s.with_obtained_at(UNIX_EPOCH + Duration::from_secs(1_999_000_000));
        let back = StoredEntry::from_state(&s, Default::default())
            .to_state()
            .unwrap();
        assert_eq!(back, s);
        assert_eq!(back.access_token.expires_at(), s.access_token.expires_at());
        assert_eq!(back.obtained_at, s.obtained_at);
        assert!(!format!("{:?}", StoredEntry::from_state(&s, Default::default())).contains("rt-1"));
        assert_eq!(decode_entry(&encode_entry(&s).unwrap()).unwrap(), s);
        let err = decode_entry(b"{\"access_token\": 7, \"x\": \"rt-1\"}").unwrap_err();
        assert!(!err.to_string().contains("rt-1"), "{err}");
    }
}
