//! Bearer tokens for Aurora Solar, Aurora UK and Aerion behind one async
//! [`TokenProvider`] trait.
//!
//! This is the facade: it re-exports the core ([`token_provider`]) and each provider crate behind
//! a feature, and builds an `Arc<dyn TokenProvider>` from run-time configuration (the SPEC's
//! environment variables, or a TOML/JSON [`Config`]), so an application can pick its providers
//! without naming their types.
//!
//! ```no_run
//! use partner_auth::{ProviderKind, TokenProvider};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), partner_auth::Error> {
//! // AERION_COMPANY_URL, AERION_USERNAME, AERION_PASSWORD, ... from the environment.
//! let aerion = partner_auth::from_env(ProviderKind::Aerion)?;
//! let token = aerion.get().await?; // fetched once, then served from the cache
//! # Ok(()) }
//! ```
//!
//! ## Optional features
//!
//! All on by default; turn off the ones you do not use to keep their dependencies out.
//!
//! - `aerion`: [`aerion`] (`aerion-auth`): password and refresh grants with the tenant header.
//! - `aurora-uk`: [`aurora_uk`] (`aurora-uk-auth`): OIDC discovery and client credentials.
//! - `aurora-solar`: [`aurora_solar`] (`aurora-solar-auth`): partner-app temporary keys and
//!   Client SDK JWTs.
//!
//! Off by default:
//!
//! - `redis`: the `redis` module (`partner-auth-redis`): a token store on Redis that a fleet of
//!   replicas shares, so each principal's token is fetched once per expiry for the whole fleet.
//!   `store = "redis://…"` in a [`Config`], or `PARTNER_AUTH_STORE=redis://…` for
//!   [`from_env`] ([`open_store`]: every URL form, the password from
//!   `PARTNER_AUTH_REDIS_PASSWORD`).
//!
//! - `metrics`: the caches, the HTTP policy and the stores report through the `metrics`
//!   facade ([`metrics`]: the metric names, their labels, the `partner_auth.fetch` span;
//!   `examples/prometheus.rs` exports them to Prometheus).
//!
//! Authenticated calls with a 401 retry: [`auth::send_authorized`] for bare reqwest,
//! [`auth::AuthMiddleware`] for `reqwest-middleware` and [`auth::AuthLayer`] for a `tower`
//! client built on `http` (hyper-util, tonic; `examples/tower_hyper.rs`).

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod store;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

pub use token_provider;
#[doc(inline)]
pub use token_provider::{
    AccessToken, CacheConfig, CacheStats, CachedTokenProvider, Clock, Error, Fetch, FileStore,
    HttpClient, MemoryStore, ProviderOptions, RetryPolicy, SealKey, SealKeys, Secret, SecretSource,
    SharedClock, StoreEntry, StoreKey, TokenProvider, TokenState, TokenStore, async_trait, auth,
    provider_fn,
};

#[cfg(feature = "aerion")]
#[cfg_attr(docsrs, doc(cfg(feature = "aerion")))]
#[doc(inline)]
pub use aerion_auth as aerion;
#[cfg(feature = "aurora-solar")]
#[cfg_attr(docsrs, doc(cfg(feature = "aurora-solar")))]
#[doc(inline)]
pub use aurora_solar_auth as aurora_solar;
#[cfg(feature = "aurora-uk")]
#[cfg_attr(docsrs, doc(cfg(feature = "aurora-uk")))]
#[doc(inline)]
pub use aurora_uk_auth as aurora_uk;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
#[doc(inline)]
pub use token_provider::metrics;

pub use crate::config::{Config, ProviderConfig};
pub use crate::store::{
    REDIS_ACCEPT_EVICTION_VAR, REDIS_PASSWORD_FILE_VAR, REDIS_PASSWORD_VAR, STORE_KEY_FILE_VAR,
    STORE_KEY_VAR, STORE_VAR, StoreSpec, is_redis_url, open_store, store_keys, store_sealer,
    store_spec, url_has_password,
};

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use partner_auth_redis as redis;

