//! Versions and recorded outcomes decide, not the lock: each rule of the store protocol, with
//! two replicas (two caches) sharing one versioned store in paused time, against a provider that
//! rotates refresh tokens and records every one presented.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use token_provider::{
    AccessToken, CacheConfig, CachedTokenProvider, Error, Fetch, FileStore, MemoryStore, Secret,
    StoreKey, StoreLock, StoreRecord, TokenProvider, TokenState, TokenStore, TokioClock,
    async_trait,
};

const HOUR: Duration = Duration::from_secs(3600);

fn key() -> StoreKey {
    StoreKey::new("test", "env", "tenant", "me")
}

/// What the provider does with the next refresh grant.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    /// Rotate and answer.
    Rotate,
    /// Refuse the refresh token (no password: a person must sign in).
    Refuse,
    /// Refuse the grant as OAuth does: 400 `invalid_grant`.
    InvalidGrant,
    /// Rotate, then lose the answer on its way back.
    LoseAfterRotating,
    /// Answer 503 without taking the refresh token.
    Unavailable,
}

/// A provider that rotates refresh tokens: `rt-N` buys `at-N+1` and `rt-N+1`.
#[derive(Debug, Default)]
struct Provider {
    presented: Mutex<Vec<String>>,
    next: Mutex<Vec<Answer>>,
    issued: Mutex<u32>,
}

#[derive(Debug, Clone)]
struct Replica {
    provider: Arc<Provider>,
    clock: TokioClock,
}

#[async_trait]
impl Fetch for Replica {
    fn store_key(&self) -> Option<StoreKey> {
        Some(key())
    }

    async fn fetch(&self, previous: Option<&TokenState>) -> Result<TokenState, Error> {
        // No refresh token: a login (a password grant), which starts a new family.
        let rt = previous
            .and_then(|p| p.refresh_token.as_ref())
            .map_or_else(|| "(login)".to_owned(), |r| r.expose_secret().to_owned());
        self.provider.presented.lock().unwrap().push(rt);
        let answer = {
            let mut next = self.provider.next.lock().unwrap();
            if next.is_empty() {
                Answer::Rotate
            } else {
                next.remove(0)
            }
        };
        if answer == Answer::Refuse {
            return Err(Error::user_action("the refresh token was refused: sign in"));
        }
        if answer == Answer::Unavailable {
            return Err(Error::http_status(503));
        }
        if answer == Answer::InvalidGrant {
            return Err(Error::rejected(
                Some(400),
                Some("invalid_grant"),
                Some("refresh token revoked"),
            ));
        }
        let n = {
            let mut issued = self.provider.issued.lock().unwrap();
            *issued += 1;
            *issued
        };
        if answer == Answer::LoseAfterRotating {
            return Err(Error::timeout(Duration::from_secs(5)));
        }
        let now = token_provider::Clock::now(&self.clock);
        Ok(TokenState::new(
            AccessToken::builder(format!("at-{n}"))
                .expires_in(now, HOUR)
                .build(),
        )
        .with_refresh_token(Secret::from(format!("rt-{n}"))))
    }
}

struct Fleet {
    provider: Arc<Provider>,
    clock: TokioClock,
    store: Arc<dyn TokenStore>,
}

impl Fleet {
    /// A store seeded with an expired state holding `rt-0`.
    async fn new(store: Arc<dyn TokenStore>) -> Self {
        let clock = TokioClock::new(token_provider::testing::epoch());
        let expired = TokenState::new(
            AccessToken::builder("at-0")
                .expires_at(token_provider::testing::epoch())
                .build(),
        )
        .with_refresh_token(Secret::from("rt-0"));
        let lock = store.lock(&key()).await.unwrap();
        store.save(&key(), &expired, &lock).await.unwrap();
        Self {
            provider: Arc::default(),
            clock,
            store,
        }
    }

    fn replica(&self) -> CachedTokenProvider<Replica> {
        self.replica_with(|c| c)
    }

