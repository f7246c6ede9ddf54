//! Aerion's token body, as the `oauth2` crate sees it.
//!
//! Aerion answers in "standard OAuth 2.0" form with two liberties the stock `oauth2` types refuse:
//! `expires_in` may be a string, and `token_type` may be lowercase `bearer` (the core's one
//! token-type rule decides what it means). Its errors come either as
//! `{"error","error_description"}` or as `{"error","status","summary","raw"}`; the core's
//! lenient reader (`ProviderWords`) reads both, and never the `raw` field.

use std::fmt;
use std::time::Duration;

use oauth2::{AccessToken, RefreshToken, Scope, TokenResponse, TokenType};
use serde::{Deserialize, Deserializer, Serialize};
use token_provider::Secret;

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

/// The refresh token of a token body refused as malformed (a field missing or unreadable): the
/// answer may have rotated the refresh token all the same. `None` when the body is not a JSON
/// object or holds no non-empty string `refresh_token`.
pub(crate) fn refresh_token_of(body: &[u8]) -> Option<Secret> {
    #[derive(Deserialize)]
    struct Rotation {
        #[serde(default, deserialize_with = "lenient_string")]
        refresh_token: Option<String>,
    }
    let rotation: Rotation = serde_json::from_slice(body).ok()?;
    rotation
        .refresh_token
        .filter(|r| !r.is_empty())
        .map(Secret::new)
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
    use token_provider::http::json_error_detail;

    use super::*;

    fn malformed(what: &str, err: &serde_json::Error) -> String {
        format!("{what}: {}", json_error_detail(err))
    }

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
            let e = malformed("aerion token response", &e);
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("SECRET"), "{e}");
        }
        let e = malformed("x", &token(r#"{"access_token":7}"#).unwrap_err());
        assert!(e.contains("unexpected type"), "{e}");
    }

    #[test]
    fn a_refused_body_still_gives_its_refresh_token() {
        for body in [
            r#"{"access_token":"a","expires_in":"soon","refresh_token":"rt-2"}"#,
            r#"{"access_token":"","refresh_token":"rt-2"}"#,
            r#"{"access_token":7,"token_type":["x"],"refresh_token":"rt-2"}"#,
            r#"{"refresh_token":"rt-2"}"#,
        ] {
            assert!(token(body).is_err(), "{body}");
            let rt = refresh_token_of(body.as_bytes());
            assert_eq!(
                rt.as_ref().map(Secret::expose_secret),
                Some("rt-2"),
                "{body}"
            );
        }
        for body in [
            r#"{"access_token":"a","expires_in":"soon"}"#,
            r#"{"access_token":"a","refresh_token":""}"#,
            r#"{"access_token":"a","refresh_token":7}"#,
            r#"{"refresh_token":"rt-2""#,
            "not json",
            "[]",
        ] {
            assert!(refresh_token_of(body.as_bytes()).is_none(), "{body}");
        }
    }
}
