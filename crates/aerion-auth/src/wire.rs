//! Aerion's token and error bodies, as the `oauth2` crate sees them, and their translation into
//! the core's [`Error`].
//!
//! Aerion answers in "standard OAuth 2.0" form with two liberties the stock `oauth2` types refuse:
//! `expires_in` may be a string, and `token_type` may be lowercase `bearer`. Its errors come
//! either as `{"error","error_description"}` or as `{"error","status","summary","raw"}`; the
//! `raw` field is the provider's raw text and is never even read.

use std::fmt;
use std::time::Duration;

use oauth2::{AccessToken, ErrorResponse, RefreshToken, Scope, TokenResponse, TokenType};
use serde::{Deserialize, Deserializer, Serialize};
use token_provider::Error;

/// The token type as Aerion spells it (`bearer`, `Bearer`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct AerionTokenType(pub(crate) String);

impl TokenType for AerionTokenType {}

/// A successful token response. Unknown fields are ignored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(try_from = "RawTokenResponse")]
pub(crate) struct AerionTokenResponse {
    access_token: AccessToken,
    token_type: AerionTokenType,
    expires_in: Option<u64>,
    refresh_token: Option<RefreshToken>,
    scope: Option<String>,
    #[serde(skip)]
    scopes: Option<Vec<Scope>>,
}

impl AerionTokenResponse {
    /// The granted scope as the provider wrote it.
    pub(crate) fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }
}

impl TokenResponse for AerionTokenResponse {
    type TokenType = AerionTokenType;

    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &AerionTokenType {
        &self.token_type
    }

    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }

    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scopes.as_ref()
    }
}

#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<Lifetime>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    scope: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Lifetime {
    Whole(u64),
    Fractional(f64),
    Text(String),
}

/// Why a token body was refused. The messages name a field and never quote its value.
#[derive(Debug)]
pub(crate) struct FieldError(&'static str);

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl TryFrom<RawTokenResponse> for AerionTokenResponse {
    type Error = FieldError;

    fn try_from(raw: RawTokenResponse) -> Result<Self, FieldError> {
        if raw.access_token.trim().is_empty() {
            return Err(FieldError("field `access_token` is empty"));
        }
        let expires_in = match raw.expires_in {
            None => None,
            Some(Lifetime::Whole(s)) => Some(s),
            Some(Lifetime::Fractional(s)) if s.is_finite() && s >= 0.0 => Some(s as u64),
            Some(Lifetime::Text(t)) if t.trim().is_empty() => None,
            Some(Lifetime::Text(t)) => match t.trim().parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => Some(s as u64),
                _ => return Err(FieldError("field `expires_in` is not a number of seconds")),
            },
            Some(Lifetime::Fractional(_)) => {
                return Err(FieldError("field `expires_in` is not a number of seconds"));
            }
        };
        let scopes = raw.scope.as_deref().map(|s| {
            s.split_whitespace()
                .map(|s| Scope::new(s.to_owned()))
                .collect()
        });
        Ok(Self {
            access_token: AccessToken::new(raw.access_token),
            token_type: AerionTokenType(
                raw.token_type
                    .filter(|t| !t.trim().is_empty())
                    .unwrap_or_else(|| "Bearer".to_owned()),
            ),
            expires_in,
            // An empty refresh token is no refresh token: the old one is kept.
            refresh_token: raw
                .refresh_token
                .filter(|r| !r.is_empty())
                .map(RefreshToken::new),
            scope: raw.scope,
            scopes,
        })
    }
}

/// An error body in either of Aerion's shapes. Every field is optional and of any JSON type, so
/// any JSON object parses; `raw` is not a field here on purpose.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct AerionErrorResponse {
    #[serde(default, deserialize_with = "lenient_string")]
    error: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    error_description: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    summary: Option<String>,
}

impl AerionErrorResponse {
    /// The error code (`invalid_grant`, ...).
    pub(crate) fn code(&self) -> Option<&str> {
        self.error.as_deref().filter(|s| !s.trim().is_empty())
    }

    /// The provider's explanation: `error_description`, else `summary`.
    pub(crate) fn description(&self) -> Option<&str> {
        self.error_description
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| self.summary.as_deref().filter(|s| !s.trim().is_empty()))
    }

    /// The body of an error response, if it is a JSON object.
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }
}

impl fmt::Display for AerionErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code(), self.description()) {
            (Some(c), Some(d)) => write!(f, "{c}: {d}"),
            (Some(c), None) => f.write_str(c),
            (None, Some(d)) => f.write_str(d),
            (None, None) => f.write_str("unspecified error"),
        }
    }
}

impl ErrorResponse for AerionErrorResponse {}

