//! Hostile input: arbitrary bytes and arbitrary JSON fed to every response parser of every
//! provider. Never a panic, always a typed `Error` (of the variants that parser may return), and
//! an error never quotes what it was given.
//!
//! Every string the generators put in a JSON document is marked `LEAK…`, except under the keys
//! where a provider states its own error words (`error`, `error_description`, `summary`,
//! `message`, `detail`, `errors`, `code`, `type`), which errors keep by design (cleaned and cut
//! to 300 characters) and which are marked `WORDS…` instead; `token_type` is also unmarked
//! (Aurora UK names an unexpected token type, cut to 40 characters). No error may contain `LEAK`.
//!
//! The pure parsers (`aurora_solar_auth::wire::{parse_expires_at, jwt_expiry}`) run thousands of
//! cases; the others are reached through their public path, a provider talking to a mockito
//! server that answers the generated body, so each case is a real HTTP exchange and the counts
//! are modest. The case counts are in RELIABILITY.md.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{two_tries, variant};
use partner_auth::aerion::{Aerion, Tenant};
use partner_auth::aurora_solar::wire::{jwt_expiry, parse_expires_at};
use partner_auth::aurora_solar::{ClientSdk, PartnerApp, SdkUser};
use partner_auth::aurora_uk::{AuroraUk, Environment};
use partner_auth::{CacheConfig, Error, HttpClient, TokenProvider};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

/// Cases per parser reached over HTTP.
const HTTP_CASES: u32 = 256;
/// Cases per pure parser.
const PURE_CASES: u32 = 4096;

const WORD_KEYS: &[&str] = &[
    "error",
    "error_description",
    "summary",
    "message",
    "detail",
    "errors",
    "code",
    "type",
];
/// Keys a provider's answers use, so generated documents hit the parsers' fields.
const KEYS: &[&str] = &[
    "access_token",
    "token_type",
    "expires_in",
    "refresh_token",
    "scope",
    "error",
    "error_description",
    "summary",
    "raw",
    "status",
    "token",
    "bearer_token",
    "expires_at",
    "jwt",
    "users",
    "user",
    "id",
    "email",
    "account_status",
    "message",
    "errors",
    "detail",
    "code",
    "issuer",
    "token_endpoint",
    "jwks_uri",
    "keys",
    "exp",
];

// ---------------------------------------------------------------------------------------------
// Generators.

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        "[ -~]{0,24}".prop_map(Value::String),
        // Shapes the parsers accept, so success paths are reached too.
        Just(Value::String("3600".into())),
        Just(Value::String("Bearer".into())),
        Just(Value::String("2030-01-01 00:00:00 UTC".into())),
        Just(Value::String("active".into())),
        Just(Value::String("user@example.test".into())),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-z_]{1,10}",
    ]
}

/// `base` with each field kept, dropped or replaced by arbitrary JSON, and a few keys added.
fn mutated(base: Value) -> impl Strategy<Value = Value> {
    let Value::Object(base) = base else {
        unreachable!()
    };
    let n = base.len();
    (
        prop::collection::vec((0u8..4, any_json()), n),
        prop::collection::vec((key(), any_json()), 0..3),
    )
        .prop_map(move |(edits, extra)| {
            let mut out = Map::new();
            for ((k, v), (action, replacement)) in base.iter().zip(edits) {
                match action {
                    0 => {}
                    1 => {
                        out.insert(k.clone(), replacement);
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            for (k, v) in extra {
                out.insert(k, v);
            }
            Value::Object(out)
        })
}

/// Marks every string: `WORDS…` under a provider-words key, `LEAK…` elsewhere; dates, numbers
/// in strings and the fixed shapes above are left alone only under their own keys.
fn mark(value: &mut Value, key: Option<&str>) {
    match value {
        Value::String(s) => {
            let words = key.is_some_and(|k| WORD_KEYS.contains(&k));
            let neutral = key.is_some_and(|k| {
                matches!(
                    k,
                    "token_type"
                        | "expires_in"
                        | "expires_at"
                        | "account_status"
                        | "email"
                        | "scope"
                )
            });
            let url = key.is_some_and(|k| matches!(k, "issuer" | "token_endpoint" | "jwks_uri"))
                && s.starts_with("http");
            if words {
                *s = format!("WORDS{s}");
            } else if key == Some("jwt") && s.matches('.').count() == 2 {
                // Marked in the signature, so a well-formed JWT still decodes.
                s.push_str("LEAK");
            } else if !neutral && !url {
                *s = format!("LEAK{s}");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mark(v, key)),
        Value::Object(map) => map.iter_mut().for_each(|(k, v)| mark(v, Some(k))),
        _ => {}
    }
}

/// Marks a whole document. A top-level array is marked as provider words in its first three
/// places: serde reads a struct from a sequence positionally, so `["invalid_grant", "why"]`
/// in a 4xx answer is an OAuth error body (`error`, `error_description`, then `summary` or
/// `error_uri`) to the `oauth2` crate and to Aerion's error type alike.
fn mark_document(value: &mut Value) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                mark(item, (i < 3).then_some("error"));
            }
        }
        other => mark(other, None),
    }
}

