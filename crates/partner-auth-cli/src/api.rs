//! `partner-auth api`: one authenticated request to a provider's API, through the library's
//! 401-retrying client, and only to that provider's API.

use std::io::{IsTerminal, Read};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::header::{CONTENT_TYPE, HeaderName};
use http::{HeaderMap, Method, StatusCode};
use partner_auth::auth::{AuthHeader, AuthScope, execute_authorized};
use partner_auth::token_provider::http::{Repeat, Request, Response, parse_base_url};
use partner_auth::{AccessToken, Error, TokenProvider, async_trait};
use url::Url;

use crate::args::{ApiArgs, Provider};
use crate::exit::{EXIT_CONFIG, EXIT_HTTP_ERROR, Failure};
use crate::setup::{self, Lookup, var};

/// Aurora UK's API base, replacing the environment's.
const AURORA_UK_API_URL: &str = "AURORA_UK_API_URL";
/// The header Aurora UK's API reads the token from.
const AURORA_UK_AUTH_HEADER: &str = "AURORA_UK_AUTH_HEADER";

/// What a run printed and how it ended.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The bytes for stdout (the body, after the head with `-i`).
    pub(crate) stdout: Vec<u8>,
    /// Why the run fails although the API answered (an HTTP error status, or a state that
    /// could not be saved).
    pub(crate) failure: Option<Failure>,
    /// A line for stderr: the token was fetched without the store, which could not be reached.
    pub(crate) warning: Option<String>,
}

/// Sends the request `args` describe and returns what to print.
pub(crate) async fn run(args: &ApiArgs, lookup: Lookup<'_>) -> Result<Answer, Failure> {
    let kind = args.provider.kind();
    let fail = |e: Error| Failure::from_error(Some(kind), &e);
    if args.provider == Provider::AuroraSolarSdk {
        return Err(Failure::new(
            EXIT_CONFIG,
            Some(kind),
            "the Client SDK JWT opens no REST API; call the API with `partner-auth api aurora-solar`",
        ));
    }
    // Everything about the request is settled before a token is fetched: a request that
    // cannot go out costs no token, and a URL off the API never sees one.
    let base = api_base(lookup, args.provider).map_err(fail)?;
    let url = target_url(&base, &args.target).map_err(|e| match e {
        Target::Invalid => Failure::new(
            EXIT_CONFIG,
            Some(kind),
            "the PATH|URL argument is not a valid path or URL (see `partner-auth api --help`)",
        ),
        Target::OffApi => Failure::new(
            EXIT_CONFIG,
            Some(kind),
            format!(
                "the URL is not on the provider's API ({}): the token is sent only there; \
                 nothing was sent",
                base.as_str().trim_end_matches('/')
            ),
        ),
    })?;
    let (_, header) = auth_header(lookup, args.provider).map_err(fail)?;
    // The library's own scoping agrees: the token goes to the API's origin only.
    let scope = AuthScope::new(&base).map_err(fail)?;
    let request = request(args, url, &header).map_err(fail)?;

    let store = setup::store(lookup, args.store.store.as_deref()).map_err(fail)?;
    let options = setup::options(lookup, store.clone().map(|s| s as _)).map_err(fail)?;
    let http = options
        .http
        .clone()
        .expect("setup::options sets the client");
    let provider = Tracked {
        inner: setup::provider(lookup, kind, &options).map_err(fail)?,
        token_failed: AtomicBool::new(false),
    };
    setup::announce_store_folder(lookup, args.store.store.as_deref()).map_err(fail)?;
    match execute_authorized(&provider, &http, &header, &scope, &request).await {
        Ok(response) => {
            let status = response.status();
            let failure = if status.is_success() {
                provider
                    .inner
                    .store_error()
                    .map(|e| Failure::not_saved(kind, "the API answered", &e))
            } else {
                Some(Failure::new(
                    EXIT_HTTP_ERROR,
                    Some(kind),
                    format!("the API answered HTTP {}", status_text(status)),
                ))
            };
            let pretty = std::io::stdout().is_terminal();
            Ok(Answer {
                stdout: render(&response, args.include, pretty),
                failure,
                warning: store.and_then(|s| s.not_shared_warning()),
            })
        }
        // Getting the token failed: the token command's statuses.
        Err(e) if provider.token_failed.load(Ordering::Relaxed) => Err(fail(e)),
        // The API answered with an error status the HTTP client does not hand back (3xx, and
        // 5xx, 408 and 429 once the retries ran out, with or without a `Retry-After`).
        Err(Error::Status { status, .. }) => Err(Failure::new(
            EXIT_HTTP_ERROR,
            Some(kind),
            format!("the API answered HTTP {status} (after the retries)"),
        )),
        // The same, from a server that said when to come back (`Retry-After`).
        Err(Error::Unavailable {
            status,
            retry_after,
            ..
        }) => Err(Failure::new(
            EXIT_HTTP_ERROR,
            Some(kind),
            format!(
                "the API answered HTTP {status} (after the retries; it asks to wait {} s)",
                retry_after.as_secs()
            ),
        )),
        Err(Error::RateLimited { retry_after, .. }) => Err(Failure::new(
            EXIT_HTTP_ERROR,
            Some(kind),
            match retry_after {
                Some(after) => format!(
                    "the API answered HTTP 429 (rate limited past the retries; it asks to wait {} s)",
                    after.as_secs()
                ),
                None => "the API answered HTTP 429 (rate limited past the retries)".to_owned(),
            },
        )),
        Err(e) => Err(fail(e)),
    }
}

