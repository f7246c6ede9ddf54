//! [`SecretSource`]: a secret given as a value, or kept in a file and read again when the file
//! changes or the provider refuses what it held.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::{Error, Secret};

/// The largest secret file read: a key, a password or a token is far smaller, and a setting
/// that names a large file by mistake is refused rather than read.
pub const MAX_SECRET_FILE_SIZE: u64 = 64 * 1024;

/// Where a secret comes from: a value, fixed for the provider's life, or a file, which is read
/// again whenever it changes.
///
/// A file is read when the source is made ([`file`](Self::file)), and then:
///
/// - on every use ([`current`](Self::current), once per token request) its metadata is
///   compared with the read before (device, inode, size, modification time; `stat` follows
///   symbolic links, so Kubernetes' swap of the `..data` link counts as a change) and the file
///   is read again when any differs;
/// - once more after the provider refuses the secret ([`reread_after_refusal`]), whatever the
///   metadata says: a rewrite in place within the filesystem's timestamp resolution leaves it
///   alike. Providers then send the new secret before the cache holds the refusal.
///
/// Line endings at the end of the file (`\n`, `\r\n`, any number) are dropped: `echo` and
/// editors add one, and no secret ends in one. Any other character, a trailing blank
/// included, is part of the secret. A file that cannot be read later (removed, half written:
/// empty) keeps the secret read before, with one warning naming the setting and the path.
///
/// `Debug` shows the setting and the path of a file, never a secret; errors and logs name the
/// setting and the path, never what the file holds.
///
/// [`reread_after_refusal`]: Self::reread_after_refusal
///
/// ```
/// use token_provider::SecretSource;
///
/// let dir = std::env::temp_dir().join(format!("secret-source-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("client_secret");
/// std::fs::write(&path, "s3cret-1\n")?;
/// let source = SecretSource::file("CLIENT_SECRET_FILE", &path)?;
/// assert_eq!(source.current().expose_secret(), "s3cret-1");
///
/// // Replaced as a secret manager replaces it: a new file renamed over the old one.
/// std::fs::write(dir.join("new"), "s3cret-2\n")?;
/// std::fs::rename(dir.join("new"), &path)?;
/// assert_eq!(source.current().expose_secret(), "s3cret-2");
/// assert!(!format!("{source:?}").contains("s3cret"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SecretSource(Source);

#[derive(Clone)]
enum Source {
    Value(Secret),
    File(Arc<SecretFile>),
}

/// A file secret: where it is, the setting that named it, and what was read last.
struct SecretFile {
    setting: String,
    path: PathBuf,
    // Never held across an await: reads are short and synchronous (a secret is a few bytes
    // on a local or in-memory filesystem).
    held: Mutex<Held>,
}

struct Held {
    secret: Secret,
    stamp: Stamp,
    /// Whether the current run of failed reads was reported (one warning per run).
    warned: bool,
}

/// What tells one version of a file from another without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (metadata.dev(), metadata.ino())
        };
        #[cfg(not(unix))]
        let (dev, ino) = (0, 0);
        Self {
            dev,
            ino,
            len: metadata.len(),
            modified: metadata.modified().ok(),
        }
    }
}

impl SecretSource {
    /// A fixed secret.
    pub fn value(secret: impl Into<Secret>) -> Self {
        Self(Source::Value(secret.into()))
    }

    /// A secret in the file at `path`, read now; `setting` is what errors and logs call it
    /// (the `_FILE` variable, or a builder field). Fails with [`Error::Config`] naming the
    /// setting and the path when the file cannot be read, is not a regular file, is larger than
    /// [`MAX_SECRET_FILE_SIZE`], is not UTF-8 or holds nothing but line endings.
    pub fn file(setting: impl Into<String>, path: impl AsRef<Path>) -> Result<Self, Error> {
        let setting = setting.into();
        let path = path.as_ref().to_path_buf();
        let (secret, stamp) = read_secret(&path)
            .map_err(|why| Error::config(&setting, format!("names {}, {why}", path.display())))?;
        Ok(Self(Source::File(Arc::new(SecretFile {
            setting,
            path,
            held: Mutex::new(Held {
                secret,
                stamp,
                warned: false,
            }),
        }))))
    }

    /// The secret to send now: the value, or the file's content, read again first when the
    /// file changed since it was last read.
    pub fn current(&self) -> Secret {
        match &self.0 {
            Source::Value(secret) => secret.clone(),
            Source::File(file) => file.current(),
        }
    }

