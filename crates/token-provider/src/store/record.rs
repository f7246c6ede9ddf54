//! [`StoreRecord`]: what a store holds for one principal. Correctness across replicas rests on
//! its version and on the outcomes it records, not on the store's lock (which only saves
//! duplicate work: a lease can lapse, a store can forget it, a reply can be lost).
//!
//! - **Versioned saves.** Every write bumps the record's version. A save names the version its
//!   writer read, and succeeds only when the store still holds that version or holds nothing for
//!   the key (flushed, restarted, evicted); otherwise the store refuses it with
//!   [`Error::StoreFenced`](crate::Error::StoreFenced) and the writer reads again.
//! - **Presentations.** Before a refresh token is sent to the provider, the writer records that
//!   it is being presented ([`Presenting`]: which one, until when its answer may still come, and
//!   whether this is its first or second presentation). Anyone finding that record waits for the
//!   answer until the deadline; only then is the answer counted as lost, and the token may be
//!   presented once more, by one writer, never a third time.
//! - **Refusals.** When the provider refuses a refresh token, the refusal is recorded
//!   ([`Refusal`]: which token, when, and the provider's reason), so no replica and no later run
//!   presents it again.
//!
//! - **Forgets.** A `forget` leaves a record of itself ([`StoreRecord::forgotten_at`]) in place
//!   of the state: a replica that finds one it has not seen drops what it holds from before
//!   (the refresh token above all) instead of writing it back, and starts from scratch.
//!
//! - **Clocks.** A store shared by hosts whose clocks differ (Redis) records when the writer
//!   saved by its clock ([`StoreRecord::saved_at`]) and measures the record's age on a clock
//!   every replica shares (what is left of the lifetime it keeps the entry for); a reader moves
//!   every time in the record onto its own clock ([`StoreRecord::rebased`]), so replicas whose
//!   clocks disagree judge one token's expiry alike.
//!
//! A refresh token is named by a digest ([`RefreshDigest`]), never in clear, in both records.

use std::fmt;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::{AccessToken, ClockOffset, Secret, TokenState};

/// Clocks this close are taken as one by [`StoreRecord::rebased`]: a store's round trip and the
/// millisecond resolution of what it keeps blur anything finer.
pub const REBASE_TOLERANCE: Duration = Duration::from_secs(2);

/// One principal's record in a store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreRecord {
    /// The version of the write that put the record there (0: written by a store or a release
    /// that kept no versions).
    pub version: u64,
    /// The principal's state.
    pub state: TokenState,
    /// The state's refresh token is being presented to the provider.
    pub presenting: Option<Presenting>,
    /// The provider refused a refresh token.
    pub refused: Option<Refusal>,
    /// The principal was forgotten at this time: the record holds no usable state (its state is
    /// a placeholder that is never served), and whatever a replica holds from before is void.
    pub forgotten: Option<SystemTime>,
    /// When the writer saved the record, by its clock: set by a store whose readers may run on
    /// other clocks (see [`rebased`](Self::rebased)); `None` otherwise.
    pub saved_at: Option<SystemTime>,
    /// How long the store was asked to keep the record when it was saved: what a store that
    /// expires entries measures the record's age by (the lifetime less what is left of it).
    pub kept_for: Option<Duration>,
}

impl StoreRecord {
    /// A record holding `state` alone, at `version`.
    pub fn new(state: TokenState, version: u64) -> Self {
        Self {
            version,
            state,
            presenting: None,
            refused: None,
            forgotten: None,
            saved_at: None,
            kept_for: None,
        }
    }

    /// The record on this reader's clock, which read `saved_here` when the record was saved
    /// (by the record's age, measured on a clock the writer and the reader share): every time
    /// in it moved by how far this clock is from the writer's ([`saved_at`](Self::saved_at)),
    /// unless the two agree within [`REBASE_TOLERANCE`]. Unchanged when the writer's time is
    /// not recorded.
    #[must_use]
    pub fn rebased(mut self, saved_here: SystemTime) -> Self {
        let Some(saved_at) = self.saved_at else {
            return self;
        };
        let offset = ClockOffset::between(saved_at, saved_here);
        if offset.magnitude() <= REBASE_TOLERANCE {
            return self;
        }
        let move_ = |t: SystemTime| offset.apply(t);
        let token = &self.state.access_token;
        if let Some(at) = token.expires_at() {
            self.state.access_token = token.with_expires_at(move_(at));
        }
        self.state.obtained_at = self.state.obtained_at.map(move_);
        if let Some(p) = &mut self.presenting {
            p.deadline = move_(p.deadline);
        }
        if let Some(r) = &mut self.refused {
            r.at = move_(r.at);
        }
        self.forgotten = self.forgotten.map(move_);
        self.saved_at = Some(saved_here);
        self
    }

