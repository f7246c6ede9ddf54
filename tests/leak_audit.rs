//! The leak audit: every provider's success and failure paths against the emulator, with every
//! `tracing` event captured at TRACE, and `Debug`/`Display` of every public type built on the
//! way; none of the secrets used (passwords, client secrets, application and API keys, session
//! tokens, access tokens, refresh tokens, JWTs) may appear anywhere.
//!
//! `capture_logs` installs a process-wide subscriber, so this file is its own test binary and
//! holds one test.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{two_tries, vars};
use partner_auth::aerion::AerionBuilder;
use partner_auth::aurora_solar::{ClientSdkBuilder, PartnerAppBuilder, SdkUser};
use partner_auth::aurora_uk::AuroraUkBuilder;
use partner_auth::auth::{AuthMiddleware, AuthScope};
use partner_auth::{
    CacheConfig, Config, HttpClient, MemoryStore, ProviderKind, ProviderOptions, Secret, StoreKey,
    TokenProvider, TokenStore, from_lookup,
};
use partner_auth_emulator::{Emulator, Endpoint, Fault};

fn fast_http() -> HttpClient {
    two_tries(Duration::from_secs(2))
}

fn options() -> ProviderOptions {
    ProviderOptions::new()
        .http(fast_http())
        .cache(CacheConfig::new().negative_ttl(Duration::from_millis(1)))
}

/// Everything the process printed about itself, to search for secrets.
#[derive(Default)]
struct Seen {
    shown: Vec<String>,
    secrets: Vec<String>,
}

