//! Aerion: password grant, refresh rotation, tenant header, `me`.

mod common;

use common::{aerion_password_form, aerion_token_request, json, send, started, url};
use http::HeaderName;
use partner_auth_emulator::{
    AerionErrorShape, DEFAULT_AERION_PASSWORD, DEFAULT_AERION_TENANT, DEFAULT_AERION_USERNAME,
    Emulator, Endpoint, RunningEmulator,
};
use token_provider::Secret;
use token_provider::http::{Repeat, Request, Response};

fn companyurl() -> HeaderName {
    HeaderName::from_static("companyurl")
}

async fn password_grant(
    emu: &RunningEmulator,
    header: &str,
    tenant: &str,
    password: &str,
) -> Response {
    let request = Request::post(url(&emu.aerion_token_url()), Repeat::Safe)
        .header(HeaderName::from_bytes(header.as_bytes()).unwrap(), tenant)
        .unwrap()
        .form(&[
            ("grant_type", "password"),
            ("username", DEFAULT_AERION_USERNAME),
            ("password", password),
            ("client_id", "my-app"),
            ("client_secret", "anything"),
        ]);
    send(request).await.expect("answer")
}

/// The default user's password grant, with the right password and the `companyurl` header.
async fn signed_in(emu: &RunningEmulator) -> Response {
    password_grant(
        emu,
        "companyurl",
        DEFAULT_AERION_TENANT,
        DEFAULT_AERION_PASSWORD,
    )
    .await
}

async fn refresh_grant(emu: &RunningEmulator, refresh_token: &str) -> Response {
    let request = Request::post(url(&emu.aerion_token_url()), Repeat::Safe)
        .header(companyurl(), DEFAULT_AERION_TENANT)
        .unwrap()
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", "my-app"),
            ("client_secret", "anything"),
        ]);
    send(request).await.expect("answer")
}

async fn me(emu: &RunningEmulator, token: &str) -> Response {
    let request = Request::get(url(&format!("{}/v1/users/me", emu.aerion_base())))
        .bearer(&Secret::new(token))
        .unwrap();
    send(request).await.expect("answer")
}

#[tokio::test]
async fn password_grant_issues_a_working_token_and_records_the_request() {
    let emu = Emulator::start().await.unwrap();
    let response = signed_in(&emu).await;
    assert_eq!(response.status(), 200);
    let body = json(&response);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(access.len() >= 32 && refresh.len() >= 32 && access != refresh);
    assert_eq!(
        emu.current_refresh_token(DEFAULT_AERION_USERNAME)
            .as_deref(),
        Some(refresh)
    );

    let recorded = emu.requests_for(Endpoint::AerionToken);
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/aerion/oauth2/token");
    assert_eq!(r.header("companyurl"), Some(DEFAULT_AERION_TENANT));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.form_param("grant_type").as_deref(), Some("password"));
    assert_eq!(
        r.form_param("username").as_deref(),
        Some(DEFAULT_AERION_USERNAME)
    );
    assert_eq!(
        r.form_param("password").as_deref(),
        Some(DEFAULT_AERION_PASSWORD)
    );
    assert_eq!(r.fault, None);

    let user = me(&emu, access).await;
    assert_eq!(user.status(), 200);
    let user = json(&user);
    assert_eq!(user["email"], DEFAULT_AERION_USERNAME);
    assert!(user["id"].is_u64());
    let me_req = &emu.requests_for(Endpoint::AerionMe)[0];
    assert_eq!(me_req.bearer(), Some(access));
    assert_eq!(emu.requests().len(), 2);
}

#[tokio::test]
async fn the_v1_token_path_answers_too() {
    let emu = Emulator::start().await.unwrap();
    let request = aerion_token_request(
        &format!("{}/v1/oauth2/token", emu.aerion_base()),
        &aerion_password_form(DEFAULT_AERION_PASSWORD),
    );
    let response = send(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        emu.requests_for(Endpoint::AerionToken)[0].path,
        "/aerion/v1/oauth2/token"
    );
}

#[tokio::test]
async fn wrong_password_is_invalid_grant() {
    let emu = Emulator::start().await.unwrap();
    let response = password_grant(&emu, "companyurl", DEFAULT_AERION_TENANT, "wrong").await;
    assert_eq!(response.status(), 400);
    assert_eq!(json(&response)["error"], "invalid_grant");
    assert_eq!(emu.current_refresh_token(DEFAULT_AERION_USERNAME), None);
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_is_refused() {
    let emu = Emulator::start().await.unwrap();
    let first = json(&signed_in(&emu).await);
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();

    let second = refresh_grant(&emu, &r1).await;
    assert_eq!(second.status(), 200);
    let second = json(&second);
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2, "a refresh must rotate the refresh token");
    assert_ne!(first["access_token"], second["access_token"]);
    assert_eq!(
        emu.current_refresh_token(DEFAULT_AERION_USERNAME),
        Some(r2.clone())
    );
    assert_eq!(
        emu.requests_for(Endpoint::AerionToken)[1].form_param("refresh_token"),
        Some(r1.clone())
    );

    assert!(emu.aerion_refresh_tokens_presented_twice().is_empty());
    let reuse = refresh_grant(&emu, &r1).await;
    assert_eq!(reuse.status(), 400);
    assert_eq!(json(&reuse)["error"], "invalid_grant");
    assert_eq!(
        emu.aerion_refresh_tokens_presented_twice(),
        vec![r1.clone()]
    );

    // The newest one still works, once.
    assert_eq!(refresh_grant(&emu, &r2).await.status(), 200);
    assert_eq!(refresh_grant(&emu, &r2).await.status(), 400);
    assert_eq!(emu.aerion_refresh_tokens_presented_twice(), vec![r1, r2]);
}

