//! What the emulator knows before it starts: credentials, lifetimes, clock, answer shapes.

use std::fmt;
use std::time::Duration;

use token_provider::{SharedClock, system_clock};

/// The Aerion tenant the default user belongs to (emulator-only).
pub const DEFAULT_AERION_TENANT: &str = "acme.aerion.test";
/// The default Aerion user's username (emulator-only).
pub const DEFAULT_AERION_USERNAME: &str = "pat@acme.aerion.test";
/// The default Aerion user's password (emulator-only).
pub const DEFAULT_AERION_PASSWORD: &str = "emulator-aerion-password";
/// The `client_id` the emulator's `export` lines suggest (Aerion checks only that one is sent).
pub const DEFAULT_AERION_CLIENT_ID: &str = "partner-auth-emulator";
/// The `client_secret` the emulator's `export` lines suggest (any value is accepted).
pub const DEFAULT_AERION_CLIENT_SECRET: &str = "emulator-aerion-client-secret";
/// The Aurora UK client id (emulator-only).
pub const DEFAULT_AURORA_UK_CLIENT_ID: &str = "emulator-aurora-uk-client";
/// The Aurora UK client secret (emulator-only).
pub const DEFAULT_AURORA_UK_CLIENT_SECRET: &str = "emulator-aurora-uk-client-secret";
/// The Aurora UK audience (emulator-only; neither the dev nor the live one).
pub const DEFAULT_AURORA_UK_AUDIENCE: &str = "https://emulator.client.integration.aurora.test";
/// The Aurora Solar partner application id (emulator-only).
pub const DEFAULT_AURORA_SOLAR_APPLICATION_ID: &str = "emulator-application";
/// The Aurora Solar application key (emulator-only; a sandbox-looking key).
pub const DEFAULT_AURORA_SOLAR_APPLICATION_KEY: &str = "sk_sand_emulator_application_key";
/// The Aurora Solar REST API key of the Client SDK flow (emulator-only; a sandbox-looking key).
pub const DEFAULT_AURORA_SOLAR_API_KEY: &str = "sk_sand_emulator_rest_api_key";
/// The Aurora Solar tenant that has authorized the application (emulator-only).
pub const DEFAULT_AURORA_SOLAR_TENANT: &str = "0b7e2f4c-1d2a-4c8e-9f00-emulator0001";

/// How far the emulator's clock is from the clock it was given: ahead or behind.
///
/// It shifts every absolute time the emulator issues (Aurora Solar `expires_at`, JWT `exp`),
/// every expiry it checks and the `Date` header of every answer, as a server with a skewed
/// clock would. Relative lifetimes (`expires_in`) are not shifted.
pub use token_provider::ClockOffset;

/// An Aerion user account.
#[derive(Clone, PartialEq, Eq)]
pub struct AerionUser {
    /// The numeric id `GET /v1/users/me` reports.
    pub id: u64,
    /// The username (an email address), sent as `username` in the password grant.
    pub username: String,
    /// The password.
    pub password: String,
    /// The tenant the account belongs to (matched against the tenant header's host).
    pub tenant: String,
}

impl fmt::Debug for AerionUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AerionUser")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// An Aurora Solar user, as `GET /tenants/{tenant_id}/users` lists them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuroraSolarUser {
    /// The user id (a UUID).
    pub id: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Email address (looked up case-insensitively).
    pub email: String,
    /// `active`, or another state such as `invited` or `pending`. Only active users, and "SDK
    /// User" accounts in any state (they need not accept their invitation), get a JWT.
    pub account_status: String,
    /// The phone number given at invitation, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The access level given at invitation (`SDK User`, `Team Member`, ...).
    #[serde(skip)]
    pub user_level: Option<String>,
}

impl AuroraSolarUser {
    /// An active user.
    pub fn new(id: &str, first_name: &str, last_name: &str, email: &str) -> Self {
        Self {
            id: id.to_owned(),
            first_name: first_name.to_owned(),
            last_name: last_name.to_owned(),
            email: email.to_owned(),
            account_status: "active".to_owned(),
            phone: None,
            user_level: None,
        }
    }
}

/// Which of Aerion's two error shapes the emulator answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AerionErrorShape {
    /// `{"error","error_description"}` (RFC 6749).
    #[default]
    OAuth,
    /// `{"error","status","summary","raw"}`.
    Summary,
}

/// What `POST /tenants/{tenant_id}/users/invite` answers (Aurora Solar does not document it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InviteAnswer {
    /// `{"user":{"id",...}}`: the new user with its id.
    #[default]
    User,
    /// `{}`: clients must list the users again to learn the id.
    Empty,
}

