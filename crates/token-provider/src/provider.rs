//! The [`TokenProvider`] trait and the [`Fetch`] seam the cache wraps.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;

use crate::{AccessToken, Error, Secret, TokenState};

/// Something that hands out bearer tokens: the one trait callers depend on.
///
/// Share it as `Arc<dyn TokenProvider>`. Every provider in this workspace returns a cached
/// implementation, so asking for the token before every request is the intended use: call
/// [`get`](TokenProvider::get), which answers a fresh cached token at once, without a lock or an
/// allocation (through [`fresh`](TokenProvider::fresh)), and otherwise waits for
/// [`token`](TokenProvider::token). `token` itself returns a boxed future (the price of an async
/// method on a trait object), so it allocates on every call.
///
/// Implementing the trait is one async method, `token`; a provider that can answer without
/// waiting also implements `fresh`.
///
/// # Implementing it for a provider of your own
///
/// Write the fetch (one HTTP exchange) and let [`CachedTokenProvider`](crate::CachedTokenProvider)
/// do expiry, single-flight, background refresh, backoff and invalidation:
///
/// ```
/// use std::time::Duration;
/// use token_provider::{
///     async_trait, AccessToken, CachedTokenProvider, Clock, Error, Fetch, SystemClock,
///     TokenProvider, TokenState,
/// };
///
/// #[derive(Debug)]
/// struct StaticIssuer;
///
/// #[async_trait]
/// impl Fetch for StaticIssuer {
///     async fn fetch(&self, _previous: Option<&TokenState>) -> Result<TokenState, Error> {
///         // A real provider sends a request through `token_provider::HttpClient` here.
///         let token = AccessToken::builder("issued-token")
///             .expires_in(SystemClock.now(), Duration::from_secs(3600))
///             .build();
///         Ok(token.into())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let provider = CachedTokenProvider::new(StaticIssuer);
/// let token = provider.get().await?;
/// assert_eq!(token.token_type(), "Bearer");
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait TokenProvider: AsDynTokenProvider + Send + Sync + fmt::Debug {
    /// A token that is valid now: from the cache when fresh, fetched otherwise.
    ///
    /// This is what a provider implements; callers ask with [`get`](TokenProvider::get), which
    /// answers a fresh token without boxing a future.
    async fn token(&self) -> Result<AccessToken, Error>;

    /// The token, if one is fresh now (a cached token before its refresh point), without waiting,
    /// fetching or starting anything; `None` means ask [`token`](TokenProvider::token). The
    /// default is `None`, for providers that hold nothing.
    fn fresh(&self) -> Option<AccessToken> {
        None
    }

    /// What [`token`](TokenProvider::token) answers, served from [`fresh`](TokenProvider::fresh)
    /// when it can: a cache hit through `Arc<dyn TokenProvider>` then allocates nothing, while
    /// `token` boxes its future on every call. Call this one.
    ///
    /// The future decides at its first poll, as an `async fn` would: it asks `fresh`, then, if
    /// that has nothing, waits for `token`. One created while the token was fresh and awaited
    /// after it expired therefore fetches, rather than answering the expired token.
    ///
    /// There is nothing to override here: a provider that can answer without waiting implements
    /// `fresh`. Wrappers (`Arc<dyn TokenProvider>`, `Box<dyn ..>`, and every
    /// [`forward_token_provider!`](crate::forward_token_provider) type) answer `get` through
    /// their own `fresh` and `token` rather than the inner provider's `get`, so that a hit
    /// through a trait object makes one dynamic call, not two; an override that answered
    /// otherwise than `fresh`-then-`token` would be bypassed there.
    #[inline]
    fn get(&self) -> TokenFuture<'_> {
        TokenFuture::lazy(self.as_dyn_token_provider())
    }

    /// Tells the provider that a server refused `rejected` (HTTP 401). A cached provider drops
    /// the token only if it is still the one cached, so a late report never discards a newer
    /// token. The default does nothing.
    fn invalidate(&self, rejected: &AccessToken) {
        let _ = rejected;
    }

    /// Why the state behind the last token could not be saved to the provider's store, if it
    /// could not. The token is good; what a restart would lose (a rotated refresh token) is at
    /// risk, so a caller that is about to exit (a CLI) or that reports health should ask. The
    /// default (a provider with no store) is `None`.
    fn store_error(&self) -> Option<Error> {
        None
    }

    /// Forgets this principal's cached and stored state (its refresh token with it); whether the
    /// store held an entry. The default (a provider with no state) does nothing.
    async fn forget(&self) -> Result<bool, Error> {
        Ok(false)
    }
}

