//! Test support shared by every crate of the workspace (feature `testing`): a capturing
//! `tracing` subscriber that proves no secret is ever logged ([`capture_logs`]), a fixed epoch
//! and a clock standing at it ([`epoch`], [`fixed_clock`]), HTTP clients that retry in
//! milliseconds ([`fast_http`], [`http_client`], [`fast_retry`]), exact form-body checks
//! ([`form_fields`], [`exact_form`]), a temporary directory removed on drop ([`TempDir`]), a
//! secret file to rotate under a running provider ([`SecretFile`]), the contract every
//! versioned store keeps ([`store_contract`]), a loopback TLS server with a certificate of its
//! own ([`TlsServer`]), a fetcher that answers from a script and records what it was asked
//! ([`Scripted`]), the states and keys tests store ([`state`], [`state_at`], [`key`]),
//! mock-server answers and checks ([`bearer_mock`], [`reply`], [`json_reply`],
//! [`assert_mocks`]), and what a token, an error or a store holds ([`token_text`],
//! [`rejection`], [`stored_keys`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let logs = token_provider::testing::capture_logs();
//! tracing::info!(user = "me", "fetched");
//! assert!(logs.contents().contains("fetched"));
//! logs.assert_absent(&["hunter2"]);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use tracing_subscriber::fmt::MakeWriter;

/// A handle on the process-wide log capture.
#[derive(Clone, Debug)]
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl LogCapture {
    /// Everything logged so far in this process, at every level down to TRACE.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Panics, naming the line, if any secret appears in any captured line. Also panics if
    /// nothing at all was captured, so the check cannot pass vacuously.
    pub fn assert_absent(&self, secrets: &[&str]) {
        let contents = self.contents();
        assert!(!contents.is_empty(), "no log line was captured at all");
        for secret in secrets {
            assert!(!secret.is_empty(), "an empty string is not a test secret");
            if let Some(line) = contents.lines().find(|l| l.contains(secret)) {
                panic!("a secret was logged: {line}");
            }
        }
    }
}

/// Installs (once per process) a global subscriber at TRACE that records every event with its
/// fields and spans, `log` records included, and returns a handle on what it recorded. Records of
/// the `mockito` test servers are left out: they play the provider and print what they receive.
///
/// The subscriber is global, so events from spawned tasks and other threads are captured too;
/// tests running in parallel in the same binary share the buffer, which only makes the check
/// stricter.
pub fn capture_logs() -> LogCapture {
    static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = LogCapture {
                buffer: Arc::new(Mutex::new(Vec::new())),
            };
            use tracing_subscriber::Layer as _;
            use tracing_subscriber::layer::SubscriberExt as _;
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(Writer(Arc::clone(&capture.buffer)))
                .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                    // The mock servers are the provider's side: they print the requests they
                    // receive, credentials and all, which is theirs to do.
                    !meta.target().starts_with("mockito")
                }))
                .with_filter(tracing::level_filters::LevelFilter::TRACE);
            let subscriber = tracing_subscriber::registry().with(layer);
            // `try_init` also routes the `log` crate's records (reqwest logs through it) into the
            // subscriber, so they are checked too.
            tracing_subscriber::util::SubscriberInitExt::try_init(subscriber)
                .expect("capture_logs must be the only global subscriber of the test binary");
            capture
        })
        .clone()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

struct Guard(Arc<Mutex<Vec<u8>>>);

impl io::Write for Guard {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Writer {
    type Writer = Guard;

