//! `partner-auth api` against the emulator: the request as the emulator saw it, the 401 retry,
//! the exit statuses, and a URL off the provider's API sending nothing.

mod common;

use common::emu::{emulator, secrets, set, vars};
use common::{Run, TempDir, command, run_async};
use partner_auth_emulator::{Endpoint, Fault, RecordedRequest, RunningEmulator};

/// Each provider with an API: a protected endpoint on it (the path given to `api`, the path the
/// emulator sees) and the endpoints that issue its token.
fn protected(emu: &RunningEmulator, provider: &str) -> (String, String, Endpoint, Endpoint) {
    match provider {
        "aerion" => (
            "/v1/users/me".to_owned(),
            "/aerion/v1/users/me".to_owned(),
            Endpoint::AerionMe,
            Endpoint::AerionToken,
        ),
        "aurora-uk" => (
            "/Accounts".to_owned(),
            "/aurora-uk/api/Accounts".to_owned(),
            Endpoint::AuroraUkApi,
            Endpoint::AuroraUkToken,
        ),
        "aurora-solar" => {
            let tenant = emu.aurora_solar_tenant();
            (
                format!("/tenants/{tenant}/projects"),
                format!("/aurora-solar/tenants/{tenant}/projects"),
                Endpoint::AuroraSolarProjects,
                Endpoint::AuroraSolarCreateToken,
            )
        }
        other => panic!("{other} has no API"),
    }
}

const API_PROVIDERS: [&str; 3] = ["aerion", "aurora-uk", "aurora-solar"];

/// The provider's variables plus the Aurora UK API base on the emulator.
fn api_vars(emu: &RunningEmulator, provider: &str) -> Vec<(&'static str, String)> {
    let mut vars = vars(emu, provider);
    if provider == "aurora-uk" {
        set(&mut vars, "AURORA_UK_API_URL", &emu.aurora_uk_api_base());
    }
    vars
}

