//! `partner-auth`: an access token for Aerion, Aurora UK or Aurora Solar from the shell, as
//! scripts and CI pipelines need it.
//!
//! ```text
//! partner-auth token <aerion|aurora-uk|aurora-solar|aurora-solar-sdk> [--json] [--store FILE]
//! ```
//!
//! ```no_run
//! # // The same from Rust, for a script's test harness:
//! let out = std::process::Command::new("partner-auth")
//!     .args(["token", "aerion", "--json"])
//!     .env("AERION_COMPANY_URL", "acme.aerion.app")
//!     .output()?;
//! assert_eq!(out.status.code(), Some(0));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Contract (SPEC section 5)
//!
//! - Configuration comes from the environment only (the variables are listed by
//!   `partner-auth token --help` and in [`TOKEN_HELP`]); secrets are never accepted as flags.
//!   Empty values count as unset.
//! - stdout: the access token alone and a newline; with `--json` one line
//!   `{"access_token":…,"token_type":…,"expires_at":"2026-11-22T10:00:00Z"}` (`expires_at` in
//!   RFC 3339 UTC to the second, or `null` when the provider did not say).
//! - `PARTNER_AUTH_TIMEOUT`: seconds each request may take (1 to 86400; default 30).
//! - `--store FILE`: the file store (mode 0600, atomic writes, a cross-process lock): a fresh
//!   token is printed with no request; an expired one is renewed with the stored refresh token
//!   where the provider has one.
//! - Exit status: 0 success; 2 usage or configuration error, the store included (nothing was
//!   sent, except for a Client SDK user found missing with no names to invite them); 3 the
//!   provider rejected the credentials or the single-use token; 4 anything else (unreachable,
//!   timed out, rate limited past the retries, a malformed or oversized answer).
//! - stderr: one line, `partner-auth: <provider>: <reason>`, never a secret.
//!
//! # Assumptions where the SPEC is silent
//!
//! - Usage errors are one line too (`partner-auth: <clap's message>`), exit 2; `--help` and
//!   `--version` print to stdout and exit 0.
//! - `PARTNER_AUTH_TIMEOUT` is capped at one day so no deadline overflows; with it set, the whole
//!   load may take twelve request timeouts (at most four requests, each tried three times) or
//!   60 s, whichever is longer.
//! - A token that cannot be written to stdout (a closed pipe) exits 4.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand, ValueEnum};
use partner_auth::token_provider::error_chain;
use partner_auth::{
    AccessToken, CacheConfig, Error, FileStore, HttpClient, ProviderKind, ProviderOptions,
};

/// Success: the token was printed.
const EXIT_OK: u8 = 0;
/// Usage or configuration error (the store included).
const EXIT_CONFIG: u8 = 2;
/// The provider rejected the credentials or the single-use token.
const EXIT_REJECTED: u8 = 3;
/// Unreachable, timed out, rate limited, malformed or oversized; anything else.
const EXIT_UNAVAILABLE: u8 = 4;
/// The token was printed, but the new state (a rotated refresh token) could not be saved.
const EXIT_NOT_SAVED: u8 = 5;

/// The variable that bounds each request, in whole seconds.
const TIMEOUT_VAR: &str = "PARTNER_AUTH_TIMEOUT";
/// The largest `PARTNER_AUTH_TIMEOUT` accepted: one day.
const MAX_TIMEOUT_SECS: u64 = 86_400;
/// Requests one load may make (the Client SDK's lookup, invite, lookup again, generate) times
/// the attempts the HTTP client makes for each.
const REQUEST_TIMEOUTS_PER_LOAD: u32 = 4 * 3;
/// The cache's own default load timeout, kept as the floor.
const MIN_LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// What `partner-auth token --help` says after the options: every variable, per provider.
pub const TOKEN_HELP: &str = "\
Configuration comes from environment variables only; secrets are never accepted as flags.
Empty values count as unset.

aerion:
  AERION_BASE_URL          optional; default https://api.aerion.app
  AERION_COMPANY_URL       required unless AERION_ORIGIN is set: the tenant (companyurl header)
  AERION_ORIGIN            required unless AERION_COMPANY_URL is set: the tenant (origin header)
  AERION_USERNAME          required with AERION_PASSWORD, unless AERION_REFRESH_TOKEN is set
  AERION_PASSWORD          required with AERION_USERNAME, unless AERION_REFRESH_TOKEN is set
  AERION_REFRESH_TOKEN     required unless AERION_USERNAME and AERION_PASSWORD are set
  AERION_CLIENT_ID         optional; default partner-auth
  AERION_CLIENT_SECRET     optional; default partner-auth

