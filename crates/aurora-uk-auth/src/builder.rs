//! [`AuroraUkBuilder`]: every setting of an [`AuroraUk`], checked in one place.

use std::time::Duration;

use openidconnect::IssuerUrl;
use token_provider::auth::AuthHeader;
use token_provider::http::parse_base_url;
use token_provider::{CachedTokenProvider, EnvVars, Error, ProviderOptions, SecretSource};

use crate::fetch::Fetcher;
use crate::{AuroraUk, ClientAuth, Environment};

/// The shortest wait between two discovery fetches by default.
pub const DEFAULT_REDISCOVERY_INTERVAL: Duration = Duration::from_secs(300);

/// Builds an [`AuroraUk`]. Start with [`AuroraUk::builder`] or
/// [`from_env`](AuroraUkBuilder::from_env).
///
/// Required: the [`environment`](Self::environment), the [`client_id`](Self::client_id) and the
/// [`client_secret`](Self::client_secret). Errors from [`build`](Self::build) name the setting by
/// its environment variable (`AURORA_UK_ENV`, `AURORA_UK_ISSUER`, `AURORA_UK_AUDIENCE`,
/// `AURORA_UK_CLIENT_ID`, `AURORA_UK_CLIENT_SECRET`) or by the method name for the others.
#[must_use]
#[derive(Debug, Default)]
pub struct AuroraUkBuilder {
    environment: Option<Environment>,
    issuer: Option<String>,
    audience: Option<String>,
    client_id: Option<String>,
    client_secret: Option<SecretSource>,
    client_auth: ClientAuth,
    auth_header_name: Option<String>,
    api_base: Option<String>,
    rediscovery_interval: Option<Duration>,
    options: ProviderOptions,
}

impl AuroraUkBuilder {
    /// A builder with nothing set.
    pub fn new() -> Self {
        Self::default()
    }

    token_provider::from_env_methods!(
        vars: "`AURORA_UK_ENV` (`dev` or `live`), `AURORA_UK_ISSUER` and `AURORA_UK_AUDIENCE` \
               (overrides of the environment's presets), `AURORA_UK_CLIENT_ID`, \
               `AURORA_UK_CLIENT_SECRET` (or `AURORA_UK_CLIENT_SECRET_FILE`) and \
               `AURORA_UK_CLIENT_AUTH` (`basic`, the default: an `Authorization: Basic` header; \
               or `post`: form fields; see [`ClientAuth`])."
    );

    fn from_vars(vars: &EnvVars<'_>) -> Result<Self, Error> {
        let client_auth = match vars.get("AURORA_UK_CLIENT_AUTH") {
            None => ClientAuth::default(),
            Some(auth) => {
                let all = [ClientAuth::BasicHeader, ClientAuth::RequestBody];
                token_provider::env_choice(&auth, &all, ClientAuth::as_str).ok_or_else(|| {
                    Error::config("AURORA_UK_CLIENT_AUTH", "must be `basic` or `post`")
                })?
            }
        };
        Ok(Self {
            environment: vars
                .get("AURORA_UK_ENV")
                .map(|env| env.parse::<Environment>())
                .transpose()?,
            issuer: vars.get("AURORA_UK_ISSUER"),
            audience: vars.get("AURORA_UK_AUDIENCE"),
            client_id: vars.get("AURORA_UK_CLIENT_ID"),
            client_secret: vars.secret("AURORA_UK_CLIENT_SECRET")?,
            client_auth,
            ..Self::default()
        })
    }

    token_provider::builder_setters! {
        /// The environment: [`Environment::Dev`] or [`Environment::Live`] (required). It picks the
        /// issuer, audience and API base unless they are overridden.
        environment: Environment,
        /// Overrides the environment's issuer (a proxy, a test server, a future tenant). Compared
        /// exactly with the `issuer` of the discovery document, trailing `/` included.
        issuer: impl Into<String>,
        /// Overrides the environment's audience. Sent byte for byte as the `audience` form field.
        audience: impl Into<String>,
        /// The Auth0 application's client id (required).
        client_id: impl Into<String>,
        /// The Auth0 application's client secret (required): a value, or a file read again when it
        /// changes ([`SecretSource`]).
        client_secret: impl Into<SecretSource>,
        /// How the client id and secret are sent (default [`ClientAuth::BasicHeader`]).
        client_auth: ClientAuth,
        /// The header [`AuroraUk::send`] puts the token in (default `Authorization`). The value is
        /// always `Bearer <token>`. The API's page names an `Authentication` header; set that here
        /// if the API insists on it.
        auth_header_name: impl Into<String>,
        /// Overrides the API base URL (default: the environment's API host).
        api_base: impl Into<String>,
        /// The shortest wait between two discovery fetches (default 5 minutes). Discovery is
        /// fetched once and again only when the token endpoint fails as if it moved (404, a
        /// redirect, a connection error), never more often than this, or when
        /// [`AuroraUk::refresh_discovery`] asks for it.
        rediscovery_interval: Duration,
    }

