//! Authenticated calls: the token the server saw, and exactly one retry after a 401.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use token_provider::auth::{AuthHeader, AuthMiddleware, AuthScope, send_authorized};
use token_provider::testing::{assert_mocks, bearer_mock, reply, token_text};
use token_provider::{AccessToken, CachedTokenProvider, TokenProvider, provider_fn};

/// The scope of a mock server's origin.
fn scope(server: &mockito::ServerGuard) -> AuthScope {
    AuthScope::new(&url::Url::parse(&server.url()).unwrap()).unwrap()
}

/// A cached provider issuing `token-0`, `token-1`, ... and counting its fetches.
fn numbered() -> (
    Arc<CachedTokenProvider<impl token_provider::Fetch>>,
    Arc<AtomicUsize>,
) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    let provider = CachedTokenProvider::new(provider_fn("numbered", move || {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move { Ok(AccessToken::new(format!("token-{n}"))) }
    }));
    (Arc::new(provider), count)
}

/// A `reqwest_middleware` client attaching `provider`'s token within `scope`.
fn middleware(
    provider: Arc<impl TokenProvider + 'static>,
    scope: AuthScope,
) -> reqwest_middleware::ClientWithMiddleware {
    let dynamic: Arc<dyn TokenProvider> = provider;
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(dynamic, scope))
        .build()
}

/// A presigned download on another origin: `GET /bucket/file.pdf` with no `Authorization`
/// at all, expected once and answered 200.
async fn presigned_file(storage: &mut mockito::ServerGuard) -> mockito::Mock {
    let mock = storage.mock("GET", "/bucket/file.pdf");
    let mock = mock.match_header("authorization", mockito::Matcher::Missing);
    reply(mock.expect(1), 200, "").await
}

#[tokio::test]
async fn a_401_invalidates_that_token_and_retries_once() {
    let mut server = mockito::Server::new_async().await;
    let refused = reply(
        bearer_mock(&mut server, "GET", "/me", "token-0").expect(1),
        401,
        "",
    )
    .await;
    let ok = reply(
        bearer_mock(&mut server, "GET", "/me", "token-1").expect(1),
        200,
        "me",
    )
    .await;
    let (provider, fetches) = numbered();
    let client = reqwest::Client::new();
    let url = format!("{}/me", server.url());
    let resp = send_authorized(&*provider, &AuthHeader::default(), &scope(&server), || {
        client.get(&url)
    })
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "me");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert_mocks(&[&refused, &ok]).await;
    // The new token stays cached.
    assert_eq!(token_text(&provider).await, "token-1");
}

#[tokio::test]
async fn a_second_401_is_returned_not_retried_again() {
    let mut server = mockito::Server::new_async().await;
    let refused = reply(
        server.mock("POST", "/x").match_body("payload").expect(2),
        401,
        "",
    )
    .await;
    let (provider, fetches) = numbered();
    let client = reqwest::Client::new();
    let url = format!("{}/x", server.url());
    let resp = send_authorized(&*provider, &AuthHeader::default(), &scope(&server), || {
        client.post(&url).body("payload")
    })
    .await
    .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    refused.assert_async().await;
}