    /// After the provider refused `refused` (what [`current`](Self::current) gave): the file
    /// read again, whatever its metadata says, and its secret when it is another one. `None`
    /// for a value, or when the file holds the refused secret still (the refusal stands).
    pub fn reread_after_refusal(&self, refused: &Secret) -> Option<Secret> {
        match &self.0 {
            Source::Value(_) => None,
            Source::File(file) => file.reread(refused),
        }
    }

    /// Runs `attempt` with the current secret; when it fails and `refused` says the provider
    /// refused the secret, and the file now holds another one, runs it once more with that one.
    /// A provider wraps each request that carries the secret in this, so a rotated secret file
    /// costs at most one refused request and the cache never holds that refusal.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use token_provider::{Error, SecretSource};
    ///
    /// let source = SecretSource::value("key");
    /// let sent = source
    ///     .attempt(Error::is_rejected, |key| async move {
    ///         Ok::<_, Error>(key.expose_secret().len())
    ///     })
    ///     .await;
    /// assert_eq!(sent.unwrap(), 3);
    /// # });
    /// ```
    pub async fn attempt<T, E, F, Fut>(
        &self,
        refused: impl Fn(&E) -> bool,
        mut attempt: F,
    ) -> Result<T, E>
    where
        F: FnMut(Secret) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let secret = self.current();
        match attempt(secret.clone()).await {
            Err(error) if refused(&error) => match self.reread_after_refusal(&secret) {
                Some(new) => attempt(new).await,
                None => Err(error),
            },
            other => other,
        }
    }

    /// Whether the secret comes from a file.
    pub fn is_file(&self) -> bool {
        matches!(self.0, Source::File(_))
    }

    /// The file's path, for a file secret.
    pub fn path(&self) -> Option<&Path> {
        match &self.0 {
            Source::Value(_) => None,
            Source::File(file) => Some(&file.path),
        }
    }

    /// The setting that named the file, for a file secret.
    pub fn setting(&self) -> Option<&str> {
        match &self.0 {
            Source::Value(_) => None,
            Source::File(file) => Some(&file.setting),
        }
    }
}

impl SecretFile {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current(&self) -> Secret {
        let mut held = self.held();
        match std::fs::metadata(&self.path) {
            Ok(metadata) if Stamp::of(&metadata) == held.stamp => held.secret.clone(),
            Ok(_) => {
                self.read_into(&mut held, "the secret file changed: read again");
                held.secret.clone()
            }
            Err(e) => {
                self.failed(&mut held, &format!("cannot be read ({e})"));
                held.secret.clone()
            }
        }
    }

    fn reread(&self, refused: &Secret) -> Option<Secret> {
        let mut held = self.held();
        self.read_into(
            &mut held,
            "the secret was refused and its file changed: read again",
        );
        (held.secret != *refused).then(|| held.secret.clone())
    }

    /// Reads the file into `held` (logging `changed` when the secret is another one), or keeps
    /// what `held` has and warns once.
    fn read_into(&self, held: &mut Held, changed: &str) {
        match read_secret(&self.path) {
            Ok((secret, stamp)) => {
                if secret != held.secret {
                    info!(
                        setting = self.setting.as_str(),
                        path = %self.path.display(),
                        "{changed}"
                    );
                }
                *held = Held {
                    secret,
                    stamp,
                    warned: false,
                };
            }
            Err(why) => self.failed(held, &why),
        }
    }

    fn failed(&self, held: &mut Held, why: &str) {
        if !held.warned {
            warn!(
                setting = self.setting.as_str(),
                path = %self.path.display(),
                "the secret file {why}: the secret read before is used"
            );
            held.warned = true;
        }
    }
}

/// The secret in the file at `path`, trailing line endings dropped, and the file's stamp; or
/// why not, in words that never quote the file.
fn read_secret(path: &Path) -> Result<(Secret, Stamp), String> {
    let cannot = |e: std::io::Error| format!("which cannot be read ({e})");
    let mut file = File::open(path).map_err(cannot)?;
    // The stamp of the file opened, taken before reading: a change during the read shows
    // as another stamp at the next use, and the file is read again then.
    let metadata = file.metadata().map_err(cannot)?;
    if !metadata.is_file() {
        return Err("which is not a regular file".to_owned());
    }
    if metadata.len() > MAX_SECRET_FILE_SIZE {
        return Err(format!(
            "which is larger than {MAX_SECRET_FILE_SIZE} bytes: not a secret file"
        ));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(metadata.len() as usize));
    (&mut file)
        .take(MAX_SECRET_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_SIZE {
        return Err(format!(
            "which is larger than {MAX_SECRET_FILE_SIZE} bytes: not a secret file"
        ));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| "which is not UTF-8 text".to_owned())?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.is_empty() {
        return Err("which is empty".to_owned());
    }
    Ok((Secret::new(text), Stamp::of(&metadata)))
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Value(secret) => fmt::Debug::fmt(secret, f),
            Source::File(file) => f
                .debug_struct("SecretFile")
                .field("setting", &file.setting)
                .field("path", &file.path)
                .finish_non_exhaustive(),
        }
    }
}

