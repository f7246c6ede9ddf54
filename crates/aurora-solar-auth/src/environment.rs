//! [`Environment`], the host it stands for, and the checks shared by both builders.

use std::fmt;
use std::str::FromStr;

use token_provider::http::parse_base_url;
use token_provider::{EnvVars, Error, SecretSource};
use url::Url;

/// The environment variable naming the environment.
pub(crate) const ENV_VAR: &str = "AURORA_SOLAR_ENV";
/// The environment variable overriding the host.
pub(crate) const BASE_URL_VAR: &str = "AURORA_SOLAR_BASE_URL";
/// The environment variable naming the tenant.
pub(crate) const TENANT_ID_VAR: &str = "AURORA_SOLAR_TENANT_ID";

/// Which Aurora Solar world to talk to. Sandbox and production are separate: keys, tenants and
/// users of one do not exist in the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Environment {
    /// `https://api-sandbox.aurorasolar.com`.
    Sandbox,
    /// `https://api.aurorasolar.com`.
    Production,
}

impl Environment {
    /// The API host of this environment.
    pub const fn base_url(self) -> &'static str {
        match self {
            Self::Sandbox => "https://api-sandbox.aurorasolar.com",
            Self::Production => "https://api.aurorasolar.com",
        }
    }

    /// The name used in `AURORA_SOLAR_ENV` and in store keys: `sandbox` or `production`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Production => "production",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = Error;

    /// `sandbox` or `production` (any case, surrounding blanks ignored); the error names
    /// `AURORA_SOLAR_ENV`.
    fn from_str(s: &str) -> Result<Self, Error> {
        token_provider::env_choice(s, &[Self::Sandbox, Self::Production], Self::as_str)
            .ok_or_else(|| Error::config(ENV_VAR, "must be `sandbox` or `production`"))
    }
}

/// Where requests go, and the name of that place in store keys.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) base: Url,
    /// `sandbox`, `production`, or `host[:port]` of a custom base URL.
    pub(crate) label: String,
    /// The preset in use; `None` when a custom base URL replaces it.
    pub(crate) preset: Option<Environment>,
}

impl Target {
    /// The setting the base URL comes from, as an error names it.
    pub(crate) fn setting(&self) -> &'static str {
        if self.preset.is_some() {
            ENV_VAR
        } else {
            BASE_URL_VAR
        }
    }

    /// The environment's host, or the custom base URL (which wins when both are set).
    pub(crate) fn resolve(
        environment: Option<Environment>,
        base_url: Option<&str>,
    ) -> Result<Self, Error> {
        if let Some(raw) = base_url {
            let base = parse_base_url(BASE_URL_VAR, raw)?;
            let host = base.host_str().unwrap_or_default();
            let label = match base.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            };
            return Ok(Self {
                base,
                label,
                preset: None,
            });
        }
        let Some(environment) = environment else {
            return Err(Error::config(
                ENV_VAR,
                format!("is required (`sandbox` or `production`) unless {BASE_URL_VAR} is set"),
            ));
        };
        let base = Url::parse(environment.base_url())
            .map_err(|e| Error::config(ENV_VAR, format!("has an unusable host: {e}")))?;
        Ok(Self {
            base,
            label: environment.as_str().to_owned(),
            preset: Some(environment),
        })
    }

    /// Refuses a missing or unusable key, and a key that looks like the other environment's
    /// (`sk_prod_`/`rk_prod_` against sandbox, `_sand_` against production). A custom base URL
    /// could be either, so it skips the environment check. Messages never repeat the key.
    /// A key from a file is named by its `_FILE` variable.
    pub(crate) fn check_key(
        &self,
        field: &str,
        source: Option<&SecretSource>,
    ) -> Result<SecretSource, Error> {
        let key = source.map(SecretSource::current);
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Err(Error::config(field, "is required"));
        };
        let field = source.and_then(SecretSource::setting).unwrap_or(field);
        let value = key.expose_secret();
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::config(
                field,
                "must be printable ASCII with no spaces or line breaks",
            ));
        }
        match self.preset {
            Some(Environment::Sandbox)
                if value.starts_with("sk_prod_") || value.starts_with("rk_prod_") =>
            {
                Err(Error::config(
                    field,
                    format!(
                        "looks like a production key (`sk_prod_…`/`rk_prod_…`) but {ENV_VAR} is \
                         sandbox: use a sandbox key or set {ENV_VAR}=production"
                    ),
                ))
            }
            Some(Environment::Production) if value.contains("_sand_") => Err(Error::config(
                field,
                format!(
                    "looks like a sandbox key (`…_sand_…`) but {ENV_VAR} is production: use a \
                     production key or set {ENV_VAR}=sandbox"
                ),
            )),
            _ => Ok(source.cloned().expect("a key was read from it")),
        }
    }
}

