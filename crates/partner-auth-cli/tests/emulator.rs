//! The built binary against the emulator on loopback, for every provider and flow: what it
//! printed, how it exited, and what the emulator saw.

mod common;

use std::time::Duration;

use common::emu::{
    PROVIDERS, assert_failed, emulator, emulator_and_folder, emulator_and_store, emulator_issued,
    jwt_claims, partner_auth, secrets, set, token_endpoint, token_of, unset, vars,
};
use partner_auth_emulator::{Emulator, Endpoint, Fault, RunningEmulator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prints_exactly_the_token_the_emulator_issued() {
    let emu = emulator().await;
    for provider in PROVIDERS {
        emu.clear_requests();
        let out = partner_auth(provider, &vars(&emu, provider), &[]).await;
        let token = token_of(&out);
        assert_eq!(emu.request_count(token_endpoint(provider)), 1, "{provider}");
        assert!(emulator_issued(&emu, provider, &token).await, "{provider}");
        if provider == "aerion" {
            // A password grant with the tenant header.
            let sent = &emu.requests_for(Endpoint::AerionToken)[0];
            assert_eq!(sent.form_param("grant_type").as_deref(), Some("password"));
            assert_eq!(sent.header("companyurl"), Some(emu.aerion_tenant()));
        }
    }
    // A forged token is not accepted: the check above can fail.
    assert!(!emulator_issued(&emu, "aerion", "forged-token").await);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_has_the_three_fields_and_an_rfc3339_utc_expiry() {
    let emu = emulator().await;
    let lifetimes = [
        ("aerion", emu.config().aerion_token_lifetime),
        ("aurora-uk", emu.config().aurora_uk_token_lifetime),
        (
            "aurora-solar",
            emu.config().aurora_solar_temporary_key_lifetime,
        ),
        ("aurora-solar-sdk", emu.config().aurora_solar_jwt_lifetime),
    ];
    for (provider, lifetime) in lifetimes {
        let before = chrono::DateTime::<chrono::Utc>::from(emu.now());
        let out = partner_auth(provider, &vars(&emu, provider), &["--json"]).await;
        out.assert_code(0);
        assert_eq!(out.stderr, "");
        let line = out.stdout.strip_suffix('\n').expect("one line");
        assert!(!line.contains('\n'));
        assert!(line.starts_with(r#"{"access_token":""#), "{line}");
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        let obj = v.as_object().expect("an object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["access_token", "expires_at", "token_type"],
            "{provider}"
        );
        let token = obj["access_token"].as_str().expect("a string");
        assert!(emulator_issued(&emu, provider, token).await, "{provider}");
        assert!(
            obj["token_type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
            "{provider}: {line}"
        );
        let expires_at = obj["expires_at"].as_str().expect("an expiry");
        // RFC 3339, UTC, whole seconds: 2026-11-22T10:00:00Z.
        assert_eq!(expires_at.len(), 20, "{expires_at}");
        assert!(expires_at.ends_with('Z') && expires_at.as_bytes()[10] == b'T');
        let at = chrono::DateTime::parse_from_rfc3339(expires_at).expect("RFC 3339");
        let expected = before + chrono::Duration::from_std(lifetime).unwrap();
        let off_by = (at.to_utc() - expected).num_seconds().abs();
        assert!(off_by <= 5, "{provider}: {expires_at} vs {expected}");
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_variable_exits_2_and_nothing_is_sent() {
    let emu = emulator().await;
    let secrets = secrets(&emu);
    let cases = [
        ("aerion", "AERION_COMPANY_URL"),
        ("aerion", "AERION_USERNAME"),
        ("aurora-uk", "AURORA_UK_ENV"),
        ("aurora-uk", "AURORA_UK_CLIENT_SECRET"),
        ("aurora-solar", "AURORA_SOLAR_APPLICATION_KEY"),
        ("aurora-solar", "AURORA_SOLAR_TENANT_ID"),
        ("aurora-solar-sdk", "AURORA_SOLAR_API_KEY"),
        ("aurora-solar-sdk", "AURORA_SOLAR_USER_EMAIL"),
    ];
    for (provider, missing) in cases {
        let mut vars = vars(&emu, provider);
        unset(&mut vars, missing);
        let out = partner_auth(provider, &vars, &[]).await;
        let needle = if missing == "AERION_USERNAME" {
            "AERION_" // the builder names the username/password/refresh-token rule
        } else {
            missing
        };
        assert_failed(
            &out,
            2,
            provider,
            &["invalid configuration", needle],
            &secrets,
        );
    }
    // A bad timeout is a configuration error too.
    let mut vars = vars(&emu, "aerion");
    set(&mut vars, "PARTNER_AUTH_TIMEOUT", "0");
    let out = partner_auth("aerion", &vars, &[]).await;
    assert_failed(&out, 2, "aerion", &["PARTNER_AUTH_TIMEOUT"], &secrets);
    assert!(emu.requests().is_empty(), "{:?}", emu.requests());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_sdk_user_without_names_exits_2_after_the_lookup_and_invites_nobody() {
    let emu = emulator().await;
    let secrets = secrets(&emu);
    let mut vars = vars(&emu, "aurora-solar-sdk");
    set(
        &mut vars,
        "AURORA_SOLAR_USER_EMAIL",
        "newcomer@emulator.test",
    );
    unset(&mut vars, "AURORA_SOLAR_USER_FIRST_NAME");
    unset(&mut vars, "AURORA_SOLAR_USER_LAST_NAME");
    let out = partner_auth("aurora-solar-sdk", &vars, &[]).await;
    assert_failed(
        &out,
        2,
        "aurora-solar-sdk",
        &["AURORA_SOLAR_USER_FIRST_NAME"],
        &secrets,
    );
    assert_eq!(emu.request_count(Endpoint::AuroraSolarUsers), 1);
    assert_eq!(emu.request_count(Endpoint::AuroraSolarInvite), 0);
    assert_eq!(emu.request_count(Endpoint::AuroraSolarGenerateToken), 0);

    // With the names the user is invited and gets a JWT.
    set(&mut vars, "AURORA_SOLAR_USER_FIRST_NAME", "New");
    set(&mut vars, "AURORA_SOLAR_USER_LAST_NAME", "Comer");
    let token = token_of(&partner_auth("aurora-solar-sdk", &vars, &[]).await);
    assert_eq!(emu.request_count(Endpoint::AuroraSolarInvite), 1);
    assert_eq!(jwt_claims(&token)["email"], "newcomer@emulator.test");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_user_invited_earlier_who_never_logged_in_is_not_locked_out() {
    // Invited users stay `invited`: the second run's lookup of active users passes the account
    // over, the invitation is refused (422, the email is taken), and the account is used anyway.
    let emu = Emulator::builder()
        .aurora_solar_invitee_status("invited")
        .start()
        .await
        .expect("the emulator starts");
    let mut vars = vars(&emu, "aurora-solar-sdk");
    set(
        &mut vars,
        "AURORA_SOLAR_USER_EMAIL",
        "invitee@emulator.test",
    );
    set(&mut vars, "AURORA_SOLAR_USER_FIRST_NAME", "In");
    set(&mut vars, "AURORA_SOLAR_USER_LAST_NAME", "Vitee");
    let first = token_of(&partner_auth("aurora-solar-sdk", &vars, &[]).await);
    assert_eq!(jwt_claims(&first)["email"], "invitee@emulator.test");
    assert_eq!(emu.request_count(Endpoint::AuroraSolarInvite), 1);
    let invitee = emu
        .aurora_solar_users(emu.aurora_solar_tenant())
        .into_iter()
        .find(|u| u.email == "invitee@emulator.test")
        .expect("the invited user");
    assert_eq!(invitee.account_status, "invited");

    let second = token_of(&partner_auth("aurora-solar-sdk", &vars, &[]).await);
    let claims = jwt_claims(&second);
    assert_eq!(claims["email"], "invitee@emulator.test");
    assert_eq!(claims["id"], invitee.id.as_str());
    // Lookup, refused invite, lookup of any status, generate.
    assert_eq!(emu.request_count(Endpoint::AuroraSolarUsers), 3);
    assert_eq!(emu.request_count(Endpoint::AuroraSolarInvite), 2);
    assert_eq!(emu.request_count(Endpoint::AuroraSolarGenerateToken), 2);
    // Still one account with that email.
    let accounts = emu
        .aurora_solar_users(emu.aurora_solar_tenant())
        .into_iter()
        .filter(|u| u.email == "invitee@emulator.test")
        .count();
    assert_eq!(accounts, 1);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_mismatch_exits_4_after_discovery() {
    // The emulator's issuer without Auth0's trailing `/`: discovery is sent (so not exit 2, which
    // promises nothing was sent) and its document names another issuer.
    let emu = emulator().await;
    let secrets = secrets(&emu);
    let mut vars = vars(&emu, "aurora-uk");
    let issuer = emu.aurora_uk_issuer().to_owned();
    let without_slash = issuer.trim_end_matches('/').to_owned();
    set(&mut vars, "AURORA_UK_ISSUER", &without_slash);
    let out = partner_auth("aurora-uk", &vars, &[]).await;
    assert_failed(
        &out,
        4,
        "aurora-uk",
        &["AURORA_UK_ISSUER", &issuer, &without_slash],
        &secrets,
    );
    assert_eq!(emu.request_count(Endpoint::AuroraUkDiscovery), 1);
    assert_eq!(emu.request_count(Endpoint::AuroraUkToken), 0);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_exit_3() {
    let emu = emulator().await;
    let wrong = "wrong-secret-for-the-cli-test";
    let mut secrets = secrets(&emu);
    secrets.push(wrong.to_owned());
    let cases = [
        ("aerion", "AERION_PASSWORD", wrong.to_owned()),
        ("aurora-uk", "AURORA_UK_CLIENT_SECRET", wrong.to_owned()),
        (
            "aurora-solar",
            "AURORA_SOLAR_APPLICATION_KEY",
            format!("sk_sand_{wrong}"),
        ),
        (
            "aurora-solar-sdk",
            "AURORA_SOLAR_API_KEY",
            format!("sk_sand_{wrong}"),
        ),
    ];
    for (provider, var, value) in cases {
        emu.clear_requests();
        let mut vars = vars(&emu, provider);
        set(&mut vars, var, &value);
        let out = partner_auth(provider, &vars, &[]).await;
        assert_failed(&out, 3, provider, &["credentials rejected"], &secrets);
        assert!(
            !emu.requests().is_empty(),
            "{provider}: the request was sent"
        );
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_refresh_token_with_no_password_exits_3() {
    let emu = emulator().await;
    let username = emu.config().aerion_users[0].username.clone();
    let refresh = emu.issue_refresh_token(&username).expect("a known user");
    let mut vars = vars(&emu, "aerion");
    unset(&mut vars, "AERION_USERNAME");
    unset(&mut vars, "AERION_PASSWORD");
    set(&mut vars, "AERION_REFRESH_TOKEN", &refresh);
    let first = token_of(&partner_auth("aerion", &vars, &[]).await);
    assert!(emulator_issued(&emu, "aerion", &first).await);
    // The first run rotated the refresh token; without a store the second run still has the
    // spent one.
    let out = partner_auth("aerion", &vars, &[]).await;
    let mut secrets = secrets(&emu);
    secrets.extend([refresh, first]);
    secrets.extend(emu.current_refresh_token(&username));
    assert_failed(&out, 3, "aerion", &["user action needed"], &secrets);
    let grants: Vec<_> = emu
        .requests_for(Endpoint::AerionToken)
        .iter()
        .map(|r| r.form_param("grant_type").unwrap_or_default())
        .collect();
    assert_eq!(grants, ["refresh_token", "refresh_token"]);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_answers_exit_4() {
    let emu = emulator().await;
    let secrets = secrets(&emu);
    for provider in PROVIDERS {
        let endpoint = token_endpoint(provider);
        emu.clear_requests();
        emu.inject(endpoint, Fault::MalformedBody, 1);
        let out = partner_auth(provider, &vars(&emu, provider), &[]).await;
        assert_failed(&out, 4, provider, &["malformed response"], &secrets);
        assert_eq!(emu.request_count(endpoint), 1, "{provider}: not retried");

        emu.inject(endpoint, Fault::OversizedBody(2 * 1024 * 1024), 1);
        let out = partner_auth(provider, &vars(&emu, provider), &[]).await;
        assert_failed(&out, 4, provider, &["larger than"], &secrets);
        assert_eq!(emu.pending_faults(endpoint), 0);
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_and_a_429_with_retry_after_are_retried() {
    let emu = emulator().await;
    let secrets = secrets(&emu);
    for provider in PROVIDERS {
        let endpoint = token_endpoint(provider);
        emu.clear_requests();
        emu.inject(endpoint, Fault::Status(503), 2);
        if sent_once(provider) {
            let out = partner_auth(provider, &vars(&emu, provider), &[]).await;
            assert_failed(&out, 4, provider, &["HTTP status 503"], &secrets);
            assert_eq!(emu.request_count(endpoint), 1, "{provider}: sent once");
            emu.clear_faults();
            continue;
        }
        let token = token_of(&partner_auth(provider, &vars(&emu, provider), &[]).await);
        assert!(emulator_issued(&emu, provider, &token).await, "{provider}");
        assert_eq!(
            emu.request_count(endpoint),
            3,
            "{provider}: two 503s, then a token"
        );
    }
    for provider in PROVIDERS {
        let endpoint = token_endpoint(provider);
        emu.clear_requests();
        emu.inject(
            endpoint,
            Fault::RateLimited {
                retry_after: Some(1),
            },
            1,
        );
        let out = partner_auth(provider, &vars(&emu, provider), &[]).await;
        if sent_once(provider) {
            assert_failed(&out, 4, provider, &["rate limited"], &secrets);
            assert_eq!(emu.request_count(endpoint), 1, "{provider}: sent once");
            continue;
        }
        let token = token_of(&out);
        assert!(emulator_issued(&emu, provider, &token).await, "{provider}");
        assert_eq!(emu.request_count(endpoint), 2, "{provider}");
        // Retry-After was honoured (1 s), and not much more.
        assert!(
            out.elapsed >= Duration::from_millis(950),
            "{:?}",
            out.elapsed
        );
        assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_5xx_past_the_retries_exit_4() {
    let emu = emulator().await;
    let secrets = secrets(&emu);
    for provider in PROVIDERS {
        let endpoint = token_endpoint(provider);
        emu.clear_requests();
        emu.inject(endpoint, Fault::RateLimited { retry_after: None }, 3);
        let out = partner_auth(provider, &vars(&emu, provider), &[]).await;
        assert_failed(&out, 4, provider, &["rate limited"], &secrets);
        let tries = if sent_once(provider) { 1 } else { 3 };
        assert_eq!(emu.request_count(endpoint), tries, "{provider}");
        emu.clear_faults();

        // Retry-After beyond the client's cap ends the retries at once.
        emu.clear_requests();
        emu.inject(
            endpoint,
            Fault::RateLimited {
                retry_after: Some(3600),
            },
            1,
        );
        let out = partner_auth(provider, &vars(&emu, provider), &[]).await;
        assert_failed(&out, 4, provider, &["rate limited", "3600"], &secrets);
        assert_eq!(emu.request_count(endpoint), 1, "{provider}");

        emu.inject(endpoint, Fault::Status(502), 3);
        let out = partner_auth(provider, &vars(&emu, provider), &[]).await;
        assert_failed(&out, 4, provider, &["HTTP status 502"], &secrets);
        emu.clear_faults();
    }
    emu.shutdown().await;
}

/// Whether the provider's token request is sent once, never repeated once it may have reached
/// the server: a Client SDK `generate_token` repeated can end the session holding the first JWT.
fn sent_once(provider: &str) -> bool {
    provider == "aurora-solar-sdk"
}

async fn hang_is_cut_off(provider: &str, endpoint: Endpoint) {
    let emu = emulator().await;
    let secrets = secrets(&emu);
    emu.inject(endpoint, Fault::Hang, 10);
    let mut vars = vars(&emu, provider);
    set(&mut vars, "PARTNER_AUTH_TIMEOUT", "1");
    let out = partner_auth(provider, &vars, &[]).await;
    assert_failed(
        &out,
        4,
        provider,
        &["timed out after ", "cut off at 1s (PARTNER_AUTH_TIMEOUT)"],
        &secrets,
    );
    // Three attempts of one second each, with short backoffs between them.
    assert!(out.elapsed < Duration::from_secs(8), "{:?}", out.elapsed);
    assert!(emu.request_count(endpoint) >= 1);
    emu.clear_faults();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_aerion_is_cut_off_by_partner_auth_timeout() {
    hang_is_cut_off("aerion", Endpoint::AerionToken).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_aurora_uk_discovery_is_cut_off_by_partner_auth_timeout() {
    hang_is_cut_off("aurora-uk", Endpoint::AuroraUkDiscovery).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_aurora_solar_is_cut_off_by_partner_auth_timeout() {
    hang_is_cut_off("aurora-solar", Endpoint::AuroraSolarCreateToken).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_aurora_solar_sdk_is_cut_off_by_partner_auth_timeout() {
    hang_is_cut_off("aurora-solar-sdk", Endpoint::AuroraSolarUsers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_serves_a_fresh_token_with_no_request() {
    let (emu, dir) = emulator_and_folder("store-reuse").await;
    for provider in PROVIDERS {
        let store = dir.join(format!("{provider}.json"));
        let store_arg = store.to_str().unwrap();
        emu.clear_requests();
        let first =
            token_of(&partner_auth(provider, &vars(&emu, provider), &["--store", store_arg]).await);
        assert!(!emu.requests().is_empty());
        #[cfg(unix)]
        assert_eq!(common::mode(&store), 0o600, "{provider}");
        let stored = std::fs::read_to_string(&store).unwrap();
        assert!(
            stored.contains(&first),
            "{provider}: the token is in the store"
        );
        for secret in secrets(&emu) {
            assert!(
                !stored.contains(&secret),
                "{provider}: a credential is in the store"
            );
        }

        emu.clear_requests();
        let second =
            token_of(&partner_auth(provider, &vars(&emu, provider), &["--store", store_arg]).await);
        assert_eq!(second, first, "{provider}");
        assert!(
            emu.requests().is_empty(),
            "{provider}: {:?}",
            emu.requests()
        );

        // --json from the store too.
        let out = partner_auth(
            provider,
            &vars(&emu, provider),
            &["--store", store_arg, "--json"],
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(out.stdout.trim_end()).unwrap();
        assert_eq!(v["access_token"], first.as_str());
        assert!(v["expires_at"].is_string());
        assert!(emu.requests().is_empty());

        // Without the store the next run asks again.
        let third = token_of(&partner_auth(provider, &vars(&emu, provider), &[]).await);
        assert_ne!(third, first, "{provider}");
        assert_eq!(emu.request_count(token_endpoint(provider)), 1);
    }
    emu.shutdown().await;
}

/// Rewrites every entry of a store file as expired a minute ago (in place: the mode stays).
fn expire_store(path: &std::path::Path, now_unix: u64) {
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let entries = file["entries"].as_object_mut().expect("entries");
    assert_eq!(entries.len(), 1);
    for entry in entries.values_mut() {
        entry["expires_at"] = (now_unix - 60).into();
    }
    std::fs::write(path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
}

fn unix_now(emu: &RunningEmulator) -> u64 {
    emu.now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_stored_aerion_token_is_renewed_with_the_stored_refresh_token() {
    let (emu, _dir, store) = emulator_and_store("store-renew", "aerion.json").await;
    let store_arg = store.to_str().unwrap();
    let username = emu.config().aerion_users[0].username.clone();

    let first =
        token_of(&partner_auth("aerion", &vars(&emu, "aerion"), &["--store", store_arg]).await);
    let refresh = emu
        .current_refresh_token(&username)
        .expect("a refresh token");
    assert!(std::fs::read_to_string(&store).unwrap().contains(&refresh));
    expire_store(&store, unix_now(&emu));
    #[cfg(unix)]
    assert_eq!(common::mode(&store), 0o600);

    emu.clear_requests();
    let second =
        token_of(&partner_auth("aerion", &vars(&emu, "aerion"), &["--store", store_arg]).await);
    assert_ne!(second, first);
    assert!(emulator_issued(&emu, "aerion", &second).await);
    let sent = emu.requests_for(Endpoint::AerionToken);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].form_param("grant_type").as_deref(),
        Some("refresh_token")
    );
    assert_eq!(sent[0].form_param("refresh_token"), Some(refresh.clone()));
    assert_eq!(sent[0].form_param("password"), None);
    // The rotated refresh token was saved.
    let rotated = emu.current_refresh_token(&username).expect("rotated");
    assert_ne!(rotated, refresh);
    let stored = std::fs::read_to_string(&store).unwrap();
    assert!(stored.contains(&rotated) && stored.contains(&second));
    assert!(!stored.contains(&emu.config().aerion_users[0].password));
    #[cfg(unix)]
    assert_eq!(common::mode(&store), 0o600);

    // And the renewed token is served from the store next time.
    emu.clear_requests();
    let third =
        token_of(&partner_auth("aerion", &vars(&emu, "aerion"), &["--store", store_arg]).await);
    assert_eq!(third, second);
    assert!(emu.requests().is_empty());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_stored_temporary_key_is_renewed_with_the_application_key() {
    let (emu, _dir, store) = emulator_and_store("store-renew-solar", "solar.json").await;
    let store_arg = store.to_str().unwrap();
    let vars = vars(&emu, "aurora-solar");
    let first = token_of(&partner_auth("aurora-solar", &vars, &["--store", store_arg]).await);
    expire_store(&store, unix_now(&emu));
    emu.clear_requests();
    let second = token_of(&partner_auth("aurora-solar", &vars, &["--store", store_arg]).await);
    assert_ne!(second, first);
    assert_eq!(emu.request_count(Endpoint::AuroraSolarCreateToken), 1);
    assert!(std::fs::read_to_string(&store).unwrap().contains(&second));
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_token_is_spent_once() {
    let emu = emulator().await;
    let tenant = emu.aurora_solar_tenant().to_owned();
    let session = emu.issue_session_token(&tenant);
    let mut vars = vars(&emu, "aurora-solar");
    set(&mut vars, "AURORA_SOLAR_SESSION_TOKEN", &session);

    let key = token_of(&partner_auth("aurora-solar", &vars, &[]).await);
    assert!(emulator_issued(&emu, "aurora-solar", &key).await);

    let out = partner_auth("aurora-solar", &vars, &[]).await;
    let mut secrets = secrets(&emu);
    secrets.extend([session.clone(), key]);
    assert_failed(&out, 3, "aurora-solar", &["session token"], &secrets);

    let exchanges = emu.requests_for(Endpoint::AuroraSolarCreateToken);
    assert_eq!(exchanges.len(), 2, "the second run reached the emulator");
    for exchange in &exchanges {
        assert_eq!(exchange.query_param("session_token"), Some(session.clone()));
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_token_exchange_is_never_retried() {
    let emu = emulator().await;
    let tenant = emu.aurora_solar_tenant().to_owned();
    let session = emu.issue_session_token(&tenant);
    let mut vars = vars(&emu, "aurora-solar");
    set(&mut vars, "AURORA_SOLAR_SESSION_TOKEN", &session);
    emu.inject(Endpoint::AuroraSolarCreateToken, Fault::Status(503), 1);
    let out = partner_auth("aurora-solar", &vars, &[]).await;
    let mut secrets = secrets(&emu);
    secrets.push(session);
    assert_failed(&out, 4, "aurora-solar", &["503"], &secrets);
    assert_eq!(emu.request_count(Endpoint::AuroraSolarCreateToken), 1);
    emu.shutdown().await;
}
