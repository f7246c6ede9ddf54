//! The Client SDK flow against a mockito server: lookup, invitation, JWT generation, caching.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use aurora_solar_auth::{ClientSdk, ClientSdkBuilder, Environment, Error, SdkUser, TokenProvider};
use common::{
    API_KEY, clock, generate_mock, http_client, invite_mock, jwt, jwt_body, jwt_issued, list_mock,
    sdk_builder, users_body, users_listed,
};
use mockito::{Matcher, Server, ServerGuard};
use serde_json::json;
use token_provider::testing::{assert_mocks, json_reply, lookup, reply, token_text};
use token_provider::{ManualClock, MemoryStore, StoreKey, TokenStore};

/// An `exp` 12 hours after the test clock's start.
const EXP: u64 = common::SEED_EXPIRES_AT - 3600;

fn jwt_for(id: &str) -> String {
    jwt(json!({"id": id, "email": "x@example.com", "exp": EXP, "jti": "j-1"}))
}

fn sdk(server: &ServerGuard, clock: &ManualClock) -> ClientSdk {
    sdk_builder(server.url(), clock).build().unwrap()
}

#[tokio::test]
async fn an_active_user_is_found_by_email_ignoring_case() {
    let mut server = Server::new_async().await;
    let list = users_listed(
        &mut server,
        1,
        &[
            ("u-robert", "robert.johnson@example.com", "active"),
            ("u-old", "jessica.smith@example.com", "inactive"),
            ("u-jessica", "Jessica.Smith@Example.com", "active"),
        ],
    )
    .await;
    let token = jwt_for("u-jessica");
    let generate = jwt_issued(&mut server, "u-jessica", &token).await;
    let invite = invite_mock(&mut server).expect(0).create_async().await;
    let clock = clock();
    let user = sdk(&server, &clock)
        .user(SdkUser::new("jessica.smith@EXAMPLE.com"))
        .unwrap();
    let got = user.token().await.unwrap();
    assert_eq!(got.secret().expose_secret(), token);
    assert_eq!(
        got.expires_at(),
        Some(UNIX_EPOCH + Duration::from_secs(EXP))
    );
    assert_mocks(&[&list, &generate, &invite]).await;
}

#[tokio::test]
async fn a_missing_user_is_invited_as_an_sdk_user() {
    let mut server = Server::new_async().await;
    let list = users_listed(
        &mut server,
        1,
        &[("u-robert", "robert.johnson@example.com", "active")],
    )
    .await;
    let invite = invite_mock(&mut server)
        .match_body(Matcher::Json(json!({
            "user": {
                "first_name": "Jessica",
                "last_name": "Smith",
                "email": "jessica.smith@example.com",
                "phone": "(415) 360-9291",
                "user_level": "SDK User"
            }
        })))
        .with_status(201)
        .with_body(r#"{"user":{"id":"u-new","email":"jessica.smith@example.com"}}"#)
        .expect(1)
        .create_async()
        .await;
    let token = jwt_for("u-new");
    let generate = jwt_issued(&mut server, "u-new", &token).await;
    let clock = clock();
    let user = sdk(&server, &clock)
        .user(
            SdkUser::new(" jessica.smith@example.com ")
                .with_name("Jessica", "Smith")
                .with_phone("(415) 360-9291"),
        )
        .unwrap();
    assert_eq!(token_text(&user).await, token);
    assert_mocks(&[&list, &invite, &generate]).await;
}

#[tokio::test]
async fn without_an_id_in_the_invite_answer_the_list_is_read_again() {
    let mut server = Server::new_async().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let list = list_mock(&mut server)
        .with_body_from_request(move |_| {
            let body = if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                users_body(&[])
            } else {
                // Freshly invited: not (yet) "active", which an SDK User need not be.
                users_body(&[("u-fresh", "new.user@example.com", "invited")])
            };
            body.into_bytes()
        })
        .expect(2)
        .create_async()
        .await;
    let invite = invite_mock(&mut server)
        // No phone given: no `phone` key at all.
        .match_body(Matcher::Json(json!({
            "user": {
                "first_name": "New",
                "last_name": "User",
                "email": "new.user@example.com",
                "user_level": "SDK User"
            }
        })))
        .with_status(200)
        .with_body("")
        .expect(1)
        .create_async()
        .await;
    let token = jwt_for("u-fresh");
    let generate = jwt_issued(&mut server, "u-fresh", &token).await;
    let clock = clock();
    let user = sdk(&server, &clock)
        .user(SdkUser::new("new.user@example.com").with_name("New", "User"))
        .unwrap();
    assert_eq!(token_text(&user).await, token);
    assert_mocks(&[&list, &invite, &generate]).await;
}

