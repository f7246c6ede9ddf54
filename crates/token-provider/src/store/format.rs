//! The file format's entry encoding (see the [module docs](super)): one record as JSON, shared
//! by the file store (an entry of its file) and Redis (one value per key).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{Presenting, RefreshDigest, Refusal, StoreRecord};
use crate::token::MAX_EXPIRY_UNIX_SECS;
use crate::{AccessToken, Error, Secret, TokenState};

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoreFile {
    pub(super) version: u32,
    /// Each entry read on its own ([`entry_state`]): one that cannot be read is reported for
    /// itself, and kept as it is until it is replaced or removed.
    #[serde(default)]
    pub(super) entries: BTreeMap<String, serde_json::Value>,
    /// Fields a later release added: kept as they were.
    #[serde(flatten)]
    pub(super) extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct StoredEntry {
    access_token: String,
    #[serde(default = "bearer")]
    token_type: String,
    #[serde(default)]
    expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    obtained_at: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    /// The record's version ([`StoreRecord::version`]); missing in entries written before
    /// versions were kept (read as 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    presenting: Option<PresentingEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refused: Option<RefusalEntry>,
    /// [`StoreRecord::forgotten`], in Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    forgotten_ms: Option<u64>,
    /// [`StoreRecord::saved_at`], in Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    saved_ms: Option<u64>,
    /// [`StoreRecord::kept_for`], in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kept_ms: Option<u64>,
    /// Fields a later release added: kept as they were.
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// [`Presenting`] in the file format: the deadline in Unix milliseconds.
#[derive(Debug, Serialize, Deserialize)]
struct PresentingEntry {
    refresh_digest: String,
    deadline_ms: u64,
    attempt: u32,
}

/// [`Refusal`] in the file format: its time in Unix seconds.
#[derive(Debug, Serialize, Deserialize)]
struct RefusalEntry {
    refresh_digest: String,
    at: u64,
    reason: String,
}

fn digest_field(hex: &str) -> Result<RefreshDigest, Error> {
    RefreshDigest::from_hex(hex)
        .ok_or_else(|| Error::store("a stored entry has a malformed refresh_digest", None))
}

impl fmt::Debug for StoredEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredEntry")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("obtained_at", &self.obtained_at)
            .finish_non_exhaustive()
    }
}

fn bearer() -> String {
    "Bearer".to_owned()
}

fn unix_secs(at: SystemTime) -> Option<u64> {
    at.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_unix_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.min(MAX_EXPIRY_UNIX_SECS * 1000))
}

/// Unix seconds as a time, clamped to what a token can carry (a file written before expiries
/// were capped may hold 9e12).
fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.min(MAX_EXPIRY_UNIX_SECS))
}

impl StoredEntry {
    pub(super) fn from_state(
        state: &TokenState,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        let t = &state.access_token;
        Self {
            access_token: t.secret().expose_secret().to_owned(),
            token_type: t.token_type().to_owned(),
            expires_at: t.expires_at().and_then(unix_secs),
            obtained_at: state.obtained_at.and_then(unix_secs),
            scope: t.scope().map(str::to_owned),
            refresh_token: state
                .refresh_token
                .as_ref()
                .map(|r| r.expose_secret().to_owned()),
            version: None,
            presenting: None,
            refused: None,
            forgotten_ms: None,
            saved_ms: None,
            kept_ms: None,
            extra,
        }
    }

    pub(super) fn from_record(record: &StoreRecord) -> Self {
        let mut entry = Self::from_state(&record.state, Default::default());
        entry.version = Some(record.version);
        entry.presenting = record.presenting.as_ref().map(|p| PresentingEntry {
            refresh_digest: p.refresh_digest.to_hex(),
            deadline_ms: unix_millis(p.deadline),
            attempt: p.attempt,
        });
        entry.forgotten_ms = record.forgotten.map(unix_millis);
        entry.saved_ms = record.saved_at.map(unix_millis);
        entry.kept_ms = record
            .kept_for
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        entry.refused = record.refused.as_ref().map(|r| RefusalEntry {
            refresh_digest: r.refresh_digest.to_hex(),
            at: unix_secs(r.at).unwrap_or(0),
            reason: r.reason.clone(),
        });
        entry
    }

    pub(super) fn to_record(&self) -> Result<StoreRecord, Error> {
        let presenting = match &self.presenting {
            Some(p) => Some(Presenting {
                refresh_digest: digest_field(&p.refresh_digest)?,
                deadline: from_unix_millis(p.deadline_ms),
                attempt: p.attempt,
            }),
            None => None,
        };
        let refused = match &self.refused {
            Some(r) => Some(Refusal {
                refresh_digest: digest_field(&r.refresh_digest)?,
                at: from_unix_secs(r.at),
                reason: r.reason.clone(),
            }),
            None => None,
        };
        let mut record = StoreRecord::new(self.to_state()?, self.version.unwrap_or(0))
            .with_presenting(presenting)
            .with_refused(refused);
        record.forgotten = self.forgotten_ms.map(from_unix_millis);
        record.saved_at = self.saved_ms.map(from_unix_millis);
        record.kept_for = self.kept_ms.map(Duration::from_millis);
        Ok(record)
    }

