#![doc = include_str!("../README.md")]
//!
//! # Where to start
//!
//! - [`TokenProvider`]: the trait every provider implements; [`AccessToken`] and [`Error`].
//! - [`CachedTokenProvider`] over a [`Fetch`] (or [`provider_fn`]): the cache, configured by
//!   [`CacheConfig`]; [`ProviderOptions`] carries it with the [`HttpClient`], a [`Clock`] and a
//!   [`TokenStore`] into every provider's builder.
//! - [`auth`]: authenticated calls that retry once after a 401.
//! - `metrics` (feature `metrics`): the metrics the caches, the HTTP policy and the stores
//!   report through the `metrics` facade, in one table; and the `partner_auth.fetch` span every
//!   fetch runs in (always).
//!
//! # Which requests each provider sends, and which may be repeated
//!
//! Every request states what sending it means ([`http::Repeat`]). A *safe* request is repeated
//! under the client's [`RetryPolicy`] and [`http::RetryBudget`] (timeouts, 408, 429, 5xx). A
//! request that *spends* something is repeated only when no attempt can have reached the server
//! (connection refused, a name that did not resolve, a refused TLS handshake), and
//! [`http::SendError::reached_server`] tells its caller whether it was spent.
//!
//! | provider | request | repeated? | why |
//! | --- | --- | --- | --- |
//! | Aerion | `POST /oauth2/token`, password grant | safe | the password is not used up |
//! | Aerion | `POST /oauth2/token`, refresh grant | only if never sent | Aerion rotates refresh tokens: a lost answer leaves the sent one dead; the configured one counts as spent once sent |
//! | Aerion | `GET /v1/users/me` | safe | reads |
//! | Aurora UK | `GET {issuer}.well-known/openid-configuration`, JWKS | safe | reads |
//! | Aurora UK | `POST /oauth/token`, client credentials | safe | a second grant only mints another token |
//! | Aurora Solar | `POST …/tenants/{t}/create_token`, backend | safe | the application key stays good |
//! | Aurora Solar | `POST …/tenants/{t}/create_token?session_token=…`, embedded | only if never sent | the session token is single-use; an unsent one is kept for a later attempt |
//! | Aurora Solar SDK | `GET /tenants/{t}/users` | safe | reads |
//! | Aurora Solar SDK | `POST /tenants/{t}/users/invite` | only if never sent | it creates an account |
//! | Aurora Solar SDK | `POST /tenants/{t}/users/{id}/generate_token` | only if never sent | an SDK User has one Client SDK session at a time: a second JWT can end the browser session holding the first |
//!
//! A 401 from an API call made through [`auth`] invalidates the token and is retried once with a
//! new one; tokens go only to the provider's API origins ([`auth::AuthScope`]).
//!
//! # Security
//!
//! Secrets ([`Secret`], [`AccessToken`]) have no `Display` or `Serialize`, print as
//! `[redacted]` in `Debug`, are zeroized on drop and compared in constant time. (The buffers a
//! request is encoded into on its way out, such as a form body or a header value, are ordinary
//! memory: zeroizing them would need a zeroizing HTTP stack.) No [`Error`]
//! message contains a secret, a token or a response body. Logs (`tracing`) carry hosts, paths,
//! statuses and timings only.
//!
//! A provider's own words (an error code, an explanation, a `token_type`) are quoted only from
//! known fields, cut short, stripped of control and invisible characters, and any run of 8 or
//! more characters that also occurs in a secret (or its percent- or base64-encoded form),
//! compared case-, space- and invisible-character-insensitively, is redacted
//! ([`scrub_secrets`]).

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
mod cache;
mod clock;
mod env;
mod error;
pub mod http;
#[cfg(feature = "keyed")]
mod keyed;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod observe;
mod options;
mod pace;
mod provider;
mod scrub;
pub mod seal;
mod secret;
mod secret_source;
mod setters;
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod token;

pub use async_trait::async_trait;
/// The `url` crate [`http::Request`] and the URL helpers take, so a provider of your own builds
/// its URLs with the same version: `token_provider::url::Url`.
pub use url;

pub use crate::cache::{CacheConfig, CacheStats, CachedTokenProvider};
pub use crate::clock::{
    Clock, ClockOffset, ManualClock, SharedClock, SystemClock, TokioClock, system_clock,
};
pub use crate::env::{EnvVars, ProcessEnv, env_choice, env_value};
pub use crate::error::{BoxError, Error, RotatedRefusal, SharedSource, error_chain};
pub use crate::http::{HttpClient, HttpClientBuilder, RetryPolicy};
#[cfg(feature = "keyed")]
#[cfg_attr(docsrs, doc(cfg(feature = "keyed")))]
pub use crate::keyed::{CachedPrincipal, KeyedCache, KeyedConfig};
pub use crate::options::ProviderOptions;
#[cfg(feature = "keyed")]
#[cfg_attr(docsrs, doc(cfg(feature = "keyed")))]
pub use crate::pace::RateLimit;
#[doc(hidden)]
pub use crate::provider::OrMissing;
pub use crate::provider::{
    AsDynTokenProvider, Fetch, FnFetch, KeyedFetch, TokenFuture, TokenProvider, provider_fn,
};
pub use crate::scrub::scrub_secrets;
pub use crate::seal::{KeyFingerprint, SealKey, SealKeys};
pub use crate::secret::Secret;
pub use crate::secret_source::{MAX_SECRET_FILE_SIZE, SecretSource};
pub use crate::store::{
    FileStore, KeyLocks, ListedEntry, MemoryStore, Presenting, REBASE_TOLERANCE, RefreshDigest,
    Refusal, StoreEntry, StoreKey, StoreLock, StoreRecord, TokenStore, decode_entry, decode_record,
    encode_entry, encode_record,
};
pub use crate::token::{
    AccessToken, AccessTokenBuilder, MAX_EXPIRY_UNIX_SECS, TokenState, is_b64token, max_expiry,
};
