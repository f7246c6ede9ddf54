//! What every command that talks to a provider shares: the request timeout, the store, the
//! lazily built HTTP client, and the provider itself.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::exit::{EXIT_CONFIG, Failure};
use partner_auth::token_provider::{StoreLock, StoreRecord};
use partner_auth::{
    CacheConfig, Error, FileStore, HttpClient, ProviderKind, ProviderOptions, StoreEntry, StoreKey,
    TokenProvider, TokenState, TokenStore, async_trait,
};

/// The variable that bounds each request, in whole seconds.
pub(crate) const TIMEOUT_VAR: &str = "PARTNER_AUTH_TIMEOUT";
/// The variable naming the store when `--store` is not given.
pub(crate) const STORE_VAR: &str = "PARTNER_AUTH_STORE";
/// The largest `PARTNER_AUTH_TIMEOUT` accepted: one day.
const MAX_TIMEOUT_SECS: u64 = 86_400;
/// Requests one load may make (the Client SDK's lookup, invite, lookup again, generate) times
/// the attempts the HTTP client makes for each.
const REQUEST_TIMEOUTS_PER_LOAD: u32 = 4 * 3;
/// The cache's own default load timeout, kept as the floor.
const MIN_LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// How the commands read configuration: the process environment in `main`, a table in tests.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The value of `name`, blank counting as unset.
pub(crate) fn var(lookup: Lookup<'_>, name: &str) -> Option<String> {
    partner_auth::token_provider::env_value(&lookup, name)
}

/// The store to use: `--store`, else `PARTNER_AUTH_STORE`, else none; with the setting it came
/// from. A `redis://` or `rediss://` URL names a Redis store, anything else a file.
pub(crate) fn store_path(
    flag: Option<&Path>,
    lookup: Lookup<'_>,
) -> Result<Option<(&'static str, PathBuf)>, Error> {
    Ok(match (flag, var(lookup, STORE_VAR)) {
        (Some(path), _) => Some(("--store", path.to_path_buf())),
        (None, Some(value)) => Some((STORE_VAR, PathBuf::from(value))),
        (None, None) => None,
    })
}

/// The store `--store`/`PARTNER_AUTH_STORE` name, opened and watched; none when neither is
/// set.
pub(crate) fn store(
    flag: Option<&Path>,
    lookup: Lookup<'_>,
) -> Result<Option<Arc<Watched>>, Error> {
    store_path(flag, lookup)?
        .map(|(field, path)| {
            Ok(Arc::new(Watched {
                inner: open_store(field, &path, lookup)?,
                unreachable: Mutex::default(),
            }))
        })
        .transpose()
}

/// The store `status` and `forget` work on: one is required.
pub(crate) fn required_store(
    flag: Option<&Path>,
    lookup: Lookup<'_>,
    command: &str,
) -> Result<Arc<dyn TokenStore>, Failure> {
    match store(flag, lookup) {
        Ok(Some(store)) => Ok(store as Arc<dyn TokenStore>),
        Ok(None) => Err(Failure::new(
            EXIT_CONFIG,
            None,
            format!(
                "{command} needs a store: give --store FILE|redis://HOST:PORT/DB or set {STORE_VAR}"
            ),
        )),
        Err(e) => Err(Failure::from_error(None, &e)),
    }
}

/// The store at `path`: a file, or Redis for a Redis URL (either sealed under
/// `PARTNER_AUTH_STORE_KEY` when that is set); a `word:` prefix that names no store is
/// refused. `field` names the setting in errors. A password in `--store` is refused: the
/// command line is visible to every user of the host.
pub(crate) fn open_store(
    field: &str,
    path: &Path,
    lookup: Lookup<'_>,
) -> Result<Arc<dyn TokenStore>, Error> {
    let Some(text) = path.to_str() else {
        // Not UTF-8: no URL, a file.
        let store = FileStore::new(path.to_path_buf());
        return Ok(match seal_key(lookup)? {
            Some(key) => Arc::new(store.seal_key(&key)),
            None => Arc::new(store),
        });
    };
    if field == "--store"
        && partner_auth::is_redis_url(text)
        && partner_auth::url_has_password(text)
    {
        return Err(Error::config(
            "--store",
            format!(
                "carries a password, and a command line is visible to every user of the host: \
                 give it in {} or {} instead",
                partner_auth::REDIS_PASSWORD_VAR,
                partner_auth::REDIS_PASSWORD_FILE_VAR
            ),
        ));
    }
    partner_auth::open_store(text, field, lookup)
}

fn seal_key(lookup: Lookup<'_>) -> Result<Option<partner_auth::SealKey>, Error> {
    var(lookup, partner_auth::STORE_KEY_VAR)
        .map(|text| partner_auth::SealKey::from_base64(&text))
        .transpose()
}

/// The store, watched for the one failure a token is fetched around: a store that could not
/// be reached, so that a token fetched without it can be reported as not shared.
#[derive(Debug)]
pub(crate) struct Watched {
    inner: Arc<dyn TokenStore>,
    unreachable: Mutex<Option<String>>,
}

impl Watched {
    /// Why the store could not be reached when a lock was asked for, if it could not.
    pub(crate) fn unreachable(&self) -> Option<String> {
        self.unreachable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The warning for a token obtained while the store could not be reached: it was fetched
    /// without the store (a grant safe to repeat), so nobody else shares it.
    pub(crate) fn not_shared_warning(&self) -> Option<String> {
        self.unreachable().map(|reason| {
            format!(
                "warning: the token store could not be reached ({reason}): the token was fetched \
                 without it and is not shared with other hosts or runs"
            )
        })
    }
}

#[async_trait]
impl TokenStore for Watched {
    async fn load(&self, key: &StoreKey) -> Result<Option<TokenState>, Error> {
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &StoreKey,
        state: &TokenState,
        lock: &StoreLock,
    ) -> Result<(), Error> {
        self.inner.save(key, state, lock).await
    }

