//! The HTTP policy, proved by what a real loopback server saw.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mockito::Matcher;
use token_provider::http::{Repeat, Request, Response, USER_AGENT};
use token_provider::testing::{assert_mocks, fast_retry, reply};
use token_provider::{Error, HttpClient, Secret};
use url::Url;

fn client(attempts: u32) -> HttpClient {
    HttpClient::builder()
        .timeout(Duration::from_secs(5))
        .retry(fast_retry(attempts))
        .build()
        .unwrap()
}

fn url(server: &mockito::ServerGuard, path: &str) -> Url {
    Url::parse(&format!("{}{path}", server.url())).unwrap()
}

#[tokio::test]
async fn sends_user_agent_bearer_and_form() {
    let mut server = mockito::Server::new_async().await;
    let mock = reply(
        server
            .mock("POST", "/oauth2/token")
            .match_header("user-agent", USER_AGENT)
            .match_header("authorization", "Bearer app-key-1")
            .match_header("content-type", "application/x-www-form-urlencoded")
            .match_body(Matcher::AllOf(vec![
                Matcher::UrlEncoded("grant_type".into(), "password".into()),
                Matcher::UrlEncoded("username".into(), "a b&c".into()),
            ]))
            .expect(1),
        200,
        r#"{"ok":true}"#,
    )
    .await;
    let req = Request::post(url(&server, "/oauth2/token"), Repeat::Safe)
        .bearer(&Secret::new("app-key-1"))
        .unwrap()
        .form(&[("grant_type", "password"), ("username", "a b&c")]);
    let resp = client(3).execute(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body(), br#"{"ok":true}"#);
    mock.assert_async().await;
}

#[tokio::test]
async fn basic_auth_encodes_per_rfc6749() {
    let mut server = mockito::Server::new_async().await;
    // "id:x" / "s&cret" form-encoded then base64: "id%3Ax:s%26cret"
    let mock = reply(
        server
            .mock("POST", "/t")
            .match_header("authorization", "Basic aWQlM0F4OnMlMjZjcmV0")
            .expect(1),
        200,
        "",
    )
    .await;
    let req = Request::post(url(&server, "/t"), Repeat::Safe)
        .basic_auth("id:x", &Secret::new("s&cret"))
        .unwrap();
    client(1).execute(req).await.unwrap();
    mock.assert_async().await;
}

#[tokio::test]
async fn retries_503_then_succeeds() {
    let mut server = mockito::Server::new_async().await;
    let fail = reply(server.mock("POST", "/t").expect(2), 503, "").await;
    let ok = reply(server.mock("POST", "/t").expect(1), 200, "{}").await;
    let resp = client(3)
        .execute(Request::post(url(&server, "/t"), Repeat::Safe))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_mocks(&[&fail, &ok]).await;
}

#[tokio::test]
async fn exhausted_5xx_is_a_transient_status_error() {
    let mut server = mockito::Server::new_async().await;
    let fail = reply(server.mock("GET", "/t").expect(3), 502, "").await;
    let err = client(3)
        .execute(Request::get(url(&server, "/t")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Status { status: 502, .. }), "{err:?}");
    assert!(err.is_transient());
    fail.assert_async().await;
}

#[tokio::test]
async fn retries_429_after_the_retry_after_it_was_given() {
    let mut server = mockito::Server::new_async().await;
    let limited = reply(
        server
            .mock("POST", "/t")
            .with_header("retry-after", "1")
            .expect(1),
        429,
        "",
    )
    .await;
    let ok = reply(server.mock("POST", "/t").expect(1), 200, "").await;
    let started = tokio::time::Instant::now();
    let resp = client(3)
        .execute(Request::post(url(&server, "/t"), Repeat::Safe))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(resp.status(), 200);
    // The backoff alone would be 5-10 ms: the second try waited for the server's second.
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert_mocks(&[&limited, &ok]).await;
}

#[tokio::test]
async fn retry_after_beyond_the_cap_ends_at_once_with_the_providers_figure() {
    let mut server = mockito::Server::new_async().await;
    let limited = reply(
        server
            .mock("POST", "/t")
            .with_header("retry-after", "3600")
            .expect(1),
        429,
        "",
    )
    .await;
    let err = client(3)
        .execute(Request::post(url(&server, "/t"), Repeat::Safe))
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert!(matches!(err, Error::RateLimited { .. }));
    limited.assert_async().await;
}

#[tokio::test]
async fn rejections_are_not_retried_and_carry_the_oauth_error() {
    for status in [400, 401, 403] {
        let mut server = mockito::Server::new_async().await;
        let mock = reply(
            server.mock("POST", "/t").expect(1),
            status,
            r#"{"error":"invalid_client","error_description":"Unknown client"}"#,
        )
        .await;
        let resp = client(3)
            .execute(Request::post(url(&server, "/t"), Repeat::Safe))
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status as u16);
        let err = resp.error();
        assert_eq!(
            err.to_string(),
            format!("credentials rejected (HTTP {status}): invalid_client: Unknown client")
        );
        assert!(!err.is_transient());
        mock.assert_async().await;
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let mut server = mockito::Server::new_async().await;
    let target = server
        .mock("POST", "/elsewhere")
        .expect(0)
        .create_async()
        .await;
    let redirect = reply(
        server
            .mock("POST", "/t")
            .with_header("location", &format!("{}/elsewhere", server.url()))
            .expect(1),
        302,
        "",
    )
    .await;
    let err = client(3)
        .execute(Request::post(url(&server, "/t"), Repeat::Safe))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Status { status: 302, .. }), "{err:?}");
    assert_mocks(&[&redirect, &target]).await;
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused_before_connecting() {
    // `.invalid` never resolves: had the client tried, the error would be a transport error.
    let req = Request::post(
        Url::parse("http://partner-auth.invalid/oauth/token").unwrap(),
        Repeat::Safe,
    );
    let err = client(3).execute(req).await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("https"), "{err}");
}

