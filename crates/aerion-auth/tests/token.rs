//! The token endpoint: what is sent for each grant and tenant header, and what comes back.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aerion_auth::{Aerion, Tenant};
use common::*;
use mockito::Matcher;
use serde_json::json;
use token_provider::testing::{
    assert_mocks, json_reply, rejection, reply, stored_keys, token_text,
};
use token_provider::{
    AccessToken, Error, MemoryStore, Secret, StoreKey, TokenProvider, TokenState, TokenStore,
};

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn password_grant_sends_every_field_and_each_tenant_header() {
    let tenants = [
        Tenant::CompanyUrl(TENANT.to_owned()),
        Tenant::Origin("https://acme.aerion.app".to_owned()),
        Tenant::Referrer("https://acme.aerion.app/login".to_owned()),
    ];
    for tenant in tenants {
        let mut server = mockito::Server::new_async().await;
        let mut mock = server
            .mock("POST", "/oauth2/token")
            .match_header("content-type", "application/x-www-form-urlencoded")
            .match_header("accept", "application/json")
            .match_header("authorization", Matcher::Missing)
            .match_request(password_form(USERNAME, PASSWORD));
        for name in ["companyurl", "origin", "referrer"] {
            mock = if name == tenant.header_name() {
                mock.match_header(name, tenant.value())
            } else {
                mock.match_header(name, Matcher::Missing)
            };
        }
        let mock = issue(mock.expect(1), "at-1", None).await;

        let clock = fixed_clock();
        let aerion = builder(&server, &clock)
            .tenant(tenant.clone())
            .username(USERNAME)
            .password(PASSWORD)
            .build()
            .unwrap();
        let token = aerion.token().await.unwrap();
        assert_eq!(token.secret().expose_secret(), "at-1");
        assert_eq!(token.token_type(), "Bearer");
        assert_eq!(token.expires_at(), Some(epoch() + HOUR));
        // Served from the cache: still one request.
        assert_eq!(aerion.token().await.unwrap(), token);
        mock.assert_async().await;
        assert_eq!(aerion.tenant(), &tenant);
    }
}

#[tokio::test]
async fn default_client_credentials_identify_the_library() {
    let mut server = mockito::Server::new_async().await;
    let mock = server
        .mock("POST", "/oauth2/token")
        .match_header("companyurl", TENANT)
        .match_request(form(&[
            ("grant_type", "password"),
            ("username", USERNAME),
            ("password", PASSWORD),
            ("client_id", "partner-auth"),
            ("client_secret", "partner-auth"),
        ]))
        .expect(1);
    let mock = issue(mock, "at-1", None).await;
    let aerion = Aerion::builder()
        .base_url(server.url())
        .http_client(http_client())
        .company_url(TENANT)
        .username(USERNAME)
        .password(PASSWORD)
        .build()
        .unwrap();
    aerion.token().await.unwrap();
    mock.assert_async().await;
}

#[tokio::test]
async fn token_url_can_be_overridden() {
    let mut server = mockito::Server::new_async().await;
    let mock = server
        .mock("POST", "/v1/oauth2/token")
        .match_header("companyurl", TENANT)
        .match_request(password_form(USERNAME, PASSWORD))
        .expect(1);
    let mock = issue(mock, "at-1", None).await;
    let aerion = builder(&server, &fixed_clock())
        .token_url(format!("{}/v1/oauth2/token", server.url()))
        .username(USERNAME)
        .password(PASSWORD)
        .build()
        .unwrap();
    assert_eq!(aerion.token_url().path(), "/v1/oauth2/token");
    aerion.token().await.unwrap();
    mock.assert_async().await;
}

#[tokio::test]
async fn refresh_grant_is_chosen_when_a_refresh_token_is_configured() {
    let mut server = mockito::Server::new_async().await;
    let password = token_mock(&mut server, password_form(USERNAME, PASSWORD)).expect(0);
    let password = issue(password, "at-password", None).await;
    let refresh = refresh_issues(&mut server, "rt-seed", "at-refreshed", Some("rt-2")).await;

    let aerion = builder(&server, &fixed_clock())
        .username(USERNAME)
        .password(PASSWORD)
        .refresh_token("rt-seed")
        .build()
        .unwrap();
    assert_eq!(token_text(&aerion).await, "at-refreshed");
    assert_mocks(&[&refresh, &password]).await;
}

