//! [`MemoryStore`]: a versioned store in one process's memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{KeyLocks, ListedEntry, StoreKey, StoreLock, StoreRecord, TokenStore, next_version};
use crate::{Error, TokenState};

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
        Ok(self
            .map()
            .get(key)
            .cloned()
            .and_then(StoreRecord::into_state))
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

    fn kind(&self) -> &'static str {
        "memory"
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
        Ok(self
            .map()
            .remove(key)
            .is_some_and(|r| r.forgotten.is_none()))
    }

    async fn listing(&self) -> Result<Vec<ListedEntry>, Error> {
        let mut all: Vec<_> = self
            .map()
            .iter()
            .filter_map(|(k, v)| Some(ListedEntry::new(k.clone(), Ok(v.clone().into_state()?))))
            .collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(all)
    }
}
