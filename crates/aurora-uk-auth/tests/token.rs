//! Discovery and the client credentials grant against an Auth0-shaped mock tenant.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aurora_uk_auth::{AuroraUk, AuroraUkBuilder, ClientAuth, Environment, Refusal};
use common::*;
use mockito::Matcher;
use token_provider::testing::{
    assert_mocks, json_reply, lookup, rejection, reply, stored_keys, stored_state, token_text,
};
use token_provider::{Error, MemoryStore, StoreKey, TokenProvider};

#[tokio::test]
async fn basic_header_client_credentials_with_audience_and_no_scope() {
    let mut server = mockito::Server::new_async().await;
    let (discovery, jwks) = mock_discovery(&mut server, 1).await;
    let token = token_issued(&mut server, "at-basic-1", 1).await;

    let clock = fixed_clock();
    let aurora = builder_with_clock(&server, &clock).build().unwrap();
    assert_eq!(aurora.client_auth(), ClientAuth::BasicHeader);
    let t = aurora.token().await.unwrap();

    assert_eq!(t.secret().expose_secret(), "at-basic-1");
    assert_eq!(t.token_type(), "Bearer");
    assert_eq!(t.expires_at(), Some(epoch() + Duration::from_secs(86400)));
    assert_eq!(
        aurora.token_endpoint().unwrap().as_str(),
        format!("{}/oauth/token", server.url())
    );
    assert_eq!(aurora.discovered_at(), Some(epoch()));
    assert_mocks(&[&discovery, &jwks, &token]).await;
}

#[tokio::test]
async fn request_body_client_credentials_sends_id_and_secret_as_form_fields() {
    let mut server = mockito::Server::new_async().await;
    let (_discovery, _jwks) = mock_discovery(&mut server, 1).await;
    let token = json_reply(
        server
            .mock("POST", "/oauth/token")
            .match_header("authorization", Matcher::Missing)
            .match_header("content-type", "application/x-www-form-urlencoded")
            .match_body(Matcher::AllOf(vec![
                Matcher::UrlEncoded("grant_type".into(), "client_credentials".into()),
                Matcher::UrlEncoded("audience".into(), AUDIENCE.into()),
                Matcher::UrlEncoded("client_id".into(), CLIENT_ID.into()),
                Matcher::UrlEncoded("client_secret".into(), CLIENT_SECRET.into()),
            ]))
            .match_request(post_form(CLIENT_ID, AUDIENCE))
            .expect(1),
        200,
        token_body("at-body-1", 86400),
    )
    .await;

    let aurora = builder(&server)
        .client_auth(ClientAuth::RequestBody)
        .build()
        .unwrap();
    let t = aurora.token().await.unwrap();
    assert_eq!(t.secret().expose_secret(), "at-body-1");
    token.assert_async().await;
}

#[tokio::test]
async fn audience_override_is_sent_byte_for_byte() {
    // Characters a careless encoder would change or drop.
    let audience = "https://proxy.example/aurora api?x=1&y=é+z/";
    let mut server = mockito::Server::new_async().await;
    let (_d, _j) = mock_discovery(&mut server, 1).await;
    let token = json_reply(
        server
            .mock("POST", "/oauth/token")
            .match_header("authorization", BASIC)
            .match_body(Matcher::UrlEncoded("audience".into(), audience.into()))
            .match_request(basic_form(audience))
            .expect(1),
        200,
        token_body("at-aud", 600),
    )
    .await;
    let aurora = builder(&server).audience(audience).build().unwrap();
    assert_eq!(aurora.audience(), audience);
    aurora.token().await.unwrap();
    token.assert_async().await;
}

