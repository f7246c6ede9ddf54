//! [`AerionBuilder`].

use std::fmt;
use std::sync::Mutex;

use token_provider::http::{join_path, parse_base_url};
use token_provider::{
    CachedTokenProvider, EnvVars, Error, ProviderOptions, Secret, SecretSource, StoreKey,
};
use url::{Position, Url};

use crate::Aerion;
use crate::fetch::AerionFetcher;
use crate::settings::{
    DEFAULT_BASE_URL, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, ENV_BASE_URL, ENV_CLIENT_ID,
    ENV_CLIENT_SECRET, ENV_COMPANY_URL, ENV_ORIGIN, ENV_PASSWORD, ENV_REFRESH_TOKEN, ENV_USERNAME,
    TENANT_FIELD, Tenant,
};

/// Builds an [`Aerion`] provider. Every setting is checked by [`build`](Self::build), which
/// names the one at fault.
#[must_use]
#[derive(Clone, Default)]
pub struct AerionBuilder {
    base_url: Option<String>,
    token_url: Option<String>,
    tenant: Option<Tenant>,
    username: Option<String>,
    password: Option<SecretSource>,
    refresh_token: Option<SecretSource>,
    client_id: Option<String>,
    client_secret: Option<SecretSource>,
    options: ProviderOptions,
}

impl fmt::Debug for AerionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AerionBuilder")
            .field("base_url", &self.base_url.as_deref().map(display_url))
            .field("token_url", &self.token_url.as_deref().map(display_url))
            .field("tenant", &self.tenant)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("refresh_token", &self.refresh_token)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A URL for `Debug`: no user info, query or fragment, which could carry credentials.
fn display_url(s: &str) -> String {
    match Url::parse(s) {
        Ok(url) => format!(
            "{}{}",
            &url[..Position::BeforeUsername],
            &url[Position::BeforeHost..Position::AfterPath]
        ),
        Err(_) => "<not a URL>".to_owned(),
    }
}

impl Aerion {
    /// Starts a builder.
    pub fn builder() -> AerionBuilder {
        AerionBuilder::new()
    }

    /// A provider configured from the process environment (see
    /// [`AerionBuilder::from_env_with`] for the variables).
    pub fn from_env() -> Result<Self, Error> {
        AerionBuilder::from_env()?.build()
    }
}

impl AerionBuilder {
    /// An empty builder (the same as [`Aerion::builder`]).
    pub fn new() -> Self {
        Self::default()
    }

    token_provider::from_env_methods!(
        vars: "`AERION_BASE_URL`, `AERION_COMPANY_URL` or `AERION_ORIGIN` (both set is an \
               error), `AERION_USERNAME`, `AERION_PASSWORD`, `AERION_REFRESH_TOKEN`, \
               `AERION_CLIENT_ID` and `AERION_CLIENT_SECRET`; the secrets also as \
               `AERION_PASSWORD_FILE`, `AERION_REFRESH_TOKEN_FILE` and \
               `AERION_CLIENT_SECRET_FILE`."
    );

