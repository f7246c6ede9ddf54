//! The store protocol: one fetch of one principal through a [`TokenStore`]. Lock (to save
//! duplicate work), read the record, adopt a fresh token another holder saved, wait for a
//! presentation under way, record this one's presentation, fetch, and save with the version
//! read. Correctness comes from the versions and the recorded outcomes
//! ([`StoreRecord`](crate::StoreRecord)), never from the lock: a lease can lapse, a store can
//! forget everything, a reply can be lost.

use std::time::{Duration, SystemTime};

use tracing::{debug, error, warn};

use super::entry::{Obtained, is_placeholder, rotated_only};
use super::slot::PrincipalCache;
use crate::observe::CatchPanic;
use crate::store::{
    Presenting, RefreshDigest, Refusal, StoreKey, StoreLock, StoreRecord, TokenStore,
};
use crate::token::is_b64token;
use crate::{Error, KeyedFetch, Secret, TokenState};

/// How often a holder waiting for another's presentation reads the record again.
const PRESENTATION_POLL: Duration = Duration::from_millis(200);

/// How long past a presentation's deadline its answer is still waited for: the deadline is on
/// its writer's clock, which may run behind this one's.
const PRESENTATION_GRACE: Duration = Duration::from_secs(5);

/// How far apart two replicas' clocks may be when their times are compared.
const CLOCK_TOLERANCE: Duration = Duration::from_secs(60);

/// How often a save refused for a version read too early is tried again after reading anew.
const SAVE_ROUNDS: usize = 4;

/// What became of a presented refresh token, judged from the fetch's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// The provider refused it: nobody presents it again.
    Refused,
    /// Still good: the provider answered without taking it, or it never left this process.
    Unspent,
    /// The answer may have been lost on its way (a timeout, a reset, a garbled answer): it may
    /// be presented once more.
    Lost,
}

fn fate(error: &Error) -> Fate {
    if !error.may_have_reached_server() {
        return Fate::Unspent;
    }
    match error {
        // A person must act, or the grant itself was refused (RFC 6749 `invalid_grant`: the
        // refresh token is expired, revoked or spent). Other rejections name the client, not
        // the refresh token, which may still be good.
        Error::UserAction { .. } => Fate::Refused,
        Error::Rejected {
            code: Some(code), ..
        } if code == "invalid_grant" => Fate::Refused,
        Error::Rejected { .. }
        | Error::RateLimited { .. }
        | Error::Status { .. }
        | Error::Unavailable { .. }
        | Error::Config { .. } => Fate::Unspent,
        _ => Fate::Lost,
    }
}

/// The error every holder answers once a refresh token was refused, without presenting it.
fn refused_error(refusal: &Refusal) -> Error {
    Error::user_action(format!(
        "the provider refused the stored refresh token ({}); sign in again",
        refusal.reason
    ))
}

