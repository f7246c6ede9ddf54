//! The HTTP policy every provider shares: one way to build the client and to send a request.
//!
//! - request timeout (default 30 s) and connect timeout (default 10 s);
//! - redirects are never followed: a token endpoint that redirects is either misconfigured or
//!   hostile, and following it would send credentials somewhere nobody chose (an SSRF hole);
//! - a response-size cap (default 1 MiB) enforced while the body is read, so a hostile or broken
//!   server cannot make us buffer gigabytes;
//! - `User-Agent: partner-auth/<version>`;
//! - `https` required, except for loopback hosts (`127.0.0.0/8`, `::1`, `localhost`), which
//!   tests and local emulators use;
//! - retries for transient failures (connect errors, timeouts, 408, 429, 5xx) with exponential
//!   backoff and jitter, honouring `Retry-After` up to a cap; 4xx rejections are never retried;
//!   a request marked [`not_repeatable`](Request::not_repeatable) is retried only when it
//!   certainly never reached the server (the connection was refused).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tracing::{debug, warn};
use url::{Host, Url};

use crate::{Error, Secret, SharedClock, system_clock};

/// The `User-Agent` every request carries.
pub const USER_AGENT: &str = concat!("partner-auth/", env!("CARGO_PKG_VERSION"));

/// The default response-size cap: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// When and how often a failed request is tried again.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 3; 1 turns retries off).
    pub max_attempts: u32,
    /// The wait before the first retry, doubled for each one after (default 200 ms).
    pub initial_backoff: Duration,
    /// The longest backoff (default 5 s).
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured by waiting; a longer one ends the retries at once with
    /// [`Error::RateLimited`] carrying the provider's figure (default 30 s).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The backoff before retry number `retry` (1-based): exponential, capped, with "equal
    /// jitter" (half fixed, half random) so a fleet of clients does not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        let capped = exp.min(self.max_backoff);
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// The shared HTTP client: a `reqwest::Client` with the policy above. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    config: Arc<Config>,
}

