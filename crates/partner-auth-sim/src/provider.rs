//! The model provider: one OAuth-like server shared by every replica, and each replica's
//! [`Fetch`] on it.
//!
//! - A password grant starts a new token family: an access token and a refresh token.
//! - A refresh grant rotates: the family's refresh token is replaced by a new one with a new
//!   access token. A refresh token presented after it was rotated away is reuse: the whole
//!   family (its refresh tokens and every access token issued in it) is revoked, and the
//!   presentation refused. A refresh token of a revoked family is refused.
//! - Every presentation of a refresh token is recorded (when, by which replica, what was
//!   answered, and whether the answer reached the cache), and every access token issued and
//!   revoked: the checker reads these records.
//!
//! A fetch presents `previous.refresh_token` when there is one. Without one, a principal with a
//! password logs in (a new family); one without (single sign-on) fails with a user action, as
//! only a person can log it in. A refused refresh token fails the fetch (`rejected` for a
//! password principal, `user_action` for SSO): whether to log in again is the cache's choice,
//! made by calling the fetch again without the refused token.
//!
//! Faults (drawn per fetch from the seed): the answer lost after the provider processed it, a
//! transient error before anything was processed, a slow answer, a hang (a request stuck before
//! it leaves, or an answer that never comes), a panic (before or after processing). A request
//! whose fetch is dropped before it arrives is never processed: the model's network does not
//! hold a request longer than its sender waits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use token_provider::{AccessToken, Error, Fetch, RefreshDigest, Secret, StoreKey, TokenState};

use crate::checker::{Knowledge, Promise};
use crate::config::{Fault, PrincipalSpec};
use crate::world::{Node, World, lock};

/// What a panicking fetch panics with: the sim's panic hook keeps such panics quiet.
pub(crate) const PANIC_MARKER: &str = "partner-auth-sim: injected panic";

/// Why a family was revoked.
#[derive(Clone, Debug)]
pub(crate) enum Cause {
    /// A refresh token was presented again after it was rotated away; `allowed` when the
    /// checker allowed that presentation (the first answer was lost).
    Reuse { refresh: String, allowed: bool },
    /// Revoked by the provider on its own (a password change, an administrator).
    Admin,
}

#[derive(Clone, Debug)]
pub(crate) struct Revocation {
    pub(crate) at: Duration,
    pub(crate) cause: Cause,
}

pub(crate) struct Family {
    pub(crate) principal: usize,
    pub(crate) name: String,
    /// The refresh token the family answers to now.
    pub(crate) live: String,
    pub(crate) revoked: Option<Revocation>,
    issued: u32,
}

/// An answer of the provider reached the cache: the fetch returned it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Delivery {
    pub(crate) seq: u64,
    pub(crate) at: Duration,
    /// `None`: handed to a person (an SSO login), not to a replica.
    pub(crate) node: Option<Node>,
    /// The task of the fetch it reached.
    pub(crate) task: Option<tokio::task::Id>,
}

pub(crate) struct Presentation {
    pub(crate) at: Duration,
    pub(crate) by: Node,
    pub(crate) refused: bool,
    pub(crate) delivered: Option<Duration>,
    /// How many times the store had been wiped for the principal when the answer arrived.
    pub(crate) delivered_epoch: Option<u64>,
}

/// How a refresh token came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A password grant (a new family).
    Password,
    /// A person's login (an SSO principal's first).
    Person,
    /// A refresh grant rotated the family's previous one.
    Rotation,
}

pub(crate) struct Refresh {
    pub(crate) principal: usize,
    pub(crate) origin: Origin,
    /// A store write held it.
    pub(crate) stored: bool,
    pub(crate) family: usize,
    /// Issue order among every token the provider issued.
    pub(crate) order: u64,
    pub(crate) presentations: Vec<Presentation>,
    /// The token its rotation issued.
    pub(crate) successor: Option<String>,
    pub(crate) delivered: Option<Delivery>,
    /// Every life of a replica that received this token or was seen holding it.
    pub(crate) touched: BTreeSet<Node>,
}

