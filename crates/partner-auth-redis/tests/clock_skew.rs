//! Clocks that disagree: Aurora Solar's absolute expiries judged by the provider's clock (its
//! `Date` header), and two replicas, one 10 minutes fast and one 10 minutes slow, sharing one
//! real Redis and agreeing on when the key they share dies.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aurora_solar_auth::{PartnerApp, PartnerAppBuilder};
use partner_auth_emulator::{ClockOffset, Emulator, Endpoint, RunningEmulator};
use partner_auth_redis::RedisStore;
use partner_auth_redis::testing::RedisServer;
use token_provider::http::Request;
use token_provider::testing::{SkewedClock, http_client, lookup};
use token_provider::url::Url;
use token_provider::{SharedClock, SystemClock, TokenStore};

const TEN_MINUTES: Duration = Duration::from_secs(600);

/// A replica whose clock is `offset` from the real one, on `redis`.
fn replica(
    emulator: &RunningEmulator,
    redis: &RedisServer,
    offset: ClockOffset,
) -> (PartnerApp, SharedClock) {
    let clock: SharedClock = Arc::new(SkewedClock::new(Arc::new(SystemClock), offset));
    let store = RedisStore::builder(redis.url())
        .clock(clock.clone())
        .build()
        .unwrap();
    let vars = emulator.env_vars();
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = PartnerAppBuilder::from_env_with(lookup(&pairs))
        .unwrap()
        .store(Arc::new(store) as Arc<dyn TokenStore>)
        .clock(clock.clone())
        .build()
        .unwrap();
    (app, clock)
}

/// An emulator whose clock is `offset` from the real one and whose Aurora Solar keys live
/// `lifetime`, and its Aurora Solar tenant.
async fn aurora_at(offset: ClockOffset, lifetime: Duration) -> (RunningEmulator, String) {
    let emulator = Emulator::builder()
        .clock_offset(offset)
        .aurora_solar_temporary_key_lifetime(lifetime)
        .start()
        .await
        .unwrap();
    let tenant = emulator.aurora_solar_tenant().to_owned();
    (emulator, tenant)
}

/// How long `expires_at` is after `now`, in whole seconds (negative: before).
fn left(expires_at: SystemTime, now: SystemTime) -> i64 {
    match expires_at.duration_since(now) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap(),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap(),
    }
}

/// Aurora's clock 7 minutes behind the real one, a replica 10 minutes fast and one 10 minutes
/// slow: each sees the key with its 13 hours to live on its own clock. Without the `Date`
/// header the fast replica would take the key for 17 minutes shorter-lived; without the store
/// measuring the record's age the slow one would keep it 20 minutes past its death.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_clocks_apart_agree_with_the_provider_on_a_keys_expiry() {
    let redis = RedisServer::start();
    let lifetime = Duration::from_secs(13 * 3600);
    let (emulator, tenant) =
        aurora_at(ClockOffset::Behind(Duration::from_secs(420)), lifetime).await;
    let (fast, fast_clock) = replica(&emulator, &redis, ClockOffset::Ahead(TEN_MINUTES));
    let (slow, slow_clock) = replica(&emulator, &redis, ClockOffset::Behind(TEN_MINUTES));

    let key = fast.tenant(&tenant).unwrap().get().await.unwrap();
    let by_fast = left(key.expires_at().unwrap(), fast_clock.now());
    let shared = slow.tenant(&tenant).unwrap().get().await.unwrap();
    let by_slow = left(shared.expires_at().unwrap(), slow_clock.now());

    assert_eq!(
        shared, key,
        "the slow replica adopts the key the fast one saved"
    );
    assert_eq!(emulator.request_count(Endpoint::AuroraSolarCreateToken), 1);
    let want = i64::try_from(lifetime.as_secs()).unwrap();
    for (who, seen) in [("fast", by_fast), ("slow", by_slow)] {
        assert!(
            (want - 3..=want).contains(&seen),
            "the {who} replica sees {seen} s left of a {want} s key"
        );
    }
    // Each keeps the key in its own clock's terms: 20 minutes apart.
    let apart = key
        .expires_at()
        .unwrap()
        .duration_since(shared.expires_at().unwrap())
        .unwrap();
    assert!(
        apart.abs_diff(2 * TEN_MINUTES) <= Duration::from_secs(3),
        "{apart:?}"
    );
}

/// Short-lived keys (12 s by Aurora's clock, 5 minutes ahead) served for 30 s by the two
/// replicas in turn, each key used against Aurora's API at once: none is refused as expired,
/// and the fleet fetches at most twice per lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_is_served_past_its_provider_side_expiry_by_either_replica() {
    let redis = RedisServer::start();
    let lifetime = Duration::from_secs(12);
    let (emulator, tenant) =
        aurora_at(ClockOffset::Ahead(Duration::from_secs(300)), lifetime).await;
    let replicas = [
        replica(&emulator, &redis, ClockOffset::Ahead(TEN_MINUTES)).0,
        replica(&emulator, &redis, ClockOffset::Behind(TEN_MINUTES)).0,
    ];
    let http = http_client();
    let projects = Url::parse(&format!(
        "{}/tenants/{tenant}/projects",
        emulator.aurora_solar_base()
    ))
    .unwrap();
    let run = Duration::from_secs(30);
    let start = tokio::time::Instant::now();
    let mut calls = 0;
    while start.elapsed() < run {
        for app in &replicas {
            let key = app.tenant(&tenant).unwrap().get().await.unwrap();
            let request = Request::get(projects.clone()).bearer(key.secret()).unwrap();
            let status = http.execute(request).await.unwrap().status();
            assert_eq!(status, 200, "call {calls}: a key served past its expiry");
            calls += 1;
        }
        // Under Aurora's pace of 90 requests a minute per key.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let fetches = emulator.request_count(Endpoint::AuroraSolarCreateToken);
    let lifetimes = run.as_secs().div_ceil(lifetime.as_secs()) as usize;
    assert!(
        (lifetimes..=2 * lifetimes).contains(&fetches),
        "{fetches} fetches in {lifetimes} lifetimes ({calls} calls)"
    );
    for request in emulator.requests_for(Endpoint::AuroraSolarCreateToken) {
        assert_eq!(request.method, "POST");
        assert!(
            request
                .path
                .ends_with(&format!("/tenants/{tenant}/create_token"))
        );
    }
}
