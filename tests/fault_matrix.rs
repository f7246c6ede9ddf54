//! The fault matrix: every provider kind against the emulator, each fault of the hardening issue
//! crossed with the cache's four states (empty, fresh, soft window, hard-expired).
//!
//! The expected outcomes are the table [`ROWS`]; every cell runs for real (a fresh emulator on a
//! loopback port, a `ManualClock` shared by the provider and the emulator) and is compared with
//! it: what the caller got (the old still-valid token, a new one, an already-expired one, or
//! which `Error` variant) and how many requests the provider's token endpoint saw. The observed
//! matrix is rendered as Markdown to `target/reliability-matrix.md`, which RELIABILITY.md quotes.
//!
//! States are driven by the shared clock: *fresh* is right after a fetch, *soft window* is ten
//! seconds before the cached token's `expires_at` (inside the refresh margin), *hard-expired* is
//! one second after it. The fault is injected once the state is set up, so the requests counted
//! are the ones the fault met.

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{token_endpoint, variant};
use partner_auth::aerion::AerionBuilder;
use partner_auth::aurora_solar::{ClientSdkBuilder, PartnerAppBuilder};
use partner_auth::aurora_uk::AuroraUkBuilder;
use partner_auth::auth::{AuthMiddleware, AuthScope};
use partner_auth::{
    AccessToken, CacheConfig, CacheStats, Clock, Error, HttpClient, ProviderKind, TokenProvider,
};
use partner_auth_emulator::{ClockOffset, Emulator, Endpoint, Fault, RunningEmulator};
use token_provider::ManualClock;
use tokio::sync::Semaphore;

const T0: Duration = Duration::from_secs(1_800_000_000);
/// The per-request timeout of the matrix's HTTP client: what a hang runs into.
const TIMEOUT: Duration = Duration::from_millis(700);
/// Far more than any row consumes: a fault that lasts for the whole cell.
const PERSISTENT: u32 = 1_000;

// ---------------------------------------------------------------------------------------------
// The table.

/// What the caller got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    /// The still-valid token cached before the fault.
    Old,
    /// A new token, valid by the shared clock.
    New,
    /// A new token that is already expired by the shared clock.
    Expired,
    /// An error of this `Error` variant.
    Err(&'static str),
    /// The row does not apply to this provider kind.
    NA,
}

type Cell = (Outcome, usize);

use Outcome::{Err as E, Expired, NA, New, Old};

/// What a row does to the provider's endpoint.
#[derive(Debug, Clone)]
enum Case {
    /// No fault at all: the baseline.
    None,
    /// `Fault` on the token endpoint, that many times.
    Inject(Fault, u32),
    /// The emulator is shut down: connections are refused.
    Refused,
    /// The emulator's clock runs this far ahead of (or behind) the shared clock from the start.
    Offset(ClockOffset),
    /// One 401 from the protected resource for a token the cache thinks fresh, through
    /// `AuthMiddleware`.
    Unauthorized401,
    /// Aerion: every refresh token revoked behind our back; the password is known.
    RevokedRefresh,
    /// Aerion configured with a refresh token only (an SSO login): every refresh token revoked.
    RevokedRefreshSso,
    /// Aerion SSO: one answer carries an already-expired access token and a rotated refresh
    /// token; the outcome is that of one more call after it.
    SsoDeadTokenThenCall,
}

struct Row {
    name: &'static str,
    case: Case,
    /// Expected cells for every kind: empty, fresh, soft window, hard-expired.
    expect: [Cell; 4],
    /// Kinds whose cells differ from `expect`.
    except: &'static [(ProviderKind, [Cell; 4])],
}

