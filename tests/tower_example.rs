//! `examples/tower_hyper.rs` against the emulator: what each request carried (the header the
//! provider reads, one replay after the injected 401) and what came back.

use partner_auth_emulator::{Emulator, Endpoint};

#[allow(dead_code)]
#[path = "../examples/tower_hyper.rs"]
mod tower_hyper;

#[tokio::test]
async fn the_hyper_example_authenticates_and_replays_once_after_a_401() {
    let emulator = Emulator::start().await.unwrap();
    let answers = tower_hyper::run(&emulator).await.unwrap();
    assert_eq!(answers.len(), 3, "{answers:#?}");
    assert!(answers[0].contains("-> 200 OK: [{"), "{}", answers[0]);
    assert!(
        answers[1].contains("-> 200 OK (2 tokens fetched in all)"),
        "{}",
        answers[1]
    );
    assert!(answers[2].contains("-> 200 OK: {"), "{}", answers[2]);

    // Aurora UK: three requests (the second refused, then replayed), each with the token in
    // `Authentication` only; the replay carried a new token.
    let api = emulator.requests_for(Endpoint::AuroraUkApi);
    assert_eq!(api.len(), 3, "{api:#?}");
    let tokens: Vec<&str> = api
        .iter()
        .map(|r| {
            assert_eq!(r.method, "GET");
            assert_eq!(r.path, "/aurora-uk/api/Accounts");
            assert_eq!(r.header("authorization"), None);
            r.header("authentication")
                .and_then(|v| v.strip_prefix("Bearer "))
                .expect("a bearer in Authentication")
        })
        .collect();
    assert_eq!(
        tokens[0], tokens[1],
        "the cached token, refused by the fault"
    );
    assert_ne!(tokens[1], tokens[2], "the replay carried a new token");
    assert_eq!(emulator.request_count(Endpoint::AuroraUkToken), 2);

    // Aerion: `Authorization: Bearer`, once.
    let me = emulator.requests_for(Endpoint::AerionMe);
    assert_eq!(me.len(), 1);
    assert_eq!(me[0].method, "GET");
    assert!(
        me[0]
            .header("authorization")
            .is_some_and(|v| v.starts_with("Bearer ")),
        "{me:?}"
    );
    emulator.shutdown().await;
}
