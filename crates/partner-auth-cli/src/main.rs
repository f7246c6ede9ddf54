//! `partner-auth`: access tokens for Aerion, Aurora UK and Aurora Solar from the shell, as
//! scripts and CI pipelines need them, and one authenticated call to their APIs.
//!
//! ```text
//! partner-auth token <PROVIDER> [--json | --header] [--store FILE|URL]
//! partner-auth api <PROVIDER> <PATH|URL> [-X METHOD] [-H 'Name: value']... [-d BODY | --input FILE] [-i] [--store FILE|URL]
//! partner-auth status [--json] [--counts] [--store FILE|URL]
//! partner-auth forget <PROVIDER> | --all [--store FILE|URL]
//! partner-auth emulator [--port N]
//! partner-auth completions <bash|elvish|fish|powershell|zsh>
//! ```
//!
//! `PROVIDER` is `aerion`, `aurora-uk`, `aurora-solar` or `aurora-solar-sdk` (`api` takes the
//! first three: the Client SDK JWT opens no REST API).
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
//!   `partner-auth token --help`); secrets are never accepted as flags. Empty values count as
//!   unset.
//! - `token`: the access token alone and a newline; with `--json` one line
//!   `{"access_token":…,"token_type":…,"expires_at":"2026-11-22T10:00:00Z"}` (`expires_at` in
//!   RFC 3339 UTC to the second, or `null` when the provider did not say); with `--header` one
//!   line `Authorization: Bearer <token>` (Aurora UK: the header `AURORA_UK_AUTH_HEADER` names).
//! - `api`: one request to the provider's API base (`partner-auth api --help` lists them) through
//!   the library's client: a 401 invalidates the token, fetches a new one and replays the request
//!   once. A full URL is accepted only on that base (scheme, host, port, and under its path);
//!   anything else is refused before a token is fetched. The body goes to stdout: on a terminal
//!   pretty JSON, and any body ends with a newline; otherwise exactly as received. `-i` puts
//!   `HTTP <status>` and the headers first.
//! - `status`: one line per entry of the store (provider, environment, tenant, principal, time
//!   to expiry, whether a refresh token is held, when the token was obtained, and in a sealed
//!   store the fingerprint of the key that sealed it, and whether that is an older key);
//!   `--json` prints one array; `--counts` only the counts (entries per provider, expired,
//!   refresh tokens held, sealed by an older key, unreadable; one object with `--json`). Never a
//!   secret, not even a prefix. An entry whose state cannot
//!   be read (sealed under another key, damaged) is listed by its key with the reason
//!   (`unreadable`), the others as usual, and the run then exits with that reason's status (2
//!   for a store error), naming the first such entry.
//! - `forget <provider>`: removes the configured principal's entry (under the store's lock for
//!   it, the file rewritten atomically), its refresh token with it; `--all` removes every entry,
//!   unreadable ones included.
//!   The provider's variables say which principal it is, as for `token`.
//! - `emulator`: the built-in emulator on 127.0.0.1 (`--port`, else
//!   `PARTNER_AUTH_EMULATOR_PORT`, else a free port) until Ctrl-C or SIGTERM, after printing
//!   `export` lines (emulator-only credentials) for every command.
//! - `completions`: the completion script for a shell, on stdout.
//! - `PARTNER_AUTH_TIMEOUT`: seconds each request may take (1 to 86400; default 30).
//! - `--store FILE` (default `PARTNER_AUTH_STORE`): the file store (mode 0600, atomic writes, a
//!   cross-process lock): a fresh token is served with no request and no TLS set-up at all; an
//!   expired one is renewed with the stored refresh token where the provider has one. `token`
//!   and `api` create a missing folder for it (mode 0700, missing parents too) and say on stderr
//!   which; `status` and `forget` on a file that does not exist say `no store at PATH` and exit
//!   2 (a path naming nothing is most often not the store meant: a `forget` that succeeded on it
//!   would leave the real store's refresh tokens in place).
//!   `--store redis://HOST:PORT/DB` (or `rediss://` for TLS, `redis+unix:///PATH`,
//!   `redis+cluster://HOST:PORT,HOST:PORT`, `valkey` for `redis`, any case) keeps the state in
//!   Redis instead, shared by every host that names it. Any other `word:` prefix, and
//!   `redis:` without `//`, is refused (exit 2), never taken as a file. Entries, in a file or in
//!   Redis, are sealed under `PARTNER_AUTH_STORE_KEY` (32 bytes, base64) when that is set; a
//!   list (current key first, then older ones, separated by commas or blanks) rotates it. The
//!   Redis password comes from `PARTNER_AUTH_REDIS_PASSWORD` or `PARTNER_AUTH_REDIS_PASSWORD_FILE`;
//!   one inside `--store` is refused (argv is visible to every user of the host), while one in a
//!   `PARTNER_AUTH_STORE` URL is accepted when neither variable is set.
//!   `PARTNER_AUTH_REDIS_ACCEPT_EVICTION=1` accepts a Redis that may evict keys.
//!   What Redis refuses (a wrong password, an ACL, a TLS certificate not vouched for by the
//!   roots in `SSL_CERT_FILE`, OOM, a cluster named as one server) exits 2 naming the URL,
//!   nothing fetched. Redis unreachable: a password or client-credentials grant is fetched
//!   without it, and the token printed with one warning line on stderr (not shared); a
//!   refresh-token-only or session-token principal exits 4 naming Redis.
//! - Every secret variable has a `_FILE` twin naming a file that holds it
//!   (`AERION_PASSWORD_FILE`, `AURORA_UK_CLIENT_SECRET_FILE`, `PARTNER_AUTH_STORE_KEY_FILE`,
//!   …; line endings at its end dropped); setting both is a configuration error (exit 2).
//! - stderr: one line, `partner-auth: <provider>: <reason>` (or `partner-auth: <reason>`), never
//!   a secret, never an argument.
//!
//! # Exit status
//!
//! | status | meaning | commands |
//! | --- | --- | --- |
//! | 0 | success: the token, the body of a 2xx answer, the entries, the script printed; the entry (or nothing) forgotten; the emulator stopped by a signal | all |
//! | 2 | usage or configuration error, the store included (`status` and `forget` need one that exists; `status`, after listing, when an entry could not be read); a URL off the provider's API. Nothing was sent, except for an `aurora-solar-sdk` user found missing with no names to invite them | all |
//! | 3 | the provider rejected the credentials or the single-use session token | `token`, `api` |
//! | 4 | unreachable, timed out, rate limited past the retries, a malformed or oversized answer; the store's lock held by another process for too long; stdout closed; the emulator's port taken | `token`, `api`, `forget`, `emulator`; stdout closed: all |
//! | 5 | the token was printed (`api`: the answer was), but the new state (a rotated refresh token) could not be saved to the store; the line names the store | `token`, `api` |
//! | 6 | the API answered with an HTTP error status (after the one 401 retry and any transient retries): a 4xx answer's body is still printed; for a 3xx, or a 5xx, 408 or 429 answer that ends the request, nothing is printed and the error line names the status | `api` |
//!
//! # Assumptions where the SPEC is silent
//!
//! - Usage errors are one line too, exit 2, naming the offending argument by its position
//!   ("argument 2 is not a valid value for '<PROVIDER>'"), never quoting it: a secret pasted in
//!   the wrong place stays off the terminal. A near miss of a command, flag or provider name is
//!   grammar, not a secret: it is quoted with clap's "did you mean" (`argument 2 ('areion') …;
//!   did you mean 'aerion'?`). Only what may be a value gets the hint that secrets and settings
//!   come from environment variables. `--help` and `--version` print to stdout, exit 0.
//! - `PARTNER_AUTH_TIMEOUT` is capped at one day so no deadline overflows; the whole load may
//!   take twelve request timeouts (at most four requests, each tried three times; 30 s each when
//!   unset) or 60 s, whichever is longer. A request that timed out is reported with the limit
//!   of each attempt, the attempts made and the time they took, naming the variable.
//! - `api` with a body and no `-X` is a `POST`; a body that parses as JSON is sent as
//!   `application/json` unless `-H` sets a `Content-Type`. A method that is not idempotent
//!   (`POST`, `PATCH`) is repeated after a 5xx or a timeout only when it never reached the server.

