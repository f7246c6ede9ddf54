//! [`Error`]: why a token could not be had.

use std::sync::Arc;
use std::time::Duration;

use crate::Secret;
use crate::scrub::clean_provider_text;

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error source shared by the copies of an [`Error`] (so `Error` is `Clone` though its
/// sources are not). It reads (`Display`, `Debug`, `Deref`) as the error it holds.
///
/// Not itself a `std::error::Error`, on purpose: [`source()`](std::error::Error::source) then
/// gives the error it holds, which downcasts to its own type.
pub struct SharedSource<E: ?Sized = dyn std::error::Error + Send + Sync + 'static>(Arc<E>);

impl<E: ?Sized> Clone for SharedSource<E> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<E: ?Sized> std::ops::Deref for SharedSource<E> {
    type Target = E;

    fn deref(&self) -> &E {
        &self.0
    }
}

impl<E: std::fmt::Debug + ?Sized> std::fmt::Debug for SharedSource<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl<E: std::fmt::Display + ?Sized> std::fmt::Display for SharedSource<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl From<BoxError> for SharedSource {
    fn from(source: BoxError) -> Self {
        Self(Arc::from(source))
    }
}

impl From<std::io::Error> for SharedSource<std::io::Error> {
    fn from(source: std::io::Error) -> Self {
        Self(Arc::new(source))
    }
}

/// Why a token (or an authenticated call) could not be had.
///
/// Messages are short and lowercase and never contain a secret, a token or a raw response body:
/// a provider's own `error` and `error_description` are kept (trimmed to a sane length, control
/// characters removed) because they say what is wrong. Decide what to do with
/// [`is_transient`](Error::is_transient) rather than by matching message text.
///
/// The enum and each of its struct variants are `#[non_exhaustive]`: a minor release may add a
/// variant or a field. Match with `..` (`Error::Status { status, .. }`) and a wildcard arm, and
/// make errors with the constructors ([`config`](Self::config), [`rejected`](Self::rejected),
/// [`http_status`](Self::http_status), …).
///
/// ```
/// use std::time::Duration;
/// use token_provider::Error;
///
/// let err = Error::unavailable(503, Duration::from_secs(30));
/// assert!(err.is_transient());
/// match err {
///     Error::Unavailable { status, retry_after, .. } => {
///         assert_eq!((status, retry_after), (503, Duration::from_secs(30)));
///     }
///     other => panic!("{other}"),
/// }
/// ```
///
/// Neither a variant's literal nor a pattern without `..` compiles outside this crate:
///
/// ```compile_fail
/// let err = token_provider::Error::Status { status: 503 };
/// ```
///
/// ```compile_fail
/// # let err = token_provider::Error::http_status(503);
/// if let token_provider::Error::Status { status } = err {}
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing or wrong. Nothing was sent.
    #[error("invalid configuration: `{field}` {reason}")]
    #[non_exhaustive]
    Config {
        /// The field or environment variable at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The provider refused the request for a reason only a change of input fixes: the
    /// credentials, the grant or the audience (HTTP 400, 401, 403), or what the request named or
    /// asked for (404, 409, 422, another 4xx). The message says which: "credentials rejected
    /// (HTTP 401): …", "not found (HTTP 404): …", "conflict (HTTP 409): …", "invalid request
    /// (HTTP 422): …", "request rejected (HTTP 418): …".
    #[error("{}{}", rejected_subject(*.status), rejected_suffix(*.status, .code.as_deref(), .description.as_deref()))]
    #[non_exhaustive]
    Rejected {
        /// The HTTP status, when the refusal came over HTTP.
        status: Option<u16>,
        /// The provider's error code (OAuth `error`, e.g. `invalid_grant`).
        code: Option<String>,
        /// The provider's explanation (OAuth `error_description`).
        description: Option<String>,
    },

    /// The provider needs a person to act before a token can be had again: a single-use session
    /// token was already spent, or a refresh token died and no password is configured.
    #[error("user action needed: {action}")]
    #[non_exhaustive]
    UserAction {
        /// What the user has to do.
        action: String,
    },

    /// The provider said to slow down (HTTP 429) and the retries ran out.
    #[error("rate limited by the provider{}", retry_after_suffix(*.retry_after))]
    #[non_exhaustive]
    RateLimited {
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
    },

    /// The request did not complete: connection refused or reset, DNS, TLS.
    #[error("transport error{}", address_suffix(.address.as_deref()))]
    #[non_exhaustive]
    Transport {
        /// The underlying error (URLs stripped, so no query-string secret survives).
        #[source]
        source: SharedSource,
        /// The host and port the request went to (`api.aerion.app:443`), when known.
        address: Option<String>,
    },

    /// The whole load (a cache's wait for its fetch) took longer than allowed (the limit, when
    /// known). A request the HTTP client gave up on is [`Error::TimedOut`].
    #[error("timed out{}", timeout_suffix(*.0))]
    Timeout(Duration),

    /// A request's attempts ran out of time: the last one was cut off at its limit, after the
    /// retries the policy allowed.
    #[error(
        "timed out after {:.1}s: {}",
        .elapsed.as_secs_f64(),
        attempts_text(*.attempts, .address, *.per_attempt)
    )]
    #[non_exhaustive]
    TimedOut {
        /// The host and port the request went to.
        address: String,
        /// How many attempts were made.
        attempts: u32,
        /// The limit each attempt had (the client's request timeout).
        per_attempt: Duration,
        /// The time from the first attempt to the end of the last.
        elapsed: Duration,
    },

    /// An HTTP status the call cannot use: 5xx or 408 after the retries, a redirect, or another
    /// status the provider does not document.
    #[error("unexpected HTTP status {status}")]
    #[non_exhaustive]
    Status {
        /// The status code.
        status: u16,
    },

    /// A 5xx (or 408) that ended the retries, from a server that said when to come back
    /// (`Retry-After`): the cache waits that long before asking again.
    #[error("unexpected HTTP status {status} (retry after {}s)", .retry_after.as_secs())]
    #[non_exhaustive]
    Unavailable {
        /// The status code.
        status: u16,
        /// How long the server asked us to wait.
        retry_after: Duration,
    },

    /// The response could not be understood (not JSON, a field missing, an unparseable date).
    #[error("malformed response: {reason}")]
    #[non_exhaustive]
    Malformed {
        /// What was wrong, without the body.
        reason: String,
    },

    /// The response was larger than the cap and was cut off while being read.
    #[error("response larger than {limit} bytes")]
    #[non_exhaustive]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },

    /// The token store could not be read or written.
    #[error("token store: {reason}")]
    #[non_exhaustive]
    Store {
        /// What failed.
        reason: String,
        /// The underlying I/O error, if any.
        #[source]
        source: Option<SharedSource<std::io::Error>>,
    },

    /// Another holder kept the store's lock for this state longer than the lock timeout (another
    /// process fetching, or a stopped one). Transient: trying again later may succeed.
    #[error("store busy: {reason}")]
    #[non_exhaustive]
    StoreBusy {
        /// What was held, and for how long.
        reason: String,
    },

    /// The store could not be reached in time (a Redis server down, restarting or slow).
    /// Transient. Nothing was read or written; a cache then serves the token it holds, and
    /// fetches without the store only for a fetcher whose grant is safe to repeat
    /// ([`Fetch::repeatable_without_store`](crate::Fetch::repeatable_without_store)).
    #[error("token store unavailable: {reason}")]
    #[non_exhaustive]
    StoreUnavailable {
        /// Which store, and what failed.
        reason: String,
    },

    /// The store refused a save because this holder's lock was superseded: its lease ran out and
    /// another holder took the lock (and may have saved a newer state) since. The cache answers
    /// it by reading the store again and adopting what is there. Transient.
    #[error("store lock superseded: {reason}")]
    #[non_exhaustive]
    StoreFenced {
        /// What was refused.
        reason: String,
    },

    /// A refused answer that rotated the refresh token: the error that refused it, with the new
    /// refresh token, which a fetcher hands back so the cache keeps it (the one sent is spent).
    /// Shown, and answering every predicate, as the error it wraps; the refresh token is never
    /// shown. Made by [`with_rotated_refresh_token`](Self::with_rotated_refresh_token), taken
    /// apart by [`take_rotated_refresh_token`](Self::take_rotated_refresh_token); a cache
    /// returns only the error it wraps.
    #[error(transparent)]
    Rotated(Box<RotatedRefusal>),
}

