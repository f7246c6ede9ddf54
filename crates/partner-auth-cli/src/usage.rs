//! Usage errors as one line that never echoes an argument that could be a value: a secret pasted
//! in the wrong place (as the provider, as a flag or its value, as a command) must not reach the
//! terminal or a CI log. The line names the argument by its position and says what would fit
//! there, from the command's own definitions only. A near miss of a name (clap's "did you mean")
//! is grammar, and is quoted.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::CommandFactory;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::args::Cli;
use crate::exit::{EXIT_CONFIG, EXIT_OK};

/// Prints a clap outcome: help and version go to stdout as clap writes them (exit 0); a usage
/// error becomes one line on stderr, exit 2.
pub(crate) fn report(err: &clap::Error, argv: &[OsString]) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::from(EXIT_OK)
        }
        _ => {
            eprintln!("partner-auth: {}", message(err, argv));
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// The one line for a usage error, built from the error's kind and the parts of its context
/// that come from the command's definitions (argument names, valid values, suggestions).
pub(crate) fn message(err: &clap::Error, argv: &[OsString]) -> String {
    let string = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let strings = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        _ => Vec::new(),
    };
    let quoted = |names: Vec<String>| {
        names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // The user's own text, used only to find its position, never printed.
    let typed = match err.kind() {
        ErrorKind::UnknownArgument => string(ContextKind::InvalidArg),
        ErrorKind::InvalidSubcommand => string(ContextKind::InvalidSubcommand),
        _ => string(ContextKind::InvalidValue),
    };
    // clap's suggestions: a command, flag or provider name close to what was typed.
    let suggested = {
        let mut s = strings(ContextKind::SuggestedArg);
        s.extend(strings(ContextKind::SuggestedValue));
        s.extend(strings(ContextKind::SuggestedSubcommand));
        s
    };
    let suggestion = if suggested.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", quoted(suggested.clone()))
    };
    // A near miss of a name is grammar, not a secret, and is echoed; anything else is named by
    // its position only.
    let echoed = typed
        .as_deref()
        .filter(|typed| is_grammar(typed, &suggested))
        .map(|typed| format!(" ('{typed}')"))
        .unwrap_or_default();
    let which = typed
        .as_deref()
        .and_then(|typed| position(argv, typed))
        .map_or_else(
            || "an argument".to_owned(),
            |n| format!("argument {n}{echoed}"),
        );
    // An argument's name as the command defines it (`<PROVIDER>`, `--port <N>`).
    let arg = string(ContextKind::InvalidArg).unwrap_or_else(|| "it".to_owned());
    let commands = || {
        Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .filter(|name| name != "help")
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = match err.kind() {
        ErrorKind::InvalidValue if typed.as_deref() == Some("") => {
            format!("'{arg}' needs a value")
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let valid = strings(ContextKind::ValidValue);
            let valid = if valid.is_empty() {
                String::new()
            } else {
                format!(" (one of {})", valid.join(", "))
            };
            format!("{which} is not a valid value for '{arg}'{valid}{suggestion}")
        }
        // A near miss of a flag gets the flag; anything else may be a value or a setting given
        // as a flag, which have their place in the environment.
        ErrorKind::UnknownArgument if suggested.is_empty() => format!(
            "{which} is not expected here; secrets and settings come from environment variables"
        ),
        ErrorKind::UnknownArgument => format!("{which} is not expected here{suggestion}"),
        ErrorKind::InvalidSubcommand if suggested.is_empty() => {
            format!("{which} is not a command; the commands are {}", commands())
        }
        ErrorKind::InvalidSubcommand => format!(
            "{which} is not a command{suggestion} The commands are {}",
            commands()
        ),
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            format!("a command is required: {}", commands())
        }
        ErrorKind::NoEquals
        | ErrorKind::TooManyValues
        | ErrorKind::TooFewValues
        | ErrorKind::WrongNumberOfValues => {
            format!("{which}: '{arg}' does not take the values given")
        }
        ErrorKind::ArgumentConflict => {
            let prior = strings(ContextKind::PriorArg);
            if prior.is_empty() {
                format!("'{arg}' cannot be used with the other arguments given")
            } else {
                format!("'{arg}' cannot be used with {}", quoted(prior))
            }
        }
        ErrorKind::MissingRequiredArgument => {
            format!("missing {}", quoted(strings(ContextKind::InvalidArg)))
        }
        ErrorKind::InvalidUtf8 => "an argument is not valid UTF-8".to_owned(),
        _ => "the arguments are not valid".to_owned(),
    };
    format!("{text} (see `partner-auth {}--help`)", help_for(argv))
}

