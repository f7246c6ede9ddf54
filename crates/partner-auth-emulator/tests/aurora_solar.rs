//! Aurora Solar: create_token (backend and embedded), Client SDK users/invite/generate_token,
//! projects.

mod common;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use common::{create_token_url, json, send, started, url};
use partner_auth_emulator::{
    AuroraSolarUser, ClockOffset, DEFAULT_AURORA_SOLAR_API_KEY,
    DEFAULT_AURORA_SOLAR_APPLICATION_ID, DEFAULT_AURORA_SOLAR_APPLICATION_KEY, Emulator, Endpoint,
    InviteAnswer, RunningEmulator,
};
use token_provider::http::{Repeat, Request, Response};
use token_provider::{ManualClock, Secret};

const T0: u64 = 1_690_000_000; // 2023-07-22 04:26:40 UTC

fn create_token_request(emu: &RunningEmulator, key: &str, tenant: &str) -> Request {
    let url = create_token_url(emu, DEFAULT_AURORA_SOLAR_APPLICATION_ID, tenant);
    Request::post(url, Repeat::Safe)
        .bearer(&Secret::new(key))
        .unwrap()
}

async fn create_token(emu: &RunningEmulator, session: Option<&str>) -> Response {
    let mut request = create_token_request(
        emu,
        DEFAULT_AURORA_SOLAR_APPLICATION_KEY,
        emu.aurora_solar_tenant(),
    );
    if let Some(session) = session {
        request = request.query("session_token", session);
    }
    send(request).await.unwrap()
}

async fn projects(emu: &RunningEmulator, tenant: &str, key: &str) -> Response {
    let request = Request::get(url(&format!(
        "{}/tenants/{tenant}/projects",
        emu.aurora_solar_base()
    )))
    .bearer(&Secret::new(key))
    .unwrap();
    send(request).await.unwrap()
}

fn sdk(emu: &RunningEmulator, method: &str, path: &str) -> Request {
    let u = url(&format!(
        "{}/tenants/{}/{path}",
        emu.aurora_solar_base(),
        emu.aurora_solar_tenant()
    ));
    let request = if method == "GET" {
        Request::get(u)
    } else {
        Request::post(u, Repeat::Safe)
    };
    request
        .bearer(&Secret::new(DEFAULT_AURORA_SOLAR_API_KEY))
        .unwrap()
}

fn manual_emulator_clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0))
}

#[tokio::test]
async fn backend_create_token_answers_a_temporary_key_for_13_hours() {
    let clock = manual_emulator_clock();
    let emu = started(Emulator::builder().clock(Arc::new(clock))).await;
    let response = create_token(&emu, None).await;
    assert_eq!(response.status(), 200);
    let body = json(&response);
    let key = body["token"]["bearer_token"].as_str().unwrap();
    assert!(key.starts_with("tk_test_"));
    // T0 + 13 h = 2023-07-22 17:26:40 UTC
    assert_eq!(body["token"]["expires_at"], "2023-07-22 17:26:40 UTC");

    let r = &emu.requests_for(Endpoint::AuroraSolarCreateToken)[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.bearer(), Some(DEFAULT_AURORA_SOLAR_APPLICATION_KEY));
    assert_eq!(r.query, None);
    assert_eq!(
        r.path,
        format!(
            "/aurora-solar/partner_applications/{DEFAULT_AURORA_SOLAR_APPLICATION_ID}/tenants/{}/create_token",
            emu.aurora_solar_tenant()
        )
    );

    assert_eq!(
        projects(&emu, emu.aurora_solar_tenant(), key)
            .await
            .status(),
        200
    );
    assert_eq!(projects(&emu, "another-tenant", key).await.status(), 401);
    assert_eq!(
        projects(&emu, emu.aurora_solar_tenant(), "tk_test_forged")
            .await
            .status(),
        401
    );
    // The application key is not a temporary key.
    assert_eq!(
        projects(
            &emu,
            emu.aurora_solar_tenant(),
            DEFAULT_AURORA_SOLAR_APPLICATION_KEY
        )
        .await
        .status(),
        401
    );
}

#[tokio::test]
async fn the_clock_offset_shifts_expires_at_both_ways() {
    let emu = started(
        Emulator::builder()
            .clock(Arc::new(manual_emulator_clock()))
            .clock_offset(Duration::from_secs(300)),
    )
    .await;
    let ahead = json(&create_token(&emu, None).await);
    assert_eq!(ahead["token"]["expires_at"], "2023-07-22 17:31:40 UTC");
    emu.set_clock_offset(ClockOffset::Behind(Duration::from_secs(600)));
    assert_eq!(
        emu.clock_offset(),
        ClockOffset::Behind(Duration::from_secs(600))
    );
    let behind = json(&create_token(&emu, None).await);
    assert_eq!(behind["token"]["expires_at"], "2023-07-22 17:16:40 UTC");
    assert_eq!(emu.now(), UNIX_EPOCH + Duration::from_secs(T0 - 600));
}