pub(crate) struct Access {
    pub(crate) principal: usize,
    pub(crate) family: usize,
    pub(crate) expires_at: SystemTime,
}

/// The provider's state and records.
pub(crate) struct Provider {
    pub(crate) principals: Vec<PrincipalSpec>,
    pub(crate) families: Vec<Family>,
    pub(crate) refresh: BTreeMap<String, Refresh>,
    pub(crate) access: BTreeMap<String, Access>,
    issued: u64,
}

/// What the provider answered a grant.
pub(crate) enum Answer {
    Issued(TokenState),
    Refused,
}

/// A grant the provider processed: its answer, and which presentation it was (for a refresh).
pub(crate) struct Processed {
    answer: Answer,
    presented: Option<(String, usize)>,
    issued: Option<String>,
}

impl Provider {
    pub(crate) fn new(principals: &[PrincipalSpec]) -> Self {
        Self {
            principals: principals.to_vec(),
            families: Vec::new(),
            refresh: BTreeMap::new(),
            access: BTreeMap::new(),
            issued: 0,
        }
    }

    /// Issues an access token and a refresh token in `family`.
    fn issue(&mut self, family: usize, origin: Origin, wall: SystemTime) -> (TokenState, String) {
        self.issued += 1;
        let f = &mut self.families[family];
        f.issued += 1;
        let principal = f.principal;
        let at = format!("{}.a{}", f.name, f.issued);
        let rt = format!("{}.r{}", f.name, f.issued);
        f.live = rt.clone();
        let expires_at = wall + self.principals[principal].lifetime;
        self.access.insert(
            at.clone(),
            Access {
                principal,
                family,
                expires_at,
            },
        );
        self.refresh.insert(
            rt.clone(),
            Refresh {
                principal,
                origin,
                stored: false,
                family,
                order: self.issued,
                presentations: Vec::new(),
                successor: None,
                delivered: None,
                touched: BTreeSet::new(),
            },
        );
        let state = TokenState::new(AccessToken::builder(at).expires_at(expires_at).build())
            .with_refresh_token(Secret::from(rt.clone()));
        (state, rt)
    }

    /// A login (a password grant, or a person's SSO login): a new family.
    pub(crate) fn login(
        &mut self,
        principal: usize,
        origin: Origin,
        wall: SystemTime,
    ) -> (TokenState, String) {
        let name = format!(
            "{}.f{}",
            self.principals[principal].name,
            self.families.len()
        );
        self.families.push(Family {
            principal,
            name,
            live: String::new(),
            revoked: None,
            issued: 0,
        });
        self.issue(self.families.len() - 1, origin, wall)
    }

    /// A person logs `principal` in (single sign-on): the new family's first state, handed to
    /// the person's tool, which saves it in the store.
    pub(crate) fn login_by_person(
        &mut self,
        principal: usize,
        wall: SystemTime,
        delivery: Delivery,
    ) -> TokenState {
        let (state, rt) = self.login(principal, Origin::Person, wall);
        if let Some(record) = self.refresh.get_mut(&rt) {
            record.delivered = Some(delivery);
        }
        state
    }

