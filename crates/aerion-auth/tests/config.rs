//! Building: every setting checked and named, the environment read, nothing secret shown.

mod common;

use std::collections::HashMap;

use aerion_auth::{Aerion, AerionBuilder, Tenant};
use common::*;
use mockito::Matcher;
use token_provider::{Error, TokenProvider};

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn config_field(result: Result<Aerion, Error>) -> String {
    match result {
        Err(Error::Config { field, .. }) => field,
        Err(other) => panic!("expected a configuration error, got {other:?}"),
        Ok(p) => panic!("expected a configuration error, got {p:?}"),
    }
}

#[test]
fn a_build_without_a_tenant_fails_naming_it() {
    let err = Aerion::builder()
        .username(USERNAME)
        .password(PASSWORD)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("AERION_COMPANY_URL"), "{err}");
    let field = config_field(
        AerionBuilder::from_env_with(env(&[
            ("AERION_USERNAME", USERNAME),
            ("AERION_PASSWORD", PASSWORD),
            ("AERION_COMPANY_URL", ""),
        ]))
        .and_then(AerionBuilder::build),
    );
    assert!(field.contains("AERION_COMPANY_URL"), "{field}");
}

#[test]
fn every_setting_is_checked_and_named() {
    let base = || Aerion::builder().company_url(TENANT);
    let cases: Vec<(AerionBuilder, &str)> = vec![
        (base().username(USERNAME), "AERION_PASSWORD"),
        (base().password(PASSWORD), "AERION_USERNAME"),
        (base(), "AERION_USERNAME"),
        (base().username("  ").password(PASSWORD), "AERION_USERNAME"),
        (base().refresh_token(""), "AERION_REFRESH_TOKEN"),
        (base().refresh_token("rt").client_id(""), "AERION_CLIENT_ID"),
        (
            base().refresh_token("rt").client_secret(""),
            "AERION_CLIENT_SECRET",
        ),
        (
            base().refresh_token("rt").base_url("http://api.aerion.app"),
            "AERION_BASE_URL",
        ),
        (
            base().refresh_token("rt").base_url("not a url"),
            "AERION_BASE_URL",
        ),
        (
            base()
                .refresh_token("rt")
                .base_url("https://u:p@api.aerion.app"),
            "AERION_BASE_URL",
        ),
        (
            base().refresh_token("rt").token_url("ftp://x/token"),
            "token_url",
        ),
        (
            Aerion::builder()
                .company_url("acme\nevil: 1")
                .refresh_token("rt"),
            "AERION_COMPANY_URL",
        ),
        (
            Aerion::builder().origin("  ").refresh_token("rt"),
            "AERION_ORIGIN",
        ),
    ];
    for (builder, want) in cases {
        let shown = format!("{builder:?}");
        let field = config_field(builder.build());
        assert_eq!(field, want, "{shown}");
    }
    // Both tenant variables set is ambiguous: refused as the environment is read.
    let err = AerionBuilder::from_env_with(env(&[
        ("AERION_COMPANY_URL", TENANT),
        ("AERION_ORIGIN", "https://acme.aerion.app"),
        ("AERION_REFRESH_TOKEN", "rt"),
    ]))
    .unwrap_err();
    let Error::Config { field, .. } = err else {
        panic!("expected a configuration error, got {err:?}");
    };
    assert!(field.contains("AERION_ORIGIN"), "{field}");
}

#[test]
fn from_env_has_the_shape_of_every_other_builder() {
    // `from_env`/`from_env_with` return `Result<Builder, Error>` on every provider's builder.
    type Lookup = fn(&str) -> Option<String>;
    let read: fn(Lookup) -> Result<AerionBuilder, Error> = AerionBuilder::from_env_with;
    let builder = read(|name| (name == "AERION_COMPANY_URL").then(|| TENANT.to_owned())).unwrap();
    let err = builder.build().unwrap_err();
    assert!(err.to_string().contains("AERION_USERNAME"), "{err}");
    let _: fn() -> Result<AerionBuilder, Error> = AerionBuilder::from_env;
}

#[test]
fn the_crate_alone_is_enough_to_use_the_provider() {
    // The core's types come re-exported, as from every provider crate.
    fn takes(_: &dyn aerion_auth::TokenProvider, _: Option<aerion_auth::AccessToken>) {}
    let secret = aerion_auth::Secret::new("pw");
    let aerion = Aerion::builder()
        .company_url(TENANT)
        .username(USERNAME)
        .password(secret)
        .build()
        .unwrap();
    takes(&aerion, None);
    let _: Option<aerion_auth::Error> = None;
    let _: Option<aerion_auth::token_provider::CacheConfig> = None;
}

#[test]
fn defaults() {
    let aerion = Aerion::builder()
        .company_url(TENANT)
        .refresh_token("rt")
        .build()
        .unwrap();
    assert_eq!(aerion.base_url().as_str(), "https://api.aerion.app/");
    assert_eq!(
        aerion.token_url().as_str(),
        "https://api.aerion.app/oauth2/token"
    );
    assert_eq!(aerion.tenant(), &Tenant::CompanyUrl(TENANT.to_owned()));
}

#[tokio::test]
async fn from_env_reads_every_variable() {
    let mut server = mockito::Server::new_async().await;
    let mock = server
        .mock("POST", "/oauth2/token")
        .match_header("origin", "https://acme.aerion.app")
        .match_header("companyurl", Matcher::Missing)
        .match_request(form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "rt-env"),
            ("client_id", "env-client"),
            ("client_secret", "env-secret"),
        ]))
        .expect(1);
    let mock = issue(mock, "at-1", None).await;
    let url = server.url();
    let aerion = AerionBuilder::from_env_with(env(&[
        ("AERION_BASE_URL", &url),
        ("AERION_ORIGIN", "https://acme.aerion.app"),
        ("AERION_USERNAME", USERNAME),
        ("AERION_PASSWORD", PASSWORD),
        ("AERION_REFRESH_TOKEN", "rt-env"),
        ("AERION_CLIENT_ID", "env-client"),
        ("AERION_CLIENT_SECRET", "env-secret"),
    ]))
    .unwrap()
    .http_client(http_client())
    .build()
    .unwrap();
    assert_eq!(
        aerion.tenant(),
        &Tenant::Origin("https://acme.aerion.app".to_owned())
    );
    aerion.token().await.unwrap();
    mock.assert_async().await;
}

#[test]
fn debug_never_shows_a_secret() {
    let builder = Aerion::builder()
        .company_url(TENANT)
        .username(USERNAME)
        .password(PASSWORD)
        .refresh_token("rt-debug-secret")
        .client_secret(CLIENT_SECRET)
        .base_url("https://user:url-pass@api.aerion.app/?k=query-secret");
    let shown = format!("{builder:?} {builder:#?}");
    for secret in [
        PASSWORD,
        "rt-debug-secret",
        CLIENT_SECRET,
        "url-pass",
        "query-secret",
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
    let aerion = Aerion::builder()
        .company_url(TENANT)
        .username(USERNAME)
        .password(PASSWORD)
        .refresh_token("rt-debug-secret")
        .client_secret(CLIENT_SECRET)
        .build()
        .unwrap();
    let shown = format!("{aerion:?} {aerion:#?}");
    for secret in [PASSWORD, "rt-debug-secret", CLIENT_SECRET] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains(TENANT), "{shown}");
}
