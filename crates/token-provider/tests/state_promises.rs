//! The state promises at their edges: a state that could not be saved is reported, a stored
//! token is adopted with the margin it had when it was obtained, a token that cannot be a header
//! is refused, one principal's state is never another's, and the file store keeps what it
//! stores (and nothing it should not) whatever sits at its path.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use token_provider::testing::{
    Scripted, TempDir, epoch as t0, key, state_at, stored_state, token_text,
};
use token_provider::{
    AccessToken, CacheConfig, CachedTokenProvider, Clock, Error, FileStore, MemoryStore, Secret,
    StoreKey, StoreLock, TokenProvider, TokenState, TokenStore, TokioClock, async_trait,
};

const MIN: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

fn temp_dir(name: &str) -> TempDir {
    TempDir::new(&format!("promises-{name}"))
}

/// A fetcher that issues `token-N` living `lifetime` from the clock's now (no expiry with
/// `None`), with refresh token `rt-N`, named by no store key.
fn issuing(
    clock: &TokioClock,
    lifetime: Option<Duration>,
    secret: impl Fn(usize) -> String + Send + Sync + 'static,
) -> Scripted {
    let clock = clock.clone();
    Scripted::new(move |call| {
        let rt = format!("rt-{}", call.n);
        Ok(state_at(secret(call.n), Some(&rt), clock.now(), lifetime))
    })
}

/// [`issuing`] `token-N`, named `key("me")` in a store.
fn issuer(clock: &TokioClock, lifetime: Option<Duration>) -> Scripted {
    issuing(clock, lifetime, |n| format!("token-{n}")).store_key(key("me"))
}

/// A store whose saves fail, as on a full disk.
#[derive(Debug, Default)]
struct FullDisk(MemoryStore);

