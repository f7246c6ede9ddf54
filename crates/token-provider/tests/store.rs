//! The file store: atomic, private, versioned, and safe for two processes sharing one refresh
//! token.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use token_provider::http::{Repeat, Request, parse_base_url};
use token_provider::testing::{TempDir, secret, stored_state};
use token_provider::{
    AccessToken, CacheConfig, CachedTokenProvider, Error, Fetch, FileStore, HttpClient, Secret,
    StoreKey, StoreLock, SystemClock, TokenProvider, TokenState, TokenStore, async_trait,
};

fn temp_dir(name: &str) -> TempDir {
    TempDir::new(&format!("store-{name}"))
}

/// A file store in a new folder named after `name`, holding `state` under `p|e|t|u`: the folder
/// (removed when dropped), the file, the store and the key.
async fn file_holding(name: &str, state: &TokenState) -> (TempDir, PathBuf, FileStore, StoreKey) {
    let dir = temp_dir(name);
    let path = dir.join("tokens.json");
    let store = FileStore::new(&path);
    let key = StoreKey::new("p", "e", "t", "u");
    store.save(&key, state, &StoreLock::none()).await.unwrap();
    (dir, path, store, key)
}

fn state(token: &str, refresh: &str) -> TokenState {
    TokenState::new(
        AccessToken::builder(token)
            .token_type("bearer")
            .expires_at(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000))
            .scope(Some("api".to_owned()))
            .build(),
    )
    .with_refresh_token(Some(Secret::new(refresh)))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn saves_and_loads_many_keys_in_one_private_file() {
    let dir = temp_dir("roundtrip");
    let path = dir.join("tokens.json");
    let store = FileStore::new(&path);
    let a = StoreKey::new("aerion", "api.aerion.app", "companyurl=acme", "me@acme");
    let b = StoreKey::new("aurora-uk", "dev", "aud", "client");
    assert!(store.load(&a).await.unwrap().is_none());
    store
        .save(&a, &state("at-a", "rt-a"), &StoreLock::none())
        .await
        .unwrap();
    store
        .save(&b, &state("at-b", "rt-b"), &StoreLock::none())
        .await
        .unwrap();
    assert_eq!(mode(&path), 0o600);

    let reopened = FileStore::new(&path);
    let got = reopened.load(&a).await.unwrap().unwrap();
    assert_eq!(got, state("at-a", "rt-a"));
    assert_eq!(got.access_token.token_type(), "bearer");
    assert_eq!(got.access_token.scope(), Some("api"));
    assert_eq!(
        got.access_token.expires_at(),
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000))
    );
    assert_eq!(
        reopened.load(&b).await.unwrap().unwrap(),
        state("at-b", "rt-b")
    );

    // The documented format, version 1.
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    let entry = &json["entries"][a.as_str()];
    assert_eq!(entry["access_token"], "at-a");
    assert_eq!(entry["refresh_token"], "rt-a");
    assert_eq!(entry["expires_at"], 2_000_000_000u64);
    assert!(format!("{store:?}").contains("tokens.json"));
}

#[tokio::test]
async fn an_interrupted_write_leaves_the_last_good_state() {
    let (dir, _path, store, key) = file_holding("interrupted", &state("good", "rt-good")).await;
    // What a crash before the rename leaves behind: temp files, one truncated mid-JSON.
    std::fs::write(
        dir.join(".tokens.json.tmp.1.2"),
        br#"{"version":1,"entries":{"p|e|t|u":{"acc"#,
    )
    .unwrap();
    std::fs::write(dir.join(".tokens.json.tmp.3.4"), b"").unwrap();
    let got = store.load(&key).await.unwrap().unwrap();
    assert_eq!(got.access_token.secret().expose_secret(), "good");
    // And the next save still works beside them.
    store
        .save(&key, &state("next", "rt-next"), &StoreLock::none())
        .await
        .unwrap();
    assert_eq!(
        secret(&stored_state(&store, &key).await.access_token),
        "next"
    );
}

