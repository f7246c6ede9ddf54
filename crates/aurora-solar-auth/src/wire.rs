//! Parsers for what Aurora Solar sends back: the temporary key's `expires_at`, the Client SDK
//! JWT's `exp` claim, and error bodies.
//!
//! The two public parsers are exposed so that property tests (and curious callers) can feed them
//! arbitrary input; their errors never quote what they were given.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDateTime};
use serde_json::Value;
use token_provider::http::{ProviderWords, Response};
use token_provider::{Error, Secret};

/// The format of `expires_at` in a `create_token` answer: `2023-07-29 04:30:46 UTC`.
const EXPIRES_AT_FORMAT: &str = "%Y-%m-%d %H:%M:%S UTC";

/// Parses a temporary key's `expires_at`.
///
/// Accepts the documented `2023-07-29 04:30:46 UTC` form and, in case the API ever switches to
/// the more usual one, RFC 3339 (`2023-07-29T04:30:46Z`). Anything else is
/// [`Error::Malformed`], with a message that does not repeat the value.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let at = aurora_solar_auth::wire::parse_expires_at("2023-07-29 04:30:46 UTC").unwrap();
/// assert_eq!(at, UNIX_EPOCH + Duration::from_secs(1_690_605_046));
/// ```
pub fn parse_expires_at(value: &str) -> Result<SystemTime, Error> {
    let value = value.trim();
    if let Ok(naive) = NaiveDateTime::parse_from_str(value, EXPIRES_AT_FORMAT) {
        return Ok(SystemTime::from(naive.and_utc()));
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(SystemTime::from(at));
    }
    Err(Error::malformed(
        "create_token response: `expires_at` is not a date (expected `YYYY-MM-DD HH:MM:SS UTC` or RFC 3339)",
    ))
}

/// Reads the expiry of a Client SDK JWT from its `exp` claim.
///
/// The payload (the middle of the three dot-separated parts) is base64url-decoded and parsed as
/// JSON; `exp` must be a non-negative number of seconds since the Unix epoch. The signature is
/// **not** verified: the token is HS256-signed with a key only Aurora holds, and the client only
/// needs to know when to ask for a new one. Anything unreadable is [`Error::Malformed`], with a
/// message that never contains the token.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// // {"id":"u1","exp":1629926106}
/// let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6InUxIiwiZXhwIjoxNjI5OTI2MTA2fQ.c2ln";
/// let at = aurora_solar_auth::wire::jwt_expiry(jwt).unwrap();
/// assert_eq!(at, UNIX_EPOCH + Duration::from_secs(1_629_926_106));
/// ```
pub fn jwt_expiry(jwt: &str) -> Result<SystemTime, Error> {
    let mut parts = jwt.trim().split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::malformed(
            "generate_token response: the token is not a JWT (expected three dot-separated parts)",
        ));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| {
            Error::malformed("generate_token response: the JWT payload is not base64url")
        })?;
    let claims: Value = serde_json::from_slice(&bytes)
        .map_err(|_| Error::malformed("generate_token response: the JWT payload is not JSON"))?;
    let exp = claims.get("exp").and_then(exp_seconds).ok_or_else(|| {
        Error::malformed("generate_token response: the JWT has no valid `exp` claim")
    })?;
    UNIX_EPOCH
        .checked_add(Duration::from_secs(exp))
        .ok_or_else(|| Error::malformed("generate_token response: the JWT `exp` is out of range"))
}

/// `exp` as whole seconds: an integer, or a finite non-negative float (RFC 7519 allows
/// fractions).
fn exp_seconds(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    // Beyond u64::MAX seconds the claim is nonsense anyway.
    (0.0..1.8e19).contains(&f).then(|| f.floor() as u64)
}