#[tokio::test]
async fn issuer_mismatch_is_refused_before_any_token_request() {
    let mut server = mockito::Server::new_async().await;
    // The document names the issuer without Auth0's trailing slash: not the same issuer.
    let doc_issuer = server.url();
    let (discovery, _jwks) = mock_discovery_with(&mut server, 1, &doc_issuer, "/oauth/token").await;
    let token = reply(server.mock("POST", Matcher::Any).expect(0), 200, "").await;

    let aurora = builder(&server).build().unwrap();
    let err = aurora.token().await.unwrap_err();
    // Discovery was sent, so this is not a configuration error (which promises nothing was
    // sent): the answer did not fit, and the message says which setting to look at.
    assert!(matches!(&err, Error::Malformed { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("AURORA_UK_ISSUER"), "{msg}");
    assert!(msg.contains(&format!("`{}`", issuer(&server))), "{msg}");
    assert!(msg.contains(&format!("`{doc_issuer}`")), "{msg}");
    assert!(msg.contains("trailing `/`"), "{msg}");
    assert_eq!(aurora.token_endpoint(), None);
    assert_mocks(&[&discovery, &token]).await;
}

#[tokio::test]
async fn http_401_is_a_bad_credentials_rejection() {
    let mut server = mockito::Server::new_async().await;
    let (_d, _j) = mock_discovery(&mut server, 1).await;
    let body = r#"{"error":"access_denied","error_description":"Unauthorized"}"#;
    let token = mock_token_basic(&mut server, "/oauth/token", 401, body, 1).await;

    let aurora = builder(&server).build().unwrap();
    let err = aurora.token().await.unwrap_err();
    assert_eq!(
        rejection(&err),
        (Some(401), Some("access_denied"), Some("Unauthorized"))
    );
    assert_eq!(Refusal::of(&err), Some(Refusal::BadCredentials));
    assert_eq!(
        err.to_string(),
        "credentials rejected (HTTP 401): access_denied: Unauthorized"
    );
    assert!(!err.is_transient());
    // A permanent failure is held briefly: a second caller does not hit Auth0 again.
    let again = aurora.token().await.unwrap_err();
    assert_eq!(again.status(), Some(401));
    token.assert_async().await;
}

#[tokio::test]
async fn http_403_is_a_distinct_not_allowed_rejection() {
    let mut server = mockito::Server::new_async().await;
    let (_d, _j) = mock_discovery(&mut server, 1).await;
    let body = r#"{"error":"access_denied","error_description":"Client is not authorized to access \"https://dev.client.integration.aurora.co.uk\". You need to create a \"client-grant\" associated to this API."}"#;
    let token = mock_token_basic(&mut server, "/oauth/token", 403, body, 1).await;

    let aurora = builder(&server).build().unwrap();
    let err = aurora.token().await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(Refusal::of(&err), Some(Refusal::NotAllowed));
    let msg = err.to_string();
    assert!(
        msg.starts_with("credentials rejected (HTTP 403): access_denied: "),
        "{msg}"
    );
    assert!(msg.contains("client-grant"), "{msg}");
    token.assert_async().await;
}

#[tokio::test]
async fn refusals_without_a_description_say_what_each_status_means() {
    for (status, want) in [(401, "client secret was refused"), (403, "client grant")] {
        let mut server = mockito::Server::new_async().await;
        let (_d, _j) = mock_discovery(&mut server, 1).await;
        let token = mock_token_basic(&mut server, "/oauth/token", status, "", 1).await;
        let aurora = builder(&server).build().unwrap();
        let err = aurora.token().await.unwrap_err();
        assert_eq!(err.status(), Some(status as u16));
        assert!(err.to_string().contains(want), "{status}: {err}");
        token.assert_async().await;
    }
}

#[tokio::test]
async fn http_429_is_retried_honouring_retry_after() {
    let mut server = mockito::Server::new_async().await;
    let (_d, _j) = mock_discovery(&mut server, 1).await;
    let limited = json_reply(
        basic_token_mock(&mut server, AUDIENCE)
            .with_header("retry-after", "1")
            .expect(1),
        429,
        r#"{"error":"too_many_requests","error_description":"Global limit has been reached"}"#,
    )
    .await;
    let ok = token_issued(&mut server, "at-after-429", 1).await;

    let aurora = builder(&server).build().unwrap();
    let started = tokio::time::Instant::now();
    let t = aurora.token().await.unwrap();
    // Retry-After: 1 was waited out, not the policy's few-millisecond backoff.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(t.secret().expose_secret(), "at-after-429");
    assert_mocks(&[&limited, &ok]).await;
}

#[tokio::test]
async fn http_429_past_the_retries_is_rate_limited() {
    let mut server = mockito::Server::new_async().await;
    let (_d, _j) = mock_discovery(&mut server, 1).await;
    let limited = reply(
        basic_token_mock(&mut server, AUDIENCE)
            .with_header("retry-after", "0")
            .expect(3),
        429,
        "",
    )
    .await;

    let aurora = builder(&server).build().unwrap();
    let err = aurora.token().await.unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { retry_after: Some(d), .. } if d == Duration::ZERO),
        "{err:?}"
    );
    assert!(err.is_transient());
    limited.assert_async().await;
}

