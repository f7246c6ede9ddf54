//! The server: one axum fallback handler that records, routes, injects faults and dispatches
//! to the routes each provider module registers.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::State as AxumState;
use axum::response::Response;
use http::StatusCode;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{
    AerionErrorShape, AuroraSolarUser, ClockOffset, Emulator, EmulatorBuilder, EmulatorConfig,
};
use crate::fault::{Endpoint, Fault, fault_response, json_response};
use crate::record::{AerionRefresh, RecordedRequest};
use crate::route::Routes;
use crate::state::{Ctx, Shared, State, random_token};
use crate::{aerion, aurora_solar, aurora_uk};

/// The largest request body the emulator reads.
const MAX_REQUEST_BODY: usize = 4 * 1024 * 1024;

/// A running emulator. Shut down by [`shutdown`](Self::shutdown) or on drop.
pub struct RunningEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("url", &self.shared.url)
            .finish_non_exhaustive()
    }
}

/// What the axum handler is given: the shared state and the route table.
struct App {
    shared: Arc<Shared>,
    routes: Routes,
}

/// Answers `request`, dated by the emulator's clock (offset included) as a provider's answers
/// are dated by its own.
async fn handle(AxumState(app): AxumState<Arc<App>>, request: http::Request<Body>) -> Response {
    let shared = Arc::clone(&app.shared);
    let mut response = answer(app, request).await;
    let now = shared.now(&shared.lock());
    if let Ok(date) = http::HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
        response.headers_mut().insert(http::header::DATE, date);
    }
    response
}

async fn answer(app: Arc<App>, request: http::Request<Body>) -> Response {
    let shared = &app.shared;
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &serde_json::json!({"error": "request body too large or unreadable"}),
            );
        }
    };
    let found = app.routes.find(&parts.method, parts.uri.path());
    let endpoint = found.as_ref().ok().map(|(route, _)| route.endpoint());
    let fault = {
        let mut state = shared.lock();
        let fault = endpoint.and_then(|e| state.faults.take(e));
        state.requests.push(RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
            endpoint,
            fault: fault.clone(),
        });
        fault
    };
    let mut ctx = Ctx {
        headers: parts.headers,
        query: parts.uri.query().map(str::to_owned),
        body,
        expires_in: None,
        params: Vec::new(),
    };
    let mut hold = None;
    if let (Some(fault), Some(endpoint)) = (fault, endpoint) {
        match fault {
            Fault::Delay(wait) => {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shared.stopped() => return stopping(),
                }
            }
            Fault::Hang => {
                shared.stopped().await;
                return stopping();
            }
            Fault::ExpiresIn(seconds) => ctx.expires_in = Some(seconds),
            Fault::DelayAfter(wait) => hold = Some(wait),
            fault => {
                let summary = matches!(endpoint, Endpoint::AerionToken | Endpoint::AerionMe)
                    && shared.config.aerion_error_shape == AerionErrorShape::Summary;
                return fault_response(endpoint, &fault, summary);
            }
        }
    }
    let route = match found {
        Ok((route, params)) => {
            ctx.params = params;
            route
        }
        Err(status) => {
            let error = if status == StatusCode::NOT_FOUND {
                "not_found"
            } else {
                "method_not_allowed"
            };
            return json_response(status, &serde_json::json!({ "error": error }));
        }
    };
    let response = {
        let mut state = shared.lock();
        let now = shared.now(&state);
        route.answer(shared, &mut state, &ctx, now)
    };
    if let Some(wait) = hold {
        // Processed already: at shutdown the answer goes out rather than a 503 that would
        // tell the client nothing was spent.
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.stopped() => {}
        }
    }
    response
}

fn stopping() -> Response {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({"error": "emulator shutting down"}),
    )
}

impl Emulator {
    /// Starts an emulator with the defaults on a free loopback port.
    pub async fn start() -> std::io::Result<RunningEmulator> {
        Self::builder().start().await
    }
}

impl EmulatorBuilder {
    /// Binds `127.0.0.1:<port>` and serves in a background task of the current tokio runtime.
    pub async fn start(self) -> std::io::Result<RunningEmulator> {
        start(self.config).await
    }
}