aurora-uk:
  AURORA_UK_ENV            required: dev or live
  AURORA_UK_ISSUER         optional; overrides the environment's issuer
  AURORA_UK_AUDIENCE       optional; overrides the environment's audience
  AURORA_UK_CLIENT_ID      required
  AURORA_UK_CLIENT_SECRET  required

aurora-solar (partner app temporary key):
  AURORA_SOLAR_ENV              required unless AURORA_SOLAR_BASE_URL is set: sandbox or production
  AURORA_SOLAR_BASE_URL         optional; replaces the environment's host
  AURORA_SOLAR_APPLICATION_ID   required
  AURORA_SOLAR_APPLICATION_KEY  required
  AURORA_SOLAR_TENANT_ID        required
  AURORA_SOLAR_SESSION_TOKEN    optional; a single-use session token (embedded app exchange)

aurora-solar-sdk (Client SDK JWT):
  AURORA_SOLAR_ENV              required unless AURORA_SOLAR_BASE_URL is set: sandbox or production
  AURORA_SOLAR_BASE_URL         optional; replaces the environment's host
  AURORA_SOLAR_API_KEY          required: the REST API key
  AURORA_SOLAR_TENANT_ID        required
  AURORA_SOLAR_USER_EMAIL       required
  AURORA_SOLAR_USER_FIRST_NAME  required only to invite a user who is missing
  AURORA_SOLAR_USER_LAST_NAME   required only to invite a user who is missing

every provider:
  PARTNER_AUTH_TIMEOUT     optional; seconds each request may take (1 to 86400; default 30)

Output: the access token alone on stdout; with --json one line
{\"access_token\":...,\"token_type\":...,\"expires_at\":\"2026-11-22T10:00:00Z\" or null}.
Errors: one line on stderr, `partner-auth: <provider>: <reason>`.

Exit status:
  0  the token was printed
  2  usage or configuration error (the message names the variable; nothing was sent, except
     for an aurora-solar-sdk user found missing with no names to invite them)
  3  the provider rejected the credentials or the single-use session token
  4  unreachable, timed out, rate limited past the retries, or a malformed or oversized answer
     (or the store's lock held by another process for too long)
  5  the token was printed, but the new state could not be saved to the store (the next run may
     need to sign in again): the line names the store";

/// Bearer tokens for Aurora Solar, Aurora UK and Aerion, from the shell.
#[derive(Debug, Parser)]
#[command(name = "partner-auth", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints an access token for PROVIDER, configured from the environment.
    #[command(after_help = TOKEN_HELP)]
    Token(TokenArgs),
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The provider.
    #[arg(value_enum)]
    provider: Provider,

    /// Print one JSON object: access_token, token_type, expires_at (RFC 3339 UTC or null).
    #[arg(long)]
    json: bool,

    /// Keep the token (and refresh token) in FILE between runs (created with mode 0600).
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
}

/// The CLI's provider names, which are the facade's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Provider {
    /// Aerion: password or refresh grant.
    Aerion,
    /// Aurora UK: client credentials.
    AuroraUk,
    /// Aurora Solar partner app: temporary key.
    AuroraSolar,
    /// Aurora Solar Client SDK: a user's JWT.
    AuroraSolarSdk,
}

