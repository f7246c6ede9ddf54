//! The cache's promises at the edges of its races: `forget` while a fetch is out, a `get()`
//! future awaited after its token expired, hits racing `invalidate`, the hit counter across
//! short-lived threads (`invalidate` against a fenced store save is in `store_fence.rs`). Each
//! test states the promise it checks.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use token_provider::testing::{Scripted, epoch as t0, state_at};
use token_provider::{
    AccessToken, CacheConfig, CachedTokenProvider, Clock, Error, ManualClock, Secret,
    TokenProvider, TokenState, async_trait,
};
use tokio::sync::{Notify, Semaphore};

const HOUR: Duration = Duration::from_secs(3600);

fn secret(token: &AccessToken) -> &str {
    token.secret().expose_secret()
}

/// What the second fetch answers.
#[derive(Debug, Clone, Copy)]
enum Second {
    /// A valid token `a-2` with refresh token `r-2`.
    Valid,
    /// An already expired token with a rotated refresh token `r-2` (kept by
    /// `keep_refresh_token`).
    Expired,
}

/// The fetcher of [`provider`]: fetch n hands out `a-n` with refresh token `r-n` (an hour
/// long); the second fetch signals `started` and waits for a permit on `gate`. Its record holds
/// the refresh token each fetch was given.
struct Gated {
    fetcher: Scripted,
    started: Arc<Notify>,
    gate: Arc<Semaphore>,
}

impl Gated {
    fn seen(&self) -> Vec<Option<String>> {
        self.fetcher.presented()
    }
}

fn provider(clock: &ManualClock, second: Second) -> (Arc<CachedTokenProvider<Scripted>>, Gated) {
    let (started, gate) = (Arc::new(Notify::new()), Arc::new(Semaphore::new(0)));
    let issuing = clock.clone();
    let (signal, wait) = (Arc::clone(&started), Arc::clone(&gate));
    let fetcher = Scripted::new(move |call| {
        let n = call.n + 1;
        let now = issuing.now();
        let refresh = format!("r-{n}");
        let state = match second {
            Second::Expired if n == 2 => TokenState::new(
                AccessToken::builder(format!("a-{n}"))
                    .expires_at(now - Duration::from_secs(1))
                    .build(),
            )
            .with_refresh_token(Some(Secret::from(refresh))),
            _ => state_at(format!("a-{n}"), Some(&refresh), now, Some(HOUR)),
        };
        Ok(state.with_obtained_at(now))
    })
    .pause(move |call| {
        let (signal, wait) = (Arc::clone(&signal), Arc::clone(&wait));
        (call.n == 1).then(|| {
            Box::pin(async move {
                signal.notify_one();
                wait.acquire().await.unwrap().forget();
            }) as _
        })
    });
    let provider = CachedTokenProvider::with_config(
        fetcher.clone(),
        CacheConfig::new()
            .clock(Arc::new(clock.clone()))
            .backoff(Duration::from_secs(1), Duration::from_secs(1)),
    );
    let gated = Gated {
        fetcher,
        started,
        gate,
    };
    (Arc::new(provider), gated)
}

/// A caller asking `p` for its token, in a task of its own.
fn spawn_token(
    p: &Arc<CachedTokenProvider<Scripted>>,
) -> tokio::task::JoinHandle<Result<AccessToken, Error>> {
    let p = Arc::clone(p);
    tokio::spawn(async move { p.token().await })
}

/// A provider (see [`provider`]) that served `a-1`; then, two hours on, a caller whose refresh
/// is out and held at the gate.
struct RefreshOut {
    clock: ManualClock,
    p: Arc<CachedTokenProvider<Scripted>>,
    gated: Gated,
    before: tokio::task::JoinHandle<Result<AccessToken, Error>>,
}

