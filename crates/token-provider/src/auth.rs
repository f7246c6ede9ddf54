//! Authenticated calls: attach the token, and when the server answers 401, invalidate exactly
//! that token and try once more with a new one (never more than once).
//!
//! Providers can reject a token before its expiry (Aurora UK's page says so outright), so every
//! caller needs this dance; here it is written once.
//!
//! Build the `reqwest::Client` with redirects off, as [`HttpClient::reqwest`] is: reqwest drops
//! `Authorization` when a redirect leaves the host, but not a header of another name
//! ([`AuthHeader::named`]), which would follow the redirect wherever it points.
//!
//! - [`send_authorized`]: for bare `reqwest`; the request is rebuilt by a closure, so the retry
//!   always has a body to send.
//! - [`execute_authorized`]: for a [`Request`] sent through the shared [`HttpClient`].
//! - `AuthMiddleware` (feature `middleware`): the same as a `reqwest-middleware` middleware; a
//!   request whose body cannot be cloned (a stream) is not retried and its 401 is returned.

#[cfg(feature = "middleware")]
use std::fmt;

use http::header::{AUTHORIZATION, HeaderName, HeaderValue};

use std::future::Future;

use crate::http::{Request, Response, check_url};
use crate::{AccessToken, Error, HttpClient, TokenProvider};

/// Which header carries the token, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    name: HeaderName,
}

impl Default for AuthHeader {
    /// `Authorization: Bearer <token>`.
    fn default() -> Self {
        Self {
            name: AUTHORIZATION,
        }
    }
}

impl AuthHeader {
    /// `<name>: Bearer <token>`, for APIs that read another header (Aurora UK's page names an
    /// `Authentication` header).
    pub fn named(name: &str) -> Result<Self, Error> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::config("auth header", "is not a valid HTTP header name"))?;
        Ok(Self { name })
    }

    /// The header name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The header value for `token`, marked sensitive so no HTTP layer prints it.
    pub fn value(&self, token: &AccessToken) -> Result<HeaderValue, Error> {
        let mut value = HeaderValue::from_str(token.authorization_value().expose_secret())
            .map_err(|_| {
                Error::malformed("the provider issued a token that cannot be sent in a header")
            })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// Sends the request `build` makes with a token from `provider`; on a 401, invalidates that token
/// and sends a rebuilt request once more with a new token. A URL that is neither https nor
/// loopback is refused before a token is attached. Returns the last response whatever its
/// status (a second 401 included), or the error that kept a token or an answer from being had.
///
/// ```no_run
/// # async fn demo(provider: &dyn token_provider::TokenProvider) -> Result<(), token_provider::Error> {
/// let client = reqwest::Client::new();
/// let response = token_provider::auth::send_authorized(provider, &Default::default(), || {
///     client.get("https://api.example.com/v1/users/me")
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn send_authorized<P, F>(
    provider: &P,
    header: &AuthHeader,
    build: F,
) -> Result<reqwest::Response, Error>
where
    P: TokenProvider + ?Sized,
    F: Fn() -> reqwest::RequestBuilder,
{
    let build = &build;
    retry_once_on_401(
        provider,
        |token| async move {
            let (client, request) = build().build_split();
            let mut request = request?;
            // The bearer must not cross the network in clear text.
            check_url(request.url())?;
            request
                .headers_mut()
                .insert(header.name.clone(), header.value(&token)?);
            client.execute(request).await.map_err(Error::from)
        },
        |response| response.status().as_u16(),
    )
    .await
}

/// [`send_authorized`] for a [`Request`] sent through an [`HttpClient`] (its timeouts, size cap
/// and retry policy apply to each of the two tries).
pub async fn execute_authorized<P>(
    provider: &P,
    http: &HttpClient,
    header: &AuthHeader,
    request: &Request,
) -> Result<Response, Error>
where
    P: TokenProvider + ?Sized,
{
    retry_once_on_401(
        provider,
        |token| async move {
            let value = token.authorization_value();
            http.execute(request.clone().secret_header(header.name.clone(), &value)?)
                .await
        },
        |response| response.status().as_u16(),
    )
    .await
}

/// The dance itself: a token, a try, and after a 401 that token invalidated and one more try.
async fn retry_once_on_401<P, R, F, Fut>(
    provider: &P,
    send: F,
    status: impl Fn(&R) -> u16,
) -> Result<R, Error>
where
    P: TokenProvider + ?Sized,
    F: Fn(AccessToken) -> Fut,
    Fut: Future<Output = Result<R, Error>>,
{
    let token = provider.token().await?;
    let response = send(token.clone()).await?;
    if status(&response) != 401 {
        return Ok(response);
    }
    tracing::info!("the server refused the token (401); retrying once with a new one");
    provider.invalidate(&token);
    send(provider.token().await?).await
}

/// A `reqwest-middleware` middleware that authenticates every request with a provider's token and
/// answers a 401 by invalidating that token and retrying once (feature `middleware`).
///
/// ```no_run
/// # fn demo(provider: std::sync::Arc<dyn token_provider::TokenProvider>) {
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(token_provider::auth::AuthMiddleware::new(provider))
///     .build();
/// # }
/// ```
#[cfg(feature = "middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "middleware")))]
#[derive(Clone)]
pub struct AuthMiddleware {
    provider: std::sync::Arc<dyn TokenProvider>,
    header: AuthHeader,
}

#[cfg(feature = "middleware")]
impl fmt::Debug for AuthMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthMiddleware")
            .field("provider", &self.provider)
            .field("header", &self.header.name)
            .finish()
    }
}

#[cfg(feature = "middleware")]
impl AuthMiddleware {
    /// `Authorization: Bearer` with tokens from `provider`.
    pub fn new(provider: std::sync::Arc<dyn TokenProvider>) -> Self {
        Self {
            provider,
            header: AuthHeader::default(),
        }
    }

    /// Another header instead of `Authorization`.
    #[must_use]
    pub fn header(mut self, header: AuthHeader) -> Self {
        self.header = header;
        self
    }
}

#[cfg(feature = "middleware")]
#[async_trait::async_trait]
impl reqwest_middleware::Middleware for AuthMiddleware {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        // The bearer must not cross the network in clear text (checked before a token is even
        // fetched).
        check_url(req.url()).map_err(reqwest_middleware::Error::middleware)?;
        let token = self
            .provider
            .token()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let retry = req.try_clone();
        let mut req = req;
        let value = self
            .header
            .value(&token)
            .map_err(reqwest_middleware::Error::middleware)?;
        req.headers_mut().insert(self.header.name.clone(), value);
        let response = next.clone().run(req, extensions).await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(mut again) = retry else {
            tracing::info!("401 for a request whose body cannot be replayed; not retried");
            return Ok(response);
        };
        tracing::info!("the server refused the token (401); retrying once with a new one");
        self.provider.invalidate(&token);
        let token = self
            .provider
            .token()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let value = self
            .header
            .value(&token)
            .map_err(reqwest_middleware::Error::middleware)?;
        again.headers_mut().insert(self.header.name.clone(), value);
        next.run(again, extensions).await
    }
}
