//! `Aerion::me`: the bearer it sends, what it returns, and its one retry after a 401.

mod common;

use common::*;
use serde_json::json;
use token_provider::testing::{assert_mocks, bearer_mock, json_reply, rejection, token_text};

#[tokio::test]
async fn me_sends_the_bearer_and_returns_the_user() {
    let mut server = mockito::Server::new_async().await;
    let token = password_issues(&mut server, "at-1", None).await;
    let me = json_reply(
        bearer_mock(&mut server, "GET", "/v1/users/me", "at-1")
            .match_header("accept", "application/json")
            .match_body("")
            .expect(1),
        200,
        json!({"id": 4711, "email": USERNAME, "firstName": "Ann"}),
    )
    .await;

    let aerion = password_aerion(&server);
    let user = aerion.me().await.unwrap();
    assert_eq!(user.id, "4711");
    assert_eq!(user.email.as_deref(), Some(USERNAME));
    assert_mocks(&[&token, &me]).await;
}

#[tokio::test]
async fn me_retries_once_with_a_new_token_after_a_401() {
    let mut server = mockito::Server::new_async().await;
    let password = password_issues(&mut server, "at-1", Some("rt-1")).await;
    // The rejected token is dropped, so the next one comes from the refresh grant.
    let refresh = refresh_issues(&mut server, "rt-1", "at-2", Some("rt-2")).await;
    let rejected = me_answers(
        &mut server,
        "at-1",
        1,
        401,
        json!({"error": "invalid_token"}),
    )
    .await;
    let accepted = me_answers(
        &mut server,
        "at-2",
        1,
        200,
        json!({"id": "u-1", "email": USERNAME}),
    )
    .await;

    let aerion = password_aerion(&server);
    let user = aerion.me().await.unwrap();
    assert_eq!(user.id, "u-1");
    // The new token is the cached one now.
    assert_eq!(token_text(&aerion).await, "at-2");
    assert_mocks(&[&password, &refresh, &rejected, &accepted]).await;
}

#[tokio::test]
async fn a_second_401_is_a_rejection_after_exactly_one_retry() {
    let mut server = mockito::Server::new_async().await;
    let tokens = token_mock(&mut server, password_form(USERNAME, PASSWORD)).expect(2);
    let tokens = issue(tokens, "at-1", None).await;
    let me = me_answers(
        &mut server,
        "at-1",
        2,
        401,
        json!({"error": "unauthorized", "status": 401, "summary": "Token not valid", "raw": "RAW-X"}),
    )
    .await;

    let aerion = password_aerion(&server);
    let err = aerion.me().await.unwrap_err();
    assert_eq!(
        rejection(&err),
        (Some(401), Some("unauthorized"), Some("Token not valid"))
    );
    assert!(!format!("{err} {err:?}").contains("RAW-X"));
    assert_mocks(&[&tokens, &me]).await;
}
