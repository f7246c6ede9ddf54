//! One trip to Aerion's token endpoint: the refresh grant when a refresh token is known, the
//! password grant otherwise or when the refresh token is refused.

use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
};
use oauth2::{
    AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, ErrorResponse, RefreshToken,
    RequestTokenError, ResourceOwnerPassword, ResourceOwnerUsername, StandardRevocableToken,
    TokenResponse, TokenUrl,
};
use token_provider::http::{
    OAuthAdapter, Repeat, Response, SendError, bearer_token_type, token_error,
};
use token_provider::{
    AccessToken, Error, Fetch, HttpClient, Secret, SecretSource, SharedClock, StoreKey, TokenState,
};
use tracing::{debug, info};
use url::Url;

use crate::settings::{DEFAULT_CLIENT_SECRET, Tenant};
use crate::wire::{AerionTokenResponse, refresh_token_of};

type OAuthClient = oauth2::Client<
    // Never parsed: the core's adapter turns every error answer into an `Error` first.
    BasicErrorResponse,
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

/// What a failed grant is called in errors.
const WHAT: &str = "aerion token response";

/// What the user must do once no credential works any more.
const SIGN_IN_AGAIN: &str = "Aerion refused the refresh token and no password is configured: \
    sign in to Aerion again and set a new AERION_REFRESH_TOKEN, or set AERION_USERNAME and \
    AERION_PASSWORD";

/// The fetcher behind [`Aerion`](crate::Aerion).
pub(crate) struct AerionFetcher {
    pub(crate) http: HttpClient,
    pub(crate) base_url: Url,
    pub(crate) token_url: Url,
    /// What an error calls the token URL's setting: `AERION_BASE_URL`, or `token_url` when that
    /// was set.
    pub(crate) token_url_setting: &'static str,
    pub(crate) tenant: Tenant,
    pub(crate) tenant_header: (HeaderName, HeaderValue),
    pub(crate) client_id: String,
    pub(crate) client_secret: SecretSource,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<SecretSource>,
    pub(crate) seed_refresh_token: Option<SecretSource>,
    /// The configured refresh token when the provider was built: the one a refresh-token-only
    /// principal's store key is derived from.
    pub(crate) first_seed: Option<Secret>,
    /// The configured refresh token that may have reached Aerion (refused, rotated, or sent
    /// with its answer lost), so it is never offered again: Aerion rotates refresh tokens, and
    /// one that was sent may be dead whatever came back. A new one written to the token's file
    /// is offered.
    pub(crate) spent_seed: Mutex<Option<Secret>>,
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
            .field("password", &self.password)
            .field("refresh_token", &self.seed_refresh_token)
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

    /// A fetch from scratch is a password grant, safe to repeat, when a password and no refresh
    /// token are configured; a configured refresh token would be sent first, and spent.
    fn repeatable_without_store(&self) -> bool {
        self.password.is_some() && self.seed_refresh_token.is_none()
    }

    /// The configured refresh token until this process has sent it: the cache records its
    /// presentation, so replicas started together on it present it once.
    fn initial_refresh_token(&self) -> Option<Secret> {
        self.seed().filter(|seed| !self.seed_spent(seed))
    }

