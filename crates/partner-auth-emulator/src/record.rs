//! Every request the emulator saw, kept whole for tests to inspect.

use base64::Engine;

use crate::fault::{Endpoint, Fault};

/// One request as it arrived. Holds secrets as sent (it is for test assertions); nothing here is
/// ever logged by the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The method, e.g. `POST`.
    pub method: String,
    /// The path as sent (still percent-encoded), e.g. `/aerion/oauth2/token`.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// Header names (lowercase) and values, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The endpoint the request addressed, when it addressed one.
    pub endpoint: Option<Endpoint>,
    /// The fault injected into the answer, if any.
    pub fault: Option<Fault>,
}

impl RecordedRequest {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The query parameters, decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .as_deref()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        first_value(self.query_pairs(), name)
    }

    /// The body as form fields (`application/x-www-form-urlencoded`), decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    /// The first value of a form field.
    pub fn form_param(&self, name: &str) -> Option<String> {
        first_value(self.form(), name)
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The token of an `Authorization: Bearer <token>` header.
    pub fn bearer(&self) -> Option<&str> {
        bearer_of(self.header("authorization")?)
    }

    /// The id and secret of an `Authorization: Basic` header, each form-urldecoded
    /// (RFC 6749 section 2.3.1).
    pub fn basic_auth(&self) -> Option<(String, String)> {
        basic_of(self.header("authorization")?)
    }
}

/// One Aerion refresh grant as the emulator processed it: what a provider's own log of refresh
/// tokens would show. A faulted request that was not processed is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AerionRefresh {
    /// The refresh token presented.
    pub presented: String,
    /// The access token issued for it; `None` when it was refused (`invalid_grant`).
    pub access_token: Option<String>,
    /// The refresh token issued in its place, when it was accepted and refresh tokens rotate.
    pub refresh_token: Option<String>,
}

impl AerionRefresh {
    /// Whether the refresh token was accepted.
    pub fn accepted(&self) -> bool {
        self.access_token.is_some()
    }
}

pub(crate) fn bearer_of(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub(crate) fn basic_of(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

fn form_decode(s: &str) -> String {
    percent_decode(s, true)
}

/// `%XX` decoded (and `+` as a space when `plus_is_space`); invalid escapes are kept as is.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first value of `name` among decoded `pairs`.
fn first_value(pairs: Vec<(String, String)>, name: &str) -> Option<String> {
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}
