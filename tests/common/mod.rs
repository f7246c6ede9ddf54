//! Helpers the facade's end-to-end tests share: the emulator's variables, the token endpoint of
//! each provider kind, an error's variant by name, a client that tries twice.

// Each test binary uses its own share of these.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::time::Duration;

use partner_auth::{Error, HttpClient, ProviderKind};
use partner_auth_emulator::{Endpoint, RunningEmulator};

/// The variables that point every provider at `emulator`, as a table.
pub fn vars(emulator: &RunningEmulator) -> HashMap<String, String> {
    emulator
        .env_vars()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// The token endpoint each kind uses.
pub fn token_endpoint(kind: ProviderKind) -> Endpoint {
    match kind {
        ProviderKind::Aerion => Endpoint::AerionToken,
        ProviderKind::AuroraUk => Endpoint::AuroraUkToken,
        ProviderKind::AuroraSolar => Endpoint::AuroraSolarCreateToken,
        _ => Endpoint::AuroraSolarGenerateToken,
    }
}

/// The name of an error's variant (`Timeout` for both timeouts), `other` for one not listed.
pub fn variant(e: &Error) -> &'static str {
    match e {
        Error::Config { .. } => "Config",
        Error::Rejected { .. } => "Rejected",
        Error::UserAction { .. } => "UserAction",
        Error::RateLimited { .. } => "RateLimited",
        Error::Transport { .. } => "Transport",
        Error::Timeout(_) | Error::TimedOut { .. } => "Timeout",
        Error::Status { .. } => "Status",
        Error::Malformed { .. } => "Malformed",
        Error::TooLarge { .. } => "TooLarge",
        Error::Store { .. } => "Store",
        _ => "other",
    }
}

/// A client that tries each request twice, with millisecond backoffs, `timeout` per attempt.
pub fn two_tries(timeout: Duration) -> HttpClient {
    HttpClient::builder()
        .timeout(timeout)
        .retry(token_provider::testing::fast_retry(2))
        .build()
        .unwrap()
}
