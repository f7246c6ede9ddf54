//! What `--store` and `PARTNER_AUTH_STORE` accept, on real redis-servers: every documented URL
//! form (never a file for a `word:` prefix), the password from its own variable (never argv),
//! Redis's refusals as configuration errors with no local fetch, TLS roots from
//! `SSL_CERT_FILE`, a warning when the token could not be shared, and a sealed file store.

mod common;

use common::emu::*;
use common::{Run, TempDir, command, run_async};
use partner_auth_emulator::RunningEmulator;
use partner_auth_redis::testing::{RedisCluster, RedisServer};

const KEY: &str = "0oQ2lHqCw9bS7Yk3nX1fVtR5uJ8mZ4pE6aD0gK2hL9s=";
const PASSWORD: &str = "redis-pw-4e7a0c";

/// `partner-auth <args>` with `vars`, run in `dir`.
async fn run_in(dir: &TempDir, args: &[&str], vars: &[(&'static str, String)]) -> Run {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut cmd = command(args, &vars);
    cmd.current_dir(dir.path());
    run_async(cmd).await
}

/// `status` in `dir` succeeds and says the entry is sealed by the key `fingerprint`.
async fn assert_sealed_by(dir: &TempDir, vars: &[(&'static str, String)], fingerprint: &str) {
    let status = run_in(dir, &["status"], vars).await;
    status.assert_code(0);
    assert!(
        status
            .stdout
            .trim_end()
            .ends_with(&format!(", sealed by key {fingerprint}")),
        "{}",
        status.stdout
    );
}

fn with(
    mut env: Vec<(&'static str, String)>,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    for (name, value) in extra {
        set(&mut env, name, value);
    }
    env
}

fn listing(dir: &TempDir) -> Vec<String> {
    std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Before: each was taken as a file path, and a clear-text token file appeared in the working
/// directory (even with PARTNER_AUTH_STORE_KEY set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_word_and_a_colon_is_never_a_file_path() {
    let (emu, dir) = emulator_and_folder("schemes").await;
    for spec in [
        "redis:127.0.0.1:6379",
        "rediss:h:1",
        "ftp:tokens.json",
        "memcached://127.0.0.1:11211",
        "http://127.0.0.1/x",
    ] {
        let env = with(
            vars(&emu, "aerion"),
            &[
                ("PARTNER_AUTH_STORE", spec),
                ("PARTNER_AUTH_STORE_KEY", KEY),
            ],
        );
        let out = run_in(&dir, &["token", "aerion"], &env).await;
        out.assert_failure(2, "aerion", &["PARTNER_AUTH_STORE"]);
        assert!(listing(&dir).is_empty(), "{spec}: {:?}", listing(&dir));
    }
    assert!(emu.requests().is_empty());
    emu.shutdown().await;
}

/// Runs `token aerion` twice through `spec`: one fetch, the second run served from Redis.
async fn shared_through(
    emu: &RunningEmulator,
    dir: &TempDir,
    spec: &str,
    extra: &[(&'static str, &str)],
) -> String {
    emu.clear_requests();
    let env = with(vars(emu, "aerion"), &[("PARTNER_AUTH_STORE", spec)]);
    let env = with(env, extra);
    let first = token_of(&run_in(dir, &["token", "aerion"], &env).await);
    let second = token_of(&run_in(dir, &["token", "aerion"], &env).await);
    assert_eq!(first, second, "{spec}");
    assert_eq!(emu.requests().len(), 1, "{spec}: one fetch for both runs");
    let out = run_in(dir, &["forget", "--all"], &env).await;
    out.assert_code(0);
    first
}

/// Before: `REDIS://` was refused, `valkey://`, `unix://` and `redis+unix://` were file paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_url_form_reaches_redis() {
    let (emu, dir) = emulator_and_folder("forms").await;
    let socket = dir.join("redis.sock");
    let server = RedisServer::start_with(&[
        "--unixsocket",
        socket.to_str().unwrap(),
        "--unixsocketperm",
        "700",
    ]);
    let port = server.port();
    for spec in [
        format!("REDIS://127.0.0.1:{port}/0"),
        format!("Valkey://127.0.0.1:{port}"),
        format!("unix://{}", socket.display()),
        format!("redis+unix://{}?db=3", socket.display()),
    ] {
        shared_through(&emu, &dir, &spec, &[]).await;
    }
    assert!(
        listing(&dir) == ["redis.sock"],
        "only the socket: {:?}",
        listing(&dir)
    );
    emu.shutdown().await;
}

/// Before: `?db=6` was ignored (the entry went to database 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_parameters_are_honoured_or_refused() {
    let (emu, dir) = emulator_and_folder("query").await;
    let server = RedisServer::start();
    let port = server.port();
    let env = with(
        vars(&emu, "aerion"),
        &[(
            "PARTNER_AUTH_STORE",
            &format!("redis://127.0.0.1:{port}/?db=6"),
        )],
    );
    token_of(&run_in(&dir, &["token", "aerion"], &env).await);
    assert!(server.cli(&["-n", "0", "--scan"]).trim().is_empty());
    assert!(server.cli(&["-n", "6", "--scan"]).contains(":e:aerion|"));
    for spec in [
        format!("redis://127.0.0.1:{port}/0?protocol=resp3&x=1"),
        format!("redis://127.0.0.1:{port}/1?db=2"),
        format!("redis://127.0.0.1:{port}/0#insecure"),
    ] {
        let env = with(vars(&emu, "aerion"), &[("PARTNER_AUTH_STORE", &spec)]);
        let out = run_in(&dir, &["token", "aerion"], &env).await;
        out.assert_failure(2, "aerion", &["PARTNER_AUTH_STORE"]);
    }
    emu.shutdown().await;
}

/// Before: the key was ignored by the file store: tokens in clear in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_key_the_file_store_seals_its_entries() {
    let (emu, dir) = emulator_and_folder("sealed-file").await;
    let file = dir.join("tokens.json");
    let env = with(
        vars(&emu, "aerion"),
        &[
            ("PARTNER_AUTH_STORE", file.to_str().unwrap()),
            ("PARTNER_AUTH_STORE_KEY", KEY),
        ],
    );
    let token = token_of(&run_in(&dir, &["token", "aerion"], &env).await);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(&token), "a token in clear in the file");
    let username = emu.config().aerion_users[0].username.clone();
    let refresh = emu.current_refresh_token(&username).unwrap();
    assert!(
        !text.contains(&refresh),
        "a refresh token in clear in the file"
    );
    // Read back under the key: the same token, no request; listed by `status`.
    emu.clear_requests();
    assert_eq!(
        token_of(&run_in(&dir, &["token", "aerion"], &env).await),
        token
    );
    assert!(emu.requests().is_empty());
    let status = run_in(&dir, &["status"], &env).await;
    status.assert_code(0);
    assert!(status.stdout.starts_with("aerion "), "{}", status.stdout);
    // Without the key: a clear error, never a token.
    let mut keyless = env.clone();
    unset(&mut keyless, "PARTNER_AUTH_STORE_KEY");
    let out = run_in(&dir, &["token", "aerion"], &keyless).await;
    out.assert_failure(2, "aerion", &["PARTNER_AUTH_STORE_KEY"]);
    emu.shutdown().await;
}

/// Before: `--store redis://:PASSWORD@…` was the documented way, with the password in argv.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_store_is_refused_and_taken_from_its_variable() {
    let (emu, dir) = emulator_and_folder("password").await;
    let server = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let port = server.port();
    let in_argv = format!("redis://:{PASSWORD}@127.0.0.1:{port}/0");
    let out = run_in(
        &dir,
        &["token", "aerion", "--store", &in_argv],
        &vars(&emu, "aerion"),
    )
    .await;
    out.assert_failure(2, "aerion", &["--store", "PARTNER_AUTH_REDIS_PASSWORD"]);
    out.assert_no_secret_in_stderr(&[PASSWORD]);
    assert!(emu.requests().is_empty());

    let url = format!("redis://127.0.0.1:{port}/0");
    let from_var = with(
        vars(&emu, "aerion"),
        &[("PARTNER_AUTH_REDIS_PASSWORD", PASSWORD)],
    );
    let out = run_in(&dir, &["token", "aerion", "--store", &url], &from_var).await;
    let token = token_of(&out);
    // From a file, with its trailing newline: the same entry.
    let secret_file = dir.join("redis-password");
    std::fs::write(&secret_file, format!("{PASSWORD}\n")).unwrap();
    let from_file = with(
        vars(&emu, "aerion"),
        &[(
            "PARTNER_AUTH_REDIS_PASSWORD_FILE",
            secret_file.to_str().unwrap(),
        )],
    );
    let out = run_in(&dir, &["token", "aerion", "--store", &url], &from_file).await;
    assert_eq!(token_of(&out), token);
    // Both: which one is meant?
    let both = with(
        from_file.clone(),
        &[("PARTNER_AUTH_REDIS_PASSWORD", PASSWORD)],
    );
    let out = run_in(&dir, &["token", "aerion", "--store", &url], &both).await;
    out.assert_failure(2, "aerion", &["PARTNER_AUTH_REDIS_PASSWORD"]);
    emu.shutdown().await;
}

/// Before: a wrong password read as "server unreachable or restarting", and a password grant
/// was fetched without the store (exit 0, the token shared with nobody).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_exits_2_naming_the_server_and_fetches_nothing() {
    let (emu, dir) = emulator_and_folder("wrong-password").await;
    let server = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let url = format!("redis://127.0.0.1:{}/0", server.port());
    for password in [None, Some("not-the-password-81c")] {
        let mut env = with(vars(&emu, "aerion"), &[("PARTNER_AUTH_STORE", &url)]);
        if let Some(password) = password {
            set(&mut env, "PARTNER_AUTH_REDIS_PASSWORD", password);
        }
        let out = run_in(&dir, &["token", "aerion"], &env).await;
        out.assert_failure(2, "aerion", &[&url, "password"]);
        out.assert_no_secret_in_stderr(&[PASSWORD, "not-the-password-81c"]);
    }
    assert!(emu.requests().is_empty(), "fetched around a refusing Redis");
    emu.shutdown().await;
}

