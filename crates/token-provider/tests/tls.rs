//! Certificates: a server certificate the client does not trust is a permanent failure (one
//! attempt, an error naming where the roots come from), and a root added in code is trusted.
//! The TLS server is `openssl s_server` on loopback (`testing::TlsServer`); the test is skipped
//! where `openssl` is not installed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use token_provider::http::Request;
use token_provider::testing::{TlsServer, fast_retry};
use token_provider::{Error, HttpClient};
use url::Url;

/// Forwards each connection to `target`, counting them.
fn counting_proxy(target: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            seen.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let pipe = |mut from: TcpStream, mut to: TcpStream| {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            };
            pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
            pipe(server, client);
        }
    });
    (port, count)
}

#[tokio::test]
async fn an_untrusted_certificate_is_not_retried_and_a_root_added_in_code_is_trusted() {
    let Some(server) = TlsServer::start("DNS:localhost,IP:127.0.0.1") else {
        eprintln!("openssl is not installed: skipped");
        return;
    };
    let tls_port = server.port();
    let cert = server.certificate();
    let (port, connections) = counting_proxy(tls_port);
    // The probe above was a connection of its own, straight to the server.
    let url = Url::parse(&format!("https://localhost:{port}/")).unwrap();

    let client = HttpClient::builder()
        .timeout(Duration::from_secs(5))
        .retry(fast_retry(3))
        .build()
        .unwrap();
    let err = client.execute(Request::get(url.clone())).await.unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "tls"),
        "{err:?}"
    );
    let shown = err.to_string();
    for hint in ["SSL_CERT_FILE", "SSL_CERT_DIR", "ca-certificates"] {
        assert!(shown.contains(hint), "{shown}");
    }
    assert!(!err.is_transient());
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "a certificate failure is not retried"
    );

    let root = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let trusting = HttpClient::builder()
        .timeout(Duration::from_secs(5))
        .retry(fast_retry(1))
        .add_root_certificate(root)
        .build()
        .unwrap();
    let response = trusting.execute(Request::get(url)).await.unwrap();
    assert_eq!(response.status(), 200);
}
