//! The nemesis: real OS processes sharing a real `redis-server`, a fault at the worst moment of
//! a refresh, and a checker that reads the provider's own record of refresh tokens.
//!
//! The provider is the emulator's Aerion with rotating refresh tokens, and the principal has
//! only a refresh token (SSO), so every fetch presents one. Each case starts from a store that
//! holds the first rotation (this process spent the configured refresh token once), so its
//! replicas read their refresh token from the store. The replicas are this test binary run
//! again with `NEMESIS_REPLICA` set, driven line by line on stdin: `token`; `refresh` (a token,
//! then a 401 on it, then a token: a fetch that presents the stored refresh token); `exit`
//! (code 0 with the last answer a token and its state saved, 5 with it unsaved, 3 after a
//! `UserAction`, 1 after another error).
//!
//! [`check`] reads the emulator's record after each case:
//! - a refresh token is presented at most once; twice only where the case names why (its first
//!   answer was lost with a killed holder, or the store forgot everything), the second time
//!   refused, and never again after that refusal;
//! - the newest refresh token is in the store, unless the case killed the holder it went to;
//! - every token printed by a replica that exited 0 is still accepted by the provider.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use aerion_auth::{Aerion, AerionBuilder};
use partner_auth_emulator::{AerionRefresh, Emulator, Endpoint, Fault, RunningEmulator};
use partner_auth_redis::RedisStore;
use partner_auth_redis::testing::RedisServer;
use token_provider::http::Request;
use token_provider::{
    CacheConfig, Error, HttpClient, Secret, StoreKey, StoreRecord, TokenProvider, TokenStore,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::time::Instant;

const USERNAME: &str = "nemesis@acme.example";
const PASSWORD: &str = "nemesis-password-3c9a";
const TENANT: &str = "acme.aerion.app";
/// Every replica's lease: a stopped or killed holder's lock lapses within a second.
const LEASE: Duration = Duration::from_secs(1);
/// A fetch deadline no case reaches, for replicas that only wait.
const PATIENT: Duration = Duration::from_secs(20);
/// The longest any one step of a case is waited for.
const STEP: Duration = Duration::from_secs(30);
/// What a replica logs while another holder's presentation is awaited.
const WAITING: &str = "waiting for another holder's refresh to be saved";

/// One replica: reads commands from stdin, answers each on stdout, and copies its log there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica() {
    let Ok(redis_url) = std::env::var("NEMESIS_REPLICA") else {
        return;
    };
    let logs = token_provider::testing::capture_logs();
    let (stop_logs, stopped) = tokio::sync::watch::channel(false);
    let forward = tokio::spawn(forward_logs(logs, stopped));
    let ms = |name: &str| Duration::from_millis(std::env::var(name).unwrap().parse().unwrap());
    let mut redis = RedisStore::builder(redis_url)
        .lease(LEASE)
        .lock_timeout(Duration::from_secs(20));
    if let Ok(replicas) = std::env::var("NEMESIS_WAIT_REPLICAS") {
        redis = redis.wait_for_replicas(replicas.parse().unwrap(), Duration::from_secs(2));
    }
    let store: Arc<dyn TokenStore> = Arc::new(redis.build().unwrap());
    // A short backoff: a case that restarts Redis asks again as soon as it is back.
    let cache = CacheConfig::new()
        .fetch_timeout(ms("NEMESIS_FETCH_TIMEOUT_MS"))
        .backoff(Duration::from_millis(100), Duration::from_secs(1));
    let provider = AerionBuilder::from_env()
        .unwrap()
        .cache_config(cache)
        .store(store)
        .build()
        .unwrap();
    say("READY");
    let mut code = 0;
    // Read on a thread of its own (the workspace's tokio has no `io-std`).
    let (tx, mut commands) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(command) = commands.recv().await {
        let answer = match command.as_str() {
            "token" => provider.token().await,
            "refresh" => match provider.token().await {
                Ok(had) => {
                    say(&format!("HAD {}", had.secret().expose_secret()));
                    provider.invalidate(&had);
                    provider.token().await
                }
                Err(e) => Err(e),
            },
            "exit" => break,
            other => panic!("unknown command {other}"),
        };
        code = match &answer {
            Ok(_) => 0,
            Err(Error::UserAction { .. }) => 3,
            Err(_) => 1,
        };
        match answer {
            Ok(token) => say(&format!("TOKEN {}", token.secret().expose_secret())),
            Err(e) => say(&format!("ERROR {} {e}", kind(&e))),
        }
    }
    partner_auth_redis::settle(Duration::from_secs(1)).await;
    if code == 0 && provider.store_error().is_some() {
        code = 5;
    }
    let _ = stop_logs.send(true);
    let _ = forward.await;
    std::io::stdout().flush().unwrap();
    std::process::exit(code);
}

