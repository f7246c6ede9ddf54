//! Aurora Solar's keys from files: the application key and the REST API key are read again when
//! their file changes, and once more after Aurora refuses them (never for an embedded exchange,
//! whose session token a second request would spend again).

mod common;

use std::sync::Arc;

use aurora_solar_auth::{ClientSdkBuilder, PartnerAppBuilder, SdkUser, TokenProvider};
use base64::Engine as _;
use common::{SEED_EXPIRES_AT, clock, http_client, key_body};
use mockito::{Matcher, Mock, Server, ServerGuard};
use serde_json::json;
use token_provider::testing::{SecretFile, capture_logs};

const PATH_T1: &str = "/partner_applications/app-1/tenants/t1/create_token";
const SEED_AT: &str = "2023-07-29 04:30:46 UTC";

fn lookup(
    server: &ServerGuard,
    vars: &[(&'static str, &str)],
) -> impl Fn(&str) -> Option<String> + use<> {
    let mut table: Vec<(&'static str, String)> = vec![
        ("AURORA_SOLAR_BASE_URL", server.url()),
        ("AURORA_SOLAR_TENANT_ID", "t1".into()),
    ];
    table.extend(vars.iter().map(|(n, v)| (*n, (*v).to_owned())));
    move |name| {
        table
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }
}

/// `create_token` for tenant t1 with `key` as the bearer: a temporary key, or 401.
async fn exchange(server: &mut ServerGuard, key: &str, answer: Option<&str>, times: usize) -> Mock {
    let mock = server
        .mock("POST", PATH_T1)
        .match_header("authorization", format!("Bearer {key}").as_str())
        .match_header("content-length", "0");
    let mock = match answer {
        Some(temporary) => mock
            .match_query(Matcher::Missing)
            .with_status(200)
            .with_header("content-type", "application/json")
            .with_body(key_body(temporary, SEED_AT)),
        None => mock
            .match_query(Matcher::Any)
            .with_status(401)
            .with_header("content-type", "application/json")
            .with_body(r#"{"error":"Invalid application key"}"#),
    };
    mock.expect(times).create_async().await
}

#[tokio::test]
async fn an_application_key_file_is_read_again_after_a_refusal_and_when_swapped() {
    let logs = capture_logs();
    let mut server = Server::new_async().await;
    let mut file = SecretFile::new("application_key", "sk_sand_file_key_1");
    let path = file.path().display().to_string();
    let app = PartnerAppBuilder::from_env_with(lookup(
        &server,
        &[
            ("AURORA_SOLAR_APPLICATION_ID", "app-1"),
            ("AURORA_SOLAR_APPLICATION_KEY_FILE", &path),
        ],
    ))
    .unwrap()
    .http_client(http_client())
    .clock(Arc::new(clock()))
    .build()
    .unwrap();
    let tenant = app.tenant("t1").unwrap();

    let one = exchange(&mut server, "sk_sand_file_key_1", Some("tk-one"), 1).await;
    let got = tenant.get().await.unwrap();
    assert_eq!(got.secret().expose_secret(), "tk-one");
    one.assert_async().await;

    // Rewritten in place, unseen: refused once, then the file's new key at once.
    file.rewrite_unseen("sk_sand_file_key_2");
    let refused = exchange(&mut server, "sk_sand_file_key_1", None, 1).await;
    let two = exchange(&mut server, "sk_sand_file_key_2", Some("tk-two"), 1).await;
    tenant.invalidate(&got);
    let got = tenant.get().await.unwrap();
    assert_eq!(got.secret().expose_secret(), "tk-two");
    refused.assert_async().await;
    two.assert_async().await;

    // Swapped: seen before anything is sent.
    file.swap("sk_sand_file_key_3");
    let three = exchange(&mut server, "sk_sand_file_key_3", Some("tk-three"), 1).await;
    tenant.invalidate(&got);
    assert_eq!(
        tenant.get().await.unwrap().secret().expose_secret(),
        "tk-three"
    );
    three.assert_async().await;

    // An embedded exchange refused is never sent again, whatever the file holds now: it spent
    // its session token.
    file.rewrite_unseen("sk_sand_file_key_4");
    let embedded = exchange(&mut server, "sk_sand_file_key_3", None, 1).await;
    let not_again = exchange(&mut server, "sk_sand_file_key_4", Some("tk-never"), 0).await;
    let err = app
        .embedded("t1", "session-token-1")
        .unwrap()
        .get()
        .await
        .unwrap_err();
    assert!(err.needs_user_action(), "{err}");
    embedded.assert_async().await;
    not_again.assert_async().await;
    logs.assert_absent(&["sk_sand_file_key"]);
}

const USERS: &str = "/tenants/t1/users";

fn jwt() -> String {
    let claims = json!({"id": "u-1", "email": "jo@example.com", "exp": SEED_EXPIRES_AT - 3600});
    format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.{}.c2lnbmF0dXJl",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The user lookup and the JWT generation with `key`: both answered, or the lookup refused.
async fn sdk_calls(server: &mut ServerGuard, key: &str, ok: bool) -> Vec<Mock> {
    let bearer = format!("Bearer {key}");
    let list = server
        .mock("GET", USERS)
        .match_header("authorization", bearer.as_str())
        .match_query(Matcher::Missing);
    if !ok {
        return vec![
            list.with_status(401)
                .with_body(r#"{"error":"Invalid API key"}"#)
                .expect(1)
                .create_async()
                .await,
        ];
    }
    let users =
        json!({"users": [{"id": "u-1", "email": "jo@example.com", "account_status": "active"}]});
    vec![
        list.with_body(users.to_string())
            .expect(1)
            .create_async()
            .await,
        server
            .mock("POST", format!("{USERS}/u-1/generate_token").as_str())
            .match_header("authorization", bearer.as_str())
            .match_header("content-length", "0")
            .with_body(json!({"token": {"jwt": jwt()}}).to_string())
            .expect(1)
            .create_async()
            .await,
    ]
}

#[tokio::test]
async fn an_api_key_file_is_read_again_when_swapped_and_after_a_refusal() {
    let mut server = Server::new_async().await;
    let mut file = SecretFile::new("api_key", "sk_sand_api_key_1");
    let path = file.path().display().to_string();
    let sdk = ClientSdkBuilder::from_env_with(lookup(
        &server,
        &[
            ("AURORA_SOLAR_API_KEY_FILE", &path),
            ("AURORA_SOLAR_USER_EMAIL", "jo@example.com"),
        ],
    ))
    .unwrap()
    .http_client(http_client())
    .clock(Arc::new(clock()))
    .build()
    .unwrap();
    let user = sdk.user(SdkUser::new("jo@example.com")).unwrap();

    let one = sdk_calls(&mut server, "sk_sand_api_key_1", true).await;
    let got = user.get().await.unwrap();
    for mock in one {
        mock.assert_async().await;
    }

    file.swap("sk_sand_api_key_2");
    let two = sdk_calls(&mut server, "sk_sand_api_key_2", true).await;
    user.invalidate(&got);
    let got = user.get().await.unwrap();
    for mock in two {
        mock.assert_async().await;
    }

    file.rewrite_unseen("sk_sand_api_key_3");
    let refused = sdk_calls(&mut server, "sk_sand_api_key_2", false).await;
    let three = sdk_calls(&mut server, "sk_sand_api_key_3", true).await;
    user.invalidate(&got);
    user.get().await.unwrap();
    for mock in refused.into_iter().chain(three) {
        mock.assert_async().await;
    }
}
