//! Many Aurora Solar tenants against the emulator with its per-key rate limit on: the partner
//! app paces its application key's requests, so a cold start over every tenant at once makes
//! no 429s and takes about its pace's minimum time.

use std::time::Duration;

use partner_auth::aurora_solar::{PartnerApp, RateLimit};
use partner_auth_emulator::{
    DEFAULT_AURORA_SOLAR_APPLICATION_ID, DEFAULT_AURORA_SOLAR_APPLICATION_KEY, Emulator, Endpoint,
};

/// The emulated limit: 10 requests per key in any second (the real one is 90 a minute; the
/// same shape, faster, so the test takes seconds).
const REQUESTS: u32 = 10;
const WINDOW: Duration = Duration::from_secs(1);
/// The client's pace: 8 a second, a fifth under the limit. The pace's own margin (requests 5%
/// further apart than the rate) comes to 50 ms in a one-second window (3 s in the real
/// one-minute window), and a busy machine can hold a request back longer than that between its
/// permit and its arrival, which earns the tenth request after it a 429. At 8 a second, eleven
/// requests span 1.31 s: any one of them may arrive 300 ms late without a 429.
const PACE: u32 = 8;

/// What a cold start came to.
struct Start {
    elapsed: Duration,
    /// Requests the emulator refused with 429.
    refused: usize,
    /// `create_token` requests sent.
    sent: usize,
    /// Tenants whose caller got a key.
    served: usize,
}

async fn cold_start(tenants: usize, pace: Option<RateLimit>) -> Start {
    let ids: Vec<String> = (0..tenants).map(|i| format!("tenant-{i:04}")).collect();
    let emulator = Emulator::builder()
        .aurora_solar_tenants(ids.iter().cloned())
        .aurora_solar_rate_limit(REQUESTS, WINDOW)
        .start()
        .await
        .unwrap();
    let app = PartnerApp::builder()
        .base_url(emulator.aurora_solar_base())
        .application_id(DEFAULT_AURORA_SOLAR_APPLICATION_ID)
        .application_key(DEFAULT_AURORA_SOLAR_APPLICATION_KEY)
        .rate_limit(pace)
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let tenant = app.tenant(id).unwrap();
            tokio::spawn(async move { tenant.get().await })
        })
        .collect();
    let mut served = 0;
    for task in tasks {
        if task.await.unwrap().is_ok() {
            served += 1;
        }
    }
    let elapsed = started.elapsed();
    let sent = emulator.request_count(Endpoint::AuroraSolarCreateToken);
    // Every request carried the application key and named its tenant once.
    let requests = emulator.requests_for(Endpoint::AuroraSolarCreateToken);
    for id in &ids {
        let path = format!(
            "/partner_applications/{DEFAULT_AURORA_SOLAR_APPLICATION_ID}/tenants/{id}/create_token"
        );
        assert!(
            requests
                .iter()
                .any(|r| r.method == "POST" && r.path.ends_with(&path)),
            "no create_token for {id}"
        );
    }
    Start {
        elapsed,
        refused: emulator.rate_limited(),
        sent,
        served,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_cold_start_makes_no_429s_and_takes_the_limits_time() {
    let tenants = 30;
    let start = cold_start(tenants, Some(RateLimit::new(PACE, WINDOW).unwrap())).await;
    let Start {
        elapsed,
        refused,
        sent,
        served,
    } = start;
    assert_eq!(served, tenants, "every tenant gets its key");
    assert_eq!(refused, 0, "the emulator answered 429 {refused} times");
    assert_eq!(sent, tenants, "one exchange per tenant");
    // Evenly spaced: one each 125 ms (and the margin) after the first.
    let spacing = WINDOW / PACE;
    let least = spacing * (tenants as u32 - 1);
    assert!(elapsed >= least.mul_f64(0.95), "{elapsed:?} < {least:?}");
    assert!(
        elapsed <= least.mul_f64(1.5),
        "{elapsed:?}, far above {least:?}"
    );
}

/// The control: without pacing the emulator does refuse (so the test above can fail), and
/// requests are repeated after `Retry-After` waits (callers whose retries run out get no key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pacing_the_same_start_is_refused() {
    let start = cold_start(30, None).await;
    assert!(start.refused > 0, "no 429 without pacing");
    assert!(start.sent > 30, "{} requests for 30 tenants", start.sent);
}