/// Everything the emulator is configured with. Every default is an emulator-only test value.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// The loopback port to bind (0: a free one).
    pub port: u16,
    /// The wall clock the emulator reads (before [`clock_offset`](Self::clock_offset)).
    pub clock: SharedClock,
    /// The emulator clock's offset from [`clock`](Self::clock).
    pub clock_offset: ClockOffset,

    /// Aerion tenants (hosts such as `acme.aerion.test`) that the tenant header may name.
    pub aerion_tenants: Vec<String>,
    /// Aerion accounts.
    pub aerion_users: Vec<AerionUser>,
    /// `expires_in` of Aerion access tokens (default 3600 s).
    pub aerion_token_lifetime: Duration,
    /// Whether a refresh grant rotates the refresh token (default true). When false the answer
    /// carries no `refresh_token` and the old one stays valid.
    pub aerion_rotate_refresh_tokens: bool,
    /// The error shape Aerion's endpoints answer with.
    pub aerion_error_shape: AerionErrorShape,

    /// The Aurora UK client id.
    pub aurora_uk_client_id: String,
    /// The Aurora UK client secret.
    pub aurora_uk_client_secret: String,
    /// The audience a client-credentials request must name.
    pub aurora_uk_audience: String,
    /// `expires_in` of Aurora UK access tokens (default 86400 s, Auth0's usual).
    pub aurora_uk_token_lifetime: Duration,

    /// The Aurora Solar partner application id.
    pub aurora_solar_application_id: String,
    /// The Aurora Solar application key.
    pub aurora_solar_application_key: String,
    /// The Aurora Solar REST API key (Client SDK flow).
    pub aurora_solar_api_key: String,
    /// Tenants that have authorized the application; each starts with
    /// [`aurora_solar_users`](Self::aurora_solar_users).
    pub aurora_solar_tenants: Vec<String>,
    /// The users every tenant starts with.
    pub aurora_solar_users: Vec<AuroraSolarUser>,
    /// Lifetime of temporary keys (default 13 h).
    pub aurora_solar_temporary_key_lifetime: Duration,
    /// Lifetime of Client SDK JWTs (default 12 h).
    pub aurora_solar_jwt_lifetime: Duration,
    /// Lifetime of session tokens (default 1 h).
    pub aurora_solar_session_token_lifetime: Duration,
    /// What the invite endpoint answers.
    pub aurora_solar_invite_answer: InviteAnswer,
    /// The `account_status` an invited user gets (default `active`). `invited` or `pending`
    /// stands for an SDK User who never logged in: later lookups of active users pass them over.
    pub aurora_solar_invitee_status: String,
    /// Aurora Solar's per-key limit: at most this many requests per key (the bearer sent) in
    /// any window of this length, answered beyond with 429 and `Retry-After`. Default off (the
    /// real API allows 90 per minute).
    pub aurora_solar_rate_limit: Option<(u32, Duration)>,
}

impl fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Test values only, but a Debug that prints secrets is a habit worth not having.
        f.debug_struct("EmulatorConfig")
            .field("port", &self.port)
            .field("clock_offset", &self.clock_offset)
            .field("aerion_tenants", &self.aerion_tenants)
            .field("aerion_users", &self.aerion_users)
            .field("aurora_uk_client_id", &self.aurora_uk_client_id)
            .field("aurora_uk_audience", &self.aurora_uk_audience)
            .field(
                "aurora_solar_application_id",
                &self.aurora_solar_application_id,
            )
            .field("aurora_solar_tenants", &self.aurora_solar_tenants)
            .finish_non_exhaustive()
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            port: 0,
            clock: system_clock(),
            clock_offset: ClockOffset::None,
            aerion_tenants: vec![DEFAULT_AERION_TENANT.to_owned()],
            aerion_users: vec![AerionUser {
                id: 1001,
                username: DEFAULT_AERION_USERNAME.to_owned(),
                password: DEFAULT_AERION_PASSWORD.to_owned(),
                tenant: DEFAULT_AERION_TENANT.to_owned(),
            }],
            aerion_token_lifetime: Duration::from_secs(3600),
            aerion_rotate_refresh_tokens: true,
            aerion_error_shape: AerionErrorShape::OAuth,
            aurora_uk_client_id: DEFAULT_AURORA_UK_CLIENT_ID.to_owned(),
            aurora_uk_client_secret: DEFAULT_AURORA_UK_CLIENT_SECRET.to_owned(),
            aurora_uk_audience: DEFAULT_AURORA_UK_AUDIENCE.to_owned(),
            aurora_uk_token_lifetime: Duration::from_secs(86_400),
            aurora_solar_application_id: DEFAULT_AURORA_SOLAR_APPLICATION_ID.to_owned(),
            aurora_solar_application_key: DEFAULT_AURORA_SOLAR_APPLICATION_KEY.to_owned(),
            aurora_solar_api_key: DEFAULT_AURORA_SOLAR_API_KEY.to_owned(),
            aurora_solar_tenants: vec![DEFAULT_AURORA_SOLAR_TENANT.to_owned()],
            aurora_solar_users: vec![
                AuroraSolarUser::new(
                    "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                    "Jessica",
                    "Smith",
                    "jessica.smith@emulator.test",
                ),
                AuroraSolarUser::new(
                    "4bc45f64-5717-4562-b3fc-2c963f66afa6",
                    "Robert",
                    "Johnson",
                    "robert.johnson@emulator.test",
                ),
            ],
            aurora_solar_temporary_key_lifetime: Duration::from_secs(13 * 3600),
            aurora_solar_jwt_lifetime: Duration::from_secs(12 * 3600),
            aurora_solar_session_token_lifetime: Duration::from_secs(3600),
            aurora_solar_invite_answer: InviteAnswer::User,
            aurora_solar_invitee_status: "active".to_owned(),
            aurora_solar_rate_limit: None,
        }
    }
}

