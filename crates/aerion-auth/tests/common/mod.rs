//! Helpers shared by this crate's integration tests.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::sync::Arc;

use aerion_auth::{Aerion, AerionBuilder};
use mockito::{Matcher, Mock, ServerGuard};
use token_provider::ManualClock;
pub use token_provider::testing::{epoch, fixed_clock, http_client};

pub const TENANT: &str = "acme.aerion.app";
pub const USERNAME: &str = "me@acme.example";
pub const PASSWORD: &str = "pw-Sup3r-s3cret";
pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "cs-very-secret";

/// A builder pointed at `server`, with the `companyurl` tenant and explicit client credentials.
pub fn builder(server: &ServerGuard, clock: &ManualClock) -> AerionBuilder {
    Aerion::builder()
        .base_url(server.url())
        .http_client(http_client())
        .clock(Arc::new(clock.clone()))
        .company_url(TENANT)
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
}

/// A provider on `server` with the password grant, on a fixed clock.
pub fn password_aerion(server: &ServerGuard) -> Aerion {
    builder(server, &fixed_clock())
        .username(USERNAME)
        .password(PASSWORD)
        .build()
        .unwrap()
}

/// A provider on `server` seeded with `refresh_token` alone, on a fixed clock.
pub fn refresh_aerion(server: &ServerGuard, refresh_token: &str) -> Aerion {
    builder(server, &fixed_clock())
        .refresh_token(refresh_token)
        .build()
        .unwrap()
}

/// A token response as Aerion sends it: lowercase `bearer`, `expires_in` as a string, and a
/// field nobody asked for.
pub fn token_body(access_token: &str, refresh_token: Option<&str>) -> String {
    let mut body = serde_json::json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": "3600",
        "userName": USERNAME,
    });
    if let Some(rt) = refresh_token {
        body["refresh_token"] = rt.into();
    }
    body.to_string()
}

/// A request matcher: the body holds exactly these form fields, each with its value, and no other.
pub fn form(fields: &[(&str, &str)]) -> impl Fn(&mockito::Request) -> bool + Send + Sync + use<> {
    let exact = token_provider::testing::exact_form(fields);
    move |request: &mockito::Request| request.body().is_ok_and(|body| exact(body))
}

pub fn password_form(
    username: &str,
    password: &str,
) -> impl Fn(&mockito::Request) -> bool + Send + Sync + use<> {
    form(&[
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ])
}

pub fn refresh_form(
    refresh_token: &str,
) -> impl Fn(&mockito::Request) -> bool + Send + Sync + use<> {
    form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ])
}

/// A `POST /oauth2/token` expectation with the headers every token request must carry.
pub fn token_mock(
    server: &mut ServerGuard,
    body: impl Fn(&mockito::Request) -> bool + Send + Sync + 'static,
) -> Mock {
    server
        .mock("POST", "/oauth2/token")
        .match_header("content-type", "application/x-www-form-urlencoded")
        .match_header("companyurl", TENANT)
        .match_header("origin", Matcher::Missing)
        .match_header("referrer", Matcher::Missing)
        // Client credentials travel in the form, never in a Basic header.
        .match_header("authorization", Matcher::Missing)
        .match_request(body)
}

/// A successful token answer to `mock`.
pub async fn issue(mock: Mock, access_token: &str, refresh_token: Option<&str>) -> Mock {
    mock.with_status(200)
        .with_header("content-type", "application/json")
        .with_body(token_body(access_token, refresh_token))
        .create_async()
        .await
}

/// The password grant of [`USERNAME`] and [`PASSWORD`], expected once and answered with
/// `access_token` (and `refresh_token`).
pub async fn password_issues(
    server: &mut ServerGuard,
    access_token: &str,
    refresh_token: Option<&str>,
) -> Mock {
    let mock = token_mock(server, password_form(USERNAME, PASSWORD)).expect(1);
    issue(mock, access_token, refresh_token).await
}

/// The refresh grant presenting `presented`, expected once and answered with `access_token`
/// (and `refresh_token`).
pub async fn refresh_issues(
    server: &mut ServerGuard,
    presented: &str,
    access_token: &str,
    refresh_token: Option<&str>,
) -> Mock {
    let mock = token_mock(server, refresh_form(presented)).expect(1);
    issue(mock, access_token, refresh_token).await
}

/// The password grant of [`USERNAME`] and [`PASSWORD`], expected once and answered with
/// `status` and the JSON `body`.
pub async fn password_answers(
    server: &mut ServerGuard,
    status: usize,
    body: serde_json::Value,
) -> Mock {
    let mock = token_mock(server, password_form(USERNAME, PASSWORD)).expect(1);
    token_provider::testing::json_reply(mock, status, body).await
}

/// The refresh grant presenting `presented`, expected once and answered with `status` and
/// `body` as they are.
pub async fn refresh_answers(
    server: &mut ServerGuard,
    presented: &str,
    status: usize,
    body: &str,
) -> Mock {
    let mock = token_mock(server, refresh_form(presented)).expect(1);
    token_provider::testing::reply(mock, status, body).await
}

/// The token request `form` matches, expected `times` times and refused with `status` and the
/// JSON `body`.
pub async fn refused(
    server: &mut ServerGuard,
    form: impl Fn(&mockito::Request) -> bool + Send + Sync + 'static,
    times: usize,
    status: usize,
    body: serde_json::Value,
) -> Mock {
    refuse(token_mock(server, form).expect(times), status, body).await
}

/// The token request `form` matches, expected `times` times and refused as Aerion refuses a
/// dead grant: 400 `invalid_grant`.
pub async fn invalid_grant(
    server: &mut ServerGuard,
    form: impl Fn(&mockito::Request) -> bool + Send + Sync + 'static,
    times: usize,
) -> Mock {
    let body = serde_json::json!({"error": "invalid_grant"});
    refused(server, form, times, 400, body).await
}

/// An error answer to `mock`.
pub async fn refuse(mock: Mock, status: usize, body: serde_json::Value) -> Mock {
    mock.with_status(status)
        .with_header("content-type", "application/json")
        .with_body(body.to_string())
        .create_async()
        .await
}

/// `GET /v1/users/me` with `token` as bearer, expected `times` times and answered `status`
/// with the JSON `body`.
pub async fn me_answers(
    server: &mut ServerGuard,
    token: &str,
    times: usize,
    status: usize,
    body: serde_json::Value,
) -> Mock {
    let mock = token_provider::testing::bearer_mock(server, "GET", "/v1/users/me", token);
    token_provider::testing::json_reply(mock.expect(times), status, body).await
}
