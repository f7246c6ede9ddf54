//! [`Request`] and [`Response`]: a request kept whole so it can be sent again, stating whether it
//! may be; a response with its whole body, its `Date` read as the provider's clock, and whether
//! it says the URL leads to no token endpoint ([`wrong_endpoint`]).

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use super::error_body::{OAuthError, ProviderWords, parse_json, status_error};
use crate::{ClockOffset, Error, Secret};

/// What sending a request means, which decides whether it may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Sending it again does no harm: it reads something (discovery, a user lookup), or what it
    /// presents is not used up by being presented (a client-credentials or password grant, an
    /// application key). Repeated under the [`RetryPolicy`](super::RetryPolicy).
    Safe,
    /// It spends something (a rotating refresh token, a single-use session token, a Client SDK
    /// session, an invitation): repeated only when the previous attempt provably never reached
    /// the server (connection refused, a name that did not resolve, a refused TLS handshake).
    Once,
}

/// A request for [`HttpClient::execute`](super::HttpClient::execute): kept whole so it can be sent again on a retry.
///
/// It remembers the secrets it carries ([`bearer`](Self::bearer),
/// [`basic_auth`](Self::basic_auth), [`secret_header`](Self::secret_header),
/// [`secret_form`](Self::secret_form), [`secret_query`](Self::secret_query)), and hands them to
/// its [`Response`]: an error built from the response is scrubbed of them, with no list to keep.
#[derive(Clone)]
pub struct Request {
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) headers: HeaderMap,
    pub(super) body: Option<Bytes>,
    pub(super) repeat: Repeat,
    pub(super) secrets: Vec<Secret>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the query (it can hold a session token) nor header values nor the body.
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("host", &self.url.host_str())
            .field("path", &self.url.path())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("repeat", &self.repeat)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// A request with no body, stating whether it may be repeated.
    pub fn new(method: Method, url: Url, repeat: Repeat) -> Self {
        Self {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            repeat,
            secrets: Vec::new(),
        }
    }

    /// A `GET`: safe to repeat, as HTTP defines it.
    pub fn get(url: Url) -> Self {
        Self::new(Method::GET, url, Repeat::Safe)
    }

    /// A `POST`, stating whether it may be repeated: HTTP makes no promise for a `POST`, so the
    /// caller says what this one spends.
    pub fn post(url: Url, repeat: Repeat) -> Self {
        Self::new(Method::POST, url, repeat)
    }

    /// Whether the request may be repeated.
    pub fn repeat(&self) -> Repeat {
        self.repeat
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

    /// Adds a header whose value is a secret: marked sensitive so no HTTP layer prints it, and
    /// remembered.
    pub fn secret_header(mut self, name: HeaderName, value: &Secret) -> Result<Self, Error> {
        let mut header = HeaderValue::from_str(value.expose_secret()).map_err(|_| {
            Error::config(
                name.as_str().to_owned(),
                "contains characters not allowed in an HTTP header",
            )
        })?;
        header.set_sensitive(true);
        self.headers.insert(name, header);
        self.secrets.push(value.clone());
        Ok(self)
    }

    /// `Authorization: Bearer <secret>`.
    pub fn bearer(self, secret: &Secret) -> Result<Self, Error> {
        let value = Secret::new(format!("Bearer {}", secret.expose_secret()));
        let mut request = self.secret_header(AUTHORIZATION, &value)?;
        request.secrets.push(secret.clone());
        Ok(request)
    }

    /// `Authorization: Basic <base64(id:secret)>` with both parts form-urlencoded first, as
    /// RFC 6749 section 2.3.1 asks.
    pub fn basic_auth(self, id: &str, secret: &Secret) -> Result<Self, Error> {
        let raw = format!(
            "{}:{}",
            form_urlencode(id),
            form_urlencode(secret.expose_secret())
        );
        let value = Secret::new(format!("Basic {}", STANDARD.encode(raw)));
        let mut request = self.secret_header(AUTHORIZATION, &value)?;
        request.secrets.push(secret.clone());
        Ok(request)
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

    /// A form-encoded body of `fields` and of `secret_fields`, whose values are remembered.
    pub fn secret_form(
        mut self,
        fields: &[(&str, &str)],
        secret_fields: &[(&str, &Secret)],
    ) -> Self {
        let secrets = secret_fields
            .iter()
            .map(|(name, value)| (*name, value.expose_secret()));
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .extend_pairs(secrets)
            .finish();
        self.secrets
            .extend(secret_fields.iter().map(|(_, value)| (*value).clone()));
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

    /// Appends a query parameter whose value is a secret, and remembers it. (Errors and logs
    /// never show a query; a server may echo it.)
    pub fn secret_query(mut self, key: &str, value: &Secret) -> Self {
        self.url
            .query_pairs_mut()
            .append_pair(key, value.expose_secret());
        self.secrets.push(value.clone());
        self
    }

    /// The secrets this request carries, which errors built from its response are scrubbed of.
    pub fn secrets(&self) -> &[Secret] {
        &self.secrets
    }
}

/// A response with its whole body (at most the size cap), and the secrets its request carried.
#[derive(Clone)]
pub struct Response {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    /// What the request carried ([`Request::secrets`]): scrubbed from every error built here.
    pub(super) secrets: Vec<Secret>,
    /// Whether the `Date` header tells the provider's clock
    /// ([`HttpClientBuilder::provider_clock`](super::HttpClientBuilder::provider_clock)).
    pub(super) read_date: bool,
}

/// Offsets between a provider's `Date` and this host's clock up to this are not corrected: the
/// header has a resolution of one second and the answer spent part of a round trip on its way.
pub const DATE_TOLERANCE: Duration = Duration::from_secs(2);

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
    /// A response from its parts: what a test or an adapter over another HTTP stack hands to
    /// the readers here.
    pub fn new(status: StatusCode, headers: HeaderMap, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers,
            body: body.into(),
            secrets: Vec::new(),
            read_date: true,
        }
    }

    /// How far the provider's clock is from this host's, read from the `Date` header against
    /// `now`, this host's time when the answer arrived (read just after it);
    /// [`ClockOffset::None`] within [`DATE_TOLERANCE`], and `None` without a readable `Date` or
    /// from a client that does not read it.
    pub fn provider_offset(&self, now: SystemTime) -> Option<ClockOffset> {
        if !self.read_date {
            return None;
        }
        let date = self.headers.get(http::header::DATE)?.to_str().ok()?;
        // The header drops the fraction of a second: the provider's clock read up to a second
        // more. The latest it can have read is taken, so an expiry errs early.
        let date = httpdate::parse_http_date(date).ok()? + Duration::from_secs(1);
        let offset = ClockOffset::between(now, date);
        Some(if offset.magnitude() <= DATE_TOLERANCE {
            ClockOffset::None
        } else {
            offset
        })
    }

    /// `at`, an absolute time the provider sent (an expiry), on this host's clock, which reads
    /// `now` as the answer arrives: the provider's clock is estimated from its `Date` header
    /// ([`provider_offset`](Self::provider_offset)), so a host whose clock is off judges the
    /// time as the provider does. Unchanged without a readable `Date`.
    pub fn local_time(&self, at: SystemTime, now: SystemTime) -> SystemTime {
        self.provider_offset(now)
            .map_or(at, |offset| offset.undo(at))
    }

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
    /// words are read from the body by [`ProviderWords::from_body`] (never the body itself),
    /// scrubbed of every secret the request carried ([`Request::secrets`]).
    pub fn error(&self) -> Error {
        self.error_scrubbed(&[])
    }

    /// [`error`](Self::error), scrubbed also of `secrets`: ones the request did not carry but
    /// the provider might name (a password a refresh stands in for, say).
    pub fn error_scrubbed(&self, secrets: &[&Secret]) -> Error {
        let mut all: Vec<&Secret> = self.secrets.iter().collect();
        all.extend_from_slice(secrets);
        status_error(
            self.status.as_u16(),
            &ProviderWords::from_body(&self.body),
            &all,
        )
    }

    /// The secrets the request carried ([`Request::secrets`]), for a provider that builds its
    /// errors from the response's parts: scrub them as [`error`](Self::error) does.
    pub fn secrets(&self) -> &[Secret] {
        &self.secrets
    }

    /// This response, its `Date` read or not.
    pub(super) fn dated(mut self, dated: bool) -> Self {
        self.read_date = dated;
        self
    }

    /// This response, remembering the secrets its request carried.
    pub(super) fn carrying(mut self, secrets: &[Secret]) -> Self {
        self.secrets = secrets.to_vec();
        self
    }
}

