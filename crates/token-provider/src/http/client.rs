//! [`HttpClient`]: the shared client and the loop that sends a request under the policy.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use http::StatusCode;
use tracing::{debug, warn};

use super::request::{Repeat, Request, Response};
use super::retry::{Budget, RetryBudget, RetryPolicy, retry_after};
use super::urls::check_url;
use super::{DEFAULT_MAX_BODY, USER_AGENT};
#[cfg(feature = "keyed")]
use crate::RateLimit;
use crate::observe::with_metrics;
use crate::{ClockOffset, Error, SharedClock, system_clock};

/// The shared HTTP client: a `reqwest::Client` with the policy of [`crate::http`]. Cheap to
/// clone; clones share the [`RetryBudget`].
#[derive(Clone)]
pub struct HttpClient {
    /// Built at once, or on the first request for a [`lazy`](HttpClientBuilder::lazy) client.
    client: Arc<OnceLock<reqwest::Client>>,
    config: Arc<Config>,
    /// The pace of this credential's requests, if any.
    #[cfg(feature = "keyed")]
    rate_limit: Option<RateLimit>,
}

#[derive(Debug)]
struct Config {
    timeout: Duration,
    /// What the `reqwest::Client` is built from.
    setup: Setup,
    max_body: usize,
    retry: RetryPolicy,
    budget: Budget,
    clock: SharedClock,
    /// Whether answers' `Date` headers are read ([`HttpClientBuilder::provider_clock`]).
    provider_clock: bool,
    /// A provider's clock was found off by more than [`SKEW_WARNING`] (warned once).
    skew_warned: AtomicBool,
}

/// A provider clock this far from the host's is worth a warning (once per client).
pub(crate) const SKEW_WARNING: Duration = Duration::from_secs(30);

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("HttpClient");
        d.field("timeout", &self.config.timeout)
            .field("max_body", &self.config.max_body)
            .field("retry", &self.config.retry);
        #[cfg(feature = "keyed")]
        d.field("rate_limit", &self.rate_limit);
        d.finish_non_exhaustive()
    }
}

/// Why [`HttpClient::send`] failed, and whether the request may have reached the server.
///
/// A caller that sent something single-use reads [`reached_server`](Self::reached_server): when
/// it is `false` nothing was spent (the connection was refused, the name did not resolve, the
/// TLS handshake failed, or the URL was refused before any attempt), and the same credential
/// may be sent later.
#[derive(Debug)]
pub struct SendError {
    error: Error,
    reached: bool,
}

impl SendError {
    /// A failure after which the request may have reached the server.
    pub fn reached(error: Error) -> Self {
        Self {
            error,
            reached: true,
        }
    }

    /// A failure that provably happened before any byte of the request left this process.
    pub fn not_sent(error: Error) -> Self {
        Self {
            error,
            reached: false,
        }
    }

    /// Whether any attempt may have reached the server (`false` only when none can have).
    pub fn reached_server(&self) -> bool {
        self.reached
    }