/// A loopback server that accepts connections, reads the request, and then does `then` with the
/// socket; counts the connections.
fn raw_server(
    then: impl Fn(std::net::TcpStream) + Send + Sync + 'static,
) -> (Url, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let then = Arc::new(then);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            seen.fetch_add(1, Ordering::SeqCst);
            let then = Arc::clone(&then);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                then(stream);
            });
        }
    });
    (Url::parse(&format!("http://{addr}/t")).unwrap(), count)
}

/// The connections `count` came to: waits (at most 5 s) until it reaches `expected` (the
/// server's thread counts a connection when it accepts it, which on a busy machine can be after
/// the client gave up on it), then a moment more, so that one more coming later is counted too.
async fn connections_settled(count: &AtomicUsize, expected: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while count.load(Ordering::SeqCst) < expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    count.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_hung_server_hits_the_timeout() {
    let (url, connections) = raw_server(|stream| {
        std::thread::sleep(Duration::from_secs(10));
        drop(stream);
    });
    let client = HttpClient::builder()
        .timeout(Duration::from_millis(300))
        .retry(fast_retry(2))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let err = client
        .execute(Request::post(url, Repeat::Safe))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TimedOut { attempts: 2, per_attempt, .. }
            if per_attempt == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // A repeatable request is tried again after a timeout.
    assert_eq!(connections_settled(&connections, 2).await, 2);
}

#[tokio::test]
async fn a_request_that_must_not_repeat_is_sent_once() {
    // Timed out: it may have reached the server, so it is not sent again.
    let (url, connections) = raw_server(|stream| {
        std::thread::sleep(Duration::from_secs(10));
        drop(stream);
    });
    let client = HttpClient::builder()
        .timeout(Duration::from_millis(300))
        .retry(fast_retry(3))
        .build()
        .unwrap();
    let err = client
        .execute(Request::post(url, Repeat::Once))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TimedOut { attempts: 1, .. }),
        "{err:?}"
    );
    assert_eq!(connections_settled(&connections, 1).await, 1);

    // A 503 answer: it reached the server, so it is not sent again either.
    let mut server = mockito::Server::new_async().await;
    let mock = reply(server.mock("POST", "/t").expect(1), 503, "").await;
    let err = client
        .execute(Request::post(url_of(&server), Repeat::Once))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Status { status: 503, .. }), "{err:?}");
    mock.assert_async().await;
}

fn url_of(server: &mockito::ServerGuard) -> Url {
    url(server, "/t")
}

#[tokio::test]
async fn connection_refused_is_retried_even_when_not_repeatable() {
    // Nothing listens on the port: no byte can have reached a server.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = Url::parse(&format!("http://127.0.0.1:{port}/t")).unwrap();
    let err = client(2)
        .send(Request::post(url, Repeat::Once))
        .await
        .unwrap_err();
    // `send` says so, so the caller knows nothing was spent.
    assert!(!err.reached_server(), "{err:?}");
    let err = err.into_error();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn an_oversized_body_is_cut_off_while_reading() {
    // Chunked, no Content-Length: the cap must be enforced while streaming. The server writes
    // until the client hangs up and counts what it managed to write.
    let written = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&written);
    let (url, _) = raw_server(move |mut stream| {
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        );
        let chunk = vec![b'a'; 16 * 1024];
        let framed = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk,
            b"\r\n".to_vec(),
        ]
        .concat();
        for _ in 0..(64 * 1024) {
            // 64 Ki chunks of 16 KiB = 1 GiB if nobody stopped us.
            if stream.write_all(&framed).is_err() {
                return;
            }
            counter.fetch_add(16 * 1024, Ordering::SeqCst);
        }
    });
    let client = HttpClient::builder()
        .max_body(64 * 1024)
        .retry(fast_retry(1))
        .build()
        .unwrap();
    let err = client.execute(Request::get(url)).await.unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { limit: 65536, .. }),
        "{err:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = written.load(Ordering::SeqCst);
    // Socket buffers let the server run ahead of the reader a little; never anywhere near 1 GiB.
    assert!(sent < 32 * 1024 * 1024, "server wrote {sent} bytes");
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_unread() {
    let mut server = mockito::Server::new_async().await;
    let mock = reply(
        server.mock("GET", "/t").expect(1),
        200,
        vec![b'x'; 2 * 1024 * 1024],
    )
    .await;
    let err = client(3)
        .execute(Request::get(url(&server, "/t")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { limit, .. } if limit == 1024 * 1024),
        "{err:?}"
    );
    mock.assert_async().await;
}

