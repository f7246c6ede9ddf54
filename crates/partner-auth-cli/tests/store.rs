//! `status` and `forget` against stores the binary filled from the emulator.

mod common;

use common::emu::{
    PROVIDERS, emulator_and_store, partner_auth, secrets, token_endpoint, token_of, vars,
};
use common::{Run, TempDir, command, run_async};
use partner_auth_emulator::Endpoint;

async fn cli(args: &[&str], vars: &[(&'static str, String)]) -> Run {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_async(command(args, &vars)).await
}

/// Asserts neither stream of `out` holds any of `secrets`, nor the first 8 characters of an
/// issued one (the emulator's configured credentials share their start with public ids, as
/// `emulator-aurora-uk-client` and its secret do, so those are checked whole).
#[track_caller]
fn assert_no_secret(out: &Run, configured: &[String], issued: &[String]) {
    let shown = |s: &str| out.stdout.contains(s) || out.stderr.contains(s);
    for secret in configured {
        assert!(!shown(secret), "a credential is shown: {out:?}");
    }
    for secret in issued {
        assert!(secret.len() >= 16, "an issued token or refresh token");
        assert!(
            !shown(&secret[..8]),
            "a token (or its prefix) is shown: {out:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_every_entry_and_no_secret() {
    let (emu, _dir, store) = emulator_and_store("status", "tokens.json").await;
    let store_var = ("PARTNER_AUTH_STORE", store.to_str().unwrap().to_owned());
    let configured = secrets(&emu);
    let mut issued = Vec::new();
    for provider in PROVIDERS {
        let mut env = vars(&emu, provider);
        env.push(store_var.clone());
        issued.push(token_of(&partner_auth(provider, &env, &[]).await));
    }
    let username = emu.config().aerion_users[0].username.clone();
    issued.push(
        emu.current_refresh_token(&username)
            .expect("a refresh token"),
    );

    let out = cli(&["status"], std::slice::from_ref(&store_var)).await;
    out.assert_code(0);
    assert_eq!(out.stderr, "");
    assert_no_secret(&out, &configured, &issued);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    for provider in PROVIDERS {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{provider} ")))
            .unwrap_or_else(|| panic!("no line for {provider}: {}", out.stdout));
        assert!(line.contains("expires in "), "{line}");
        assert!(line.contains("obtained 20"), "{line}");
        let refresh = if provider == "aerion" {
            "refresh token held"
        } else {
            "no refresh token"
        };
        assert!(line.contains(refresh), "{line}");
    }
    let aerion = lines.iter().find(|l| l.starts_with("aerion ")).unwrap();
    assert!(
        aerion.contains(&format!("principal={username}")),
        "{aerion}"
    );

    // Only the counts, as text and as one JSON object.
    let out = cli(&["status", "--counts"], std::slice::from_ref(&store_var)).await;
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        "entries: 4 (aerion 1, aurora-solar 1, aurora-solar-sdk 1, aurora-uk 1)\nexpired: 0\n\
         refresh tokens held: 1\nsealed by an older key: 0\nunreadable: 0\n"
    );
    let out = cli(
        &["status", "--counts", "--json"],
        std::slice::from_ref(&store_var),
    )
    .await;
    out.assert_code(0);
    let counts: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(
        counts,
        serde_json::json!({
            "entries": 4,
            "providers": {"aerion": 1, "aurora-solar": 1, "aurora-solar-sdk": 1, "aurora-uk": 1},
            "expired": 0,
            "refresh_tokens": 1,
            "sealed_by_older_key": 0,
            "unreadable": 0
        })
    );

    let out = cli(&["status", "--json"], &[store_var]).await;
    out.assert_code(0);
    assert_no_secret(&out, &configured, &issued);
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 4);
    for row in rows {
        let mut keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "environment",
                "expires_at",
                "expires_in_secs",
                "obtained_at",
                "principal",
                "provider",
                "refresh_token",
                "sealed_by",
                "sealed_by_older_key",
                "tenant",
                "unreadable"
            ]
        );
        assert!(row["unreadable"].is_null(), "{row}");
        assert!(row["sealed_by"].is_null(), "in clear: {row}");
        assert!(row["expires_in_secs"].as_i64().unwrap() > 0, "{row}");
        assert_eq!(row["refresh_token"], row["provider"] == "aerion");
    }
    assert!(emu.requests().len() >= 4);
    emu.shutdown().await;
}