    /// The error.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The error, for a caller with nothing to do about what was spent.
    pub fn into_error(self) -> Error {
        if self.reached {
            self.error
        } else {
            self.error.into_not_sent()
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        e.into_error()
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

    /// The underlying `reqwest::Client` (the same policy: timeouts, no redirects, user agent,
    /// roots and proxy), for API calls made outside [`execute`](Self::execute).
    ///
    /// # Panics
    ///
    /// Only for a [`lazy`](HttpClientBuilder::lazy) client whose TLS set-up fails (no CA roots
    /// could be loaded); [`try_reqwest`](Self::try_reqwest) reports that as an error instead.
    pub fn reqwest(&self) -> &reqwest::Client {
        match self.try_reqwest() {
            Ok(client) => client,
            Err(e) => panic!("the HTTP client cannot be built: {e}"),
        }
    }

    /// The underlying `reqwest::Client`, built now if this is a [`lazy`](HttpClientBuilder::lazy)
    /// client that has not been used yet.
    ///
    /// Building it reads the system's CA roots the first time in a process: called on a
    /// multi-thread runtime's worker, that is done with `block_in_place`; a request
    /// ([`execute`](Self::execute), [`send`](Self::send)) does it on a blocking thread instead.
    pub fn try_reqwest(&self) -> Result<&reqwest::Client, Error> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let setup = &self.config.setup;
        let on_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let client = if on_worker && setup.reads_roots() {
            tokio::task::block_in_place(|| setup.build())?
        } else {
            setup.build()?
        };
        Ok(self.client.get_or_init(|| client))
    }

    /// The underlying client, built on a blocking thread when building it reads the system's
    /// roots (the first client of a process, or one with roots of its own).
    async fn client(&self) -> Result<&reqwest::Client, Error> {
        if self.client.get().is_none() && self.config.setup.reads_roots() {
            let this = self.clone();
            tokio::task::spawn_blocking(move || this.try_reqwest().map(|_| ()))
                .await
                .map_err(|e| Error::config("http client", format!("TLS set-up failed: {e}")))??;
        }
        self.try_reqwest()
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.config.retry
    }

    /// This client paced by `limit` (or not paced, for `None`): every attempt of every request
    /// waits its turn ([`RateLimit`]). The result shares everything else with this client;
    /// give each credential's client its own limit.
    #[cfg(feature = "keyed")]
    #[cfg_attr(docsrs, doc(cfg(feature = "keyed")))]
    #[must_use]
    pub fn with_rate_limit(&self, limit: Option<RateLimit>) -> Self {
        Self {
            rate_limit: limit,
            ..self.clone()
        }
    }

    /// The pace of this client's requests, if any.
    #[cfg(feature = "keyed")]
    #[cfg_attr(docsrs, doc(cfg(feature = "keyed")))]
    pub fn rate_limit(&self) -> Option<&RateLimit> {
        self.rate_limit.as_ref()
    }

    /// Sends `request` under the policy and returns the response with its whole body.
    ///
    /// Returns `Ok` for 2xx and for 4xx other than 408 and 429, so a provider can read its own
    /// error format from the body ([`Response::oauth_error`] reads the standard one). A 3xx is
    /// [`Error::Status`] (redirects are not followed). 408, 429 and 5xx are retried per the
    /// policy and the request's [`Repeat`], and end as [`Error::Status`] (or
    /// [`Error::Unavailable`] when the server said when to come back) or
    /// [`Error::RateLimited`] when the retries run out.
    pub async fn execute(&self, request: Request) -> Result<Response, Error> {
        self.send(request).await.map_err(Error::from)
    }

    /// [`execute`](Self::execute), saying on failure whether the request may have reached the
    /// server ([`SendError::reached_server`]).
    pub async fn send(&self, request: Request) -> Result<Response, SendError> {
        check_url(&request.url).map_err(SendError::not_sent)?;
        let policy = &self.config.retry;
        let max_attempts = policy.max_attempts.max(1);
        self.config.budget.deposit();
        let mut reached = false;
        let mut attempt = 0;
        let first = tokio::time::Instant::now();
        loop {
            attempt += 1;
            #[cfg(feature = "keyed")]
            if let Some(limit) = &self.rate_limit {
                limit.ready().await;
            }
            let started = tokio::time::Instant::now();
            let outcome = self.attempt(&request).await;
            let last = attempt >= max_attempts;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let once = request.repeat == Repeat::Once;
            // How long to wait, and what the attempt that is repeated got (the metrics' label).
            let (wait, retried) = match outcome {
                Ok(response) => {
                    reached = true;
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
                    let asked = retry_after(&response.headers, self.config.clock.now());
                    let too_long = asked.is_some_and(|d| d > policy.max_retry_after);
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        if last || too_long || once || !self.config.budget.withdraw() {
                            return Err(SendError::reached(Error::RateLimited {
                                retry_after: asked,
                            }));
                        }
                        (
                            asked.unwrap_or_else(|| policy.backoff(attempt)),
                            "rate_limited",
                        )
                    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
                        if last || too_long || once || !self.config.budget.withdraw() {
                            return Err(SendError::reached(unavailable(status, asked)));
                        }
                        (
                            asked.unwrap_or_else(|| policy.backoff(attempt)),
                            "unavailable",
                        )
                    } else if status.is_redirection() || status.is_informational() {
                        return Err(SendError::reached(Error::Status {
                            status: status.as_u16(),
                        }));
                    } else {
                        return Ok(response);
                    }
                }
                Err(failure) => {
                    reached |= failure.reached;
                    debug!(
                        method = %request.method,
                        host = request.url.host_str().unwrap_or(""),
                        path = request.url.path(),
                        attempt,
                        elapsed_ms,
                        error = %failure.error,
                        "http request failed"
                    );
                    // Only the network failing is retried; an oversized body would only be
                    // oversized again, and a certificate the client does not trust will not be
                    // trusted on the next try. A request that spends something is repeated
                    // only when no attempt can have reached the server.
                    let retryable =
                        matches!(failure.error, Error::Transport { .. } | Error::Timeout(_));
                    let wrap = |error| {
                        if reached {
                            SendError::reached(error)
                        } else {
                            SendError::not_sent(error)
                        }
                    };
                    if last || !retryable || (once && reached) || !self.config.budget.withdraw() {
                        // A timeout says what it was up against: the limit, the attempts, the
                        // time they took.
                        let error = match failure.error {
                            Error::Timeout(_) => Error::timed_out(
                                address(&request.url),
                                attempt,
                                self.config.timeout,
                                first.elapsed(),
                            ),
                            other => other,
                        };
                        return Err(wrap(error));
                    }
                    let retried = match failure.error {
                        Error::Timeout(_) => "timeout",
                        _ => "transport",
                    };
                    (policy.backoff(attempt), retried)
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
            with_metrics!(crate::metrics::http_retry(retried););
            #[cfg(not(feature = "metrics"))]
            let _ = retried;
            tokio::time::sleep(wait).await;
        }
    }

    /// Warns, once per client, when `response`'s `Date` puts the provider's clock more than
    /// [`SKEW_WARNING`] from this host's: absolute expiries are judged by the provider's clock
    /// ([`Response::local_time`]), but a host this far off misjudges everything else.
    fn note_offset(&self, response: &Response, url: &url::Url) {
        let Some(offset) = response.provider_offset(self.config.clock.now()) else {
            return;
        };
        if offset.magnitude() > SKEW_WARNING
            && !self.config.skew_warned.swap(true, Ordering::Relaxed)
        {
            let way = match offset {
                ClockOffset::Ahead(_) => "ahead of",
                _ => "behind",
            };
            warn!(
                host = url.host_str().unwrap_or_default(),
                "the provider's clock (its Date header) is {}s {way} this host's: its absolute \
                 expiries are judged by its clock; check the host's time synchronisation",
                offset.magnitude().as_secs()
            );
        }
    }

    async fn attempt(&self, request: &Request) -> Result<Response, Failure> {
        // A client that cannot be built sent nothing.
        let client = self.client().await.map_err(|error| Failure {
            error,
            reached: false,
        })?;
        let mut builder = client
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
                .map_err(|e| Failure::from_reqwest(e, timeout, &request.url))?;
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
                .map_err(|e| Failure::from_reqwest(e, timeout, &request.url))?
            {
                if body.len() + chunk.len() > max_body {
                    return Err(Failure::reached(Error::TooLarge { limit: max_body }));
                }
                body.extend_from_slice(&chunk);
            }
            let response = Response::new(status, headers, body.freeze())
                .carrying(&request.secrets)
                .dated(self.config.provider_clock);
            self.note_offset(&response, &request.url);
            Ok(response)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failure::reached(Error::Timeout(timeout))),
        }
    }
}

