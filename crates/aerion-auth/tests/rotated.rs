//! An answer that rotates the refresh token but is refused (its access token unusable) still
//! replaces the spent refresh token: the next refresh presents the rotated one, never the old.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use token_provider::testing::{assert_mocks, token_text};
use token_provider::{Error, MemoryStore, Secret, TokenProvider, TokenStore};

const HOUR: Duration = Duration::from_secs(3600);

/// A 200 answer to `mock` with this body.
async fn answer(mock: mockito::Mock, body: serde_json::Value) -> mockito::Mock {
    mock.with_status(200)
        .with_header("content-type", "application/json")
        .with_body(body.to_string())
        .create_async()
        .await
}

#[tokio::test]
async fn a_refused_token_type_keeps_the_rotated_refresh_token() {
    let mut server = mockito::Server::new_async().await;
    let first = token_mock(&mut server, refresh_form("rt-1")).expect(1);
    let first = answer(
        first,
        json!({"access_token": "at-mac", "token_type": "mac", "expires_in": 3600,
               "refresh_token": "rt-2-ROTATED"}),
    )
    .await;
    let second = refresh_issues(&mut server, "rt-2-ROTATED", "at-2", Some("rt-3")).await;

    let clock = fixed_clock();
    let aerion = builder(&server, &clock)
        .refresh_token("rt-1")
        .build()
        .unwrap();
    let err = aerion.token().await.unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("token_type"), "{shown}");
    assert!(!shown.contains("ROTATED"), "{shown}");

    // Past the backoff: the refresh presents the rotated token (rt-1 is dead).
    clock.advance(HOUR);
    assert_eq!(token_text(&aerion).await, "at-2");
    assert_mocks(&[&first, &second]).await;
}

#[tokio::test]
async fn an_unreadable_expiry_keeps_the_rotated_refresh_token() {
    let mut server = mockito::Server::new_async().await;
    let first = token_mock(&mut server, refresh_form("rt-1")).expect(1);
    let first = answer(
        first,
        json!({"access_token": "at-1", "token_type": "bearer", "expires_in": "soon",
               "refresh_token": "rt-2-ROTATED"}),
    )
    .await;
    let second = refresh_issues(&mut server, "rt-2-ROTATED", "at-2", None).await;

    let clock = fixed_clock();
    let aerion = builder(&server, &clock)
        .username(USERNAME)
        .password(PASSWORD)
        .refresh_token("rt-1")
        .build()
        .unwrap();
    let err = aerion.token().await.unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("expires_in"), "{shown}");
    assert!(
        !shown.contains("ROTATED") && !shown.contains("soon"),
        "{shown}"
    );

    // Neither rt-1 again nor the password: the rotated token is the one in force.
    clock.advance(HOUR);
    assert_eq!(token_text(&aerion).await, "at-2");
    assert_mocks(&[&first, &second]).await;
}

#[tokio::test]
async fn a_rotated_refresh_token_of_a_refused_answer_reaches_the_store() {
    let mut server = mockito::Server::new_async().await;
    let first = refresh_issues(&mut server, "rt-1", "at-1", Some("rt-2")).await;
    let second = token_mock(&mut server, refresh_form("rt-2")).expect(1);
    let second = answer(
        second,
        json!({"access_token": "at-mac", "token_type": "mac", "expires_in": 3600,
               "refresh_token": "rt-3-ROTATED"}),
    )
    .await;
    let third = refresh_issues(&mut server, "rt-3-ROTATED", "at-3", Some("rt-4")).await;

    let clock = fixed_clock();
    let store = MemoryStore::new();
    let aerion = builder(&server, &clock)
        .refresh_token("rt-1")
        .store(Arc::new(store.clone()))
        .build()
        .unwrap();
    let key = aerion.store_key();
    assert_eq!(token_text(&aerion).await, "at-1");

    clock.advance(HOUR);
    let err = aerion.token().await.unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    // Saved where every holder of the store reads its refresh token.
    let saved = store.load(&key).await.unwrap().unwrap();
    assert_eq!(
        saved.refresh_token.as_ref().map(Secret::expose_secret),
        Some("rt-3-ROTATED")
    );

    clock.advance(HOUR);
    assert_eq!(token_text(&aerion).await, "at-3");
    let saved = store.load(&key).await.unwrap().unwrap();
    assert_eq!(
        saved.refresh_token.as_ref().map(Secret::expose_secret),
        Some("rt-4")
    );
    assert_mocks(&[&first, &second, &third]).await;
}

#[tokio::test]
async fn a_refused_password_grant_answer_keeps_its_refresh_token() {
    let mut server = mockito::Server::new_async().await;
    let password = token_mock(&mut server, password_form(USERNAME, PASSWORD)).expect(1);
    let password = answer(
        password,
        json!({"access_token": "at-mac", "token_type": "mac", "refresh_token": "rt-1"}),
    )
    .await;
    let refresh = refresh_issues(&mut server, "rt-1", "at-2", None).await;

    let clock = fixed_clock();
    let aerion = builder(&server, &clock)
        .username(USERNAME)
        .password(PASSWORD)
        .build()
        .unwrap();
    let err = aerion.token().await.unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    clock.advance(HOUR);
    assert_eq!(token_text(&aerion).await, "at-2");
    assert_mocks(&[&password, &refresh]).await;
}
