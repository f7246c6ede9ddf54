//! The key layout: a principal's Redis keys, and the principal a key under the prefix belongs
//! to (for the listing).
//!
//! Under the prefix `P`, the store key `K` has `P{T}:e:K` (its entry) and `P{T}:l:K` (its lock),
//! where `T` is the first 64 bits of SHA-256 of `K` in hex. `{T}` is the Redis Cluster hash
//! tag: never empty and never holding a brace, whatever `K` holds, so a principal's keys always
//! share one slot (the prefix holds no brace: the builder refuses one).

use sha2::{Digest, Sha256};
use token_provider::StoreKey;

/// The Redis keys of one principal.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    pub(crate) entry: String,
    pub(crate) lock: String,
    /// The keys a pre-release build wrote for the same principal (`P e:K`, `P f:K`, `P l:K`):
    /// never read, removed with the entry.
    pub(crate) earlier: [String; 3],
}

impl Names {
    pub(crate) fn new(prefix: &str, key: &StoreKey) -> Self {
        let (tag, key) = (hash_tag(key), key.as_str());
        Self {
            entry: format!("{prefix}{{{tag}}}:e:{key}"),
            lock: format!("{prefix}{{{tag}}}:l:{key}"),
            earlier: ["e", "f", "l"].map(|kind| format!("{prefix}{kind}:{key}")),
        }
    }
}

/// What a key under the prefix is to the principal it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Entry,
    Lock,
    /// A key of the layout before hash tags.
    Earlier,
}

/// The principal `name` (a key under `prefix`) belongs to, and what it is to it; `None` for a
/// key no build of this store writes.
pub(crate) fn parse(prefix: &str, name: &str) -> Option<(StoreKey, Role)> {
    let rest = name.strip_prefix(prefix)?;
    if let Some(tagged) = rest.strip_prefix('{') {
        let (tag, rest) = tagged.split_at_checked(TAG_LEN)?;
        let (role, key) = match rest.get(..4)? {
            "}:e:" => (Role::Entry, &rest[4..]),
            "}:l:" => (Role::Lock, &rest[4..]),
            _ => return None,
        };
        let key = StoreKey::from_stored(key);
        return (hash_tag(&key) == tag).then_some((key, role));
    }
    let (kind, key) = rest.split_at_checked(2)?;
    matches!(kind, "e:" | "f:" | "l:").then(|| (StoreKey::from_stored(key), Role::Earlier))
}

const TAG_LEN: usize = 16;

fn hash_tag(key: &StoreKey) -> String {
    Sha256::digest(key.as_str().as_bytes())[..TAG_LEN / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `text` with Redis glob characters escaped, for `SCAN MATCH`.
pub(crate) fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principals_keys_parse_back_to_it() {
        for key in ["a|b|c|d", "{x}|}|{", "", "e:f:"] {
            let key = StoreKey::from_stored(key);
            let names = Names::new("p:", &key);
            assert_eq!(parse("p:", &names.entry), Some((key.clone(), Role::Entry)));
            assert_eq!(parse("p:", &names.lock), Some((key.clone(), Role::Lock)));
            for earlier in &names.earlier {
                assert_eq!(parse("p:", earlier), Some((key.clone(), Role::Earlier)));
            }
        }
    }

    #[test]
    fn keys_no_build_writes_are_nobodys() {
        let names = Names::new("p:", &StoreKey::from_stored("k"));
        // Another principal's tag, another prefix, another role, a truncated name.
        let forged = names.entry.replace(":e:k", ":e:other");
        for name in [&forged, "q:e:k", "p:x:k", "p:{0123}:e:k", "p:", "p:{"] {
            assert_eq!(parse("p:", name), None, "{name}");
        }
        assert_eq!(parse("p:", &names.entry.replace(":e:", ":x:")), None);
    }

    #[test]
    fn scan_patterns_match_the_prefix_literally() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