#[tokio::test]
async fn a_session_token_is_single_use() {
    let emu = Emulator::start().await.unwrap();
    let session = emu.issue_session_token(emu.aurora_solar_tenant());
    let first = create_token(&emu, Some(&session)).await;
    assert_eq!(first.status(), 200);
    assert!(json(&first)["token"]["bearer_token"].is_string());
    let r = &emu.requests_for(Endpoint::AuroraSolarCreateToken)[0];
    assert_eq!(r.query_param("session_token"), Some(session.clone()));

    let again = create_token(&emu, Some(&session)).await;
    assert_eq!(again.status(), 401);
    assert!(
        json(&again)["error"]
            .as_str()
            .unwrap()
            .contains("session token")
    );

    let unknown = create_token(&emu, Some("never-issued")).await;
    assert_eq!(unknown.status(), 401);
    assert!(
        json(&unknown)["error"]
            .as_str()
            .unwrap()
            .contains("session token")
    );

    // Another tenant's session token is refused and stays unspent.
    let other = emu.issue_session_token("another-tenant");
    assert_eq!(create_token(&emu, Some(&other)).await.status(), 401);
}

#[tokio::test]
async fn a_session_token_expires_after_an_hour() {
    let clock = manual_emulator_clock();
    let emu = started(Emulator::builder().clock(Arc::new(clock.clone()))).await;
    let session = emu.issue_session_token(emu.aurora_solar_tenant());
    clock.advance(Duration::from_secs(3601));
    assert_eq!(create_token(&emu, Some(&session)).await.status(), 401);
}

#[tokio::test]
async fn wrong_application_key_or_tenant_is_refused() {
    let emu = Emulator::start().await.unwrap();
    let wrong_key = send(create_token_request(
        &emu,
        "sk_sand_wrong",
        emu.aurora_solar_tenant(),
    ))
    .await
    .unwrap();
    assert_eq!(wrong_key.status(), 401);
    let no_key = send(Request::post(
        create_token_url(
            &emu,
            DEFAULT_AURORA_SOLAR_APPLICATION_ID,
            emu.aurora_solar_tenant(),
        ),
        Repeat::Safe,
    ))
    .await
    .unwrap();
    assert_eq!(no_key.status(), 401);
    let wrong_tenant = send(create_token_request(
        &emu,
        DEFAULT_AURORA_SOLAR_APPLICATION_KEY,
        "not-authorized",
    ))
    .await
    .unwrap();
    assert_eq!(wrong_tenant.status(), 403);
}