mod api;
mod args;
#[cfg(feature = "emulator")]
mod emulator;
mod exit;
mod forget;
mod setup;
mod status;
mod token;
mod usage;

use std::ffi::OsString;
use std::future::Future;
use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};
use crate::exit::{EXIT_OK, EXIT_UNAVAILABLE, Failure};

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(err) => return usage::report(&err, &argv),
    };
    let lookup = |name: &str| std::env::var(name).ok();
    let provider = match &cli.command {
        Command::Token(args) => Some(args.provider.kind()),
        Command::Api(args) => Some(args.provider.kind()),
        Command::Forget(args) => args.provider.map(|p| p.kind()),
        _ => None,
    };
    if let Err(failure) = check_utf8(provider) {
        return failure.report();
    }
    match cli.command {
        Command::Token(args) => {
            let kind = args.provider.kind();
            match block_on(token::run(&args, &lookup)) {
                Ok(printed) => print_then(
                    format!("{}\n", printed.line).as_bytes(),
                    Some(kind),
                    printed.warning.as_deref(),
                    printed.unsaved,
                ),
                Err(failure) => failure.report(),
            }
        }
        Command::Api(args) => {
            let kind = args.provider.kind();
            match block_on(api::run(&args, &lookup)) {
                Ok(answer) => print_then(
                    &answer.stdout,
                    Some(kind),
                    answer.warning.as_deref(),
                    answer.failure,
                ),
                Err(failure) => failure.report(),
            }
        }
        Command::Status(args) => {
            let now = partner_auth::token_provider::system_clock().now();
            match block_on(status::run(&args, &lookup, now)) {
                Ok(listing) => print_then(listing.stdout.as_bytes(), None, None, listing.failure),
                Err(failure) => failure.report(),
            }
        }
        Command::Forget(args) => match block_on(forget::run(&args, &lookup)) {
            Ok(text) => print(text.as_bytes(), args.provider.map(|p| p.kind())),
            Err(failure) => failure.report(),
        },
        #[cfg(feature = "emulator")]
        Command::Emulator(args) => match block_on(emulator::run(&args, &lookup)) {
            Ok(()) => ExitCode::from(EXIT_OK),
            Err(failure) => failure.report(),
        },
        Command::Completions(args) => {
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "partner-auth", &mut script);
            print(&script, None)
        }
    }
}

