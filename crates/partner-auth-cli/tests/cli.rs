//! The command line itself: help, usage errors, configuration errors and an unreachable host.
//! Nothing here needs a server; the emulator-backed flows are in `emulator.rs`.

mod common;

use common::{TempDir, assert_one_line, closed_port, command, run};

const PROVIDERS: [&str; 4] = ["aerion", "aurora-uk", "aurora-solar", "aurora-solar-sdk"];

/// A complete configuration of `provider` pointing at `base` (a loopback URL), with secrets
/// no test server knows.
fn full_config(provider: &str, base: &str) -> Vec<(&'static str, String)> {
    let v = |pairs: &[(&'static str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    match provider {
        "aerion" => v(&[
            ("AERION_BASE_URL", base),
            ("AERION_COMPANY_URL", "acme.aerion.test"),
            ("AERION_USERNAME", "pat@acme.aerion.test"),
            ("AERION_PASSWORD", "cli-test-aerion-password"),
        ]),
        "aurora-uk" => v(&[
            ("AURORA_UK_ENV", "dev"),
            ("AURORA_UK_ISSUER", &format!("{base}/aurora-uk/")),
            ("AURORA_UK_AUDIENCE", "https://cli.test.audience"),
            ("AURORA_UK_CLIENT_ID", "cli-test-client"),
            ("AURORA_UK_CLIENT_SECRET", "cli-test-aurora-uk-secret"),
        ]),
        "aurora-solar" => v(&[
            ("AURORA_SOLAR_BASE_URL", base),
            ("AURORA_SOLAR_APPLICATION_ID", "cli-test-app"),
            (
                "AURORA_SOLAR_APPLICATION_KEY",
                "sk_sand_cli_test_application_key",
            ),
            ("AURORA_SOLAR_TENANT_ID", "cli-test-tenant"),
        ]),
        "aurora-solar-sdk" => v(&[
            ("AURORA_SOLAR_BASE_URL", base),
            ("AURORA_SOLAR_API_KEY", "sk_sand_cli_test_api_key"),
            ("AURORA_SOLAR_TENANT_ID", "cli-test-tenant"),
            ("AURORA_SOLAR_USER_EMAIL", "someone@cli.test"),
        ]),
        other => panic!("unknown provider {other}"),
    }
}

const SECRETS: [&str; 4] = [
    "cli-test-aerion-password",
    "cli-test-aurora-uk-secret",
    "sk_sand_cli_test_application_key",
    "sk_sand_cli_test_api_key",
];

fn run_with(provider: &str, vars: &[(&str, String)], extra: &[&str]) -> common::Run {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut args = vec!["token", provider];
    args.extend_from_slice(extra);
    run(command(&args, &vars))
}

#[test]
fn token_help_lists_every_variable_and_whether_it_is_required() {
    let out = run(command(&["token", "--help"], &[]));
    out.assert_code(0);
    assert_eq!(out.stderr, "");
    let help = &out.stdout;
    for provider in PROVIDERS {
        assert!(help.contains(provider), "{provider} missing from the help");
    }
    let vars = [
        "AERION_BASE_URL",
        "AERION_COMPANY_URL",
        "AERION_ORIGIN",
        "AERION_USERNAME",
        "AERION_PASSWORD",
        "AERION_REFRESH_TOKEN",
        "AERION_CLIENT_ID",
        "AERION_CLIENT_SECRET",
        "AURORA_UK_ENV",
        "AURORA_UK_ISSUER",
        "AURORA_UK_AUDIENCE",
        "AURORA_UK_CLIENT_ID",
        "AURORA_UK_CLIENT_SECRET",
        "AURORA_SOLAR_ENV",
        "AURORA_SOLAR_BASE_URL",
        "AURORA_SOLAR_APPLICATION_ID",
        "AURORA_SOLAR_APPLICATION_KEY",
        "AURORA_SOLAR_TENANT_ID",
        "AURORA_SOLAR_SESSION_TOKEN",
        "AURORA_SOLAR_API_KEY",
        "AURORA_SOLAR_USER_EMAIL",
        "AURORA_SOLAR_USER_FIRST_NAME",
        "AURORA_SOLAR_USER_LAST_NAME",
        "PARTNER_AUTH_TIMEOUT",
    ];
    for var in vars {
        // Every variable has its own line that says whether it is required.
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{var} ")))
            .unwrap_or_else(|| panic!("{var} has no line of its own in the help:\n{help}"));
        assert!(
            line.contains("required") || line.contains("optional"),
            "{var}: the help does not say whether it is required: {line:?}"
        );
    }
    for required in ["AURORA_UK_CLIENT_SECRET", "AURORA_SOLAR_API_KEY"] {
        let line = help.lines().find(|l| l.contains(required)).unwrap();
        assert!(line.contains("required"), "{line}");
    }
    assert!(help.contains("--json") && help.contains("--store"));
    assert!(help.contains("Exit status"));
    // The short help says the same.
    let short = run(command(&["token", "-h"], &[]));
    short.assert_code(0);
    assert!(short.stdout.contains("AURORA_SOLAR_USER_LAST_NAME"));
}

#[test]
fn top_level_help_and_version() {
    let out = run(command(&["--help"], &[]));
    out.assert_code(0);
    assert!(out.stdout.contains("token"));
    let out = run(command(&["--version"], &[]));
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        format!("partner-auth {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    for args in [
        &[][..],
        &["token"][..],
        &["token", "nope"][..],
        &["fetch", "aerion"][..],
        &["token", "aerion", "--jsn"][..],
        &["token", "aerion", "--store"][..],
    ] {
        let out = run(command(args, &[]));
        out.assert_code(2);
        assert_eq!(out.stdout, "", "{args:?}");
        assert_one_line(&out.stderr);
        assert!(out.stderr.starts_with("partner-auth: "), "{}", out.stderr);
    }
    let out = run(command(&["token", "nope"], &[]));
    for provider in PROVIDERS {
        assert!(out.stderr.contains(provider), "{}", out.stderr);
    }
}

#[test]
fn secrets_are_not_accepted_as_flags_nor_echoed() {
    let secret = "hunter2-cli-flag-secret";
    for args in [
        vec!["token", "aerion", "--password", secret],
        vec!["token", "aerion", &format!("--password={secret}")],
        vec!["token", "aurora-uk", &format!("--client-secret={secret}")],
        vec!["token", "aerion", secret],
    ] {
        let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
        let out = run(command(&args, &[]));
        out.assert_code(2);
        assert_one_line(&out.stderr);
        assert!(!out.stderr.contains(secret), "{}", out.stderr);
        assert!(out.stderr.contains("environment"), "{}", out.stderr);
    }
}

#[test]
fn usage_errors_never_echo_an_argument() {
    // A secret pasted in the wrong place: as the provider, as a flag's value, as a subcommand,
    // as a flag name, after a flag that takes no value, and as a stray extra argument.
    let secret = "Pasted-Secret-9f3a7c";
    let flag = format!("--{secret}");
    let json_value = format!("--json={secret}");
    let short = format!("-X{secret}");
    let cases: Vec<Vec<&str>> = vec![
        vec!["token", secret],
        vec!["token", "aerion", &json_value],
        vec![secret],
        vec![secret, "aerion"],
        vec!["token", "aerion", &flag],
        vec!["token", &flag],
        vec!["token", "aerion", &short],
        vec!["token", "aerion", "--store", "f", secret],
        vec!["api", secret, "/v1/users/me"],
        vec!["forget", secret],
        vec!["completions", secret],
        vec!["emulator", "--port", secret],
    ];
    for args in cases {
        let out = run(command(&args, &[]));
        out.assert_code(2);
        assert_eq!(out.stdout, "", "{args:?}");
        assert_one_line(&out.stderr);
        assert!(out.stderr.starts_with("partner-auth: "), "{}", out.stderr);
        let lower = out.stderr.to_lowercase();
        assert!(
            !lower.contains(&secret.to_lowercase()) && !lower.contains("9f3a7c"),
            "{args:?} echoed: {}",
            out.stderr
        );
    }
    // What it does say: which argument, by position, and what would fit there.
    let out = run(command(&["token", secret], &[]));
    assert!(out.stderr.contains("argument 2"), "{}", out.stderr);
    for provider in PROVIDERS {
        assert!(out.stderr.contains(provider), "{}", out.stderr);
    }
}

#[test]
fn a_missing_variable_exits_2_and_names_it() {
    let base = format!("http://127.0.0.1:{}", closed_port());
    let cases = [
        ("aerion", "AERION_COMPANY_URL"),
        ("aerion", "AERION_PASSWORD"),
        ("aurora-uk", "AURORA_UK_ENV"),
        ("aurora-uk", "AURORA_UK_CLIENT_ID"),
        ("aurora-uk", "AURORA_UK_CLIENT_SECRET"),
        ("aurora-solar", "AURORA_SOLAR_APPLICATION_ID"),
        ("aurora-solar", "AURORA_SOLAR_APPLICATION_KEY"),
        ("aurora-solar", "AURORA_SOLAR_TENANT_ID"),
        ("aurora-solar-sdk", "AURORA_SOLAR_API_KEY"),
        ("aurora-solar-sdk", "AURORA_SOLAR_TENANT_ID"),
        ("aurora-solar-sdk", "AURORA_SOLAR_USER_EMAIL"),
    ];
    for (provider, missing) in cases {
        let mut vars = full_config(provider, &base);
        vars.retain(|(k, _)| *k != missing);
        let out = run_with(provider, &vars, &[]);
        out.assert_failure(2, provider, &[missing])
            .assert_no_secret_in_stderr(&SECRETS);
        // Blank counts as unset.
        let mut vars = full_config(provider, &base);
        for (k, v) in &mut vars {
            if *k == missing {
                *v = "  ".to_owned();
            }
        }
        run_with(provider, &vars, &[]).assert_failure(2, provider, &[missing]);
    }
    // No environment at all.
    for provider in PROVIDERS {
        run_with(provider, &[], &[]).assert_failure(2, provider, &["invalid configuration"]);
    }
}

#[test]
fn a_bad_timeout_exits_2_and_names_the_variable() {
    let base = format!("http://127.0.0.1:{}", closed_port());
    for bad in ["0", "-3", "1.5", "10s", "soon", "86401"] {
        let mut vars = full_config("aerion", &base);
        vars.push(("PARTNER_AUTH_TIMEOUT", bad.to_owned()));
        run_with("aerion", &vars, &[])
            .assert_failure(2, "aerion", &["PARTNER_AUTH_TIMEOUT"])
            .assert_no_secret_in_stderr(&SECRETS);
    }
}

#[test]
fn plain_http_to_a_non_loopback_host_is_refused_before_any_connection() {
    // `.invalid` never resolves: had a connection been tried, the exit would be 4, not 2.
    let base = "http://partner-auth.invalid";
    for (provider, var) in [
        ("aerion", "AERION_BASE_URL"),
        ("aurora-solar", "AURORA_SOLAR_BASE_URL"),
        ("aurora-solar-sdk", "AURORA_SOLAR_BASE_URL"),
        ("aurora-uk", "AURORA_UK_ISSUER"),
    ] {
        let vars = full_config(provider, base);
        run_with(provider, &vars, &[])
            .assert_failure(2, provider, &[var, "https"])
            .assert_no_secret_in_stderr(&SECRETS);
    }
}

#[test]
fn an_unreachable_port_exits_4() {
    let base = format!("http://127.0.0.1:{}", closed_port());
    for provider in PROVIDERS {
        let vars = full_config(provider, &base);
        let out = run_with(provider, &vars, &[]);
        out.assert_failure(4, provider, &["transport error"])
            .assert_no_secret_in_stderr(&SECRETS);
        assert!(out.elapsed.as_secs() < 10, "{:?}", out.elapsed);
    }
}

#[test]
fn store_files_that_others_can_read_are_refused_with_exit_2() {
    let dir = TempDir::new("store-mode");
    let store = dir.join("tokens.json");
    std::fs::write(&store, r#"{"version":1,"entries":{}}"#).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    // The port is closed: a request would have ended in exit 4.
    let base = format!("http://127.0.0.1:{}", closed_port());
    let vars = full_config("aerion", &base);
    let store_arg = store.to_str().unwrap();
    run_with("aerion", &vars, &["--store", store_arg])
        .assert_failure(2, "aerion", &["token store", "chmod 600"])
        .assert_no_secret_in_stderr(&SECRETS);

    // A store whose folder cannot be created (a file stands where a folder would go).
    let missing = store.join("no-such-dir").join("tokens.json");
    run_with("aerion", &vars, &["--store", missing.to_str().unwrap()]).assert_failure(
        2,
        "aerion",
        &["token store: cannot create the store's folder"],
    );

    // A file that is not a store.
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "not json").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    run_with("aerion", &vars, &["--store", garbage.to_str().unwrap()]).assert_failure(
        2,
        "aerion",
        &["not a token store file"],
    );
}
