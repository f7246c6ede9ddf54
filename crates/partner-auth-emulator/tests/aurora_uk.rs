//! Aurora UK: discovery, JWKS, client credentials (Basic and body), audience, the API.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{json, send, started, url};
use http::HeaderName;
use partner_auth_emulator::{
    DEFAULT_AURORA_UK_AUDIENCE, DEFAULT_AURORA_UK_CLIENT_ID, DEFAULT_AURORA_UK_CLIENT_SECRET,
    Emulator, Endpoint, RunningEmulator,
};
use token_provider::Secret;
use token_provider::http::{Repeat, Request, Response};

async fn body_grant(
    emu: &RunningEmulator,
    id: &str,
    secret: &str,
    audience: Option<&str>,
) -> Response {
    let mut fields = vec![
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
    ];
    if let Some(audience) = audience {
        fields.push(("audience", audience));
    }
    send(Request::post(url(&emu.aurora_uk_token_url()), Repeat::Safe).form(&fields))
        .await
        .unwrap()
}

/// The client credentials grant with the default client and audience.
async fn default_grant(emu: &RunningEmulator) -> Response {
    body_grant(
        emu,
        DEFAULT_AURORA_UK_CLIENT_ID,
        DEFAULT_AURORA_UK_CLIENT_SECRET,
        Some(DEFAULT_AURORA_UK_AUDIENCE),
    )
    .await
}

async fn accounts(emu: &RunningEmulator, header: &str, token: &str) -> Response {
    let request = Request::get(url(&format!("{}/Accounts", emu.aurora_uk_api_base())))
        .query("orderBy", "id asc")
        .header(
            HeaderName::from_bytes(header.as_bytes()).unwrap(),
            &format!("Bearer {token}"),
        )
        .unwrap();
    send(request).await.unwrap()
}

#[tokio::test]
async fn discovery_is_an_auth0_like_document_with_the_exact_issuer() {
    let emu = Emulator::start().await.unwrap();
    let issuer = emu.aurora_uk_issuer();
    assert_eq!(issuer, format!("{}/aurora-uk/", emu.url()));
    let response = send(Request::get(url(&format!(
        "{issuer}.well-known/openid-configuration"
    ))))
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc = json(&response);
    assert_eq!(doc["issuer"].as_str(), Some(issuer.as_str()));
    assert_eq!(
        doc["token_endpoint"].as_str(),
        Some(emu.aurora_uk_token_url().as_str())
    );
    assert_eq!(
        doc["jwks_uri"].as_str().unwrap(),
        format!("{issuer}.well-known/jwks.json")
    );
    assert!(
        doc["authorization_endpoint"]
            .as_str()
            .unwrap()
            .starts_with(&issuer)
    );
    assert!(doc["userinfo_endpoint"].is_string());
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    assert!(
        doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&"client_credentials".into())
    );
    assert!(doc["response_types_supported"].is_array());
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["public"])
    );

    let jwks = json(
        &send(Request::get(url(doc["jwks_uri"].as_str().unwrap())))
            .await
            .unwrap(),
    );
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["e"], "AQAB");
    use base64::Engine;
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key["n"].as_str().unwrap())
        .expect("n is base64url");
    assert_eq!(n.len(), 256);
    assert_eq!(emu.request_count(Endpoint::AuroraUkDiscovery), 1);
    assert_eq!(emu.request_count(Endpoint::AuroraUkJwks), 1);
}

#[tokio::test]
async fn client_credentials_in_the_body() {
    let emu = Emulator::start().await.unwrap();
    let response = default_grant(&emu).await;
    assert_eq!(response.status(), 200);
    let body = json(&response);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 86400);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(accounts(&emu, "authorization", token).await.status(), 200);

    let r = &emu.requests_for(Endpoint::AuroraUkToken)[0];
    assert_eq!(r.path, "/aurora-uk/oauth/token");
    assert_eq!(r.header("authorization"), None);
    assert_eq!(
        r.form_param("audience").as_deref(),
        Some(DEFAULT_AURORA_UK_AUDIENCE)
    );
    assert_eq!(
        r.form_param("grant_type").as_deref(),
        Some("client_credentials")
    );
}

