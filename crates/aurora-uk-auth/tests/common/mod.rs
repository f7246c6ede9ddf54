//! Shared test fixtures: an Auth0-shaped tenant on a mockito server.

#![allow(dead_code, unreachable_pub, unused_imports)]

use std::sync::Arc;
use std::time::Duration;

use aurora_uk_auth::{AuroraUk, AuroraUkBuilder, Environment};
use mockito::{Matcher, Mock, ServerGuard};
use partner_auth_emulator::aurora_uk_discovery;
use token_provider::testing::reply;
pub use token_provider::testing::{epoch, fixed_clock, http_client};
use token_provider::{CacheConfig, ManualClock};

pub const CLIENT_ID: &str = "client-id-dev";
/// Characters that form-encoding changes, so the Basic header's encoding is checked too.
pub const CLIENT_SECRET: &str = "s3cr3t/with+chars&=";
/// base64("client-id-dev:" + form-urlencoded secret), per RFC 6749 section 2.3.1.
pub const BASIC: &str = "Basic Y2xpZW50LWlkLWRldjpzM2NyM3QlMkZ3aXRoJTJCY2hhcnMlMjYlM0Q=";
pub const AUDIENCE: &str = "https://dev.client.integration.aurora.co.uk";

/// The issuer the mock server stands for: its URL with Auth0's trailing `/`.
pub fn issuer(server: &ServerGuard) -> String {
    format!("{}/", server.url())
}

pub const JWKS: &str = r#"{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"test-key-1","n":"wJyz0-6MhPl6cKWHLDh7rcDRDI2k9HNWl5cLQDjHtAHt3NrH5AsImBR0DgJsNAN0XJ2iZGGNzzqlnSUrwGaTB2wxEpSuJ3ZQAZvIRq0dPu2EVGT1cfR_6fuJu2DbMG1s7nPvPnvZsYW8JORn6M5Jc0EDHLH9D-9tnBfpYx19yNQP2QawK6xvaVmUZIHtFw0CIOAPB84PmMgE56vVm8F8-BZtq6C3Hv2bo8nA1uRW-j4D2wnRxWVrDt5QKXy-VPB8CVWGyRa64RXLF9fHaILTEkT5xvPwcv6i-dXvCShsVc2Fc-Yc6HbH5r4WfJXomqsJPuzugeLazvm9FDAZd4KUNw","e":"AQAB"}]}"#;

/// Mocks discovery and the JWKS, each expected `times` times.
pub async fn mock_discovery(server: &mut ServerGuard, times: usize) -> (Mock, Mock) {
    mock_discovery_with(server, times, &issuer(server), "/oauth/token").await
}

pub async fn mock_discovery_with(
    server: &mut ServerGuard,
    times: usize,
    doc_issuer: &str,
    token_path: &str,
) -> (Mock, Mock) {
    let doc = aurora_uk_discovery(doc_issuer, &server.url(), token_path).to_string();
    let discovery = reply(
        server
            .mock("GET", "/.well-known/openid-configuration")
            .match_header("accept", "application/json")
            .match_header("authorization", Matcher::Missing)
            .match_body(Matcher::Exact(String::new()))
            .with_header("content-type", "application/json; charset=utf-8")
            .expect(times),
        200,
        doc,
    )
    .await;
    let jwks = reply(
        server
            .mock("GET", "/.well-known/jwks.json")
            .match_header("accept", "application/json")
            .match_header("authorization", Matcher::Missing)
            .with_header("content-type", "application/json; charset=utf-8")
            .expect(times),
        200,
        JWKS,
    )
    .await;
    (discovery, jwks)
}

/// An Auth0 token response.
pub fn token_body(token: &str, expires_in: u64) -> String {
    serde_json::json!({
        "access_token": token,
        "expires_in": expires_in,
        "token_type": "Bearer"
    })
    .to_string()
}

/// A request matcher: the body holds exactly `expected` (no other field: no scope, no stray
/// credential).
pub fn exact_form(expected: &[(&str, &str)]) -> impl Fn(&mockito::Request) -> bool + use<> {
    let exact = token_provider::testing::exact_form(expected);
    move |request: &mockito::Request| request.body().is_ok_and(|body| exact(body))
}

