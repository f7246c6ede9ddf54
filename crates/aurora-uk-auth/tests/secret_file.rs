//! The client secret from `AURORA_UK_CLIENT_SECRET_FILE`: read again when the file changes,
//! and once more after Auth0 refuses it, before the cache holds the refusal.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aurora_uk_auth::AuroraUkBuilder;
use common::*;
use mockito::{Matcher, Mock};
use token_provider::testing::{SecretFile, capture_logs, secret};
use token_provider::{Error, TokenProvider};

/// The token endpoint answering a request with `secret` in the form (`AURORA_UK_CLIENT_AUTH=
/// post`): 200 with `token`, or Auth0's 401.
async fn token_for(
    server: &mut mockito::ServerGuard,
    secret: &str,
    answer: Option<&str>,
    times: usize,
) -> Mock {
    let (status, body) = match answer {
        Some(token) => (200, token_body(token, 3600)),
        None => (
            401,
            r#"{"error":"access_denied","error_description":"Unauthorized"}"#.to_owned(),
        ),
    };
    let mock = server
        .mock("POST", "/oauth/token")
        .match_header("authorization", Matcher::Missing)
        .match_header("content-type", "application/x-www-form-urlencoded")
        .match_request(exact_form(&[
            ("grant_type", "client_credentials"),
            ("audience", AUDIENCE),
            ("client_id", CLIENT_ID),
            ("client_secret", secret),
        ]));
    token_provider::testing::json_reply(mock.expect(times), status, body).await
}

fn from_file(server: &mockito::ServerGuard, file: &SecretFile) -> AuroraUkBuilder {
    let issuer = issuer(server);
    let path = file.path().display().to_string();
    AuroraUkBuilder::from_env_with(move |name| match name {
        "AURORA_UK_ENV" => Some("dev".to_owned()),
        "AURORA_UK_ISSUER" => Some(issuer.clone()),
        "AURORA_UK_CLIENT_ID" => Some(CLIENT_ID.to_owned()),
        "AURORA_UK_CLIENT_SECRET_FILE" => Some(path.clone()),
        "AURORA_UK_CLIENT_AUTH" => Some("post".to_owned()),
        _ => None,
    })
    .unwrap()
    .http_client(http_client())
}

#[tokio::test]
async fn a_client_secret_file_is_read_again_when_it_changes_and_after_a_refusal() {
    let logs = capture_logs();
    let mut server = mockito::Server::new_async().await;
    let (_discovery, _jwks) = mock_discovery(&mut server, 1).await;
    let mut file = SecretFile::new("client_secret", "cs-file-one");
    let clock = fixed_clock();
    let aurora = from_file(&server, &file)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    assert!(!format!("{aurora:?}").contains("cs-file"), "{aurora:?}");

    let one = token_for(&mut server, "cs-file-one", Some("at-one"), 1).await;
    assert_eq!(secret(&aurora.get().await.unwrap()), "at-one");
    one.assert_async().await;

    // Kubernetes swaps the mount: the next fetch reads the file again and sends the new secret
    // at once, nothing refused.
    file.swap("cs-file-two");
    let two = token_for(&mut server, "cs-file-two", Some("at-two"), 1).await;
    clock.advance(Duration::from_secs(3600));
    assert_eq!(secret(&aurora.get().await.unwrap()), "at-two");
    two.assert_async().await;

    // Rewritten in place with nothing in the metadata to show it: the old secret goes out, is
    // refused, and the file read once more gives the new one, sent at once.
    file.rewrite_unseen("cs-file-333");
    let refused = token_for(&mut server, "cs-file-two", None, 1).await;
    let three = token_for(&mut server, "cs-file-333", Some("at-three"), 1).await;
    clock.advance(Duration::from_secs(3600));
    assert_eq!(secret(&aurora.get().await.unwrap()), "at-three");
    refused.assert_async().await;
    three.assert_async().await;

    // Refused with the file unchanged: the refusal is the answer, after one request.
    let refused_again = token_for(&mut server, "cs-file-333", None, 1).await;
    clock.advance(Duration::from_secs(3600));
    let err = aurora.get().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Rejected {
                status: Some(401),
                ..
            }
        ),
        "{err}"
    );
    refused_again.assert_async().await;
    assert!(!err.to_string().contains("cs-file"), "{err}");
    logs.assert_absent(&["cs-file-one", "cs-file-two", "cs-file-333"]);
}

#[test]
fn the_variable_and_its_file_together_are_refused_by_name() {
    let file = SecretFile::new("client_secret", "cs-both");
    let path = file.path().display().to_string();
    let err = AuroraUkBuilder::from_env_with(|name| match name {
        "AURORA_UK_ENV" => Some("dev".to_owned()),
        "AURORA_UK_CLIENT_ID" => Some(CLIENT_ID.to_owned()),
        "AURORA_UK_CLIENT_SECRET" => Some("cs-both".to_owned()),
        "AURORA_UK_CLIENT_SECRET_FILE" => Some(path.clone()),
        _ => None,
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration: `AURORA_UK_CLIENT_SECRET and AURORA_UK_CLIENT_SECRET_FILE` are \
         both set: set only one of them"
    );

    let missing = format!("{path}.missing");
    let err = AuroraUkBuilder::from_env_with(|name| match name {
        "AURORA_UK_CLIENT_SECRET_FILE" => Some(missing.clone()),
        _ => None,
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("AURORA_UK_CLIENT_SECRET_FILE") && err.contains(&missing),
        "{err}"
    );
}
