//! Exit statuses and the one line a failure prints.

use std::process::ExitCode;

use partner_auth::token_provider::error_chain;
use partner_auth::{Error, ProviderKind};

/// Success.
pub(crate) const EXIT_OK: u8 = 0;
/// Usage or configuration error (the store included); nothing was sent.
pub(crate) const EXIT_CONFIG: u8 = 2;
/// The provider rejected the credentials or the single-use token.
pub(crate) const EXIT_REJECTED: u8 = 3;
/// Unreachable, timed out, rate limited, malformed or oversized; anything else.
pub(crate) const EXIT_UNAVAILABLE: u8 = 4;
/// The token was printed (or the API answered), but the new state (a rotated refresh token)
/// could not be saved to the store.
pub(crate) const EXIT_NOT_SAVED: u8 = 5;
/// `api`: the API answered with an HTTP error status after the retries.
pub(crate) const EXIT_HTTP_ERROR: u8 = 6;

/// A command that did not succeed: its exit status and the line that says why.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    provider: Option<ProviderKind>,
    message: String,
}

impl Failure {
    /// A failure with this status and message, about `provider` when there is one.
    pub(crate) fn new(
        code: u8,
        provider: Option<ProviderKind>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code,
            provider,
            message: message.into(),
        }
    }

    /// Exit 5: what was asked for was done, but `err` kept the new state out of the store.
    pub(crate) fn not_saved(provider: ProviderKind, what: &str, err: &Error) -> Self {
        Self::new(
            EXIT_NOT_SAVED,
            Some(provider),
            format!(
                "{what}, but the new state could not be saved: {}",
                error_chain(err)
            ),
        )
    }

    /// The library's `err` while working for `provider` (or for no provider in particular).
    pub(crate) fn from_error(provider: Option<ProviderKind>, err: &Error) -> Self {
        let mut message = error_chain(err);
        if matches!(err, Error::TimedOut { .. }) {
            // The variable that sets each attempt's limit.
            message.push_str(&format!(" ({})", crate::args::TIMEOUT_VAR));
        }
        Self::new(exit_code(err), provider, message)
    }

    /// The exit status.
    pub(crate) fn code(&self) -> u8 {
        self.code
    }

    /// The reason, without the provider.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// Prints `partner-auth: [<provider>: ]<reason>` on stderr as one line and gives the status.
    pub(crate) fn report(&self) -> ExitCode {
        let message = one_line(&self.message);
        match self.provider {
            Some(kind) => eprintln!("partner-auth: {kind}: {message}"),
            None => eprintln!("partner-auth: {message}"),
        }
        ExitCode::from(self.code)
    }
}

/// The exit status for a failure of the library (SPEC section 5).
pub(crate) fn exit_code(err: &Error) -> u8 {
    match err {
        Error::Config { .. } | Error::Store { .. } => EXIT_CONFIG,
        Error::Rejected { .. } | Error::UserAction { .. } => EXIT_REJECTED,
        // The store's lock held by another process for too long: transient, as documented.
        Error::StoreBusy { .. } => EXIT_UNAVAILABLE,
        // Transport, Timeout, RateLimited, Status, Malformed, TooLarge, and whatever a later
        // core adds: the provider could not be used right now.
        _ => EXIT_UNAVAILABLE,
    }
}

/// Whitespace runs (newlines included) folded into single spaces, so an error is one line, and
/// every other control or text-direction character escaped (`\u{1b}`): an error can quote what
/// a store holds, and that text must not drive the terminal.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace()
        .map(|word| {
            word.chars()
                .map(|c| {
                    if c.is_control()
                        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
                    {
                        c.escape_unicode().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn exit_codes_follow_the_variant() {
        assert_eq!(exit_code(&Error::config("X", "is required")), 2);
        assert_eq!(exit_code(&Error::store("cannot read", None)), 2);
        assert_eq!(exit_code(&Error::rejected(Some(401), None, None)), 3);
        assert_eq!(exit_code(&Error::user_action("get a new session token")), 3);
        assert_eq!(exit_code(&Error::rate_limited(None)), 4);
        assert_eq!(exit_code(&Error::transport("refused")), 4);
        assert_eq!(exit_code(&Error::Timeout(Duration::from_secs(1))), 4);
        assert_eq!(exit_code(&Error::http_status(503)), 4);
        assert_eq!(
            exit_code(&Error::unavailable(503, Duration::from_secs(30))),
            4
        );
        assert_eq!(exit_code(&Error::malformed("not JSON")), 4);
        assert_eq!(exit_code(&Error::too_large(1)), 4);
        assert_eq!(
            exit_code(&Error::store_busy("lock held for more than 30s")),
            4
        );
    }

    #[test]
    fn errors_fold_into_one_line() {
        assert_eq!(one_line("a\n  b\r\nc "), "a b c");
        assert_eq!(
            one_line("key \u{1b}[2Jx\u{202e}y\u{7}"),
            "key \\u{1b}[2Jx\\u{202e}y\\u{7}"
        );
    }
}