#[tokio::test]
async fn missing_names_stop_after_the_lookup_and_before_any_invite() {
    for (user, field) in [
        (
            SdkUser::new("nobody@example.com"),
            "AURORA_SOLAR_USER_FIRST_NAME",
        ),
        (
            SdkUser::new("nobody@example.com").with_name("Only", "  "),
            "AURORA_SOLAR_USER_LAST_NAME",
        ),
    ] {
        let mut server = Server::new_async().await;
        let list = users_listed(
            &mut server,
            1,
            &[("u-1", "nobody@example.com", "deactivated")],
        )
        .await;
        let invite = invite_mock(&mut server).expect(0).create_async().await;
        let clock = clock();
        let err = sdk(&server, &clock)
            .user(user)
            .unwrap()
            .token()
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Config { field: ref f, .. } if f == field),
            "{err:?}"
        );
        assert_mocks(&[&list, &invite]).await;
    }
}

#[tokio::test]
async fn one_jwt_per_user_cached() {
    let mut server = Server::new_async().await;
    let list = users_listed(
        &mut server,
        2,
        &[
            ("u-a", "a@example.com", "active"),
            ("u-b", "b@example.com", "active"),
        ],
    )
    .await;
    let (ta, tb) = (jwt_for("u-a"), jwt_for("u-b"));
    let ga = jwt_issued(&mut server, "u-a", &ta).await;
    let gb = jwt_issued(&mut server, "u-b", &tb).await;
    let clock = clock();
    let sdk = sdk(&server, &clock);
    let a = sdk.user(SdkUser::new("a@example.com")).unwrap();
    let b = sdk.user(SdkUser::new("b@example.com")).unwrap();
    assert_eq!(token_text(&a).await, ta);
    assert_eq!(token_text(&b).await, tb);
    clock.advance(Duration::from_secs(3600));
    // The same user under another spelling of the email is the same cache.
    let a_again = sdk.user(SdkUser::new("A@Example.COM")).unwrap();
    assert_eq!(token_text(&a_again).await, ta);
    assert_eq!(a_again.email(), "a@example.com");
    assert_eq!(token_text(&b).await, tb);
    assert_mocks(&[&list, &ga, &gb]).await;
}

#[tokio::test]
async fn a_jwt_without_a_valid_exp_is_malformed() {
    for bad in [
        jwt(json!({"id": "u-1", "email": "a@example.com", "jti": "jwt-leak"})),
        jwt(json!({"id": "u-1", "exp": "soon", "jti": "jwt-leak"})),
        "jwt-leak-not-a-jwt".to_owned(),
        "jwt-leak.%%%.sig".to_owned(),
    ] {
        let mut server = Server::new_async().await;
        let list = users_listed(&mut server, 1, &[("u-1", "a@example.com", "active")]).await;
        let generate = jwt_issued(&mut server, "u-1", &bad).await;
        let clock = clock();
        let err = sdk(&server, &clock)
            .user(SdkUser::new("a@example.com"))
            .unwrap()
            .token()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("jwt-leak") && !shown.contains(&bad),
            "{shown}"
        );
        assert_mocks(&[&list, &generate]).await;
    }
}