#[tokio::test]
async fn sso_refresh_token_alone_is_enough_and_its_state_is_stored() {
    let mut server = mockito::Server::new_async().await;
    let refresh = refresh_issues(&mut server, "rt-sso", "at-1", Some("rt-sso-2")).await;
    let store = MemoryStore::new();
    let aerion = builder(&server, &fixed_clock())
        .refresh_token("rt-sso")
        .store(Arc::new(store.clone()))
        .build()
        .unwrap();
    let token = aerion.token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "at-1");
    refresh.assert_async().await;

    // Saved under the tenant and a digest of the configured refresh token (never the token).
    let entries = store.entries().await.unwrap();
    assert_eq!(entries.len(), 1);
    let (key, saved) = entries.into_iter().next().unwrap();
    let saved = saved.unwrap();
    let [provider, host, tenant, principal] = key.parts();
    assert_eq!(
        (provider.as_str(), host, tenant.as_str()),
        (
            "aerion",
            server.host_with_port(),
            format!("companyurl={TENANT}").as_str()
        )
    );
    assert!(
        principal.starts_with("sso:") && principal.len() == 36,
        "{principal}"
    );
    assert!(!key.as_str().contains("rt-sso"));
    assert_eq!(saved.access_token, token);
    assert_eq!(saved.refresh_token, Some(Secret::new("rt-sso-2")));
}

#[tokio::test]
async fn rotated_refresh_tokens_replace_the_old_one_and_are_persisted() {
    let mut server = mockito::Server::new_async().await;
    let password = password_issues(&mut server, "at-1", Some("rt-1")).await;
    let first = refresh_issues(&mut server, "rt-1", "at-2", Some("rt-2")).await;
    // Answers without a refresh token: rt-2 stays in force and is used again.
    let second = token_mock(&mut server, refresh_form("rt-2")).expect(2);
    let second = issue(second, "at-3", None).await;

    let clock = fixed_clock();
    let store = MemoryStore::new();
    let aerion = builder(&server, &clock)
        .username(USERNAME)
        .password(PASSWORD)
        .store(Arc::new(store.clone()))
        .build()
        .unwrap();
    let key = StoreKey::new(
        "aerion",
        &server.host_with_port(),
        &format!("companyurl={TENANT}"),
        USERNAME,
    );

    let stored_refresh = |s: Option<TokenState>| s.and_then(|s| s.refresh_token);
    assert_eq!(token_text(&aerion).await, "at-1");
    assert_eq!(
        stored_refresh(store.load(&key).await.unwrap()),
        Some(Secret::new("rt-1"))
    );

    clock.advance(HOUR);
    assert_eq!(token_text(&aerion).await, "at-2");
    assert_eq!(
        stored_refresh(store.load(&key).await.unwrap()),
        Some(Secret::new("rt-2"))
    );

    clock.advance(HOUR);
    assert_eq!(token_text(&aerion).await, "at-3");
    assert_eq!(
        stored_refresh(store.load(&key).await.unwrap()),
        Some(Secret::new("rt-2"))
    );

    clock.advance(HOUR);
    assert_eq!(token_text(&aerion).await, "at-3");

    assert_mocks(&[&password, &first, &second]).await;
}

#[tokio::test]
async fn a_stored_refresh_token_wins_over_the_configured_one() {
    let mut server = mockito::Server::new_async().await;
    let seed = token_mock(&mut server, refresh_form("rt-seed")).expect(0);
    let seed = issue(seed, "at-seed", None).await;
    let stored = refresh_issues(&mut server, "rt-stored", "at-1", Some("rt-next")).await;

    let clock = fixed_clock();
    let store = MemoryStore::new();
    let aerion = builder(&server, &clock)
        .refresh_token("rt-seed")
        .store(Arc::new(store.clone()))
        .build()
        .unwrap();
    let key = aerion.store_key();
    // Another process rotated the configured token into rt-stored; its access token expired.
    let expired = AccessToken::builder("at-old").expires_at(epoch()).build();
    store
        .save(
            &key,
            &TokenState::new(expired).with_refresh_token(Some(Secret::new("rt-stored"))),
            &token_provider::StoreLock::none(),
        )
        .await
        .unwrap();
    assert_eq!(token_text(&aerion).await, "at-1");
    let saved = store.load(&key).await.unwrap().unwrap();
    assert_eq!(saved.refresh_token, Some(Secret::new("rt-next")));
    assert_mocks(&[&stored, &seed]).await;
}

