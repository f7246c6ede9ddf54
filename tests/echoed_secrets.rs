//! Every example's error path against a server that echoes everything it received (the query,
//! the `Authorization` header, the body) in the error words a provider writes: no secret the
//! request carried reaches an error message.
//!
//! The examples' own paths: the custom provider (its code, included from the example), every
//! provider kind built from variables as the quickstart does, the embedded Aurora Solar exchange
//! and Aerion with a file store.

use std::sync::Arc;

use partner_auth::aerion::Aerion;
use partner_auth::aurora_solar::PartnerApp;
use partner_auth::token_provider::error_chain;
use partner_auth::{Error, FileStore, ProviderKind, ProviderOptions, TokenProvider, from_lookup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[allow(dead_code)]
#[path = "../examples/custom_provider.rs"]
mod custom_provider;

/// A loopback server: OpenID discovery and keys for Aurora UK (so its token request is sent),
/// and 400
/// with everything the request carried, as `error` and `error_description`, to anything else.
async fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = format!("{base}/");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let issuer = issuer.clone();
            tokio::spawn(async move {
                let mut raw = Vec::new();
                let mut buf = [0u8; 8192];
                // The head, then as much body as Content-Length says.
                let (head, body) = loop {
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    raw.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&raw).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break (head.to_owned(), body.to_owned());
                        }
                    }
                };
                let request_line = head.lines().next().unwrap_or("").to_owned();
                let target = request_line.split(' ').nth(1).unwrap_or("").to_owned();
                let authorization = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("authorization")
                            .then(|| value.trim().to_owned())
                    })
                    .unwrap_or_default();
                let (status, answer) = if target.ends_with("/.well-known/openid-configuration") {
                    let doc = serde_json::json!({
                        "issuer": issuer,
                        "authorization_endpoint": format!("{issuer}authorize"),
                        "token_endpoint": format!("{issuer}oauth/token"),
                        "jwks_uri": format!("{issuer}.well-known/jwks.json"),
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                    });
                    ("200 OK", doc)
                } else if target.ends_with("/jwks.json") {
                    ("200 OK", serde_json::json!({ "keys": [] }))
                } else {
                    let words = serde_json::json!({
                        "error": format!("echo {target}"),
                        "error_description": format!("{authorization} {body}"),
                    });
                    ("400 Bad Request", words)
                };
                let answer = answer.to_string();
                let _ = stream
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\nconnection: close\r\n\r\n{answer}",
                            answer.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    base
}

/// Asserts `err` shows none of `secrets`, nor any 12 characters of the Basic credentials they
/// make with the client ids used here, in any of the ways an error is shown.
#[track_caller]
fn assert_scrubbed(what: &str, err: &Error, secrets: &[&str]) {
    use base64::Engine;
    let shown = format!("{err} | {err:?} | {}", error_chain(err));
    for secret in secrets {
        assert!(!shown.contains(secret), "{what}: {secret:?} in {shown}");
    }
    for id in ["uk-client", "acme-client"] {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{CLIENT_SECRET}"));
        let chars: Vec<char> = basic.chars().collect();
        for piece in chars.windows(12) {
            let piece: String = piece.iter().collect();
            assert!(
                !shown.contains(&piece),
                "{what}: Basic credentials in {shown}"
            );
        }
    }
}