    token_provider::provider_options_setters!(store_key: "`StoreKey::new(\"aurora-uk\", <issuer>, <audience>, <client_id>)`, so a dev token is never read back for live");

    /// Checks every setting and builds the provider. Nothing is sent: discovery happens on the
    /// first [`token`](token_provider::TokenProvider::token) call.
    pub fn build(self) -> Result<AuroraUk, Error> {
        let environment = self
            .environment
            .ok_or_else(|| Error::config("AURORA_UK_ENV", "is required (`dev` or `live`)"))?;

        let issuer_text = own_preset(
            "AURORA_UK_ISSUER",
            "issuer",
            self.issuer,
            environment,
            Environment::issuer,
        )?;
        parse_base_url("AURORA_UK_ISSUER", &issuer_text)?;
        let issuer = IssuerUrl::new(issuer_text)
            .map_err(|e| Error::config("AURORA_UK_ISSUER", format!("is not a URL: {e}")))?;
        let audience = own_preset(
            "AURORA_UK_AUDIENCE",
            "audience",
            self.audience,
            environment,
            Environment::audience,
        )?;

        let client_id = self
            .client_id
            .ok_or_else(|| Error::config("AURORA_UK_CLIENT_ID", "is required"))?;
        check_exact("AURORA_UK_CLIENT_ID", &client_id)?;
        let client_secret = self
            .client_secret
            .ok_or_else(|| Error::config("AURORA_UK_CLIENT_SECRET", "is required"))?;
        if client_secret.current().is_empty() {
            return Err(Error::config("AURORA_UK_CLIENT_SECRET", "is empty"));
        }

        let auth_header = match self.auth_header_name {
            None => AuthHeader::default(),
            Some(name) => AuthHeader::named(&name).map_err(|_| {
                Error::config("auth_header_name", "is not a valid HTTP header name")
            })?,
        };
        let mut api_base = match &self.api_base {
            Some(url) => parse_base_url("api_base", url)?,
            None => parse_base_url("api_base", environment.api_base())?,
        };
        // A final slash, so that `api_base().join("Accounts")` stays under a base with a path
        // (`Url::join` replaces the last segment of one without).
        if !api_base.path().ends_with('/') {
            let path = format!("{}/", api_base.path());
            api_base.set_path(&path);
        }
        let rediscovery_interval = self
            .rediscovery_interval
            .unwrap_or(DEFAULT_REDISCOVERY_INTERVAL);

        let clock = self.options.resolved_clock();
        let http = self.options.resolved_http()?;
        // Issuer and audience name the environment: a dev token is never read back for live.
        let cache_config = self.options.resolved_cache("aurora-uk");

        let fetcher = Fetcher::new(
            environment,
            issuer,
            audience,
            client_id,
            client_secret,
            self.client_auth,
            http,
            clock,
            rediscovery_interval,
            auth_header,
            api_base,
        );
        Ok(AuroraUk {
            inner: CachedTokenProvider::with_config(fetcher, cache_config),
        })
    }
}

/// Refuses empty values and values with surrounding whitespace: they are sent byte for byte, so a
/// stray space or newline from a config file would be a silent mismatch.
fn check_exact(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::config(field, "is empty"));
    }
    if value.trim() != value {
        return Err(Error::config(
            field,
            "has leading or trailing whitespace (it is sent byte for byte)",
        ));
    }
    Ok(())
}

/// `given`, or else `environment`'s preset (`preset` reads it), checked for `field`: refused when
/// it is the other environment's, since dev and live tokens are not interchangeable.
fn own_preset(
    field: &str,
    what: &str,
    given: Option<String>,
    environment: Environment,
    preset: fn(Environment) -> &'static str,
) -> Result<String, Error> {
    let value = given.unwrap_or_else(|| preset(environment).to_owned());
    check_exact(field, &value)?;
    let other = environment.other();
    if value == preset(other) {
        return Err(Error::config(
            field,
            format!(
                "is the {other} {what} but the environment is {environment}: dev and live tokens \
                 are not interchangeable"
            ),
        ));
    }
    Ok(value)
}
