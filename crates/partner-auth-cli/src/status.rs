//! `partner-auth status`: what the store holds, one line per entry, never a secret.

use std::time::SystemTime;

use partner_auth::token_provider::seal::SealedBy;
use partner_auth::{Error, StoreKey, TokenState};

use crate::args::StatusArgs;
use crate::exit::{self, Failure};
use crate::setup::{self, Lookup};
use crate::token::rfc3339;

/// What `status` prints, and why it fails although it printed (an entry it could not read).
pub(crate) struct Listing {
    pub(crate) stdout: String,
    pub(crate) failure: Option<Failure>,
}

/// Lists the store's entries as text lines or, with `--json`, one JSON array. An entry whose
/// state cannot be read (sealed under another key, damaged) is listed by its key with the reason,
/// the others as usual, and the run then fails with the first such reason.
pub(crate) async fn run(
    args: &StatusArgs,
    lookup: Lookup<'_>,
    now: SystemTime,
) -> Result<Listing, Failure> {
    let store = setup::required_store(lookup, args.store.store.as_deref(), "status", None)?;
    let entries = store
        .listing()
        .await
        .map_err(|e| Failure::from_error(None, &e))?;
    let rows: Vec<Row> = entries
        .iter()
        .map(|entry| Row::new(&entry.key, entry.state.as_ref(), entry.sealed_by, now))
        .collect();
    // The first unreadable entry names the failure: its key (quoted as in its row) and reason.
    let unreadable = rows.iter().filter(|row| row.unreadable.is_some()).count();
    let first = entries
        .iter()
        .zip(&rows)
        .find_map(|(entry, row)| entry.state.as_ref().err().map(|e| (e, row)));
    let failure = first.map(|(error, row)| {
        let what = match unreadable {
            1 => "1 stored entry could not be read".to_owned(),
            n => format!("{n} stored entries could not be read; the first"),
        };
        let reason = Failure::from_error(None, error);
        Failure::new(
            reason.code(),
            None,
            format!("{what} ({}): {}", row.key(), reason.message()),
        )
    });
    let stdout = if args.counts {
        let counts = Counts::of(&rows);
        if args.json {
            let mut line = serde_json::to_string(&counts).expect("counts always serialize");
            line.push('\n');
            line
        } else {
            counts.text()
        }
    } else if args.json {
        let mut line = serde_json::to_string(&rows).expect("strings always serialize");
        line.push('\n');
        line
    } else {
        rows.iter().map(|row| format!("{}\n", row.text())).collect()
    };
    Ok(Listing { stdout, failure })
}

/// What `status --counts` prints: how many entries, of which provider, and in which state.
#[derive(Debug, serde::Serialize)]
struct Counts {
    entries: usize,
    /// Entries per provider (the key's first part), by name.
    providers: std::collections::BTreeMap<String, usize>,
    /// Entries whose access token has expired.
    expired: usize,
    /// Entries holding a refresh token.
    refresh_tokens: usize,
    /// Entries sealed by an older key (sealed by the current one at their next save).
    sealed_by_older_key: usize,
    /// Entries whose state could not be read.
    unreadable: usize,
}

impl Counts {
    fn of(rows: &[Row]) -> Self {
        let count = |f: fn(&Row) -> bool| rows.iter().filter(|row| f(row)).count();
        let mut providers = std::collections::BTreeMap::new();
        for row in rows {
            *providers.entry(row.provider.clone()).or_default() += 1;
        }
        Self {
            entries: rows.len(),
            providers,
            expired: count(|row| row.expires_in_secs.is_some_and(|secs| secs < 0)),
            refresh_tokens: count(|row| row.refresh_token == Some(true)),
            sealed_by_older_key: count(|row| row.sealed_by_older_key == Some(true)),
            unreadable: count(|row| row.unreadable.is_some()),
        }
    }