/// The error for a non-success answer with HTTP `status` and, when it parsed, its `body`.
///
/// 400, 401 and 403 are rejections; so is another 4xx that carries an error code or text (the
/// provider said what is wrong). Anything else is [`Error::Status`].
pub(crate) fn error_for_status(status: u16, body: Option<&AerionErrorResponse>) -> Error {
    let code = body.and_then(AerionErrorResponse::code);
    let description = body.and_then(AerionErrorResponse::description);
    let worded = code.is_some() || description.is_some();
    match status {
        400 | 401 | 403 => Error::rejected(Some(status), code, description),
        402..=499 if worded => Error::rejected(Some(status), code, description),
        _ => Error::Status { status },
    }
}

/// A JSON parse failure, described without quoting the body: only serde's "missing field"
/// messages and this module's own field messages (they name a field, not a value) are kept.
pub(crate) fn malformed(what: &str, err: &serde_json::Error) -> Error {
    use serde_json::error::Category;
    let msg = err.to_string();
    let own = msg.starts_with("missing field") || msg.starts_with("field `");
    let detail = match err.classify() {
        Category::Data if own => msg.split(" at line").next().unwrap_or("a field is wrong"),
        Category::Data => "a field has an unexpected type or value",
        Category::Syntax => "not valid JSON",
        Category::Eof => "truncated JSON",
        Category::Io => "unreadable body",
    };
    Error::malformed(format!("{what}: {detail}"))
}

/// A string field that tolerates any JSON type: a string is kept, anything else (a number, an
/// object, null) reads as absent rather than failing the whole body.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(body: &str) -> Result<AerionTokenResponse, serde_json::Error> {
        serde_json::from_str(body)
    }

    #[test]
    fn lenient_token_bodies() {
        let t = token(
            r#"{"access_token":"a","token_type":"bearer","expires_in":"3600","extra":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(t.expires_in(), Some(Duration::from_secs(3600)));
        assert_eq!(t.token_type().0, "bearer");
        assert!(t.refresh_token().is_none());
        let t = token(r#"{"access_token":"a","expires_in":3599.9,"refresh_token":""}"#).unwrap();
        assert_eq!(t.expires_in(), Some(Duration::from_secs(3599)));
        assert_eq!(t.token_type().0, "Bearer");
        assert!(t.refresh_token().is_none());
        let t = token(r#"{"access_token":"a","expires_in":null,"scope":"read write"}"#).unwrap();
        assert_eq!(t.expires_in(), None);
        assert_eq!(t.scopes().map(Vec::len), Some(2));
        assert_eq!(t.scope(), Some("read write"));
    }

    #[test]
    fn bad_token_bodies_name_the_field_not_the_value() {
        for (body, want) in [
            (
                r#"{"access_token":"a","expires_in":"soon-SECRET"}"#,
                "expires_in",
            ),
            (r#"{"access_token":"a","expires_in":-5}"#, "expires_in"),
            (r#"{"access_token":""}"#, "access_token"),
            (r#"{"token_type":"bearer"}"#, "missing field `access_token`"),
        ] {
            let e = token(body).unwrap_err();
            let e = malformed("aerion token response", &e).to_string();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("SECRET"), "{e}");
        }
        let e = malformed("x", &token(r#"{"access_token":7}"#).unwrap_err()).to_string();
        assert!(e.contains("unexpected type"), "{e}");
    }

    #[test]
    fn both_error_shapes_and_no_raw() {
        let e = AerionErrorResponse::parse(
            br#"{"error":"invalid_grant","error_description":"Bad credentials"}"#,
        )
        .unwrap();
        assert_eq!(e.code(), Some("invalid_grant"));
        assert_eq!(e.description(), Some("Bad credentials"));
        let e = AerionErrorResponse::parse(
            br#"{"error":"unauthorized","status":401,"summary":"Invalid login","raw":"RAW-XYZ"}"#,
        )
        .unwrap();
        assert_eq!(e.to_string(), "unauthorized: Invalid login");
        assert!(!format!("{e:?} {}", serde_json::to_string(&e).unwrap()).contains("RAW-XYZ"));
        let e = AerionErrorResponse::parse(br#"{"error":true,"status":"500"}"#).unwrap();
        assert_eq!(e.code(), None);
        assert!(AerionErrorResponse::parse(b"<html>").is_none());
    }

    #[test]
    fn statuses_map_to_variants() {
        let body = AerionErrorResponse::parse(br#"{"error":"not_found"}"#).unwrap();
        assert!(error_for_status(401, None).is_rejected());
        assert!(error_for_status(404, Some(&body)).is_rejected());
        assert!(matches!(
            error_for_status(404, None),
            Error::Status { status: 404 }
        ));
        assert!(matches!(
            error_for_status(201, Some(&body)),
            Error::Status { status: 201 }
        ));
    }
}
