//! [`TokenStore`]: where a provider's state (access token, expiry, refresh token) outlives the
//! process.
//!
//! The [`CachedTokenProvider`](crate::CachedTokenProvider) uses a store like this: take
//! [`lock`](TokenStore::lock), [`load`](TokenStore::load) (adopting a fresh token another process
//! saved), fetch with the stored refresh token, [`save`](TokenStore::save), release. So a rotating
//! refresh token is written before anyone can use it again, and two holders of the same store
//! never spend the same one.
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
//!       "token_type": "bearer",
//!       "expires_at": 1767225600,
//!       "scope": null,
//!       "refresh_token": "…"
//!     }
//!   }
//! }
//! ```
//!
//! `expires_at` is Unix seconds (or null when unknown). Readers ignore fields they do not know, so
//! later versions may add fields without bumping `version`; a file with a higher `version` is
//! refused rather than misread. The file holds tokens, never a password or a client secret.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{AccessToken, Error, Secret, TokenState};

/// Names one provider state in a store: provider, environment, tenant and principal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey(String);

impl StoreKey {
    /// A key from its four parts. None of them may be secret (use a username or client id as
    /// the principal, never a password or key).
    pub fn new(provider: &str, environment: &str, tenant: &str, principal: &str) -> Self {
        Self(format!("{provider}|{environment}|{tenant}|{principal}"))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Held while a caller reads, refreshes and writes a state; released on drop.
#[must_use = "the lock is released when this is dropped"]
pub struct StoreLock {
    _held: Option<Box<dyn Send + Sync>>,
}

impl StoreLock {
    /// A lock that holds nothing (for stores with no concurrent writers).
    pub fn none() -> Self {
        Self { _held: None }
    }

    /// A lock that releases whatever `held` holds when dropped.
    pub fn new(held: impl Send + Sync + 'static) -> Self {
        Self {
            _held: Some(Box::new(held)),
        }
    }
}

impl fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreLock")
    }
}

/// Persistent provider state. Object safe; share it as `Arc<dyn TokenStore>`.
///
/// `load` and `save` are called with [`lock`](TokenStore::lock) held.
#[async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The state saved under `key`, if any.
    async fn load(&self, key: &StoreKey) -> Result<Option<TokenState>, Error>;

    /// Saves `state` under `key`, replacing what was there.
    async fn save(&self, key: &StoreKey, state: &TokenState) -> Result<(), Error>;

    /// Takes the lock that makes load-refresh-save atomic among everyone sharing this store.
    async fn lock(&self, key: &StoreKey) -> Result<StoreLock, Error> {
        let _ = key;
        Ok(StoreLock::none())
    }
}

/// A store in memory: shares state among providers of one process (and survives a provider
/// being rebuilt), not across processes.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    entries: Arc<Mutex<HashMap<StoreKey, TokenState>>>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<TokenState>, Error> {
        Ok(self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned())
    }

    async fn save(&self, key: &StoreKey, state: &TokenState) -> Result<(), Error> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), state.clone());
        Ok(())
    }

    async fn lock(&self, _key: &StoreKey) -> Result<StoreLock, Error> {
        Ok(StoreLock::new(Arc::clone(&self.lock).lock_owned().await))
    }
}

/// The current file format version.
pub const FILE_FORMAT_VERSION: u32 = 1;

const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);
const LOCK_POLL: Duration = Duration::from_millis(20);

/// A store in one JSON file (format above), safe to share between processes.
///
/// - Writes are atomic: a temporary file in the same directory, `fsync`, `rename` over the old
///   file, `fsync` of the directory. A crash leaves the old state or the new, never half of one.
/// - The file and its lock file are created with mode 0600; a file that others can read or
///   write is refused with an error saying to `chmod 600` it.
/// - [`lock`](TokenStore::lock) takes an exclusive OS lock on `<file>.lock` (held across
///   read-refresh-write by the cache), so two processes never spend the same refresh token.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
    lock_path: PathBuf,
    lock_timeout: Duration,
    // Threads of one process queue here first; the OS lock then orders processes.
    in_process: Arc<tokio::sync::Mutex<()>>,
}

impl FileStore {
    /// A store at `path` (created on first save; its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let mut lock_name = path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        lock_name.push(".lock");
        let lock_path = path.with_file_name(lock_name);
        Self {
            path,
            lock_path,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            in_process: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// How long [`lock`](TokenStore::lock) waits for another holder (say a stopped process)
    /// before giving up with [`Error::Store`] (default 30 s).
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
        f: impl FnOnce(&Path) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || f(&path))
            .await
            .map_err(|e| Error::store(format!("store task failed: {e}"), None))?
    }
}