    async fn lock(&self, key: &StoreKey) -> Result<StoreLock, Error> {
        let result = self.inner.lock(key).await;
        if let Err(Error::StoreUnavailable { reason, .. }) = &result {
            *self.unreachable.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
        }
        result
    }

    async fn remove(&self, key: &StoreKey, lock: &StoreLock) -> Result<bool, Error> {
        self.inner.remove(key, lock).await
    }

    fn versioned(&self) -> bool {
        self.inner.versioned()
    }

    async fn load_record(&self, key: &StoreKey) -> Result<Option<StoreRecord>, Error> {
        self.inner.load_record(key).await
    }

    async fn save_record(
        &self,
        key: &StoreKey,
        record: &StoreRecord,
        read: Option<u64>,
        lock: &StoreLock,
    ) -> Result<u64, Error> {
        self.inner.save_record(key, record, read, lock).await
    }

    async fn entries(&self) -> Result<Vec<StoreEntry>, Error> {
        self.inner.entries().await
    }
}

/// The options every provider is built with: a lazily built HTTP client (a run served from the
/// store sets up no TLS at all), the request timeout, and the store.
pub(crate) fn options(
    lookup: Lookup<'_>,
    store: Option<Arc<dyn TokenStore>>,
) -> Result<ProviderOptions, Error> {
    let mut options = ProviderOptions::default();
    let mut http = HttpClient::builder().lazy();
    if let Some(timeout) = request_timeout(lookup(TIMEOUT_VAR).as_deref())? {
        http = http.timeout(timeout);
        // The cache's 60 s load limit must not cut a run short of what the variable allows.
        let load = timeout
            .saturating_mul(REQUEST_TIMEOUTS_PER_LOAD)
            .max(MIN_LOAD_TIMEOUT);
        options.cache = Some(CacheConfig::default().load_timeout(load));
    }
    options.http = Some(http.build()?);
    options.store = store;
    Ok(options)
}

/// The provider of `kind` as the environment configures it, with `options`.
pub(crate) fn provider(
    kind: ProviderKind,
    lookup: Lookup<'_>,
    options: &ProviderOptions,
) -> Result<Arc<dyn TokenProvider>, Error> {
    partner_auth::from_lookup(kind, lookup, options)
}

/// `PARTNER_AUTH_TIMEOUT` read: unset (or blank) is `None`, a whole number of seconds from 1 to
/// [`MAX_TIMEOUT_SECS`] is that timeout, anything else a configuration error naming the variable
/// (never quoting the value).
pub(crate) fn request_timeout(value: Option<&str>) -> Result<Option<Duration>, Error> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let invalid = || {
        Error::config(
            TIMEOUT_VAR,
            format!("must be a whole number of seconds from 1 to {MAX_TIMEOUT_SECS}"),
        )
    };
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match value.parse::<u64>() {
        Ok(secs) if (1..=MAX_TIMEOUT_SECS).contains(&secs) => Ok(Some(Duration::from_secs(secs))),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_whole_positive_seconds() {
        assert_eq!(request_timeout(None).unwrap(), None);
        assert_eq!(request_timeout(Some("  ")).unwrap(), None);
        assert_eq!(
            request_timeout(Some("5")).unwrap(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            request_timeout(Some("86400")).unwrap(),
            Some(Duration::from_secs(86_400))
        );
        for bad in [
            "0",
            "-1",
            "+1",
            "1.5",
            "1s",
            "abc",
            "86401",
            "99999999999999999999999",
        ] {
            let err = request_timeout(Some(bad)).unwrap_err();
            assert!(
                matches!(&err, Error::Config { field, .. } if field == TIMEOUT_VAR),
                "{bad}: {err}"
            );
            // The message never quotes the value.
            assert_eq!(
                err.to_string(),
                "invalid configuration: `PARTNER_AUTH_TIMEOUT` must be a whole number of seconds from 1 to 86400"
            );
        }
    }

    #[test]
    fn the_store_comes_from_the_flag_then_the_variable() {
        let env = |name: &str| (name == STORE_VAR).then(|| "/from/env.json".to_owned());
        let none = |_: &str| None;
        let flag = Path::new("/from/flag.json");
        let path = |flag, lookup| store_path(flag, lookup).unwrap().map(|(_, p)| p);
        assert_eq!(path(Some(flag), &env).as_deref(), Some(flag));
        assert_eq!(
            path(None, &env).as_deref(),
            Some(Path::new("/from/env.json"))
        );
        assert_eq!(path(None, &none), None);
        let blank = |name: &str| (name == STORE_VAR).then(|| " ".to_owned());
        assert_eq!(path(None, &blank), None);
        // A Redis URL opens a Redis store (nothing is sent until it is used).
        let redis = |name: &str| (name == STORE_VAR).then(|| "rediss://:pw-5c@h:6380/0".to_owned());
        let opened = store(None, &redis).unwrap().unwrap();
        let shown = format!("{opened:?}");
        assert!(
            shown.contains("RedisStore") && shown.contains("rediss://h:6380/0"),
            "{shown}"
        );
        assert!(!shown.contains("pw-5c"), "{shown}");
        let bad = |name: &str| (name == STORE_VAR).then(|| "redis://h:notaport/0".to_owned());
        let err = store(None, &bad).unwrap_err();
        assert!(err.to_string().contains(STORE_VAR), "{err}");
    }
}
