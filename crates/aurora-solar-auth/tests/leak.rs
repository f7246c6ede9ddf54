//! No key, session token, temporary key or JWT in any log line at TRACE, in any `Debug` or in
//! any error, across successes and failures of every flow.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aurora_solar_auth::{ClientSdk, Error, PartnerApp, SdkUser, TokenProvider};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{SEED_EXPIRES_AT, clock, fast_http, http_client, key_body, silent_server};
use mockito::{Matcher, Server};
use token_provider::testing::{assert_mocks, reply};

const APP_KEY: &str = "sk_sand_LEAK_application_key";
const SESSION: &str = "LEAK_session_token_1";
const SESSION_SLOW: &str = "LEAK_session_token_2";
const SESSION_BUILDER: &str = "LEAK_session_token_3";
const TEMP_KEY: &str = "tk_LEAK_temporary_key";
const API_KEY: &str = "sk_sand_LEAK_rest_api_key";
const JWT_SIGNATURE: &str = "LEAK_jwt_signature";

fn jwt() -> String {
    // A day past the seed's expiry: the test clock has moved 14 hours on by the time the SDK is
    // asked, and a JWT that arrives already expired is refused by the cache.
    let exp = SEED_EXPIRES_AT + 24 * 3600;
    let payload = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"id":"u-1","email":"a@example.com","exp":{exp}}}"#
    ));
    format!("eyJhbGciOiJIUzI1NiJ9.{payload}.{JWT_SIGNATURE}")
}

/// Every secret these tests hand out.
const SECRETS: [&str; 7] = [
    APP_KEY,
    SESSION,
    SESSION_SLOW,
    SESSION_BUILDER,
    TEMP_KEY,
    API_KEY,
    JWT_SIGNATURE,
];

/// Why the user `email` of `sdk` gets no JWT.
async fn user_refused(sdk: &ClientSdk, email: &str) -> Error {
    let user = sdk.user(SdkUser::new(email)).unwrap();
    user.token().await.unwrap_err()
}

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
    assert!(!text.contains(&jwt()), "{what} shows the JWT: {text}");
}

fn assert_error_clean(err: &Error) {
    assert_clean(
        "an error",
        &format!("{err} | {err:?} | {}", token_provider::error_chain(err)),
    );
}