    pub(super) fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("strings and numbers always serialize")
    }

    pub(super) fn to_state(&self) -> Result<TokenState, Error> {
        if self.access_token.is_empty() {
            return Err(Error::store(
                "a stored entry has an empty access token",
                None,
            ));
        }
        let token = AccessToken::builder(self.access_token.as_str())
            .token_type(self.token_type.as_str())
            .expires_at(self.expires_at.map(from_unix_secs))
            .scope(self.scope.clone())
            .build();
        Ok(TokenState::new(token)
            .with_refresh_token(self.refresh_token.as_deref().map(Secret::from))
            .with_obtained_at(self.obtained_at.map(from_unix_secs)))
    }
}

/// One state in the file format's entry encoding (the JSON object under `entries` above), for a
/// store that keeps each entry apart (one Redis value per key): the same fields, the same rules,
/// readable by [`decode_entry`]. The bytes hold the tokens in clear.
pub fn encode_entry(state: &TokenState) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(&StoredEntry::from_state(state, Default::default()))
        .map_err(|e| Error::store(format!("cannot encode a stored entry: {e}"), None))
}

/// One record in the file format's entry encoding: [`encode_entry`]'s fields with the record's
/// version and what it recorded, readable by [`decode_record`] (and by [`decode_entry`], which
/// reads the state alone).
pub fn encode_record(record: &StoreRecord) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(&StoredEntry::from_record(record))
        .map_err(|e| Error::store(format!("cannot encode a stored entry: {e}"), None))
}

/// A record from [`encode_record`]'s (or [`encode_entry`]'s, at version 0) bytes. The error
/// never quotes the bytes.
pub fn decode_record(bytes: &[u8]) -> Result<StoreRecord, Error> {
    parse_entry(bytes)?.to_record()
}

/// The state of one entry of a store file. The error never quotes the entry (a value in it may
/// be a token).
pub(super) fn entry_state(value: &serde_json::Value) -> Result<TokenState, Error> {
    entry_of(value)?.to_state()
}

pub(super) fn entry_of(value: &serde_json::Value) -> Result<StoredEntry, Error> {
    StoredEntry::deserialize(value)
        .map_err(|_| Error::store("a stored entry is not in the token store format", None))
}

/// Whether one entry of a store file in clear is the record of a `forget` (no state in it).
pub(super) fn entry_forgotten(value: &serde_json::Value) -> bool {
    value.get("forgotten_ms").is_some()
}

/// The version of one entry of a store file, read even when the rest cannot be (0 when none).
pub(super) fn entry_version(value: &serde_json::Value) -> u64 {
    value
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

/// A state from [`encode_entry`]'s bytes (or one entry of a store file). The error never quotes
/// the bytes.
pub fn decode_entry(bytes: &[u8]) -> Result<TokenState, Error> {
    parse_entry(bytes)?.to_state()
}

fn parse_entry(bytes: &[u8]) -> Result<StoredEntry, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::store(
            format!(
                "a stored entry is not in the token store format (line {}, column {})",
                e.line(),
                e.column()
            ),
            None,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::StoreKey;
    use super::*;

    fn state(token: &str, refresh: Option<&str>) -> TokenState {
        TokenState::new(
            AccessToken::builder(token)
                .expires_at(UNIX_EPOCH + Duration::from_secs(2_000_000_000))
                .build(),
        )
        .with_refresh_token(refresh.map(Secret::from))
    }

    #[test]
    fn keys_join_their_parts() {
        let key = StoreKey::new("aerion", "live", "acme", "me@x");
        assert_eq!(key.as_str(), "aerion|live|acme|me@x");
        assert_eq!(
            key.parts(),
            ["aerion", "live", "acme", "me@x"].map(String::from)
        );
    }

    #[test]
    fn parts_holding_the_separator_never_make_one_key() {
        let a = StoreKey::new("p", "e", "t|x", "u");
        let b = StoreKey::new("p", "e", "t", "x|u");
        assert_ne!(a, b);
        assert_eq!(b.parts()[3], "x|u");
        let c = StoreKey::new("p", "e", "100%7C", "u");
        assert_eq!(c.parts()[2], "100%7C");
        assert_ne!(c, StoreKey::new("p", "e", "100|", "u"));
    }

    #[test]
    fn entries_round_trip() {
        let s = state("at-1", Some("rt-1"));
        let s = s.with_obtained_at(UNIX_EPOCH + Duration::from_secs(1_999_000_000));
        let back = StoredEntry::from_state(&s, Default::default())
            .to_state()
            .unwrap();
        assert_eq!(back, s);
        assert_eq!(back.access_token.expires_at(), s.access_token.expires_at());
        assert_eq!(back.obtained_at, s.obtained_at);
        assert!(!format!("{:?}", StoredEntry::from_state(&s, Default::default())).contains("rt-1"));
        assert_eq!(decode_entry(&encode_entry(&s).unwrap()).unwrap(), s);
        let err = decode_entry(b"{\"access_token\": 7, \"x\": \"rt-1\"}").unwrap_err();
        assert!(!err.to_string().contains("rt-1"), "{err}");
    }
}