#[derive(Debug)]
struct Config {
    timeout: Duration,
    max_body: usize,
    retry: RetryPolicy,
    clock: SharedClock,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.config.timeout)
            .field("max_body", &self.config.max_body)
            .field("retry", &self.config.retry)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client with the default policy.
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// Starts a client with a policy of your own.
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder::default()
    }

    /// The underlying `reqwest::Client` (the same policy: timeouts, no redirects, user agent),
    /// for API calls made outside [`execute`](Self::execute).
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.client
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.config.retry
    }

    /// Sends `request` under the policy and returns the response with its whole body.
    ///
    /// Returns `Ok` for 2xx and for 4xx other than 408 and 429, so a provider can read its own
    /// error format from the body ([`Response::oauth_error`] reads the standard one). A 3xx is
    /// [`Error::Status`] (redirects are not followed). 408, 429 and 5xx are retried per the
    /// policy and end as [`Error::Status`] or [`Error::RateLimited`] when the retries run out.
    pub async fn execute(&self, request: Request) -> Result<Response, Error> {
        check_url(&request.url)?;
        let policy = &self.config.retry;
        let max_attempts = policy.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = tokio::time::Instant::now();
            let outcome = self.attempt(&request).await;
            let last = attempt >= max_attempts;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let wait = match outcome {
                Ok(response) => {
                    let status = response.status;
                    debug!(
                        method = %request.method,
                        host = request.url.host_str().unwrap_or(""),
                        path = request.url.path(),
                        status = status.as_u16(),
                        attempt,
                        elapsed_ms,
                        "http response"
                    );
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        let retry_after = retry_after(&response.headers, self.config.clock.now());
                        let too_long = retry_after.is_some_and(|d| d > policy.max_retry_after);
                        if last || too_long || !request.repeatable {
                            return Err(Error::RateLimited { retry_after });
                        }
                        retry_after.unwrap_or_else(|| policy.backoff(attempt))
                    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
                        if last || !request.repeatable {
                            return Err(Error::Status {
                                status: status.as_u16(),
                            });
                        }
                        retry_after(&response.headers, self.config.clock.now())
                            .filter(|d| *d <= policy.max_retry_after)
                            .unwrap_or_else(|| policy.backoff(attempt))
                    } else if status.is_redirection() || status.is_informational() {
                        return Err(Error::Status {
                            status: status.as_u16(),
                        });
                    } else {
                        return Ok(response);
                    }
                }
                Err(Failure { error, reached }) => {
                    debug!(
                        method = %request.method,
                        host = request.url.host_str().unwrap_or(""),
                        path = request.url.path(),
                        attempt,
                        elapsed_ms,
                        error = %error,
                        "http request failed"
                    );
                    // A request that may have reached the server is repeated only when repeating
                    // it is harmless; one that never left (connection refused) always may be.
                    // Only the network failing is retried here; an oversized body would only
                    // be oversized again.
                    let retryable = matches!(error, Error::Transport { .. } | Error::Timeout(_));
                    if last || !retryable || (reached && !request.repeatable) {
                        return Err(error);
                    }
                    policy.backoff(attempt)
                }
            };
            warn!(
                method = %request.method,
                host = request.url.host_str().unwrap_or(""),
                path = request.url.path(),
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying http request"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, request: &Request) -> Result<Response, Failure> {
        let mut builder = self
            .client
            .request(request.method.clone(), request.url.clone())
            .headers(request.headers.clone());
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let timeout = self.config.timeout;
        let max_body = self.config.max_body;
        let exchange = async {
            let mut response = builder
                .send()
                .await
                .map_err(|e| Failure::from_reqwest(e, timeout))?;
            let status = response.status();
            let headers = std::mem::take(response.headers_mut());
            if response
                .content_length()
                .is_some_and(|n| n > max_body as u64)
            {
                return Err(Failure::reached(Error::TooLarge { limit: max_body }));
            }
            let mut body = BytesMut::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| Failure::from_reqwest(e, timeout))?
            {
                if body.len() + chunk.len() > max_body {
                    return Err(Failure::reached(Error::TooLarge { limit: max_body }));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Response {
                status,
                headers,
                body: body.freeze(),
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failure::reached(Error::Timeout(timeout))),
        }
    }

    /// An adapter through which the `oauth2` and `openidconnect` crates send their requests with
    /// this client and its policy. Both crates accept any `Fn(http::Request<Vec<u8>>) -> Future`
    /// as their async HTTP client:
    ///
    /// ```no_run
    /// # async fn demo(client: &token_provider::HttpClient) -> Result<(), token_provider::Error> {
    /// let http = client.oauth_adapter();
    /// let send = |request| http.call(request);
    /// // With oauth2: `oauth_client.exchange_client_credentials().request_async(&send).await`;
    /// // any `http::Request<Vec<u8>>` goes the same way:
    /// let request = http::Request::post("https://auth.example.com/oauth/token")
    ///     .body(b"grant_type=client_credentials".to_vec())
    ///     .expect("a valid request");
    /// let response = send(request).await?;
    /// let status = http.last_status(); // oauth2 keeps the error body but not the status
    /// # let _ = (response, status);
    /// # Ok(()) }
    /// ```
    pub fn oauth_adapter(&self) -> OAuthAdapter<'_> {
        OAuthAdapter {
            client: self,
            last_status: AtomicU16::new(0),
        }
    }
}

/// How one attempt failed, and whether the request may have reached the server.
struct Failure {
    error: Error,
    reached: bool,
}

impl Failure {
    fn reached(error: Error) -> Self {
        Self {
            error,
            reached: true,
        }
    }

    fn from_reqwest(err: reqwest::Error, timeout: Duration) -> Self {
        // A connect error means no byte of the request left this process.
        let reached = !err.is_connect();
        let error = match Error::from(err) {
            Error::Timeout(_) => Error::Timeout(timeout),
            other => other,
        };
        Self { error, reached }
    }
}

/// Builds an [`HttpClient`].
#[must_use]
#[derive(Debug)]
pub struct HttpClientBuilder {
    timeout: Duration,
    connect_timeout: Duration,
    max_body: usize,
    retry: RetryPolicy,
    clock: SharedClock,
}

impl Default for HttpClientBuilder {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body: DEFAULT_MAX_BODY,
            retry: RetryPolicy::default(),
            clock: system_clock(),
        }
    }
}