#[tokio::test]
async fn the_oauth_adapter_goes_through_the_policy_and_maps_errors_with_their_status() {
    let mut server = mockito::Server::new_async().await;
    let mock = reply(
        server
            .mock("POST", "/oauth/token")
            .match_header("user-agent", USER_AGENT)
            .match_header("companyurl", "acme.example")
            .expect(2),
        403,
        r#"{"error":"access_denied"}"#,
    )
    .await;
    let client = client(3);
    let request = || {
        http::Request::builder()
            .method("POST")
            .uri(format!("{}/oauth/token", server.url()))
            .body(b"grant_type=client_credentials".to_vec())
            .unwrap()
    };
    let header = (
        http::HeaderName::from_static("companyurl"),
        http::HeaderValue::from_static("acme.example"),
    );
    // Without a mapping the answer is handed over as it is, status and all (discovery).
    let plain = client
        .oauth_adapter(Repeat::Safe)
        .header(header.0.clone(), header.1.clone());
    let resp = plain.call(request()).await.unwrap();
    assert_eq!(resp.status(), 403);
    // With one, the error is made with the status in hand.
    let map = |response: &Response| response.error();
    let mapped = client
        .oauth_adapter(Repeat::Safe)
        .header(header.0, header.1)
        .errors(&map);
    let err = mapped.call(request()).await.unwrap_err();
    assert!(err.reached_server());
    assert_eq!(err.error().status(), Some(403));
    assert!(err.error().is_rejected(), "{err:?}");
    mock.assert_async().await;

    let insecure = http::Request::builder()
        .method("POST")
        .uri("http://partner-auth.invalid/oauth/token")
        .body(Vec::new())
        .unwrap();
    let err = plain.call(insecure).await.unwrap_err();
    assert!(!err.reached_server());
    assert!(matches!(err.into_error(), Error::Config { .. }));
}

#[tokio::test]
async fn send_says_when_a_request_may_have_reached_the_server() {
    // (A refused connection is the other case: `connection_refused_is_retried_even_when_not_repeatable`.)
    let mut server = mockito::Server::new_async().await;
    let _m = reply(server.mock("POST", "/t"), 502, "").await;
    let err = client(2)
        .send(Request::post(url(&server, "/t"), Repeat::Once))
        .await
        .unwrap_err();
    assert!(err.reached_server(), "{err:?}");
}

#[test]
fn debug_of_requests_and_clients_hides_secrets() {
    let req = Request::post(
        Url::parse("https://h/t?session_token=sess-SECRET").unwrap(),
        Repeat::Safe,
    )
    .bearer(&Secret::new("key-SECRET"))
    .unwrap()
    .form(&[("password", "pw-SECRET")]);
    let dbg = format!("{req:?} {:?}", client(1));
    for s in ["sess-SECRET", "key-SECRET", "pw-SECRET"] {
        assert!(!dbg.contains(s), "{dbg}");
    }
}

#[tokio::test]
async fn a_request_that_spends_is_not_repeated_after_a_5xx() {
    let mut server = mockito::Server::new_async().await;
    let mock = reply(server.mock("POST", "/spend").expect(1), 502, "").await;
    let err = client(3)
        .execute(Request::post(url(&server, "/spend"), Repeat::Once))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(502), "{err:?}");
    mock.assert_async().await;
}

#[tokio::test]
async fn a_5xx_retry_after_beyond_the_cap_ends_at_once_and_is_carried() {
    let mut server = mockito::Server::new_async().await;
    let mock = reply(
        server
            .mock("GET", "/t")
            .with_header("retry-after", "600")
            .expect(1),
        503,
        "",
    )
    .await;
    let err = client(3)
        .execute(Request::get(url(&server, "/t")))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(600)), "{err:?}");
    mock.assert_async().await;
}

#[tokio::test]
async fn a_provider_failing_every_request_gets_a_bounded_number_of_retries() {
    let mut server = mockito::Server::new_async().await;
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let _mock = server
        .mock("GET", "/down")
        .with_status(503)
        .with_body_from_request(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Vec::new()
        })
        .create_async()
        .await;
    let client = client(3);
    let callers = 40;
    for _ in 0..callers {
        let err = client
            .execute(Request::get(url(&server, "/down")))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(503));
    }
    let hits = seen.load(Ordering::SeqCst);
    // Without a budget every caller makes three attempts (120); the budget lets the first
    // callers retry and then only a fraction of them.
    assert!(hits < callers * 2, "{hits} requests for {callers} callers");
    assert!(hits > callers, "some retries are still allowed: {hits}");
}