/// A 5xx or 408 that ended the retries: [`Error::Unavailable`] when the server said when to
/// come back, so the cache waits that long too; [`Error::Status`] otherwise.
fn unavailable(status: StatusCode, retry_after: Option<Duration>) -> Error {
    match retry_after {
        Some(retry_after) => Error::Unavailable {
            status: status.as_u16(),
            retry_after,
        },
        None => Error::Status {
            status: status.as_u16(),
        },
    }
}

/// How one attempt failed, and whether the request may have reached the server.
struct Failure {
    error: Error,
    reached: bool,
}

/// What a certificate failure says, naming where the roots come from.
const CERTIFICATE_ADVICE: &str = "the server's TLS certificate is not trusted. The client trusts \
    the system's CA roots: when none load (a slim container), install the `ca-certificates` \
    package or point SSL_CERT_FILE or SSL_CERT_DIR at the roots; a private CA is added with \
    HttpClientBuilder::add_root_certificate";

impl Failure {
    fn reached(error: Error) -> Self {
        Self {
            error,
            reached: true,
        }
    }

    fn from_reqwest(err: reqwest::Error, timeout: Duration, url: &url::Url) -> Self {
        // A connect error (refused, DNS, a failed TLS handshake) means no byte of the request
        // left this process.
        let reached = !err.is_connect();
        if let Some(failure) = certificate_failure(&err) {
            // Permanent: retrying will not make the certificate trusted.
            let error = match failure {
                // The name checked and the names the certificate holds: the URL's host is
                // not one the certificate was issued for.
                Certificate::WrongName { checked, names } => Error::config(
                    "tls",
                    format!(
                        "{} presented a certificate for {names}: the name {checked} was checked \
                         against it and is not one it names",
                        address(url)
                    ),
                ),
                Certificate::Untrusted => Error::config("tls", CERTIFICATE_ADVICE),
            };
            return Self { error, reached };
        }
        let error = match Error::from(err) {
            Error::Timeout(_) => Error::Timeout(timeout),
            other => other.at_address(&address(url)),
        };
        Self { error, reached }
    }
}