    fn make_writer(&'a self) -> Self::Writer {
        Guard(Arc::clone(&self.0))
    }
}

/// A retry policy for tests: `attempts` tries with millisecond backoffs; a `Retry-After` of up to
/// two seconds is waited for, a longer one ends the retries at once.
pub fn fast_retry(attempts: u32) -> crate::RetryPolicy {
    crate::RetryPolicy::new()
        .max_attempts(attempts)
        .initial_backoff(Duration::from_millis(5))
        .max_backoff(Duration::from_millis(20))
        .max_retry_after(Duration::from_secs(2))
}

/// An HTTP client for tests: `timeout` per request and [`fast_retry`]`(3)`, so retries are
/// exercised without slowing the suite. Its retry budget is unlimited, so each request's
/// retries depend on that request alone, whatever the test sent before. Answers' `Date` headers
/// are not read ([`provider_clock`](crate::HttpClientBuilder::provider_clock)): a test server
/// dates them by the real clock, a test's clock is usually another.
pub fn fast_http(timeout: Duration) -> crate::HttpClient {
    crate::HttpClient::builder()
        .timeout(timeout)
        .provider_clock(false)
        .retry(fast_retry(3))
        .retry_budget(crate::http::RetryBudget::unlimited())
        .build()
        .expect("a test HTTP client")
}

/// An HTTP client for tests against a loopback server: [`fast_http`] with a 5 s timeout.
pub fn http_client() -> crate::HttpClient {
    fast_http(Duration::from_secs(5))
}

/// The seconds from the Unix epoch to [`epoch`].
pub const EPOCH_SECS: u64 = 1_800_000_000;

/// The instant tests start their clocks at: 2027-01-15 08:00:00 UTC, fixed so that expiry
/// arithmetic gives the same figures on every run.
pub fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS)
}

/// A [`ManualClock`](crate::ManualClock) standing at [`epoch`].
///
/// ```
/// use token_provider::Clock;
/// use token_provider::testing::{epoch, fixed_clock};
///
/// let clock = fixed_clock();
/// clock.advance(std::time::Duration::from_secs(60));
/// assert_eq!(clock.now(), epoch() + std::time::Duration::from_secs(60));
/// ```
pub fn fixed_clock() -> crate::ManualClock {
    crate::ManualClock::new(epoch())
}

/// A clock reading another clock shifted by an offset: a host whose clock runs fast or slow.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use token_provider::testing::{SkewedClock, fixed_clock, epoch};
/// use token_provider::{Clock, ClockOffset};
///
/// let fast = SkewedClock::new(Arc::new(fixed_clock()), ClockOffset::Ahead(Duration::from_secs(600)));
/// assert_eq!(fast.now(), epoch() + Duration::from_secs(600));
/// ```
#[derive(Debug, Clone)]
pub struct SkewedClock {
    base: crate::SharedClock,
    offset: crate::ClockOffset,
}

impl SkewedClock {
    /// `base` shifted by `offset`.
    pub fn new(base: crate::SharedClock, offset: crate::ClockOffset) -> Self {
        Self { base, offset }
    }
}

impl crate::Clock for SkewedClock {
    fn now(&self) -> SystemTime {
        self.offset.apply(self.base.now())
    }
}

/// The fields of an `application/x-www-form-urlencoded` body, decoded and sorted.
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    fields.sort();
    fields
}

/// A check that a form body holds exactly `expected`, in any order: each field with its value,
/// none twice, and no other (no stray scope, no credential sent twice). Use it in a mock
/// server's request matcher, with the body the server received.
///
/// ```
/// let is_grant = token_provider::testing::exact_form(&[("grant_type", "password"), ("username", "me")]);
/// assert!(is_grant(b"username=me&grant_type=password"));
/// assert!(!is_grant(b"username=me&grant_type=password&scope=all"));
/// assert!(!is_grant(b"grant_type=password"));
/// ```
pub fn exact_form(expected: &[(&str, &str)]) -> impl Fn(&[u8]) -> bool + Send + Sync + use<> {
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    move |body: &[u8]| form_fields(body) == want
}