async fn refresh_out(second: Second) -> RefreshOut {
    let clock = ManualClock::new(t0());
    let (p, gated) = provider(&clock, second);
    assert_eq!(secret(&p.token().await.unwrap()), "a-1");
    clock.advance(2 * HOUR);
    let before = spawn_token(&p);
    gated.started.notified().await;
    RefreshOut {
        clock,
        p,
        gated,
        before,
    }
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// `forget` promises "the next call fetches from scratch", and no caller gets a token after
/// `forget()` returned. But `forget_state` leaves the fetch in flight (`control.inflight`) in
/// place: a call made after `forget` returned joins the fetch that began before it, with the
/// forgotten refresh token, and is handed its token.
#[tokio::test(flavor = "current_thread")]
async fn a_call_after_forget_is_not_handed_a_fetch_of_the_forgotten_state() {
    // Expired: the next call refreshes with `r-1`, and the request is out.
    let RefreshOut {
        p, gated, before, ..
    } = refresh_out(Second::Valid).await;
    assert_eq!(gated.seen(), [None, Some("r-1".to_owned())]);

    // The user logs out: forget returns.
    assert!(!p.forget().await.unwrap());
    assert!(p.cached().is_none());

    // A call made after forget returned.
    let after = spawn_token(&p);
    settle().await;
    gated.gate.add_permits(1);
    let _ = before.await.unwrap();
    let after = after.await.unwrap().unwrap();
    assert_ne!(
        secret(&after),
        "a-2",
        "a call made after forget() returned was handed the token refreshed with the forgotten \
         refresh token (fetches seen: {:?})",
        gated.seen()
    );
}

/// `forget` promises to drop "any state kept for the next fetch" so "the next call fetches from
/// scratch". A fetch in flight across `forget` whose token arrives unusable (here already
/// expired) goes through `keep_refresh_token`, which checks no epoch: with `current` empty it
/// stores the fetched state as `retired`, and the next fetch after `forget` refreshes with the
/// forgotten principal's rotated refresh token.
#[tokio::test(flavor = "current_thread")]
async fn keep_refresh_token_does_not_revive_a_forgotten_refresh_token() {
    let RefreshOut {
        clock,
        p,
        gated,
        before,
    } = refresh_out(Second::Expired).await;
    assert!(!p.forget().await.unwrap());
    gated.gate.add_permits(1);
    assert!(
        before.await.unwrap().is_err(),
        "the fetched token had expired"
    );

    // Past the backoff: the next call fetches, and must start from scratch.
    clock.advance(Duration::from_secs(5));
    assert_eq!(secret(&p.token().await.unwrap()), "a-3");
    assert_eq!(
        gated.seen()[2],
        None,
        "the first fetch after forget() was given the forgotten principal's refresh token \
         (fetches seen: {:?})",
        gated.seen()
    );
}

/// `get` decides at its first poll, as the async `token()` does: a future made while the token
/// was fresh and awaited after the token expired fetches, rather than answering the expired
/// token; and nothing is counted before it is polled. Checked on the provider itself and through
/// `Arc<dyn TokenProvider>` (which answers through `fresh` and `token`, not the inner `get`).
#[tokio::test(flavor = "current_thread")]
async fn a_get_future_awaited_after_expiry_does_not_answer_the_expired_token() {
    for through_trait_object in [false, true] {
        let clock = ManualClock::new(t0());
        let (p, gated) = provider(&clock, Second::Valid);
        let dynamic: Arc<dyn TokenProvider> = p.clone();
        assert_eq!(secret(&p.token().await.unwrap()), "a-1");
        let hits = p.stats().hits;
        let future = if through_trait_object {
            dynamic.get()
        } else {
            TokenProvider::get(&*p)
        };
        assert_eq!(p.stats().hits, hits, "counted before it was polled");
        clock.advance(2 * HOUR);
        gated.gate.add_permits(1);
        let token = future.await.unwrap();
        assert_eq!(secret(&token), "a-2", "the future fetched");
        let now = clock.now();
        assert!(
            token.expires_at().is_none_or(|hard| now < hard),
            "answered a token that expired an hour before the future was polled \
             (through the trait object: {through_trait_object})"
        );
    }
}

/// A provider of the caller's own that answers `fresh` (and does not touch `get`) gets the same
/// promise from the provided `get`: what `fresh` says at the first poll, not at the call.
#[tokio::test(flavor = "current_thread")]
async fn a_providers_own_fresh_is_asked_at_the_first_poll_not_at_the_call() {
    #[derive(Debug, Default)]
    struct Own {
        fresh: Mutex<Option<&'static str>>,
        asked: AtomicU32,
    }

    #[async_trait]
    impl TokenProvider for Own {
        async fn token(&self) -> Result<AccessToken, Error> {
            Ok(AccessToken::new("waited"))
        }

        fn fresh(&self) -> Option<AccessToken> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            self.fresh.lock().unwrap().map(AccessToken::new)
        }
    }

    let own = Arc::new(Own::default());
    *own.fresh.lock().unwrap() = Some("was-fresh");
    let dynamic: Arc<dyn TokenProvider> = own.clone();
    let future = dynamic.get();
    let direct = own.get();
    assert_eq!(own.asked.load(Ordering::SeqCst), 0, "asked at the call");
    *own.fresh.lock().unwrap() = None;
    assert_eq!(secret(&future.await.unwrap()), "waited");
    assert_eq!(secret(&direct.await.unwrap()), "waited");
    *own.fresh.lock().unwrap() = Some("fresh-now");
    assert_eq!(secret(&dynamic.get().await.unwrap()), "fresh-now");
}