impl HttpClientBuilder {
    /// The whole-request timeout, body included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The connect timeout (default 10 s; never longer than the request timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The response-size cap in bytes (default 1 MiB).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The clock used to read `Retry-After` dates.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The client.
    pub fn build(self) -> Result<HttpClient, Error> {
        if self.timeout.is_zero() {
            return Err(Error::config("timeout", "must be greater than zero"));
        }
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout.min(self.timeout))
            .timeout(self.timeout)
            .build()
            .map_err(|e| Error::config("http client", crate::error::error_chain(&e)))?;
        Ok(HttpClient {
            client,
            config: Arc::new(Config {
                timeout: self.timeout,
                max_body: self.max_body,
                retry: self.retry,
                clock: self.clock,
            }),
        })
    }
}

/// A request for [`HttpClient::execute`]: kept whole so it can be sent again on a retry.
#[derive(Clone)]
pub struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Bytes>,
    repeatable: bool,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the query (it can hold a session token) nor header values nor the body.
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("host", &self.url.host_str())
            .field("path", &self.url.path())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("repeatable", &self.repeatable)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// A request with no body.
    pub fn new(method: Method, url: Url) -> Self {
        Self {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            repeatable: true,
        }
    }

    /// A `GET`.
    pub fn get(url: Url) -> Self {
        Self::new(Method::GET, url)
    }

    /// A `POST`.
    pub fn post(url: Url) -> Self {
        Self::new(Method::POST, url)
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Adds a header. Values that fail to parse are refused with an error naming the header.
    pub fn header(mut self, name: HeaderName, value: &str) -> Result<Self, Error> {
        let value = HeaderValue::from_str(value).map_err(|_| {
            Error::config(
                name.as_str().to_owned(),
                "contains characters not allowed in an HTTP header",
            )
        })?;
        self.headers.append(name, value);
        Ok(self)
    }

    /// Adds a header whose value is a secret: marked sensitive so no HTTP layer prints it.
    pub fn secret_header(mut self, name: HeaderName, value: &Secret) -> Result<Self, Error> {
        let mut value = HeaderValue::from_str(value.expose_secret()).map_err(|_| {
            Error::config(
                name.as_str().to_owned(),
                "contains characters not allowed in an HTTP header",
            )
        })?;
        value.set_sensitive(true);
        self.headers.insert(name, value);
        Ok(self)
    }

    /// `Authorization: Bearer <secret>`.
    pub fn bearer(self, secret: &Secret) -> Result<Self, Error> {
        let value = Secret::new(format!("Bearer {}", secret.expose_secret()));
        self.secret_header(AUTHORIZATION, &value)
    }

    /// `Authorization: Basic <base64(id:secret)>` with both parts form-urlencoded first, as
    /// RFC 6749 section 2.3.1 asks.
    pub fn basic_auth(self, id: &str, secret: &Secret) -> Result<Self, Error> {
        let raw = format!(
            "{}:{}",
            form_urlencode(id),
            form_urlencode(secret.expose_secret())
        );
        let value = Secret::new(format!("Basic {}", base64_encode(raw.as_bytes())));
        self.secret_header(AUTHORIZATION, &value)
    }

    /// A form-encoded body (`application/x-www-form-urlencoded`).
    pub fn form(mut self, fields: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        self.body = Some(Bytes::from(body));
        self
    }

    /// A JSON body.
    pub fn json(mut self, value: &impl serde::Serialize) -> Result<Self, Error> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::config("request body", format!("cannot be encoded: {e}")))?;
        self.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.body = Some(Bytes::from(body));
        Ok(self)
    }

    /// A raw body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Appends a query parameter.
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.url.query_pairs_mut().append_pair(key, value);
        self
    }

    /// Marks the request as one that must not be sent twice (a single-use session token): it is
    /// retried only when the connection was refused, never once it may have reached the server.
    pub fn not_repeatable(mut self) -> Self {
        self.repeatable = false;
        self
    }
}