/// `host:port` of `url`, as a transport error or a timeout names it.
fn address(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Why a server's certificate was refused.
enum Certificate {
    /// It is valid, but for other names than the one checked.
    WrongName { checked: String, names: String },
    /// Anything else: an unknown issuer, an expired certificate, ...
    Untrusted,
}

/// Whether a request failed because the server's certificate was refused (rustls says "invalid
/// peer certificate", with the reason: unknown issuer, expired, wrong name...), and why.
fn certificate_failure(err: &reqwest::Error) -> Option<Certificate> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut refused = false;
    while let Some(e) = source {
        let text = e.to_string();
        let lower = text.to_ascii_lowercase();
        if lower.contains("invalid peer certificate") || lower.contains("certificate verify failed")
        {
            refused = true;
            if let Some(wrong) = wrong_name(&text) {
                return Some(wrong);
            }
        }
        source = e.source();
    }
    refused.then_some(Certificate::Untrusted)
}

/// The name checked and the names presented, from rustls's words for a certificate that is not
/// valid for the name: `certificate not valid for name "localhost"; certificate is only valid
/// for DnsName("other.example") or IpAddress(…)`.
fn wrong_name(text: &str) -> Option<Certificate> {
    let (_, rest) = text.split_once("certificate not valid for name ")?;
    let (checked, rest) = rest.split_once(';')?;
    let checked = checked.trim().trim_matches('"').to_owned();
    let names = match rest.split_once("is only valid for ") {
        // `DnsName("a")` and `IpAddress(…)` shown as the plain name.
        Some((_, names)) => names
            .trim()
            .replace("DnsName(\"", "")
            .replace("IpAddress(", "")
            .replace(['"', ')'], ""),
        None => "no name at all".to_owned(),
    };
    Some(Certificate::WrongName { checked, names })
}