const STATES: [&str; 4] = ["empty", "fresh", "soft window", "hard-expired"];
const KINDS: [ProviderKind; 4] = [
    ProviderKind::Aerion,
    ProviderKind::AuroraUk,
    ProviderKind::AuroraSolar,
    ProviderKind::AuroraSolarSdk,
];
const NA4: [Cell; 4] = [(NA, 0); 4];
const BASELINE: [Cell; 4] = [(New, 1), (Old, 0), (New, 1), (New, 1)];

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "no fault (baseline)",
            case: Case::None,
            expect: BASELINE,
            except: &[],
        },
        Row {
            name: "503 twice",
            case: Case::Inject(Fault::Status(503), 2),
            expect: [(New, 3), (Old, 0), (New, 3), (New, 3)],
            // A refresh grant (Aerion) and `generate_token` (the SDK) spend what they send: once
            // the request may have reached the provider it is not sent again.
            except: &[
                (
                    ProviderKind::Aerion,
                    [(New, 3), (Old, 0), (Old, 1), (E("Status"), 1)],
                ),
                (
                    ProviderKind::AuroraSolarSdk,
                    [(E("Status"), 1), (Old, 0), (Old, 1), (E("Status"), 1)],
                ),
            ],
        },
        Row {
            name: "503 on every request",
            case: Case::Inject(Fault::Status(503), PERSISTENT),
            expect: [(E("Status"), 3), (Old, 0), (Old, 3), (E("Status"), 3)],
            // A refresh grant (Aerion) and `generate_token` (the SDK) spend what they send: once
            // the request may have reached the provider it is not sent again.
            except: &[
                (
                    ProviderKind::Aerion,
                    [(E("Status"), 3), (Old, 0), (Old, 1), (E("Status"), 1)],
                ),
                (
                    ProviderKind::AuroraSolarSdk,
                    [(E("Status"), 1), (Old, 0), (Old, 1), (E("Status"), 1)],
                ),
            ],
        },
        Row {
            name: "429 with `Retry-After: 1`, once",
            case: Case::Inject(
                Fault::RateLimited {
                    retry_after: Some(1),
                },
                1,
            ),
            expect: [(New, 2), (Old, 0), (New, 2), (New, 2)],
            // A refresh grant (Aerion) and `generate_token` (the SDK) spend what they send: once
            // the request may have reached the provider it is not sent again.
            except: &[
                (
                    ProviderKind::Aerion,
                    [(New, 2), (Old, 0), (Old, 1), (E("RateLimited"), 1)],
                ),
                (
                    ProviderKind::AuroraSolarSdk,
                    [
                        (E("RateLimited"), 1),
                        (Old, 0),
                        (Old, 1),
                        (E("RateLimited"), 1),
                    ],
                ),
            ],
        },
        Row {
            name: "429 with `Retry-After: 60` (past the 2 s cap)",
            case: Case::Inject(
                Fault::RateLimited {
                    retry_after: Some(60),
                },
                PERSISTENT,
            ),
            expect: [
                (E("RateLimited"), 1),
                (Old, 0),
                (Old, 1),
                (E("RateLimited"), 1),
            ],
            except: &[],
        },
        Row {
            name: "429 without `Retry-After`, once",
            case: Case::Inject(Fault::RateLimited { retry_after: None }, 1),
            expect: [(New, 2), (Old, 0), (New, 2), (New, 2)],
            // A refresh grant (Aerion) and `generate_token` (the SDK) spend what they send: once
            // the request may have reached the provider it is not sent again.
            except: &[
                (
                    ProviderKind::Aerion,
                    [(New, 2), (Old, 0), (Old, 1), (E("RateLimited"), 1)],
                ),
                (
                    ProviderKind::AuroraSolarSdk,
                    [
                        (E("RateLimited"), 1),
                        (Old, 0),
                        (Old, 1),
                        (E("RateLimited"), 1),
                    ],
                ),
            ],
        },
        Row {
            name: "429 without `Retry-After` on every request",
            case: Case::Inject(Fault::RateLimited { retry_after: None }, PERSISTENT),
            expect: [
                (E("RateLimited"), 3),
                (Old, 0),
                (Old, 3),
                (E("RateLimited"), 3),
            ],
            // A refresh grant (Aerion) and `generate_token` (the SDK) spend what they send: once
            // the request may have reached the provider it is not sent again.
            except: &[
                (
                    ProviderKind::Aerion,
                    [
                        (E("RateLimited"), 3),
                        (Old, 0),
                        (Old, 1),
                        (E("RateLimited"), 1),
                    ],
                ),
                (
                    ProviderKind::AuroraSolarSdk,
                    [
                        (E("RateLimited"), 1),
                        (Old, 0),
                        (Old, 1),
                        (E("RateLimited"), 1),
                    ],
                ),
            ],
        },
        Row {
            name: "connection refused (nothing listening)",
            case: Case::Refused,
            expect: [(E("Transport"), 0), (Old, 0), (Old, 0), (E("Transport"), 0)],
            except: &[],
        },
        Row {
            name: "connection reset mid-body, once",
            case: Case::Inject(Fault::ResetConnection, 1),
            expect: [(New, 2), (Old, 0), (New, 2), (New, 2)],
            // A refresh grant (Aerion) and `generate_token` (the SDK) spend what they send: once
            // the request may have reached the provider it is not sent again.
            except: &[
                (
                    ProviderKind::Aerion,
                    [(New, 2), (Old, 0), (Old, 1), (E("Transport"), 1)],
                ),
                (
                    ProviderKind::AuroraSolarSdk,
                    [(E("Transport"), 1), (Old, 0), (Old, 1), (E("Transport"), 1)],
                ),
            ],
        },
        Row {
            name: "connection reset mid-body on every request",
            case: Case::Inject(Fault::ResetConnection, PERSISTENT),
            expect: [(E("Transport"), 3), (Old, 0), (Old, 3), (E("Transport"), 3)],
            // A refresh grant (Aerion) and `generate_token` (the SDK) spend what they send: once
            // the request may have reached the provider it is not sent again.
            except: &[
                (
                    ProviderKind::Aerion,
                    [(E("Transport"), 3), (Old, 0), (Old, 1), (E("Transport"), 1)],
                ),
                (
                    ProviderKind::AuroraSolarSdk,
                    [(E("Transport"), 1), (Old, 0), (Old, 1), (E("Transport"), 1)],
                ),
            ],
        },
        Row {
            name: "hang past the 700 ms timeout on every request",
            case: Case::Inject(Fault::Hang, PERSISTENT),
            expect: [(E("Timeout"), 3), (Old, 0), (Old, 3), (E("Timeout"), 3)],
            // A refresh grant (Aerion) and `generate_token` (the SDK) spend what they send: once
            // the request may have reached the provider it is not sent again.
            except: &[
                (
                    ProviderKind::Aerion,
                    [(E("Timeout"), 3), (Old, 0), (Old, 1), (E("Timeout"), 1)],
                ),
                (
                    ProviderKind::AuroraSolarSdk,
                    [(E("Timeout"), 1), (Old, 0), (Old, 1), (E("Timeout"), 1)],
                ),
            ],
        },
        Row {
            name: "truncated JSON (200)",
            case: Case::Inject(Fault::TruncatedJson, PERSISTENT),
            expect: [(E("Malformed"), 1), (Old, 0), (Old, 1), (E("Malformed"), 1)],
            except: &[],
        },
        Row {
            name: "200 with an OAuth error body",
            case: Case::Inject(Fault::ErrorBody200, PERSISTENT),
            expect: [(E("Malformed"), 1), (Old, 0), (Old, 1), (E("Malformed"), 1)],
            except: &[],
        },
        Row {
            name: "oversized body, 2 MiB with `Content-Length`",
            case: Case::Inject(Fault::OversizedBody(2 << 20), PERSISTENT),
            expect: [(E("TooLarge"), 1), (Old, 0), (Old, 1), (E("TooLarge"), 1)],
            except: &[],
        },
        Row {
            name: "oversized body, 2 MiB chunked",
            case: Case::Inject(Fault::OversizedChunked(2 << 20), PERSISTENT),
            expect: [(E("TooLarge"), 1), (Old, 0), (Old, 1), (E("TooLarge"), 1)],
            except: &[],
        },
        Row {
            name: "token with `expires_in` 0 on every request",
            case: Case::Inject(Fault::ExpiresIn(0), PERSISTENT),
            // Never handed over: a transient failure, held for the backoff (so the soft window
            // does not start a fetch per call) while the still-valid token is served.
            expect: [(E("Malformed"), 1), (Old, 0), (Old, 1), (E("Malformed"), 1)],
            except: &[],
        },
        Row {
            name: "token with `expires_in` -60 on every request",
            case: Case::Inject(Fault::ExpiresIn(-60), PERSISTENT),
            // A negative `expires_in` does not parse; a past `expires_at`/`exp` parses into an
            // already-expired token: both are transient failures.
            expect: [(E("Malformed"), 1), (Old, 0), (Old, 1), (E("Malformed"), 1)],
            except: &[],
        },
        Row {
            name: "token with `expires_in` i64::MAX",
            case: Case::Inject(Fault::ExpiresIn(i64::MAX), 1),
            expect: BASELINE,
            except: &[],
        },
        Row {
            name: "provider clock 10 min ahead",
            case: Case::Offset(ClockOffset::Ahead(Duration::from_secs(600))),
            expect: BASELINE,
            except: &[],
        },
        Row {
            name: "provider clock 10 min behind",
            case: Case::Offset(ClockOffset::Behind(Duration::from_secs(600))),
            expect: BASELINE,
            except: &[],
        },
        Row {
            name: "401 from the API for a token the cache thinks fresh (middleware)",
            case: Case::Unauthorized401,
            expect: [(New, 2), (New, 1), (New, 1), (New, 2)],
            except: &[(ProviderKind::AuroraSolarSdk, NA4)],
        },
        Row {
            name: "refresh token revoked behind our back, password known",
            case: Case::RevokedRefresh,
            expect: NA4,
            except: &[(
                ProviderKind::Aerion,
                [(New, 1), (Old, 0), (New, 2), (New, 2)],
            )],
        },
        Row {
            name: "refresh token revoked behind our back, SSO (no password)",
            case: Case::RevokedRefreshSso,
            expect: NA4,
            except: &[(
                ProviderKind::Aerion,
                // The configured refresh token counts as spent once it was sent: after the
                // stored one is refused, it is not offered again.
                [
                    (E("UserAction"), 1),
                    (Old, 0),
                    (Old, 1),
                    (E("UserAction"), 1),
                ],
            )],
        },
        Row {
            name: "SSO refresh answered once with an expired token and a rotated refresh token; then one more call",
            case: Case::SsoDeadTokenThenCall,
            expect: NA4,
            except: &[(
                ProviderKind::Aerion,
                [(New, 2), (Old, 0), (New, 2), (New, 2)],
            )],
        },
    ]
}

