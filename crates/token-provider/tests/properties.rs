//! Hostile input for every parser of the core: never a panic, always a typed error, and no error
//! message that repeats what it was fed.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::{HeaderValue, RETRY_AFTER};
use proptest::prelude::*;
use token_provider::http::{OAuthError, parse_base_url, parse_json, retry_after};
use token_provider::{Error, FileStore, StoreKey, TokenStore};

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
}

/// JSON-ish text: the shapes a token endpoint answers with, mangled.
fn jsonish() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        Just("null".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        "[a-zA-Z0-9_ .:/-]{0,24}".prop_map(|s| format!("\"{s}\"")),
        Just("true".to_owned()),
    ];
    let key = prop_oneof![
        Just("access_token"),
        Just("token_type"),
        Just("expires_in"),
        Just("refresh_token"),
        Just("error"),
        Just("error_description"),
        Just("other"),
    ];
    prop::collection::vec((key, scalar), 0..6)
        .prop_flat_map(|pairs| {
            let body = format!(
                "{{{}}}",
                pairs
                    .iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let len = body.len();
            (Just(body), 0..=len)
        })
        .prop_map(|(body, cut)| {
            // Sometimes whole, sometimes truncated mid-way.
            if cut % 3 == 0 {
                body[..cut].to_owned()
            } else {
                body
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn token_json_never_panics_and_never_quotes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        match parse_json::<TokenResponse>(&bytes, "token response") {
            Ok(_) => {}
            Err(Error::Malformed { reason, .. }) => {
                prop_assert!(reason.starts_with("token response: "));
                prop_assert!(reason.len() < 160, "{reason}");
            }
            Err(other) => prop_assert!(false, "untyped failure {other:?}"),
        }
        let _ = parse_json::<OAuthError>(&bytes, "error");
    }

    #[test]
    fn mangled_token_responses_are_typed(body in jsonish()) {
        match parse_json::<TokenResponse>(body.as_bytes(), "token response") {
            Ok(t) => prop_assert!(body.contains(&t.access_token)),
            Err(Error::Malformed { reason, .. }) => {
                // A value from the body never reaches the message (field names may).
                let detail = reason.strip_prefix("token response: ").unwrap_or(&reason);
                for value in body.split('"').skip(1).step_by(2) {
                    let is_key = ["access_token", "token_type", "expires_in", "refresh_token",
                        "error", "error_description", "other"].contains(&value);
                    if value.len() > 3 && !is_key {
                        prop_assert!(!detail.contains(value), "{reason} quotes {value}");
                    }
                }
            }
            Err(other) => prop_assert!(false, "untyped failure {other:?}"),
        }
    }

    #[test]
    fn retry_after_never_panics(value in "[ -~]{0,40}") {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(RETRY_AFTER, v);
        }
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let _ = retry_after(&h, now);
    }

    #[test]
    fn base_urls_are_parsed_or_refused_by_name(value in "\\PC{0,60}") {
        match parse_base_url("SOME_BASE_URL", &value) {
            Ok(url) => prop_assert!(url.scheme() == "https" || url.scheme() == "http"),
            Err(Error::Config { field, .. }) => prop_assert_eq!(field, "SOME_BASE_URL"),
            Err(other) => prop_assert!(false, "untyped failure {other:?}"),
        }
    }

    #[test]
    fn provider_text_in_errors_is_bounded(code in "\\PC{0,400}", desc in "\\PC{0,2000}") {
        let e = Error::rejected(Some(400), Some(&code), Some(&desc));
        let msg = e.to_string();
        prop_assert!(msg.chars().count() < 700, "{} chars", msg.chars().count());
        prop_assert!(!msg.chars().any(char::is_control));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn store_files_of_any_content_load_or_fail_typed(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let dir = std::env::temp_dir().join(format!("partner-auth-prop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("store-{}.json", bytes.len() ^ (bytes.first().copied().unwrap_or(0) as usize) << 10));
        std::fs::write(&path, &bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let result = rt.block_on(FileStore::new(&path).load(&StoreKey::new("p", "e", "t", "u")));
        match result {
            Ok(_) => {}
            Err(Error::Store { .. }) => {}
            Err(other) => prop_assert!(false, "untyped failure {other:?}"),
        }
    }

    #[test]
    fn store_entries_of_any_shape_load_or_fail_typed(entry in jsonish()) {
        let dir = std::env::temp_dir().join(format!("partner-auth-prop-e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.json");
        let file = format!(r#"{{"version":1,"entries":{{"p|e|t|u":{entry}}}}}"#);
        std::fs::write(&path, file).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let result = rt.block_on(FileStore::new(&path).load(&StoreKey::new("p", "e", "t", "u")));
        match result {
            Ok(Some(state)) => prop_assert!(!state.access_token.secret().is_empty()),
            Ok(None) => prop_assert!(false, "an entry was present"),
            Err(Error::Store { reason, .. }) => {
                prop_assert!(!reason.contains("access_token\":"), "{reason}");
            }
            Err(other) => prop_assert!(false, "untyped failure {other:?}"),
        }
    }
}