/// The configuration error for a token endpoint at `url` whose answer says the URL leads to no
/// such endpoint: a 404, or an HTML page with a success status (a web site's page where an API
/// was meant). `None` for any other answer.
///
/// The error is [`Error::Config`] naming `setting` (the variable or builder field the URL comes
/// from) and the URL without its query, which can carry a secret (a session token).
/// `explanation` says what else a 404 there can mean (an id in the path that names nothing).
///
/// ```
/// use token_provider::http::{Response, wrong_endpoint};
///
/// let url = url::Url::parse("https://api.example.com/wrong/oauth2/token?k=secret").unwrap();
/// let response = Response::new(http::StatusCode::NOT_FOUND, http::HeaderMap::new(), "");
/// let err = wrong_endpoint("EXAMPLE_BASE_URL", &url, &response, None).unwrap();
/// assert_eq!(
///     err.to_string(),
///     "invalid configuration: `EXAMPLE_BASE_URL` leads to no token endpoint: \
///      https://api.example.com/wrong/oauth2/token answered HTTP 404"
/// );
/// ```
pub fn wrong_endpoint(
    setting: &str,
    url: &Url,
    response: &Response,
    explanation: Option<&str>,
) -> Option<Error> {
    let status = response.status();
    let answered = if status == http::StatusCode::NOT_FOUND {
        let why = explanation.map(|e| format!(" ({e})")).unwrap_or_default();
        format!("HTTP 404{why}")
    } else if status.is_success() && is_html(response) {
        format!("with an HTML page (HTTP {})", status.as_u16())
    } else {
        return None;
    };
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let shown = format!(
        "{}://{}{port}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.path()
    );
    Some(Error::config(
        setting,
        format!("leads to no token endpoint: {shown} answered {answered}"),
    ))
}

