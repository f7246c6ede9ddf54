//! Every provider through the facade, against the emulator: tokens, the cache, the middleware's
//! single retry after a 401, faults on the token endpoints, and refresh-token rotation.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{token_endpoint, vars};
use partner_auth::auth::{AuthMiddleware, AuthScope};
use partner_auth::{
    Config, Error, HttpClient, ProviderKind, ProviderOptions, TokenProvider, from_lookup,
};
use partner_auth_emulator::{Emulator, Endpoint, Fault, RunningEmulator};

fn fast_http() -> HttpClient {
    // Short: the hang faults wait for it, three times each.
    token_provider::testing::fast_http(Duration::from_secs(1))
}

fn provider(emulator: &RunningEmulator, kind: ProviderKind) -> Arc<dyn TokenProvider> {
    let vars = vars(emulator);
    let options = ProviderOptions::new().http(fast_http());
    from_lookup(|n| vars.get(n).cloned(), kind, &options).unwrap()
}

#[tokio::test]
async fn every_provider_from_a_toml_config_gets_a_token_once() {
    let emulator = Emulator::start().await.unwrap();
    let v = vars(&emulator);
    let toml = format!(
        r#"
timeout_secs = 5
[providers.billing]
provider = "aerion"
base_url = "{aerion_base}"
company_url = "{tenant}"
username = "{user}"
password = "{password}"

[providers.crm]
provider = "aurora-uk"
environment = "dev"
issuer = "{issuer}"
audience = "{audience}"
client_id = "{uk_id}"
client_secret = "{uk_secret}"

[providers.solar]
provider = "aurora-solar"
base_url = "{solar_base}"
application_id = "{app_id}"
application_key = "{app_key}"
tenant_id = "{solar_tenant}"

[providers.sdk]
provider = "aurora-solar-sdk"
base_url = "{solar_base}"
api_key = "{api_key}"
tenant_id = "{solar_tenant}"
user_email = "{email}"
"#,
        aerion_base = v["AERION_BASE_URL"],
        tenant = v["AERION_COMPANY_URL"],
        user = v["AERION_USERNAME"],
        password = v["AERION_PASSWORD"],
        issuer = v["AURORA_UK_ISSUER"],
        audience = v["AURORA_UK_AUDIENCE"],
        uk_id = v["AURORA_UK_CLIENT_ID"],
        uk_secret = v["AURORA_UK_CLIENT_SECRET"],
        solar_base = v["AURORA_SOLAR_BASE_URL"],
        app_id = v["AURORA_SOLAR_APPLICATION_ID"],
        app_key = v["AURORA_SOLAR_APPLICATION_KEY"],
        solar_tenant = v["AURORA_SOLAR_TENANT_ID"],
        api_key = v["AURORA_SOLAR_API_KEY"],
        email = v["AURORA_SOLAR_USER_EMAIL"],
    );
    let providers = Config::from_toml_str(&toml).unwrap().build().unwrap();
    for (name, p) in &providers {
        let first = p.token().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let requests = emulator.requests().len();
        for _ in 0..10 {
            assert_eq!(p.token().await.unwrap(), first, "{name}");
        }
        assert_eq!(emulator.requests().len(), requests, "{name} asked again");
    }

    // What was sent, per provider.
    let aerion = &emulator.requests_for(Endpoint::AerionToken)[0];
    assert_eq!(aerion.method, "POST");
    assert_eq!(
        aerion.header("companyurl"),
        Some(v["AERION_COMPANY_URL"].as_str())
    );
    assert_eq!(aerion.form_param("grant_type").as_deref(), Some("password"));
    assert_eq!(
        aerion.form_param("username").as_deref(),
        Some(v["AERION_USERNAME"].as_str())
    );
    assert!(
        aerion.form_param("client_id").is_some() && aerion.form_param("client_secret").is_some()
    );

    let uk = &emulator.requests_for(Endpoint::AuroraUkToken)[0];
    assert_eq!(
        uk.form_param("grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(
        uk.form_param("audience").as_deref(),
        Some(v["AURORA_UK_AUDIENCE"].as_str())
    );
    assert_eq!(
        uk.basic_auth(),
        Some((
            v["AURORA_UK_CLIENT_ID"].clone(),
            v["AURORA_UK_CLIENT_SECRET"].clone()
        ))
    );
    assert_eq!(emulator.request_count(Endpoint::AuroraUkDiscovery), 1);

    let solar = &emulator.requests_for(Endpoint::AuroraSolarCreateToken)[0];
    assert_eq!(
        solar.bearer(),
        Some(v["AURORA_SOLAR_APPLICATION_KEY"].as_str())
    );
    assert_eq!(solar.query_param("session_token"), None);
    assert!(solar.path.contains(&v["AURORA_SOLAR_TENANT_ID"]));

    let users = &emulator.requests_for(Endpoint::AuroraSolarUsers)[0];
    assert_eq!(users.bearer(), Some(v["AURORA_SOLAR_API_KEY"].as_str()));
    assert_eq!(
        emulator.request_count(Endpoint::AuroraSolarGenerateToken),
        1
    );
    assert_eq!(emulator.request_count(Endpoint::AuroraSolarInvite), 0);
}

#[tokio::test]
async fn the_middleware_retries_a_401_exactly_once() {
    let emulator = Emulator::start().await.unwrap();
    let aerion = provider(&emulator, ProviderKind::Aerion);
    let http = fast_http();
    let client = reqwest_middleware::ClientBuilder::new(http.reqwest().clone())
        .with(AuthMiddleware::new(
            Arc::clone(&aerion),
            AuthScope::parse(&emulator.aerion_base()).unwrap(),
        ))
        .build();
    let me = format!("{}/v1/users/me", emulator.aerion_base());

    // One 401 for a token the cache thinks fresh: invalidated, one retry with a new token.
    emulator.inject(Endpoint::AerionMe, Fault::Unauthorized, 1);
    let resp = client.get(&me).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let calls = emulator.requests_for(Endpoint::AerionMe);
    assert_eq!(calls.len(), 2);
    assert_ne!(
        calls[0].bearer(),
        calls[1].bearer(),
        "the retry used a new token"
    );
    assert_eq!(emulator.request_count(Endpoint::AerionToken), 2);
    // The new token came from the refresh grant, not a second login.
    let grants: Vec<_> = emulator
        .requests_for(Endpoint::AerionToken)
        .iter()
        .filter_map(|r| r.form_param("grant_type"))
        .collect();
    assert_eq!(grants, ["password", "refresh_token"]);

    // Refused twice: the second 401 is returned, never a third try.
    emulator.clear_requests();
    emulator.inject(Endpoint::AerionMe, Fault::Unauthorized, 2);
    let resp = client.get(&me).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(emulator.request_count(Endpoint::AerionMe), 2);

    // Every provider's protected resource accepts the token through the middleware.
    for (kind, url) in [
        (
            ProviderKind::AuroraUk,
            format!("{}/Accounts", emulator.aurora_uk_api_base()),
        ),
        (
            ProviderKind::AuroraSolar,
            format!(
                "{}/tenants/{}/projects",
                emulator.aurora_solar_base(),
                emulator.aurora_solar_tenant()
            ),
        ),
    ] {
        let client = reqwest_middleware::ClientBuilder::new(http.reqwest().clone())
            .with(AuthMiddleware::new(
                provider(&emulator, kind),
                AuthScope::parse(&url).unwrap(),
            ))
            .build();
        assert_eq!(
            client.get(&url).send().await.unwrap().status(),
            200,
            "{kind}"
        );
    }
}

/// A fault on a provider's token endpoint, from an empty cache: what the caller gets, and how
/// many requests reached the endpoint.
async fn fault_outcome(kind: ProviderKind, fault: Fault, times: u32) -> (Result<(), Error>, usize) {
    let emulator = Emulator::start().await.unwrap();
    let p = provider(&emulator, kind);
    let endpoint = token_endpoint(kind);
    emulator.inject(endpoint, fault, times);
    let result = p.token().await.map(|_| ());
    (result, emulator.request_count(endpoint))
}

#[tokio::test]
async fn every_fault_kind_on_the_token_endpoints() {
    for kind in [
        ProviderKind::Aerion,
        ProviderKind::AuroraUk,
        ProviderKind::AuroraSolar,
    ] {
        // Transient: retried by the HTTP policy, then a token.
        let (r, n) = fault_outcome(kind, Fault::Status(503), 2).await;
        assert!(r.is_ok() && n == 3, "{kind} 503x2: {r:?} after {n}");
        let (r, n) = fault_outcome(
            kind,
            Fault::RateLimited {
                retry_after: Some(1),
            },
            1,
        )
        .await;
        assert!(r.is_ok() && n == 2, "{kind} 429: {r:?} after {n}");
        let (r, n) = fault_outcome(kind, Fault::Delay(Duration::from_millis(200)), 1).await;
        assert!(r.is_ok() && n == 1, "{kind} delay: {r:?} after {n}");

        // Exhausted retries.
        let (r, n) = fault_outcome(kind, Fault::Status(502), 5).await;
        assert!(
            matches!(r, Err(Error::Status { status: 502, .. })) && n == 3,
            "{kind}: {r:?} {n}"
        );
        let (r, _) = fault_outcome(
            kind,
            Fault::RateLimited {
                retry_after: Some(60),
            },
            5,
        )
        .await;
        assert!(
            matches!(r, Err(Error::RateLimited { retry_after: Some(d), .. }) if d == Duration::from_secs(60)),
            "{kind}: {r:?}"
        );

        // Garbled answers: typed errors, not retried.
        for fault in [Fault::MalformedBody, Fault::TruncatedJson] {
            let (r, n) = fault_outcome(kind, fault.clone(), 1).await;
            assert!(
                matches!(r, Err(Error::Malformed { .. })) && n == 1,
                "{kind} {fault:?}: {r:?} {n}"
            );
        }
        for fault in [
            Fault::OversizedBody(2 << 20),
            Fault::OversizedChunked(2 << 20),
        ] {
            let (r, n) = fault_outcome(kind, fault.clone(), 1).await;
            assert!(
                matches!(r, Err(Error::TooLarge { .. })) && n == 1,
                "{kind} {fault:?}: {r:?} {n}"
            );
        }
        let (r, n) = fault_outcome(kind, Fault::ErrorBody200, 1).await;
        assert!(r.is_err() && n == 1, "{kind} error body with 200: {r:?}");

        // The network failing.
        let (r, _) = fault_outcome(kind, Fault::Hang, 5).await;
        assert!(
            matches!(r, Err(Error::TimedOut { .. })),
            "{kind} hang: {r:?}"
        );
        let (r, _) = fault_outcome(kind, Fault::ResetConnection, 5).await;
        assert!(
            r.as_ref().is_err_and(Error::is_transient),
            "{kind} reset: {r:?}"
        );
    }

    // A refused grant is a rejection, not retried.
    let (r, n) = fault_outcome(ProviderKind::Aerion, Fault::InvalidGrant, 1).await;
    assert!(
        r.as_ref().is_err_and(Error::is_rejected) && n == 1,
        "{r:?} {n}"
    );
}

#[tokio::test]
async fn aerion_refresh_tokens_rotate_and_the_newest_is_kept() {
    let emulator = Emulator::start().await.unwrap();
    let aerion = provider(&emulator, ProviderKind::Aerion);
    let username = vars(&emulator)["AERION_USERNAME"].clone();
    let mut spent = Vec::new();
    for _ in 0..4 {
        let token = aerion.token().await.unwrap();
        spent.push(emulator.current_refresh_token(&username).unwrap());
        aerion.invalidate(&token);
    }
    aerion.token().await.unwrap();
    let refreshes: Vec<_> = emulator
        .requests_for(Endpoint::AerionToken)
        .iter()
        .filter(|r| r.form_param("grant_type").as_deref() == Some("refresh_token"))
        .map(|r| r.form_param("refresh_token").unwrap())
        .collect();
    // Each refresh spent the newest refresh token, each exactly once; no second password login.
    assert_eq!(refreshes, spent);
    assert_eq!(
        emulator
            .requests_for(Endpoint::AerionToken)
            .iter()
            .filter(|r| r.form_param("grant_type").as_deref() == Some("password"))
            .count(),
        1
    );

    // Revoked behind our back and no way to refresh: the password grant takes over.
    emulator.revoke_refresh_tokens();
    aerion.invalidate(&aerion.token().await.unwrap());
    aerion.token().await.unwrap();
    let last: Vec<_> = emulator
        .requests_for(Endpoint::AerionToken)
        .iter()
        .rev()
        .take(2)
        .filter_map(|r| r.form_param("grant_type"))
        .collect();
    assert_eq!(last, ["password", "refresh_token"]);
}

#[tokio::test]
async fn an_embedded_session_token_is_spent_once() {
    let emulator = Emulator::start().await.unwrap();
    let mut v = vars(&emulator);
    let session = emulator.issue_session_token(emulator.aurora_solar_tenant());
    v.insert("AURORA_SOLAR_SESSION_TOKEN".into(), session.clone());
    let options = ProviderOptions::new().http(fast_http());
    let first = from_lookup(|n| v.get(n).cloned(), ProviderKind::AuroraSolar, &options).unwrap();
    first.token().await.unwrap();
    let sent = emulator.requests_for(Endpoint::AuroraSolarCreateToken);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].query_param("session_token").as_deref(),
        Some(session.as_str())
    );

    // The same token in a second provider: refused by the server as spent, a user action.
    let second = from_lookup(|n| v.get(n).cloned(), ProviderKind::AuroraSolar, &options).unwrap();
    let err = second.token().await.unwrap_err();
    assert!(err.needs_user_action(), "{err:?}");
    assert_eq!(emulator.request_count(Endpoint::AuroraSolarCreateToken), 2);
}
