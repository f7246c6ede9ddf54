//! Opening the store a setting names: a file path, or a Redis URL; never a file for a
//! `word:` prefix.

use std::sync::Arc;

use token_provider::seal::{SealKeys, Sealer};
use token_provider::{EnvVars, SecretSource, env_value};

use crate::{Error, FileStore, TokenStore};

/// The variable naming the store (a file path, or a Redis URL).
pub const STORE_VAR: &str = "PARTNER_AUTH_STORE";

/// The variable holding the key that seals the store's entries, file or Redis: 32 bytes in
/// base64 (`openssl rand -base64 32`). Unset, entries are stored in clear. While a key is
/// rotated it holds several, the current one first, separated by commas, blanks or line
/// breaks: the first seals, every one opens ([`SealKeys`]).
pub const STORE_KEY_VAR: &str = "PARTNER_AUTH_STORE_KEY";

/// The file holding the store's keys instead of [`STORE_KEY_VAR`] (one or more, as there; read
/// when the store is opened).
pub const STORE_KEY_FILE_VAR: &str = "PARTNER_AUTH_STORE_KEY_FILE";

/// The variable holding the Redis password (of the URL's user, or of the default user).
pub const REDIS_PASSWORD_VAR: &str = "PARTNER_AUTH_REDIS_PASSWORD";

/// The file holding the Redis password instead (read when the store is opened; line endings at
/// its end dropped).
pub const REDIS_PASSWORD_FILE_VAR: &str = "PARTNER_AUTH_REDIS_PASSWORD_FILE";

/// Set to `1` to use a Redis that may evict keys, or whose `maxmemory-policy` cannot be read
/// (managed services), with one warning instead of an error.
pub const REDIS_ACCEPT_EVICTION_VAR: &str = "PARTNER_AUTH_REDIS_ACCEPT_EVICTION";

/// The URL schemes of a Redis store, lowercase (any case is accepted).
const REDIS_SCHEMES: &[&str] = &[
    "redis",
    "rediss",
    "redis+unix",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "valkey",
    "valkeys",
    "valkey+unix",
    "valkey+cluster",
    "valkeys+cluster",
];

/// What a store setting names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreSpec<'a> {
    /// A file at this path.
    File(&'a str),
    /// A Redis URL (`redis://`, `rediss://`, `redis+unix://`, `unix://`, `redis+cluster://`,
    /// `rediss+cluster://`, `valkey` for `redis` in each; any case).
    Redis(&'a str),
}

/// What `spec` names. A word of two or more letters, digits, `+`, `-` or `.` before a `:` is a
/// URL scheme: a Redis one is a Redis store (with `//`: `redis:HOST` is refused), any other is
/// refused, never taken as a file path (write `./name:x` for a file whose name has a colon).
/// A single letter and a colon is a Windows drive. Errors name `field`, never the value.
pub fn store_spec<'a>(spec: &'a str, field: &str) -> Result<StoreSpec<'a>, Error> {
    let spec = spec.trim();
    let scheme_len = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .filter(|&end| spec[end..].starts_with(':'))
        .filter(|&end| end >= 2 && spec.starts_with(|c: char| c.is_ascii_alphabetic()));
    let Some(end) = scheme_len else {
        return Ok(StoreSpec::File(spec));
    };
    let scheme = spec[..end].to_ascii_lowercase();
    if !REDIS_SCHEMES.contains(&scheme.as_str()) {
        return Err(Error::config(
            field,
            "starts with a URL scheme that names no store: give a file path (`./` before a \
             file name that has a colon) or a Redis URL (redis://, rediss://, redis+unix://, \
             redis+cluster://, or valkey in place of redis)",
        ));
    }
    if !spec[end..].starts_with("://") {
        let form = if scheme.ends_with("unix") {
            "///PATH"
        } else {
            "//HOST[:PORT][/DB]"
        };
        return Err(Error::config(
            field,
            format!("is a {scheme}: URL without `//`: write {scheme}:{form}"),
        ));
    }
    Ok(StoreSpec::Redis(spec))
}

/// Whether `spec` names a Redis store (see [`store_spec`]).
pub fn is_redis_url(spec: &str) -> bool {
    matches!(store_spec(spec, ""), Ok(StoreSpec::Redis(_)))
}

/// Whether the Redis URL `url` carries a password (`:PASSWORD@`, or `pass=`): a command line
/// that other users of the host can read must not.
pub fn url_has_password(url: &str) -> bool {
    let rest = url.trim().split_once("://").map_or(url, |(_, rest)| rest);
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = rest.split('/').next().unwrap_or("");
    let in_userinfo = authority
        .rfind('@')
        .is_some_and(|at| authority[..at].contains(':'));
    let in_query = query
        .split('&')
        .any(|pair| matches!(pair.split('=').next(), Some("pass" | "password")));
    in_userinfo || in_query
}

