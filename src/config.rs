//! [`Config`]: providers chosen at run time from TOML or JSON.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::{Error, HttpClient, ProviderKind, ProviderOptions, TokenProvider, from_lookup};

/// Providers and shared settings, as an application's configuration file holds them.
///
/// ```toml
/// timeout_secs = 20               # each HTTP request (default 30)
/// store = "/var/lib/app/tokens.json"  # optional: a store shared by all providers
/// # store = "rediss://cache.internal:6380/0"  # or Redis, shared by a fleet (feature
/// #   `redis`; its password from PARTNER_AUTH_REDIS_PASSWORD in the environment)
/// # Either is sealed when PARTNER_AUTH_STORE_KEY is set in the environment.
///
/// [providers.billing]
/// provider = "aerion"
/// company_url = "acme.aerion.app"
/// username = "svc@acme.example"
/// password = "…"
/// # password_file = "/run/secrets/aerion-password"  # or from a file, read again when it changes
///
/// [providers.crm]
/// provider = "aurora-uk"
/// environment = "live"
/// client_id = "…"
/// client_secret = "…"
/// ```
///
/// Each provider's settings are the snake_case names of its SPEC section 5 environment variables
/// ([`ProviderKind::settings`]), a secret's `_file` twin among them (`password_file`,
/// `client_secret_file`, …: the path of a file holding it); an unknown setting is refused (a
/// typo must not silently drop a value). Values may be strings, numbers or booleans. Errors name the setting as
/// `providers.<name>.<setting>` and never quote a value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Seconds each HTTP request may take.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// The store shared by every provider: a file path, or a Redis URL (feature `redis`); its
    /// entries sealed under `PARTNER_AUTH_STORE_KEY` from the process environment when that is
    /// set, never from this file. A `word:` prefix that names no store is refused. See
    /// [`open_store`](crate::open_store).
    #[serde(default)]
    pub store: Option<std::path::PathBuf>,
    /// The providers, by the application's own names.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
}

/// One provider's section of a [`Config`].
#[derive(Clone, Deserialize)]
pub struct ProviderConfig {
    /// Which provider: `aerion`, `aurora-uk`, `aurora-solar` or `aurora-solar-sdk`.
    pub provider: String,
    #[serde(flatten)]
    settings: BTreeMap<String, Scalar>,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Setting names only: values include passwords and keys.
        f.debug_struct("ProviderConfig")
            .field("provider", &self.provider)
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Clone, Deserialize)]
#[serde(untagged)]
enum Scalar {
    String(String),
    Integer(i64),
    Bool(bool),
}

impl Scalar {
    fn to_value(&self) -> String {
        match self {
            Self::String(s) => s.clone(),
            Self::Integer(i) => i.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }
}

impl Config {
    /// Parses TOML.
    pub fn from_toml_str(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            config_error(line, e.message())
        })
    }

    /// Parses JSON.
    pub fn from_json_str(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(|e| config_error(Some(e.line()), &e.to_string()))
    }

    /// Builds every provider, by name.
    pub fn build(&self) -> Result<BTreeMap<String, Arc<dyn TokenProvider>>, Error> {
        let mut options = ProviderOptions::default();
        if let Some(secs) = self.timeout_secs {
            if secs == 0 {
                return Err(Error::config("timeout_secs", "must be at least 1"));
            }
            options.http = Some(
                HttpClient::builder()
                    .timeout(Duration::from_secs(secs))
                    .build()?,
            );
        }
        if let Some(spec) = &self.store {
            let env = token_provider::ProcessEnv::new();
            options.store = Some(crate::open_store(
                |name| env.get(name),
                &spec.to_string_lossy(),
                "store",
            )?);
            env.check()?;
        }
        self.providers
            .iter()
            .map(|(name, section)| Ok((name.clone(), section.build(name, &options)?)))
            .collect()
    }
}

impl ProviderConfig {
    /// Builds this provider with shared `options`; `name` is used in error messages.
    pub fn build(
        &self,
        name: &str,
        options: &ProviderOptions,
    ) -> Result<Arc<dyn TokenProvider>, Error> {
        let kind: ProviderKind = self.provider.parse().map_err(|e| match e {
            Error::Config { reason, .. } => {
                Error::config(format!("providers.{name}.provider"), reason)
            }
            other => other,
        })?;
        let table = kind.settings();
        for key in self.settings.keys() {
            if !table.iter().any(|(setting, _)| setting == key) {
                let known: Vec<_> = table.iter().map(|(s, _)| *s).collect();
                return Err(Error::config(
                    format!("providers.{name}.{key}"),
                    format!("is not a {kind} setting (known: {})", known.join(", ")),
                ));
            }
        }
        let lookup = |var: &str| {
            let (setting, _) = table.iter().find(|(_, v)| *v == var)?;
            self.settings.get(*setting).map(Scalar::to_value)
        };
        from_lookup(lookup, kind, options).map_err(|e| match e {
            // The builders name environment variables; here the user wrote settings.
            Error::Config { field, reason, .. } => {
                let mut field = field;
                let mut reason = reason;
                // Longest first: `AERION_PASSWORD` must not eat the start of
                // `AERION_PASSWORD_FILE`.
                let mut table = table.to_vec();
                table.sort_by_key(|(_, var)| std::cmp::Reverse(var.len()));
                for (setting, var) in table {
                    let qualified = format!("providers.{name}.{setting}");
                    field = field.replace(var, &qualified);
                    reason = reason.replace(var, &qualified);
                }
                Error::config(field, reason)
            }
            other => other,
        })
    }
}