/// What [`Error::Rotated`] holds: the error that refused an answer, and the refresh token that
/// answer rotated in. `Debug` shows the error and a redacted token.
#[derive(Clone, Debug)]
pub struct RotatedRefusal {
    error: Error,
    refresh_token: Secret,
}

impl RotatedRefusal {
    /// The error that refused the answer.
    pub fn error(&self) -> &Error {
        &self.error
    }
}

impl std::fmt::Display for RotatedRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for RotatedRefusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

impl Error {
    /// A configuration error naming `field`.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A rejection, with the provider's words cleaned for display.
    ///
    /// When the request carried a secret the provider might echo back (a password, a key, a
    /// refresh token), use [`rejected_scrubbed`](Self::rejected_scrubbed) instead.
    pub fn rejected(status: Option<u16>, code: Option<&str>, description: Option<&str>) -> Self {
        Self::rejected_scrubbed(status, code, description, &[])
    }

    /// A rejection, with the provider's words cleaned for display and every occurrence of the
    /// value of any of `secrets` replaced by `[redacted]` (see [`scrub_secrets`](crate::scrub_secrets)): a server that
    /// echoes the password or key it refused must not get it into an error message.
    pub fn rejected_scrubbed(
        status: Option<u16>,
        code: Option<&str>,
        description: Option<&str>,
        secrets: &[&Secret],
    ) -> Self {
        let clean = |text: &str| {
            Some(clean_provider_text(text, secrets)).filter(|s: &String| !s.is_empty())
        };
        Self::Rejected {
            status,
            code: code.and_then(clean),
            description: description.and_then(clean),
        }
    }

