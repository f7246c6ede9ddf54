//! Each replica's handle on the model store ([`StoreHandle`], a [`TokenStore`]): the protocol
//! of the Redis store (`partner-auth-redis`) run on one server the fleet shares (what that
//! server holds, and what the nemesis does to it, is `store::server`'s).
//!
//! - **Lock**: a per-process queue per key first (the Redis store's in-process mutex), then a
//!   lease on the server (`SET NX PX`) that lapses after [`LEASE`] unless extended. A taken
//!   lock is polled (5 ms doubling to 100 ms, never past the holder's remaining lease) for at
//!   most [`LOCK_TIMEOUT`], then `StoreBusy`. Taking it bumps the key's fence (never below the
//!   stored version; a missing fence reads as 0). While it is held, an extender renews the
//!   lease every third of it, as the Redis store's does; a paused or killed process's extender
//!   stalls with it, so its lease lapses.
//! - **`save` and `remove`** (today's Redis script): refused with `StoreFenced` unless the fence
//!   is still this lock's (another lock taken since refuses it, even if nobody wrote; a flushed
//!   or evicted fence reads 0 and refuses it too) and the stored version is not newer; the
//!   entry is written at the fence's version, and the lock released.
//! - **`load_record` and `save_record`** (the versioned API, as `token_provider::store`
//!   documents it): a save names the version its writer read and succeeds only while the store
//!   holds that version or nothing for the key; it writes `max(read, stored) + 1`. It does not
//!   look at the fence, and does not release the lock.
//!
//! Every call is a round trip of a few milliseconds each way. Faults: a write's reply lost
//! after it was applied (`StoreUnavailable`, though the write happened); FLUSHALL; a restart
//! without persistence (flushed, then unavailable for a few seconds); one key's lock, fence or
//! record evicted.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use token_provider::store::next_version;
use token_provider::{
    Error, ListedEntry, StoreKey, StoreLock, StoreRecord, TokenState, TokenStore,
};
use tokio::time::Instant;

use crate::config::{Fault, LEASE, LOCK_TIMEOUT};
use crate::node::Node;
use crate::world::{World, lock};

pub(crate) mod server;

use self::server::{Held, Server};

/// Names a stored state in the trace: its access and refresh tokens and its version.
fn describe(record: Option<&StoreRecord>) -> String {
    match record {
        None => "nothing".into(),
        Some(r) if r.forgotten.is_some() => format!("forgotten (v{})", r.version),
        Some(r) => format!(
            "{} + {} (v{}{}{})",
            r.state.access_token.secret().expose_secret(),
            r.state
                .refresh_token
                .as_ref()
                .map_or("no refresh token", |rt| rt.expose_secret()),
            r.version,
            if r.presenting.is_some() {
                ", presenting"
            } else {
                ""
            },
            if r.refused.is_some() { ", refused" } else { "" },
        ),
    }
}

/// One process's handle on the server.
pub struct StoreHandle {
    world: Arc<World>,
    node: Node,
    /// The in-process queue per key.
    local: Mutex<BTreeMap<StoreKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreHandle({})", self.node)
    }
}

/// What a lock holds: the lease, its fence, the in-process queue's guard and the extender.
struct Lease {
    world: Arc<World>,
    node: Node,
    key: StoreKey,
    token: u64,
    fence: u64,
    /// Set once a save or remove released the lock on the server.
    released: AtomicBool,
    extender: tokio::task::JoinHandle<()>,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.extender.abort();
        if self.released.load(Ordering::Relaxed) {
            return;
        }
        // The Redis store releases on a task of its own; here at once (compare-and-delete).
        let mut server = lock(&self.world.store);
        if let Some(k) = server.keys.get_mut(&self.key)
            && k.held.as_ref().is_some_and(|h| h.token == self.token)
        {
            k.held = None;
            drop(server);
            self.world
                .log(self.node, format_args!("store: lock {} released", self.key));
        }
    }
}

impl StoreHandle {
    pub(crate) fn new(world: Arc<World>, node: Node) -> Self {
        Self {
            world,
            node,
            local: Mutex::new(BTreeMap::new()),
        }
    }

