//! An Aerion-only service: a token, then an authenticated call through reqwest-middleware and
//! one through a tower-wrapped hyper client, each to `GET {AERION_BASE_URL}/v1/users/me`.
//!
//! Configured by the `AERION_*` variables (`cargo xtask downstream` sets the emulator's). Exits
//! with an error unless both calls answer 200 with the signed-in user.

use std::sync::Arc;

use aerion_auth::token_provider::auth::{AuthLayer, AuthMiddleware};
use aerion_auth::token_provider::http::join_path;
use aerion_auth::{Aerion, TokenProvider};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let aerion = Aerion::from_env()?;
    let me = join_path(aerion.base_url(), &["v1", "users", "me"])?;
    let scope = aerion.auth_scope();
    let token = aerion.get().await?;
    println!("token: {} (from the cache from now on)", token.token_type());
    let provider: Arc<dyn TokenProvider> = Arc::new(aerion);

    // reqwest 0.13 and reqwest-middleware 0.5, redirects off.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let client = reqwest_middleware::ClientBuilder::new(client)
        .with(AuthMiddleware::new(Arc::clone(&provider), scope.clone()))
        .build();
    let response = client.get(me.clone()).send().await?;
    let status = response.status();
    let text = response.text().await?;
    println!("reqwest-middleware: {status} {text}");
    expect_user(status.as_u16(), &text)?;

    // hyper-util's client behind the tower layer (plain HTTP to the loopback emulator; a
    // service on HTTPS gives it hyper-rustls's connector).
    let client = ServiceBuilder::new()
        .layer(AuthLayer::new(provider, scope))
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let request = http::Request::get(me.as_str()).body(Full::default())?;
    let response = client.oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&body);
    println!("tower + hyper-util: {status} {text}");
    expect_user(status.as_u16(), &text)?;
    Ok(())
}

/// A 200 whose body names the user.
fn expect_user(status: u16, body: &str) -> Result<(), BoxError> {
    if status == 200 && body.contains("\"id\"") {
        Ok(())
    } else {
        Err(format!("expected 200 with the user, got {status}: {body}").into())
    }
}