#[tokio::test]
async fn refusals_are_rejections() {
    // The key refused at the lookup.
    let mut server = Server::new_async().await;
    let list = reply(
        list_mock(&mut server).expect(1),
        401,
        format!(r#"{{"error":"unauthorized","message":"bad key {API_KEY}"}}"#),
    )
    .await;
    let clock = clock();
    let err = sdk(&server, &clock)
        .user(SdkUser::new("a@example.com"))
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(err.is_rejected(), "{err:?}");
    // An echoed key is cut out of the provider's words.
    assert!(!err.to_string().contains(API_KEY), "{err}");
    assert!(err.to_string().contains("unauthorized"), "{err}");
    list.assert_async().await;

    // Unknown tenant, and a refused token generation.
    for (list_status, generate_status) in [(404, None), (200, Some(403))] {
        let mut server = Server::new_async().await;
        let list = reply(
            list_mock(&mut server).expect(1),
            list_status,
            users_body(&[("u-1", "a@example.com", "active")]),
        )
        .await;
        let generate = reply(
            generate_mock(&mut server, "u-1").expect(usize::from(generate_status.is_some())),
            generate_status.unwrap_or(200),
            r#"{"error":{"code":"forbidden","message":"Platform API not enabled"}}"#,
        )
        .await;
        let err = sdk(&server, &clock)
            .user(SdkUser::new("a@example.com"))
            .unwrap()
            .get()
            .await
            .unwrap_err();
        if list_status == 404 {
            // A tenant that names nothing there: the URL and the settings that make it.
            assert!(
                matches!(&err, Error::Config { field, .. } if field == "AURORA_SOLAR_BASE_URL"),
                "{err:?}"
            );
            let shown = err.to_string();
            assert!(shown.contains("/tenants/"), "{shown}");
            assert!(
                shown.ends_with("AURORA_SOLAR_TENANT_ID makes the path)"),
                "{shown}"
            );
            assert!(!shown.contains(API_KEY), "{shown}");
        } else {
            assert!(err.is_rejected(), "{err:?}");
            assert_eq!(err.status(), generate_status.map(|s| s as u16));
        }
        assert_mocks(&[&list, &generate]).await;
    }
}

#[tokio::test]
async fn a_rate_limited_lookup_is_retried() {
    let mut server = Server::new_async().await;
    let limited = reply(
        list_mock(&mut server)
            .with_header("retry-after", "0")
            .expect(1),
        429,
        "",
    )
    .await;
    let list = users_listed(&mut server, 1, &[("u-1", "a@example.com", "active")]).await;
    let token = jwt_for("u-1");
    let generate = jwt_issued(&mut server, "u-1", &token).await;
    let clock = clock();
    let user = sdk(&server, &clock)
        .user(SdkUser::new("a@example.com"))
        .unwrap();
    assert_eq!(token_text(&user).await, token);
    assert_mocks(&[&limited, &list, &generate]).await;
}

#[test]
fn api_keys_of_the_other_environment_are_refused() {
    let build = |env: Environment, key: &str| {
        ClientSdk::builder()
            .environment(env)
            .api_key(key)
            .tenant_id("t1")
            .build()
    };
    for (env, key) in [
        (Environment::Sandbox, "sk_prod_secret9"),
        (Environment::Sandbox, "rk_prod_secret9"),
        (Environment::Production, "rk_sand_secret9"),
    ] {
        let err = build(env, key).unwrap_err();
        assert!(
            matches!(err, Error::Config { ref field, .. } if field == "AURORA_SOLAR_API_KEY"),
            "{err:?}"
        );
        assert!(!err.to_string().contains("secret9"), "{err}");
    }
    build(Environment::Production, "sk_prod_secret9").unwrap();
    build(Environment::Sandbox, "rk_sand_secret9").unwrap();
    ClientSdk::builder()
        .base_url("http://localhost:9")
        .api_key("sk_prod_secret9")
        .tenant_id("t1")
        .build()
        .unwrap();
}

#[tokio::test]
async fn from_env_with_makes_the_sdk_a_provider_for_the_user() {
    let mut server = Server::new_async().await;
    let url = server.url();
    let list = reply(list_mock(&mut server).expect(1), 200, users_body(&[])).await;
    let invite = invite_mock(&mut server)
        .match_body(Matcher::PartialJson(json!({
            "user": {"first_name": "Env", "last_name": "User", "email": "env@example.com", "user_level": "SDK User"}
        })))
        .with_body(r#"{"user":{"id":42}}"#)
        .expect(1)
        .create_async()
        .await;
    let token = jwt_for("42");
    let generate = jwt_issued(&mut server, "42", &token).await;
    let vars = [
        ("AURORA_SOLAR_ENV", "sandbox"),
        ("AURORA_SOLAR_BASE_URL", url.as_str()),
        ("AURORA_SOLAR_API_KEY", API_KEY),
        ("AURORA_SOLAR_TENANT_ID", "t1"),
        ("AURORA_SOLAR_USER_EMAIL", "env@example.com"),
        ("AURORA_SOLAR_USER_FIRST_NAME", "Env"),
        ("AURORA_SOLAR_USER_LAST_NAME", "User"),
    ];
    let sdk = ClientSdkBuilder::from_env_with(lookup(&vars))
        .unwrap()
        .http_client(http_client())
        .clock(Arc::new(clock()))
        .build()
        .unwrap();
    assert_eq!(sdk.tenant_id(), "t1");
    assert_eq!(sdk.default_user().unwrap().email(), "env@example.com");
    let got = sdk.token().await.unwrap();
    assert_eq!(got.secret().expose_secret(), token);
    // Cached: the same JWT again, no request.
    assert_eq!(sdk.token().await.unwrap(), got);
    assert_mocks(&[&list, &invite, &generate]).await;

    // Each required variable, missing or blank, is named.
    let required = [
        "AURORA_SOLAR_API_KEY",
        "AURORA_SOLAR_TENANT_ID",
        "AURORA_SOLAR_USER_EMAIL",
    ];
    for name in required {
        let vars: Vec<_> = vars.iter().copied().filter(|(k, _)| *k != name).collect();
        let err = ClientSdkBuilder::from_env_with(lookup(&vars))
            .and_then(ClientSdkBuilder::build)
            .unwrap_err();
        assert!(
            matches!(err, Error::Config { ref field, .. } if field == name),
            "{err:?}"
        );
    }
    let no_place: Vec<_> = vars
        .iter()
        .copied()
        .filter(|(k, _)| !k.starts_with("AURORA_SOLAR_ENV") && *k != "AURORA_SOLAR_BASE_URL")
        .collect();
    let err = ClientSdkBuilder::from_env_with(lookup(&no_place))
        .and_then(ClientSdkBuilder::build)
        .unwrap_err();
    assert!(
        matches!(err, Error::Config { ref field, .. } if field == "AURORA_SOLAR_ENV"),
        "{err:?}"
    );
    let mut bad_email = vars.to_vec();
    bad_email[4].1 = "not-an-address";
    let err = ClientSdkBuilder::from_env_with(lookup(&bad_email))
        .and_then(ClientSdkBuilder::build)
        .unwrap_err();
    assert!(
        matches!(err, Error::Config { ref field, .. } if field == "AURORA_SOLAR_USER_EMAIL"),
        "{err:?}"
    );
}

#[tokio::test]
async fn without_a_default_user_the_sdk_is_not_a_provider() {
    let sdk = ClientSdk::builder()
        .environment(Environment::Sandbox)
        .api_key(API_KEY)
        .tenant_id("t1")
        .build()
        .unwrap();
    let err = sdk.token().await.unwrap_err();
    assert!(
        matches!(err, Error::Config { ref field, .. } if field == "AURORA_SOLAR_USER_EMAIL"),
        "{err:?}"
    );
    assert!(sdk.user(SdkUser::new("")).is_err());
}

#[tokio::test]
async fn the_store_key_names_tenant_and_lowercased_email() {
    let mut server = Server::new_async().await;
    let list = users_listed(&mut server, 1, &[("u-1", "Mixed@Example.com", "active")]).await;
    let token = jwt_for("u-1");
    let generate = jwt_issued(&mut server, "u-1", &token).await;
    let store = Arc::new(MemoryStore::new());
    let clock = clock();
    let sdk = ClientSdk::builder()
        .base_url(server.url())
        .api_key(API_KEY)
        .tenant_id("t1")
        .http_client(http_client())
        .clock(Arc::new(clock.clone()))
        .store(store.clone())
        .build()
        .unwrap();
    sdk.user(SdkUser::new("Mixed@Example.com"))
        .unwrap()
        .token()
        .await
        .unwrap();
    let key = StoreKey::new(
        "aurora-solar-sdk",
        &server.host_with_port(),
        "t1",
        "mixed@example.com",
    );
    let saved = store.load(&key).await.unwrap();
    assert_eq!(
        saved.map(|s| s.access_token.secret().expose_secret().to_owned()),
        Some(token)
    );
    assert_mocks(&[&list, &generate]).await;
}

#[tokio::test]
async fn two_users_sharing_a_store_each_get_their_own_jwt() {
    let mut server = Server::new_async().await;
    let list = users_listed(
        &mut server,
        2,
        &[
            ("u-a", "a@example.com", "active"),
            ("u-b", "b@example.com", "active"),
        ],
    )
    .await;
    let (ta, tb) = (jwt_for("u-a"), jwt_for("u-b"));
    assert_ne!(ta, tb);
    let ga = jwt_issued(&mut server, "u-a", &ta).await;
    let gb = jwt_issued(&mut server, "u-b", &tb).await;
    let store = Arc::new(MemoryStore::new());
    let clock = clock();
    let builder = || {
        ClientSdk::builder()
            .base_url(server.url())
            .api_key(API_KEY)
            .tenant_id("t1")
            .http_client(http_client())
            .clock(Arc::new(clock.clone()))
    };
    // One process sets the store through the cache configuration, which names no key: each
    // user's is derived from the user.
    let first = builder()
        .cache_config(token_provider::CacheConfig::new().store(store.clone()))
        .build()
        .unwrap();
    let a = first.user(SdkUser::new("a@example.com")).unwrap();
    let b = first.user(SdkUser::new("b@example.com")).unwrap();
    assert_eq!(token_text(&a).await, ta);
    assert_eq!(token_text(&b).await, tb, "b was served a's JWT");

    let entries = store.entries().await.unwrap();
    let stored: Vec<(String, String)> = entries
        .iter()
        .map(|(key, state)| {
            (
                key.parts()[3].clone(),
                state
                    .as_ref()
                    .unwrap()
                    .access_token
                    .secret()
                    .expose_secret()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        stored,
        [
            ("a@example.com".to_owned(), ta.clone()),
            ("b@example.com".to_owned(), tb.clone())
        ]
    );

    // Another process on the same store is served each user's own JWT from it, in the other
    // order, asking Aurora for nothing.
    let second = builder().store(store.clone()).build().unwrap();
    let b2 = second.user(SdkUser::new("B@example.com")).unwrap();
    let a2 = second.user(SdkUser::new("a@example.com")).unwrap();
    assert_eq!(token_text(&b2).await, tb);
    assert_eq!(token_text(&a2).await, ta);
    assert_eq!(store.entries().await.unwrap().len(), 2);
    assert_mocks(&[&list, &ga, &gb]).await;
}

/// A user list that answers `first` to the first request and `later` to every other one.
async fn list_in_turn(
    server: &mut ServerGuard,
    first: String,
    later: String,
    times: usize,
) -> mockito::Mock {
    let calls = Arc::new(AtomicUsize::new(0));
    list_mock(server)
        .with_body_from_request(move |_| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                first.clone().into_bytes()
            } else {
                later.clone().into_bytes()
            }
        })
        .expect(times)
        .create_async()
        .await
}

#[tokio::test]
async fn an_invited_user_who_never_logged_in_is_not_locked_out() {
    for (status, body) in [
        (422, r#"{"errors":["Email has already been taken"]}"#),
        (409, r#"{"error":"conflict","message":"user exists"}"#),
    ] {
        let mut server = Server::new_async().await;
        // The account exists but is not active: the first lookup passes it over, the one after
        // the refused invitation takes it.
        let pending = users_body(&[
            ("u-robert", "robert.johnson@example.com", "active"),
            ("u-pending", "Pending.User@example.com", "invited"),
        ]);
        let list = list_in_turn(&mut server, pending.clone(), pending, 2).await;
        let invite = invite_mock(&mut server)
            .match_body(Matcher::Json(json!({
                "user": {
                    "first_name": "Pending",
                    "last_name": "User",
                    "email": "pending.user@example.com",
                    "user_level": "SDK User"
                }
            })))
            .with_status(status)
            .with_header("content-type", "application/json")
            .with_body(body)
            .expect(1)
            .create_async()
            .await;
        let token = jwt_for("u-pending");
        let generate = jwt_issued(&mut server, "u-pending", &token).await;
        let clock = clock();
        let user = sdk(&server, &clock)
            .user(SdkUser::new("pending.user@example.com").with_name("Pending", "User"))
            .unwrap();
        let got = user
            .token()
            .await
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(got.secret().expose_secret(), token);
        assert_eq!(
            got.expires_at(),
            Some(UNIX_EPOCH + Duration::from_secs(EXP))
        );
        assert_mocks(&[&list, &invite, &generate]).await;
    }
}

#[tokio::test]
async fn a_refused_invitation_with_no_such_account_is_returned() {
    // 422 for another reason (a bad email, say): nobody has the email, so the refusal stands and
    // no token is generated.
    let mut server = Server::new_async().await;
    let list = list_in_turn(&mut server, users_body(&[]), users_body(&[]), 2).await;
    let invite = json_reply(
        invite_mock(&mut server).expect(1),
        422,
        format!(r#"{{"error":"Email is invalid for key {API_KEY}"}}"#),
    )
    .await;
    let generate = server
        .mock("POST", Matcher::Regex("generate_token".into()))
        .expect(0)
        .create_async()
        .await;
    let clock = clock();
    let err = sdk(&server, &clock)
        .user(SdkUser::new("odd@example.com").with_name("Odd", "One"))
        .unwrap()
        .token()
        .await
        .unwrap_err();
    let Error::Rejected { status, code, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*status, Some(422));
    // The API key the server echoed is cut out of the provider's words.
    assert_eq!(code.as_deref(), Some("Email is invalid for key [redacted]"));
    assert!(!format!("{err} {err:?}").contains(API_KEY));
    assert_mocks(&[&list, &invite, &generate]).await;
}

#[tokio::test]
async fn a_deactivated_account_is_never_issued_a_token() {
    // The invitation is refused because the email belongs to a deactivated account: that account
    // must not be handed a JWT.
    let mut server = Server::new_async().await;
    let users = users_body(&[("u-9", "gone@example.com", "deactivated")]);
    let list = list_in_turn(&mut server, users.clone(), users, 2).await;
    let invite = json_reply(
        invite_mock(&mut server).expect(1),
        409,
        r#"{"error":"Email has already been taken"}"#,
    )
    .await;
    let generate = server
        .mock("POST", Matcher::Regex("generate_token".into()))
        .expect(0)
        .create_async()
        .await;
    let clock = clock();
    let err = sdk(&server, &clock)
        .user(SdkUser::new("gone@example.com").with_name("Gone", "Away"))
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Rejected {
                status: Some(409),
                ..
            }
        ),
        "{err:?}"
    );
    assert_mocks(&[&list, &invite, &generate]).await;
}

/// Spellings that Unicode case mapping, case folding or compatibility normalisation would turn
/// into `kim@example.com` or `sam@example.com`, or that differ from them by an invisible
/// character. Each is another principal.
const LOOK_ALIKES: [&str; 4] = [
    // KELVIN SIGN: its Unicode lowercase is `k`.
    "\u{212A}im@example.com",
    // LATIN SMALL LETTER LONG S: case-folds to `s`.
    "\u{017F}am@example.com",
    // FULLWIDTH LATIN SMALL LETTER K: `k` under NFKC.
    "\u{FF4B}im@example.com",
    // A trailing ZERO WIDTH SPACE.
    "kim@example.com\u{200B}",
];

#[tokio::test]
async fn look_alike_emails_never_share_a_principal() {
    let mut server = Server::new_async().await;
    // Every spelling is an account of its own at Aurora.
    let emails: Vec<&str> = ["kim@example.com", "sam@example.com"]
        .into_iter()
        .chain(LOOK_ALIKES)
        .collect();
    let ids: Vec<String> = (0..emails.len()).map(|i| format!("u-{i}")).collect();
    let listed: Vec<_> = emails
        .iter()
        .zip(&ids)
        .map(|(email, id)| (id.as_str(), *email, "active"))
        .collect();
    let list = reply(
        list_mock(&mut server).expect(emails.len()),
        200,
        users_body(&listed),
    )
    .await;
    let invite = invite_mock(&mut server).expect(0).create_async().await;
    let mut generated = Vec::new();
    for id in &ids {
        let mock = reply(
            generate_mock(&mut server, id).expect(1),
            200,
            jwt_body(&jwt_for(id)),
        )
        .await;
        generated.push(mock);
    }
    let store = Arc::new(MemoryStore::new());
    let clock = clock();
    let sdk = ClientSdk::builder()
        .base_url(server.url())
        .api_key(API_KEY)
        .tenant_id("t1")
        .http_client(http_client())
        .clock(Arc::new(clock.clone()))
        .store(store.clone())
        .build()
        .unwrap();

    for (email, id) in emails.iter().zip(&ids) {
        let user = sdk.user(SdkUser::new(*email)).unwrap();
        let got = user.token().await.unwrap();
        assert_eq!(
            got.secret().expose_secret(),
            jwt_for(id),
            "{} was served another user's JWT",
            email.escape_default()
        );
        assert_eq!(user.email(), *email);
    }
    assert_eq!(sdk.cached_users(), emails.len());
    // ASCII case alone is folded: the same account, no request.
    let kim = sdk.user(SdkUser::new("KIM@Example.com")).unwrap();
    assert_eq!(token_text(&kim).await, jwt_for("u-0"));
    assert_eq!(sdk.cached_users(), emails.len());
    // A no-break space is not trimmed: the email is refused, never taken for Kim's.
    for spaced in ["kim@example.com\u{A0}", "\u{A0}kim@example.com"] {
        let err = sdk.user(SdkUser::new(spaced)).unwrap_err();
        assert!(
            matches!(err, Error::Config { ref field, .. } if field == "AURORA_SOLAR_USER_EMAIL"),
            "{}: {err:?}",
            spaced.escape_default()
        );
    }

    // One store entry per spelling, under its own email.
    let mut stored: Vec<(String, String)> = store
        .entries()
        .await
        .unwrap()
        .iter()
        .map(|(key, state)| {
            let token = state.as_ref().unwrap().access_token.secret();
            (key.parts()[3].clone(), token.expose_secret().to_owned())
        })
        .collect();
    let mut want: Vec<(String, String)> = emails
        .iter()
        .zip(&ids)
        .map(|(email, id)| ((*email).to_owned(), jwt_for(id)))
        .collect();
    stored.sort();
    want.sort();
    assert_eq!(stored, want);
    assert_mocks(&[&list, &invite]).await;
    for mock in generated {
        mock.assert_async().await;
    }
}

#[tokio::test]
async fn an_account_whose_email_only_looks_alike_is_never_used() {
    // Aurora lists Kim alone. The Kelvin-sign user is not Kim: invited under their own email,
    // and when Aurora refuses that invitation, refused, never handed Kim's account.
    for (status, answer) in [
        (201, r#"{"user":{"id":"u-kelvin"}}"#),
        (409, r#"{"error":"Email has already been taken"}"#),
    ] {
        let mut server = Server::new_async().await;
        let kim = users_body(&[("u-kim", "kim@example.com", "active")]);
        let reads = if status == 201 { 1 } else { 2 };
        let list = list_in_turn(&mut server, kim.clone(), kim, reads).await;
        let invite = invite_mock(&mut server)
            .match_body(Matcher::Json(json!({
                "user": {
                    "first_name": "Kelvin",
                    "last_name": "Sign",
                    "email": "\u{212A}im@example.com",
                    "user_level": "SDK User"
                }
            })))
            .with_status(status)
            .with_header("content-type", "application/json")
            .with_body(answer)
            .expect(1)
            .create_async()
            .await;
        let as_kim = reply(
            generate_mock(&mut server, "u-kim").expect(0),
            200,
            jwt_body(&jwt_for("u-kim")),
        )
        .await;
        let as_kelvin = reply(
            generate_mock(&mut server, "u-kelvin").expect(usize::from(status == 201)),
            200,
            jwt_body(&jwt_for("u-kelvin")),
        )
        .await;
        let clock = clock();
        let got = sdk(&server, &clock)
            .user(SdkUser::new("\u{212A}im@example.com").with_name("Kelvin", "Sign"))
            .unwrap()
            .token()
            .await;
        match status {
            201 => assert_eq!(got.unwrap().secret().expose_secret(), jwt_for("u-kelvin")),
            _ => assert!(
                matches!(
                    got,
                    Err(Error::Rejected {
                        status: Some(409),
                        ..
                    })
                ),
                "{got:?}"
            ),
        }
        assert_mocks(&[&list, &invite, &as_kim, &as_kelvin]).await;
    }
}
