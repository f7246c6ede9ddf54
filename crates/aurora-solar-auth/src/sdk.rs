//! The Client SDK: the REST API key turned into a short-lived JWT for one Aurora user.

use std::fmt;
use std::sync::Arc;

use http::header::CONTENT_LENGTH;
use serde::{Deserialize, Serialize};
use serde_json::Value;
#[cfg(doc)]
use token_provider::TokenProvider;
use token_provider::http::{Repeat, Request, Response, join_path, wrong_endpoint};
use token_provider::{
    AccessToken, EnvVars, Error, KeyedCache, KeyedConfig, KeyedFetch, ProviderOptions, Secret,
    SecretSource, StoreKey, TokenState, async_trait,
};
use tracing::debug;
use url::Url;

use crate::environment::{BASE_URL_VAR, Environment, TENANT_ID_VAR, Target, env_from, required_id};
use crate::facade::{Conn, Keyed, facade_methods, principal_handle, target_setters};
use crate::wire::{jwt_expiry, status_error};

const API_KEY_VAR: &str = "AURORA_SOLAR_API_KEY";
const USER_EMAIL_VAR: &str = "AURORA_SOLAR_USER_EMAIL";
const USER_FIRST_NAME_VAR: &str = "AURORA_SOLAR_USER_FIRST_NAME";
const USER_LAST_NAME_VAR: &str = "AURORA_SOLAR_USER_LAST_NAME";

/// The access level given to users this crate invites: it cannot log in to the Aurora web app
/// and needs no emailed invitation to use the Client SDK.
pub const SDK_USER_LEVEL: &str = "SDK User";

const NOT_FOUND: &str = "no such tenant or user, or the API key has no access to this tenant";

/// An Aurora user for whom to generate Client SDK tokens.
///
/// Only `email` is needed to find an existing user; `first_name` and `last_name` are needed only
/// if the user has to be invited (`phone` is optional then).
///
/// The struct is `#[non_exhaustive]` (it may gain a field in a minor release): make one with
/// [`new`](Self::new) and the `with_` methods, read its fields directly.
///
/// ```
/// use aurora_solar_auth::SdkUser;
///
/// let user = SdkUser::new("ada@example.com")
///     .with_name("Ada", "Lovelace")
///     .with_phone("+44 20 7946 0000");
/// assert_eq!(user.first_name.as_deref(), Some("Ada"));
/// ```
///
/// A struct literal does not compile outside this crate:
///
/// ```compile_fail
/// let user = aurora_solar_auth::SdkUser {
///     email: "ada@example.com".into(), first_name: None, last_name: None, phone: None,
/// };
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SdkUser {
    /// The user's email (`AURORA_SOLAR_USER_EMAIL`): ASCII letters are matched without regard
    /// to case, every other character exactly.
    pub email: String,
    /// First name, for an invitation (`AURORA_SOLAR_USER_FIRST_NAME`).
    pub first_name: Option<String>,
    /// Last name, for an invitation (`AURORA_SOLAR_USER_LAST_NAME`).
    pub last_name: Option<String>,
    /// Phone number, sent with an invitation when given.
    pub phone: Option<String>,
}

impl SdkUser {
    /// A user known by email only.
    pub fn new(email: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            ..Self::default()
        }
    }

    /// Adds the names used if the user has to be invited.
    #[must_use]
    pub fn with_name(
        mut self,
        first_name: impl Into<String>,
        last_name: impl Into<String>,
    ) -> Self {
        self.first_name = Some(first_name.into());
        self.last_name = Some(last_name.into());
        self
    }

    /// Adds the phone number sent with an invitation.
    #[must_use]
    pub fn with_phone(mut self, phone: impl Into<String>) -> Self {
        self.phone = Some(phone.into());
        self
    }

    /// Trimmed, blank optional fields dropped; the email checked. Only ASCII blanks are trimmed
    /// from the email: another blank (a no-break space) is part of what was given, so the email
    /// is refused rather than taken for the one without it.
    fn normalized(&self) -> Result<Self, Error> {
        let email = self.email.trim_ascii();
        if email.is_empty() {
            return Err(Error::config(USER_EMAIL_VAR, "is required"));
        }
        if !email.contains('@') || email.chars().any(char::is_whitespace) {
            return Err(Error::config(USER_EMAIL_VAR, "is not an email address"));
        }
        let clean = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Ok(Self {
            email: email.to_owned(),
            first_name: clean(&self.first_name),
            last_name: clean(&self.last_name),
            phone: clean(&self.phone),
        })
    }
}