/// The upcast to `&dyn TokenProvider` that every provider has (a blanket implementation, so
/// there is nothing to implement): it lets [`TokenProvider::get`], a provided method, hold any
/// provider, trait objects included, in the [`TokenFuture`] it returns.
pub trait AsDynTokenProvider {
    /// This provider as a trait object.
    fn as_dyn_token_provider(&self) -> &dyn TokenProvider;
}

impl<P: TokenProvider> AsDynTokenProvider for P {
    #[inline]
    fn as_dyn_token_provider(&self) -> &dyn TokenProvider {
        self
    }
}

/// The future [`TokenProvider::get`] returns: ready at its first poll on a cache hit (nothing
/// allocated), the provider's boxed [`token`](TokenProvider::token) future otherwise.
///
/// It decides at its first poll, as an `async fn` would: one created while the token was fresh
/// and awaited after it expired fetches, rather than answering the expired token.
#[must_use = "a future does nothing unless awaited"]
pub struct TokenFuture<'a>(Get<'a>);

type BoxedToken<'a> = Pin<Box<dyn Future<Output = Result<AccessToken, Error>> + Send + 'a>>;

impl<'a> TokenFuture<'a> {
    /// A future that asks `source` at its first poll: [`fresh`](TokenProvider::fresh), then,
    /// if that has nothing, [`token`](TokenProvider::token).
    #[inline]
    pub(crate) fn lazy(source: &'a dyn TokenProvider) -> Self {
        Self(Get::Lazy(source))
    }
}

enum Get<'a> {
    /// Not polled yet: the provider is asked at the first poll.
    Lazy(&'a dyn TokenProvider),
    /// The first poll found no fresh token: the provider's `token` future.
    Waiting(BoxedToken<'a>),
    /// Answered at the first poll.
    Done,
}

impl Future for TokenFuture<'_> {
    type Output = Result<AccessToken, Error>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fresh = match &mut self.0 {
            Get::Lazy(source) => source.fresh(),
            Get::Waiting(future) => return future.as_mut().poll(cx),
            Get::Done => panic!("`TokenFuture` polled after completion"),
        };
        match fresh {
            Some(token) => {
                self.0 = Get::Done;
                Poll::Ready(Ok(token))
            }
            None => self.wait(cx),
        }
    }
}

impl<'a> TokenFuture<'a> {
    /// The first poll found no fresh token: from now on, the provider's waiting path.
    #[cold]
    fn wait(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<AccessToken, Error>> {
        let mut waiting: BoxedToken<'a> = match self.0 {
            Get::Lazy(source) => source.token(),
            Get::Waiting(_) | Get::Done => unreachable!("only a first poll asks"),
        };
        let poll = waiting.as_mut().poll(cx);
        self.0 = Get::Waiting(waiting);
        poll
    }
}

impl fmt::Debug for TokenFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Get::Lazy(_) => "TokenFuture::Lazy",
            Get::Waiting(_) => "TokenFuture::Waiting",
            Get::Done => "TokenFuture::Done",
        })
    }
}