#[tokio::test]
async fn a_file_others_can_read_is_refused() {
    let (_dir, path, store, key) = file_holding("mode", &state("at", "rt")).await;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = store.load(&key).await.unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert!(err.to_string().contains("chmod 600"), "{err}");
    assert!(err.to_string().contains("644"), "{err}");
    // Saving is refused too: it reads the file first.
    assert!(
        store
            .save(&key, &state("x", "y"), &StoreLock::none())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn newer_and_garbled_files_are_refused_not_misread() {
    let dir = temp_dir("version");
    let path = dir.join("tokens.json");
    let key = StoreKey::new("p", "e", "t", "u");
    let write = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write(br#"{"version":2,"entries":{}}"#);
    let err = FileStore::new(&path).load(&key).await.unwrap_err();
    assert!(err.to_string().contains("version 2"), "{err}");
    write(b"\x00\xffnot json");
    let err = FileStore::new(&path).load(&key).await.unwrap_err();
    assert!(err.to_string().contains("not a token store file"), "{err}");
    // Unknown fields from a later release are ignored.
    write(
        br#"{"version":1,"future":true,"entries":{"p|e|t|u":{"access_token":"a","new_field":1}}}"#,
    );
    let got = FileStore::new(&path).load(&key).await.unwrap().unwrap();
    assert_eq!(got.access_token.secret().expose_secret(), "a");
    assert!(got.refresh_token.is_none());
}

#[tokio::test]
async fn the_lock_is_exclusive_across_handles() {
    let dir = temp_dir("lock");
    let path = dir.join("tokens.json");
    let key = StoreKey::new("p", "e", "t", "u");
    // Two handles on one file lock through the OS, as two processes would.
    let one = FileStore::new(&path);
    let two = FileStore::new(&path);
    let held = one.lock(&key).await.unwrap();
    let blocked = tokio::time::timeout(Duration::from_millis(300), two.lock(&key)).await;
    assert!(blocked.is_err(), "a second holder got the lock");
    drop(held);
    let got = tokio::time::timeout(Duration::from_secs(5), two.lock(&key)).await;
    assert!(got.is_ok(), "the lock was not released on drop");
    drop(got);

    // A holder that never lets go: the wait ends in an error, not a hang.
    let impatient = FileStore::new(&path).lock_timeout(Duration::from_millis(200));
    let _held = one.lock(&key).await.unwrap();
    let err = impatient.lock(&key).await.unwrap_err();
    // Contention, not a broken configuration: transient.
    assert!(matches!(err, Error::StoreBusy { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("another process"), "{err}");
    assert_eq!(mode(&dir.join("tokens.json.locks")), 0o700);
    for lock in std::fs::read_dir(dir.join("tokens.json.locks")).unwrap() {
        assert_eq!(mode(&lock.unwrap().path()), 0o600);
    }
}

// ---- Two OS processes, one store file, a server that rotates and revokes refresh tokens ----

/// A refresh-grant fetcher, as a provider with rotating refresh tokens has.
#[derive(Debug)]
struct RefreshFetcher {
    http: HttpClient,
    url: url::Url,
}

#[async_trait]
impl Fetch for RefreshFetcher {
    fn store_key(&self) -> Option<StoreKey> {
        Some(StoreKey::new("test", "loopback", "tenant", "user"))
    }

    async fn fetch(&self, previous: Option<&TokenState>) -> Result<TokenState, Error> {
        let rt = previous
            .and_then(|p| p.refresh_token.clone())
            .ok_or_else(|| Error::user_action("no refresh token"))?;
        let resp = self
            .http
            .execute(Request::post(self.url.clone(), Repeat::Once).form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.expose_secret()),
            ]))
            .await?;
        if !resp.status().is_success() {
            return Err(resp.error());
        }
        #[derive(serde::Deserialize)]
        struct T {
            access_token: String,
            refresh_token: String,
            expires_in: u64,
        }
        let t: T = resp.json("token response")?;
        let now = token_provider::Clock::now(&SystemClock);
        Ok(TokenState::new(
            AccessToken::builder(t.access_token)
                .expires_in(now, Duration::from_secs(t.expires_in))
                .build(),
        )
        .with_refresh_token(Some(Secret::new(t.refresh_token))))
    }
}

const CHILD_URL: &str = "PARTNER_AUTH_TEST_CHILD_URL";
const CHILD_STORE: &str = "PARTNER_AUTH_TEST_CHILD_STORE";
const ROUNDS: usize = 6;

/// The child's side: run only when the parent test spawns this binary.
#[tokio::test]
#[ignore = "run by two_processes_never_spend_the_same_refresh_token as a child process"]
async fn store_child_process() {
    let url = std::env::var(CHILD_URL).expect("spawned by the parent test");
    let path = std::env::var(CHILD_STORE).expect("spawned by the parent test");
    let provider = CachedTokenProvider::with_config(
        RefreshFetcher {
            http: HttpClient::new().unwrap(),
            url: parse_base_url("url", &url).unwrap(),
        },
        CacheConfig::new().store(Arc::new(FileStore::new(path))),
    );
    for _ in 0..ROUNDS {
        let t = provider.token().await.expect("a token in every round");
        // As after a 401: forces the next call through the store and, unless the other process
        // refreshed meanwhile, a refresh.
        provider.invalidate(&t);
    }
    let last = provider.token().await.expect("a final token");
    println!("FINAL_TOKEN={}", last.secret().expose_secret());
}

#[derive(Default)]
struct RotatingServer {
    current: String,
    issued: usize,
    spends: HashMap<String, usize>,
    decisions: HashMap<String, Option<usize>>,
    access_tokens: Vec<String>,
}

fn refresh_token_of(req: &mockito::Request) -> String {
    let body = req.body().cloned().unwrap_or_default();
    url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "refresh_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_spend_the_same_refresh_token() {
    let server_state = Arc::new(Mutex::new(RotatingServer {
        current: "rt-0".to_owned(),
        ..Default::default()
    }));
    let mut server = mockito::Server::new_async().await;
    let (s1, s2) = (Arc::clone(&server_state), Arc::clone(&server_state));
    let mock = server
        .mock("POST", "/token")
        .match_body(mockito::Matcher::UrlEncoded(
            "grant_type".into(),
            "refresh_token".into(),
        ))
        // The status is decided first and counts the spend; the body reads the decision.
        .with_status_code_from_request(move |req| {
            let rt = refresh_token_of(req);
            let mut s = s1.lock().unwrap();
            *s.spends.entry(rt.clone()).or_default() += 1;
            let decision = if rt == s.current {
                s.issued += 1;
                s.current = format!("rt-{}", s.issued);
                Some(s.issued)
            } else {
                None // spent or unknown: revoked
            };
            s.decisions.insert(rt, decision);
            if decision.is_some() { 200 } else { 400 }
        })
        .with_body_from_request(move |req| {
            let rt = refresh_token_of(req);
            let mut s = s2.lock().unwrap();
            match s.decisions.get(&rt).copied().flatten() {
                Some(n) => {
                    let at = format!("at-{n}");
                    s.access_tokens.push(at.clone());
                    format!(
                        r#"{{"access_token":"{at}","refresh_token":"rt-{n}","expires_in":3600,"token_type":"bearer"}}"#
                    )
                    .into_bytes()
                }
                None => br#"{"error":"invalid_grant","error_description":"refresh token revoked"}"#.to_vec(),
            }
        })
        .expect_at_least(1)
        .create_async()
        .await;

    let dir = temp_dir("two-processes");
    let path = dir.join("tokens.json");
    // Seeded as an SSO login would: an expired access token and the first refresh token.
    let key = StoreKey::new("test", "loopback", "tenant", "user");
    let seed = TokenState::new(
        AccessToken::builder("at-seed")
            .expires_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1))
            .build(),
    )
    .with_refresh_token(Some(Secret::new("rt-0")));
    FileStore::new(&path)
        .save(&key, &seed, &StoreLock::none())
        .await
        .unwrap();

    let exe = std::env::current_exe().unwrap();
    let spawn = || {
        Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "store_child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_URL, format!("{}/token", server.url()))
            .env(CHILD_STORE, &path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children = [spawn(), spawn()];
    let outputs: Vec<_> = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect()
    })
    .await
    .unwrap();
    for out in &outputs {
        assert!(out.status.success(), "a child failed: {out:?}");
    }
    {
        let s = server_state.lock().unwrap();
        for out in &outputs {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let last = stdout
                .lines()
                .find_map(|l| l.split_once("FINAL_TOKEN=").map(|(_, t)| t.trim()))
                .unwrap_or_else(|| panic!("a child printed no token: {stdout}"));
            assert!(
                s.access_tokens.iter().any(|t| t == last),
                "{last} was never issued"
            );
        }
        for (rt, n) in &s.spends {
            assert_eq!(*n, 1, "{rt} was spent {n} times");
        }
        assert!(
            s.issued >= ROUNDS,
            "only {} refreshes for two processes",
            s.issued
        );
        assert!(
            s.spends.len() == s.issued,
            "a refused refresh: {:?}",
            s.spends
        );
    }
    mock.assert_async().await;
    // The file ends with the newest refresh token the server issued.
    let stored = FileStore::new(&path).load(&key).await.unwrap().unwrap();
    let current = server_state.lock().unwrap().current.clone();
    assert_eq!(stored.refresh_token.unwrap().expose_secret(), current);
}