impl Provider {
    fn kind(self) -> ProviderKind {
        match self {
            Self::Aerion => ProviderKind::Aerion,
            Self::AuroraUk => ProviderKind::AuroraUk,
            Self::AuroraSolar => ProviderKind::AuroraSolar,
            Self::AuroraSolarSdk => ProviderKind::AuroraSolarSdk,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    let Command::Token(args) = cli.command;
    let kind = args.provider.kind();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("partner-auth: {kind}: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    let result = runtime.block_on(fetch(kind, &args, |name| std::env::var(name).ok()));
    // The cache may have left tasks behind (a store write, a refresh); none of them may keep
    // the process alive once the answer is known.
    runtime.shutdown_background();

    let (token, unsaved) = match result {
        Ok(fetched) => fetched,
        Err(err) => {
            eprintln!("partner-auth: {kind}: {}", one_line(&error_chain(&err)));
            return ExitCode::from(exit_code(&err));
        }
    };
    let line = if args.json {
        json_line(&token)
    } else {
        token.secret().expose_secret().to_owned()
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        eprintln!("partner-auth: {kind}: cannot write the token to stdout: {e}");
        return ExitCode::from(EXIT_UNAVAILABLE);
    }
    if let Some(err) = unsaved {
        // The token is good, but the next run would present a rotated-away refresh token.
        eprintln!(
            "partner-auth: {kind}: the token was printed, but the new state could not be saved: {}",
            one_line(&error_chain(&err))
        );
        return ExitCode::from(EXIT_NOT_SAVED);
    }
    ExitCode::from(EXIT_OK)
}

/// Builds the provider of `kind` from the variables `lookup` reads and gets one token, with the
/// reason its new state could not be saved, if it could not.
async fn fetch(
    kind: ProviderKind,
    args: &TokenArgs,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(AccessToken, Option<Error>), Error> {
    let mut options = ProviderOptions::default();
    if let Some(timeout) = request_timeout(lookup(TIMEOUT_VAR).as_deref())? {
        options.http = Some(HttpClient::builder().timeout(timeout).build()?);
        // The cache's 60 s load limit must not cut a run short of what the variable allows.
        let load = timeout
            .saturating_mul(REQUEST_TIMEOUTS_PER_LOAD)
            .max(MIN_LOAD_TIMEOUT);
        options.cache = Some(CacheConfig::default().load_timeout(load));
    }
    if let Some(path) = &args.store {
        options.store = Some(Arc::new(FileStore::new(path.clone())));
    }
    let provider = partner_auth::from_lookup(kind, lookup, &options)?;
    let token = provider.token().await?;
    Ok((token, provider.store_error()))
}

/// `PARTNER_AUTH_TIMEOUT` read: unset (or blank) is `None`, a whole number of seconds from 1 to
/// [`MAX_TIMEOUT_SECS`] is that timeout, anything else a configuration error naming the variable
/// (never quoting the value).
fn request_timeout(value: Option<&str>) -> Result<Option<Duration>, Error> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let invalid = || {
        Error::config(
            TIMEOUT_VAR,
            format!("must be a whole number of seconds from 1 to {MAX_TIMEOUT_SECS}"),
        )
    };
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match value.parse::<u64>() {
        Ok(secs) if (1..=MAX_TIMEOUT_SECS).contains(&secs) => Ok(Some(Duration::from_secs(secs))),
        _ => Err(invalid()),
    }
}

/// The exit status for a failure (SPEC section 5).
fn exit_code(err: &Error) -> u8 {
    match err {
        Error::Config { .. } | Error::Store { .. } => EXIT_CONFIG,
        Error::Rejected { .. } | Error::UserAction { .. } => EXIT_REJECTED,
        // Transport, Timeout, RateLimited, Status, Malformed, TooLarge, and whatever a later
        // core adds: the provider could not be used right now.
        _ => EXIT_UNAVAILABLE,
    }
}

/// The `--json` line: fields in the documented order.
fn json_line(token: &AccessToken) -> String {
    #[derive(serde::Serialize)]
    struct JsonToken<'a> {
        access_token: &'a str,
        token_type: &'a str,
        expires_at: Option<String>,
    }
    let out = JsonToken {
        access_token: token.secret().expose_secret(),
        token_type: token.token_type(),
        expires_at: token.expires_at().map(rfc3339),
    };
    serde_json::to_string(&out).expect("strings always serialize")
}

/// `at` in RFC 3339 UTC to the second: `2026-11-22T10:00:00Z`.
fn rfc3339(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Whitespace runs (newlines included) folded into single spaces, so an error is one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Prints a clap outcome: help and version go to stdout as clap writes them (exit 0); a usage
/// error becomes one line on stderr, exit 2.
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::from(EXIT_OK)
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            eprintln!(
                "partner-auth: a subcommand is required: \
                 partner-auth token <aerion|aurora-uk|aurora-solar|aurora-solar-sdk> \
                 [--json] [--store FILE] (see `partner-auth token --help`)"
            );
            ExitCode::from(EXIT_CONFIG)
        }
        ErrorKind::UnknownArgument => {
            // Someone may have tried to pass a secret as an argument: name a flag without its
            // `=value`, and never echo a stray positional value.
            let what = match err.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(arg)) if arg.starts_with('-') => {
                    let flag = arg.split_once('=').map_or(arg.as_str(), |(flag, _)| flag);
                    format!("unexpected argument '{flag}'")
                }
                _ => "unexpected extra argument".to_owned(),
            };
            eprintln!(
                "partner-auth: {what}; secrets and settings come from environment variables \
                 (see `partner-auth token --help`)"
            );
            ExitCode::from(EXIT_CONFIG)
        }
        _ => {
            let rendered = err.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:"))
                .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                .collect();
            let message = message.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("partner-auth: {message} (see `partner-auth token --help`)");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_variable_of_every_provider() {
        for kind in ProviderKind::ALL {
            for (_, var) in kind.settings() {
                assert!(TOKEN_HELP.contains(var), "{var} missing from the help");
            }
            assert!(
                TOKEN_HELP.contains(&format!("{kind}:"))
                    || TOKEN_HELP.contains(&format!("{kind} ("))
            );
        }
        assert!(TOKEN_HELP.contains(TIMEOUT_VAR));
    }

    #[test]
    fn provider_names_are_the_facades() {
        for p in Provider::value_variants() {
            let name = p.to_possible_value().expect("not skipped");
            assert_eq!(name.get_name(), p.kind().as_str());
        }
        assert_eq!(Provider::value_variants().len(), ProviderKind::ALL.len());
    }

    #[test]
    fn exit_codes_follow_the_variant() {
        assert_eq!(exit_code(&Error::config("X", "is required")), 2);
        assert_eq!(exit_code(&Error::store("cannot read", None)), 2);
        assert_eq!(exit_code(&Error::rejected(Some(401), None, None)), 3);
        assert_eq!(exit_code(&Error::user_action("get a new session token")), 3);
        assert_eq!(exit_code(&Error::RateLimited { retry_after: None }), 4);
        assert_eq!(exit_code(&Error::transport("refused")), 4);
        assert_eq!(exit_code(&Error::Timeout(Duration::from_secs(1))), 4);
        assert_eq!(exit_code(&Error::Status { status: 503 }), 4);
        assert_eq!(exit_code(&Error::malformed("not JSON")), 4);
        assert_eq!(exit_code(&Error::TooLarge { limit: 1 }), 4);
    }

    #[test]
    fn timeouts_are_whole_positive_seconds() {
        assert_eq!(request_timeout(None).unwrap(), None);
        assert_eq!(request_timeout(Some("  ")).unwrap(), None);
        assert_eq!(
            request_timeout(Some("5")).unwrap(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            request_timeout(Some("86400")).unwrap(),
            Some(Duration::from_secs(86_400))
        );
        for bad in [
            "0",
            "-1",
            "+1",
            "1.5",
            "1s",
            "abc",
            "86401",
            "99999999999999999999999",
        ] {
            let err = request_timeout(Some(bad)).unwrap_err();
            assert!(
                matches!(&err, Error::Config { field, .. } if field == TIMEOUT_VAR),
                "{bad}: {err}"
            );
            // The message never quotes the value.
            assert_eq!(
                err.to_string(),
                "invalid configuration: `PARTNER_AUTH_TIMEOUT` must be a whole number of seconds from 1 to 86400"
            );
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_341_600_750);
        let token = AccessToken::builder("tok-1")
            .token_type("Bearer")
            .expires_at(at)
            .build();
        assert_eq!(
            json_line(&token),
            r#"{"access_token":"tok-1","token_type":"Bearer","expires_at":"2026-11-22T10:00:00Z"}"#
        );
        let token = AccessToken::new("tok-2");
        let v: serde_json::Value = serde_json::from_str(&json_line(&token)).unwrap();
        assert_eq!(v["expires_at"], serde_json::Value::Null);
        assert_eq!(v["access_token"], "tok-2");
    }

    #[test]
    fn errors_fold_into_one_line() {
        assert_eq!(one_line("a\n  b\r\nc "), "a b c");
    }
}
