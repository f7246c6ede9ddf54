//! [`FileStore`]: every principal's record in one JSON file shared by processes.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::format::{
    StoreFile, StoredEntry, entry_forgotten, entry_of, entry_state, entry_version,
};
use super::{KeyLocks, ListedEntry, StoreKey, StoreLock, StoreRecord, TokenStore, next_version};
use crate::seal::{SealKey, SealKeys, SealedBy, Sealer, split_version};
use crate::{Error, TokenState};

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
/// - With a [`SealKey`] ([`seal_key`](Self::seal_key)) each entry is one string, sealed as the
///   Redis store seals its values ([`seal`](crate::seal): `<version>:xc2:…`, bound to the
///   entry's key and version); an entry in clear is then refused, and a sealed one without the
///   key, each as that entry's error (`partner-auth forget` removes it). With older keys too
///   ([`seal_keys`](Self::seal_keys)) an entry sealed under one of them is read, and sealed
///   under the current key at its next save.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
    sealer: Option<Sealer>,
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
            sealer: None,
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

    /// Seals every entry under `key` (see above).
    #[must_use]
    pub fn seal_key(mut self, key: &SealKey) -> Self {
        self.sealer = Some(Sealer::new(key));
        self
    }

    /// Seals every entry under `keys`' current key, and opens entries sealed under any of them
    /// ([rotation](crate::seal#rotating-the-key)).
    #[must_use]
    pub fn seal_keys(mut self, keys: &SealKeys) -> Self {
        self.sealer = Some(Sealer::with_keys(keys));
        self
    }

    /// Seals with `sealer` (one made from a key file reads the file again when it changes:
    /// [`Sealer::from_source`]).
    #[must_use]
    pub fn sealer(mut self, sealer: Sealer) -> Self {
        self.sealer = Some(sealer);
        self
    }

    /// Whether entries are sealed.
    pub fn is_encrypted(&self) -> bool {
        self.sealer.is_some()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record in the entry `value` of `key`, opened when sealed; the error says what is
    /// wrong with it, never what it holds.
    fn record_of(&self, key: &str, value: &serde_json::Value) -> Result<StoreRecord, Error> {
        self.record_by(key, value).map(|(record, _)| record)
    }

    /// [`record_of`](Self::record_of), and the key that sealed it.
    fn record_by(
        &self,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(StoreRecord, Option<SealedBy>), Error> {
        let forget = "`partner-auth forget` removes it";
        match (value, &self.sealer) {
            (serde_json::Value::String(sealed), Some(sealer)) => sealer
                .open_record_by(key, sealed.as_bytes())
                .map(|(record, by)| (record, Some(by))),
            (serde_json::Value::String(_), None) => Err(Error::store(
                format!(
                    "the entry {key} is encrypted and no key is configured (set \
                     PARTNER_AUTH_STORE_KEY)"
                ),
                None,
            )),
            (_, Some(_)) => Err(Error::store(
                format!(
                    "the entry {key} is stored in clear while encryption is on: refused; {forget}"
                ),
                None,
            )),
            (_, None) => Ok((entry_of(value)?.to_record()?, None)),
        }
    }

    /// The state in the entry `value` of `key`, none in a forget's record (a clear entry's
    /// state is read even when what it recorded besides cannot be).
    fn state_of(&self, key: &str, value: &serde_json::Value) -> Result<Option<TokenState>, Error> {
        self.state_by(key, value).map(|(state, _)| state)
    }

    /// [`state_of`](Self::state_of), and the key that sealed it.
    fn state_by(
        &self,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(Option<TokenState>, Option<SealedBy>), Error> {
        match (value, &self.sealer) {
            (serde_json::Value::Object(_), None) if entry_forgotten(value) => Ok((None, None)),
            (serde_json::Value::Object(_), None) => Ok((Some(entry_state(value)?), None)),
            _ => self
                .record_by(key, value)
                .map(|(record, by)| (record.into_state(), by)),
        }
    }

    /// `record` as the file stores it under `key`: sealed when there is a key.
    fn value_of(&self, key: &str, record: &StoreRecord) -> Result<serde_json::Value, Error> {
        match &self.sealer {
            Some(sealer) => {
                let sealed = sealer.seal_record(key, record)?;
                let text = std::str::from_utf8(&sealed)
                    .map_err(|_| Error::store("a sealed entry is not text", None))?;
                Ok(serde_json::Value::String(text.to_owned()))
            }
            None => Ok(StoredEntry::from_record(record).to_value()),
        }
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

    /// What `read` makes of `key`'s entry, if the file holds one; its error names the file and
    /// the entry.
    async fn read_entry<T: Send + 'static>(
        &self,
        key: &StoreKey,
        read: fn(&Self, &str, &serde_json::Value) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        let key = key.clone();
        self.blocking(move |store| {
            let file = read_file(&store.path)?;
            file.entries
                .get(key.as_str())
                .map(|value| read(store, key.as_str(), value))
                .transpose()
                .map_err(|e| in_entry(&store.path, &key, e))
        })
        .await
    }

    /// Writes `record` as `key`'s entry at the version `version` gives from the one stored
    /// (`None`: no entry), replacing the entry; that version.
    async fn write_entry(
        &self,
        key: &StoreKey,
        mut record: StoreRecord,
        version: impl FnOnce(&StoreKey, Option<u64>) -> Result<u64, Error> + Send + 'static,
    ) -> Result<u64, Error> {
        let key = key.clone();
        self.blocking(move |store| {
            store.rewrite(|file| {
                let stored = file.entries.get(key.as_str()).map(stored_version);
                record.version = version(&key, stored)?;
                let value = store.value_of(key.as_str(), &record)?;
                file.entries.insert(key.0, value);
                Ok(record.version)
            })?
        })
        .await
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
        Ok(self.read_entry(key, Self::state_of).await?.flatten())
    }

    async fn save(
        &self,
        key: &StoreKey,
        state: &TokenState,
        _lock: &StoreLock,
    ) -> Result<(), Error> {
        // Fields a later release wrote about the replaced token do not describe this one: they
        // go with it. Those of other entries and of the file are kept.
        self.write_entry(key, StoreRecord::new(state.clone(), 0), |_, stored| {
            Ok(stored.unwrap_or(0) + 1)
        })
        .await
        .map(drop)
    }

    fn versioned(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "file"
    }

    async fn load_record(&self, key: &StoreKey) -> Result<Option<StoreRecord>, Error> {
        self.read_entry(key, Self::record_of).await
    }

    async fn save_record(
        &self,
        key: &StoreKey,
        record: &StoreRecord,
        read: Option<u64>,
        _lock: &StoreLock,
    ) -> Result<u64, Error> {
        let record = record.clone();
        self.write_entry(key, record, move |key, stored| {
            next_version(key, stored, read)
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

    async fn listing(&self) -> Result<Vec<ListedEntry>, Error> {
        self.blocking(|store| {
            Ok(read_file(&store.path)?
                .entries
                .iter()
                .filter_map(|(k, e)| {
                    let key = StoreKey::from_stored(k.clone());
                    match store.state_by(k, e) {
                        Ok((state, by)) => Some(ListedEntry::new(key, Ok(state?)).sealed_by(by)),
                        Err(error) => Some(ListedEntry::new(key, Err(error))),
                    }
                })
                .collect())
        })
        .await
    }
}

/// The version of an entry, sealed or not, read even when the rest cannot be (0 when none).
fn stored_version(value: &serde_json::Value) -> u64 {
    match value {
        serde_json::Value::String(sealed) => {
            split_version(sealed.as_bytes()).map_or(0, |(version, _)| version)
        }
        entry => entry_version(entry),
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

/// `err`, an entry's own error, naming the store and the entry (the entry's reason names
/// neither).
fn in_entry(path: &Path, key: &StoreKey, err: Error) -> Error {
    match err {
        Error::Store { reason, source } => Error::Store {
            reason: format!("{}: entry {key}: {reason}", path.display()),
            source,
        },
        other => other,
    }
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
