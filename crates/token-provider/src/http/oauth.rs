//! The `oauth2`/`openidconnect` seam (feature `oauth2`): requests those crates build are sent
//! through an [`HttpClient`] and its policy, and their failures become the core's [`Error`] in
//! one place.
//!
//! `oauth2` keeps an error answer's body but not its status, and 401 and 403 mean different
//! things; so an adapter given an error mapping ([`OAuthAdapter::errors`]) turns every non-2xx
//! answer into an [`Error`] itself, with the status in hand, and `oauth2` only ever parses
//! success bodies.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use oauth2::{ErrorResponse, RequestTokenError};
use url::Url;

use super::client::{HttpClient, SendError};
use super::error_body::json_error_detail;
use super::request::{Repeat, Request, Response};
use crate::Error;

/// How an adapter turns a non-2xx answer into an [`Error`].
type ErrorMapping<'a> = &'a (dyn Fn(&Response) -> Error + Send + Sync);

/// Sends `oauth2`/`openidconnect` requests through an [`HttpClient`]; see
/// [`HttpClient::oauth_adapter`]. It is `oauth2`'s `AsyncHttpClient`, so it is passed to
/// `request_async` and `discover_async` as it is.
pub struct OAuthAdapter<'a> {
    client: &'a HttpClient,
    repeat: Repeat,
    headers: HeaderMap,
    errors: Option<ErrorMapping<'a>>,
    /// The setting the token endpoint's URL comes from, when a wrong URL is to be named.
    endpoint: Option<&'a str>,
}

impl fmt::Debug for OAuthAdapter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthAdapter")
            .field("repeat", &self.repeat)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("maps_errors", &self.errors.is_some())
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// An adapter through which the `oauth2` and `openidconnect` crates send their requests with
    /// this client and its policy, each request repeated as `repeat` allows:
    ///
    /// ```no_run
    /// # fn demo(client: &token_provider::HttpClient) {
    /// use token_provider::Secret;
    /// use token_provider::http::{Repeat, Response};
    ///
    /// let secret = Secret::new("client-secret");
    /// // Errors read from the provider's answer, with the secret scrubbed from its words.
    /// let map = |response: &Response| response.error_scrubbed(&[&secret]);
    /// let http = client.oauth_adapter(Repeat::Safe).errors(&map);
    /// // `&http` is an `oauth2::AsyncHttpClient`:
    /// // `oauth_client.exchange_client_credentials().request_async(&http).await`.
    /// # let _ = http;
    /// # }
    /// ```
    pub fn oauth_adapter(&self, repeat: Repeat) -> OAuthAdapter<'_> {
        OAuthAdapter {
            client: self,
            repeat,
            headers: HeaderMap::new(),
            errors: None,
            endpoint: None,
        }
    }
}

impl<'a> OAuthAdapter<'a> {
    /// Adds a header to every request (`oauth2` adds form fields but no headers).
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Turns every non-2xx answer into an error by `map` (which sees the status, the headers and
    /// the body), so the status is never lost. Without it, answers are handed to the OAuth crate
    /// as they are (discovery reads the status itself).
    #[must_use]
    pub fn errors(mut self, map: ErrorMapping<'a>) -> Self {
        self.errors = Some(map);
        self
    }

    /// Names `setting` (the variable or builder field the token endpoint's URL comes from) when
    /// an answer says the URL leads to no such endpoint, a 404 or an HTML page
    /// ([`wrong_endpoint`](super::wrong_endpoint)), before any other reading of it.
    #[must_use]
    pub fn endpoint(mut self, setting: &'a str) -> Self {
        self.endpoint = Some(setting);
        self
    }

    /// Sends one request under the client's policy.
    pub async fn call(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, SendError> {
        let (parts, body) = request.into_parts();
        let url = Url::parse(&parts.uri.to_string())
            .map_err(|e| SendError::not_sent(Error::config("url", format!("is not a URL: {e}"))))?;
        let mut req = Request::new(parts.method, url, self.repeat);
        for (name, value) in &parts.headers {
            let mut value = value.clone();
            if name == AUTHORIZATION {
                value.set_sensitive(true);
                // Remembered, so an error built from the answer is scrubbed of it.
                if let Ok(text) = value.to_str() {
                    req.secrets.push(crate::Secret::new(text));
                }
            }
            req.headers.append(name.clone(), value);
        }
        for (name, value) in &self.headers {
            req.headers.insert(name.clone(), value.clone());
        }
        if !body.is_empty() {
            req.body = Some(Bytes::from(body));
        }
        let url = req.url.clone();
        let response = self.client.send(req).await?;
        if let Some(setting) = self.endpoint
            && let Some(error) = super::wrong_endpoint(setting, &url, &response, None)
        {
            return Err(SendError::reached(error));
        }
        if !response.status.is_success()
            && let Some(map) = self.errors
        {
            return Err(SendError::reached(map(&response)));
        }
        let mut out = http::Response::new(response.body.to_vec());
        *out.status_mut() = response.status;
        *out.headers_mut() = response.headers;
        Ok(out)
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthAdapter<'_> {
    type Error = SendError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, SendError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(OAuthAdapter::call(self, request))
    }
}

/// `oauth2`'s failure to get a token as the core's error, `what` naming the answer (`aerion
/// token response`). Never quotes a body or `oauth2`'s own messages (which can quote one).
///
/// With an adapter that maps errors ([`OAuthAdapter::errors`]), every non-2xx answer is already
/// an error of the provider's; what is left here is the exchange failing and a 2xx answer that
/// does not read as a token.
pub fn token_error<TE: ErrorResponse + 'static>(
    err: RequestTokenError<SendError, TE>,
    what: &str,
) -> SendError {
    let malformed =
        |reason: String| SendError::reached(Error::malformed(format!("{what}: {reason}")));
    match err {
        RequestTokenError::Request(error) => error,
        RequestTokenError::ServerResponse(_) => {
            malformed("an error body with a status that is not an error".to_owned())
        }
        RequestTokenError::Parse(error, _body) => malformed(format!(
            "{} (at `{}`)",
            json_error_detail(error.inner()),
            error.path()
        )),
        RequestTokenError::Other(message) => {
            if message.contains("Content-Type") {
                malformed("not JSON (unexpected Content-Type)".to_owned())
            } else if message.contains("empty") {
                malformed("empty body".to_owned())
            } else {
                malformed("unreadable answer".to_owned())
            }
        }
    }
}