/// Implements [`TokenProvider`] for a type (`Debug + Send + Sync`, as the trait asks) by
/// forwarding every method to a provider it holds:
/// `forward_token_provider!(MyProvider => |this| &this.inner);`, or with generics,
/// `forward_token_provider!([P: TokenProvider + ?Sized] Wrapper<P> => |this| &this.0);`.
///
/// A provider that may hold none (a map of principals with an optional default one) names the
/// error to answer `token` with when it holds none, after `, or`:
/// `forward_token_provider!(Map => |this| this.default.as_ref(), or Error::config("DEFAULT", "is required"));`
/// (then `invalidate` does nothing, `store_error` is `None` and `forget` is `Ok(false)`).
///
/// The one definition of a forwarding provider: a method the trait gains later is forwarded by
/// every wrapper at once, rather than left at its default by one that was forgotten.
///
/// A hit through a wrapper is one `fresh` call per layer, with nothing allocated; a miss asks
/// each layer's `fresh` and boxes each layer's `token` future on its way to the fetch.
///
/// ```
/// use std::sync::Arc;
/// use token_provider::{
///     AccessToken, CachedTokenProvider, TokenProvider, forward_token_provider, provider_fn,
/// };
///
/// /// A provider with a name of its own, over any other.
/// #[derive(Debug)]
/// struct Named {
///     inner: Arc<dyn TokenProvider>,
/// }
///
/// forward_token_provider!(Named => |this| &*this.inner);
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let inner = CachedTokenProvider::new(provider_fn("static", || async {
///     Ok(AccessToken::new("t"))
/// }));
/// let named = Named { inner: Arc::new(inner) };
/// assert_eq!(named.get().await.unwrap().secret().expose_secret(), "t");
/// # }
/// ```
#[macro_export]
macro_rules! forward_token_provider {
    ([$($generics:tt)*] $ty:ty => |$this:ident| $target:expr) => {
        #[$crate::async_trait]
        impl<$($generics)*> $crate::TokenProvider for $ty {
            async fn token(
                &self,
            ) -> ::core::result::Result<$crate::AccessToken, $crate::Error> {
                let $this = self;
                // `get`: the target answers a hit without boxing a second future.
                $crate::TokenProvider::get($target).await
            }

            fn fresh(&self) -> ::core::option::Option<$crate::AccessToken> {
                let $this = self;
                $crate::TokenProvider::fresh($target)
            }

            fn invalidate(&self, rejected: &$crate::AccessToken) {
                let $this = self;
                $crate::TokenProvider::invalidate($target, rejected)
            }

            fn store_error(&self) -> ::core::option::Option<$crate::Error> {
                let $this = self;
                $crate::TokenProvider::store_error($target)
            }

            async fn forget(&self) -> ::core::result::Result<bool, $crate::Error> {
                let $this = self;
                $crate::TokenProvider::forget($target).await
            }
        }
    };
    ([$($generics:tt)*] $ty:ty => |$this:ident| $target:expr, or $missing:expr) => {
        $crate::forward_token_provider!(
            [$($generics)*] $ty => |$this| &$crate::OrMissing($target, || $missing)
        );
    };
    ($ty:ty => |$this:ident| $target:expr, or $missing:expr) => {
        $crate::forward_token_provider!([] $ty => |$this| $target, or $missing);
    };
    ($ty:ty => |$this:ident| $target:expr) => {
        $crate::forward_token_provider!([] $ty => |$this| $target);
    };
}

/// A provider that may be missing, and the error [`token`](TokenProvider::token) answers when
/// it is: what the `, or` form of [`forward_token_provider!`](crate::forward_token_provider)
/// forwards to. Missing, `fresh` and `store_error` are `None`, `invalidate` does nothing and
/// `forget` is `Ok(false)`.
#[doc(hidden)]
pub struct OrMissing<'a, P: ?Sized, M>(pub Option<&'a P>, pub M);

impl<P: fmt::Debug + ?Sized, M> fmt::Debug for OrMissing<'_, P, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OrMissing")
            .field(&self.0)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<P, M> TokenProvider for OrMissing<'_, P, M>
where
    P: TokenProvider + ?Sized,
    M: Fn() -> Error + Send + Sync,
{
    // Asked after `fresh` found nothing (the forwarding `get` asks it first): straight to the
    // provider's `token`, so a miss asks its `fresh` once.
    async fn token(&self) -> Result<AccessToken, Error> {
        match self.0 {
            Some(provider) => provider.token().await,
            None => Err((self.1)()),
        }
    }

    fn fresh(&self) -> Option<AccessToken> {
        self.0.and_then(TokenProvider::fresh)
    }

    fn invalidate(&self, rejected: &AccessToken) {
        if let Some(provider) = self.0 {
            provider.invalidate(rejected);
        }
    }

    fn store_error(&self) -> Option<Error> {
        self.0.and_then(TokenProvider::store_error)
    }

    async fn forget(&self) -> Result<bool, Error> {
        match self.0 {
            Some(provider) => provider.forget().await,
            None => Ok(false),
        }
    }
}

forward_token_provider!([P: TokenProvider + ?Sized] Arc<P> => |this| &**this);
forward_token_provider!([P: TokenProvider + ?Sized] Box<P> => |this| &**this);
forward_token_provider!([P: TokenProvider + ?Sized] &P => |this| &**this);

/// One trip to the provider for a new token: what a provider implements and the cache calls.
///
/// `previous` is the last state the cache (or its store) held, so a provider with rotating
/// refresh tokens can refresh instead of logging in again. Return the new state; a provider that
/// got no new refresh token should carry the old one forward.
#[async_trait]
pub trait Fetch: Send + Sync + fmt::Debug + 'static {
    /// Fetches a new token.
    async fn fetch(&self, previous: Option<&TokenState>) -> Result<TokenState, Error>;

    /// The key this fetcher's state is kept under in a [`TokenStore`](crate::TokenStore): one
    /// per principal (provider, environment, tenant, user or client id). The cache asks when it
    /// goes to the store; a cache given a store whose fetcher names no key (the default `None`)
    /// fails its fetches with [`Error::Config`] rather than share one entry among principals.
    fn store_key(&self) -> Option<crate::StoreKey> {
        None
    }

    /// Whether a fetch from scratch (`previous` = `None`) may run without the store's lock when
    /// the store cannot be reached ([`Error::StoreUnavailable`]): true only when sending the
    /// grant again spends nothing (client credentials, a password grant, an application key),
    /// so replicas that each fetch once do no harm. The default, `false`, suits grants that
    /// spend a single-use or rotating credential (a session token, a refresh token): such a
    /// cache reports the store error instead of fetching outside the fleet's lock.
    fn repeatable_without_store(&self) -> bool {
        false
    }

    /// The refresh token a fetch from scratch (`previous` = `None`) would present, if any: one
    /// configured by the user, not yet presented by this process. The cache then records its
    /// presentation in the store like any other's, so a fleet started together on one
    /// configured refresh token presents it once. The default is `None`.
    fn initial_refresh_token(&self) -> Option<Secret> {
        None
    }
}

/// The fetch of a `KeyedCache` (feature `keyed`): one fetcher for many principals (the tenants
/// of one partner app, the users of one Client SDK key), each cached on its own.
///
/// What is the same for every principal (the credential, the HTTP client) lives in the fetcher,
/// once; what differs (a tenant id, a user) is the [`Principal`](Self::Principal), kept with
/// that principal's cache entry.
#[async_trait]
pub trait KeyedFetch: Send + Sync + fmt::Debug + 'static {
    /// What one principal's fetch needs besides the fetcher.
    type Principal: Send + Sync + fmt::Debug + 'static;

    /// Fetches a new token for `principal` (see [`Fetch::fetch`] for `previous`).
    async fn fetch(
        &self,
        principal: &Self::Principal,
        previous: Option<&TokenState>,
    ) -> Result<TokenState, Error>;

    /// The key `principal`'s state is kept under in a store (see [`Fetch::store_key`]).
    fn store_key(&self, principal: &Self::Principal) -> Option<crate::StoreKey> {
        let _ = principal;
        None
    }

    /// Whether `principal`'s fetch from scratch may run without the store's lock when the store
    /// cannot be reached (see [`Fetch::repeatable_without_store`]; default `false`).
    fn repeatable_without_store(&self, principal: &Self::Principal) -> bool {
        let _ = principal;
        false
    }

    /// The refresh token `principal`'s fetch from scratch would present (see
    /// [`Fetch::initial_refresh_token`]; default `None`).
    fn initial_refresh_token(&self, principal: &Self::Principal) -> Option<Secret> {
        let _ = principal;
        None
    }
}

/// A [`Fetch`] from a closure, for tests and one-off providers.
///
/// ```
/// use token_provider::{provider_fn, AccessToken, CachedTokenProvider, TokenProvider};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), token_provider::Error> {
/// let provider = CachedTokenProvider::new(provider_fn("static", || async {
///     Ok(AccessToken::new("a-token"))
/// }));
/// assert_eq!(provider.get().await?.secret().expose_secret(), "a-token");
/// # Ok(())
/// # }
/// ```
pub fn provider_fn<F, Fut>(name: &'static str, f: F) -> FnFetch<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<AccessToken, Error>> + Send + 'static,
{
    FnFetch { name, f }
}

/// The [`Fetch`] made by [`provider_fn`].
pub struct FnFetch<F> {
    name: &'static str,
    f: F,
}

impl<F> fmt::Debug for FnFetch<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FnFetch").field(&self.name).finish()
    }
}

#[async_trait]
impl<F, Fut> Fetch for FnFetch<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<AccessToken, Error>> + Send + 'static,
{
    async fn fetch(&self, _previous: Option<&TokenState>) -> Result<TokenState, Error> {
        (self.f)().await.map(TokenState::from)
    }
}
