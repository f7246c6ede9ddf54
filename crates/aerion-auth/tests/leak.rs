//! A capturing subscriber at TRACE: no password, client secret, access token or refresh token
//! reaches any log line, across successes and failures.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use token_provider::testing::{assert_mocks, bearer_mock, reply};
use token_provider::{MemoryStore, TokenProvider};

#[tokio::test]
async fn nothing_secret_is_logged_or_shown() {
    let logs = token_provider::testing::capture_logs();
    let mut server = mockito::Server::new_async().await;

    // Success: password grant, a rotating refresh, and `me` with a 401 retry.
    let password = password_issues(&mut server, "at-LEAK-1", Some("rt-LEAK-1")).await;
    let refresh = refresh_issues(&mut server, "rt-LEAK-1", "at-LEAK-2", Some("rt-LEAK-2")).await;
    let me_401 = reply(
        bearer_mock(&mut server, "GET", "/v1/users/me", "at-LEAK-2").expect(1),
        401,
        "",
    )
    .await;
    let refresh2 = refresh_issues(&mut server, "rt-LEAK-2", "at-LEAK-3", Some("rt-LEAK-3")).await;
    let me_ok = me_answers(
        &mut server,
        "at-LEAK-3",
        1,
        200,
        json!({"id": 1, "email": USERNAME}),
    )
    .await;

    let clock = fixed_clock();
    let aerion = builder(&server, &clock)
        .username(USERNAME)
        .password(PASSWORD)
        .store(Arc::new(MemoryStore::new()))
        .build()
        .unwrap();
    aerion.token().await.unwrap();
    clock.advance(Duration::from_secs(3600));
    aerion.token().await.unwrap();
    aerion.me().await.unwrap();
    assert_mocks(&[&password, &refresh, &me_401, &refresh2, &me_ok]).await;

    // Failure: a refused refresh token falls back to a password that is refused too.
    let mut failing = mockito::Server::new_async().await;
    let dead = token_mock(&mut failing, refresh_form("rt-LEAK-dead")).expect(1);
    let dead = refuse(dead, 400, json!({"error": "invalid_grant"})).await;
    let wrong = token_mock(&mut failing, password_form(USERNAME, "pw-LEAK-wrong")).expect(1);
    let wrong = refuse(
        wrong,
        401,
        json!({"error": "unauthorized", "status": 401, "summary": "Bad login", "raw": "RAW-LEAK"}),
    )
    .await;
    let broken = builder(&failing, &clock)
        .username(USERNAME)
        .password("pw-LEAK-wrong")
        .refresh_token("rt-LEAK-dead")
        .build()
        .unwrap();
    let err = broken.token().await.unwrap_err();
    assert!(err.is_rejected(), "{err:?}");
    assert_mocks(&[&dead, &wrong]).await;

    // And one with no password to fall back to.
    let mut sso = mockito::Server::new_async().await;
    let spent = token_mock(&mut sso, refresh_form("rt-LEAK-sso")).expect(1);
    let spent = refuse(
        spent,
        401,
        json!({"error": "invalid_grant", "error_description": "gone"}),
    )
    .await;
    let sso_provider = builder(&sso, &clock)
        .refresh_token("rt-LEAK-sso")
        .build()
        .unwrap();
    let sso_err = sso_provider.token().await.unwrap_err();
    assert!(sso_err.needs_user_action(), "{sso_err:?}");
    spent.assert_async().await;

    let secrets = [
        PASSWORD,
        "pw-LEAK-wrong",
        CLIENT_SECRET,
        "at-LEAK",
        "rt-LEAK",
        "RAW-LEAK",
    ];
    logs.assert_absent(&secrets);
    assert!(
        logs.contents().contains("aerion"),
        "the provider's own events were captured"
    );
    let shown =
        format!("{aerion:?} {broken:?} {sso_provider:?} {err} {err:?} {sso_err} {sso_err:?}");
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}
