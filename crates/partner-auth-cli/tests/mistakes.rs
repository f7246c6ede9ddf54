//! Mistakes are named: a token URL that leads nowhere, a host that refuses, a timeout, a
//! certificate for another host, a damaged store entry and a mistyped argument each get one line
//! that says what was wrong and where, and never a secret.

mod common;

use common::emu::{emulator, partner_auth, secrets, vars};
use common::{Run, TempDir, command, run_async};

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