    /// [`Error::RateLimited`]: the provider said to slow down, and how long to wait if it said.
    pub fn rate_limited(retry_after: Option<Duration>) -> Self {
        Self::RateLimited { retry_after }
    }

    /// [`Error::Timeout`]: the request or the load took longer than `limit` (zero when unknown).
    pub fn timeout(limit: Duration) -> Self {
        Self::Timeout(limit)
    }

    /// [`Error::Status`]: an HTTP status the call cannot use.
    pub fn http_status(status: u16) -> Self {
        Self::Status { status }
    }

    /// [`Error::Unavailable`]: a 5xx (or 408) from a server that said when to come back.
    pub fn unavailable(status: u16, retry_after: Duration) -> Self {
        Self::Unavailable {
            status,
            retry_after,
        }
    }

    /// [`Error::TooLarge`]: the response was larger than `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self::TooLarge { limit }
    }

    /// A "user action needed" error.
    pub fn user_action(action: impl Into<String>) -> Self {
        Self::UserAction {
            action: action.into(),
        }
    }

    /// A malformed-response error.
    pub fn malformed(reason: impl Into<String>) -> Self {
        Self::Malformed {
            reason: reason.into(),
        }
    }

    /// A transport error from any source.
    pub fn transport(source: impl Into<BoxError>) -> Self {
        Self::Transport {
            source: SharedSource::from(source.into()),
            address: None,
        }
    }

    /// This error with the host and port its request went to, when it is a transport error
    /// that does not name them yet (the HTTP client adds them).
    #[must_use]
    pub fn at_address(self, address: &str) -> Self {
        match self {
            Self::Transport {
                source,
                address: None,
            } => Self::Transport {
                source,
                address: Some(address.to_owned()),
            },
            other => other,
        }
    }

    /// [`Error::TimedOut`]: `attempts` attempts to `address`, each cut off at `per_attempt`,
    /// `elapsed` in all.
    pub fn timed_out(
        address: impl Into<String>,
        attempts: u32,
        per_attempt: Duration,
        elapsed: Duration,
    ) -> Self {
        Self::TimedOut {
            address: address.into(),
            attempts,
            per_attempt,
            elapsed,
        }
    }

    /// A store error.
    pub fn store(reason: impl Into<String>, source: impl Into<Option<std::io::Error>>) -> Self {
        Self::Store {
            reason: reason.into(),
            source: source.into().map(SharedSource::from),
        }
    }

    /// [`Error::StoreBusy`]: the store's lock was held by another for too long.
    pub fn store_busy(reason: impl Into<String>) -> Self {
        Self::StoreBusy {
            reason: reason.into(),
        }
    }

    /// [`Error::StoreUnavailable`]: the store could not be reached in time.
    pub fn store_unavailable(reason: impl Into<String>) -> Self {
        Self::StoreUnavailable {
            reason: reason.into(),
        }
    }

    /// [`Error::StoreFenced`]: a save refused because the holder's lock was superseded.
    pub fn store_fenced(reason: impl Into<String>) -> Self {
        Self::StoreFenced {
            reason: reason.into(),
        }
    }

    /// `self`, as the refusal of an answer that rotated the refresh token to `refresh_token`
    /// ([`Error::Rotated`]). A fetcher returns it instead of dropping the new refresh token
    /// with the answer, so the cache keeps the token for the next fetch. Wrapping an error that
    /// already holds a refresh token replaces that token.
    ///
    /// ```
    /// use token_provider::{Error, Secret};
    ///
    /// let err = Error::malformed("token_type `mac` is not Bearer")
    ///     .with_rotated_refresh_token(Secret::new("rt-2"));
    /// assert_eq!(err.to_string(), "malformed response: token_type `mac` is not Bearer");
    /// assert!(err.is_transient());
    /// let (err, refresh_token) = err.take_rotated_refresh_token();
    /// assert!(matches!(err, Error::Malformed { .. }));
    /// assert_eq!(refresh_token, Some(Secret::new("rt-2")));
    /// ```
    pub fn with_rotated_refresh_token(self, refresh_token: Secret) -> Self {
        let (error, _replaced) = self.take_rotated_refresh_token();
        Self::Rotated(Box::new(RotatedRefusal {
            error,
            refresh_token,
        }))
    }

    /// The error without a rotated refresh token, and the token when there was one
    /// ([`Error::Rotated`]); any other error comes back as it is, with `None`.
    pub fn take_rotated_refresh_token(self) -> (Self, Option<Secret>) {
        match self {
            Self::Rotated(refusal) => {
                let RotatedRefusal {
                    error,
                    refresh_token,
                } = *refusal;
                (error, Some(refresh_token))
            }
            other => (other, None),
        }
    }

    /// Whether trying again later may succeed (network trouble, rate limits, 5xx, garbled
    /// answers) as opposed to a problem that only a change of configuration or a person can fix.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. }
            | Self::Transport { .. }
            | Self::Timeout(_)
            | Self::TimedOut { .. }
            | Self::Malformed { .. }
            | Self::TooLarge { .. }
            | Self::StoreBusy { .. }
            | Self::StoreUnavailable { .. }
            | Self::StoreFenced { .. } => true,
            Self::Status { status } => *status == 408 || *status >= 500,
            Self::Unavailable { .. } => true,
            Self::Config { .. }
            | Self::Rejected { .. }
            | Self::UserAction { .. }
            | Self::Store { .. } => false,
            Self::Rotated(refusal) => refusal.error.is_transient(),
        }
    }

    /// Whether the request behind this error may have reached the server: `false` only for a
    /// transport failure that provably happened before any byte of it left this process (the
    /// connection refused, a name that did not resolve: [`SendError::not_sent`]). A cache that
    /// sent a refresh token counts its answer as lost unless this is `false` or the server
    /// answered.
    ///
    /// [`SendError::not_sent`]: crate::http::SendError::not_sent
    pub fn may_have_reached_server(&self) -> bool {
        !matches!(self, Self::Transport { source, .. } if source.is::<NotSent>())
    }

    /// This error marked as one whose request never left this process (see
    /// [`may_have_reached_server`](Self::may_have_reached_server)); only a transport error
    /// carries the mark, and its message is unchanged.
    pub(crate) fn into_not_sent(self) -> Self {
        match self {
            Self::Transport { source, address } if !source.is::<NotSent>() => Self::Transport {
                source: SharedSource(Arc::new(NotSent(source))),
                address,
            },
            other => other,
        }
    }

    /// How long the provider asked us to wait, when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            Self::Unavailable { retry_after, .. } => Some(*retry_after),
            Self::Rotated(refusal) => refusal.error.retry_after(),
            _ => None,
        }
    }

    /// The HTTP status behind the error, when there is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Rejected { status, .. } => *status,
            Self::Status { status } | Self::Unavailable { status, .. } => Some(*status),
            Self::RateLimited { .. } => Some(429),
            Self::Rotated(refusal) => refusal.error.status(),
            _ => None,
        }
    }

    /// Whether the credentials themselves were refused.
    pub fn is_rejected(&self) -> bool {
        match self {
            Self::Rotated(refusal) => refusal.error.is_rejected(),
            _ => matches!(self, Self::Rejected { .. }),
        }
    }

    /// Whether a person must act (new session token, new login).
    pub fn needs_user_action(&self) -> bool {
        match self {
            Self::Rotated(refusal) => refusal.error.needs_user_action(),
            _ => matches!(self, Self::UserAction { .. }),
        }
    }
}