/// Fetch n (from 1) hands out `s-n`, an hour long on `clock`, at once.
/// A cache on its own manual clock over [`instant`].
fn instant_cache() -> Arc<CachedTokenProvider<Scripted>> {
    let clock = ManualClock::new(t0());
    let config = CacheConfig::new().clock(Arc::new(clock.clone()));
    Arc::new(CachedTokenProvider::with_config(instant(&clock), config))
}

fn instant(clock: &ManualClock) -> Scripted {
    let clock = clock.clone();
    Scripted::new(move |call| {
        let n = call.n + 1;
        Ok(state_at(format!("s-{n}"), None, clock.now(), Some(HOUR)))
    })
}

/// Stress (passes: evidence for the hit path). Workers on four threads hit one cache through
/// `get` and `fresh` (thread copies, made again after each replacement), and now and then reject
/// the token they got: invalidate it, then record it. A worker notes how many tokens were recorded
/// before each call; each of those was invalidated before the call began, and the call must not
/// answer it. (Fails at once if `set_current` leaves the generation alone on `None`.)
#[test]
fn stress_no_hit_answers_a_token_invalidated_before_the_call() {
    let p = instant_cache();
    no_hit_answers_a_token_invalidated_before_the_call(Arc::clone(&p) as _);
    assert!(
        p.stats().fetches > 10,
        "tokens were replaced: {:?}",
        p.stats()
    );
}

/// The same through a keyed cache's principal, whose hits read the token the slot publishes
/// beside its entry (no thread copies).
#[test]
fn stress_no_keyed_hit_answers_a_token_invalidated_before_the_call() {
    let clock = ManualClock::new(t0());
    let keyed = token_provider::KeyedCache::new(
        instant(&clock),
        CacheConfig::new().clock(Arc::new(clock)),
        token_provider::KeyedConfig::new(),
    );
    let p = keyed.get_or_insert_with("tenant", |k| k);
    no_hit_answers_a_token_invalidated_before_the_call(Arc::new(p.clone()));
    assert!(
        p.stats().fetches > 10,
        "tokens were replaced: {:?}",
        p.stats()
    );
}

fn no_hit_answers_a_token_invalidated_before_the_call(p: Arc<dyn TokenProvider>) {
    const ITERATIONS: u32 = 5_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    // The invalidated tokens, each with its place in the order they were recorded.
    let rejected: Arc<Mutex<std::collections::HashMap<String, usize>>> = Arc::default();
    runtime.block_on(async {
        let workers: Vec<_> = (0..8u32)
            .map(|w| {
                let p = Arc::clone(&p);
                let rejected = Arc::clone(&rejected);
                tokio::spawn(async move {
                    for i in 1..=ITERATIONS {
                        let recorded = rejected.lock().unwrap().len();
                        let token = if i.is_multiple_of(2) {
                            match p.fresh() {
                                Some(t) => t,
                                None => p.token().await.unwrap(),
                            }
                        } else {
                            p.get().await.unwrap()
                        };
                        let s = secret(&token).to_owned();
                        let invalidated_before = rejected
                            .lock()
                            .unwrap()
                            .get(&s)
                            .is_some_and(|&at| at < recorded);
                        assert!(!invalidated_before, "{s} answered after it was invalidated");
                        if (i + w).is_multiple_of(97) {
                            p.invalidate(&token);
                            let mut rejected = rejected.lock().unwrap();
                            let at = rejected.len();
                            rejected.entry(s).or_insert(at);
                        }
                        if i.is_multiple_of(64) {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
    });
}

/// Stress (passes): threads come and go (stripes handed back and leased again), more at once than
/// there are stripes; every `fresh` hit is counted exactly once.
#[test]
fn stress_the_hit_counter_is_exact_across_thread_churn() {
    let p = instant_cache();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(p.token()).unwrap();
    let base = p.stats().hits;
    let mut answered = 0u64;
    for _ in 0..8 {
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let p = Arc::clone(&p);
                std::thread::spawn(move || (0..2_000).filter(|_| p.fresh().is_some()).count())
            })
            .collect();
        answered += threads
            .into_iter()
            .map(|t| t.join().unwrap() as u64)
            .sum::<u64>();
    }
    assert_eq!(answered, 8 * 12 * 2_000);
    assert_eq!(p.stats().hits - base, answered);
}

/// Passes: the future `get` returns can be held across an `.await` in a spawned task (`Send`) and
/// polled without pinning (`Unpin`), for a cached provider and through `Arc<dyn TokenProvider>`.
#[test]
fn token_future_is_send_and_unpin() {
    fn check<T: Send + Unpin>(_: &T) {}
    let clock = ManualClock::new(t0());
    let (p, _gated) = provider(&clock, Second::Valid);
    check(&p.get());
    let dynamic: Arc<dyn TokenProvider> = p;
    check(&dynamic.get());
}
