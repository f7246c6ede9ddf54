//! Partner apps: the application key exchanged for a per-tenant temporary key, by a backend app
//! at will or by an embedded app with a single-use session token.

use std::fmt;
use std::sync::{Arc, Mutex};

use http::header::CONTENT_LENGTH;
use serde::Deserialize;
#[cfg(doc)]
use token_provider::TokenProvider;
use token_provider::auth::AuthScope;
use token_provider::http::{Repeat, Request, join_path, wrong_endpoint};
use token_provider::{
    AccessToken, EnvVars, Error, KeyedCache, KeyedConfig, KeyedFetch, ProviderOptions, Secret,
    SecretSource, StoreKey, TokenState, async_trait,
};
use tracing::debug;

use crate::environment::{BASE_URL_VAR, Environment, TENANT_ID_VAR, Target, env_from, required_id};
use crate::facade::{Conn, Keyed, facade_methods, principal_handle, target_setters};
use crate::wire::{parse_expires_at, status_error};

const APPLICATION_ID_VAR: &str = "AURORA_SOLAR_APPLICATION_ID";
const APPLICATION_KEY_VAR: &str = "AURORA_SOLAR_APPLICATION_KEY";
const SESSION_TOKEN_VAR: &str = "AURORA_SOLAR_SESSION_TOKEN";

/// What an embedded app is told when its session token is spent or refused: the same words
/// whether the refusal is local (a second exchange) or Aurora's (HTTP 401).
pub(crate) const NEW_SESSION_TOKEN: &str = "the embedded app needs a new session token: each \
    Aurora Solar session token is good for one key exchange within an hour (Aurora passes a \
    fresh one as `aurora_session_token` with each request to the app)";

/// How long a temporary key lives: a tenant unused this long is evicted from the map.
const TEMPORARY_KEY_LIFETIME: std::time::Duration = std::time::Duration::from_secs(13 * 3600);

/// Why a `create_token` answer can be 404, which Aurora does not document.
const NOT_FOUND: &str = "no such application or tenant, or the application is not authorized \
    for this tenant";

/// An Aurora Solar partner application: its id and application key, able to get a temporary key
/// for any tenant that authorized it.
///
/// Cheap to clone; clones share the per-tenant caches. [`tenant`](Self::tenant) hands out one
/// cached provider per tenant; [`embedded`](Self::embedded) one per session token. With a default
/// tenant ([`PartnerAppBuilder::tenant_id`]) the app is itself a [`TokenProvider`] for it.
///
/// The tenants' keys live in a bounded map ([`token_provider::KeyedCache`]): at most 10,000
/// tenants by default, a tenant unused for 13 hours (a temporary key's lifetime) evicted, a
/// tenant whose [`TenantKey`] someone holds or whose fetch is in flight never evicted; both
/// limits are set with [`PartnerAppBuilder::keyed`]. An evicted tenant's key is zeroized, and
/// the next call for it fetches (or adopts the stored key, with a store).
#[derive(Clone)]
pub struct PartnerApp {
    /// The backend flow's tenants, each with its temporary key.
    tenants: Keyed<PartnerFetcher>,
    /// The embedded flow's providers, each on its own (never in the map, never stored).
    embedded: KeyedCache<PartnerFetcher>,
}

impl fmt::Debug for PartnerApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = ("application_id", self.application_id());
        self.tenants.debug(f, "PartnerApp", id, "tenants")
    }
}

facade_methods!(PartnerApp over tenants, builder: PartnerAppBuilder, what: "a partner app");

