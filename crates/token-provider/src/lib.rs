//! The core of partner-auth: one async [`TokenProvider`] trait, the [`AccessToken`] it returns,
//! the [`Error`] it fails with, the [`CachedTokenProvider`] that makes any [`Fetch`] a provider
//! worth calling before every request, and the [`HttpClient`] policy every provider shares.
//!
//! Provider crates (`aerion-auth`, `aurora-uk-auth`, `aurora-solar-auth`) build on this crate;
//! applications usually depend on one of them, or on the `partner-auth` facade, and hold an
//! `Arc<dyn TokenProvider>`.
//!
//! ```
//! use std::sync::Arc;
//! use token_provider::{provider_fn, AccessToken, CachedTokenProvider, TokenProvider};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), token_provider::Error> {
//! let provider: Arc<dyn TokenProvider> = Arc::new(CachedTokenProvider::new(provider_fn(
//!     "example",
//!     || async { Ok(AccessToken::new("a-token")) },
//! )));
//! let token = provider.token().await?;
//! // Debug never shows the secret.
//! assert!(!format!("{token:?}").contains("a-token"));
//! # Ok(())
//! # }
//! ```
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

pub mod auth;
mod cache;
mod clock;
mod env;
mod error;
pub mod http;
mod options;
mod provider;
mod scrub;
mod secret;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod token;

pub use async_trait::async_trait;

pub use crate::cache::{CacheConfig, CacheStats, CachedTokenProvider};
pub use crate::clock::{Clock, ManualClock, SharedClock, SystemClock, TokioClock, system_clock};
pub use crate::env::{ProcessEnv, env_value};
pub use crate::error::{BoxError, Error, error_chain};
pub use crate::http::{HttpClient, HttpClientBuilder, RetryPolicy};
pub use crate::options::ProviderOptions;
pub use crate::provider::{Fetch, FnFetch, TokenProvider, provider_fn};
pub use crate::scrub::scrub_secrets;
pub use crate::secret::Secret;
pub use crate::store::{FileStore, MemoryStore, StoreKey, StoreLock, TokenStore};
pub use crate::token::{AccessToken, AccessTokenBuilder, TokenState};