    async fn fetch(&self, previous: Option<&TokenState>) -> Result<TokenState, Error> {
        // The newest refresh token first (the cache hands over the stored one when a store is
        // set), then the configured one if it is different and has not been refused: the user
        // may have just set a new AERION_REFRESH_TOKEN after the stored one died.
        let mut candidates: Vec<(Secret, Source)> = Vec::new();
        if let Some(rt) = previous.and_then(|p| p.refresh_token.clone()) {
            candidates.push((rt, Source::Previous));
        }
        // Without a username the store key is derived from the configured refresh token, so a
        // previous refresh token (stored or in memory) descends from it: the configured one was
        // rotated away already, by this process or another, and is never sent again. One
        // written to its file since is a new start.
        let seed = self.seed();
        let seed_superseded =
            self.username.is_none() && !candidates.is_empty() && seed == self.first_seed;
        if let Some(seed) = &seed {
            let offered = candidates.iter().any(|(c, _)| c == seed);
            if !offered && !seed_superseded && !self.seed_spent(seed) {
                candidates.push((seed.clone(), Source::Configured));
            }
        }

        let mut refused = false;
        for (refresh_token, source) in candidates {
            match self.try_refresh(&refresh_token, source).await? {
                Some(state) => return Ok(state),
                None => refused = true,
            }
        }
        // Refused: the token's file, read once more, may hold a new start that its metadata
        // did not show.
        if refused
            && let (Some(file), Some(seed)) = (&self.seed_refresh_token, &seed)
            && let Some(new) = file.reread_after_refusal(seed)
            && !self.seed_spent(&new)
            && let Some(state) = self.try_refresh(&new, Source::Configured).await?
        {
            return Ok(state);
        }

        match (&self.username, &self.password) {
            (Some(username), Some(password)) => {
                if refused {
                    info!("falling back to the aerion password grant");
                }
                password
                    .attempt(Error::is_rejected, move |password| async move {
                        debug!(grant = "password", "requesting an aerion token");
                        self.password_grant(username, &password)
                            .await
                            .map_err(SendError::into_error)
                    })
                    .await
            }
            _ => Err(Error::user_action(SIGN_IN_AGAIN)),
        }
    }
}