#[tokio::test]
async fn http_429_with_a_long_retry_after_ends_at_once() {
    let mut server = mockito::Server::new_async().await;
    let (_d, _j) = mock_discovery(&mut server, 1).await;
    let limited = reply(
        server
            .mock("POST", "/oauth/token")
            .with_header("retry-after", "120")
            .expect(1),
        429,
        "",
    )
    .await;
    let aurora = builder(&server).build().unwrap();
    let err = aurora.token().await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    limited.assert_async().await;
}

#[tokio::test]
async fn discovery_is_fetched_once_for_many_tokens() {
    let mut server = mockito::Server::new_async().await;
    let (discovery, jwks) = mock_discovery(&mut server, 1).await;
    let token = token_issued_for(&mut server, "at-short", 60, 5).await;

    let clock = fixed_clock();
    let aurora = builder_with_clock(&server, &clock).build().unwrap();
    for _ in 0..5 {
        // Many callers, one token each round.
        for _ in 0..20 {
            aurora.token().await.unwrap();
        }
        // Past the token's expiry: the next round fetches a new token.
        clock.advance(Duration::from_secs(61));
    }
    assert_eq!(aurora.stats().fetches, 5);
    assert_mocks(&[&discovery, &jwks, &token]).await;
}

#[tokio::test]
async fn a_moved_token_endpoint_is_rediscovered_at_most_once_per_interval() {
    let mut server = mockito::Server::new_async().await;
    let base = server.url();
    // First discovery: the old endpoint. Second: the new one.
    let first = mock_document(&mut server, "/oauth/token", 1).await;
    let second = mock_document(&mut server, "/v2/oauth/token", 1).await;
    let jwks = mock_jwks(&mut server, 2).await;
    let old_ok = token_issued_for(&mut server, "at-old", 60, 1).await;
    let old_gone = mock_token_basic(
        &mut server,
        "/oauth/token",
        404,
        r#"{"error":"not_found"}"#,
        2,
    )
    .await;
    let new_ok = mock_token_basic(
        &mut server,
        "/v2/oauth/token",
        200,
        &token_body("at-new", 60),
        1,
    )
    .await;

    let clock = fixed_clock();
    let aurora = builder_with_clock(&server, &clock)
        .rediscovery_interval(Duration::from_secs(600))
        .build()
        .unwrap();
    assert_eq!(token_text(&aurora).await, "at-old");

    // Within the interval of the first discovery: a 404 is returned, no re-discovery.
    clock.advance(Duration::from_secs(61));
    let err = aurora.token().await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err:?}");

    // After the interval: the 404 triggers one re-discovery and the new endpoint serves.
    clock.advance(Duration::from_secs(600));
    assert_eq!(token_text(&aurora).await, "at-new");
    assert_eq!(
        aurora.token_endpoint().unwrap().as_str(),
        format!("{base}/v2/oauth/token")
    );
    assert_mocks(&[&first, &second, &jwks, &old_ok, &old_gone, &new_ok]).await;
}

#[tokio::test]
async fn a_rejection_never_triggers_rediscovery() {
    let mut server = mockito::Server::new_async().await;
    let (discovery, _j) = mock_discovery(&mut server, 1).await;
    let token = mock_token_basic(
        &mut server,
        "/oauth/token",
        401,
        r#"{"error":"access_denied"}"#,
        2,
    )
    .await;
    let clock = fixed_clock();
    let aurora = builder_with_clock(&server, &clock)
        .rediscovery_interval(Duration::ZERO)
        .build()
        .unwrap();
    aurora.token().await.unwrap_err();
    clock.advance(Duration::from_secs(3600));
    aurora.token().await.unwrap_err();
    assert_mocks(&[&discovery, &token]).await;
}

