//! What each request spends: a session token is spent only once it may have reached Aurora, a
//! Client SDK `generate_token` is never repeated once it may have been sent, and ids that would
//! vanish from a path are refused.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aurora_solar_auth::{ClientSdk, Error, PartnerApp, SdkUser, TokenProvider};
use common::{client, clock};
use mockito::Server;
use serde_json::json;

const APP_KEY: &str = "sk_sand_appkey_0001";
const API_KEY: &str = "sk_sand_restkey_0002";

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
    let app = PartnerApp::builder()
        .base_url(closed_port_url())
        .application_id("app-1")
        .application_key(APP_KEY)
        .http_client(client())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
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

#[tokio::test]
async fn generate_token_is_not_repeated_after_a_5xx() {
    let mut server = Server::new_async().await;
    let _list = server
        .mock("GET", "/tenants/t1/users")
        .with_body(
            json!({"users": [{"id": "u-1", "email": "a@example.com", "account_status": "active"}]})
                .to_string(),
        )
        .create_async()
        .await;
    let generate = server
        .mock("POST", "/tenants/t1/users/u-1/generate_token")
        .match_header("authorization", format!("Bearer {API_KEY}").as_str())
        .with_status(503)
        .expect(1)
        .create_async()
        .await;
    let sdk = ClientSdk::builder()
        .base_url(server.url())
        .api_key(API_KEY)
        .tenant_id("t1")
        .http_client(client())
        .clock(Arc::new(clock()))
        .build()
        .unwrap();
    let err = sdk
        .user(SdkUser::new("a@example.com"))
        .unwrap()
        .token()
        .await
        .unwrap_err();
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
            .http_client(client())
    };
    for id in [".", "..", " .. "] {
        let err = base().application_id(id).build().unwrap_err();
        assert!(
            err.to_string().contains("AURORA_SOLAR_APPLICATION_ID"),
            "{id:?}: {err}"
        );
        let err = base()
            .application_id("app_42")
            .tenant_id(id)
            .build()
            .unwrap_err();
        assert!(
            err.to_string().contains("AURORA_SOLAR_TENANT_ID"),
            "{id:?}: {err}"
        );
        let app = base().application_id("app_42").build().unwrap();
        let err = app.tenant(id).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{id:?}: {err:?}");
        let err = app.embedded(id, "sess").unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{id:?}: {err:?}");
        let err = ClientSdk::builder()
            .base_url(server.url())
            .api_key(API_KEY)
            .tenant_id(id)
            .build()
            .unwrap_err();
        assert!(
            err.to_string().contains("AURORA_SOLAR_TENANT_ID"),
            "{id:?}: {err}"
        );
    }
    stray.assert_async().await;
}