/// A fresh directory under the system's temporary directory, named after the test, the process
/// and a counter, and removed (with everything in it) on drop.
///
/// ```
/// let dir = token_provider::testing::TempDir::new("doc");
/// std::fs::write(dir.join("x"), "1").unwrap();
/// let path = dir.path().to_owned();
/// drop(dir);
/// assert!(!path.exists());
/// ```
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates the directory (`<tmp>/partner-auth-<name>-<pid>-<n>-<random>`), removing any
    /// left at that path by an earlier run.
    pub fn new(name: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "partner-auth-{name}-{}-{}-{:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        Self(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the directory.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A secret file laid out as Kubernetes mounts one (`<dir>/<name>` a link to `..data/<name>`,
/// `..data` a link to a versioned directory), changed the ways a secret file changes under a
/// running process. For tests of [`SecretSource`](crate::SecretSource).
///
/// ```
/// use token_provider::SecretSource;
/// use token_provider::testing::SecretFile;
///
/// let mut file = SecretFile::new("client_secret", "secret-1");
/// let source = SecretSource::file("CLIENT_SECRET_FILE", file.path()).unwrap();
/// file.swap("secret-2");
/// assert_eq!(source.current().expose_secret(), "secret-2");
/// file.rewrite_unseen("secret-3");
/// assert_eq!(source.current().expose_secret(), "secret-2", "nothing to see");
/// ```
#[derive(Debug)]
pub struct SecretFile {
    dir: TempDir,
    name: String,
    path: PathBuf,
    versions: u32,
}

impl SecretFile {
    /// `text` (a line ending added, as `echo` writes it) in `<dir>/<name>`.
    pub fn new(name: &str, text: &str) -> Self {
        let dir = TempDir::new("secret-file");
        let path = dir.join(name);
        let mut file = Self {
            dir,
            name: name.to_owned(),
            path,
            versions: 0,
        };
        let version = file.version(text);
        link(&version, &file.dir.join("..data"));
        link(Path::new("..data").join(name).as_path(), &file.path);
        file
    }

    /// The path a setting names: the link in the mounted directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Kubernetes' update: `text` in a new versioned directory, and `..data` swapped to it by
    /// one rename (the path's file is another inode from then on).
    pub fn swap(&mut self, text: &str) {
        let version = self.version(text);
        let next = self.dir.join("..data_tmp");
        link(&version, &next);
        std::fs::rename(&next, self.dir.join("..data")).expect("swap ..data");
    }

    /// A secret manager's update: `text` written to a new file renamed over the current one.
    pub fn replace(&self, text: &str) {
        let target = self.dir.join("..data").join(&self.name);
        let new = self.dir.join("..data").join(format!("{}.new", self.name));
        std::fs::write(&new, format!("{text}\n")).expect("write the new file");
        std::fs::rename(&new, &target).expect("rename over the secret");
    }

    /// `text`, of the current secret's length, written over it in place with the modification
    /// time put back: what the file's metadata shows of a quick rewrite on a filesystem with
    /// coarse timestamps (nothing).
    pub fn rewrite_unseen(&self, text: &str) {
        use std::io::{Seek, SeekFrom, Write};
        let before = std::fs::metadata(&self.path).expect("the secret file");
        assert_eq!(
            before.len(),
            text.len() as u64 + 1,
            "an unseen rewrite keeps the length"
        );
        let mut file = std::fs::File::options()
            .write(true)
            .open(&self.path)
            .expect("open the secret file");
        file.seek(SeekFrom::Start(0)).expect("seek");
        file.write_all(format!("{text}\n").as_bytes())
            .expect("rewrite");
        file.set_modified(before.modified().expect("an mtime"))
            .expect("put the mtime back");
    }

    fn version(&mut self, text: &str) -> PathBuf {
        self.versions += 1;
        let version = self.dir.join(format!("..2026_01_01_{:04}", self.versions));
        std::fs::create_dir(&version).expect("a versioned directory");
        std::fs::write(version.join(&self.name), format!("{text}\n")).expect("the secret");
        version
    }
}

fn link(target: &Path, at: &Path) {
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, at).expect("a symbolic link");
    #[cfg(not(unix))]
    {
        let _ = (target, at);
        unimplemented!("secret files as Kubernetes mounts them need symbolic links");
    }
}