impl PartnerApp {
    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.tenants.fetcher().application_id
    }

    /// Where temporary keys may be sent: the origin of the base URL (the environment's host,
    /// or the custom base URL). For `token_provider::auth`'s middleware and `send_authorized`.
    pub fn auth_scope(&self) -> AuthScope {
        AuthScope::new(self.base_url()).expect("the base URL was checked by the builder")
    }

    /// The cached temporary-key provider of `tenant_id` (backend flow: the application key
    /// alone). Asking again for the same tenant returns the same cache, so every handle shares
    /// one temporary key; each tenant has its own.
    ///
    /// Fails only when `tenant_id` is blank (naming `AURORA_SOLAR_TENANT_ID`). A cached tenant
    /// given by its trimmed id is found without a lock over the map and without allocating.
    pub fn tenant(&self, tenant_id: impl AsRef<str>) -> Result<TenantKey, Error> {
        let tenant_id = tenant_id.as_ref();
        // An id given with spaces around it is found by the slow path: trimming the id on every
        // hit cost a tenth of the hit.
        self.tenants.handle(tenant_id, || {
            Ok((
                required_id(TENANT_ID_VAR, Some(tenant_id))?,
                Tenant::Backend,
            ))
        })
    }

    /// A provider for `tenant_id` whose first fetch exchanges `session_token` (embedded flow).
    ///
    /// The session token is spent by that one exchange: it is sent once, never retried once it
    /// may have reached Aurora, and any later exchange (a renewal 13 hours on, or a new attempt
    /// after a failure) is refused locally with [`Error::UserAction`] asking for a new session
    /// token. An exchange that provably never reached Aurora (the connection was refused, the
    /// host name did not resolve) spends nothing, and a later attempt sends the token. Each call
    /// makes a new provider: a new session token comes with each request Aurora makes to the
    /// app. The session token is the proof that a user of this tenant acted, so the provider
    /// exchanges it before it hands out any key: it never uses a key cached or stored for the
    /// tenant, and does not save the key it gets (a store is not used).
    pub fn embedded(
        &self,
        tenant_id: impl AsRef<str>,
        session_token: impl Into<Secret>,
    ) -> Result<TenantKey, Error> {
        let tenant_id = required_id(TENANT_ID_VAR, Some(tenant_id.as_ref()))?;
        let session_token = session_token.into();
        if session_token.is_empty() {
            return Err(Error::config(SESSION_TOKEN_VAR, "is empty"));
        }
        let cache = self.embedded.detached(Tenant::Embedded(Box::new((
            Arc::from(tenant_id),
            Mutex::new(Some(session_token)),
        ))));
        Ok(TenantKey { cache })
    }

    /// Drops the cached provider of `tenant_id` (handles already given out keep working on
    /// their own). Returns whether there was one. For apps serving very many tenants.
    pub fn forget_tenant(&self, tenant_id: &str) -> bool {
        self.tenants.forget(tenant_id.trim_ascii())
    }

    /// How many tenants the map holds now.
    pub fn cached_tenants(&self) -> usize {
        self.tenants.len()
    }

    /// The provider of the default tenant, if the builder was given one.
    pub fn default_tenant(&self) -> Option<&TenantKey> {
        self.tenants.default()
    }
}

// The default tenant's temporary key; `Error::Config` naming `AURORA_SOLAR_TENANT_ID` when the
// builder was given no tenant.
token_provider::forward_token_provider!(PartnerApp => |this| this.tenants.default(), or Error::config(
    TENANT_ID_VAR,
    "is required to use the partner app as a token provider (or call `tenant(..)`)",
));

principal_handle!(
    /// The cached temporary key of one tenant: a [`TokenProvider`]. Cheap to clone; clones share
    /// the cache.
    TenantKey for PartnerFetcher,
    token: "temporary key",
    principal: "tenant",
    shows: ["tenant_id" => tenant_id, "embedded" => is_embedded],
);

impl TenantKey {
    /// The tenant.
    pub fn tenant_id(&self) -> &str {
        self.cache.principal().id()
    }

    /// Whether this provider exchanges a session token (embedded flow).
    pub fn is_embedded(&self) -> bool {
        self.cache.principal().session_token().is_some()
    }
}

/// `create_token` exchanges for any tenant of one app. The two maps of an app (backend and
/// embedded) each hold one, sharing the connection.
#[derive(Debug)]
struct PartnerFetcher {
    conn: Arc<Conn>,
    application_id: String,
}

/// One tenant of the map, or one embedded exchange. An enum rather than an id with an optional
/// session token: the map holds thousands of tenants, and this way each costs its id alone
/// (shared with the map's key), the embedded flow's state boxed beside it.
enum Tenant {
    /// The backend flow.
    Backend(Arc<str>),
    /// The embedded flow: the id, and the session token (emptied by the first exchange).
    Embedded(Box<(Arc<str>, Mutex<Option<Secret>>)>),
}

impl Tenant {
    fn id(&self) -> &Arc<str> {
        match self {
            Self::Backend(id) => id,
            Self::Embedded(embedded) => &embedded.0,
        }
    }

    /// The embedded flow's session token, `None` for the backend flow.
    fn session_token(&self) -> Option<&Mutex<Option<Secret>>> {
        match self {
            Self::Backend(_) => None,
            Self::Embedded(embedded) => Some(&embedded.1),
        }
    }
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenant")
            .field("tenant_id", self.id())
            .field("embedded", &self.session_token().is_some())
            .finish()
    }
}

#[derive(Deserialize)]
struct CreateTokenResponse {
    token: TemporaryKey,
}

// No Debug: it holds the key.
#[derive(Deserialize)]
struct TemporaryKey {
    bearer_token: String,
    expires_at: String,
}

#[async_trait]
impl KeyedFetch for PartnerFetcher {
    type Principal = Tenant;

