//! Two people signed in by SSO on one tenant and one store: each is served their own token.

mod common;

use std::sync::Arc;

use common::*;
use token_provider::testing::{assert_mocks, json_reply, stored_keys, token_text};
use token_provider::{FileStore, TokenProvider, TokenStore};

#[tokio::test]
async fn two_sso_refresh_tokens_on_one_tenant_and_store_never_share_a_token() {
    let mut server = mockito::Server::new_async().await;
    let alice = refresh_issues(&mut server, "rt-alice", "at-alice", Some("rt-alice-2")).await;
    let bob = refresh_issues(&mut server, "rt-bob", "at-bob", Some("rt-bob-2")).await;
    let dir = token_provider::testing::TempDir::new("aerion-sso-store");
    let path = dir.join("tokens.json");
    let store: Arc<dyn TokenStore> = Arc::new(FileStore::new(&path));

    let clock = fixed_clock();
    // One run of the tool: the tenant, this person's refresh token, the shared store.
    let signed_in = |refresh_token: &str| {
        builder(&server, &clock)
            .refresh_token(refresh_token)
            .store(Arc::clone(&store))
            .build()
            .unwrap()
    };
    let as_alice = signed_in("rt-alice");
    assert_eq!(token_text(&as_alice).await, "at-alice");

    // A second person, a second process: same tenant, same store file, another refresh token.
    let as_bob = signed_in("rt-bob");
    let token = as_bob.token().await.unwrap();
    assert_eq!(
        token.secret().expose_secret(),
        "at-bob",
        "bob was served alice's token"
    );
    assert_mocks(&[&alice, &bob]).await;

    // Alice's next run adopts her own rotated state, with no request.
    let again = signed_in("rt-alice");
    assert_eq!(token_text(&again).await, "at-alice");
    alice.assert_async().await;
    let stored = std::fs::read_to_string(&path).unwrap();
    assert!(stored.contains("rt-alice-2") && stored.contains("rt-bob-2"));
    // The keys name a digest, never the refresh tokens themselves.
    let keys = stored_keys(&*store).await;
    assert_eq!(keys.len(), 2);
    for key in keys {
        assert!(!key.as_str().contains("rt-"), "{key}");
    }
    drop(dir);
}

#[tokio::test]
async fn a_refused_stored_refresh_token_never_brings_back_the_rotated_away_seed() {
    // Another process rotated the configured rt-seed into rt-5 and saved it; Aerion now refuses
    // rt-5. The seed is of the same lineage (its digest names the entry): sending it would be a
    // replay, which servers that detect reuse punish by revoking the whole family.
    let mut server = mockito::Server::new_async().await;
    let stored = token_mock(&mut server, refresh_form("rt-5")).expect(1);
    let stored = json_reply(stored, 400, r#"{"error":"invalid_grant"}"#).await;
    let seed = issue(
        token_mock(&mut server, refresh_form("rt-seed")).expect(0),
        "at-x",
        None,
    )
    .await;
    let store = token_provider::MemoryStore::new();
    let aerion = builder(&server, &fixed_clock())
        .refresh_token("rt-seed")
        .store(Arc::new(store.clone()))
        .build()
        .unwrap();
    let dead = token_provider::AccessToken::builder("at-old")
        .expires_at(epoch())
        .build();
    store
        .save(
            &aerion.store_key(),
            &token_provider::TokenState::new(dead)
                .with_refresh_token(Some(token_provider::Secret::new("rt-5"))),
            &token_provider::StoreLock::none(),
        )
        .await
        .unwrap();
    let err = aerion.token().await.unwrap_err();
    assert!(
        matches!(err, token_provider::Error::UserAction { .. }),
        "{err:?}"
    );
    assert_mocks(&[&stored, &seed]).await;
}
