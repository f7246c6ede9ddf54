//! A capturing subscriber at TRACE: no client secret or access token in any log line.
//!
//! Its own test binary, because the capturing subscriber is process-wide.

mod common;

use common::*;
use mockito::Matcher;
use token_provider::TokenProvider;
use token_provider::testing::{bearer_mock, reply};

#[tokio::test]
async fn no_secret_or_token_is_ever_logged() {
    let logs = token_provider::testing::capture_logs();

    // Success, then an API 401 that forces a second token.
    let mut server = mockito::Server::new_async().await;
    let _ = mock_discovery(&mut server, 1).await;
    let _t1 = token_issued(&mut server, "at-log-secret-1", 1).await;
    let _t2 = token_issued(&mut server, "at-log-secret-2", 1).await;
    let _refused = reply(
        bearer_mock(&mut server, "GET", "/Accounts", "at-log-secret-1"),
        401,
        "",
    )
    .await;
    let _ok = reply(
        bearer_mock(&mut server, "GET", "/Accounts", "at-log-secret-2"),
        200,
        "",
    )
    .await;
    let aurora = builder(&server).api_base(server.url()).build().unwrap();
    let url = aurora.api_base().join("Accounts").unwrap();
    let response = aurora.send(|c| c.get(url.clone())).await.unwrap();
    assert_eq!(response.status(), 200);

    // Failures: bad credentials, a rate limit, an issuer mismatch.
    let mut bad = mockito::Server::new_async().await;
    let _ = mock_discovery(&mut bad, 1).await;
    let _bad_credentials = mock_token_basic(
        &mut bad,
        "/oauth/token",
        401,
        r#"{"error":"access_denied","error_description":"Unauthorized"}"#,
        1,
    )
    .await;
    let failing = builder(&bad).build().unwrap();
    let e1 = failing.token().await.unwrap_err();

    let mut limited = mockito::Server::new_async().await;
    let _ = mock_discovery(&mut limited, 1).await;
    let _rate_limited = reply(
        limited
            .mock("POST", "/oauth/token")
            .with_header("retry-after", "0"),
        429,
        "",
    )
    .await;
    let e2 = builder(&limited)
        .build()
        .unwrap()
        .token()
        .await
        .unwrap_err();

    let mut wrong = mockito::Server::new_async().await;
    let wrong_issuer = wrong.url();
    let _ = mock_discovery_with(&mut wrong, 1, &wrong_issuer, "/oauth/token").await;
    let _never = wrong
        .mock("POST", Matcher::Any)
        .expect(0)
        .create_async()
        .await;
    let e3 = builder(&wrong).build().unwrap().token().await.unwrap_err();

    let secrets = [
        CLIENT_SECRET,
        "s3cr3t%2Fwith%2Bchars",
        BASIC.trim_start_matches("Basic "),
        "at-log-secret-1",
        "at-log-secret-2",
    ];
    // The capture is working at this crate's level, so its absence means something.
    let contents = logs.contents();
    assert!(
        contents.contains("aurora-uk discovery fetched"),
        "{contents}"
    );
    assert!(contents.contains("refused the token"), "{contents}");
    assert!(contents.contains("TRACE"), "{contents}");
    logs.assert_absent(&secrets);

    let rendered = format!(
        "{e1} {e1:?} {e2} {e2:?} {e3} {e3:?} {aurora:?} {failing:?} {:?}",
        builder(&server)
    );
    for secret in secrets {
        assert!(!rendered.contains(secret), "{secret} in {rendered}");
    }
}
