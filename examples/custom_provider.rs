//! A provider of your own: write the fetch (one trip to the token endpoint), wrap it in the
//! cache, and it behaves like the built-in providers (single-flight, refresh before expiry,
//! backoff, invalidation, redacted secrets, the shared HTTP policy).
//!
//! ```sh
//! cargo run --example custom_provider
//! ```
//!
//! The provider here speaks plain OAuth 2.0 client credentials. Offline it is pointed at the
//! emulator's client-credentials endpoint; `ACME_TOKEN_URL`, `ACME_CLIENT_ID`,
//! `ACME_CLIENT_SECRET` and `ACME_AUDIENCE` point it at a real one.

use std::sync::Arc;
use std::time::Duration;

use partner_auth::token_provider::forward_token_provider;
use partner_auth::token_provider::http::{Repeat, Request, parse_base_url, wrong_endpoint};
use partner_auth::token_provider::url::Url;
use partner_auth::{
    AccessToken, CachedTokenProvider, Error, Fetch, HttpClient, Secret, SharedClock, TokenProvider,
    TokenState, async_trait,
};
use partner_auth_emulator::Emulator;

/// The variable the token endpoint's URL comes from, named when it leads nowhere.
const TOKEN_URL_VAR: &str = "ACME_TOKEN_URL";

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
        // The request remembers the secret it carries (here in the Basic header), so every
        // error built from its response is scrubbed of it: nothing to list below.
        let request = Request::post(self.token_url.clone(), Repeat::Safe)
            .basic_auth(&self.client_id, &self.client_secret)?
            .form(&[
                ("grant_type", "client_credentials"),
                ("audience", &self.audience),
            ]);
        let response = self.http.execute(request).await?;
        // A 404 or a web page: the URL leads to no token endpoint, a configuration error
        // naming the URL and its variable.
        if let Some(error) = wrong_endpoint(TOKEN_URL_VAR, &self.token_url, &response, None) {
            return Err(error);
        }
        if !response.status().is_success() {
            // 400/401/403 become `Error::Rejected` with the provider's `error` and
            // `error_description`, never the body, and never a secret the request carried.
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
pub(crate) struct AcmeAuth(CachedTokenProvider<ClientCredentials>);

// Every method of the trait (`get`'s allocation-free hit, `invalidate`, `store_error`,
// `forget`) forwarded to the cache.
forward_token_provider!(AcmeAuth => |this| &this.0);

impl AcmeAuth {
    /// The provider for a token endpoint and a client (https required but for loopback hosts,
    /// which the emulator is on).
    pub(crate) fn new(
        token_url: &str,
        client_id: &str,
        client_secret: Secret,
        audience: &str,
    ) -> Result<Self, Error> {
        let fetch = ClientCredentials {
            http: HttpClient::new()?,
            token_url: parse_base_url(TOKEN_URL_VAR, token_url)?,
            client_id: client_id.to_owned(),
            client_secret,
            audience: audience.to_owned(),
            clock: Arc::new(partner_auth::token_provider::SystemClock),
        };
        Ok(Self(CachedTokenProvider::new(fetch)))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let (emulator, acme) = match var(TOKEN_URL_VAR) {
        Some(url) => {
            let secret = Secret::new(var("ACME_CLIENT_SECRET").unwrap_or_default());
            let id = var("ACME_CLIENT_ID").unwrap_or_default();
            let audience = var("ACME_AUDIENCE").unwrap_or_default();
            (None, AcmeAuth::new(&url, &id, secret, &audience)?)
        }
        None => {
            let emulator = Emulator::start().await?;
            let config = emulator.config();
            let acme = AcmeAuth::new(
                &emulator.aurora_uk_token_url(),
                &config.aurora_uk_client_id,
                Secret::new(config.aurora_uk_client_secret.clone()),
                &config.aurora_uk_audience,
            )?;
            (Some(emulator), acme)
        }
    };
    let provider: Arc<dyn TokenProvider> = Arc::new(acme);

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
    if let Some(emulator) = emulator {
        println!(
            "1000 concurrent callers + 1 more: {} request(s) to the token endpoint",
            emulator.requests_to("/aurora-uk/oauth/token").len()
        );
        emulator.shutdown().await;
    }
    Ok(())
}