#[async_trait]
impl TokenStore for FullDisk {
    async fn load(&self, key: &StoreKey) -> Result<Option<TokenState>, Error> {
        self.0.load(key).await
    }
    async fn save(&self, _: &StoreKey, _: &TokenState, _: &StoreLock) -> Result<(), Error> {
        Err(Error::store(
            "cannot write /var/lib/app/tokens.json",
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        ))
    }
    async fn lock(&self, key: &StoreKey) -> Result<StoreLock, Error> {
        self.0.lock(key).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_state_that_could_not_be_saved_is_reported_to_the_caller() {
    let clock = TokioClock::new(t0());
    let provider = CachedTokenProvider::with_config(
        issuer(&clock, Some(MIN * 60)),
        CacheConfig::new()
            .clock(Arc::new(clock.clone()))
            .store(Arc::new(FullDisk::default())),
    );
    let dynamic: Arc<dyn TokenProvider> = Arc::new(provider.clone());
    assert!(dynamic.store_error().is_none(), "nothing to report yet");
    // The token is good and is served...
    let token = dynamic.token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "token-0");
    // ...and the caller can learn, through the trait object, that a restart would lose the state.
    let err = dynamic.store_error().expect("the failed save is reported");
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert!(err.to_string().contains("tokens.json"), "{err}");
    assert_eq!(
        provider
            .cached_state()
            .unwrap()
            .refresh_token
            .unwrap()
            .expose_secret(),
        "rt-0",
        "the rotated refresh token is kept in memory"
    );
}

#[tokio::test(start_paused = true)]
async fn a_short_lived_stored_token_is_adopted_with_its_own_margin() {
    // 60-second tokens: each run (a new provider on the same store) adopts the stored token while
    // it has more than a fifth of its life ahead, as a fetched one would be used.
    let store = Arc::new(MemoryStore::new());
    let clock = TokioClock::new(t0());
    let first = issuer(&clock, Some(MIN));
    let cfg = || {
        CacheConfig::new()
            .clock(Arc::new(clock.clone()))
            .store(Arc::clone(&store) as Arc<dyn TokenStore>)
    };
    let p = CachedTokenProvider::with_config(first.clone(), cfg());
    assert_eq!(token_text(&p).await, "token-0");
    let stored = store.load(&key("me")).await.unwrap().unwrap();
    assert_eq!(
        stored.obtained_at,
        Some(t0()),
        "the store records when it was obtained"
    );
    for run in 1..10 {
        tokio::time::sleep(Duration::from_secs(4)).await; // 36 s in at the last run
        // Another run: the same upstream, which numbers its tokens on.
        let p = CachedTokenProvider::with_config(first.clone(), cfg());
        assert_eq!(
            token_text(&p).await,
            "token-0",
            "run {run} adopted the fresh stored token"
        );
    }
    assert_eq!(first.calls(), 1, "one fetch for ten runs");
}

#[tokio::test(start_paused = true)]
async fn a_stored_token_with_no_expiry_is_not_reused_past_the_default_lifetime() {
    let store = Arc::new(MemoryStore::new());
    let key = key("me");
    let clock = TokioClock::new(t0());
    // Obtained 30 days ago, no expiry: past the 1-hour default lifetime and the 7-day maximum.
    let old = TokenState::new(AccessToken::new("ancient"))
        .with_obtained_at(t0() - 30 * DAY)
        .with_refresh_token(Some(Secret::new("rt-old")));
    store.save(&key, &old, &StoreLock::none()).await.unwrap();
    let upstream = issuer(&clock, None);
    let p = CachedTokenProvider::with_config(
        upstream.clone(),
        CacheConfig::new()
            .clock(Arc::new(clock.clone()))
            .store(Arc::clone(&store) as Arc<dyn TokenStore>),
    );
    assert_eq!(token_text(&p).await, "token-0");
    assert_eq!(upstream.calls(), 1);

    // One obtained ten minutes ago is still within the default hour: adopted.
    let recent = TokenState::new(AccessToken::new("recent")).with_obtained_at(t0() - 10 * MIN);
    store.save(&key, &recent, &StoreLock::none()).await.unwrap();
    let p = CachedTokenProvider::with_config(
        issuer(&clock, None),
        CacheConfig::new()
            .clock(Arc::new(clock.clone()))
            .store(Arc::clone(&store) as Arc<dyn TokenStore>),
    );
    assert_eq!(token_text(&p).await, "recent");
}

#[tokio::test(start_paused = true)]
async fn an_access_token_that_cannot_be_a_header_value_is_refused() {
    let clock = TokioClock::new(t0());
    for bad in [
        "abc\r\nX-Injected: 1",
        "two words",
        "tab\there",
        "caf\u{e9}",
        "bell\u{7}",
    ] {
        let upstream = issuing(&clock, Some(MIN * 60), move |_| bad.to_owned());
        let p = CachedTokenProvider::with_config(
            upstream,
            CacheConfig::new().clock(Arc::new(clock.clone())),
        );
        let err = p.token().await.unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{bad:?}: {err:?}");
        assert!(err.to_string().contains("RFC 6750"), "{err}");
        assert!(p.cached().is_none(), "{bad:?} was cached");
    }
    // A stored one is not adopted either: a new one is fetched.
    let store = Arc::new(MemoryStore::new());
    let key = key("me");
    let injected = TokenState::new(
        AccessToken::builder("stored\r\nX-Injected: 1")
            .expires_in(t0(), MIN * 60)
            .build(),
    )
    .with_obtained_at(t0());
    store
        .save(&key, &injected, &StoreLock::none())
        .await
        .unwrap();
    let p = CachedTokenProvider::with_config(
        issuer(&clock, Some(MIN * 60)),
        CacheConfig::new()
            .clock(Arc::new(clock.clone()))
            .store(Arc::clone(&store) as Arc<dyn TokenStore>),
    );
    assert_eq!(token_text(&p).await, "token-0");
}

#[tokio::test(start_paused = true)]
async fn a_fetcher_that_names_no_key_never_shares_a_stored_state() {
    let store = Arc::new(MemoryStore::new());
    let clock = TokioClock::new(t0());
    let upstream = issuing(&clock, Some(MIN * 60), |n| format!("token-{n}"));
    let p = CachedTokenProvider::with_config(
        upstream.clone(),
        CacheConfig::new()
            .clock(Arc::new(clock.clone()))
            .store(Arc::clone(&store) as Arc<dyn TokenStore>),
    );
    let err = p.token().await.unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "store"),
        "{err:?}"
    );
    assert!(err.to_string().contains("Fetch::store_key"), "{err}");
    assert_eq!(upstream.calls(), 0, "nothing fetched");
    assert!(store.entries().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn forget_drops_the_cached_and_stored_state() {
    let store = Arc::new(MemoryStore::new());
    let clock = TokioClock::new(t0());
    let upstream = issuer(&clock, Some(MIN * 60));
    let p: Arc<dyn TokenProvider> = Arc::new(CachedTokenProvider::with_config(
        upstream.clone(),
        CacheConfig::new()
            .clock(Arc::new(clock.clone()))
            .store(Arc::clone(&store) as Arc<dyn TokenStore>),
    ));
    assert_eq!(token_text(&p).await, "token-0");
    assert_eq!(store.entries().await.unwrap().len(), 1);
    assert!(p.forget().await.unwrap(), "the store held an entry");
    assert!(store.entries().await.unwrap().is_empty());
    assert!(!p.forget().await.unwrap(), "nothing left");
    assert_eq!(token_text(&p).await, "token-1");
    assert_eq!(upstream.calls(), 2);
}

// ---- The file store at its edges ----

/// `token` with refresh token `rt-of-<token>`, obtained at 1,999,990,000 and expiring at
/// 2,000,000,000 (Unix seconds).
fn state(token: &str) -> TokenState {
    let obtained = SystemTime::UNIX_EPOCH + Duration::from_secs(1_999_990_000);
    let refresh = format!("rt-of-{token}");
    state_at(
        token,
        Some(&refresh),
        obtained,
        Some(Duration::from_secs(10_000)),
    )
    .with_obtained_at(obtained)
}

async fn save(store: &FileStore, principal: &str, token: &str) -> Result<(), Error> {
    let k = key(principal);
    let lock = store.lock(&k).await?;
    store.save(&k, &state(token), &lock).await
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test]
async fn fields_a_later_release_wrote_are_kept_on_rewrite() {
    let dir = temp_dir("forward");
    let path = dir.join("tokens.json");
    write_private(
        &path,
        r#"{"version":1,"written_by":"partner-auth 9.0","entries":{
            "test|env|tenant|other":{"access_token":"at-other","expires_at":2000000000,
              "refresh_token":"rt-other","device_bound":{"kid":"k1"}}}}"#,
    );
    let store = FileStore::new(&path);
    save(&store, "me", "at-me").await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["written_by"], "partner-auth 9.0");
    assert_eq!(
        json["entries"]["test|env|tenant|other"]["device_bound"]["kid"],
        "k1"
    );
    assert_eq!(
        json["entries"]["test|env|tenant|me"]["obtained_at"],
        1_999_990_000
    );
    // A file written before `obtained_at` existed still loads.
    let other = store.load(&key("other")).await.unwrap().unwrap();
    assert_eq!(other.refresh_token.unwrap().expose_secret(), "rt-other");
    assert_eq!(other.obtained_at, None);
}