impl Row {
    fn expected(&self, kind: ProviderKind) -> [Cell; 4] {
        self.except
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(self.expect, |(_, cells)| *cells)
    }
}

// ---------------------------------------------------------------------------------------------
// Running one cell.

/// A concrete provider (built exactly as the facade's `from_lookup` builds it), kept concrete so
/// the test can read its cache counters.
enum Handle {
    Aerion(Arc<partner_auth::aerion::Aerion>),
    AuroraUk(Arc<partner_auth::aurora_uk::AuroraUk>),
    AuroraSolar(Arc<partner_auth::aurora_solar::PartnerApp>),
    AuroraSolarSdk(Arc<partner_auth::aurora_solar::ClientSdk>),
}

impl Handle {
    fn build(
        kind: ProviderKind,
        vars: &HashMap<String, String>,
        http: &HttpClient,
        clock: &ManualClock,
    ) -> Self {
        let lookup = |n: &str| vars.get(n).cloned();
        let clock: partner_auth::SharedClock = Arc::new(clock.clone());
        let cache = cache_config();
        match kind {
            ProviderKind::Aerion => Self::Aerion(Arc::new(
                AerionBuilder::from_env_with(lookup)
                    .unwrap()
                    .http_client(http.clone())
                    .cache_config(cache)
                    .clock(clock)
                    .build()
                    .unwrap(),
            )),
            ProviderKind::AuroraUk => Self::AuroraUk(Arc::new(
                AuroraUkBuilder::from_env_with(lookup)
                    .unwrap()
                    .http_client(http.clone())
                    .cache_config(cache)
                    .clock(clock)
                    .build()
                    .unwrap(),
            )),
            ProviderKind::AuroraSolar => Self::AuroraSolar(Arc::new(
                PartnerAppBuilder::from_env_with(lookup)
                    .unwrap()
                    .http_client(http.clone())
                    .cache_config(cache)
                    .clock(clock)
                    .build()
                    .unwrap(),
            )),
            _ => Self::AuroraSolarSdk(Arc::new(
                ClientSdkBuilder::from_env_with(lookup)
                    .unwrap()
                    .http_client(http.clone())
                    .cache_config(cache)
                    .clock(clock)
                    .build()
                    .unwrap(),
            )),
        }
    }

