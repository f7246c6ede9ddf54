//! Configuration from environment variables: what counts as unset, a secret's `_FILE` twin,
//! and a variable that is set but not UTF-8.

use std::sync::Mutex;

use crate::{Error, SecretSource};

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

/// The one of `choices` that `text` names, by the rule every setting spelt as a word follows
/// (`AURORA_SOLAR_ENV=Production`, `AURORA_UK_CLIENT_AUTH= post`): blanks around it and ASCII
/// case ignored. `None` when it names none; the caller's error names the variable and the words.
///
/// ```
/// #[derive(Clone, Copy, Debug, PartialEq)]
/// enum Env { Dev, Live }
/// let name = |e: Env| match e { Env::Dev => "dev", Env::Live => "live" };
/// let all = [Env::Dev, Env::Live];
/// assert_eq!(token_provider::env_choice(" LIVE\n", &all, name), Some(Env::Live));
/// assert_eq!(token_provider::env_choice("staging", &all, name), None);
/// ```
pub fn env_choice<T: Copy>(text: &str, choices: &[T], name: fn(T) -> &'static str) -> Option<T> {
    let text = text.trim();
    choices
        .iter()
        .copied()
        .find(|&choice| name(choice).eq_ignore_ascii_case(text))
}

/// The variables one `from_env_with` reads, by the convention every builder follows: an empty
/// or blank value counts as unset ([`env_value`]), and a secret `NAME` may come from the file
/// `NAME_FILE` names instead ([`secret`](Self::secret)).
///
/// ```
/// use token_provider::EnvVars;
///
/// let lookup = |name: &str| match name {
///     "APP_ID" => Some("app-1".to_owned()),
///     "APP_KEY" => Some("key-1".to_owned()),
///     "OTHER_KEY" => Some("key-2".to_owned()),
///     "OTHER_KEY_FILE" => Some("/run/secrets/other_key".to_owned()),
///     _ => None,
/// };
/// let vars = EnvVars::new(&lookup);
/// assert_eq!(vars.get("APP_ID").as_deref(), Some("app-1"));
/// assert_eq!(vars.secret("APP_KEY")?.unwrap().current().expose_secret(), "key-1");
/// assert!(vars.secret("MISSING_KEY")?.is_none());
/// let both = vars.secret("OTHER_KEY").unwrap_err().to_string();
/// assert!(both.contains("OTHER_KEY and OTHER_KEY_FILE") && !both.contains("key-2"));
/// # Ok::<(), token_provider::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct EnvVars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> EnvVars<'a> {
    /// The variables `lookup` reports.
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    /// The value of `name`, blank counting as unset ([`env_value`]).
    pub fn get(&self, name: &str) -> Option<String> {
        env_value(self.lookup, name)
    }

    /// The secret `name`: its value, or the file `name_FILE` names (read now, and again
    /// whenever it changes: see [`SecretSource`]). Both set is [`Error::Config`] naming both; a
    /// file that cannot be read is one naming `name_FILE` and the path. Neither ever quotes
    /// the secret.
    pub fn secret(&self, name: &str) -> Result<Option<SecretSource>, Error> {
        let file_var = format!("{name}_FILE");
        match (self.get(name), self.get(&file_var)) {
            (Some(_), Some(_)) => Err(Error::config(
                format!("{name} and {file_var}"),
                "are both set: set only one of them",
            )),
            (Some(value), None) => Ok(Some(SecretSource::value(value))),
            (None, Some(path)) => SecretSource::file(file_var, path.trim()).map(Some),
            (None, None) => Ok(None),
        }
    }
}

impl std::fmt::Debug for EnvVars<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnvVars")
    }
}

