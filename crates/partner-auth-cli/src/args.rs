//! The command line: every command and what it takes (clap's derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use partner_auth::ProviderKind;

/// The variable that bounds each request, in whole seconds: the CLI's own, while the store's
/// variables are the library's.
pub(crate) const TIMEOUT_VAR: &str = "PARTNER_AUTH_TIMEOUT";

/// What `partner-auth token --help` says after the options: every variable, per provider.
pub(crate) const TOKEN_HELP: &str = "\
Configuration comes from environment variables only; secrets are never accepted as flags.
Empty values count as unset. Every secret NAME below may come from a file instead: NAME_FILE
holds its path (not both; line endings at the end of the file are dropped; a provider
re-reads the file when it changes).

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
  AURORA_UK_CLIENT_AUTH    optional; basic (the default: an HTTP Basic header) or post (in the body)
  AURORA_UK_API_URL        optional (api, --header); overrides the environment's API base
  AURORA_UK_AUTH_HEADER    optional (api, --header); the header the API reads; default Authorization

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
  PARTNER_AUTH_STORE       optional; the store used when --store is not given: a file, or a
                           Redis URL (redis://HOST:PORT/DB, rediss://, redis+unix:///PATH,
                           redis+cluster://HOST:PORT,HOST:PORT; valkey for redis); any other
                           `word:` is refused
  PARTNER_AUTH_STORE_KEY   optional; 32 bytes in base64 that seal the store's entries; to
                           rotate, several: the current key first, then older ones
                           (separated by commas or blanks), all of which open entries
  PARTNER_AUTH_REDIS_PASSWORD       optional; the Redis password (never in --store), or
  PARTNER_AUTH_REDIS_PASSWORD_FILE  a file holding it
  PARTNER_AUTH_REDIS_ACCEPT_EVICTION  optional; 1 to use a Redis that may evict keys

Output: the access token alone on stdout; with --json one line
{\"access_token\":...,\"token_type\":...,\"expires_at\":\"2026-11-22T10:00:00Z\" or null};
with --header one line `Authorization: Bearer <token>` (for curl -H @-).
Errors: one line on stderr, `partner-auth: <provider>: <reason>`.

Exit status:
  0  the token was printed
  2  usage or configuration error (the message names the variable; nothing was sent, except
     for an aurora-solar-sdk user found missing with no names to invite them, and a token URL
     that answered 404 or an HTML page, named with its variable)
  3  the provider rejected the credentials or the single-use session token
  4  unreachable, timed out, rate limited past the retries, or a malformed or oversized answer
     (or the store's lock held by another process for too long)
  5  the token was printed, but the new state could not be saved to the store (the next run may
     need to sign in again): the line names the store";

/// What `partner-auth api --help` says after the options.
pub(crate) const API_HELP: &str = "\
The request goes to the provider's API only, with the token in the header the API reads;
a 401 makes one new token and one replay. PATH is joined to the API base; a full URL is
accepted only on that base (same scheme, host and port, under its path): the token never
leaves its API. The provider is configured as for `partner-auth token` (see its --help).

API bases:
  aerion        AERION_BASE_URL (default https://api.aerion.app)
  aurora-uk     AURORA_UK_API_URL, else by AURORA_UK_ENV: dev https://dev.client.integration.aurora.co.uk,
                live https://api.client.integration.aurora.co.uk; the header is
                AURORA_UK_AUTH_HEADER (default Authorization; the provider's page says Authentication)
  aurora-solar  AURORA_SOLAR_BASE_URL, else the AURORA_SOLAR_ENV host
  (aurora-solar-sdk: the Client SDK JWT opens no REST API)

Output: the response body on stdout; when stdout is a terminal, JSON is pretty-printed and the
body ends with a newline, otherwise it is exactly as received; -i puts the status line and the headers first. A body without -H 'Content-Type: ...'
is sent as application/json when it parses as JSON.

Exit status:
  0  a 2xx answer
  2  usage or configuration error, or a URL off the provider's API (nothing was sent)
  3  the provider rejected the credentials while getting a token
  4  unreachable, timed out, or a malformed or oversized answer; rate limited while getting the
     token; or the store's lock held by another process for too long
  5  the answer was printed, but the new state could not be saved to the store
  6  the API answered with an HTTP error status (after the one 401 retry and any transient
     retries): a 4xx answer's body is still printed; for a 3xx, or a 5xx, 408 or 429 answer
     that ends the request, nothing is printed and the error line names the status";

/// Bearer tokens for Aurora Solar, Aurora UK and Aerion, from the shell.
#[derive(Debug, Parser)]
#[command(name = "partner-auth", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Prints an access token for PROVIDER, configured from the environment.
    #[command(after_help = TOKEN_HELP)]
    Token(TokenArgs),
    /// Sends one authenticated request to PROVIDER's API and prints the response body.
    #[command(after_help = API_HELP)]
    Api(ApiArgs),
    /// Lists the entries of the token store, one line each (never a secret).
    Status(StatusArgs),
    /// Removes the configured principal's stored state (its refresh token too), or every entry.
    Forget(ForgetArgs),
    /// Serves the built-in emulator on 127.0.0.1 until Ctrl-C and prints the `export` lines for it.
    #[cfg(feature = "emulator")]
    Emulator(EmulatorArgs),
    /// Prints the completion script for SHELL.
    Completions(CompletionsArgs),
}

/// Where state is kept between runs.
#[derive(Debug, Args)]
pub(crate) struct StoreArg {
    /// Keep tokens (and refresh tokens) in FILE between runs (created with mode 0600, its
    /// folder with mode 0700), or in
    /// Redis for a redis://HOST:PORT/DB or rediss:// URL (shared by a fleet);
    /// default: PARTNER_AUTH_STORE, else no store.
    #[arg(long, value_name = "FILE|URL")]
    pub(crate) store: Option<PathBuf>,
}

/// `partner-auth token`.
#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The provider.
    #[arg(value_enum)]
    pub(crate) provider: Provider,

    /// Print one JSON object: access_token, token_type, expires_at (RFC 3339 UTC or null).
    #[arg(long, conflicts_with = "header")]
    pub(crate) json: bool,

    /// Print `Authorization: Bearer <token>`, a header line ready for `curl -H @-`.
    #[arg(long)]
    pub(crate) header: bool,

    #[command(flatten)]
    pub(crate) store: StoreArg,
}

/// `partner-auth api`.
#[derive(Debug, Args)]
pub(crate) struct ApiArgs {
    /// The provider whose API is called.
    #[arg(value_enum)]
    pub(crate) provider: Provider,

    /// A path on the provider's API (`/v1/users/me`), or a full URL on it.
    #[arg(value_name = "PATH|URL")]
    pub(crate) target: String,

    /// The method (default GET, or POST with a body).
    #[arg(short = 'X', long, value_name = "METHOD")]
    pub(crate) method: Option<String>,

    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,

    /// The request body.
    #[arg(short = 'd', long, value_name = "BODY", conflicts_with = "input")]
    pub(crate) data: Option<String>,

    /// Read the request body from FILE (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub(crate) input: Option<PathBuf>,

    /// Print the status line and the response headers before the body.
    #[arg(short = 'i', long)]
    pub(crate) include: bool,

    #[command(flatten)]
    pub(crate) store: StoreArg,
}

/// `partner-auth status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// One JSON array of objects (provider, environment, tenant, principal, expires_at,
    /// expires_in_secs, refresh_token, obtained_at, unreadable: why the entry could not be read,
    /// or null; an unreadable entry's other fields but its key are null).
    #[arg(long)]
    pub(crate) json: bool,

    /// Only the counts: entries (and per provider), expired, refresh tokens held, sealed by an
    /// older key, unreadable (one JSON object with --json).
    #[arg(long)]
    pub(crate) counts: bool,

    #[command(flatten)]
    pub(crate) store: StoreArg,
}

/// `partner-auth forget`.
#[derive(Debug, Args)]
pub(crate) struct ForgetArgs {
    /// The provider whose configured principal is forgotten.
    #[arg(value_enum, required_unless_present = "all", conflicts_with = "all")]
    pub(crate) provider: Option<Provider>,

    /// Forget every entry of the store.
    #[arg(long)]
    pub(crate) all: bool,

    #[command(flatten)]
    pub(crate) store: StoreArg,
}

/// `partner-auth emulator`.
#[cfg(feature = "emulator")]
#[derive(Debug, Args)]
pub(crate) struct EmulatorArgs {
    /// The loopback port to listen on (default: PARTNER_AUTH_EMULATOR_PORT, else a free one).
    #[arg(long, value_name = "N")]
    pub(crate) port: Option<u16>,
}

/// `partner-auth completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// The CLI's provider names, which are the facade's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Provider {
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
    /// The facade's kind.
    pub(crate) fn kind(self) -> ProviderKind {
        match self {
            Self::Aerion => ProviderKind::Aerion,
            Self::AuroraUk => ProviderKind::AuroraUk,
            Self::AuroraSolar => ProviderKind::AuroraSolar,
            Self::AuroraSolarSdk => ProviderKind::AuroraSolarSdk,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn help_lists_every_variable_of_every_provider() {
        for kind in ProviderKind::ALL {
            for (_, var) in kind.settings() {
                // A secret's file twin is covered by the one NAME_FILE line.
                let var = var.strip_suffix("_FILE").unwrap_or(var);
                assert!(TOKEN_HELP.contains(var), "{var} missing from the help");
            }
            assert!(
                TOKEN_HELP.contains(&format!("{kind}:"))
                    || TOKEN_HELP.contains(&format!("{kind} ("))
            );
        }
        assert!(TOKEN_HELP.contains("NAME_FILE"));
        assert!(TOKEN_HELP.contains(TIMEOUT_VAR));
        assert!(TOKEN_HELP.contains(partner_auth::STORE_VAR));
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
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
