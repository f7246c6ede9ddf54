//! Aurora UK, Auth0-shaped: discovery, JWKS, the client-credentials token endpoint (Basic or
//! body client authentication, audience required) and `GET /api/Accounts`.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::response::Response;
use base64::Engine;
use http::header::WWW_AUTHENTICATE;
use http::{Method, StatusCode};
use sha2::Digest;

use crate::fault::{Endpoint, json_response};
use crate::record::bearer_of;
use crate::route::Routes;
use crate::state::{Ctx, Grant, Shared, State, random_token, shift};

/// Aurora UK's endpoints: discovery, JWKS, the token endpoint and the protected `Accounts`.
pub(crate) fn register(routes: &mut Routes) {
    routes.add(
        Method::GET,
        "/aurora-uk/.well-known/openid-configuration",
        Endpoint::AuroraUkDiscovery,
        discovery,
    );
    routes.add(
        Method::GET,
        "/aurora-uk/.well-known/jwks.json",
        Endpoint::AuroraUkJwks,
        jwks,
    );
    routes.add(
        Method::POST,
        "/aurora-uk/oauth/token",
        Endpoint::AuroraUkToken,
        token,
    );
    routes.add(
        Method::GET,
        "/aurora-uk/api/Accounts",
        Endpoint::AuroraUkApi,
        accounts,
    );
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    json_response(
        status,
        &serde_json::json!({"error": code, "error_description": description}),
    )
}

fn discovery(shared: &Shared, _: &mut State, _: &Ctx, _: SystemTime) -> Response {
    let issuer = shared.issuer();
    let base = issuer.trim_end_matches('/');
    json_response(
        StatusCode::OK,
        &aurora_uk_discovery(&issuer, base, "/oauth/token"),
    )
}

/// The discovery document of an Auth0 tenant such as Aurora UK's: `issuer` as given, every
/// endpoint under `base` (the issuer without its final `/`), the token endpoint at
/// `token_path`. The emulator serves it for its own issuer and `/oauth/token`; a test that
/// mocks the tenant on another server (another issuer, a moved token endpoint) serves the same.
pub fn aurora_uk_discovery(issuer: &str, base: &str, token_path: &str) -> serde_json::Value {
    serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}{token_path}"),
        "device_authorization_endpoint": format!("{base}/oauth/device/code"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "mfa_challenge_endpoint": format!("{base}/mfa/challenge"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "registration_endpoint": format!("{base}/oidc/register"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "end_session_endpoint": format!("{base}/oidc/logout"),
        "scopes_supported": [
            "openid", "profile", "offline_access", "name", "given_name", "family_name",
            "nickname", "email", "email_verified", "picture", "created_at", "identities",
            "phone", "address"
        ],
        "response_types_supported": [
            "code", "token", "id_token", "code token", "code id_token", "token id_token",
            "code token id_token"
        ],
        "code_challenge_methods_supported": ["S256", "plain"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "grant_types_supported": [
            "authorization_code", "client_credentials", "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code"
        ],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "claims_supported": [
            "aud", "auth_time", "created_at", "email", "email_verified", "exp",
            "family_name", "given_name", "iat", "identities", "iss", "name", "nickname",
            "phone_number", "picture", "sub"
        ],
        "request_uri_parameter_supported": false,
        "request_parameter_supported": false,
    })
}

/// A syntactically valid RSA key set. The modulus is derived from a fixed seed (it is not a
/// real key: the emulator signs nothing with it).
fn jwks(_: &Shared, _: &mut State, _: &Ctx, _: SystemTime) -> Response {
    let mut modulus = Vec::with_capacity(256);
    let mut block = sha2::Sha256::digest(b"partner-auth-emulator aurora-uk jwks");
    while modulus.len() < 256 {
        modulus.extend_from_slice(&block);
        block = sha2::Sha256::digest(block);
    }
    modulus[0] |= 0x80;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": "emulator-key-1",
                "n": b64.encode(&modulus),
                "e": "AQAB",
            }]
        }),
    )
}

/// Form fields, or a flat JSON object of strings (Auth0 takes both).
fn fields(ctx: &Ctx) -> HashMap<String, String> {
    if ctx.is_json() {
        let value: serde_json::Value = serde_json::from_slice(&ctx.body).unwrap_or_default();
        value
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        ctx.form()
    }
}

fn token(shared: &Shared, state: &mut State, ctx: &Ctx, now: SystemTime) -> Response {
    let config = &shared.config;
    let fields = fields(ctx);
    let unauthorized = || error(StatusCode::UNAUTHORIZED, "access_denied", "Unauthorized");
    let (client_id, client_secret) = match ctx.basic() {
        Some((id, secret)) => {
            if fields
                .get("client_id")
                .is_some_and(|body_id| *body_id != id)
            {
                return unauthorized();
            }
            (Some(id), Some(secret))
        }
        None => (
            fields.get("client_id").cloned(),
            fields.get("client_secret").cloned(),
        ),
    };
    let accepted = state
        .aurora_uk_client_secret
        .as_deref()
        .unwrap_or(&config.aurora_uk_client_secret);
    if client_id.as_deref() != Some(config.aurora_uk_client_id.as_str())
        || client_secret.as_deref() != Some(accepted)
    {
        return unauthorized();
    }
    match fields.get("grant_type").map(String::as_str) {
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing required parameter: grant_type",
            );
        }
        Some("client_credentials") => {}
        Some(other) => {
            return error(
                StatusCode::FORBIDDEN,
                "unauthorized_client",
                &format!("Grant type '{other}' not allowed for the client."),
            );
        }
    }
    let audience = fields
        .get("audience")
        .map(String::as_str)
        .unwrap_or_default();
    if audience != config.aurora_uk_audience {
        let named = if audience.is_empty() {
            format!("{}api/v2/", shared.issuer())
        } else {
            audience.to_owned()
        };
        return error(
            StatusCode::FORBIDDEN,
            "access_denied",
            &format!("Service not enabled within domain: {named}"),
        );
    }
    let expires_in = ctx.lifetime(config.aurora_uk_token_lifetime);
    let access_token = state.issue(
        random_token(48),
        Grant::AuroraUk(config.aurora_uk_client_id.clone()),
        shift(now, expires_in),
    );
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": expires_in,
        }),
    )
}

fn accounts(_: &Shared, state: &mut State, ctx: &Ctx, now: SystemTime) -> Response {
    // The provider's page says "Authentication"; the standard header is "Authorization".
    let token = ctx
        .header("authorization")
        .or_else(|| ctx.header("authentication"))
        .and_then(bearer_of);
    match token.and_then(|t| state.live(t, now)) {
        Some(Grant::AuroraUk(_)) => json_response(
            StatusCode::OK,
            &serde_json::json!([
                {"id": 1, "name": "Emulated Energy Ltd", "status": "active"},
                {"id": 2, "name": "Offline Solar plc", "status": "active"},
            ]),
        ),
        _ => {
            let mut response = error(StatusCode::UNAUTHORIZED, "invalid_token", "Unauthorized");
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            response
        }
    }
}