async fn start(config: EmulatorConfig) -> std::io::Result<RunningEmulator> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, config.port)).await?;
    let addr = listener.local_addr()?;
    let (stop, stop_rx) = watch::channel(false);
    let mut state = State {
        offset: config.clock_offset,
        ..State::default()
    };
    for tenant in &config.aurora_solar_tenants {
        state
            .solar_users
            .insert(tenant.clone(), config.aurora_solar_users.clone());
    }
    let shared = Arc::new(Shared {
        url: format!("http://{addr}"),
        config,
        state: Mutex::new(state),
        stop: stop_rx.clone(),
    });
    let mut routes = Routes::default();
    aerion::register(&mut routes);
    aurora_uk::register(&mut routes);
    aurora_solar::register(&mut routes);
    let app = Router::new().fallback(handle).with_state(Arc::new(App {
        shared: Arc::clone(&shared),
        routes,
    }));
    let mut signal = stop_rx;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = signal.wait_for(|s| *s).await;
            })
            .await;
    });
    Ok(RunningEmulator {
        shared,
        addr,
        stop,
        task: Some(task),
    })
}

impl RunningEmulator {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration it started with.
    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    /// Aerion's base URL, `{url}/aerion` (`AERION_BASE_URL`).
    pub fn aerion_base(&self) -> String {
        format!("{}/aerion", self.url())
    }

    /// Aerion's token endpoint, `{url}/aerion/oauth2/token`.
    pub fn aerion_token_url(&self) -> String {
        format!("{}/aerion/oauth2/token", self.url())
    }

    /// The Aerion tenant of the first configured user (for `AERION_COMPANY_URL`).
    pub fn aerion_tenant(&self) -> &str {
        self.config()
            .aerion_users
            .first()
            .map(|u| u.tenant.as_str())
            .or_else(|| self.config().aerion_tenants.first().map(String::as_str))
            .unwrap_or_default()
    }

    /// The Aurora UK issuer, `{url}/aurora-uk/` (trailing slash included; `AURORA_UK_ISSUER`).
    pub fn aurora_uk_issuer(&self) -> String {
        self.shared.issuer()
    }

    /// The Aurora UK token endpoint, `{url}/aurora-uk/oauth/token`.
    pub fn aurora_uk_token_url(&self) -> String {
        format!("{}/aurora-uk/oauth/token", self.url())
    }

    /// The Aurora UK API base, `{url}/aurora-uk/api` (the protected `Accounts` lives under it).
    pub fn aurora_uk_api_base(&self) -> String {
        format!("{}/aurora-uk/api", self.url())
    }

    /// The audience Aurora UK token requests must name (`AURORA_UK_AUDIENCE`).
    pub fn aurora_uk_audience(&self) -> &str {
        &self.config().aurora_uk_audience
    }

    /// Aurora Solar's base URL, `{url}/aurora-solar` (`AURORA_SOLAR_BASE_URL`).
    pub fn aurora_solar_base(&self) -> String {
        format!("{}/aurora-solar", self.url())
    }