/// Writes `from_env` and `from_env_with` into a provider builder's `impl` block, so every
/// builder reads its variables the same way: through an [`EnvVars`] handed to the builder's own
/// `fn from_vars(vars: &EnvVars<'_>) -> Result<Self, Error>`. `vars` finishes the
/// documentation of `from_env_with`: the variables read.
///
/// ```
/// use token_provider::{EnvVars, Error, SecretSource, from_env_methods};
///
/// /// A builder of a provider of one's own.
/// #[derive(Debug, Default)]
/// pub struct MyBuilder {
///     api_key: Option<SecretSource>,
/// }
///
/// impl MyBuilder {
///     from_env_methods!(vars: "`MY_API_KEY` (or `MY_API_KEY_FILE`).");
///
///     fn from_vars(vars: &EnvVars<'_>) -> Result<Self, Error> {
///         Ok(Self { api_key: vars.secret("MY_API_KEY")? })
///     }
/// }
///
/// let builder = MyBuilder::from_env_with(|name| (name == "MY_API_KEY").then(|| "k".into()))?;
/// assert!(builder.api_key.is_some());
/// # Ok::<(), Error>(())
/// ```
#[macro_export]
macro_rules! from_env_methods {
    (vars: $vars:literal) => {
        /// A builder from the process environment; see [`from_env_with`](Self::from_env_with).
        /// A variable that is set but not UTF-8 is refused by name.
        pub fn from_env() -> ::core::result::Result<Self, $crate::Error> {
            $crate::ProcessEnv::read(|lookup| Self::from_env_with(lookup))
        }

        #[doc = concat!("A builder from the variables `lookup` returns: ", $vars)]
        ///
        /// Empty or blank values count as unset. Each secret `NAME` may come from a file
        /// instead: `NAME_FILE` holds its path (setting both is an error naming both). The file
        /// is read here, again whenever it changes, and once more after the provider refuses
        /// the secret ([`SecretSource`]($crate::SecretSource)); line endings at its end are
        /// dropped.
        ///
        /// What cannot be held fails here (a value that is not one of those allowed, two
        /// variables that exclude each other, a secret file that cannot be read); what is
        /// missing or wrong fails in `build`. Errors name the variable (and a file's path),
        /// never a secret.
        pub fn from_env_with(
            lookup: impl Fn(&str) -> ::core::option::Option<::std::string::String>,
        ) -> ::core::result::Result<Self, $crate::Error> {
            Self::from_vars(&$crate::EnvVars::new(&lookup))
        }
    };
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
    fn a_secret_comes_from_its_variable_or_its_file_never_both() {
        let dir = std::env::temp_dir().join(format!("partner-auth-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "from-the-file\n").unwrap();
        let path = path.display().to_string();
        let lookup = |name: &str| match name {
            "A_KEY" => Some("from-the-variable".to_owned()),
            "B_KEY_FILE" => Some(format!(" {path}\n")),
            "C_KEY" => Some("from-the-variable".to_owned()),
            "C_KEY_FILE" => Some(path.clone()),
            "D_KEY" => Some("  ".to_owned()),
            "D_KEY_FILE" => Some(path.clone()),
            "E_KEY_FILE" => Some(format!("{path}.missing")),
            _ => None,
        };
        let vars = EnvVars::new(&lookup);
        let a = vars.secret("A_KEY").unwrap().unwrap();
        assert_eq!(a.current().expose_secret(), "from-the-variable");
        assert!(!a.is_file());
        let b = vars.secret("B_KEY").unwrap().unwrap();
        assert_eq!(b.current().expose_secret(), "from-the-file");
        assert_eq!(b.setting(), Some("B_KEY_FILE"));
        let both = vars.secret("C_KEY").unwrap_err().to_string();
        assert_eq!(
            both,
            "invalid configuration: `C_KEY and C_KEY_FILE` are both set: set only one of them"
        );
        // A blank variable is unset, so its file is the one source.
        assert!(vars.secret("D_KEY").unwrap().unwrap().is_file());
        let missing = vars.secret("E_KEY").unwrap_err().to_string();
        assert!(
            missing.contains("`E_KEY_FILE`") && missing.contains(&format!("{path}.missing")),
            "{missing}"
        );
        assert!(vars.secret("F_KEY").unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
