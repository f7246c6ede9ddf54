//! URL rules: where a credential may be sent, base URLs from configuration, and paths built
//! from ids.

use std::net::IpAddr;

use url::{Host, Url};

use crate::Error;

/// Whether `url` may carry credentials: `https`, or `http` to a loopback host.
pub fn check_url(url: &Url) -> Result<(), Error> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(Error::config(
            "url",
            format!(
                "must use https (plain http is allowed only for loopback hosts, not {})",
                url.host_str().unwrap_or("an empty host")
            ),
        )),
        other => Err(Error::config(
            "url",
            format!("has unsupported scheme {other:?}"),
        )),
    }
}

/// Parses a base URL from configuration, naming `field` when it is not a usable URL (not
/// absolute, not https for a non-loopback host, or carrying a query, a fragment or credentials).
pub fn parse_base_url(field: &str, value: &str) -> Result<Url, Error> {
    let url =
        Url::parse(value.trim()).map_err(|e| Error::config(field, format!("is not a URL: {e}")))?;
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(Error::config(field, "must be an absolute http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::config(field, "must not carry a query or fragment"));
    }
    // Credentials in a URL end up in logs, errors and Debug output wherever the URL is shown.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config(
            field,
            "must not carry a user name or password",
        ));
    }
    check_url(&url).map_err(|e| match e {
        Error::Config { reason, .. } => Error::config(field, reason),
        other => other,
    })?;
    Ok(url)
}

/// `base` joined with `path` segments, each percent-encoded: `join(base, &["tenants", id])`.
/// Keeps any path the base already has (`https://proxy/aurora` + `oauth/token`).
///
/// A segment that is empty, or `.` or `..` (spelled plainly or percent-encoded), is refused with
/// [`Error::Config`]: the URL library would drop it or climb a level with it, so
/// `tenants/../create_token` would go out as another request than the one meant. So is a base
/// that cannot have a path (`mailto:`). Callers check their ids first, to name the setting.
pub fn join_path(base: &Url, segments: &[&str]) -> Result<Url, Error> {
    if let Some(bad) = segments.iter().find(|s| !is_plain_segment(s)) {
        let what = if bad.trim().is_empty() {
            "empty"
        } else {
            "`.` or `..`"
        };
        return Err(Error::config(
            "url path",
            format!("a path segment is {what}, which would change the request's path"),
        ));
    }
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| Error::config("url", "cannot carry a path"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Whether `segment` stays one path segment of its own: not empty, and not a dot segment in any
/// spelling the URL parser treats as one (`.`, `..`, `%2e`, `.%2E`, ...).
pub(crate) fn is_plain_segment(segment: &str) -> bool {
    let lowered = segment.to_ascii_lowercase();
    let decoded = lowered.replace("%2e", ".");
    !segment.is_empty() && decoded != "." && decoded != ".."
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.');
            d.eq_ignore_ascii_case("localhost")
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_rule() {
        for ok in [
            "https://example.com/x",
            "http://127.0.0.1:8080/x",
            "http://127.4.5.6/x",
            "http://[::1]:9/x",
            "http://localhost/x",
            "http://LOCALHOST./x",
        ] {
            check_url(&Url::parse(ok).unwrap()).unwrap();
        }
        for bad in [
            "http://example.com/x",
            "http://10.0.0.1/x",
            "http://localhost.example.com/x",
            "ftp://localhost/x",
        ] {
            assert!(check_url(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn base_url_errors_name_the_field() {
        let e = parse_base_url("AERION_BASE_URL", "http://api.aerion.app").unwrap_err();
        assert!(e.to_string().contains("AERION_BASE_URL"), "{e}");
        let e = parse_base_url("AERION_BASE_URL", "not a url").unwrap_err();
        assert!(e.to_string().contains("AERION_BASE_URL"), "{e}");
        let e = parse_base_url("X", "https://h/?a=b").unwrap_err();
        assert!(e.to_string().contains("query"), "{e}");
        let e = parse_base_url("X", "https://user:pw-SECRET@h/").unwrap_err();
        assert!(e.to_string().contains("user name or password"), "{e}");
        assert!(!e.to_string().contains("pw-SECRET"), "{e}");
    }

    #[test]
    fn join_keeps_base_path_and_encodes_segments() {
        let base = Url::parse("https://h/proxy/").unwrap();
        assert_eq!(
            join_path(&base, &["tenants", "a/b", "users"])
                .unwrap()
                .as_str(),
            "https://h/proxy/tenants/a%2Fb/users"
        );
        let base = Url::parse("https://h").unwrap();
        assert_eq!(
            join_path(&base, &["oauth2", "token"]).unwrap().as_str(),
            "https://h/oauth2/token"
        );
    }

    #[test]
    fn join_refuses_segments_that_would_change_the_path() {
        let base = Url::parse("https://h/partner_applications/").unwrap();
        for bad in [".", "..", "%2e", "%2E%2e", ".%2E", ""] {
            let e = join_path(&base, &["app_42", "tenants", bad, "create_token"]).unwrap_err();
            assert!(matches!(e, Error::Config { .. }), "{bad:?}: {e:?}");
        }
        // Dots inside an id are ordinary characters.
        assert_eq!(
            join_path(&base, &["a.b", "...", ".x"]).unwrap().path(),
            "/partner_applications/a.b/.../.x"
        );
        let e = join_path(&Url::parse("mailto:x@h").unwrap(), &["a"]).unwrap_err();
        assert!(matches!(e, Error::Config { .. }), "{e:?}");
    }
}
