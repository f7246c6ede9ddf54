//! The metrics and the fetch span (feature `metrics`): what is recorded, by which labels, and
//! that no label value and no span field ever holds a secret or a raw principal.
//!
//! Each test runs on a current-thread runtime under a recorder and a subscriber of its own
//! (`metrics::with_local_recorder`, `tracing::subscriber::with_default`), so the fetch tasks it
//! spawns report to them and tests running beside it do not.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderName;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use token_provider::http::{Repeat, Request};
use token_provider::metrics::{
    EVICTIONS, FETCH_DURATION, FETCHES, HITS, HTTP_RETRIES, NAMES, Outcome, PACING_WAIT_DURATION,
    PACING_WAITS, PRINCIPALS_CACHED, STORE_ERRORS, principal_digest,
};
use token_provider::testing::http_client;
use token_provider::{
    AccessToken, CacheConfig, Error, HttpClient, KeyedCache, KeyedConfig, KeyedFetch, MemoryStore,
    RateLimit, Secret, StoreKey, StoreLock, StoreRecord, SystemClock, TokenProvider, TokenState,
    async_trait,
};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

const PROVIDER: &str = "metrics-test";
const APP_KEY: &str = "APPKEY-SECRET-9d8c7b6a";
const OK: &str = "TENANT-OK-5e1d";
const REJECTED: &str = "TENANT-REJ-77c1";
const RETRIED: &str = "TENANT-RETRY-0b9e";
const PANICS: &str = "TENANT-PANIC-c3d2";
const STORE_FAILS: &str = "TENANT-STORE-a41f";
const PACED: [&str; 2] = ["TENANT-PACE-1f0a", "TENANT-PACE-2e9b"];

const TENANTS: [&str; 7] = [
    OK,
    REJECTED,
    RETRIED,
    PANICS,
    STORE_FAILS,
    PACED[0],
    PACED[1],
];

/// The secrets: never in a label, a span field or a log event.
fn secrets() -> Vec<String> {
    let mut secrets = vec![APP_KEY.to_owned(), "SECRET".to_owned()];
    for tenant in TENANTS {
        secrets.push(access_token(tenant));
        secrets.push(refresh_token(tenant));
    }
    secrets
}

/// Every string that must never be a label value or a span field: the secrets, and the
/// principals (and the part they share, so a label holding a piece of one fails too). Log
/// events may name a principal (a request's path does); they are checked for secrets only.
fn canaries() -> Vec<String> {
    let mut canaries = secrets();
    canaries.push("TENANT-".to_owned());
    canaries.extend(TENANTS.iter().map(|t| (*t).to_owned()));
    canaries
}

fn access_token(tenant: &str) -> String {
    format!("ACCESS-SECRET-{tenant}")
}

fn refresh_token(tenant: &str) -> String {
    format!("REFRESH-SECRET-{tenant}")
}

fn store_key(tenant: &str) -> StoreKey {
    StoreKey::new(PROVIDER, "canary", tenant, "")
}

/// A partner API's token endpoint: one POST per tenant with the application key in a header.
#[derive(Debug)]
struct Partner {
    http: HttpClient,
    base: token_provider::url::Url,
    app_key: Secret,
}

#[async_trait]
impl KeyedFetch for Partner {
    type Principal = Arc<str>;

    async fn fetch(&self, tenant: &Arc<str>, _: Option<&TokenState>) -> Result<TokenState, Error> {
        if **tenant == *PANICS {
            panic!("a fetcher's bug");
        }
        let url = self
            .base
            .join(&format!("tenants/{tenant}/token"))
            .expect("a URL");
        let request = Request::post(url, Repeat::Safe)
            .secret_header(HeaderName::from_static("x-app-key"), &self.app_key)?;
        let response = self.http.execute(request).await?;
        if !response.status().is_success() {
            return Err(response.error());
        }
        let body: serde_json::Value = response.json("a token")?;
        let token = body["token"].as_str().expect("a token").to_owned();
        Ok(TokenState::new(
            AccessToken::builder(token)
                .expires_in(
                    token_provider::Clock::now(&SystemClock),
                    Duration::from_secs(3600),
                )
                .build(),
        )
        .with_refresh_token(Secret::new(refresh_token(tenant))))
    }

    fn store_key(&self, tenant: &Arc<str>) -> Option<StoreKey> {
        Some(store_key(tenant))
    }
}

/// A memory store whose saves fail (a full disk).
#[derive(Debug, Default)]
struct FullDisk {
    inner: MemoryStore,
}

token_provider::forward_token_store!(FullDisk => |this| &this.inner, {
    async fn save_record(
        &self,
        key: &StoreKey,
        record: &StoreRecord,
        read: Option<u64>,
        lock: &StoreLock
    ) -> Result<u64, Error> {
        let _ = (key, record, read, lock);
        Err(Error::store("no space left on the device", None))
    }
});

