//! Faults on demand: what can go wrong, and where.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http_body::Frame;

/// One endpoint of the emulator, the target of a [`Fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `POST /aerion/oauth2/token` and `POST /aerion/v1/oauth2/token`.
    AerionToken,
    /// `GET /aerion/v1/users/me`.
    AerionMe,
    /// `GET /aurora-uk/.well-known/openid-configuration`.
    AuroraUkDiscovery,
    /// `GET /aurora-uk/.well-known/jwks.json`.
    AuroraUkJwks,
    /// `POST /aurora-uk/oauth/token`.
    AuroraUkToken,
    /// `GET /aurora-uk/api/Accounts`.
    AuroraUkApi,
    /// `POST /aurora-solar/partner_applications/{application_id}/tenants/{tenant_id}/create_token`.
    AuroraSolarCreateToken,
    /// `GET /aurora-solar/tenants/{tenant_id}/users`.
    AuroraSolarUsers,
    /// `POST /aurora-solar/tenants/{tenant_id}/users/invite`.
    AuroraSolarInvite,
    /// `POST /aurora-solar/tenants/{tenant_id}/users/{user_id}/generate_token`.
    AuroraSolarGenerateToken,
    /// `GET /aurora-solar/tenants/{tenant_id}/projects`.
    AuroraSolarProjects,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 11] = [
        Self::AerionToken,
        Self::AerionMe,
        Self::AuroraUkDiscovery,
        Self::AuroraUkJwks,
        Self::AuroraUkToken,
        Self::AuroraUkApi,
        Self::AuroraSolarCreateToken,
        Self::AuroraSolarUsers,
        Self::AuroraSolarInvite,
        Self::AuroraSolarGenerateToken,
        Self::AuroraSolarProjects,
    ];

    /// The endpoint's method and path template, e.g. `POST /aerion/oauth2/token`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::AerionToken => "POST /aerion/oauth2/token",
            Self::AerionMe => "GET /aerion/v1/users/me",
            Self::AuroraUkDiscovery => "GET /aurora-uk/.well-known/openid-configuration",
            Self::AuroraUkJwks => "GET /aurora-uk/.well-known/jwks.json",
            Self::AuroraUkToken => "POST /aurora-uk/oauth/token",
            Self::AuroraUkApi => "GET /aurora-uk/api/Accounts",
            Self::AuroraSolarCreateToken => {
                "POST /aurora-solar/partner_applications/{application_id}/tenants/{tenant_id}/create_token"
            }
            Self::AuroraSolarUsers => "GET /aurora-solar/tenants/{tenant_id}/users",
            Self::AuroraSolarInvite => "POST /aurora-solar/tenants/{tenant_id}/users/invite",
            Self::AuroraSolarGenerateToken => {
                "POST /aurora-solar/tenants/{tenant_id}/users/{user_id}/generate_token"
            }
            Self::AuroraSolarProjects => "GET /aurora-solar/tenants/{tenant_id}/projects",
        }
    }

    /// Whether the endpoint issues tokens (where [`Fault::ExpiresIn`] applies).
    pub fn issues_tokens(self) -> bool {
        matches!(
            self,
            Self::AerionToken
                | Self::AuroraUkToken
                | Self::AuroraSolarCreateToken
                | Self::AuroraSolarGenerateToken
        )
    }
}