#[tokio::test]
async fn revoked_refresh_tokens_are_refused() {
    let emu = Emulator::start().await.unwrap();
    let first = json(&signed_in(&emu).await);
    emu.revoke_refresh_tokens();
    assert_eq!(emu.current_refresh_token(DEFAULT_AERION_USERNAME), None);
    let response = refresh_grant(&emu, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), 400);
    assert_eq!(json(&response)["error"], "invalid_grant");

    // An SSO-style refresh token issued by the control API works.
    let seeded = emu.issue_refresh_token(DEFAULT_AERION_USERNAME).unwrap();
    assert_eq!(refresh_grant(&emu, &seeded).await.status(), 200);
    assert_eq!(emu.issue_refresh_token("nobody@nowhere.test"), None);
}

#[tokio::test]
async fn without_rotation_the_refresh_answer_has_no_refresh_token() {
    let emu = started(Emulator::builder().aerion_rotate_refresh_tokens(false)).await;
    let first = json(&signed_in(&emu).await);
    let r1 = first["refresh_token"].as_str().unwrap();
    let second = json(&refresh_grant(&emu, r1).await);
    assert!(second.get("refresh_token").is_none());
    assert!(second["access_token"].is_string());
    assert_eq!(refresh_grant(&emu, r1).await.status(), 200);
}

#[tokio::test]
async fn the_tenant_header_is_required_and_must_name_a_known_tenant() {
    let emu = Emulator::start().await.unwrap();
    // No tenant header at all.
    let request = Request::post(url(&emu.aerion_token_url()), Repeat::Safe)
        .form(&aerion_password_form(DEFAULT_AERION_PASSWORD));
    let response = send(request).await.unwrap();
    assert_eq!(response.status(), 400);
    let body = json(&response);
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("tenant")
    );

    // An unknown tenant.
    let response = password_grant(
        &emu,
        "companyurl",
        "other.aerion.test",
        DEFAULT_AERION_PASSWORD,
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(json(&response)["error"], "invalid_request");

    // origin and referrer name the tenant as well, as URLs or hosts.
    let tenant_url = format!("https://{DEFAULT_AERION_TENANT}/");
    for header in ["origin", "referrer", "companyurl"] {
        let response = password_grant(&emu, header, &tenant_url, DEFAULT_AERION_PASSWORD).await;
        assert_eq!(response.status(), 200, "{header}");
    }
    assert_eq!(emu.request_count(Endpoint::AerionToken), 5);
}

#[tokio::test]
async fn client_id_and_client_secret_must_be_present() {
    let emu = Emulator::start().await.unwrap();
    for missing in ["client_id", "client_secret"] {
        let fields: Vec<(&str, &str)> = aerion_password_form(DEFAULT_AERION_PASSWORD)
            .into_iter()
            .filter(|(k, _)| *k != missing)
            .collect();
        let request = Request::post(url(&emu.aerion_token_url()), Repeat::Safe)
            .header(companyurl(), DEFAULT_AERION_TENANT)
            .unwrap()
            .form(&fields);
        let response = send(request).await.unwrap();
        assert_eq!(response.status(), 400, "{missing}");
        assert_eq!(json(&response)["error"], "invalid_request");
    }
}

#[tokio::test]
async fn unknown_grant_types_are_refused() {
    let emu = Emulator::start().await.unwrap();
    let request = Request::post(url(&emu.aerion_token_url()), Repeat::Safe)
        .header(companyurl(), DEFAULT_AERION_TENANT)
        .unwrap()
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "x"),
            ("client_secret", "y"),
        ]);
    let response = send(request).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(json(&response)["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn me_refuses_missing_unknown_and_revoked_tokens() {
    let emu = Emulator::start().await.unwrap();
    let no_token = send(Request::get(url(&format!(
        "{}/v1/users/me",
        emu.aerion_base()
    ))))
    .await
    .unwrap();
    assert_eq!(no_token.status(), 401);
    assert_eq!(me(&emu, "not-a-token").await.status(), 401);

    let body = json(&signed_in(&emu).await);
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(me(&emu, access).await.status(), 200);
    emu.revoke_access_tokens();
    assert_eq!(me(&emu, access).await.status(), 401);
}

#[tokio::test]
async fn the_summary_error_shape() {
    let emu = started(Emulator::builder().aerion_error_shape(AerionErrorShape::Summary)).await;
    let response = password_grant(&emu, "companyurl", DEFAULT_AERION_TENANT, "wrong").await;
    assert_eq!(response.status(), 400);
    let body = json(&response);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["status"], 400);
    assert!(body["summary"].is_string());
    assert!(body["raw"].is_string());
    assert!(body.get("error_description").is_none());
}

#[tokio::test]
async fn access_tokens_expire_on_the_emulator_clock() {
    let emu =
        started(Emulator::builder().aerion_token_lifetime(std::time::Duration::from_secs(60)))
            .await;
    let body = json(&signed_in(&emu).await);
    assert_eq!(body["expires_in"], 60);
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(me(&emu, access).await.status(), 200);
    emu.set_clock_offset(std::time::Duration::from_secs(61));
    assert_eq!(me(&emu, access).await.status(), 401);
}
