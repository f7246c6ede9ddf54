//! A request remembers the secrets it carried (a bearer, Basic credentials, form fields and
//! query parameters marked secret), and any error built from its response is scrubbed of them
//! without the caller listing them: a server that echoes everything it received gets none of it
//! into an error message.

use std::time::Duration;

use token_provider::http::{Repeat, Request};
use token_provider::testing::fast_retry;
use token_provider::url::Url;
use token_provider::{HttpClient, Secret, error_chain};

/// What the echoing server answers: its status, and every header, the query and the body it
/// received, as the error words a provider would write.
async fn echo(status: usize) -> (mockito::ServerGuard, Url) {
    let mut server = mockito::Server::new_async().await;
    server
        .mock("POST", mockito::Matcher::Any)
        .with_status(status)
        .with_header("content-type", "application/json")
        .with_body_from_request(|request| {
            let headers: Vec<String> = request
                .headers()
                .iter()
                .map(|(name, value)| format!("{name}={}", value.to_str().unwrap_or("")))
                .collect();
            let body = String::from_utf8_lossy(request.body().unwrap_or(&Vec::new())).into_owned();
            serde_json::json!({
                "error": format!("echo {}", request.path_and_query()),
                "error_description": format!("headers {} body {body}", headers.join(" ")),
            })
            .to_string()
            .into_bytes()
        })
        .create_async()
        .await;
    let url = Url::parse(&format!("{}/oauth/token", server.url())).unwrap();
    (server, url)
}

#[tokio::test]
async fn errors_from_a_response_are_scrubbed_of_what_the_request_carried() {
    let bearer = Secret::new("bearer-SECRET-4f1a9c");
    let client_secret = Secret::new("client-SECRET-77d2e0");
    let password = Secret::new("password-SECRET-0b3c");
    let session = Secret::new("session-SECRET-91ee2a");
    let client = HttpClient::builder()
        .timeout(Duration::from_secs(5))
        .retry(fast_retry(1))
        .build()
        .unwrap();
    for status in [400, 401, 403, 409, 422] {
        let (_server, url) = echo(status).await;
        let requests = [
            Request::post(url.clone(), Repeat::Safe)
                .bearer(&bearer)
                .unwrap(),
            Request::post(url.clone(), Repeat::Safe)
                .basic_auth("client-id", &client_secret)
                .unwrap(),
            Request::post(url.clone(), Repeat::Safe).secret_form(
                &[("grant_type", "password"), ("username", "pat")],
                &[("password", &password), ("client_secret", &client_secret)],
            ),
            Request::post(url.clone(), Repeat::Once).secret_query("session_token", &session),
        ];
        for request in requests {
            let response = client.execute(request).await.unwrap();
            assert_eq!(response.status().as_u16(), status as u16);
            let err = response.error();
            let shown = format!("{err} | {err:?} | {}", error_chain(&err));
            assert!(shown.contains("echo /oauth/token"), "{shown}");
            for secret in [
                "bearer-SECRET",
                "client-SECRET",
                "password-SECRET",
                "session-SECRET",
            ] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
            assert!(shown.contains("[redacted]"), "{shown}");
            // The words that were no secret stay.
            assert!(!format!("{response:?}").contains("SECRET"), "{response:?}");
        }
    }
}
