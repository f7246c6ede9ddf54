//! The promises, checked as the run goes: at every presentation and every store write, at
//! every token served, before every step (what the fleet's caches hold, as the driver reads
//! them), and once the faults stop (liveness). The store handles and the fetches call its hooks
//! as things happen; what it remembers between events is `checker::memory`'s.
//!
//! Each check says what the promise says and no more, so that a correct cache passes:
//!
//! - **presented-once**: a refresh token is presented once; a second time only when the first
//!   presentation's answer had not reached a cache when the second was made (lost, or still on
//!   its way), or reached only a process that was then killed or paused before the store held
//!   its result (the window no client can close); never a third time. A refusal that reached a
//!   cache counts as an answer, so a token refused once is not presented again. Not counted: a
//!   presentation by a process that could not have learned of the earlier ones: it made none
//!   of them, never received, held or read in the store a later token of the family nor a
//!   record marking the token presented or refused, and every earlier answer reached a cache
//!   after its last read of the store, or before a wipe (a flush, a restart, the record
//!   evicted) that came before that read. An answer that reached a cache while the store was
//!   down for a restart counts as reaching it before that restart's wipe (it could not be
//!   saved until the store came back empty). A `forget` leaves a record of itself, which is no
//!   wipe. After a wipe a replica holding a refresh token cannot tell whether another rotated
//!   it; without one, the store is where the fleet learns it, so a process that was not told
//!   is the fleet's failure, not an excuse.
//! - **rotated-kept**: the newest refresh token of a principal that reached a replica, while
//!   the provider would still rotate it (not rotated since, its family not revoked), is held by
//!   the store or by a live replica (its cached state, or the state it keeps for its next fetch
//!   after an `invalidate`), or another token the provider would still rotate is (two families
//!   can live at once after the store lost its records; keeping one is what the promise asks). Not required while a replica that received it is fetching (the
//!   answer is between the provider and the save), when only killed processes ever held it
//!   (the window no client can close), once a `forget` of the principal removed it, or for a
//!   password grant's token (not a rotated one: the password logs in again).
//! - **valid-served**: no caller is served a token past its expiry (as the provider issued it),
//!   nor one revoked before it was served because a refresh token was presented once too often.
//!   A token revoked by an allowed second presentation or by the provider on its own is not
//!   knowable to a replica that holds it until a caller's 401 says so; that case is
//!   `reported-not-served`.
//! - **own-principal**: a caller of one principal is never served another's token.
//! - **reported-not-served**: a call that began after its replica was told (`invalidate`, a
//!   401) that a token is refused is not served that token, while it is the last one reported
//!   on that replica (the cache remembers the last one) and the replica has not forgotten it.
//! - **forget**: once a replica's `forget` returned, no fetch that replica began before it
//!   returned writes a state for the principal (nor did one between the removal and the
//!   return). Other replicas are not bound: their fetches are indistinguishable from ones begun
//!   after.
//! - **panic-backoff**: a replica whose fetch panicked does not fetch that principal again
//!   before the least backoff (half the initial one), unless a caller invalidated or forgot it
//!   in between.
//! - **hang-liveness**: once the faults stop and the fleet has had [`SETTLE`] to recover (any
//!   hang then older than every deadline), every live replica gets a token for every principal
//!   within [`PROBE`]; an SSO principal with no family left may answer that a person must sign
//!   in.
//!
//! [`SETTLE`]: crate::config::SETTLE
//! [`PROBE`]: crate::config::PROBE

use token_provider::{AccessToken, StoreKey, StoreRecord, TokenState};

use crate::config::BACKOFF_INITIAL;
use crate::node::Node;
pub use crate::promise::{Promise, Violation};
use crate::provider::server::{Cause, Knowledge, Origin};
use crate::trace::secs;
use crate::world::{World, lock};

pub(crate) mod memory;

use self::memory::{Forget, Returned};