/// Builds an [`HttpClient`].
#[must_use]
#[derive(Debug)]
pub struct HttpClientBuilder {
    timeout: Duration,
    connect_timeout: Duration,
    max_body: usize,
    retry: RetryPolicy,
    retry_budget: RetryBudget,
    clock: SharedClock,
    roots: Vec<reqwest::Certificate>,
    proxy: Option<reqwest::Proxy>,
    lazy: bool,
    user_agent: String,
    provider_clock: bool,
}

impl Default for HttpClientBuilder {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body: DEFAULT_MAX_BODY,
            retry: RetryPolicy::default(),
            retry_budget: RetryBudget::default(),
            clock: system_clock(),
            roots: Vec::new(),
            proxy: None,
            lazy: false,
            user_agent: USER_AGENT.to_owned(),
            provider_clock: true,
        }
    }
}

impl HttpClientBuilder {
    crate::builder_setters! {
        /// The whole-request timeout, body included (default 30 s).
        timeout: Duration,
        /// The connect timeout (default 10 s; never longer than the request timeout).
        connect_timeout: Duration,
        /// The response-size cap in bytes (default 1 MiB).
        max_body: usize,
        /// The retry policy of each request.
        retry: RetryPolicy,
        /// The retry budget shared by every request of the client (default
        /// [`RetryBudget::default`]).
        retry_budget: RetryBudget,
        /// The clock used to read `Retry-After` dates.
        clock: SharedClock,
        /// Sends every request through `proxy` (`reqwest::Proxy::https("http://proxy:3128")`,
        /// say), instead of the one the `HTTPS_PROXY`/`ALL_PROXY` variables name.
        proxy: reqwest::Proxy,
        /// The `User-Agent` of every request (default [`USER_AGENT`],
        /// `partner-auth/<version>`): name the application (`acme-billing/2.1
        /// (ops@acme.example)`) so a provider's operators can tell whose traffic it is.
        user_agent: impl Into<String>,
        /// Whether a provider's absolute expiries are judged by its clock, read from the
        /// `Date` header of its answers ([`Response::local_time`]; default on). Off, they are
        /// judged by this host's clock: for a provider behind something that dates answers by
        /// another clock, or a test whose clock is not the test server's.
        provider_clock: bool,
    }

    /// Trusts `certificate` as a root besides the system's (a private or corporate CA).
    /// `reqwest::Certificate::from_pem` reads one from PEM.
    pub fn add_root_certificate(mut self, certificate: reqwest::Certificate) -> Self {
        self.roots.push(certificate);
        self
    }

    /// Defers the TLS set-up (reading the system's CA roots) to the first request, so a
    /// process that ends up sending nothing (a token served from a store) does none of it. A
    /// set-up failure is then reported by that request instead of by [`build`](Self::build).
    pub fn lazy(mut self) -> Self {
        self.lazy = true;
        self
    }

    /// The client. Outside an async runtime, or once this process has read the system's CA
    /// roots, the underlying `reqwest::Client` is built here and a TLS set-up failure is
    /// reported here. Inside a runtime, a client that would read the roots now waits for its
    /// first request, which reads them on a blocking thread (as a [`lazy`](Self::lazy) one
    /// does).
    pub fn build(self) -> Result<HttpClient, Error> {
        if self.timeout.is_zero() {
            return Err(Error::config("timeout", "must be greater than zero"));
        }
        let user_agent = http::HeaderValue::from_str(&self.user_agent).map_err(|_| {
            Error::config(
                "user_agent",
                "contains characters not allowed in an HTTP header",
            )
        })?;
        let setup = Setup {
            user_agent,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            roots: self.roots,
            proxy: self.proxy,
        };
        let client = OnceLock::new();
        // Inside an async runtime, a build that would read the system's roots waits for the
        // first request, which reads them on a blocking thread.
        let deferred = tokio::runtime::Handle::try_current().is_ok() && setup.reads_roots();
        if !self.lazy && !deferred {
            let _ = client.set(setup.build()?);
        }
        Ok(HttpClient {
            client: Arc::new(client),
            config: Arc::new(Config {
                timeout: self.timeout,
                setup,
                max_body: self.max_body,
                retry: self.retry,
                budget: Budget::new(self.retry_budget),
                clock: self.clock,
                provider_clock: self.provider_clock,
                skew_warned: AtomicBool::new(false),
            }),
            #[cfg(feature = "keyed")]
            rate_limit: None,
        })
    }
}