impl From<Secret> for SecretSource {
    fn from(secret: Secret) -> Self {
        Self::value(secret)
    }
}

impl From<String> for SecretSource {
    fn from(value: String) -> Self {
        Self::value(value)
    }
}

impl From<&str> for SecretSource {
    fn from(value: &str) -> Self {
        Self::value(value)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write};
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A directory of its own, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "partner-auth-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn join(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    /// Replaces `path` as a secret manager does: a new file renamed over it.
    fn replace(path: &Path, text: &str) {
        let new = path.with_extension("new");
        write(&new, text);
        std::fs::rename(new, path).unwrap();
    }

    /// Rewrites `path` in place with `text` (the same length) and puts its modification time
    /// back: what a filesystem with coarse timestamps shows of a quick rewrite.
    fn rewrite_unseen(path: &Path, text: &str) {
        let modified = std::fs::metadata(path).unwrap().modified().unwrap();
        let mut file = File::options().write(true).open(path).unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file.set_modified(modified).unwrap();
    }

    #[test]
    fn a_file_is_read_at_once_and_again_when_replaced() {
        let dir = Dir::new("secret-replaced");
        let path = dir.join("secret");
        write(&path, "first-secret\r\n\n");
        let source = SecretSource::file("X_FILE", &path).unwrap();
        assert_eq!(source.current().expose_secret(), "first-secret");
        replace(&path, "second-secret\n");
        assert_eq!(source.current().expose_secret(), "second-secret");
        // Blanks are part of the secret; only line endings are dropped.
        replace(&path, " third secret \n");
        assert_eq!(source.current().expose_secret(), " third secret ");
        assert!(source.is_file());
        assert_eq!(source.setting(), Some("X_FILE"));
        assert_eq!(source.path(), Some(path.as_path()));
    }

