//! The lock: taken with a random token and a lease, extended while held, released by its
//! holder (compare and delete) on every path: after a save, on drop, and when the answer to
//! the lock script never came (a timeout, a caller that gave up), since the script may have
//! run. It saves duplicate work only; versions decide what is saved.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::Value;
use token_provider::{Error, StoreKey, StoreLock};
use tracing::{debug, warn};

use crate::client::{Inner, Snapshot};
use crate::codec::{MAX_VALUE_SIZE, stored, text};
use crate::keys::Names;

const POLL_FIRST: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(100);

/// What [`take`] puts in the [`StoreLock`].
pub(crate) struct Lease {
    inner: Arc<Inner>,
    key: StoreKey,
    lock: String,
    token: String,
    /// Set once a save released the lock: nothing left to release on drop.
    released: AtomicBool,
    extender: tokio::task::JoinHandle<()>,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl Lease {
    /// The token a save gives to release the lock with it, if `lock` is this store's lease of
    /// `key`.
    pub(crate) fn of<'a>(
        inner: &Arc<Inner>,
        key: &StoreKey,
        lock: &'a StoreLock,
    ) -> Option<&'a Self> {
        lock.held::<Self>()
            .filter(|lease| Arc::ptr_eq(&lease.inner, inner) && lease.key == *key)
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// A save released the lock.
    pub(crate) fn mark_released(&self) {
        self.released.store(true, Ordering::Release);
        self.extender.abort();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.extender.abort();
        self.inner.take_snapshot(&self.key);
        if !self.released.load(Ordering::Acquire) {
            release(&self.inner, &self.lock, std::mem::take(&mut self.token));
        }
    }
}

/// Releases a lock whose script may have run without its answer arriving, unless disarmed.
struct InFlight {
    inner: Arc<Inner>,
    lock: String,
    token: String,
    armed: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.armed {
            release(&self.inner, &self.lock, std::mem::take(&mut self.token));
        }
    }
}

/// Takes `key`'s lock: queues behind this process's holders, then polls Redis (5 ms doubling
/// to 100 ms, never past the holder's remaining lease) for at most the lock timeout. The entry
/// read with it is kept for the next read of the key.
pub(crate) async fn take(inner: &Arc<Inner>, key: &StoreKey) -> Result<StoreLock, Error> {
    let local = inner.local.lock(key).await;
    let names = Names::new(&inner.settings.prefix, key);
    let lease_ms = millis(inner.settings.lease);
    let lock_timeout = inner.settings.lock_timeout;
    let mut in_flight = InFlight {
        inner: Arc::clone(inner),
        lock: names.lock.clone(),
        token: random_token()?,
        armed: false,
    };
    let mut waited = Duration::ZERO;
    let mut pause = POLL_FIRST;
    loop {
        let seen = inner.version_seen(key);
        // Armed once the script may reach Redis: from then on, a call that fails or is dropped
        // may have taken the lock.
        inner.connect().await?;
        in_flight.armed = true;
        let answer: Vec<Value> = inner
            .run_script(
                inner
                    .scripts
                    .acquire
                    .key(&names.lock)
                    .key(&names.entry)
                    .arg(&in_flight.token)
                    .arg(lease_ms)
                    .arg(MAX_VALUE_SIZE),
            )
            .await?;
        let odd = || {
            Error::store(
                format!("Redis at {} answered the lock script oddly", inner.server),
                None,
            )
        };
        let mut answer = answer.into_iter();
        match answer.next() {
            Some(Value::Int(1)) => {
                let mut next = || answer.next().unwrap_or(Value::Nil);
                let (found, pttl) = stored(next(), next(), next()).ok_or_else(odd)?;
                if let Some(kind) = text(next()).filter(|kind| !kind.is_empty()) {
                    warn!(
                        key = %key,
                        "the lock key held a {kind} with no expiry or of another type: it was \
                         not a lock (no holder sets one), and was replaced"
                    );
                }
                inner
                    .snapshots
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        key.clone(),
                        Snapshot {
                            stored: found,
                            pttl,
                            seen,
                        },
                    );
                in_flight.armed = false;
                let token = std::mem::take(&mut in_flight.token);
                let extender = extend_lease(inner, names.lock.clone(), token.clone());
                return Ok(StoreLock::new(Lease {
                    inner: Arc::clone(inner),
                    key: key.clone(),
                    lock: names.lock,
                    token,
                    released: AtomicBool::new(false),
                    extender,
                    _local: local,
                }));
            }
            Some(Value::Int(0)) => in_flight.armed = false,
            _ => return Err(odd()),
        }
        if waited >= lock_timeout {
            return Err(Error::store_busy(format!(
                "another replica has held the Redis lock for {key} on {} for over {lock_timeout:?}",
                inner.server
            )));
        }
        let remaining = match answer.next() {
            Some(Value::Int(ms)) if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
            _ => pause,
        };
        let sleep = pause
            .min(remaining)
            .min(lock_timeout - waited)
            .max(Duration::from_millis(1));
        tokio::time::sleep(sleep).await;
        waited += sleep;
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// Extends the lease every third of it until aborted or the lock is no longer ours.
fn extend_lease(inner: &Arc<Inner>, lock: String, token: String) -> tokio::task::JoinHandle<()> {
    let inner = Arc::clone(inner);
    let every = inner.settings.lease / 3;
    let lease_ms = millis(inner.settings.lease);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let result = inner
                .run_script::<i64>(inner.scripts.extend.key(&lock).arg(&token).arg(lease_ms))
                .await;
            match result {
                Ok(1) => {}
                Ok(_) => {
                    warn!("a Redis lock's lease ran out before it could be extended");
                    return;
                }
                Err(e) => debug!(error = %e, "extending a Redis lock's lease failed"),
            }
        }
    })
}

/// Releases `lock` if it still holds `token`, on a task of its own: a drop never blocks.
fn release(inner: &Arc<Inner>, lock: &str, token: String) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // No runtime to release on: the lease runs out by itself.
        return;
    };
    let (inner, lock) = (Arc::clone(inner), lock.to_owned());
    let pending = Pending::start();
    runtime.spawn(async move {
        let _pending = pending;
        let result = inner
            .run_script::<i64>(inner.scripts.release.key(&lock).arg(&token))
            .await;
        if let Err(e) = result {
            debug!(error = %e, "releasing a Redis lock failed: its lease runs out instead");
        }
    });
}

fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::store(format!("no random numbers for a lock token: {e}"), None))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Releases under way in this process (see [`settle`]).
static PENDING_RELEASES: AtomicU64 = AtomicU64::new(0);

/// Counts one release under way until dropped.
struct Pending;

impl Pending {
    fn start() -> Self {
        PENDING_RELEASES.fetch_add(1, Ordering::AcqRel);
        Self
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        PENDING_RELEASES.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Waits (at most `limit`) for the lock releases this process has started to reach Redis.
///
/// A lock dropped without a save is released on a task of its own; a short-lived program (a
/// CLI) that is about to stop its runtime calls this first, so the next run does not wait out
/// the lease of a lock nobody holds.
pub async fn settle(limit: Duration) {
    let mut waited = Duration::ZERO;
    let step = Duration::from_millis(2);
    while PENDING_RELEASES.load(Ordering::Acquire) > 0 && waited < limit {
        tokio::time::sleep(step).await;
        waited += step;
    }
}