#[tokio::test]
async fn a_token_endpoint_that_refuses_connections_triggers_rediscovery() {
    // A port that was free a moment ago: connecting to it is refused.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut server = mockito::Server::new_async().await;
    let iss = issuer(&server);
    let stale = serde_json::json!({
        "issuer": iss,
        "authorization_endpoint": format!("http://{dead}/authorize"),
        "token_endpoint": format!("http://{dead}/oauth/token"),
        "jwks_uri": format!("{}/.well-known/jwks.json", server.url()),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"]
    })
    .to_string();
    let first = json_reply(discovery_mock(&mut server).expect(1), 200, stale).await;
    let second = mock_document(&mut server, "/oauth/token", 1).await;
    let _jwks = mock_jwks(&mut server, 2).await;
    let token = token_issued_for(&mut server, "at-moved", 60, 1).await;

    let aurora = builder(&server)
        .rediscovery_interval(Duration::ZERO)
        .build()
        .unwrap();
    let t = aurora.token().await.unwrap();
    assert_eq!(t.secret().expose_secret(), "at-moved");
    assert_mocks(&[&first, &second, &token]).await;
}

#[tokio::test]
async fn discovery_failures_are_clear_errors() {
    // No discovery document: malformed (a request was sent), naming the issuer and its variable.
    let mut server = mockito::Server::new_async().await;
    let missing = reply(discovery_mock(&mut server).expect(1), 404, "").await;
    let aurora = builder(&server).build().unwrap();
    let err = aurora.token().await.unwrap_err();
    assert!(matches!(&err, Error::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains(&issuer(&server)), "{err}");
    assert!(err.to_string().contains("AURORA_UK_ISSUER"), "{err}");
    missing.assert_async().await;

    // A garbled document: malformed, the body not quoted.
    let mut server = mockito::Server::new_async().await;
    let _garbled = json_reply(
        discovery_mock(&mut server),
        200,
        r#"{"issuer": "secret-looking-value-123", "#,
    )
    .await;
    let aurora = builder(&server).build().unwrap();
    let err = aurora.token().await.unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    assert!(
        !err.to_string().contains("secret-looking-value-123"),
        "{err}"
    );

    // A document without a token endpoint.
    let mut server = mockito::Server::new_async().await;
    let iss = issuer(&server);
    let doc = serde_json::json!({
        "issuer": iss,
        "authorization_endpoint": format!("{}/authorize", server.url()),
        "jwks_uri": format!("{}/.well-known/jwks.json", server.url()),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"]
    });
    let _doc = json_reply(discovery_mock(&mut server), 200, doc.to_string()).await;
    let _jwks = json_reply(server.mock("GET", "/.well-known/jwks.json"), 200, JWKS).await;
    let aurora = builder(&server).build().unwrap();
    let err = aurora.token().await.unwrap_err();
    assert!(err.to_string().contains("token_endpoint"), "{err}");
}

#[tokio::test]
async fn a_garbled_token_response_is_malformed_and_not_quoted() {
    let mut server = mockito::Server::new_async().await;
    let (_d, _j) = mock_discovery(&mut server, 1).await;
    let token = mock_token_basic(
        &mut server,
        "/oauth/token",
        200,
        r#"{"access_token":"at-leaky-123","token_type":"Bearer","expires_in":"soon"}"#,
        1,
    )
    .await;
    let aurora = builder(&server).build().unwrap();
    let err = aurora.token().await.unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("at-leaky-123") && !text.contains("soon"),
        "{text}"
    );
    token.assert_async().await;
}

#[tokio::test]
async fn a_non_bearer_token_type_is_refused() {
    let mut server = mockito::Server::new_async().await;
    let (_d, _j) = mock_discovery(&mut server, 1).await;
    let body = r#"{"access_token":"at-mac","token_type":"mac","expires_in":60}"#;
    let _t = mock_token_basic(&mut server, "/oauth/token", 200, body, 1).await;
    let aurora = builder(&server).build().unwrap();
    let err = aurora.token().await.unwrap_err();
    assert!(err.to_string().contains("not Bearer"), "{err}");
}