/// `node` read `record` for `key`, when the store had been wiped `epoch` times for it.
pub(crate) fn on_store_load(
    w: &World,
    node: Node,
    key: &StoreKey,
    record: Option<&StoreRecord>,
    epoch: u64,
) {
    let Some(principal) = w.principal_of(key) else {
        return;
    };
    let now = w.now();
    let mut checker = lock(&w.checker);
    let knows = checker.knowledge.entry((node, principal)).or_default();
    knows.read_epoch = Some(epoch);
    knows.read_at = Some(now);
    if let Some(record) = record {
        knows.seen.extend(
            record
                .state
                .refresh_token
                .as_ref()
                .map(|rt| rt.expose_secret().to_owned()),
        );
        knows.marked.extend(
            record
                .presenting
                .as_ref()
                .map(|p| p.refresh_digest.to_hex()),
        );
        knows
            .marked
            .extend(record.refused.as_ref().map(|r| r.refresh_digest.to_hex()));
    }
}

/// `node` received or holds `rt`, a refresh token of `principal`.
pub(crate) fn on_seen(w: &World, node: Node, principal: usize, rt: &str) {
    lock(&w.checker)
        .knowledge
        .entry((node, principal))
        .or_default()
        .seen
        .insert(rt.to_owned());
}

/// What `node` has learned of `principal`'s refresh tokens.
pub(crate) fn knowledge(w: &World, node: Node, principal: usize) -> Knowledge {
    lock(&w.checker)
        .knowledge
        .get(&(node, principal))
        .cloned()
        .unwrap_or_default()
}

/// A replica's fetch for `principal` begins (the provider is about to be asked).
pub(crate) fn on_fetch(w: &World, node: Node, principal: usize) {
    let now = w.now();
    let panicked = lock(&w.checker).panics.remove(&(node, principal));
    let least = BACKOFF_INITIAL / 2;
    if let Some(at) = panicked
        && now - at < least
    {
        w.violate(
            Promise::Backoff,
            format!(
                "{node} fetched {} again {} ms after its fetch panicked at {} (a backoff waits \
                 at least {} ms)",
                w.cfg.principals[principal].name,
                (now - at).as_millis(),
                secs(at),
                least.as_millis()
            ),
        );
    }
}

/// A replica's fetch panics. A fetch begun before a `forget` of its replica returned (failed
/// or not) is detached from the cache: what it ends with is not held, so its panic asks for
/// no backoff.
pub(crate) fn on_panic(w: &World, node: Node, principal: usize) {
    let now = w.now();
    let task = tokio::task::try_id();
    let mut checker = lock(&w.checker);
    let detached = checker.forgets.iter().any(|f| {
        f.node == node
            && f.principal == principal
            && f.returned
                .as_ref()
                .is_some_and(|r| task.is_some_and(|t| t < r.marker))
    });
    if !detached {
        checker.panics.insert((node, principal), now);
    }
}

/// A caller reported `token` refused (a 401): `before` is what the cache held just before.
pub(crate) fn on_invalidate(
    w: &World,
    node: Node,
    principal: usize,
    token: &AccessToken,
    before: Option<TokenState>,
) {
    let seq = w.next_seq();
    let name = token.secret().expose_secret().to_owned();
    let mut checker = lock(&w.checker);
    if let Some(before) = before.filter(|b| b.access_token == *token) {
        checker.retired.insert((node, principal), before);
    }
    checker.reported.insert((node, principal), (name, seq));
    checker.panics.remove(&(node, principal));
}

