//! What [`PartnerApp`](crate::PartnerApp) and [`ClientSdk`](crate::ClientSdk) are both made
//! of: the connection their fetches share, a bounded map with one cached provider per principal
//! (a tenant, a user), and an optional default principal that makes the facade itself a
//! `TokenProvider`. Each facade is a thin instance of [`Keyed`]; each handle it gives out
//! ([`TenantKey`](crate::TenantKey), [`UserJwt`](crate::UserJwt)) gets its common methods from
//! [`principal_handle!`].

use std::fmt;
use std::sync::Arc;

use token_provider::{
    CachedPrincipal, Error, HttpClient, KeyedCache, KeyedFetch, ProviderOptions, SecretSource,
    SharedClock,
};
use url::Url;

use crate::environment::{Environment, Target, default_rate_limit};

/// What every fetch of one facade needs to send a request: where, with which key, through
/// which client (paced to Aurora Solar's limit per key unless the options say otherwise).
pub(crate) struct Conn {
    pub(crate) target: Target,
    /// The key every request carries: the application key or the REST API key, a value or a
    /// file read again when it changes and after the provider refuses it.
    pub(crate) key: SecretSource,
    pub(crate) http: HttpClient,
    /// The clock the cache judges expiries by: what a provider's absolute expiry is read on.
    pub(crate) clock: SharedClock,
}

impl Conn {
    pub(crate) fn new(
        target: Target,
        key: SecretSource,
        options: &ProviderOptions,
    ) -> Result<Self, Error> {
        let http = options.resolved_http_paced(Some(default_rate_limit()))?;
        let clock = options.resolved_clock();
        Ok(Self {
            target,
            key,
            http,
            clock,
        })
    }

    /// The environment's label, for store keys and `Debug`.
    pub(crate) fn environment(&self) -> &str {
        &self.target.label
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("environment", &self.target.label)
            .finish_non_exhaustive()
    }
}

/// One facade's fetcher: its connection and the handle it gives out per principal.
pub(crate) trait Flow: KeyedFetch + Sized {
    /// The public handle of one principal.
    type Handle: Clone + fmt::Debug;

    fn handle(cache: CachedPrincipal<Self>) -> Self::Handle;

    fn conn(&self) -> &Conn;
}

/// A keyed facade: the principals' map and the default principal, if any. Cheap to clone;
/// clones share the map.
pub(crate) struct Keyed<F: Flow> {
    map: KeyedCache<F>,
    default: Option<F::Handle>,
}

impl<F: Flow> Clone for Keyed<F> {
    fn clone(&self) -> Self {
        Self {
            map: self.map.clone(),
            default: self.default.clone(),
        }
    }
}

impl<F: Flow> Keyed<F> {
    pub(crate) fn new(map: KeyedCache<F>) -> Self {
        Self { map, default: None }
    }

    pub(crate) fn set_default(&mut self, default: Option<F::Handle>) {
        self.default = default;
    }

    pub(crate) fn fetcher(&self) -> &F {
        self.map.fetcher()
    }

    pub(crate) fn conn(&self) -> &Conn {
        self.fetcher().conn()
    }

    pub(crate) fn environment(&self) -> Option<Environment> {
        self.conn().target.preset
    }

    pub(crate) fn base_url(&self) -> &Url {
        &self.conn().target.base
    }

    /// The handle of the principal named `given`: found as given, without a lock over the map
    /// and without allocating, when it is cached; otherwise `check` turns what was given into
    /// the map's key and the principal to insert under it (or refuses it).
    ///
    /// Only checked keys are ever inserted, so a name found as given needs no check; a name
    /// spelled otherwise (blanks around it, other case) is found by the slow path.
    #[inline]
    pub(crate) fn handle<P>(
        &self,
        given: &str,
        check: impl FnOnce() -> Result<(String, P), Error>,
    ) -> Result<F::Handle, Error>
    where
        P: FnOnce(Arc<str>) -> F::Principal,
    {
        if let Some(cached) = self.map.get(given) {
            return Ok(F::handle(cached));
        }
        let (key, principal) = check()?;
        Ok(F::handle(self.map.get_or_insert_with(&key, principal)))
    }

    /// Drops the principal under `key` from the map; whether there was one.
    pub(crate) fn forget(&self, key: &str) -> bool {
        self.map.remove(key)
    }

