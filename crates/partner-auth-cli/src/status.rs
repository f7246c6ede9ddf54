//! `partner-auth status`: what the store holds, one line per entry, never a secret.

use std::time::SystemTime;

use partner_auth::{StoreKey, TokenState};

use crate::args::StatusArgs;
use crate::exit::Failure;
use crate::setup::{self, Lookup};
use crate::token::rfc3339;

/// Lists the store's entries as text lines or, with `--json`, one JSON array.
pub(crate) async fn run(
    args: &StatusArgs,
    lookup: Lookup<'_>,
    now: SystemTime,
) -> Result<String, Failure> {
    let store = setup::required_store(args.store.store.as_deref(), lookup, "status")?;
    let entries = store
        .entries()
        .await
        .map_err(|e| Failure::from_error(None, &e))?;
    let rows: Vec<Row> = entries
        .iter()
        .map(|(key, state)| Row::new(key, state, now))
        .collect();
    Ok(if args.json {
        let mut line = serde_json::to_string(&rows).expect("strings always serialize");
        line.push('\n');
        line
    } else {
        rows.iter().map(|row| format!("{}\n", row.text())).collect()
    })
}

/// One entry as shown: the key's parts and the state's times, no secret.
#[derive(Debug, serde::Serialize)]
struct Row {
    provider: String,
    environment: String,
    tenant: String,
    principal: String,
    /// RFC 3339 UTC, or null when the provider did not say.
    expires_at: Option<String>,
    /// Seconds from now (negative once expired), or null.
    expires_in_secs: Option<i64>,
    /// Whether a refresh token is held (never the token).
    refresh_token: bool,
    /// RFC 3339 UTC, or null for entries stored before it was recorded.
    obtained_at: Option<String>,
}

impl Row {
    fn new(key: &StoreKey, state: &TokenState, now: SystemTime) -> Self {
        let [provider, environment, tenant, principal] = key.parts();
        let expires = state.access_token.expires_at();
        Self {
            provider,
            environment,
            tenant,
            principal,
            expires_at: expires.map(rfc3339),
            expires_in_secs: expires.map(|at| match at.duration_since(now) {
                Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
            }),
            refresh_token: state.refresh_token.is_some(),
            obtained_at: state.obtained_at.map(rfc3339),
        }
    }

    /// `aerion environment=… tenant=… principal=… expires in 59m 58s, refresh token held,
    /// obtained 2026-11-30T10:20:00Z`; key parts quoted when they hold blanks or controls.
    fn text(&self) -> String {
        let expiry = match self.expires_in_secs {
            None => "expiry unknown".to_owned(),
            Some(secs) if secs >= 0 => format!("expires in {}", span(secs.unsigned_abs())),
            Some(secs) => format!("expired {} ago", span(secs.unsigned_abs())),
        };
        let refresh = if self.refresh_token {
            "refresh token held"
        } else {
            "no refresh token"
        };
        let obtained = self.obtained_at.as_deref().map_or_else(
            || "obtained at an unknown time".to_owned(),
            |at| format!("obtained {at}"),
        );
        format!(
            "{} environment={} tenant={} principal={}, {expiry}, {refresh}, {obtained}",
            shown(&self.provider),
            shown(&self.environment),
            shown(&self.tenant),
            shown(&self.principal),
        )
    }
}

/// `value` as is when it is plain, else quoted with escapes (a store file is data: its text must
/// not move the terminal's cursor).
fn shown(value: &str) -> String {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_graphic()) {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

/// `1d 2h`, `59m 58s`, `7s`: the two largest units.
fn span(secs: u64) -> String {
    let (days, hours, mins, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (days, hours, mins) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m {s}s"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}
