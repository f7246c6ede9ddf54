//! What reaches a terminal: provider words that echo a secret in a disguise, tried with
//! generated secrets. The rule: any run of 8 or more characters that also occurs in a secret
//! (or in its percent- or base64-encoded form), compared without regard to case, white space or
//! invisible characters, is redacted; shorter secrets are redacted where they occur whole.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use token_provider::{Error, Secret};

/// Lowercased, with white space and invisible characters removed.
fn folded(s: &str) -> String {
    s.chars()
        .filter(|c| {
            !c.is_whitespace()
                && !c.is_control()
                && !matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}')
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Panics when `shown` holds an 8-character run of `secret` (folded).
fn assert_no_run(shown: &str, secret: &str) {
    let shown = folded(shown);
    let secret: Vec<char> = folded(secret).chars().collect();
    for window in secret.windows(8) {
        let run: String = window.iter().collect();
        assert!(!shown.contains(&run), "{run:?} leaked in {shown:?}");
    }
}

fn echo(description: &str, secret: &Secret) -> String {
    let e = Error::rejected_scrubbed(
        Some(400),
        Some("invalid_grant"),
        Some(description),
        &[secret],
    );
    format!("{e} {e:?}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn disguised_echoes_are_redacted(secret in "[A-Za-z0-9_@!.-]{12,40}") {
        let key = Secret::new(secret.clone());
        let minus_last = &secret[..secret.len() - 1];
        let split = secret.len() / 2;
        let nbsp = format!("{}\u{00A0}{}", &secret[..split], &secret[split..]);
        let b64 = STANDARD.encode(&secret);
        for disguise in [
            secret.clone(),
            minus_last.to_owned(),
            secret.to_uppercase(),
            secret.to_lowercase(),
            nbsp,
            format!("{} {}", &secret[..split], &secret[split..]),
        ] {
            let shown = echo(&format!("the password {disguise} is wrong"), &key);
            assert_no_run(&shown, &secret);
            prop_assert!(shown.contains("[redacted]"), "{}", shown);
        }
        let shown = echo(&format!("bad credentials {b64}"), &key);
        assert_no_run(&shown, &b64);
        let shown = echo(&format!("bad basic header dXNlcjp{}", STANDARD.encode(format!("user:{secret}"))), &key);
        assert_no_run(&shown, &STANDARD.encode(format!("user:{secret}"))[8..]);
    }

    #[test]
    fn words_unrelated_to_the_secret_survive(secret in "[0-9]{16,24}") {
        let key = Secret::new(secret);
        let shown = echo("the password is wrong for this account", &key);
        prop_assert!(shown.contains("the password is wrong for this account"), "{}", shown);
    }
}

#[test]
fn control_sequences_never_reach_a_terminal() {
    let e = Error::rejected(
        Some(400),
        Some("bad\u{1b}[31m"),
        Some("ring\u{7} the bell\u{1b}]0;title\u{7}"),
    );
    let shown = e.to_string();
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
}
