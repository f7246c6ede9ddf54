//! The control API: addresses, environment variables, recording, shutdown, and silence in logs.

mod common;

use common::{client, json, send, url};
use http::HeaderName;
use partner_auth_emulator::{
    DEFAULT_AERION_PASSWORD, DEFAULT_AERION_TENANT, DEFAULT_AERION_USERNAME,
    DEFAULT_AURORA_SOLAR_API_KEY, DEFAULT_AURORA_SOLAR_APPLICATION_KEY,
    DEFAULT_AURORA_UK_CLIENT_SECRET, Emulator, EmulatorConfig,
};
use token_provider::Error;
use token_provider::http::{Repeat, Request};

#[tokio::test]
async fn addresses_follow_the_url_layout() {
    let emu = Emulator::start().await.unwrap();
    let base = emu.url().to_owned();
    assert_eq!(base, format!("http://127.0.0.1:{}", emu.addr().port()));
    assert_ne!(emu.addr().port(), 0);
    assert_eq!(emu.aerion_base(), format!("{base}/aerion"));
    assert_eq!(
        emu.aerion_token_url(),
        format!("{base}/aerion/oauth2/token")
    );
    assert_eq!(emu.aurora_uk_issuer(), format!("{base}/aurora-uk/"));
    assert_eq!(
        emu.aurora_uk_token_url(),
        format!("{base}/aurora-uk/oauth/token")
    );
    assert_eq!(emu.aurora_uk_api_base(), format!("{base}/aurora-uk/api"));
    assert_eq!(emu.aurora_solar_base(), format!("{base}/aurora-solar"));
    assert_eq!(emu.aurora_uk_audience(), emu.config().aurora_uk_audience);
    assert_eq!(emu.aerion_tenant(), DEFAULT_AERION_TENANT);
}

#[tokio::test]
async fn env_vars_name_every_spec_variable_and_work() {
    let emu = Emulator::start().await.unwrap();
    let vars = emu.env_vars();
    let get = |name: &str| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(get("AERION_BASE_URL"), emu.aerion_base());
    assert_eq!(get("AERION_COMPANY_URL"), DEFAULT_AERION_TENANT);
    assert_eq!(get("AERION_USERNAME"), DEFAULT_AERION_USERNAME);
    assert_eq!(get("AERION_PASSWORD"), DEFAULT_AERION_PASSWORD);
    assert_eq!(get("AURORA_UK_ENV"), "dev");
    assert_eq!(get("AURORA_UK_ISSUER"), emu.aurora_uk_issuer());
    assert_eq!(
        get("AURORA_UK_CLIENT_SECRET"),
        DEFAULT_AURORA_UK_CLIENT_SECRET
    );
    assert_eq!(get("AURORA_SOLAR_ENV"), "sandbox");
    assert_eq!(get("AURORA_SOLAR_BASE_URL"), emu.aurora_solar_base());
    assert_eq!(
        get("AURORA_SOLAR_APPLICATION_KEY"),
        DEFAULT_AURORA_SOLAR_APPLICATION_KEY
    );
    assert_eq!(get("AURORA_SOLAR_API_KEY"), DEFAULT_AURORA_SOLAR_API_KEY);
    assert_eq!(get("AURORA_SOLAR_TENANT_ID"), emu.aurora_solar_tenant());
    for name in [
        "AERION_CLIENT_ID",
        "AERION_CLIENT_SECRET",
        "AURORA_UK_AUDIENCE",
        "AURORA_UK_CLIENT_ID",
        "AURORA_SOLAR_APPLICATION_ID",
        "AURORA_SOLAR_USER_EMAIL",
        "AURORA_SOLAR_USER_FIRST_NAME",
        "AURORA_SOLAR_USER_LAST_NAME",
    ] {
        assert!(!get(name).is_empty(), "{name}");
    }
    let lines = emu.export_lines();
    assert_eq!(lines.lines().count(), vars.len());
    assert!(lines.lines().all(|l| l.starts_with("export ")));
    assert!(lines.contains(&format!("export AERION_BASE_URL={}\n", emu.aerion_base())));

    // The credentials the variables carry get a token.
    let request = Request::post(
        url(&format!("{}/oauth2/token", get("AERION_BASE_URL"))),
        Repeat::Safe,
    )
    .header(
        HeaderName::from_static("companyurl"),
        &get("AERION_COMPANY_URL"),
    )
    .unwrap()
    .form(&[
        ("grant_type", "password"),
        ("username", &get("AERION_USERNAME")),
        ("password", &get("AERION_PASSWORD")),
        ("client_id", &get("AERION_CLIENT_ID")),
        ("client_secret", &get("AERION_CLIENT_SECRET")),
    ]);
    assert_eq!(send(request).await.unwrap().status(), 200);
}

