//! A simulated day of a secret rotated every hour under 64 callers: the provider reads the
//! secret from its `_FILE`, the emulator accepts only the current secret, and no call fails.
//!
//! Time is tokio's, paused: the emulator, the providers and the callers share one clock that
//! jumps from timer to timer, so the day takes a few seconds. Each hour the file is replaced and
//! the emulator told to accept only the new secret, one of three ways in turn:
//!
//! - Kubernetes' swap of the `..data` link (a new inode behind the same path);
//! - a new file renamed over the old one;
//! - a rewrite in place that leaves the metadata alike (a coarse-timestamp filesystem).
//!
//! The first two are seen before the next request; the third only when the old secret is
//! refused, after which the file is read once more and the request sent again before the cache
//! sees the refusal. So exactly one request is refused per rotation of the third kind, none for
//! the others, and the callers, who wait on every fetch (no refresh margin), never see the
//! refusal.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use partner_auth::token_provider::testing::{SecretFile, capture_logs, epoch, fast_http};
use partner_auth::token_provider::{Clock, TokioClock};
use partner_auth::{CacheConfig, ProviderKind, ProviderOptions, TokenProvider, from_lookup};
use partner_auth_emulator::{Emulator, Endpoint, RecordedRequest, RunningEmulator};

const TASKS: usize = 64;
const HOURS: u32 = 24;
const TOKEN_LIFETIME: Duration = Duration::from_secs(20 * 60);

/// How one provider kind's secret is named, sent and rotated.
struct Kind {
    kind: ProviderKind,
    /// The secret's variable (its `_FILE` twin is set instead).
    var: &'static str,
    endpoint: Endpoint,
    /// The secret of hour `h` (all of one length, so an in-place rewrite keeps the size).
    secret: fn(u32) -> String,
    /// Makes the emulator accept only this secret.
    accept: fn(&RunningEmulator, &str),
    /// The secret a recorded token request carried, after checking the rest of what was sent.
    sent: fn(&RunningEmulator, &RecordedRequest) -> String,
}

const AURORA_UK: Kind = Kind {
    kind: ProviderKind::AuroraUk,
    var: "AURORA_UK_CLIENT_SECRET",
    endpoint: Endpoint::AuroraUkToken,
    secret: |hour| format!("uk-client-secret-{hour:04}"),
    accept: |emulator, secret| emulator.set_aurora_uk_client_secret(secret),
    sent: |emulator, request| {
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/aurora-uk/oauth/token")
        );
        let form = request.form();
        assert_eq!(
            form,
            [
                ("grant_type".to_owned(), "client_credentials".to_owned()),
                (
                    "audience".to_owned(),
                    emulator.aurora_uk_audience().to_owned()
                ),
            ],
            "exactly the grant and the audience in the body"
        );
        let (id, secret) = request
            .basic_auth()
            .expect("HTTP Basic client authentication");
        assert_eq!(id, emulator.config().aurora_uk_client_id);
        secret
    },
};

const AURORA_SOLAR: Kind = Kind {
    kind: ProviderKind::AuroraSolar,
    var: "AURORA_SOLAR_APPLICATION_KEY",
    endpoint: Endpoint::AuroraSolarCreateToken,
    secret: |hour| format!("sk_sand_rotated_key_{hour:04}"),
    accept: |emulator, key| emulator.set_aurora_solar_application_key(key),
    sent: |emulator, request| {
        let config = emulator.config();
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.path,
            format!(
                "/aurora-solar/partner_applications/{}/tenants/{}/create_token",
                config.aurora_solar_application_id,
                emulator.aurora_solar_tenant()
            )
        );
        assert_eq!(request.query, None, "no session token: the backend flow");
        assert_eq!(request.header("content-length"), Some("0"));
        request.bearer().expect("the key as a bearer").to_owned()
    },
};

/// How the file changes at hour `h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rotation {
    Swap,
    Replace,
    Unseen,
}

fn rotation(hour: u32) -> Rotation {
    match hour % 3 {
        0 => Rotation::Swap,
        1 => Rotation::Replace,
        _ => Rotation::Unseen,
    }
}