impl Seen {
    fn show(&mut self, what: impl std::fmt::Debug) {
        self.shown.push(format!("{what:?}"));
    }
    fn result<T: std::fmt::Debug>(&mut self, r: &Result<T, partner_auth::Error>) {
        match r {
            Ok(v) => self.shown.push(format!("{v:?}")),
            Err(e) => {
                self.shown.push(format!("{e:?}"));
                self.shown.push(e.to_string());
                self.shown
                    .push(partner_auth::token_provider::error_chain(e));
            }
        }
    }
    fn secret(&mut self, s: impl Into<String>) {
        let s = s.into();
        if !s.is_empty() {
            self.secrets.push(s);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_log_line_debug_or_error() {
    let logs = partner_auth::token_provider::testing::capture_logs();
    let emulator = Emulator::start().await.unwrap();
    let v = vars(&emulator);
    let mut seen = Seen::default();
    for name in [
        "AERION_PASSWORD",
        "AERION_CLIENT_SECRET",
        "AURORA_UK_CLIENT_SECRET",
        "AURORA_SOLAR_APPLICATION_KEY",
        "AURORA_SOLAR_API_KEY",
    ] {
        seen.secret(v[name].clone());
    }
    let lookup = |v: &HashMap<String, String>| {
        let v = v.clone();
        move |n: &str| v.get(n).cloned()
    };
    let opts = options();

    // --- Successes, through the facade, with a store so the stored state is audited too.
    let store = Arc::new(MemoryStore::new());
    let with_store = opts.clone().store(store.clone() as Arc<dyn TokenStore>);
    for kind in ProviderKind::ALL {
        let p = from_lookup(lookup(&v), *kind, &with_store).unwrap();
        let t = p.token().await;
        seen.result(&t);
        let t = t.unwrap();
        seen.secret(t.secret().expose_secret());
        seen.shown.push(
            t.authorization_value()
                .expose_secret()
                .replace(t.secret().expose_secret(), "<t>"),
        );
        // Invalidate and fetch again: Aerion's refresh grant, everyone's second fetch.
        p.invalidate(&t);
        let t2 = p.token().await.unwrap();
        seen.secret(t2.secret().expose_secret());
        seen.show(&t2);
        seen.show(&p);
    }
    // The protected resources through the middleware, with one 401 each (a retry).
    let http = fast_http();
    for (kind, endpoint, url) in [
        (
            ProviderKind::Aerion,
            Endpoint::AerionMe,
            format!("{}/v1/users/me", emulator.aerion_base()),
        ),
        (
            ProviderKind::AuroraUk,
            Endpoint::AuroraUkApi,
            format!("{}/Accounts", emulator.aurora_uk_api_base()),
        ),
        (
            ProviderKind::AuroraSolar,
            Endpoint::AuroraSolarProjects,
            format!(
                "{}/tenants/{}/projects",
                emulator.aurora_solar_base(),
                emulator.aurora_solar_tenant()
            ),
        ),
    ] {
        let p = from_lookup(lookup(&v), kind, &opts).unwrap();
        emulator.inject(endpoint, Fault::Unauthorized, 1);
        let mw = AuthMiddleware::new(Arc::clone(&p), AuthScope::parse(&url).unwrap());
        seen.show(&mw);
        let client = reqwest_middleware::ClientBuilder::new(http.reqwest().clone())
            .with(mw)
            .build();
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{kind}");
    }
    // Aerion's own API helper, and its refresh after a rotation.
    let aerion = AerionBuilder::from_env_with(lookup(&v))
        .unwrap()
        .http_client(fast_http())
        .build()
        .unwrap();
    let me = aerion.me().await;
    seen.result(&me);
    seen.show(&aerion);
    // Aurora UK's send helper.
    let uk = AuroraUkBuilder::from_env_with(lookup(&v))
        .unwrap()
        .http_client(fast_http())
        .build()
        .unwrap();
    let accounts = format!("{}/Accounts", emulator.aurora_uk_api_base());
    let sent = uk.send(|c| c.get(&accounts)).await;
    seen.shown
        .push(format!("{:?}", sent.as_ref().map(|r| r.status())));
    seen.show(&uk);

    // --- Failures.
    // Bad credentials, each provider.
    let mut bad = v.clone();
    bad.insert(
        "AERION_PASSWORD".into(),
        "wrong-aerion-password-0001".into(),
    );
    bad.insert(
        "AURORA_UK_CLIENT_SECRET".into(),
        "wrong-uk-client-secret-0001".into(),
    );
    bad.insert(
        "AURORA_SOLAR_APPLICATION_KEY".into(),
        "sk_sand_wrong_application_key_0001".into(),
    );
    bad.insert(
        "AURORA_SOLAR_API_KEY".into(),
        "sk_sand_wrong_api_key_0001".into(),
    );
    for s in [
        "wrong-aerion-password-0001",
        "wrong-uk-client-secret-0001",
        "sk_sand_wrong_application_key_0001",
        "sk_sand_wrong_api_key_0001",
    ] {
        seen.secret(s);
    }
    for kind in ProviderKind::ALL {
        let p = from_lookup(lookup(&bad), *kind, &opts).unwrap();
        let r = p.token().await;
        assert!(r.is_err(), "{kind} accepted bad credentials");
        seen.result(&r);
        seen.show(&p);
    }
    // A spent session token (embedded exchange): the second use is refused by the server.
    let session = emulator.issue_session_token(emulator.aurora_solar_tenant());
    seen.secret(session.clone());
    let mut emb = v.clone();
    emb.insert("AURORA_SOLAR_SESSION_TOKEN".into(), session.clone());
    let first = from_lookup(lookup(&emb), ProviderKind::AuroraSolar, &opts).unwrap();
    let t = first.token().await;
    seen.result(&t);
    seen.secret(t.unwrap().secret().expose_secret());
    let second = from_lookup(lookup(&emb), ProviderKind::AuroraSolar, &opts).unwrap();
    let r = second.token().await;
    assert!(r.as_ref().is_err_and(|e| e.needs_user_action()), "{r:?}");
    seen.result(&r);
    // The embedded builder and its provider, shown before and after.
    let emb_builder = PartnerAppBuilder::from_env_with(lookup(&emb)).unwrap();
    seen.show(&emb_builder);
    let app = emb_builder.http_client(fast_http()).build().unwrap();
    seen.show(&app);
    let key = app
        .embedded(emulator.aurora_solar_tenant(), Secret::new(session.clone()))
        .unwrap();
    seen.result(&key.token().await);
    seen.show(&key);
    // A dead refresh token with no password (SSO).
    let mut sso = v.clone();
    let user = sso.remove("AERION_USERNAME").unwrap();
    sso.remove("AERION_PASSWORD");
    let rt = emulator.issue_refresh_token(&user).unwrap();
    seen.secret(rt.clone());
    sso.insert("AERION_REFRESH_TOKEN".into(), rt);
    let p = from_lookup(lookup(&sso), ProviderKind::Aerion, &opts).unwrap();
    let t = p.token().await.unwrap();
    seen.secret(t.secret().expose_secret());
    emulator.revoke_refresh_tokens();
    p.invalidate(&t);
    let r = p.token().await;
    assert!(r.as_ref().is_err_and(|e| e.needs_user_action()), "{r:?}");
    seen.result(&r);
    seen.show(AerionBuilder::from_env_with(lookup(&sso)).unwrap());
    // 5xx and malformed answers on every token endpoint.
    for kind in ProviderKind::ALL {
        let endpoint = match kind {
            ProviderKind::Aerion => Endpoint::AerionToken,
            ProviderKind::AuroraUk => Endpoint::AuroraUkToken,
            ProviderKind::AuroraSolar => Endpoint::AuroraSolarCreateToken,
            _ => Endpoint::AuroraSolarGenerateToken,
        };
        for fault in [
            Fault::Status(503),
            Fault::TruncatedJson,
            Fault::MalformedBody,
            Fault::ErrorBody200,
            Fault::ResetConnection,
        ] {
            emulator.clear_faults();
            emulator.inject(endpoint, fault.clone(), 5);
            let p = from_lookup(lookup(&v), *kind, &opts).unwrap();
            let r = p.token().await;
            assert!(r.is_err(), "{kind} {fault:?}");
            seen.result(&r);
        }
    }
    emulator.clear_faults();

    // --- Every other public type with a Debug or Display.
    seen.show(AerionBuilder::from_env_with(lookup(&v)).unwrap());
    seen.show(AuroraUkBuilder::from_env_with(lookup(&v)).unwrap());
    seen.show(PartnerAppBuilder::from_env_with(lookup(&v)).unwrap());
    seen.show(ClientSdkBuilder::from_env_with(lookup(&v)).unwrap());
    seen.show(SdkUser::new("someone@example.test").with_name("A", "B"));
    seen.show(&opts);
    seen.show(&with_store);
    seen.show(fast_http());
    seen.show(CacheConfig::new());
    seen.show(Secret::new(v["AERION_PASSWORD"].clone()));
    let key = StoreKey::new("aerion", "acme", "tenant", "user");
    seen.shown.push(key.to_string());
    for kind in ProviderKind::ALL {
        seen.shown.push(kind.to_string());
    }
    // Every state the store holds (refresh tokens included), and the store itself.
    seen.show(&store);
    let toml = format!(
        "[providers.a]\nprovider = \"aerion\"\nbase_url = \"{}\"\ncompany_url = \"{}\"\nusername = \"{}\"\npassword = \"{}\"\n",
        v["AERION_BASE_URL"], v["AERION_COMPANY_URL"], v["AERION_USERNAME"], v["AERION_PASSWORD"]
    );
    let config = Config::from_toml_str(&toml).unwrap();
    seen.show(&config);
    seen.show(config.build().unwrap());
    let bad_toml = format!("{toml}passwrd = \"{}\"\n", v["AERION_PASSWORD"]);
    let e = Config::from_toml_str(&bad_toml).map(|_| ());
    seen.result(&e);

    // Every refresh token the emulator issued or accepted, and every bearer it saw.
    for r in emulator.requests() {
        if let Some(rt) = r.form_param("refresh_token") {
            seen.secret(rt);
        }
        if let Some(b) = r.bearer() {
            seen.secret(b.to_owned());
        }
    }
    seen.secret(emulator.current_refresh_token(&user).unwrap_or_default());

    // --- The audit.
    seen.secrets.sort();
    seen.secrets.dedup();
    assert!(
        seen.secrets.len() >= 20,
        "too few secrets: {}",
        seen.secrets.len()
    );
    let captured = logs.contents();
    assert!(
        captured.contains("token fetched") && captured.contains("token fetch failed"),
        "the log capture saw neither a fetch nor a failure"
    );
    assert!(captured.lines().count() > 100, "too few log lines");
    let secrets: Vec<&str> = seen.secrets.iter().map(String::as_str).collect();
    logs.assert_absent(&secrets);
    for shown in &seen.shown {
        for secret in &secrets {
            assert!(!shown.contains(secret), "a secret is shown: {shown}");
        }
    }
    println!(
        "leak audit: {} secrets, {} log lines, {} Debug/Display strings",
        secrets.len(),
        captured.lines().count(),
        seen.shown.len()
    );
}
