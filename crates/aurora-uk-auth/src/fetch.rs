//! One trip to Aurora UK's Auth0 tenant: discovery (cached) and the client credentials grant.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, TokenResponse, TokenUrl};
use openidconnect::core::CoreProviderMetadata;
use openidconnect::{DiscoveryError, IssuerUrl};
use token_provider::auth::AuthHeader;
use token_provider::http::{
    ProviderWords, Repeat, Response, SendError, bearer_token_type, json_error_detail, token_error,
};
use token_provider::{
    AccessToken, Error, Fetch, HttpClient, Secret, SecretSource, SharedClock, StoreKey, TokenState,
    async_trait,
};
use tracing::{debug, info, warn};
use url::Url;

use crate::{ClientAuth, Environment};

/// What discovery told us, and when.
#[derive(Debug)]
pub(crate) struct Discovered {
    pub(crate) token_endpoint: Url,
    pub(crate) fetched_at: SystemTime,
}

#[derive(Debug, Default)]
struct DiscoveryState {
    current: Option<Arc<Discovered>>,
    /// The last time discovery was attempted, successful or not: re-discovery waits the
    /// minimum interval after it.
    last_attempt: Option<SystemTime>,
}

/// The [`Fetch`] behind [`AuroraUk`](crate::AuroraUk).
pub(crate) struct Fetcher {
    pub(crate) environment: Environment,
    pub(crate) issuer: IssuerUrl,
    pub(crate) audience: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: SecretSource,
    pub(crate) client_auth: ClientAuth,
    pub(crate) http: HttpClient,
    pub(crate) clock: SharedClock,
    pub(crate) rediscovery_interval: Duration,
    pub(crate) auth_header: AuthHeader,
    pub(crate) api_base: Url,
    discovery: Mutex<DiscoveryState>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuroraUkFetcher")
            .field("environment", &self.environment)
            .field("issuer", &self.issuer.as_str())
            .field("audience", &self.audience)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_auth", &self.client_auth)
            .field("auth_header", self.auth_header.name())
            .field("api_base", &self.api_base.as_str())
            .field("rediscovery_interval", &self.rediscovery_interval)
            .field(
                "token_endpoint",
                &self.token_endpoint().map(|u| u.to_string()),
            )
            .finish_non_exhaustive()
    }
}

/// A failed token request, and whether the failure suggests the endpoint moved.
struct TokenFailure {
    error: Error,
    moved: bool,
}