#[tokio::test]
async fn an_absurd_stored_expiry_loads_capped() {
    let dir = temp_dir("absurd");
    let path = dir.join("tokens.json");
    write_private(
        &path,
        r#"{"version":1,"entries":{"test|env|tenant|me":{"access_token":"at","expires_at":9000000000000}}}"#,
    );
    let state = FileStore::new(&path)
        .load(&key("me"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        state.access_token.expires_at(),
        Some(token_provider::max_expiry())
    );
}

#[tokio::test]
async fn a_file_of_any_size_is_not_read_whole() {
    let dir = temp_dir("huge");
    let path = dir.join("tokens.json");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(token_provider::store::MAX_FILE_SIZE + 1).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = FileStore::new(&path).load(&key("me")).await.unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
}

#[tokio::test]
async fn temporary_files_a_killed_save_left_are_removed() {
    let dir = temp_dir("stale");
    let path = dir.join("tokens.json");
    // What a process killed between writing and renaming leaves: tokens in clear.
    let stale = dir.join(".tokens.json.tmp.4242.17");
    write_private(&stale, r#"{"version":1,"entries":{}}"#);
    let unrelated = dir.join(".other.json.tmp.4242.17");
    write_private(&unrelated, "{}");
    // A live temporary file of the store `tokens.json.tmp.x` beside this one.
    let neighbour = dir.join(".tokens.json.tmp.x.tmp.4242.17");
    write_private(&neighbour, "{}");
    save(&FileStore::new(&path), "me", "at-me").await.unwrap();
    assert!(!stale.exists(), "the stale temporary file is gone");
    assert!(unrelated.exists(), "another store's file is left alone");
    assert!(neighbour.exists(), "a store with a longer name is not ours");
    std::fs::remove_file(&neighbour).unwrap();
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert_eq!(names, vec![".other.json.tmp.4242.17".to_owned()]);
}

#[tokio::test]
async fn a_symlinked_store_is_refused_for_reading_and_writing_alike() {
    let dir = temp_dir("symlink");
    let real = dir.join("real.json");
    let path = dir.join("tokens.json");
    let store = FileStore::new(&path);
    save(&FileStore::new(&real), "me", "at-real").await.unwrap();
    std::os::unix::fs::symlink(&real, &path).unwrap();
    let load = store.load(&key("me")).await.unwrap_err();
    assert!(load.to_string().contains("symbolic link"), "{load}");
    let write = save(&store, "me", "at-new").await.unwrap_err();
    assert!(write.to_string().contains("symbolic link"), "{write}");
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was not replaced by a plain file"
    );
    let still = stored_state(&FileStore::new(&real), &key("me")).await;
    assert_eq!(still.access_token.secret().expose_secret(), "at-real");
}

#[tokio::test]
async fn lock_files_are_never_created_through_a_symlink() {
    let dir = temp_dir("locklink");
    let path = dir.join("tokens.json");
    let target = dir.join("elsewhere");
    // The per-key lock directory and the write lock, each planted as a link.
    std::os::unix::fs::symlink(&target, dir.join("tokens.json.locks")).unwrap();
    let err = save(&FileStore::new(&path), "me", "at").await.unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(!target.exists(), "nothing created through the link");

    std::fs::remove_file(dir.join("tokens.json.locks")).unwrap();
    std::fs::remove_file(dir.join("tokens.json.lock")).unwrap();
    std::os::unix::fs::symlink(&target, dir.join("tokens.json.lock")).unwrap();
    let err = save(&FileStore::new(&path), "me", "at").await.unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(!target.exists(), "nothing created through the link");
}

#[tokio::test]
async fn another_users_store_is_refused() {
    let dir = temp_dir("owner");
    let path = dir.join("tokens.json");
    save(&FileStore::new(&path), "me", "at-mine").await.unwrap();
    let me = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&path).unwrap());
    let other = if me == 0 { 65_534 } else { 0 };
    if std::os::unix::fs::chown(&path, Some(other), None).is_err() {
        // Only root can give a file away; as anyone else the case cannot arise by our hand.
        assert_ne!(me, 0, "root can chown");
        return;
    }
    let store = FileStore::new(&path);
    let err = store.load(&key("me")).await.unwrap_err();
    assert!(err.to_string().contains("belongs to another user"), "{err}");
    let err = save(&store, "me", "at-taken").await.unwrap_err();
    assert!(err.to_string().contains("belongs to another user"), "{err}");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&path).unwrap()),
        other,
        "the owner is kept"
    );
}