/// The error a non-success answer stands for: the core's
/// [`status_error`](token_provider::http::status_error), which reads the provider's words
/// leniently (Aurora Solar does not document its error bodies), never quotes the body and cuts
/// out any of `secrets` echoed in them. The one thing that is Aurora Solar's own: a 404 the
/// provider did not explain is explained by `not_found`, and so is a rejection.
pub(crate) fn status_error(response: &Response, not_found: &str, secrets: &[&Secret]) -> Error {
    let status = response.status().as_u16();
    let mut words = ProviderWords::from_body(response.body());
    if status == 404 {
        words = words.or_description(not_found);
    }
    // What the request carried, besides what the caller names.
    let mut all: Vec<&Secret> = response.secrets().iter().collect();
    all.extend_from_slice(secrets);
    token_provider::http::status_error(status, &words, &all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_at_documented_form() {
        let at = parse_expires_at("2023-07-29 04:30:46 UTC").unwrap();
        assert_eq!(at, UNIX_EPOCH + Duration::from_secs(1_690_605_046));
        let at = parse_expires_at(" 2023-07-29 04:30:46 UTC\n").unwrap();
        assert_eq!(at, UNIX_EPOCH + Duration::from_secs(1_690_605_046));
    }

    #[test]
    fn expires_at_rfc3339() {
        let want = UNIX_EPOCH + Duration::from_secs(1_690_605_046);
        assert_eq!(parse_expires_at("2023-07-29T04:30:46Z").unwrap(), want);
        assert_eq!(parse_expires_at("2023-07-29T06:30:46+02:00").unwrap(), want);
    }

    #[test]
    fn expires_at_garbage_is_malformed_and_not_quoted() {
        for bad in [
            "",
            "tomorrow",
            "2023-07-29 04:30:46",
            "2023-07-29 04:30:46 PST",
            "2023-13-29 04:30:46 UTC",
            "1690605046",
        ] {
            let e = parse_expires_at(bad).unwrap_err();
            assert!(matches!(e, Error::Malformed { .. }), "{bad}: {e:?}");
            if !bad.is_empty() {
                assert!(!e.to_string().contains(bad), "{e}");
            }
        }
    }

    fn jwt(payload: &str) -> String {
        format!(
            "eyJhbGciOiJIUzI1NiJ9.{}.sig",
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn jwt_exp_is_read() {
        let at = jwt_expiry(&jwt(r#"{"id":"x","exp":1629926106,"jti":"j"}"#)).unwrap();
        assert_eq!(at, UNIX_EPOCH + Duration::from_secs(1_629_926_106));
        let at = jwt_expiry(&jwt(r#"{"exp":1629926106.75}"#)).unwrap();
        assert_eq!(at, UNIX_EPOCH + Duration::from_secs(1_629_926_106));
        // The seed's own example token.
        let seed = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpZCI6ImJjYmY5YmIzLWEyNGQtNGJlNC1iMmVlLWZmYWFjMWI3YmVkMSIsImVtYWlsIjoiYW15c3lrK2FkbWluQGF1cm9yYXNvbGFyLmNvbSIsImV4cCI6MTYyOTkyNjQ4MiwianRpIjoiMmM3MzU4Y2YtNjBmNS00MDQ3LWEwOWEtMDBhZDRlNWFjYTlmIn0.WobeYr7jg6ORmn9LgR2JTYONMo_qj-Mppk29k9kU7oI";
        assert_eq!(
            jwt_expiry(seed).unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_629_926_482)
        );
        // Padding some encoders add is tolerated.
        let padded = format!("h.{}==.s", URL_SAFE_NO_PAD.encode(r#"{"exp":10}"#));
        assert_eq!(
            jwt_expiry(&padded).unwrap(),
            UNIX_EPOCH + Duration::from_secs(10)
        );
    }

    #[test]
    fn bad_jwts_are_malformed_and_never_quoted() {
        let cases = [
            "not-a-jwt-SECRETVALUE".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            "h.!!!SECRET!!!.s".to_owned(),
            format!("h.{}.s", URL_SAFE_NO_PAD.encode("SECRET not json")),
            jwt(r#"{"id":"SECRET"}"#),
            jwt(r#"{"exp":"1629926106"}"#),
            jwt(r#"{"exp":-5}"#),
            jwt(r#"{"exp":null}"#),
            jwt(r#"{"exp":1e300}"#),
            jwt("[1,2,3]"),
        ];
        for bad in &cases {
            let e = jwt_expiry(bad).unwrap_err();
            assert!(matches!(e, Error::Malformed { .. }), "{bad}: {e:?}");
            let shown = format!("{e} {e:?}");
            assert!(
                !shown.contains("SECRET") && !shown.contains(bad.as_str()),
                "{shown}"
            );
        }
    }
}
