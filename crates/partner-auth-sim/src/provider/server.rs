//! The model provider: one OAuth-like server shared by every replica, its rules, and its
//! records of what it issued and answered.
//!
//! - A password grant starts a new token family: an access token and a refresh token.
//! - A refresh grant rotates: the family's refresh token is replaced by a new one with a new
//!   access token. A refresh token presented after it was rotated away is reuse: the whole
//!   family (its refresh tokens and every access token issued in it) is revoked, and the
//!   presentation refused. A refresh token of a revoked family is refused.
//! - Every presentation of a refresh token is recorded (when, by which replica, what was
//!   answered, and whether the answer reached the cache), and every access token issued and
//!   revoked: the checker reads these records. Each presentation is also judged as it is made,
//!   against what its presenter could know ([`Knowledge`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use token_provider::{AccessToken, RefreshDigest, Secret, TokenState};

use crate::config::PrincipalSpec;
use crate::node::Node;
use crate::trace::secs;

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
    pub(super) answer: Answer,
    presented: Option<(String, usize)>,
    /// The refresh token it issued.
    pub(super) issued: Option<String>,
}

/// What a process has learned of a principal's refresh tokens: what could have told it that a
/// token it presents was already answered.
#[derive(Clone, Debug, Default)]
pub(crate) struct Knowledge {
    /// Every refresh token it received, held, or read in a store record.
    pub(crate) seen: BTreeSet<String>,
    /// The digests of the tokens a record it read marked as being presented or refused.
    pub(crate) marked: BTreeSet<String>,
    /// How many times the store had been wiped for the principal at its last read.
    pub(crate) read_epoch: Option<u64>,
    /// When it last read the store (virtual time since the run began).
    pub(crate) read_at: Option<Duration>,
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

    /// A password grant: a new family, its first state the answer.
    pub(super) fn password_grant(&mut self, principal: usize, wall: SystemTime) -> Processed {
        let (state, rt) = self.login(principal, Origin::Password, wall);
        Processed {
            answer: Answer::Issued(state),
            presented: None,
            issued: Some(rt),
        }
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
    pub(super) fn refresh_grant(
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
    pub(super) fn deliver(&mut self, processed: &Processed, delivery: Delivery, epoch: u64) {
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

fn ordinal(k: usize) -> String {
    match k {
        1 => "first".into(),
        2 => "second".into(),
        3 => "third".into(),
        k => format!("{k}th"),
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

    /// The verdict on `by` presenting `rt`, knowing `knows`, with `stalled` the processes
    /// killed or paused.
    fn verdict(
        p: &mut Provider,
        rt: &str,
        by: Node,
        knows: &Knowledge,
        stalled: impl Fn(Node, Duration) -> bool,
    ) -> Option<String> {
        p.refresh_grant(rt, by, knows, stalled, T, wall()).1
    }

    /// A process whose last read of the store came after one wipe.
    fn after_a_wipe() -> Knowledge {
        Knowledge {
            read_epoch: Some(1),
            ..Knowledge::default()
        }
    }

    /// A provider whose principal logged in with its password, and the refresh token issued.
    fn logged_in() -> (Provider, String) {
        let mut p = provider();
        let (_, r1) = p.login(0, Origin::Password, wall());
        (p, r1)
    }

    /// [`logged_in`], then its refresh token `r1` rotated by node 0 and the answer, `r2`,
    /// delivered to it.
    fn rotated() -> (Provider, String, String) {
        let (mut p, r1) = logged_in();
        let (rotated, _) = present(&mut p, &r1, node(0));
        delivered(&mut p, &rotated, node(0));
        let r2 = rotated.issued.clone().unwrap();
        (p, r1, r2)
    }

    #[test]
    fn a_refresh_rotates_and_reuse_revokes_the_family() {
        let (mut p, r1) = logged_in();
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
        let (mut p, r1, _) = rotated();
        let (_, verdict) = present(&mut p, &r1, node(1));
        assert!(verdict.unwrap().contains("second time"));
    }

    #[test]
    fn a_refusal_that_reached_a_cache_counts_as_an_answer() {
        let (mut p, r1) = logged_in();
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
        let (mut p, r1, _) = rotated();
        // The store was wiped since, and nothing of the rotation reached node 1.
        let blame = verdict(&mut p, &r1, node(1), &after_a_wipe(), |_, _| false);
        assert!(blame.is_none(), "{blame:?}");
        // Node 0 made the rotation: no excuse for it.
        let blame = verdict(&mut p, &r1, node(0), &after_a_wipe(), |_, _| false);
        assert!(blame.unwrap().contains("it made the presentation"));
    }

    #[test]
    fn a_process_that_read_a_later_token_or_an_unwiped_store_is_blamed() {
        let (mut p, r1, r2) = rotated();
        let mut read_r2 = after_a_wipe();
        read_r2.seen.insert(r2.clone());
        let blame = verdict(&mut p, &r1, node(1), &read_r2, |_, _| false);
        assert!(blame.unwrap().contains(&format!("it had seen {r2}")));
        let unwiped = Knowledge {
            read_epoch: Some(0),
            ..Knowledge::default()
        };
        let blame = verdict(&mut p, &r1, node(2), &unwiped, |_, _| false);
        assert!(blame.unwrap().contains("not wiped"));
    }

    #[test]
    fn an_answer_stranded_in_a_stalled_process_allows_a_second_presentation() {
        let (mut p, r1, _) = rotated();
        let stalled = |n: Node, _| n == node(0);
        let blame = verdict(&mut p, &r1, node(1), &Knowledge::default(), stalled);
        assert!(blame.is_none(), "{blame:?}");
    }

    #[test]
    fn a_stalled_process_is_no_excuse_once_the_store_held_its_answer() {
        let (mut p, r1, r2) = rotated();
        p.refresh.get_mut(&r2).unwrap().stored = true;
        let stalled = |n: Node, _| n == node(0);
        let blame = verdict(&mut p, &r1, node(1), &Knowledge::default(), stalled);
        assert!(blame.is_some());
    }
}