/// Before: a certificate from an unknown CA read as "server unreachable", and a password grant
/// was fetched without the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_roots_come_from_ssl_cert_file() {
    let (emu, dir) = emulator_and_folder("tls").await;
    let server = RedisServer::start_tls(&[]);
    let url = server.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let untrusted = server.untrusted_ca_file().unwrap().to_str().unwrap();
    let env = with(
        vars(&emu, "aerion"),
        &[("PARTNER_AUTH_STORE", &url), ("SSL_CERT_FILE", untrusted)],
    );
    let out = run_in(&dir, &["token", "aerion"], &env).await;
    out.assert_failure(2, "aerion", &[&url, "SSL_CERT_FILE"]);
    assert!(
        emu.requests().is_empty(),
        "fetched around an untrusted Redis"
    );
    let ca = server.ca_file().unwrap().to_str().unwrap();
    shared_through(&emu, &dir, &url, &[("SSL_CERT_FILE", ca)]).await;
    emu.shutdown().await;
}

/// Before: the fallback was silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_fetched_around_an_unreachable_redis_says_it_was_not_shared() {
    let (emu, dir) = emulator_and_folder("fallback").await;
    let down = format!("redis://127.0.0.1:{}/0", common::closed_port());
    let env = with(vars(&emu, "aerion"), &[("PARTNER_AUTH_STORE", &down)]);
    let out = run_in(&dir, &["token", "aerion"], &env).await;
    out.assert_code(0);
    assert!(!out.stdout.trim().is_empty());
    common::assert_one_line(&out.stderr);
    assert!(
        out.stderr.starts_with("partner-auth: aerion: warning: ")
            && out.stderr.contains("not shared")
            && out.stderr.contains(&down),
        "{}",
        out.stderr
    );
    emu.shutdown().await;
}

