//! The cache's promises by name, and a broken one. What each promise says precisely, and how a
//! run is held to it, is the [`checker`](crate::checker)'s.

use std::fmt;
use std::time::Duration;

use crate::trace::secs;

/// A promise of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Promise {
    /// No refresh token presented more than allowed.
    Presentation,
    /// A rotated refresh token that reached a live replica is never lost.
    RotatedKept,
    /// No caller is served an expired token, or one revoked through an over-presentation.
    Valid,
    /// No caller is served another principal's token.
    Principal,
    /// A token a caller reported refused is not served again by that replica.
    Reported,
    /// Forget leaves nothing behind from fetches begun before it returned.
    Forget,
    /// Callers get tokens once the faults stop, whatever hung.
    Liveness,
    /// A panicking fetch is backed off.
    Backoff,
}

impl Promise {
    /// Every promise.
    pub const ALL: [Promise; 8] = [
        Promise::Presentation,
        Promise::RotatedKept,
        Promise::Valid,
        Promise::Principal,
        Promise::Reported,
        Promise::Forget,
        Promise::Liveness,
        Promise::Backoff,
    ];

    /// Its short name.
    pub fn name(self) -> &'static str {
        match self {
            Promise::Presentation => "presented-once",
            Promise::RotatedKept => "rotated-kept",
            Promise::Valid => "valid-served",
            Promise::Principal => "own-principal",
            Promise::Reported => "reported-not-served",
            Promise::Forget => "forget",
            Promise::Liveness => "hang-liveness",
            Promise::Backoff => "panic-backoff",
        }
    }
}

/// A broken promise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which.
    pub promise: Promise,
    /// When (virtual time since the run began).
    pub at: Duration,
    /// What happened, naming tokens, replicas and times as the trace does.
    pub text: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] at {}: {}",
            self.promise.name(),
            secs(self.at),
            self.text
        )
    }
}