/// With a key, every entry is sealed (no token in the file) and bound to its key; entries in
/// clear are refused, as sealed ones are without the key; the version contract holds.
#[tokio::test]
async fn with_a_key_entries_are_sealed_and_bound_to_their_key() {
    use token_provider::SealKey;
    let dir = temp_dir("sealed");
    let path = dir.join("tokens.json");
    let key = SealKey::generate().unwrap();
    let sealed = FileStore::new(&path).seal_key(&key);
    assert!(sealed.is_encrypted());
    token_provider::testing::store_contract(Arc::new(
        FileStore::new(dir.join("c.json")).seal_key(&key),
    ))
    .await;
    let (a, b) = (
        StoreKey::new("aerion", "live", "acme", "a@acme"),
        StoreKey::new("aerion", "live", "acme", "b@acme"),
    );
    sealed
        .save(&a, &state("at-sealed-a", "rt-sealed-a"), &StoreLock::none())
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("at-sealed-a") && !text.contains("rt-sealed-a"),
        "{text}"
    );
    assert_eq!(
        sealed.load(&a).await.unwrap(),
        Some(state("at-sealed-a", "rt-sealed-a"))
    );
    assert_eq!(mode(&path), 0o600);
    // Without the key, under another key, or moved to another principal: an error, no token.
    let refused = |e: Error, says: &str| {
        let text = e.to_string();
        assert!(text.contains(says) && !text.contains("at-sealed"), "{text}");
    };
    refused(
        FileStore::new(&path).load(&a).await.unwrap_err(),
        "PARTNER_AUTH_STORE_KEY",
    );
    let other = FileStore::new(&path).seal_key(&SealKey::generate().unwrap());
    refused(other.load(&a).await.unwrap_err(), "does not decrypt");
    let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
    let value = file["entries"][a.as_str()].clone();
    file["entries"][b.as_str()] = value;
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    refused(sealed.load(&b).await.unwrap_err(), "does not decrypt");
    // An entry in clear, with the key set: refused, listed with its reason, removable.
    let clear = dir.join("clear.json");
    FileStore::new(&clear)
        .save(&a, &state("at-clear", "rt-clear"), &StoreLock::none())
        .await
        .unwrap();
    let keyed = FileStore::new(&clear).seal_key(&key);
    refused(keyed.load(&a).await.unwrap_err(), "in clear");
    let listed = keyed.entries().await.unwrap();
    assert!(listed.len() == 1 && listed[0].1.is_err());
    let lock = keyed.lock(&a).await.unwrap();
    assert!(keyed.remove(&a, &lock).await.unwrap());
}

