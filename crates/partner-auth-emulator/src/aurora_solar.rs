//! Aurora Solar: partner `create_token` (single-use session tokens), the Client SDK users list,
//! invite and `generate_token` (an HS256 JWT), and `GET /tenants/{tenant_id}/projects`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::response::Response;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::{Method, StatusCode};

use crate::config::{AuroraSolarUser, InviteAnswer};
use crate::fault::{Endpoint, json_response};
use crate::route::{Handler, Routes};
use crate::state::{Ctx, Grant, Shared, State, random_uuid, shift};

/// The access level of Client SDK users, who need not accept their invitation.
const SDK_USER_LEVEL: &str = "SDK User";

/// The key the emulator signs Client SDK JWTs with (clients cannot check the signature).
const JWT_KEY: &[u8] = b"partner-auth-emulator-client-sdk-jwt-key";

/// Aurora Solar's endpoints, each behind the per-key rate limit.
pub(crate) fn register(routes: &mut Routes) {
    let endpoints: [(_, _, _, Handler); 5] = [
        (
            Method::POST,
            "/aurora-solar/partner_applications/{application_id}/tenants/{tenant}/create_token",
            Endpoint::AuroraSolarCreateToken,
            create_token,
        ),
        (
            Method::GET,
            "/aurora-solar/tenants/{tenant}/users",
            Endpoint::AuroraSolarUsers,
            users,
        ),
        (
            Method::POST,
            "/aurora-solar/tenants/{tenant}/users/invite",
            Endpoint::AuroraSolarInvite,
            invite,
        ),
        (
            Method::POST,
            "/aurora-solar/tenants/{tenant}/users/{user}/generate_token",
            Endpoint::AuroraSolarGenerateToken,
            generate_token,
        ),
        (
            Method::GET,
            "/aurora-solar/tenants/{tenant}/projects",
            Endpoint::AuroraSolarProjects,
            projects,
        ),
    ];
    for (method, pattern, endpoint, handler) in endpoints {
        routes
            .add(method, pattern, endpoint, handler)
            .guarded(rate_limit);
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &serde_json::json!({ "error": message }))
}

/// `2023-07-29 04:30:46 UTC`, the format of `expires_at`.
pub(crate) fn format_expires_at(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// The per-key limit: `Some(429)` when this Aurora Solar request is one too many in its key's
/// window (counted only when accepted, like the real API's limit).
fn rate_limit(shared: &Shared, state: &mut State, ctx: &Ctx, now: SystemTime) -> Option<Response> {
    let (requests, window) = shared.config.aurora_solar_rate_limit?;
    let key = ctx.bearer().unwrap_or_default().to_owned();
    let accepted = state.solar_windows.entry(key).or_default();
    while accepted
        .front()
        .is_some_and(|at| now.duration_since(*at).is_ok_and(|age| age >= window))
    {
        accepted.pop_front();
    }
    if accepted.len() < requests as usize {
        accepted.push_back(now);
        return None;
    }
    state.rate_limited += 1;
    let oldest = *accepted.front()?;
    let free_at = oldest + window;
    let wait = free_at.duration_since(now).unwrap_or_default();
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
    Some(response)
}

fn create_token(shared: &Shared, state: &mut State, ctx: &Ctx, now: SystemTime) -> Response {
    let (application_id, tenant) = (ctx.param("application_id"), ctx.param("tenant"));
    let config = &shared.config;
    let accepted = state
        .aurora_solar_application_key
        .as_deref()
        .unwrap_or(&config.aurora_solar_application_key);
    if ctx.bearer() != Some(accepted) || application_id != config.aurora_solar_application_id {
        return error(StatusCode::UNAUTHORIZED, "Invalid application key");
    }
    if !config.aurora_solar_tenants.iter().any(|t| t == tenant) {
        return error(
            StatusCode::FORBIDDEN,
            "The application is not authorized for this tenant",
        );
    }
    if let Some(presented) = ctx.query_param("session_token") {
        match state.sessions.get_mut(&presented) {
            Some(session) if session.tenant == tenant && session.expires_at > now => {
                if session.spent {
                    return error(
                        StatusCode::UNAUTHORIZED,
                        "The session token has already been used",
                    );
                }
                session.spent = true;
            }
            _ => {
                return error(StatusCode::UNAUTHORIZED, "Invalid or expired session token");
            }
        }
    }
    let lifetime = ctx.lifetime(config.aurora_solar_temporary_key_lifetime);
    let expires_at = shift(now, lifetime);
    let key = state.issue(
        format!("tk_test_{}", random_hex(24)),
        Grant::AuroraSolar(tenant.to_owned()),
        expires_at,
    );
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "token": {
                "bearer_token": key,
                "expires_at": format_expires_at(expires_at),
            }
        }),
    )
}

