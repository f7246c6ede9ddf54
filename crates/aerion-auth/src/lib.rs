#![doc = include_str!("../README.md")]
//!
//! # The builder
//!
//! ```no_run
//! use aerion_auth::{Aerion, AerionBuilder, Tenant, TokenProvider};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), aerion_auth::Error> {
//! let aerion = Aerion::builder()
//!     .tenant(Tenant::CompanyUrl("acme.aerion.app".into()))
//!     .username("me@acme.example")
//!     .password(std::env::var("AERION_PASSWORD").unwrap_or_default())
//!     .build()?;
//! // Before every API call (served from the cache while fresh):
//! let token = aerion.get().await?;
//! let header_value = token.authorization_value(); // "Bearer …"
//! # let _ = header_value;
//! // Who is signed in (retries once with a new token after a 401):
//! let me = aerion.me().await?;
//! println!("signed in as user {}", me.id);
//!
//! // The environment's settings, then more of your own:
//! let aerion = AerionBuilder::from_env()?
//!     .token_url("https://api.aerion.app/v1/oauth2/token")
//!     .build()?;
//! # let _ = aerion;
//! # Ok(())
//! # }
//! ```
//!
//! [`Aerion::from_env`] and [`AerionBuilder::from_env`] read the variables in the table above.
//!
//! # How a token is fetched
//!
//! - With a refresh token (from the last response, from the store, or configured), the refresh
//!   grant: `grant_type=refresh_token`, `refresh_token`, `client_id`, `client_secret`.
//! - Otherwise the password grant: `grant_type=password`, `username`, `password`, `client_id`,
//!   `client_secret`.
//! - Both are `POST`ed form-encoded, with the client credentials in the form (not a Basic
//!   header) and the tenant header (`companyurl`, `origin` or `referrer`).
//! - A refresh refused (`invalid_grant`, or a 400/401) falls back to the password grant when a
//!   password is configured; otherwise the error is
//!   [`Error::UserAction`], asking for a new sign-in.
//! - A response with a new refresh token replaces the old one at once (and is saved before
//!   anyone can use it again when a store is set); one without keeps the old one.
//!
//! # Assumptions where Aerion's documentation is silent
//!
//! - Refresh tokens rotate: the newest one always wins. A refresh grant is sent once, and
//!   repeated only when it provably never reached Aerion. The configured `AERION_REFRESH_TOKEN`
//!   counts as spent as soon as it may have reached Aerion (answered, refused, or sent with its
//!   answer lost): one process never sends it twice.
//! - When a username is configured, the newest refresh token (the last response's, else the
//!   stored one) is used before the configured one (which may have been spent already); the
//!   configured one is tried after that one is refused, if this process has not sent it yet,
//!   and then the password grant when a password is configured.
//! - In a refresh-token-only (SSO) setup, the configured refresh token is sent only while no
//!   newer one is known: once this process or the store holds a refresh token it rotated into,
//!   the configured one is never sent again, even when that newer one is refused. Then (or when
//!   the configured one is refused) the error is [`Error::UserAction`]: sign in again and set a
//!   new `AERION_REFRESH_TOKEN` (which starts a new store entry, see below).
//! - `client_id` defaults to `partner-auth` (identifying this library) and `client_secret` to
//!   `partner-auth`; Aerion requires both fields and checks neither.
//! - `expires_in` may be a number or a numeric string; when absent, the cache's default
//!   lifetime (one hour, Aerion's usual) applies. A `token_type` of `bearer` in any case (Aerion
//!   may say `bearer`), or none, is taken as bearer and the token's type is `Bearer`, as printed
//!   and as sent (`Authorization: Bearer`); any other type is [`Error::Malformed`], since such a
//!   token cannot be sent as a bearer. Unknown response fields are ignored.
//! - Errors come as `{"error","error_description"}` or `{"error","status","summary","raw"}`;
//!   both become [`Error::Rejected`] with the `error` code and
//!   the description (or `summary`), read by the core's lenient reader
//!   ([`ProviderWords`](token_provider::http::ProviderWords)). The `raw` field is never read, and
//!   the password, the refresh token and a configured client secret are cut out (`[redacted]`)
//!   of whatever Aerion echoes back.
//! - `GET /v1/users/me` answers with an object holding at least `id` (number or string); `email`
//!   is read when present.
//! - The `referrer` tenant header is spelled as Aerion spells it, not as HTTP's `Referer`.
//! - A store key's principal is the username, or for a refresh-token-only (SSO) setup `sso:` and
//!   32 hex digits of the SHA-256 of the configured refresh token: two SSO users of one tenant
//!   share a store safely, and one user's rotations all stay under the key of the refresh token
//!   they configured (configuring a new one starts a new entry).
//! - Usernames and tenants are identities, kept exactly as given but for ASCII blanks around
//!   them: no case or Unicode folding, so two that merely look alike (a Kelvin sign for a `k`, a
//!   trailing no-break space) never share a stored state. A username is sent as given, whatever
//!   its characters; a tenant that is not visible ASCII is refused (it travels in a header).
//! - Some deployments answer at `{base}/v1/oauth2/token`: set
//!   [`token_url`](AerionBuilder::token_url) for those.

#![warn(missing_docs)]

mod builder;
mod fetch;
mod provider;
mod settings;
mod wire;

pub use crate::builder::AerionBuilder;
pub use crate::settings::{
    DEFAULT_BASE_URL, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, ENV_BASE_URL, ENV_CLIENT_ID,
    ENV_CLIENT_SECRET, ENV_COMPANY_URL, ENV_ORIGIN, ENV_PASSWORD, ENV_REFRESH_TOKEN, ENV_USERNAME,
    Tenant,
};
pub use token_provider::{self, AccessToken, Error, Secret, TokenProvider};

pub use crate::provider::{Aerion, AerionUser};