#[tokio::test]
async fn a_fifo_or_a_directory_is_refused_at_once() {
    let dir = temp_dir("fifo");
    let fifo = dir.join("tokens.json");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let started = tokio::time::Instant::now();
    let store = FileStore::new(&fifo);
    let err = store.load(&key("me")).await.unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let err = store.lock(&key("me")).await.unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "prompt, not a timeout"
    );

    // `--store DIR`: refused before `DIR.lock` or `DIR.locks` is made beside it.
    let as_dir = dir.join("state");
    std::fs::create_dir(&as_dir).unwrap();
    let err = save(&FileStore::new(&as_dir), "me", "at")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert!(!dir.join("state.lock").exists());
    assert!(!dir.join("state.locks").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_principal_held_never_stalls_another() {
    let dir = temp_dir("perkey");
    let path = dir.join("tokens.json");
    let store = FileStore::new(&path).lock_timeout(Duration::from_millis(300));
    // A stalled fetch holds `slow`'s lock, to the end of the test.
    let _held = store.lock(&key("slow")).await.unwrap();
    // `fast` (in this process or another) locks and saves without waiting for it. No clock is
    // read for that: every lock `other` takes is polled for at most its lock timeout, and a
    // lock that `_held` holds is never let go, so a wait on one could only end in `StoreBusy`
    // (as the last lines show it does for `slow`). The save succeeding is the proof that it
    // waited on nothing of `slow`'s, however slowly the disk syncs.
    let other = FileStore::new(&path).lock_timeout(Duration::from_millis(300));
    save(&other, "fast", "at-fast")
        .await
        .expect("`fast` never waits on `slow`'s lock (a wait would end in StoreBusy)");
    // The held key itself is busy, and busy is transient (not a configuration error).
    let err = other.lock(&key("slow")).await.unwrap_err();
    assert!(
        matches!(err, Error::StoreBusy { .. }) && err.is_transient(),
        "{err:?}"
    );
}

#[tokio::test]
async fn entries_list_and_remove_takes_one_out() {
    let dir = temp_dir("entries");
    let path = dir.join("tokens.json");
    let store = FileStore::new(&path);
    save(&store, "a", "at-a").await.unwrap();
    save(&store, "b|c", "at-b").await.unwrap();
    let entries = store.entries().await.unwrap();
    let principals: Vec<_> = entries.iter().map(|(k, _)| k.parts()[3].clone()).collect();
    assert_eq!(principals, ["a", "b|c"]);
    let k = key("a");
    let lock = store.lock(&k).await.unwrap();
    assert!(store.remove(&k, &lock).await.unwrap());
    assert!(!store.remove(&k, &lock).await.unwrap());
    drop(lock);
    assert!(store.load(&k).await.unwrap().is_none());
    assert!(store.load(&key("b|c")).await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn after_a_failed_save_the_next_refresh_spends_the_newer_refresh_token() {
    let clock = TokioClock::new(t0());
    let disk = Arc::new(FullDisk::default());
    // The store holds an older state (its access token dead): the failed save leaves it there.
    let older = TokenState::new(AccessToken::builder("old").expires_at(t0()).build())
        .with_refresh_token(Some(Secret::new("rt-old")))
        .with_obtained_at(t0() - MIN);
    let key = key("me");
    disk.0.save(&key, &older, &StoreLock::none()).await.unwrap();
    let upstream = issuer(&clock, Some(MIN * 60));
    let p = CachedTokenProvider::with_config(
        upstream.clone(),
        CacheConfig::new()
            .clock(Arc::new(clock.clone()))
            .store(Arc::clone(&disk) as Arc<dyn TokenStore>),
    );
    assert_eq!(token_text(&p).await, "token-0");
    assert!(p.store_error().is_some());
    // Past the hard expiry: the refresh must present rt-0 (ours, newer), not the store's rt-old,
    // which the provider rotated away.
    tokio::time::sleep(MIN * 61).await;
    assert_eq!(token_text(&p).await, "token-1");
    assert_eq!(
        upstream.presented(),
        vec![Some("rt-old".to_owned()), Some("rt-0".to_owned())]
    );

    // Another holder then saves a fresh state: adopted, and the warning no longer applies.
    let fresh = TokenState::new(
        AccessToken::builder("theirs")
            .expires_in(clock.now(), MIN * 60)
            .build(),
    )
    .with_obtained_at(clock.now());
    disk.0.save(&key, &fresh, &StoreLock::none()).await.unwrap();
    p.invalidate(&p.cached().unwrap());
    assert_eq!(token_text(&p).await, "theirs");
    assert!(
        p.store_error().is_none(),
        "cleared by adopting a newer saved state"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fetch_in_flight_during_forget_leaves_nothing_cached() {
    let clock = TokioClock::new(t0());
    let upstream =
        issuing(&clock, Some(MIN * 60), |n| format!("token-{n}")).delay(Duration::from_secs(1));
    let p = CachedTokenProvider::with_config(
        upstream,
        CacheConfig::new().clock(Arc::new(clock.clone())),
    );
    let waiting = tokio::spawn({
        let p = p.clone();
        async move { p.get().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!p.forget().await.unwrap(), "no store");
    // The caller that asked before gets its token; the forgotten cache stays empty.
    assert_eq!(
        waiting.await.unwrap().unwrap().secret().expose_secret(),
        "token-0"
    );
    assert!(
        p.cached().is_none(),
        "the forgotten principal's token was cached again"
    );
}

#[tokio::test(start_paused = true)]
async fn an_issue_time_in_the_future_counts_as_unknown_age() {
    let store = Arc::new(MemoryStore::new());
    let key = key("me");
    let clock = TokioClock::new(t0());
    let cfg = || {
        CacheConfig::new()
            .clock(Arc::new(clock.clone()))
            .store(Arc::clone(&store) as Arc<dyn TokenStore>)
    };
    // Four minutes left, "obtained" next year (a writer whose clock ran ahead): the lifetime
    // would read as zero and the margin with it; as of unknown age it gets the full margin.
    let ahead = TokenState::new(
        AccessToken::builder("ahead")
            .expires_in(t0(), 4 * MIN)
            .build(),
    )
    .with_obtained_at(t0() + 365 * DAY);
    store.save(&key, &ahead, &StoreLock::none()).await.unwrap();
    let p = CachedTokenProvider::with_config(issuer(&clock, Some(MIN * 60)), cfg());
    assert_eq!(token_text(&p).await, "token-0");

    // No expiry, obtained "next year": not reused for a year.
    let no_expiry = TokenState::new(AccessToken::new("forever")).with_obtained_at(t0() + 365 * DAY);
    store
        .save(&key, &no_expiry, &StoreLock::none())
        .await
        .unwrap();
    let p = CachedTokenProvider::with_config(issuer(&clock, None), cfg());
    assert_eq!(token_text(&p).await, "token-0");
}
