#![doc = include_str!("../README.md")]
//!
//! # URL layout
//!
//! One server, one path prefix per provider; the provider crates take these as base URLs.
//!
//! | provider | base | endpoints |
//! | --- | --- | --- |
//! | Aerion | `{url}/aerion` | `POST /oauth2/token` (also `/v1/oauth2/token`), `GET /v1/users/me` |
//! | Aurora UK | issuer `{url}/aurora-uk/` | `GET /.well-known/openid-configuration`, `GET /.well-known/jwks.json`, `POST /oauth/token`, `GET /api/Accounts` |
//! | Aurora Solar | `{url}/aurora-solar` | `POST /partner_applications/{application_id}/tenants/{tenant_id}/create_token`, `GET /tenants/{tenant_id}/users`, `POST /tenants/{tenant_id}/users/invite`, `POST /tenants/{tenant_id}/users/{user_id}/generate_token`, `GET /tenants/{tenant_id}/projects` |
//!
//! # Credentials
//!
//! Every default ([`EmulatorConfig::default`], the `DEFAULT_*` constants) is an emulator-only
//! test value: it opens nothing anywhere else. [`RunningEmulator::env_vars`] gives the
//! `partner-auth` CLI variables (`AERION_BASE_URL`, `AERION_COMPANY_URL`, `AERION_USERNAME`,
//! `AERION_PASSWORD`, `AERION_CLIENT_ID`, `AERION_CLIENT_SECRET`, `AURORA_UK_ENV`,
//! `AURORA_UK_ISSUER`, `AURORA_UK_AUDIENCE`, `AURORA_UK_CLIENT_ID`, `AURORA_UK_CLIENT_SECRET`,
//! `AURORA_UK_API_URL`,
//! `AURORA_SOLAR_ENV`, `AURORA_SOLAR_BASE_URL`, `AURORA_SOLAR_APPLICATION_ID`,
//! `AURORA_SOLAR_APPLICATION_KEY`, `AURORA_SOLAR_TENANT_ID`, `AURORA_SOLAR_API_KEY`,
//! `AURORA_SOLAR_USER_EMAIL`, `AURORA_SOLAR_USER_FIRST_NAME`, `AURORA_SOLAR_USER_LAST_NAME`).
//! The binary reads one variable of its own, `PARTNER_AUTH_EMULATOR_PORT` (or `--port`).
//!
//! # Behaviour where the providers' pages are silent
//!
//! - Aerion: the tenant header (`companyurl`, `origin` or `referrer`, looked at in that order)
//!   is compared by host, so `https://acme.aerion.test/` and `acme.aerion.test` name the same
//!   tenant; a missing or unknown tenant is 400 `invalid_request`. `client_id` and
//!   `client_secret` must be present and are never checked. Each user has exactly one live
//!   refresh token: a password grant or a refresh replaces it, and the old one is refused with
//!   400 `invalid_grant` from then on.
//! - Aurora UK: HTTP Basic wins over body credentials; a body `client_id` that differs from the
//!   Basic one is 401. The client is checked first (401), then `grant_type` (403
//!   `unauthorized_client` for another grant), then the audience (403 `access_denied`). The
//!   token endpoint also takes a JSON body, as Auth0 does. The API takes the bearer in
//!   `Authorization` or in the `Authentication` header the provider's page names.
//! - Aurora Solar: a wrong application id or key is 401, a tenant that has not authorized the
//!   application 403. A session token is valid for one exchange, for its tenant, for an hour on
//!   the emulator's clock; unknown, expired, another tenant's or spent is 401. Invited users are
//!   active at once, or in the state
//!   [`aurora_solar_invitee_status`](EmulatorBuilder::aurora_solar_invitee_status) names (an SDK
//!   User who never logged in); "SDK User" accounts get a JWT in any state, other users only when
//!   active; an email already taken is 422. Errors are `{"error": "<message>"}`.
//! - Access tokens and temporary keys expire on the emulator's clock (the given clock plus the
//!   offset); the protected resources refuse expired and revoked ones with 401.
//! - The server logs nothing. It records every request whole (secrets included) for tests.

#![warn(missing_docs)]

mod aerion;
mod aurora_solar;
mod aurora_uk;
mod config;
mod fault;
mod record;
mod route;
mod server;
mod state;

pub use crate::aurora_uk::aurora_uk_discovery;
pub use crate::config::{
    AerionErrorShape, AerionUser, AuroraSolarUser, ClockOffset, DEFAULT_AERION_CLIENT_ID,
    DEFAULT_AERION_CLIENT_SECRET, DEFAULT_AERION_PASSWORD, DEFAULT_AERION_TENANT,
    DEFAULT_AERION_USERNAME, DEFAULT_AURORA_SOLAR_API_KEY, DEFAULT_AURORA_SOLAR_APPLICATION_ID,
    DEFAULT_AURORA_SOLAR_APPLICATION_KEY, DEFAULT_AURORA_SOLAR_TENANT, DEFAULT_AURORA_UK_AUDIENCE,
    DEFAULT_AURORA_UK_CLIENT_ID, DEFAULT_AURORA_UK_CLIENT_SECRET, Emulator, EmulatorBuilder,
    EmulatorConfig, InviteAnswer,
};
pub use crate::fault::{Endpoint, Fault};
pub use crate::record::{AerionRefresh, RecordedRequest};
pub use crate::server::RunningEmulator;
