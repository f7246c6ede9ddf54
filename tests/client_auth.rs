//! Aurora UK's client authentication chosen from configuration (`AURORA_UK_CLIENT_AUTH`), through
//! the facade, against the emulator: what the token endpoint received.

use std::collections::HashMap;

use partner_auth::{Config, ProviderKind, ProviderOptions, from_lookup};
use partner_auth_emulator::{Emulator, Endpoint};

#[tokio::test]
async fn aurora_uk_client_auth_post_sends_form_fields_and_basic_a_header() {
    let emulator = Emulator::start().await.unwrap();
    let base: HashMap<String, String> = emulator
        .env_vars()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for (choice, in_form) in [("post", true), ("basic", false), ("", false)] {
        emulator.clear_requests();
        let mut vars = base.clone();
        vars.insert("AURORA_UK_CLIENT_AUTH".to_owned(), choice.to_owned());
        let provider = from_lookup(
            |n| vars.get(n).cloned(),
            ProviderKind::AuroraUk,
            &ProviderOptions::default(),
        )
        .unwrap();
        provider.token().await.unwrap();
        let sent = emulator.requests_for(Endpoint::AuroraUkToken);
        assert_eq!(sent.len(), 1, "{choice:?}");
        assert_eq!(
            sent[0].form_param("client_secret").is_some(),
            in_form,
            "{choice:?}"
        );
        assert_eq!(
            sent[0]
                .header("authorization")
                .is_some_and(|h| h.starts_with("Basic ")),
            !in_form,
            "{choice:?}"
        );
    }
    let mut vars = base.clone();
    vars.insert("AURORA_UK_CLIENT_AUTH".to_owned(), "digest".to_owned());
    let err = from_lookup(
        |n| vars.get(n).cloned(),
        ProviderKind::AuroraUk,
        &ProviderOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("AURORA_UK_CLIENT_AUTH"), "{err}");
}

#[test]
fn a_config_file_may_choose_the_client_authentication() {
    let config = Config::from_toml_str(
        r#"
        [providers.crm]
        provider = "aurora-uk"
        environment = "dev"
        client_id = "id"
        client_secret = "secret"
        client_auth = "post"
        "#,
    )
    .unwrap();
    config.build().unwrap();
}