    fn local(&self, key: &StoreKey) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(lock(&self.local).entry(key.clone()).or_default())
    }

    /// One round trip: the request travels, is applied by `apply` (unless the server is
    /// down), and the reply travels back, or is lost after a write (`write`).
    async fn round_trip<T>(
        &self,
        write: bool,
        apply: impl FnOnce(&mut Server, Instant) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let w = &self.world;
        let latency = || w.between(Duration::from_millis(1), Duration::from_millis(5));
        w.gate(self.node).await;
        tokio::time::sleep(latency()).await;
        let now = Instant::now();
        let applied = {
            let mut server = lock(&w.store);
            if server.down(now) {
                None
            } else {
                Some(apply(&mut server, now))
            }
        };
        let lost = write && matches!(applied, Some(Ok(_))) && w.chance(Fault::LostReply, 0.03);
        tokio::time::sleep(latency()).await;
        w.gate(self.node).await;
        match applied {
            None => Err(Error::store_unavailable("the store is restarting")),
            Some(Ok(_)) if lost => {
                w.log(
                    self.node,
                    "store: the reply was lost (the write was applied)",
                );
                Err(Error::store_unavailable("the reply was lost"))
            }
            Some(result) => result,
        }
    }

    fn lease<'a>(&self, key: &StoreKey, lock: &'a StoreLock) -> Result<&'a Lease, Error> {
        lock.held::<Lease>()
            .filter(|l| l.key == *key && l.node == self.node)
            .ok_or_else(|| Error::store(format!("a write of {key} without its lock"), None))
    }

    /// Renews the lease every third of it while the lock is still ours and the process runs.
    fn extender(&self, key: StoreKey, token: u64) -> tokio::task::JoinHandle<()> {
        let world = Arc::clone(&self.world);
        let node = self.node;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                world.gate(node).await;
                let now = Instant::now();
                let mut server = lock(&world.store);
                if server.down(now) {
                    continue;
                }
                match server.keys.get_mut(&key).and_then(|k| k.held.as_mut()) {
                    Some(held) if held.token == token && held.expires > now => {
                        held.expires = now + LEASE;
                    }
                    _ => {
                        drop(server);
                        world.log(node, format_args!("store: lease on {key} lost"));
                        return;
                    }
                }
            }
        })
    }

    /// A fenced write (today's Redis `save` script): `state` `None` removes.
    async fn fenced_write(
        &self,
        key: &StoreKey,
        state: Option<&TokenState>,
        lock_: &StoreLock,
    ) -> Result<bool, Error> {
        let lease = self.lease(key, lock_)?;
        let task = tokio::task::try_id();
        let w = &self.world;
        let result = self
            .round_trip(true, |server, _| {
                let k = server.keys.entry(key.clone()).or_default();
                let fence = k.fence.unwrap_or(0);
                let stored = k.record.as_ref().map(|r| r.version);
                if fence != lease.fence || stored.is_some_and(|v| v > lease.fence) {
                    return Err(Error::store_fenced(format!(
                        "{key}: fence {fence}, this lock's {}, stored version {stored:?}",
                        lease.fence
                    )));
                }
                let existed = k.record.is_some();
                k.record = state.map(|s| StoreRecord::new(s.clone(), lease.fence));
                if k.held.as_ref().is_some_and(|h| h.token == lease.token) {
                    k.held = None;
                }
                lease.released.store(true, Ordering::Relaxed);
                match state {
                    Some(state) => {
                        let written = describe(k.record.as_ref());
                        w.log(self.node, format_args!("store: saved {key}: {written}"));
                        let rt = state.refresh_token.as_ref();
                        crate::checker::on_store_write(
                            w,
                            self.node,
                            key,
                            rt.map(|rt| rt.expose_secret()),
                            task,
                        );
                    }
                    None => {
                        server.wiped(key);
                        w.log(self.node, format_args!("store: removed {key}"));
                        crate::checker::on_store_remove(w, self.node, key, task);
                    }
                }
                Ok(existed)
            })
            .await;
        match &result {
            Ok(_) => lease.extender.abort(),
            Err(e) => w.log(self.node, format_args!("store: write of {key} failed: {e}")),
        }
        result
    }
}

#[async_trait]
impl TokenStore for StoreHandle {
    async fn load(&self, key: &StoreKey) -> Result<Option<TokenState>, Error> {
        Ok(self
            .load_record(key)
            .await?
            .and_then(StoreRecord::into_state))
    }

    async fn save(
        &self,
        key: &StoreKey,
        state: &TokenState,
        lock: &StoreLock,
    ) -> Result<(), Error> {
        self.fenced_write(key, Some(state), lock).await.map(drop)
    }

