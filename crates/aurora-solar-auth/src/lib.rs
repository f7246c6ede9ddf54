#![doc = include_str!("../README.md")]
//!
//! Hosts: [`Environment::Sandbox`] is `https://api-sandbox.aurorasolar.com`,
//! [`Environment::Production`] is `https://api.aurorasolar.com`; a custom base URL (a proxy, an
//! emulator) replaces either.
//!
//! # Backend apps
//!
//! The application key (sent as `Authorization: Bearer`) buys a temporary key for one tenant
//! that authorized the app: `POST {base}/partner_applications/{application_id}/tenants/{tenant_id}/create_token`.
//! Temporary keys live 13 hours; the `expires_at` Aurora returns (`2023-07-29 04:30:46 UTC`)
//! decides when the cache renews them. One [`PartnerApp`] serves any number of tenants, with one
//! cache per tenant.
//!
//! ```no_run
//! use aurora_solar_auth::{Environment, PartnerApp, TokenProvider};
//!
//! # async fn run() -> Result<(), aurora_solar_auth::Error> {
//! let app = PartnerApp::builder()
//!     .environment(Environment::Sandbox)
//!     .application_id("your-application-id")
//!     .application_key(std::env::var("AURORA_SOLAR_APPLICATION_KEY").unwrap_or_default())
//!     .build()?;
//! let tenant = app.tenant("the-tenant-id")?;
//! let key = tenant.get().await?; // fetched once, then served from the cache
//! let header = key.authorization_value(); // "Bearer <temporary key>"
//! # drop(header);
//! # Ok(())
//! # }
//! ```
//!
//! # Embedded apps
//!
//! Aurora passes the app's frontend a session token (`aurora_session_token`) with each request;
//! the same exchange with `?session_token=…` yields the temporary key. A session token is good
//! for one exchange within an hour: it is sent once and never retried once it may have reached
//! Aurora (not even after a timeout), and a second exchange — the renewal 13 hours later, or a
//! new attempt after a failure — is refused locally with [`Error::UserAction`] asking for a new
//! session token. A 401 answer to the exchange is reported in the same words.
//!
//! ```no_run
//! use aurora_solar_auth::{Environment, PartnerApp, TokenProvider};
//!
//! # async fn run(session_token_from_request: String) -> Result<(), aurora_solar_auth::Error> {
//! let app = PartnerApp::builder()
//!     .environment(Environment::Production)
//!     .application_id("your-application-id")
//!     .application_key(std::env::var("AURORA_SOLAR_APPLICATION_KEY").unwrap_or_default())
//!     .build()?;
//! let tenant = app.embedded("the-tenant-id", session_token_from_request)?;
//! match tenant.get().await {
//!     Ok(key) => { /* call the Sync or Design API with `key` */ }
//!     Err(e) if e.needs_user_action() => { /* reload the app from Aurora for a new token */ }
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Client SDK
//!
//! The REST API key (Bearer) finds the user by email among the tenant's active accounts
//! (`GET {base}/tenants/{tenant_id}/users`), invites them as an "SDK User" when missing
//! (`POST …/users/invite`; first and last name are then required), and generates a JWT
//! (`POST …/users/{user_id}/generate_token`). The JWT lives 12 hours; its expiry is read from
//! its `exp` claim, decoded but not verified (it is HS256-signed with Aurora's key). One cached
//! JWT per user.
//!
//! An "SDK User" has one Client SDK session at a time: a new JWT can end the browser session
//! that holds the previous one. So `generate_token` is never repeated once it may have reached
//! Aurora (a timeout or a 5xx ends the fetch instead), and a background refresh of a user's JWT,
//! which the cache starts in the last minutes of its life, may end that user's open session.
//! An application that hands the JWT to a browser for the whole session turns it off with
//! [`ClientSdkBuilder::background_refresh`]`(false)`: a JWT is then generated only when none is
//! cached, the cached one has expired, or it was [invalidated](TokenProvider::invalidate).
//!
//! ```no_run
//! use aurora_solar_auth::{ClientSdk, Environment, SdkUser, TokenProvider};
//!
//! # async fn run() -> Result<(), aurora_solar_auth::Error> {
//! let sdk = ClientSdk::builder()
//!     .environment(Environment::Sandbox)
//!     .api_key(std::env::var("AURORA_SOLAR_API_KEY").unwrap_or_default())
//!     .tenant_id("the-tenant-id")
//!     .build()?;
//! let user = sdk.user(SdkUser::new("jessica.smith@example.com").with_name("Jessica", "Smith"))?;
//! let jwt = user.get().await?; // hand `jwt.secret()` to the Client SDK in the browser
//! # drop(jwt);
//! # Ok(())
//! # }
//! ```
//!
//! # From the environment
//!
//! [`PartnerApp::from_env`], [`PartnerAppBuilder::from_env`], [`ClientSdk::from_env`] and
//! [`ClientSdkBuilder::from_env`] read the variables in the tables above.
//!
//! The tenant (or user) read from the environment becomes the builder's default, so the built
//! [`PartnerApp`] (or [`ClientSdk`]) is itself a [`TokenProvider`]:
//!
//! ```no_run
//! use aurora_solar_auth::{PartnerAppBuilder, TokenProvider};
//!
//! # async fn run() -> Result<(), aurora_solar_auth::Error> {
//! let app = PartnerAppBuilder::from_env()?.build()?;
//! let key = app.get().await?; // the temporary key of AURORA_SOLAR_TENANT_ID
//! # drop(key);
//! # Ok(())
//! # }
//! ```
//!
//! # Keys and environments
//!
//! Aurora's keys carry their environment in their prefix (`sk_prod_…`, `rk_sand_…`). A key that
//! looks like the other environment's — `sk_prod_`/`rk_prod_` against sandbox, one containing
//! `_sand_` against production — is refused at build time with [`Error::Config`] naming the
//! variable (`AURORA_SOLAR_APPLICATION_KEY` or `AURORA_SOLAR_API_KEY`). With a custom base URL
//! the check is skipped. Temporary keys are treated as opaque.
//!
//! # Rate limits
//!
//! Aurora allows 90 requests per minute per key by default and answers `429` with
//! `Retry-After` beyond that; the HTTP client waits and retries (up to its policy's cap). The
//! cache makes one request per key lifetime, so only many tenants or users at once come near the
//! limit. A session-token exchange and a Client SDK `generate_token` are the exceptions: they
//! are never repeated once they may have reached Aurora, so a 429 on them ends in
//! [`Error::RateLimited`] (and the session token is spent).
//!
//! # Assumptions where Aurora's pages are silent
//!
//! - **Error bodies** are not documented. 400, 401, 403, 409 and 422 are
//!   [`Error::Rejected`], with the provider's code and message read leniently from
//!   `{"error": …}`, `{"error": {"code", "message"}}`, `{"message": …}` or `{"errors": […]}`
//!   shaped bodies (never the raw body; a key or session token echoed back is cut out), by the
//!   core's [`status_error`](token_provider::http::status_error). A 404 is also
//!   [`Error::Rejected`]: for `create_token` it means the application is not authorized for that
//!   tenant (or an id is wrong). Another 4xx is [`Error::Rejected`] when the body says what is
//!   wrong; other statuses are [`Error::Status`].
//! - A **401 to an embedded exchange** means the session token was spent or expired:
//!   [`Error::UserAction`].
//! - **`expires_at`** is read in the documented `YYYY-MM-DD HH:MM:SS UTC` form, or RFC 3339, on
//!   Aurora's clock: the answer's `Date` header tells how far it is from this host's, so a host
//!   whose clock is off serves no key past Aurora's expiry (a JWT's `exp` likewise). Assumed: the
//!   `Date` header is Aurora's clock (`HttpClientBuilder::provider_clock(false)` if something in
//!   between dates answers by another).
//! - **The user list** is one page (`{"users": [...]}`); a user matches when the email is equal
//!   ignoring ASCII case (see [Identities](#identities)) and `account_status` is `active`. An account in another state does not
//!   match, so the user is invited; when that invitation is refused with 409 or 422 (the email
//!   is taken: an "SDK User" invited earlier who never logged in, a pending account), the list is
//!   read again accepting any status and the token is generated for that account. Only when no
//!   account has the email is the refusal returned.
//! - **The invitation's answer** is not documented: when it is `{"user": {"id": …}}` that id is
//!   used, otherwise the user list is read again (where the new account may have any status,
//!   since "SDK User" accounts need not accept the invitation). An invitation is never sent
//!   twice by the HTTP client's retries.
//! - **Store keys** are `aurora-solar|<environment or host>|<tenant id>|<application id>` (one
//!   temporary key per application and tenant, whether from the backend or the embedded
//!   exchange) and `aurora-solar-sdk|<environment or host>|<tenant id>|<email, ASCII letters
//!   lowercased>`.
//! - **Emails Aurora did not list** are other accounts: an invitation for one creates a new
//!   account or is refused, and is never answered with the id of an account listed under another
//!   email.
//!
//! # Identities
//!
//! Tenant ids, application ids and emails are compared exactly. The only changes made to them
//! are that ASCII blanks around them are dropped and, in emails, ASCII letters are lowercased;
//! no Unicode case mapping, folding or normalisation is applied. So `kim@example.com` and the
//! same text with U+212A KELVIN SIGN for its `k` are two users, with two caches, two store
//! entries and two JWTs (as are spellings with a long s, fullwidth letters or a zero-width
//! space). A non-ASCII email is accepted and sent as given; an email holding any whitespace (a
//! no-break space included) is refused with [`Error::Config`] naming `AURORA_SOLAR_USER_EMAIL`.
//!
//! # Security
//!
//! The application key, API key, session token, temporary key and JWT are
//! [`token_provider::Secret`]s from the moment they enter a builder: redacted in `Debug`, never
//! in an error or a log line (a session token travels in a query string, and the core's logs and
//! errors carry no query).

#![warn(missing_docs)]

mod environment;
mod facade;
mod partner;
mod sdk;
pub mod wire;

pub use token_provider::{self, AccessToken, Error, KeyedConfig, RateLimit, Secret, TokenProvider};

pub use crate::environment::Environment;
pub use crate::partner::{PartnerApp, PartnerAppBuilder, TenantKey};
pub use crate::sdk::{ClientSdk, ClientSdkBuilder, SDK_USER_LEVEL, SdkUser, UserJwt};