    fn replica_with(
        &self,
        config: impl FnOnce(CacheConfig) -> CacheConfig,
    ) -> CachedTokenProvider<Replica> {
        CachedTokenProvider::with_config(
            Replica {
                provider: Arc::clone(&self.provider),
                clock: self.clock.clone(),
            },
            config(
                CacheConfig::new()
                    .clock(Arc::new(self.clock.clone()))
                    .store(Arc::clone(&self.store))
                    .backoff(Duration::from_secs(1), Duration::from_secs(1))
                    .negative_ttl(Duration::from_secs(1)),
            ),
        )
    }

    fn answer_next(&self, answers: &[Answer]) {
        self.provider
            .next
            .lock()
            .unwrap()
            .extend_from_slice(answers);
    }

    fn presented(&self) -> Vec<String> {
        self.provider.presented.lock().unwrap().clone()
    }

    async fn stored(&self) -> Option<StoreRecord> {
        self.store.load_record(&key()).await.unwrap()
    }
}

fn secret(token: &AccessToken) -> &str {
    token.secret().expose_secret()
}

/// A store whose saves of states (not of records) are refused once, as Redis refuses a save
/// after another holder merely took the lock: the fence moved, nobody wrote.
#[derive(Debug)]
struct FenceMovedOnce {
    inner: MemoryStore,
    refused: Mutex<bool>,
}

token_provider::forward_token_store!(FenceMovedOnce => |this| &this.inner, {
    async fn save_record(
        &self,
        key: &StoreKey,
        record: &StoreRecord,
        read: Option<u64>,
        lock: &StoreLock,
    ) -> Result<u64, Error> {
        // The first save of a fetched state (no presentation recorded in it) is refused as if
        // another holder had touched the record: another holder's marker-free write of the
        // same state, which a version check must not mistake for a newer state.
        if record.presenting.is_none() && std::mem::take(&mut *self.refused.lock().unwrap()) {
            let current = self.inner.load_record(key).await?.expect("seeded");
            // Rewritten unchanged: the version moves, the state does not.
            self.inner
                .save_record(
                    key,
                    &StoreRecord::new(current.state, 0),
                    Some(current.version),
                    lock,
                )
                .await?;
        }
        self.inner.save_record(key, record, read, lock).await
    }
});

/// Before: a save refused because the record moved (a lock merely taken, a flush) dropped the
/// refresh token the provider had just rotated. Now the save is tried again over a record whose
/// state is still the one the fetch began from, and the rotated token is stored.
#[tokio::test(start_paused = true)]
async fn a_save_over_a_record_that_only_moved_keeps_the_rotated_refresh_token() {
    let store = Arc::new(FenceMovedOnce {
        inner: MemoryStore::new(),
        refused: Mutex::new(true),
    });
    let fleet = Fleet::new(store).await;
    let a = fleet.replica();
    assert_eq!(secret(&a.token().await.unwrap()), "at-1");
    let stored = fleet.stored().await.unwrap();
    assert_eq!(
        stored.state.refresh_token.as_ref().unwrap().expose_secret(),
        "rt-1",
        "the rotated refresh token is stored"
    );
    assert!(stored.presenting.is_none());
    assert!(a.store_error().is_none());
    assert_eq!(fleet.presented(), ["rt-0"]);
}