    /// The first configured Aurora Solar tenant (`AURORA_SOLAR_TENANT_ID`).
    pub fn aurora_solar_tenant(&self) -> &str {
        self.config()
            .aurora_solar_tenants
            .first()
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// The SPEC section 5 environment variables that point the `partner-auth` CLI and the
    /// examples at this emulator, with its credentials. `AURORA_SOLAR_SESSION_TOKEN` is not
    /// among them (it is single use: see [`issue_session_token`](Self::issue_session_token)).
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        let c = self.config();
        let mut vars = vec![("AERION_BASE_URL", self.aerion_base())];
        vars.push(("AERION_COMPANY_URL", self.aerion_tenant().to_owned()));
        if let Some(user) = c.aerion_users.first() {
            vars.push(("AERION_USERNAME", user.username.clone()));
            vars.push(("AERION_PASSWORD", user.password.clone()));
        }
        vars.extend([
            (
                "AERION_CLIENT_ID",
                crate::config::DEFAULT_AERION_CLIENT_ID.to_owned(),
            ),
            (
                "AERION_CLIENT_SECRET",
                crate::config::DEFAULT_AERION_CLIENT_SECRET.to_owned(),
            ),
            ("AURORA_UK_ENV", "dev".to_owned()),
            ("AURORA_UK_ISSUER", self.aurora_uk_issuer()),
            ("AURORA_UK_AUDIENCE", c.aurora_uk_audience.clone()),
            ("AURORA_UK_CLIENT_ID", c.aurora_uk_client_id.clone()),
            ("AURORA_UK_CLIENT_SECRET", c.aurora_uk_client_secret.clone()),
            ("AURORA_UK_API_URL", self.aurora_uk_api_base()),
            ("AURORA_SOLAR_ENV", "sandbox".to_owned()),
            ("AURORA_SOLAR_BASE_URL", self.aurora_solar_base()),
            (
                "AURORA_SOLAR_APPLICATION_ID",
                c.aurora_solar_application_id.clone(),
            ),
            (
                "AURORA_SOLAR_APPLICATION_KEY",
                c.aurora_solar_application_key.clone(),
            ),
            (
                "AURORA_SOLAR_TENANT_ID",
                self.aurora_solar_tenant().to_owned(),
            ),
            ("AURORA_SOLAR_API_KEY", c.aurora_solar_api_key.clone()),
        ]);
        if let Some(user) = c.aurora_solar_users.first() {
            vars.push(("AURORA_SOLAR_USER_EMAIL", user.email.clone()));
            vars.push(("AURORA_SOLAR_USER_FIRST_NAME", user.first_name.clone()));
            vars.push(("AURORA_SOLAR_USER_LAST_NAME", user.last_name.clone()));
        }
        vars
    }

    /// [`env_vars`](Self::env_vars) as `export VAR='value'` lines for a POSIX shell.
    pub fn export_lines(&self) -> String {
        self.env_vars()
            .iter()
            .map(|(name, value)| format!("export {name}={}\n", shell_quote(value)))
            .collect()
    }

    /// What a program serving the emulator prints on start: a comment naming it, an `unset` of
    /// the variables that would change which flow runs, the [`export_lines`](Self::export_lines),
    /// and one fresh single-use session token as a comment.
    pub fn banner(&self) -> String {
        let session = self.issue_session_token(self.aurora_solar_tenant());
        format!(
            "# partner-auth emulator on {} (emulator-only test credentials)\n\
             unset AERION_ORIGIN AERION_REFRESH_TOKEN AURORA_SOLAR_SESSION_TOKEN\n\
             {}\
             # one single-use session token for an embedded Aurora Solar exchange:\n\
             # export AURORA_SOLAR_SESSION_TOKEN={session}\n",
            self.url(),
            self.export_lines(),
        )
    }

    /// The emulator's current time (its clock plus the offset).
    pub fn now(&self) -> SystemTime {
        let state = self.shared.lock();
        self.shared.now(&state)
    }

    /// Moves the emulator's clock: later `expires_at`/`exp` values and every expiry check follow.
    pub fn set_clock_offset(&self, offset: impl Into<ClockOffset>) {
        self.shared.lock().offset = offset.into();
    }

    /// The current clock offset.
    pub fn clock_offset(&self) -> ClockOffset {
        self.shared.lock().offset
    }