impl<F: KeyedFetch> PrincipalCache<F> {
    /// One fetch begun under `epoch`, through the store when there is one: the new state, or
    /// the entry adopted from the store. `deadline` is when the fetch is abandoned, recorded
    /// with a presentation so that others wait for this one's answer until then.
    pub(super) async fn fetch(&self, epoch: u32, deadline: SystemTime) -> Result<Obtained, Error> {
        let fetcher = &self.common.fetcher;
        let Some((store, key)) = self.store()? else {
            let previous = self.previous_state();
            let result = CatchPanic(fetcher.fetch(&self.principal, previous.as_ref())).await;
            if let (Err(error), Some(refresh_token)) =
                (&result, previous.and_then(|p| p.refresh_token))
                && fate(error) == Fate::Refused
            {
                self.drop_refused_refresh_token(&refresh_token, error.to_string());
            }
            return Ok(Obtained::New(self.stamp(result?)));
        };
        let key = &key;
        let lock = match self.observed(store, "lock", store.lock(key).await) {
            Ok(lock) => lock,
            // The store cannot be reached: a grant that spends nothing is fetched here, once
            // per process, and not saved; any other waits for the store (a refresh token spent
            // outside the fleet's records could be spent twice).
            Err(Error::StoreUnavailable { reason })
                if fetcher.repeatable_without_store(&self.principal) =>
            {
                warn!(
                    cache = self.config().name,
                    error = %reason,
                    "the token store is unavailable: fetching without it (the grant is safe to repeat)"
                );
                let state = fetcher.fetch(&self.principal, None).await?;
                return Ok(Obtained::New(self.stamp(state)));
            }
            Err(e) => return Err(e),
        };
        // `forget` took the lock first, and removed what it forgot: this fetch began before it
        // returned, so it neither fetches nor saves.
        if self.lock().epoch != epoch {
            return Err(forgotten());
        }
        let mut rounds = 0;
        loop {
            let record = self.observed(store, "load", store.load_record(key).await)?;
            match self
                .through_record(store, key, &lock, record, deadline)
                .await?
            {
                Step::Done(obtained) => return Ok(obtained),
                // Bounded by the presentation's deadline, and by this fetch's own.
                Step::Wait => {}
                Step::ReadAgain if rounds < SAVE_ROUNDS => rounds += 1,
                Step::ReadAgain => {
                    return Err(Error::store_busy(format!(
                        "the record of {key} kept changing while this holder read it"
                    )));
                }
            }
        }
    }

    /// Forgets this principal in `store` and in this process: what this process holds goes
    /// whatever the store answers (the error then says the store may still hold the state),
    /// under the store's lock, so that a fetch queued behind the forget finds the new epoch.
    /// Whether the store held a state.
    pub(super) async fn forget_in_store(
        &self,
        store: &dyn TokenStore,
        key: &StoreKey,
    ) -> Result<bool, Error> {
        let lock = match self.observed(store, "lock", store.lock(key).await) {
            Ok(lock) => lock,
            Err(e) => {
                self.forget_state();
                return Err(e);
            }
        };
        let held = self.previous_state().and_then(|s| s.refresh_token);
        let recorded = self.record_forget(store, key, &lock).await;
        self.forget_state();
        if let Ok(Forgot {
            at: Some(at),
            stored_refresh_token,
            ..
        }) = &recorded
        {
            self.void_before_forget(*at, held.iter().chain(stored_refresh_token));
        }
        drop(lock);
        Ok(recorded?.removed)
    }