/// `token` was served to a caller of `principal` on `node`, in a call that began at `started`.
/// Returns whether the provider has revoked it (the caller's API call then gets a 401).
pub(crate) fn on_served(
    w: &World,
    node: Node,
    principal: usize,
    token: &AccessToken,
    started: u64,
) -> bool {
    let name = token.secret().expose_secret().to_owned();
    let wall = w.wall();
    let pname = &w.cfg.principals[principal].name;
    let (issued, revocation) = {
        let provider = lock(&w.provider);
        let issued = provider
            .access
            .get(&name)
            .map(|a| (a.principal, a.expires_at));
        (issued, provider.access_revoked(&name).cloned())
    };
    let Some((owner, expires_at)) = issued else {
        w.violate(
            Promise::Principal,
            format!("{node} served {name}, which the provider never issued"),
        );
        return false;
    };
    if owner != principal {
        w.violate(
            Promise::Principal,
            format!("{node} served {name} to a caller of {pname}"),
        );
    }
    if wall >= expires_at {
        let late = wall.duration_since(expires_at).unwrap_or_default();
        w.violate(
            Promise::Valid,
            format!("{node} served {name} {} after it expired", secs(late)),
        );
    }
    if let Some(r) = &revocation
        && let Cause::Reuse {
            refresh,
            allowed: false,
        } = &r.cause
    {
        w.violate(
            Promise::Valid,
            format!(
                "{node} served {name}, revoked at {} when {refresh} was presented once too often",
                secs(r.at)
            ),
        );
    }
    let reported = {
        let mut checker = lock(&w.checker);
        checker.last_served.insert((node, principal), token.clone());
        checker.reported.get(&(node, principal)).cloned()
    };
    if let Some((refused, seq)) = reported
        && refused == name
        && seq < started
    {
        w.violate(
            Promise::Reported,
            format!("{node} served {name} to a call begun after a caller reported it refused"),
        );
    }
    revocation.is_some()
}

/// The last token served to a caller of `principal` on `node`.
pub(crate) fn last_served(w: &World, node: Node, principal: usize) -> Option<AccessToken> {
    lock(&w.checker)
        .last_served
        .get(&(node, principal))
        .cloned()
}

/// A `forget` of `principal` on `node` begins, on task `task`.
pub(crate) fn forget_started(
    w: &World,
    node: Node,
    principal: usize,
    task: Option<tokio::task::Id>,
) {
    lock(&w.checker).forgets.push(Forget {
        node,
        principal,
        task,
        removed: false,
        returned: None,
        early_writes: Vec::new(),
    });
}

/// The `forget` on task `task` returned (`ok`); `marker` is the id of a task spawned just after.
pub(crate) fn forget_returned(
    w: &World,
    node: Node,
    principal: usize,
    task: Option<tokio::task::Id>,
    ok: bool,
    marker: tokio::task::Id,
) {
    let seq = w.next_seq();
    let at = w.now();
    let early = {
        let mut checker = lock(&w.checker);
        checker.reported.remove(&(node, principal));
        checker.retired.remove(&(node, principal));
        checker.panics.remove(&(node, principal));
        let Some(f) = checker
            .forgets
            .iter_mut()
            .find(|f| f.task == task && f.returned.is_none())
        else {
            return;
        };
        f.returned = Some(Returned {
            seq,
            at,
            marker,
            ok,
        });
        if ok {
            f.early_writes.first().copied()
        } else {
            None
        }
    };
    if let Some(written) = early {
        w.violate(
            Promise::Forget,
            format!(
                "{node}'s forget of {} returned, but {node} saved a state at {} after the \
                 forget removed it",
                w.cfg.principals[principal].name,
                secs(written)
            ),
        );
    }
}

/// `node` removed `key` on task `task`.
pub(crate) fn on_store_remove(
    w: &World,
    node: Node,
    key: &StoreKey,
    task: Option<tokio::task::Id>,
) {
    let _ = (node, key);
    let mut checker = lock(&w.checker);
    if let Some(f) = checker
        .forgets
        .iter_mut()
        .find(|f| f.task.is_some() && f.task == task && f.returned.is_none())
    {
        f.removed = true;
    }
}

/// `node` wrote a state holding `refresh` for `key` on task `task`.
pub(crate) fn on_store_write(
    w: &World,
    node: Node,
    key: &StoreKey,
    refresh: Option<&str>,
    task: Option<tokio::task::Id>,
) {
    if let Some(rt) = refresh
        && let Some(record) = lock(&w.provider).refresh.get_mut(rt)
    {
        record.stored = true;
    }
    let Some(principal) = w.principal_of(key) else {
        return;
    };
    let at = w.now();
    let mut verdicts = Vec::new();
    {
        let mut checker = lock(&w.checker);
        for f in checker
            .forgets
            .iter_mut()
            .filter(|f| f.node == node && f.principal == principal && f.removed)
        {
            match &f.returned {
                None => f.early_writes.push(at),
                Some(r) if r.ok && task.is_some_and(|t| t < r.marker) => verdicts.push(format!(
                    "{node} saved {key} from a fetch it began before its forget returned (at {})",
                    secs(r.at)
                )),
                Some(_) => {}
            }
        }
    }
    for verdict in verdicts {
        w.violate(Promise::Forget, verdict);
    }
}