/// Whether `typed` may be echoed: clap found a name close to it, and it is short and holds no
/// `=` (so no value rides along with a mistyped flag).
fn is_grammar(typed: &str, suggested: &[String]) -> bool {
    !suggested.is_empty()
        && typed.len() <= 32
        && typed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `api ` when the first argument names a command, so the hint points at its help.
fn help_for(argv: &[OsString]) -> String {
    let Some(first) = argv.get(1).and_then(|a| a.to_str()) else {
        return String::new();
    };
    match Cli::command().find_subcommand(first) {
        Some(command) => format!("{} ", command.get_name()),
        None => String::new(),
    }
}

/// The position (1 for the first argument after the program) of the argument that holds
/// `typed`: whole, as `--flag=typed`, or as a short flag's attached value (`-Xtyped`).
fn position(argv: &[OsString], typed: &str) -> Option<usize> {
    let args: Vec<String> = argv
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let exact = args.iter().position(|a| a == typed);
    let attached = || {
        args.iter().position(|a| {
            a.starts_with('-')
                && (a.ends_with(&format!("={typed}"))
                    || (!typed.is_empty() && a.len() > typed.len() && a.ends_with(typed)))
        })
    };
    let within = || {
        (!typed.is_empty())
            .then(|| args.iter().position(|a| a.contains(typed)))
            .flatten()
    };
    exact.or_else(attached).or_else(within).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn usage(args: &[&str]) -> String {
        let argv: Vec<OsString> = std::iter::once("partner-auth")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let err = Cli::try_parse_from(&argv).expect_err("a usage error");
        message(&err, &argv)
    }

    #[test]
    fn generated_values_in_every_position_are_never_echoed() {
        // A small LCG: deterministic, no dependency.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed >> 33
        };
        let alphabet: Vec<char> = ('a'..='z').chain('A'..='Z').chain('0'..='9').collect();
        let templates: [&[&str]; 10] = [
            &["token", "{}"],
            &["{}"],
            &["token", "aerion", "--json={}"],
            &["token", "aerion", "--{}"],
            &["token", "aerion", "-{}"],
            &["token", "aerion", "--store", "f", "{}"],
            &["api", "{}", "/x"],
            &["api", "aerion", "/x", "{}"],
            &["completions", "{}"],
            &["emulator", "--port", "{}"],
        ];
        for _ in 0..50 {
            let len = 10 + (next() % 20) as usize;
            let secret: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            for template in templates {
                let args: Vec<String> = template.iter().map(|a| a.replace("{}", &secret)).collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let argv: Vec<OsString> = std::iter::once("partner-auth")
                    .chain(args.iter().copied())
                    .map(OsString::from)
                    .collect();
                let Err(err) = Cli::try_parse_from(&argv) else {
                    continue; // a generated value that happens to be valid
                };
                let line = message(&err, &argv);
                // Not the value, nor any 8-character piece of it.
                let chars: Vec<char> = secret.chars().collect();
                for piece in chars.windows(8) {
                    let piece: String = piece.iter().collect();
                    assert!(!line.contains(&piece), "{args:?}: {line}");
                }
            }
        }
    }

    #[test]
    fn the_line_names_the_position_and_never_the_text() {
        let secret = "s3cr3t-Value";
        let cases: [(&[&str], &str); 7] = [
            (
                &["token", secret],
                "argument 2 is not a valid value for '<PROVIDER>'",
            ),
            (&[secret], "argument 1 is not a command"),
            (
                &["token", "aerion", "--json=s3cr3t-Value"],
                "argument 3: '--json'",
            ),
            (
                &["token", "aerion", "--s3cr3t-Value"],
                "argument 3 is not expected",
            ),
            (
                &["api", "aerion", "/x", "-Ys3cr3t-Value"],
                "argument 4 is not expected",
            ),
            (
                &["emulator", "--port", secret],
                "argument 3 is not a valid value for '--port <N>'",
            ),
            (
                &["token", "aerion", "x", secret],
                "argument 3 is not expected",
            ),
        ];
        for (args, expected) in cases {
            let line = usage(args);
            assert!(!line.contains("s3cr3t"), "{args:?}: {line}");
            assert!(line.contains(expected), "{args:?}: {line}");
            assert!(!line.contains('\n'));
        }
        let line = usage(&["token", "aerio"]);
        assert!(
            line.contains("one of aerion, aurora-uk, aurora-solar, aurora-solar-sdk"),
            "{line}"
        );
        assert!(
            line.ends_with("(see `partner-auth token --help`)"),
            "{line}"
        );
        let line = usage(&[]);
        assert!(
            line.starts_with(
                "a command is required: token, api, status, forget, emulator, completions"
            ),
            "{line}"
        );
        let line = usage(&["token", "aerion", "--json", "--header"]);
        assert!(line.contains("cannot be used with"), "{line}");
        let line = usage(&["token", "aerion", "--store"]);
        assert!(
            line.starts_with("'--store <FILE|URL>' needs a value"),
            "{line}"
        );
        let line = usage(&["api", "aerion"]);
        assert!(line.starts_with("missing"), "{line}");
    }
}
