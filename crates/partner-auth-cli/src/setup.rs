//! What every command that talks to a provider shares: the request timeout, the store, the
//! lazily built HTTP client, and the provider itself.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::args::TIMEOUT_VAR;
use crate::exit::{EXIT_CONFIG, Failure};
use partner_auth::token_provider::StoreLock;
use partner_auth::{
    CacheConfig, Error, FileStore, HttpClient, ProviderKind, ProviderOptions, STORE_VAR, StoreKey,
    TokenProvider, TokenStore,
};

/// Each request's limit when `PARTNER_AUTH_TIMEOUT` is not set: the one the help documents.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest `PARTNER_AUTH_TIMEOUT` accepted: one day.
const MAX_TIMEOUT_SECS: u64 = 86_400;
/// Requests one load may make (the Client SDK's lookup, invite, lookup again, generate) times
/// the attempts the HTTP client makes for each.
const REQUEST_TIMEOUTS_PER_LOAD: u32 = 4 * 3;
/// The cache's own default load timeout, kept as the floor.
const MIN_LOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// The cache's own default fetch deadline, kept as the floor.
const MIN_FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// How the commands read configuration: the process environment in `main`, a table in tests.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The value of `name`, blank counting as unset.
pub(crate) fn var(lookup: Lookup<'_>, name: &str) -> Option<String> {
    partner_auth::token_provider::env_value(&lookup, name)
}

/// The store to use: `--store`, else `PARTNER_AUTH_STORE`, else none; with the setting it came
/// from. A `redis://` or `rediss://` URL names a Redis store, anything else a file.
pub(crate) fn store_path(
    lookup: Lookup<'_>,
    flag: Option<&Path>,
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
    lookup: Lookup<'_>,
    flag: Option<&Path>,
) -> Result<Option<Arc<Watched>>, Error> {
    store_path(lookup, flag)?
        .map(|(field, path)| {
            Ok(Arc::new(Watched {
                inner: open_store(lookup, field, &path)?,
                unreachable: Mutex::default(),
            }))
        })
        .transpose()
}

/// The store `status` and `forget` work on: one is required, and a file store must exist (a
/// path that names nothing is most often not the store meant, and a `forget` that went through
/// on it would leave the real one's refresh tokens behind). `provider` is whom a failure is
/// about.
pub(crate) fn required_store(
    lookup: Lookup<'_>,
    flag: Option<&Path>,
    command: &str,
    provider: Option<ProviderKind>,
) -> Result<Arc<dyn TokenStore>, Failure> {
    let Some((field, path)) =
        store_path(lookup, flag).map_err(|e| Failure::from_error(None, &e))?
    else {
        return Err(Failure::new(
            EXIT_CONFIG,
            provider,
            format!(
                "{command} needs a store: give --store FILE|redis://HOST:PORT/DB or set {STORE_VAR}"
            ),
        ));
    };
    if !is_redis(&path)
        && let Err(e) = std::fs::symlink_metadata(&path)
        && e.kind() == std::io::ErrorKind::NotFound
    {
        let from = if field == STORE_VAR {
            format!(" (from {STORE_VAR})")
        } else {
            String::new()
        };
        return Err(Failure::new(
            EXIT_CONFIG,
            provider,
            format!("no store at {}{from}", path.display()),
        ));
    }
    open_store(lookup, field, &path).map_err(|e| Failure::from_error(provider, &e))
}

/// Creates the folder of the file store `--store`/`PARTNER_AUTH_STORE` names when it is
/// missing, with its missing parents, each with mode 0700; returns the line that says which
/// folders were created (none for Redis, a folder that exists, or no store at all).
pub(crate) fn create_store_folder(
    lookup: Lookup<'_>,
    flag: Option<&Path>,
) -> Result<Option<String>, Error> {
    let Some((_, path)) = store_path(lookup, flag)? else {
        return Ok(None);
    };
    if is_redis(&path) {
        return Ok(None);
    }
    let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(None);
    };
    // The first folder from the top that is missing: where creation starts.
    let Some(top) = folder
        .ancestors()
        .take_while(|dir| !dir.as_os_str().is_empty() && std::fs::symlink_metadata(dir).is_err())
        .last()
    else {
        return Ok(None);
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(folder).map_err(|e| {
        Error::store(
            format!("cannot create the store's folder {}", folder.display()),
            e,
        )
    })?;
    Ok(Some(if top == folder {
        format!(
            "created the store's folder {} (mode 0700)",
            folder.display()
        )
    } else {
        format!(
            "created the store's folder {} and its missing parents from {} (mode 0700)",
            folder.display(),
            top.display()
        )
    }))
}

/// [`create_store_folder`], with its line printed on stderr: the commands that save call it
/// once the provider is configured, so a configuration error creates nothing.
pub(crate) fn announce_store_folder(lookup: Lookup<'_>, flag: Option<&Path>) -> Result<(), Error> {
    if let Some(line) = create_store_folder(lookup, flag)? {
        eprintln!("partner-auth: {}", crate::exit::one_line(&line));
    }
    Ok(())
}

