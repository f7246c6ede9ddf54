//! [`provider_options_setters!`](crate::provider_options_setters): the setters every provider
//! builder shares, written once; [`builder_setters!`](crate::builder_setters): the shape of a
//! builder's own plain setters, written once.

/// Writes a builder's plain setters into its `impl` block: each `name: Type` (or
/// `name: impl Into<Type>`) becomes `pub fn name(mut self, name: ..) -> Self` that stores the
/// value (converted) in the builder's field of the same name, in `Some` when the field is an
/// `Option`. The doc comments written above each one are its documentation. Begun with
/// `in field:`, the setters store into the fields of the builder's `field` instead (a builder
/// over a whole configuration struct).
///
/// ```
/// use std::time::Duration;
/// use token_provider::builder_setters;
///
/// /// A builder of a provider of one's own.
/// #[derive(Default)]
/// pub struct MyBuilder {
///     base_url: Option<String>,
///     timeout: Option<Duration>,
///     attempts: u32,
/// }
///
/// impl MyBuilder {
///     builder_setters! {
///         /// The API base.
///         base_url: impl Into<String>,
///         /// How long a request may take.
///         timeout: Duration,
///         /// How often a request is sent at most.
///         attempts: u32,
///     }
/// }
///
/// let builder = MyBuilder::default()
///     .base_url("https://api.example")
///     .timeout(Duration::ZERO)
///     .attempts(3);
/// assert_eq!(builder.base_url.as_deref(), Some("https://api.example"));
/// assert_eq!(builder.timeout, Some(Duration::ZERO));
/// assert_eq!(builder.attempts, 3);
///
/// /// A builder over a whole configuration.
/// #[derive(Default)]
/// pub struct ServerBuilder {
///     config: ServerConfig,
/// }
///
/// #[derive(Default)]
/// pub struct ServerConfig {
///     port: u16,
/// }
///
/// impl ServerBuilder {
///     builder_setters! {
///         in config:
///         /// The port to listen on.
///         port: u16,
///     }
/// }
///
/// assert_eq!(ServerBuilder::default().port(8080).config.port, 8080);
/// ```
#[macro_export]
macro_rules! builder_setters {
    (@on $on:tt) => {};
    (@on $on:tt $(#[$doc:meta])* $name:ident: impl Into<$ty:ty> $(, $($rest:tt)*)?) => {
        $(#[$doc])*
        pub fn $name(mut self, $name: impl ::core::convert::Into<$ty>) -> Self {
            let $name: $ty = $name.into();
            $crate::builder_setters!(@store self $on $name);
            self
        }

        $($crate::builder_setters!(@on $on $($rest)*);)?
    };
    (@on $on:tt $(#[$doc:meta])* $name:ident: $ty:ty $(, $($rest:tt)*)?) => {
        $(#[$doc])*
        pub fn $name(mut self, $name: $ty) -> Self {
            $crate::builder_setters!(@store self $on $name);
            self
        }

        $($crate::builder_setters!(@on $on $($rest)*);)?
    };
    (@on $on:tt $($other:tt)*) => {
        ::core::compile_error!("builder_setters!: expected `name: Type` or `name: impl Into<Type>`");
    };
    (@store $this:ident [$($on:ident)?] $name:ident) => {
        $this$(.$on)?.$name = ::core::convert::From::from($name);
    };
    (in $on:ident: $($rest:tt)*) => {
        $crate::builder_setters!(@on [$on] $($rest)*);
    };
    ($($rest:tt)*) => {
        $crate::builder_setters!(@on [] $($rest)*);
    };
}

/// Writes the setters every provider builder shares into the builder's `impl` block:
/// `http_client`, `clock`, `cache_config`, `store`, `rate_limit` (with the feature `keyed`) and
/// `options`, each filling the builder's `options: ProviderOptions` field, so all providers take them the same way and
/// [`ProviderOptions`](crate::ProviderOptions) resolves them in one place.
///
/// `store_key` finishes the `store` setter's documentation: the key this provider's state is kept
/// under.
///
/// ```
/// use token_provider::{ProviderOptions, provider_options_setters};
///
/// /// A builder of a provider of one's own.
/// #[derive(Default)]
/// pub struct MyBuilder {
///     options: ProviderOptions,
/// }
///
/// impl MyBuilder {
///     provider_options_setters!(store_key: "`my-provider|<user>`");
/// }
///
/// let builder = MyBuilder::default().options(ProviderOptions::new());
/// # let _ = builder;
/// ```
#[macro_export]
macro_rules! provider_options_setters {
    (store_key: $store_key:literal) => {
        /// The HTTP client (default: the core's policy on this builder's clock).
        pub fn http_client(mut self, client: $crate::HttpClient) -> Self {
            self.options.http = ::core::option::Option::Some(client);
            self
        }

        /// The clock for expiry decisions (default: the cache configuration's, else the system
        /// clock).
        pub fn clock(mut self, clock: $crate::SharedClock) -> Self {
            self.options.clock = ::core::option::Option::Some(clock);
            self
        }

        /// The cache behaviour (default: `CacheConfig::default()`). A clock or a store set on
        /// this builder replaces the one in `config`; set a store with `store`, since this
        /// provider picks the key each cache is kept under.
        pub fn cache_config(mut self, config: $crate::CacheConfig) -> Self {
            self.options.cache = ::core::option::Option::Some(config);
            self
        }

        #[doc = concat!("Keeps this provider's state in `store`, under ", $store_key, ".")]
        pub fn store(mut self, store: ::std::sync::Arc<dyn $crate::TokenStore>) -> Self {
            self.options.store = ::core::option::Option::Some(store);
            self
        }

        $crate::__rate_limit_setter!();

        /// The HTTP client, clock, cache behaviour, store and rate limit at once (replacing any
        /// set before).
        pub fn options(mut self, options: $crate::ProviderOptions) -> Self {
            self.options = options;
            self
        }
    };
}

/// The `rate_limit` setter of [`provider_options_setters!`](crate::provider_options_setters):
/// defined by this crate's `keyed` feature, since the macro expands in a provider's crate, where
/// a `#[cfg(feature = ..)]` would ask about that crate's features instead.
#[cfg(feature = "keyed")]
#[doc(hidden)]
#[macro_export]
macro_rules! __rate_limit_setter {
    () => {
        /// The pace of this provider's requests: `Some(limit)`, or `None` for no pacing. Share
        /// one [`RateLimit`]($crate::RateLimit) among the providers that use one credential.
        /// Default: 90 requests per minute per key for Aurora Solar (its documented limit),
        /// none for the others.
        pub fn rate_limit(
            mut self,
            limit: impl ::core::convert::Into<::core::option::Option<$crate::RateLimit>>,
        ) -> Self {
            self.options.rate_limit = ::core::option::Option::Some(limit.into());
            self
        }
    };
}

/// Without the `keyed` feature there is no `RateLimit`, and so no setter.
#[cfg(not(feature = "keyed"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __rate_limit_setter {
    () => {};
}