/// A body: arbitrary bytes, arbitrary JSON, or `base` mutated; strings marked.
fn body(base: Value) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..256)
            .prop_map(|b| [b"LEAK".as_slice(), &b].concat()),
        2 => any_json().prop_map(|mut v| { mark_document(&mut v); v.to_string().into_bytes() }),
        4 => mutated(base).prop_map(|mut v| { mark_document(&mut v); v.to_string().into_bytes() }),
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        6 => Just(200u16),
        1 => Just(201u16),
        1 => Just(400u16),
        1 => Just(401u16),
        1 => Just(403u16),
        1 => Just(404u16),
        1 => Just(409u16),
        1 => Just(422u16),
        1 => Just(500u16),
    ]
}

// ---------------------------------------------------------------------------------------------
// Checks.

/// The error is of an expected variant and quotes nothing it was given.
fn check_error(e: &Error, allowed: &[&str]) -> Result<(), TestCaseError> {
    let name = variant(e);
    prop_assert!(allowed.contains(&name), "unexpected variant: {e:?}");
    let shown = format!(
        "{e} | {e:?} | {}",
        partner_auth::token_provider::error_chain(e)
    );
    prop_assert!(
        !shown.contains("LEAK"),
        "the error quotes the input: {shown}"
    );
    Ok(())
}

fn fast_http() -> HttpClient {
    two_tries(Duration::from_secs(5))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Runs `cases` HTTP cases: `setup` mocks the server for the generated (status, body), then a
/// fresh provider from `make` asks for a token.
/// `mock` answering `status` with the JSON `body`, created on its server.
fn answer(mock: mockito::Mock, status: u16, body: impl AsRef<[u8]>) {
    mock.with_status(status.into())
        .with_header("content-type", "application/json")
        .with_body(body)
        .create();
}

fn over_http<P, S, M>(base: Value, cases: u32, allowed: &'static [&'static str], setup: S, make: M)
where
    P: TokenProvider,
    S: Fn(&mut mockito::ServerGuard, u16, Vec<u8>) + Copy,
    M: Fn(&mockito::ServerGuard, HttpClient) -> P + Copy,
{
    let rt = runtime();
    let server = std::cell::RefCell::new(rt.block_on(mockito::Server::new_async()));
    let http = fast_http();
    runner(cases)
        .run(&(status(), body(base)), |(status, body)| {
            let mut server = server.borrow_mut();
            server.reset();
            setup(&mut server, status, body);
            let provider = make(&server, http.clone());
            let result = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(20), provider.token()).await
            });
            let result = result.map_err(|_| TestCaseError::fail("no answer in 20 s"))?;
            match result {
                Ok(token) => {
                    let shown = format!("{token:?}");
                    prop_assert!(!shown.contains("LEAK"), "{}", shown);
                }
                Err(e) => check_error(&e, allowed)?,
            }
            Ok(())
        })
        .unwrap();
}

/// [`over_http`] for a token endpoint: [`HTTP_CASES`] cases, [`TOKEN_ERRORS`] allowed.
fn token_over_http<P, S, M>(base: Value, setup: S, make: M)
where
    P: TokenProvider,
    S: Fn(&mut mockito::ServerGuard, u16, Vec<u8>) + Copy,
    M: Fn(&mockito::ServerGuard, HttpClient) -> P + Copy,
{
    over_http(base, HTTP_CASES, TOKEN_ERRORS, setup, make);
}

const TOKEN_ERRORS: &[&str] = &[
    // A 404 (or an HTML page) from a token endpoint names the URL and its setting.
    "Config",
    "Malformed",
    "Rejected",
    "Status",
    "UserAction",
    "RateLimited",
];