#[tokio::test]
async fn another_header_name_can_carry_the_token() {
    let mut server = mockito::Server::new_async().await;
    let mock = reply(
        server
            .mock("GET", "/Accounts")
            .match_header("authentication", "Bearer token-0")
            .match_header("authorization", mockito::Matcher::Missing)
            .expect(1),
        200,
        "",
    )
    .await;
    let (provider, _) = numbered();
    let client = reqwest::Client::new();
    let url = format!("{}/Accounts", server.url());
    let header = AuthHeader::named("Authentication").unwrap();
    let resp = send_authorized(&*provider, &header, &scope(&server), || client.get(&url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    mock.assert_async().await;
    assert!(AuthHeader::named("bad header").is_err());
}

#[tokio::test]
async fn the_middleware_retries_once_with_a_new_token() {
    let mut server = mockito::Server::new_async().await;
    let refused = reply(
        bearer_mock(&mut server, "PUT", "/r", "token-0")
            .match_body("body")
            .expect(1),
        401,
        "",
    )
    .await;
    let ok = reply(
        bearer_mock(&mut server, "PUT", "/r", "token-1")
            .match_body("body")
            .expect(1),
        204,
        "",
    )
    .await;
    let (provider, fetches) = numbered();
    let client = middleware(provider, scope(&server));
    let resp = client
        .put(format!("{}/r", server.url()))
        .body("body")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert_mocks(&[&refused, &ok]).await;

    // Never more than once.
    let always = reply(server.mock("GET", "/always").expect(2), 401, "").await;
    let resp = client
        .get(format!("{}/always", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    always.assert_async().await;
}

#[tokio::test]
async fn a_provider_failure_is_the_callers_error_and_nothing_is_sent() {
    let mut server = mockito::Server::new_async().await;
    let never = server.mock("GET", "/x").expect(0).create_async().await;
    let provider = CachedTokenProvider::new(provider_fn("failing", || async {
        Err(token_provider::Error::rejected(
            Some(401),
            Some("invalid_client"),
            None,
        ))
    }));
    let client = reqwest::Client::new();
    let url = format!("{}/x", server.url());
    let err = send_authorized(&provider, &AuthHeader::default(), &scope(&server), || {
        client.get(&url)
    })
    .await
    .unwrap_err();
    assert!(err.is_rejected());
    never.assert_async().await;
}

#[tokio::test]
async fn no_token_is_attached_to_plain_http_for_a_remote_host() {
    // A scope cannot hold a plain-http remote origin at all.
    let err = AuthScope::new(&url::Url::parse("http://partner-auth.invalid").unwrap()).unwrap_err();
    assert!(
        matches!(err, token_provider::Error::Config { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("https"), "{err}");

    // The https API's scope does not reach its plain-http twin: sent untouched, no token.
    let (provider, fetches) = numbered();
    let https = AuthScope::new(&url::Url::parse("https://partner-auth.invalid").unwrap()).unwrap();
    let client = reqwest::Client::new();
    let err = send_authorized(&*provider, &AuthHeader::default(), &https, || {
        client.get("http://partner-auth.invalid/me")
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, token_provider::Error::Transport { .. }),
        "{err:?}"
    );

    let client = middleware(provider, https);
    assert!(
        client
            .get("http://partner-auth.invalid/me")
            .send()
            .await
            .is_err()
    );
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        0,
        "no token was even fetched"
    );
}

#[tokio::test]
async fn the_middleware_sends_no_token_to_another_origin() {
    let mut api = mockito::Server::new_async().await;
    let mut storage = mockito::Server::new_async().await;
    let key = reply(
        api.mock("GET", "/v1/design")
            .match_header("authorization", "Bearer token-0")
            .expect(1),
        200,
        "",
    )
    .await;
    let presigned = presigned_file(&mut storage).await;
    let (provider, _) = numbered();
    let client = middleware(provider, scope(&api));
    let resp = client
        .get(format!("{}/v1/design", api.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client
        .get(format!("{}/bucket/file.pdf", storage.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_mocks(&[&key, &presigned]).await;
}

#[tokio::test]
async fn send_authorized_sends_no_token_to_another_origin() {
    let mut storage = mockito::Server::new_async().await;
    let presigned = presigned_file(&mut storage).await;
    let (provider, fetches) = numbered();
    let client = reqwest::Client::new();
    let url = format!("{}/bucket/file.pdf", storage.url());
    let resp = send_authorized(
        &*provider,
        &AuthHeader::default(),
        &AuthScope::new(&url::Url::parse("https://api.example.com").unwrap()).unwrap(),
        || client.get(&url),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    presigned.assert_async().await;
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        0,
        "no token was even fetched"
    );
}

#[tokio::test]
async fn a_401_on_an_unreplayable_body_still_invalidates_the_token() {
    let mut server = mockito::Server::new_async().await;
    let refused = reply(server.mock("POST", "/upload").expect(1), 401, "").await;
    let (provider, fetches) = numbered();
    let client = middleware(provider.clone(), scope(&server));
    let stream = futures_stream_once(b"chunk".to_vec());
    let resp = client
        .post(format!("{}/upload", server.url()))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    refused.assert_async().await;
    // The refused token is gone: the next caller gets a new one.
    assert_eq!(token_text(&provider).await, "token-1");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

/// A one-chunk body stream, which reqwest cannot clone for a replay.
fn futures_stream_once(
    chunk: Vec<u8>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + Sync + 'static {
    futures_util::stream::once(async move { Ok(chunk) })
}
