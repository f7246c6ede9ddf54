//! The whole library in one run: a token from each provider, a protected call through the
//! authenticated client, and the second `get()` served from the cache.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! With none of the provider variables set it starts the built-in emulator on loopback and talks
//! to it, so it works offline with no account. With the variables of a provider set (the same
//! names as the `partner-auth` CLI: `AERION_*`, `AURORA_UK_*`, `AURORA_SOLAR_*`), it talks to the
//! real hosts for the providers that are configured and skips the others.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::Arc;

use partner_auth::auth::{AuthMiddleware, AuthScope};
use partner_auth::{
    AccessToken, HttpClient, ProviderKind, ProviderOptions, TokenProvider, from_lookup,
};
use partner_auth_emulator::{Emulator, RunningEmulator};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn StdError>> {
    let configured_in_env = |kind: ProviderKind| {
        kind.settings()
            .iter()
            .any(|(_, var)| std::env::var(var).is_ok_and(|v| !v.is_empty()))
    };
    let real = ProviderKind::ALL.iter().any(|k| configured_in_env(*k));
    let emulator = if real {
        None
    } else {
        Some(Emulator::start().await?)
    };
    let vars: HashMap<String, String> = match &emulator {
        Some(e) => e
            .env_vars()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        None => std::env::vars().collect(),
    };
    match &emulator {
        Some(e) => println!(
            "No provider variables are set: talking to the built-in emulator at {}.\n",
            e.url()
        ),
        None => println!("Talking to the providers configured in the environment.\n"),
    }

    let http = HttpClient::new()?;
    let options = ProviderOptions::new().http(http.clone());
    for &kind in ProviderKind::ALL {
        if real && !configured_in_env(kind) {
            println!("{kind:<17} skipped (none of its variables are set)\n");
            continue;
        }
        let provider = from_lookup(|name| vars.get(name).cloned(), kind, &options)?;
        let started = tokio::time::Instant::now();
        let token = provider.get().await?;
        println!(
            "{kind:<17} token fetched in {} ms: {}, {}",
            started.elapsed().as_millis(),
            token.token_type(),
            expiry(&token)
        );

        if let Some(url) = protected_resource(kind, &vars, emulator.as_ref()) {
            let client = reqwest_middleware::ClientBuilder::new(http.reqwest().clone())
                .with(AuthMiddleware::new(
                    Arc::clone(&provider),
                    AuthScope::parse(&url)?,
                ))
                .build();
            let status = client.get(url.as_str()).send().await?.status();
            println!("{:<17} GET {} -> {status}", "", path_of(&url));
        } else {
            println!(
                "{:<17} (a Client SDK JWT is used by the browser SDK, not sent here)",
                ""
            );
        }

        let before = emulator.as_ref().map(|e| e.requests().len());
        let again = provider.get().await?;
        let after = emulator.as_ref().map(|e| e.requests().len());
        let cached = if again == token {
            "served from the cache"
        } else {
            "a new token"
        };
        match (before, after) {
            (Some(b), Some(a)) => println!(
                "{:<17} second get(): {cached}, {} request(s) to the provider\n",
                "",
                a - b
            ),
            _ => println!("{:<17} second get(): {cached}\n", ""),
        }
    }
    if let Some(e) = emulator {
        e.shutdown().await;
    }
    Ok(())
}

/// When the token expires, never the token itself.
fn expiry(token: &AccessToken) -> String {
    match token.expires_at() {
        Some(at) => {
            let left = at
                .duration_since(partner_auth::Clock::now(
                    &partner_auth::token_provider::SystemClock,
                ))
                .unwrap_or_default();
            format!(
                "expires {} (in {} min)",
                chrono::DateTime::<chrono::Utc>::from(at)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                left.as_secs() / 60
            )
        }
        None => "no expiry given".to_owned(),
    }
}

/// One endpoint per provider that needs the token.
fn protected_resource(
    kind: ProviderKind,
    vars: &HashMap<String, String>,
    emulator: Option<&RunningEmulator>,
) -> Option<String> {
    let var = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
    match kind {
        ProviderKind::Aerion => {
            let base = var("AERION_BASE_URL").unwrap_or_else(|| "https://api.aerion.app".into());
            Some(format!("{}/v1/users/me", base.trim_end_matches('/')))
        }
        ProviderKind::AuroraUk => Some(match emulator {
            Some(e) => format!("{}/Accounts", e.aurora_uk_api_base()),
            None => {
                let env: partner_auth::aurora_uk::Environment =
                    var("AURORA_UK_ENV")?.parse().ok()?;
                format!(
                    "{}/Accounts?orderBy=id%20asc",
                    env.api_base().trim_end_matches('/')
                )
            }
        }),
        ProviderKind::AuroraSolar => {
            let base = match var("AURORA_SOLAR_BASE_URL") {
                Some(b) => b,
                None => {
                    let env: partner_auth::aurora_solar::Environment =
                        var("AURORA_SOLAR_ENV")?.parse().ok()?;
                    env.base_url().to_owned()
                }
            };
            Some(format!(
                "{}/tenants/{}/projects",
                base.trim_end_matches('/'),
                var("AURORA_SOLAR_TENANT_ID")?
            ))
        }
        _ => None,
    }
}

fn path_of(url: &str) -> &str {
    url.find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| &url[i + 3 + j..]))
        .unwrap_or(url)
}