/// A failed grant as an error. A body refused as malformed may still have rotated the refresh
/// token: it goes back with the error, since the one sent is spent.
fn grant_error<TE: ErrorResponse + 'static>(err: RequestTokenError<SendError, TE>) -> SendError {
    let rotated = match &err {
        RequestTokenError::Parse(_, body) => refresh_token_of(body),
        _ => None,
    };
    let error = token_error(err, WHAT);
    match rotated {
        Some(refresh_token) if error.reached_server() => {
            SendError::reached(error.into_error().with_rotated_refresh_token(refresh_token))
        }
        _ => error,
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
    /// The configured refresh token now (its file read again when it changed).
    fn seed(&self) -> Option<Secret> {
        self.seed_refresh_token.as_ref().map(SecretSource::current)
    }

    fn seed_spent(&self, seed: &Secret) -> bool {
        self.spent_seed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            == Some(seed)
    }

    /// The refresh grant with `refresh_token`: the new state, `None` when Aerion refused the
    /// token, or why not. A configured token that may have reached Aerion is never offered
    /// again.
    async fn try_refresh(
        &self,
        refresh_token: &Secret,
        source: Source,
    ) -> Result<Option<TokenState>, Error> {
        debug!(
            grant = "refresh_token",
            source = source.as_str(),
            "requesting an aerion token"
        );
        let result = self.refresh_grant(refresh_token).await;
        let sent = result.as_ref().err().is_none_or(SendError::reached_server);
        if sent && self.seed().as_ref() == Some(refresh_token) {
            *self.spent_seed.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(refresh_token.clone());
        }
        match result.map_err(SendError::into_error) {
            Ok(state) => Ok(Some(state)),
            Err(error) if is_refused_refresh(&error) => {
                info!(
                    source = source.as_str(),
                    status = error.status(),
                    error = %error,
                    "aerion refused the refresh token"
                );
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Every secret this fetcher holds, and `in_play` (the refresh token or password just
    /// sent): what an error must never repeat when Aerion echoes it. The default client secret
    /// is public, so it is left alone (it is also the default client id, which an error may
    /// rightly name).
    pub(crate) fn secrets(&self, in_play: Option<&Secret>) -> Vec<Secret> {
        let mut secrets: Vec<Secret> = Vec::with_capacity(4);
        secrets.extend(self.password.as_ref().map(SecretSource::current));
        secrets.extend(self.seed());
        secrets.extend(in_play.cloned());
        let client_secret = self.client_secret.current();
        if client_secret.expose_secret() != DEFAULT_CLIENT_SECRET {
            secrets.push(client_secret);
        }
        secrets
    }

    fn oauth_client(&self) -> OAuthClient {
        oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                self.client_secret.current().expose_secret().to_owned(),
            ))
            // Aerion reads client_id and client_secret from the form, not a Basic header.
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(TokenUrl::from_url(self.token_url.clone()))
    }

    /// The core's oauth2 adapter with the tenant header (oauth2's request builders add form
    /// fields but no headers, and Aerion needs the header on every token request) and Aerion's
    /// errors read with the status in hand.
    fn adapter<'a>(
        &'a self,
        repeat: Repeat,
        errors: &'a (dyn Fn(&Response) -> Error + Send + Sync),
    ) -> OAuthAdapter<'a> {
        let (name, value) = &self.tenant_header;
        self.http
            .oauth_adapter(repeat)
            .header(name.clone(), value.clone())
            .endpoint(self.token_url_setting)
            .errors(errors)
    }

    /// The refresh grant. Aerion rotates refresh tokens, so the grant spends the one it sends:
    /// it is sent once, and repeated only when it provably never reached Aerion.
    async fn refresh_grant(&self, refresh_token: &Secret) -> Result<TokenState, SendError> {
        let now = self.clock.now();
        let client = self.oauth_client();
        let rt = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let secrets = self.secrets(Some(refresh_token));
        let secrets: Vec<&Secret> = secrets.iter().collect();
        let errors = |response: &Response| response.error_scrubbed(&secrets);
        let http = self.adapter(Repeat::Once, &errors);
        let response = client
            .exchange_refresh_token(&rt)
            .request_async(&http)
            .await
            .map_err(grant_error)?;
        let rotated = response.refresh_token().is_some();
        debug!(rotated, "aerion refresh grant succeeded");
        // A response without a refresh token leaves the one just used in force.
        self.state(now, response, Some(refresh_token.clone()))
            .map_err(SendError::reached)
    }

    /// The password grant: nothing is spent by sending it, so it is repeated as the policy
    /// allows.
    async fn password_grant(
        &self,
        username: &str,
        password: &Secret,
    ) -> Result<TokenState, SendError> {
        let now = self.clock.now();
        let client = self.oauth_client();
        let username = ResourceOwnerUsername::new(username.to_owned());
        let secrets = self.secrets(Some(password));
        let password = ResourceOwnerPassword::new(password.expose_secret().to_owned());
        let secrets: Vec<&Secret> = secrets.iter().collect();
        let errors = |response: &Response| response.error_scrubbed(&secrets);
        let http = self.adapter(Repeat::Safe, &errors);
        let response = client
            .exchange_password(&username, &password)
            .request_async(&http)
            .await
            .map_err(grant_error)?;
        debug!(
            refresh_token = response.refresh_token().is_some(),
            "aerion password grant succeeded"
        );
        self.state(now, response, None).map_err(SendError::reached)
    }

    /// The new state. `now` is read before the request was sent, so the expiry errs early. An
    /// answer refused here returns its rotated refresh token with the error, since the one sent
    /// is spent.
    fn state(
        &self,
        now: std::time::SystemTime,
        response: AerionTokenResponse,
        kept_refresh_token: Option<Secret>,
    ) -> Result<TokenState, Error> {
        let rotated = response
            .refresh_token()
            .map(|r| Secret::new(r.secret().as_str()));
        let token_type = match bearer_token_type(Some(response.token_type().0.as_str()), WHAT) {
            Ok(token_type) => token_type,
            Err(error) => {
                return Err(match rotated {
                    Some(refresh_token) => error.with_rotated_refresh_token(refresh_token),
                    None => error,
                });
            }
        };
        let mut token = AccessToken::builder(response.access_token().secret().as_str())
            .token_type(token_type)
            .scope(response.scope().map(str::to_owned));
        if let Some(lifetime) = response.expires_in() {
            token = token.expires_in(now, lifetime);
        }
        Ok(TokenState::new(token.build()).with_refresh_token(rotated.or(kept_refresh_token)))
    }
}
