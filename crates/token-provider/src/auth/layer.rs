//! [`AuthLayer`]: the token on every request of an `http`-based client (hyper-util's legacy
//! client, a tonic channel), as a `tower` layer (feature `tower`). What it does is documented
//! on the type.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode, Uri};
use tower_layer::Layer;
use tower_service::Service;
use url::Url;

use super::{AuthHeader, AuthScope};
use crate::{BoxError, Error, TokenProvider};

/// How [`AuthService`] gets a second copy of a request's body, to send the request again with a
/// new token after a 401. `None` means the body cannot be replayed (a stream): the refused
/// token is still invalidated, and the 401 returned.
///
/// Implemented by [`CloneBody`] (the default), [`NoReplay`], and any
/// `Fn(&B) -> Option<B>` (for a body that can be copied only sometimes).
pub trait ReplayBody<B> {
    /// A copy of `body` to send again, or `None`.
    fn replay(&self, body: &B) -> Option<B>;
}

/// Replays a clone of the body: for a body type that is `Clone` (`http_body_util::Full<Bytes>`,
/// `Empty<Bytes>`, `String`, `Vec<u8>`). The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneBody;

impl<B: Clone> ReplayBody<B> for CloneBody {
    fn replay(&self, body: &B) -> Option<B> {
        Some(body.clone())
    }
}

/// Never replays: for a body that is a stream (tonic's, a boxed body). A 401 still invalidates
/// the token, so the caller's next request gets a new one.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReplay;

impl<B> ReplayBody<B> for NoReplay {
    fn replay(&self, _: &B) -> Option<B> {
        None
    }
}

impl<B, F> ReplayBody<B> for F
where
    F: Fn(&B) -> Option<B>,
{
    fn replay(&self, body: &B) -> Option<B> {
        self(body)
    }
}

/// A `tower` layer that authenticates every request for its scope's origins with a provider's
/// token, and answers a 401 by invalidating that token and, when the body can be replayed,
/// sending the request once more with a new one.
///
/// - A request whose URI is in the [`AuthScope`] gets the provider's token in the
///   [`AuthHeader`], from the cache's hit path ([`TokenProvider::get`]: no lock, no allocation
///   while the token is fresh). A request for any other origin passes through untouched, with
///   no token and no retry. A request with a path-only URI is refused before anything is sent
///   (nothing says where it goes); a tonic client is given its origin with `with_origin`.
/// - When the answer is 401, that token is invalidated (only if it is still the cached one) and,
///   when the request's body can be replayed ([`ReplayBody`]), the request is sent once more
///   with a new token. The second answer is returned whatever its status.
/// - Redirects are not followed here: a 3xx comes back as it came. A layer that follows them
///   (tower-http's `FollowRedirect`) goes *outside* this one, so that each hop passes through
///   it and is checked against the scope: a hop to another origin then carries no token,
///   whatever the header's name. Inside it, a follower would copy the header to wherever the
///   redirect points (tower-http's and reqwest's strip `Authorization`, not `Authentication`).
///
/// ```
/// # use std::sync::Arc;
/// # fn demo(provider: Arc<dyn token_provider::TokenProvider>) -> Result<(), token_provider::Error> {
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use token_provider::auth::{AuthHeader, AuthLayer, AuthScope};
/// use tower_layer::Layer;
///
/// let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
/// let layer = AuthLayer::new(provider, AuthScope::parse("http://127.0.0.1:8080")?)
///     .header(AuthHeader::named("Authentication")?);
/// let client = layer.layer(client); // a `Service<http::Request<Full<Bytes>>>`
/// # let _ = client;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthLayer<R = CloneBody> {
    provider: Arc<dyn TokenProvider>,
    header: AuthHeader,
    scope: AuthScope,
    replay: R,
}

impl<R> fmt::Debug for AuthLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("provider", &self.provider)
            .field("header", self.header.name())
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// `Authorization: Bearer` with tokens from `provider`, for requests to `scope`'s origins;
    /// after a 401, bodies are replayed by cloning them ([`CloneBody`]).
    pub fn new(provider: Arc<dyn TokenProvider>, scope: AuthScope) -> Self {
        Self {
            provider,
            header: AuthHeader::default(),
            scope,
            replay: CloneBody,
        }
    }
}