/// Two replicas roll a new store key, one key set at a time, and neither ever fails to open
/// what the other saved; panics at the first entry one cannot read. `open` opens the one
/// store (a file, a Redis) under a key set, as each replica would.
///
/// The steps, each a pair of key sets (current first): both `OLD`; A `OLD,NEW`; both
/// `OLD,NEW`; A `NEW,OLD` (A seals with the new key, B still with the old); both `NEW,OLD`.
/// At each step every principal is read by both and saved by one, in turn. Then:
///
/// - an entry saved under the old key reads as sealed by an older key, and after its next save
///   by the current one (re-sealed);
/// - once every entry was saved at the last step, the new key alone opens them all, and the old
///   key alone none (so the key sets were needed: a replica on `NEW` alone at step 4 would
///   have failed).
#[cfg(feature = "seal")]
#[cfg_attr(docsrs, doc(cfg(feature = "seal")))]
pub async fn key_roll_contract(
    open: impl Fn(&crate::SealKeys) -> std::sync::Arc<dyn crate::TokenStore>,
) {
    use crate::{AccessToken, SealKey, SealKeys, StoreKey, StoreRecord, TokenState};
    let (old, new) = (
        SealKey::generate().expect("a key"),
        SealKey::generate().expect("a key"),
    );
    let keys = |list: &[&SealKey]| {
        list[1..]
            .iter()
            .fold(SealKeys::new(list[0].clone()), |keys, key| {
                keys.with_older((*key).clone())
            })
    };
    let steps: [(&[&SealKey], &[&SealKey]); 5] = [
        (&[&old], &[&old]),
        (&[&old, &new], &[&old]),
        (&[&old, &new], &[&old, &new]),
        (&[&new, &old], &[&old, &new]),
        (&[&new, &old], &[&new, &old]),
    ];
    let principals: Vec<StoreKey> = (0..4)
        .map(|n| StoreKey::new("key-roll", "test", "tenant", &format!("user-{n}")))
        .collect();
    let sealed_by = |store: &std::sync::Arc<dyn crate::TokenStore>| {
        let store = std::sync::Arc::clone(store);
        async move {
            let listing = store.listing().await.expect("a listing");
            listing
                .into_iter()
                .filter(|e| e.key.as_str().starts_with("key-roll|"))
                .map(|e| {
                    let state = e
                        .state
                        .unwrap_or_else(|err| panic!("{store:?}: {}: {err}", e.key));
                    assert!(state.access_token.expires_at().is_some());
                    (e.key, e.sealed_by.expect("a sealed entry"))
                })
                .collect::<Vec<_>>()
        }
    };
    for (step, (a, b)) in steps.iter().enumerate() {
        let replicas = [open(&keys(a)), open(&keys(b))];
        if step == 4 {
            // Saved at step 3 by B, under the old key: read as such before their next save.
            let before = sealed_by(&replicas[0]).await;
            assert!(
                before
                    .iter()
                    .any(|(_, by)| by.fingerprint == old.fingerprint() && !by.current),
                "{before:?}"
            );
        }
        for (n, key) in principals.iter().enumerate() {
            for (r, replica) in replicas.iter().enumerate() {
                replica
                    .load_record(key)
                    .await
                    .unwrap_or_else(|e| panic!("step {step}: replica {r} cannot read {key}: {e}"));
            }
            let writer = &replicas[(n + step) % 2];
            let lock = writer.lock(key).await.expect("the lock");
            let read = writer
                .load_record(key)
                .await
                .expect("a record")
                .map(|r| r.version);
            let token = AccessToken::builder(format!("at-{step}-{n}"))
                .expires_at(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000))
                .build();
            writer
                .save_record(
                    key,
                    &StoreRecord::new(TokenState::new(token), 0),
                    read,
                    &lock,
                )
                .await
                .unwrap_or_else(|e| panic!("step {step}: {key}: {e}"));
        }
    }
    let new_only = open(&keys(&[&new]));
    let after = sealed_by(&new_only).await;
    assert_eq!(after.len(), principals.len(), "{after:?}");
    for (key, by) in &after {
        assert_eq!(
            (by.fingerprint, by.current),
            (new.fingerprint(), true),
            "{key} was not re-sealed under the new key"
        );
    }
    let old_only = open(&keys(&[&old]));
    for key in &principals {
        let err = old_only
            .load_record(key)
            .await
            .expect_err("the old key alone opens nothing now");
        assert!(err.to_string().contains("does not decrypt"), "{err}");
        assert!(!err.to_string().contains(&*old.to_base64()), "{err}");
    }
    for key in &principals {
        let lock = new_only.lock(key).await.expect("the lock");
        new_only.remove(key, &lock).await.expect("removed");
    }
}