    /// Kubernetes mounts `name -> ..data/name` and swaps `..data` to a new directory with one
    /// rename: the path never changes, the file behind it does.
    #[cfg(unix)]
    #[test]
    fn the_kubernetes_symlink_swap_is_a_change() {
        use std::os::unix::fs::symlink;
        let dir = Dir::new("secret-k8s");
        let version = |n: u32, text: &str| {
            let versioned = dir.join(&format!("..2026_01_0{n}"));
            std::fs::create_dir(&versioned).unwrap();
            write(&versioned.join("client_secret"), text);
            versioned
        };
        let v1 = version(1, "k8s-secret-1\n");
        symlink(&v1, dir.join("..data")).unwrap();
        symlink("..data/client_secret", dir.join("client_secret")).unwrap();
        let path = dir.join("client_secret");
        let source = SecretSource::file("CLIENT_SECRET_FILE", &path).unwrap();
        assert_eq!(source.current().expose_secret(), "k8s-secret-1");

        // The same length, and its modification time put back to the first one's: the inode
        // behind the link tells them apart.
        let v2 = version(2, "k8s-secret-2\n");
        let modified = std::fs::metadata(v1.join("client_secret"))
            .unwrap()
            .modified()
            .unwrap();
        File::options()
            .write(true)
            .open(v2.join("client_secret"))
            .unwrap()
            .set_modified(modified)
            .unwrap();
        symlink(&v2, dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        std::fs::remove_dir_all(&v1).unwrap();
        assert_eq!(source.current().expose_secret(), "k8s-secret-2");
    }

    /// A rewrite in place that leaves size and modification time alike is not seen by the
    /// metadata; the read after a refusal finds it.
    #[test]
    fn a_refusal_reads_the_file_again_whatever_its_metadata() {
        let dir = Dir::new("secret-in-place");
        let path = dir.join("secret");
        write(&path, "secret-aaaa\n");
        let source = SecretSource::file("X_FILE", &path).unwrap();
        let first = source.current();
        rewrite_unseen(&path, "secret-bbbb\n");
        assert_eq!(source.current().expose_secret(), "secret-aaaa");

        let new = source.reread_after_refusal(&first).expect("another secret");
        assert_eq!(new.expose_secret(), "secret-bbbb");
        assert_eq!(source.current().expose_secret(), "secret-bbbb");
        // Refused again with the file unchanged: the refusal stands.
        assert_eq!(source.reread_after_refusal(&new), None);
        assert_eq!(SecretSource::value("v").reread_after_refusal(&new), None);
    }

    #[test]
    fn attempt_retries_once_with_the_new_secret_only_after_a_refusal() {
        let dir = Dir::new("secret-attempt");
        let path = dir.join("secret");
        write(&path, "old-secret");
        let source = SecretSource::file("X_FILE", &path).unwrap();
        rewrite_unseen(&path, "new-secret");

        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let sent = Mutex::new(Vec::new());
        let send = |secret: Secret| {
            let ok = secret.expose_secret() == "new-secret";
            sent.lock().unwrap().push(secret.expose_secret().to_owned());
            async move {
                if ok {
                    Ok("token")
                } else {
                    Err(Error::rejected(Some(401), Some("invalid_client"), None))
                }
            }
        };
        let got = runtime.block_on(source.attempt(Error::is_rejected, send));
        assert_eq!(got.unwrap(), "token");
        assert_eq!(*sent.lock().unwrap(), ["old-secret", "new-secret"]);

        // A failure that is not a refusal is no reason to read the file; a refusal of a
        // secret the file still holds is sent once.
        for (error, sends) in [
            (Error::http_status(503), 1),
            (Error::rejected(Some(401), None, None), 1),
        ] {
            sent.lock().unwrap().clear();
            let error = std::sync::Mutex::new(Some(error));
            let got: Result<(), Error> =
                runtime.block_on(source.attempt(Error::is_rejected, |s| {
                    sent.lock().unwrap().push(s.expose_secret().to_owned());
                    let e = error
                        .lock()
                        .unwrap()
                        .take()
                        .unwrap_or(Error::http_status(500));
                    async move { Err(e) }
                }));
            assert!(got.is_err());
            assert_eq!(sent.lock().unwrap().len(), sends);
        }
    }

    #[test]
    fn errors_name_the_setting_and_the_path_never_the_secret() {
        let dir = Dir::new("secret-errors");
        let missing = dir.join("missing");
        let err = SecretSource::file("AURORA_UK_CLIENT_SECRET_FILE", &missing).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, Error::Config { field, .. } if field == "AURORA_UK_CLIENT_SECRET_FILE"),
            "{text}"
        );
        assert!(text.contains(&missing.display().to_string()), "{text}");
        assert!(text.contains("cannot be read"), "{text}");

        let empty = dir.join("empty");
        write(&empty, "\r\n");
        let err = SecretSource::file("X_FILE", &empty)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is empty"), "{err}");

        let binary = dir.join("binary");
        std::fs::write(&binary, b"sec\xffret-bytes").unwrap();
        let err = SecretSource::file("X_FILE", &binary)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not UTF-8") && !err.contains("ret-bytes"),
            "{err}"
        );

        let err = SecretSource::file("X_FILE", &dir.0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");

        let big = dir.join("big");
        std::fs::write(&big, vec![b'a'; MAX_SECRET_FILE_SIZE as usize + 1]).unwrap();
        let err = SecretSource::file("X_FILE", &big).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
    }

    #[test]
    fn debug_shows_where_never_what() {
        let dir = Dir::new("secret-debug");
        let path = dir.join("secret");
        write(&path, "hunter2-in-a-file\n");
        let source = SecretSource::file("X_FILE", &path).unwrap();
        let shown = format!("{source:?} {source:#?}");
        assert!(
            shown.contains("X_FILE") && shown.contains(&path.display().to_string()),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        let value = SecretSource::value("hunter2-as-a-value");
        assert_eq!(format!("{value:?}"), "Secret([redacted])");
    }

    /// A file that disappears, or is caught half written, keeps the secret read before; the
    /// next good version is read.
    #[test]
    fn a_file_gone_or_empty_keeps_the_secret_read_before() {
        let dir = Dir::new("secret-gone");
        let path = dir.join("secret");
        write(&path, "kept-secret-1\n");
        let source = SecretSource::file("GONE_FILE", &path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(source.current().expose_secret(), "kept-secret-1");
        write(&path, "");
        assert_eq!(source.current().expose_secret(), "kept-secret-1");
        replace(&path, "kept-secret-2\n");
        assert_eq!(source.current().expose_secret(), "kept-secret-2");
    }
}
