//! Partner apps (backend and embedded) against a mockito server: what is sent, what comes back,
//! what is cached.

mod common;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use aurora_solar_auth::{Environment, Error, PartnerApp, PartnerAppBuilder, TokenProvider};
use common::{
    APP_KEY, PATH_T1, SEED_EXPIRES_AT, app_builder, backend_mock, clock, embedded_key_issued,
    embedded_mock, fast_http, http_client, key_body, key_issued_for, silent_server, t1_key_issued,
    t1_rate_limited,
};
use mockito::{Matcher, Server, ServerGuard};
use token_provider::testing::{
    assert_mocks, json_reply, lookup, reply, stored_keys, stored_state, token_text,
};
use token_provider::{MemoryStore, StoreKey, TokenStore};

const SEED_AT: &str = "2023-07-29 04:30:46 UTC";

fn builder(server: &ServerGuard, clock: &token_provider::ManualClock) -> PartnerAppBuilder {
    app_builder(server.url(), clock)
}

fn app(server: &ServerGuard, clock: &token_provider::ManualClock) -> PartnerApp {
    builder(server, clock).build().unwrap()
}

/// `tenant`'s key from a new app on `server`.
async fn token_for(
    server: &ServerGuard,
    clock: &token_provider::ManualClock,
    tenant: &str,
) -> Result<token_provider::AccessToken, Error> {
    app(server, clock).tenant(tenant).unwrap().token().await
}

/// Tenant `t1`'s key from a new app on `server`.
async fn t1_token(
    server: &ServerGuard,
    clock: &token_provider::ManualClock,
) -> Result<token_provider::AccessToken, Error> {
    token_for(server, clock, "t1").await
}

#[tokio::test]
async fn backend_exchange_sends_the_key_and_no_session_token() {
    let mut server = Server::new_async().await;
    let mock = json_reply(
        backend_mock(&mut server, PATH_T1).expect(1),
        200,
        key_body("tk_test_fd1cc8562360ff06b6e524aa", SEED_AT),
    )
    .await;
    let clock = clock();
    let tenant = app(&server, &clock).tenant("t1").unwrap();
    assert!(!tenant.is_embedded());
    assert_eq!(tenant.tenant_id(), "t1");
    let key = tenant.token().await.unwrap();
    mock.assert_async().await;
    assert_eq!(
        key.secret().expose_secret(),
        "tk_test_fd1cc8562360ff06b6e524aa"
    );
    assert_eq!(key.token_type(), "Bearer");
    assert_eq!(
        key.expires_at(),
        Some(UNIX_EPOCH + Duration::from_secs(SEED_EXPIRES_AT))
    );
}

#[tokio::test]
async fn ids_are_path_encoded() {
    let mut server = Server::new_async().await;
    let mock = reply(
        backend_mock(
            &mut server,
            "/partner_applications/app-1/tenants/a%2Fb%3Fc/create_token",
        )
        .expect(1),
        200,
        key_body("tk-enc", SEED_AT),
    )
    .await;
    let clock = clock();
    let key = token_for(&server, &clock, "a/b?c").await.unwrap();
    mock.assert_async().await;
    assert_eq!(key.secret().expose_secret(), "tk-enc");
}

#[tokio::test]
async fn a_cached_key_is_served_without_a_request() {
    let mut server = Server::new_async().await;
    let mock = t1_key_issued(&mut server, "tk-cached", SEED_AT).await;
    let clock = clock();
    let app = app(&server, &clock);
    let first = app.tenant("t1").unwrap().token().await.unwrap();
    clock.advance(Duration::from_secs(3600));
    // A second handle on the same tenant is the same cache.
    let again = app.tenant("t1").unwrap();
    let second = again.token().await.unwrap();
    let third = app.clone().tenant(" t1 ").unwrap().token().await.unwrap();
    mock.assert_async().await;
    // The same key (a thread's copy of it: equal, not necessarily the same allocation).
    assert!(first == second && first == third);
    let stats = again.stats();
    assert_eq!((stats.fetches, stats.hits), (1, 2), "{stats:?}");
}