// `Emulator::start` and `EmulatorBuilder::start` are in `server`, which imports this module.

/// The entry point: `Emulator::builder()....start().await`.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// A builder holding the defaults (every credential an emulator-only test value).
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }
}

/// Configures an emulator. Every setter has an emulator-only default.
#[must_use]
#[derive(Debug, Default)]
pub struct EmulatorBuilder {
    pub(crate) config: EmulatorConfig,
}

impl EmulatorBuilder {
    /// A builder from a whole configuration.
    pub fn from_config(config: EmulatorConfig) -> Self {
        Self { config }
    }

    token_provider::builder_setters! {
        in config:
        /// The loopback port (default 0: a free one).
        port: u16,
        /// The wall clock the emulator reads (default the system clock).
        clock: SharedClock,
        /// The emulator clock's offset (a plain `Duration` is ahead).
        clock_offset: impl Into<ClockOffset>,
    }

    /// Replaces the Aerion accounts and tenants with one user in one tenant.
    pub fn aerion_user(
        mut self,
        tenant: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        let tenant = tenant.into();
        self.config.aerion_tenants = vec![tenant.clone()];
        self.config.aerion_users = vec![AerionUser {
            id: 1001,
            username: username.into(),
            password: password.into(),
            tenant,
        }];
        self
    }

    /// Adds an Aerion account (and its tenant, when new).
    pub fn add_aerion_user(mut self, user: AerionUser) -> Self {
        if !self.config.aerion_tenants.contains(&user.tenant) {
            self.config.aerion_tenants.push(user.tenant.clone());
        }
        self.config.aerion_users.push(user);
        self
    }

    token_provider::builder_setters! {
        in config:
        /// `expires_in` of Aerion access tokens.
        aerion_token_lifetime: Duration,
        /// Whether refresh grants rotate the refresh token (default true).
        aerion_rotate_refresh_tokens: bool,
        /// The error shape Aerion's endpoints answer with.
        aerion_error_shape: AerionErrorShape,
    }

    /// The Aurora UK client credentials.
    pub fn aurora_uk_client(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.config.aurora_uk_client_id = client_id.into();
        self.config.aurora_uk_client_secret = client_secret.into();
        self
    }

    token_provider::builder_setters! {
        in config:
        /// The Aurora UK audience.
        aurora_uk_audience: impl Into<String>,
        /// `expires_in` of Aurora UK access tokens.
        aurora_uk_token_lifetime: Duration,
    }

    /// The Aurora Solar partner application id and key.
    pub fn aurora_solar_application(
        mut self,
        application_id: impl Into<String>,
        application_key: impl Into<String>,
    ) -> Self {
        self.config.aurora_solar_application_id = application_id.into();
        self.config.aurora_solar_application_key = application_key.into();
        self
    }

    /// The Aurora Solar tenants that have authorized the application.
    pub fn aurora_solar_tenants<I, S>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.aurora_solar_tenants = tenants.into_iter().map(Into::into).collect();
        self
    }

    token_provider::builder_setters! {
        in config:
        /// The Aurora Solar REST API key.
        aurora_solar_api_key: impl Into<String>,
        /// The users every Aurora Solar tenant starts with.
        aurora_solar_users: Vec<AuroraSolarUser>,
    }

    /// Limits each Aurora Solar key (application key or API key) to `requests` in any window
    /// of `window`; beyond, a 429 with `Retry-After` (the seconds until the window has room).
    /// The real API allows 90 per minute.
    pub fn aurora_solar_rate_limit(mut self, requests: u32, window: Duration) -> Self {
        self.config.aurora_solar_rate_limit = Some((requests, window));
        self
    }

    token_provider::builder_setters! {
        in config:
        /// Lifetime of Aurora Solar temporary keys (default 13 h).
        aurora_solar_temporary_key_lifetime: Duration,
        /// Lifetime of Client SDK JWTs (default 12 h).
        aurora_solar_jwt_lifetime: Duration,
        /// Lifetime of session tokens (default 1 h).
        aurora_solar_session_token_lifetime: Duration,
        /// What the invite endpoint answers.
        aurora_solar_invite_answer: InviteAnswer,
        /// The `account_status` invited users get (default `active`): `invited` or `pending` makes
        /// them SDK Users who never logged in, listed in that state from then on (they still get a
        /// JWT, as "SDK User" accounts need not accept the invitation).
        aurora_solar_invitee_status: impl Into<String>,
    }

    /// The configuration so far.
    pub fn config(&self) -> &EmulatorConfig {
        &self.config
    }
}
