#![doc = include_str!("../README.md")]
//!
//! # The builder, and an API call
//!
//! ```no_run
//! use aurora_uk_auth::{AuroraUk, Environment, TokenProvider};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), aurora_uk_auth::Error> {
//! let aurora = AuroraUk::builder()
//!     .environment(Environment::Dev)
//!     .client_id("my-client-id")
//!     .client_secret(std::env::var("AURORA_UK_CLIENT_SECRET").unwrap_or_default())
//!     .build()?;
//!
//! // A token, from the cache when it is fresh.
//! let token = aurora.get().await?;
//! assert_eq!(token.token_type(), "Bearer");
//!
//! // An API call: the token goes in `Authorization: Bearer …`; a 401 invalidates that token and
//! // the request is sent once more with a new one.
//! let mut accounts = aurora.api_base().join("Accounts").expect("a valid path");
//! accounts.query_pairs_mut().append_pair("orderBy", "id asc");
//! let response = aurora.send(|client| client.get(accounts.clone())).await?;
//! println!("{}", response.status());
//!
//! // The environment's settings, then more of your own:
//! let aurora = aurora_uk_auth::AuroraUkBuilder::from_env()?
//!     .rediscovery_interval(std::time::Duration::from_secs(600))
//!     .build()?;
//! # let _ = aurora;
//! # Ok(())
//! # }
//! ```
//!
//! [`AuroraUk::from_env`] and [`AuroraUkBuilder::from_env`] read the variables in the table
//! above.
//!
//! # Environments
//!
//! | | issuer | audience (and API base) |
//! | --- | --- | --- |
//! | [`Environment::Dev`] | `https://aurora-dev.uk.auth0.com/` | `https://dev.client.integration.aurora.co.uk` |
//! | [`Environment::Live`] | `https://auth.aurora.co.uk/` | `https://api.client.integration.aurora.co.uk` |
//!
//! Dev tokens do not work on live and the other way round. One [`AuroraUk`] is one environment,
//! issuer, audience and client: its cache holds only that combination's token, and a
//! [`store`](AuroraUkBuilder::store) keeps it under
//! `StoreKey::new("aurora-uk", <issuer>, <audience>, <client_id>)`, so a dev token is never read
//! back for live. Overriding the issuer or audience of one environment with the other's preset is
//! refused at build time.
//!
//! # Errors
//!
//! - An issuer that is not the one the discovery document names (compared exactly, trailing `/`
//!   included), or one with no discovery document (HTTP 404), is [`Error::Malformed`] naming
//!   `AURORA_UK_ISSUER` and both issuers, before any token request. It is not [`Error::Config`]
//!   because a request (discovery) was sent: the CLI exits 4, not 2.
//! - HTTP 401 from the token endpoint is [`Error::Rejected`] with `status: Some(401)`: the client
//!   id or secret is wrong. HTTP 403 is [`Error::Rejected`] with `status: Some(403)`: the
//!   credentials are fine but this client may not get tokens for this audience (the Auth0
//!   application has no client grant for the API). Both keep Auth0's `error` and
//!   `error_description`; [`Refusal::of`] tells them apart.
//! - HTTP 429 is retried per the [`HttpClient`]'s policy, honouring `Retry-After`, and becomes
//!   [`Error::RateLimited`] when the retries run out.
//!
//! # Assumptions (where the API's page is silent)
//!
//! - Discovery is fetched on the first token request and kept. It is fetched again only when the
//!   token endpoint fails as if it had moved (HTTP 404 or 410, a redirect, a connection error),
//!   at most once per [`rediscovery_interval`](AuroraUkBuilder::rediscovery_interval) (default
//!   5 minutes), and never per token; or at once when [`AuroraUk::refresh_discovery`] is
//!   called. Auth0 rate-limits its token endpoint, so tokens are cached
//!   until shortly before `expires_in` runs out.
//! - openidconnect fetches the JWKS as part of discovery. This crate does not verify access
//!   tokens (they are for the API, not for us).
//! - No scope is requested. `token_type` must be `Bearer` (any case).
//! - [`AuroraUk::send`] sends `Authorization: Bearer <token>` by default; the page names an
//!   `Authentication` header, which [`auth_header_name`](AuroraUkBuilder::auth_header_name)
//!   selects.
//! - The API base URL is the audience's host for each environment.
//!
//! [`Error::Config`]: token_provider::Error::Config
//! [`Error::Malformed`]: token_provider::Error::Malformed
//! [`Error::Rejected`]: token_provider::Error::Rejected
//! [`Error::RateLimited`]: token_provider::Error::RateLimited