/// A response with its whole body (at most the size cap).
#[derive(Clone)]
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body can hold a token: its length only.
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Response {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body parsed as JSON into `T`; see [`parse_json`].
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, Error> {
        parse_json(&self.body, what)
    }

    /// The standard OAuth error (`{"error": "...", "error_description": "..."}`), if the body is
    /// one.
    pub fn oauth_error(&self) -> Option<OAuthError> {
        serde_json::from_slice::<OAuthError>(&self.body).ok()
    }

    /// The error this non-success response stands for, by [`status_error`]: the provider's
    /// words are read from the body by [`ProviderWords::from_body`] (never the body itself).
    ///
    /// When the request carried a secret the provider might echo back, use
    /// [`error_scrubbed`](Self::error_scrubbed).
    pub fn error(&self) -> Error {
        self.error_scrubbed(&[])
    }

    /// [`error`](Self::error), with every occurrence of the value of any of `secrets` in the
    /// provider's words replaced by `[redacted]`.
    pub fn error_scrubbed(&self, secrets: &[&Secret]) -> Error {
        status_error(
            self.status.as_u16(),
            &ProviderWords::from_body(&self.body),
            secrets,
        )
    }
}

/// The standard OAuth 2.0 error body (RFC 6749 section 5.2).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct OAuthError {
    /// The error code, e.g. `invalid_grant`.
    pub error: String,
    /// The human-readable explanation.
    #[serde(default)]
    pub error_description: Option<String>,
}

/// The error code and explanation a provider wrote in an error body, read leniently and never
/// the raw body.
///
/// Providers answer errors in many shapes; [`from_json`](Self::from_json) knows the usual ones:
///
/// - the code: `{"error": "<code>"}` (RFC 6749), `{"error": {"code" | "type": …}}`, `{"code": …}`;
/// - the explanation, the first of: `error_description` (RFC 6749), `error.message`, `summary`
///   (`{"error", "status", "summary"}` bodies), `message`, `detail`, and the first string (or
///   `message` / `detail` of the first object) in `errors`.
///
/// Fields of another JSON type than a string, and blank strings, read as absent; other fields
/// (a `raw` copy of the request, say) are never read. `Debug` says only which words are there,
/// since they are the provider's text, which may echo a secret until
/// [`status_error`] scrubs it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProviderWords {
    code: Option<String>,
    description: Option<String>,
}

impl fmt::Debug for ProviderWords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderWords")
            .field("code", &self.code.is_some())
            .field("description", &self.description.is_some())
            .finish()
    }
}

impl ProviderWords {
    /// Words already parsed (by an OAuth library, say); blank ones read as absent.
    pub fn new(code: Option<&str>, description: Option<&str>) -> Self {
        let keep = |s: Option<&str>| s.filter(|s| !s.trim().is_empty()).map(str::to_owned);
        Self {
            code: keep(code),
            description: keep(description),
        }
    }

    /// The words of a body that is a JSON object of a familiar shape; none for anything else
    /// (HTML, an empty body, a JSON array).
    pub fn from_body(body: &[u8]) -> Self {
        serde_json::from_slice::<serde_json::Value>(body)
            .map(|value| Self::from_json(&value))
            .unwrap_or_default()
    }

    /// The words of a parsed JSON value; none when it is not an object.
    pub fn from_json(value: &serde_json::Value) -> Self {
        use serde_json::Value;
        let Value::Object(map) = value else {
            return Self::default();
        };
        let text = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
        };
        let (mut code, inner_message) = match map.get("error") {
            Some(Value::String(_)) => (text(map.get("error")), None),
            Some(Value::Object(inner)) => (
                text(inner.get("code")).or_else(|| text(inner.get("type"))),
                text(inner.get("message")),
            ),
            _ => (None, None),
        };
        code = code.or_else(|| text(map.get("code")));
        let description = text(map.get("error_description"))
            .or(inner_message)
            .or_else(|| text(map.get("summary")))
            .or_else(|| text(map.get("message")))
            .or_else(|| text(map.get("detail")))
            .or_else(|| match map.get("errors") {
                Some(Value::String(_)) => text(map.get("errors")),
                Some(Value::Array(items)) => items.iter().find_map(|item| match item {
                    Value::String(_) => text(Some(item)),
                    Value::Object(o) => text(o.get("message")).or_else(|| text(o.get("detail"))),
                    _ => None,
                }),
                _ => None,
            });
        Self { code, description }
    }

    /// The provider's error code (`invalid_grant`, ...), unscrubbed.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The provider's explanation, unscrubbed.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Whether the provider said nothing usable.
    pub fn is_empty(&self) -> bool {
        self.code.is_none() && self.description.is_none()
    }

    /// These words, with `explanation` as the description when the provider gave none: what a
    /// provider's status means when its answer does not say.
    #[must_use]
    pub fn or_description(mut self, explanation: &str) -> Self {
        if self.description.is_none() {
            self.description = Some(explanation.to_owned());
        }
        self
    }
}