    fn provider(&self) -> Arc<dyn TokenProvider> {
        match self {
            Self::Aerion(p) => p.clone(),
            Self::AuroraUk(p) => p.clone(),
            Self::AuroraSolar(p) => p.clone(),
            Self::AuroraSolarSdk(p) => p.clone(),
        }
    }

    fn stats(&self) -> CacheStats {
        match self {
            Self::Aerion(p) => p.stats(),
            Self::AuroraUk(p) => p.stats(),
            Self::AuroraSolar(p) => p.default_tenant().unwrap().stats(),
            Self::AuroraSolarSdk(p) => p.default_user().unwrap().stats(),
        }
    }

    /// Waits until every fetch started since `before` has ended, then a little longer so the
    /// cache has published it. (Waiting for the last latency to change would wait forever when
    /// two fetches take the same number of microseconds.)
    async fn settle(&self, before: CacheStats) {
        if self.stats().fetches == before.fetches {
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.stats();
            if !now.fetching {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a fetch never ended: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

fn cache_config() -> CacheConfig {
    // Holds (backoff, negative TTL) long enough that no cell sees one run out: each cell makes
    // its calls within a few milliseconds of the fault, so the counts are deterministic.
    CacheConfig::new()
        .backoff(Duration::from_secs(4), Duration::from_secs(8))
        .negative_ttl(Duration::from_secs(4))
        .load_timeout(Duration::from_secs(15))
}

fn fast_http() -> HttpClient {
    token_provider::testing::fast_http(TIMEOUT)
}

/// The protected resource each kind's token opens, for the middleware row.
fn api(kind: ProviderKind, emulator: &RunningEmulator) -> Option<(Endpoint, String)> {
    match kind {
        ProviderKind::Aerion => Some((
            Endpoint::AerionMe,
            format!("{}/v1/users/me", emulator.aerion_base()),
        )),
        ProviderKind::AuroraUk => Some((
            Endpoint::AuroraUkApi,
            format!("{}/Accounts", emulator.aurora_uk_api_base()),
        )),
        ProviderKind::AuroraSolar => Some((
            Endpoint::AuroraSolarProjects,
            format!(
                "{}/tenants/{}/projects",
                emulator.aurora_solar_base(),
                emulator.aurora_solar_tenant()
            ),
        )),
        _ => None,
    }
}

fn classify(
    result: &Result<AccessToken, Error>,
    old: Option<&AccessToken>,
    now: SystemTime,
) -> Outcome {
    match result {
        Ok(t) if Some(t) == old => Old,
        Ok(t) if t.is_expired(now) => Expired,
        Ok(_) => New,
        Err(e) => E(variant(e)),
    }
}

/// What one cell observed.
#[derive(Debug, Clone)]
struct Observed {
    cell: Cell,
    /// Anything that broke a rule every cell must keep (a still-valid token thrown away).
    violation: Option<String>,
}

async fn run_cell(row: &Row, kind: ProviderKind, state: usize, http: HttpClient) -> Observed {
    if row.expected(kind)[state].0 == NA {
        return Observed {
            cell: (NA, 0),
            violation: None,
        };
    }
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + T0);
    let mut builder = Emulator::builder().clock(Arc::new(clock.clone()));
    if let Case::Offset(offset) = &row.case {
        builder = builder.clock_offset(*offset);
    }
    let emulator = builder.start().await.unwrap();
    let mut vars: HashMap<String, String> = emulator
        .env_vars()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    if matches!(
        row.case,
        Case::RevokedRefreshSso | Case::SsoDeadTokenThenCall
    ) {
        let user = vars.remove("AERION_USERNAME").unwrap();
        vars.remove("AERION_PASSWORD");
        let seed = emulator.issue_refresh_token(&user).unwrap();
        vars.insert("AERION_REFRESH_TOKEN".into(), seed);
    }
    let handle = Handle::build(kind, &vars, &http, &clock);
    let provider = handle.provider();
    let endpoint = token_endpoint(kind);

    // Set up the state.
    let old = if state == 0 {
        None
    } else {
        let t = provider.token().await.unwrap();
        let expires_at = t.expires_at().expect("every emulator token has an expiry");
        match state {
            2 => clock.set(expires_at - Duration::from_secs(10)),
            3 => clock.set(expires_at + Duration::from_secs(1)),
            _ => {}
        }
        Some(t)
    };
    let base = emulator.request_count(endpoint);

    // The fault.
    let mut emulator = Some(emulator);
    match &row.case {
        Case::Inject(fault, times) => {
            emulator
                .as_ref()
                .unwrap()
                .inject(endpoint, fault.clone(), *times);
        }
        Case::Refused => emulator.take().unwrap().shutdown().await,
        Case::RevokedRefresh | Case::RevokedRefreshSso => {
            emulator.as_ref().unwrap().revoke_refresh_tokens();
        }
        Case::SsoDeadTokenThenCall => {
            emulator
                .as_ref()
                .unwrap()
                .inject(endpoint, Fault::ExpiresIn(0), 1);
        }
        Case::None | Case::Offset(_) | Case::Unauthorized401 => {}
    }

    let mut violation = None;
    let outcome = if let Case::Unauthorized401 = row.case {
        let emu = emulator.as_ref().unwrap();
        let (api_endpoint, url) = api(kind, emu).unwrap();
        emu.inject(api_endpoint, Fault::Unauthorized, 1);
        let client = reqwest_middleware::ClientBuilder::new(http.reqwest().clone())
            .with(AuthMiddleware::new(
                Arc::clone(&provider),
                AuthScope::parse(&url).unwrap(),
            ))
            .build();
        let before = handle.stats();
        let status = client.get(&url).send().await.unwrap().status();
        handle.settle(before).await;
        let calls = emu.requests_for(api_endpoint);
        let bearers: Vec<_> = calls
            .iter()
            .map(|c| c.bearer().map(str::to_owned))
            .collect();
        if status == 200 && bearers.len() == 2 && bearers[0] != bearers[1] {
            // The retry carried a new token; the cache now serves it.
            let now = provider.token().await.unwrap();
            if bearers[1].as_deref() == Some(now.secret().expose_secret()) {
                New
            } else {
                E("retry token not cached")
            }
        } else {
            E("no single retry with a new token")
        }
    } else {
        let before = handle.stats();
        let first = provider.token().await;
        handle.settle(before).await;
        let first_outcome = classify(&first, old.as_ref(), clock.now());
        if state == 2 {
            // The soft window answers at once with the still-valid token; what the background
            // refresh left behind is what the next call gets.
            if first_outcome != Old {
                violation = Some(format!("soft window answered {first_outcome:?}"));
            }
            let before = handle.stats();
            let next = provider.token().await;
            handle.settle(before).await;
            classify(&next, old.as_ref(), clock.now())
        } else {
            first_outcome
        }
    };
    let outcome = if let Case::SsoDeadTokenThenCall = row.case {
        // Past the backoff the dead answer earned; in the soft window the first call answers
        // with the old token while the refresh runs, so the second shows what it brought.
        clock.advance(Duration::from_secs(10));
        let mut next = None;
        for _ in 0..if state == 2 { 2 } else { 1 } {
            let before = handle.stats();
            next = Some(provider.token().await);
            handle.settle(before).await;
        }
        classify(
            &next.expect("called at least once"),
            old.as_ref(),
            clock.now(),
        )
    } else {
        outcome
    };
    if (state == 1 || state == 2) && !matches!(outcome, Old | New) {
        violation = Some(format!(
            "a still-valid token was cached, yet the caller got {outcome:?}"
        ));
    }
    let requests = emulator
        .as_ref()
        .map_or(0, |e| e.request_count(endpoint) - base);
    if let Some(e) = emulator {
        e.shutdown().await;
    }
    Observed {
        cell: (outcome, requests),
        violation,
    }
}

// ---------------------------------------------------------------------------------------------
// The matrix.

fn show(cell: Cell) -> String {
    let (outcome, n) = cell;
    let what = match outcome {
        Old => "old token".to_owned(),
        New => "new token".to_owned(),
        Expired => "expired token".to_owned(),
        E(v) => format!("`{v}`"),
        NA => return "n/a".to_owned(),
    };
    format!("{what}, {n} req")
}

fn kind_short(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Aerion => "aerion",
        ProviderKind::AuroraUk => "uk",
        ProviderKind::AuroraSolar => "solar",
        _ => "sdk",
    }
}

/// One Markdown cell: the common outcome, or each kind's when they differ.
fn render_cell(by_kind: &[(ProviderKind, Cell)]) -> String {
    let applicable: Vec<_> = by_kind.iter().filter(|(_, c)| c.0 != NA).collect();
    if applicable.is_empty() {
        return "n/a".to_owned();
    }
    let first = applicable[0].1;
    if applicable.iter().all(|(_, c)| *c == first) && applicable.len() == by_kind.len() {
        return show(first);
    }
    let mut groups: Vec<(Cell, Vec<&str>)> = Vec::new();
    for (kind, cell) in &applicable {
        match groups.iter_mut().find(|(c, _)| c == cell) {
            Some((_, kinds)) => kinds.push(kind_short(*kind)),
            None => groups.push((*cell, vec![kind_short(*kind)])),
        }
    }
    groups
        .iter()
        .map(|(cell, kinds)| format!("{}: {}", kinds.join(", "), show(*cell)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn render(rows: &[Row], observed: &HashMap<(usize, ProviderKind, usize), Observed>) -> String {
    let mut md = String::new();
    md.push_str(
        "| fault | empty | fresh | soft window | hard-expired |\n| --- | --- | --- | --- | --- |\n",
    );
    for (r, row) in rows.iter().enumerate() {
        let _ = write!(md, "| {} |", row.name);
        for state in 0..4 {
            let by_kind: Vec<_> = KINDS
                .iter()
                .map(|k| (*k, observed[&(r, *k, state)].cell))
                .collect();
            let _ = write!(md, " {} |", render_cell(&by_kind));
        }
        md.push('\n');
    }
    md
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix() {
    let rows = Arc::new(rows());
    let http = fast_http();
    // Bounded concurrency: the cells wait mostly on timers and loopback sockets.
    let limit = Arc::new(Semaphore::new(24));
    let mut set = tokio::task::JoinSet::new();
    for r in 0..rows.len() {
        for kind in KINDS {
            for state in 0..4 {
                let (rows, http, limit) = (Arc::clone(&rows), http.clone(), Arc::clone(&limit));
                set.spawn(async move {
                    let _permit = limit.acquire_owned().await.unwrap();
                    let observed = run_cell(&rows[r], kind, state, http).await;
                    ((r, kind, state), observed)
                });
            }
        }
    }
    let mut observed = HashMap::new();
    while let Some(done) = set.join_next().await {
        let (key, obs) = done.expect("a cell panicked");
        observed.insert(key, obs);
    }

    let md = render(&rows, &observed);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("reliability-matrix.md"), &md).unwrap();

    let mut failures = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        for kind in KINDS {
            let expected = row.expected(kind);
            for (state, want) in expected.iter().enumerate() {
                let got = &observed[&(r, kind, state)];
                if got.cell != *want {
                    failures.push(format!(
                        "{} / {kind} / {}: expected {}, got {}",
                        row.name,
                        STATES[state],
                        show(*want),
                        show(got.cell)
                    ));
                }
                if let Some(v) = &got.violation {
                    failures.push(format!("{} / {kind} / {}: {v}", row.name, STATES[state]));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells differ from the table:\n{}\n\nobserved:\n{md}",
        failures.len(),
        failures.join("\n")
    );
    println!("{md}");
}