#[tokio::test]
async fn every_request_is_recorded_in_order_even_unknown_ones() {
    let emu = Emulator::start().await.unwrap();
    let unknown = send(Request::get(url(&format!("{}/nowhere?x=1", emu.url()))))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let wrong_method = send(Request::get(url(&emu.aerion_token_url())))
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(json(&wrong_method)["error"], "method_not_allowed");
    let _ = send(Request::get(url(&format!(
        "{}.well-known/jwks.json",
        emu.aurora_uk_issuer()
    ))))
    .await;

    let all = emu.requests();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].path, "/nowhere");
    assert_eq!(all[0].query.as_deref(), Some("x=1"));
    assert_eq!(all[0].endpoint, None);
    assert_eq!(all[1].method, "GET");
    assert_eq!(
        all[1].endpoint, None,
        "a wrong method addresses no endpoint"
    );
    assert!(
        all[1]
            .header("user-agent")
            .unwrap()
            .starts_with("partner-auth/")
    );
    assert_eq!(emu.requests_to("/aurora-uk/").len(), 1);
    assert_eq!(emu.requests_to("/aerion/").len(), 1);
    emu.clear_requests();
    assert!(emu.requests().is_empty());
}

#[tokio::test]
async fn shutdown_stops_the_server_and_drop_too() {
    let emu = Emulator::start().await.unwrap();
    let jwks = url(&format!("{}.well-known/jwks.json", emu.aurora_uk_issuer()));
    assert_eq!(
        send(Request::get(jwks.clone())).await.unwrap().status(),
        200
    );
    emu.shutdown().await;
    // A fresh client: the old one may hold a pooled connection.
    assert!(matches!(
        client().execute(Request::get(jwks)).await,
        Err(Error::Transport { .. })
    ));

    let emu = Emulator::start().await.unwrap();
    let jwks = url(&format!("{}.well-known/jwks.json", emu.aurora_uk_issuer()));
    drop(emu);
    let mut refused = false;
    for _ in 0..50 {
        if matches!(
            client().execute(Request::get(jwks.clone())).await,
            Err(Error::Transport { .. })
        ) {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused, "a dropped emulator stops listening");
}

#[tokio::test]
async fn the_port_can_be_chosen() {
    // Find a free port, release it, and ask for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let emu = Emulator::builder().port(port).start().await.unwrap();
    assert_eq!(emu.addr().port(), port);
    assert!(emu.addr().ip().is_loopback());
}

#[tokio::test]
async fn debug_output_holds_no_credential() {
    let emu = Emulator::start().await.unwrap();
    let config = EmulatorConfig::default();
    for text in [
        format!("{emu:?}"),
        format!("{config:?}"),
        format!("{:?}", Emulator::builder()),
    ] {
        for secret in [
            DEFAULT_AERION_PASSWORD,
            DEFAULT_AURORA_UK_CLIENT_SECRET,
            DEFAULT_AURORA_SOLAR_APPLICATION_KEY,
            DEFAULT_AURORA_SOLAR_API_KEY,
        ] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}