// ---------------------------------------------------------------------------------------------
// The pure parsers.

#[test]
fn aurora_solar_expires_at_never_panics_nor_quotes() {
    let strategy = prop_oneof![
        "[ -~]{0,40}",
        any::<String>(),
        // Near misses of the documented form.
        (
            0u32..10000,
            0u32..20,
            0u32..40,
            0u32..30,
            0u32..70,
            0u32..70,
            "( UTC| PST|Z|)"
        )
            .prop_map(|(y, mo, d, h, mi, s, z)| format!(
                "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{z}"
            )),
    ];
    runner(PURE_CASES)
        .run(&strategy, |input| {
            match parse_expires_at(&input) {
                Ok(_) => {}
                Err(e) => {
                    prop_assert!(matches!(e, Error::Malformed { .. }), "{e:?}");
                    let shown = format!("{e} {e:?}");
                    if input.trim().len() >= 4 {
                        prop_assert!(!shown.contains(input.trim()), "{shown}");
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn jwt_exp_decoding_never_panics_nor_quotes() {
    let payload = prop_oneof![
        any_json().prop_map(|v| v.to_string().into_bytes()),
        any_json().prop_map(|v| json!({ "exp": v, "id": "LEAKid" }).to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ];
    let strategy = prop_oneof![
        3 => payload.prop_map(|p| format!("eyJhbGciOiJIUzI1NiJ9.{}.LEAKsig", URL_SAFE_NO_PAD.encode(p))),
        1 => "[ -~]{0,60}".prop_map(|s| format!("LEAK{s}")),
        1 => "[A-Za-z0-9_.=-]{0,60}".prop_map(|s| format!("LEAK.{s}")),
    ];
    runner(PURE_CASES)
        .run(&strategy, |jwt| {
            if let Err(e) = jwt_expiry(&jwt) {
                prop_assert!(matches!(e, Error::Malformed { .. }), "{e:?}");
                let shown = format!("{e} {e:?}");
                prop_assert!(!shown.contains("LEAK"), "{shown}");
            }
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Over HTTP.

fn quiet_cache() -> CacheConfig {
    CacheConfig::new().load_timeout(Duration::from_secs(15))
}

#[test]
fn aerion_token_and_error_bodies() {
    let base = json!({
        "access_token": "at", "token_type": "bearer", "expires_in": "3600",
        "refresh_token": "rt", "scope": "read", "error": "invalid_grant",
        "error_description": "bad", "summary": "bad", "raw": "raw", "status": 400,
    });
    token_over_http(
        base,
        |server, status, body| {
            answer(server.mock("POST", "/oauth2/token"), status, body);
        },
        |server, http| {
            Aerion::builder()
                .base_url(server.url())
                .tenant(Tenant::CompanyUrl("acme.aerion.test".into()))
                .username("user@acme.test")
                .password("LEAKpassword")
                .http_client(http)
                .cache_config(quiet_cache())
                .build()
                .unwrap()
        },
    );
}

/// An Auth0-shaped discovery document for the mock server.
fn discovery(base: &str) -> Value {
    json!({
        "issuer": format!("{base}/"),
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "response_types_supported": ["code", "token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    })
}

fn aurora_uk(server: &mockito::ServerGuard, http: HttpClient) -> AuroraUk {
    AuroraUk::builder()
        .environment(Environment::Dev)
        .issuer(format!("{}/", server.url()))
        .audience("https://dev.client.integration.aurora.co.uk")
        .client_id("client")
        .client_secret("LEAKclientsecret")
        .http_client(http)
        .cache_config(quiet_cache())
        .build()
        .unwrap()
}

fn mock_discovery(server: &mut mockito::ServerGuard) {
    let doc = discovery(&server.url()).to_string();
    server
        .mock("GET", "/.well-known/openid-configuration")
        .with_header("content-type", "application/json")
        .with_body(doc)
        .create();
    server
        .mock("GET", "/.well-known/jwks.json")
        .with_header("content-type", "application/json")
        .with_body(r#"{"keys":[]}"#)
        .create();
}

#[test]
fn aurora_uk_token_and_auth0_error_bodies() {
    let base = json!({
        "access_token": "at", "token_type": "Bearer", "expires_in": 86400, "scope": "read",
        "error": "access_denied", "error_description": "no grant",
    });
    token_over_http(
        base,
        |server, status, body| {
            mock_discovery(server);
            answer(server.mock("POST", "/oauth/token"), status, body);
        },
        aurora_uk,
    );
}

#[test]
fn aurora_uk_discovery_documents() {
    // The base document's URLs are rewritten to the server's by the setup.
    let base = discovery("http://127.0.0.1:1");
    over_http(
        base,
        HTTP_CASES,
        &[
            "Malformed",
            "Config",
            "Status",
            "Rejected",
            "Transport",
            "RateLimited",
        ],
        |server, status, body| {
            let body = String::from_utf8_lossy(&body).replace("http://127.0.0.1:1", &server.url());
            answer(
                server.mock("GET", "/.well-known/openid-configuration"),
                status,
                body,
            );
            server
                .mock("GET", "/.well-known/jwks.json")
                .with_header("content-type", "application/json")
                .with_body(r#"{"keys":[]}"#)
                .create();
            server
                .mock("POST", "/oauth/token")
                .with_header("content-type", "application/json")
                .with_body(r#"{"access_token":"at","token_type":"Bearer","expires_in":60}"#)
                .create();
        },
        aurora_uk,
    );
}

const TENANT: &str = "tenant-1";

#[test]
fn aurora_solar_create_token_and_error_bodies() {
    let base = json!({
        "token": {"bearer_token": "tk", "expires_at": "2030-01-01 00:00:00 UTC"},
        "error": "unauthorized", "message": "bad key",
    });
    token_over_http(
        base,
        |server, status, body| {
            answer(
                server.mock(
                    "POST",
                    format!("/partner_applications/app/tenants/{TENANT}/create_token").as_str(),
                ),
                status,
                body,
            );
        },
        |server, http| {
            let app: PartnerApp = PartnerApp::builder()
                .base_url(server.url())
                .application_id("app")
                .application_key("LEAKapplicationkey")
                .tenant_id(TENANT)
                .http_client(http)
                // Thousands of bodies, each a fresh app: the per-key pace is tested elsewhere.
                .rate_limit(None)
                .cache_config(quiet_cache())
                .build()
                .unwrap();
            Arc::new(app)
        },
    );
}

fn jwt() -> String {
    format!(
        "eyJhbGciOiJIUzI1NiJ9.{}.sig",
        URL_SAFE_NO_PAD.encode(r#"{"exp":1900000000}"#)
    )
}

fn sdk(server: &mockito::ServerGuard, http: HttpClient) -> Arc<ClientSdk> {
    Arc::new(
        ClientSdk::builder()
            .base_url(server.url())
            .api_key("LEAKapikey")
            .tenant_id(TENANT)
            .user(SdkUser::new("user@example.test").with_name("Ada", "Lovelace"))
            .http_client(http)
            .rate_limit(None)
            .cache_config(quiet_cache())
            .build()
            .unwrap(),
    )
}

#[test]
fn aurora_solar_sdk_user_lists() {
    let base = json!({
        "users": [{"id": "u1", "email": "user@example.test", "account_status": "active"}],
        "error": "forbidden",
    });
    token_over_http(
        base,
        |server, status, body| {
            answer(
                server.mock("GET", format!("/tenants/{TENANT}/users").as_str()),
                status,
                body,
            );
            server
                .mock("POST", format!("/tenants/{TENANT}/users/invite").as_str())
                .with_header("content-type", "application/json")
                .with_body("{}")
                .create();
            server
                .mock(
                    "POST",
                    mockito::Matcher::Regex(format!(
                        "^/tenants/{TENANT}/users/[^/]+/generate_token$"
                    )),
                )
                .with_header("content-type", "application/json")
                .with_body(json!({"token": {"jwt": jwt()}}).to_string())
                .create();
        },
        sdk,
    );
}

#[test]
fn aurora_solar_sdk_generate_token_bodies() {
    let base = json!({"token": {"jwt": jwt()}, "error": "forbidden"});
    token_over_http(
        base,
        |server, status, body| {
            server
                .mock("GET", format!("/tenants/{TENANT}/users").as_str())
                .with_header("content-type", "application/json")
                .with_body(
                    json!({"users": [{"id": "u1", "email": "user@example.test", "account_status": "active"}]})
                        .to_string(),
                )
                .create();
            answer(
                server.mock(
                    "POST",
                    format!("/tenants/{TENANT}/users/u1/generate_token").as_str(),
                ),
                status,
                body,
            );
        },
        sdk,
    );
}