/// Before: `accept_eviction_risk` could not be set from the environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eviction_risk_is_accepted_by_a_variable() {
    let (emu, dir) = emulator_and_folder("eviction").await;
    let server = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let env = with(
        vars(&emu, "aerion"),
        &[("PARTNER_AUTH_STORE", &server.url())],
    );
    let out = run_in(&dir, &["token", "aerion"], &env).await;
    out.assert_failure(
        2,
        "aerion",
        &["maxmemory-policy", "PARTNER_AUTH_REDIS_ACCEPT_EVICTION"],
    );
    let env = with(env, &[("PARTNER_AUTH_REDIS_ACCEPT_EVICTION", "1")]);
    token_of(&run_in(&dir, &["token", "aerion"], &env).await);
    emu.shutdown().await;
}

/// Several providers' principals on a cluster of three masters: shared by runs, listed by
/// `status` and removed by `forget --all` wherever their slot lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_is_shared_listed_and_forgotten() {
    let (emu, dir) = emulator_and_folder("cluster").await;
    let cluster = RedisCluster::start();
    let url = cluster.url();
    for provider in PROVIDERS {
        let env = with(vars(&emu, provider), &[("PARTNER_AUTH_STORE", &url)]);
        let first = token_of(&run_in(&dir, &["token", provider], &env).await);
        let again = token_of(&run_in(&dir, &["token", provider], &env).await);
        assert_eq!(first, again, "{provider}: served from the cluster");
    }
    let store = with(Vec::new(), &[("PARTNER_AUTH_STORE", &url)]);
    let status = run_in(&dir, &["status"], &store).await;
    status.assert_code(0);
    assert_eq!(
        status.stdout.lines().count(),
        PROVIDERS.len(),
        "{}",
        status.stdout
    );
    let forget = run_in(&dir, &["forget", "--all"], &store).await;
    forget.assert_code(0);
    for node in cluster.nodes() {
        let left = node.cli(&["--scan", "--pattern", "partner-auth:*"]);
        assert!(left.trim().is_empty(), "{left}");
    }
    emu.shutdown().await;
}