const PASSWORD: &str = "pw-ECHOED-5d1c07a2";
const CLIENT_SECRET: &str = "cs-ECHOED-8e44b1f0";
const REFRESH_TOKEN: &str = "rt-ECHOED-2a9f63d7";
const APP_KEY: &str = "sk_prod_ECHOED-0c7d1e";
const API_KEY: &str = "sk_prod_ECHOED-api-41f2";
const SESSION: &str = "st-ECHOED-b3e59a10";
const ALL: [&str; 6] = [
    PASSWORD,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    APP_KEY,
    API_KEY,
    SESSION,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_custom_provider_example_scrubs_what_it_sent() {
    let base = echo_server().await;
    let acme = custom_provider::AcmeAuth::new(
        &format!("{base}/oauth/token"),
        "acme-client",
        partner_auth::Secret::new(CLIENT_SECRET),
        "https://api.acme.example",
    )
    .unwrap();
    let err = acme.get().await.unwrap_err();
    assert!(err.is_rejected(), "{err:?}");
    // The server's words came through, the secret it echoed did not.
    assert!(err.to_string().contains("echo /oauth/token"), "{err}");
    assert!(err.to_string().contains("[redacted]"), "{err}");
    assert_scrubbed("custom provider", &err, &ALL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_built_as_the_quickstart_builds_it_scrubs_what_it_sent() {
    let base = echo_server().await;
    let vars = |pairs: &[(&str, String)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    };
    let aurora_uk: Vec<(&str, String)> = vec![
        ("AURORA_UK_ENV", "dev".into()),
        ("AURORA_UK_ISSUER", format!("{base}/")),
        ("AURORA_UK_CLIENT_ID", "uk-client".into()),
        ("AURORA_UK_CLIENT_SECRET", CLIENT_SECRET.into()),
    ];
    let cases: Vec<(ProviderKind, Vec<(&str, String)>)> = vec![
        (
            ProviderKind::Aerion,
            vec![
                ("AERION_BASE_URL", base.clone()),
                ("AERION_COMPANY_URL", "acme.aerion.test".into()),
                ("AERION_USERNAME", "pat@acme.test".into()),
                ("AERION_PASSWORD", PASSWORD.into()),
                ("AERION_CLIENT_SECRET", CLIENT_SECRET.into()),
            ],
        ),
        (
            ProviderKind::Aerion,
            vec![
                ("AERION_BASE_URL", base.clone()),
                ("AERION_COMPANY_URL", "acme.aerion.test".into()),
                ("AERION_REFRESH_TOKEN", REFRESH_TOKEN.into()),
            ],
        ),
        (ProviderKind::AuroraUk, aurora_uk.clone()),
        // The same with the secret in the form instead of HTTP Basic.
        (
            ProviderKind::AuroraUk,
            [aurora_uk, vec![("AURORA_UK_CLIENT_AUTH", "post".into())]].concat(),
        ),
        (
            ProviderKind::AuroraSolar,
            vec![
                ("AURORA_SOLAR_BASE_URL", base.clone()),
                ("AURORA_SOLAR_APPLICATION_ID", "app-1".into()),
                ("AURORA_SOLAR_APPLICATION_KEY", APP_KEY.into()),
                ("AURORA_SOLAR_TENANT_ID", "t-1".into()),
            ],
        ),
        (
            ProviderKind::AuroraSolarSdk,
            vec![
                ("AURORA_SOLAR_BASE_URL", base.clone()),
                ("AURORA_SOLAR_API_KEY", API_KEY.into()),
                ("AURORA_SOLAR_TENANT_ID", "t-1".into()),
                ("AURORA_SOLAR_USER_EMAIL", "jo@acme.test".into()),
            ],
        ),
    ];
    for (kind, pairs) in cases {
        let provider = from_lookup(vars(&pairs), kind, &ProviderOptions::default()).unwrap();
        let err = provider.get().await.unwrap_err();
        assert_scrubbed(kind.as_str(), &err, &ALL);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_exchange_and_the_file_store_examples_scrub_what_they_sent() {
    let base = echo_server().await;
    // embedded_aurora_solar: the session token travels in the query.
    let app = PartnerApp::builder()
        .base_url(base.clone())
        .application_id("app-1")
        .application_key(APP_KEY)
        .build()
        .unwrap();
    let err = app
        .embedded("t-1", SESSION)
        .unwrap()
        .get()
        .await
        .unwrap_err();
    assert_scrubbed("embedded exchange", &err, &ALL);

    // aerion_file_store: a password login with a store.
    let dir = partner_auth::token_provider::testing::TempDir::new("echo-store");
    let aerion = Aerion::builder()
        .base_url(base)
        .company_url("acme.aerion.test")
        .username("pat@acme.test")
        .password(PASSWORD)
        .store(Arc::new(FileStore::new(dir.join("tokens.json"))))
        .build()
        .unwrap();
    let err = aerion.get().await.unwrap_err();
    assert_scrubbed("aerion with a file store", &err, &ALL);
}
