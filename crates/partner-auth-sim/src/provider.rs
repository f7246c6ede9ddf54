//! Each replica's [`Fetch`] on the model provider (its rules and records are
//! `provider::server`'s), and the faults of a fetch.
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

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use token_provider::{Error, Fetch, StoreKey, TokenState};

use crate::config::Fault;
use crate::node::Node;
use crate::promise::Promise;
use crate::world::{World, lock};

pub(crate) mod server;

use self::server::{Answer, Delivery};

/// What a panicking fetch panics with: the sim's panic hook keeps such panics quiet.
pub(crate) const PANIC_MARKER: &str = "partner-auth-sim: injected panic";

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
                None => (provider.password_grant(self.principal, wall), None),
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
