//! `Aerion::me`: the bearer it sends, what it returns, and its one retry after a 401.

mod common;

use common::*;
use serde_json::json;
use token_provider::{Error, TokenProvider};

#[tokio::test]
async fn me_sends_the_bearer_and_returns_the_user() {
    let mut server = mockito::Server::new_async().await;
    let token = token_mock(&mut server, password_form(USERNAME, PASSWORD)).expect(1);
    let token = issue(token, "at-1", None).await;
    let me = server
        .mock("GET", "/v1/users/me")
        .match_header("authorization", "Bearer at-1")
        .match_header("accept", "application/json")
        .match_body("")
        .with_status(200)
        .with_header("content-type", "application/json")
        .with_body(json!({"id": 4711, "email": USERNAME, "firstName": "Ann"}).to_string())
        .expect(1)
        .create_async()
        .await;

    let aerion = builder(&server, &fixed_clock())
        .username(USERNAME)
        .password(PASSWORD)
        .build()
        .unwrap();
    let user = aerion.me().await.unwrap();
    assert_eq!(user.id, "4711");
    assert_eq!(user.email.as_deref(), Some(USERNAME));
    token.assert_async().await;
    me.assert_async().await;
}

#[tokio::test]
async fn me_retries_once_with_a_new_token_after_a_401() {
    let mut server = mockito::Server::new_async().await;
    let password = token_mock(&mut server, password_form(USERNAME, PASSWORD)).expect(1);
    let password = issue(password, "at-1", Some("rt-1")).await;
    // The rejected token is dropped, so the next one comes from the refresh grant.
    let refresh = token_mock(&mut server, refresh_form("rt-1")).expect(1);
    let refresh = issue(refresh, "at-2", Some("rt-2")).await;
    let rejected = server
        .mock("GET", "/v1/users/me")
        .match_header("authorization", "Bearer at-1")
        .with_status(401)
        .with_header("content-type", "application/json")
        .with_body(json!({"error": "invalid_token"}).to_string())
        .expect(1)
        .create_async()
        .await;
    let accepted = server
        .mock("GET", "/v1/users/me")
        .match_header("authorization", "Bearer at-2")
        .with_status(200)
        .with_header("content-type", "application/json")
        .with_body(json!({"id": "u-1", "email": USERNAME}).to_string())
        .expect(1)
        .create_async()
        .await;

    let aerion = builder(&server, &fixed_clock())
        .username(USERNAME)
        .password(PASSWORD)
        .build()
        .unwrap();
    let user = aerion.me().await.unwrap();
    assert_eq!(user.id, "u-1");
    // The new token is the cached one now.
    assert_eq!(
        aerion.token().await.unwrap().secret().expose_secret(),
        "at-2"
    );
    password.assert_async().await;
    refresh.assert_async().await;
    rejected.assert_async().await;
    accepted.assert_async().await;
}

#[tokio::test]
async fn a_second_401_is_a_rejection_after_exactly_one_retry() {
    let mut server = mockito::Server::new_async().await;
    let tokens = token_mock(&mut server, password_form(USERNAME, PASSWORD)).expect(2);
    let tokens = issue(tokens, "at-1", None).await;
    let me = server
        .mock("GET", "/v1/users/me")
        .match_header("authorization", "Bearer at-1")
        .with_status(401)
        .with_header("content-type", "application/json")
        .with_body(
            json!({"error": "unauthorized", "status": 401, "summary": "Token not valid", "raw": "RAW-X"})
                .to_string(),
        )
        .expect(2)
        .create_async()
        .await;

    let aerion = builder(&server, &fixed_clock())
        .username(USERNAME)
        .password(PASSWORD)
        .build()
        .unwrap();
    let err = aerion.me().await.unwrap_err();
    match &err {
        Error::Rejected {
            status,
            code,
            description,
            ..
        } => {
            assert_eq!(*status, Some(401));
            assert_eq!(code.as_deref(), Some("unauthorized"));
            assert_eq!(description.as_deref(), Some("Token not valid"));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(!format!("{err} {err:?}").contains("RAW-X"));
    tokens.assert_async().await;
    me.assert_async().await;
}