/// Prints `output` (for `kind`, if any), then `warning`: the exit code of the printing, or,
/// once the output is out, the failure the command `deferred` (a state not saved, a request
/// or a store that failed after the rest was shown).
fn print_then(
    output: &[u8],
    kind: Option<partner_auth::ProviderKind>,
    warning: Option<&str>,
    deferred: Option<Failure>,
) -> ExitCode {
    let printed = print(output, kind);
    if let Some(kind) = kind {
        warn(kind, warning);
    }
    match deferred {
        Some(failure) if printed == ExitCode::from(EXIT_OK) => failure.report(),
        _ => printed,
    }
}

/// Prints `warning` (one line) on stderr, naming the provider.
fn warn(kind: partner_auth::ProviderKind, warning: Option<&str>) {
    if let Some(warning) = warning {
        eprintln!("partner-auth: {kind}: {}", exit::one_line(warning));
    }
}

/// Refuses, by name and before anything is sent, a variable the command reads that is set but
/// not UTF-8: read as unset it would be reported as missing, or slip past a check (only one of
/// `AERION_COMPANY_URL` and `AERION_ORIGIN`).
fn check_utf8(provider: Option<partner_auth::ProviderKind>) -> Result<(), Failure> {
    let env = partner_auth::token_provider::ProcessEnv::new();
    for name in [
        args::TIMEOUT_VAR,
        partner_auth::STORE_VAR,
        partner_auth::STORE_KEY_VAR,
        partner_auth::STORE_KEY_FILE_VAR,
        partner_auth::REDIS_PASSWORD_VAR,
        partner_auth::REDIS_PASSWORD_FILE_VAR,
        partner_auth::REDIS_ACCEPT_EVICTION_VAR,
        "AURORA_UK_API_URL",
        "AURORA_UK_AUTH_HEADER",
    ] {
        env.get(name);
    }
    if let Some(kind) = provider {
        for (_, name) in kind.settings() {
            env.get(name);
        }
    }
    env.check()
        .map_err(|err| Failure::from_error(provider, &err))
}

/// Runs `future` on a current-thread runtime and returns its output; a runtime that cannot
/// start is exit 4.
fn block_on<T>(future: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Failure::new(
                EXIT_UNAVAILABLE,
                None,
                format!("cannot start the async runtime: {e}"),
            )
        })?;
    let result = runtime.block_on(future);
    // A Redis lock dropped without a save is released on a task of its own: let it reach Redis
    // (briefly), or the next run waits out a lease nobody holds.
    runtime.block_on(partner_auth::redis::settle(
        std::time::Duration::from_millis(500),
    ));
    // The cache may have left tasks behind (a store write, a refresh); none of them may keep
    // the process alive once the answer is known.
    runtime.shutdown_background();
    result
}

/// Writes `bytes` to stdout; a closed pipe is exit 4.
fn print(bytes: &[u8], kind: Option<partner_auth::ProviderKind>) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => Failure::new(
            EXIT_UNAVAILABLE,
            kind,
            format!("cannot write to stdout: {e}"),
        )
        .report(),
    }
}
