//! [`AccessToken`] and [`TokenState`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::Secret;

/// A bearer token as a provider issued it.
///
/// Cheap to clone (one reference count), redacted in `Debug`, with no `Display` or
/// `Serialize`; the secret is zeroized when the last clone is dropped. `==` compares the
/// secret in constant time.
#[derive(Clone)]
pub struct AccessToken(Arc<Inner>);

pub(crate) struct Inner {
    secret: Secret,
    /// `None`: `Bearer`, as nearly every provider spells it, kept without an allocation of its
    /// own (a keyed cache holds one token per principal).
    token_type: Option<Box<str>>,
    expires_at: Option<SystemTime>,
    /// Boxed: most tokens have none, and a cache holds one per principal.
    scope: Option<Box<str>>,
    /// When the cache that published this token refreshes it (the Unix epoch until a cache
    /// publishes it). Kept in the token's own allocation, so a cache hit reads one allocation
    /// (the one whose reference count it takes anyway): see [`AccessToken::published`].
    refresh_at: SystemTime,
}

impl Inner {
    /// When the cache that published this token refreshes it.
    pub(crate) fn refresh_at(&self) -> SystemTime {
        self.refresh_at
    }
}

/// How the builder's default type is spelled.
const BEARER: &str = "Bearer";

impl AccessToken {
    /// A bearer token with no known expiry or scope.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self::builder(secret).build()
    }

    /// Starts a token with more than the secret.
    pub fn builder(secret: impl Into<Secret>) -> AccessTokenBuilder {
        AccessTokenBuilder {
            secret: secret.into(),
            token_type: BEARER.to_owned(),
            expires_at: None,
            scope: None,
        }
    }

    /// The token itself.
    ///
    /// # Security Warning
    ///
    /// This is the credential: put it in an `Authorization` header and nowhere else.
    pub fn secret(&self) -> &Secret {
        &self.0.secret
    }

    /// The token type as the provider spelled it (`Bearer`, `bearer`, ...).
    pub fn token_type(&self) -> &str {
        self.0.token_type.as_deref().unwrap_or(BEARER)
    }

    /// When the provider says the token stops working, if it said.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.0.expires_at
    }

    /// The scope the provider granted, if it said.
    pub fn scope(&self) -> Option<&str> {
        self.0.scope.as_deref()
    }

    /// The time left before expiry at `now` (zero once expired; `None` when unknown).
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        self.0
            .expires_at
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
    }

    /// Whether the token has expired at `now`. A token with no expiry never does.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.0.expires_at.is_some_and(|at| at <= now)
    }

    /// The value for an `Authorization` header: always `Bearer <token>` (the scheme is
    /// case-insensitive, but some servers are not, and `bearer` is what some providers report).
    ///
    /// The value is a [`Secret`]: redacted in `Debug`, zeroized when dropped; read it with
    /// [`expose_secret`](Secret::expose_secret) where the header is written.
    ///
    /// # Security Warning
    ///
    /// The exposed value contains the token.
    pub fn authorization_value(&self) -> Secret {
        let token = self.0.secret.expose_secret();
        // Built at its final size, so no reallocation leaves a copy behind in freed memory.
        let mut value = String::with_capacity("Bearer ".len() + token.len());
        value.push_str("Bearer ");
        value.push_str(token);
        Secret::new(value)
    }

    /// A copy in a new allocation (the secret included), for a cache that keeps one copy per
    /// thread so that clones on different cores never contend for one reference count.
    pub(crate) fn deep_copy(&self) -> Self {
        self.with(
            Secret::new(self.0.secret.expose_secret()),
            self.0.refresh_at,
        )
    }

    /// This token expiring at `at` instead (a time moved onto another clock), in a new
    /// allocation.
    pub(crate) fn with_expires_at(&self, at: SystemTime) -> Self {
        Self(Arc::new(Inner {
            secret: self.0.secret.clone(),
            token_type: self.0.token_type.clone(),
            expires_at: Some(at),
            scope: self.0.scope.clone(),
            refresh_at: self.0.refresh_at,
        }))
    }

    /// This token in a new allocation holding `secret` and `refresh_at`.
    fn with(&self, secret: Secret, refresh_at: SystemTime) -> Self {
        Self(Arc::new(Inner {
            secret,
            token_type: self.0.token_type.clone(),
            expires_at: self.0.expires_at,
            scope: self.0.scope.clone(),
            refresh_at,
        }))
    }

    /// This token as a cache publishes it, to be refreshed at `refresh_at`: the same allocation
    /// when nothing else holds it (a token just fetched), else a new one sharing the secret (not
    /// a copy of its bytes), so that a token another cache published, a store keeps or anyone
    /// holds keeps its own refresh point.
    pub(crate) fn published(mut self, refresh_at: SystemTime) -> Self {
        match Arc::get_mut(&mut self.0) {
            Some(inner) => {
                inner.refresh_at = refresh_at;
                self
            }
            None => self.with(self.0.secret.clone(), refresh_at),
        }
    }

    /// The shared allocation (what a cache publishes for its lock-free readers).
    pub(crate) fn shared(&self) -> &Arc<Inner> {
        &self.0
    }

    /// A handle on an allocation [`shared`](Self::shared) gave out.
    pub(crate) fn from_shared(inner: Arc<Inner>) -> Self {
        Self(inner)
    }

    /// When the cache that published this token refreshes it (see [`published`](Self::published)).
    pub(crate) fn refresh_at(&self) -> SystemTime {
        self.0.refresh_at()
    }

    /// Whether two handles are the very same allocation: the cheap check `==` makes before
    /// comparing secrets. Tokens a cache hands to different threads are equal (`==`) but are
    /// separate copies, and the token a cache publishes is a new allocation whenever anyone
    /// else still holds the one it got (a fetcher or a store that keeps it); compare tokens
    /// with `==`.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl PartialEq for AccessToken {
    fn eq(&self, other: &Self) -> bool {
        self.ptr_eq(other) || self.0.secret == other.0.secret
    }
}