/// Whether `path` is a Redis URL rather than a file path.
fn is_redis(path: &Path) -> bool {
    path.to_str().is_some_and(partner_auth::is_redis_url)
}

/// The store at `path`: a file, or Redis for a Redis URL (either sealed under
/// `PARTNER_AUTH_STORE_KEY` when that is set); a `word:` prefix that names no store is
/// refused. `field` names the setting in errors. A password in `--store` is refused: the
/// command line is visible to every user of the host.
pub(crate) fn open_store(
    lookup: Lookup<'_>,
    field: &str,
    path: &Path,
) -> Result<Arc<dyn TokenStore>, Error> {
    let Some(text) = path.to_str() else {
        // Not UTF-8: no URL, a file.
        let store = FileStore::new(path.to_path_buf());
        return Ok(match partner_auth::store_sealer(lookup)? {
            Some(sealer) => Arc::new(store.sealer(sealer)),
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
    partner_auth::open_store(lookup, text, field)
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

// Every method forwarded but `lock`, which notes an unreachable store.
partner_auth::token_provider::forward_token_store!(Watched => |this| &*this.inner, {
    async fn lock(&self, key: &StoreKey) -> Result<StoreLock, Error> {
        let result = self.inner.lock(key).await;
        if let Err(Error::StoreUnavailable { reason, .. }) = &result {
            *self.unreachable.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
        }
        result
    }
});

/// The options every provider is built with: a lazily built HTTP client (a run served from the
/// store sets up no TLS at all), the request timeout, and the store.
pub(crate) fn options(
    lookup: Lookup<'_>,
    store: Option<Arc<dyn TokenStore>>,
) -> Result<ProviderOptions, Error> {
    let mut options = ProviderOptions::default();
    let timeout =
        request_timeout(lookup(TIMEOUT_VAR).as_deref())?.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
    // Neither the cache's 60 s load limit nor its 2 minute fetch deadline may cut a run short
    // of what each request may take.
    let load = timeout
        .saturating_mul(REQUEST_TIMEOUTS_PER_LOAD)
        .max(MIN_LOAD_TIMEOUT);
    options.cache = Some(
        CacheConfig::default()
            .load_timeout(load)
            .fetch_timeout(load.max(MIN_FETCH_TIMEOUT)),
    );
    options.http = Some(HttpClient::builder().lazy().timeout(timeout).build()?);
    options.store = store;
    Ok(options)
}

/// The provider of `kind` as the environment configures it, with `options`.
pub(crate) fn provider(
    lookup: Lookup<'_>,
    kind: ProviderKind,
    options: &ProviderOptions,
) -> Result<Arc<dyn TokenProvider>, Error> {
    partner_auth::from_lookup(lookup, kind, options)
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
    fn the_documented_default_timeout_is_the_one_applied() {
        let options = options(&|_: &str| None, None).unwrap();
        let http = options.http.expect("a client");
        assert_eq!(http.timeout(), DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(DEFAULT_REQUEST_TIMEOUT, Duration::from_secs(30));
        assert!(crate::args::TOKEN_HELP.contains("(1 to 86400; default 30)"));
        // The load waits for every attempt of every request it may make, not a shorter limit.
        let shown = format!("{:?}", options.cache.expect("a cache configuration"));
        assert!(shown.contains("load_timeout: 360s"), "{shown}");
        assert!(shown.contains("fetch_timeout: 360s"), "{shown}");
    }

    #[test]
    fn the_store_comes_from_the_flag_then_the_variable() {
        let env = |name: &str| (name == STORE_VAR).then(|| "/from/env.json".to_owned());
        let none = |_: &str| None;
        let flag = Path::new("/from/flag.json");
        let path = |lookup, flag| store_path(lookup, flag).unwrap().map(|(_, p)| p);
        assert_eq!(path(&env, Some(flag)).as_deref(), Some(flag));
        assert_eq!(
            path(&env, None).as_deref(),
            Some(Path::new("/from/env.json"))
        );
        assert_eq!(path(&none, None), None);
        let blank = |name: &str| (name == STORE_VAR).then(|| " ".to_owned());
        assert_eq!(path(&blank, None), None);
        // A Redis URL opens a Redis store (nothing is sent until it is used).
        let redis = |name: &str| (name == STORE_VAR).then(|| "rediss://:pw-5c@h:6380/0".to_owned());
        let opened = store(&redis, None).unwrap().unwrap();
        let shown = format!("{opened:?}");
        assert!(
            shown.contains("RedisStore") && shown.contains("rediss://h:6380/0"),
            "{shown}"
        );
        assert!(!shown.contains("pw-5c"), "{shown}");
        let bad = |name: &str| (name == STORE_VAR).then(|| "redis://h:notaport/0".to_owned());
        let err = store(&bad, None).unwrap_err();
        assert!(err.to_string().contains(STORE_VAR), "{err}");
    }
}