/// Before: a refused refresh token was presented again by every other replica and every later
/// call. Now the refusal is recorded, and every holder answers it without presenting it.
#[tokio::test(start_paused = true)]
async fn a_refused_refresh_token_is_recorded_and_never_presented_again() {
    let fleet = Fleet::new(Arc::new(MemoryStore::new())).await;
    fleet.answer_next(&[Answer::Refuse]);
    let replicas: Vec<_> = (0..5).map(|_| fleet.replica()).collect();
    let err = replicas[0].token().await.unwrap_err();
    assert!(err.needs_user_action(), "{err:?}");
    for replica in &replicas[1..] {
        let err = replica.token().await.unwrap_err();
        assert!(err.needs_user_action(), "{err:?}");
        assert!(err.to_string().contains("refused"), "{err}");
    }
    // Later calls too, after every hold ran out.
    tokio::time::sleep(Duration::from_secs(10)).await;
    for replica in &replicas {
        assert!(replica.token().await.unwrap_err().needs_user_action());
    }
    assert_eq!(fleet.presented(), ["rt-0"], "presented once, by one holder");
    let stored = fleet.stored().await.unwrap();
    assert!(stored.refused_own().is_some(), "the refusal is recorded");
    assert!(!format!("{stored:?}").contains("rt-0"), "no token in clear");
}

/// An OAuth refusal of the grant (400 `invalid_grant`) refuses the refresh token as a
/// user-action error does: recorded, and presented by nobody again. (Found by the simulation:
/// it was taken as an answer that spent nothing, and presented again.)
#[tokio::test(start_paused = true)]
async fn an_invalid_grant_is_recorded_as_a_refusal() {
    let fleet = Fleet::new(Arc::new(MemoryStore::new())).await;
    fleet.answer_next(&[Answer::InvalidGrant]);
    let (a, b) = (fleet.replica(), fleet.replica());
    let err = a.token().await.unwrap_err();
    assert!(err.is_rejected(), "{err:?}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    for replica in [&a, &b] {
        let err = replica.token().await.unwrap_err();
        assert!(err.needs_user_action(), "{err:?}");
    }
    assert_eq!(fleet.presented(), ["rt-0"]);
}

/// Without a store, and with a store that lost the recorded refusal (restarted without
/// persistence), a cache never presents from its own memory a refresh token the provider
/// refused. (Found by the simulation.)
#[tokio::test(start_paused = true)]
async fn a_refused_refresh_token_is_forgotten_from_memory_too() {
    let fleet = Fleet::new(Arc::new(MemoryStore::new())).await;
    let a = fleet.replica();
    // A token from `rt-0`, then a 401 so the state is retired, then a refusal of `rt-1`.
    assert_eq!(secret(&a.token().await.unwrap()), "at-1");
    a.invalidate(&a.token().await.unwrap());
    fleet.answer_next(&[Answer::InvalidGrant]);
    assert!(a.token().await.is_err());
    // The store forgets everything: only the cache's memory holds a state.
    let lock = fleet.store.lock(&key()).await.unwrap();
    fleet.store.remove(&key(), &lock).await.unwrap();
    drop(lock);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let _ = a.token().await;
    assert_eq!(
        fleet.presented(),
        ["rt-0", "rt-1", "(login)"],
        "rt-1 presented again"
    );
}

/// A lost answer (the provider rotated, the reply never came): the refresh token may be
/// presented once more, by one holder, and never a third time.
#[tokio::test(start_paused = true)]
async fn a_refresh_token_whose_answer_was_lost_is_presented_once_more_never_a_third_time() {
    let fleet = Fleet::new(Arc::new(MemoryStore::new())).await;
    fleet.answer_next(&[Answer::LoseAfterRotating, Answer::LoseAfterRotating]);
    let a = fleet.replica();
    let b = fleet.replica();
    assert!(matches!(a.token().await, Err(Error::Timeout(_))));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(matches!(b.token().await, Err(Error::Timeout(_))));
    tokio::time::sleep(Duration::from_secs(2)).await;
    for replica in [&a, &b] {
        let err = replica.token().await.unwrap_err();
        assert!(err.needs_user_action(), "{err:?}");
        assert!(err.to_string().contains("lost twice"), "{err}");
    }
    assert_eq!(fleet.presented(), ["rt-0", "rt-0"]);
}

/// Removes everything the store holds for the principal, as a flush or a restart without
/// persistence does (not a `forget`, which leaves a record of itself).
async fn wipe(fleet: &Fleet) {
    let lock = fleet.store.lock(&key()).await.unwrap();
    fleet.store.remove(&key(), &lock).await.unwrap();
}

