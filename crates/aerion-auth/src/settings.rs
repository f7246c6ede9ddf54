//! [`Tenant`], the defaults and the names of the environment variables: what the builder
//! reads and the fetcher sends, in a module both import.

use http::{HeaderName, HeaderValue};
use token_provider::Error;

/// The default API base: Aerion's neutral address (the tenant header names the account).
pub const DEFAULT_BASE_URL: &str = "https://api.aerion.app";

/// The default `client_id`. Aerion does not check it but asks that it identify the app.
pub const DEFAULT_CLIENT_ID: &str = "partner-auth";

/// The default `client_secret`. Aerion requires the field and does not check it.
pub const DEFAULT_CLIENT_SECRET: &str = "partner-auth";

/// `AERION_BASE_URL`: the API base (default [`DEFAULT_BASE_URL`]).
pub const ENV_BASE_URL: &str = "AERION_BASE_URL";
/// `AERION_COMPANY_URL`: the tenant, sent as the `companyurl` header.
pub const ENV_COMPANY_URL: &str = "AERION_COMPANY_URL";
/// `AERION_ORIGIN`: the tenant, sent as the `origin` header.
pub const ENV_ORIGIN: &str = "AERION_ORIGIN";
/// `AERION_USERNAME`: the user's email address, for the password grant.
pub const ENV_USERNAME: &str = "AERION_USERNAME";
/// `AERION_PASSWORD`: the user's password, for the password grant.
pub const ENV_PASSWORD: &str = "AERION_PASSWORD";
/// `AERION_REFRESH_TOKEN`: a refresh token to start from (an SSO login's, say).
pub const ENV_REFRESH_TOKEN: &str = "AERION_REFRESH_TOKEN";
/// `AERION_CLIENT_ID`: overrides [`DEFAULT_CLIENT_ID`].
pub const ENV_CLIENT_ID: &str = "AERION_CLIENT_ID";
/// `AERION_CLIENT_SECRET`: overrides [`DEFAULT_CLIENT_SECRET`].
pub const ENV_CLIENT_SECRET: &str = "AERION_CLIENT_SECRET";

/// The field named when no tenant is configured.
pub(crate) const TENANT_FIELD: &str = "AERION_COMPANY_URL or AERION_ORIGIN";

/// Which Aerion account (tenant) a token is for, and the header that says so. Aerion requires
/// one of these on every token request; the neutral `api.aerion.app` host serves every tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Tenant {
    /// `companyurl: <value>`, the company's Aerion address (`AERION_COMPANY_URL`).
    CompanyUrl(String),
    /// `origin: <value>` (`AERION_ORIGIN`).
    Origin(String),
    /// `referrer: <value>`, spelled as Aerion spells it (not HTTP's `Referer`).
    Referrer(String),
}

impl Tenant {
    /// The header name: `companyurl`, `origin` or `referrer`.
    pub fn header_name(&self) -> &'static str {
        match self {
            Self::CompanyUrl(_) => "companyurl",
            Self::Origin(_) => "origin",
            Self::Referrer(_) => "referrer",
        }
    }

    /// The header value.
    pub fn value(&self) -> &str {
        match self {
            Self::CompanyUrl(v) | Self::Origin(v) | Self::Referrer(v) => v,
        }
    }

    /// The setting an error about this tenant names.
    pub(crate) fn field(&self) -> &'static str {
        match self {
            Self::CompanyUrl(_) => ENV_COMPANY_URL,
            Self::Origin(_) => ENV_ORIGIN,
            Self::Referrer(_) => "tenant (referrer)",
        }
    }

    /// ASCII blanks around the value dropped. Any other character stays, for `header` to
    /// refuse: trimming a no-break space would make `acme.aerion.app\u{A0}` another spelling of
    /// `acme.aerion.app`, sharing its store entries.
    pub(crate) fn trimmed(self) -> Self {
        match self {
            Self::CompanyUrl(v) => Self::CompanyUrl(v.trim_ascii().to_owned()),
            Self::Origin(v) => Self::Origin(v.trim_ascii().to_owned()),
            Self::Referrer(v) => Self::Referrer(v.trim_ascii().to_owned()),
        }
    }

    pub(crate) fn header(&self) -> Result<(HeaderName, HeaderValue), Error> {
        let value = self.value();
        if value.is_empty() {
            return Err(Error::config(self.field(), "must not be empty"));
        }
        // Visible ASCII only: anything else would go out as raw header bytes that every
        // server reads its own way.
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::config(
                self.field(),
                "must be visible ASCII (no spaces, accents or control characters):                  write a non-ASCII host name in its `xn--` form",
            ));
        }
        let value = HeaderValue::from_str(value).map_err(|_| {
            Error::config(
                self.field(),
                "contains characters not allowed in an HTTP header",
            )
        })?;
        Ok((HeaderName::from_static(self.header_name()), value))
    }
}
