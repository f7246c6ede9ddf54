//! One trip to Aerion's token endpoint: the refresh grant when a refresh token is known, the
//! password grant otherwise or when the refresh token is refused.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use oauth2::basic::{BasicRevocationErrorResponse, BasicTokenIntrospectionResponse};
use oauth2::{
    AsyncHttpClient, AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, HttpRequest,
    HttpResponse, RefreshToken, RequestTokenError, ResourceOwnerPassword, ResourceOwnerUsername,
    StandardRevocableToken, TokenResponse, TokenUrl,
};
use token_provider::http::{OAuthAdapter, ProviderWords, status_error};
use token_provider::{
    AccessToken, Error, Fetch, HttpClient, Secret, SharedClock, StoreKey, TokenState,
};
use tracing::{debug, info};
use url::Url;

use crate::Tenant;
use crate::builder::DEFAULT_CLIENT_SECRET;
use crate::wire::{AerionErrorResponse, AerionTokenResponse, malformed};

type OAuthClient = oauth2::Client<
    AerionErrorResponse,
    AerionTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

type TokenResult = Result<AerionTokenResponse, RequestTokenError<Error, AerionErrorResponse>>;

/// What the user must do once no credential works any more.
const SIGN_IN_AGAIN: &str = "Aerion refused the refresh token and no password is configured: \
    sign in to Aerion again and set a new AERION_REFRESH_TOKEN, or set AERION_USERNAME and \
    AERION_PASSWORD";

/// The fetcher behind [`Aerion`](crate::Aerion).
pub(crate) struct AerionFetcher {
    pub(crate) http: HttpClient,
    pub(crate) base_url: Url,
    pub(crate) token_url: Url,
    pub(crate) tenant: Tenant,
    pub(crate) tenant_header: (HeaderName, HeaderValue),
    pub(crate) client_id: String,
    pub(crate) client_secret: Secret,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) seed_refresh_token: Option<Secret>,
    /// Set once Aerion refused the configured refresh token, so it is not offered again.
    pub(crate) seed_spent: AtomicBool,
    pub(crate) clock: SharedClock,
    /// This principal's key in a store.
    pub(crate) store_key: StoreKey,
}

impl fmt::Debug for AerionFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AerionFetcher")
            .field("token_url", &self.token_url.as_str())
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field(
                "refresh_token",
                &self.seed_refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

/// Where a refresh token came from, for the logs.
#[derive(Clone, Copy)]
enum Source {
    Previous,
    Configured,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::Previous => "previous",
            Self::Configured => "configured",
        }
    }
}

#[async_trait]
impl Fetch for AerionFetcher {
    fn store_key(&self) -> Option<StoreKey> {
        Some(self.store_key.clone())
    }

    async fn fetch(&self, previous: Option<&TokenState>) -> Result<TokenState, Error> {
        // The newest refresh token first (the cache hands over the stored one when a store is
        // set), then the configured one if it is different and has not been refused: the user
        // may have just set a new AERION_REFRESH_TOKEN after the stored one died.
        let mut candidates: Vec<(Secret, Source)> = Vec::new();
        if let Some(rt) = previous.and_then(|p| p.refresh_token.clone()) {
            candidates.push((rt, Source::Previous));
        }
        if let Some(seed) = &self.seed_refresh_token {
            let offered = candidates.iter().any(|(c, _)| c == seed);
            if !offered && !self.seed_spent.load(Ordering::Relaxed) {
                candidates.push((seed.clone(), Source::Configured));
            }
        }

        let mut refused = false;
        for (refresh_token, source) in candidates {
            debug!(
                grant = "refresh_token",
                source = source.as_str(),
                "requesting an aerion token"
            );
            match self.refresh_grant(&refresh_token).await {
                Ok(state) => return Ok(state),
                Err(error) if is_refused_refresh(&error) => {
                    if self.seed_refresh_token.as_ref() == Some(&refresh_token) {
                        self.seed_spent.store(true, Ordering::Relaxed);
                    }
                    info!(
                        source = source.as_str(),
                        status = error.status(),
                        error = %error,
                        "aerion refused the refresh token"
                    );
                    refused = true;
                }
                Err(error) => return Err(error),
            }
        }

        match (&self.username, &self.password) {
            (Some(username), Some(password)) => {
                if refused {
                    info!("falling back to the aerion password grant");
                }
                debug!(grant = "password", "requesting an aerion token");
                self.password_grant(username, password).await
            }
            _ => Err(Error::user_action(SIGN_IN_AGAIN)),
        }
    }
}

/// Whether a refresh failed because the refresh token is dead (as opposed to the network or
/// the server failing): `invalid_grant`, or a 400/401 refusal.
fn is_refused_refresh(error: &Error) -> bool {
    match error {
        Error::Rejected { status, code, .. } => {
            code.as_deref() == Some("invalid_grant") || matches!(status, Some(400 | 401))
        }
        _ => false,
    }
}