/// The providers this build can make (each behind its feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProviderKind {
    /// Aerion (`aerion`).
    #[cfg(feature = "aerion")]
    #[cfg_attr(docsrs, doc(cfg(feature = "aerion")))]
    Aerion,
    /// Aurora UK (`aurora-uk`).
    #[cfg(feature = "aurora-uk")]
    #[cfg_attr(docsrs, doc(cfg(feature = "aurora-uk")))]
    AuroraUk,
    /// Aurora Solar partner-app temporary keys (`aurora-solar`).
    #[cfg(feature = "aurora-solar")]
    #[cfg_attr(docsrs, doc(cfg(feature = "aurora-solar")))]
    AuroraSolar,
    /// Aurora Solar Client SDK JWTs (`aurora-solar-sdk`).
    #[cfg(feature = "aurora-solar")]
    #[cfg_attr(docsrs, doc(cfg(feature = "aurora-solar")))]
    AuroraSolarSdk,
}

impl ProviderKind {
    /// Every kind this build has.
    pub const ALL: &'static [ProviderKind] = &[
        #[cfg(feature = "aerion")]
        ProviderKind::Aerion,
        #[cfg(feature = "aurora-uk")]
        ProviderKind::AuroraUk,
        #[cfg(feature = "aurora-solar")]
        ProviderKind::AuroraSolar,
        #[cfg(feature = "aurora-solar")]
        ProviderKind::AuroraSolarSdk,
    ];

    /// The name used on the command line and in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            #[cfg(feature = "aerion")]
            Self::Aerion => "aerion",
            #[cfg(feature = "aurora-uk")]
            Self::AuroraUk => "aurora-uk",
            #[cfg(feature = "aurora-solar")]
            Self::AuroraSolar => "aurora-solar",
            #[cfg(feature = "aurora-solar")]
            Self::AuroraSolarSdk => "aurora-solar-sdk",
        }
    }

    /// The configuration settings of this kind and the environment variable each stands for
    /// (SPEC section 5).
    pub fn settings(self) -> &'static [(&'static str, &'static str)] {
        match self {
            #[cfg(feature = "aerion")]
            Self::Aerion => &[
                ("base_url", "AERION_BASE_URL"),
                ("company_url", "AERION_COMPANY_URL"),
                ("origin", "AERION_ORIGIN"),
                ("username", "AERION_USERNAME"),
                ("password", "AERION_PASSWORD"),
                ("password_file", "AERION_PASSWORD_FILE"),
                ("refresh_token", "AERION_REFRESH_TOKEN"),
                ("refresh_token_file", "AERION_REFRESH_TOKEN_FILE"),
                ("client_id", "AERION_CLIENT_ID"),
                ("client_secret", "AERION_CLIENT_SECRET"),
                ("client_secret_file", "AERION_CLIENT_SECRET_FILE"),
            ],
            #[cfg(feature = "aurora-uk")]
            Self::AuroraUk => &[
                ("environment", "AURORA_UK_ENV"),
                ("issuer", "AURORA_UK_ISSUER"),
                ("audience", "AURORA_UK_AUDIENCE"),
                ("client_id", "AURORA_UK_CLIENT_ID"),
                ("client_secret", "AURORA_UK_CLIENT_SECRET"),
                ("client_secret_file", "AURORA_UK_CLIENT_SECRET_FILE"),
                ("client_auth", "AURORA_UK_CLIENT_AUTH"),
            ],
            #[cfg(feature = "aurora-solar")]
            Self::AuroraSolar => &[
                ("environment", "AURORA_SOLAR_ENV"),
                ("base_url", "AURORA_SOLAR_BASE_URL"),
                ("application_id", "AURORA_SOLAR_APPLICATION_ID"),
                ("application_key", "AURORA_SOLAR_APPLICATION_KEY"),
                ("application_key_file", "AURORA_SOLAR_APPLICATION_KEY_FILE"),
                ("tenant_id", "AURORA_SOLAR_TENANT_ID"),
                ("session_token", "AURORA_SOLAR_SESSION_TOKEN"),
                ("session_token_file", "AURORA_SOLAR_SESSION_TOKEN_FILE"),
            ],
            #[cfg(feature = "aurora-solar")]
            Self::AuroraSolarSdk => &[
                ("environment", "AURORA_SOLAR_ENV"),
                ("base_url", "AURORA_SOLAR_BASE_URL"),
                ("api_key", "AURORA_SOLAR_API_KEY"),
                ("api_key_file", "AURORA_SOLAR_API_KEY_FILE"),
                ("tenant_id", "AURORA_SOLAR_TENANT_ID"),
                ("user_email", "AURORA_SOLAR_USER_EMAIL"),
                ("user_first_name", "AURORA_SOLAR_USER_FIRST_NAME"),
                ("user_last_name", "AURORA_SOLAR_USER_LAST_NAME"),
            ],
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|k| k.as_str()).collect();
                Error::config(
                    "provider",
                    format!("must be one of {} (this build)", known.join(", ")),
                )
            })
    }
}

