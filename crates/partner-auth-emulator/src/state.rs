//! The emulator's state, shared by the router (`server`) and the per-provider handlers: what
//! was issued, what was recorded, which faults are queued, and the request as a handler sees it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use tokio::sync::watch;

use crate::config::{AuroraSolarUser, ClockOffset, EmulatorConfig};
use crate::fault::FaultQueue;
use crate::record::{AerionRefresh, RecordedRequest, basic_of, bearer_of};

/// What the router and every handler share: the configuration, the base URL and the state.
pub(crate) struct Shared {
    pub(crate) config: EmulatorConfig,
    pub(crate) url: String,
    pub(crate) state: Mutex<State>,
    pub(crate) stop: watch::Receiver<bool>,
}

/// What a token grants, for the protected resources to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Grant {
    /// An Aerion access token for this username.
    Aerion(String),
    /// An Aurora UK access token for this client id.
    AuroraUk(String),
    /// An Aurora Solar temporary key for this tenant.
    AuroraSolar(String),
}

#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) grant: Grant,
    pub(crate) expires_at: SystemTime,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) tenant: String,
    pub(crate) expires_at: SystemTime,
    pub(crate) spent: bool,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) offset: ClockOffset,
    pub(crate) faults: FaultQueue,
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) access_tokens: HashMap<String, Issued>,
    /// The one live refresh token of each Aerion user (by username).
    pub(crate) aerion_refresh: HashMap<String, String>,
    /// Every Aerion refresh grant processed, in order.
    pub(crate) aerion_refreshes: Vec<AerionRefresh>,
    pub(crate) sessions: HashMap<String, Session>,
    pub(crate) solar_users: HashMap<String, Vec<AuroraSolarUser>>,
    /// When each Aurora Solar key's recent requests were accepted (the limit's window).
    pub(crate) solar_windows: HashMap<String, std::collections::VecDeque<SystemTime>>,
    /// How many requests the rate limit refused.
    pub(crate) rate_limited: usize,
    /// The Aurora UK client secret accepted since a rotation (the configured one before).
    pub(crate) aurora_uk_client_secret: Option<String>,
    /// The Aurora Solar application key accepted since a rotation (the configured one before).
    pub(crate) aurora_solar_application_key: Option<String>,
}

impl State {
    /// Issues `token` for `grant`, live until `expires_at`, and returns it.
    pub(crate) fn issue(&mut self, token: String, grant: Grant, expires_at: SystemTime) -> String {
        self.access_tokens
            .insert(token.clone(), Issued { grant, expires_at });
        token
    }

    /// The grant behind a live token.
    pub(crate) fn live(&self, token: &str, now: SystemTime) -> Option<&Grant> {
        self.access_tokens
            .get(token)
            .filter(|t| t.expires_at > now)
            .map(|t| &t.grant)
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The emulator's time: the clock plus the offset.
    pub(crate) fn now(&self, state: &State) -> SystemTime {
        state.offset.apply(self.config.clock.now())
    }

    pub(crate) fn issuer(&self) -> String {
        format!("{}/aurora-uk/", self.url)
    }

    pub(crate) async fn stopped(&self) {
        let mut stop = self.stop.clone();
        // An error means the emulator was dropped: stop waiting as well.
        let _ = stop.wait_for(|s| *s).await;
    }
}

/// A route's path parameters by name, percent-decoded.
pub(crate) type Params = Vec<(&'static str, String)>;

/// One request, as the endpoint handlers see it.
pub(crate) struct Ctx {
    pub(crate) headers: HeaderMap,
    pub(crate) query: Option<String>,
    pub(crate) body: bytes::Bytes,
    /// From [`Fault::ExpiresIn`]: the lifetime of the token to issue.
    pub(crate) expires_in: Option<i64>,
    /// The path's parameters (`{tenant}`, ...), percent-decoded.
    pub(crate) params: Params,
}

impl Ctx {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A path parameter of the route (empty when the route has none of that name).
    pub(crate) fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The lifetime, in seconds, of the token to issue: the injected one
    /// ([`Fault::ExpiresIn`]), else `configured`.
    pub(crate) fn lifetime(&self, configured: Duration) -> i64 {
        self.expires_in.unwrap_or(configured.as_secs() as i64)
    }

    pub(crate) fn bearer(&self) -> Option<&str> {
        bearer_of(self.header("authorization")?)
    }

    pub(crate) fn basic(&self) -> Option<(String, String)> {
        basic_of(self.header("authorization")?)
    }

    /// The first value of each form field.
    pub(crate) fn form(&self) -> HashMap<String, String> {
        let mut fields = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(&self.body) {
            fields
                .entry(k.into_owned())
                .or_insert_with(|| v.into_owned());
        }
        fields
    }

    pub(crate) fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_deref()?.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub(crate) fn is_json(&self) -> bool {
        self.header("content-type")
            .is_some_and(|c| c.trim_start().starts_with("application/json"))
    }
}

/// `now + seconds`, seconds possibly negative.
pub(crate) fn shift(now: SystemTime, seconds: i64) -> SystemTime {
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        now.checked_add(magnitude)
            .unwrap_or(SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799))
    } else {
        now.checked_sub(magnitude).unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// A random string of ASCII letters and digits.
pub(crate) fn random_token(len: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(len)
        .collect()
}

/// A random version-4 UUID.
pub(crate) fn random_uuid() -> String {
    let b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    let b6 = (b[6] & 0x0f) | 0x40;
    let b8 = (b[8] & 0x3f) | 0x80;
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b6,
        b[7],
        b8,
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}