#![warn(missing_docs)]

mod builder;
mod fetch;

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use token_provider::auth::send_authorized;
use token_provider::{CacheStats, CachedTokenProvider, HttpClient};
use url::Url;

pub use token_provider::{self, AccessToken, Error, Secret, TokenProvider};

pub use crate::builder::{AuroraUkBuilder, DEFAULT_REDISCOVERY_INTERVAL};
use crate::fetch::Fetcher;

/// Aurora UK's two worlds. Tokens of one do not work in the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Environment {
    /// The dev instance (`aurora-dev.uk.auth0.com`).
    Dev,
    /// The live instance (`auth.aurora.co.uk`).
    Live,
}

impl Environment {
    /// The issuer, as the discovery document spells it (with its trailing `/`).
    pub fn issuer(self) -> &'static str {
        match self {
            Self::Dev => "https://aurora-dev.uk.auth0.com/",
            Self::Live => "https://auth.aurora.co.uk/",
        }
    }

    /// The `audience` sent with the client credentials grant.
    pub fn audience(self) -> &'static str {
        match self {
            Self::Dev => "https://dev.client.integration.aurora.co.uk",
            Self::Live => "https://api.client.integration.aurora.co.uk",
        }
    }

    /// The API's base URL (the audience's host).
    pub fn api_base(self) -> &'static str {
        self.audience()
    }

    /// `dev` or `live`, as `AURORA_UK_ENV` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Live => "live",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Dev => Self::Live,
            Self::Live => Self::Dev,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = Error;

    /// `dev` or `live` (any case, surrounding spaces ignored); anything else is an error naming
    /// `AURORA_UK_ENV`.
    fn from_str(s: &str) -> Result<Self, Error> {
        token_provider::env_choice(s, &[Self::Dev, Self::Live], Self::as_str).ok_or_else(|| {
            let shown: String = s.chars().filter(|c| !c.is_control()).take(40).collect();
            Error::config(
                "AURORA_UK_ENV",
                format!("must be `dev` or `live`, not `{shown}`"),
            )
        })
    }
}

/// How the client id and secret reach the token endpoint. Auth0 accepts both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(id:secret)` (RFC 6749 `client_secret_basic`).
    #[default]
    BasicHeader,
    /// `client_id` and `client_secret` form fields (`client_secret_post`), as the page's manual
    /// example does.
    RequestBody,
}

impl ClientAuth {
    /// `basic` or `post`, as `AURORA_UK_CLIENT_AUTH` spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BasicHeader => "basic",
            Self::RequestBody => "post",
        }
    }
}

/// Why Auth0 refused a token: the two refusals a caller handles differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// HTTP 401: the client id or client secret is wrong.
    BadCredentials,
    /// HTTP 403: the credentials are valid but this client may not get tokens for this audience
    /// (no client grant for the API, or the grant type is not enabled).
    NotAllowed,
}

impl Refusal {
    /// The refusal an error from [`AuroraUk`] stands for, if it is one.
    pub fn of(error: &Error) -> Option<Self> {
        match error {
            Error::Rejected {
                status: Some(401), ..
            } => Some(Self::BadCredentials),
            Error::Rejected {
                status: Some(403), ..
            } => Some(Self::NotAllowed),
            _ => None,
        }
    }
}

/// Tokens for the Aurora UK client integration API, cached. Cheap to clone (clones share the
/// cache).
///
/// Built by [`AuroraUk::builder`] or [`AuroraUkBuilder::from_env`].
#[derive(Clone)]
pub struct AuroraUk {
    inner: CachedTokenProvider<Fetcher>,
}

impl fmt::Debug for AuroraUk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuroraUk")
            .field("inner", &self.inner)
            .finish()
    }
}

impl AuroraUk {
    /// Starts a builder.
    pub fn builder() -> AuroraUkBuilder {
        AuroraUkBuilder::new()
    }

    /// A provider configured from the process environment (see
    /// [`AuroraUkBuilder::from_env_with`] for the variables).
    pub fn from_env() -> Result<Self, Error> {
        AuroraUkBuilder::from_env()?.build()
    }

    fn fetcher(&self) -> &Fetcher {
        self.inner.fetcher()
    }

    /// The environment.
    pub fn environment(&self) -> Environment {
        self.fetcher().environment
    }

    /// The issuer in use (the preset or the override).
    pub fn issuer(&self) -> &str {
        self.fetcher().issuer.as_str()
    }

    /// The audience in use (the preset or the override).
    pub fn audience(&self) -> &str {
        &self.fetcher().audience
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.fetcher().client_id
    }

