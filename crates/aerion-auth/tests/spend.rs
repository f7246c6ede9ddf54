//! What each token request spends: a rotating refresh token is sent once, and the configured
//! one counts as spent once it has been sent. Also the one token-type rule and the checks on
//! values that reach a header.

mod common;

use std::time::Duration;

use aerion_auth::{AerionBuilder, Tenant};
use common::*;
use serde_json::json;
use token_provider::testing::{assert_mocks, json_reply, token_text};
use token_provider::{Error, TokenProvider};

#[tokio::test]
async fn a_refresh_grant_is_not_repeated_after_a_gateway_error() {
    let mut server = mockito::Server::new_async().await;
    let refresh = refresh_answers(&mut server, "rt-1", 502, "<html>bad gateway</html>").await;
    let aerion = refresh_aerion(&server, "rt-1");
    let err = aerion.token().await.unwrap_err();
    assert_eq!(err.status(), Some(502), "{err:?}");
    refresh.assert_async().await;
}

#[tokio::test]
async fn the_configured_refresh_token_is_spent_once_sent_even_without_an_answer() {
    let mut server = mockito::Server::new_async().await;
    let refresh = refresh_answers(&mut server, "rt-1", 502, "").await;
    let password = password_issues(&mut server, "at-password", None).await;
    let clock = fixed_clock();
    let aerion = builder(&server, &clock)
        .refresh_token("rt-1")
        .username(USERNAME)
        .password(PASSWORD)
        .build()
        .unwrap();
    assert!(aerion.token().await.is_err());
    // Past any hold on the failure: the next fetch does not present rt-1 again (Aerion may have
    // rotated it before the answer was lost) and signs in with the password instead.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(token_text(&aerion).await, "at-password");
    assert_mocks(&[&refresh, &password]).await;
}

#[tokio::test]
async fn a_token_type_other_than_bearer_is_malformed_and_bearer_is_printed_as_bearer() {
    let mut server = mockito::Server::new_async().await;
    let mac = json_reply(
        token_mock(&mut server, password_form(USERNAME, PASSWORD)).expect(1),
        200,
        json!({"access_token": "at-mac", "token_type": "mac\u{1b}[31m", "expires_in": 3600})
            .to_string(),
    )
    .await;
    let aerion = password_aerion(&server);
    let err = aerion.token().await.unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(shown.contains("token_type"), "{shown}");
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
    assert!(!shown.contains("at-mac"), "{shown}");
    mac.assert_async().await;

    for spelling in ["bearer", "BEARER", "Bearer"] {
        let mut server = mockito::Server::new_async().await;
        let ok = password_answers(
            &mut server,
            200,
            json!({"access_token": "at-1", "token_type": spelling}),
        )
        .await;
        let aerion = password_aerion(&server);
        let token = aerion.token().await.unwrap();
        assert_eq!(token.token_type(), "Bearer", "{spelling}");
        ok.assert_async().await;
    }
}

#[test]
fn a_tenant_that_is_not_visible_ascii_is_refused() {
    for tenant in ["acmé.aerion.app", "acme .aerion.app", "acme\u{7f}"] {
        let err = AerionBuilder::new()
            .tenant(Tenant::CompanyUrl(tenant.to_owned()))
            .username(USERNAME)
            .password(PASSWORD)
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{tenant}: {err:?}");
        assert!(err.to_string().contains("AERION_COMPANY_URL"), "{err}");
    }
}

/// Set by the parent test for the child process it starts.
const CHILD: &str = "PARTNER_AUTH_TEST_CHILD";

#[test]
fn a_variable_that_is_not_utf8_is_named() {
    use std::os::unix::ffi::OsStrExt;
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_not_utf8",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env(
            "AERION_COMPANY_URL",
            std::ffi::OsStr::from_bytes(b"acme\xff.aerion.app"),
        )
        .env("AERION_ORIGIN", "https://acme.example")
        .env("AERION_USERNAME", USERNAME)
        .env("AERION_PASSWORD", PASSWORD)
        .status()
        .unwrap();
    assert!(status.success(), "the child test failed");
}

#[test]
fn child_not_utf8() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let err = AerionBuilder::from_env()
        .and_then(|b| b.build())
        .unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("AERION_COMPANY_URL"), "{shown}");
    assert!(shown.contains("not UTF-8"), "{shown}");
}