    async fn lock(&self, key: &StoreKey) -> Result<StoreLock, Error> {
        let w = &self.world;
        let local = self.local(key).lock_owned().await;
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        let mut waited_logged = false;
        loop {
            let node = self.node;
            let taken = self
                .round_trip(true, |server, now| {
                    server.tokens += 1;
                    let token = server.tokens;
                    let k = server.keys.entry(key.clone()).or_default();
                    match &k.held {
                        Some(held) if held.expires > now => {
                            Ok(Err((held.expires - now, held.holder)))
                        }
                        _ => {
                            let stored = k.record.as_ref().map_or(0, |r| r.version);
                            let fence = (k.fence.unwrap_or(0) + 1).max(stored + 1);
                            k.fence = Some(fence);
                            k.held = Some(Held {
                                token,
                                holder: node,
                                expires: now + LEASE,
                            });
                            Ok(Ok((token, fence)))
                        }
                    }
                })
                .await;
            let taken = match taken {
                Ok(taken) => taken,
                Err(e) => {
                    w.log(node, format_args!("store: lock {key} failed: {e}"));
                    return Err(e);
                }
            };
            match taken {
                Ok((token, fence)) => {
                    w.log(
                        node,
                        format_args!("store: lock {key} taken (fence {fence})"),
                    );
                    let extender = self.extender(key.clone(), token);
                    return Ok(StoreLock::new(Lease {
                        world: Arc::clone(w),
                        node,
                        key: key.clone(),
                        token,
                        fence,
                        released: AtomicBool::new(false),
                        extender,
                        _local: local,
                    }));
                }
                Err((remaining, holder)) => {
                    let waited = started.elapsed();
                    if waited >= LOCK_TIMEOUT {
                        w.log(
                            node,
                            format_args!("store: lock {key} busy (held by {holder})"),
                        );
                        return Err(Error::store_busy(format!(
                            "{key} held by another replica for over {LOCK_TIMEOUT:?}"
                        )));
                    }
                    if !waited_logged {
                        w.log(
                            node,
                            format_args!("store: lock {key} held by {holder}: waiting"),
                        );
                        waited_logged = true;
                    }
                    let sleep = pause
                        .min(remaining)
                        .min(LOCK_TIMEOUT - waited)
                        .max(Duration::from_millis(1));
                    tokio::time::sleep(sleep).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
            }
        }
    }

    async fn remove(&self, key: &StoreKey, lock: &StoreLock) -> Result<bool, Error> {
        self.fenced_write(key, None, lock).await
    }

    fn versioned(&self) -> bool {
        true
    }

    async fn load_record(&self, key: &StoreKey) -> Result<Option<StoreRecord>, Error> {
        let w = &self.world;
        let result = self
            .round_trip(false, |server, _| {
                let record = server.keys.get(key).and_then(|k| k.record.clone());
                crate::checker::on_store_load(
                    w,
                    self.node,
                    key,
                    record.as_ref(),
                    server.epoch(key),
                );
                Ok(record)
            })
            .await;
        match &result {
            Ok(record) => {
                w.log(
                    self.node,
                    format_args!("store: load {key}: {}", describe(record.as_ref())),
                );
            }
            Err(e) => w.log(self.node, format_args!("store: load {key} failed: {e}")),
        }
        result
    }

    async fn save_record(
        &self,
        key: &StoreKey,
        record: &StoreRecord,
        read: Option<u64>,
        _lock: &StoreLock,
    ) -> Result<u64, Error> {
        let w = &self.world;
        let task = tokio::task::try_id();
        let result = self
            .round_trip(true, |server, _| {
                let k = server.keys.entry(key.clone()).or_default();
                let version = next_version(key, k.record.as_ref().map(|r| r.version), read)?;
                let mut record = record.clone();
                record.version = version;
                w.log(
                    self.node,
                    format_args!("store: saved {key}: {}", describe(Some(&record))),
                );
                let rt = record.state.refresh_token.clone();
                let forgotten = record.forgotten.is_some();
                k.record = Some(record);
                if forgotten {
                    // A forget's record removes the state as far as the promises go.
                    crate::checker::on_store_remove(w, self.node, key, task);
                } else {
                    crate::checker::on_store_write(
                        w,
                        self.node,
                        key,
                        rt.as_ref().map(|rt| rt.expose_secret()),
                        task,
                    );
                }
                Ok(version)
            })
            .await;
        if let Err(e) = &result {
            w.log(self.node, format_args!("store: save of {key} failed: {e}"));
        }
        result
    }

    async fn listing(&self) -> Result<Vec<ListedEntry>, Error> {
        self.round_trip(false, |server, _| {
            Ok(server
                .keys
                .iter()
                .filter_map(|(key, k)| {
                    let state = k.record.clone()?.into_state()?;
                    Some(ListedEntry::new(key.clone(), Ok(state)))
                })
                .collect())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::server::Evict;
    use super::*;
    use crate::config::{Faults, PrincipalSpec, Promises, SimConfig};
    use token_provider::AccessToken;

    fn world() -> Arc<World> {
        let cfg = SimConfig {
            replicas: 2,
            principals: vec![PrincipalSpec {
                name: "p0".into(),
                password: true,
                lifetime: Duration::from_secs(600),
            }],
            chaos: Duration::from_secs(600),
            intensity: 1.0,
        };
        Arc::new(World::new(
            cfg,
            Faults::none(),
            Promises::all(),
            fastrand::Rng::with_seed(7),
        ))
    }

    /// Two replicas' handles on one store, and the key of its one principal.
    struct Fleet {
        w: Arc<World>,
        a: StoreHandle,
        b: StoreHandle,
        key: StoreKey,
    }

    fn state(at: &str) -> TokenState {
        TokenState::new(AccessToken::new(at))
    }

    /// Runs `test` on a fresh [`Fleet`], on a current-thread runtime in paused time.
    fn paused<F: Future<Output = ()>>(test: impl FnOnce(Fleet) -> F) {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(async {
                let w = world();
                let fleet = Fleet {
                    a: StoreHandle::new(Arc::clone(&w), w.node(0)),
                    b: StoreHandle::new(Arc::clone(&w), w.node(1)),
                    key: w.key(0).clone(),
                    w,
                };
                test(fleet).await;
            });
    }

    /// `h` saves a record of `at`, having read version `read`: the version written.
    async fn saved(
        h: &StoreHandle,
        key: &StoreKey,
        at: &str,
        read: Option<u64>,
        lock: &StoreLock,
    ) -> u64 {
        let record = StoreRecord::new(state(at), 0);
        h.save_record(key, &record, read, lock).await.unwrap()
    }

    #[test]
    fn a_save_is_fenced_once_another_lock_was_taken_even_without_a_write() {
        paused(|Fleet { w, a, b, key }| async move {
            let held = a.lock(&key).await.unwrap();
            lock(&w.store).evict(&key, Evict::Lock);
            drop(b.lock(&key).await.unwrap());
            let refused = a.save(&key, &state("a"), &held).await.unwrap_err();
            assert!(matches!(refused, Error::StoreFenced { .. }), "{refused}");
        });
    }

    #[test]
    fn a_flushed_fence_reads_zero_and_fences_the_holder_out() {
        paused(|Fleet { w, a, key, .. }| async move {
            let held = a.lock(&key).await.unwrap();
            lock(&w.store).flush();
            let refused = a.save(&key, &state("a"), &held).await.unwrap_err();
            assert!(matches!(refused, Error::StoreFenced { .. }), "{refused}");
        });
    }

    #[test]
    fn a_held_lock_is_extended_and_a_paused_holders_lapses() {
        paused(|Fleet { w, a, b, key }| async move {
            let _held = a.lock(&key).await.unwrap();
            tokio::time::sleep(LEASE * 3).await;
            let busy = b.lock(&key).await.unwrap_err();
            assert!(matches!(busy, Error::StoreBusy { .. }), "{busy}");
            // Paused, its extender stalls with it and the lease runs out.
            w.pause(0, LEASE * 4);
            let started = Instant::now();
            let _taken = b.lock(&key).await.unwrap();
            assert!(started.elapsed() <= LEASE + Duration::from_secs(1));
        });
    }

    #[test]
    fn versioned_saves_follow_the_documented_rules() {
        paused(|Fleet { w, a, b, key }| async move {
            let held = a.lock(&key).await.unwrap();
            assert_eq!(saved(&a, &key, "a1", None, &held).await, 1);
            assert_eq!(saved(&a, &key, "a2", Some(1), &held).await, 2);
            // Another writer that read version 1 is refused, whatever lock it holds.
            let other = b.lock(&key).await;
            assert!(other.is_err(), "a's lock is still held");
            let stale = StoreRecord::new(state("stale"), 0);
            let stale = a.save_record(&key, &stale, Some(1), &held).await;
            assert!(matches!(stale, Err(Error::StoreFenced { .. })));
            // The fence does not matter to a versioned save.
            lock(&w.store).evict(&key, Evict::Fence);
            assert_eq!(saved(&a, &key, "a3", Some(2), &held).await, 3);
            // A store holding nothing takes any save, above the version read.
            lock(&w.store).flush();
            assert_eq!(saved(&a, &key, "a4", Some(3), &held).await, 4);
            let stored = a.load_record(&key).await.unwrap().unwrap();
            assert_eq!((stored.version, stored.state), (4, state("a4")));
        });
    }

    #[test]
    fn a_restarted_store_is_empty_and_unavailable_for_a_while() {
        paused(|Fleet { w, a, key, .. }| async move {
            let held = a.lock(&key).await.unwrap();
            a.save(&key, &state("a"), &held).await.unwrap();
            lock(&w.store).restart(Instant::now() + Duration::from_secs(5));
            let down = a.load(&key).await.unwrap_err();
            assert!(matches!(down, Error::StoreUnavailable { .. }), "{down}");
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert_eq!(a.load(&key).await.unwrap(), None);
        });
    }
}