/// A parse error that says where and what, without quoting the value (it may be a secret):
/// everything from the first quote on is cut (an escaped quote inside a value must not end the
/// cut early).
fn config_error(line: Option<usize>, message: &str) -> Error {
    let first = message.lines().next().unwrap_or("");
    let shown = match first.find('"') {
        Some(i) => format!("{}…", first[..i].trim_end()),
        None => first.trim().to_owned(),
    };
    match line {
        Some(line) => Error::config(format!("configuration line {line}"), shown),
        None => Error::config("configuration", shown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
timeout_secs = 5

[providers.billing]
provider = "aerion"
company_url = "acme.aerion.app"
username = "svc@acme.example"
password = "pw-SECRET-1"

[providers.crm]
provider = "aurora-uk"
environment = "dev"
client_id = "cid"
client_secret = "cs-SECRET-2"

[providers.solar]
provider = "aurora-solar"
environment = "sandbox"
application_id = "app"
application_key = "rk_sand_SECRET-3"
tenant_id = 42

[providers.sdk]
provider = "aurora-solar-sdk"
environment = "sandbox"
api_key = "sk_sand_SECRET-4"
tenant_id = "t-1"
user_email = "jessica@example.com"
"#;

    /// What building the providers of the TOML `text` fails with, as it reads.
    fn build_error(text: &str) -> String {
        Config::from_toml_str(text)
            .unwrap()
            .build()
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_full_toml_config_builds_every_provider() {
        let config = Config::from_toml_str(TOML).unwrap();
        let providers = config.build().unwrap();
        assert_eq!(
            providers.keys().collect::<Vec<_>>(),
            ["billing", "crm", "sdk", "solar"]
        );
        let dbg = format!("{config:?} {providers:?}");
        for secret in [
            "pw-SECRET-1",
            "cs-SECRET-2",
            "rk_sand_SECRET-3",
            "sk_sand_SECRET-4",
        ] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
    }

    #[test]
    fn json_works_the_same() {
        let config = Config::from_json_str(
            r#"{"providers":{"b":{"provider":"aerion","origin":"https://acme.example",
                "refresh_token":"rt-SECRET"}}}"#,
        )
        .unwrap();
        assert_eq!(config.build().unwrap().len(), 1);
    }

    #[test]
    fn a_misspelt_setting_is_refused_by_name() {
        let err = build_error(
            "[providers.b]\nprovider = \"aerion\"\ncompany_url = \"a\"\npasword = \"x\"\n",
        );
        assert!(err.contains("providers.b.pasword"), "{err}");
        assert!(err.contains("password"), "{err}");
    }

    #[test]
    fn a_missing_setting_is_named_as_the_user_wrote_it() {
        let err = build_error(
            "[providers.b]\nprovider = \"aerion\"\nusername = \"u\"\npassword = \"p\"\n",
        );
        assert!(err.contains("providers.b.company_url"), "{err}");
        assert!(!err.contains("AERION_"), "{err}");

        let err = build_error("[providers.x]\nprovider = \"aurora-uk\"\nenvironment = \"qa\"\n");
        assert!(err.contains("providers.x.environment"), "{err}");
    }

    #[test]
    fn a_secret_may_come_from_its_file_setting_but_not_both() {
        let dir = token_provider::testing::TempDir::new("config-secret-file");
        let path = dir.join("password");
        std::fs::write(&path, "pw-FILE-SECRET\n").unwrap();
        let section = |extra: &str| {
            format!(
                "[providers.b]\nprovider = \"aerion\"\ncompany_url = \"a.example\"\n\
                 username = \"u\"\npassword_file = {:?}\n{extra}",
                path.display().to_string()
            )
        };
        let built = Config::from_toml_str(&section(""))
            .unwrap()
            .build()
            .unwrap();
        assert!(!format!("{built:?}").contains("pw-FILE-SECRET"));
        let err = build_error(&section("password = \"pw-2\"\n"));
        assert!(
            err.contains("providers.b.password and providers.b.password_file"),
            "{err}"
        );
        assert!(!err.contains("pw-") && !err.contains("AERION_"), "{err}");
    }

    #[test]
    fn an_unknown_provider_is_refused() {
        let err = build_error("[providers.x]\nprovider = \"auth0\"\n");
        assert!(err.contains("providers.x.provider"), "{err}");
        assert!(err.contains("aerion"), "{err}");
    }

    #[test]
    fn parse_errors_give_the_line_and_never_quote_values() {
        let err = Config::from_toml_str(
            "timeout_secs = 5\n[providers.b]\nprovider = \"aerion\"\npassword = [\"pw-SECRET\"]\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains("pw-SECRET"), "{msg}");
        assert!(msg.contains("line"), "{msg}");
        let err = Config::from_json_str(r#"{"timeout_secs":"pw-SECRET"}"#).unwrap_err();
        assert!(!err.to_string().contains("pw-SECRET"), "{err}");
        let err = Config::from_json_str(r#"{"timeout_secs":"ab\"pw-SECRET"}"#).unwrap_err();
        assert!(!err.to_string().contains("pw-SECRET"), "{err}");
        let err = build_error("timeout_secs = 0\n");
        assert!(err.contains("timeout_secs"), "{err}");
    }
}