/// What the subscriber saw: every span's name and fields (as first given and as recorded
/// later), and every event's fields.
#[derive(Default)]
struct Seen {
    spans: Vec<(String, BTreeMap<String, String>)>,
    /// Where each live span is in `spans` (an id is reused once its span closes).
    live: BTreeMap<u64, usize>,
    event_fields: Vec<String>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Seen>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut seen = self.0.lock().unwrap();
        let at = seen.spans.len();
        seen.spans
            .push((attrs.metadata().name().to_owned(), fields));
        seen.live.insert(id.into_u64(), at);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: Context<'_, S>,
    ) {
        let mut seen = self.0.lock().unwrap();
        if let Some(&at) = seen.live.get(&id.into_u64()) {
            values.record(&mut Fields(&mut seen.spans[at].1));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let mut seen = self.0.lock().unwrap();
        seen.event_fields
            .extend(fields.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
}

/// Runs `test` on a current-thread runtime under a recorder and a span capture of its own.
/// The test is handed the recorder's snapshotter, to read what was recorded so far.
fn observed<Fut: Future<Output = ()>>(
    test: impl FnOnce(Snapshotter) -> Fut,
) -> (Snapshotter, Capture) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, || {
        metrics::with_local_recorder(&recorder, || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(test(snapshotter.clone()));
        });
    });
    (snapshotter, capture)
}

/// One recorded metric: its name and labels.
type Series = (String, BTreeMap<String, String>);

/// What was recorded since the last snapshot (a snapshot takes what it reads: a counter or a
/// gauge reads 0 again after it).
fn series(snapshotter: &Snapshotter) -> BTreeMap<Series, DebugValue> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            ((key.name().to_owned(), labels), value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn counter(all: &BTreeMap<Series, DebugValue>, name: &str, pairs: &[(&str, &str)]) -> u64 {
    match all.get(&(name.to_owned(), labels(pairs))) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name} {pairs:?}: {other:?}"),
    }
}

fn gauge(all: &BTreeMap<Series, DebugValue>, name: &str, pairs: &[(&str, &str)]) -> f64 {
    match all.get(&(name.to_owned(), labels(pairs))) {
        Some(DebugValue::Gauge(n)) => n.into_inner(),
        other => panic!("{name} {pairs:?}: {other:?}"),
    }
}

fn histogram(all: &BTreeMap<Series, DebugValue>, name: &str, pairs: &[(&str, &str)]) -> Vec<f64> {
    match all.get(&(name.to_owned(), labels(pairs))) {
        Some(DebugValue::Histogram(values)) => values.iter().map(|v| v.into_inner()).collect(),
        other => panic!("{name} {pairs:?}: {other:?}"),
    }
}

/// The only label values any metric may carry: names fixed in the code, never data.
fn allowed_label(key: &str, value: &str) -> bool {
    match key {
        "provider" => value == PROVIDER || value == "none",
        "outcome" => {
            Outcome::ALL.iter().any(|o| o.as_str() == value)
                || ["rate_limited", "unavailable", "timeout", "transport"].contains(&value)
        }
        "store" => ["memory", "file", "redis", "custom"].contains(&value),
        "operation" => ["lock", "load", "save", "remove"].contains(&value),
        _ => false,
    }
}

/// The token endpoint of `tenant` answering `status` and `body` (not created yet).
fn mount(
    server: &mut mockito::ServerGuard,
    tenant: &str,
    status: usize,
    body: String,
) -> mockito::Mock {
    server
        .mock("POST", format!("/tenants/{tenant}/token").as_str())
        .match_header("x-app-key", APP_KEY)
        .with_status(status)
        .with_header("content-type", "application/json")
        .with_body(body)
}

fn issued(tenant: &str) -> String {
    serde_json::json!({ "token": access_token(tenant) }).to_string()
}