    /// The backend flow's key; none for an embedded exchange (its cache has no store).
    fn store_key(&self, tenant: &Tenant) -> Option<StoreKey> {
        tenant.session_token().is_none().then(|| {
            StoreKey::new(
                "aurora-solar",
                self.conn.environment(),
                tenant.id(),
                &self.application_id,
            )
        })
    }

    /// The backend flow's application key stays good however often it is used; the embedded
    /// flow spends its single-use session token.
    fn repeatable_without_store(&self, tenant: &Tenant) -> bool {
        tenant.session_token().is_none()
    }

    async fn fetch(
        &self,
        tenant: &Tenant,
        _previous: Option<&TokenState>,
    ) -> Result<TokenState, Error> {
        let key = &self.conn.key;
        match tenant.session_token() {
            // The embedded exchange spends its session token: it is sent once, refused or not.
            Some(_) => self.exchange(tenant, key.current()).await,
            None => {
                key.attempt(Error::is_rejected, move |key| self.exchange(tenant, key))
                    .await
            }
        }
    }
}

impl PartnerFetcher {
    /// One `create_token` exchange for `tenant` with `application_key`.
    async fn exchange(
        &self,
        tenant: &Tenant,
        application_key: Secret,
    ) -> Result<TokenState, Error> {
        let conn = &self.conn;
        let url = join_path(
            &conn.target.base,
            &[
                "partner_applications",
                &self.application_id,
                "tenants",
                tenant.id(),
                "create_token",
            ],
        )?;
        // An explicit empty body, so the POST carries `Content-Length: 0`: some front ends
        // refuse a POST without a length. The backend exchange spends nothing (the application
        // key stays good), so it may be repeated; the embedded one spends its session token.
        let repeat = match tenant.session_token() {
            Some(_) => Repeat::Once,
            None => Repeat::Safe,
        };
        let mut request = Request::post(url.clone(), repeat)
            .bearer(&application_key)?
            .header(CONTENT_LENGTH, "0")?;
        let mut session_token = None;
        if let Some(slot) = tenant.session_token() {
            // Taken before sending, so nothing (a renewal, the cache's retry after a failure) can
            // send it a second time while it may be in flight.
            let token = slot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .ok_or_else(|| Error::user_action(NEW_SESSION_TOKEN))?;
            request = request.secret_query("session_token", &token);
            session_token = Some(token);
        }
        debug!(
            tenant_id = %tenant.id(),
            embedded = session_token.is_some(),
            "requesting an aurora solar temporary key"
        );
        let response = match conn.http.send(request).await {
            Ok(response) => response,
            Err(failure) => {
                // Provably never reached Aurora (refused, no such host): nothing was spent, so
                // the session token goes back for a later attempt.
                if !failure.reached_server()
                    && let (Some(slot), Some(token)) = (tenant.session_token(), session_token)
                {
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
                }
                return Err(failure.into_error());
            }
        };
        // A 404 or a web page: the base URL or an id in the path names nothing there.
        if let Some(error) = wrong_endpoint(
            conn.target.setting(),
            &url,
            &response,
            Some(&format!(
                "{NOT_FOUND}: {APPLICATION_ID_VAR} and {TENANT_ID_VAR} make the path"
            )),
        ) {
            return Err(error);
        }
        if !response.status().is_success() {
            if session_token.is_some() && response.status().as_u16() == 401 {
                return Err(Error::user_action(NEW_SESSION_TOKEN));
            }
            let mut secrets = vec![&application_key];
            secrets.extend(session_token.as_ref());
            return Err(status_error(&response, NOT_FOUND, &secrets));
        }
        let body: CreateTokenResponse = response.json("create_token response")?;
        if body.token.bearer_token.trim().is_empty() {
            return Err(Error::malformed(
                "create_token response: `bearer_token` is empty",
            ));
        }
        // By Aurora's clock: judged by its `Date`, so a host whose clock is off serves no key
        // past its real expiry.
        let expires_at = response.local_time(
            parse_expires_at(&body.token.expires_at)?,
            self.conn.clock.now(),
        );
        let key = AccessToken::builder(body.token.bearer_token)
            .expires_at(expires_at)
            .build();
        Ok(TokenState::new(key))
    }
}

/// Builds a [`PartnerApp`]. Every setting is checked by [`build`](Self::build), which names the
/// one at fault (by its environment variable).
#[must_use]
#[derive(Debug, Default)]
pub struct PartnerAppBuilder {
    environment: Option<Environment>,
    base_url: Option<String>,
    application_id: Option<String>,
    application_key: Option<SecretSource>,
    tenant_id: Option<String>,
    session_token: Option<SecretSource>,
    require_tenant: bool,
    options: ProviderOptions,
    keyed: Option<KeyedConfig>,
}