/// What one replica's cache of one principal holds at a check.
pub(crate) struct Holding {
    pub(crate) node: Node,
    pub(crate) principal: usize,
    /// Its cached state.
    pub(crate) state: Option<TokenState>,
    /// Whether a fetch of its is in flight.
    pub(crate) fetching: bool,
}

/// rotated-kept, for every principal (see the module docs), against what the fleet's caches
/// hold.
pub(crate) fn check_rotated_kept(w: &World, caches: &[Holding]) {
    for principal in 0..w.cfg.principals.len() {
        // The principal's newest token that reached a replica, if the provider would still
        // rotate it: one superseded by a later answer (of its family or a newer one) is not
        // required again, and while a rotation's answer is on its way nothing is.
        let candidate = {
            let provider = lock(&w.provider);
            provider
                .refresh
                .iter()
                .filter(|(_, r)| r.principal == principal && r.delivered.is_some())
                .max_by_key(|(_, r)| r.order)
                .filter(|(rt, r)| provider.usable(rt) && r.origin != Origin::Password)
                .and_then(|(rt, r)| Some((rt.clone(), r.delivered?, r.touched.clone())))
        };
        let Some((rt, delivery, mut touched)) = candidate else {
            continue;
        };
        if lock(&w.checker).forgotten(principal, &delivery) {
            continue;
        }
        let mut holders = Vec::new();
        let mut fetching = Vec::new();
        // Any usable refresh token held (of another family: two families can live at once
        // after the store lost its records) keeps the principal from needing a person.
        let mut usable_held = false;
        for cache in caches
            .iter()
            .filter(|c| c.principal == principal && w.alive(c.node))
        {
            let held = {
                let mut checker = lock(&w.checker);
                match &cache.state {
                    Some(state) => {
                        // A cache holding a token again has dropped what it kept aside.
                        checker.retired.remove(&(cache.node, principal));
                        state.refresh_token.clone()
                    }
                    None => checker
                        .retired
                        .get(&(cache.node, principal))
                        .and_then(|s| s.refresh_token.clone()),
                }
            };
            if held.as_ref().is_some_and(|h| h.expose_secret() == rt) {
                holders.push(cache.node);
            }
            usable_held |= held.is_some_and(|h| lock(&w.provider).usable(h.expose_secret()));
            if cache.fetching {
                fetching.push(cache.node);
            }
        }
        if !holders.is_empty() {
            for node in &holders {
                on_seen(w, *node, principal, &rt);
            }
            if let Some(r) = lock(&w.provider).refresh.get_mut(&rt) {
                r.touched.extend(holders);
            }
            continue;
        }
        let stored = lock(&w.store).stored_refresh(w.key(principal));
        if stored.as_deref() == Some(rt.as_str()) {
            continue;
        }
        usable_held |= stored
            .as_deref()
            .is_some_and(|s| lock(&w.provider).usable(s));
        if usable_held {
            continue;
        }
        touched.extend(delivery.node);
        let live: Vec<Node> = touched.into_iter().filter(|n| w.alive(*n)).collect();
        if live.is_empty() || live.iter().any(|n| fetching.contains(n)) {
            continue;
        }
        let names: Vec<String> = live.iter().map(Node::to_string).collect();
        w.violate(
            Promise::RotatedKept,
            format!(
                "{rt} (delivered to {} at {}) is held by neither the store (which holds {}) nor \
                 any live replica (it reached {})",
                delivery
                    .node
                    .map_or_else(|| "a person".into(), |n| n.to_string()),
                secs(delivery.at),
                stored.as_deref().unwrap_or("no refresh token"),
                names.join(", ")
            ),
        );
    }
}
