//! [`Secret`]: a string that never shows itself by accident.

use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// A secret string: a key, a password, a client secret, an access or refresh token.
///
/// - `Debug` prints `Secret([redacted])`; there is no `Display` and no `Serialize`.
/// - The bytes are zeroized when the last clone is dropped.
/// - Clones share one allocation (`Arc`), so handing a secret around never copies it.
/// - `==` compares in constant time (for equal lengths), so comparing a presented token
///   against a cached one leaks nothing about where they differ.
#[derive(Clone)]
pub struct Secret(Arc<SecretString>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::new(SecretString::from(value.into())))
    }

    /// The secret value.
    ///
    /// # Security Warning
    ///
    /// The returned string is the secret itself: send it where it belongs (a header, a form
    /// field, a store file) and nowhere else. Never log it or put it in an error.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the secret is the empty string (a configuration mistake worth refusing).
    pub fn is_empty(&self) -> bool {
        self.expose_secret().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        bool::from(
            self.expose_secret()
                .as_bytes()
                .ct_eq(other.expose_secret().as_bytes()),
        )
    }
}

impl Eq for Secret {}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{s:#?}"), "Secret([redacted])");
    }

    #[test]
    fn equality_compares_values() {
        assert_eq!(Secret::new("abc"), Secret::new("abc"));
        assert_ne!(Secret::new("abc"), Secret::new("abd"));
        assert_ne!(Secret::new("abc"), Secret::new("abcd"));
    }

    #[test]
    fn clones_share_the_allocation() {
        let a = Secret::new("shared");
        let b = a.clone();
        assert!(std::ptr::eq(a.expose_secret(), b.expose_secret()));
    }
}