impl PartnerAppBuilder {
    token_provider::from_env_methods!(
        vars: "`AURORA_SOLAR_ENV`, `AURORA_SOLAR_BASE_URL`, `AURORA_SOLAR_APPLICATION_ID`, \
               `AURORA_SOLAR_APPLICATION_KEY` (or `AURORA_SOLAR_APPLICATION_KEY_FILE`), \
               `AURORA_SOLAR_TENANT_ID` (required: it becomes the default tenant) and \
               `AURORA_SOLAR_SESSION_TOKEN` (or `AURORA_SOLAR_SESSION_TOKEN_FILE`; optional: \
               when set, the default tenant uses the embedded exchange)."
    );

    fn from_vars(vars: &EnvVars<'_>) -> Result<Self, Error> {
        Ok(Self {
            environment: env_from(vars)?,
            base_url: vars.get(BASE_URL_VAR),
            application_id: vars.get(APPLICATION_ID_VAR),
            application_key: vars.secret(APPLICATION_KEY_VAR)?,
            tenant_id: vars.get(TENANT_ID_VAR),
            session_token: vars.secret(SESSION_TOKEN_VAR)?,
            require_tenant: true,
            ..Self::default()
        })
    }

    target_setters!();

    token_provider::builder_setters! {
        /// The application id Aurora issued (`AURORA_SOLAR_APPLICATION_ID`). Required.
        application_id: impl Into<String>,
        /// The application key (`AURORA_SOLAR_APPLICATION_KEY`): a value, or a file read again when
        /// it changes ([`SecretSource`]). Required. A key that looks like the other environment's
        /// is refused.
        application_key: impl Into<SecretSource>,
        /// A default tenant (`AURORA_SOLAR_TENANT_ID`), which makes the [`PartnerApp`] itself a
        /// [`TokenProvider`] for it.
        tenant_id: impl Into<String>,
        /// A session token for the default tenant (`AURORA_SOLAR_SESSION_TOKEN`): the default
        /// tenant then uses the embedded exchange (see [`PartnerApp::embedded`]). Needs
        /// [`tenant_id`](Self::tenant_id). Single use: a file is read once, when the provider is
        /// built.
        session_token: impl Into<SecretSource>,
    }

    token_provider::provider_options_setters!(store_key: "`aurora-solar|<environment or host>|<tenant id>|<application id>`");

    token_provider::builder_setters! {
        /// How many tenants' keys are kept, and for how long unused (default: 10,000 tenants, 13
        /// hours).
        keyed: KeyedConfig,
    }

    /// The partner app. Nothing is sent.
    pub fn build(self) -> Result<PartnerApp, Error> {
        let target = Target::resolve(self.environment, self.base_url.as_deref())?;
        let application_id = required_id(APPLICATION_ID_VAR, self.application_id.as_deref())?;
        let application_key =
            target.check_key(APPLICATION_KEY_VAR, self.application_key.as_ref())?;
        let tenant_id = match self.tenant_id.as_deref() {
            Some(t) => Some(required_id(TENANT_ID_VAR, Some(t))?),
            None if self.require_tenant || self.session_token.is_some() => {
                return Err(Error::config(TENANT_ID_VAR, "is required"));
            }
            None => None,
        };
        let session_token = self.session_token.as_ref().map(SecretSource::current);
        if session_token.as_ref().is_some_and(Secret::is_empty) {
            return Err(Error::config(SESSION_TOKEN_VAR, "is empty"));
        }
        let conn = Arc::new(Conn::new(target, application_key, &self.options)?);
        let fetcher = || PartnerFetcher {
            conn: Arc::clone(&conn),
            application_id: application_id.clone(),
        };
        let cache = self.options.resolved_cache("aurora-solar");
        let keyed = self
            .keyed
            .unwrap_or_else(|| KeyedConfig::new().idle_expiry(TEMPORARY_KEY_LIFETIME));
        // The session token is the proof that a user of this tenant acted: an embedded provider
        // exchanges it before it hands out any key, so it neither adopts a stored key nor
        // shares one (a garbage session token must never yield the tenant's key).
        let embedded = KeyedCache::new(fetcher(), cache.clone().without_store(), keyed.clone());
        let tenants = Keyed::new(KeyedCache::new(fetcher(), cache, keyed));
        let mut app = PartnerApp { tenants, embedded };
        let default = match (tenant_id, session_token) {
            (Some(tenant), Some(session)) => Some(app.embedded(tenant, session)?),
            (Some(tenant), None) => Some(app.tenant(tenant)?),
            (None, _) => None,
        };
        app.tenants.set_default(default);
        Ok(app)
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    /// What each of thousands of tenants adds to its cache slot: the id alone (a field added
    /// here is paid once per tenant).
    #[test]
    fn a_tenant_costs_its_id_alone() {
        assert_eq!(std::mem::size_of::<super::Tenant>(), 16);
    }
}