/// The store `spec` names (see [`store_spec`]), with `lookup` giving the variables:
///
/// - a file: a [`FileStore`] at that path, its entries sealed under [`STORE_KEY_VAR`] (or
///   [`STORE_KEY_FILE_VAR`]) when that is set;
/// - a Redis URL (feature `redis`): a Redis store shared by a fleet, its entries sealed the
///   same way, its password from [`REDIS_PASSWORD_VAR`] or [`REDIS_PASSWORD_FILE_VAR`] (a URL
///   that carries one too is refused), an evicting server accepted when
///   [`REDIS_ACCEPT_EVICTION_VAR`] is `1`.
///
/// Errors name `field` or the variable, and never quote a password, the key, or the setting.
pub fn open_store(
    lookup: impl Fn(&str) -> Option<String>,
    spec: &str,
    field: &str,
) -> Result<Arc<dyn TokenStore>, Error> {
    let sealer = store_sealer(&lookup)?;
    match store_spec(spec, field)? {
        StoreSpec::File(path) => {
            let store = FileStore::new(path);
            Ok(Arc::new(match sealer {
                Some(sealer) => store.sealer(sealer),
                None => store,
            }))
        }
        StoreSpec::Redis(url) => open_redis(url, field, &lookup, sealer),
    }
}

