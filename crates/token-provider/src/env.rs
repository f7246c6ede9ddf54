//! Configuration from environment variables: what counts as unset, and a variable that is set
//! but not UTF-8.

use std::sync::Mutex;

use crate::Error;

/// The value of the configuration variable `name` as `lookup` reports it, with an empty or
/// all-blank value counting as unset.
///
/// Every provider's `from_env_with` and the facade read their variables through this, so they
/// agree on what "unset" means. A value that is set is returned as it is (not trimmed): a
/// builder that wants to refuse stray whitespace, or a password that has some, sees it.
///
/// ```
/// let lookup = |name: &str| match name {
///     "SET" => Some(" value ".to_owned()),
///     "BLANK" => Some(" \t\n".to_owned()),
///     _ => None,
/// };
/// assert_eq!(token_provider::env_value(&lookup, "SET").as_deref(), Some(" value "));
/// assert_eq!(token_provider::env_value(&lookup, "BLANK"), None);
/// assert_eq!(token_provider::env_value(&lookup, "MISSING"), None);
/// ```
pub fn env_value<F>(lookup: &F, name: &str) -> Option<String>
where
    F: Fn(&str) -> Option<String> + ?Sized,
{
    lookup(name).filter(|value| !value.trim().is_empty())
}

/// The process environment as a lookup for a `from_env_with`, remembering every variable it was
/// asked for that is set but not UTF-8.
///
/// `std::env::var(name).ok()` reads such a variable as unset, so a builder would report it as
/// "is required" although it is set, or let it slip past a check that only one of two variables
/// is set. A provider's `from_env` reads through this and then refuses the first such variable
/// by name ([`check`](Self::check)).
///
/// ```
/// let env = token_provider::ProcessEnv::new();
/// let home = env.get("PARTNER_AUTH_SURELY_UNSET");
/// assert_eq!(home, None);
/// env.check().unwrap();
/// ```
#[derive(Debug, Default)]
pub struct ProcessEnv {
    not_utf8: Mutex<Vec<String>>,
}

impl ProcessEnv {
    /// A lookup on the process environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// `from_env_with` run over the process environment, then [`check`](Self::check)ed: what
    /// every provider's `from_env` does. A variable that is set but not UTF-8 is refused by
    /// name, even when `from_env_with` failed first for another reason.
    ///
    /// ```
    /// use token_provider::{Error, ProcessEnv};
    ///
    /// let value = ProcessEnv::read(|lookup| Ok::<_, Error>(lookup("PARTNER_AUTH_SURELY_UNSET")));
    /// assert_eq!(value.unwrap(), None);
    /// ```
    pub fn read<T>(
        from_env_with: impl FnOnce(&dyn Fn(&str) -> Option<String>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let env = Self::new();
        let read = from_env_with(&|name| env.get(name));
        env.check()?;
        read
    }

    /// The variable's value; `None` when it is unset, and also when it is not UTF-8 (which is
    /// remembered).
    pub fn get(&self, name: &str) -> Option<String> {
        Self::with_os(name, std::env::var_os(name), &self.not_utf8)
    }

    fn with_os(
        name: &str,
        value: Option<std::ffi::OsString>,
        not_utf8: &Mutex<Vec<String>>,
    ) -> Option<String> {
        match value?.into_string() {
            Ok(value) => Some(value),
            Err(_) => {
                not_utf8
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(name.to_owned());
                None
            }
        }
    }

    /// The first variable asked for that was set but not UTF-8.
    pub fn not_utf8(&self) -> Option<String> {
        self.not_utf8
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first()
            .cloned()
    }

    /// [`Error::Config`] naming the first variable asked for that was set but not UTF-8.
    pub fn check(&self) -> Result<(), Error> {
        match self.not_utf8() {
            Some(name) => Err(Self::not_utf8_error(&name)),
            None => Ok(()),
        }
    }

    /// The error for variable `name`, set but not UTF-8 (the value is never shown).
    pub fn not_utf8_error(name: &str) -> Error {
        Error::config(name, "is set but is not UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    #[test]
    fn a_value_that_is_not_utf8_is_remembered_by_name() {
        let seen = Mutex::new(Vec::new());
        let bad = OsString::from_vec(b"acme\xff".to_vec());
        assert_eq!(ProcessEnv::with_os("A", Some(bad), &seen), None);
        assert_eq!(
            ProcessEnv::with_os("B", Some("b".into()), &seen).as_deref(),
            Some("b")
        );
        assert_eq!(ProcessEnv::with_os("C", None, &seen), None);
        let env = ProcessEnv { not_utf8: seen };
        let e = env.check().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: `A` is set but is not UTF-8"
        );
    }
}
