//! Mistakes are named: a token URL that leads nowhere, a host that refuses, a timeout, a
//! certificate for another host, a damaged store entry and a mistyped argument each get one line
//! that says what was wrong and where, and never a secret.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::emu::{emulator, partner_auth, secrets, set, vars};
use common::{Run, TempDir, closed_port, command, run_async};
use partner_auth_emulator::{Endpoint, Fault};
use token_provider::testing::TlsServer;

async fn cli(args: &[&str], vars: &[(&'static str, String)]) -> Run {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_async(command(args, &vars)).await
}

/// Asserts the run exited `code`, printed nothing on stdout and exactly `line` on stderr, and
/// that no secret of `secrets` appears.
#[track_caller]
fn assert_line(out: &Run, code: i32, line: &str, secrets: &[String]) {
    out.assert_code(code);
    assert_eq!(out.stdout, "", "{out:?}");
    assert_eq!(out.stderr, format!("{line}\n"));
    for secret in secrets {
        assert!(!out.stderr.contains(secret.as_str()), "{out:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_url_that_answers_404_is_a_configuration_error_naming_url_and_variable() {
    let emu = emulator().await;
    let secrets = secrets(&emu);
    let port = emu.addr().port();

    let mut env = vars(&emu, "aerion");
    set(
        &mut env,
        "AERION_BASE_URL",
        &format!("http://127.0.0.1:{port}/wrong"),
    );
    let out = partner_auth("aerion", &env, &[]).await;
    assert_line(
        &out,
        2,
        &format!(
            "partner-auth: aerion: invalid configuration: `AERION_BASE_URL` leads to no token \
             endpoint: http://127.0.0.1:{port}/wrong/oauth2/token answered HTTP 404"
        ),
        &secrets,
    );

    // Aurora Solar: the ids in the path are named too (a 404 there can mean no such tenant).
    let mut env = vars(&emu, "aurora-solar");
    set(
        &mut env,
        "AURORA_SOLAR_BASE_URL",
        &format!("http://127.0.0.1:{port}/wrong"),
    );
    let tenant = emu.aurora_solar_tenant().to_owned();
    let out = partner_auth("aurora-solar", &env, &[]).await;
    assert_line(
        &out,
        2,
        &format!(
            "partner-auth: aurora-solar: invalid configuration: `AURORA_SOLAR_BASE_URL` leads to \
             no token endpoint: http://127.0.0.1:{port}/wrong/partner_applications/\
             emulator-application/tenants/{tenant}/create_token answered HTTP 404 (no such \
             application or tenant, or the application is not authorized for this tenant: \
             AURORA_SOLAR_APPLICATION_ID and AURORA_SOLAR_TENANT_ID make the path)"
        ),
        &secrets,
    );
    emu.shutdown().await;
}

/// A loopback web server that answers every request with the same HTML page (a base URL that
/// points at a web site), until the test ends.
fn html_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let page = "<!DOCTYPE html><html><body>Welcome</body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_url_that_answers_an_html_page_is_a_configuration_error() {
    let emu = emulator().await;
    let secrets = secrets(&emu);
    let web = html_server();
    let mut env = vars(&emu, "aerion");
    set(
        &mut env,
        "AERION_BASE_URL",
        &format!("http://127.0.0.1:{web}"),
    );
    let out = partner_auth("aerion", &env, &[]).await;
    assert_line(
        &out,
        2,
        &format!(
            "partner-auth: aerion: invalid configuration: `AERION_BASE_URL` leads to no token \
             endpoint: http://127.0.0.1:{web}/oauth2/token answered with an HTML page (HTTP 200)"
        ),
        &secrets,
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_names_host_and_port() {
    let emu = emulator().await;
    let secrets = secrets(&emu);
    let port = closed_port();
    let mut env = vars(&emu, "aerion");
    set(
        &mut env,
        "AERION_BASE_URL",
        &format!("http://127.0.0.1:{port}/aerion"),
    );
    let out = partner_auth("aerion", &env, &[]).await;
    assert_line(
        &out,
        4,
        &format!(
            "partner-auth: aerion: transport error reaching 127.0.0.1:{port}: error sending \
             request: client error (Connect): tcp connect error: Connection refused (os error 111)"
        ),
        &secrets,
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_names_the_limit_the_attempts_and_the_total() {
    let emu = emulator().await;
    let secrets = secrets(&emu);
    let port = emu.addr().port();
    emu.inject(Endpoint::AerionToken, Fault::Hang, 10);
    let mut env = vars(&emu, "aerion");
    set(&mut env, "PARTNER_AUTH_TIMEOUT", "1");
    let out = partner_auth("aerion", &env, &[]).await;
    // The total is measured: read it back, check it, and the line around it is exact.
    let total = out
        .stderr
        .strip_prefix("partner-auth: aerion: timed out after ")
        .and_then(|rest| rest.split_once("s:"))
        .map(|(secs, _)| secs.to_owned())
        .unwrap_or_else(|| panic!("{out:?}"));
    let secs: f64 = total.parse().expect("a number of seconds");
    assert!((3.0..6.0).contains(&secs), "{out:?}");
    assert_line(
        &out,
        4,
        &format!(
            "partner-auth: aerion: timed out after {total}s: 3 attempts to 127.0.0.1:{port}, each \
             cut off at 1s (PARTNER_AUTH_TIMEOUT)"
        ),
        &secrets,
    );
    emu.clear_faults();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_names_both() {
    let Some(server) = TlsServer::start("DNS:other.example") else {
        eprintln!("openssl is not installed: skipped");
        return;
    };
    let (port, cert) = (server.port(), server.certificate());

    let emu = emulator().await;
    let secrets = secrets(&emu);
    let mut env = vars(&emu, "aerion");
    set(
        &mut env,
        "AERION_BASE_URL",
        &format!("https://localhost:{port}/aerion"),
    );
    // The certificate is trusted (it is the only root): only its name is wrong.
    set(&mut env, "SSL_CERT_FILE", cert.to_str().unwrap());
    let out = partner_auth("aerion", &env, &[]).await;
    assert_line(
        &out,
        2,
        &format!(
            "partner-auth: aerion: invalid configuration: `tls` localhost:{port} presented a \
             certificate for other.example: the name localhost was checked against it and is \
             not one it names"
        ),
        &secrets,
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_entry_names_the_store_and_the_entry() {
    let emu = emulator().await;
    let secrets = secrets(&emu);
    let dir = TempDir::new("damaged");
    let store = dir.join("tokens.json");
    let store_arg = store.to_str().unwrap();
    let env = vars(&emu, "aerion");
    partner_auth("aerion", &env, &["--store", store_arg])
        .await
        .assert_code(0);
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&store).unwrap()).unwrap();
    let entries = file["entries"].as_object_mut().unwrap();
    assert_eq!(entries.len(), 1);
    let key = entries.keys().next().unwrap().clone();
    entries[&key]["access_token"] = 5.into();
    std::fs::write(&store, serde_json::to_vec_pretty(&file).unwrap()).unwrap();

    let out = partner_auth("aerion", &env, &["--store", store_arg]).await;
    assert_line(
        &out,
        2,
        &format!(
            "partner-auth: aerion: token store: {store_arg}: entry {key}: a stored entry is not \
             in the token store format"
        ),
        &secrets,
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistyped_commands_flags_and_providers_get_did_you_mean() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["token", "areion"],
            "partner-auth: argument 2 ('areion') is not a valid value for '<PROVIDER>' (one of \
             aerion, aurora-uk, aurora-solar, aurora-solar-sdk); did you mean 'aerion'? (see \
             `partner-auth token --help`)",
        ),
        (
            &["token", "aerion", "--jsn"],
            "partner-auth: argument 3 ('--jsn') is not expected here; did you mean '--json'? \
             (see `partner-auth token --help`)",
        ),
        (
            &["tokn", "aerion"],
            "partner-auth: argument 1 ('tokn') is not a command; did you mean 'token'? The \
             commands are token, api, status, forget, emulator, completions (see \
             `partner-auth --help`)",
        ),
        (
            &["status", "--jsno"],
            "partner-auth: argument 2 ('--jsno') is not expected here; did you mean '--json'? \
             (see `partner-auth status --help`)",
        ),
    ];
    for (args, line) in cases {
        assert_line(&cli(args, &[]).await, 2, line, &[]);
    }
    // What looks like a value is never echoed, and gets the hint about variables.
    let secret = "hunter2-Passw0rd-4711";
    for (args, position) in [
        (&["token", "aerion", secret][..], 3),
        (&["token", "aerion", "--password=hunter2-Passw0rd-4711"], 3),
        (&["token", "aerion", "--store", "f", secret], 5),
    ] {
        assert_line(
            &cli(args, &[]).await,
            2,
            &format!(
                "partner-auth: argument {position} is not expected here; secrets and settings \
                 come from environment variables (see `partner-auth token --help`)"
            ),
            &[secret.to_owned()],
        );
    }
}
