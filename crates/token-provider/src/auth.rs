//! Authenticated calls: attach the token to requests for the provider's API, and when the server
//! answers 401, invalidate exactly that token and try once more with a new one (never more than
//! once).
//!
//! Providers can reject a token before its expiry (Aurora UK's page says so outright), so every
//! caller needs this dance; here it is written once.
//!
//! A token goes only to the origins (scheme, host and port) of an [`AuthScope`]: a request for
//! any other origin (a presigned storage link in an API answer, a web hook) is sent untouched,
//! with no token and no retry. Each provider offers the scope of its own API, from its
//! configured base URL (the preset's host by default).
//!
//! - [`send_authorized`]: for bare `reqwest` (0.13); the request is rebuilt by a closure, so the
//!   retry always has a body to send.
//! - [`execute_authorized`]: for a [`Request`] sent through the shared [`HttpClient`].
//! - `AuthMiddleware` (feature `middleware`): the same as a `reqwest-middleware` (0.5)
//!   middleware; a request whose body cannot be cloned (a stream) is not retried, but its
//!   refused token is still invalidated, and its 401 is returned.
//! - `AuthLayer` (feature `tower`): the same as a `tower` layer, for clients built on `http`
//!   and `tower-service` 0.3 (hyper-util's legacy client, tonic).
//!
//! # Redirects
//!
//! A token is never to follow a redirect to another origin, whatever its header's name. Build
//! the `reqwest::Client` with redirects off (`redirect(reqwest::redirect::Policy::none())`, as
//! [`HttpClient::reqwest`] is): reqwest drops `Authorization` when a redirect leaves the host,
//! but not a header of another name ([`AuthHeader::named`]), which would follow the redirect
//! wherever it points. `AuthLayer` follows no redirect itself; a redirect-following layer goes
//! outside it, so each hop is checked against the scope.

use std::fmt;
use std::future::Future;

use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use url::{Origin, Url};

use crate::http::{Request, Response, check_url};
use crate::{AccessToken, Error, HttpClient, TokenProvider};

#[cfg(feature = "tower")]
mod layer;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use self::layer::{AuthFuture, AuthLayer, AuthService, CloneBody, NoReplay, ReplayBody};

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

/// The origins (scheme, host, port) a token may be sent to: the provider's API, and nothing
/// else.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthScope {
    origins: Vec<Origin>,
}

impl fmt::Debug for AuthScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.origins.iter().map(Origin::ascii_serialization))
            .finish()
    }
}

impl AuthScope {
    /// The origin of `url` (its path is ignored). Refused unless it may carry a credential:
    /// `https`, or `http` to a loopback host.
    pub fn new(url: &Url) -> Result<Self, Error> {
        Self {
            origins: Vec::new(),
        }
        .and(url)
    }

    /// [`new`](Self::new) for a URL given as text (`https://api.example.com`).
    pub fn parse(url: &str) -> Result<Self, Error> {
        let url = Url::parse(url.trim())
            .map_err(|e| Error::config("auth scope", format!("is not a URL: {e}")))?;
        Self::new(&url)
    }

    /// This scope and the origin of `url` (an API served from a second host).
    pub fn and(mut self, url: &Url) -> Result<Self, Error> {
        check_url(url)?;
        let origin = url.origin();
        if !origin.is_tuple() {
            return Err(Error::config("auth scope", "the URL has no origin"));
        }
        if !self.origins.contains(&origin) {
            self.origins.push(origin);
        }
        Ok(self)
    }

    /// Whether a token may be sent to `url`.
    pub fn allows(&self, url: &Url) -> bool {
        self.origins.contains(&url.origin())
    }
}

