//! The one token-type rule: a bearer in any case, anything else `Malformed` with the provider's
//! word stripped of control characters; and `Bearer` printed whatever the case sent.

mod common;

use common::*;
use token_provider::testing::{assert_mocks, bearer_mock, json_reply, reply, token_text};
use token_provider::{Error, TokenProvider};

#[tokio::test]
async fn a_token_type_with_terminal_escapes_is_refused_without_them() {
    let mut server = mockito::Server::new_async().await;
    let (_d, _j) = mock_discovery(&mut server, 1).await;
    let body = serde_json::json!({
        "access_token": "at-esc",
        "token_type": "\u{1b}]0;pwned\u{7}\u{1b}[2J",
        "expires_in": 60
    })
    .to_string();
    let _t = mock_token_basic(&mut server, "/oauth/token", 200, &body, 1).await;
    let aurora = builder(&server).build().unwrap();
    let err = aurora.token().await.unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    let shown = format!("{err}");
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
    assert!(!shown.contains("at-esc"), "{shown}");
}

#[tokio::test]
async fn bearer_in_any_case_is_printed_as_bearer() {
    for spelling in ["bearer", "BEARER"] {
        let mut server = mockito::Server::new_async().await;
        let (_d, _j) = mock_discovery(&mut server, 1).await;
        let body = serde_json::json!({
            "access_token": "at-1",
            "token_type": spelling,
            "expires_in": 60
        })
        .to_string();
        let _t = mock_token_basic(&mut server, "/oauth/token", 200, &body, 1).await;
        let aurora = builder(&server).build().unwrap();
        let token = aurora.token().await.unwrap();
        assert_eq!(token.token_type(), "Bearer", "{spelling}");
    }
}

#[tokio::test]
async fn aurora_uk_client_auth_post_sends_the_credentials_as_form_fields() {
    let mut server = mockito::Server::new_async().await;
    let (_d, _j) = mock_discovery(&mut server, 1).await;
    let token = json_reply(
        server
            .mock("POST", "/oauth/token")
            .match_header("authorization", mockito::Matcher::Missing)
            .match_request(post_form(CLIENT_ID, AUDIENCE))
            .expect(1),
        200,
        token_body("at-post", 3600),
    )
    .await;
    let issuer = issuer(&server);
    let vars = move |name: &str| {
        match name {
            "AURORA_UK_ENV" => Some("dev"),
            "AURORA_UK_ISSUER" => Some(issuer.as_str()),
            "AURORA_UK_CLIENT_ID" => Some(CLIENT_ID),
            "AURORA_UK_CLIENT_SECRET" => Some(CLIENT_SECRET),
            "AURORA_UK_CLIENT_AUTH" => Some("post"),
            _ => None,
        }
        .map(str::to_owned)
    };
    let aurora = aurora_uk_auth::AuroraUkBuilder::from_env_with(vars)
        .unwrap()
        .http_client(http_client())
        .build()
        .unwrap();
    assert_eq!(token_text(&aurora).await, "at-post");
    token.assert_async().await;

    let bad = |name: &str| match name {
        "AURORA_UK_ENV" => Some("dev".to_owned()),
        "AURORA_UK_CLIENT_ID" | "AURORA_UK_CLIENT_SECRET" => Some("x".to_owned()),
        "AURORA_UK_CLIENT_AUTH" => Some("digest".to_owned()),
        _ => None,
    };
    let err = aurora_uk_auth::AuroraUkBuilder::from_env_with(bad).unwrap_err();
    assert!(err.to_string().contains("AURORA_UK_CLIENT_AUTH"), "{err}");
}

#[tokio::test]
async fn send_attaches_the_token_only_to_the_api_origin() {
    let mut server = mockito::Server::new_async().await;
    let mut storage = mockito::Server::new_async().await;
    let (_d, _j) = mock_discovery(&mut server, 1).await;
    let _t = token_issued_for(&mut server, "at-api", 3600, 1).await;
    let api = reply(
        bearer_mock(&mut server, "GET", "/api/Accounts", "at-api").expect(1),
        200,
        "",
    )
    .await;
    let presigned = reply(
        storage
            .mock("GET", "/bucket/report.pdf")
            .match_header("authorization", mockito::Matcher::Missing)
            .expect(1),
        200,
        "",
    )
    .await;
    let aurora = builder(&server)
        .api_base(format!("{}/api/", server.url()))
        .build()
        .unwrap();
    let url = format!("{}/api/Accounts", server.url());
    assert_eq!(aurora.send(|c| c.get(&url)).await.unwrap().status(), 200);
    let link = format!("{}/bucket/report.pdf", storage.url());
    assert_eq!(aurora.send(|c| c.get(&link)).await.unwrap().status(), 200);
    assert_mocks(&[&api, &presigned]).await;
}
