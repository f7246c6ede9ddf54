//! A server that echoes the credential it refused: the password, the refresh token and the client
//! secret are cut out of the error's words (`[redacted]`), in both of Aerion's error shapes, in
//! the oauth2 path and in `me`.

mod common;

use common::*;
use serde_json::json;
use token_provider::testing::{assert_mocks, rejection};
use token_provider::{Error, TokenProvider};

/// The error's `Display` and `Debug`, checked for every secret, and the description returned.
fn shown_without(err: &Error, secrets: &[&str]) -> String {
    let shown = format!("{err} {err:?}");
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("[redacted]"), "{shown}");
    shown
}

#[tokio::test]
async fn an_echoed_password_and_client_secret_are_redacted() {
    let mut server = mockito::Server::new_async().await;
    let mock = refused(
        &mut server,
        password_form(USERNAME, PASSWORD),
        1,
        401,
        json!({
            "error": "invalid_grant",
            "error_description": format!(
                "password {PASSWORD} is wrong for {USERNAME} (client secret {CLIENT_SECRET})"
            ),
        }),
    )
    .await;
    let aerion = password_aerion(&server);
    let err = aerion.token().await.unwrap_err();
    mock.assert_async().await;
    shown_without(&err, &[PASSWORD, CLIENT_SECRET]);
    assert_eq!(
        err.to_string(),
        format!(
            "credentials rejected (HTTP 401): invalid_grant: password [redacted] is wrong for \
             {USERNAME} (client secret [redacted])"
        )
    );
}

#[tokio::test]
async fn an_echoed_refresh_token_is_redacted_in_the_summary_shape() {
    let mut server = mockito::Server::new_async().await;
    // A 403 is a refusal but not of the refresh token itself: no password fallback, the error
    // is returned as it is.
    let mock = refused(
        &mut server,
        refresh_form("rt-ECHOED-123"),
        1,
        403,
        json!({
            "error": "access_denied rt-ECHOED-123",
            "status": 403,
            "summary": "refresh token rt-ECHOED-123 belongs to another tenant",
            "raw": "RAW rt-ECHOED-123",
        }),
    )
    .await;
    let aerion = refresh_aerion(&server, "rt-ECHOED-123");
    let err = aerion.token().await.unwrap_err();
    mock.assert_async().await;
    let shown = shown_without(&err, &["rt-ECHOED-123", "RAW"]);
    assert_eq!(
        rejection(&err),
        (
            Some(403),
            Some("access_denied [redacted]"),
            Some("refresh token [redacted] belongs to another tenant")
        ),
        "{shown}"
    );
}

#[tokio::test]
async fn an_echo_in_an_error_that_oauth2_cannot_parse_is_redacted() {
    // A `{"message"}` body on a 4xx: read leniently by the core, still scrubbed.
    let mut server = mockito::Server::new_async().await;
    let mock = password_answers(
        &mut server,
        400,
        json!({"message": format!("bad password {PASSWORD}")}),
    )
    .await;
    let aerion = password_aerion(&server);
    let err = aerion.token().await.unwrap_err();
    mock.assert_async().await;
    shown_without(&err, &[PASSWORD]);
    assert_eq!(
        err.to_string(),
        "credentials rejected (HTTP 400): bad password [redacted]"
    );
}

#[tokio::test]
async fn an_echo_from_me_is_redacted() {
    let mut server = mockito::Server::new_async().await;
    let token = password_issues(&mut server, "at-1", None).await;
    let me = me_answers(
        &mut server,
        "at-1",
        1,
        403,
        json!({"error": "forbidden", "error_description": format!("{PASSWORD} is not allowed")}),
    )
    .await;
    let aerion = password_aerion(&server);
    let err = aerion.me().await.unwrap_err();
    assert_mocks(&[&token, &me]).await;
    shown_without(&err, &[PASSWORD]);
    assert_eq!(
        err.to_string(),
        "credentials rejected (HTTP 403): forbidden: [redacted] is not allowed"
    );
}
