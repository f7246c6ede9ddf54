//! What each request spends: a session token is spent only once it may have reached Aurora, a
//! Client SDK `generate_token` is never repeated once it may have been sent, and ids that would
//! vanish from a path are refused.

mod common;

use std::time::Duration;

use aurora_solar_auth::{ClientSdk, Error, PartnerApp, SdkUser, TokenProvider};
use common::{
    API_KEY, APP_KEY, app_builder, clock, generate_mock, http_client, jwt, jwt_body, list_mock,
    sdk_builder,
};
use mockito::Server;
use serde_json::json;
use token_provider::testing::{reply, token_text};

/// A loopback port nothing listens on: a connection to it is refused before a byte leaves.
fn closed_port_url() -> String {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn a_session_token_that_never_reached_aurora_is_not_spent() {
    let clock = clock();
    let app = app_builder(closed_port_url(), &clock).build().unwrap();
    let tenant = app.embedded("t1", "sess-unsent").unwrap();
    let err = tenant.token().await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    // A later attempt may send it: the exchange provably never reached Aurora.
    clock.advance(Duration::from_secs(600));
    let err = tenant.token().await.unwrap_err();
    assert!(
        matches!(err, Error::Transport { .. }),
        "the session token was counted as spent: {err:?}"
    );
}

/// The tenant's user list: one active user, `u-1`.
async fn users_mock(server: &mut mockito::ServerGuard) -> mockito::Mock {
    let users =
        json!({"users": [{"id": "u-1", "email": "a@example.com", "account_status": "active"}]});
    reply(list_mock(server), 200, users.to_string()).await
}

#[tokio::test]
async fn generate_token_is_not_repeated_after_a_5xx() {
    let mut server = Server::new_async().await;
    let _list = users_mock(&mut server).await;
    let generate = reply(generate_mock(&mut server, "u-1").expect(1), 503, "").await;
    let sdk = sdk_builder(server.url(), &clock()).build().unwrap();
    let user = sdk.user(SdkUser::new("a@example.com")).unwrap();
    let err = user.token().await.unwrap_err();
    assert_eq!(err.status(), Some(503), "{err:?}");
    generate.assert_async().await;
}

#[tokio::test]
async fn dot_ids_are_refused_before_anything_is_sent() {
    let mut server = Server::new_async().await;
    let stray = server
        .mock("POST", mockito::Matcher::Any)
        .expect(0)
        .create_async()
        .await;
    let base = || {
        PartnerApp::builder()
            .base_url(server.url())
            .application_key(APP_KEY)
            .http_client(http_client())
    };
    for id in [".", "..", " .. "] {
        let built = base().application_id(id).build();
        assert_refused_naming(built, "AURORA_SOLAR_APPLICATION_ID", id);
        let built = base().application_id("app_42").tenant_id(id).build();
        assert_refused_naming(built, "AURORA_SOLAR_TENANT_ID", id);
        let app = base().application_id("app_42").build().unwrap();
        let err = app.tenant(id).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{id:?}: {err:?}");
        let err = app.embedded(id, "sess").unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{id:?}: {err:?}");
        let built = ClientSdk::builder()
            .base_url(server.url())
            .api_key(API_KEY)
            .tenant_id(id)
            .build();
        assert_refused_naming(built, "AURORA_SOLAR_TENANT_ID", id);
    }
    stray.assert_async().await;
}

#[tokio::test]
async fn without_background_refresh_a_jwt_is_replaced_only_once_expired() {
    let exp = common::SEED_EXPIRES_AT - 3600;
    let jwt = |n: u32| jwt(json!({"id": "u-1", "exp": exp + u64::from(n) * 43_200}));
    let mut server = Server::new_async().await;
    let _list = users_mock(&mut server).await;
    let first = reply(
        generate_mock(&mut server, "u-1").expect(1),
        200,
        jwt_body(&jwt(0)),
    )
    .await;
    let clock = clock();
    let sdk = sdk_builder(server.url(), &clock)
        .background_refresh(false)
        .build()
        .unwrap();
    let user = sdk.user(SdkUser::new("a@example.com")).unwrap();
    assert_eq!(token_text(&user).await, jwt(0));
    // A minute before expiry: still the same JWT, and no background generation.
    clock.set(std::time::UNIX_EPOCH + Duration::from_secs(exp - 60));
    assert_eq!(token_text(&user).await, jwt(0));
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.assert_async().await;
    // Expired: now a new one.
    let second = reply(
        generate_mock(&mut server, "u-1").expect(1),
        200,
        jwt_body(&jwt(1)),
    )
    .await;
    clock.set(std::time::UNIX_EPOCH + Duration::from_secs(exp + 1));
    assert_eq!(token_text(&user).await, jwt(1));
    second.assert_async().await;
}

/// Asserts that `built` (from the id `id`) was refused with a message naming `field`.
fn assert_refused_naming<T>(built: Result<T, Error>, field: &str, id: &str) {
    let Err(err) = built else {
        panic!("{id:?}: accepted")
    };
    assert!(err.to_string().contains(field), "{id:?}: {err}");
}
