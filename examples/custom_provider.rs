//! A provider of your own: write the fetch (one trip to the token endpoint), wrap it in the
//! cache, and it behaves like the built-in providers (single-flight, refresh before expiry,
//! backoff, invalidation, redacted secrets, the shared HTTP policy).
//!
//! ```sh
//! cargo run --example custom_provider
//! ```
//!
//! The provider here speaks plain OAuth 2.0 client credentials; offline, it is pointed at the
//! emulator's client-credentials endpoint.

use std::sync::Arc;
use std::time::Duration;

use partner_auth::token_provider::forward_token_provider;
use partner_auth::token_provider::http::{Repeat, Request, parse_base_url};
use partner_auth::token_provider::url::Url;
use partner_auth::{
    AccessToken, CachedTokenProvider, Error, Fetch, HttpClient, Secret, SharedClock, TokenProvider,
    TokenState, async_trait,
};
use partner_auth_emulator::Emulator;

/// The fetch: everything the provider knows how to do.
#[derive(Debug)]
struct ClientCredentials {
    http: HttpClient,
    token_url: Url,
    client_id: String,
    client_secret: Secret,
    audience: String,
    clock: SharedClock,
}

#[async_trait]
impl Fetch for ClientCredentials {
    async fn fetch(&self, _previous: Option<&TokenState>) -> Result<TokenState, Error> {
        let request = Request::post(self.token_url.clone(), Repeat::Safe)
            .basic_auth(&self.client_id, &self.client_secret)?
            .form(&[
                ("grant_type", "client_credentials"),
                ("audience", &self.audience),
            ]);
        let response = self.http.execute(request).await?;
        if !response.status().is_success() {
            // 400/401/403 become `Error::Rejected` with the provider's `error` and
            // `error_description`; never the body itself.
            return Err(response.error());
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            access_token: String,
            #[serde(default = "bearer")]
            token_type: String,
            expires_in: Option<u64>,
        }
        fn bearer() -> String {
            "Bearer".into()
        }
        let answer: Answer = response.json("token response")?;
        let mut token = AccessToken::builder(answer.access_token).token_type(answer.token_type);
        if let Some(secs) = answer.expires_in {
            token = token.expires_in(self.clock.now(), Duration::from_secs(secs));
        }
        Ok(token.build().into())
    }
}

/// The provider users hold: the fetch behind the cache, and nothing else public.
#[derive(Debug, Clone)]
struct AcmeAuth(CachedTokenProvider<ClientCredentials>);

// Every method of the trait (`get`'s allocation-free hit, `invalidate`, `store_error`,
// `forget`) forwarded to the cache.
forward_token_provider!(AcmeAuth => |this| &this.0);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = Emulator::start().await?;
    let config = emulator.config();
    let clock: SharedClock = Arc::new(partner_auth::token_provider::SystemClock);
    let fetch = ClientCredentials {
        http: HttpClient::new()?,
        // https is required for anything but loopback; the emulator is on loopback.
        token_url: parse_base_url("ACME_TOKEN_URL", &emulator.aurora_uk_token_url())?,
        client_id: config.aurora_uk_client_id.clone(),
        client_secret: Secret::new(config.aurora_uk_client_secret.clone()),
        audience: config.aurora_uk_audience.clone(),
        clock,
    };
    let provider: Arc<dyn TokenProvider> = Arc::new(AcmeAuth(CachedTokenProvider::new(fetch)));

    // A thousand callers at once: one request.
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let p = Arc::clone(&provider);
            tokio::spawn(async move { p.get().await })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let token = provider.get().await?;
    println!("custom provider: {token:?}");
    println!(
        "1000 concurrent callers + 1 more: {} request(s) to the token endpoint",
        emulator.requests_to("/aurora-uk/oauth/token").len()
    );
    emulator.shutdown().await;
    Ok(())
}