#[test]
fn dev_and_live_presets() {
    assert_eq!(
        Environment::Dev.issuer(),
        "https://aurora-dev.uk.auth0.com/"
    );
    assert_eq!(Environment::Live.issuer(), "https://auth.aurora.co.uk/");
    assert_eq!(
        Environment::Dev.audience(),
        "https://dev.client.integration.aurora.co.uk"
    );
    assert_eq!(
        Environment::Live.audience(),
        "https://api.client.integration.aurora.co.uk"
    );
    for (env, api) in [
        (
            Environment::Dev,
            "https://dev.client.integration.aurora.co.uk/",
        ),
        (
            Environment::Live,
            "https://api.client.integration.aurora.co.uk/",
        ),
    ] {
        let aurora = AuroraUk::builder()
            .environment(env)
            .client_id("id")
            .client_secret("secret")
            .build()
            .unwrap();
        assert_eq!(aurora.environment(), env);
        assert_eq!(aurora.issuer(), env.issuer());
        assert_eq!(aurora.audience(), env.audience());
        assert_eq!(aurora.api_base().as_str(), api);
    }
    assert_eq!("live".parse::<Environment>().unwrap(), Environment::Live);
    assert_eq!(" DEV ".parse::<Environment>().unwrap(), Environment::Dev);
}

#[test]
fn mixing_dev_and_live_presets_is_refused() {
    let err = AuroraUk::builder()
        .environment(Environment::Live)
        .issuer(Environment::Dev.issuer())
        .client_id("id")
        .client_secret("secret")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "AURORA_UK_ISSUER"),
        "{err}"
    );
    let err = AuroraUk::builder()
        .environment(Environment::Dev)
        .audience(Environment::Live.audience())
        .client_id("id")
        .client_secret("secret")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "AURORA_UK_AUDIENCE"),
        "{err}"
    );
}

#[tokio::test]
async fn dev_and_live_never_share_a_stored_token() {
    let store = Arc::new(MemoryStore::new());
    let mut dev_server = mockito::Server::new_async().await;
    let (_d, _j) = mock_discovery(&mut dev_server, 1).await;
    let dev_token = token_issued(&mut dev_server, "at-dev", 1).await;
    let dev = builder(&dev_server).store(store.clone()).build().unwrap();
    assert_eq!(token_text(&dev).await, "at-dev");
    dev_token.assert_async().await;

    let dev_key = StoreKey::new("aurora-uk", &issuer(&dev_server), AUDIENCE, CLIENT_ID);
    let stored = stored_state(&*store, &dev_key).await;
    assert_eq!(stored.access_token.secret().expose_secret(), "at-dev");

    // A live provider sharing the store and the client id asks its own tenant.
    let mut live_server = mockito::Server::new_async().await;
    let (_d2, _j2) = mock_discovery(&mut live_server, 1).await;
    let live_audience = Environment::Live.audience();
    let live_token = json_reply(
        basic_token_mock(&mut live_server, live_audience).expect(1),
        200,
        token_body("at-live", 86400),
    )
    .await;
    let live = AuroraUk::builder()
        .environment(Environment::Live)
        .issuer(issuer(&live_server))
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .http_client(http_client())
        .store(store.clone())
        .build()
        .unwrap();
    assert_eq!(token_text(&live).await, "at-live");
    live_token.assert_async().await;
    assert_eq!(token_text(&dev).await, "at-dev");
}

#[test]
fn build_names_the_wrong_field() {
    let base = || {
        AuroraUk::builder()
            .environment(Environment::Dev)
            .client_id("id")
            .client_secret("secret")
    };
    let field = |r: Result<AuroraUk, Error>| match r.unwrap_err() {
        Error::Config { field, .. } => field,
        other => panic!("expected a config error, got {other:?}"),
    };
    // Each builder, and the field its `build` names.
    let dev = || AuroraUk::builder().environment(Environment::Dev);
    let cases = [
        (
            AuroraUk::builder().client_id("id").client_secret("s"),
            "AURORA_UK_ENV",
        ),
        (dev().client_secret("s"), "AURORA_UK_CLIENT_ID"),
        (dev().client_id("id"), "AURORA_UK_CLIENT_SECRET"),
        (base().client_secret(""), "AURORA_UK_CLIENT_SECRET"),
        (base().issuer("http://aurora.example/"), "AURORA_UK_ISSUER"),
        (base().issuer("not a url"), "AURORA_UK_ISSUER"),
        (base().audience(""), "AURORA_UK_AUDIENCE"),
        (base().audience(" https://a "), "AURORA_UK_AUDIENCE"),
        (base().auth_header_name("bad header"), "auth_header_name"),
        (base().api_base("ftp://x"), "api_base"),
    ];
    for (builder, want) in cases {
        assert_eq!(field(builder.build()), want);
    }
}