/// Before: `forget` removed the record, and another replica whose memory held the forgotten
/// state presented its refresh token and wrote the state back, as if the forget had not been.
/// Now the forget leaves a record of itself: the other replica drops what it held from before
/// and starts from scratch. (Found by the simulation, in most of its failing seeds.)
#[tokio::test(start_paused = true)]
async fn a_forget_on_one_replica_is_not_undone_by_another_replicas_memory() {
    let fleet = Fleet::new(Arc::new(MemoryStore::new())).await;
    let (a, b) = (fleet.replica(), fleet.replica());
    assert_eq!(secret(&a.token().await.unwrap()), "at-1");
    assert_eq!(secret(&b.token().await.unwrap()), "at-1", "adopted");
    assert!(a.forget().await.unwrap(), "a state was removed");
    let record = fleet.stored().await.expect("the forget's record");
    assert!(record.forgotten.is_some() && record.state.refresh_token.is_none());
    assert!(fleet.store.load(&key()).await.unwrap().is_none());
    assert!(fleet.store.entries().await.unwrap().is_empty());
    // b still serves the access token it holds until a caller reports it refused.
    b.invalidate(&b.token().await.unwrap());
    assert_eq!(secret(&b.token().await.unwrap()), "at-2");
    assert_eq!(
        fleet.presented(),
        ["rt-0", "(login)"],
        "rt-1 was forgotten, and presented from b's memory"
    );
    let stored = fleet.stored().await.unwrap();
    assert!(stored.forgotten.is_none());
    assert_eq!(stored.state.refresh_token.unwrap().expose_secret(), "rt-2");
    // The replica that forgot adopts the new state.
    assert_eq!(secret(&a.token().await.unwrap()), "at-2");
}

/// A refresh token presented from memory after the store lost its record (a flush, a restart
/// without persistence) may already have been presented by another replica since: its lost
/// answer is not followed by another presentation. Before, it counted as a first presentation,
/// and a lost answer let a second holder present it again (a third time, in the simulation).
#[tokio::test(start_paused = true)]
async fn a_refresh_token_presented_after_the_store_lost_its_record_gets_no_second_try() {
    let fleet = Fleet::new(Arc::new(MemoryStore::new())).await;
    let (a, b) = (fleet.replica(), fleet.replica());
    assert_eq!(secret(&a.token().await.unwrap()), "at-1");
    assert_eq!(secret(&b.token().await.unwrap()), "at-1");
    wipe(&fleet).await;
    fleet.answer_next(&[Answer::LoseAfterRotating]);
    b.invalidate(&b.token().await.unwrap());
    assert!(matches!(b.token().await, Err(Error::Timeout(_))));
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.invalidate(&a.token().await.unwrap());
    let err = a.token().await.unwrap_err();
    assert!(err.needs_user_action(), "{err:?}");
    assert_eq!(fleet.presented(), ["rt-0", "rt-1"]);
}

/// A process that presented a refresh token and lost the answer never presents it again once
/// the store lost the record of that presentation: it cannot know whether another replica
/// presented it the second time meanwhile. Before, it presented it from memory.
#[tokio::test(start_paused = true)]
async fn a_refresh_token_whose_answer_was_lost_here_is_not_presented_after_a_wipe() {
    let fleet = Fleet::new(Arc::new(MemoryStore::new())).await;
    let b = fleet.replica();
    assert_eq!(secret(&b.token().await.unwrap()), "at-1");
    fleet.answer_next(&[Answer::LoseAfterRotating]);
    b.invalidate(&b.token().await.unwrap());
    assert!(matches!(b.token().await, Err(Error::Timeout(_))));
    wipe(&fleet).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let err = b.token().await.unwrap_err();
    assert!(err.needs_user_action(), "{err:?}");
    assert_eq!(fleet.presented(), ["rt-0", "rt-1"]);
}