/// The contract every versioned [`TokenStore`](crate::TokenStore) keeps; panics, naming the
/// store, at the first rule it breaks. Uses the key `contract|test|tenant|me`.
///
/// - A save over the version read succeeds and returns a higher version; over a stale version,
///   or with no version read over a stored record, it is refused with
///   [`Error::StoreFenced`](crate::Error::StoreFenced).
/// - A save over a record gone (removed, flushed) succeeds whatever version was read.
/// - A record reads back as saved, its presentation and refusal included; `load` and `save`
///   work on top of records.
pub async fn store_contract(store: std::sync::Arc<dyn crate::TokenStore>) {
    use crate::{
        AccessToken, Error, Presenting, Refusal, Secret, StoreKey, StoreRecord, TokenState,
    };
    let k = StoreKey::new("contract", "test", "tenant", "me");
    assert!(store.versioned(), "{store:?} keeps no versions");
    let state = TokenState::new(AccessToken::new("at")).with_refresh_token(Secret::from("rt"));
    let record = || StoreRecord::new(state.clone(), 0);
    let fenced = |result: Result<u64, Error>, what: &str| match result {
        Err(Error::StoreFenced { .. }) => {}
        other => panic!("{store:?}: {what}: {other:?}, not StoreFenced"),
    };
    let lock = store.lock(&k).await.unwrap();
    assert!(store.load_record(&k).await.unwrap().is_none(), "{store:?}");
    let v1 = store.save_record(&k, &record(), None, &lock).await.unwrap();
    fenced(
        store.save_record(&k, &record(), None, &lock).await,
        "a save with no version read over a stored record",
    );
    let v2 = store
        .save_record(&k, &record(), Some(v1), &lock)
        .await
        .unwrap();
    assert!(v2 > v1, "{store:?}: version {v2} after {v1}");
    fenced(
        store.save_record(&k, &record(), Some(v1), &lock).await,
        "a save over a stale version",
    );
    let stored = store.load_record(&k).await.unwrap().unwrap();
    assert_eq!((stored.version, &stored.state), (v2, &state), "{store:?}");
    // What a record carries besides its state reads back as written.
    let at = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS);
    let rt = Secret::from("rt");
    let marked = record()
        .with_presenting(Presenting::new(&rt, at, 2))
        .with_refused(Refusal::new(&rt, at, "refused"));
    let v3 = store
        .save_record(&k, &marked, Some(v2), &lock)
        .await
        .unwrap();
    let stored = store.load_record(&k).await.unwrap().unwrap();
    assert_eq!(stored.version, v3, "{store:?}");
    assert_eq!(stored.presenting, marked.presenting, "{store:?}");
    assert_eq!(stored.refused, marked.refused, "{store:?}");
    // `load` and `save` on top of records.
    assert_eq!(
        store.load(&k).await.unwrap(),
        Some(state.clone()),
        "{store:?}"
    );
    let other = TokenState::new(AccessToken::new("at-2"));
    store.save(&k, &other, &lock).await.unwrap();
    let stored = store.load_record(&k).await.unwrap().unwrap();
    assert!(
        stored.version > v3,
        "{store:?}: `save` keeps versions rising"
    );
    assert_eq!(stored.state, other, "{store:?}");
    // A record gone: any save succeeds.
    assert!(store.remove(&k, &lock).await.unwrap(), "{store:?}");
    assert!(!store.remove(&k, &lock).await.unwrap(), "{store:?}");
    assert!(store.load_record(&k).await.unwrap().is_none(), "{store:?}");
    let v4 = store
        .save_record(&k, &record(), Some(stored.version), &lock)
        .await
        .unwrap();
    assert!(
        v4 > stored.version,
        "{store:?}: a save over a record gone succeeds, with a higher version"
    );
    assert!(store.remove(&k, &lock).await.unwrap(), "{store:?}");
    let v5 = store.save_record(&k, &record(), None, &lock).await.unwrap();
    // A forget's record: read back as written, and no state to `load` or list.
    let forgotten = StoreRecord::forgotten_at(at);
    store
        .save_record(&k, &forgotten, Some(v5), &lock)
        .await
        .unwrap();
    let stored = store.load_record(&k).await.unwrap().unwrap();
    assert_eq!(stored.forgotten, Some(at), "{store:?}");
    assert!(stored.state.refresh_token.is_none(), "{store:?}");
    assert_eq!(store.load(&k).await.unwrap(), None, "{store:?}");
    let listed = store.entries().await.unwrap();
    assert!(!listed.iter().any(|(key, _)| *key == k), "{store:?}");
    // A save over it, with its version, is a state again.
    store
        .save_record(&k, &record(), Some(stored.version), &lock)
        .await
        .unwrap();
    assert_eq!(store.load(&k).await.unwrap(), Some(state), "{store:?}");
    assert!(store.remove(&k, &lock).await.unwrap(), "{store:?}");
}

