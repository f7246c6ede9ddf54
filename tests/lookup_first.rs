//! Every function that reads settings through a lookup takes the lookup first, as
//! `token_provider::env_value` does.

use partner_auth::{ProviderKind, ProviderOptions};

#[test]
fn functions_that_read_settings_take_the_lookup_first() {
    let dir = partner_auth::token_provider::testing::TempDir::new("lookup-first");
    let store = dir.join("tokens.json");
    let store = store.to_str().unwrap().to_owned();
    let lookup = |name: &str| match name {
        "AERION_COMPANY_URL" => Some("acme.aerion.test".to_owned()),
        "AERION_USERNAME" => Some("pat@acme.aerion.test".to_owned()),
        "AERION_PASSWORD" => Some("pw-never-sent".to_owned()),
        "AERION_BASE_URL" => Some("http://127.0.0.1:9/aerion".to_owned()),
        "BLANK" => Some("  ".to_owned()),
        _ => None,
    };
    assert_eq!(
        partner_auth::token_provider::env_value(&lookup, "BLANK"),
        None
    );
    let opened = partner_auth::open_store(lookup, &store, "store").unwrap();
    assert!(format!("{opened:?}").contains("FileStore"), "{opened:?}");
    let provider =
        partner_auth::from_lookup(lookup, ProviderKind::Aerion, &ProviderOptions::default())
            .unwrap();
    assert!(format!("{provider:?}").contains("Aerion"), "{provider:?}");
}