/// A required identifier, ASCII blanks around it trimmed (any other character is part of the
/// id, so two ids that merely look alike stay two); `field` names it when it is missing or
/// blank, or when it is `.` or `..` (in any spelling): ids are path segments, and the URL
/// library drops a dot segment, so `tenants/../create_token` would go out as another request
/// than the one meant.
pub(crate) fn required_id(field: &str, value: Option<&str>) -> Result<String, Error> {
    match value.map(str::trim_ascii) {
        Some(v) if !v.is_empty() => {
            let decoded = v.to_ascii_lowercase().replace("%2e", ".");
            if decoded == "." || decoded == ".." {
                return Err(Error::config(
                    field,
                    "must not be `.` or `..`: it would vanish from the request path",
                ));
            }
            Ok(v.to_owned())
        }
        _ => Err(Error::config(field, "is required")),
    }
}

/// Aurora Solar's documented limit: 90 requests per minute per key (then 429 with
/// `Retry-After`). Each [`PartnerApp`](crate::PartnerApp) and [`ClientSdk`](crate::ClientSdk)
/// paces its key's requests to it unless told otherwise (`rate_limit`).
pub(crate) const REQUESTS_PER_MINUTE: u32 = 90;

/// A new limit at Aurora Solar's documented rate, for one key.
pub(crate) fn default_rate_limit() -> token_provider::RateLimit {
    token_provider::RateLimit::per_minute(REQUESTS_PER_MINUTE).expect("a rate above zero")
}

/// `AURORA_SOLAR_ENV` parsed, when set.
pub(crate) fn env_from(vars: &EnvVars<'_>) -> Result<Option<Environment>, Error> {
    vars.get(ENV_VAR).map(|v| v.parse()).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_round_trip() {
        for env in [Environment::Sandbox, Environment::Production] {
            assert_eq!(env.as_str().parse::<Environment>().unwrap(), env);
            assert_eq!(env.to_string(), env.as_str());
        }
        assert_eq!(
            " SANDBOX ".parse::<Environment>().unwrap(),
            Environment::Sandbox
        );
        let e = "prod".parse::<Environment>().unwrap_err();
        assert!(e.to_string().contains(ENV_VAR), "{e}");
    }

    #[test]
    fn custom_base_url_wins_and_labels_the_host() {
        let t = Target::resolve(
            Some(Environment::Production),
            Some("http://127.0.0.1:8080/x"),
        )
        .unwrap();
        assert_eq!(t.base.as_str(), "http://127.0.0.1:8080/x");
        assert_eq!(t.label, "127.0.0.1:8080");
        assert_eq!(t.preset, None);
        let t = Target::resolve(Some(Environment::Sandbox), None).unwrap();
        assert_eq!(t.base.as_str(), "https://api-sandbox.aurorasolar.com/");
        assert_eq!(t.label, "sandbox");
        let e = Target::resolve(None, None).unwrap_err();
        assert!(e.to_string().contains(ENV_VAR), "{e}");
        let e = Target::resolve(None, Some("http://example.com")).unwrap_err();
        assert!(e.to_string().contains(BASE_URL_VAR), "{e}");
    }
}
