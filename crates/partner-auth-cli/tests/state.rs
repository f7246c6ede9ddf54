//! What the CLI does with the state it keeps: a state it could not save is reported (exit 5)
//! after the token is printed, and whatever a store holds never makes it panic.

mod common;

use common::run_async;
use partner_auth::ProviderKind;
use partner_auth_emulator::{Emulator, Endpoint, RunningEmulator};

fn aerion_vars(emu: &RunningEmulator) -> Vec<(&'static str, String)> {
    let names: Vec<&str> = ProviderKind::Aerion
        .settings()
        .iter()
        .map(|(_, var)| *var)
        .collect();
    emu.env_vars()
        .into_iter()
        .filter(|(name, _)| names.contains(name))
        .collect()
}

/// `partner-auth token aerion <args>` under a file-size limit of 0 blocks (a full disk, as
/// the store's writes see it; SIGXFSZ ignored so the write fails instead of killing).
fn with_full_disk(vars: &[(&'static str, String)], args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new("sh");
    cmd.env_clear();
    cmd.arg("-c")
        .arg("trap '' XFSZ; ulimit -f 0; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_partner-auth"))
        .args(["token", "aerion"])
        .args(args);
    for (name, value) in vars {
        cmd.env(name, value);
    }
    cmd
}

/// `partner-auth token aerion --store <store> <extra>` with `vars` alone, run to its end.
async fn token_with_store(
    vars: &[(&'static str, String)],
    store: &str,
    extra: &[&str],
) -> common::Run {
    let plain: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut args = vec!["token", "aerion", "--store", store];
    args.extend_from_slice(extra);
    run_async(common::command(&args, &plain)).await
}

fn expire_store(path: &std::path::Path, expires_at: u64) {
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for entry in file["entries"].as_object_mut().unwrap().values_mut() {
        entry["expires_at"] = expires_at.into();
    }
    std::fs::write(path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_state_that_could_not_be_saved_exits_5_after_printing_the_token() {
    let (emu, _dir, store) = common::emu::emulator_and_store("unsaved", "tokens.json").await;
    let store_arg = store.to_str().unwrap();
    let vars = aerion_vars(&emu);
    let first = token_with_store(&vars, store_arg, &[]).await;
    first.assert_code(0);
    let username = emu.config().aerion_users[0].username.clone();
    let spent = emu.current_refresh_token(&username).unwrap();
    expire_store(&store, 1);

    // The refresh rotates the refresh token; the disk refuses the new state.
    emu.clear_requests();
    let out = run_async(with_full_disk(&vars, &["--store", store_arg])).await;
    out.assert_code(5);
    let token = out.stdout.trim_end();
    assert!(
        !token.is_empty() && !token.contains(char::is_whitespace),
        "{out:?}"
    );
    assert_ne!(token, first.stdout.trim_end(), "a new token was printed");
    assert_eq!(emu.request_count(Endpoint::AerionToken), 1);
    let line = out.stderr.trim_end();
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(line.contains("could not be saved"), "{line}");
    assert!(line.contains(store_arg), "the line names the store: {line}");
    let rotated = emu.current_refresh_token(&username).unwrap();
    assert_ne!(rotated, spent);
    for secret in [token, &rotated, &spent] {
        assert!(!out.stderr.contains(secret), "{line}");
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_stored_expiry_prints_as_the_last_rfc3339_instant() {
    let (emu, _dir, store) = common::emu::emulator_and_store("absurd-expiry", "tokens.json").await;
    let store_arg = store.to_str().unwrap();
    let vars = aerion_vars(&emu);
    token_with_store(&vars, store_arg, &[]).await.assert_code(0);
    // What an `expires_in` of 9e12 seconds left in a store before expiries were capped.
    expire_store(&store, 9_000_000_000_000);
    for _ in 0..2 {
        let out = token_with_store(&vars, store_arg, &["--json"]).await;
        out.assert_code(0);
        let v: serde_json::Value = serde_json::from_str(out.stdout.trim_end()).unwrap();
        assert_eq!(v["expires_at"], "9999-12-31T23:59:59Z");
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_that_is_not_utf8_is_named_and_nothing_is_sent() {
    use std::os::unix::ffi::OsStrExt;
    let emu = Emulator::builder().start().await.unwrap();
    // With AERION_COMPANY_URL set, an unreadable AERION_ORIGIN must not slip past the "only one
    // of them" rule as if it were unset.
    let mut cmd = common::command(&["token", "aerion"], &[]);
    for (name, value) in aerion_vars(&emu) {
        cmd.env(name, value);
    }
    cmd.env(
        "AERION_ORIGIN",
        std::ffi::OsStr::from_bytes(b"https://acme\xff.example"),
    );
    let out = run_async(cmd).await;
    out.assert_code(2);
    assert!(out.stderr.contains("AERION_ORIGIN"), "{out:?}");
    assert!(out.stderr.contains("not UTF-8"), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1);
    assert!(emu.requests().is_empty(), "{:?}", emu.requests());
    emu.shutdown().await;
}