/// Whether a response is an HTML page: by its `Content-Type`, or without one by how its body
/// starts. (HTML labelled as JSON is a garbled answer from the right place, not a web page.)
fn is_html(response: &Response) -> bool {
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("").trim_start().to_ascii_lowercase());
    if let Some(content_type) = content_type {
        return content_type.starts_with("text/html");
    }
    let body = response.body();
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |at| &body[at..body.len().min(at + 14)]);
    let start = start.to_ascii_lowercase();
    start.starts_with(b"<!doctype html") || start.starts_with(b"<html")
}

fn form_urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_404_or_an_html_page_is_a_wrong_endpoint() {
        let url =
            Url::parse("http://127.0.0.1:8080/base/oauth2/token?session_token=SECRET").unwrap();
        let answer = |status: u16, content_type: Option<&str>, body: &str| {
            let mut headers = http::HeaderMap::new();
            if let Some(t) = content_type {
                headers.insert(http::header::CONTENT_TYPE, t.parse().unwrap());
            }
            let response = Response::new(
                http::StatusCode::from_u16(status).unwrap(),
                headers,
                body.to_owned(),
            );
            wrong_endpoint("BASE", &url, &response, Some("no such tenant")).map(|e| e.to_string())
        };
        let at = "invalid configuration: `BASE` leads to no token endpoint: \
                  http://127.0.0.1:8080/base/oauth2/token answered";
        assert_eq!(
            answer(404, Some("application/json"), r#"{"error":"not_found"}"#).as_deref(),
            Some(format!("{at} HTTP 404 (no such tenant)").as_str())
        );
        assert_eq!(
            answer(200, Some("Text/HTML; charset=utf-8"), "hi").as_deref(),
            Some(format!("{at} with an HTML page (HTTP 200)").as_str())
        );
        assert_eq!(
            answer(200, None, "\n  <!DOCTYPE html><p>").as_deref(),
            Some(format!("{at} with an HTML page (HTTP 200)").as_str())
        );
        // An error page of a server that is there (a 5xx, a 401) is not a wrong URL, nor is
        // JSON.
        assert_eq!(answer(502, Some("text/html"), "<html>"), None);
        assert_eq!(answer(401, Some("text/html"), "<html>"), None);
        assert_eq!(answer(200, Some("application/json"), "{}"), None);
        assert_eq!(answer(200, Some("application/json"), "<html>"), None);
    }

    #[test]
    fn basic_auth_is_rfc4648_base64_with_padding() {
        let url = Url::parse("https://h/x").unwrap();
        for (id, secret, want) in [
            ("a", "b", "Basic YTpi"),
            ("ab", "c", "Basic YWI6Yw=="),
            ("ab", "cd", "Basic YWI6Y2Q="),
            ("foo", "bar", "Basic Zm9vOmJhcg=="),
        ] {
            let request = Request::post(url.clone(), Repeat::Safe)
                .basic_auth(id, &Secret::new(secret))
                .unwrap();
            assert_eq!(request.headers[AUTHORIZATION], want);
        }
    }

    #[test]
    fn posts_state_their_repeat_and_gets_are_safe() {
        let url = Url::parse("https://h/x").unwrap();
        assert_eq!(Request::get(url.clone()).repeat(), Repeat::Safe);
        assert_eq!(
            Request::post(url.clone(), Repeat::Once).repeat(),
            Repeat::Once
        );
        assert!(format!("{:?}", Request::post(url, Repeat::Once)).contains("Once"));
    }
}