/// Something going wrong on one request. Injected with
/// [`RunningEmulator::inject`](crate::RunningEmulator::inject).
///
/// Except for [`Delay`](Self::Delay), [`DelayAfter`](Self::DelayAfter) and
/// [`ExpiresIn`](Self::ExpiresIn), a faulted request is recorded but not processed: no token is
/// issued, no refresh token rotated, no session token spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// That status with a small JSON error body (500, 502, 503, ...).
    Status(u16),
    /// That status with the same body as [`Status`](Self::Status) and `Retry-After: <seconds>`:
    /// a server that is down (503, say) and says when to come back.
    StatusRetryAfter {
        /// The status code (503, 502, 408, ...).
        status: u16,
        /// The `Retry-After` value in seconds.
        retry_after: u64,
    },
    /// 429, with `Retry-After: <seconds>` when given.
    RateLimited {
        /// The `Retry-After` value in seconds, or no header.
        retry_after: Option<u64>,
    },
    /// Waits, then processes the request and answers normally: nothing is issued or spent
    /// before the wait ends.
    Delay(Duration),
    /// Processes the request at once (a token issued, a refresh token rotated, a session token
    /// spent), then holds the answer that long: the provider has acted and the client has not
    /// heard yet. At shutdown the answer is sent at once.
    DelayAfter(Duration),
    /// Never answers (until the client gives up or the emulator shuts down).
    Hang,
    /// 200 with a body that is not JSON (though labelled `application/json`).
    MalformedBody,
    /// 200 with a JSON answer of the endpoint's shape cut in half (a well-formed HTTP message).
    TruncatedJson,
    /// 200 with a body of exactly that many bytes and a `Content-Length` saying so.
    OversizedBody(usize),
    /// 200 with a body of that many bytes sent chunked, with no `Content-Length`.
    OversizedChunked(usize),
    /// 200 with an OAuth error body (`{"error":"server_error",...}`).
    ErrorBody200,
    /// 401 even for a valid token (with `WWW-Authenticate: Bearer error="invalid_token"`).
    Unauthorized,
    /// 400 `{"error":"invalid_grant",...}`.
    InvalidGrant,
    /// Processed normally, but the token issued lives this many seconds (`expires_in`, or
    /// `expires_at`/`exp` for Aurora Solar); 0, negative and huge values are all sent as is.
    /// On an endpoint that issues no token, the request is answered normally.
    ExpiresIn(i64),
    /// Headers and half the body, then the connection is dropped (the `Content-Length` promises
    /// the whole body).
    ResetConnection,
}

#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    entries: VecDeque<(Endpoint, Fault, u32)>,
}

impl FaultQueue {
    pub(crate) fn push(&mut self, endpoint: Endpoint, fault: Fault, times: u32) {
        if times > 0 {
            self.entries.push_back((endpoint, fault, times));
        }
    }

    /// The first fault queued for `endpoint`, consumed once.
    pub(crate) fn take(&mut self, endpoint: Endpoint) -> Option<Fault> {
        let index = self.entries.iter().position(|(e, _, _)| *e == endpoint)?;
        let entry = &mut self.entries[index];
        entry.2 -= 1;
        let fault = entry.1.clone();
        if entry.2 == 0 {
            self.entries.remove(index);
        }
        Some(fault)
    }

    pub(crate) fn pending(&self, endpoint: Endpoint) -> u32 {
        self.entries
            .iter()
            .filter(|(e, _, _)| *e == endpoint)
            .map(|(_, _, n)| *n)
            .sum()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

pub(crate) const JSON: &str = "application/json; charset=utf-8";

pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static(JSON));
    response
}

fn raw_response(status: StatusCode, body: Body, length: Option<usize>) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static(JSON));
    if let Some(length) = length {
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, http::HeaderValue::from(length));
    }
    response
}