#[tokio::test]
async fn two_tenants_get_two_requests_and_two_caches() {
    let mut server = Server::new_async().await;
    let m1 = t1_key_issued(&mut server, "tk-one", SEED_AT).await;
    let m2 = key_issued_for(&mut server, "t2", "tk-two", SEED_AT).await;
    let clock = clock();
    let app = app(&server, &clock);
    let (t1, t2) = (app.tenant("t1").unwrap(), app.tenant("t2").unwrap());
    for _ in 0..3 {
        assert_eq!(token_text(&t1).await, "tk-one");
        assert_eq!(token_text(&t2).await, "tk-two");
    }
    assert_mocks(&[&m1, &m2]).await;
    assert_eq!(t1.stats().fetches, 1);
    assert_eq!(t2.stats().fetches, 1);
}

#[tokio::test]
async fn the_key_is_renewed_before_it_expires() {
    let mut server = Server::new_async().await;
    let first = t1_key_issued(&mut server, "tk-first", SEED_AT).await;
    let second = t1_key_issued(&mut server, "tk-second", "2023-07-29 17:30:46 UTC").await;
    let clock = clock();
    let tenant = app(&server, &clock).tenant("t1").unwrap();
    assert_eq!(token_text(&tenant).await, "tk-first");
    // Two minutes before expiry: still valid, so it is served, and one refresh starts.
    clock.advance(Duration::from_secs(13 * 3600 - 120));
    assert_eq!(token_text(&tenant).await, "tk-first");
    let mut renewed = None;
    for _ in 0..200 {
        let cached = tenant.cached().unwrap();
        if cached.secret().expose_secret() == "tk-second" {
            renewed = Some(cached);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let renewed = renewed.expect("the key was not renewed in the background");
    assert_eq!(
        renewed.expires_at(),
        Some(UNIX_EPOCH + Duration::from_secs(SEED_EXPIRES_AT + 13 * 3600))
    );
    assert_mocks(&[&first, &second]).await;
}

#[tokio::test]
async fn an_invalidated_key_is_fetched_again() {
    let mut server = Server::new_async().await;
    let first = t1_key_issued(&mut server, "tk-old", SEED_AT).await;
    let second = t1_key_issued(&mut server, "tk-new", SEED_AT).await;
    let clock = clock();
    let tenant = app(&server, &clock).tenant("t1").unwrap();
    let old = tenant.token().await.unwrap();
    tenant.invalidate(&old);
    assert_eq!(token_text(&tenant).await, "tk-new");
    assert_mocks(&[&first, &second]).await;
}

#[tokio::test]
async fn rfc3339_expires_at_is_accepted() {
    let mut server = Server::new_async().await;
    let mock = t1_key_issued(&mut server, "tk-rfc", "2023-07-29T06:30:46+02:00").await;
    let clock = clock();
    let key = t1_token(&server, &clock).await.unwrap();
    mock.assert_async().await;
    assert_eq!(
        key.expires_at(),
        Some(UNIX_EPOCH + Duration::from_secs(SEED_EXPIRES_AT))
    );
}

#[tokio::test]
async fn unreadable_answers_are_malformed_and_not_quoted() {
    let cases = [
        key_body("tk-leak-1", "next tuesday"),
        key_body("tk-leak-2", "2023-07-29 04:30:46"),
        r#"{"token":{"bearer_token":"tk-leak-3"}}"#.to_owned(),
        r#"{"token":{"expires_at":"2023-07-29 04:30:46 UTC"}}"#.to_owned(),
        key_body("  ", SEED_AT),
        r#"{"bearer_token":"tk-leak-4","expires_at":"2023-07-29 04:30:46 UTC"}"#.to_owned(),
        "tk-leak-5 not json".to_owned(),
    ];
    for body in cases {
        let mut server = Server::new_async().await;
        let mock = reply(backend_mock(&mut server, PATH_T1).expect(1), 200, &body).await;
        let clock = clock();
        let err = t1_token(&server, &clock).await.unwrap_err();
        mock.assert_async().await;
        assert!(matches!(err, Error::Malformed { .. }), "{body}: {err:?}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("tk-leak"), "{shown}");
    }
}

#[tokio::test]
async fn refusals_are_rejections_and_not_retried() {
    let cases: [(usize, &str, Option<&str>, Option<&str>); 3] = [
        (
            401,
            r#"{"error":"unauthorized","message":"Invalid application key"}"#,
            Some("unauthorized"),
            Some("Invalid application key"),
        ),
        (403, r#"{"message":"Forbidden"}"#, None, Some("Forbidden")),
        (403, "<html>no</html>", None, None),
    ];
    for (status, body, code, description) in cases {
        let mut server = Server::new_async().await;
        let mock = reply(backend_mock(&mut server, PATH_T1).expect(1), status, body).await;
        let clock = clock();
        let err = t1_token(&server, &clock).await.unwrap_err();
        mock.assert_async().await;
        let Error::Rejected {
            status: got,
            code: got_code,
            description: got_description,
            ..
        } = &err
        else {
            panic!("{status}: {err:?}");
        };
        assert_eq!(*got, Some(status as u16));
        assert_eq!(got_code.as_deref(), code);
        match description {
            Some(d) => assert!(got_description.as_deref().unwrap().contains(d), "{err}"),
            None => assert_eq!(got_description.as_deref(), None),
        }
        assert!(!err.is_transient());
        assert!(!err.to_string().contains("<html>"), "{err}");
    }
}

#[tokio::test]
async fn a_404_or_a_web_page_names_the_url_and_the_settings() {
    for (status, content_type, body, answered) in [
        (
            404,
            "application/json",
            "",
            "HTTP 404 (no such application or tenant",
        ),
        (
            200,
            "text/html",
            "<!doctype html><p>",
            "with an HTML page (HTTP 200)",
        ),
    ] {
        let mut server = Server::new_async().await;
        let mock = reply(
            backend_mock(&mut server, PATH_T1)
                .with_header("content-type", content_type)
                .expect(1),
            status,
            body,
        )
        .await;
        let clock = clock();
        let tenant = app(&server, &clock).tenant("t1").unwrap();
        let err = tenant.get().await.unwrap_err();
        mock.assert_async().await;
        assert!(
            matches!(&err, Error::Config { field, .. } if field == "AURORA_SOLAR_BASE_URL"),
            "{err:?}"
        );
        let shown = err.to_string();
        let url = format!("{}{PATH_T1} answered {answered}", server.url());
        assert!(shown.contains(&url), "{shown}");
        if status == 404 {
            assert!(
                shown.ends_with(
                    "AURORA_SOLAR_APPLICATION_ID and AURORA_SOLAR_TENANT_ID make the path)"
                ),
                "{shown}"
            );
        }
        assert!(!shown.contains(APP_KEY), "{shown}");
        assert!(!err.is_transient());
    }
}

#[tokio::test]
async fn server_errors_are_retried() {
    let mut server = Server::new_async().await;
    let failing = reply(backend_mock(&mut server, PATH_T1).expect(2), 503, "").await;
    let ok = t1_key_issued(&mut server, "tk-after-503", SEED_AT).await;
    let clock = clock();
    let key = t1_token(&server, &clock).await.unwrap();
    assert_eq!(key.secret().expose_secret(), "tk-after-503");
    assert_mocks(&[&failing, &ok]).await;
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let mut server = Server::new_async().await;
    let limited = t1_rate_limited(&mut server, "1").await;
    let ok = t1_key_issued(&mut server, "tk-after-429", SEED_AT).await;
    let clock = clock();
    let started = tokio::time::Instant::now();
    let key = t1_token(&server, &clock).await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
    assert_eq!(key.secret().expose_secret(), "tk-after-429");
    assert_mocks(&[&limited, &ok]).await;
}

#[tokio::test]
async fn a_429_asking_too_long_a_wait_ends_as_rate_limited() {
    let mut server = Server::new_async().await;
    let limited = t1_rate_limited(&mut server, "60").await;
    let clock = clock();
    let err = t1_token(&server, &clock).await.unwrap_err();
    limited.assert_async().await;
    assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn embedded_exchange_sends_the_session_token_in_the_query() {
    let mut server = Server::new_async().await;
    let mock = embedded_key_issued(&mut server, "sess+one/=", "tk-embedded", SEED_AT).await;
    let clock = clock();
    let tenant = app(&server, &clock).embedded("t1", "sess+one/=").unwrap();
    assert!(tenant.is_embedded());
    let key = tenant.token().await.unwrap();
    assert_eq!(key.secret().expose_secret(), "tk-embedded");
    assert_eq!(
        key.expires_at(),
        Some(UNIX_EPOCH + Duration::from_secs(SEED_EXPIRES_AT))
    );
    // Served from the cache while fresh: no second exchange.
    assert_eq!(tenant.token().await.unwrap(), key);
    mock.assert_async().await;
}

#[tokio::test]
async fn a_spent_session_token_is_refused_locally() {
    let mut server = Server::new_async().await;
    let mock = embedded_key_issued(&mut server, "sess-once", "tk-embedded", SEED_AT).await;
    // Anything else reaching the server would be a second exchange.
    let stray = server
        .mock("POST", Matcher::Any)
        .expect(0)
        .create_async()
        .await;
    let clock = clock();
    let tenant = app(&server, &clock).embedded("t1", "sess-once").unwrap();
    tenant.token().await.unwrap();
    // After expiry the cache would renew; the session token is spent.
    clock.advance(Duration::from_secs(13 * 3600 + 1));
    let err = tenant.token().await.unwrap_err();
    assert!(err.needs_user_action(), "{err:?}");
    assert!(
        err.to_string().contains("needs a new session token"),
        "{err}"
    );
    assert!(!err.is_transient());
    assert_mocks(&[&mock, &stray]).await;
}

#[tokio::test]
async fn a_401_to_the_exchange_asks_for_a_new_session_token_in_the_same_words() {
    let mut server = Server::new_async().await;
    let mock = reply(
        embedded_mock(&mut server, "sess-expired").expect(1),
        401,
        r#"{"error":"invalid session token"}"#,
    )
    .await;
    let clock = clock();
    let tenant = app(&server, &clock).embedded("t1", "sess-expired").unwrap();
    let remote = tenant.token().await.unwrap_err();
    assert!(remote.needs_user_action(), "{remote:?}");
    // Past the negative cache: a new attempt is refused locally, with the same message.
    clock.advance(Duration::from_secs(60));
    let local = tenant.token().await.unwrap_err();
    assert!(local.needs_user_action(), "{local:?}");
    assert_eq!(remote.to_string(), local.to_string());
    mock.assert_async().await;
}

#[tokio::test]
async fn a_timed_out_exchange_is_not_retried() {
    let (base, seen) = silent_server();
    let clock = clock();
    let app = app_builder(base, &clock)
        .http_client(fast_http(Duration::from_millis(300)))
        .build()
        .unwrap();
    let tenant = app.embedded("t1", "sess-slow").unwrap();
    let err = tenant.token().await.unwrap_err();
    assert!(
        matches!(err, Error::TimedOut { attempts: 1, .. }),
        "{err:?}"
    );
    // Past the cache's backoff: a new attempt must not send the token again.
    clock.advance(Duration::from_secs(600));
    let again = tenant.token().await.unwrap_err();
    assert!(again.needs_user_action(), "{again:?}");
    // The server's thread records a request once it has read it, which on a busy machine can
    // be after the client gave up: wait (at most 5 s) for the first, then a moment more, so a
    // second sent later is seen too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with(
            "POST /partner_applications/app-1/tenants/t1/create_token?session_token=sess-slow "
        ),
        "{}",
        seen[0]
    );
}

#[tokio::test]
async fn a_5xx_to_the_exchange_is_not_retried() {
    let mut server = Server::new_async().await;
    let mock = reply(embedded_mock(&mut server, "sess-5xx").expect(1), 503, "").await;
    let clock = clock();
    let tenant = app(&server, &clock).embedded("t1", "sess-5xx").unwrap();
    let err = tenant.token().await.unwrap_err();
    assert!(matches!(err, Error::Status { status: 503, .. }), "{err:?}");
    clock.advance(Duration::from_secs(600));
    assert!(tenant.token().await.unwrap_err().needs_user_action());
    mock.assert_async().await;
}

#[tokio::test]
async fn each_session_token_gets_its_own_provider() {
    let mut server = Server::new_async().await;
    let m1 = embedded_key_issued(&mut server, "sess-a", "tk-a", SEED_AT).await;
    let m2 = embedded_key_issued(&mut server, "sess-b", "tk-b", SEED_AT).await;
    let clock = clock();
    let app = app(&server, &clock);
    let a = app.embedded("t1", "sess-a").unwrap().token().await.unwrap();
    let b = app.embedded("t1", "sess-b").unwrap().token().await.unwrap();
    assert_eq!(a.secret().expose_secret(), "tk-a");
    assert_eq!(b.secret().expose_secret(), "tk-b");
    assert_mocks(&[&m1, &m2]).await;
}

#[test]
fn keys_of_the_other_environment_are_refused_at_build_time() {
    let build = |env: Environment, key: &str| {
        PartnerApp::builder()
            .environment(env)
            .application_id("app-1")
            .application_key(key)
            .build()
    };
    for (env, key) in [
        (Environment::Sandbox, "sk_prod_abc123"),
        (Environment::Sandbox, "rk_prod_abc123"),
        (Environment::Production, "sk_sand_abc123"),
        (Environment::Production, "rk_sand_abc123"),
    ] {
        let err = build(env, key).unwrap_err();
        let Error::Config { field, reason, .. } = &err else {
            panic!("{env} {key}: {err:?}");
        };
        assert_eq!(field, "AURORA_SOLAR_APPLICATION_KEY");
        assert!(reason.contains(env.as_str()), "{reason}");
        assert!(!err.to_string().contains("abc123"), "{err}");
    }
    for (env, key) in [
        (Environment::Sandbox, "sk_sand_abc123"),
        (Environment::Sandbox, "opaque-key"),
        (Environment::Production, "sk_prod_abc123"),
        (Environment::Production, "rk_prod_abc123"),
    ] {
        let app = build(env, key).unwrap();
        assert_eq!(app.environment(), Some(env));
        assert_eq!(app.base_url().as_str(), format!("{}/", env.base_url()));
    }
    // A custom base URL could be either environment: no check.
    let app = PartnerApp::builder()
        .environment(Environment::Sandbox)
        .base_url("https://aurora-proxy.example/api")
        .application_id("app-1")
        .application_key("sk_prod_abc123")
        .build()
        .unwrap();
    assert_eq!(app.environment(), None);
    assert_eq!(app.base_url().as_str(), "https://aurora-proxy.example/api");
}

#[test]
fn build_errors_name_the_field() {
    let field_of = |r: Result<PartnerApp, Error>| match r.unwrap_err() {
        Error::Config { field, .. } => field,
        other => panic!("{other:?}"),
    };
    let full = || {
        PartnerApp::builder()
            .environment(Environment::Sandbox)
            .application_id("app-1")
            .application_key("key-1")
    };
    // Each builder, and the field its `build` names.
    let cases = [
        (
            PartnerApp::builder()
                .application_id("a")
                .application_key("k"),
            "AURORA_SOLAR_ENV",
        ),
        (
            full().base_url("http://example.com"),
            "AURORA_SOLAR_BASE_URL",
        ),
        (full().application_id("  "), "AURORA_SOLAR_APPLICATION_ID"),
        (full().application_key(""), "AURORA_SOLAR_APPLICATION_KEY"),
        (
            full().application_key("key with space"),
            "AURORA_SOLAR_APPLICATION_KEY",
        ),
        (full().session_token("sess"), "AURORA_SOLAR_TENANT_ID"),
        (full().tenant_id(" "), "AURORA_SOLAR_TENANT_ID"),
    ];
    for (builder, want) in cases {
        assert_eq!(field_of(builder.build()), want);
    }
    let app = full().build().unwrap();
    assert!(
        matches!(app.tenant(""), Err(Error::Config { ref field, .. }) if field == "AURORA_SOLAR_TENANT_ID")
    );
    assert!(
        matches!(app.embedded("t", ""), Err(Error::Config { ref field, .. }) if field == "AURORA_SOLAR_SESSION_TOKEN")
    );
}

#[tokio::test]
async fn from_env_with_reads_the_documented_variables() {
    let mut server = Server::new_async().await;
    let url = server.url();
    let backend = t1_key_issued(&mut server, "tk-env", SEED_AT).await;
    let vars = [
        ("AURORA_SOLAR_BASE_URL", url.as_str()),
        ("AURORA_SOLAR_APPLICATION_ID", "app-1"),
        ("AURORA_SOLAR_APPLICATION_KEY", APP_KEY),
        ("AURORA_SOLAR_TENANT_ID", "t1"),
        ("AURORA_SOLAR_SESSION_TOKEN", ""),
    ];
    let app = PartnerAppBuilder::from_env_with(lookup(&vars))
        .unwrap()
        .http_client(http_client())
        .clock(Arc::new(clock()))
        .build()
        .unwrap();
    let default = app.default_tenant().unwrap();
    assert!(!default.is_embedded());
    // The app is a provider for its default tenant, sharing the tenant's cache.
    let key = app.token().await.unwrap();
    assert_eq!(key.secret().expose_secret(), "tk-env");
    assert!(app.tenant("t1").unwrap().token().await.unwrap() == key);
    backend.assert_async().await;

    let embedded = embedded_key_issued(&mut server, "sess-env", "tk-env-embedded", SEED_AT).await;
    let mut with_session = vars.to_vec();
    with_session[4] = ("AURORA_SOLAR_SESSION_TOKEN", "sess-env");
    let app = PartnerAppBuilder::from_env_with(lookup(&with_session))
        .unwrap()
        .http_client(http_client())
        .clock(Arc::new(clock()))
        .build()
        .unwrap();
    assert!(app.default_tenant().unwrap().is_embedded());
    assert_eq!(token_text(&app).await, "tk-env-embedded");
    embedded.assert_async().await;
}

#[test]
fn from_env_with_names_the_missing_variable() {
    let field_of = |vars: &[(&str, &str)]| {
        let err = PartnerAppBuilder::from_env_with(lookup(vars))
            .and_then(PartnerAppBuilder::build)
            .unwrap_err();
        match err {
            Error::Config { field, .. } => field,
            other => panic!("{other:?}"),
        }
    };
    let all = [
        ("AURORA_SOLAR_ENV", "sandbox"),
        ("AURORA_SOLAR_APPLICATION_ID", "app-1"),
        ("AURORA_SOLAR_APPLICATION_KEY", "key-1"),
        ("AURORA_SOLAR_TENANT_ID", "t1"),
    ];
    PartnerAppBuilder::from_env_with(lookup(&all))
        .unwrap()
        .build()
        .unwrap();
    for (i, (name, _)) in all.iter().enumerate() {
        let mut vars = all.to_vec();
        vars.remove(i);
        assert_eq!(field_of(&vars), *name);
        let mut blank = all.to_vec();
        blank[i].1 = " ";
        assert_eq!(field_of(&blank), *name);
    }
    let mut bad_env = all.to_vec();
    bad_env[0].1 = "staging";
    assert_eq!(field_of(&bad_env), "AURORA_SOLAR_ENV");
    let mut prod_key = all.to_vec();
    prod_key[2].1 = "sk_prod_zzz";
    assert_eq!(field_of(&prod_key), "AURORA_SOLAR_APPLICATION_KEY");
}

#[tokio::test]
async fn without_a_default_tenant_the_app_is_not_a_provider() {
    let app = PartnerApp::builder()
        .environment(Environment::Sandbox)
        .application_id("app-1")
        .application_key("key-1")
        .build()
        .unwrap();
    let err = app.token().await.unwrap_err();
    assert!(
        matches!(err, Error::Config { ref field, .. } if field == "AURORA_SOLAR_TENANT_ID"),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_store_keeps_one_key_per_application_and_tenant() {
    let mut server = Server::new_async().await;
    let mock = t1_key_issued(&mut server, "tk-stored", SEED_AT).await;
    let store = Arc::new(MemoryStore::new());
    let clock = clock();
    let first = builder(&server, &clock)
        .store(store.clone())
        .build()
        .unwrap();
    first.tenant("t1").unwrap().token().await.unwrap();
    let host = server.host_with_port();
    let key = StoreKey::new("aurora-solar", &host, "t1", "app-1");
    let saved = stored_state(&*store, &key).await;
    assert_eq!(saved.access_token.secret().expose_secret(), "tk-stored");
    // Another app sharing the store adopts the key without a request.
    let second = builder(&server, &clock)
        .store(store.clone())
        .build()
        .unwrap();
    let adopted = second.tenant("t1").unwrap().token().await.unwrap();
    assert_eq!(adopted.secret().expose_secret(), "tk-stored");
    mock.assert_async().await;
}

#[tokio::test]
async fn an_embedded_provider_exchanges_its_session_token_whatever_the_store_holds() {
    let mut server = Server::new_async().await;
    let backend = t1_key_issued(&mut server, "tk-stored", SEED_AT).await;
    // Aurora refuses the garbage session token.
    let refused = reply(
        embedded_mock(&mut server, "garbage-session").expect(2),
        401,
        r#"{"message":"invalid session token"}"#,
    )
    .await;
    let store = Arc::new(MemoryStore::new());
    let clock = clock();
    let app = builder(&server, &clock)
        .store(store.clone())
        .build()
        .unwrap();
    // The tenant's key is cached in this app and stored for every other.
    app.tenant("t1").unwrap().token().await.unwrap();
    for app in [
        app.clone(),
        builder(&server, &clock)
            .store(store.clone())
            .build()
            .unwrap(),
    ] {
        let embedded = app.embedded("t1", "garbage-session").unwrap();
        let err = embedded.token().await.unwrap_err();
        assert!(matches!(err, Error::UserAction { .. }), "{err:?}");
        assert!(embedded.cached().is_none());
    }
    assert_mocks(&[&backend, &refused]).await;
    let stored = store.entries().await.unwrap();
    assert_eq!(stored.len(), 1, "the embedded exchange stored nothing");
}

#[tokio::test]
async fn a_store_set_through_the_cache_config_keeps_every_tenant_apart() {
    let mut server = Server::new_async().await;
    let t1 = t1_key_issued(&mut server, "tk-t1", SEED_AT).await;
    let t2 = key_issued_for(&mut server, "t2", "tk-t2", SEED_AT).await;
    let store = Arc::new(MemoryStore::new());
    let clock = clock();
    // The cache configuration takes a store but no key: the provider derives one per tenant.
    let app = builder(&server, &clock)
        .cache_config(token_provider::CacheConfig::new().store(store.clone()))
        .build()
        .unwrap();
    let k1 = app.tenant("t1").unwrap().token().await.unwrap();
    let k2 = app.tenant("t2").unwrap().token().await.unwrap();
    assert_eq!(k1.secret().expose_secret(), "tk-t1");
    assert_eq!(
        k2.secret().expose_secret(),
        "tk-t2",
        "tenant t2 was served t1's key"
    );
    assert_mocks(&[&t1, &t2]).await;
    let tenants: Vec<String> = stored_keys(&*store)
        .await
        .iter()
        .map(|k| k.parts()[2].clone())
        .collect();
    assert_eq!(tenants, ["t1", "t2"]);
}

#[tokio::test]
async fn look_alike_tenant_ids_never_share_a_key() {
    // Each id beside the plain one it resembles, and its path segment as sent.
    let tenants = [
        ("t1", "t1"),
        ("t1\u{A0}", "t1%C2%A0"),      // a trailing NO-BREAK SPACE
        ("t1\u{200B}", "t1%E2%80%8B"), // a trailing ZERO WIDTH SPACE
        ("\u{FF54}1", "%EF%BD%941"),   // FULLWIDTH LATIN SMALL LETTER T
        ("k1", "k1"),
        ("\u{212A}1", "%E2%84%AA1"), // KELVIN SIGN
        ("s1", "s1"),
        ("\u{017F}1", "%C5%BF1"), // LATIN SMALL LETTER LONG S
    ];
    let mut server = Server::new_async().await;
    let mut mocks = Vec::new();
    for (i, (_, segment)) in tenants.iter().enumerate() {
        let path = format!("/partner_applications/app-1/tenants/{segment}/create_token");
        let mock = reply(
            backend_mock(&mut server, &path).expect(1),
            200,
            key_body(&format!("tk-{i}"), SEED_AT),
        )
        .await;
        mocks.push(mock);
    }
    let store = Arc::new(MemoryStore::new());
    let clock = clock();
    let app = builder(&server, &clock)
        .store(store.clone())
        .build()
        .unwrap();
    for (i, (tenant, _)) in tenants.iter().enumerate() {
        let key = app.tenant(tenant).unwrap();
        assert_eq!(
            token_text(&key).await,
            format!("tk-{i}"),
            "{} was served another tenant's key",
            tenant.escape_default()
        );
        assert_eq!(key.tenant_id(), *tenant);
    }
    assert_eq!(app.cached_tenants(), tenants.len());
    let mut stored: Vec<String> = stored_keys(&*store)
        .await
        .iter()
        .map(|k| k.parts()[2].clone())
        .collect();
    let mut want: Vec<String> = tenants.iter().map(|(t, _)| (*t).to_owned()).collect();
    stored.sort();
    want.sort();
    assert_eq!(stored, want);
    for mock in mocks {
        mock.assert_async().await;
    }
}