    /// A refresh grant presenting `rt`: the answer, and the violation of the presentation
    /// promise it is, if it is one. `knows`: what the presenter has learned of the principal's
    /// tokens. `stalled(node, since)`: whether `node` was killed or paused since `since`.
    fn refresh_grant(
        &mut self,
        rt: &str,
        by: Node,
        knows: &Knowledge,
        stalled: impl Fn(Node, Duration) -> bool,
        now: Duration,
        wall: SystemTime,
    ) -> (Processed, Option<String>) {
        let Some(record) = self.refresh.get(rt) else {
            let refused = Processed {
                answer: Answer::Refused,
                presented: None,
                issued: None,
            };
            return (refused, Some(format!("{by} presented {rt}, never issued")));
        };
        let family = record.family;
        let k = record.presentations.len() + 1;
        // Why the presenter could have known of the earlier presentations, if it could: it
        // made one, it received, held or read a later token of the family or a record marking
        // this one, or the store, unwiped since an earlier answer reached a cache, could have
        // told it.
        let digest = RefreshDigest::of(&Secret::from(rt)).to_hex();
        let later = self
            .refresh
            .iter()
            .find(|(t, r)| r.family == family && r.order > record.order && knows.seen.contains(*t))
            .map(|(t, _)| t.clone());
        let could_know = if let Some(own) = record.presentations.iter().find(|p| p.by == by) {
            Some(format!("it made the presentation at {}", secs(own.at)))
        } else if let Some(later) = later {
            Some(format!("it had seen {later}"))
        } else if knows.marked.contains(&digest) {
            Some("a store record it read marked it presented or refused".to_owned())
        } else if record.presentations.iter().any(|p| {
            // Delivered before the presenter last read the store, with no wipe in between.
            let (Some(at), Some(epoch)) = (p.delivered, p.delivered_epoch) else {
                return false;
            };
            knows.read_at.is_none_or(|read| at <= read)
                && knows.read_epoch.is_none_or(|read| read <= epoch)
        }) {
            Some("the store was not wiped between that answer and its last read".to_owned())
        } else {
            None
        };
        // Whether the first answer went no further than a process killed or paused before it
        // could save it: the window no client can close.
        let stranded = |first: &Presentation| {
            first.by != by
                && !record
                    .successor
                    .as_ref()
                    .and_then(|s| self.refresh.get(s))
                    .is_some_and(|s| s.stored)
                && first.delivered.is_some_and(|at| stalled(first.by, at))
        };
        // The promise: once; twice only when the first answer did not reach the cache before
        // the second presentation (lost, or still on its way); never a third time.
        let verdict = match record.presentations.first() {
            None => None,
            Some(first) if k == 2 && (first.delivered.is_none() || stranded(first)) => None,
            Some(_) if could_know.is_none() => None,
            Some(first) => {
                // The earlier presentation that should have stopped this one: the presenter's
                // own if it made one, else the first.
                let (i, earlier) = record
                    .presentations
                    .iter()
                    .enumerate()
                    .find(|(_, p)| p.by == by)
                    .unwrap_or((0, first));
                let answer = if earlier.refused {
                    "refused"
                } else {
                    "rotated"
                };
                let fate = earlier
                    .delivered
                    .map(|at| format!("its answer reached {} at {}", earlier.by, secs(at)))
                    .unwrap_or_else(|| "its answer was lost".into());
                Some(format!(
                    "{by} presented {rt} a {} time; the {} presentation ({} at {}) was {answer} \
                     and {fate}, and {by} could know: {}",
                    ordinal(k),
                    ordinal(i + 1),
                    earlier.by,
                    secs(earlier.at),
                    could_know.as_deref().unwrap_or("?")
                ))
            }
        };
        let f = &self.families[family];
        let (answer, issued) = if f.revoked.is_some() {
            (Answer::Refused, None)
        } else if f.live != rt {
            let cause = Cause::Reuse {
                refresh: rt.to_owned(),
                allowed: verdict.is_none(),
            };
            self.families[family].revoked = Some(Revocation { at: now, cause });
            (Answer::Refused, None)
        } else {
            let (state, new_rt) = self.issue(family, Origin::Rotation, wall);
            (Answer::Issued(state), Some(new_rt))
        };
        let refused = matches!(answer, Answer::Refused);
        let record = self.refresh.get_mut(rt).expect("looked up above");
        if issued.is_some() {
            record.successor.clone_from(&issued);
        }
        record.presentations.push(Presentation {
            at: now,
            by,
            refused,
            delivered: None,
            delivered_epoch: None,
        });
        let processed = Processed {
            answer,
            presented: Some((rt.to_owned(), k - 1)),
            issued,
        };
        (processed, verdict)
    }