/// The base URL of `provider`'s API as the environment configures it.
pub(crate) fn api_base(lookup: Lookup<'_>, provider: Provider) -> Result<Url, Error> {
    use partner_auth::{aerion, aurora_solar, aurora_uk};
    let (field, value) = match provider {
        Provider::Aerion => (
            aerion::ENV_BASE_URL,
            var(lookup, aerion::ENV_BASE_URL).unwrap_or_else(|| aerion::DEFAULT_BASE_URL.into()),
        ),
        Provider::AuroraUk => match var(lookup, AURORA_UK_API_URL) {
            Some(url) => (AURORA_UK_API_URL, url),
            None => {
                let env = var(lookup, "AURORA_UK_ENV").ok_or_else(|| {
                    Error::config("AURORA_UK_ENV", "is required (or AURORA_UK_API_URL)")
                })?;
                let env = aurora_uk::Environment::from_str(&env)?;
                (AURORA_UK_API_URL, env.api_base().to_owned())
            }
        },
        Provider::AuroraSolar => match var(lookup, "AURORA_SOLAR_BASE_URL") {
            Some(url) => ("AURORA_SOLAR_BASE_URL", url),
            None => {
                let env = var(lookup, "AURORA_SOLAR_ENV").ok_or_else(|| {
                    Error::config(
                        "AURORA_SOLAR_ENV",
                        "is required unless AURORA_SOLAR_BASE_URL is set",
                    )
                })?;
                let env = aurora_solar::Environment::from_str(&env)?;
                ("AURORA_SOLAR_BASE_URL", env.base_url().to_owned())
            }
        },
        Provider::AuroraSolarSdk => {
            return Err(Error::config(
                "provider",
                "must have a REST API: the Client SDK JWT opens none",
            ));
        }
    };
    parse_base_url(field, &value)
}

/// The header `provider`'s API reads the token from, as the user spells it and as sent.
pub(crate) fn auth_header(
    lookup: Lookup<'_>,
    provider: Provider,
) -> Result<(String, AuthHeader), Error> {
    match provider {
        Provider::AuroraUk => match var(lookup, AURORA_UK_AUTH_HEADER) {
            Some(name) => {
                let name = name.trim().to_owned();
                let header = AuthHeader::named(&name).map_err(|_| {
                    Error::config(AURORA_UK_AUTH_HEADER, "is not a valid HTTP header name")
                })?;
                Ok((name, header))
            }
            None => Ok(("Authorization".to_owned(), AuthHeader::default())),
        },
        _ => Ok(("Authorization".to_owned(), AuthHeader::default())),
    }
}