/// Aurora Solar's Client SDK token source for one tenant: the REST API key, able to produce a
/// JWT for any user of the tenant (inviting the user as an "SDK User" when missing).
///
/// Cheap to clone; clones share the per-user caches. [`user`](Self::user) hands out one cached
/// provider per user (by email, ASCII case ignored). With a default user
/// ([`ClientSdkBuilder::user`]) the value is itself a [`TokenProvider`] for that user.
///
/// The users' JWTs live in a bounded map ([`token_provider::KeyedCache`]): at most 10,000 users
/// by default, a user unused for 12 hours (a JWT's lifetime) evicted, a user whose [`UserJwt`]
/// someone holds or whose fetch is in flight never evicted (so no second JWT is minted for a
/// user while the first is in use); both limits are set with [`ClientSdkBuilder::keyed`].
#[derive(Clone)]
pub struct ClientSdk {
    users: Keyed<SdkFetcher>,
}

impl fmt::Debug for ClientSdk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.users
            .debug(f, "ClientSdk", ("tenant_id", self.tenant_id()), "users")
    }
}

facade_methods!(ClientSdk over users, builder: ClientSdkBuilder, what: "a Client SDK token source");

impl ClientSdk {
    /// The tenant.
    pub fn tenant_id(&self) -> &str {
        &self.users.fetcher().tenant_id
    }

    /// The cached JWT provider of `user`: one per email (ASCII letters compared without regard
    /// to case, every other character exactly), so asking again for the same user returns the
    /// same cache and JWT. The names and phone of
    /// the first request for an email are the ones used for an invitation.
    ///
    /// Fails only when the email is blank or not an address (naming `AURORA_SOLAR_USER_EMAIL`).
    /// A cached user given by a trimmed email in ASCII lowercase is found without a lock over
    /// the map and without allocating.
    pub fn user(&self, user: SdkUser) -> Result<UserJwt, Error> {
        // The map's keys are trimmed and ASCII-lowercased (lowercasing one again changes
        // nothing): any other spelling is found by the slow path.
        self.users.handle(&user.email, || {
            let user = user.normalized()?;
            let key = email_key(&user.email);
            Ok((key, move |email_key| SdkPrincipal { user, email_key }))
        })
    }

    /// Drops the cached provider of `email` (handles already given out keep working on their
    /// own). Returns whether there was one.
    pub fn forget_user(&self, email: &str) -> bool {
        self.users.forget(&email_key(email.trim_ascii()))
    }

    /// How many users the map holds now.
    pub fn cached_users(&self) -> usize {
        self.users.len()
    }

    /// The provider of the default user, if the builder was given one.
    pub fn default_user(&self) -> Option<&UserJwt> {
        self.users.default()
    }
}

// The default user's JWT; `Error::Config` naming `AURORA_SOLAR_USER_EMAIL` when the builder
// was given no user.
token_provider::forward_token_provider!(ClientSdk => |this| this.users.default(), or Error::config(
    USER_EMAIL_VAR,
    "is required to use the client sdk as a token provider (or call `user(..)`)",
));

principal_handle!(
    /// The cached Client SDK JWT of one user: a [`TokenProvider`]. Cheap to clone; clones share
    /// the cache.
    UserJwt for SdkFetcher,
    token: "JWT",
    principal: "user",
    shows: ["email" => email],
);

impl UserJwt {
    /// The user's email, as first given.
    pub fn email(&self) -> &str {
        &self.cache.principal().user.email
    }
}

/// Looks up (or invites) any user of one tenant and generates a JWT for them.
#[derive(Debug)]
struct SdkFetcher {
    conn: Conn,
    tenant_id: String,
}

/// One user of the map.
#[derive(Debug)]
struct SdkPrincipal {
    user: SdkUser,
    /// The email with its ASCII letters lowercased: the map's key, for matching.
    email_key: Arc<str>,
}

/// One user's fetch: the fetcher's connection, its tenant, the user, and the API key it sends.
struct UserFetch<'a> {
    conn: &'a Conn,
    tenant_id: &'a str,
    user: &'a SdkUser,
    email_key: &'a str,
    api_key: &'a Secret,
}

#[derive(Deserialize)]
struct UserList {
    users: Vec<UserEntry>,
}

