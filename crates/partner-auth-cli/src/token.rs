//! `partner-auth token`: one access token on stdout.

use std::time::SystemTime;

use partner_auth::{AccessToken, Error};

use crate::api::auth_header;
use crate::args::TokenArgs;
use crate::exit::Failure;
use crate::setup::{self, Lookup};

/// What a run printed and what it could not keep.
#[derive(Debug)]
pub(crate) struct Printed {
    /// The line to print (without its newline).
    pub(crate) line: String,
    /// Exit 5 after the line: the new state could not be saved to the store.
    pub(crate) unsaved: Option<Failure>,
    /// A line for stderr: the token was fetched without the store, which could not be reached.
    pub(crate) warning: Option<String>,
}

/// Gets the token and returns the line to print.
pub(crate) async fn run(args: &TokenArgs, lookup: Lookup<'_>) -> Result<Printed, Failure> {
    let kind = args.provider.kind();
    let fail = |e: Error| Failure::from_error(Some(kind), &e);
    // Read before anything is sent, so a bad header name costs no token.
    let header = if args.header {
        Some(auth_header(lookup, args.provider).map_err(fail)?)
    } else {
        None
    };
    let store = setup::store(lookup, args.store.store.as_deref()).map_err(fail)?;
    let options = setup::options(lookup, store.clone().map(|s| s as _)).map_err(fail)?;
    let provider = setup::provider(lookup, kind, &options).map_err(fail)?;
    setup::announce_store_folder(lookup, args.store.store.as_deref()).map_err(fail)?;
    let token = provider.get().await.map_err(fail)?;
    let warning = store.and_then(|s| s.not_shared_warning());
    // The token is good; a rotated refresh token that could not be stored is what is at risk.
    let unsaved = provider
        .store_error()
        .map(|e| Failure::not_saved(kind, "the token was printed", &e));
    let line = if let Some((name, _)) = header {
        format!("{name}: {}", token.authorization_value().expose_secret())
    } else if args.json {
        json_line(&token)
    } else {
        token.secret().expose_secret().to_owned()
    };
    Ok(Printed {
        line,
        unsaved,
        warning,
    })
}

/// The `--json` line: fields in the documented order.
pub(crate) fn json_line(token: &AccessToken) -> String {
    #[derive(serde::Serialize)]
    struct JsonToken<'a> {
        access_token: &'a str,
        token_type: &'a str,
        expires_at: Option<String>,
    }
    let out = JsonToken {
        access_token: token.secret().expose_secret(),
        token_type: token.token_type(),
        expires_at: token.expires_at().map(rfc3339),
    };
    serde_json::to_string(&out).expect("strings always serialize")
}

/// `at` in RFC 3339 UTC to the second: `2026-11-22T10:00:00Z`.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn json_has_the_documented_shape() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_341_600_750);
        let token = AccessToken::builder("tok-1")
            .token_type("Bearer")
            .expires_at(at)
            .build();
        assert_eq!(
            json_line(&token),
            r#"{"access_token":"tok-1","token_type":"Bearer","expires_at":"2026-11-22T10:00:00Z"}"#
        );
        let token = AccessToken::new("tok-2");
        let v: serde_json::Value = serde_json::from_str(&json_line(&token)).unwrap();
        assert_eq!(v["expires_at"], serde_json::Value::Null);
        assert_eq!(v["access_token"], "tok-2");
    }
}