    /// The record a `forget` at `at` leaves: no state (a placeholder expired at the epoch,
    /// with no refresh token), only the time.
    pub fn forgotten_at(at: SystemTime) -> Self {
        let placeholder = AccessToken::builder("forgotten")
            .expires_at(SystemTime::UNIX_EPOCH)
            .build();
        Self {
            forgotten: Some(at),
            ..Self::new(TokenState::new(placeholder), 0)
        }
    }

    /// The record, unless it is a forget's: what a reader of states sees.
    pub fn into_state(self) -> Option<TokenState> {
        self.forgotten.is_none().then_some(self.state)
    }

    /// The record with `presenting` set.
    #[must_use]
    pub fn with_presenting(mut self, presenting: impl Into<Option<Presenting>>) -> Self {
        self.presenting = presenting.into();
        self
    }

    /// The record with `refused` set.
    #[must_use]
    pub fn with_refused(mut self, refused: impl Into<Option<Refusal>>) -> Self {
        self.refused = refused.into();
        self
    }

    /// The presentation under way of the state's own refresh token, if one is recorded.
    pub fn presenting_own(&self) -> Option<&Presenting> {
        let digest = self.state.refresh_token.as_ref().map(RefreshDigest::of)?;
        self.presenting
            .as_ref()
            .filter(|p| p.refresh_digest == digest)
    }

    /// The refusal of the state's own refresh token, if one is recorded.
    pub fn refused_own(&self) -> Option<&Refusal> {
        let digest = self.state.refresh_token.as_ref().map(RefreshDigest::of)?;
        self.refused.as_ref().filter(|r| r.refresh_digest == digest)
    }
}

/// A refresh token is being presented to the provider by one writer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Presenting {
    /// Which refresh token.
    pub refresh_digest: RefreshDigest,
    /// Until when the writer may still save the provider's answer; after it, the answer counts
    /// as lost.
    pub deadline: SystemTime,
    /// 1 for the token's first presentation, 2 for the one allowed after a lost answer.
    pub attempt: u32,
}

impl Presenting {
    /// A presentation of `refresh_token`.
    pub fn new(refresh_token: &Secret, deadline: SystemTime, attempt: u32) -> Self {
        Self {
            refresh_digest: RefreshDigest::of(refresh_token),
            deadline,
            attempt,
        }
    }
}

/// The provider refused a refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// Which refresh token.
    pub refresh_digest: RefreshDigest,
    /// When the refusal was recorded.
    pub at: SystemTime,
    /// Why, as the error said it (never a secret: errors carry none).
    pub reason: String,
}

impl Refusal {
    /// A refusal of `refresh_token`.
    pub fn new(refresh_token: &Secret, at: SystemTime, reason: impl Into<String>) -> Self {
        Self {
            refresh_digest: RefreshDigest::of(refresh_token),
            at,
            reason: reason.into(),
        }
    }
}

/// Names a refresh token without revealing it: the first 128 bits of its SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefreshDigest([u8; 16]);

impl RefreshDigest {
    /// The digest of `refresh_token`.
    pub fn of(refresh_token: &Secret) -> Self {
        let digest = Sha256::digest(refresh_token.expose_secret().as_bytes());
        let mut out = [0; 16];
        out.copy_from_slice(&digest[..16]);
        Self(out)
    }

    /// The digest as 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A digest from [`to_hex`](Self::to_hex)'s form.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 32 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for RefreshDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RefreshDigest({})", &self.to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_round_trips_and_never_shows_the_token() {
        let rt = Secret::from("refresh-token-value");
        let d = RefreshDigest::of(&rt);
        assert_eq!(RefreshDigest::from_hex(&d.to_hex()), Some(d));
        assert_ne!(d, RefreshDigest::of(&Secret::from("other")));
        assert!(!d.to_hex().contains("refresh"));
        assert_eq!(RefreshDigest::from_hex("zz"), None);
    }

    #[test]
    fn markers_apply_to_the_states_own_refresh_token_only() {
        let state =
            TokenState::new(AccessToken::new("at")).with_refresh_token(Secret::from("rt-2"));
        let at = SystemTime::UNIX_EPOCH;
        let old = Secret::from("rt-1");
        let record = StoreRecord::new(state.clone(), 3)
            .with_presenting(Presenting::new(&old, at, 1))
            .with_refused(Refusal::new(&old, at, "refused"));
        assert!(record.presenting_own().is_none());
        assert!(record.refused_own().is_none());
        let own = Secret::from("rt-2");
        let record = StoreRecord::new(state, 3)
            .with_presenting(Presenting::new(&own, at, 2))
            .with_refused(Refusal::new(&own, at, "refused"));
        assert_eq!(record.presenting_own().unwrap().attempt, 2);
        assert_eq!(record.refused_own().unwrap().reason, "refused");
    }
}