/// Why a PATH|URL argument was refused (the argument itself is never quoted).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Not a path, or a URL that does not parse or carries credentials.
    Invalid,
    /// A URL outside the API base: another scheme, host or port, or outside its path.
    OffApi,
}

/// `target` (a path, or a full URL) resolved against `base`, and checked to stay on it.
pub(crate) fn target_url(base: &Url, target: &str) -> Result<Url, Target> {
    let mut url = if target.contains("://") {
        Url::parse(target).map_err(|_| Target::Invalid)?
    } else {
        let path = target.strip_prefix('/').unwrap_or(target);
        Url::parse(&format!("{}/{path}", base.as_str().trim_end_matches('/')))
            .map_err(|_| Target::Invalid)?
    };
    url.set_fragment(None);
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Target::Invalid);
    }
    // Compared after parsing, so dot segments (`/aerion/../other`, `%2e%2e`) are already
    // resolved and cannot climb out of the base.
    let same_origin = url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default();
    let base_path = base.path().trim_end_matches('/');
    let under_base = base_path.is_empty()
        || url.path() == base_path
        || url
            .path()
            .strip_prefix(base_path)
            .is_some_and(|rest| rest.starts_with('/'));
    if same_origin && under_base {
        Ok(url)
    } else {
        Err(Target::OffApi)
    }
}

/// The request: method, headers and body from the arguments.
fn request(args: &ApiArgs, url: Url, auth: &AuthHeader) -> Result<Request, Error> {
    let body = match (&args.data, &args.input) {
        (Some(data), _) => Some(data.clone().into_bytes()),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .map_err(|e| Error::config("--input", format!("cannot read stdin: {e}")))?;
            Some(body)
        }
        (None, Some(path)) => Some(
            std::fs::read(path)
                .map_err(|e| Error::config("--input", format!("cannot be read: {e}")))?,
        ),
        (None, None) => None,
    };
    let method = match &args.method {
        Some(method) => Method::from_bytes(method.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| Error::config("-X", "is not an HTTP method"))?,
        None if body.is_some() => Method::POST,
        None => Method::GET,
    };
    // A request that is not idempotent is repeated (on a 5xx or a timeout) only when it never
    // reached the server. The one 401 replay still happens: the API refused it unread.
    let idempotent = [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
        Method::TRACE,
    ]
    .contains(&method);
    let repeat = if idempotent {
        Repeat::Safe
    } else {
        Repeat::Once
    };
    let mut request = Request::new(method, url, repeat);
    let mut has_content_type = false;
    for (n, header) in args.headers.iter().enumerate() {
        let field = format!("-H (header {})", n + 1);
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| Error::config(field.clone(), "must be `Name: value`"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| Error::config(field.clone(), "does not have a valid header name"))?;
        if name == *auth.name() {
            return Err(Error::config(
                field,
                "sets the header the token goes in; partner-auth sets it",
            ));
        }
        has_content_type |= name == CONTENT_TYPE;
        request = request
            .header(name, value.trim())
            .map_err(|_| Error::config(field, "has characters not allowed in a header value"))?;
    }
    if let Some(body) = body {
        let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok();
        if is_json && !has_content_type {
            request = request.header(CONTENT_TYPE, "application/json")?;
        }
        request = request.body(body);
    }
    Ok(request)
}

/// `200 OK`, or the bare code when the status has no reason phrase.
fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// What stdout gets: with `include` the status line and headers, then the body (pretty JSON
/// when `pretty` and the body is JSON, else as received).
fn render(response: &Response, include: bool, pretty: bool) -> Vec<u8> {
    let head = include.then(|| head(response.status(), response.headers()));
    render_parts(head.as_deref(), response.body(), pretty)
}