async fn api(vars: &[(&'static str, String)], args: &[&str]) -> Run {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut all = vec!["api"];
    all.extend_from_slice(args);
    run_async(command(&all, &vars)).await
}

/// The bearer the request carried in `header`.
fn bearer<'a>(request: &'a RecordedRequest, header: &str) -> &'a str {
    request
        .header(header)
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_else(|| panic!("no bearer in {header}: {request:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_calls_each_providers_protected_endpoint() {
    let emu = emulator().await;
    for provider in API_PROVIDERS {
        emu.clear_requests();
        let (path, seen_path, endpoint, token_endpoint) = protected(&emu, provider);
        let out = api(
            &api_vars(&emu, provider),
            &[provider, &path, "-H", "X-Request-Id: cli-test-42"],
        )
        .await;
        out.assert_code(0);
        assert_eq!(out.stderr, "", "{provider}");
        // Not a terminal: the body as received, which is the emulator's JSON.
        let body: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
        assert!(body.is_object() || body.is_array(), "{provider}: {body}");

        assert_eq!(emu.request_count(token_endpoint), 1, "{provider}");
        let sent = emu.requests_for(endpoint);
        assert_eq!(sent.len(), 1, "{provider}");
        let sent = &sent[0];
        assert_eq!(sent.method, "GET");
        assert_eq!(sent.path, seen_path);
        assert_eq!(sent.header("x-request-id"), Some("cli-test-42"));
        assert!(!bearer(sent, "authorization").is_empty());
        assert!(sent.body.is_empty());
        // The token went nowhere else.
        let token = bearer(sent, "authorization").to_owned();
        assert!(!out.stdout.contains(&token));
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_method_headers_and_body_are_sent_and_an_error_status_exits_6() {
    let emu = emulator().await;
    let secrets = secrets(&emu);
    let (path, seen_path, _, _) = protected(&emu, "aerion");
    let body = r#"{"name":"Pat","tags":["a","b"]}"#;
    let out = api(
        &api_vars(&emu, "aerion"),
        &["aerion", &path, "-X", "patch", "-d", body, "-i"],
    )
    .await;
    // The emulator serves the endpoint for GET only: 405, an HTTP error.
    out.assert_code(6);
    common::assert_one_line(&out.stderr);
    assert!(
        out.stderr
            .starts_with("partner-auth: aerion: the API answered HTTP 405"),
        "{}",
        out.stderr
    );
    out.assert_no_secret_in_stderr(&secrets.iter().map(String::as_str).collect::<Vec<_>>());
    // -i: the status line and the headers, a blank line, then the body.
    assert!(
        out.stdout.starts_with("HTTP 405 Method Not Allowed\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\n\n"));
    // Refused by method, the request is recorded by its path.
    let sent = emu.requests_to(&seen_path);
    assert_eq!(sent.len(), 1, "not idempotent and answered: sent once");
    let sent = &sent[0];
    assert_eq!(sent.method, "PATCH");
    assert_eq!(sent.path, seen_path);
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.body, body.as_bytes());
    assert!(!bearer(sent, "authorization").is_empty());

    // A body from a file, with a content type of the caller's; POST by default.
    emu.clear_requests();
    let dir = TempDir::new("api-input");
    let file = dir.join("body.txt");
    std::fs::write(&file, "plain text body\n").unwrap();
    let out = api(
        &api_vars(&emu, "aerion"),
        &[
            "aerion",
            &path,
            "--input",
            file.to_str().unwrap(),
            "-H",
            "Content-Type: text/plain",
        ],
    )
    .await;
    out.assert_code(6);
    let sent = &emu.requests_to(&seen_path)[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.header("content-type"), Some("text/plain"));
    assert_eq!(sent.body, b"plain text body\n");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_on_a_valid_token_makes_one_new_token_and_one_replay() {
    let emu = emulator().await;
    for provider in API_PROVIDERS {
        emu.clear_requests();
        let (path, _, endpoint, token_endpoint) = protected(&emu, provider);
        emu.inject(endpoint, Fault::Unauthorized, 1);
        let out = api(&api_vars(&emu, provider), &[provider, &path]).await;
        out.assert_code(0);
        assert_eq!(out.stderr, "");
        assert_eq!(emu.request_count(token_endpoint), 2, "{provider}");
        let sent = emu.requests_for(endpoint);
        assert_eq!(sent.len(), 2, "{provider}: one try and one replay");
        assert_ne!(
            bearer(&sent[0], "authorization"),
            bearer(&sent[1], "authorization"),
            "{provider}: the replay carries the new token"
        );
    }

    // Refused again: the second 401 is the answer (exit 6), and no third try.
    emu.clear_requests();
    let (path, _, endpoint, token_endpoint) = protected(&emu, "aerion");
    emu.inject(endpoint, Fault::Unauthorized, 2);
    let out = api(&api_vars(&emu, "aerion"), &["aerion", &path]).await;
    out.assert_code(6);
    assert!(out.stderr.contains("HTTP 401"), "{}", out.stderr);
    assert_eq!(emu.request_count(endpoint), 2);
    assert_eq!(emu.request_count(token_endpoint), 2);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_past_the_retries_exits_6_and_token_failures_keep_their_status() {
    let emu = emulator().await;
    let (path, _, endpoint, token_endpoint) = protected(&emu, "aerion");
    emu.inject(endpoint, Fault::Status(503), 3);
    let out = api(&api_vars(&emu, "aerion"), &["aerion", &path]).await;
    out.assert_failure(6, "aerion", &["HTTP 503"]);
    assert_eq!(
        out.stdout, "",
        "no answer is handed back once the retries are used up"
    );
    assert_eq!(emu.request_count(endpoint), 3, "a GET is retried");

    // Wrong credentials: the token's status (3), and the API is never called.
    emu.clear_requests();
    let mut vars = api_vars(&emu, "aerion");
    set(
        &mut vars,
        "AERION_PASSWORD",
        "wrong-password-for-the-api-test",
    );
    let out = api(&vars, &["aerion", &path]).await;
    out.assert_failure(3, "aerion", &["credentials rejected"])
        .assert_no_secret_in_stderr(&["wrong-password-for-the-api-test"]);
    assert_eq!(emu.request_count(token_endpoint), 1);
    assert_eq!(emu.request_count(endpoint), 0);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_or_408_with_retry_after_exits_6_naming_the_status() {
    let emu = emulator().await;
    let secrets = secrets(&emu);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let (path, seen_path, endpoint, token_endpoint) = protected(&emu, "aerion");

    // A wait beyond the client's cap: the first answer ends the run.
    emu.inject(
        endpoint,
        Fault::StatusRetryAfter {
            status: 503,
            retry_after: 3600,
        },
        1,
    );
    let out = api(
        &api_vars(&emu, "aerion"),
        &["aerion", &path, "-H", "X-Request-Id: cli-retry-after"],
    )
    .await;
    out.assert_failure(
        6,
        "aerion",
        &["the API answered HTTP 503 (after the retries", "3600 s"],
    )
    .assert_no_secret_in_stderr(&secrets);
    let sent = emu.requests_for(endpoint);
    assert_eq!(sent.len(), 1, "a wait beyond the cap is not waited");
    assert_eq!(sent[0].method, "GET");
    assert_eq!(sent[0].path, seen_path);
    assert_eq!(sent[0].header("x-request-id"), Some("cli-retry-after"));
    assert!(!bearer(&sent[0], "authorization").is_empty());
    assert!(sent[0].body.is_empty());
    assert_eq!(emu.request_count(token_endpoint), 1);

    // A wait within the cap is honoured on every retry; the last answer names its status.
    emu.clear_requests();
    emu.inject(
        endpoint,
        Fault::StatusRetryAfter {
            status: 408,
            retry_after: 0,
        },
        3,
    );
    let out = api(&api_vars(&emu, "aerion"), &["aerion", &path]).await;
    out.assert_failure(
        6,
        "aerion",
        &["the API answered HTTP 408 (after the retries"],
    );
    let sent = emu.requests_for(endpoint);
    assert_eq!(sent.len(), 3, "a GET is retried");
    assert!(
        sent.iter()
            .all(|r| r.method == "GET" && r.path == seen_path)
    );
    assert_eq!(emu.pending_faults(endpoint), 0);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_off_the_providers_api_is_refused_and_nothing_is_sent() {
    let emu = emulator().await;
    let elsewhere = emulator().await;
    let secrets = secrets(&emu);
    let tenant = emu.aurora_solar_tenant().to_owned();
    let off_api = [
        // Another host (another port of loopback is another origin).
        format!("{}/v1/users/me", elsewhere.aerion_base()),
        // The same origin, another provider's API.
        format!("{}/tenants/{tenant}/projects", emu.aurora_solar_base()),
        // Climbing out of the base.
        "/../aurora-solar/tenants/x/projects".to_owned(),
        format!("{}/../aurora-uk/api/Accounts", emu.aerion_base()),
        // Not https to a remote host.
        "http://api.aerion.app/v1/users/me".to_owned(),
    ];
    for target in &off_api {
        let out = api(&api_vars(&emu, "aerion"), &["aerion", target]).await;
        out.assert_failure(
            2,
            "aerion",
            &["not on the provider's API", "nothing was sent"],
        )
        .assert_no_secret_in_stderr(&secrets.iter().map(String::as_str).collect::<Vec<_>>());
        // The argument is not echoed.
        assert!(!out.stderr.contains(target.as_str()), "{}", out.stderr);
    }
    assert!(emu.requests().is_empty(), "{:?}", emu.requests());
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );

    // The same URL written in full on the API is accepted.
    let full = format!("{}/v1/users/me", emu.aerion_base());
    api(&api_vars(&emu, "aerion"), &["aerion", &full])
        .await
        .assert_code(0);
    emu.shutdown().await;
    elsewhere.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aurora_uk_takes_the_header_its_page_names_when_configured() {
    let emu = emulator().await;
    let (path, _, endpoint, _) = protected(&emu, "aurora-uk");
    let mut vars = api_vars(&emu, "aurora-uk");
    set(&mut vars, "AURORA_UK_AUTH_HEADER", "Authentication");
    let out = api(&vars, &["aurora-uk", &path]).await;
    out.assert_code(0);
    let sent = &emu.requests_for(endpoint)[0];
    assert!(!bearer(sent, "authentication").is_empty());
    assert_eq!(sent.header("authorization"), None);

    // The token command prints the same header.
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run_async(command(&["token", "aurora-uk", "--header"], &vars)).await;
    out.assert_code(0);
    assert!(
        out.stdout.starts_with("Authentication: Bearer "),
        "{}",
        out.stdout
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sdk_has_no_api_and_a_bad_header_is_a_usage_error() {
    let emu = emulator().await;
    let out = api(
        &vars(&emu, "aurora-solar-sdk"),
        &["aurora-solar-sdk", "/tenants"],
    )
    .await;
    out.assert_failure(2, "aurora-solar-sdk", &["no REST API", "api aurora-solar"]);
    let (path, _, _, _) = protected(&emu, "aerion");
    for header in ["no colon here", "Bad Name: x", "Authorization: Bearer mine"] {
        let out = api(&api_vars(&emu, "aerion"), &["aerion", &path, "-H", header]).await;
        out.assert_failure(2, "aerion", &["-H (header 1)"]);
        assert!(!out.stderr.contains(header), "{}", out.stderr);
    }
    let out = api(&api_vars(&emu, "aerion"), &["aerion", &path, "-X", "GE T"]).await;
    out.assert_failure(2, "aerion", &["-X"]);
    assert!(emu.requests().is_empty(), "{:?}", emu.requests());
    emu.shutdown().await;
}