impl<R> AuthLayer<R> {
    /// Another header instead of `Authorization` (Aurora UK's `Authentication`).
    #[must_use]
    pub fn header(mut self, header: AuthHeader) -> Self {
        self.header = header;
        self
    }

    /// How a body is replayed after a 401: [`NoReplay`] for a client whose bodies are streams,
    /// or a function returning a copy when it can make one.
    #[must_use]
    pub fn replay<R2>(self, replay: R2) -> AuthLayer<R2> {
        AuthLayer {
            provider: self.provider,
            header: self.header,
            scope: self.scope,
            replay,
        }
    }

    /// [`replay`](Self::replay)`(NoReplay)`: a 401 invalidates the token and is returned.
    #[must_use]
    pub fn without_replay(self) -> AuthLayer<NoReplay> {
        self.replay(NoReplay)
    }
}

impl<S, R: Clone> Layer<S> for AuthLayer<R> {
    type Service = AuthService<S, R>;

    fn layer(&self, inner: S) -> AuthService<S, R> {
        AuthService {
            inner,
            shared: Arc::new(self.clone()),
        }
    }
}

/// The service [`AuthLayer`] makes around a client. Its errors are the inner service's, or the
/// [`Error`] that kept a token from being had, boxed.
pub struct AuthService<S, R = CloneBody> {
    inner: S,
    shared: Arc<AuthLayer<R>>,
}

impl<S: Clone, R> Clone for AuthService<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, R> fmt::Debug for AuthService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("inner", &self.inner)
            .field("layer", &self.shared)
            .finish()
    }
}

/// The future of an [`AuthService`] call.
pub type AuthFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send + 'static>>;

impl<S, B, ResB, R> Service<Request<B>> for AuthService<S, R>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
    ResB: Send + 'static,
    R: ReplayBody<B> + Send + Sync + 'static,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = AuthFuture<Response<ResB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service polled ready sends the first try; a clone takes its place here.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(send(Arc::clone(&self.shared), inner, request))
    }
}

/// One call: the scope checked, a token attached, and after a 401 that token invalidated and
/// the request sent once more when its body can be.
async fn send<S, B, ResB, R>(
    layer: Arc<AuthLayer<R>>,
    mut inner: S,
    request: Request<B>,
) -> Result<Response<ResB>, BoxError>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    R: ReplayBody<B>,
{
    let Some(url) = absolute_url(request.uri()) else {
        return Err(Error::config(
            "request URI",
            "has no scheme and host, so whether the token may go there cannot be told: give \
             the client an absolute URI (a tonic client: `with_origin`)",
        )
        .into());
    };
    // Only the API's origins get a token (checked before one is even fetched).
    if !layer.scope.allows(&url) {
        return inner.call(request).await.map_err(Into::into);
    }
    let (parts, body) = request.into_parts();
    // The copy is made before the first try consumes the body.
    let again = layer
        .replay
        .replay(&body)
        .map(|body| Request::from_parts(parts.clone(), body));
    let token = layer.provider.get().await?;
    let mut request = Request::from_parts(parts, body);
    request
        .headers_mut()
        .insert(layer.header.name().clone(), layer.header.value(&token)?);
    let response = inner.call(request).await.map_err(Into::into)?;
    if response.status() != StatusCode::UNAUTHORIZED {
        return Ok(response);
    }
    // The token is refused whether or not the request can be replayed: forget it first.
    layer.provider.invalidate(&token);
    let Some(mut again) = again else {
        tracing::info!(
            "the server refused the token (401) for a request whose body cannot be replayed; \
             the token is dropped and the 401 returned"
        );
        return Ok(response);
    };
    drop(response);
    tracing::info!("the server refused the token (401); retrying once with a new one");
    let token = layer.provider.get().await?;
    again
        .headers_mut()
        .insert(layer.header.name().clone(), layer.header.value(&token)?);
    poll_fn(|cx| inner.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    inner.call(again).await.map_err(Into::into)
}

/// The URI as a URL, when it names a scheme and a host (a path-only URI does not say where it
/// goes).
fn absolute_url(uri: &Uri) -> Option<Url> {
    if uri.scheme().is_none() || uri.authority().is_none() {
        return None;
    }
    Url::parse(&uri.to_string()).ok()
}
