//! Aerion: the password and refresh grants (tenant header required, refresh tokens rotated) and
//! `GET /v1/users/me`.

use std::time::SystemTime;

use axum::response::Response;
use http::{Method, StatusCode};

use crate::config::AerionErrorShape;
use crate::fault::{Endpoint, json_response};
use crate::record::AerionRefresh;
use crate::route::Routes;
use crate::state::{Ctx, Grant, Shared, State, random_token, shift};

/// Aerion's endpoints: the token endpoint (with and without `/v1`) and `me`.
pub(crate) fn register(routes: &mut Routes) {
    routes.add(
        Method::POST,
        "/aerion/oauth2/token",
        Endpoint::AerionToken,
        token,
    );
    routes.add(
        Method::POST,
        "/aerion/v1/oauth2/token",
        Endpoint::AerionToken,
        token,
    );
    routes.add(Method::GET, "/aerion/v1/users/me", Endpoint::AerionMe, me);
}

/// The tenant headers, in the order they are looked at.
const TENANT_HEADERS: [&str; 3] = ["companyurl", "origin", "referrer"];

fn error(shared: &Shared, status: StatusCode, code: &str, description: &str) -> Response {
    let body = match shared.config.aerion_error_shape {
        AerionErrorShape::OAuth => {
            serde_json::json!({"error": code, "error_description": description})
        }
        AerionErrorShape::Summary => serde_json::json!({
            "error": code,
            "status": status.as_u16(),
            "summary": description,
            "raw": format!("{code}: {description}"),
        }),
    };
    json_response(status, &body)
}

/// The host a tenant header names: `https://acme.aerion.app/x` and `acme.aerion.app` are the
/// same tenant.
fn tenant_host(value: &str) -> String {
    let value = value.trim();
    let value = value.split_once("://").map_or(value, |(_, rest)| rest);
    let host = value.split(['/', '?', '#']).next().unwrap_or_default();
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn token(shared: &Shared, state: &mut State, ctx: &Ctx, now: SystemTime) -> Response {
    let config = &shared.config;
    let named = TENANT_HEADERS
        .iter()
        .filter_map(|h| ctx.header(h))
        .map(tenant_host)
        .find(|t| !t.is_empty());
    let Some(tenant) = named.filter(|t| config.aerion_tenants.iter().any(|c| tenant_host(c) == *t))
    else {
        return error(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "A known tenant must be named by the companyurl, origin or referrer header",
        );
    };
    let form = ctx.form();
    if !form.contains_key("client_id") || !form.contains_key("client_secret") {
        return error(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id and client_secret are required",
        );
    }
    let in_tenant = |tenant_of_user: &str| tenant_host(tenant_of_user) == tenant;
    let user = match form.get("grant_type").map(String::as_str) {
        Some("password") => {
            let username = form.get("username").map(|u| u.trim()).unwrap_or_default();
            let password = form.get("password").map(String::as_str).unwrap_or_default();
            let found = config.aerion_users.iter().find(|u| {
                u.username.eq_ignore_ascii_case(username)
                    && u.password == password
                    && in_tenant(&u.tenant)
            });
            match found {
                Some(user) => user,
                None => {
                    return error(
                        shared,
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "Invalid username or password",
                    );
                }
            }
        }
        Some("refresh_token") => {
            let presented = form
                .get("refresh_token")
                .map(String::as_str)
                .unwrap_or_default();
            let found = config.aerion_users.iter().find(|u| {
                in_tenant(&u.tenant)
                    && !presented.is_empty()
                    && state.aerion_refresh.get(&u.username).map(String::as_str) == Some(presented)
            });
            match found {
                Some(user) => user,
                None => {
                    state.aerion_refreshes.push(AerionRefresh {
                        presented: presented.to_owned(),
                        access_token: None,
                        refresh_token: None,
                    });
                    return error(
                        shared,
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "The refresh token is invalid, expired or revoked",
                    );
                }
            }
        }
        None => {
            return error(
                shared,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required",
            );
        }
        Some(_) => {
            return error(
                shared,
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Only the password and refresh_token grants are supported",
            );
        }
    };
    let refreshing = form.get("grant_type").map(String::as_str) == Some("refresh_token");
    let expires_in = ctx.lifetime(config.aerion_token_lifetime);
    let access_token = state.issue(
        random_token(40),
        Grant::Aerion(user.username.clone()),
        shift(now, expires_in),
    );
    let mut body = serde_json::json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": expires_in,
    });
    let mut rotated = None;
    if !refreshing || config.aerion_rotate_refresh_tokens {
        // The new refresh token replaces the old one, which is revoked from now on.
        let refresh_token = random_token(40);
        state
            .aerion_refresh
            .insert(user.username.clone(), refresh_token.clone());
        body["refresh_token"] = refresh_token.clone().into();
        rotated = Some(refresh_token);
    }
    if refreshing {
        state.aerion_refreshes.push(AerionRefresh {
            presented: form.get("refresh_token").cloned().unwrap_or_default(),
            access_token: Some(access_token),
            refresh_token: rotated,
        });
    }
    json_response(StatusCode::OK, &body)
}

fn me(shared: &Shared, state: &mut State, ctx: &Ctx, now: SystemTime) -> Response {
    let username = match ctx.bearer().and_then(|t| state.live(t, now)) {
        Some(Grant::Aerion(username)) => username.clone(),
        _ => {
            return error(
                shared,
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The access token is missing, expired or revoked",
            );
        }
    };
    let Some(user) = shared
        .config
        .aerion_users
        .iter()
        .find(|u| u.username == username)
    else {
        return error(
            shared,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Unknown user",
        );
    };
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "id": user.id,
            "email": user.username,
            "firstName": "Emulated",
            "lastName": "User",
            "companyUrl": user.tenant,
        }),
    )
}