/// The messages of an error and its sources, joined with `: `.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let msg = e.to_string();
        if !out.ends_with(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = e.source();
    }
    out
}

/// A transport error's source, marked as never sent ([`Error::may_have_reached_server`]); it
/// reads as the source it wraps.
#[derive(Debug)]
struct NotSent(SharedSource);

impl std::fmt::Display for NotSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for NotSent {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// What a rejection with `status` refused, as its message opens.
fn rejected_subject(status: Option<u16>) -> &'static str {
    match status {
        None | Some(400 | 401 | 403) => "credentials rejected",
        Some(404) => "not found",
        Some(409) => "conflict",
        Some(422) => "invalid request",
        Some(_) => "request rejected",
    }
}

fn rejected_suffix(status: Option<u16>, code: Option<&str>, description: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(status) = status {
        s.push_str(&format!(" (HTTP {status})"));
    }
    match (code, description) {
        (Some(c), Some(d)) => s.push_str(&format!(": {c}: {d}")),
        (Some(c), None) => s.push_str(&format!(": {c}")),
        (None, Some(d)) => s.push_str(&format!(": {d}")),
        (None, None) => {}
    }
    s
}

fn address_suffix(address: Option<&str>) -> String {
    address
        .map(|a| format!(" reaching {a}"))
        .unwrap_or_default()
}

