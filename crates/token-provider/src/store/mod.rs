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
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::{Error, TokenState};

mod file;
mod format;
mod forward;
mod memory;
mod record;
mod sealed;

pub use file::{FILE_FORMAT_VERSION, FileStore, MAX_FILE_SIZE};
pub use format::{decode_entry, decode_record, encode_entry, encode_record};
pub use memory::MemoryStore;
pub use record::{Presenting, REBASE_TOLERANCE, RefreshDigest, Refusal, StoreRecord};
pub use sealed::record_at;

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

    /// What kind of store this is, for the `store` label of the store-error metric: `file`,
    /// `memory`, `redis`, or (the default) `custom`. A short fixed name, never a path or URL.
    fn kind(&self) -> &'static str {
        "custom"
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
    /// damaged), and the key that sealed it when the store seals. One unreadable entry does not
    /// hide the others, and its key can still be removed; `Err` means the store itself could not
    /// be listed. The one listing method a store writes (the default cannot list).
    async fn listing(&self) -> Result<Vec<ListedEntry>, Error> {
        Err(Error::store("this store cannot list its entries", None))
    }

    /// [`listing`](TokenStore::listing) without the sealing keys: each entry's key and state.
    async fn entries(&self) -> Result<Vec<StoreEntry>, Error> {
        Ok(self
            .listing()
            .await?
            .into_iter()
            .map(|entry| (entry.key, entry.state))
            .collect())
    }
}

/// One entry of [`TokenStore::entries`]: its key, and its state or why the state cannot be
/// read.
pub type StoreEntry = (StoreKey, Result<TokenState, Error>);

/// One entry of [`TokenStore::listing`]: a [`StoreEntry`] and the key that sealed it.
#[derive(Debug)]
#[non_exhaustive]
pub struct ListedEntry {
    /// The entry's key.
    pub key: StoreKey,
    /// Its state, or why it cannot be read.
    pub state: Result<TokenState, Error>,
    /// The key that sealed it, when it is sealed and opened.
    pub sealed_by: Option<crate::seal::SealedBy>,
}

impl ListedEntry {
    /// An entry in clear (or one whose seal is not known).
    pub fn new(key: StoreKey, state: Result<TokenState, Error>) -> Self {
        Self {
            key,
            state,
            sealed_by: None,
        }
    }

    /// The same entry, sealed by `by`.
    #[must_use]
    pub fn sealed_by(mut self, by: Option<crate::seal::SealedBy>) -> Self {
        self.sealed_by = by;
        self
    }
}

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

/// One async mutex per key: the in-process half of a per-key lock, for every store (the file
/// store's OS locks and Redis's leases come after it, so tasks of one process queue here first).
#[derive(Debug, Default)]
pub struct KeyLocks(Mutex<HashMap<StoreKey, Arc<tokio::sync::Mutex<()>>>>);

impl KeyLocks {
    /// Waits for `key`'s mutex; held until the guard is dropped.
    pub async fn lock(&self, key: &StoreKey) -> tokio::sync::OwnedMutexGuard<()> {
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