/// [`render`] from the parts: the head (if shown) and the body. On a terminal (`pretty`) JSON
/// is indented and any body ends with a newline, so the prompt does not follow the last line;
/// through a pipe the body is exactly as received.
fn render_parts(head: Option<&str>, body: &[u8], pretty: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(head) = head {
        out.extend_from_slice(head.as_bytes());
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) if pretty => {
            let text = serde_json::to_string_pretty(&value).expect("a JSON value serializes");
            out.extend_from_slice(text.as_bytes());
            out.push(b'\n');
        }
        _ => {
            out.extend_from_slice(body);
            if pretty && !body.is_empty() && !body.ends_with(b"\n") {
                out.push(b'\n');
            }
        }
    }
    out
}

/// `HTTP <status>`, one `name: value` line per header, and a blank line.
fn head(status: StatusCode, headers: &HeaderMap) -> String {
    let mut head = format!("HTTP {}\n", status_text(status));
    for (name, value) in headers {
        head.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    head.push('\n');
    head
}

/// The provider, noting whether getting a token failed, so a failure is reported with the
/// token's exit status rather than as an API error.
#[derive(Debug)]
struct Tracked {
    inner: Arc<dyn TokenProvider>,
    token_failed: AtomicBool,
}

#[async_trait]
impl TokenProvider for Tracked {
    async fn token(&self) -> Result<AccessToken, Error> {
        let token = self.inner.get().await;
        if token.is_err() {
            self.token_failed.store(true, Ordering::Relaxed);
        }
        token
    }

    fn fresh(&self) -> Option<AccessToken> {
        self.inner.fresh()
    }

    fn invalidate(&self, rejected: &AccessToken) {
        self.inner.invalidate(rejected);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn a_body_on_a_terminal_ends_with_a_newline() {
        let terminal = |body: &[u8]| render_parts(None, body, true);
        assert_eq!(terminal(b"plain text"), b"plain text\n");
        assert_eq!(terminal(b"line\n"), b"line\n");
        assert_eq!(terminal(b""), b"");
        assert_eq!(terminal(br#"{"a":1}"#), b"{\n  \"a\": 1\n}\n");
        // Through a pipe, the body is as received.
        assert_eq!(render_parts(None, b"plain text", false), b"plain text");
    }

    #[test]
    fn paths_join_the_base_and_full_urls_must_stay_on_it() {
        let base = url("http://127.0.0.1:4000/aerion");
        let ok = |t: &str| target_url(&base, t).unwrap().to_string();
        assert_eq!(
            ok("/v1/users/me"),
            "http://127.0.0.1:4000/aerion/v1/users/me"
        );
        assert_eq!(
            ok("v1/users/me"),
            "http://127.0.0.1:4000/aerion/v1/users/me"
        );
        assert_eq!(
            ok("/v1/x?page=2#frag"),
            "http://127.0.0.1:4000/aerion/v1/x?page=2"
        );
        assert_eq!(
            ok("http://127.0.0.1:4000/aerion/v1/users/me"),
            "http://127.0.0.1:4000/aerion/v1/users/me"
        );
        for off in [
            "http://127.0.0.2:4000/aerion/v1/users/me",
            "http://localhost:4000/aerion/v1/users/me",
            "http://127.0.0.1:4001/aerion/v1/users/me",
            "https://127.0.0.1:4000/aerion/v1/users/me",
            "http://127.0.0.1:4000/aurora-solar/tenants",
            "http://127.0.0.1:4000/aerionx/v1",
            "/../aurora-solar/tenants",
            "/%2e%2e/aurora-solar/tenants",
            "http://127.0.0.1:4000/aerion/../aurora-solar",
        ] {
            assert_eq!(target_url(&base, off), Err(Target::OffApi), "{off}");
        }
        assert_eq!(
            target_url(&base, "http://user:pw@127.0.0.1:4000/aerion/v1"),
            Err(Target::Invalid)
        );
        assert_eq!(target_url(&base, "http://[::1"), Err(Target::Invalid));
        // A base at the root takes any path on its origin; the default port counts as given.
        let root = url("https://api.aerion.app");
        assert!(target_url(&root, "https://api.aerion.app:443/v1/users/me").is_ok());
        assert_eq!(
            target_url(&root, "https://api.aerion.app.evil.test/v1"),
            Err(Target::OffApi)
        );
    }

    #[test]
    fn bodies_are_pretty_only_for_a_terminal_and_json() {
        let body = br#"{"a":[1,2]}"#;
        assert_eq!(render_parts(None, body, false), body);
        assert_eq!(
            String::from_utf8(render_parts(None, body, true)).unwrap(),
            "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n"
        );
        assert_eq!(render_parts(None, b"not json", true), b"not json\n");
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        let head = head(StatusCode::NOT_FOUND, &headers);
        assert_eq!(
            head,
            "HTTP 404 Not Found\ncontent-type: application/json\n\n"
        );
        assert_eq!(
            render_parts(Some(&head), b"{}", false),
            format!("{head}{{}}").into_bytes()
        );
    }

    #[test]
    fn api_bases_follow_the_environment() {
        use token_provider::testing::lookup as table;
        let none = table(&[]);
        assert_eq!(
            api_base(&none, Provider::Aerion).unwrap().as_str(),
            "https://api.aerion.app/"
        );
        let uk = table(&[("AURORA_UK_ENV", "live")]);
        assert_eq!(
            api_base(&uk, Provider::AuroraUk).unwrap().as_str(),
            "https://api.client.integration.aurora.co.uk/"
        );
        let uk = table(&[("AURORA_UK_ENV", "dev")]);
        assert_eq!(
            api_base(&uk, Provider::AuroraUk).unwrap().as_str(),
            "https://dev.client.integration.aurora.co.uk/"
        );
        let uk = table(&[
            ("AURORA_UK_ENV", "dev"),
            ("AURORA_UK_API_URL", "http://example.test"),
        ]);
        let err = api_base(&uk, Provider::AuroraUk).unwrap_err().to_string();
        assert!(
            err.contains("AURORA_UK_API_URL") && err.contains("https"),
            "{err}"
        );
        let solar = table(&[("AURORA_SOLAR_ENV", "production")]);
        assert_eq!(
            api_base(&solar, Provider::AuroraSolar).unwrap().as_str(),
            "https://api.aurorasolar.com/"
        );
        let err = api_base(&none, Provider::AuroraSolar)
            .unwrap_err()
            .to_string();
        assert!(err.contains("AURORA_SOLAR_ENV"), "{err}");
        let err = api_base(&solar, Provider::AuroraSolarSdk)
            .unwrap_err()
            .to_string();
        assert!(err.contains("REST API"), "{err}");
    }

    #[test]
    fn the_aurora_uk_header_is_configurable() {
        let named =
            |name: &str| (name == AURORA_UK_AUTH_HEADER).then(|| "Authentication".to_owned());
        let (shown, header) = auth_header(&named, Provider::AuroraUk).unwrap();
        assert_eq!(shown, "Authentication");
        assert_eq!(header.name().as_str(), "authentication");
        let (shown, _) = auth_header(&named, Provider::Aerion).unwrap();
        assert_eq!(shown, "Authorization");
        let bad = |name: &str| (name == AURORA_UK_AUTH_HEADER).then(|| "Bad Header".to_owned());
        let err = auth_header(&bad, Provider::AuroraUk)
            .unwrap_err()
            .to_string();
        assert!(err.contains(AURORA_UK_AUTH_HEADER), "{err}");
    }
}