/// Sends the request `build` makes; when its URL is in `scope`, with a token from `provider`,
/// and on a 401 invalidates that token and sends a rebuilt request once more with a new token.
/// A request outside `scope` is sent as built, with no token and no retry. Returns the last
/// response whatever its status (a second 401 included), or the error that kept a token or an
/// answer from being had.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # // The API answers with a redirect to another origin, which must see no request.
/// # let (mut server, mut elsewhere) = (mockito::Server::new_async().await, mockito::Server::new_async().await);
/// # let away = elsewhere.mock("GET", "/").expect(0).create_async().await;
/// # let _moved = server.mock("GET", "/v1/users/me").with_status(302)
/// #     .with_header("location", &format!("{}/", elsewhere.url())).create_async().await;
/// # let provider = token_provider::CachedTokenProvider::new(token_provider::provider_fn(
/// #     "example", || async { Ok(token_provider::AccessToken::new("a-token")) }));
/// use token_provider::auth::{AuthHeader, AuthScope, send_authorized};
///
/// let api = "https://api.example.com";
/// # let url = server.url(); let api = url.as_str();
/// let scope = AuthScope::parse(api)?;
/// // Redirects off, or the token's header would follow them (see the module docs).
/// let client = reqwest::Client::builder()
///     .redirect(reqwest::redirect::Policy::none())
///     .build()?;
/// let response = send_authorized(&provider, &AuthHeader::default(), &scope, || {
///     client.get(format!("{api}/v1/users/me"))
/// })
/// .await?;
/// # assert_eq!(response.status(), 302, "the redirect comes back unfollowed");
/// # away.assert_async().await;
/// # Ok(()) }
/// ```
pub async fn send_authorized<P, F>(
    provider: &P,
    header: &AuthHeader,
    scope: &AuthScope,
    build: F,
) -> Result<reqwest::Response, Error>
where
    P: TokenProvider + ?Sized,
    F: Fn() -> reqwest::RequestBuilder,
{
    let (client, request) = build().build_split();
    let request = request?;
    if !scope.allows(request.url()) {
        return client.execute(request).await.map_err(Error::from);
    }
    let build = &build;
    retry_once_on_401(
        provider,
        |token| async move {
            let (client, request) = build().build_split();
            let mut request = request?;
            // The closure must make the same request each time; a token never follows one that
            // changed its mind about where to go.
            if !scope.allows(request.url()) {
                return Err(Error::config(
                    "request",
                    "was rebuilt for another origin than the first time",
                ));
            }
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
    scope: &AuthScope,
    request: &Request,
) -> Result<Response, Error>
where
    P: TokenProvider + ?Sized,
{
    if !scope.allows(request.url()) {
        return http.execute(request.clone()).await;
    }
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
    let token = provider.get().await?;
    let response = send(token.clone()).await?;
    if status(&response) != 401 {
        return Ok(response);
    }
    tracing::info!("the server refused the token (401); retrying once with a new one");
    provider.invalidate(&token);
    send(provider.get().await?).await
}

/// A `reqwest-middleware` middleware that authenticates every request for its scope's origins
/// with a provider's token and answers a 401 by invalidating that token and retrying once
/// (feature `middleware`). Requests for other origins pass through untouched.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # // The API answers with a redirect to another origin, which must see no request.
/// # let (mut server, mut elsewhere) = (mockito::Server::new_async().await, mockito::Server::new_async().await);
/// # let away = elsewhere.mock("GET", "/").expect(0).create_async().await;
/// # let _moved = server.mock("GET", "/v1/users/me").with_status(302)
/// #     .with_header("location", &format!("{}/", elsewhere.url())).create_async().await;
/// # let provider: std::sync::Arc<dyn token_provider::TokenProvider> = std::sync::Arc::new(
/// #     token_provider::CachedTokenProvider::new(token_provider::provider_fn(
/// #         "example", || async { Ok(token_provider::AccessToken::new("a-token")) })));
/// use token_provider::auth::{AuthMiddleware, AuthScope};
///
/// let api = "https://api.example.com";
/// # let url = server.url(); let api = url.as_str();
/// // Redirects off, or the token's header would follow them (see the module docs).
/// let client = reqwest::Client::builder()
///     .redirect(reqwest::redirect::Policy::none())
///     .build()?;
/// let client = reqwest_middleware::ClientBuilder::new(client)
///     .with(AuthMiddleware::new(provider, AuthScope::parse(api)?))
///     .build();
/// let response = client.get(format!("{api}/v1/users/me")).send().await?;
/// # assert_eq!(response.status(), 302, "the redirect comes back unfollowed");
/// # away.assert_async().await;
/// # Ok(()) }
/// ```
#[cfg(feature = "middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "middleware")))]
#[derive(Clone)]
pub struct AuthMiddleware {
    provider: std::sync::Arc<dyn TokenProvider>,
    header: AuthHeader,
    scope: AuthScope,
}

#[cfg(feature = "middleware")]
impl fmt::Debug for AuthMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthMiddleware")
            .field("provider", &self.provider)
            .field("header", &self.header.name)
            .field("scope", &self.scope)
            .finish()
    }
}

#[cfg(feature = "middleware")]
impl AuthMiddleware {
    /// `Authorization: Bearer` with tokens from `provider`, for requests to `scope`'s origins.
    pub fn new(provider: std::sync::Arc<dyn TokenProvider>, scope: AuthScope) -> Self {
        Self {
            provider,
            header: AuthHeader::default(),
            scope,
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
        // Only the API's origins get a token (checked before a token is even fetched); the
        // scope's origins are https or loopback, so the bearer never crosses in clear text.
        if !self.scope.allows(req.url()) {
            return next.run(req, extensions).await;
        }
        let token = self
            .provider
            .get()
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
        // The token is refused whether or not the request can be replayed: forget it first.
        self.provider.invalidate(&token);
        let Some(mut again) = retry else {
            tracing::info!(
                "the server refused the token (401) for a request whose body cannot be \
                 replayed; the token is dropped and the 401 returned"
            );
            return Ok(response);
        };
        tracing::info!("the server refused the token (401); retrying once with a new one");
        let token = self
            .provider
            .get()
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