/// Builds the provider of `kind` from the SPEC section 5 environment variables. A variable that
/// is set but not UTF-8 is refused by name (not read as unset). With `PARTNER_AUTH_STORE` set,
/// the provider keeps its state in that store ([`open_store`]: a file path, or a Redis URL).
pub fn from_env(kind: ProviderKind) -> Result<Arc<dyn TokenProvider>, Error> {
    token_provider::ProcessEnv::read(|lookup| {
        from_lookup(lookup, kind, &ProviderOptions::default())
    })
}

/// Builds the provider of `kind` from variables read through `lookup` (environment variable names
/// of SPEC section 5; empty values count as unset), with shared `options`. When `options` has no
/// store and `PARTNER_AUTH_STORE` is set, that store is opened ([`open_store`]).
///
/// Like every function here that reads settings through a lookup
/// ([`token_provider::env_value`], [`open_store`]), it takes the lookup first.
// A build with no provider feature has no kind to build: the match below is empty.
#[cfg_attr(
    not(any(feature = "aerion", feature = "aurora-uk", feature = "aurora-solar")),
    allow(unused, unreachable_code)
)]
pub fn from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
    kind: ProviderKind,
    options: &ProviderOptions,
) -> Result<Arc<dyn TokenProvider>, Error> {
    // Blank counts as unset, by the same rule every provider's `from_env_with` follows.
    let lookup = |name: &str| token_provider::env_value(&lookup, name);
    // A store named by the environment, unless the options already carry one.
    let with_store;
    let options = match (&options.store, lookup(STORE_VAR)) {
        (None, Some(spec)) => {
            let mut o = options.clone();
            o.store = Some(open_store(lookup, &spec, STORE_VAR)?);
            with_store = o;
            &with_store
        }
        _ => options,
    };
    // Every builder is made the same way; they share no trait, so a macro says it once.
    macro_rules! build {
        ($builder:ty) => {
            Arc::new(
                <$builder>::from_env_with(lookup)?
                    .options(options.clone())
                    .build()?,
            )
        };
    }
    let provider: Arc<dyn TokenProvider> = match kind {
        #[cfg(feature = "aerion")]
        ProviderKind::Aerion => build!(aerion::AerionBuilder),
        #[cfg(feature = "aurora-uk")]
        ProviderKind::AuroraUk => build!(aurora_uk::AuroraUkBuilder),
        #[cfg(feature = "aurora-solar")]
        ProviderKind::AuroraSolar => build!(aurora_solar::PartnerAppBuilder),
        #[cfg(feature = "aurora-solar")]
        ProviderKind::AuroraSolarSdk => build!(aurora_solar::ClientSdkBuilder),
    };
    Ok(provider)
}