/// `3 attempts to api.aerion.app:443, each cut off at 30s`, or `1 attempt to …, cut off at …`.
fn attempts_text(attempts: u32, address: &str, per_attempt: Duration) -> String {
    let limit = if per_attempt.subsec_nanos() == 0 {
        format!("{}s", per_attempt.as_secs())
    } else {
        format!("{per_attempt:?}")
    };
    if attempts == 1 {
        format!("1 attempt to {address}, cut off at {limit}")
    } else {
        format!("{attempts} attempts to {address}, each cut off at {limit}")
    }
}

fn timeout_suffix(limit: Duration) -> String {
    if limit.is_zero() {
        String::new()
    } else {
        format!(" after {limit:?}")
    }
}

impl From<reqwest::Error> for Error {
    /// A timeout becomes [`Error::Timeout`], anything else [`Error::Transport`]; the URL is
    /// stripped first, because a query string can carry a secret (a session token).
    fn from(err: reqwest::Error) -> Self {
        if err.is_timeout() {
            Self::Timeout(Duration::ZERO)
        } else {
            Self::transport(err.without_url())
        }
    }
}

fn retry_after_suffix(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|d| format!(" (retry after {}s)", d.as_secs()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::{MAX_PROVIDER_TEXT, scrub_secrets};

    fn assert_send_sync_static<T: Send + Sync + 'static>() {}

    #[test]
    fn error_is_send_sync_static() {
        assert_send_sync_static::<Error>();
    }

    #[test]
    fn messages_name_the_field_and_the_reason() {
        let e = Error::config("AERION_COMPANY_URL", "is required");
        assert_eq!(
            e.to_string(),
            "invalid configuration: `AERION_COMPANY_URL` is required"
        );
        let e = Error::rejected(Some(400), Some("invalid_grant"), Some("bad password"));
        assert_eq!(
            e.to_string(),
            "credentials rejected (HTTP 400): invalid_grant: bad password"
        );
        let e = Error::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            e.to_string(),
            "rate limited by the provider (retry after 7s)"
        );
    }

    #[test]
    fn a_rejection_says_what_was_rejected() {
        let said = |status| Error::rejected(status, None, Some("Email taken")).to_string();
        assert_eq!(said(None), "credentials rejected: Email taken");
        for status in [400, 401, 403] {
            assert_eq!(
                said(Some(status)),
                format!("credentials rejected (HTTP {status}): Email taken")
            );
        }
        assert_eq!(said(Some(404)), "not found (HTTP 404): Email taken");
        assert_eq!(said(Some(409)), "conflict (HTTP 409): Email taken");
        assert_eq!(said(Some(422)), "invalid request (HTTP 422): Email taken");
        assert_eq!(said(Some(418)), "request rejected (HTTP 418): Email taken");
        // Only credential refusals blame the credentials.
        for status in [404, 409, 410, 422] {
            assert!(!said(Some(status)).contains("credentials"), "{status}");
        }
    }

    #[test]
    fn provider_text_is_cleaned() {
        let long = "x".repeat(5_000);
        let e = Error::rejected(None, Some("bad\r\ncode"), Some(&long));
        let Error::Rejected {
            code, description, ..
        } = &e
        else {
            unreachable!()
        };
        assert_eq!(code.as_deref(), Some("badcode"));
        assert!(description.as_ref().unwrap().chars().count() <= MAX_PROVIDER_TEXT + 1);
    }

    #[test]
    fn echoed_secrets_are_scrubbed_from_rejections() {
        let password = Secret::new("hunter2-pw");
        let key = Secret::new("sk_key");
        let empty = Secret::new("");
        let e = Error::rejected_scrubbed(
            Some(400),
            Some("bad sk_key"),
            Some("password hunter2-pw is wrong; hunter2-pw again; hunter\n2-pw split"),
            &[&password, &key, &empty],
        );
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("hunter2-pw"), "{shown}");
        assert!(!shown.contains("sk_key"), "{shown}");
        assert_eq!(
            e.to_string(),
            "credentials rejected (HTTP 400): bad [redacted]: password [redacted] is wrong; \
             [redacted] again; [redacted] split"
        );
        // A secret straddling the length cap is scrubbed before the cap, not cut in half.
        let long = format!("{}hunter2-pw", "x".repeat(MAX_PROVIDER_TEXT - 4));
        let e = Error::rejected_scrubbed(None, None, Some(&long), &[&password]);
        assert!(!format!("{e:?}").contains("hunt"), "{e:?}");
        assert_eq!(scrub_secrets("a sk_key b", &[&key]), "a [redacted] b");
        assert_eq!(scrub_secrets("nothing here", &[&empty]), "nothing here");
    }

    #[test]
    fn encoded_overlapping_and_split_secrets_are_scrubbed() {
        let password = Secret::new("p@ss word+1");
        let inner = Secret::new("word");
        let e = Error::rejected_scrubbed(
            Some(400),
            Some("invalid_grant"),
            Some("bad password=p%40ss+word%2B1, or p%40ss%20word%2B1, or p@ss wo\u{200B}rd+1"),
            &[&inner, &password],
        );
        let msg = e.to_string();
        for leak in ["p%40ss", "p@ss", "ss wo", "word"] {
            assert!(!msg.contains(leak), "{msg}");
        }
        assert!(msg.contains("[redacted]"), "{msg}");
    }

    #[test]
    fn transient_classification() {
        assert!(Error::Status { status: 503 }.is_transient());
        assert!(Error::Status { status: 408 }.is_transient());
        assert!(!Error::Status { status: 302 }.is_transient());
        assert!(Error::Timeout(Duration::from_secs(1)).is_transient());
        assert!(Error::RateLimited { retry_after: None }.is_transient());
        assert!(!Error::rejected(Some(401), None, None).is_transient());
        assert!(!Error::user_action("new session token").is_transient());
        assert!(!Error::config("x", "y").is_transient());
    }

    #[test]
    fn a_rotated_refresh_token_is_never_shown_and_the_error_answers_as_its_own() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let refresh_token = Secret::new("rt-ROTATED-never-shown");
        for inner in [
            Error::malformed("aerion token response: token_type `mac` is not Bearer"),
            Error::rejected(Some(401), Some("invalid_client"), None),
            Error::unavailable(503, Duration::from_secs(9)),
            Error::user_action("sign in again"),
            Error::transport(io),
        ] {
            let err = inner
                .clone()
                .with_rotated_refresh_token(refresh_token.clone());
            for shown in [
                err.to_string(),
                format!("{err:?}"),
                format!("{err:#?}"),
                error_chain(&err),
                format!("{:?}", err.clone()),
            ] {
                assert!(!shown.contains("ROTATED"), "{shown}");
            }
            assert_eq!(err.to_string(), inner.to_string());
            assert_eq!(error_chain(&err), error_chain(&inner));
            assert_eq!(err.is_transient(), inner.is_transient());
            assert_eq!(err.retry_after(), inner.retry_after());
            assert_eq!(err.status(), inner.status());
            assert_eq!(err.is_rejected(), inner.is_rejected());
            assert_eq!(err.needs_user_action(), inner.needs_user_action());

            let (taken, token) = err.clone().take_rotated_refresh_token();
            assert_eq!(token.as_ref(), Some(&refresh_token));
            assert_eq!(format!("{taken:?}"), format!("{inner:?}"));
        }
        // Wrapping again keeps the newer token; an error without one gives none.
        let err = Error::malformed("x")
            .with_rotated_refresh_token(Secret::new("rt-old"))
            .with_rotated_refresh_token(Secret::new("rt-new"));
        let (err, token) = err.take_rotated_refresh_token();
        assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
        assert_eq!(token, Some(Secret::new("rt-new")));
        assert!(err.take_rotated_refresh_token().1.is_none());
    }

    #[test]
    fn source_chain_is_intact_and_duplicates_keep_it() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::transport(io);
        let src = std::error::Error::source(&e).expect("source");
        assert_eq!(src.to_string(), "refused");
        assert!(src.downcast_ref::<std::io::Error>().is_some(), "{src:?}");
        let d = e.clone();
        assert!(matches!(d, Error::Transport { .. }));
        let src = std::error::Error::source(&d).unwrap();
        assert_eq!(src.to_string(), "refused");
        assert_eq!(
            src.downcast_ref::<std::io::Error>()
                .map(std::io::Error::kind),
            Some(std::io::ErrorKind::ConnectionRefused)
        );
        assert_eq!(format!("{d:?}"), format!("{e:?}"));
        assert_eq!(error_chain(&d), error_chain(&e));

        let store = Error::store("cannot read", std::io::Error::other("disk"));
        let copy = store.clone();
        let src = std::error::Error::source(&copy).expect("source");
        assert!(src.downcast_ref::<std::io::Error>().is_some(), "{src:?}");
        assert_eq!(format!("{copy:?}"), format!("{store:?}"));
    }
}
