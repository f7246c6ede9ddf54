//! The emulator logs nothing secret: a capturing subscriber at TRACE across successes and
//! failures.

mod common;

use common::{json, send, url};
use http::HeaderName;
use partner_auth_emulator::{
    DEFAULT_AERION_PASSWORD, DEFAULT_AERION_TENANT, DEFAULT_AERION_USERNAME,
    DEFAULT_AURORA_SOLAR_API_KEY, DEFAULT_AURORA_SOLAR_APPLICATION_KEY,
    DEFAULT_AURORA_UK_CLIENT_SECRET, Emulator, Endpoint, Fault,
};
use token_provider::Secret;
use token_provider::http::{Repeat, Request};

#[tokio::test]
async fn nothing_secret_is_logged() {
    let logs = token_provider::testing::capture_logs();
    let emu = Emulator::start().await.unwrap();
    let password = |p: &str| {
        Request::post(url(&emu.aerion_token_url()), Repeat::Safe)
            .header(HeaderName::from_static("companyurl"), DEFAULT_AERION_TENANT)
            .unwrap()
            .form(&[
                ("grant_type", "password"),
                ("username", DEFAULT_AERION_USERNAME),
                ("password", p),
                ("client_id", "x"),
                ("client_secret", "y"),
            ])
    };
    let body = json(&send(password(DEFAULT_AERION_PASSWORD)).await.unwrap());
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        send(password("wrong-password-value"))
            .await
            .unwrap()
            .status(),
        400
    );
    emu.inject(Endpoint::AerionToken, Fault::Status(503), 1);
    assert!(send(password(DEFAULT_AERION_PASSWORD)).await.is_err());
    let session = emu.issue_session_token(emu.aurora_solar_tenant());
    let create = Request::post(
        url(&format!(
            "{}/partner_applications/{}/tenants/{}/create_token",
            emu.aurora_solar_base(),
            emu.config().aurora_solar_application_id,
            emu.aurora_solar_tenant()
        )),
        Repeat::Safe,
    )
    .bearer(&Secret::new(DEFAULT_AURORA_SOLAR_APPLICATION_KEY))
    .unwrap()
    .query("session_token", &session);
    let key = json(&send(create).await.unwrap())["token"]["bearer_token"]
        .as_str()
        .unwrap()
        .to_owned();
    emu.shutdown().await;

    logs.assert_absent(&[
        DEFAULT_AERION_PASSWORD,
        "wrong-password-value",
        DEFAULT_AURORA_UK_CLIENT_SECRET,
        DEFAULT_AURORA_SOLAR_APPLICATION_KEY,
        DEFAULT_AURORA_SOLAR_API_KEY,
        &access,
        &refresh,
        &session,
        &key,
    ]);
}