/// `openssl s_server` on loopback with a fresh self-signed certificate for the names given,
/// killed (and its files removed) on drop: a server whose certificate a test chooses.
pub struct TlsServer {
    child: std::process::Child,
    port: u16,
    dir: TempDir,
}

impl TlsServer {
    /// A server whose certificate names `subject_alt_names` (`DNS:localhost,IP:127.0.0.1`), its
    /// common name the first of them; `None` when `openssl` is not installed (the caller skips).
    ///
    /// # Panics
    ///
    /// When `openssl` is there but cannot make the certificate or the server does not start.
    pub fn start(subject_alt_names: &str) -> Option<Self> {
        use std::process::{Command, Stdio};
        let has_openssl = Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_openssl {
            return None;
        }
        let dir = TempDir::new("tls-server");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let first = subject_alt_names.split(',').next().unwrap_or("");
        let common_name = first.split_once(':').map_or(first, |(_, name)| name);
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", &format!("/CN={common_name}")])
            .args(["-addext", &format!("subjectAltName={subject_alt_names}")])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(made.success(), "openssl made no certificate");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server starts");
        let server = Self { child, port, dir };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("openssl s_server did not start");
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its certificate, in PEM: a root to trust it by (`SSL_CERT_FILE`, or
    /// `HttpClientBuilder::add_root_certificate`).
    pub fn certificate(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many times this process has read the system's CA roots, and on which thread it last did:
/// once, and off the async runtime's threads, is the promise.
pub fn system_root_loads() -> (usize, Option<std::thread::ThreadId>) {
    crate::http::roots::loads()
}

/// A variable lookup over `pairs`, as the builders' `from_env_with` takes one.
pub fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    }
}

/// The text of a token.
pub fn secret(token: &crate::AccessToken) -> &str {
    token.secret().expose_secret()
}

/// The text of the token `provider` answers [`token`](crate::TokenProvider::token) with.
///
/// # Panics
///
/// When it answers an error, which the message shows.
pub async fn token_text(provider: &(impl crate::TokenProvider + ?Sized)) -> String {
    match provider.token().await {
        Ok(token) => secret(&token).to_owned(),
        Err(e) => panic!("no token: {e:?}"),
    }
}

/// Checks that each mock was requested as often as it expected, in order.
pub async fn assert_mocks(mocks: &[&mockito::Mock]) {
    for mock in mocks {
        mock.assert_async().await;
    }
}

/// A mock of `method path` on `server` that matches only requests carrying
/// `Authorization: Bearer <token>`.
pub fn bearer_mock(
    server: &mut mockito::ServerGuard,
    method: &str,
    path: &str,
    token: &str,
) -> mockito::Mock {
    let bearer = format!("Bearer {token}");
    server
        .mock(method, path)
        .match_header("authorization", bearer.as_str())
}

/// `mock` answering `status` with the JSON `body` (`Content-Type: application/json`), created
/// on its server.
pub async fn json_reply(mock: mockito::Mock, status: usize, body: impl ToString) -> mockito::Mock {
    let mock = mock.with_header("content-type", "application/json");
    reply(mock, status, body.to_string()).await
}

/// `mock` answering `status` with `body`, created on its server.
pub async fn reply(mock: mockito::Mock, status: usize, body: impl AsRef<[u8]>) -> mockito::Mock {
    mock.with_status(status)
        .with_body(body)
        .create_async()
        .await
}

/// The HTTP status, code and description of an [`Error::Rejected`](crate::Error::Rejected).
///
/// # Panics
///
/// When `err` is another variant.
pub fn rejection(err: &crate::Error) -> (Option<u16>, Option<&str>, Option<&str>) {
    match err {
        crate::Error::Rejected {
            status,
            code,
            description,
            ..
        } => (*status, code.as_deref(), description.as_deref()),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// The keys of every entry `store` lists.
///
/// # Panics
///
/// When the store cannot list its entries.
pub async fn stored_keys(store: &(impl crate::TokenStore + ?Sized)) -> Vec<crate::StoreKey> {
    let entries = store.entries().await.expect("the store lists its entries");
    entries.into_iter().map(|(key, _)| key).collect()
}

/// The state `store` holds under `key`.
///
/// # Panics
///
/// When the store cannot be read or holds nothing under `key`.
pub async fn stored_state(
    store: &(impl crate::TokenStore + ?Sized),
    key: &crate::StoreKey,
) -> crate::TokenState {
    let loaded = store.load(key).await.expect("the store is readable");
    loaded.unwrap_or_else(|| panic!("nothing saved under {key}"))
}

/// The store key tests use for `principal`: `test|env|tenant|<principal>`.
pub fn key(principal: &str) -> crate::StoreKey {
    crate::StoreKey::new("test", "env", "tenant", principal)
}

/// A state holding `token`, expiring `lifetime` after `now` (no expiry with `None`), with
/// `refresh` as its refresh token. No time of issue: a fetched state gets the fetch's.
pub fn state_at(
    token: impl Into<String>,
    refresh: Option<&str>,
    now: SystemTime,
    lifetime: Option<Duration>,
) -> crate::TokenState {
    let mut access = crate::AccessToken::builder(token.into());
    if let Some(lifetime) = lifetime {
        access = access.expires_in(now, lifetime);
    }
    crate::TokenState::new(access.build()).with_refresh_token(refresh.map(crate::Secret::from))
}

/// A state as a store keeps it: `token` and `refresh`, obtained now on the system clock (whole
/// seconds, as stores keep times) and expiring `lifetime` later.
pub fn state(token: &str, refresh: Option<&str>, lifetime: Duration) -> crate::TokenState {
    let since_epoch = crate::Clock::now(&crate::SystemClock)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs());
    state_at(token, refresh, now, Some(lifetime)).with_obtained_at(now)
}

/// What a [`Scripted`] fetch is asked.
#[derive(Debug)]
pub struct Call<'a> {
    /// This principal's fetches before this one (for a single-token fetcher, all of them).
    pub n: usize,
    /// The principal of a keyed fetch; empty for a single-token one.
    pub principal: &'a str,
    /// The state the cache holds, if any.
    pub previous: Option<&'a crate::TokenState>,
}

impl Call<'_> {
    /// The refresh token presented: the previous state's.
    pub fn refresh_token(&self) -> Option<&str> {
        self.previous
            .and_then(|p| p.refresh_token.as_ref())
            .map(crate::Secret::expose_secret)
    }
}

/// Each fetch of a [`Scripted`]: its principal and the refresh token presented.
type Log = Vec<(String, Option<String>)>;
type Script = dyn Fn(Call<'_>) -> Result<crate::TokenState, crate::Error> + Send + Sync;
type Pause = dyn Fn(&Call<'_>) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> + Send + Sync;

/// A fetcher for tests, single-token ([`Fetch`](crate::Fetch)) or keyed
/// ([`KeyedFetch`](crate::KeyedFetch), by `Arc<str>` principals): it records each fetch (the
/// principal, the refresh token presented), waits [`delay`](Self::delay) of tokio time and any
/// [`pause`](Self::pause), then answers from its script. Clones share the script and the record,
/// so a test keeps one to read what the cache asked.
///
/// ```
/// use token_provider::testing::{Scripted, state_at, epoch};
/// use token_provider::{CachedTokenProvider, TokenProvider};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let fetcher = Scripted::new(|call| Ok(state_at(format!("token-{}", call.n), None, epoch(), None)));
/// let provider = CachedTokenProvider::new(fetcher.clone());
/// assert_eq!(provider.get().await.unwrap().secret().expose_secret(), "token-0");
/// assert_eq!(fetcher.calls(), 1);
/// # }
/// ```
#[derive(Clone)]
pub struct Scripted {
    script: Arc<Script>,
    pause: Option<Arc<Pause>>,
    delay: Duration,
    store_key: Option<crate::StoreKey>,
    repeatable: bool,
    log: Arc<Mutex<Log>>,
}

impl fmt::Debug for Scripted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scripted")
    }
}

impl Scripted {
    /// A fetcher answering from `script`, naming no store key, not repeatable without a store.
    pub fn new(
        script: impl Fn(Call<'_>) -> Result<crate::TokenState, crate::Error> + Send + Sync + 'static,
    ) -> Self {
        Self {
            script: Arc::new(script),
            pause: None,
            delay: Duration::ZERO,
            store_key: None,
            repeatable: false,
            log: Arc::default(),
        }
    }

    /// Each fetch first waits this long (tokio time, so a paused clock skips it).
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Each fetch, after the delay, waits for the future `pause` returns for it, if any: a gate
    /// a test opens, or one that never opens.
    #[must_use]
    pub fn pause(
        mut self,
        pause: impl Fn(&Call<'_>) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.pause = Some(Arc::new(pause));
        self
    }

    /// The store key it names; a keyed fetch names it with the principal as the tenant part.
    #[must_use]
    pub fn store_key(mut self, key: crate::StoreKey) -> Self {
        self.store_key = Some(key);
        self
    }

    /// What [`Fetch::repeatable_without_store`](crate::Fetch::repeatable_without_store)
    /// answers.
    #[must_use]
    pub fn repeatable(mut self, repeatable: bool) -> Self {
        self.repeatable = repeatable;
        self
    }

    /// How many fetches started.
    pub fn calls(&self) -> usize {
        self.lock().len()
    }

    /// How many fetches started for `principal`.
    pub fn calls_for(&self, principal: &str) -> usize {
        self.lock().iter().filter(|(p, _)| p == principal).count()
    }

    /// The refresh token each fetch was presented, in order.
    pub fn presented(&self) -> Vec<Option<String>> {
        self.lock().iter().map(|(_, rt)| rt.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn answer(
        &self,
        principal: &str,
        previous: Option<&crate::TokenState>,
    ) -> Result<crate::TokenState, crate::Error> {
        let n = {
            let mut log = self.lock();
            let n = log.iter().filter(|(p, _)| p == principal).count();
            let presented = previous
                .and_then(|p| p.refresh_token.as_ref())
                .map(|r| r.expose_secret().to_owned());
            log.push((principal.to_owned(), presented));
            n
        };
        let call = Call {
            n,
            principal,
            previous,
        };
        tokio::time::sleep(self.delay).await;
        if let Some(wait) = self.pause.as_ref().and_then(|pause| pause(&call)) {
            wait.await;
        }
        (self.script)(call)
    }
}

#[async_trait]
impl crate::Fetch for Scripted {
    fn store_key(&self) -> Option<crate::StoreKey> {
        self.store_key.clone()
    }

    fn repeatable_without_store(&self) -> bool {
        self.repeatable
    }

    async fn fetch(
        &self,
        previous: Option<&crate::TokenState>,
    ) -> Result<crate::TokenState, crate::Error> {
        self.answer("", previous).await
    }
}

#[async_trait]
impl crate::KeyedFetch for Scripted {
    type Principal = Arc<str>;

    fn store_key(&self, principal: &Arc<str>) -> Option<crate::StoreKey> {
        let [provider, environment, _, user] = self.store_key.as_ref()?.parts();
        Some(crate::StoreKey::new(
            &provider,
            &environment,
            principal,
            &user,
        ))
    }

    fn repeatable_without_store(&self, _: &Arc<str>) -> bool {
        self.repeatable
    }

    async fn fetch(
        &self,
        principal: &Arc<str>,
        previous: Option<&crate::TokenState>,
    ) -> Result<crate::TokenState, crate::Error> {
        self.answer(principal, previous).await
    }
}
