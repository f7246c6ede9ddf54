//! What reaches a terminal or a log from a provider's own words, decided in one place.
//!
//! The rule: provider words are quoted only from known fields ([`ProviderWords`]), cut short,
//! stripped of control and invisible characters, and any run of 8 or more characters that also
//! occurs in a secret (or in its percent- or base64-encoded form), compared without regard to
//! case, white space or invisible characters, is redacted; a secret shorter than 8 characters is
//! redacted wherever it occurs whole, compared the same way.
//!
//! [`ProviderWords`]: crate::http::ProviderWords

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

use crate::Secret;

/// The longest piece of provider text an error keeps.
pub(crate) const MAX_PROVIDER_TEXT: usize = 300;

/// What replaces a secret found in provider text.
const REDACTED: &str = "[redacted]";

/// Runs this long that also occur in a secret are redacted.
const RUN: usize = 8;

/// `text` with every part that echoes any of `secrets` replaced by `[redacted]`, by the rule of
/// this module: a run of 8 or more characters shared with a secret (or its percent- or
/// base64-encoded form), compared case-, space- and invisible-character-insensitively; a
/// shorter secret wherever it occurs whole. Empty secrets are skipped.
///
/// Use it on any text a provider wrote (an error code, an explanation) before it goes into an
/// error or a log line: a server that echoes the credential it refused would otherwise put it
/// there. [`Error::rejected_scrubbed`](crate::Error::rejected_scrubbed) does this for
/// rejections.
pub fn scrub_secrets(text: &str, secrets: &[&Secret]) -> String {
    let patterns = Patterns::new(secrets);
    if patterns.is_empty() {
        return text.to_owned();
    }
    // The text folded, each folded character remembering the original one it came from.
    let chars: Vec<char> = text.chars().collect();
    let mut folded: Vec<char> = Vec::with_capacity(chars.len());
    let mut origin: Vec<usize> = Vec::with_capacity(chars.len());
    for (i, c) in chars.iter().enumerate() {
        if ignored(*c) {
            continue;
        }
        for lower in c.to_lowercase() {
            folded.push(lower);
            origin.push(i);
        }
    }
    let mut marked = vec![false; chars.len()];
    let mut mark = |from: usize, len: usize| {
        for k in from..from + len {
            marked[origin[k]] = true;
        }
    };
    if folded.len() >= RUN {
        for start in 0..=folded.len() - RUN {
            if patterns.runs.contains(&folded[start..start + RUN]) {
                mark(start, RUN);
            }
        }
    }
    for short in &patterns.whole {
        if short.len() > folded.len() {
            continue;
        }
        for start in 0..=folded.len() - short.len() {
            if folded[start..start + short.len()] == short[..] {
                mark(start, short.len());
            }
        }
    }
    // Ignored characters between two marked ones belong to the echo (a split secret).
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !marked[i] {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut end = i + 1;
        loop {
            let mut next = end;
            while next < chars.len() && ignored(chars[next]) && !marked[next] {
                next += 1;
            }
            if next < chars.len() && marked[next] {
                end = next + 1;
            } else {
                break;
            }
        }
        out.push_str(REDACTED);
        i = end;
    }
    out
}

/// Provider text fit for an error message: secrets scrubbed, control and invisible characters
/// dropped, length capped (after the scrub, so the cap never leaves half a secret behind).
pub(crate) fn clean_provider_text(text: &str, secrets: &[&Secret]) -> String {
    quote_provider_text(&scrub_secrets(text, secrets), MAX_PROVIDER_TEXT)
}

/// A provider's word fit to be quoted: control and invisible characters dropped (an ESC or BEL
/// sequence never reaches a terminal), at most `max` characters, trimmed.
pub(crate) fn quote_provider_text(text: &str, max: usize) -> String {
    let visible: Vec<char> = text
        .chars()
        .filter(|c| !c.is_control() && !is_invisible_format(*c))
        .collect();
    let mut out: String = visible.iter().take(max).collect();
    if visible.len() > max {
        out.push('…');
    }
    out.trim().to_owned()
}