    /// How many principals the map holds now.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn default(&self) -> Option<&F::Handle> {
        self.default.as_ref()
    }

    /// `Debug` of the facade `name`: its environment, its own id (`id` = (field, value)), the
    /// default principal and how many `principals` the map holds.
    pub(crate) fn debug(
        &self,
        f: &mut fmt::Formatter<'_>,
        name: &str,
        id: (&str, &str),
        principals: &str,
    ) -> fmt::Result {
        f.debug_struct(name)
            .field("environment", &self.conn().environment())
            .field(id.0, &id.1)
            .field("default", &self.default)
            .field(principals, &self.len())
            .finish_non_exhaustive()
    }
}

/// A handle type of a keyed facade, written whole: the struct (documented by the attributes
/// given first) holding its `cache: CachedPrincipal<$fetch>`, the [`Flow`] impl of its fetcher
/// (which must have a `conn` field), the methods every handle has (`get`, `cached`, `stats`),
/// its `Debug` (the fields `shows` lists, each with the handle's method that reads it, then
/// `cached` and `stats`) and its `TokenProvider` impl. `$token` names what it caches,
/// `$principal` whose it is.
macro_rules! principal_handle {
    (
        $(#[$attr:meta])*
        $handle:ident for $fetch:ty,
        token: $token:literal,
        principal: $principal:literal,
        shows: [$($field:literal => $method:ident),+ $(,)?] $(,)?
    ) => {
        $(#[$attr])*
        #[derive(Clone)]
        pub struct $handle {
            cache: token_provider::CachedPrincipal<$fetch>,
        }

        impl ::std::fmt::Debug for $handle {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($handle))
                    $(.field($field, &self.$method()))+
                    .field("cached", &self.cache.cached())
                    .field("stats", &self.cache.stats())
                    .finish()
            }
        }

        impl $crate::facade::Flow for $fetch {
            type Handle = $handle;

            fn handle(cache: token_provider::CachedPrincipal<Self>) -> $handle {
                $handle { cache }
            }

            fn conn(&self) -> &$crate::facade::Conn {
                &self.conn
            }
        }

        impl $handle {
            /// What [`TokenProvider::token`](token_provider::TokenProvider::token) answers, as
            /// [`TokenProvider::get`](token_provider::TokenProvider::get) does: ready at once,
            /// with nothing allocated, when the cached token is fresh.
            pub fn get(&self) -> token_provider::TokenFuture<'_> {
                self.cache.get()
            }

            #[doc = concat!("The cached ", $token, ", if any, without fetching.")]
            pub fn cached(&self) -> Option<token_provider::AccessToken> {
                self.cache.cached()
            }

            #[doc = concat!(
                "The ", $principal, "'s counters (`hits` counts every ", $principal,
                "'s hits: see [`CachedPrincipal::stats`](token_provider::CachedPrincipal::stats))."
            )]
            pub fn stats(&self) -> token_provider::CacheStats {
                self.cache.stats()
            }
        }

        token_provider::forward_token_provider!($handle => |this| &this.cache);
    };
}

pub(crate) use principal_handle;

/// The methods a facade has whatever its principals (`builder`, `from_env`, `environment`,
/// `base_url`), over its [`Keyed`] field; `$what` finishes "Starts …".
macro_rules! facade_methods {
    ($facade:ident over $field:ident, builder: $builder:ident, what: $what:literal) => {
        impl $facade {
            #[doc = concat!("Starts ", $what, ".")]
            pub fn builder() -> $builder {
                $builder::default()
            }

            #[doc = concat!(
                                "A provider configured from the process environment (see [`",
                                stringify!($builder),
                                "::from_env_with`] for the variables)."
                            )]
            pub fn from_env() -> Result<Self, token_provider::Error> {
                $builder::from_env()?.build()
            }

            /// The preset environment, or `None` when a custom base URL is in use.
            pub fn environment(&self) -> Option<$crate::Environment> {
                self.$field.environment()
            }

            /// The base URL requests go to.
            pub fn base_url(&self) -> &url::Url {
                self.$field.base_url()
            }
        }
    };
}

pub(crate) use facade_methods;

/// The `environment` and `base_url` setters of both builders, over their fields of those names
/// (which [`Target::resolve`] turns into where requests go).
macro_rules! target_setters {
    () => {
        token_provider::builder_setters! {
            /// The environment (`AURORA_SOLAR_ENV`). Required unless a base URL is set.
            environment: $crate::Environment,
            /// A custom base URL (`AURORA_SOLAR_BASE_URL`), replacing the environment's host: a
            /// proxy, an emulator, a test server. `https`, or `http` to a loopback host only.
            base_url: impl Into<String>,
        }
    };
}

pub(crate) use target_setters;