/// An Aurora UK token through the store at `store_arg`.
async fn uk_token(emu: &partner_auth_emulator::RunningEmulator, store_arg: &str) -> String {
    token_of(
        &partner_auth(
            "aurora-uk",
            &vars(emu, "aurora-uk"),
            &["--store", store_arg],
        )
        .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_then_token_fetches_again() {
    let (emu, _dir, store) = emulator_and_store("forget", "tokens.json").await;
    let store_arg = store.to_str().unwrap();
    let username = emu.config().aerion_users[0].username.clone();
    let env = vars(&emu, "aerion");

    let first = token_of(&partner_auth("aerion", &env, &["--store", store_arg]).await);
    let refresh = emu
        .current_refresh_token(&username)
        .expect("a refresh token");
    assert!(std::fs::read_to_string(&store).unwrap().contains(&refresh));

    let out = cli(&["forget", "aerion", "--store", store_arg], &env).await;
    out.assert_code(0);
    assert_eq!(out.stderr, "");
    assert!(out.stdout.starts_with("aerion: forgot"), "{}", out.stdout);
    assert!(
        out.stdout.contains("and its refresh token"),
        "{}",
        out.stdout
    );
    assert_no_secret(&out, &secrets(&emu), &[first.clone(), refresh.clone()]);
    let stored = std::fs::read_to_string(&store).unwrap();
    assert!(
        !stored.contains(&first) && !stored.contains(&refresh),
        "{stored}"
    );
    #[cfg(unix)]
    assert_eq!(common::mode(&store), 0o600);

    emu.clear_requests();
    let second = token_of(&partner_auth("aerion", &env, &["--store", store_arg]).await);
    assert_ne!(second, first);
    let sent = emu.requests_for(Endpoint::AerionToken);
    assert_eq!(sent.len(), 1, "a new fetch");
    assert_eq!(
        sent[0].form_param("grant_type").as_deref(),
        Some("password")
    );

    // Nothing left to forget for another principal of the same provider.
    let mut other = env.clone();
    other.retain(|(k, _)| *k != "AERION_USERNAME");
    other.push(("AERION_USERNAME", "someone-else@emulator.test".to_owned()));
    let out = cli(&["forget", "aerion", "--store", store_arg], &other).await;
    out.assert_code(0);
    assert!(out.stdout.contains("nothing was stored"), "{}", out.stdout);
    assert!(std::fs::read_to_string(&store).unwrap().contains(&second));

    // --all: every provider's entry goes.
    for provider in ["aurora-uk", "aurora-solar"] {
        token_of(&partner_auth(provider, &vars(&emu, provider), &["--store", store_arg]).await);
    }
    let out = cli(
        &["forget", "aurora-uk", "--store", store_arg],
        &vars(&emu, "aurora-uk"),
    )
    .await;
    out.assert_code(0);
    assert!(
        out.stdout.contains("no refresh token was held"),
        "{}",
        out.stdout
    );
    uk_token(&emu, store_arg).await;
    let out = cli(&["forget", "--all", "--store", store_arg], &[]).await;
    out.assert_code(0);
    assert_eq!(out.stdout, "forgot 3 entries and 1 refresh token\n");
    let out = cli(&["status", "--store", store_arg], &[]).await;
    out.assert_code(0);
    assert_eq!(out.stdout, "");
    emu.clear_requests();
    uk_token(&emu, store_arg).await;
    assert_eq!(emu.request_count(token_endpoint("aurora-uk")), 1);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_forget_need_a_store() {
    for args in [
        &["status"][..],
        &["forget", "--all"][..],
        &["forget", "aerion"][..],
    ] {
        let out = cli(args, &[]).await;
        out.assert_code(2);
        common::assert_one_line(&out.stderr);
        assert!(out.stderr.contains("PARTNER_AUTH_STORE"), "{}", out.stderr);
    }
    for args in [&["forget"][..], &["forget", "aerion", "--all"][..]] {
        let out = cli(args, &[]).await;
        out.assert_code(2);
        common::assert_one_line(&out.stderr);
    }
}

/// Entries whose state cannot be read (an empty access token; a field of the wrong type, under a
/// key holding a terminal escape) neither hide the others from `status` nor stop `forget --all`
/// from removing them: `status` lists every entry, an unreadable one by its key (escaped) with
/// the reason, and exits 2 naming the first; `forget --all` removes them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_entries_are_listed_with_their_reason_and_forget_all_removes_them() {
    use std::time::Duration;
    use token_provider::{
        AccessToken, Clock, FileStore, Secret, StoreKey, SystemClock, TokenState, TokenStore,
    };

    let dir = TempDir::new("unreadable");
    let path = dir.join("tokens.json");
    let store = FileStore::new(&path);
    let good = StoreKey::new("aerion", "live", "acme", "good@example.com");
    let empty = StoreKey::new("aerion", "live", "acme", "empty@example.com");
    let mistyped = StoreKey::new("aerion", "live", "acme", "bad\u{1b}[2J@example.com");
    let expires = SystemClock.now() + Duration::from_secs(3600);
    let tokens = [
        (&good, "good-access-token-1234"),
        (&empty, "empty-access-token-5678"),
        (&mistyped, "mistyped-access-token-3456"),
    ];
    for (key, token) in tokens {
        let state = TokenState::new(AccessToken::builder(token).expires_at(expires).build())
            .with_refresh_token(Some(Secret::new("stored-refresh-token-9012")));
        let lock = store.lock(key).await.unwrap();
        store.save(key, &state, &lock).await.unwrap();
    }
    // Damage two entries: an empty access token, and an expiry that is not a number.
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    file["entries"][empty.as_str()]["access_token"] = serde_json::Value::from("");
    file["entries"][mistyped.as_str()]["expires_at"] = serde_json::Value::from("soon");
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
    let store_var = ("PARTNER_AUTH_STORE", path.to_str().unwrap().to_owned());
    let secrets = [
        "good-access-token-1234".to_owned(),
        "empty-access-token-5678".to_owned(),
        "mistyped-access-token-3456".to_owned(),
        "stored-refresh-token-9012".to_owned(),
    ];

    let out = cli(&["status"], std::slice::from_ref(&store_var)).await;
    out.assert_code(2);
    assert_no_secret(&out, &secrets, &[]);
    assert!(
        !out.stdout.contains('\u{1b}') && !out.stderr.contains('\u{1b}'),
        "a raw escape reached the terminal: {out:?}"
    );
    assert!(
        out.stderr.starts_with(
            "partner-auth: 2 stored entries could not be read; the first \
             (aerion environment=live tenant=acme principal=\"bad\\u{1b}[2J@example.com\"): "
        ) && out.stderr.contains("not in the token store format")
            && out.stderr.lines().count() == 1,
        "{:?}",
        out.stderr
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    let line = |principal: &str| {
        *lines
            .iter()
            .find(|l| l.contains(&format!("principal={principal}")))
            .unwrap_or_else(|| panic!("no line for {principal}: {}", out.stdout))
    };
    let good_line = line("good@");
    assert!(
        good_line.contains("expires in ") && good_line.contains("refresh token held"),
        "{good_line}"
    );
    assert_eq!(
        line("empty@"),
        "aerion environment=live tenant=acme principal=empty@example.com, unreadable: \
         token store: a stored entry has an empty access token"
    );
    assert!(
        line("\"bad").ends_with(
            ", unreadable: token store: a stored entry is not in the token store format"
        ),
        "{}",
        line("\"bad")
    );

    let out = cli(&["status", "--json"], std::slice::from_ref(&store_var)).await;
    out.assert_code(2);
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 3);
    for row in rows {
        if row["principal"] == "good@example.com" {
            assert!(
                row["unreadable"].is_null() && row["refresh_token"] == true,
                "{row}"
            );
        } else {
            assert!(
                row["unreadable"]
                    .as_str()
                    .unwrap()
                    .contains("a stored entry")
            );
            assert!(
                row["expires_at"].is_null() && row["refresh_token"].is_null(),
                "{row}"
            );
        }
    }

    let out = cli(&["forget", "--all"], std::slice::from_ref(&store_var)).await;
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        "forgot 3 entries (2 unreadable) and 1 refresh token among the others\n"
    );
    assert!(store.entries().await.unwrap().is_empty());
    let out = cli(&["status"], &[store_var]).await;
    out.assert_code(0);
    assert_eq!(out.stdout, "");
}
