//! What a principal's cache holds and what a fetch hands it: the published [`Entry`], the
//! generation that names it, and the states a fetch can end with.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::decide::TokenTimes;
use crate::{AccessToken, Secret, TokenState};

/// A published token state, shared by every caller that reads it.
pub(crate) struct Entry {
    /// Its access token is published ([`AccessToken::published`]): it carries the refresh point.
    pub(crate) state: TokenState,
}

impl Entry {
    /// The entry for `state`, its token refreshed at `soft`.
    pub(crate) fn new(mut state: TokenState, soft: SystemTime) -> Self {
        state.access_token = state.access_token.published(soft);
        Self { state }
    }

    /// When the token is refreshed: served as it is before, served while a refresh runs after.
    pub(crate) fn soft(&self) -> SystemTime {
        self.state.access_token.refresh_at()
    }

    /// When the token stops being valid (`None`: no expiry known).
    pub(crate) fn hard(&self) -> Option<SystemTime> {
        self.state.access_token.expires_at()
    }

    /// Its refresh point and expiry, as [`decide`](super::decide::decide) reads them.
    pub(super) fn times(&self) -> TokenTimes {
        TokenTimes {
            refresh_at: self.soft(),
            expires_at: self.hard(),
        }
    }
}

/// Names each entry a slot publishes, unique across every cache of the process (never 0).
pub(crate) fn next_generation() -> u64 {
    static GENERATION: AtomicU64 = AtomicU64::new(1);
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// What one fetch produced.
pub(super) enum Obtained {
    /// A state from the provider.
    New(TokenState),
    /// An entry made from a fresh state another holder of the store saved.
    Adopted(Entry),
}

/// A state holding only `refresh_token`, for keeping one no other state holds: its access token
/// expired at the epoch, so it is never served or adopted, only refreshed with.
pub(super) fn rotated_only(refresh_token: Secret) -> TokenState {
    let placeholder = AccessToken::builder("expired")
        .expires_at(SystemTime::UNIX_EPOCH)
        .build();
    TokenState::new(placeholder).with_refresh_token(refresh_token)
}

/// Whether `state` is one [`rotated_only`] made: a refresh token and no real access token.
pub(super) fn is_placeholder(state: &TokenState) -> bool {
    state.access_token.expires_at() == Some(SystemTime::UNIX_EPOCH)
}
