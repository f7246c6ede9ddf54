//! A new user's first runs: a store whose folder does not exist yet, and `status` and `forget`
//! before any store was written.

mod common;

use common::emu::{emulator, emulator_and_folder, partner_auth, secrets, vars};
use common::{Run, TempDir, command, mode, run_async};

async fn cli(args: &[&str], vars: &[(&'static str, String)]) -> Run {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_async(command(args, &vars)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_store_folder_is_created_private_and_named() {
    let (emu, home) = emulator_and_folder("first-run").await;
    let cache = home.join(".cache");
    let folder = cache.join("partner-auth");
    let store = folder.join("tokens.json");
    let store = store.to_str().unwrap();
    let env = vars(&emu, "aerion");

    let out = partner_auth("aerion", &env, &["--store", store]).await;
    out.assert_code(0);
    assert_eq!(
        out.stderr,
        format!(
            "partner-auth: created the store's folder {} and its missing parents from {} \
             (mode 0700)\n",
            folder.display(),
            cache.display()
        )
    );
    out.assert_no_secret_in_stderr(&secrets(&emu).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(mode(&cache), 0o700);
    assert_eq!(mode(&folder), 0o700);
    let token = out.stdout.trim_end().to_owned();

    // The folder is there now: the next run says nothing and is served from the store.
    let again = partner_auth("aerion", &env, &["--store", store]).await;
    again.assert_token(&token);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_missing_level_is_named_alone() {
    let (emu, home) = emulator_and_folder("first-run-one").await;
    let folder = home.join("state");
    let store = folder.join("tokens.json");
    let out = partner_auth(
        "aurora-uk",
        &vars(&emu, "aurora-uk"),
        &["--store", store.to_str().unwrap()],
    )
    .await;
    out.assert_code(0);
    assert_eq!(
        out.stderr,
        format!(
            "partner-auth: created the store's folder {} (mode 0700)\n",
            folder.display()
        )
    );
    assert_eq!(mode(&folder), 0o700);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_forget_on_a_missing_store_say_so_and_exit_2() {
    let home = TempDir::new("no-store");
    let store = home.join("nowhere").join("tokens.json");
    let path = store.to_str().unwrap().to_owned();
    let flag = ["--store", path.as_str()];
    let expected = format!("partner-auth: no store at {path}\n");
    for args in [&["status"][..], &["status", "--json"], &["forget", "--all"]] {
        let args: Vec<&str> = args.iter().chain(&flag).copied().collect();
        let out = cli(&args, &[]).await;
        out.assert_code(2);
        assert_eq!(out.stdout, "", "{args:?}");
        assert_eq!(out.stderr, expected, "{args:?}");
    }
    // The variable names it too, and says where the path came from.
    let env = [("PARTNER_AUTH_STORE", path.clone())];
    let out = cli(&["status"], &env).await;
    out.assert_code(2);
    assert_eq!(
        out.stderr,
        format!("partner-auth: no store at {path} (from PARTNER_AUTH_STORE)\n")
    );
    // A provider's forget: the same line, about that provider; nothing was sent or created.
    let emu = emulator().await;
    let mut env = vars(&emu, "aerion");
    env.push(("PARTNER_AUTH_STORE", path.clone()));
    let out = cli(&["forget", "aerion"], &env).await;
    out.assert_code(2);
    assert_eq!(
        out.stderr,
        format!("partner-auth: aerion: no store at {path} (from PARTNER_AUTH_STORE)\n")
    );
    assert!(emu.requests().is_empty());
    assert!(!store.parent().unwrap().exists(), "nothing is created");
    emu.shutdown().await;
}
