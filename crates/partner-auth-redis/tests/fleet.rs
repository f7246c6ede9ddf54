//! A fleet of real OS processes sharing one Redis store against the emulator: one upstream
//! fetch per expiry for the whole fleet, no refresh token presented twice, and the lock's
//! answers to a holder killed (SIGKILL) or stopped past its lease (SIGSTOP).
//!
//! The replicas are this test binary run again with `FLEET_REPLICA` set (the `replica` test
//! below does nothing otherwise).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aerion_auth::AerionBuilder;
use partner_auth_emulator::{Emulator, Endpoint, Fault, RunningEmulator};
use partner_auth_redis::RedisStore;
use partner_auth_redis::testing::{RedisCluster, RedisServer};
use token_provider::{Clock, SystemClock, TokenProvider, TokenStore};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

const USERNAME: &str = "fleet@acme.example";
const PASSWORD: &str = "fleet-password-8d1e";
/// A deadline long past: each of the replica's tasks calls once.
const ONE_CALL: SystemTime = UNIX_EPOCH;

/// One replica: `FLEET_TASKS` tasks calling `token()` every 10 ms until `FLEET_UNTIL_UNIX_MS`
/// (the fleet's one deadline, on the clock the cache reads; each task calls at least once), each
/// checking the token it got has not expired; prints `TOKEN <t>` for every distinct token and
/// `DONE <calls> <errors> <Redis round trips>` at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica() {
    let Ok(redis_url) = std::env::var("FLEET_REPLICA") else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap();
    let tasks: usize = var("FLEET_TASKS").parse().unwrap();
    let until = UNIX_EPOCH + Duration::from_millis(var("FLEET_UNTIL_UNIX_MS").parse().unwrap());
    let lease = Duration::from_millis(var("FLEET_LEASE_MS").parse().unwrap());
    let redis = RedisStore::builder(redis_url)
        .lease(lease)
        .lock_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let store: Arc<dyn TokenStore> = Arc::new(redis.clone());
    let provider = Arc::new(
        AerionBuilder::from_env()
            .unwrap()
            .store(store)
            .build()
            .unwrap(),
    );
    let seen = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let (calls, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (provider, seen, calls, errors) = (
            provider.clone(),
            seen.clone(),
            calls.clone(),
            errors.clone(),
        );
        handles.push(tokio::spawn(async move {
            loop {
                match provider.token().await {
                    Ok(token) if !token.is_expired(SystemClock.now()) => {
                        let text = token.secret().expose_secret().to_owned();
                        if seen.lock().unwrap().insert(text.clone()) {
                            println!("TOKEN {text}");
                        }
                    }
                    Ok(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        println!("EXPIRED");
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        println!("ERROR {e}");
                    }
                }
                calls.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
                // Checked just before a call, so no call starts after the deadline.
                if SystemClock.now() >= until {
                    break;
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    // Let the last lock release reach Redis before counting.
    partner_auth_redis::settle(Duration::from_secs(1)).await;
    println!(
        "DONE {} {} {}",
        calls.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        redis.round_trips()
    );
}

struct Replica {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Replica {
    fn start(
        redis_url: &str,
        emulator: &RunningEmulator,
        env: &[(&str, String)],
        tasks: usize,
        until: SystemTime,
        lease_ms: u64,
    ) -> Self {
        let until_ms = until.duration_since(UNIX_EPOCH).unwrap().as_millis();
        let own = [
            ("FLEET_REPLICA", redis_url.to_owned()),
            ("FLEET_TASKS", tasks.to_string()),
            ("FLEET_UNTIL_UNIX_MS", until_ms.to_string()),
            ("FLEET_LEASE_MS", lease_ms.to_string()),
        ];
        let mut cmd = common::replica_command(emulator, &own, env);
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    fn pid(&self) -> i32 {
        self.child.id().unwrap() as i32
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The distinct tokens it printed, its calls and errors.
    async fn finish(self) -> (BTreeSet<String>, u64, u64, Vec<String>) {
        let (tokens, calls, errors, _, notes) = self.finish_counted().await;
        (tokens, calls, errors, notes)
    }

    /// [`finish`](Self::finish), with the Redis round trips it made.
    async fn finish_counted(mut self) -> (BTreeSet<String>, u64, u64, u64, Vec<String>) {
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the replica ended")
            .unwrap();
        assert!(status.success(), "replica failed: {status}");
        let (mut tokens, mut calls, mut errors, mut trips, mut notes) =
            (BTreeSet::new(), 0, 0, 0, Vec::new());
        while let Some(line) = self.lines.recv().await {
            // The harness may print `test replica ... ` before the first line.
            let line = match ["TOKEN ", "DONE ", "ERROR ", "EXPIRED"]
                .iter()
                .find_map(|tag| line.find(tag))
            {
                Some(at) => line[at..].to_owned(),
                None => line,
            };
            if let Some(t) = line.strip_prefix("TOKEN ") {
                tokens.insert(t.to_owned());
            } else if let Some(rest) = line.strip_prefix("DONE ") {
                let mut parts = rest.split(' ').map(|n| n.parse::<u64>().unwrap());
                calls = parts.next().unwrap();
                errors = parts.next().unwrap();
                trips = parts.next().unwrap();
            } else if line.starts_with("ERROR") || line.starts_with("EXPIRED") {
                notes.push(line);
            }
        }
        (tokens, calls, errors, trips, notes)
    }
}

async fn emulator(lifetime: Duration) -> RunningEmulator {
    Emulator::builder()
        .aerion_user("acme.aerion.app", USERNAME, PASSWORD)
        .aerion_token_lifetime(lifetime)
        .aerion_rotate_refresh_tokens(true)
        .start()
        .await
        .unwrap()
}

/// Replicas x tasks from the environment (`FLEET_PROCESSES`, `FLEET_TASKS_EACH`), default 8 x 200.
fn fleet_size() -> (usize, usize) {
    let get = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    (get("FLEET_PROCESSES", 8), get("FLEET_TASKS_EACH", 200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_fetches_once_per_expiry_and_never_presents_a_refresh_token_twice() {
    if std::env::var("FLEET_REPLICA").is_ok() {
        return;
    }
    let redis = RedisServer::start();
    let (processes, tasks) = fleet_size();
    fleet_shares_one_token(&redis.url(), processes, tasks).await;
}

/// The same on a Redis Cluster of three masters: the fleet's one principal lives on one of
/// them, found by its hash tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_a_cluster_fetches_once_per_expiry() {
    if std::env::var("FLEET_REPLICA").is_ok() {
        return;
    }
    let cluster = RedisCluster::start();
    let (processes, tasks) = fleet_size();
    fleet_shares_one_token(&cluster.url(), processes.min(6), tasks.min(100)).await;
}

/// `processes` replicas of `tasks` tasks each share one refresh-token-only principal through
/// the store at `redis_url` for 9 s: one upstream fetch per expiry, no refresh token presented
/// twice, every fetched token served by the whole fleet.
async fn fleet_shares_one_token(redis_url: &str, processes: usize, tasks: usize) {
    #[allow(clippy::disallowed_methods)] // the wall time of real processes, for the report
    let started = std::time::Instant::now();
    // 3-second tokens, refreshed by the fleet about every 2 s (below).
    let emulator = emulator(Duration::from_secs(3)).await;
    // A refresh-token-only principal: every replica starts from the same refresh token, and
    // Aerion rotates it at every refresh.
    let seed = emulator.issue_refresh_token(USERNAME).unwrap();
    // One deadline for every replica, not 9 s from each one's own start: replicas that start
    // late would keep the fleet refreshing past the 9 s.
    let until = SystemClock.now() + Duration::from_secs(9);
    let replicas: Vec<_> = (0..processes)
        .map(|_| {
            Replica::start(
                redis_url,
                &emulator,
                &[("AERION_REFRESH_TOKEN", seed.clone())],
                tasks,
                until,
                5_000,
            )
        })
        .collect();
    let (mut per_replica, mut trips) = (Vec::new(), 0);
    for replica in replicas {
        let (tokens, calls, errors, made, notes) = replica.finish_counted().await;
        trips += made;
        assert_eq!(errors, 0, "a replica's caller got an error: {notes:?}");
        assert!(calls >= tasks as u64, "{calls}");
        per_replica.push(tokens);
    }
    let fetches = emulator.requests_for(Endpoint::AerionToken);
    let twice = emulator.aerion_refresh_tokens_presented_twice();
    assert!(
        twice.is_empty(),
        "refresh tokens presented twice: {}",
        twice.len()
    );
    for request in &fetches {
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.form_param("grant_type").as_deref(),
            Some("refresh_token")
        );
        assert_eq!(request.header("companyurl"), Some("acme.aerion.app"));
    }
    // Stored times are whole seconds: a replica that adopts a token fetched at t reads it as
    // obtained at floor(t) and expiring at floor(t) + 3 s, and refreshes it 0.6 to 0.9 s before
    // that (a fifth of the lifetime, plus up to a tenth), at floor(t) + 2.1 s at the earliest;
    // the replica that fetched it, later. So each fetch comes 2.1 s or more after the whole
    // second of the one before, and the fleet (the earliest of its replicas) refreshes about
    // every 2 s. The sixth fetch would come more than 9.1 s after the first, which came after
    // the deadline was set 9 s ahead: no replica calls then. 4 or 5 cycles (3 if the replicas
    // are slow to start), and one more is allowed for what this model leaves out; never one per
    // replica (8 replicas would make 8 a cycle).
    let cycles = fetches.len();
    assert!((3..=6).contains(&cycles), "{cycles} upstream fetches");
    // Each fetched token was served by the whole fleet: one fetch per cycle, shared.
    // (The last refresh may start in the soft window just before the replicas stop, and its
    // token be served to nobody.)
    let all: BTreeSet<_> = per_replica.iter().flatten().cloned().collect();
    assert!(
        all.len() == cycles || all.len() + 1 == cycles,
        "{} tokens served, {cycles} fetched",
        all.len()
    );
    for tokens in &per_replica {
        assert!(
            tokens.len() + 2 >= cycles,
            "a replica missed a cycle: {}",
            tokens.len()
        );
    }
    println!(
        "fleet on {}: {processes} processes x {tasks} tasks, {cycles} upstream fetches in 9 s \
         ({:.1} s in all), {:.2} Redis round trips per process per expiry",
        redis_url.split("://").next().unwrap_or(""),
        started.elapsed().as_secs_f64(),
        trips as f64 / (processes * cycles) as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_mid_fetch_is_taken_over_after_its_lease() {
    if std::env::var("FLEET_REPLICA").is_ok() {
        return;
    }
    let (redis, emulator, login) = one_slow_login(Duration::from_secs(30)).await;
    let holder = Replica::start(&redis.url(), &emulator, &login, 1, ONE_CALL, 1_000);
    wait_for_requests(&emulator, 1).await;
    holder.signal("KILL");
    let started = tokio::time::Instant::now();
    let next = Replica::start(&redis.url(), &emulator, &login, 1, ONE_CALL, 1_000);
    let (tokens, calls, errors, notes) = next.finish().await;
    assert_eq!(errors, 0, "{notes:?}");
    assert_eq!(tokens.len(), 1, "{calls} calls: {notes:?}");
    // It waited for the dead holder's lease (1 s), not for the 30 s fetch.
    assert!(started.elapsed() < Duration::from_secs(10));
    let fetches = emulator.requests_for(Endpoint::AerionToken);
    assert_eq!(
        fetches.len(),
        2,
        "one by the killed holder, one by its successor"
    );
    assert!(
        fetches
            .iter()
            .all(|r| r.form_param("grant_type").as_deref() == Some("password"))
    );
    assert!(emulator.aerion_refresh_tokens_presented_twice().is_empty());
    // The successor's rotated state is in the store for the next one.
    assert_eq!(stored_token(&redis).await, *tokens.first().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_stopped_past_its_lease_is_refused_its_save_and_adopts_the_newer_state() {
    if std::env::var("FLEET_REPLICA").is_ok() {
        return;
    }
    let (redis, emulator, login) = one_slow_login(Duration::from_millis(1_500)).await;
    let stalled = Replica::start(&redis.url(), &emulator, &login, 1, ONE_CALL, 1_000);
    wait_for_requests(&emulator, 1).await;
    stalled.signal("STOP");
    // Past its lease, another replica takes the lock, fetches and saves.
    let next = Replica::start(&redis.url(), &emulator, &login, 1, ONE_CALL, 1_000);
    let (newer, _, errors, notes) = next.finish().await;
    assert_eq!(errors, 0, "{notes:?}");
    // Resumed, the stalled holder gets its answer, is refused its save, and adopts.
    stalled.signal("CONT");
    let (adopted, _, errors, notes) = stalled.finish().await;
    assert_eq!(errors, 0, "{notes:?}");
    assert_eq!(
        adopted, newer,
        "the stalled holder served its own, fenced-out token"
    );
    assert_eq!(emulator.request_count(Endpoint::AerionToken), 2);
    assert_eq!(stored_token(&redis).await, *newer.first().unwrap());
}

/// The access token of the one entry the fleet's store holds.
async fn stored_token(redis: &RedisServer) -> String {
    let store = RedisStore::new(redis.url()).unwrap();
    let stored = store.entries().await.unwrap();
    assert_eq!(stored.len(), 1);
    let state = stored[0].1.as_ref().expect("a readable entry");
    state.access_token.secret().expose_secret().to_owned()
}

/// Redis, and an emulator whose first Aerion token request answers after `delay`; the
/// variables of a password login (a grant safe to repeat: the kill and stop cases spend no
/// refresh token in flight).
async fn one_slow_login(
    delay: Duration,
) -> (RedisServer, RunningEmulator, [(&'static str, String); 2]) {
    let redis = RedisServer::start();
    let emulator = emulator(Duration::from_secs(600)).await;
    emulator.inject(Endpoint::AerionToken, Fault::Delay(delay), 1);
    let login = [
        ("AERION_USERNAME", USERNAME.to_owned()),
        ("AERION_PASSWORD", PASSWORD.to_owned()),
    ];
    (redis, emulator, login)
}

async fn wait_for_requests(emulator: &RunningEmulator, n: usize) {
    for _ in 0..1000 {
        if emulator.request_count(Endpoint::AerionToken) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no request reached the emulator");
}