#[test]
fn from_env_reads_exactly_the_documented_variables() {
    let aurora = aurora_uk_auth::AuroraUkBuilder::from_env_with(lookup(&[
        ("AURORA_UK_ENV", "live"),
        ("AURORA_UK_CLIENT_ID", "env-id"),
        ("AURORA_UK_CLIENT_SECRET", "env-secret"),
    ]))
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(aurora.environment(), Environment::Live);
    assert_eq!(aurora.issuer(), Environment::Live.issuer());
    assert_eq!(aurora.audience(), Environment::Live.audience());
    assert_eq!(aurora.client_id(), "env-id");

    let aurora = aurora_uk_auth::AuroraUkBuilder::from_env_with(lookup(&[
        ("AURORA_UK_ENV", "dev"),
        ("AURORA_UK_ISSUER", "https://proxy.example/"),
        ("AURORA_UK_AUDIENCE", "https://aud.example"),
        ("AURORA_UK_CLIENT_ID", "env-id"),
        ("AURORA_UK_CLIENT_SECRET", "env-secret"),
    ]))
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(aurora.issuer(), "https://proxy.example/");
    assert_eq!(aurora.audience(), "https://aud.example");

    // By the convention every builder follows, a value that cannot be held fails in
    // `from_env_with` and a missing or wrong one in `build`: either way, the variable is named.
    let err_field = |pairs: &[(&str, &str)]| {
        let built = AuroraUkBuilder::from_env_with(lookup(pairs)).and_then(AuroraUkBuilder::build);
        match built.unwrap_err() {
            Error::Config { field, reason, .. } => (field, reason),
            other => panic!("{other:?}"),
        }
    };
    let (env, id, secret) = (
        "AURORA_UK_ENV",
        "AURORA_UK_CLIENT_ID",
        "AURORA_UK_CLIENT_SECRET",
    );
    // The variables set, the one the error names, and its reason where it matters. Blank
    // counts as unset, as for every other provider: "is required", not "has whitespace".
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<&'a str>);
    #[rustfmt::skip]
    let cases: [Case; 6] = [
        (&[(id, "i"), (secret, "s")], env, None),
        (&[(env, "dev"), (id, ""), (secret, "s")], id, None),
        (&[(env, "dev"), (id, "i")], secret, None),
        (&[(env, " \t"), (id, "i"), (secret, "s")], env, Some("is required (`dev` or `live`)")),
        (&[(env, "dev"), (id, "   "), (secret, "s")], id, Some("is required")),
        (&[(env, "dev"), (id, "i"), (secret, "\n")], secret, Some("is required")),
    ];
    for (pairs, want_field, want_reason) in cases {
        let (field, reason) = err_field(pairs);
        assert_eq!(field, want_field, "{pairs:?}");
        if let Some(want_reason) = want_reason {
            assert_eq!(reason, want_reason, "{pairs:?}");
        }
    }
    let (field, reason) = err_field(&[
        ("AURORA_UK_ENV", "staging"),
        ("AURORA_UK_CLIENT_ID", "i"),
        ("AURORA_UK_CLIENT_SECRET", "s"),
    ]);
    assert_eq!(field, "AURORA_UK_ENV");
    assert!(reason.contains("staging"), "{reason}");
    // A blank optional override is no override.
    let aurora = aurora_uk_auth::AuroraUkBuilder::from_env_with(lookup(&[
        ("AURORA_UK_ENV", "dev"),
        ("AURORA_UK_ISSUER", " "),
        ("AURORA_UK_AUDIENCE", " "),
        ("AURORA_UK_CLIENT_ID", "env-id"),
        ("AURORA_UK_CLIENT_SECRET", "env-secret"),
    ]))
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(aurora.issuer(), Environment::Dev.issuer());
    assert_eq!(aurora.audience(), Environment::Dev.audience());
}