/// Checks the REST API key and the tenant; `Err` is the answer to send.
// The error is the response itself, sent at once: boxing it would buy nothing.
#[allow(clippy::result_large_err)]
fn sdk_auth<'a>(
    shared: &Shared,
    state: &'a mut State,
    ctx: &Ctx,
    tenant: &str,
) -> Result<&'a mut Vec<AuroraSolarUser>, Response> {
    if ctx.bearer() != Some(shared.config.aurora_solar_api_key.as_str()) {
        return Err(error(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    state
        .solar_users
        .get_mut(tenant)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "Tenant not found"))
}

fn users(shared: &Shared, state: &mut State, ctx: &Ctx, _: SystemTime) -> Response {
    match sdk_auth(shared, state, ctx, ctx.param("tenant")) {
        Ok(users) => json_response(StatusCode::OK, &serde_json::json!({ "users": users })),
        Err(response) => response,
    }
}

#[derive(serde::Deserialize)]
struct InviteBody {
    user: Invitee,
}

#[derive(serde::Deserialize)]
struct Invitee {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    user_level: Option<String>,
}

fn invite(shared: &Shared, state: &mut State, ctx: &Ctx, _: SystemTime) -> Response {
    let answer = shared.config.aurora_solar_invite_answer;
    let users = match sdk_auth(shared, state, ctx, ctx.param("tenant")) {
        Ok(users) => users,
        Err(response) => return response,
    };
    let Ok(InviteBody { user }) = serde_json::from_slice::<InviteBody>(&ctx.body) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The body must be {\"user\": {...}}",
        );
    };
    let nonempty = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let (Some(first_name), Some(last_name), Some(email), Some(user_level)) = (
        nonempty(user.first_name),
        nonempty(user.last_name),
        nonempty(user.email),
        nonempty(user.user_level),
    ) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "first_name, last_name, email and user_level are required",
        );
    };
    if !email.contains('@') {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "Email is invalid");
    }
    if users.iter().any(|u| u.email.eq_ignore_ascii_case(&email)) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Email has already been taken",
        );
    }
    let created = AuroraSolarUser {
        id: random_uuid(),
        first_name,
        last_name,
        email,
        // "SDK User" accounts need not accept the emailed invitation: `active` by default, or the
        // state a test asks for (an invited user who never logged in).
        account_status: shared.config.aurora_solar_invitee_status.clone(),
        phone: nonempty(user.phone),
        user_level: Some(user_level),
    };
    users.push(created.clone());
    match answer {
        InviteAnswer::User => {
            json_response(StatusCode::OK, &serde_json::json!({ "user": created }))
        }
        InviteAnswer::Empty => json_response(StatusCode::OK, &serde_json::json!({})),
    }
}

fn generate_token(shared: &Shared, state: &mut State, ctx: &Ctx, now: SystemTime) -> Response {
    let (tenant, user_id) = (ctx.param("tenant"), ctx.param("user"));
    let lifetime = ctx.lifetime(shared.config.aurora_solar_jwt_lifetime);
    let users = match sdk_auth(shared, state, ctx, tenant) {
        Ok(users) => users,
        Err(response) => return response,
    };
    // Active users, and SDK Users in any state: they need not accept their invitation.
    let Some(user) = users.iter().find(|u| {
        u.id == user_id
            && (u.account_status == "active" || u.user_level.as_deref() == Some(SDK_USER_LEVEL))
    }) else {
        return error(StatusCode::NOT_FOUND, "User not found");
    };
    let exp = shift(now, lifetime);
    let exp = match exp.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let claims = serde_json::json!({
        "id": user.id,
        "email": user.email,
        "exp": exp,
        "jti": random_uuid(),
    });
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "token": { "jwt": sign_jwt(&claims) } }),
    )
}

/// An HS256 JWT: base64url (no padding) header, claims and HMAC-SHA256 signature.
fn sign_jwt(claims: &serde_json::Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"typ":"JWT","alg":"HS256"}"#);
    let payload = b64.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(JWT_KEY).expect("HMAC takes a key of any length");
    mac.update(signing_input.as_bytes());
    let signature = b64.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

fn projects(_: &Shared, state: &mut State, ctx: &Ctx, now: SystemTime) -> Response {
    let tenant = ctx.param("tenant");
    match ctx.bearer().and_then(|t| state.live(t, now)) {
        Some(Grant::AuroraSolar(t)) if t == tenant => json_response(
            StatusCode::OK,
            &serde_json::json!({
                "projects": [
                    {"id": "9d1b6e2a-0000-4000-8000-000000000001", "name": "Emulated rooftop", "status": "active"},
                    {"id": "9d1b6e2a-0000-4000-8000-000000000002", "name": "Offline carport", "status": "active"},
                ]
            }),
        ),
        _ => error(StatusCode::UNAUTHORIZED, "Unauthorized"),
    }
}

fn random_hex(len: usize) -> String {
    std::iter::repeat_with(|| char::from_digit(fastrand::u32(..16), 16).unwrap_or('0'))
        .take(len)
        .collect()
}
