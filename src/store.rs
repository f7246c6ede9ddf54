//! Opening the store a setting names: a file path, or a Redis URL.

use std::sync::Arc;

use crate::{Error, FileStore, TokenStore};

/// The variable naming the store (a file path, or a `redis://` / `rediss://` URL).
pub const STORE_VAR: &str = "PARTNER_AUTH_STORE";

/// The variable holding the key that seals a Redis store's entries: 32 bytes in base64
/// (`openssl rand -base64 32`). Unset, entries are stored in clear.
pub const STORE_KEY_VAR: &str = "PARTNER_AUTH_STORE_KEY";

/// Whether `spec` names a Redis store (`redis://` or `rediss://`, any case).
pub fn is_redis_url(spec: &str) -> bool {
    let lower = spec.trim_start().to_ascii_lowercase();
    lower.starts_with("redis://") || lower.starts_with("rediss://")
}

/// The store `spec` names: a `redis://` or `rediss://` URL is a Redis store shared by a fleet
/// (feature `redis`; its entries sealed when `lookup` gives [`STORE_KEY_VAR`]), anything else a
/// [`FileStore`] at that path. Errors name `field` and never quote the URL's password or the key.
pub fn open_store(
    lookup: impl Fn(&str) -> Option<String>,
    spec: &str,
    field: &str,
) -> Result<Arc<dyn TokenStore>, Error> {
    if !is_redis_url(spec) {
        return Ok(Arc::new(FileStore::new(spec)));
    }
    open_redis(spec.trim(), field, &lookup)
}

#[cfg(feature = "redis")]
fn open_redis(
    url: &str,
    field: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn TokenStore>, Error> {
    let key = token_provider::env_value(lookup, STORE_KEY_VAR)
        .map(|text| partner_auth_redis::SealKey::from_base64(&text))
        .transpose()?;
    let store = partner_auth_redis::RedisStore::builder(url)
        .seal_key_opt(key)
        .build()
        .map_err(|e| match e {
            Error::Config { reason, .. } => Error::config(field, reason),
            other => other,
        })?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "redis"))]
fn open_redis(
    _url: &str,
    field: &str,
    _lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn TokenStore>, Error> {
    Err(Error::config(
        field,
        "names a Redis store: build partner-auth with the `redis` feature, or give a file path",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redis_and_everything_else_a_file() {
        assert!(is_redis_url("redis://h:6379/0"));
        assert!(is_redis_url("REDISS://h/1"));
        assert!(!is_redis_url("/var/lib/redis://x"));
        assert!(!is_redis_url("tokens.json"));
        let file = open_store(|_| None, "/tmp/x.json", "store").unwrap();
        assert!(format!("{file:?}").contains("FileStore"));
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_redis_url_opens_a_redis_store_sealed_when_a_key_is_set() {
        let key = "q5Jq3Zl9mWc8XhZ0m1t9YF5bqHc1Qm0n2z1s3u4v5w8=";
        let store = open_store(
            |name| (name == STORE_KEY_VAR).then(|| key.to_owned()),
            "redis://:pw-91ab@127.0.0.1:1/0",
            "store",
        )
        .unwrap();
        let shown = format!("{store:?}");
        assert!(
            shown.contains("RedisStore") && shown.contains("encrypted: true"),
            "{shown}"
        );
        assert!(
            !shown.contains("pw-91ab") && !shown.contains(key),
            "{shown}"
        );
        let err = open_store(
            |name| (name == STORE_KEY_VAR).then(|| "short".to_owned()),
            "redis://h/0",
            "store",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(STORE_KEY_VAR) && !err.contains("short"),
            "{err}"
        );
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn without_the_feature_a_redis_url_is_refused() {
        let err = open_store(|_| None, "redis://h/0", "store").unwrap_err();
        assert!(err.to_string().contains("`redis` feature"), "{err}");
    }
}
