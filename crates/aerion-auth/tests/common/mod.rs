//! Helpers shared by this crate's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aerion_auth::{Aerion, AerionBuilder};
use mockito::{Matcher, Mock, ServerGuard};
use token_provider::{HttpClient, ManualClock};

pub const TENANT: &str = "acme.aerion.app";
pub const USERNAME: &str = "me@acme.example";
pub const PASSWORD: &str = "pw-Sup3r-s3cret";
pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "cs-very-secret";

pub fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

pub fn clock() -> ManualClock {
    ManualClock::new(start())
}

/// A client with a short timeout and millisecond backoffs, so tests stay fast.
pub fn http() -> HttpClient {
    token_provider::testing::fast_http(Duration::from_secs(5))
}

/// A builder pointed at `server`, with the `companyurl` tenant and explicit client credentials.
pub fn builder(server: &ServerGuard, clock: &ManualClock) -> AerionBuilder {
    Aerion::builder()
        .base_url(server.url())
        .http_client(http())
        .clock(Arc::new(clock.clone()))
        .company_url(TENANT)
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
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

/// Exactly these form fields: each one present with its value, and no other.
pub fn form(fields: &[(&str, &str)]) -> Matcher {
    let mut all: Vec<Matcher> = fields
        .iter()
        .map(|(k, v)| Matcher::UrlEncoded((*k).to_owned(), (*v).to_owned()))
        .collect();
    all.push(Matcher::Regex(format!(
        "^[^&]+(&[^&]+){{{}}}$",
        fields.len() - 1
    )));
    Matcher::AllOf(all)
}

pub fn password_form(username: &str, password: &str) -> Matcher {
    form(&[
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ])
}

pub fn refresh_form(refresh_token: &str) -> Matcher {
    form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ])
}

/// A `POST /oauth2/token` expectation with the headers every token request must carry.
pub fn token_mock(server: &mut ServerGuard, body: Matcher) -> Mock {
    server
        .mock("POST", "/oauth2/token")
        .match_header("content-type", "application/x-www-form-urlencoded")
        .match_header("companyurl", TENANT)
        .match_header("origin", Matcher::Missing)
        .match_header("referrer", Matcher::Missing)
        // Client credentials travel in the form, never in a Basic header.
        .match_header("authorization", Matcher::Missing)
        .match_body(body)
}

/// A successful token answer to `mock`.
pub async fn issue(mock: Mock, access_token: &str, refresh_token: Option<&str>) -> Mock {
    mock.with_status(200)
        .with_header("content-type", "application/json")
        .with_body(token_body(access_token, refresh_token))
        .create_async()
        .await
}

/// An error answer to `mock`.
pub async fn refuse(mock: Mock, status: usize, body: serde_json::Value) -> Mock {
    mock.with_status(status)
        .with_header("content-type", "application/json")
        .with_body(body.to_string())
        .create_async()
        .await
}
