//! Error answers: the provider's words read from a body (never the body itself), the error a
//! status stands for, JSON errors that never quote the input, and the one token-type rule.

use std::fmt;

use serde::de::DeserializeOwned;

use crate::scrub::quote_provider_text;
use crate::{Error, Secret};

/// The standard OAuth 2.0 error body (RFC 6749 section 5.2).
///
/// `#[non_exhaustive]`: it is read from a body ([`Response::oauth_error`](super::Response::oauth_error)),
/// not built, and may gain a field of the RFC (`error_uri`) in a minor release.
#[derive(Debug, Clone, serde::Deserialize)]
#[non_exhaustive]
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

/// The one token-type rule every provider follows: a `token_type` of `bearer` in any case (or
/// none at all, which every provider here means as bearer) is a bearer token, printed `Bearer`;
/// anything else (`mac`, `DPoP`, a garbled word) is [`Error::Malformed`], since a token of
/// another type cannot be sent as `Authorization: Bearer`. `what` names the answer (`aerion
/// token response`); the provider's word is quoted cut short and without control characters.
pub fn bearer_token_type(token_type: Option<&str>, what: &str) -> Result<&'static str, Error> {
    match token_type.map(str::trim) {
        None | Some("") => Ok("Bearer"),
        Some(t) if t.eq_ignore_ascii_case("bearer") => Ok("Bearer"),
        Some(other) => Err(Error::malformed(format!(
            "{what}: token_type `{}` is not Bearer",
            quote_provider_text(other, 40)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_token_type_rule() {
        for ok in [
            None,
            Some(""),
            Some("bearer"),
            Some("BEARER"),
            Some(" Bearer "),
        ] {
            assert_eq!(bearer_token_type(ok, "x").unwrap(), "Bearer", "{ok:?}");
        }
        for bad in ["mac", "DPoP", "bearer2"] {
            let e = bearer_token_type(Some(bad), "x token response").unwrap_err();
            assert!(matches!(e, Error::Malformed { .. }), "{bad}");
            assert!(e.to_string().contains("not Bearer"), "{e}");
        }
        let e = bearer_token_type(Some("\u{1b}]0;x\u{7}\u{1b}[2J"), "x").unwrap_err();
        assert!(!e.to_string().chars().any(char::is_control), "{e:?}");
        let long = "m".repeat(500);
        assert!(
            bearer_token_type(Some(&long), "x")
                .unwrap_err()
                .to_string()
                .len()
                < 120
        );
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