#[tokio::test]
async fn no_secret_in_logs_debug_or_errors() {
    let logs = token_provider::testing::capture_logs();
    let mut server = Server::new_async().await;
    let clock = clock();

    // Backend: success, then a refusal that echoes the key.
    let ok = reply(
        server
            .mock(
                "POST",
                "/partner_applications/app-1/tenants/t1/create_token",
            )
            .expect(1),
        200,
        key_body(TEMP_KEY, "2023-07-29 04:30:46 UTC"),
    )
    .await;
    let refused = reply(
        server
            .mock(
                "POST",
                "/partner_applications/app-1/tenants/t2/create_token",
            )
            .expect(1),
        401,
        format!(r#"{{"error":"unauthorized","message":"key {APP_KEY} revoked"}}"#),
    )
    .await;
    let builder = PartnerApp::builder()
        .base_url(server.url())
        .application_id("app-1")
        .application_key(APP_KEY)
        .tenant_id("t1")
        .http_client(http_client())
        .clock(Arc::new(clock.clone()));
    assert_clean("the builder", &format!("{builder:?}"));
    let app = builder.build().unwrap();
    let key = app.token().await.unwrap();
    assert_eq!(key.secret().expose_secret(), TEMP_KEY);
    let err = app.tenant("t2").unwrap().token().await.unwrap_err();
    assert!(err.is_rejected());
    assert_error_clean(&err);
    assert_clean(
        "the app",
        &format!("{app:?} {:?}", app.tenant("t1").unwrap()),
    );
    assert_mocks(&[&ok, &refused]).await;

    // Embedded: success, then the spent token refused locally.
    let exchange = reply(
        server
            .mock(
                "POST",
                "/partner_applications/app-1/tenants/t3/create_token",
            )
            .match_query(Matcher::UrlEncoded("session_token".into(), SESSION.into()))
            .expect(1),
        200,
        key_body(TEMP_KEY, "2023-07-29 04:30:46 UTC"),
    )
    .await;
    let embedded = app.embedded("t3", SESSION).unwrap();
    assert_clean("an embedded provider", &format!("{embedded:?}"));
    embedded.token().await.unwrap();
    assert_clean("an embedded provider", &format!("{embedded:?}"));
    clock.advance(Duration::from_secs(14 * 3600));
    let err = embedded.token().await.unwrap_err();
    assert!(err.needs_user_action());
    assert_error_clean(&err);
    exchange.assert_async().await;

    // Embedded: a timed-out exchange (the session token was in a URL the client gave up on).
    let (silent, _seen) = silent_server();
    let slow_app = PartnerApp::builder()
        .base_url(silent)
        .application_id("app-1")
        .application_key(APP_KEY)
        .tenant_id("t4")
        .session_token(SESSION_BUILDER)
        .http_client(fast_http(Duration::from_millis(200)))
        .build()
        .unwrap();
    assert_clean("an embedded app", &format!("{slow_app:?}"));
    let err = slow_app
        .embedded("t4", SESSION_SLOW)
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert_error_clean(&err);

    // Client SDK: success through an invitation, then a refused key echoed back.
    let list = reply(
        server.mock("GET", "/tenants/t1/users").expect(2),
        200,
        r#"{"users":[]}"#,
    )
    .await;
    let invite = reply(
        server.mock("POST", "/tenants/t1/users/invite").expect(1),
        200,
        r#"{"user":{"id":"u-1"}}"#,
    )
    .await;
    let generate = reply(
        server
            .mock("POST", "/tenants/t1/users/u-1/generate_token")
            .expect(1),
        200,
        format!(r#"{{"token":{{"jwt":"{}"}}}}"#, jwt()),
    )
    .await;
    let sdk_refused = reply(
        server.mock("GET", "/tenants/t2/users").expect(1),
        403,
        format!(r#"{{"message":"{API_KEY} lacks Platform API"}}"#),
    )
    .await;
    let sdk_builder = ClientSdk::builder()
        .base_url(server.url())
        .api_key(API_KEY)
        .tenant_id("t1")
        .user(SdkUser::new("a@example.com").with_name("A", "B"))
        .http_client(http_client())
        .clock(Arc::new(clock.clone()));
    assert_clean("the sdk builder", &format!("{sdk_builder:?}"));
    let sdk = sdk_builder.build().unwrap();
    let got = sdk.token().await.unwrap();
    assert_eq!(got.secret().expose_secret(), jwt());
    assert_clean(
        "the sdk",
        &format!("{sdk:?} {:?} {got:?}", sdk.default_user()),
    );
    // A user whose names are missing: stopped before the invite.
    let err = user_refused(&sdk, "c@example.com").await;
    assert_error_clean(&err);
    let other_tenant = ClientSdk::builder()
        .base_url(server.url())
        .api_key(API_KEY)
        .tenant_id("t2")
        .http_client(http_client())
        .build()
        .unwrap();
    let err = user_refused(&other_tenant, "a@example.com").await;
    assert!(err.is_rejected());
    assert_error_clean(&err);
    assert_mocks(&[&list, &invite, &generate, &sdk_refused]).await;

    // The fetches above ran on spawned tasks; their last events are written by now.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let captured = logs.contents();
    assert!(
        captured.contains("requesting an aurora solar temporary key"),
        "{captured}"
    );
    assert!(
        captured.contains("generating a client sdk jwt"),
        "{captured}"
    );
    let jwt = jwt();
    logs.assert_absent(&[SECRETS.as_slice(), &[jwt.as_str()]].concat());
}
