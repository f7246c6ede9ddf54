#![doc = include_str!("../README.md")]
//!
//! # Where to start
//!
//! - [`TokenProvider`]: the trait every provider implements; [`AccessToken`] and [`Error`].
//! - [`CachedTokenProvider`] over a [`Fetch`] (or [`provider_fn`]): the cache, configured by
//!   [`CacheConfig`]; [`ProviderOptions`] carries it with the [`HttpClient`], a [`Clock`] and a
//!   [`TokenStore`] into every provider's builder.
//! - [`auth`]: authenticated calls that retry once after a 401.
//!
//! # Security
//!
//! Secrets ([`Secret`], [`AccessToken`]) have no `Display` or `Serialize`, print as
//! `[redacted]` in `Debug`, are zeroized on drop and compared in constant time. (The buffers a
//! request is encoded into on its way out, such as a form body or a header value, are ordinary
//! memory: zeroizing them would need a zeroizing HTTP stack.) No [`Error`]
//! message contains a secret, a token or a response body. Logs (`tracing`) carry hosts, paths,
//! statuses and timings only.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
mod cache;
mod clock;
mod error;
pub mod http;
mod options;
mod provider;
mod secret;
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod token;

pub use async_trait::async_trait;

pub use crate::cache::{CacheConfig, CacheStats, CachedTokenProvider};
pub use crate::clock::{Clock, ManualClock, SharedClock, SystemClock, TokioClock, system_clock};
pub use crate::error::{BoxError, Error, error_chain, scrub_secrets};
pub use crate::http::{HttpClient, HttpClientBuilder, RetryPolicy};
pub use crate::options::ProviderOptions;
pub use crate::provider::{Fetch, FnFetch, TokenProvider, provider_fn};
pub use crate::secret::Secret;
pub use crate::store::{FileStore, MemoryStore, StoreKey, StoreLock, TokenStore};
pub use crate::token::{
    AccessToken, AccessTokenBuilder, MAX_EXPIRY_UNIX_SECS, TokenState, is_b64token, max_expiry,
};

/// The value of the configuration variable `name` as `lookup` reports it, with an empty or
/// all-blank value counting as unset.
///
/// Every provider's `from_env_with` and the facade read their variables through this, so they
/// agree on what "unset" means. A value that is set is returned as it is (not trimmed): a
/// builder that wants to refuse stray whitespace, or a password that has some, sees it.
///
/// ```
/// let lookup = |name: &str| match name {
///     "SET" => Some(" value ".to_owned()),
///     "BLANK" => Some(" \t\n".to_owned()),
///     _ => None,
/// };
/// assert_eq!(token_provider::env_value(&lookup, "SET").as_deref(), Some(" value "));
/// assert_eq!(token_provider::env_value(&lookup, "BLANK"), None);
/// assert_eq!(token_provider::env_value(&lookup, "MISSING"), None);
/// ```
pub fn env_value<F>(lookup: &F, name: &str) -> Option<String>
where
    F: Fn(&str) -> Option<String> + ?Sized,
{
    lookup(name).filter(|value| !value.trim().is_empty())
}