    /// `entries: 3 (aerion 1, aurora-uk 2)` and one `name: count` line for each other count.
    fn text(&self) -> String {
        let providers: Vec<String> = self
            .providers
            .iter()
            .map(|(provider, n)| format!("{} {n}", shown(provider)))
            .collect();
        let by_provider = if providers.is_empty() {
            String::new()
        } else {
            format!(" ({})", providers.join(", "))
        };
        format!(
            "entries: {}{by_provider}\nexpired: {}\nrefresh tokens held: {}\n\
             sealed by an older key: {}\nunreadable: {}\n",
            self.entries,
            self.expired,
            self.refresh_tokens,
            self.sealed_by_older_key,
            self.unreadable
        )
    }
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
    /// Whether a refresh token is held (never the token); null when the entry could not be
    /// read.
    refresh_token: Option<bool>,
    /// RFC 3339 UTC, or null for entries stored before it was recorded.
    obtained_at: Option<String>,
    /// Why the entry's state could not be read (then the fields above but the key's are null),
    /// or null.
    unreadable: Option<String>,
    /// In a sealed store, the fingerprint of the key that sealed the entry (8 hex digits,
    /// never the key), or null.
    sealed_by: Option<String>,
    /// Whether that key is an older one (the entry is sealed under the current key at its next
    /// save), or null.
    sealed_by_older_key: Option<bool>,
}

impl Row {
    fn new(
        key: &StoreKey,
        state: Result<&TokenState, &Error>,
        sealed_by: Option<SealedBy>,
        now: SystemTime,
    ) -> Self {
        let [provider, environment, tenant, principal] = key.parts();
        let (state, unreadable) = match state {
            Ok(state) => (Some(state), None),
            Err(e) => (None, Some(exit::one_line(&e.to_string()))),
        };
        let expires = state.and_then(|s| s.access_token.expires_at());
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
            refresh_token: state.map(|s| s.refresh_token.is_some()),
            obtained_at: state.and_then(|s| s.obtained_at).map(rfc3339),
            unreadable,
            sealed_by: sealed_by.map(|by| by.fingerprint.to_string()),
            sealed_by_older_key: sealed_by.map(|by| !by.current),
        }
    }

    /// `aerion environment=… tenant=… principal=…`, parts quoted when they hold blanks or
    /// controls.
    fn key(&self) -> String {
        format!(
            "{} environment={} tenant={} principal={}",
            shown(&self.provider),
            shown(&self.environment),
            shown(&self.tenant),
            shown(&self.principal),
        )
    }

    /// `aerion environment=… tenant=… principal=…, expires in 59m 58s, refresh token held,
    /// obtained 2026-11-30T10:20:00Z` (then `, sealed by key 1a2b3c4d` in a sealed store, or
    /// `, sealed by older key …`), or `…, unreadable: <reason>`.
    fn text(&self) -> String {
        let key = self.key();
        if let Some(reason) = &self.unreadable {
            return format!("{key}, unreadable: {reason}");
        }
        let expiry = match self.expires_in_secs {
            None => "expiry unknown".to_owned(),
            Some(secs) if secs >= 0 => format!("expires in {}", span(secs.unsigned_abs())),
            Some(secs) => format!("expired {} ago", span(secs.unsigned_abs())),
        };
        let refresh = if self.refresh_token == Some(true) {
            "refresh token held"
        } else {
            "no refresh token"
        };
        let obtained = self.obtained_at.as_deref().map_or_else(
            || "obtained at an unknown time".to_owned(),
            |at| format!("obtained {at}"),
        );
        let sealed = match (&self.sealed_by, self.sealed_by_older_key) {
            (Some(fingerprint), Some(true)) => {
                format!(", sealed by older key {fingerprint} (the current key at its next save)")
            }
            (Some(fingerprint), _) => format!(", sealed by key {fingerprint}"),
            (None, _) => String::new(),
        };
        format!("{key}, {expiry}, {refresh}, {obtained}{sealed}")
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