#[async_trait]
impl TokenStore for FileStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<TokenState>, Error> {
        let key = key.clone();
        self.blocking(move |path| {
            let file = read_file(path)?;
            file.entries
                .get(key.as_str())
                .map(StoredEntry::to_state)
                .transpose()
        })
        .await
    }

    async fn save(&self, key: &StoreKey, state: &TokenState) -> Result<(), Error> {
        let key = key.clone();
        let entry = StoredEntry::from_state(state);
        self.blocking(move |path| {
            let mut file = read_file(path)?;
            file.entries.insert(key.0, entry);
            write_atomically(path, &file)
        })
        .await
    }

    async fn lock(&self, _key: &StoreKey) -> Result<StoreLock, Error> {
        let in_process = Arc::clone(&self.in_process).lock_owned().await;
        let lock_path = self.lock_path.clone();
        let timeout = self.lock_timeout;
        let file = tokio::task::spawn_blocking(move || -> Result<File, Error> {
            let file = open_private(&lock_path, false)
                .map_err(|e| io_error("cannot open the lock file", &lock_path, e))?;
            // Polled rather than blocking, so a holder that never lets go (a stopped process)
            // ends in an error instead of a fetch that never finishes.
            let mut waited = Duration::ZERO;
            loop {
                match file.try_lock() {
                    Ok(()) => return Ok(file),
                    Err(std::fs::TryLockError::WouldBlock) if waited < timeout => {
                        std::thread::sleep(LOCK_POLL);
                        waited += LOCK_POLL;
                    }
                    Err(std::fs::TryLockError::WouldBlock) => {
                        return Err(Error::store(
                            format!(
                                "another process has held {} for over {timeout:?}",
                                lock_path.display()
                            ),
                            None,
                        ));
                    }
                    Err(std::fs::TryLockError::Error(e)) => {
                        return Err(io_error("cannot lock", &lock_path, e));
                    }
                }
            }
        })
        .await
        .map_err(|e| Error::store(format!("store task failed: {e}"), None))??;
        // Closing the file releases the OS lock; the in-process guard goes with it.
        Ok(StoreLock::new((file, in_process)))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    #[serde(default)]
    entries: BTreeMap<String, StoredEntry>,
}

#[derive(Serialize, Deserialize)]
struct StoredEntry {
    access_token: String,
    #[serde(default = "bearer")]
    token_type: String,
    #[serde(default)]
    expires_at: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

impl fmt::Debug for StoredEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredEntry")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

fn bearer() -> String {
    "Bearer".to_owned()
}

impl StoredEntry {
    fn from_state(state: &TokenState) -> Self {
        let t = &state.access_token;
        Self {
            access_token: t.secret().expose_secret().to_owned(),
            token_type: t.token_type().to_owned(),
            expires_at: t
                .expires_at()
                .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            scope: t.scope().map(str::to_owned),
            refresh_token: state
                .refresh_token
                .as_ref()
                .map(|r| r.expose_secret().to_owned()),
        }
    }

    fn to_state(&self) -> Result<TokenState, Error> {
        if self.access_token.is_empty() {
            return Err(Error::store(
                "a stored entry has an empty access token",
                None,
            ));
        }
        let expires_at = self
            .expires_at
            .map(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
            .map(|t| t.ok_or_else(|| Error::store("a stored expiry is out of range", None)))
            .transpose()?;
        let token = AccessToken::builder(self.access_token.as_str())
            .token_type(self.token_type.as_str())
            .expires_at(expires_at)
            .scope(self.scope.clone())
            .build();
        Ok(TokenState::new(token)
            .with_refresh_token(self.refresh_token.as_deref().map(Secret::from)))
    }
}

fn io_error(what: &str, path: &Path, e: io::Error) -> Error {
    Error::store(format!("{what} {}", path.display()), e)
}

/// Reads the store file; a missing file is an empty store.
fn read_file(path: &Path) -> Result<StoreFile, Error> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(StoreFile {
                version: FILE_FORMAT_VERSION,
                entries: BTreeMap::new(),
            });
        }
        Err(e) => return Err(io_error("cannot read", path, e)),
    };
    check_private(path)?;
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

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|e| io_error("cannot stat", path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::store(
            format!(
                "{} is accessible to other users (mode {:o}); run `chmod 600` on it",
                path.display(),
                mode & 0o777
            ),
            None,
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), Error> {
    Ok(())
}

fn open_private(path: &Path, truncate_new: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if truncate_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(false);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn write_atomically(path: &Path, file: &StoreFile) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::store(format!("{} is not a file path", path.display()), None))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}.{}", std::process::id(), fastrand::u64(..)));
    let tmp = dir.join(tmp_name);
    let bytes = serde_json::to_vec_pretty(file)
        .map_err(|e| Error::store(format!("cannot encode the store: {e}"), None))?;
    let result = (|| -> io::Result<()> {
        let mut f = open_private(&tmp, true)?;
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
        assert_eq!(
            StoreKey::new("aerion", "live", "acme", "me@x").as_str(),
            "aerion|live|acme|me@x"
        );
    }

    #[test]
    fn entries_round_trip() {
        let s = state("at-1", Some("rt-1"));
        let back = StoredEntry::from_state(&s).to_state().unwrap();
        assert_eq!(back, s);
        assert_eq!(back.access_token.expires_at(), s.access_token.expires_at());
        assert!(!format!("{:?}", StoredEntry::from_state(&s)).contains("rt-1"));
    }
}