#[tokio::test]
async fn client_credentials_by_basic_auth_form_urlencoded_first() {
    let (id, secret) = ("client:id", "s3cret&+/: with space");
    let emu = started(Emulator::builder().aurora_uk_client(id, secret)).await;
    let request = Request::post(url(&emu.aurora_uk_token_url()), Repeat::Safe)
        .basic_auth(id, &Secret::new(secret))
        .unwrap()
        .form(&[
            ("grant_type", "client_credentials"),
            ("audience", DEFAULT_AURORA_UK_AUDIENCE),
        ]);
    let response = send(request).await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", json(&response));
    let r = &emu.requests_for(Endpoint::AuroraUkToken)[0];
    assert_eq!(r.basic_auth(), Some((id.to_owned(), secret.to_owned())));
    assert_eq!(r.form_param("client_secret"), None);

    // A wrong secret through Basic is refused like one in the body.
    let request = Request::post(url(&emu.aurora_uk_token_url()), Repeat::Safe)
        .basic_auth(id, &Secret::new("wrong"))
        .unwrap()
        .form(&[
            ("grant_type", "client_credentials"),
            ("audience", DEFAULT_AURORA_UK_AUDIENCE),
        ]);
    assert_eq!(send(request).await.unwrap().status(), 401);
}

#[tokio::test]
async fn the_token_endpoint_takes_a_json_body_too() {
    let emu = Emulator::start().await.unwrap();
    let request = Request::post(url(&emu.aurora_uk_token_url()), Repeat::Safe)
        .json(&serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": DEFAULT_AURORA_UK_CLIENT_ID,
            "client_secret": DEFAULT_AURORA_UK_CLIENT_SECRET,
            "audience": DEFAULT_AURORA_UK_AUDIENCE,
        }))
        .unwrap();
    assert_eq!(send(request).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_missing_or_wrong_audience_is_403() {
    let emu = Emulator::start().await.unwrap();
    for audience in [None, Some("https://api.client.integration.aurora.co.uk")] {
        let response = body_grant(
            &emu,
            DEFAULT_AURORA_UK_CLIENT_ID,
            DEFAULT_AURORA_UK_CLIENT_SECRET,
            audience,
        )
        .await;
        assert_eq!(response.status(), 403, "{audience:?}");
        let body = json(&response);
        assert_eq!(body["error"], "access_denied");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with("Service not enabled within domain: ")
        );
    }
}

#[tokio::test]
async fn a_bad_client_is_401() {
    let emu = Emulator::start().await.unwrap();
    for (id, secret) in [
        (DEFAULT_AURORA_UK_CLIENT_ID, "wrong"),
        ("unknown", DEFAULT_AURORA_UK_CLIENT_SECRET),
    ] {
        let response = body_grant(&emu, id, secret, Some(DEFAULT_AURORA_UK_AUDIENCE)).await;
        assert_eq!(response.status(), 401);
        assert_eq!(
            json(&response),
            serde_json::json!({"error": "access_denied", "error_description": "Unauthorized"})
        );
    }
    // Another grant type is not allowed for the client.
    let response = send(
        Request::post(url(&emu.aurora_uk_token_url()), Repeat::Safe).form(&[
            ("grant_type", "password"),
            ("client_id", DEFAULT_AURORA_UK_CLIENT_ID),
            ("client_secret", DEFAULT_AURORA_UK_CLIENT_SECRET),
            ("audience", DEFAULT_AURORA_UK_AUDIENCE),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(json(&response)["error"], "unauthorized_client");
}

#[tokio::test]
async fn the_api_checks_the_bearer_in_either_header() {
    let emu = Emulator::start().await.unwrap();
    let body = json(&default_grant(&emu).await);
    let token = body["access_token"].as_str().unwrap();
    let ok = accounts(&emu, "authentication", token).await;
    assert_eq!(ok.status(), 200);
    assert!(json(&ok).as_array().is_some_and(|a| !a.is_empty()));
    let r = &emu.requests_for(Endpoint::AuroraUkApi)[0];
    assert_eq!(r.query_param("orderBy").as_deref(), Some("id asc"));

    let refused = accounts(&emu, "authorization", "forged").await;
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));
    let none = send(Request::get(url(&format!(
        "{}/Accounts",
        emu.aurora_uk_api_base()
    ))))
    .await
    .unwrap();
    assert_eq!(none.status(), 401);
}

#[tokio::test]
async fn tokens_expire_on_the_given_clock() {
    let clock = token_provider::testing::fixed_clock();
    let emu = started(
        Emulator::builder()
            .clock(Arc::new(clock.clone()))
            .aurora_uk_token_lifetime(Duration::from_secs(600)),
    )
    .await;
    let body = json(&default_grant(&emu).await);
    assert_eq!(body["expires_in"], 600);
    let token = body["access_token"].as_str().unwrap();
    clock.advance(Duration::from_secs(599));
    assert_eq!(accounts(&emu, "authorization", token).await.status(), 200);
    clock.advance(Duration::from_secs(1));
    assert_eq!(accounts(&emu, "authorization", token).await.status(), 401);
}
