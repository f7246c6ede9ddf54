//! The system's CA roots are read once per process, and never on an async runtime's thread:
//! reading them is file I/O (hundreds of certificates), and every client used to read them
//! again, on whatever thread built it. One test in its own process, so the count is its own.

use std::time::Duration;

use token_provider::HttpClient;
use token_provider::http::Request;
use token_provider::testing::system_root_loads;
use token_provider::url::Url;

#[tokio::test(flavor = "current_thread")]
async fn the_system_roots_are_read_once_and_off_the_runtime_thread() {
    let runtime_thread = std::thread::current().id();
    let mut server = mockito::Server::new_async().await;
    let mock = server
        .mock("GET", "/x")
        .with_body("ok")
        .expect(3)
        .create_async()
        .await;
    let url = Url::parse(&format!("{}/x", server.url())).unwrap();
    // Built inside the runtime: eagerly, lazily, and with settings of its own.
    let eager = HttpClient::builder().build().unwrap();
    let lazy = HttpClient::builder().lazy().build().unwrap();
    let other = HttpClient::builder()
        .timeout(Duration::from_secs(7))
        .build()
        .unwrap();
    for client in [&eager, &lazy, &other] {
        let response = client.execute(Request::get(url.clone())).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    // A client built once the roots are in reads nothing, even through the sync accessor.
    let _ = HttpClient::new().unwrap().reqwest();
    mock.assert_async().await;
    let (loads, thread) = system_root_loads();
    assert_eq!(loads, 1, "the roots were read {loads} times");
    assert_ne!(thread, Some(runtime_thread), "read on the runtime's thread");
    assert!(thread.is_some());
}