/// What the `reqwest::Client` is built from: the policy (no redirects, the timeouts, the user
/// agent), the extra roots and the proxy.
#[derive(Debug)]
struct Setup {
    user_agent: http::HeaderValue,
    timeout: Duration,
    connect_timeout: Duration,
    roots: Vec<reqwest::Certificate>,
    proxy: Option<reqwest::Proxy>,
}

impl Setup {
    /// Whether building the client reads the system's roots now (file I/O that must not run on
    /// an async runtime's thread).
    fn reads_roots(&self) -> bool {
        !self.roots.is_empty() || !super::roots::loaded()
    }

    /// The `reqwest::Client`. Without roots of its own it shares the verifier over the
    /// system's roots (read by the first client that needs them); with roots of its own,
    /// reqwest reads the system's roots for it, beside its own.
    fn build(&self) -> Result<reqwest::Client, Error> {
        let mut builder = reqwest::Client::builder()
            .user_agent(self.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout.min(self.timeout))
            .timeout(self.timeout);
        if self.roots.is_empty() {
            builder = builder.use_preconfigured_tls(super::roots::tls_config()?);
        } else {
            super::roots::note_load();
        }
        for root in self.roots.iter().cloned() {
            builder = builder.add_root_certificate(root);
        }
        if let Some(proxy) = self.proxy.clone() {
            builder = builder.proxy(proxy);
        }
        builder.build().map_err(|e| {
            let chain = crate::error::error_chain(&e);
            if chain.to_ascii_lowercase().contains("certificate") {
                super::roots::no_roots(&chain)
            } else {
                Error::config("http client", chain)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_for_other_names_is_read_from_rustls_words() {
        let names = |text: &str| match wrong_name(text) {
            Some(Certificate::WrongName { checked, names }) => Some((checked, names)),
            _ => None,
        };
        let pair = |a: &str, b: &str| Some((a.to_owned(), b.to_owned()));
        assert_eq!(
            names(
                "invalid peer certificate: certificate not valid for name \"localhost\"; \
                 certificate is only valid for DnsName(\"other.example\")"
            ),
            pair("localhost", "other.example")
        );
        assert_eq!(
            names(
                "certificate not valid for name \"api.x\"; certificate is only valid for \
                 DnsName(\"a.x\"), DnsName(\"b.x\") or IpAddress(10.0.0.1)"
            ),
            pair("api.x", "a.x, b.x or 10.0.0.1")
        );
        assert_eq!(
            names(
                "certificate not valid for name \"h\"; certificate is not valid for any names \
                 (according to its subjectAltName extension)"
            ),
            pair("h", "no name at all")
        );
        assert_eq!(names("invalid peer certificate: UnknownIssuer"), None);
    }

    #[test]
    fn a_lazy_client_sets_up_tls_on_first_use_only() {
        let lazy = HttpClient::builder().lazy().build().unwrap();
        assert!(lazy.client.get().is_none(), "nothing built yet");
        let clone = lazy.clone();
        clone.try_reqwest().unwrap();
        assert!(lazy.client.get().is_some(), "clones share the one client");
        let eager = HttpClient::new().unwrap();
        assert!(eager.client.get().is_some());
    }
}
