//! `AuroraUk::send`: the token attached to API calls, and one retry after a 401.

mod common;

use aurora_uk_auth::AuroraUk;
use common::*;
use mockito::{Matcher, ServerGuard};
use token_provider::Error;
use token_provider::testing::{assert_mocks, bearer_mock, reply};

/// A provider whose API base is the mock server too.
async fn provider(server: &mut ServerGuard) -> AuroraUk {
    let _ = mock_discovery(server, 1).await;
    builder(server).api_base(server.url()).build().unwrap()
}

fn accounts(aurora: &AuroraUk) -> url::Url {
    aurora.api_base().join("Accounts").unwrap()
}

/// `GET /Accounts` with `token` as bearer, expected `times` times and answered `status` with
/// `body`.
async fn accounts_answer(
    server: &mut ServerGuard,
    token: &str,
    times: usize,
    status: usize,
    body: &str,
) -> mockito::Mock {
    let mock = bearer_mock(server, "GET", "/Accounts", token).expect(times);
    reply(mock, status, body).await
}

/// A provider that sends its token in `Authentication` (API base on the mock server), the
/// token endpoint issuing `token` once, and `GET /Accounts` expecting it there and no
/// `Authorization` at all, once, answered 200 with `body`: the provider, the token mock and
/// the API mock.
async fn in_authentication(
    server: &mut ServerGuard,
    token: &str,
    body: &str,
) -> (AuroraUk, mockito::Mock, mockito::Mock) {
    let _ = mock_discovery(server, 1).await;
    let issued = token_issued(server, token, 1).await;
    let bearer = format!("Bearer {token}");
    let api = server.mock("GET", "/Accounts").expect(1);
    let api = api.match_header("authentication", bearer.as_str());
    let api = reply(
        api.match_header("authorization", Matcher::Missing),
        200,
        body,
    )
    .await;
    let builder = builder(server).api_base(server.url());
    let aurora = builder.auth_header_name("Authentication").build().unwrap();
    (aurora, issued, api)
}

/// `GET {api base}/Accounts` through `send`.
async fn get_accounts(aurora: &AuroraUk) -> reqwest::Response {
    let url = accounts(aurora);
    aurora.send(|c| c.get(url.clone())).await.unwrap()
}

#[tokio::test]
async fn send_attaches_the_cached_token_as_a_bearer() {
    let mut server = mockito::Server::new_async().await;
    let (discovery, _jwks) = mock_discovery(&mut server, 1).await;
    let token = token_issued(&mut server, "at-api-1", 1).await;
    let api = reply(
        server
            .mock("GET", "/Accounts")
            .match_query(Matcher::UrlEncoded("orderBy".into(), "id asc".into()))
            .match_header("authorization", "Bearer at-api-1")
            .expect(2),
        200,
        "[]",
    )
    .await;
    let aurora = builder(&server).api_base(server.url()).build().unwrap();
    let mut url = accounts(&aurora);
    url.query_pairs_mut().append_pair("orderBy", "id asc");
    for _ in 0..2 {
        let response = aurora.send(|client| client.get(url.clone())).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "[]");
    }
    assert_mocks(&[&api, &token, &discovery]).await;
}

#[tokio::test]
async fn a_401_invalidates_that_token_and_retries_once_with_a_new_one() {
    let mut server = mockito::Server::new_async().await;
    let aurora = provider(&mut server).await;
    let first = token_issued(&mut server, "at-stale", 1).await;
    let second = token_issued(&mut server, "at-fresh", 1).await;
    let refused = accounts_answer(&mut server, "at-stale", 1, 401, "").await;
    let accepted = accounts_answer(&mut server, "at-fresh", 1, 200, "[]").await;

    assert_eq!(get_accounts(&aurora).await.status(), 200);
    assert_mocks(&[&refused, &accepted, &first, &second]).await;
    // The new token is the cached one now.
    assert_eq!(aurora.stats().fetches, 2);
}

#[tokio::test]
async fn a_second_401_is_returned_not_retried_again() {
    let mut server = mockito::Server::new_async().await;
    let aurora = provider(&mut server).await;
    let token = token_issued(&mut server, "at-never-ok", 2).await;
    let refused = accounts_answer(&mut server, "at-never-ok", 2, 401, "").await;
    assert_eq!(get_accounts(&aurora).await.status(), 401);
    assert_mocks(&[&refused, &token]).await;
}

#[tokio::test]
async fn other_failures_are_not_retried() {
    let mut server = mockito::Server::new_async().await;
    let aurora = provider(&mut server).await;
    let token = token_issued(&mut server, "at-403", 1).await;
    let forbidden = reply(server.mock("GET", "/Accounts").expect(1), 403, "").await;
    assert_eq!(get_accounts(&aurora).await.status(), 403);
    assert_mocks(&[&forbidden, &token]).await;
}

#[tokio::test]
async fn the_header_name_can_be_authentication() {
    let mut server = mockito::Server::new_async().await;
    let (aurora, _token, api) = in_authentication(&mut server, "at-hdr", "").await;
    assert_eq!(get_accounts(&aurora).await.status(), 200);
    api.assert_async().await;
}

#[tokio::test]
async fn a_plain_http_api_url_is_refused_before_sending() {
    let mut server = mockito::Server::new_async().await;
    let aurora = provider(&mut server).await;
    let _token = token_issued(&mut server, "at-http", 1).await;
    let err = aurora
        .send(|c| c.get("http://api.example/Accounts"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("https"), "{err}");
}

/// `auth_header()` hands the configured header to the core's middleware, so a client of the
/// user's own sends the token where `send` does (`Authentication` here), and nowhere else.
#[tokio::test]
async fn the_middleware_sends_the_token_in_the_configured_header() {
    use std::sync::Arc;

    use token_provider::auth::AuthMiddleware;

    let mut server = mockito::Server::new_async().await;
    let (aurora, token, api) = in_authentication(&mut server, "at-own-client", "[]").await;
    assert_eq!(aurora.auth_header().name().as_str(), "authentication");
    let middleware = AuthMiddleware::new(Arc::new(aurora.clone()), aurora.auth_scope())
        .header(aurora.auth_header().clone());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let client = reqwest_middleware::ClientBuilder::new(client)
        .with(middleware)
        .build();
    let response = client.get(accounts(&aurora)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "[]");
    api.assert_async().await;
    token.assert_async().await;
}