impl AerionFetcher {
    /// Every secret this fetcher holds, and `in_play` (the refresh token just sent): what an
    /// error must never repeat when Aerion echoes it. The default client secret is public, so
    /// it is left alone (it is also the default client id, which an error may rightly name).
    pub(crate) fn secrets<'a>(&'a self, in_play: Option<&'a Secret>) -> Vec<&'a Secret> {
        let mut secrets: Vec<&Secret> = Vec::with_capacity(4);
        secrets.extend(self.password.as_ref());
        secrets.extend(self.seed_refresh_token.as_ref());
        secrets.extend(in_play);
        if self.client_secret.expose_secret() != DEFAULT_CLIENT_SECRET {
            secrets.push(&self.client_secret);
        }
        secrets
    }

    fn oauth_client(&self) -> OAuthClient {
        oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                self.client_secret.expose_secret().to_owned(),
            ))
            // Aerion reads client_id and client_secret from the form, not a Basic header.
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(TokenUrl::from_url(self.token_url.clone()))
    }

    /// An oauth2 HTTP client that adds the tenant header: oauth2's request builders add form
    /// fields but no headers, and Aerion needs the header on every token request.
    fn tenant_client(&self) -> TenantClient<'_> {
        TenantClient {
            http: self.http.oauth_adapter(),
            header: &self.tenant_header,
        }
    }

    async fn refresh_grant(&self, refresh_token: &Secret) -> Result<TokenState, Error> {
        let now = self.clock.now();
        let client = self.oauth_client();
        let rt = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let http = self.tenant_client();
        let result = client
            .exchange_refresh_token(&rt)
            .request_async(&http)
            .await;
        let response = check(
            result,
            http.http.last_status(),
            &self.secrets(Some(refresh_token)),
        )?;
        let rotated = response.refresh_token().is_some();
        debug!(rotated, "aerion refresh grant succeeded");
        // A response without a refresh token leaves the one just used in force.
        Ok(self.state(now, response, Some(refresh_token.clone())))
    }

    async fn password_grant(&self, username: &str, password: &Secret) -> Result<TokenState, Error> {
        let now = self.clock.now();
        let client = self.oauth_client();
        let username = ResourceOwnerUsername::new(username.to_owned());
        let password = ResourceOwnerPassword::new(password.expose_secret().to_owned());
        let http = self.tenant_client();
        let result = client
            .exchange_password(&username, &password)
            .request_async(&http)
            .await;
        let response = check(result, http.http.last_status(), &self.secrets(None))?;
        debug!(
            refresh_token = response.refresh_token().is_some(),
            "aerion password grant succeeded"
        );
        Ok(self.state(now, response, None))
    }

    /// The new state. `now` is read before the request was sent, so the expiry errs early.
    fn state(
        &self,
        now: std::time::SystemTime,
        response: AerionTokenResponse,
        kept_refresh_token: Option<Secret>,
    ) -> TokenState {
        let mut token = AccessToken::builder(response.access_token().secret().as_str())
            .token_type(response.token_type().0.as_str())
            .scope(response.scope().map(str::to_owned));
        if let Some(lifetime) = response.expires_in() {
            token = token.expires_in(now, lifetime);
        }
        let refresh_token = response
            .refresh_token()
            .map(|r| Secret::new(r.secret().as_str()))
            .or(kept_refresh_token);
        TokenState::new(token.build()).with_refresh_token(refresh_token)
    }
}

/// Sends oauth2's requests through the core's [`OAuthAdapter`] with the tenant header added.
struct TenantClient<'a> {
    http: OAuthAdapter<'a>,
    header: &'a (HeaderName, HeaderValue),
}

impl<'c> AsyncHttpClient<'c> for TenantClient<'_> {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Error>> + Send + 'c>>;

    fn call(&'c self, mut request: HttpRequest) -> Self::Future {
        let (name, value) = self.header;
        request.headers_mut().insert(name.clone(), value.clone());
        Box::pin(self.http.call(request))
    }
}

/// oauth2's outcome as the core's [`Error`]. Neither a body nor oauth2's own messages (which can
/// quote the body) get into the error, and any of `secrets` Aerion echoes is cut out of its words.
fn check(
    result: TokenResult,
    status: Option<u16>,
    secrets: &[&Secret],
) -> Result<AerionTokenResponse, Error> {
    result.map_err(|err| match err {
        RequestTokenError::Request(error) => error,
        RequestTokenError::ServerResponse(body) => match status {
            Some(status) => status_error(status, body.words(), secrets),
            None => Error::rejected_scrubbed(
                None,
                body.words().code(),
                body.words().description(),
                secrets,
            ),
        },
        RequestTokenError::Parse(error, body) => match status {
            Some(200) | None => malformed("aerion token response", error.inner()),
            Some(status) => status_error(status, &ProviderWords::from_body(&body), secrets),
        },
        RequestTokenError::Other(message) => match status {
            Some(200) if message.contains("Content-Type") => {
                Error::malformed("aerion token response: not JSON (unexpected Content-Type)")
            }
            Some(200) => Error::malformed("aerion token response: empty body"),
            Some(status) => status_error(status, &ProviderWords::default(), secrets),
            None => Error::config("token_url", "cannot be used to build a token request"),
        },
    })
}
