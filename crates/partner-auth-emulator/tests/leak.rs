//! The emulator logs nothing secret: a capturing subscriber at TRACE across successes and
//! failures.

mod common;

use common::{aerion_password_form, aerion_token_request, json, send, solar_create};
use partner_auth_emulator::{
    DEFAULT_AERION_PASSWORD, DEFAULT_AURORA_SOLAR_API_KEY, DEFAULT_AURORA_SOLAR_APPLICATION_KEY,
    DEFAULT_AURORA_UK_CLIENT_SECRET, Emulator, Endpoint, Fault,
};

#[tokio::test]
async fn nothing_secret_is_logged() {
    let logs = token_provider::testing::capture_logs();
    let emu = Emulator::start().await.unwrap();
    let password =
        |p: &str| aerion_token_request(&emu.aerion_token_url(), &aerion_password_form(p));
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
    let create = solar_create(&emu).query("session_token", &session);
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