async fn day(kind: Kind) {
    let logs = capture_logs();
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new(epoch()));
    let first = (kind.secret)(0);
    let emulator = Emulator::builder()
        .clock(Arc::clone(&clock))
        .aurora_uk_token_lifetime(TOKEN_LIFETIME)
        .aurora_solar_temporary_key_lifetime(TOKEN_LIFETIME)
        .start()
        .await
        .unwrap();
    (kind.accept)(&emulator, &first);
    let mut file = SecretFile::new("secret", &first);

    // The emulator's variables, the secret's given as its file.
    let mut vars = emulator.env_vars();
    vars.retain(|(name, _)| *name != kind.var);
    let file_var = format!("{}_FILE", kind.var);
    vars.push((
        Box::leak(file_var.into_boxed_str()),
        file.path().display().to_string(),
    ));
    let lookup = move |name: &str| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    // No refresh margin: every fetch happens with callers waiting on it and no still-valid
    // token to serve, so a refusal the cache saw would reach them.
    let options = ProviderOptions::new()
        .http(fast_http(Duration::from_secs(30)))
        .clock(Arc::clone(&clock))
        .cache(CacheConfig::new().margin(Duration::ZERO))
        .rate_limit(None);
    let provider = from_lookup(lookup, kind.kind, &options).unwrap();
    assert!(
        !format!("{provider:?}").contains(&first),
        "{provider:?} shows the secret"
    );

    let start = tokio::time::Instant::now();
    let end = start + Duration::from_secs(u64::from(HOURS) * 3600);
    let calls = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (provider, clock) = (Arc::clone(&provider), Arc::clone(&clock));
            let (calls, failures) = (Arc::clone(&calls), Arc::clone(&failures));
            tokio::spawn(async move {
                // Calls spread over each minute, every task at its own offset.
                tokio::time::sleep(Duration::from_millis(937 * task as u64 % 60_000)).await;
                while tokio::time::Instant::now() < end {
                    calls.fetch_add(1, Ordering::Relaxed);
                    match provider.get().await {
                        Ok(token) => assert!(
                            token.expires_at().is_some_and(|at| at > clock.now()),
                            "an expired token was served"
                        ),
                        Err(e) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            eprintln!("call failed: {e}");
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            })
        })
        .collect();

    // Each hour: the file, then the provider, at the same instant. `bounds[h]` is how many
    // token requests had arrived when secret `h` took over.
    let mut bounds = vec![0];
    for hour in 1..=HOURS {
        tokio::time::sleep_until(start + Duration::from_secs(u64::from(hour) * 3600)).await;
        if hour == HOURS {
            break;
        }
        let secret = (kind.secret)(hour);
        match rotation(hour) {
            Rotation::Swap => file.swap(&secret),
            Rotation::Replace => file.replace(&secret),
            Rotation::Unseen => file.rewrite_unseen(&secret),
        }
        (kind.accept)(&emulator, &secret);
        bounds.push(emulator.request_count(kind.endpoint));
    }
    for task in tasks {
        task.await.unwrap();
    }

    assert_eq!(failures.load(Ordering::Relaxed), 0, "calls failed");
    let calls = calls.load(Ordering::Relaxed);
    assert!(calls >= TASKS * 60 * HOURS as usize, "{calls} calls");

    // What was sent, hour by hour: the hour's secret, but for at most one request with the
    // previous hour's, refused, after a rotation the metadata did not show, and then at once
    // the hour's.
    let requests = emulator.requests_for(kind.endpoint);
    bounds.push(requests.len());
    let mut refused = 0;
    let mut accepted = 0;
    for hour in 0..HOURS {
        let (from, to) = (bounds[hour as usize], bounds[hour as usize + 1]);
        let sent: Vec<String> = requests[from..to]
            .iter()
            .map(|r| (kind.sent)(&emulator, r))
            .collect();
        let current = (kind.secret)(hour);
        let stale = sent.iter().filter(|s| **s != current).count();
        assert!(
            !sent.is_empty(),
            "hour {hour}: no token request (the lifetime is 20 minutes)"
        );
        if hour > 0 && rotation(hour) == Rotation::Unseen {
            assert_eq!(
                sent[..2],
                [(kind.secret)(hour - 1), current.clone()],
                "hour {hour}: the previous secret, refused, then the new one"
            );
            assert_eq!(stale, 1, "hour {hour}: {sent:?}");
        } else {
            assert_eq!(stale, 0, "hour {hour}: {sent:?}");
        }
        refused += stale;
        accepted += sent.len() - stale;
    }
    let unseen = (1..HOURS)
        .filter(|&h| rotation(h) == Rotation::Unseen)
        .count();
    assert_eq!(refused, unseen, "one refused request per unseen rotation");
    assert!(refused <= (HOURS - 1) as usize);
    // One fetch per token's refresh point, give or take: no storm after a refusal.
    let per_day = (HOURS as usize) * 3600 / TOKEN_LIFETIME.as_secs() as usize;
    assert!(
        (per_day..=2 * per_day).contains(&accepted),
        "{accepted} accepted token requests in a day of {per_day} lifetimes"
    );

    let secrets: Vec<String> = (0..HOURS).map(kind.secret).collect();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    logs.assert_absent(&secrets);
    emulator.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn aurora_uk_client_secret_rotated_hourly_for_a_day() {
    day(AURORA_UK).await;
}

#[tokio::test(start_paused = true)]
async fn aurora_solar_application_key_rotated_hourly_for_a_day() {
    day(AURORA_SOLAR).await;
}
