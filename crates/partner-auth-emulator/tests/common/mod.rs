//! Shared test helpers: clients with short timeouts and no (or fast) retries.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use token_provider::http::{Request, Response};
use token_provider::{Error, HttpClient, RetryPolicy};
use url::Url;

/// A client that never retries, so every fault is seen as the emulator sent it.
pub fn client() -> HttpClient {
    client_with(Duration::from_secs(5), RetryPolicy::none())
}

/// A client with a fast retry policy.
pub fn retrying_client(attempts: u32) -> HttpClient {
    client_with(
        Duration::from_secs(5),
        token_provider::testing::fast_retry(attempts),
    )
}

pub fn client_with(timeout: Duration, retry: RetryPolicy) -> HttpClient {
    HttpClient::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(2))
        .retry(retry)
        .build()
        .expect("client")
}

pub fn url(s: &str) -> Url {
    Url::parse(s).expect("url")
}

pub async fn send(request: Request) -> Result<Response, Error> {
    client().execute(request).await
}

pub fn json(response: &Response) -> serde_json::Value {
    response.json("test body").expect("JSON body")
}