#[tokio::test]
async fn a_newly_configured_sso_refresh_token_starts_its_own_entry() {
    // A person signed in again and configured the new refresh token; the entry of the old one
    // (whose refresh token died) is another principal's key now, and is not sent.
    let mut server = mockito::Server::new_async().await;
    let stored = invalid_grant(&mut server, refresh_form("rt-dead"), 0).await;
    let seed = refresh_issues(&mut server, "rt-new", "at-1", Some("rt-new-2")).await;

    let store = MemoryStore::new();
    let old = builder(&server, &fixed_clock())
        .refresh_token("rt-old")
        .store(Arc::new(store.clone()))
        .build()
        .unwrap();
    let expired = AccessToken::builder("at-old").expires_at(epoch()).build();
    store
        .save(
            &old.store_key(),
            &TokenState::new(expired).with_refresh_token(Some(Secret::new("rt-dead"))),
            &token_provider::StoreLock::none(),
        )
        .await
        .unwrap();
    let aerion = builder(&server, &fixed_clock())
        .refresh_token("rt-new")
        .store(Arc::new(store.clone()))
        .build()
        .unwrap();
    assert_ne!(aerion.store_key(), old.store_key());
    assert_eq!(token_text(&aerion).await, "at-1");
    assert_mocks(&[&stored, &seed]).await;
}

#[tokio::test]
async fn invalid_grant_falls_back_to_the_password_grant() {
    let mut server = mockito::Server::new_async().await;
    let refresh = refused(
        &mut server,
        refresh_form("rt-seed"),
        1,
        400,
        json!({"error": "invalid_grant", "error_description": "Refresh token expired"}),
    )
    .await;
    let password = password_issues(&mut server, "at-password", Some("rt-fresh")).await;
    let next = refresh_issues(&mut server, "rt-fresh", "at-next", None).await;

    let clock = fixed_clock();
    let aerion = builder(&server, &clock)
        .username(USERNAME)
        .password(PASSWORD)
        .refresh_token("rt-seed")
        .build()
        .unwrap();
    assert_eq!(token_text(&aerion).await, "at-password");
    // The password grant's refresh token is the one used next.
    clock.advance(HOUR);
    assert_eq!(token_text(&aerion).await, "at-next");
    assert_mocks(&[&refresh, &password, &next]).await;
}

#[tokio::test]
async fn a_refused_refresh_with_no_password_asks_the_user_to_sign_in_again() {
    let mut server = mockito::Server::new_async().await;
    let refresh = refused(
        &mut server,
        refresh_form("rt-sso"),
        1,
        400,
        json!({"error": "invalid_grant", "error_description": "Token revoked"}),
    )
    .await;
    let password = server
        .mock("POST", "/oauth2/token")
        .expect(0)
        .create_async()
        .await;

    let aerion = refresh_aerion(&server, "rt-sso");
    let err = aerion.token().await.unwrap_err();
    assert!(err.needs_user_action(), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("sign in"), "{msg}");
    assert!(msg.contains("AERION_REFRESH_TOKEN"), "{msg}");
    assert!(
        msg.contains("AERION_USERNAME") && msg.contains("AERION_PASSWORD"),
        "{msg}"
    );
    assert!(!format!("{err:?} {msg}").contains("rt-sso"));
    assert!(!err.is_transient());
    // The cache holds the failure briefly instead of asking again at once.
    assert!(aerion.token().await.unwrap_err().needs_user_action());
    assert_mocks(&[&refresh, &password]).await;
}

#[tokio::test]
async fn oauth_error_shape_becomes_a_rejection_with_the_providers_words() {
    let mut server = mockito::Server::new_async().await;
    let mock = refused(
        &mut server,
        password_form(USERNAME, "wrong"),
        1,
        401,
        json!({"error": "invalid_grant", "error_description": "Bad credentials"}),
    )
    .await;
    let aerion = builder(&server, &fixed_clock())
        .username(USERNAME)
        .password("wrong")
        .build()
        .unwrap();
    let err = aerion.token().await.unwrap_err();
    assert_eq!(
        rejection(&err),
        (Some(401), Some("invalid_grant"), Some("Bad credentials"))
    );
    assert_eq!(
        err.to_string(),
        "credentials rejected (HTTP 401): invalid_grant: Bad credentials"
    );
    mock.assert_async().await;
}

#[tokio::test]
async fn summary_error_shape_becomes_a_rejection_and_raw_is_never_shown() {
    let mut server = mockito::Server::new_async().await;
    let mock = refused(
        &mut server,
        password_form(USERNAME, "wrong"),
        1,
        400,
        json!({
            "error": "invalid_request",
            "status": 400,
            "summary": "Invalid username or password",
            "raw": "RAW-PROVIDER-TEXT password=wrong",
        }),
    )
    .await;
    let aerion = builder(&server, &fixed_clock())
        .username(USERNAME)
        .password("wrong")
        .build()
        .unwrap();
    let err = aerion.token().await.unwrap_err();
    assert_eq!(
        rejection(&err),
        (
            Some(400),
            Some("invalid_request"),
            Some("Invalid username or password")
        )
    );
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("RAW-PROVIDER-TEXT"), "{shown}");
    mock.assert_async().await;
}

