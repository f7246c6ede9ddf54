//! What the checks remember between events: the violations so far, the forgets under way,
//! the tokens callers reported refused, what each process has learned of the refresh tokens,
//! and the last token served on each replica. Only the [`checker`](super)'s hooks, and the
//! world when it records a violation, change it.

use std::collections::BTreeMap;
use std::time::Duration;

use token_provider::{AccessToken, TokenState};

use crate::node::Node;
use crate::promise::Violation;
use crate::provider::server::{Delivery, Knowledge};

/// A `forget` under way or done.
pub(super) struct Forget {
    pub(super) node: Node,
    pub(super) principal: usize,
    pub(super) task: Option<tokio::task::Id>,
    /// Its removal was applied.
    pub(super) removed: bool,
    pub(super) returned: Option<Returned>,
    /// Writes by the same replica between the removal and the return.
    pub(super) early_writes: Vec<Duration>,
}

/// How a `forget` returned.
pub(super) struct Returned {
    pub(super) seq: u64,
    pub(super) at: Duration,
    /// Every task spawned before the forget returned has a smaller id.
    pub(super) marker: tokio::task::Id,
    pub(super) ok: bool,
}

/// What the checks remember between events.
#[derive(Default)]
pub(crate) struct Checker {
    /// The violation that ends the run, if one happened.
    pub(crate) violation: Option<Violation>,
    /// Every violation so far.
    pub(crate) violations: Vec<Violation>,
    pub(super) forgets: Vec<Forget>,
    /// The last token a caller of a replica reported refused, and when.
    pub(super) reported: BTreeMap<(Node, usize), (String, u64)>,
    /// The state a replica keeps for its next fetch after its token was invalidated (the
    /// cache does not show it; the sim mirrors it).
    pub(super) retired: BTreeMap<(Node, usize), TokenState>,
    /// When a replica's fetch last panicked.
    pub(super) panics: BTreeMap<(Node, usize), Duration>,
    /// What each life of a replica has learned of each principal's refresh tokens.
    pub(super) knowledge: BTreeMap<(Node, usize), Knowledge>,
    /// The last token served to a caller of each replica and principal.
    pub(super) last_served: BTreeMap<(Node, usize), AccessToken>,
}

impl Checker {
    /// Whether a `forget` of `principal` makes a token delivered by `delivery` not required: one
    /// under way, one that returned after the delivery, or one on the delivering replica that
    /// returned before the fetch it reached ended (that fetch is detached: its result is dropped).
    pub(super) fn forgotten(&self, principal: usize, delivery: &Delivery) -> bool {
        self.forgets.iter().any(|f| {
            f.principal == principal
                && match &f.returned {
                    None => true,
                    Some(r) => {
                        r.seq >= delivery.seq
                            || (delivery.node == Some(f.node)
                                && delivery.task.is_some_and(|t| t < r.marker))
                    }
                }
        })
    }
}