    /// Leaves the record of a `forget` in the store, over whatever it holds (with the key's
    /// lock held). A store that keeps no records has the state removed; an entry that cannot be
    /// read is removed first.
    async fn record_forget(
        &self,
        store: &dyn TokenStore,
        key: &StoreKey,
        lock: &StoreLock,
    ) -> Result<Forgot, Error> {
        if !store.versioned() {
            let removed = self.observed(store, "remove", store.remove(key, lock).await)?;
            return Ok(Forgot {
                removed,
                at: None,
                stored_refresh_token: None,
            });
        }
        let at = self.common.now();
        let forgotten = StoreRecord::forgotten_at(at);
        let mut last = None;
        for _ in 0..SAVE_ROUNDS {
            let (read, stored, unreadable) =
                match self.observed(store, "load", store.load_record(key).await) {
                    Ok(record) => (
                        record.as_ref().map(|r| r.version),
                        record.and_then(StoreRecord::into_state),
                        false,
                    ),
                    Err(Error::Store { .. }) => (
                        None,
                        None,
                        self.observed(store, "remove", store.remove(key, lock).await)?,
                    ),
                    Err(e) => return Err(e),
                };
            match self.observed(
                store,
                "save",
                store.save_record(key, &forgotten, read, lock).await,
            ) {
                Ok(_) => {
                    return Ok(Forgot {
                        removed: stored.is_some() || unreadable,
                        at: Some(at),
                        stored_refresh_token: stored.and_then(|s| s.refresh_token),
                    });
                }
                Err(e @ Error::StoreFenced { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one round"))
    }

    /// The protocol from one read of the record on.
    async fn through_record(
        &self,
        store: &dyn TokenStore,
        key: &StoreKey,
        lock: &StoreLock,
        record: Option<StoreRecord>,
        deadline: SystemTime,
    ) -> Result<Step, Error> {
        let now = self.common.now();
        let read = record.as_ref().map(|r| r.version);
        // Nothing at all stored (a forget's record is something: it is never removed here).
        let nothing_stored = record.is_none();
        // A forget's record: nothing stored, and nothing held from before it either.
        let record = match record {
            Some(StoreRecord {
                forgotten: Some(at),
                ..
            }) => {
                self.follow_forget(at);
                None
            }
            record => record,
        };
        let previous = self.previous_state();
        let (rejected, first_load, unsaved) = {
            let mut control = self.lock();
            let first = !control.loaded_from_store;
            control.loaded_from_store = true;
            (
                control.rejected().cloned(),
                first,
                control.unsaved().is_some(),
            )
        };
        let stored_any = record.is_some();
        let mut attempt = 1;
        // Whether the store's record allows the second presentation of its refresh token.
        let mut retry_recorded = false;
        let mut base = previous.clone();
        if let Some(record) = record {
            // A record whose refresh token this process already spent is older than the state
            // this process holds (the store lost writes, and a stale state came back): never adopted.
            let behind = record
                .state
                .refresh_token
                .as_ref()
                .is_some_and(|rt| self.lock().spent(rt))
                && previous.as_ref().is_some_and(|p| {
                    p.refresh_token
                        .as_ref()
                        .is_some_and(|rt| !self.lock().spent(rt))
                });
            let entry = self.entry(adoptable(&record), now);
            let token = &entry.state.access_token;
            let is_rejected = rejected.as_ref() == Some(token);
            let ours = previous.as_ref().is_some_and(|p| p.access_token == *token);
            let sendable = is_b64token(token.secret().expose_secret());
            let fresh = now < entry.soft() && sendable && !is_rejected;
            if fresh && !behind && (first_load || !ours) {
                debug!(cache = self.config().name, "token adopted from the store");
                // What the store holds now is newer than the state that could not be saved.
                self.lock()
                    .clear_incidents(|incidents| incidents.unsaved = None);
                return Ok(Step::Done(Obtained::Adopted(entry)));
            }
            // The store's refresh token is the newest anybody holds, unless our last save
            // failed: then the store still holds the one our state rotated away. (A save whose
            // reply was lost may have landed: then the store holds our state, and is followed.)
            let landed = previous.as_ref().is_some_and(|p| {
                p.access_token == record.state.access_token
                    && p.refresh_token == record.state.refresh_token
            });
            if unsaved && landed {
                self.lock()
                    .clear_incidents(|incidents| incidents.unsaved = None);
            }
            // A record made from nothing but a configured refresh token (a process that started
            // after the store lost everything) is never newer than a state this one holds.
            let from_scratch = is_placeholder(&record.state)
                && previous
                    .as_ref()
                    .is_some_and(|p| !is_placeholder(p) && p.refresh_token.is_some());
            // (A state this process could not save is newer only when the store still holds
            // the refresh token it rotated away, which `behind` says: a save whose reply was
            // lost may have landed, and the store's different state descend from it.)
            let ours_is_newer = from_scratch || behind;
            if ours_is_newer {
                attempt = 2;
            }
            if !ours_is_newer {
                // What the store says is newer than what this process keeps.
                self.follow_stored_refresh_token(adoptable(&record).refresh_token);
                if let Some(refusal) = record.refused_own() {
                    if !self
                        .common
                        .fetcher
                        .repeatable_without_store(&self.principal)
                    {
                        return Err(refused_error(refusal));
                    }
                    // A fetch from scratch spends nothing (a password grant): it replaces the
                    // dead refresh token.
                    base = Some(TokenState {
                        refresh_token: None,
                        ..record.state
                    });
                } else if let Some(presenting) = record.presenting_own() {
                    let answer_due = presenting.deadline + PRESENTATION_GRACE;
                    if now < answer_due {
                        // Another holder presented it and may still save the answer.
                        let wait = answer_due
                            .duration_since(now)
                            .unwrap_or_default()
                            .min(PRESENTATION_POLL);
                        debug!(
                            cache = self.config().name,
                            "waiting for another holder's refresh to be saved"
                        );
                        tokio::time::sleep(wait).await;
                        return Ok(Step::Wait);
                    }
                    if presenting.attempt >= 2 {
                        // Its answer was lost twice: never presented a third time.
                        let refusal = Refusal::new(
                            record.state.refresh_token.as_ref().expect("presenting_own"),
                            now,
                            "its answer was lost twice",
                        );
                        let refused = record.clone().with_refused(refusal.clone());
                        self.record(store, key, lock, &refused, read).await;
                        return Err(refused_error(&refusal));
                    }
                    attempt = 2;
                    retry_recorded = true;
                    base = Some(record.state);
                } else {
                    base = Some(record.state);
                }
            }
        }
        if !stored_any && base.as_ref().is_some_and(|b| b.refresh_token.is_some()) {
            // The store holds nothing of the refresh token this process holds (a flush, a
            // restart without persistence, an eviction; or a save that failed, though the
            // presentation's record, which others may have read, held the state): another
            // replica may have presented it since, so this presentation may be its second, and
            // a lost answer is not followed by another.
            attempt = 2;
        }
        if base.is_none() && !stored_any {
            // Nothing stored or held: a refresh token the user configured is presented, and
            // recorded like any other (in a state of its own that is never served).
            base = self
                .common
                .fetcher
                .initial_refresh_token(&self.principal)
                .map(rotated_only);
        }
        let presented = base.as_ref().and_then(|b| b.refresh_token.clone());
        if let Some(refresh_token) = &presented
            && !retry_recorded
            && self.lock().unanswered(refresh_token)
        {
            // Presented here before, its answer lost, and no record of that presentation in
            // the store to allow one more: another holder may have presented it since.
            self.drop_refused_refresh_token(
                refresh_token,
                "its answer was lost and the store lost the record of its presentation".into(),
            );
        }
        // A refresh token this process saw refused is never presented again, whatever the
        // store says (its record of the refusal may not have been written, or been lost).
        let known_refused = self.lock().refused().cloned();
        if let (Some(refresh_token), Some(refusal)) = (&presented, known_refused)
            && RefreshDigest::of(refresh_token) == refusal.refresh_digest
        {
            // Recorded over the record it is about; over nothing (a store that lost
            // everything) the state it would write is older than what others may hold.
            if stored_any {
                let state = base.clone().expect("a presented refresh token has a state");
                let record = StoreRecord::new(state, 0).with_refused(refusal.clone());
                self.record(store, key, lock, &record, read).await;
            }
            return Err(refused_error(&refusal));
        }
        if let Some(refresh_token) = &presented
            && self.lock().spent(refresh_token)
        {
            return Err(Error::user_action(
                "the stored refresh token was already spent by this process and its successor \
                 is lost (the store lost its writes): sign in again",
            ));
        }
        let mut read = read;
        if let (Some(refresh_token), true) = (&presented, store.versioned()) {
            let state = base.clone().expect("a presented refresh token has a state");
            let marker = StoreRecord::new(state, 0).with_presenting(Presenting::new(
                refresh_token,
                deadline,
                attempt,
            ));
            match self.observed(
                store,
                "save",
                store.save_record(key, &marker, read, lock).await,
            ) {
                Ok(version) => read = Some(version),
                Err(Error::StoreFenced { .. }) => return Ok(Step::ReadAgain),
                // Not recorded (a full disk, a lost reply): the lock still keeps this process's
                // peers out, and the answer is saved, or kept and reported, as any other.
                Err(e) => warn!(
                    cache = self.config().name,
                    key = %key,
                    error = %e,
                    "could not record the refresh token's presentation in the store"
                ),
            }
        }
        if let Some(refresh_token) = &presented {
            self.lock().remember_presenting(refresh_token);
        }
        let result = CatchPanic(self.common.fetcher.fetch(&self.principal, base.as_ref())).await;
        let answered = match &result {
            Ok(_) | Err(Error::Rotated(_)) => true,
            Err(error) => fate(error) != Fate::Lost,
        };
        if let Some(refresh_token) = presented.as_ref().filter(|_| answered) {
            self.lock().answered(refresh_token);
        }
        let state = match result {
            Ok(state) => {
                // Spent only if the provider rotated it: one that answers without a new refresh
                // token leaves the one presented in force (the fetcher carries it forward).
                if let Some(refresh_token) = &presented
                    && state.refresh_token.as_ref() != Some(refresh_token)
                {
                    self.lock().remember_spent(refresh_token);
                }
                self.stamp(state)
            }
            Err(error) => {
                let (error, rotated) = error.take_rotated_refresh_token();
                if let Some(refresh_token) = rotated {
                    // The answer was refused but spent the token sent: its successor is saved
                    // (in the state the fetch began from), and kept in memory by the caller.
                    let state = match &base {
                        Some(base) => base.clone().with_refresh_token(refresh_token.clone()),
                        None => rotated_only(refresh_token.clone()),
                    };
                    self.save(store, key, lock, read, base.as_ref(), state)
                        .await?;
                    return Err(error.with_rotated_refresh_token(refresh_token));
                }
                if let Some(refresh_token) = &presented
                    && fate(&error) == Fate::Refused
                {
                    self.drop_refused_refresh_token(refresh_token, error.to_string());
                }
                if let (Some(refresh_token), Some(base), true) =
                    (&presented, &base, store.versioned())
                {
                    let presented = Presenting::new(refresh_token, self.common.now(), attempt);
                    let before = if retry_recorded {
                        Before::LostOnce
                    } else if nothing_stored {
                        Before::Nothing
                    } else {
                        Before::Record
                    };
                    self.record_failure(store, key, lock, read, base, presented, before, &error)
                        .await;
                }
                return Err(error);
            }
        };
        self.save(store, key, lock, read, base.as_ref(), state)
            .await
            .map(Step::Done)
    }

    /// Saves a fetched `state` with the version read; refused, reads again and saves over a
    /// record whose state is still `base` (only markers changed, or nothing is stored), and
    /// gives way only to a newer state.
    async fn save(
        &self,
        store: &dyn TokenStore,
        key: &StoreKey,
        lock: &StoreLock,
        mut read: Option<u64>,
        base: Option<&TokenState>,
        state: TokenState,
    ) -> Result<Obtained, Error> {
        let record = StoreRecord::new(state, 0);
        let mut refusal = None;
        for _ in 0..SAVE_ROUNDS {
            match self.observed(
                store,
                "save",
                store.save_record(key, &record, read, lock).await,
            ) {
                Ok(_) => {
                    self.lock()
                        .clear_incidents(|incidents| incidents.unsaved = None);
                    return Ok(Obtained::New(record.state));
                }
                Err(Error::StoreFenced { reason }) => {
                    let stored = match self.observed(store, "load", store.load_record(key).await) {
                        Ok(stored) => stored,
                        Err(e) => {
                            refusal = Some(e);
                            break;
                        }
                    };
                    match stored {
                        Some(stored)
                            if is_newer(&stored.state, base) && !self.is_stale(&stored, base) =>
                        {
                            return self.give_way(stored, record.state, reason);
                        }
                        stored => read = stored.map(|s| s.version),
                    }
                    refusal = Some(Error::store_fenced(reason));
                }
                Err(e) => {
                    refusal = Some(e);
                    break;
                }
            }
        }
        // Not saved: the state is still returned and cached in memory (dropping a rotated
        // refresh token because the store failed would lock the user out), the next refresh
        // starts from it, and the failure is kept for `store_error`.
        let e = refusal.unwrap_or_else(|| Error::store_busy("the record kept changing"));
        error!(
            cache = self.config().name,
            key = %key,
            error = %e,
            "could not save the new token state: a restart will not have it"
        );
        self.lock()
            .update(|incidents| incidents.unsaved = Some(std::sync::Arc::new(e)));
        Ok(Obtained::New(record.state))
    }

    /// Whether `stored`, a record that replaced the one this fetch began from (`base`), is older
    /// than `base` all the same: a state written back from a stale memory after the store lost
    /// its records. It holds a refresh token this process spent, or was obtained well before
    /// `base` ([`CLOCK_TOLERANCE`]: the two times come from two replicas' clocks).
    fn is_stale(&self, stored: &StoreRecord, base: Option<&TokenState>) -> bool {
        let spent = stored
            .state
            .refresh_token
            .as_ref()
            .is_some_and(|rt| self.lock().spent(rt));
        let earlier = match (stored.state.obtained_at, base.and_then(|b| b.obtained_at)) {
            (Some(stored), Some(base)) => stored + CLOCK_TOLERANCE < base,
            _ => false,
        };
        stored.forgotten.is_none() && (spent || earlier)
    }

    /// The store holds a newer state than the one this fetch began from: it is what the rest of
    /// the store's users hold, so it wins and `ours` is dropped; unless it cannot be used (a
    /// token a caller reported refused, or already expired), then ours is kept, unsaved.
    fn give_way(
        &self,
        stored: StoreRecord,
        ours: TokenState,
        reason: String,
    ) -> Result<Obtained, Error> {
        let now = self.common.now();
        let entry = self.entry(adoptable(&stored), now);
        let token = &entry.state.access_token;
        let valid = now < entry.soft() || entry.hard().is_some_and(|hard| now < hard);
        let sendable = is_b64token(token.secret().expose_secret());
        let is_rejected = self.lock().rejected().is_some_and(|r| r == token);
        if valid && sendable && !is_rejected {
            warn!(
                cache = self.config().name,
                "another holder saved a newer state: adopting it"
            );
            self.lock()
                .clear_incidents(|incidents| incidents.unsaved = None);
            return Ok(Obtained::Adopted(entry));
        }
        warn!(
            cache = self.config().name,
            "the store holds a newer state that cannot be used: keeping ours, unsaved"
        );
        let unsaved = std::sync::Arc::new(Error::store_fenced(reason));
        self.lock()
            .update(|incidents| incidents.unsaved = Some(unsaved));
        Ok(Obtained::New(ours))
    }

    /// Records what became of a presented refresh token after a failed fetch: a refusal, so
    /// nobody presents it again; an unspent token, so the store is as it was `before` this
    /// presentation's record; or a lost answer, due now (`presented` carries the time and the
    /// attempt), so the next holder presents it once more (after a first attempt).
    #[allow(clippy::too_many_arguments)]
    async fn record_failure(
        &self,
        store: &dyn TokenStore,
        key: &StoreKey,
        lock: &StoreLock,
        read: Option<u64>,
        base: &TokenState,
        presented: Presenting,
        before: Before,
        error: &Error,
    ) {
        if fate(error) == Fate::Unspent && before == Before::Nothing {
            // The store held nothing of it (it lost its records): nothing again, so that the
            // next holder presents from its memory as this one did, as a second presentation.
            if let Err(e) = self.observed(store, "remove", store.remove(key, lock).await) {
                warn!(
                    cache = self.config().name,
                    key = %key,
                    error = %e,
                    "could not record the refresh token's outcome in the store"
                );
            }
            return;
        }
        let record = StoreRecord::new(base.clone(), 0);
        // Due now, less the grace others give a deadline: this holder knows it is lost.
        let due = presented
            .deadline
            .checked_sub(PRESENTATION_GRACE)
            .unwrap_or(presented.deadline);
        let record = match fate(error) {
            Fate::Refused => record.with_refused(Refusal {
                refresh_digest: presented.refresh_digest,
                at: presented.deadline,
                reason: error.to_string(),
            }),
            // A second presentation that never left: the first one's answer is still lost, so
            // one presentation remains, as before this one.
            Fate::Unspent if before == Before::LostOnce => record.with_presenting(Presenting {
                deadline: due,
                attempt: 1,
                ..presented
            }),
            Fate::Unspent => record,
            Fate::Lost => record.with_presenting(Presenting {
                deadline: due,
                ..presented
            }),
        };
        self.record(store, key, lock, &record, read).await;
    }

    /// Writes `record` over the version read; a failure is logged, never in the way of the
    /// error being answered (a record not written only makes the next holder wait or ask).
    async fn record(
        &self,
        store: &dyn TokenStore,
        key: &StoreKey,
        lock: &StoreLock,
        record: &StoreRecord,
        read: Option<u64>,
    ) {
        let mut read = read;
        let mut outcome = self.observed(
            store,
            "save",
            store.save_record(key, record, read, lock).await,
        );
        for _ in 0..SAVE_ROUNDS {
            // Refused for a version read too early (a marker whose reply was lost, say): written
            // again while the stored state is still the one the outcome is about, or one older
            // (written back from a stale memory).
            let Err(Error::StoreFenced { .. }) = outcome else {
                break;
            };
            match self.observed(store, "load", store.load_record(key).await) {
                Ok(Some(stored))
                    if !is_newer(&stored.state, Some(&record.state))
                        || self.is_stale(&stored, Some(&record.state)) =>
                {
                    read = Some(stored.version);
                }
                Ok(None) => read = None,
                _ => break,
            }
            outcome = self.observed(
                store,
                "save",
                store.save_record(key, record, read, lock).await,
            );
        }
        if let Err(e) = outcome {
            warn!(
                cache = self.config().name,
                key = %key,
                error = %e,
                "could not record the refresh token's outcome in the store"
            );
        }
    }
}

/// What a `forget` did in the store.
struct Forgot {
    /// A state was there.
    removed: bool,
    /// When the record of the forget was written (none in a store that keeps no records).
    at: Option<SystemTime>,
    /// The refresh token the forgotten state held.
    stored_refresh_token: Option<Secret>,
}

/// What the store held of a presented refresh token before its presentation was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Before {
    /// Nothing: the store had lost its records.
    Nothing,
    /// Its presentation with a lost answer: this was the one more allowed.
    LostOnce,
    /// A record (its state, or one this process's memory is newer than).
    Record,
}

/// What one read of the record led to.
enum Step {
    Done(Obtained),
    /// The record changed under this holder's write: read it again.
    ReadAgain,
    /// Another holder's answer is awaited: read it again.
    Wait,
}

/// Whether `stored` is a newer state than `base`, the one a fetch began from.
fn is_newer(stored: &TokenState, base: Option<&TokenState>) -> bool {
    base.is_none_or(|base| {
        stored.access_token != base.access_token || stored.refresh_token != base.refresh_token
    })
}

/// The state of `record` as a holder adopts it: without a refresh token that another holder is
/// presenting or that was refused, which this holder must never present from its memory (the
/// store may forget the record that says so: a forget elsewhere, a flush).
fn adoptable(record: &StoreRecord) -> TokenState {
    let mut state = record.state.clone();
    if record.presenting_own().is_some() || record.refused_own().is_some() {
        state.refresh_token = None;
    }
    state
}

fn forgotten() -> Error {
    Error::store(
        "the principal was forgotten while this fetch waited for the store's lock",
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_tokens_fate_follows_the_answer() {
        assert_eq!(fate(&Error::user_action("sign in")), Fate::Refused);
        assert_eq!(fate(&Error::rejected(Some(401), None, None)), Fate::Unspent);
        let invalid_grant = Error::rejected(Some(400), Some("invalid_grant"), None);
        assert_eq!(fate(&invalid_grant), Fate::Refused);
        let invalid_client = Error::rejected(Some(401), Some("invalid_client"), None);
        assert_eq!(fate(&invalid_client), Fate::Unspent);
        assert_eq!(fate(&Error::http_status(503)), Fate::Unspent);
        assert_eq!(fate(&Error::timeout(Duration::from_secs(1))), Fate::Lost);
        assert_eq!(fate(&Error::transport("reset")), Fate::Lost);
        assert_eq!(fate(&Error::malformed("garbled")), Fate::Lost);
        let refused = Error::transport("connection refused").into_not_sent();
        assert_eq!(fate(&refused), Fate::Unspent);
        assert_eq!(fate(&refused.clone()), Fate::Unspent);
    }
}