/// A store whose first save of a fetched state is applied but answered as lost (a reply that
/// never came back).
#[derive(Debug)]
struct ReplyLostOnce {
    inner: MemoryStore,
    lost: Mutex<bool>,
}

token_provider::forward_token_store!(ReplyLostOnce => |this| &this.inner, {
    async fn save_record(
        &self,
        key: &StoreKey,
        record: &StoreRecord,
        read: Option<u64>,
        lock: &StoreLock,
    ) -> Result<u64, Error> {
        let version = self.inner.save_record(key, record, read, lock).await?;
        if record.presenting.is_none() && std::mem::take(&mut *self.lost.lock().unwrap()) {
            return Err(Error::store_unavailable("the reply was lost"));
        }
        Ok(version)
    }
});

/// Before: a holder whose save landed but whose reply was lost took its own state for newer
/// than whatever the store held, and presented its refresh token again after another replica
/// had rotated it from the landed save. (Found by the simulation.)
#[tokio::test(start_paused = true)]
async fn a_save_whose_reply_was_lost_is_not_taken_for_newer_than_the_store() {
    let fleet = Fleet::new(Arc::new(ReplyLostOnce {
        inner: MemoryStore::new(),
        lost: Mutex::new(true),
    }))
    .await;
    let (a, b) = (fleet.replica(), fleet.replica());
    assert_eq!(secret(&a.token().await.unwrap()), "at-1");
    assert!(a.store_error().is_some(), "the save's reply was lost");
    // b adopts what landed, and rotates it.
    assert_eq!(secret(&b.token().await.unwrap()), "at-1");
    b.invalidate(&b.token().await.unwrap());
    assert_eq!(secret(&b.token().await.unwrap()), "at-2");
    // Both expire: a refreshes from the store's state, not from its own.
    tokio::time::sleep(HOUR).await;
    assert_eq!(secret(&a.token().await.unwrap()), "at-3");
    assert_eq!(
        fleet.presented(),
        ["rt-0", "rt-1", "rt-2"],
        "rt-1 presented twice"
    );
}

/// A store that, once armed, has a stale state written back (by a replica whose memory is
/// older, after the store lost its records) just before the next save of a fetched state.
#[derive(Debug, Default)]
struct WritesBackOnce {
    inner: MemoryStore,
    stale: Mutex<Option<TokenState>>,
}

token_provider::forward_token_store!(WritesBackOnce => |this| &this.inner, {
    async fn save_record(
        &self,
        key: &StoreKey,
        record: &StoreRecord,
        read: Option<u64>,
        lock: &StoreLock,
    ) -> Result<u64, Error> {
        let stale = if record.presenting.is_none() {
            self.stale.lock().unwrap().take()
        } else {
            None
        };
        if let Some(stale) = stale {
            let current = self.inner.load_record(key).await?.map(|r| r.version);
            let stale = StoreRecord::new(stale, 0);
            self.inner.save_record(key, &stale, current, lock).await?;
        }
        self.inner.save_record(key, record, read, lock).await
    }
});

/// A replica holding `at-1`/`rt-1`, an hour later (expired), with a still-valid state obtained
/// more than a minute before `at-1` armed to be written back before its next save.
async fn expired_with_a_stale_write_back_armed() -> (Fleet, CachedTokenProvider<Replica>) {
    let store = Arc::new(WritesBackOnce::default());
    let fleet = Fleet::new(Arc::clone(&store) as Arc<dyn TokenStore>).await;
    let a = fleet.replica();
    assert_eq!(secret(&a.token().await.unwrap()), "at-1");
    let obtained = fleet.stored().await.unwrap().state.obtained_at.unwrap();
    tokio::time::sleep(HOUR).await;
    let now = token_provider::Clock::now(&fleet.clock);
    let mut stale = TokenState::new(
        AccessToken::builder("at-stale")
            .expires_in(now, HOUR)
            .build(),
    )
    .with_refresh_token(Secret::from("rt-stale"));
    stale.obtained_at = Some(obtained - Duration::from_secs(61));
    *store.stale.lock().unwrap() = Some(stale);
    (fleet, a)
}