#[test]
fn fetches_report_fixed_labels_and_never_a_secret_or_a_principal() {
    let (snapshotter, capture) = observed(|snapshotter| async move {
        let mut server = mockito::Server::new_async().await;
        let base = token_provider::url::Url::parse(&format!("{}/", server.url())).unwrap();
        let _ok = mount(&mut server, OK, 200, issued(OK)).create();
        let _rejected = mount(
            &mut server,
            REJECTED,
            401,
            serde_json::json!({
                "error": "invalid_client",
                "error_description": format!("unknown tenant {REJECTED}")
            })
            .to_string(),
        )
        .create();
        // One 503, then the token: one retry.
        let _unavailable = mount(&mut server, RETRIED, 503, "{}".to_owned())
            .expect(1)
            .create();
        let _retried = mount(&mut server, RETRIED, 200, issued(RETRIED)).create();
        let _store = mount(&mut server, STORE_FAILS, 200, issued(STORE_FAILS)).create();
        let _paced: Vec<_> = PACED
            .iter()
            .map(|t| mount(&mut server, t, 200, issued(t)).create())
            .collect();

        let partner = |http: HttpClient| Partner {
            http,
            base: base.clone(),
            app_key: Secret::new(APP_KEY),
        };
        let config = || CacheConfig::new().name(PROVIDER);
        let tenants = KeyedCache::new(partner(http_client()), config(), KeyedConfig::new());
        let full_disk = KeyedCache::new(
            partner(http_client()),
            config().store(Arc::new(FullDisk::default())),
            KeyedConfig::new(),
        );
        let paced = KeyedCache::new(
            partner(
                http_client()
                    .with_rate_limit(Some(RateLimit::new(1, Duration::from_secs(1)).unwrap())),
            ),
            config(),
            KeyedConfig::new(),
        );

        let ok = tenants.get_or_insert_with(OK, |k| k);
        assert_eq!(
            ok.get().await.unwrap().secret().expose_secret(),
            access_token(OK)
        );
        for _ in 0..10 {
            ok.get().await.unwrap();
        }
        let rejected = tenants.get_or_insert_with(REJECTED, |k| k);
        assert!(rejected.get().await.unwrap_err().is_rejected());
        let retried = tenants.get_or_insert_with(RETRIED, |k| k);
        retried.get().await.unwrap();
        let panics = tenants.get_or_insert_with(PANICS, |k| k);
        panics.get().await.unwrap_err();
        let unsaved = full_disk.get_or_insert_with(STORE_FAILS, |k| k);
        unsaved.get().await.unwrap();
        assert!(unsaved.store_error().is_some(), "the save failed");
        for tenant in PACED {
            paced.get_or_insert_with(tenant, |k| k).get().await.unwrap();
        }
        token_provider::metrics::publish();

        let all = series(&snapshotter);
        let ok_labels = [("provider", PROVIDER), ("outcome", "ok")];
        assert_eq!(counter(&all, FETCHES, &ok_labels), 5);
        assert_eq!(histogram(&all, FETCH_DURATION, &ok_labels).len(), 5);
        for outcome in ["rejected", "panicked"] {
            let outcome = [("provider", PROVIDER), ("outcome", outcome)];
            assert_eq!(counter(&all, FETCHES, &outcome), 1, "{outcome:?}");
            assert_eq!(histogram(&all, FETCH_DURATION, &outcome).len(), 1);
        }
        assert_eq!(counter(&all, HITS, &[("provider", PROVIDER)]), 10);
        assert_eq!(
            gauge(&all, PRINCIPALS_CACHED, &[("provider", PROVIDER)]),
            5.0
        );
        assert_eq!(
            counter(
                &all,
                HTTP_RETRIES,
                &[("provider", PROVIDER), ("outcome", "unavailable")]
            ),
            1
        );
        assert_eq!(
            counter(
                &all,
                STORE_ERRORS,
                &[
                    ("provider", PROVIDER),
                    ("store", "memory"),
                    ("operation", "save")
                ]
            ),
            1
        );
        assert_eq!(counter(&all, PACING_WAITS, &[("provider", PROVIDER)]), 1);
        let waited = histogram(&all, PACING_WAIT_DURATION, &[("provider", PROVIDER)]);
        assert!(waited.len() == 1 && waited[0] > 0.5, "{waited:?}");

        // Idle principals swept: each one evicted is counted, and leaves the gauge.
        drop((ok, rejected, retried, panics));
        tenants.sweep();
        assert_eq!(tenants.sweep(), 4);
        let all = series(&snapshotter);
        assert_eq!(counter(&all, EVICTIONS, &[("provider", PROVIDER)]), 4);
        // Since the last snapshot: the two of them that held a token.
        assert_eq!(
            gauge(&all, PRINCIPALS_CACHED, &[("provider", PROVIDER)]),
            -2.0
        );
    });

    // Every series: a documented name, labels from the fixed set, no canary anywhere.
    let all = series(&snapshotter);
    assert!(all.len() >= 10, "{all:#?}");
    for (name, labels) in all.keys() {
        assert!(
            NAMES.contains(&name.as_str()),
            "an undocumented metric: {name}"
        );
        for (key, value) in labels {
            assert!(allowed_label(key, value), "{name}: label {key}={value}");
            for canary in canaries() {
                assert!(
                    !value.contains(&canary),
                    "{name}: {key}={value} holds {canary}"
                );
            }
        }
    }

    // One span per fetch, with exactly the four fields, the principal as its digest.
    let seen = capture.0.lock().unwrap();
    let fetches: Vec<&BTreeMap<String, String>> = seen
        .spans
        .iter()
        .filter(|(name, _)| name == "partner_auth.fetch")
        .map(|(_, fields)| fields)
        .collect();
    assert_eq!(fetches.len(), 7, "{fetches:#?}");
    let digests: BTreeSet<String> = TENANTS
        .iter()
        .map(|t| principal_digest(&store_key(t)))
        .collect();
    let mut outcomes = BTreeMap::<String, usize>::new();
    for fields in &fetches {
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["attempt", "outcome", "principal", "provider"],
            "{fields:?}"
        );
        assert_eq!(fields["provider"], PROVIDER);
        assert_eq!(fields["attempt"], "1");
        assert!(digests.contains(&fields["principal"]), "{fields:?}");
        *outcomes.entry(fields["outcome"].clone()).or_default() += 1;
    }
    assert_eq!(
        outcomes,
        BTreeMap::from([
            ("ok".to_owned(), 5),
            ("panicked".to_owned(), 1),
            ("rejected".to_owned(), 1)
        ])
    );
    for value in seen.spans.iter().flat_map(|(_, fields)| fields.values()) {
        for canary in canaries() {
            assert!(
                !value.contains(&canary),
                "a span field holds {canary}: {value}"
            );
        }
    }
    assert!(!seen.event_fields.is_empty(), "no event was captured");
    for value in &seen.event_fields {
        for secret in secrets() {
            assert!(
                !value.contains(&secret),
                "a log event holds {secret}: {value}"
            );
        }
    }
}