/// One line for the test, marked so that the harness's own output is never taken for one.
fn say(line: &str) {
    println!("@@ {line}");
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::UserAction { .. } => "user_action",
        Error::StoreUnavailable { .. } => "store_unavailable",
        Error::Timeout(_) => "timeout",
        _ => "other",
    }
}

/// Prints each new log line as `LOG <line>` every 20 ms, and the rest when told to stop.
async fn forward_logs(
    logs: token_provider::testing::LogCapture,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut printed = 0;
    loop {
        let stopping = *stop.borrow();
        let contents = logs.contents();
        for line in contents[printed..].lines() {
            say(&format!("LOG {line}"));
        }
        printed = contents.len();
        if stopping {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// A replica as the test sees it.
struct Replica {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    transcript: Vec<String>,
    /// Every access token it printed (`HAD` and `TOKEN`).
    printed: Vec<String>,
}

/// How a replica ended: its exit code (`None`: killed), what it printed, and its transcript.
struct Outcome {
    name: &'static str,
    code: Option<i32>,
    printed: Vec<String>,
    transcript: Vec<String>,
}

impl Replica {
    fn start(
        name: &'static str,
        redis_url: &str,
        emulator: &RunningEmulator,
        env: &[(&str, String)],
    ) -> Self {
        let own = [("NEMESIS_REPLICA", redis_url.to_owned())];
        let mut cmd = common::replica_command(emulator, &own, env);
        cmd.stdin(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Some(at) = line.find("@@ ")
                    && tx.send(line[at + 3..].to_owned()).is_err()
                {
                    break;
                }
            }
        });
        Self {
            name,
            child,
            stdin,
            lines,
            transcript: Vec::new(),
            printed: Vec::new(),
        }
    }

    /// The next line `wanted` picks out (log lines included), within [`STEP`].
    async fn until(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) => panic!("{} ended before {what}:\n{}", self.name, self.dump()),
                Err(_) => panic!("{} never got to {what}:\n{}", self.name, self.dump()),
            };
            self.note(&line);
            if wanted(&line) {
                return line;
            }
        }
    }

    async fn ready(mut self) -> Self {
        self.until("READY", |l| l == "READY").await;
        self
    }

    async fn send(&mut self, command: &str) {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The answer to the command sent last: the token, or the error line.
    async fn answer(&mut self) -> Result<String, String> {
        let line = self
            .until("an answer", |l| {
                l.starts_with("TOKEN ") || l.starts_with("ERROR ")
            })
            .await;
        match line.strip_prefix("TOKEN ") {
            Some(token) => Ok(token.to_owned()),
            None => Err(line),
        }
    }

    async fn run(&mut self, command: &str) -> Result<String, String> {
        self.send(command).await;
        self.answer().await
    }

    /// Waits for a log line holding `needle`.
    async fn logged(&mut self, needle: &str) {
        self.until(needle, |l| l.starts_with("LOG ") && l.contains(needle))
            .await;
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("a running replica").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    async fn exit(mut self) -> Outcome {
        self.send("exit").await;
        self.finish().await
    }

    async fn kill(self) -> Outcome {
        self.signal("KILL");
        self.finish().await
    }

    async fn finish(mut self) -> Outcome {
        let status = tokio::time::timeout(STEP, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not end:\n{}", self.name, self.dump()))
            .unwrap();
        while let Some(line) = self.lines.recv().await {
            self.note(&line);
        }
        Outcome {
            name: self.name,
            code: status.code(),
            printed: self.printed,
            transcript: self.transcript,
        }
    }

    /// Keeps `line` in the transcript, and the access token it prints, if any.
    fn note(&mut self, line: &str) {
        self.transcript.push(line.to_owned());
        if let Some(token) = line
            .strip_prefix("HAD ")
            .or_else(|| line.strip_prefix("TOKEN "))
        {
            self.printed.push(token.to_owned());
        }
    }

    fn dump(&self) -> String {
        transcript(self.name, &self.transcript)
    }
}

fn transcript(name: &str, lines: &[String]) -> String {
    let mut out = format!("--- {name}\n");
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// One case's world: Redis, the provider, and the principal's key in the store.
struct Case {
    redis: RedisServer,
    emulator: RunningEmulator,
    /// The configured refresh token (`AERION_REFRESH_TOKEN`), spent by [`Case::start`].
    seed: String,
    key: StoreKey,
    lock_key: String,
}

impl Case {
    /// Redis and the provider, with the first rotation stored: one fetch in this process
    /// spent the configured refresh token and saved its successor.
    async fn start() -> Self {
        Self::start_on(RedisServer::start()).await
    }

    async fn start_on(redis: RedisServer) -> Self {
        let case = Self::cold_on(redis).await;
        let provider = case.provider(Some(&case.redis.url()));
        provider.token().await.unwrap();
        partner_auth_redis::settle(Duration::from_secs(1)).await;
        assert_eq!(case.stored(&case.redis.url()).await, case.newest());
        case
    }

    /// Redis and the provider, nothing stored: the configured refresh token is still unspent.
    async fn cold_on(redis: RedisServer) -> Self {
        let emulator = Emulator::builder()
            .aerion_user(TENANT, USERNAME, PASSWORD)
            .aerion_token_lifetime(Duration::from_secs(600))
            .aerion_rotate_refresh_tokens(true)
            .start()
            .await
            .unwrap();
        let seed = emulator.issue_refresh_token(USERNAME).unwrap();
        let mut case = Self {
            redis,
            emulator,
            seed,
            key: StoreKey::from_stored(""),
            lock_key: String::new(),
        };
        case.key = case.provider(None).store_key();
        case.lock_key = RedisStore::new(case.redis.url())
            .unwrap()
            .lock_key(&case.key);
        case
    }

    /// The principal as every replica configures it, with a store on `redis_url`.
    fn provider(&self, redis_url: Option<&str>) -> Aerion {
        let mut builder = Aerion::builder()
            .base_url(self.emulator.aerion_base())
            .company_url(self.emulator.aerion_tenant())
            .refresh_token(self.seed.clone());
        if let Some(url) = redis_url {
            builder = builder.store(Arc::new(RedisStore::new(url).unwrap()));
        }
        builder.build().unwrap()
    }

    /// A replica on this case's Redis whose fetches are abandoned after `fetch_timeout` (also
    /// the deadline its presentations are recorded with).
    async fn replica(&self, name: &'static str, fetch_timeout: Duration) -> Replica {
        self.replica_on(name, &self.redis.url(), fetch_timeout, &[])
            .await
    }

    async fn replica_on(
        &self,
        name: &'static str,
        redis_url: &str,
        fetch_timeout: Duration,
        env: &[(&str, String)],
    ) -> Replica {
        let mut vars = vec![
            ("AERION_REFRESH_TOKEN", self.seed.clone()),
            (
                "NEMESIS_FETCH_TIMEOUT_MS",
                fetch_timeout.as_millis().to_string(),
            ),
        ];
        vars.extend(env.iter().cloned());
        Replica::start(name, redis_url, &self.emulator, &vars)
            .ready()
            .await
    }

    /// The refresh token the provider accepts now.
    fn newest(&self) -> String {
        self.emulator.current_refresh_token(USERNAME).unwrap()
    }

    /// The refresh token of the stored state.
    async fn stored(&self, redis_url: &str) -> String {
        let record = self.record(redis_url).await.expect("a stored record");
        let refresh_token = record.state.refresh_token.expect("a stored refresh token");
        refresh_token.expose_secret().to_owned()
    }

    async fn record(&self, redis_url: &str) -> Option<StoreRecord> {
        let store = RedisStore::new(redis_url).unwrap();
        store.load_record(&self.key).await.unwrap()
    }

    /// The value of the principal's lock key, if it is held.
    fn lock_holder(&self) -> Option<String> {
        let value = self.redis.cli(&["GET", &self.lock_key]);
        Some(value.trim().to_owned()).filter(|v| !v.is_empty())
    }

    async fn wait_until(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + STEP;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until the provider has received `n` token requests in all.
    async fn wait_for_requests(&self, n: usize) {
        self.wait_until(&format!("{n} token requests arrived"), || {
            self.emulator.request_count(Endpoint::AerionToken) >= n
        })
        .await;
    }

    /// Waits until the provider has rotated `refresh_token` away.
    async fn wait_rotated(&self, refresh_token: &str) {
        self.wait_until("the provider rotated the refresh token", || {
            self.newest() != refresh_token
        })
        .await;
    }
}

/// A refresh token the checker lets be presented twice, and why.
enum Twice {
    /// Its first answer was lost with the holder killed after the provider rotated it: the one
    /// window no client can close. The next holder presents it once more after the recorded
    /// deadline, and the provider refuses it.
    AnswerLost(String),
    /// The store forgot everything (a restart without persistence), and a process holding
    /// nothing newer than the configured refresh token presented it again.
    StoreForgot(String),
}

/// Where the newest refresh token must be at the end.
enum Newest {
    Stored,
    /// Lost with the killed holder it was issued to: no live process received it.
    LostWithTheKilledHolder,
}

async fn check(
    case: &Case,
    redis_url: &str,
    outcomes: &[Outcome],
    twice: Option<Twice>,
    newest: Newest,
) {
    let refreshes = case.emulator.aerion_refreshes();
    let context = describe(&refreshes, outcomes);
    let printed = |token: &str| {
        outcomes
            .iter()
            .any(|o| o.printed.iter().any(|p| p == token))
    };
    let allowed = match &twice {
        Some(Twice::AnswerLost(t) | Twice::StoreForgot(t)) => Some(t.as_str()),
        None => None,
    };
    let mut presented: BTreeMap<&str, Vec<&AerionRefresh>> = BTreeMap::new();
    for refresh in &refreshes {
        presented
            .entry(refresh.presented.as_str())
            .or_default()
            .push(refresh);
    }
    for (token, times) in &presented {
        match times.as_slice() {
            [once] => assert!(
                once.accepted(),
                "a refresh token refused at its first presentation\n{context}"
            ),
            [first, second] => {
                assert_eq!(
                    Some(*token),
                    allowed,
                    "a refresh token presented twice\n{context}"
                );
                assert!(
                    first.accepted() && !second.accepted(),
                    "presented twice, and not accepted then refused\n{context}"
                );
                if let Some(Twice::AnswerLost(_)) = &twice {
                    let lost = first.access_token.as_deref().unwrap();
                    assert!(!printed(lost), "the lost answer was served\n{context}");
                }
            }
            more => panic!("a refresh token presented {} times\n{context}", more.len()),
        }
    }
    if let Some(token) = allowed {
        assert_eq!(
            presented.get(token).map(Vec::len),
            Some(2),
            "the case did not reach its window\n{context}"
        );
    }
    let newest_token = case.newest();
    let issued = refreshes
        .iter()
        .find(|r| r.refresh_token.as_deref() == Some(newest_token.as_str()))
        .expect("the newest refresh token came from a refresh");
    let record = case.record(redis_url).await.expect("a stored record");
    let stored = record
        .state
        .refresh_token
        .as_ref()
        .map(|r| r.expose_secret().to_owned());
    match newest {
        Newest::Stored => {
            assert_eq!(
                stored.as_deref(),
                Some(newest_token.as_str()),
                "the newest refresh token is not in the store\n{context}"
            );
            assert_eq!(
                Some(record.state.access_token.secret().expose_secret()),
                issued.access_token.as_deref(),
                "the stored state is not the answer that issued the newest refresh token\n{context}"
            );
        }
        Newest::LostWithTheKilledHolder => {
            assert_ne!(stored.as_deref(), Some(newest_token.as_str()));
            let Some(Twice::AnswerLost(lost)) = &twice else {
                panic!("only a killed holder's answer may be lost");
            };
            assert_eq!(issued.presented, *lost, "{context}");
            assert!(
                !printed(issued.access_token.as_deref().unwrap()),
                "a live process received the lost answer\n{context}"
            );
        }
    }
    let client = HttpClient::new().unwrap();
    for outcome in outcomes.iter().filter(|o| o.code == Some(0)) {
        assert!(
            !outcome.printed.is_empty(),
            "{} exited 0 without a token\n{context}",
            outcome.name
        );
        for token in &outcome.printed {
            let url = url::Url::parse(&format!("{}/v1/users/me", case.emulator.aerion_base()));
            let request = Request::get(url.unwrap())
                .bearer(&Secret::new(token.as_str()))
                .unwrap();
            let status = client.execute(request).await.unwrap().status();
            assert_eq!(
                status, 200,
                "{} printed a token the provider refuses\n{context}",
                outcome.name
            );
        }
    }
}

/// The provider's record and every replica's transcript, for a failed check.
fn describe(refreshes: &[AerionRefresh], outcomes: &[Outcome]) -> String {
    let short = |t: &str| t.chars().take(8).collect::<String>();
    let mut out = String::from("the provider's refresh grants, in order:\n");
    for r in refreshes {
        out.push_str(&format!(
            "  {} -> {}\n",
            short(&r.presented),
            match (&r.access_token, &r.refresh_token) {
                (Some(a), Some(n)) => format!("access {}, refresh {}", short(a), short(n)),
                _ => "refused".to_owned(),
            }
        ));
    }
    for o in outcomes {
        out.push_str(&format!("{} exited {:?}\n", o.name, o.code));
        out.push_str(&transcript(o.name, &o.transcript));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_killed_after_the_provider_rotated_loses_the_answer_and_nothing_more() {
    let case = Case::start().await;
    let spent = case.newest();
    // The provider rotates at once and holds its answer until the holder is dead.
    case.emulator.inject(
        Endpoint::AerionToken,
        Fault::DelayAfter(Duration::from_secs(60)),
        1,
    );
    let mut holder = case.replica("holder", Duration::from_secs(2)).await;
    holder.send("refresh").await;
    case.wait_rotated(&spent).await;
    let rotated_at = Instant::now();
    let holder = holder.kill().await;
    // The next holder finds the presentation recorded with a 2 s deadline: it waits for that
    // answer past the deadline, then presents the refresh token once more, and is refused.
    // (Its access token is still good: a cold replica would adopt it. Each one here has just
    // been refused it by the API, so each fetches.)
    let mut next = case.replica("next", PATIENT).await;
    next.send("refresh").await;
    next.logged(WAITING).await;
    let refused = next.answer().await.unwrap_err();
    assert!(refused.starts_with("ERROR user_action"), "{refused}");
    assert!(
        rotated_at.elapsed() >= Duration::from_secs(2),
        "presented again before the dead holder's deadline"
    );
    // The refusal is recorded: a third replica answers it without presenting anything.
    let requests = case.emulator.request_count(Endpoint::AerionToken);
    let mut third = case.replica("third", PATIENT).await;
    let refused = third.run("refresh").await.unwrap_err();
    assert!(refused.starts_with("ERROR user_action"), "{refused}");
    assert_eq!(case.emulator.request_count(Endpoint::AerionToken), requests);
    let record = case.record(&case.redis.url()).await.unwrap();
    assert!(record.refused.is_some(), "the refusal was not recorded");
    let outcomes = [holder, next.exit().await, third.exit().await];
    assert_eq!(outcomes[1].code, Some(3));
    assert_eq!(outcomes[2].code, Some(3));
    check(
        &case,
        &case.redis.url(),
        &outcomes,
        Some(Twice::AnswerLost(spent)),
        Newest::LostWithTheKilledHolder,
    )
    .await;
}

/// A holder stopped past its lease while its refresh is out, then resumed: the next holder
/// takes the lock, finds the presentation recorded, and waits for its answer instead of
/// presenting the same refresh token; the resumed holder saves; the next one adopts that.
async fn stopped_past_its_lease(case: &Case, fault: Fault, rotated_before_the_stop: bool) {
    let spent = case.newest();
    case.emulator.inject(Endpoint::AerionToken, fault, 1);
    let requests = case.emulator.request_count(Endpoint::AerionToken);
    let mut stalled = case.replica("stalled", Duration::from_secs(10)).await;
    stalled.send("refresh").await;
    if rotated_before_the_stop {
        case.wait_rotated(&spent).await;
    } else {
        case.wait_for_requests(requests + 1).await;
    }
    let stalled_lock = case.lock_holder().expect("the stalled holder's lock");
    stalled.signal("STOP");
    let mut next = case.replica("next", PATIENT).await;
    next.send("refresh").await;
    next.logged(WAITING).await;
    assert_ne!(
        case.lock_holder(),
        Some(stalled_lock),
        "the next holder waits holding the lock the stalled one lost"
    );
    assert_eq!(
        case.newest() != spent,
        rotated_before_the_stop,
        "the provider rotated at the wrong moment"
    );
    stalled.signal("CONT");
    let saved = stalled.answer().await.unwrap();
    let adopted = next.answer().await.unwrap();
    assert_eq!(
        adopted, saved,
        "the next holder did not adopt the saved state"
    );
    let outcomes = [stalled.exit().await, next.exit().await];
    assert_eq!(outcomes[0].code, Some(0));
    assert_eq!(outcomes[1].code, Some(0));
    check(case, &case.redis.url(), &outcomes, None, Newest::Stored).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_stopped_past_its_lease_before_the_provider_rotated_is_waited_for() {
    let case = Case::start().await;
    // The provider takes 4 s before it acts: the holder is stopped and resumed before that.
    stopped_past_its_lease(&case, Fault::Delay(Duration::from_secs(4)), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_stopped_past_its_lease_after_the_provider_rotated_is_waited_for() {
    let case = Case::start().await;
    // The provider acts at once and holds its answer 3 s: the holder is stopped meanwhile.
    stopped_past_its_lease(&case, Fault::DelayAfter(Duration::from_secs(3)), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_during_a_fetch_loses_nothing_the_holder_saves_over_nothing() {
    let case = Case::start().await;
    let spent = case.newest();
    case.emulator.inject(
        Endpoint::AerionToken,
        Fault::DelayAfter(Duration::from_secs(2)),
        1,
    );
    let mut holder = case.replica("holder", Duration::from_secs(10)).await;
    holder.send("refresh").await;
    case.wait_rotated(&spent).await;
    // The record, its presentation and the lock go: the holder's save lands on nothing.
    assert_eq!(case.redis.cli(&["FLUSHALL"]).trim(), "OK");
    let saved = holder.answer().await.unwrap();
    let mut next = case.replica("next", PATIENT).await;
    assert_eq!(next.run("token").await.unwrap(), saved);
    let outcomes = [holder.exit().await, next.exit().await];
    assert_eq!(outcomes[0].code, Some(0), "the save over nothing failed");
    assert_eq!(outcomes[1].code, Some(0));
    check(&case, &case.redis.url(), &outcomes, None, Newest::Stored).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_key_deleted_during_a_fetch_leaves_the_presentation_in_force() {
    let case = Case::start().await;
    let spent = case.newest();
    case.emulator.inject(
        Endpoint::AerionToken,
        Fault::Delay(Duration::from_secs(3)),
        1,
    );
    let requests = case.emulator.request_count(Endpoint::AerionToken);
    let mut holder = case.replica("holder", Duration::from_secs(10)).await;
    holder.send("refresh").await;
    case.wait_for_requests(requests + 1).await;
    assert_eq!(case.redis.cli(&["DEL", &case.lock_key]).trim(), "1");
    // The next holder gets the lock at once, and still waits for the recorded presentation.
    let mut next = case.replica("next", PATIENT).await;
    next.send("refresh").await;
    next.logged(WAITING).await;
    assert_eq!(case.newest(), spent, "the provider rotated too early");
    let saved = holder.answer().await.unwrap();
    assert_eq!(next.answer().await.unwrap(), saved);
    let outcomes = [holder.exit().await, next.exit().await];
    assert_eq!(outcomes[0].code, Some(0));
    assert_eq!(outcomes[1].code, Some(0));
    check(&case, &case.redis.url(), &outcomes, None, Newest::Stored).await;
}

/// Redis without persistence restarted: every record is gone. The promise is what each process
/// holds: one holding the newest state in memory presents its refresh token and saves the
/// answer over nothing, restoring the store; one holding nothing newer than the configured
/// refresh token presents that, spent long ago, and is refused (the cost of running Redis
/// without persistence, and the only place the checker allows it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_without_persistence_is_restored_by_the_process_holding_the_newest_state() {
    let mut case = Case::start().await;
    let mut keeper = case.replica("keeper", PATIENT).await;
    keeper.run("refresh").await.unwrap();
    case.redis.restart();
    assert_eq!(case.redis.cli(&["DBSIZE"]).trim(), "0");
    let mut stale = case.replica("stale", PATIENT).await;
    let refused = stale.run("token").await.unwrap_err();
    assert!(refused.starts_with("ERROR user_action"), "{refused}");
    // The keeper's connection is re-made on its first call after the restart, which may fail.
    let mut restored = keeper.run("refresh").await;
    for _ in 0..50 {
        match &restored {
            Err(e) if e.starts_with("ERROR store_unavailable") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                restored = keeper.run("token").await;
            }
            _ => break,
        }
    }
    let restored = restored.unwrap();
    let mut late = case.replica("late", PATIENT).await;
    assert_eq!(late.run("token").await.unwrap(), restored);
    let outcomes = [keeper.exit().await, stale.exit().await, late.exit().await];
    assert_eq!(outcomes[0].code, Some(0));
    assert_eq!(outcomes[1].code, Some(3));
    assert_eq!(outcomes[2].code, Some(0));
    let seed = case.seed.clone();
    check(
        &case,
        &case.redis.url(),
        &outcomes,
        Some(Twice::StoreForgot(seed)),
        Newest::Stored,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_killed_after_a_save_with_wait_leaves_it_on_the_promoted_replica() {
    let primary = RedisServer::start();
    let promoted = RedisServer::replica_of(&primary);
    let mut case = Case::start_on(primary).await;
    let waits = [("NEMESIS_WAIT_REPLICAS", "1".to_owned())];
    let mut holder = case
        .replica_on("holder", &case.redis.url(), PATIENT, &waits)
        .await;
    let saved = holder.run("refresh").await.unwrap();
    let holder = holder.exit().await;
    assert_eq!(holder.code, Some(0), "the save was not acknowledged");
    // The primary dies after acknowledging; its replica takes over.
    case.redis.stop();
    assert_eq!(promoted.cli(&["REPLICAOF", "NO", "ONE"]).trim(), "OK");
    let mut next = case.replica_on("next", &promoted.url(), PATIENT, &[]).await;
    next.run("refresh").await.unwrap();
    assert_eq!(next.printed[0], saved, "the acknowledged save was lost");
    let outcomes = [holder, next.exit().await];
    assert_eq!(outcomes[1].code, Some(0));
    check(&case, &promoted.url(), &outcomes, None, Newest::Stored).await;
}

/// Nothing stored yet: the first fetch presents the configured refresh token itself. Its
/// presentation must be recorded like any other, so that a holder stopped past its lease is
/// waited for rather than the same refresh token presented by the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_stopped_past_its_lease_presenting_the_configured_refresh_token_is_waited_for() {
    let case = Case::cold_on(RedisServer::start()).await;
    case.emulator.inject(
        Endpoint::AerionToken,
        Fault::Delay(Duration::from_secs(4)),
        1,
    );
    let mut stalled = case.replica("stalled", Duration::from_secs(10)).await;
    stalled.send("token").await;
    case.wait_for_requests(1).await;
    stalled.signal("STOP");
    let mut next = case.replica("next", PATIENT).await;
    next.send("token").await;
    // Today the next holder presents the same refresh token at once, instead of waiting.
    next.until("waiting, or an answer", |l| {
        l.contains(WAITING) || l.starts_with("TOKEN ") || l.starts_with("ERROR ")
    })
    .await;
    stalled.signal("CONT");
    let outcomes = [stalled.exit().await, next.exit().await];
    check(&case, &case.redis.url(), &outcomes, None, Newest::Stored).await;
}
