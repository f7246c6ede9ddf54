//! The HTTP policy every provider shares: one way to build the client and to send a request.
//!
//! - request timeout (default 30 s) and connect timeout (default 10 s);
//! - redirects are never followed: a token endpoint that redirects is either misconfigured or
//!   hostile, and following it would send credentials somewhere nobody chose (an SSRF hole);
//! - a response-size cap (default 1 MiB) enforced while the body is read, so a hostile or broken
//!   server cannot make us buffer gigabytes;
//! - `User-Agent: partner-auth/<version>` unless [`HttpClientBuilder::user_agent`] says otherwise;
//! - `https` required, except for loopback hosts (`127.0.0.0/8`, `::1`, `localhost`), which
//!   tests and local emulators use;
//! - retries for transient failures (connect errors, timeouts, 408, 429, 5xx) with exponential
//!   backoff and jitter, honouring `Retry-After` up to a cap, under a [`RetryBudget`] shared by
//!   every caller of the client; 4xx rejections and certificate failures are never retried.
//!
//! # Which requests may be repeated
//!
//! Every [`Request`] states what sending it means ([`Repeat`]): [`Repeat::Safe`] requests
//! (discovery, a user lookup, a client-credentials or password grant) are repeated under the
//! policy above; [`Repeat::Once`] requests spend something (a rotating refresh token, a
//! single-use session token, a Client SDK session, an invitation) and are repeated only when
//! the previous attempt provably never reached the server (the connection was refused, the name
//! did not resolve, the TLS handshake was refused). [`HttpClient::send`] says which of the two
//! happened ([`SendError::reached_server`]), so the caller can tell whether it spent what it
//! sent.
//!
//! # Proxies and certificates
//!
//! The client trusts the system's CA roots, read once per process (on a blocking thread when a
//! request needs them first), and honours the usual environment variables:
//! `SSL_CERT_FILE` and `SSL_CERT_DIR` for the roots (a slim container without the
//! `ca-certificates` package has none), and `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and
//! `NO_PROXY` for a proxy. The proxy variables apply to loopback hosts too: list `127.0.0.1` and
//! `localhost` in `NO_PROXY` when an emulator runs beside a proxy. In code,
//! [`HttpClientBuilder::add_root_certificate`] adds a root and [`HttpClientBuilder::proxy`] sets
//! a proxy.

mod client;
mod error_body;
#[cfg(feature = "oauth2")]
mod oauth;
pub(crate) mod request;
mod retry;
pub(crate) mod roots;
mod urls;

pub use self::client::{HttpClient, HttpClientBuilder, SendError};
pub use self::error_body::{
    OAuthError, ProviderWords, bearer_token_type, json_error_detail, parse_json, status_error,
};
#[cfg(feature = "oauth2")]
pub use self::oauth::{OAuthAdapter, token_error};
pub use self::request::{DATE_TOLERANCE, Repeat, Request, Response, wrong_endpoint};
pub use self::retry::{RetryBudget, RetryPolicy, retry_after};
pub use self::urls::{check_url, join_path, parse_base_url};

/// The `User-Agent` every request carries.
pub const USER_AGENT: &str = concat!("partner-auth/", env!("CARGO_PKG_VERSION"));

/// The default response-size cap: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
