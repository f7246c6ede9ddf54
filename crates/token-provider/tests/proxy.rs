//! `HttpClientBuilder::proxy`: a request goes through the proxy set in code. An http request is
//! sent to the proxy in absolute form, headers and body intact, and the origin's answer comes
//! back; an https request asks the proxy for a tunnel (`CONNECT`) and shows it no bearer.
//! The proxy is a small recording one on loopback; the origin is a mockito server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderName;
use token_provider::http::{Repeat, Request};
use token_provider::testing::json_reply;
use token_provider::{HttpClient, RetryPolicy, Secret};
use url::Url;

/// One request as the proxy received it.
#[derive(Debug, Clone)]
struct Seen {
    /// `METHOD target HTTP/1.1`.
    line: String,
    /// Header names (lowercase) and values.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request head (and its `Content-Length` body) off `reader`.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        line: line.trim_end().to_owned(),
        headers,
        body,
    })
}

/// A loopback HTTP proxy that records every request it receives. An absolute-form request is
/// forwarded to its origin in origin form (without the proxy's own headers) and the answer
/// relayed; a `CONNECT` is refused with 403.
fn recording_proxy() -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let mut reader = BufReader::new(client.try_clone().unwrap());
            let Some(request) = read_request(&mut reader) else {
                continue;
            };
            record.lock().unwrap().push(request.clone());
            let mut parts = request.line.split(' ');
            let (method, target) = (parts.next().unwrap(), parts.next().unwrap());
            if method == "CONNECT" {
                let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
                continue;
            }
            let url = Url::parse(target).expect("an absolute-form target");
            let mut origin =
                TcpStream::connect((url.host_str().unwrap(), url.port().unwrap())).unwrap();
            let path = &url[url::Position::BeforePath..];
            let mut out = format!("{method} {path} HTTP/1.1\r\n");
            for (name, value) in &request.headers {
                if !name.starts_with("proxy-") && name != "connection" {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
            }
            out.push_str("connection: close\r\n\r\n");
            origin.write_all(out.as_bytes()).unwrap();
            origin.write_all(&request.body).unwrap();
            let mut answer = Vec::new();
            origin.read_to_end(&mut answer).unwrap();
            let _ = client.write_all(&answer);
        }
    });
    (port, seen)
}

fn client_through(proxy: reqwest::Proxy) -> HttpClient {
    HttpClient::builder()
        .timeout(Duration::from_secs(5))
        .retry(RetryPolicy::none())
        .proxy(proxy)
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_http_request_goes_through_the_proxy_set_in_code_and_its_answer_comes_back() {
    let mut origin = mockito::Server::new_async().await;
    let body = r#"{"name":"Pat"}"#;
    let mock = json_reply(
        origin
            .mock("POST", "/v1/things?page=2")
            .match_header("authorization", "Bearer tk-through-the-proxy")
            .match_header("x-request-id", "proxy-test-7")
            .match_header("proxy-authorization", mockito::Matcher::Missing)
            .match_body(body)
            .expect(1),
        201,
        r#"{"id":42}"#,
    )
    .await;
    let (port, seen) = recording_proxy();
    let proxy = reqwest::Proxy::http(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .basic_auth("proxy-user", "proxy-pass");
    let url = Url::parse(&format!("{}/v1/things?page=2", origin.url())).unwrap();
    let request = Request::post(url.clone(), Repeat::Once)
        .bearer(&Secret::new("tk-through-the-proxy"))
        .unwrap()
        .header(HeaderName::from_static("x-request-id"), "proxy-test-7")
        .unwrap()
        .body(body)
        .header(http::header::CONTENT_TYPE, "application/json")
        .unwrap();

    let response = client_through(proxy).execute(request).await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.body(), br#"{"id":42}"#);
    mock.assert_async().await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let at_proxy = &seen[0];
    // The absolute form is what a client sends a proxy (a direct request has the path only).
    assert_eq!(at_proxy.line, format!("POST {url} HTTP/1.1"));
    // base64 of `proxy-user:proxy-pass`.
    assert_eq!(
        at_proxy.header("proxy-authorization"),
        Some("Basic cHJveHktdXNlcjpwcm94eS1wYXNz")
    );
    assert_eq!(
        at_proxy.header("authorization"),
        Some("Bearer tk-through-the-proxy")
    );
    assert_eq!(at_proxy.header("x-request-id"), Some("proxy-test-7"));
    assert_eq!(at_proxy.header("content-type"), Some("application/json"));
    assert_eq!(
        at_proxy.header("host"),
        Some(url[url::Position::BeforeHost..url::Position::AfterPort].as_ref())
    );
    assert_eq!(at_proxy.body, body.as_bytes());
}

#[tokio::test]
async fn an_https_request_asks_the_proxy_for_a_tunnel_and_shows_it_no_bearer() {
    let (port, seen) = recording_proxy();
    let proxy = reqwest::Proxy::https(format!("http://127.0.0.1:{port}")).unwrap();
    // A name that resolves nowhere: only the proxy can reach it, so the client never looks it
    // up, and the answer (a refused tunnel) can only have come from the proxy.
    let url = Url::parse("https://api.partner-auth.test/v1/things").unwrap();
    let request = Request::get(url)
        .bearer(&Secret::new("tk-never-shown-to-the-proxy"))
        .unwrap();
    let err = client_through(proxy).execute(request).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let at_proxy = &seen[0];
    assert_eq!(at_proxy.line, "CONNECT api.partner-auth.test:443 HTTP/1.1");
    assert_eq!(at_proxy.header("host"), Some("api.partner-auth.test:443"));
    for (name, value) in &at_proxy.headers {
        assert!(!value.contains("tk-never-shown"), "{name}: {value}");
    }
    assert!(at_proxy.body.is_empty());
}
