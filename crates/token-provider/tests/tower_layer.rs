//! `AuthLayer` in front of hyper-util's client, against a loopback server: the header sent, one
//! replay after a 401 when the body can be replayed and none when it cannot, and no token for
//! another origin, not even through a redirect.

use std::convert::Infallible;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mockito::Matcher;
use token_provider::auth::{AuthHeader, AuthLayer, AuthScope};
use token_provider::{
    AccessToken, BoxError, CachedTokenProvider, Error, TokenProvider, provider_fn,
};
use tower_layer::Layer;
use tower_service::Service;

/// A cached provider issuing `token-0`, `token-1`, ... and counting its fetches.
fn numbered() -> (Arc<dyn TokenProvider>, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    let provider = CachedTokenProvider::new(provider_fn("numbered", move || {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move { Ok(AccessToken::new(format!("token-{n}"))) }
    }));
    (Arc::new(provider), count)
}

fn scope(server: &mockito::ServerGuard) -> AuthScope {
    AuthScope::parse(&server.url()).unwrap()
}

fn client<B>() -> Client<HttpConnector, B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

/// `poll_ready`, then `call`: what tower's `oneshot` does.
async fn send<S, B>(service: &mut S, request: Request<B>) -> Result<S::Response, S::Error>
where
    S: Service<Request<B>>,
{
    poll_fn(|cx| service.poll_ready(cx)).await?;
    service.call(request).await
}

async fn text(response: Response<Incoming>) -> String {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

fn post(url: String, body: &'static str) -> Request<Full<Bytes>> {
    Request::post(url)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test]
async fn the_token_goes_in_the_providers_header_and_the_answer_comes_back() {
    let mut server = mockito::Server::new_async().await;
    let accounts = server
        .mock("POST", "/api/Accounts")
        .match_header("authentication", "Bearer token-0")
        .match_header("authorization", Matcher::Missing)
        .match_header("content-type", "text/plain")
        .match_body("payload")
        .with_status(200)
        .with_body("[]")
        .expect(2)
        .create_async()
        .await;
    let (provider, fetches) = numbered();
    let layer = AuthLayer::new(provider, scope(&server))
        .header(AuthHeader::named("Authentication").unwrap());
    let mut service = layer.layer(client());
    for _ in 0..2 {
        let url = format!("{}/api/Accounts", server.url());
        let response = send(&mut service, post(url, "payload")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, "[]");
    }
    accounts.assert_async().await;
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "the second from the cache"
    );
}