/// Before: a save refused because a stale state was written back over the record (a replica
/// whose memory was older, after the store lost its records) gave way to it whenever its access
/// token was still valid, and the refresh token just rotated was dropped. Now a record obtained
/// before the state the fetch began from is older, and is saved over. (Found by the
/// simulation.)
#[tokio::test(start_paused = true)]
async fn a_stale_state_written_back_does_not_win_over_a_fresh_rotation() {
    let (fleet, a) = expired_with_a_stale_write_back_armed().await;
    assert_eq!(secret(&a.token().await.unwrap()), "at-2");
    let stored = fleet.stored().await.unwrap();
    assert_eq!(stored.state.refresh_token.unwrap().expose_secret(), "rt-2");
    assert_eq!(fleet.presented(), ["rt-0", "rt-1"]);
}

/// Before: a refusal whose record was refused by a stale state written back (after the store
/// lost its records) was not written, so replicas holding the refused refresh token in memory
/// presented it again. Now it is written over the older state. (Found by the simulation.)
#[tokio::test(start_paused = true)]
async fn a_refusal_is_recorded_over_a_stale_state_written_back() {
    let (fleet, a) = expired_with_a_stale_write_back_armed().await;
    fleet.answer_next(&[Answer::InvalidGrant]);
    assert!(a.token().await.is_err());
    let stored = fleet.stored().await.unwrap();
    assert_eq!(
        stored.state.refresh_token.as_ref().unwrap().expose_secret(),
        "rt-1"
    );
    assert!(stored.refused_own().is_some(), "the refusal is recorded");
    assert_eq!(fleet.presented(), ["rt-0", "rt-1"]);
}

/// A store whose next save of a state (no presentation in it) fails without being applied,
/// once armed.
#[derive(Debug, Default)]
struct SaveFailsOnce {
    inner: MemoryStore,
    armed: Mutex<bool>,
}

token_provider::forward_token_store!(SaveFailsOnce => |this| &this.inner, {
    async fn save_record(
        &self,
        key: &StoreKey,
        record: &StoreRecord,
        read: Option<u64>,
        lock: &StoreLock,
    ) -> Result<u64, Error> {
        if record.presenting.is_none() && std::mem::take(&mut *self.armed.lock().unwrap()) {
            return Err(Error::store_unavailable("the store is down"));
        }
        self.inner.save_record(key, record, read, lock).await
    }
});

/// Before: a presentation that never left, made from a state obtained after a forget whose
/// save had failed, removed the forget's record (as if the store had held nothing), so a
/// replica still holding the forgotten state could write it back. Now the store is left with
/// the state the presentation began from.
#[tokio::test(start_paused = true)]
async fn an_unsent_presentation_never_removes_a_forgets_record() {
    let store = Arc::new(SaveFailsOnce::default());
    let fleet = Fleet::new(Arc::clone(&store) as Arc<dyn TokenStore>).await;
    let (a, b) = (fleet.replica(), fleet.replica());
    assert_eq!(secret(&a.token().await.unwrap()), "at-1");
    assert!(a.forget().await.unwrap());
    // b starts from scratch after the forget; its save fails, so the store keeps the record of
    // the forget while b holds the new state.
    *store.armed.lock().unwrap() = true;
    assert_eq!(secret(&b.token().await.unwrap()), "at-2");
    assert!(b.store_error().is_some());
    // b's refresh is answered 503 without the refresh token being taken.
    b.invalidate(&b.token().await.unwrap());
    fleet.answer_next(&[Answer::Unavailable]);
    assert!(b.token().await.is_err());
    let stored = fleet.stored().await.expect("the store holds a record");
    assert!(
        stored.forgotten.is_some()
            || stored
                .state
                .refresh_token
                .as_ref()
                .map(Secret::expose_secret)
                == Some("rt-2"),
        "{stored:?}"
    );
    assert_eq!(fleet.presented(), ["rt-0", "(login)", "rt-2"]);
}

