//! Aerion's secrets from files: the password and the configured refresh token are read again
//! when their file changes, and once more after Aerion refuses them.

mod common;

use std::time::Duration;

use aerion_auth::AerionBuilder;
use common::*;
use token_provider::testing::{SecretFile, capture_logs};
use token_provider::{MemoryStore, TokenProvider, TokenStore};

const HOUR: Duration = Duration::from_secs(3600);

/// The builder from the environment, each secret from a file.
fn from_files(
    server: &mockito::ServerGuard,
    vars: &[(&'static str, &SecretFile)],
    username: Option<&str>,
) -> AerionBuilder {
    let mut table: Vec<(&str, String)> = vec![
        ("AERION_BASE_URL", server.url()),
        ("AERION_COMPANY_URL", TENANT.to_owned()),
        ("AERION_CLIENT_ID", CLIENT_ID.to_owned()),
        ("AERION_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
    ];
    table.extend(username.map(|u| ("AERION_USERNAME", u.to_owned())));
    table.extend(
        vars.iter()
            .map(|(name, file)| (*name, file.path().display().to_string())),
    );
    AerionBuilder::from_env_with(move |name| {
        table
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
    .http_client(http_client())
}

/// The refresh token is refused, the password fallback too with the password the file held;
/// the file, read once more, holds a new one, sent at once. A swap of the file is seen before
/// anything is sent.
#[tokio::test]
async fn a_password_file_is_read_again_after_a_refusal_and_when_swapped() {
    let logs = capture_logs();
    let mut server = mockito::Server::new_async().await;
    let mut password = SecretFile::new("password", "pw-file-one");
    let clock = fixed_clock();
    let aerion = from_files(
        &server,
        &[("AERION_PASSWORD_FILE", &password)],
        Some(USERNAME),
    )
    .clock(std::sync::Arc::new(clock.clone()))
    .build()
    .unwrap();
    assert!(!format!("{aerion:?}").contains("pw-file"), "{aerion:?}");

    let first = token_mock(&mut server, password_form(USERNAME, "pw-file-one")).expect(1);
    let first = issue(first, "at-1", Some("rt-1")).await;
    assert_eq!(aerion.get().await.unwrap().secret().expose_secret(), "at-1");
    first.assert_async().await;

    password.rewrite_unseen("pw-file-two");
    let refresh = invalid_grant(&mut server, refresh_form("rt-1"), 1).await;
    let stale = invalid_grant(&mut server, password_form(USERNAME, "pw-file-one"), 1).await;
    let fresh = token_mock(&mut server, password_form(USERNAME, "pw-file-two")).expect(1);
    let fresh = issue(fresh, "at-2", None).await;
    clock.advance(HOUR);
    assert_eq!(aerion.get().await.unwrap().secret().expose_secret(), "at-2");
    refresh.assert_async().await;
    stale.assert_async().await;
    fresh.assert_async().await;

    // No refresh token now: the password grant, with the swapped file's password at once.
    password.swap("pw-file-333");
    let swapped = token_mock(&mut server, password_form(USERNAME, "pw-file-333")).expect(1);
    let swapped = issue(swapped, "at-3", None).await;
    clock.advance(HOUR);
    assert_eq!(aerion.get().await.unwrap().secret().expose_secret(), "at-3");
    swapped.assert_async().await;
    logs.assert_absent(&["pw-file-one", "pw-file-two", "pw-file-333"]);
}

/// An SSO setup: the refresh token the file held was rotated away; the one it held next,
/// written in place, is found when Aerion refuses the rotated one, and used. The principal
/// stays the one of the token configured first.
#[tokio::test]
async fn a_new_refresh_token_in_its_file_is_a_new_start() {
    let mut server = mockito::Server::new_async().await;
    let seed = SecretFile::new("refresh_token", "rt-sso-one");
    let clock = fixed_clock();
    let store = MemoryStore::new();
    let aerion = from_files(&server, &[("AERION_REFRESH_TOKEN_FILE", &seed)], None)
        .clock(std::sync::Arc::new(clock.clone()))
        .store(std::sync::Arc::new(store.clone()))
        .build()
        .unwrap();
    let key = aerion.store_key();

    let first = refresh_issues(&mut server, "rt-sso-one", "at-1", Some("rt-rotated")).await;
    assert_eq!(aerion.get().await.unwrap().secret().expose_secret(), "at-1");
    first.assert_async().await;

    seed.rewrite_unseen("rt-sso-two");
    let rotated = invalid_grant(&mut server, refresh_form("rt-rotated"), 1).await;
    let again = token_mock(&mut server, refresh_form("rt-sso-one")).expect(0);
    let again = issue(again, "at-never", None).await;
    let new = refresh_issues(&mut server, "rt-sso-two", "at-2", Some("rt-rotated-2")).await;
    clock.advance(HOUR);
    assert_eq!(aerion.get().await.unwrap().secret().expose_secret(), "at-2");
    rotated.assert_async().await;
    again.assert_async().await;
    new.assert_async().await;
    assert_eq!(aerion.store_key(), key);
    let stored = store.load(&key).await.unwrap().unwrap();
    assert_eq!(
        stored.refresh_token.unwrap().expose_secret(),
        "rt-rotated-2"
    );
}

#[test]
fn each_secret_and_its_file_together_are_refused_by_name() {
    let file = SecretFile::new("secret", "both-set");
    for var in [
        "AERION_PASSWORD",
        "AERION_REFRESH_TOKEN",
        "AERION_CLIENT_SECRET",
    ] {
        let file_var = format!("{var}_FILE");
        let path = file.path().display().to_string();
        let err = AerionBuilder::from_env_with(|name| {
            (name == var)
                .then(|| "both-set".to_owned())
                .or_else(|| (name == file_var).then(|| path.clone()))
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&format!("{var} and {file_var}")) && !err.contains("both-set"),
            "{err}"
        );
    }
}