/// The store key rotated through `PARTNER_AUTH_STORE_KEY_FILE`: an entry sealed under the old
/// key is read under `NEW,OLD`, shown as sealed by the older key's fingerprint, and sealed
/// under the new one at its next save; no key ever shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_which_key_sealed_each_entry_while_the_key_is_rotated() {
    const NEW: &str = "nxi2WTgAVo/41x4pfRVLrg+p94uUwfqt3qtlQKFSqtk=";
    let fingerprint = |key: &str| {
        partner_auth::SealKey::from_base64(key)
            .unwrap()
            .fingerprint()
            .to_string()
    };
    let (old_fp, new_fp) = (fingerprint(KEY), fingerprint(NEW));
    // Aerion tokens of two seconds: the next run after them saves a new state.
    let emu = partner_auth_emulator::Emulator::builder()
        .aerion_token_lifetime(std::time::Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    let dir = TempDir::new("key-rotation");
    let store = dir.join("tokens.json");
    let key_file = dir.join("store.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let env = with(
        vars(&emu, "aerion"),
        &[
            ("PARTNER_AUTH_STORE", store.to_str().unwrap()),
            ("PARTNER_AUTH_STORE_KEY_FILE", key_file.to_str().unwrap()),
        ],
    );
    let no_key = |out: &Run| {
        for key in [KEY, NEW] {
            assert!(
                !out.stdout.contains(key) && !out.stderr.contains(key),
                "{out:?}"
            );
        }
    };
    token_of(&run_in(&dir, &["token", "aerion"], &env).await);
    assert_sealed_by(&dir, &env, &old_fp).await;

    // The new key first, the old one still accepted (a list, one per line here).
    std::fs::write(&key_file, format!("{NEW}\n{KEY}\n")).unwrap();
    let status = run_in(&dir, &["status", "--json"], &env).await;
    status.assert_code(0);
    no_key(&status);
    let rows: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(rows[0]["sealed_by"], old_fp.as_str(), "{rows}");
    assert_eq!(rows[0]["sealed_by_older_key"], true, "{rows}");
    let status = run_in(&dir, &["status"], &env).await;
    assert!(
        status
            .stdout
            .contains(&format!("sealed by older key {old_fp}")),
        "{}",
        status.stdout
    );
    let counts = run_in(&dir, &["status", "--counts"], &env).await;
    counts.assert_code(0);
    assert!(
        counts.stdout.contains("\nsealed by an older key: 1\n"),
        "{}",
        counts.stdout
    );

    // The token expires; the next run refreshes it and seals the new state under the new key.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    emu.clear_requests();
    let out = run_in(&dir, &["token", "aerion"], &env).await;
    out.assert_code(0);
    no_key(&out);
    assert_eq!(emu.request_count(token_endpoint("aerion")), 1);
    assert_sealed_by(&dir, &env, &new_fp).await;
    // The old key alone opens it no more: the rotation can end with the new key alone.
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let out = run_in(&dir, &["status"], &env).await;
    out.assert_code(2);
    assert!(out.stderr.contains("does not decrypt"), "{}", out.stderr);
    no_key(&out);

    // The variable and its file together: refused by name, nothing sent.
    let both = with(env.clone(), &[("PARTNER_AUTH_STORE_KEY", NEW)]);
    emu.clear_requests();
    let out = run_in(&dir, &["token", "aerion"], &both).await;
    out.assert_failure(
        2,
        "aerion",
        &["PARTNER_AUTH_STORE_KEY and PARTNER_AUTH_STORE_KEY_FILE"],
    );
    no_key(&out);
    assert!(emu.requests().is_empty());
    emu.shutdown().await;
}