impl Eq for AccessToken {}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &self.0.secret)
            .field("token_type", &self.token_type())
            .field("expires_at", &self.0.expires_at.map(Rfc3339))
            .field("scope", &self.0.scope)
            .finish()
    }
}

/// A time shown in `Debug` as RFC 3339 UTC to the second (`2026-11-22T10:00:00Z`), which a
/// reader compares with a log line at a glance; a `SystemTime`'s own `Debug` is seconds since
/// the epoch.
struct Rfc3339(SystemTime);

impl fmt::Debug for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = match self.0.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(since) => since.as_secs().min(MAX_EXPIRY_UNIX_SECS),
            // Before 1970: no token expires then; shown as the epoch.
            Err(_) => 0,
        };
        // Days to a civil date (Howard Hinnant's `civil_from_days`).
        let (days, rest) = (secs / 86_400, secs % 86_400);
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z % 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        )
    }
}

/// The latest expiry a token can carry: 9999-12-31T23:59:59Z, the last instant RFC 3339 can
/// write. A provider's `expires_in` of 9e12 seconds is taken as this (and the cache's
/// [`max_lifetime`](crate::CacheConfig::max_lifetime) decides when it is refreshed).
pub fn max_expiry() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(MAX_EXPIRY_UNIX_SECS)
}

/// [`max_expiry`] in Unix seconds.
pub const MAX_EXPIRY_UNIX_SECS: u64 = 253_402_300_799;

/// Whether `token` can be sent as `Authorization: Bearer <token>` as it is: RFC 6750's
/// `b64token` (letters, digits, `-._~+/`, then `=` padding). Anything else (spaces, CR/LF,
/// control or non-ASCII characters) would break or inject a header line wherever it is pasted.
pub fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// Builds an [`AccessToken`].
#[must_use]
#[derive(Debug)]
pub struct AccessTokenBuilder {
    secret: Secret,
    token_type: String,
    expires_at: Option<SystemTime>,
    scope: Option<String>,
}

impl AccessTokenBuilder {
    /// The token type (default `Bearer`).
    pub fn token_type(mut self, token_type: impl Into<String>) -> Self {
        self.token_type = token_type.into();
        self
    }

    /// The absolute expiry, capped at [`max_expiry`] (an absurd one would otherwise overflow
    /// whatever formats it).
    pub fn expires_at(mut self, at: impl Into<Option<SystemTime>>) -> Self {
        self.expires_at = at.into().map(|at| at.min(max_expiry()));
        self
    }

    /// Expiry as a lifetime counted from `now` (what OAuth's `expires_in` means), capped at
    /// [`max_expiry`].
    pub fn expires_in(mut self, now: SystemTime, lifetime: Duration) -> Self {
        self.expires_at = Some(
            now.checked_add(lifetime)
                .unwrap_or_else(max_expiry)
                .min(max_expiry()),
        );
        self
    }

    /// The granted scope.
    pub fn scope(mut self, scope: impl Into<Option<String>>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The token.
    pub fn build(self) -> AccessToken {
        AccessToken(Arc::new(Inner {
            secret: self.secret,
            token_type: (self.token_type != BEARER).then(|| self.token_type.into_boxed_str()),
            expires_at: self.expires_at,
            scope: self.scope.map(String::into_boxed_str),
            refresh_at: SystemTime::UNIX_EPOCH,
        }))
    }
}

/// What a fetch produces and what a [`TokenStore`](crate::TokenStore) keeps: the access token
/// plus the state a provider needs for its next fetch (a rotating refresh token, say), and when
/// it was obtained.
///
/// Build it with [`new`](Self::new) and the `with_*` methods; more fields may come.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenState {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token, for providers that issue one.
    pub refresh_token: Option<Secret>,
    /// When the access token was obtained from the provider. The cache sets it when a fetch
    /// returns (a fetcher may set it itself); a store keeps it, so a token adopted from a store
    /// gets the same refresh margin and lifetime limits as one just fetched. `None` for states
    /// stored before this was recorded.
    pub obtained_at: Option<SystemTime>,
}

