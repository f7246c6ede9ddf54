//! Helpers shared by this crate's integration tests.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::io::Read;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aurora_solar_auth::{ClientSdk, ClientSdkBuilder, PartnerApp, PartnerAppBuilder};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mockito::{Matcher, Mock, ServerGuard};
use serde_json::json;
use token_provider::ManualClock;
use token_provider::testing::reply;
pub use token_provider::testing::{fast_http, http_client};

/// The partner application's key (sandbox-shaped).
pub const APP_KEY: &str = "sk_sand_appkey_0001";
/// The Client SDK's REST API key (sandbox-shaped).
pub const API_KEY: &str = "sk_sand_restkey_0002";
/// The backend and embedded exchange of `app-1` for tenant `t1`.
pub const PATH_T1: &str = "/partner_applications/app-1/tenants/t1/create_token";
/// The user list of tenant `t1`.
pub const USERS: &str = "/tenants/t1/users";

/// `2023-07-29 04:30:46 UTC`, the seed's `expires_at`.
pub const SEED_EXPIRES_AT: u64 = 1_690_605_046;

/// Thirteen hours before the seed's `expires_at`: when such a key would have been issued.
pub fn issue_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(SEED_EXPIRES_AT - 13 * 3600)
}

pub fn clock() -> ManualClock {
    ManualClock::new(issue_time())
}

/// A `create_token` answer.
pub fn key_body(key: &str, expires_at: &str) -> String {
    format!(r#"{{"token":{{"bearer_token":"{key}","expires_at":"{expires_at}"}}}}"#)
}

/// A server that accepts connections, records the first bytes of each request, and never
/// answers. Returns its base URL and the requests seen so far.
pub fn silent_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let record = Arc::clone(&record);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                record
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                // Hold the connection open without a word until the client gives up.
                std::thread::sleep(Duration::from_secs(5));
                drop(stream);
            });
        }
    });
    (format!("http://{addr}"), seen)
}

/// A partner app `app-1` on `base`, with [`APP_KEY`], the test client and `clock`.
pub fn app_builder(base: impl Into<String>, clock: &ManualClock) -> PartnerAppBuilder {
    PartnerApp::builder()
        .base_url(base)
        .application_id("app-1")
        .application_key(APP_KEY)
        .http_client(http_client())
        .clock(Arc::new(clock.clone()))
}

/// A Client SDK for tenant `t1` on `base`, with [`API_KEY`], the test client and `clock`.
pub fn sdk_builder(base: impl Into<String>, clock: &ManualClock) -> ClientSdkBuilder {
    ClientSdk::builder()
        .base_url(base)
        .api_key(API_KEY)
        .tenant_id("t1")
        .http_client(http_client())
        .clock(Arc::new(clock.clone()))
}

/// The backend exchange: POST, the path, the application key as bearer, no query at all.
pub fn backend_mock(server: &mut ServerGuard, path: &str) -> Mock {
    server
        .mock("POST", path)
        .match_header("authorization", format!("Bearer {APP_KEY}").as_str())
        .match_header("content-length", "0")
        .match_query(Matcher::Missing)
}

/// The embedded exchange: the same request plus `session_token` in the query, sent once.
pub fn embedded_mock(server: &mut ServerGuard, session_token: &str) -> Mock {
    server
        .mock("POST", PATH_T1)
        .match_header("authorization", format!("Bearer {APP_KEY}").as_str())
        .match_query(Matcher::UrlEncoded(
            "session_token".into(),
            session_token.into(),
        ))
}

/// The user list, with the REST API key as bearer and no query.
pub fn list_mock(server: &mut ServerGuard) -> Mock {
    server
        .mock("GET", USERS)
        .match_header("authorization", format!("Bearer {API_KEY}").as_str())
        .match_query(Matcher::Missing)
}

/// `generate_token` for `user_id`: the REST API key as bearer, an empty body, no query.
pub fn generate_mock(server: &mut ServerGuard, user_id: &str) -> Mock {
    server
        .mock("POST", format!("{USERS}/{user_id}/generate_token").as_str())
        .match_header("authorization", format!("Bearer {API_KEY}").as_str())
        .match_header("content-length", "0")
        .match_query(Matcher::Missing)
}

/// The invitation: the REST API key as bearer, a JSON body.
pub fn invite_mock(server: &mut ServerGuard) -> Mock {
    server
        .mock("POST", format!("{USERS}/invite").as_str())
        .match_header("authorization", format!("Bearer {API_KEY}").as_str())
        .match_header("content-type", "application/json")
}

/// An unsigned-looking JWT carrying `claims`.
pub fn jwt(claims: serde_json::Value) -> String {
    format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// A `generate_token` answer.
pub fn jwt_body(jwt: &str) -> String {
    json!({"token": {"jwt": jwt}}).to_string()
}

/// A user list answer: one entry a user, as (id, email, account status).
pub fn users_body(users: &[(&str, &str, &str)]) -> String {
    let users: Vec<_> = users
        .iter()
        .map(|(id, email, status)| {
            json!({"id": id, "first_name": "F", "last_name": "L", "email": email, "account_status": status})
        })
        .collect();
    json!({ "users": users }).to_string()
}

/// The backend exchange for tenant `t1`, expected once and answered with `key`, expiring at
/// `expires_at`.
pub async fn t1_key_issued(server: &mut ServerGuard, key: &str, expires_at: &str) -> Mock {
    key_issued_for(server, "t1", key, expires_at).await
}

/// The backend exchange of `app-1` for `tenant`, expected once and answered with `key`,
/// expiring at `expires_at`.
pub async fn key_issued_for(
    server: &mut ServerGuard,
    tenant: &str,
    key: &str,
    expires_at: &str,
) -> Mock {
    let path = format!("/partner_applications/app-1/tenants/{tenant}/create_token");
    let mock = backend_mock(server, &path).expect(1);
    reply(mock, 200, key_body(key, expires_at)).await
}

/// `generate_token` for `user_id`, expected once and answered with `jwt`.
pub async fn jwt_issued(server: &mut ServerGuard, user_id: &str, jwt: &str) -> Mock {
    reply(generate_mock(server, user_id).expect(1), 200, jwt_body(jwt)).await
}

/// The user list, expected `times` times and answered with `users` (see [`users_body`]).
pub async fn users_listed(
    server: &mut ServerGuard,
    times: usize,
    users: &[(&str, &str, &str)],
) -> Mock {
    reply(list_mock(server).expect(times), 200, users_body(users)).await
}

/// The backend exchange for tenant `t1`, expected once and answered 429 asking for a wait of
/// `retry_after` seconds.
pub async fn t1_rate_limited(server: &mut ServerGuard, retry_after: &str) -> Mock {
    let mock = backend_mock(server, PATH_T1).with_header("retry-after", retry_after);
    reply(mock.expect(1), 429, "").await
}

/// The embedded exchange of `session_token`, expected once and answered with `key`, expiring
/// at `expires_at`.
pub async fn embedded_key_issued(
    server: &mut ServerGuard,
    session_token: &str,
    key: &str,
    expires_at: &str,
) -> Mock {
    let mock = embedded_mock(server, session_token).expect(1);
    reply(mock, 200, key_body(key, expires_at)).await
}