#[tokio::test]
async fn sdk_users_invite_and_generate_token() {
    let clock = manual_emulator_clock();
    let emu = started(Emulator::builder().clock(Arc::new(clock))).await;
    let listed = send(sdk(&emu, "GET", "users")).await.unwrap();
    assert_eq!(listed.status(), 200);
    let users = json(&listed)["users"].as_array().unwrap().clone();
    assert_eq!(users.len(), 2);
    for field in ["id", "first_name", "last_name", "email", "account_status"] {
        assert!(users[0][field].is_string(), "{field}");
    }
    assert_eq!(users[0]["account_status"], "active");

    let invite = sdk(&emu, "POST", "users/invite")
        .json(&serde_json::json!({"user": {
            "first_name": "Ada", "last_name": "Lovelace", "email": "ada@emulator.test",
            "phone": "(415) 360-9291", "user_level": "SDK User"
        }}))
        .unwrap();
    let invited = send(invite).await.unwrap();
    assert_eq!(invited.status(), 200);
    let invited = json(&invited);
    let id = invited["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    assert_eq!(invited["user"]["email"], "ada@emulator.test");
    let r = &emu.requests_for(Endpoint::AuroraSolarInvite)[0];
    assert_eq!(r.json().unwrap()["user"]["user_level"], "SDK User");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(emu.aurora_solar_users(emu.aurora_solar_tenant()).len(), 3);

    // The same email again is refused.
    let again = sdk(&emu, "POST", "users/invite")
        .json(&serde_json::json!({"user": {
            "first_name": "Ada", "last_name": "Lovelace", "email": "ADA@emulator.test", "user_level": "SDK User"
        }}))
        .unwrap();
    assert_eq!(send(again).await.unwrap().status(), 422);

    let generated = send(sdk(&emu, "POST", &format!("users/{id}/generate_token")))
        .await
        .unwrap();
    assert_eq!(generated.status(), 200);
    let jwt = json(&generated)["token"]["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: serde_json::Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");
    let claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["id"], id.as_str());
    assert_eq!(claims["email"], "ada@emulator.test");
    assert_eq!(claims["exp"], T0 + 12 * 3600);
    assert!(claims["jti"].is_string());
    assert_eq!(b64.decode(parts[2]).unwrap().len(), 32);

    let missing = send(sdk(&emu, "POST", "users/no-such-user/generate_token"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn the_invite_answer_may_be_empty() {
    let emu = started(Emulator::builder().aurora_solar_invite_answer(InviteAnswer::Empty)).await;
    let invite = sdk(&emu, "POST", "users/invite")
        .json(&serde_json::json!({"user": {
            "first_name": "Ada", "last_name": "Lovelace", "email": "ada@emulator.test", "user_level": "SDK User"
        }}))
        .unwrap();
    let answer = send(invite).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(json(&answer), serde_json::json!({}));
    let listed = json(&send(sdk(&emu, "GET", "users")).await.unwrap());
    assert!(
        listed["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["email"] == "ada@emulator.test")
    );
}

#[tokio::test]
async fn invitees_can_stay_invited_and_still_get_a_jwt() {
    let mut pending = AuroraSolarUser::new("p-1", "Pat", "Pending", "pat@emulator.test");
    pending.account_status = "pending".to_owned();
    let emu = started(
        Emulator::builder()
            .aurora_solar_invitee_status("invited")
            .aurora_solar_users(vec![pending]),
    )
    .await;
    let invite = sdk(&emu, "POST", "users/invite")
        .json(&serde_json::json!({"user": {
            "first_name": "Ada", "last_name": "Lovelace", "email": "ada@emulator.test", "user_level": "SDK User"
        }}))
        .unwrap();
    let invited = send(invite).await.unwrap();
    assert_eq!(invited.status(), 200);
    let invited = json(&invited);
    assert_eq!(invited["user"]["account_status"], "invited");
    let id = invited["user"]["id"].as_str().unwrap().to_owned();

    // Listed as invited from then on, and a second invitation is refused.
    let listed = json(&send(sdk(&emu, "GET", "users")).await.unwrap());
    let ada = listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ada@emulator.test")
        .unwrap()
        .clone();
    assert_eq!(ada["account_status"], "invited");
    let again = sdk(&emu, "POST", "users/invite")
        .json(&serde_json::json!({"user": {
            "first_name": "Ada", "last_name": "Lovelace", "email": "ada@emulator.test", "user_level": "SDK User"
        }}))
        .unwrap();
    assert_eq!(send(again).await.unwrap().status(), 422);

    // An SDK User needs no acceptance: a JWT in any state.
    let generated = send(sdk(&emu, "POST", &format!("users/{id}/generate_token")))
        .await
        .unwrap();
    assert_eq!(generated.status(), 200);
    assert!(json(&generated)["token"]["jwt"].is_string());
    // Anyone else must be active.
    let refused = send(sdk(&emu, "POST", "users/p-1/generate_token"))
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
}

#[tokio::test]
async fn sdk_calls_need_the_api_key() {
    let emu = Emulator::start().await.unwrap();
    let u = url(&format!(
        "{}/tenants/{}/users",
        emu.aurora_solar_base(),
        emu.aurora_solar_tenant()
    ));
    assert_eq!(send(Request::get(u.clone())).await.unwrap().status(), 401);
    let wrong = Request::get(u)
        .bearer(&Secret::new(DEFAULT_AURORA_SOLAR_APPLICATION_KEY))
        .unwrap();
    assert_eq!(send(wrong).await.unwrap().status(), 401);
    let unknown_tenant = Request::get(url(&format!(
        "{}/tenants/nope/users",
        emu.aurora_solar_base()
    )))
    .bearer(&Secret::new(DEFAULT_AURORA_SOLAR_API_KEY))
    .unwrap();
    assert_eq!(send(unknown_tenant).await.unwrap().status(), 404);
    let bad_invite = sdk(&emu, "POST", "users/invite")
        .json(&serde_json::json!({"user": {"first_name": "A"}}))
        .unwrap();
    assert_eq!(send(bad_invite).await.unwrap().status(), 422);
}

#[tokio::test]
async fn temporary_keys_expire_on_the_emulator_clock() {
    let emu =
        started(Emulator::builder().aurora_solar_temporary_key_lifetime(Duration::from_secs(120)))
            .await;
    let key = json(&create_token(&emu, None).await)["token"]["bearer_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        projects(&emu, emu.aurora_solar_tenant(), &key)
            .await
            .status(),
        200
    );
    emu.set_clock_offset(Duration::from_secs(121));
    assert_eq!(
        projects(&emu, emu.aurora_solar_tenant(), &key)
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn jwt_exp_follows_the_clock_offset_and_the_expires_in_fault() {
    let emu = started(
        Emulator::builder()
            .clock(Arc::new(manual_emulator_clock()))
            .clock_offset(ClockOffset::Behind(Duration::from_secs(120))),
    )
    .await;
    let user = emu.aurora_solar_users(emu.aurora_solar_tenant())[0]
        .id
        .clone();
    let exp = |jwt: &str| -> i64 {
        let payload = jwt.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        claims["exp"].as_i64().unwrap()
    };
    let path = format!("users/{user}/generate_token");
    let answer = json(&send(sdk(&emu, "POST", &path)).await.unwrap());
    assert_eq!(
        exp(answer["token"]["jwt"].as_str().unwrap()),
        (T0 - 120 + 12 * 3600) as i64
    );

    emu.inject(
        Endpoint::AuroraSolarGenerateToken,
        partner_auth_emulator::Fault::ExpiresIn(-5),
        1,
    );
    let answer = json(&send(sdk(&emu, "POST", &path)).await.unwrap());
    assert_eq!(
        exp(answer["token"]["jwt"].as_str().unwrap()),
        (T0 - 120 - 5) as i64
    );
}