/// The `attempt` field counts the fetches since the last success.
#[test]
fn a_retried_fetch_counts_its_attempt() {
    let (_, capture) = observed(|_| async {
        let mut server = mockito::Server::new_async().await;
        let base = token_provider::url::Url::parse(&format!("{}/", server.url())).unwrap();
        // Three 503s (one fetch's attempts), then the token.
        let _down = mount(&mut server, RETRIED, 503, "{}".to_owned())
            .expect(3)
            .create();
        let _up = mount(&mut server, RETRIED, 200, issued(RETRIED)).create();
        let tenants = KeyedCache::new(
            Partner {
                http: http_client(),
                base,
                app_key: Secret::new(APP_KEY),
            },
            CacheConfig::new()
                .name(PROVIDER)
                .backoff(Duration::from_millis(1), Duration::from_millis(1)),
            KeyedConfig::new(),
        );
        let tenant = tenants.get_or_insert_with(RETRIED, |k| k);
        tenant.get().await.unwrap_err();
        tokio::time::sleep(Duration::from_millis(20)).await;
        tenant.get().await.unwrap();
    });
    let seen = capture.0.lock().unwrap();
    let attempts: Vec<(String, String)> = seen
        .spans
        .iter()
        .filter(|(name, _)| name == "partner_auth.fetch")
        .map(|(_, f)| (f["attempt"].clone(), f["outcome"].clone()))
        .collect();
    assert_eq!(
        attempts,
        [
            ("1".to_owned(), "transient".to_owned()),
            ("2".to_owned(), "ok".to_owned())
        ]
    );
}

/// Principals a keyed cache evicts to keep its bound are counted, and each leaves the gauge as
/// its slot goes.
#[test]
fn principals_evicted_by_the_bound_are_counted_and_leave_the_gauge() {
    let held_at_end = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let held_out = Arc::clone(&held_at_end);
    let (snapshotter, _) = observed(|snapshotter| async move {
        let fetcher = token_provider::testing::Scripted::new(|call| {
            Ok(token_provider::testing::state(
                &format!("token-{}", call.principal),
                None,
                Duration::from_secs(3600),
            ))
        });
        let tenants = KeyedCache::new(
            fetcher,
            CacheConfig::new().name(PROVIDER),
            KeyedConfig::new().max_entries(2),
        );
        for n in 0..10 {
            let tenant = tenants.get_or_insert_with(&format!("tenant-{n}"), |k| k);
            tenant.get().await.unwrap();
        }
        let held = tenants.len();
        assert!(held <= 2, "{held} held");
        held_out.store(held, std::sync::atomic::Ordering::SeqCst);
        let all = series(&snapshotter);
        let evicted = counter(&all, EVICTIONS, &[("provider", PROVIDER)]);
        assert_eq!(
            evicted,
            (10 - held) as u64,
            "every principal not held was evicted"
        );
        let cached = gauge(&all, PRINCIPALS_CACHED, &[("provider", PROVIDER)]);
        assert_eq!(cached, held as f64, "each evicted slot left the gauge");
        assert_eq!(
            counter(&all, FETCHES, &[("provider", PROVIDER), ("outcome", "ok")]),
            10
        );
    });
    // The cache dropped: the principals it held leave the gauge too.
    let all = series(&snapshotter);
    let held = held_at_end.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        gauge(&all, PRINCIPALS_CACHED, &[("provider", PROVIDER)]),
        -(held as f64)
    );
}
