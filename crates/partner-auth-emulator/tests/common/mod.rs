//! Shared test helpers: clients with short timeouts and no (or fast) retries.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use http::HeaderName;
use partner_auth_emulator::{
    DEFAULT_AERION_TENANT, DEFAULT_AERION_USERNAME, DEFAULT_AURORA_SOLAR_APPLICATION_KEY,
    EmulatorBuilder, RunningEmulator,
};
use token_provider::http::{Repeat, Request, Response};
use token_provider::{Error, HttpClient, RetryPolicy, Secret};
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

/// The Aurora Solar `create_token` URL of `application_id` for `tenant`.
pub fn create_token_url(emu: &RunningEmulator, application_id: &str, tenant: &str) -> Url {
    url(&format!(
        "{}/partner_applications/{application_id}/tenants/{tenant}/create_token",
        emu.aurora_solar_base()
    ))
}

/// A backend `create_token` for the emulator's tenant, with its application and default key.
pub fn solar_create(emu: &RunningEmulator) -> Request {
    let config = emu.config();
    let url = create_token_url(
        emu,
        &config.aurora_solar_application_id,
        emu.aurora_solar_tenant(),
    );
    Request::post(url, Repeat::Safe)
        .bearer(&Secret::new(DEFAULT_AURORA_SOLAR_APPLICATION_KEY))
        .unwrap()
}

/// The default user's password grant with `password`, from client `x` (secret `y`).
pub fn aerion_password_form(password: &str) -> [(&'static str, &str); 5] {
    [
        ("grant_type", "password"),
        ("username", DEFAULT_AERION_USERNAME),
        ("password", password),
        ("client_id", "x"),
        ("client_secret", "y"),
    ]
}

/// An Aerion token request to `token_url` for the default tenant (its `companyurl` header),
/// with `form`.
pub fn aerion_token_request(token_url: &str, form: &[(&str, &str)]) -> Request {
    Request::post(url(token_url), Repeat::Safe)
        .header(HeaderName::from_static("companyurl"), DEFAULT_AERION_TENANT)
        .unwrap()
        .form(form)
}

/// The emulator `builder` configures, started (a test fails when it cannot start).
pub async fn started(builder: EmulatorBuilder) -> RunningEmulator {
    builder.start().await.expect("the emulator starts")
}