/// A holder that presented a refresh token and is still waiting for the answer is waited for:
/// another replica whose lock came through (a lapsed lease) does not present the same token, and
/// adopts what the first saves.
#[tokio::test(start_paused = true)]
async fn a_presentation_under_way_is_waited_for_not_repeated() {
    #[derive(Debug)]
    struct NoLock(MemoryStore);

    token_provider::forward_token_store!(NoLock => |this| &this.0, {
        // Every lock is granted at once, as a lapsed lease would be.
        async fn lock(&self, _key: &StoreKey) -> Result<StoreLock, Error> {
            Ok(StoreLock::none())
        }
    });

    #[derive(Debug)]
    struct Slow(Replica);

    #[async_trait]
    impl Fetch for Slow {
        fn store_key(&self) -> Option<StoreKey> {
            Some(key())
        }
        async fn fetch(&self, previous: Option<&TokenState>) -> Result<TokenState, Error> {
            tokio::time::sleep(Duration::from_secs(20)).await;
            self.0.fetch(previous).await
        }
    }

    let fleet = Fleet::new(Arc::new(NoLock(MemoryStore::new()))).await;
    let config = || {
        CacheConfig::new()
            .clock(Arc::new(fleet.clock.clone()))
            .store(Arc::clone(&fleet.store))
    };
    let replica = || Replica {
        provider: Arc::clone(&fleet.provider),
        clock: fleet.clock.clone(),
    };
    let a = CachedTokenProvider::with_config(Slow(replica()), config());
    let b = CachedTokenProvider::with_config(Slow(replica()), config());
    let first = tokio::spawn(async move { a.token().await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = b.token().await.unwrap();
    assert_eq!(secret(&first.await.unwrap().unwrap()), "at-1");
    assert_eq!(
        secret(&second),
        "at-1",
        "the second replica adopted the first's answer"
    );
    assert_eq!(fleet.presented(), ["rt-0"]);
}

/// Before: a fetch queued on the store lock behind `forget` read the new epoch, fetched from
/// scratch and saved, so the store held a state again after `forget` returned.
#[tokio::test(start_paused = true)]
async fn a_fetch_queued_behind_forget_never_saves_after_it() {
    let fleet = Fleet::new(Arc::new(MemoryStore::new())).await;
    let a = fleet.replica();
    // Hold the store lock so the fetch queues on it, then forget, then let go.
    let held = fleet.store.lock(&key()).await.unwrap();
    // `forget` queues on the lock first, the fetch behind it.
    let forgetting = {
        let a = a.clone();
        tokio::spawn(async move { a.forget().await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let fetching = {
        let a = a.clone();
        tokio::spawn(async move { a.token().await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(held);
    assert!(
        forgetting.await.unwrap().unwrap(),
        "forget removed the entry"
    );
    let err = fetching.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("forgotten"), "{err}");
    assert!(
        fleet
            .stored()
            .await
            .and_then(StoreRecord::into_state)
            .is_none(),
        "the store holds a state after forget"
    );
    assert!(
        fleet.presented().is_empty(),
        "the queued fetch went to the provider"
    );
    // The next call fetches from scratch, and saves.
    assert_eq!(secret(&a.token().await.unwrap()), "at-1");
    assert!(fleet.stored().await.is_some());
}

/// The stores keep one contract for versions (`token_provider::testing::store_contract`): a
/// save over the version read succeeds, over a stale one is refused, and over a record gone
/// (flushed, removed) succeeds.
#[tokio::test]
async fn stores_keep_one_contract_for_versions() {
    let dir = token_provider::testing::TempDir::new("store-records");
    token_provider::testing::store_contract(Arc::new(MemoryStore::new())).await;
    token_provider::testing::store_contract(Arc::new(FileStore::new(dir.join("tokens.json"))))
        .await;
}