/// The error a non-success HTTP `status` with the provider's `words` stands for, with every
/// occurrence of the value of any of `secrets` in the words replaced by `[redacted]`.
///
/// - 400, 401, 403, 409 and 422 are [`Error::Rejected`]: the provider refused the request as
///   made (the credentials, the grant, the audience, a conflicting or invalid request), and
///   sending it again will not help;
/// - another 4xx (but 408 and 429) is [`Error::Rejected`] when the provider said what is wrong
///   (a code or an explanation), else [`Error::Status`];
/// - 429 is [`Error::RateLimited`];
/// - anything else is [`Error::Status`].
///
/// This is the one place the providers turn an error answer into an [`Error`]; each adds only
/// what its own API means (an explanation for a status it leaves unexplained, say, through
/// [`ProviderWords::or_description`]).
pub fn status_error(status: u16, words: &ProviderWords, secrets: &[&Secret]) -> Error {
    let rejected =
        || Error::rejected_scrubbed(Some(status), words.code(), words.description(), secrets);
    match status {
        400 | 401 | 403 | 409 | 422 => rejected(),
        429 => Error::RateLimited { retry_after: None },
        408 => Error::Status { status },
        // Statuses about the request's shape or timing, not its credentials, stay statuses even
        // when explained: a gateway's 405 or a 425 must not be held as a bad password.
        405 | 413 | 414 | 415 | 425 | 431 => Error::Status { status },
        402..=499 if !words.is_empty() => rejected(),
        _ => Error::Status { status },
    }
}

/// What was wrong with some JSON, from `serde_json`'s error, without ever quoting the input.
///
/// `serde_json`'s own messages can quote the offending value (which may be a token), so only
/// messages that name a field rather than a value are kept word for word: serde's
/// `missing field `…``, and a custom message that starts with `field `…`` (a deserializer of
/// this workspace refusing a field). The position (`at line …`) is left out; add it if useful.
pub fn json_error_detail(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let msg = err.to_string();
    let names_a_field = msg.starts_with("missing field `") || msg.starts_with("field `");
    match err.classify() {
        Category::Data if names_a_field => msg
            .split(" at line")
            .next()
            .unwrap_or("a field is wrong")
            .to_owned(),
        Category::Data => "a field has an unexpected type or value".to_owned(),
        Category::Syntax => "not valid JSON".to_owned(),
        Category::Eof => "truncated JSON".to_owned(),
        Category::Io => "unreadable body".to_owned(),
    }
}

/// Parses JSON into `T`, with an error that says what was wrong (by [`json_error_detail`]) and
/// where, but never quotes the body.
pub fn parse_json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| {
        Error::malformed(format!(
            "{what}: {} (line {}, column {})",
            json_error_detail(&e),
            e.line(),
            e.column()
        ))
    })
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Whether `url` may carry credentials: `https`, or `http` to a loopback host.
pub fn check_url(url: &Url) -> Result<(), Error> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(Error::config(
            "url",
            format!(
                "must use https (plain http is allowed only for loopback hosts, not {})",
                url.host_str().unwrap_or("an empty host")
            ),
        )),
        other => Err(Error::config(
            "url",
            format!("has unsupported scheme {other:?}"),
        )),
    }
}

/// Parses a base URL from configuration, naming `field` when it is not a usable URL (not
/// absolute, not https for a non-loopback host, or carrying a query, a fragment or credentials).
pub fn parse_base_url(field: &str, value: &str) -> Result<Url, Error> {
    let url =
        Url::parse(value.trim()).map_err(|e| Error::config(field, format!("is not a URL: {e}")))?;
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(Error::config(field, "must be an absolute http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::config(field, "must not carry a query or fragment"));
    }
    // Credentials in a URL end up in logs, errors and Debug output wherever the URL is shown.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config(
            field,
            "must not carry a user name or password",
        ));
    }
    check_url(&url).map_err(|e| match e {
        Error::Config { reason, .. } => Error::config(field, reason),
        other => other,
    })?;
    Ok(url)
}