/// [`store_keys`] as a [`Sealer`]: from [`STORE_KEY_FILE_VAR`], one that reads the file again
/// when it changes, so a key rolled out on disk is taken up by a running process.
pub fn store_sealer(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Sealer>, Error> {
    EnvVars::new(&lookup)
        .secret(STORE_KEY_VAR)?
        .map(Sealer::from_source)
        .transpose()
}

/// The keys that seal a store: [`STORE_KEY_VAR`] or [`STORE_KEY_FILE_VAR`] (both set is an
/// error), current first; `None` when neither is set. Errors name the variable (and the
/// file), and which key of a list is wrong, never a key.
pub fn store_keys(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<SealKeys>, Error> {
    let Some(source) = EnvVars::new(&lookup).secret(STORE_KEY_VAR)? else {
        return Ok(None);
    };
    SealKeys::from_source(&source).map(Some)
}

/// A secret from `var`, or from the file `var_FILE` names (read now, line endings at its end
/// dropped, and again when it changes); both set is an error naming both.
fn secret_var(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &str,
) -> Result<Option<SecretSource>, Error> {
    EnvVars::new(lookup).secret(var)
}

/// `PARTNER_AUTH_REDIS_ACCEPT_EVICTION`: `1`/`true`/`yes` or `0`/`false`/`no` (unset: no).
fn flag_var(lookup: &dyn Fn(&str) -> Option<String>, var: &str) -> Result<bool, Error> {
    match env_value(&lookup, var).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if matches!(v.as_str(), "1" | "true" | "yes") => Ok(true),
        Some(v) if matches!(v.as_str(), "0" | "false" | "no") => Ok(false),
        Some(_) => Err(Error::config(var, "must be 1 or 0")),
    }
}

/// The Redis store at `url`, with the password and eviction setting `lookup` gives. They are
/// read without the `redis` feature too, so a mistake in them is not hidden by its absence.
fn open_redis(
    url: &str,
    field: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    sealer: Option<Sealer>,
) -> Result<Arc<dyn TokenStore>, Error> {
    // A file is read again when it changes, and after Redis refuses what it held.
    let password = secret_var(lookup, REDIS_PASSWORD_VAR)?;
    let accept_eviction = flag_var(lookup, REDIS_ACCEPT_EVICTION_VAR)?;
    #[cfg(feature = "redis")]
    {
        let store = partner_auth_redis::RedisStore::builder(url)
            .password_source_opt(password)
            .accept_eviction_risk(accept_eviction)
            .sealer_opt(sealer)
            .build()
            .map_err(|e| match e {
                Error::Config {
                    field: f, reason, ..
                } if f == "store" => Error::config(field, reason),
                other => other,
            })?;
        Ok(Arc::new(store))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = (url, password, accept_eviction, sealer);
        Err(Error::config(
            field,
            "names a Redis store: build partner-auth with the `redis` feature, or give a file path",
        ))
    }
}

#[cfg(test)]
mod tests {
    use token_provider::testing::TempDir;

    use super::*;

    #[test]
    fn schemes_are_redis_or_refused_and_the_rest_are_files() {
        /// What a setting names.
        enum Names {
            Redis,
            File,
            Refused,
        }
        use Names::{File, Redis, Refused};
        for (spec, names) in [
            ("redis://h:6379/0", Redis),
            ("REDISS://h/1", Redis),
            ("Valkey://h", Redis),
            ("unix:///run/redis.sock", Redis),
            ("redis+unix:///run/redis.sock?db=2", Redis),
            ("redis+cluster://a:1,b:2", Redis),
            ("tokens.json", File),
            ("/var/lib/redis://x", File),
            ("./a:b", File),
            ("C:\\tokens.json", File),
            ("", File),
            ("redis:h:6379", Refused),
            ("rediss:h", Refused),
            ("ftp:x", Refused),
            ("memcached://h:1", Refused),
            ("s3://b/k", Refused),
        ] {
            let found = store_spec(spec, "STORE");
            match names {
                Redis => assert_eq!(found.unwrap(), StoreSpec::Redis(spec)),
                File => assert_eq!(found.unwrap(), StoreSpec::File(spec)),
                Refused => assert!(
                    matches!(&found, Err(Error::Config { field, .. }) if field == "STORE"),
                    "{spec}: {found:?}"
                ),
            }
        }
        assert!(is_redis_url("redis://h/0") && !is_redis_url("redis:h"));
        let file = open_store(|_| None, "/tmp/x.json", "store").unwrap();
        assert!(format!("{file:?}").contains("FileStore"));
    }

    #[test]
    fn a_password_is_found_where_a_url_may_carry_one() {
        assert!(url_has_password("redis://:pw@h/0"));
        assert!(url_has_password("redis+cluster://u:pw@a:1,b:2"));
        assert!(url_has_password("unix:///s?db=1&pass=pw"));
        assert!(!url_has_password("redis://u@h/0"));
        assert!(!url_has_password("unix:///s?db=1"));
    }

    #[test]
    fn a_key_seals_the_file_store() {
        let key = "q5Jq3Zl9mWc8XhZ0m1t9YF5bqHc1Qm0n2z1s3u4v5w8=";
        let store = open_store(
            |name| (name == STORE_KEY_VAR).then(|| key.to_owned()),
            "/tmp/x.json",
            "store",
        )
        .unwrap();
        let shown = format!("{store:?}");
        assert!(
            shown.contains("sealer: Some") && !shown.contains(key),
            "{shown}"
        );
    }

    /// The file `name` holding `text` in a new temporary folder, and its path (the folder is
    /// removed with the `TempDir`).
    fn file_holding(folder: &str, name: &str, text: &str) -> (TempDir, String) {
        let dir = TempDir::new(folder);
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap().to_owned();
        (dir, path)
    }

    #[test]
    fn a_key_file_that_holds_no_key_is_named_with_its_path() {
        let (_dir, path) = file_holding("facade-key-file", "key", "not-a-key-7c1d\n");
        let lookup = |name: &str| (name == STORE_KEY_FILE_VAR).then(|| path.clone());
        for err in [
            store_keys(lookup).unwrap_err(),
            store_sealer(lookup).unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(matches!(err, Error::Config { .. }), "{err:?}");
            assert!(
                text.contains(STORE_KEY_FILE_VAR) && text.contains(&path),
                "{text}"
            );
            assert!(!text.contains("not-a-key-7c1d"), "{text}");
        }
    }

    #[test]
    fn secrets_come_from_a_variable_or_a_file_not_both() {
        let (_dir, path) = file_holding("facade-secret", "pw", "s3cret\r\n");
        let from_file = secret_var(
            &|name: &str| (name == "PW_FILE").then(|| path.clone()),
            "PW",
        )
        .unwrap()
        .unwrap();
        assert_eq!(from_file.current().expose_secret(), "s3cret");
        let both = secret_var(&|_: &str| Some(path.clone()), "PW").unwrap_err();
        assert!(
            both.to_string().contains("PW and PW_FILE") && !both.to_string().contains("s3cret")
        );
        let bad = flag_var(&|_: &str| Some("maybe".to_owned()), "FLAG").unwrap_err();
        assert!(!bad.to_string().contains("maybe"), "{bad}");
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_redis_url_opens_a_redis_store_sealed_when_a_key_is_set() {
        let key = "q5Jq3Zl9mWc8XhZ0m1t9YF5bqHc1Qm0n2z1s3u4v5w8=";
        let store = open_store(
            |name| match name {
                STORE_KEY_VAR => Some(key.to_owned()),
                REDIS_PASSWORD_VAR => Some("pw-91ab".to_owned()),
                _ => None,
            },
            "redis://127.0.0.1:1/0",
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
        // The error of opening `url` as `field` with `var` set to `value`.
        let refused = |var: &str, value: &str, url: &str, field: &str| {
            open_store(|name| (name == var).then(|| value.to_owned()), url, field)
                .unwrap_err()
                .to_string()
        };
        let err = refused(STORE_KEY_VAR, "short", "redis://h/0", "store");
        assert!(
            err.contains(STORE_KEY_VAR) && !err.contains("short"),
            "{err}"
        );
        // A password in the URL and one apart: which one is meant?
        let err = refused(
            REDIS_PASSWORD_VAR,
            "pw-2",
            "redis://:pw-1@h/0",
            "PARTNER_AUTH_STORE",
        );
        assert!(
            err.contains("PARTNER_AUTH_STORE") && !err.contains("pw-"),
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