impl TokenState {
    /// State holding only an access token.
    pub fn new(access_token: AccessToken) -> Self {
        Self {
            access_token,
            refresh_token: None,
            obtained_at: None,
        }
    }

    /// Records when the access token was obtained.
    #[must_use]
    pub fn with_obtained_at(mut self, obtained_at: impl Into<Option<SystemTime>>) -> Self {
        self.obtained_at = obtained_at.into();
        self
    }

    /// Adds a refresh token.
    #[must_use]
    pub fn with_refresh_token(mut self, refresh_token: impl Into<Option<Secret>>) -> Self {
        self.refresh_token = refresh_token.into();
        self
    }
}

impl From<AccessToken> for TokenState {
    fn from(access_token: AccessToken) -> Self {
        Self::new(access_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_expiry_in_rfc3339() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_341_600_750);
        let t = AccessToken::builder("tok").expires_at(at).build();
        let dbg = format!("{t:?}");
        assert!(
            dbg.contains("expires_at: Some(2026-11-22T10:00:00Z)"),
            "{dbg}"
        );
        let dbg = format!("{:?}", AccessToken::new("tok"));
        assert!(dbg.contains("expires_at: None"), "{dbg}");
        // The extremes: the epoch, a leap day, the last instant RFC 3339 can write.
        for (secs, shown) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (MAX_EXPIRY_UNIX_SECS, "9999-12-31T23:59:59Z"),
        ] {
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            let t = AccessToken::builder("tok").expires_at(at).build();
            assert!(format!("{t:?}").contains(shown), "{t:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = AccessToken::builder("eyJ-super-secret")
            .token_type("bearer")
            .scope(Some("read".to_owned()))
            .build();
        let dbg = format!("{t:?} {t:#?}");
        assert!(!dbg.contains("eyJ-super-secret"), "{dbg}");
        assert!(dbg.contains("bearer") && dbg.contains("read"), "{dbg}");
        let state = TokenState::new(t).with_refresh_token(Some(Secret::new("rt-secret-1")));
        let dbg = format!("{state:?}");
        assert!(
            !dbg.contains("rt-secret-1") && !dbg.contains("eyJ-super-secret"),
            "{dbg}"
        );
    }

    #[test]
    fn expiry_arithmetic() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let t = AccessToken::builder("x")
            .expires_in(now, Duration::from_secs(60))
            .build();
        assert_eq!(t.remaining(now), Some(Duration::from_secs(60)));
        assert!(!t.is_expired(now));
        assert!(t.is_expired(now + Duration::from_secs(60)));
        assert_eq!(
            t.remaining(now + Duration::from_secs(90)),
            Some(Duration::ZERO)
        );
        assert!(!AccessToken::new("y").is_expired(now));
    }

    #[test]
    fn absurd_expiries_are_capped_at_the_last_rfc3339_instant() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let t = AccessToken::builder("x")
            .expires_in(now, Duration::from_secs(9_000_000_000_000))
            .build();
        assert_eq!(t.expires_at(), Some(max_expiry()));
        let t = AccessToken::builder("x")
            .expires_in(now, Duration::MAX)
            .build();
        assert_eq!(t.expires_at(), Some(max_expiry()));
        let t = AccessToken::builder("x")
            .expires_at(max_expiry() + Duration::from_secs(1))
            .build();
        assert_eq!(t.expires_at(), Some(max_expiry()));
    }

    #[test]
    fn only_b64token_characters_make_a_bearer() {
        for good in ["abc", "eyJ.a-b_c~d+e/f==", "tk_test_0123", "A="] {
            assert!(is_b64token(good), "{good}");
        }
        for bad in [
            "",
            "=",
            "a b",
            "a\r\nX-Evil: 1",
            "a\tb",
            "tök",
            "a\u{7f}",
            "a=b",
            "a,b",
            "\"a\"",
        ] {
            assert!(!is_b64token(bad), "{bad:?}");
        }
    }

    #[test]
    fn equality_is_by_secret_and_clone_is_shallow() {
        let a = AccessToken::new("same");
        let b = a.clone();
        assert!(a.ptr_eq(&b));
        assert_eq!(a, AccessToken::new("same"));
        assert_ne!(a, AccessToken::new("other"));
        assert_eq!(a.authorization_value().expose_secret(), "Bearer same");
        assert_eq!(
            format!("{:?}", a.authorization_value()),
            "Secret([redacted])"
        );
    }
}
