//! Authenticated calls from a hyper client: `AuthLayer` (token-provider's `tower` layer) in front
//! of hyper-util's legacy client, against the built-in emulator on loopback.
//!
//! ```sh
//! cargo run --example tower_hyper
//! ```
//!
//! It calls Aurora UK's API with the token in the `Authentication` header its page names, then
//! makes the API refuse one valid token (401) to show the layer drop that token and replay the
//! request once with a new one, then calls Aerion's `/v1/users/me` with `Authorization: Bearer`.
//! The same layer goes in front of a tonic channel (give the generated client its origin with
//! `with_origin`, so the layer can check where each request goes).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use partner_auth::aerion::AerionBuilder;
use partner_auth::aurora_uk::AuroraUkBuilder;
use partner_auth::auth::AuthLayer;
use partner_auth::token_provider::BoxError;
use partner_auth::token_provider::http::join_path;
use partner_auth_emulator::{Emulator, Endpoint, Fault, RunningEmulator};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let emulator = Emulator::start().await?;
    println!("The emulator listens at {}.\n", emulator.url());
    let answers = run(&emulator).await?;
    for answer in answers {
        println!("{answer}");
    }
    emulator.shutdown().await;
    Ok(())
}

/// The three calls against `emulator`, one line per answer.
pub(crate) async fn run(emulator: &RunningEmulator) -> Result<Vec<String>, BoxError> {
    let vars: HashMap<&str, String> = emulator.env_vars().into_iter().collect();
    let lookup = |name: &str| vars.get(name).cloned();
    let mut answers = Vec::new();

    // A plain HTTP/1 client: hyper follows no redirect, and `AuthLayer` follows none either.
    let hyper = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let get = |url: &url::Url| {
        http::Request::get(url.as_str())
            .header("accept", "application/json")
            .body(Full::default())
    };

    // Aurora UK, its token in the `Authentication` header.
    let aurora = AuroraUkBuilder::from_env_with(lookup)?
        .api_base(emulator.aurora_uk_api_base())
        .auth_header_name("Authentication")
        .build()?;
    let accounts = join_path(aurora.api_base(), &["Accounts"])?;
    let client = ServiceBuilder::new()
        .layer(
            AuthLayer::new(Arc::new(aurora.clone()), aurora.auth_scope())
                .header(aurora.auth_header().clone()),
        )
        .service(hyper.clone());
    let response = client.clone().oneshot(get(&accounts)?).await?;
    answers.push(format!(
        "aurora-uk  GET {} -> {}: {}",
        accounts.path(),
        response.status(),
        body(response).await?
    ));

    // One valid token refused: the layer invalidates it, fetches a new one and replays once.
    emulator.inject(Endpoint::AuroraUkApi, Fault::Unauthorized, 1);
    let response = client.oneshot(get(&accounts)?).await?;
    answers.push(format!(
        "aurora-uk  GET {} after one 401 -> {} ({} tokens fetched in all)",
        accounts.path(),
        response.status(),
        aurora.stats().fetches
    ));

    // Aerion, with `Authorization: Bearer`.
    let aerion = AerionBuilder::from_env_with(lookup)?.build()?;
    let me = join_path(aerion.base_url(), &["v1", "users", "me"])?;
    let scope = aerion.auth_scope();
    let client = ServiceBuilder::new()
        .layer(AuthLayer::new(Arc::new(aerion), scope))
        .service(hyper);
    let response = client.oneshot(get(&me)?).await?;
    answers.push(format!(
        "aerion     GET {} -> {}: {}",
        me.path(),
        response.status(),
        body(response).await?
    ));
    Ok(answers)
}

/// The whole body of `response`, as text.
async fn body(response: http::Response<hyper::body::Incoming>) -> Result<String, BoxError> {
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