impl Fetcher {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        environment: Environment,
        issuer: IssuerUrl,
        audience: String,
        client_id: String,
        client_secret: SecretSource,
        client_auth: ClientAuth,
        http: HttpClient,
        clock: SharedClock,
        rediscovery_interval: Duration,
        auth_header: AuthHeader,
        api_base: Url,
    ) -> Self {
        Self {
            environment,
            issuer,
            audience,
            client_id,
            client_secret,
            client_auth,
            http,
            clock,
            rediscovery_interval,
            auth_header,
            api_base,
            discovery: Mutex::new(DiscoveryState::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, DiscoveryState> {
        // Never held across an await; a poisoned state is still consistent.
        self.discovery.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The token endpoint discovery last found, if discovery has run.
    pub(crate) fn token_endpoint(&self) -> Option<Url> {
        self.state()
            .current
            .as_ref()
            .map(|d| d.token_endpoint.clone())
    }

    /// When discovery last succeeded.
    pub(crate) fn discovered_at(&self) -> Option<SystemTime> {
        self.state().current.as_ref().map(|d| d.fetched_at)
    }

    /// Fetches the discovery document (and, as openidconnect does, the JWKS) and keeps the token
    /// endpoint. The cache runs one fetch at a time; a discovery asked for by
    /// [`AuroraUk::refresh_discovery`](crate::AuroraUk::refresh_discovery) may overlap one, and
    /// then the later answer is kept (both are the same document).
    pub(crate) async fn discover(&self) -> Result<Arc<Discovered>, Error> {
        let now = self.clock.now();
        self.state().last_attempt = Some(now);
        // Discovery reads; the adapter hands its answers over as they are, status included.
        let adapter = self.http.oauth_adapter(Repeat::Safe);
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &adapter)
            .await
            .map_err(|e| discovery_error(&self.issuer, e))?;
        let token_endpoint = metadata
            .token_endpoint()
            .ok_or_else(|| Error::malformed("discovery document: it names no `token_endpoint`"))?
            .url()
            .clone();
        token_provider::http::check_url(&token_endpoint).map_err(|_| {
            Error::malformed(format!(
                "discovery document: the token endpoint on {} is not https",
                token_endpoint.host_str().unwrap_or("an empty host")
            ))
        })?;
        info!(
            issuer = self.issuer.as_str(),
            token_endpoint_host = token_endpoint.host_str().unwrap_or(""),
            token_endpoint_path = token_endpoint.path(),
            "aurora-uk discovery fetched"
        );
        let discovered = Arc::new(Discovered {
            token_endpoint,
            fetched_at: now,
        });
        self.state().current = Some(Arc::clone(&discovered));
        Ok(discovered)
    }

    /// The cached discovery, or a fresh one when there is none yet.
    async fn discovered(&self) -> Result<Arc<Discovered>, Error> {
        let current = self.state().current.clone();
        match current {
            Some(d) => Ok(d),
            None => self.discover().await,
        }
    }

    /// Whether a re-discovery is allowed now (at most one per interval).
    fn may_rediscover(&self) -> bool {
        let now = self.clock.now();
        self.state().last_attempt.is_none_or(|last| {
            now.duration_since(last)
                .is_ok_and(|since| since >= self.rediscovery_interval)
        })
    }

    /// The token request with the client secret the secret source holds now; refused, once
    /// more with the one its file holds after, when that is another.
    async fn request_token(&self, endpoint: &Url) -> Result<TokenState, TokenFailure> {
        self.client_secret
            .attempt(
                |failure: &TokenFailure| failure.error.is_rejected(),
                move |secret| self.request_token_with(endpoint, secret),
            )
            .await
    }

    async fn request_token_with(
        &self,
        endpoint: &Url,
        client_secret: Secret,
    ) -> Result<TokenState, TokenFailure> {
        let auth_type = match self.client_auth {
            ClientAuth::BasicHeader => AuthType::BasicAuth,
            ClientAuth::RequestBody => AuthType::RequestBody,
        };
        let client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(client_secret.expose_secret().to_owned()))
            .set_auth_type(auth_type)
            .set_token_uri(TokenUrl::from_url(endpoint.clone()));
        // The token's lifetime counts from before the request left, so expiry errs early.
        let now = self.clock.now();
        let secrets = [&client_secret];
        let errors = |response: &Response| answer_error(response, &secrets);
        // Client credentials spend nothing: a repeated grant only mints another token.
        let adapter = self.http.oauth_adapter(Repeat::Safe).errors(&errors);
        debug!(
            host = endpoint.host_str().unwrap_or(""),
            path = endpoint.path(),
            audience = self.audience.as_str(),
            "aurora-uk token request"
        );
        let result = client
            .exchange_client_credentials()
            .add_extra_param("audience", self.audience.as_str())
            .request_async(&adapter)
            .await;
        match result {
            Ok(response) => token_state(&response, now).map_err(|error| TokenFailure {
                error,
                moved: false,
            }),
            Err(e) => Err(TokenFailure::from(token_error(e, "token response"))),
        }
    }
}

#[async_trait]
impl Fetch for Fetcher {
    /// Issuer and audience name the environment: a dev token is never read back for live.
    fn store_key(&self) -> Option<StoreKey> {
        Some(StoreKey::new(
            "aurora-uk",
            self.issuer.as_str(),
            &self.audience,
            &self.client_id,
        ))
    }

    /// Client credentials: a second grant only mints another token.
    fn repeatable_without_store(&self) -> bool {
        true
    }

    async fn fetch(&self, _previous: Option<&TokenState>) -> Result<TokenState, Error> {
        let discovered = self.discovered().await?;
        let failure = match self.request_token(&discovered.token_endpoint).await {
            Ok(state) => return Ok(state),
            Err(failure) => failure,
        };
        if !failure.moved || !self.may_rediscover() {
            return Err(failure.error);
        }
        warn!(
            issuer = self.issuer.as_str(),
            error = %failure.error,
            "the aurora-uk token endpoint failed as if it moved; fetching discovery again"
        );
        match self.discover().await {
            Ok(fresh) if fresh.token_endpoint != discovered.token_endpoint => {
                info!(
                    token_endpoint_host = fresh.token_endpoint.host_str().unwrap_or(""),
                    token_endpoint_path = fresh.token_endpoint.path(),
                    "the aurora-uk token endpoint moved"
                );
                self.request_token(&fresh.token_endpoint)
                    .await
                    .map_err(|f| f.error)
            }
            // Same endpoint: it has not moved, so the first failure is the answer.
            Ok(_) => Err(failure.error),
            Err(e) => {
                warn!(error = %e, "aurora-uk re-discovery failed");
                Err(failure.error)
            }
        }
    }
}

fn token_state(
    response: &oauth2::basic::BasicTokenResponse,
    now: SystemTime,
) -> Result<TokenState, Error> {
    let token_type = bearer_token_type(Some(response.token_type().as_ref()), "token response")?;
    let secret = response.access_token().secret();
    if secret.is_empty() {
        return Err(Error::malformed("token response: empty access_token"));
    }
    let scope = response.scopes().map(|scopes| {
        scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    });
    let mut builder = AccessToken::builder(secret.as_str())
        .token_type(token_type)
        .scope(scope);
    if let Some(lifetime) = response.expires_in() {
        builder = builder.expires_in(now, lifetime);
    }
    Ok(TokenState::new(builder.build()))
}

/// What Auth0 means by 401 at the token endpoint, when it does not say.
const BAD_CREDENTIALS: &str = "the client id or client secret was refused (check \
     AURORA_UK_CLIENT_ID and AURORA_UK_CLIENT_SECRET)";
/// What Auth0 means by 403 at the token endpoint, when it does not say.
const NOT_ALLOWED: &str = "this client may not get tokens for this audience (the Auth0 \
     application needs a client grant for AURORA_UK_AUDIENCE)";

impl From<SendError> for TokenFailure {
    /// A connection error, a redirect, or a 404 or 410 from the token endpoint suggests it
    /// moved.
    fn from(e: SendError) -> Self {
        let error = e.into_error();
        let moved = matches!(error, Error::Transport { .. })
            || matches!(
                error.status(),
                Some(301 | 302 | 303 | 307 | 308 | 404 | 410)
            );
        Self { error, moved }
    }
}

/// The error an answer that is not a success stands for, by [`status_error`]; never quotes the
/// body, and cuts out of its words any of `secrets`, or of what the request carried (the Basic
/// header), that Auth0 echoes.
fn answer_error(response: &Response, secrets: &[&Secret]) -> Error {
    let mut all: Vec<&Secret> = response.secrets().iter().collect();
    all.extend_from_slice(secrets);
    status_error(
        Some(response.status().as_u16()),
        ProviderWords::from_body(response.body()),
        &all,
    )
}

/// The core's [`status_error`](token_provider::http::status_error) with what Auth0's token
/// endpoint means by a bare 401 or 403, and 404 and 410 kept as [`Error::Status`]: an endpoint
/// that is not there has moved (which re-discovery handles); it did not refuse anything.
fn status_error(status: Option<u16>, words: ProviderWords, secrets: &[&Secret]) -> Error {
    use token_provider::http::status_error as core_status_error;
    match status {
        Some(401) => core_status_error(401, &words.or_description(BAD_CREDENTIALS), secrets),
        Some(403) => core_status_error(403, &words.or_description(NOT_ALLOWED), secrets),
        Some(status @ (404 | 410)) => Error::http_status(status),
        Some(status) => core_status_error(status, &words, secrets),
        None => Error::malformed("token response: no HTTP status was recorded"),
    }
}

/// A serde error fit for a message: the core's [`json_error_detail`] and the path; never a value.
fn parse_detail(path: &impl fmt::Display, inner: &serde_json::Error) -> String {
    format!("{} (at `{path}`)", json_error_detail(inner))
}

/// Maps openidconnect's discovery failure to an [`Error`] naming the issuer.
fn discovery_error(issuer: &IssuerUrl, e: DiscoveryError<SendError>) -> Error {
    match e {
        DiscoveryError::Request(error) => error.into_error(),
        // A request was sent, so these are not configuration errors (which promise that nothing
        // was sent) even though the fix is usually AURORA_UK_ISSUER: the answer did not fit.
        DiscoveryError::Validation(reason) => Error::malformed(format!(
            "discovery from `{}`: the document names another issuer than AURORA_UK_ISSUER \
             ({reason}); issuers are compared exactly, trailing `/` included",
            issuer.as_str()
        )),
        DiscoveryError::Response(status, _body, reason) if status.as_u16() == 404 => {
            Error::malformed(format!(
                "discovery from `{}` failed: {reason} (no discovery document there: check \
                 AURORA_UK_ISSUER)",
                issuer.as_str()
            ))
        }
        DiscoveryError::Response(status, _body, reason) => {
            if status.is_success() {
                Error::malformed(format!("discovery from `{}`: {reason}", issuer.as_str()))
            } else {
                Error::http_status(status.as_u16())
            }
        }
        DiscoveryError::Parse(parse) => Error::malformed(format!(
            "discovery from `{}`: {}",
            issuer.as_str(),
            parse_detail(parse.path(), parse.inner())
        )),
        DiscoveryError::UrlParse(_) => Error::config(
            "AURORA_UK_ISSUER",
            format!(
                "`{}` cannot be joined with the discovery path",
                issuer.as_str()
            ),
        ),
        DiscoveryError::Other(reason) => {
            Error::malformed(format!("discovery from `{}`: {reason}", issuer.as_str()))
        }
        _ => Error::malformed(format!("discovery from `{}` failed", issuer.as_str())),
    }
}