    fn from_vars(vars: &EnvVars<'_>) -> Result<Self, Error> {
        let tenant = match (vars.get(ENV_COMPANY_URL), vars.get(ENV_ORIGIN)) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    TENANT_FIELD,
                    "are both set: set only one of them",
                ));
            }
            (Some(company_url), None) => Some(Tenant::CompanyUrl(company_url)),
            (None, origin) => origin.map(Tenant::Origin),
        };
        Ok(Self {
            base_url: vars.get(ENV_BASE_URL),
            tenant,
            username: vars.get(ENV_USERNAME),
            password: vars.secret(ENV_PASSWORD)?,
            refresh_token: vars.secret(ENV_REFRESH_TOKEN)?,
            client_id: vars.get(ENV_CLIENT_ID),
            client_secret: vars.secret(ENV_CLIENT_SECRET)?,
            ..Self::default()
        })
    }

    token_provider::builder_setters! {
        /// The API base (default [`DEFAULT_BASE_URL`]; `http` only for loopback hosts, for tests).
        /// The token endpoint is `{base}/oauth2/token` and the user endpoint `{base}/v1/users/me`.
        base_url: impl Into<String>,
        /// The token endpoint, when it is not `{base}/oauth2/token` (some deployments answer at
        /// `{base}/v1/oauth2/token`).
        token_url: impl Into<String>,
        /// The tenant and the header that names it. Required.
        tenant: Tenant,
    }

    /// Shorthand for `tenant(Tenant::CompanyUrl(..))`.
    pub fn company_url(self, company_url: impl Into<String>) -> Self {
        self.tenant(Tenant::CompanyUrl(company_url.into()))
    }

    /// Shorthand for `tenant(Tenant::Origin(..))`.
    pub fn origin(self, origin: impl Into<String>) -> Self {
        self.tenant(Tenant::Origin(origin.into()))
    }

    /// Shorthand for `tenant(Tenant::Referrer(..))`.
    pub fn referrer(self, referrer: impl Into<String>) -> Self {
        self.tenant(Tenant::Referrer(referrer.into()))
    }

    token_provider::builder_setters! {
        /// The username (the user's email address) for the password grant. ASCII blanks around it
        /// are dropped; otherwise it is sent, and keys the store, exactly as given (no case or
        /// Unicode folding).
        username: impl Into<String>,
        /// The password for the password grant: a value, or a file read again when it changes
        /// ([`SecretSource`]).
        password: impl Into<SecretSource>,
        /// A refresh token to start from, such as one an SSO login issued. Used alone it is enough
        /// to get tokens; with a username and password, they are the fallback when it is refused.
        /// From a file ([`SecretSource`]), a new token written there is a new start: it is tried
        /// once, after the one held.
        refresh_token: impl Into<SecretSource>,
        /// The `client_id` form field (default [`DEFAULT_CLIENT_ID`]).
        client_id: impl Into<String>,
        /// The `client_secret` form field (default [`DEFAULT_CLIENT_SECRET`]).
        client_secret: impl Into<SecretSource>,
    }

    token_provider::provider_options_setters!(
        store_key: "`aerion|<base host[:port]>|<header>=<tenant>|<username>`, or for a \
                    refresh-token-only setup `...|sso:<SHA-256 of the configured refresh token, \
                    32 hex digits>`. A refresh token found in the store is used before the \
                    configured one, because the configured one may have been spent (rotated) \
                    already"
    );

    /// Checks every setting and returns the cached provider.
    pub fn build(self) -> Result<Aerion, Error> {
        let base_url = parse_base_url(
            ENV_BASE_URL,
            self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
        )?;
        let (token_url, token_url_setting) = match &self.token_url {
            Some(url) => (parse_base_url("token_url", url)?, "token_url"),
            None => (join_path(&base_url, &["oauth2", "token"])?, ENV_BASE_URL),
        };

        let tenant = self
            .tenant
            .ok_or_else(|| {
                Error::config(
                    TENANT_FIELD,
                    "is required: it names the Aerion account (sent as the `companyurl` or \
                     `origin` header)",
                )
            })?
            .trimmed();
        let tenant_header = tenant.header()?;

        // Only ASCII blanks are trimmed: the username keys the store, and any other character
        // (a no-break space, a Kelvin sign) makes it another user's key, never this one's.
        let username = self.username.map(|u| u.trim_ascii().to_owned());
        if username.as_deref().is_some_and(|u| u.trim().is_empty()) {
            return Err(Error::config(ENV_USERNAME, "must not be empty"));
        }
        for (field, secret) in [
            (ENV_PASSWORD, &self.password),
            (ENV_REFRESH_TOKEN, &self.refresh_token),
            (ENV_CLIENT_SECRET, &self.client_secret),
        ] {
            if secret.as_ref().is_some_and(|s| s.current().is_empty()) {
                return Err(Error::config(field, "must not be empty"));
            }
        }
        match (&username, &self.password, &self.refresh_token) {
            (Some(_), None, _) => {
                return Err(Error::config(
                    ENV_PASSWORD,
                    "is required with AERION_USERNAME",
                ));
            }
            (None, Some(_), _) => {
                return Err(Error::config(
                    ENV_USERNAME,
                    "is required with AERION_PASSWORD",
                ));
            }
            (None, None, None) => {
                return Err(Error::config(
                    ENV_USERNAME,
                    "and AERION_PASSWORD, or AERION_REFRESH_TOKEN, are required",
                ));
            }
            _ => {}
        }
        let client_id = self
            .client_id
            .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_owned());
        if client_id.trim().is_empty() {
            return Err(Error::config(ENV_CLIENT_ID, "must not be empty"));
        }
        let client_secret = self
            .client_secret
            .unwrap_or_else(|| SecretSource::value(DEFAULT_CLIENT_SECRET));
        // The principal of a refresh-token-only setup is the token configured now; one written
        // to its file later is that principal's new start.
        let seed = self.refresh_token.as_ref().map(SecretSource::current);

        let http = self.options.resolved_http()?;
        let clock = self.options.resolved_clock();
        let cache = self.options.resolved_cache("aerion");
        let store_key = StoreKey::new(
            "aerion",
            &base_url[Position::BeforeHost..Position::BeforePath],
            &format!("{}={}", tenant.header_name(), tenant.value()),
            &principal(username.as_deref(), seed.as_ref()),
        );

        let fetcher = AerionFetcher {
            http,
            base_url,
            token_url,
            token_url_setting,
            tenant,
            tenant_header,
            client_id,
            client_secret,
            username,
            password: self.password,
            seed_refresh_token: self.refresh_token,
            first_seed: seed,
            spent_seed: Mutex::new(None),
            clock,
            store_key,
        };
        Ok(Aerion {
            inner: CachedTokenProvider::with_config(fetcher, cache),
        })
    }
}

/// The store principal: the username, or for a refresh-token-only (SSO) setup a digest of the
/// configured refresh token (`sso:` and 32 hex digits of its SHA-256). Two people seeded with
/// different refresh tokens on one tenant and one store so never share a state, while one
/// person's rotations all stay under the key of the seed they configured.
fn principal(username: Option<&str>, seed: Option<&Secret>) -> String {
    use sha2::{Digest, Sha256};
    match (username, seed) {
        (Some(username), _) => username.to_owned(),
        (None, Some(seed)) => {
            let digest = Sha256::digest(seed.expose_secret().as_bytes());
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("sso:{hex}")
        }
        (None, None) => "sso".to_owned(),
    }
}