/// Characters the comparison skips: white space (no-break spaces included), control characters
/// and invisible format characters.
fn ignored(c: char) -> bool {
    c.is_whitespace() || c.is_control() || is_invisible_format(c)
}

/// Unicode format characters (category Cf) that render as nothing.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
    )
}

/// What the text is searched for.
struct Patterns {
    /// Every 8-character run of every folded form of a secret 8 or more characters long.
    runs: HashSet<Vec<char>>,
    /// Folded forms shorter than that, matched whole.
    whole: Vec<Vec<char>>,
}

impl Patterns {
    fn new(secrets: &[&Secret]) -> Self {
        let mut runs = HashSet::new();
        let mut whole = Vec::new();
        for secret in secrets {
            let raw = secret.expose_secret();
            if raw.is_empty() {
                continue;
            }
            for form in forms(raw) {
                let form: Vec<char> = form
                    .chars()
                    .filter(|c| !ignored(*c))
                    .flat_map(char::to_lowercase)
                    .collect();
                if form.len() >= RUN {
                    runs.extend(form.windows(RUN).map(<[char]>::to_vec));
                } else if !form.is_empty() {
                    whole.push(form);
                }
            }
        }
        Self { runs, whole }
    }

    fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.whole.is_empty()
    }
}

/// A secret as a server may echo it: as it is, percent-encoded as in a form body or a query,
/// and base64-encoded at each of the three alignments it can have inside a longer encoded text
/// (a Basic header's `id:secret`). Encoded forms of secrets shorter than 8 bytes are left out:
/// their few characters would match ordinary words.
fn forms(raw: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(raw.as_bytes()).collect();
    let percent = form.replace('+', "%20");
    let mut forms = vec![raw.to_owned(), form, percent];
    let bytes = raw.as_bytes();
    if bytes.len() >= RUN {
        for skip in 0..3 {
            forms.push(URL_SAFE.encode(&bytes[skip..]));
            forms.push(STANDARD.encode(&bytes[skip..]));
        }
    }
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_short_and_long_runs() {
        let key = Secret::new("sk_key");
        assert_eq!(scrub_secrets("a sk_key b", &[&key]), "a [redacted] b");
        assert_eq!(scrub_secrets("a SK_KEY b", &[&key]), "a [redacted] b");
        let empty = Secret::new("");
        assert_eq!(scrub_secrets("nothing here", &[&empty]), "nothing here");
        let pw = Secret::new("correct-horse-battery");
        assert_eq!(
            scrub_secrets("pw correct-horse-batter is wrong", &[&pw]),
            "pw [redacted] is wrong"
        );
        assert_eq!(
            scrub_secrets("pw CORRECT-HORSE-\u{a0}BATTERY is wrong", &[&pw]),
            "pw [redacted] is wrong"
        );
        // Seven characters in common are not an echo.
        assert_eq!(scrub_secrets("correct guess", &[&pw]), "correct guess");
    }

    #[test]
    fn base64_echoes_at_any_alignment() {
        let pw = Secret::new("correct-horse-battery-staple");
        for prefix in ["", "u:", "us:", "use:"] {
            let echoed = STANDARD.encode(format!("{prefix}correct-horse-battery-staple"));
            let shown = scrub_secrets(&format!("header {echoed} refused"), &[&pw]);
            assert!(shown.contains(REDACTED), "{shown}");
            let middle = &echoed[echoed.len() / 2 - 4..echoed.len() / 2 + 4];
            assert!(!shown.contains(middle), "{prefix}: {shown}");
        }
    }

    #[test]
    fn quotes_lose_control_characters_and_length() {
        assert_eq!(quote_provider_text("a\u{1b}[31mb\u{7}", 40), "a[31mb");
        assert_eq!(quote_provider_text(&"x".repeat(50), 40).chars().count(), 41);
    }
}