/// A JSON answer of the endpoint's shape, holding no live token: the material that
/// [`Fault::TruncatedJson`] and [`Fault::ResetConnection`] cut.
fn sample_answer(endpoint: Endpoint) -> String {
    let value = match endpoint {
        Endpoint::AerionToken => serde_json::json!({
            "access_token": "fault-access-token-not-valid-anywhere-0000",
            "token_type": "bearer",
            "expires_in": 3600,
            "refresh_token": "fault-refresh-token-not-valid-anywhere-0000",
        }),
        Endpoint::AuroraUkToken => serde_json::json!({
            "access_token": "fault-access-token-not-valid-anywhere-0000",
            "token_type": "Bearer",
            "expires_in": 86400,
        }),
        Endpoint::AuroraSolarCreateToken => serde_json::json!({
            "token": {"bearer_token": "tk_test_fault000000000000000000", "expires_at": "2030-01-01 00:00:00 UTC"}
        }),
        Endpoint::AuroraSolarGenerateToken => serde_json::json!({
            "token": {"jwt": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJleHAiOjB9.c2lnbmF0dXJl"}
        }),
        Endpoint::AuroraUkDiscovery => serde_json::json!({
            "issuer": "https://fault.invalid/",
            "token_endpoint": "https://fault.invalid/oauth/token",
            "jwks_uri": "https://fault.invalid/.well-known/jwks.json",
        }),
        Endpoint::AuroraUkJwks => serde_json::json!({"keys": [{"kty": "RSA", "kid": "fault"}]}),
        Endpoint::AerionMe => serde_json::json!({"id": 0, "email": "fault@fault.invalid"}),
        Endpoint::AuroraUkApi => serde_json::json!([{"id": 0, "name": "fault"}]),
        Endpoint::AuroraSolarUsers => {
            serde_json::json!({"users": [{"id": "0", "email": "fault@fault.invalid"}]})
        }
        Endpoint::AuroraSolarInvite => serde_json::json!({"user": {"id": "0"}}),
        Endpoint::AuroraSolarProjects => serde_json::json!({"projects": [{"id": "0"}]}),
    };
    value.to_string()
}

/// The answer for a fault that replaces the endpoint's own answer.
pub(crate) fn fault_response(
    endpoint: Endpoint,
    fault: &Fault,
    error_shape_summary: bool,
) -> Response {
    let oauth_error = |status: u16, error: &str, description: &str| {
        if error_shape_summary {
            serde_json::json!({
                "error": error,
                "status": status,
                "summary": description,
                "raw": format!("emulated fault: {description}"),
            })
        } else {
            serde_json::json!({"error": error, "error_description": description})
        }
    };
    let status_error = |code: u16| {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(
            status,
            &oauth_error(status.as_u16(), "server_error", "emulated fault: status"),
        )
    };
    match fault {
        Fault::Status(code) => status_error(*code),
        Fault::StatusRetryAfter {
            status,
            retry_after,
        } => {
            let mut response = status_error(*status);
            response
                .headers_mut()
                .insert(RETRY_AFTER, http::HeaderValue::from(*retry_after));
            response
        }
        Fault::RateLimited { retry_after } => {
            let mut response = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                &oauth_error(429, "too_many_requests", "Rate limit exceeded"),
            );
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, http::HeaderValue::from(*secs));
            }
            response
        }
        Fault::MalformedBody => {
            let body = "<html><body>502 Bad Gateway (emulated)</body></html>";
            raw_response(StatusCode::OK, Body::from(body), Some(body.len()))
        }
        Fault::TruncatedJson => {
            let mut sample = sample_answer(endpoint);
            sample.truncate(sample.len() / 2);
            let len = sample.len();
            raw_response(StatusCode::OK, Body::from(sample), Some(len))
        }
        Fault::OversizedBody(size) => {
            raw_response(StatusCode::OK, Body::from(padding(*size)), Some(*size))
        }
        Fault::OversizedChunked(size) => {
            let data = Bytes::from(padding(*size));
            let chunks = (0..data.len())
                .step_by(64 * 1024)
                .map(|start| data.slice(start..(start + 64 * 1024).min(data.len())))
                .collect();
            raw_response(
                StatusCode::OK,
                Body::new(ScriptedBody::new(chunks, false)),
                None,
            )
        }
        Fault::ErrorBody200 => json_response(
            StatusCode::OK,
            &oauth_error(
                200,
                "server_error",
                "emulated fault: an error in a 200 answer",
            ),
        ),
        Fault::Unauthorized => {
            let mut response = json_response(
                StatusCode::UNAUTHORIZED,
                &oauth_error(401, "invalid_token", "Unauthorized"),
            );
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            response
        }
        Fault::InvalidGrant => json_response(
            StatusCode::BAD_REQUEST,
            &oauth_error(400, "invalid_grant", "emulated fault: grant refused"),
        ),
        Fault::ResetConnection => {
            let sample = Bytes::from(sample_answer(endpoint));
            let full = sample.len();
            let half = sample.slice(..full / 2);
            raw_response(
                StatusCode::OK,
                Body::new(ScriptedBody::new(vec![half], true)),
                Some(full),
            )
        }
        // Answered normally by the caller; never reaches here.
        Fault::Delay(_) | Fault::DelayAfter(_) | Fault::Hang | Fault::ExpiresIn(_) => {
            json_response(StatusCode::INTERNAL_SERVER_ERROR, &serde_json::json!({}))
        }
    }
}

/// `size` bytes that start like a token answer and never end it.
fn padding(size: usize) -> Vec<u8> {
    let head = br#"{"access_token":""#;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(&head[..head.len().min(size)]);
    body.resize(size, b'a');
    body
}

/// A body that sends its chunks, then (when asked to) fails, which makes hyper drop the
/// connection mid-body. A short pause before the failure lets the chunks reach the client first.
struct ScriptedBody {
    chunks: VecDeque<Bytes>,
    fail: bool,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ScriptedBody {
    fn new(chunks: Vec<Bytes>, fail: bool) -> Self {
        Self {
            chunks: chunks.into(),
            fail,
            pause: None,
        }
    }
}

impl http_body::Body for ScriptedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if !this.fail {
            return Poll::Ready(None);
        }
        let pause = this
            .pause
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(20))));
        match pause.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                this.fail = false;
                Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "emulated connection reset",
                ))))
            }
        }
    }
}
