//! The route table: each provider module registers its endpoints on it, and the server looks a
//! request up in it. It imports no provider module, so none of them imports the server.

use std::time::SystemTime;

use axum::response::Response;
use http::{Method, StatusCode};

use crate::fault::Endpoint;
use crate::record::percent_decode;
use crate::state::{Ctx, Params, Shared, State};

/// An endpoint's answer, computed under the state lock at the emulator's time.
pub(crate) type Handler = fn(&Shared, &mut State, &Ctx, SystemTime) -> Response;

/// Checked before a handler under the same lock: `Some` is the answer instead (a rate limit).
pub(crate) type Guard = fn(&Shared, &mut State, &Ctx, SystemTime) -> Option<Response>;

/// One endpoint: its method, its path pattern (`{name}` segments are parameters), the
/// [`Endpoint`] faults are injected by, and what answers it.
pub(crate) struct Route {
    method: Method,
    pattern: Vec<Segment>,
    endpoint: Endpoint,
    handler: Handler,
    guard: Option<Guard>,
}

enum Segment {
    Literal(&'static str),
    Param(&'static str),
}

impl Route {
    /// Runs `guard` before the handler.
    pub(crate) fn guarded(&mut self, guard: Guard) -> &mut Self {
        self.guard = Some(guard);
        self
    }

    pub(crate) fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// The guard's answer if it has one, else the handler's.
    pub(crate) fn answer(
        &self,
        shared: &Shared,
        state: &mut State,
        ctx: &Ctx,
        now: SystemTime,
    ) -> Response {
        if let Some(refused) = self.guard.and_then(|guard| guard(shared, state, ctx, now)) {
            return refused;
        }
        (self.handler)(shared, state, ctx, now)
    }

    /// The parameters of `segments` when they match the pattern.
    fn matches(&self, segments: &[String]) -> Option<Params> {
        if segments.len() != self.pattern.len() {
            return None;
        }
        let mut params = Vec::new();
        for (segment, pattern) in segments.iter().zip(&self.pattern) {
            match pattern {
                Segment::Literal(literal) if segment == literal => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((*name, segment.clone())),
            }
        }
        Some(params)
    }
}

/// Every endpoint the emulator answers.
#[derive(Default)]
pub(crate) struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// Registers `handler` for `method` on `pattern` (`/a/{param}/b`).
    pub(crate) fn add(
        &mut self,
        method: Method,
        pattern: &'static str,
        endpoint: Endpoint,
        handler: Handler,
    ) -> &mut Route {
        let pattern = pattern
            .trim_matches('/')
            .split('/')
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name),
                    None => Segment::Literal(s),
                },
            )
            .collect();
        self.routes.push(Route {
            method,
            pattern,
            endpoint,
            handler,
            guard: None,
        });
        self.routes.last_mut().expect("just pushed")
    }

    /// The route for a request and its path parameters (percent-decoded), or the status for a
    /// path with no route (404) or a route without that method (405).
    pub(crate) fn find(&self, method: &Method, path: &str) -> Result<(&Route, Params), StatusCode> {
        let segments: Vec<String> = path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .split('/')
            .map(|s| percent_decode(s, false))
            .collect();
        let mut status = StatusCode::NOT_FOUND;
        for route in &self.routes {
            if let Some(params) = route.matches(&segments) {
                if route.method == *method {
                    return Ok((route, params));
                }
                status = StatusCode::METHOD_NOT_ALLOWED;
            }
        }
        Err(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::json_response;

    fn ok(_: &Shared, _: &mut State, _: &Ctx, _: SystemTime) -> Response {
        json_response(StatusCode::OK, &serde_json::json!({}))
    }

    #[test]
    fn finds_by_method_and_path_and_decodes_parameters() {
        let mut routes = Routes::default();
        routes.add(
            Method::GET,
            "/a/{tenant}/users",
            Endpoint::AuroraSolarUsers,
            ok,
        );
        let (route, params) = routes.find(&Method::GET, "/a/t%2F1/users/").unwrap();
        assert_eq!(route.endpoint(), Endpoint::AuroraSolarUsers);
        assert_eq!(params, vec![("tenant", "t/1".to_owned())]);
        let status = |method, path| routes.find(&method, path).err();
        assert_eq!(
            status(Method::POST, "/a/t/users"),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            status(Method::GET, "/a/t/users/x"),
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            status(Method::GET, "/b/t/users"),
            Some(StatusCode::NOT_FOUND)
        );
    }
}