#[tokio::test]
async fn a_401_invalidates_that_token_and_replays_the_request_once() {
    let mut server = mockito::Server::new_async().await;
    let refused = server
        .mock("PUT", "/r")
        .match_header("authorization", "Bearer token-0")
        .match_body("body")
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    let accepted = server
        .mock("PUT", "/r")
        .match_header("authorization", "Bearer token-1")
        .match_header("x-request", "kept")
        .match_body("body")
        .with_status(204)
        .expect(1)
        .create_async()
        .await;
    let (provider, fetches) = numbered();
    let mut service = AuthLayer::new(Arc::clone(&provider), scope(&server)).layer(client());
    let request = Request::put(format!("{}/r", server.url()))
        .header("x-request", "kept")
        .body(Full::new(Bytes::from_static(b"body")))
        .unwrap();
    let response = send(&mut service, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    refused.assert_async().await;
    accepted.assert_async().await;
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert_eq!(
        provider.get().await.unwrap().secret().expose_secret(),
        "token-1",
        "the new token stays cached"
    );
}

#[tokio::test]
async fn a_second_401_is_returned_not_replayed_again() {
    let mut server = mockito::Server::new_async().await;
    let refused = server
        .mock("POST", "/x")
        .match_body("payload")
        .with_status(401)
        .with_body("no")
        .expect(2)
        .create_async()
        .await;
    let (provider, fetches) = numbered();
    let mut service = AuthLayer::new(provider, scope(&server)).layer(client());
    let response = send(&mut service, post(format!("{}/x", server.url()), "payload"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(text(response).await, "no");
    refused.assert_async().await;
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

type Streamed =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn streamed(chunks: &[&'static str]) -> Streamed {
    let frames: Vec<_> = chunks
        .iter()
        .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
        .collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

#[tokio::test]
async fn a_body_that_cannot_be_replayed_is_sent_once_and_its_token_dropped() {
    let mut server = mockito::Server::new_async().await;
    let refused = server
        .mock("POST", "/upload")
        .match_header("authorization", "Bearer token-0")
        .match_body("part-1part-2")
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    let (provider, fetches) = numbered();
    let mut service = AuthLayer::new(Arc::clone(&provider), scope(&server))
        .without_replay()
        .layer(client::<Streamed>());
    let request = Request::post(format!("{}/upload", server.url()))
        .body(streamed(&["part-1", "part-2"]))
        .unwrap();
    let response = send(&mut service, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    refused.assert_async().await;
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "no second token for a replay"
    );
    // The refused token was invalidated: the next caller gets a new one.
    assert_eq!(
        provider.get().await.unwrap().secret().expose_secret(),
        "token-1"
    );
}

#[tokio::test]
async fn a_replay_function_decides_per_request() {
    let mut server = mockito::Server::new_async().await;
    let big = server
        .mock("POST", "/big")
        .match_body("a body too big to keep")
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    let (provider, fetches) = numbered();
    // Keeps a copy only of bodies of at most 8 bytes.
    let small_only = |body: &Full<Bytes>| {
        use hyper::body::Body as _;
        (body.size_hint().exact()? <= 8).then(|| body.clone())
    };
    let mut service = AuthLayer::new(provider, scope(&server))
        .replay(small_only)
        .layer(client());
    let url = format!("{}/big", server.url());
    let response = send(&mut service, post(url, "a body too big to keep"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    big.assert_async().await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn another_origin_gets_no_token_and_no_fetch() {
    let api = mockito::Server::new_async().await;
    let mut elsewhere = mockito::Server::new_async().await;
    let plain = elsewhere
        .mock("GET", "/file")
        .match_header("authorization", Matcher::Missing)
        .match_header("authentication", Matcher::Missing)
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    let (provider, fetches) = numbered();
    let mut service = AuthLayer::new(provider, scope(&api))
        .header(AuthHeader::named("Authentication").unwrap())
        .layer(client());
    let request = Request::get(format!("{}/file", elsewhere.url()))
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = send(&mut service, request).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "passed through, no retry"
    );
    plain.assert_async().await;
    assert_eq!(fetches.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_redirect_to_another_origin_never_carries_the_token() {
    let mut api = mockito::Server::new_async().await;
    let mut elsewhere = mockito::Server::new_async().await;
    let moved = api
        .mock("GET", "/v1/report")
        .match_header("authentication", "Bearer token-0")
        .with_status(302)
        .with_header("location", &format!("{}/download", elsewhere.url()))
        .expect(2)
        .create_async()
        .await;
    let bare = elsewhere
        .mock("GET", "/download")
        .match_header("authentication", Matcher::Missing)
        .match_header("authorization", Matcher::Missing)
        .with_status(200)
        .with_body("report")
        .expect(1)
        .create_async()
        .await;
    let (provider, _) = numbered();
    let layer =
        AuthLayer::new(provider, scope(&api)).header(AuthHeader::named("Authentication").unwrap());
    let request = || {
        Request::get(format!("{}/v1/report", api.url()))
            .body(Full::<Bytes>::default())
            .unwrap()
    };

    // The layer itself follows nothing: the 3xx comes back as it came.
    let mut service = layer.layer(client());
    let response = send(&mut service, request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);

    // A follower outside the layer sends each hop through it: the hop to another origin is
    // out of scope, and goes without the token.
    let mut following =
        tower_http::follow_redirect::FollowRedirectLayer::new().layer(layer.layer(client()));
    let response = send(&mut following, request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "report");
    moved.assert_async().await;
    bare.assert_async().await;
}

#[tokio::test]
async fn a_path_only_uri_is_refused_before_a_token_is_fetched() {
    let mut server = mockito::Server::new_async().await;
    let never = server
        .mock("GET", Matcher::Any)
        .expect(0)
        .create_async()
        .await;
    let (provider, fetches) = numbered();
    let mut service = AuthLayer::new(provider, scope(&server)).layer(client());
    let request = Request::get("/v1/users/me")
        .body(Full::<Bytes>::default())
        .unwrap();
    let err = send(&mut service, request).await.unwrap_err();
    let err = err.downcast::<Error>().expect("the crate's error");
    assert!(matches!(*err, Error::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("with_origin"), "{err}");
    never.assert_async().await;
    assert_eq!(fetches.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_provider_failure_is_the_callers_error_and_nothing_is_sent() {
    let mut server = mockito::Server::new_async().await;
    let never = server
        .mock("GET", Matcher::Any)
        .expect(0)
        .create_async()
        .await;
    let provider: Arc<dyn TokenProvider> =
        Arc::new(CachedTokenProvider::new(provider_fn("failing", || async {
            Err(Error::rejected(Some(401), Some("invalid_client"), None))
        })));
    let mut service = AuthLayer::new(provider, scope(&server)).layer(client());
    let request = Request::get(format!("{}/me", server.url()))
        .body(Full::<Bytes>::default())
        .unwrap();
    let err = send(&mut service, request).await.unwrap_err();
    assert!(err.downcast::<Error>().unwrap().is_rejected());
    never.assert_async().await;
}

#[tokio::test]
async fn no_token_reaches_a_log_line_or_a_debug() {
    let logs = token_provider::testing::capture_logs();
    let mut server = mockito::Server::new_async().await;
    let refused = server
        .mock("GET", "/me")
        .match_header("authorization", "Bearer layer-secret-0")
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    let accepted = server
        .mock("GET", "/me")
        .match_header("authorization", "Bearer layer-secret-1")
        .with_status(200)
        .expect(1)
        .create_async()
        .await;
    let count = Arc::new(AtomicUsize::new(0));
    let provider: Arc<dyn TokenProvider> = Arc::new(CachedTokenProvider::new(provider_fn(
        "secretive",
        move || {
            let n = count.fetch_add(1, Ordering::SeqCst);
            async move { Ok(AccessToken::new(format!("layer-secret-{n}"))) }
        },
    )));
    let mut service = AuthLayer::new(provider, scope(&server)).layer(client());
    let request = Request::get(format!("{}/me", server.url()))
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = send(&mut service, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    refused.assert_async().await;
    accepted.assert_async().await;
    let debug = format!("{service:?}");
    assert!(!debug.contains("layer-secret"), "{debug}");
    logs.assert_absent(&["layer-secret-0", "layer-secret-1"]);
}