#[derive(Deserialize)]
struct UserEntry {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    account_status: Option<String>,
}

#[derive(Serialize)]
struct Invite<'a> {
    user: InviteUser<'a>,
}

#[derive(Serialize)]
struct InviteUser<'a> {
    first_name: &'a str,
    last_name: &'a str,
    email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<&'a str>,
    user_level: &'static str,
}

#[derive(Deserialize)]
struct GenerateTokenResponse {
    token: Jwt,
}

// No Debug: it holds the token.
#[derive(Deserialize)]
struct Jwt {
    jwt: String,
}

/// The map's key for a checked email: ASCII letters lowercased, every other character kept.
/// Unicode case mapping would make look-alikes one principal (U+212A KELVIN SIGN lowercases to
/// `k`) and hand one user's JWT to another.
fn email_key(email: &str) -> String {
    email.to_ascii_lowercase()
}

/// A user id as the API may spell it: a string (the documented UUID) or a number.
fn id_text(id: Option<&Value>) -> Option<String> {
    match id? {
        Value::String(s) if !s.trim_ascii().is_empty() => Some(s.trim_ascii().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl UserFetch<'_> {
    fn url(&self, tail: &[&str]) -> Result<Url, Error> {
        let mut segments = vec!["tenants", self.tenant_id, "users"];
        segments.extend_from_slice(tail);
        join_path(&self.conn.target.base, &segments)
    }

    fn fail(&self, response: &Response) -> Error {
        status_error(response, NOT_FOUND, &[self.api_key])
    }

    /// The answer to a request to `url`, refused unless it succeeded: a 404 or a web page is
    /// the base URL or the tenant naming nothing there; any other failure is
    /// [`fail`](Self::fail)'s.
    fn check(&self, url: &Url, response: &Response) -> Result<(), Error> {
        let explanation = format!("{NOT_FOUND}: {TENANT_ID_VAR} makes the path");
        if let Some(error) = wrong_endpoint(
            self.conn.target.setting(),
            url,
            response,
            Some(&explanation),
        ) {
            return Err(error);
        }
        if !response.status().is_success() {
            return Err(self.fail(response));
        }
        Ok(())
    }

    /// The id of the user with this email: active accounts only, unless `any_status` (right
    /// after our own invitation, which "SDK User" accounts need not accept, or after an
    /// invitation refused because the email is taken by an account in another state).
    async fn find(&self, any_status: bool) -> Result<Option<String>, Error> {
        debug!(tenant_id = %self.tenant_id, "looking up the client sdk user");
        let url = self.url(&[])?;
        let request = Request::get(url.clone()).bearer(self.api_key)?;
        let response = self.conn.http.execute(request).await?;
        self.check(&url, &response)?;
        let list: UserList = response.json("users response")?;
        let found = list.users.iter().find(|u| {
            let email_matches = u
                .email
                .as_deref()
                .is_some_and(|e| e.trim_ascii().eq_ignore_ascii_case(self.email_key));
            let status = u.account_status.as_deref().map(str::trim).unwrap_or("");
            let active = status.eq_ignore_ascii_case("active");
            // After a refused invitation: an account that exists but has not been taken up yet.
            // A deactivated, disabled or locked account is never issued a token.
            let not_yet_taken_up = ["invited", "pending", "unconfirmed", ""]
                .iter()
                .any(|s| status.eq_ignore_ascii_case(s));
            email_matches && (active || (any_status && not_yet_taken_up))
        });
        match found {
            Some(user) => id_text(user.id.as_ref())
                .map(Some)
                .ok_or_else(|| Error::malformed("users response: the matching user has no `id`")),
            None => Ok(None),
        }
    }

    /// Invites the user as an "SDK User": the new id when the answer carries one.
    async fn invite(&self) -> Result<Invited, Error> {
        // Checked after the lookup found nobody, before anything is created.
        let first_name = self.user.first_name.as_deref().ok_or_else(|| {
            Error::config(
                USER_FIRST_NAME_VAR,
                "is required to invite a user: no active user with this email in the tenant",
            )
        })?;
        let last_name = self.user.last_name.as_deref().ok_or_else(|| {
            Error::config(
                USER_LAST_NAME_VAR,
                "is required to invite a user: no active user with this email in the tenant",
            )
        })?;
        let body = Invite {
            user: InviteUser {
                first_name,
                last_name,
                email: &self.user.email,
                phone: self.user.phone.as_deref(),
                user_level: SDK_USER_LEVEL,
            },
        };
        debug!(tenant_id = %self.tenant_id, "inviting the client sdk user");
        // An invitation creates an account: not sent twice. A later fetch finds the account.
        let request = Request::post(self.url(&["invite"])?, Repeat::Once)
            .bearer(self.api_key)?
            .json(&body)?;
        let response = self.conn.http.execute(request).await?;
        let status = response.status().as_u16();
        if matches!(status, 409 | 422) {
            return Ok(Invited::Refused(self.fail(&response)));
        }
        if !response.status().is_success() {
            return Err(self.fail(&response));
        }
        // The answer's shape is undocumented: use `{"user":{"id":…}}` when it is there.
        let id = serde_json::from_slice::<Value>(response.body())
            .ok()
            .and_then(|v| id_text(v.get("user").and_then(|u| u.get("id"))));
        Ok(Invited::Created(id))
    }

    async fn generate(&self, user_id: &str) -> Result<TokenState, Error> {
        debug!(tenant_id = %self.tenant_id, "generating a client sdk jwt");
        // `Content-Length: 0` rather than no length at all, as for `create_token`. A new JWT can
        // end the browser session holding the previous one (an SDK User has one Client SDK
        // session at a time), so a generation that may have reached Aurora is never repeated.
        let url = self.url(&[user_id, "generate_token"])?;
        let request = Request::post(url.clone(), Repeat::Once)
            .bearer(self.api_key)?
            .header(CONTENT_LENGTH, "0")?;
        let response = self.conn.http.execute(request).await?;
        self.check(&url, &response)?;
        let body: GenerateTokenResponse = response.json("generate_token response")?;
        // By Aurora's clock, as a temporary key's (`PartnerApp`).
        let expires_at = response.local_time(jwt_expiry(&body.token.jwt)?, self.conn.clock.now());
        let jwt = AccessToken::builder(body.token.jwt.trim())
            .expires_at(expires_at)
            .build();
        Ok(TokenState::new(jwt))
    }
}

/// How an invitation went.
enum Invited {
    /// The user was created; the id when the answer carried one.
    Created(Option<String>),
    /// 409 or 422: most often the email is taken by an account that is not `active` (an SDK
    /// User invited earlier who never logged in, a pending account). The error is the answer to
    /// give if no such account turns up.
    Refused(Error),
}

#[async_trait]
impl KeyedFetch for SdkFetcher {
    type Principal = SdkPrincipal;

    fn store_key(&self, principal: &SdkPrincipal) -> Option<StoreKey> {
        Some(StoreKey::new(
            "aurora-solar-sdk",
            self.conn.environment(),
            &self.tenant_id,
            &principal.email_key,
        ))
    }

    async fn fetch(
        &self,
        principal: &SdkPrincipal,
        _previous: Option<&TokenState>,
    ) -> Result<TokenState, Error> {
        // A refused key is read again from its file, and the user's fetch made once more with
        // a new one: nothing was looked up, invited or generated with the refused key.
        let conn = &self.conn;
        let tenant_id = &self.tenant_id;
        conn.key
            .attempt(Error::is_rejected, move |api_key| async move {
                UserFetch {
                    conn,
                    tenant_id,
                    user: &principal.user,
                    email_key: &principal.email_key,
                    api_key: &api_key,
                }
                .fetch()
                .await
            })
            .await
    }
}

impl UserFetch<'_> {
    async fn fetch(&self) -> Result<TokenState, Error> {
        let user_id = match self.find(false).await? {
            Some(id) => id,
            None => match self.invite().await? {
                Invited::Created(Some(id)) => id,
                Invited::Created(None) => self.find(true).await?.ok_or_else(|| {
                    Error::malformed("users response: the invited user is not in the user list")
                })?,
                // The account exists in another state: an "SDK User" need not accept its
                // invitation, so it gets a token as it is. Inviting again on every fetch would
                // only be refused again, locking the user out.
                Invited::Refused(error) => match self.find(true).await? {
                    Some(id) => {
                        debug!(
                            tenant_id = %self.tenant_id,
                            "the client sdk user exists but is not active; using the account"
                        );
                        id
                    }
                    None => return Err(error),
                },
            },
        };
        self.generate(&user_id).await
    }
}

/// Builds a [`ClientSdk`]. Every setting is checked by [`build`](Self::build), which names the
/// one at fault (by its environment variable).
#[must_use]
#[derive(Debug, Default)]
pub struct ClientSdkBuilder {
    environment: Option<Environment>,
    base_url: Option<String>,
    api_key: Option<SecretSource>,
    tenant_id: Option<String>,
    user: Option<SdkUser>,
    require_user: bool,
    no_background_refresh: bool,
    keyed: Option<KeyedConfig>,
    options: ProviderOptions,
}

impl ClientSdkBuilder {
    token_provider::from_env_methods!(
        vars: "`AURORA_SOLAR_ENV`, `AURORA_SOLAR_BASE_URL`, `AURORA_SOLAR_API_KEY` (or \
               `AURORA_SOLAR_API_KEY_FILE`), `AURORA_SOLAR_TENANT_ID`, \
               `AURORA_SOLAR_USER_EMAIL` (required: it becomes the default user), \
               `AURORA_SOLAR_USER_FIRST_NAME` and `AURORA_SOLAR_USER_LAST_NAME` (needed only to \
               invite a missing user)."
    );

    fn from_vars(vars: &EnvVars<'_>) -> Result<Self, Error> {
        let user = vars.get(USER_EMAIL_VAR).map(|email| SdkUser {
            email,
            first_name: vars.get(USER_FIRST_NAME_VAR),
            last_name: vars.get(USER_LAST_NAME_VAR),
            phone: None,
        });
        Ok(Self {
            environment: env_from(vars)?,
            base_url: vars.get(BASE_URL_VAR),
            api_key: vars.secret(API_KEY_VAR)?,
            tenant_id: vars.get(TENANT_ID_VAR),
            user,
            require_user: true,
            ..Self::default()
        })
    }

    target_setters!();

    token_provider::builder_setters! {
        /// The REST API key (`AURORA_SOLAR_API_KEY`): a value, or a file read again when it changes
        /// ([`SecretSource`]). Required. A key that looks like the other environment's is refused.
        api_key: impl Into<SecretSource>,
        /// The tenant (`AURORA_SOLAR_TENANT_ID`). Required.
        tenant_id: impl Into<String>,
        /// A default user, which makes the [`ClientSdk`] itself a [`TokenProvider`] for them.
        user: SdkUser,
    }

    /// Whether a user's JWT is renewed in the background in the last minutes of its life
    /// (default `true`). A new JWT can end the browser session holding the previous one (an
    /// "SDK User" has one Client SDK session at a time): with `false`, a JWT is generated only
    /// when none is cached, the cached one has expired, or it was invalidated.
    pub fn background_refresh(mut self, enabled: bool) -> Self {
        self.no_background_refresh = !enabled;
        self
    }

    token_provider::builder_setters! {
        /// How many users' JWTs are kept, and for how long unused (default: 10,000 users, 12
        /// hours).
        keyed: KeyedConfig,
    }

    token_provider::provider_options_setters!(store_key: "`aurora-solar-sdk|<environment or host>|<tenant id>|<email, ASCII letters lowercased>`");

    /// The Client SDK token source. Nothing is sent.
    pub fn build(self) -> Result<ClientSdk, Error> {
        let target = Target::resolve(self.environment, self.base_url.as_deref())?;
        let api_key = target.check_key(API_KEY_VAR, self.api_key.as_ref())?;
        let tenant_id = required_id(TENANT_ID_VAR, self.tenant_id.as_deref())?;
        let user = match self.user {
            Some(user) => Some(user.normalized()?),
            None if self.require_user => {
                return Err(Error::config(USER_EMAIL_VAR, "is required"));
            }
            None => None,
        };
        let conn = Conn::new(target, api_key, &self.options)?;
        let cache = self.options.resolved_cache("aurora-solar-sdk");
        // Without background refresh there is no soft window: a JWT is replaced only once it
        // has expired or was invalidated.
        let cache = if self.no_background_refresh {
            cache.margin(std::time::Duration::ZERO)
        } else {
            cache
        };
        let fetcher = SdkFetcher { conn, tenant_id };
        let users = KeyedCache::new(fetcher, cache, self.keyed.unwrap_or_default());
        let mut sdk = ClientSdk {
            users: Keyed::new(users),
        };
        let default = user.map(|u| sdk.user(u)).transpose()?;
        sdk.users.set_default(default);
        Ok(sdk)
    }
}