#[tokio::test]
async fn a_garbled_token_response_is_malformed_and_not_quoted() {
    let mut server = mockito::Server::new_async().await;
    let mock = json_reply(
        token_mock(&mut server, password_form(USERNAME, PASSWORD)).expect(1),
        200,
        r#"{"access_token":"at-LEAK","token_type":"bearer","expires_in":"soon"}"#,
    )
    .await;
    let aerion = password_aerion(&server);
    let err = aerion.token().await.unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("expires_in"), "{shown}");
    assert!(
        !shown.contains("at-LEAK") && !shown.contains("soon"),
        "{shown}"
    );
    mock.assert_async().await;
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_as_transient() {
    let mut server = mockito::Server::new_async().await;
    let failing = reply(
        token_mock(&mut server, password_form(USERNAME, PASSWORD)).expect(1),
        503,
        "<html>down</html>",
    )
    .await;
    let ok = password_issues(&mut server, "at-1", None).await;
    let aerion = password_aerion(&server);
    assert_eq!(token_text(&aerion).await, "at-1");
    assert_mocks(&[&failing, &ok]).await;
}

#[tokio::test]
async fn look_alike_usernames_never_share_a_principal() {
    // Each beside the plain username it resembles: Unicode case mapping, case folding, NFKC or
    // Unicode trimming would turn the look-alike into it.
    let usernames = [
        "kim@acme.example",
        "\u{212A}im@acme.example",  // KELVIN SIGN
        "\u{FF4B}im@acme.example",  // FULLWIDTH LATIN SMALL LETTER K
        "kim@acme.example\u{200B}", // a trailing ZERO WIDTH SPACE
        "kim@acme.example\u{A0}",   // a trailing NO-BREAK SPACE
        "sam@acme.example",
        "\u{017F}am@acme.example", // LATIN SMALL LETTER LONG S
    ];
    let mut server = mockito::Server::new_async().await;
    let mut mocks = Vec::new();
    for (i, username) in usernames.iter().enumerate() {
        let grant = token_mock(&mut server, password_form(username, PASSWORD)).expect(1);
        let rt = format!("rt-{i}");
        mocks.push(issue(grant, &format!("at-{i}"), Some(&rt)).await);
    }
    // One store, one process per user.
    let store = Arc::new(MemoryStore::new());
    let clock = fixed_clock();
    let mut keys = Vec::new();
    for (i, username) in usernames.iter().enumerate() {
        let aerion = builder(&server, &clock)
            .username(*username)
            .password(PASSWORD)
            .store(store.clone())
            .build()
            .unwrap();
        assert_eq!(
            token_text(&aerion).await,
            format!("at-{i}"),
            "{} was served another user's token",
            username.escape_default()
        );
        let key = aerion.store_key();
        assert_eq!(key.parts()[3], *username);
        keys.push(key);
    }
    let mut stored = stored_keys(&*store).await;
    stored.sort();
    keys.sort();
    assert_eq!(stored, keys);
    for mock in mocks {
        mock.assert_async().await;
    }
}

#[test]
fn look_alike_tenants_are_refused() {
    // Each would otherwise be another spelling of `acme.aerion.app`; only ASCII blanks are
    // trimmed.
    for tenant in [
        "acme.aerion.app\u{A0}",
        "\u{A0}acme.aerion.app",
        "acme.aerion.app\u{200B}",
        "\u{FF41}cme.aerion.app",
        "acme.aerion.app\u{212A}",
        "acme.aerion.app\u{017F}",
    ] {
        let err = Aerion::builder()
            .company_url(tenant)
            .username(USERNAME)
            .password(PASSWORD)
            .build()
            .unwrap_err();
        assert!(
            matches!(err, Error::Config { ref field, .. } if field == "AERION_COMPANY_URL"),
            "{}: {err:?}",
            tenant.escape_default()
        );
    }
    // ASCII blanks are still trimmed.
    let aerion = Aerion::builder()
        .company_url(" acme.aerion.app\t")
        .username(" me@acme.example ")
        .password(PASSWORD)
        .build()
        .unwrap();
    assert_eq!(aerion.tenant(), &Tenant::CompanyUrl(TENANT.to_owned()));
    assert_eq!(aerion.store_key().parts()[3], USERNAME);
}