/// The token endpoint (`POST /oauth/token`) matched only with Basic client authentication and
/// exactly the client credentials form for `audience`.
pub fn basic_token_mock(server: &mut ServerGuard, audience: &str) -> Mock {
    let mock = server.mock("POST", "/oauth/token");
    let mock = mock.match_header("authorization", BASIC);
    mock.match_request(basic_form(audience))
}

/// The discovery document's endpoint (`GET /.well-known/openid-configuration`).
pub fn discovery_mock(server: &mut ServerGuard) -> Mock {
    server.mock("GET", "/.well-known/openid-configuration")
}

/// The client credentials form for `audience` with Basic client authentication: no
/// credential in the body.
pub fn basic_form(audience: &str) -> impl Fn(&mockito::Request) -> bool + use<> {
    exact_form(&[("grant_type", "client_credentials"), ("audience", audience)])
}

/// The client credentials form for `audience` with the client's id and secret in the body.
pub fn post_form(client_id: &str, audience: &str) -> impl Fn(&mockito::Request) -> bool + use<> {
    exact_form(&[
        ("grant_type", "client_credentials"),
        ("audience", audience),
        ("client_id", client_id),
        ("client_secret", CLIENT_SECRET),
    ])
}

/// The discovery document alone, naming the token endpoint at `token_path`, expected `times`
/// times.
pub async fn mock_document(server: &mut ServerGuard, token_path: &str, times: usize) -> Mock {
    let doc = aurora_uk_discovery(&issuer(server), &server.url(), token_path);
    let mock = server.mock("GET", "/.well-known/openid-configuration");
    token_provider::testing::json_reply(mock.expect(times), 200, doc).await
}

/// The JWKS alone, expected `times` times.
pub async fn mock_jwks(server: &mut ServerGuard, times: usize) -> Mock {
    let mock = server.mock("GET", "/.well-known/jwks.json");
    token_provider::testing::json_reply(mock.expect(times), 200, JWKS).await
}

/// A mock of the token endpoint for Basic client authentication, answering `status` with
/// `body`, expected `times` times. It matches only the exact request Aurora UK expects.
pub async fn mock_token_basic(
    server: &mut ServerGuard,
    path: &str,
    status: usize,
    body: &str,
    times: usize,
) -> Mock {
    let mock = server
        .mock("POST", path)
        .match_header("authorization", BASIC)
        .match_header("content-type", "application/x-www-form-urlencoded")
        .match_header("accept", "application/json")
        .match_body(Matcher::AllOf(vec![
            Matcher::UrlEncoded("grant_type".into(), "client_credentials".into()),
            Matcher::UrlEncoded("audience".into(), AUDIENCE.into()),
        ]))
        .match_request(basic_form(AUDIENCE));
    token_provider::testing::json_reply(mock.expect(times), status, body).await
}

/// The token endpoint (`/oauth/token`, Basic client authentication) answering `times` times
/// with `access_token`, good for a day.
pub async fn token_issued(server: &mut ServerGuard, access_token: &str, times: usize) -> Mock {
    token_issued_for(server, access_token, 86400, times).await
}

/// [`token_issued`], with a token good for `expires_in` seconds.
pub async fn token_issued_for(
    server: &mut ServerGuard,
    access_token: &str,
    expires_in: u64,
    times: usize,
) -> Mock {
    let body = token_body(access_token, expires_in);
    mock_token_basic(server, "/oauth/token", 200, &body, times).await
}

/// A builder pointed at the mock server as the Dev environment's issuer.
pub fn builder(server: &ServerGuard) -> AuroraUkBuilder {
    AuroraUk::builder()
        .environment(Environment::Dev)
        .issuer(issuer(server))
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .http_client(http_client())
}

/// A builder on a manual clock, with the cache's waits short.
pub fn builder_with_clock(server: &ServerGuard, clock: &ManualClock) -> AuroraUkBuilder {
    builder(server)
        .clock(Arc::new(clock.clone()))
        .cache_config(CacheConfig::new().negative_ttl(Duration::from_millis(1)))
}