    /// The answer of `processed` reached `node`'s cache, when the store had been wiped `epoch`
    /// times for the principal.
    fn deliver(&mut self, processed: &Processed, delivery: Delivery, epoch: u64) {
        if let Some((rt, i)) = &processed.presented
            && let Some(record) = self.refresh.get_mut(rt)
        {
            let presentation = &mut record.presentations[*i];
            presentation.delivered = Some(delivery.at);
            presentation.delivered_epoch = Some(epoch);
        }
        if let Some(rt) = &processed.issued
            && let Some(record) = self.refresh.get_mut(rt)
        {
            record.delivered = Some(delivery);
            record.touched.extend(delivery.node);
        }
    }

    /// Revokes `family`.
    pub(crate) fn revoke(&mut self, family: usize, at: Duration, cause: Cause) {
        let f = &mut self.families[family];
        if f.revoked.is_none() {
            f.revoked = Some(Revocation { at, cause });
        }
    }

    /// The family a principal's newest token was issued in, if it is not revoked.
    pub(crate) fn live_family(&self, principal: usize) -> Option<usize> {
        self.families
            .iter()
            .enumerate()
            .rev()
            .find(|(_, f)| f.principal == principal && f.revoked.is_none())
            .map(|(i, _)| i)
    }

    /// Whether the provider would rotate `rt` now: it is its family's live token and the
    /// family is not revoked.
    pub(crate) fn usable(&self, rt: &str) -> bool {
        self.refresh.get(rt).is_some_and(|r| {
            let f = &self.families[r.family];
            f.revoked.is_none() && f.live == rt
        })
    }

    /// The revocation of the family `at` (an access token) was issued in, if it is revoked.
    pub(crate) fn access_revoked(&self, at: &str) -> Option<&Revocation> {
        let family = self.access.get(at)?.family;
        self.families[family].revoked.as_ref()
    }
}

/// `d` as seconds with milliseconds.
pub(crate) fn secs(d: Duration) -> String {
    format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
}

fn ordinal(k: usize) -> String {
    match k {
        1 => "first".into(),
        2 => "second".into(),
        3 => "third".into(),
        k => format!("{k}th"),
    }
}

/// What one fetch is made to suffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    Answer,
    Slow,
    LostAnswer {
        timeout: bool,
    },
    ProviderError {
        status: bool,
    },
    /// The request is stuck before it leaves (an hour), then goes.
    StuckRequest,
    /// The provider processes the grant; its answer never comes.
    HangAfter,
    /// The request never leaves.
    HangBefore,
    Panic {
        after: bool,
    },
}

/// One replica's fetch for one principal.
#[derive(Debug)]
pub struct SimFetch {
    world: Arc<World>,
    node: Node,
    principal: usize,
    key: StoreKey,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("World")
    }
}

impl SimFetch {
    pub(crate) fn new(world: Arc<World>, node: Node, principal: usize, key: StoreKey) -> Self {
        Self {
            world,
            node,
            principal,
            key,
        }
    }

    fn plan(&self) -> Plan {
        let w = &self.world;
        if w.chance(Fault::Hang, 0.02) {
            match w.draw(|rng| rng.u8(0..3)) {
                0 => Plan::StuckRequest,
                1 => Plan::HangAfter,
                _ => Plan::HangBefore,
            }
        } else if w.chance(Fault::Panic, 0.02) {
            Plan::Panic {
                after: w.draw(|rng| rng.bool()),
            }
        } else if w.chance(Fault::ProviderError, 0.05) {
            Plan::ProviderError {
                status: w.draw(|rng| rng.bool()),
            }
        } else if w.chance(Fault::LostAnswer, 0.05) {
            Plan::LostAnswer {
                timeout: w.draw(|rng| rng.bool()),
            }
        } else if w.chance(Fault::Slow, 0.05) {
            Plan::Slow
        } else {
            Plan::Answer
        }
    }
}

