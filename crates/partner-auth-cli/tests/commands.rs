//! `token --header`, `PARTNER_AUTH_STORE`, no TLS set-up for a stored token, `emulator` and
//! `completions`, run as the built binary.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::emu::{
    emulator, emulator_and_folder, emulator_issued, partner_auth, token_endpoint, token_of, vars,
};
use common::{TempDir, command, run, run_async};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_header_prints_an_authorization_line() {
    let emu = emulator().await;
    for provider in ["aerion", "aurora-solar", "aurora-solar-sdk"] {
        let out = partner_auth(provider, &vars(&emu, provider), &["--header"]).await;
        out.assert_code(0);
        assert_eq!(out.stderr, "");
        let token = out
            .stdout
            .strip_prefix("Authorization: Bearer ")
            .and_then(|t| t.strip_suffix('\n'))
            .unwrap_or_else(|| panic!("{provider}: {:?}", out.stdout));
        assert!(emulator_issued(&emu, provider, token).await, "{provider}");
    }
    // Not with --json.
    let out = partner_auth("aerion", &vars(&emu, "aerion"), &["--header", "--json"]).await;
    out.assert_code(2);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_auth_store_is_the_default_store_and_the_flag_wins() {
    let (emu, dir) = emulator_and_folder("store-var").await;
    let from_var = dir.join("var.json");
    let from_flag = dir.join("flag.json");
    let mut env = vars(&emu, "aerion");
    env.push(("PARTNER_AUTH_STORE", from_var.to_str().unwrap().to_owned()));

    let first = token_of(&partner_auth("aerion", &env, &[]).await);
    assert!(std::fs::read_to_string(&from_var).unwrap().contains(&first));
    emu.clear_requests();
    assert_eq!(token_of(&partner_auth("aerion", &env, &[]).await), first);
    assert!(emu.requests().is_empty(), "served from the store");

    let other =
        token_of(&partner_auth("aerion", &env, &["--store", from_flag.to_str().unwrap()]).await);
    assert_ne!(other, first, "--store names another store");
    assert!(
        std::fs::read_to_string(&from_flag)
            .unwrap()
            .contains(&other)
    );

    // A malformed Redis URL is refused before anything is sent (tests/redis.rs: real Redis).
    emu.clear_requests();
    let mut env = vars(&emu, "aerion");
    env.push((
        "PARTNER_AUTH_STORE",
        "redis://:pw-3d@cache.internal:notaport/0".to_owned(),
    ));
    let out = partner_auth("aerion", &env, &[]).await;
    out.assert_failure(2, "aerion", &["PARTNER_AUTH_STORE"]);
    assert!(!out.stderr.contains("pw-3d"), "{}", out.stderr);
    assert!(emu.requests().is_empty());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_stored_token_is_served_without_any_tls_set_up() {
    // With the CA roots pointed nowhere, setting up TLS fails: a run that sets it up exits 2
    // ("http client"). A run served from the store must not even try.
    let (emu, dir) = emulator_and_folder("no-tls").await;
    let no_roots = [
        ("SSL_CERT_FILE", dir.join("no-such-ca.pem")),
        ("SSL_CERT_DIR", dir.join("no-such-ca-dir")),
    ];
    for provider in ["aerion", "aurora-uk", "aurora-solar", "aurora-solar-sdk"] {
        let store = dir.join(format!("{provider}.json"));
        let mut env = vars(&emu, provider);
        env.push(("PARTNER_AUTH_STORE", store.to_str().unwrap().to_owned()));
        let first = token_of(&partner_auth(provider, &env, &[]).await);

        for (name, path) in &no_roots {
            env.push((name, path.to_str().unwrap().to_owned()));
        }
        emu.clear_requests();
        let out = partner_auth(provider, &env, &[]).await;
        assert_eq!(token_of(&out), first, "{provider}: {out:?}");
        assert!(emu.requests().is_empty(), "{provider}");

        // The same environment with a request to make does set TLS up, and fails on it: the
        // roots really are unusable, so the run above proves no set-up happened. The line says
        // where the roots come from.
        std::fs::remove_file(&store).unwrap();
        let out = partner_auth(provider, &env, &[]).await;
        out.assert_failure(
            2,
            provider,
            &[
                "http client",
                "no usable CA roots",
                "SSL_CERT_FILE",
                "SSL_CERT_DIR",
                "ca-certificates",
            ],
        );
        assert_eq!(emu.request_count(token_endpoint(provider)), 0);
    }
    emu.shutdown().await;
}

/// The `export NAME=value` lines of `text` as pairs (values unquoted as a POSIX shell would).
fn exports(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .map(|l| {
            let (name, value) = l.split_once('=').expect("NAME=value");
            let value = match value.strip_prefix('\'') {
                Some(quoted) => quoted
                    .strip_suffix('\'')
                    .expect("closed quote")
                    .replace(r"'\''", "'"),
                None => value.to_owned(),
            };
            (name.to_owned(), value)
        })
        .collect()
}

#[cfg(unix)]
#[test]
fn the_emulator_command_prints_exports_that_the_other_commands_use() {
    let mut child = command(&["emulator", "--port", "0"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    // The banner ends with the commented session token line.
    while !banner.contains("# export AURORA_SOLAR_SESSION_TOKEN=") {
        let mut line = String::new();
        let n = stdout.read_line(&mut line).expect("read the banner");
        assert!(n > 0, "the emulator exited early: {banner}");
        banner.push_str(&line);
    }
    assert!(banner.starts_with("# partner-auth emulator on http://127.0.0.1:"));
    let exports = exports(&banner);
    let names: Vec<&str> = exports.iter().map(|(n, _)| n.as_str()).collect();
    for needed in [
        "AERION_BASE_URL",
        "AURORA_UK_ISSUER",
        "AURORA_UK_API_URL",
        "AURORA_SOLAR_BASE_URL",
        "AURORA_SOLAR_API_KEY",
    ] {
        assert!(names.contains(&needed), "{needed} missing: {banner}");
    }
    let env: Vec<(&str, &str)> = exports
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    for provider in ["aerion", "aurora-uk", "aurora-solar", "aurora-solar-sdk"] {
        let out = run(command(&["token", provider], &env));
        token_of(&out);
    }
    let out = run(command(&["api", "aurora-uk", "/Accounts"], &env));
    out.assert_code(0);
    assert!(out.stdout.contains("Emulated Energy Ltd"), "{}", out.stdout);

    // SIGTERM stops it cleanly.
    let status = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
    let status = child.wait().expect("the emulator exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_emulator_help_names_its_variable_once_and_the_variable_sets_the_port() {
    let out = run(command(&["emulator", "--help"], &[]));
    out.assert_code(0);
    let port_line = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("--port"))
        .unwrap_or_else(|| panic!("no --port line: {}", out.stdout));
    assert_eq!(
        port_line.trim(),
        "--port <N>  The loopback port to listen on (default: PARTNER_AUTH_EMULATOR_PORT, else a \
         free one)"
    );

    // The variable is read, and a value that is no port is named, never quoted.
    let port = common::closed_port();
    let mut child = command(
        &["emulator"],
        &[("PARTNER_AUTH_EMULATOR_PORT", &port.to_string())],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("the binary starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .expect("read the banner");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.starts_with(&format!(
            "# partner-auth emulator on http://127.0.0.1:{port}"
        )),
        "{first}"
    );
    let out = run(command(
        &["emulator"],
        &[("PARTNER_AUTH_EMULATOR_PORT", "80x80")],
    ));
    out.assert_code(2);
    assert_eq!(
        out.stderr,
        "partner-auth: invalid configuration: `PARTNER_AUTH_EMULATOR_PORT` must be a port number \
         from 0 to 65535\n"
    );
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = run(command(&["completions", shell], &[]));
        out.assert_code(0);
        assert_eq!(out.stderr, "", "{shell}");
        for word in ["partner-auth", "token", "api", "completions", "store"] {
            assert!(out.stdout.contains(word), "{shell}: {word} missing");
        }
        // Bash and zsh complete the provider names too.
        if matches!(shell, "bash" | "zsh") {
            assert!(out.stdout.contains("aurora-solar-sdk"), "{shell}");
        }
    }
    #[cfg(unix)]
    {
        // The bash script is valid bash, where bash is installed.
        let dir = TempDir::new("completions");
        let script = dir.join("partner-auth.bash");
        std::fs::write(&script, run(command(&["completions", "bash"], &[])).stdout).unwrap();
        if let Ok(status) = std::process::Command::new("bash")
            .arg("-n")
            .arg(&script)
            .status()
        {
            assert!(status.success(), "bash -n rejects the script");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_level_help_lists_every_command() {
    let out = run_async(command(&["--help"], &[])).await;
    out.assert_code(0);
    // The first word of each line of the "Commands:" section, up to the blank line after it.
    let listed: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for name in [
        "token",
        "api",
        "status",
        "forget",
        "emulator",
        "completions",
    ] {
        assert!(listed.contains(&name), "{name} missing: {}", out.stdout);
    }
}