/// `base` joined with `path` segments, each percent-encoded: `join(base, &["tenants", id])`.
/// Keeps any path the base already has (`https://proxy/aurora` + `oauth/token`).
pub fn join_path(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    {
        let mut path = url
            .path_segments_mut()
            .expect("base URLs are checked to be hierarchical");
        path.pop_if_empty();
        for s in segments {
            path.push(s);
        }
    }
    url
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.');
            d.eq_ignore_ascii_case("localhost")
        }
        None => false,
    }
}

fn form_urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Sends `oauth2`/`openidconnect` requests through an [`HttpClient`]; see
/// [`HttpClient::oauth_adapter`].
#[derive(Debug)]
pub struct OAuthAdapter<'a> {
    client: &'a HttpClient,
    last_status: AtomicU16,
}

impl OAuthAdapter<'_> {
    /// Sends one request under the client's policy. Non-success answers that the policy hands
    /// back (4xx) are returned as responses, so the OAuth crate can parse the error body.
    pub async fn call(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, Error> {
        let (parts, body) = request.into_parts();
        let url = Url::parse(&parts.uri.to_string())
            .map_err(|e| Error::config("url", format!("is not a URL: {e}")))?;
        let mut req = Request::new(parts.method, url);
        for (name, value) in &parts.headers {
            let mut value = value.clone();
            if name == AUTHORIZATION {
                value.set_sensitive(true);
            }
            req.headers.append(name.clone(), value);
        }
        if !body.is_empty() {
            req.body = Some(Bytes::from(body));
        }
        let response = self.client.execute(req).await?;
        self.last_status
            .store(response.status.as_u16(), Ordering::Relaxed);
        let mut out = http::Response::new(response.body.to_vec());
        *out.status_mut() = response.status;
        *out.headers_mut() = response.headers;
        Ok(out)
    }

    /// The status of the last response this adapter returned (`oauth2` keeps an error body but
    /// not its status, and 401 and 403 mean different things).
    pub fn last_status(&self) -> Option<u16> {
        match self.last_status.load(Ordering::Relaxed) {
            0 => None,
            s => Some(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), want);
        }
    }

    #[test]
    fn loopback_rule() {
        for ok in [
            "https://example.com/x",
            "http://127.0.0.1:8080/x",
            "http://127.4.5.6/x",
            "http://[::1]:9/x",
            "http://localhost/x",
            "http://LOCALHOST./x",
        ] {
            check_url(&Url::parse(ok).unwrap()).unwrap();
        }
        for bad in [
            "http://example.com/x",
            "http://10.0.0.1/x",
            "http://localhost.example.com/x",
            "ftp://localhost/x",
        ] {
            assert!(check_url(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn base_url_errors_name_the_field() {
        let e = parse_base_url("AERION_BASE_URL", "http://api.aerion.app").unwrap_err();
        assert!(e.to_string().contains("AERION_BASE_URL"), "{e}");
        let e = parse_base_url("AERION_BASE_URL", "not a url").unwrap_err();
        assert!(e.to_string().contains("AERION_BASE_URL"), "{e}");
        let e = parse_base_url("X", "https://h/?a=b").unwrap_err();
        assert!(e.to_string().contains("query"), "{e}");
        let e = parse_base_url("X", "https://user:pw-SECRET@h/").unwrap_err();
        assert!(e.to_string().contains("user name or password"), "{e}");
        assert!(!e.to_string().contains("pw-SECRET"), "{e}");
    }

    #[test]
    fn join_keeps_base_path_and_encodes_segments() {
        let base = Url::parse("https://h/proxy/").unwrap();
        assert_eq!(
            join_path(&base, &["tenants", "a/b", "users"]).as_str(),
            "https://h/proxy/tenants/a%2Fb/users"
        );
        let base = Url::parse("https://h").unwrap();
        assert_eq!(
            join_path(&base, &["oauth2", "token"]).as_str(),
            "https://h/oauth2/token"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(20));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(20)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn backoff_is_exponential_capped_and_jittered() {
        let p = RetryPolicy::default();
        for retry in 1..10 {
            let full = p
                .initial_backoff
                .saturating_mul(1 << (retry - 1))
                .min(p.max_backoff);
            for _ in 0..50 {
                let b = p.backoff(retry);
                assert!(
                    b >= full / 2 && b <= full,
                    "retry {retry}: {b:?} vs {full:?}"
                );
            }
        }
    }

    #[test]
    fn provider_words_from_every_familiar_shape() {
        let w = |s: &str| {
            let w = ProviderWords::from_body(s.as_bytes());
            (
                w.code().map(str::to_owned),
                w.description().map(str::to_owned),
            )
        };
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            w(r#"{"error":"invalid_grant","error_description":"bad password"}"#),
            (some("invalid_grant"), some("bad password"))
        );
        assert_eq!(
            w(r#"{"error":"unauthorized","status":401,"summary":"Invalid login","raw":"RAW"}"#),
            (some("unauthorized"), some("Invalid login"))
        );
        assert_eq!(
            w(r#"{"error":{"code":"forbidden","message":"no access"}}"#),
            (some("forbidden"), some("no access"))
        );
        assert_eq!(
            w(r#"{"message":"Invalid token"}"#),
            (None, some("Invalid token"))
        );
        assert_eq!(
            w(r#"{"errors":[{"detail":"tenant not authorized"}]}"#),
            (None, some("tenant not authorized"))
        );
        assert_eq!(
            w(r#"{"errors":["Email taken"]}"#),
            (None, some("Email taken"))
        );
        assert_eq!(
            w(r#"{"error":true,"message":"  ","status":"500"}"#),
            (None, None)
        );
        assert_eq!(w("<html>Unauthorized</html>"), (None, None));
        assert_eq!(w(r#"["x"]"#), (None, None));
        assert!(
            !format!("{:?}", ProviderWords::from_body(br#"{"error":"SECRET"}"#)).contains("SECRET")
        );
    }

    #[test]
    fn status_errors_by_status_and_words() {
        let worded = ProviderWords::new(Some("not_found"), None);
        let none = ProviderWords::default();
        for status in [400, 401, 403, 409, 422] {
            assert!(status_error(status, &none, &[]).is_rejected(), "{status}");
        }
        assert!(status_error(404, &worded, &[]).is_rejected());
        assert!(matches!(
            status_error(404, &none, &[]),
            Error::Status { status: 404 }
        ));
        assert!(matches!(
            status_error(503, &worded, &[]),
            Error::Status { status: 503 }
        ));
        assert!(matches!(
            status_error(408, &worded, &[]),
            Error::Status { status: 408 }
        ));
        assert!(matches!(
            status_error(429, &none, &[]),
            Error::RateLimited { .. }
        ));
        let explained = none.clone().or_description("no such tenant");
        assert_eq!(
            status_error(404, &explained, &[]).to_string(),
            "not found (HTTP 404): no such tenant"
        );
        let key = Secret::new("sk_echoed_key");
        let echo = ProviderWords::from_body(
            br#"{"error":"bad_key","message":"key sk_echoed_key is invalid"}"#,
        );
        let e = status_error(401, &echo, &[&key]);
        assert_eq!(
            e.to_string(),
            "credentials rejected (HTTP 401): bad_key: key [redacted] is invalid"
        );
        assert!(!format!("{e:?}").contains("sk_echoed_key"));
    }

    #[test]
    fn json_errors_never_quote_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            expires_in: u64,
        }
        let e =
            parse_json::<T>(br#"{"expires_in":"tok-SECRET-123"}"#, "token response").unwrap_err();
        assert!(!e.to_string().contains("tok-SECRET-123"), "{e}");
        let e = parse_json::<T>(br#"{"other":1}"#, "token response").unwrap_err();
        assert!(e.to_string().contains("missing field `expires_in`"), "{e}");
        let e = parse_json::<T>(br#"{"expires_in":"#, "token response").unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let err = serde_json::from_str::<T>(r#"{"expires_in":"tok-SECRET-123"}"#).unwrap_err();
        assert_eq!(
            json_error_detail(&err),
            "a field has an unexpected type or value"
        );
        let err = serde_json::from_str::<T>("{}").unwrap_err();
        assert_eq!(json_error_detail(&err), "missing field `expires_in`");
        let err = serde_json::from_str::<T>("<html>").unwrap_err();
        assert_eq!(json_error_detail(&err), "not valid JSON");
    }
}