    /// How the client authenticates to the token endpoint.
    pub fn client_auth(&self) -> ClientAuth {
        self.fetcher().client_auth
    }

    /// The API base URL.
    pub fn api_base(&self) -> &Url {
        &self.fetcher().api_base
    }

    /// Where this provider's tokens may be sent: the origin of the API base (the
    /// environment's, or the one configured). [`send`](Self::send) attaches a token only to
    /// requests for it; give it to `token_provider::auth::AuthMiddleware` for the same rule.
    pub fn auth_scope(&self) -> token_provider::auth::AuthScope {
        token_provider::auth::AuthScope::new(self.api_base())
            .expect("the API base was checked by the builder")
    }

    /// The header the API reads the token from ([`auth_header_name`](AuroraUkBuilder::auth_header_name);
    /// `Authorization` by default), for `token_provider::auth::AuthMiddleware::header` and
    /// `AuthLayer::header`, so they send it where [`send`](Self::send) does.
    pub fn auth_header(&self) -> &token_provider::auth::AuthHeader {
        &self.fetcher().auth_header
    }

    /// The token endpoint discovery found, once discovery has run.
    pub fn token_endpoint(&self) -> Option<Url> {
        self.fetcher().token_endpoint()
    }

    /// When discovery last succeeded.
    pub fn discovered_at(&self) -> Option<SystemTime> {
        self.fetcher().discovered_at()
    }

    /// Fetches the discovery document again now and keeps the token endpoint it names, for the
    /// next token request (the cached token, if any, stays in use until it expires).
    ///
    /// Only the HTTP client's policy applies (timeouts, retries): the
    /// [`rediscovery_interval`](AuroraUkBuilder::rediscovery_interval) does not, since this is
    /// asked for. On failure the discovery found before is kept, and the error is the one a
    /// token request would have given (an issuer mismatch is [`Error::Malformed`]).
    ///
    /// ```no_run
    /// # async fn run(aurora: aurora_uk_auth::AuroraUk) -> Result<(), token_provider::Error> {
    /// aurora.refresh_discovery().await?;
    /// println!("{:?}", aurora.token_endpoint());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn refresh_discovery(&self) -> Result<(), Error> {
        self.fetcher().discover().await.map(|_| ())
    }

    /// The HTTP client tokens are fetched with (and [`send`](Self::send) sends with).
    pub fn http_client(&self) -> &HttpClient {
        &self.fetcher().http
    }

    /// The token cache's counters.
    pub fn stats(&self) -> CacheStats {
        self.inner.stats()
    }

    /// Sends an API request with the token attached, and on a 401 sends it once more with a new
    /// token.
    ///
    /// `build` makes the request from this provider's `reqwest::Client` (the HTTP policy's:
    /// timeouts, no redirects, the user agent); it is called once to check the URL and once per
    /// send, so it must make the same request each time. The token goes in the
    /// [configured header](AuroraUkBuilder::auth_header_name) (default `Authorization`) as
    /// `Bearer <token>`, marked sensitive, and only for a URL on the API's origin
    /// ([`auth_scope`](Self::auth_scope)): a request for another origin (a presigned download
    /// link, say) is sent untouched, with no token. This is
    /// [`token_provider::auth::send_authorized`] with this API's header, scope and client.
    ///
    /// Any response is returned, the second 401 included: the retry happens at most once, because
    /// a new token refused again means the API will not take this client's tokens, and asking
    /// Auth0 again would only spend its rate limit. The body is not read, so its size is the
    /// caller's to bound.
    ///
    /// ```no_run
    /// # async fn run(aurora: aurora_uk_auth::AuroraUk) -> Result<(), token_provider::Error> {
    /// let mut url = aurora.api_base().join("Accounts").expect("a valid path");
    /// url.query_pairs_mut().append_pair("orderBy", "id asc");
    /// let response = aurora.send(|client| client.get(url.clone())).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send<F>(&self, build: F) -> Result<reqwest::Response, Error>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let client = self.http_client().reqwest();
        // The URL is checked before a token is attached: a credential never goes over plain
        // http to a remote host.
        let probe = build(client)
            .build()
            .map_err(|e| Error::config("request", token_provider::error_chain(&e.without_url())))?;
        token_provider::http::check_url(probe.url())?;
        drop(probe);
        send_authorized(
            self,
            &self.fetcher().auth_header,
            &self.auth_scope(),
            || build(client),
        )
        .await
    }
}

token_provider::forward_token_provider!(AuroraUk => |this| &this.inner);