#[async_trait]
impl Fetch for SimFetch {
    fn store_key(&self) -> Option<StoreKey> {
        Some(self.key.clone())
    }

    /// A password grant spends nothing; an SSO principal has only its refresh token.
    fn repeatable_without_store(&self) -> bool {
        self.world.cfg.principals[self.principal].password
    }

    async fn fetch(&self, previous: Option<&TokenState>) -> Result<TokenState, Error> {
        let w = &self.world;
        let node = self.node;
        w.gate(node).await;
        let task = tokio::task::try_id();
        let spec = &w.cfg.principals[self.principal];
        let rt = previous
            .and_then(|p| p.refresh_token.as_ref())
            .map(|rt| rt.expose_secret().to_owned());
        crate::checker::on_fetch(w, node, self.principal);
        let what = match &rt {
            Some(rt) => format!("fetch {}: refresh grant with {rt}", spec.name),
            None if spec.password => format!("fetch {}: password grant", spec.name),
            None => {
                w.log(
                    node,
                    format_args!("fetch {}: no refresh token, SSO: user action", spec.name),
                );
                return Err(Error::user_action("sign in again"));
            }
        };
        let plan = self.plan();
        w.log(
            node,
            format_args!(
                "{what}{}",
                match plan {
                    Plan::Answer => String::new(),
                    plan => format!(" [{plan:?}]"),
                }
            ),
        );
        let latency = || w.between(Duration::from_millis(20), Duration::from_millis(150));

        // The request on its way.
        match plan {
            Plan::ProviderError { status } => {
                tokio::time::sleep(latency()).await;
                w.gate(node).await;
                w.log(node, "fetch failed before the provider processed anything");
                return Err(if status {
                    Error::http_status(503)
                } else {
                    Error::transport("connection refused")
                });
            }
            Plan::HangBefore => std::future::pending::<()>().await,
            Plan::Panic { after: false } => {
                w.log(node, "fetch panics before sending");
                crate::checker::on_panic(w, node, self.principal);
                panic!("{PANIC_MARKER}");
            }
            Plan::StuckRequest => tokio::time::sleep(Duration::from_secs(3600)).await,
            _ => {}
        }
        tokio::time::sleep(latency()).await;

        // The provider processes it.
        let (now, wall) = (w.now(), w.wall());
        let knows = crate::checker::knowledge(w, node, self.principal);
        let (processed, verdict) = {
            let mut provider = lock(&w.provider);
            match &rt {
                Some(rt) => provider.refresh_grant(
                    rt,
                    node,
                    &knows,
                    |node, since| w.stalled_since(node, since),
                    now,
                    wall,
                ),
                None => {
                    let (state, new_rt) = provider.login(self.principal, Origin::Password, wall);
                    let processed = Processed {
                        answer: Answer::Issued(state),
                        presented: None,
                        issued: Some(new_rt),
                    };
                    (processed, None)
                }
            }
        };
        match (&processed.answer, &processed.issued) {
            (Answer::Issued(state), Some(new_rt)) => w.log(
                "provider",
                format_args!(
                    "{} -> {} + {new_rt}",
                    rt.as_deref().unwrap_or("password grant"),
                    state.access_token.secret().expose_secret()
                ),
            ),
            _ => {
                let revoked = rt
                    .as_deref()
                    .and_then(|rt| lock(&w.provider).refresh.get(rt).map(|r| r.family))
                    .map(|f| lock(&w.provider).families[f].name.clone());
                w.log(
                    "provider",
                    format_args!(
                        "{} refused (family {} revoked)",
                        rt.as_deref().unwrap_or("?"),
                        revoked.unwrap_or_default()
                    ),
                );
            }
        }
        if let Some(verdict) = verdict {
            w.violate(Promise::Presentation, verdict);
        }

        // The answer on its way back.
        match plan {
            Plan::Panic { after: true } => {
                w.log(node, "fetch panics after the provider answered");
                crate::checker::on_panic(w, node, self.principal);
                panic!("{PANIC_MARKER}");
            }
            Plan::HangAfter => std::future::pending::<()>().await,
            Plan::Slow => {
                tokio::time::sleep(w.between(Duration::from_secs(5), Duration::from_secs(40)))
                    .await;
            }
            _ => tokio::time::sleep(latency()).await,
        }
        w.gate(node).await;
        if let Plan::LostAnswer { timeout } = plan {
            w.log(node, "fetch: the provider's answer was lost");
            return Err(if timeout {
                Error::timeout(Duration::from_secs(30))
            } else {
                Error::transport("connection reset")
            });
        }
        let delivery = Delivery {
            seq: w.next_seq(),
            at: w.now(),
            node: Some(node),
            task,
        };
        let epoch = lock(&w.store).delivery_epoch(&self.key, tokio::time::Instant::now());
        lock(&w.provider).deliver(&processed, delivery, epoch);
        if let Some(rt) = &processed.issued {
            crate::checker::on_seen(w, node, self.principal, rt);
        }
        match processed.answer {
            Answer::Issued(state) => {
                w.log(
                    node,
                    format_args!(
                        "fetch returns {}",
                        state.access_token.secret().expose_secret()
                    ),
                );
                Ok(state)
            }
            Answer::Refused => {
                w.log(node, "fetch returns the refusal");
                Err(if spec.password {
                    Error::rejected(
                        Some(400),
                        Some("invalid_grant"),
                        Some("refresh token revoked"),
                    )
                } else {
                    Error::user_action("the refresh token was refused: sign in again")
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Provider {
        Provider::new(&[PrincipalSpec {
            name: "p0".into(),
            password: true,
            lifetime: Duration::from_secs(600),
        }])
    }

    fn node(replica: usize) -> Node {
        Node { replica, life: 0 }
    }

    const T: Duration = Duration::from_secs(10);

    fn wall() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn delivered(p: &mut Provider, processed: &Processed, to: Node) {
        let delivery = Delivery {
            seq: 0,
            at: T,
            node: Some(to),
            task: None,
        };
        p.deliver(processed, delivery, 0);
    }

    fn present(p: &mut Provider, rt: &str, by: Node) -> (Processed, Option<String>) {
        p.refresh_grant(rt, by, &Knowledge::default(), |_, _| false, T, wall())
    }

    /// A process whose last read of the store came after one wipe.
    fn after_a_wipe() -> Knowledge {
        Knowledge {
            read_epoch: Some(1),
            ..Knowledge::default()
        }
    }

    #[test]
    fn a_refresh_rotates_and_reuse_revokes_the_family() {
        let mut p = provider();
        let (_, r1) = p.login(0, Origin::Password, wall());
        let (rotated, verdict) = present(&mut p, &r1, node(0));
        assert!(verdict.is_none());
        assert!(matches!(rotated.answer, Answer::Issued(_)));
        let r2 = rotated.issued.clone().unwrap();
        assert!(p.usable(&r2) && !p.usable(&r1));
        // The first answer was lost: a second presentation is allowed, and revokes.
        let (refused, verdict) = present(&mut p, &r1, node(1));
        assert!(verdict.is_none(), "{verdict:?}");
        assert!(matches!(refused.answer, Answer::Refused));
        assert!(!p.usable(&r2), "the whole family is revoked");
        // Never a third time.
        let (_, verdict) = present(&mut p, &r1, node(1));
        assert!(verdict.unwrap().contains("third time"));
    }

    #[test]
    fn a_presentation_after_its_answer_reached_a_cache_is_a_violation() {
        let mut p = provider();
        let (_, r1) = p.login(0, Origin::Password, wall());
        let (rotated, _) = present(&mut p, &r1, node(0));
        delivered(&mut p, &rotated, node(0));
        let (_, verdict) = present(&mut p, &r1, node(1));
        assert!(verdict.unwrap().contains("second time"));
    }

    #[test]
    fn a_refusal_that_reached_a_cache_counts_as_an_answer() {
        let mut p = provider();
        let (_, r1) = p.login(0, Origin::Password, wall());
        let family = p.refresh[&r1].family;
        p.revoke(family, T, Cause::Admin);
        let (refused, verdict) = present(&mut p, &r1, node(0));
        assert!(verdict.is_none());
        delivered(&mut p, &refused, node(0));
        let (_, verdict) = present(&mut p, &r1, node(0));
        assert!(verdict.unwrap().contains("was refused"));
    }

    #[test]
    fn a_process_that_could_not_know_is_not_blamed() {
        let mut p = provider();
        let (_, r1) = p.login(0, Origin::Password, wall());
        let (rotated, _) = present(&mut p, &r1, node(0));
        delivered(&mut p, &rotated, node(0));
        // The store was wiped since, and nothing of the rotation reached node 1.
        let (_, verdict) = p.refresh_grant(&r1, node(1), &after_a_wipe(), |_, _| false, T, wall());
        assert!(verdict.is_none(), "{verdict:?}");
        // Node 0 made the rotation: no excuse for it.
        let (_, verdict) = p.refresh_grant(&r1, node(0), &after_a_wipe(), |_, _| false, T, wall());
        assert!(verdict.unwrap().contains("it made the presentation"));
    }

    #[test]
    fn a_process_that_read_a_later_token_or_an_unwiped_store_is_blamed() {
        let mut p = provider();
        let (_, r1) = p.login(0, Origin::Password, wall());
        let (rotated, _) = present(&mut p, &r1, node(0));
        delivered(&mut p, &rotated, node(0));
        let r2 = rotated.issued.clone().unwrap();
        let mut read_r2 = after_a_wipe();
        read_r2.seen.insert(r2.clone());
        let (_, verdict) = p.refresh_grant(&r1, node(1), &read_r2, |_, _| false, T, wall());
        assert!(verdict.unwrap().contains(&format!("it had seen {r2}")));
        let unwiped = Knowledge {
            read_epoch: Some(0),
            ..Knowledge::default()
        };
        let (_, verdict) = p.refresh_grant(&r1, node(2), &unwiped, |_, _| false, T, wall());
        assert!(verdict.unwrap().contains("not wiped"));
    }

    #[test]
    fn an_answer_stranded_in_a_stalled_process_allows_a_second_presentation() {
        let mut p = provider();
        let (_, r1) = p.login(0, Origin::Password, wall());
        let (rotated, _) = present(&mut p, &r1, node(0));
        delivered(&mut p, &rotated, node(0));
        let stalled = |n: Node, _| n == node(0);
        let (_, verdict) = p.refresh_grant(&r1, node(1), &Knowledge::default(), stalled, T, wall());
        assert!(verdict.is_none(), "{verdict:?}");
    }

    #[test]
    fn a_stalled_process_is_no_excuse_once_the_store_held_its_answer() {
        let mut p = provider();
        let (_, r1) = p.login(0, Origin::Password, wall());
        let (rotated, _) = present(&mut p, &r1, node(0));
        delivered(&mut p, &rotated, node(0));
        let r2 = rotated.issued.clone().unwrap();
        p.refresh.get_mut(&r2).unwrap().stored = true;
        let stalled = |n: Node, _| n == node(0);
        let (_, verdict) = p.refresh_grant(&r1, node(1), &Knowledge::default(), stalled, T, wall());
        assert!(verdict.is_some());
    }
}