/// Two processes on one store file roll a new key, one key set at a time, and neither ever
/// fails to open what the other saved; the listing names the key that sealed each entry.
#[tokio::test]
async fn a_new_key_rolls_through_two_file_stores_with_no_decrypt_failure() {
    let dir = temp_dir("key-roll");
    let path = dir.join("tokens.json");
    token_provider::testing::key_roll_contract(|keys| {
        Arc::new(FileStore::new(&path).seal_keys(keys))
    })
    .await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("at-"), "{text}");
}

/// A store over another (`forward_token_store!`) lists what the inner one lists, the key that
/// sealed each entry included: `listing` is forwarded, not left at the trait's default.
#[tokio::test]
async fn a_forwarding_store_lists_the_key_that_sealed_each_entry() {
    #[derive(Debug)]
    struct Wrapped(FileStore);
    token_provider::forward_token_store!(Wrapped => |this| &this.0);

    let dir = temp_dir("forward-listing");
    let key = token_provider::SealKey::generate().unwrap();
    let store = Wrapped(FileStore::new(dir.join("tokens.json")).seal_key(&key));
    let a = StoreKey::new("test", "env", "tenant", "a");
    store
        .save(&a, &state("at-a", "rt-a"), &StoreLock::none())
        .await
        .unwrap();
    let listed = store.listing().await.unwrap();
    assert_eq!(listed.len(), 1);
    let sealed_by = listed[0].sealed_by.as_ref().expect("sealed by the key");
    assert_eq!(sealed_by.fingerprint, key.fingerprint());
    assert!(sealed_by.current);
}

/// Each store names its kind (the `store` label of the store-error metric), a forwarding store
/// its inner store's, and a store that does not say is `custom`.
#[test]
fn a_store_names_its_kind_and_a_forwarding_store_the_inner_ones() {
    #[derive(Debug)]
    struct Wrapped(FileStore);
    token_provider::forward_token_store!(Wrapped => |this| &this.0);

    #[derive(Debug)]
    struct Own;
    #[async_trait]
    impl TokenStore for Own {
        async fn load(&self, _: &StoreKey) -> Result<Option<TokenState>, Error> {
            Ok(None)
        }

        async fn save(&self, _: &StoreKey, _: &TokenState, _: &StoreLock) -> Result<(), Error> {
            Ok(())
        }
    }

    let dir = temp_dir("kind");
    let file = FileStore::new(dir.join("tokens.json"));
    assert_eq!(file.kind(), "file");
    assert_eq!(token_provider::MemoryStore::default().kind(), "memory");
    assert_eq!(
        Wrapped(FileStore::new(dir.join("other.json"))).kind(),
        "file"
    );
    assert_eq!(Own.kind(), "custom");
}