#[tokio::test]
async fn debug_output_never_shows_the_secret_or_the_token() {
    let mut server = mockito::Server::new_async().await;
    let (_d, _j) = mock_discovery(&mut server, 1).await;
    let _t = token_issued(&mut server, "at-debug-secret", 1).await;
    let b = builder(&server);
    let text = format!("{b:?}");
    assert!(!text.contains(CLIENT_SECRET), "{text}");
    let aurora = b.build().unwrap();
    aurora.token().await.unwrap();
    let text = format!("{aurora:?} {aurora:#?}");
    assert!(!text.contains(CLIENT_SECRET), "{text}");
    assert!(!text.contains("at-debug-secret"), "{text}");
    assert!(
        text.contains(CLIENT_ID) && text.contains("/oauth/token"),
        "{text}"
    );
}

#[tokio::test]
async fn an_echoed_client_secret_is_redacted() {
    for body in [
        // The standard shape, parsed by oauth2.
        serde_json::json!({
            "error": "access_denied",
            "error_description": format!("Unauthorized: secret {CLIENT_SECRET} is wrong"),
        }),
        // Another shape, read leniently by the core.
        serde_json::json!({"message": format!("Unauthorized: secret {CLIENT_SECRET} is wrong")}),
    ] {
        let mut server = mockito::Server::new_async().await;
        let (_d, _j) = mock_discovery(&mut server, 1).await;
        let token = mock_token_basic(&mut server, "/oauth/token", 401, &body.to_string(), 1).await;
        let aurora = builder(&server).build().unwrap();
        let err = aurora.token().await.unwrap_err();
        token.assert_async().await;
        assert_eq!(Refusal::of(&err), Some(Refusal::BadCredentials));
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(CLIENT_SECRET), "{shown}");
        assert!(
            err.to_string()
                .ends_with("Unauthorized: secret [redacted] is wrong"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn refresh_discovery_fetches_the_document_again_now() {
    let mut server = mockito::Server::new_async().await;
    // Once for the first token, once for the refresh: the rediscovery interval does not apply.
    let (discovery, jwks) = mock_discovery(&mut server, 2).await;
    let token = token_issued(&mut server, "at-1", 1).await;
    let clock = fixed_clock();
    let aurora = builder_with_clock(&server, &clock)
        .rediscovery_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert_eq!(token_text(&aurora).await, "at-1");
    assert_eq!(aurora.discovered_at(), Some(epoch()));
    clock.advance(Duration::from_secs(60));
    aurora.refresh_discovery().await.unwrap();
    assert_eq!(
        aurora.discovered_at(),
        Some(epoch() + Duration::from_secs(60))
    );
    assert_eq!(
        aurora.token_endpoint().unwrap().as_str(),
        format!("{}/oauth/token", server.url())
    );
    // The cached token is still served: refreshing discovery sends no token request.
    assert_eq!(token_text(&aurora).await, "at-1");
    assert_mocks(&[&discovery, &jwks, &token]).await;
}

#[tokio::test]
async fn refresh_discovery_picks_up_a_moved_token_endpoint_and_keeps_the_old_one_on_failure() {
    let mut server = mockito::Server::new_async().await;
    let doc_issuer = issuer(&server);
    let (first, _j1) = mock_discovery_with(&mut server, 1, &doc_issuer, "/oauth/token").await;
    let aurora = builder(&server).build().unwrap();
    aurora.refresh_discovery().await.unwrap();
    first.assert_async().await;
    first.remove_async().await;
    let (second, _j2) = mock_discovery_with(&mut server, 1, &doc_issuer, "/v2/token").await;
    aurora.refresh_discovery().await.unwrap();
    second.assert_async().await;
    assert_eq!(
        aurora.token_endpoint().unwrap().as_str(),
        format!("{}/v2/token", server.url())
    );
    second.remove_async().await;
    let gone = reply(discovery_mock(&mut server).expect(1), 404, "").await;
    let err = aurora.refresh_discovery().await.unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    gone.assert_async().await;
    assert_eq!(
        aurora.token_endpoint().unwrap().as_str(),
        format!("{}/v2/token", server.url())
    );
}

#[tokio::test]
async fn look_alike_client_ids_and_audiences_never_share_a_principal() {
    // Each beside the plain value it resembles: Unicode case mapping, case folding, NFKC or
    // Unicode trimming would turn the look-alike into it.
    let client_ids = [
        "kim-client",
        "\u{212A}im-client",  // KELVIN SIGN
        "\u{FF4B}im-client",  // FULLWIDTH LATIN SMALL LETTER K
        "kim-client\u{200B}", // a trailing ZERO WIDTH SPACE
        "sam-client",
        "\u{017F}am-client", // LATIN SMALL LETTER LONG S
    ];
    let audience_kelvin = AUDIENCE.replace(".uk", ".u\u{212A}");
    let audience_zwsp = format!("{AUDIENCE}\u{200B}");
    let audiences = [AUDIENCE, &audience_kelvin, &audience_zwsp];
    let mut server = mockito::Server::new_async().await;
    let (discovery, jwks) = mock_discovery(&mut server, client_ids.len() + audiences.len()).await;
    let mut mocks = Vec::new();
    for (i, client_id) in client_ids.iter().enumerate() {
        let mock = json_reply(
            server
                .mock("POST", "/oauth/token")
                .match_header("authorization", Matcher::Missing)
                .match_request(post_form(client_id, AUDIENCE))
                .expect(1),
            200,
            token_body(&format!("at-client-{i}"), 86400),
        )
        .await;
        mocks.push(mock);
    }
    for (i, audience) in audiences.iter().enumerate() {
        let mock = json_reply(
            basic_token_mock(&mut server, audience).expect(1),
            200,
            token_body(&format!("at-audience-{i}"), 86400),
        )
        .await;
        mocks.push(mock);
    }

    // One store, one process per client.
    let store = Arc::new(MemoryStore::new());
    let mut keys = Vec::new();
    for (i, client_id) in client_ids.iter().enumerate() {
        let aurora = builder(&server)
            .client_id(*client_id)
            .client_auth(ClientAuth::RequestBody)
            .store(store.clone())
            .build()
            .unwrap();
        assert_eq!(
            token_text(&aurora).await,
            format!("at-client-{i}"),
            "{} was served another client's token",
            client_id.escape_default()
        );
        keys.push(StoreKey::new(
            "aurora-uk",
            &issuer(&server),
            AUDIENCE,
            client_id,
        ));
    }
    for (i, audience) in audiences.iter().enumerate() {
        let aurora = builder(&server)
            .audience(*audience)
            .store(store.clone())
            .build()
            .unwrap();
        assert_eq!(
            token_text(&aurora).await,
            format!("at-audience-{i}"),
            "{} was served another audience's token",
            audience.escape_default()
        );
        if i > 0 {
            keys.push(StoreKey::new(
                "aurora-uk",
                &issuer(&server),
                audience,
                CLIENT_ID,
            ));
        }
    }
    // The plain audience with the default client id is one more principal.
    keys.push(StoreKey::new(
        "aurora-uk",
        &issuer(&server),
        AUDIENCE,
        CLIENT_ID,
    ));
    let mut stored = stored_keys(&*store).await;
    stored.sort();
    keys.sort();
    assert_eq!(stored, keys);

    // A no-break space is not trimmed: such a value is refused, never taken for the plain one.
    let field = |r: Result<AuroraUk, Error>| match r.unwrap_err() {
        Error::Config { field, .. } => field,
        other => panic!("expected a config error, got {other:?}"),
    };
    assert_eq!(
        field(builder(&server).client_id("kim-client\u{A0}").build()),
        "AURORA_UK_CLIENT_ID"
    );
    assert_eq!(
        field(
            builder(&server)
                .audience(format!("{AUDIENCE}\u{A0}"))
                .build()
        ),
        "AURORA_UK_AUDIENCE"
    );
    assert_mocks(&[&discovery, &jwks]).await;
    for mock in mocks {
        mock.assert_async().await;
    }
}