    /// Makes the next `times` requests to `endpoint` fail with `fault`. Faults queued for one
    /// endpoint are consumed in the order injected, one per request.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        self.shared.lock().faults.push(endpoint, fault, times);
    }

    /// How many injected faults are still waiting for requests to `endpoint`.
    pub fn pending_faults(&self, endpoint: Endpoint) -> u32 {
        self.shared.lock().faults.pending(endpoint)
    }

    /// Drops every fault not yet consumed.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Every request received, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The requests whose path starts with `path_prefix` (e.g. `/aerion/`).
    pub fn requests_to(&self, path_prefix: &str) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    /// The requests that addressed `endpoint`.
    pub fn requests_for(&self, endpoint: Endpoint) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.endpoint == Some(endpoint))
            .cloned()
            .collect()
    }

    /// How many requests addressed `endpoint`.
    pub fn request_count(&self, endpoint: Endpoint) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.endpoint == Some(endpoint))
            .count()
    }

    /// The refresh tokens that were presented to Aerion's token endpoint more than once (a
    /// rotated one spent twice), each once, in the order of their second presentation.
    pub fn aerion_refresh_tokens_presented_twice(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut twice = Vec::new();
        for request in self.requests_for(Endpoint::AerionToken) {
            if let Some(rt) = request.form_param("refresh_token")
                && !seen.insert(rt.clone())
                && !twice.contains(&rt)
            {
                twice.push(rt);
            }
        }
        twice
    }

    /// Every Aerion refresh grant processed, in the order processed (which differs from the
    /// order of arrival when a [`Fault::Delay`] holds one back): each refresh token presented,
    /// and whether it was accepted and what was issued for it.
    pub fn aerion_refreshes(&self) -> Vec<AerionRefresh> {
        self.shared.lock().aerion_refreshes.clone()
    }

    /// How many requests the Aurora Solar rate limit refused with 429 (see
    /// [`EmulatorBuilder::aurora_solar_rate_limit`](crate::EmulatorBuilder::aurora_solar_rate_limit)).
    pub fn rate_limited(&self) -> usize {
        self.shared.lock().rate_limited
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Rotates Aurora UK's client secret: from now on only `secret` is accepted (the
    /// configured one, or the one set before, is refused with 401).
    pub fn set_aurora_uk_client_secret(&self, secret: impl Into<String>) {
        self.shared.lock().aurora_uk_client_secret = Some(secret.into());
    }

    /// Rotates Aurora Solar's application key: from now on only `key` is accepted (the
    /// configured one, or the one set before, is refused with 401).
    pub fn set_aurora_solar_application_key(&self, key: impl Into<String>) {
        self.shared.lock().aurora_solar_application_key = Some(key.into());
    }

    /// Revokes every Aerion refresh token behind the clients' backs.
    pub fn revoke_refresh_tokens(&self) {
        self.shared.lock().aerion_refresh.clear();
    }

    /// The one refresh token Aerion accepts now for `username`, if any.
    pub fn current_refresh_token(&self, username: &str) -> Option<String> {
        self.shared.lock().aerion_refresh.get(username).cloned()
    }

    /// Issues a refresh token for an Aerion user as an SSO login would (for
    /// `AERION_REFRESH_TOKEN`), replacing the user's current one. `None` for an unknown user.
    pub fn issue_refresh_token(&self, username: &str) -> Option<String> {
        self.config()
            .aerion_users
            .iter()
            .any(|u| u.username == username)
            .then(|| {
                let token = random_token(40);
                self.shared
                    .lock()
                    .aerion_refresh
                    .insert(username.to_owned(), token.clone());
                token
            })
    }

    /// Revokes every access token and temporary key issued so far (the protected resources
    /// answer 401 to them).
    pub fn revoke_access_tokens(&self) {
        self.shared.lock().access_tokens.clear();
    }

    /// Issues a single-use Aurora Solar session token for `tenant`, valid for the configured
    /// session lifetime (1 h) on the emulator's clock.
    pub fn issue_session_token(&self, tenant: &str) -> String {
        let token = random_token(32);
        let mut state = self.shared.lock();
        let expires_at =
            self.shared.now(&state) + self.config().aurora_solar_session_token_lifetime;
        state.sessions.insert(
            token.clone(),
            crate::state::Session {
                tenant: tenant.to_owned(),
                expires_at,
                spent: false,
            },
        );
        token
    }

    /// The users of an Aurora Solar tenant, as the users endpoint would list them.
    pub fn aurora_solar_users(&self, tenant: &str) -> Vec<AuroraSolarUser> {
        self.shared
            .lock()
            .solar_users
            .get(tenant)
            .cloned()
            .unwrap_or_default()
    }

    /// Stops the server: no new connections; answers in flight (a hang or a delay included)
    /// end. Waits up to five seconds for the connections to close.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn shell_quote(value: &str) -> String {
    let plain = value.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b':' | b'@' | b'+')
    });
    if plain && !value.is_empty() {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}
