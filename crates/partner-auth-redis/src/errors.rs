//! What a failed Redis call becomes. Redis's refusals are named by Redis's own error code and
//! are configuration errors ([`Error::Config`], naming the server, never its password): no
//! retry fixes them, and no token may be fetched around them. Only a server that cannot be
//! reached (refused, dropped, silent, restarting) is [`Error::StoreUnavailable`].

use redis::{ErrorKind, RedisError, ServerErrorKind};
use token_provider::Error;

/// What a message needs to know of the store.
pub(crate) struct Context<'a> {
    /// The URL as shown (no password).
    pub(crate) server: &'a str,
    pub(crate) username: Option<&'a str>,
    pub(crate) cluster: bool,
}

impl Context<'_> {
    fn config(&self, reason: String) -> Error {
        Error::config(self.server, reason)
    }

    pub(crate) fn unavailable(&self, what: impl std::fmt::Display) -> Error {
        Error::store_unavailable(format!("Redis at {}: {what}", self.server))
    }

    fn user(&self) -> String {
        match self.username {
            Some(user) => format!("the user `{user}`"),
            None => "the default user".to_owned(),
        }
    }

    /// `e`, classified. The error's text may quote a command's arguments (ours hold tokens), so
    /// only codes, and details Redis writes from fixed templates, are shown.
    pub(crate) fn classify(&self, e: &RedisError) -> Error {
        let code = e.code().unwrap_or("");
        let detail = e.detail().unwrap_or("");
        if let Some(error) = self.tls_problem(e) {
            return error;
        }
        if refuses_credentials(e) {
            let code = if code.is_empty() { "WRONGPASS" } else { code };
            return self.config(format!(
                "refused the credentials ({code}): check {} and its password (given apart \
                 from the URL: PARTNER_AUTH_REDIS_PASSWORD or PARTNER_AUTH_REDIS_PASSWORD_FILE \
                 in the CLI, `password` in code)",
                self.user()
            ));
        }
        match e.kind() {
            ErrorKind::Server(ServerErrorKind::NoPerm) => {
                return self.config(format!(
                    "refused a command to {} (NOPERM: {}): its ACL must allow the store's \
                     commands on the prefix's keys (see the crate docs)",
                    self.user(),
                    template(detail)
                ));
            }
            ErrorKind::Server(ServerErrorKind::CrossSlot | ServerErrorKind::Moved)
                if !self.cluster =>
            {
                return self.config(format!(
                    "is a node of a Redis Cluster ({code}): name the cluster with \
                     redis+cluster://HOST:PORT[,HOST:PORT…] (rediss+cluster:// for TLS)"
                ));
            }
            ErrorKind::Server(ServerErrorKind::ReadOnly) => {
                return self.config(
                    "is a replica (READONLY): name the primary, which takes writes".to_owned(),
                );
            }
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown,
            ) => {
                return self.unavailable(format_args!("{code} (the server is not ready)"));
            }
            _ => {}
        }
        match code {
            "OOM" => {
                return self.config(
                    "is out of memory (OOM: used memory is over maxmemory, and the policy is \
                     noeviction): raise maxmemory or free memory"
                        .to_owned(),
                );
            }
            "WRONGTYPE" => {
                return self.config(
                    "holds a value of another type where this store keeps a string \
                     (WRONGTYPE): another application shares the prefix; give this store a \
                     prefix of its own"
                        .to_owned(),
                );
            }
            _ => {}
        }
        if code == "ERR" {
            if detail.contains("DB index is out of range") || detail.contains("invalid DB index") {
                return self.config(
                    "has no such database (ERR DB index is out of range): name one below the \
                     server's `databases` setting (16 by default)"
                        .to_owned(),
                );
            }
            if detail.contains("SELECT is not allowed in cluster mode") {
                return self.config(
                    "is a node of a Redis Cluster (which has database 0 only): name the \
                     cluster with redis+cluster://HOST:PORT[,HOST:PORT…]"
                        .to_owned(),
                );
            }
            if detail.contains("cluster support disabled") {
                return self.config(
                    "is not a Redis Cluster: name it with redis:// (or rediss://)".to_owned(),
                );
            }
        }
        if is_connection_error(e) {
            return self.unavailable(format_args!(
                "{:?} (server unreachable or restarting)",
                e.kind()
            ));
        }
        let shown = if code.is_empty() {
            format!("{:?}", e.kind())
        } else {
            code.to_owned()
        };
        Error::store(
            format!("Redis at {} refused a command: {shown}", self.server),
            None,
        )
    }

    /// A TLS handshake that failed for a reason a retry does not fix: a certificate the roots
    /// do not vouch for, roots that cannot be loaded, a port that does not speak TLS.
    fn tls_problem(&self, e: &RedisError) -> Option<Error> {
        if !e.is_io_error() {
            return None;
        }
        // rustls's error reaches us only as text: the redis crate keeps it behind an `Arc`.
        let text = e.to_string();
        if let Some(at) = text.find("invalid peer certificate") {
            let why = template(&text[at + "invalid peer certificate".len()..]);
            return Some(self.config(format!(
                "presented a TLS certificate that the trusted roots do not vouch for ({}): give \
                 the CA that signed it in SSL_CERT_FILE (a PEM file; it replaces the system's \
                 roots), and check that the certificate names the host in the URL",
                why.trim_start_matches([':', ' '])
            )));
        }
        if text.contains("could not load PEM file") || text.contains("SSL_CERT_FILE") {
            return Some(
                self.config(
                    "cannot verify TLS: the roots in SSL_CERT_FILE (or SSL_CERT_DIR) cannot be \
                 loaded; give a readable PEM file"
                        .to_owned(),
                ),
            );
        }
        if text.contains("received corrupt message") || text.contains("peer is incompatible") {
            return Some(
                self.config(
                    "did not complete a TLS handshake: is the port a TLS port (rediss://), or a \
                 plain one (redis://)?"
                        .to_owned(),
                ),
            );
        }
        None
    }
}

/// A detail Redis writes from a fixed template, cut to one short line of printable ASCII.
fn template(detail: &str) -> String {
    detail
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(120)
        .collect::<String>()
        .trim()
        .to_owned()
}

pub(crate) fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.kind() == ErrorKind::ClusterConnectionNotFound
        || (e.is_unrecoverable_error() && e.kind() != ErrorKind::Parse)
}

/// Whether `e` is Redis refusing the credentials (a wrong password, or none where one is
/// needed).
pub(crate) fn refuses_credentials(e: &RedisError) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(cluster: bool) -> Context<'static> {
        Context {
            server: "redis://h:1/0",
            username: Some("app"),
            cluster,
        }
    }

    fn server_error(code: &str, detail: &str) -> RedisError {
        redis::make_extension_error(code.to_owned(), Some(detail.to_owned()))
    }

    #[test]
    fn refusals_are_configuration_errors_by_their_code() {
        let cases = [
            (
                server_error("WRONGPASS", "invalid username-password pair"),
                "WRONGPASS",
            ),
            (server_error("NOAUTH", "Authentication required."), "NOAUTH"),
            (server_error("OOM", "command not allowed"), "OOM"),
            (
                server_error("WRONGTYPE", "Operation against a key"),
                "WRONGTYPE",
            ),
            (server_error("ERR", "DB index is out of range"), "DB index"),
            (
                RedisError::from((
                    ErrorKind::AuthenticationFailed,
                    "Password authentication failed",
                )),
                "WRONGPASS",
            ),
        ];
        for (e, says) in cases {
            let err = context(false).classify(&e);
            let text = err.to_string();
            assert!(matches!(err, Error::Config { .. }), "{e:?}: {err:?}");
            assert!(
                text.contains("redis://h:1/0") && text.contains(says),
                "{text}"
            );
        }
    }

    #[test]
    fn cluster_answers_need_cluster_mode() {
        let moved = RedisError::from((
            ErrorKind::Server(ServerErrorKind::Moved),
            "moved",
            "3999 127.0.0.1:6381".to_owned(),
        ));
        let err = context(false).classify(&moved);
        assert!(err.to_string().contains("redis+cluster://"), "{err}");
        let down = RedisError::from((ErrorKind::Server(ServerErrorKind::ClusterDown), "down"));
        assert!(matches!(
            context(true).classify(&down),
            Error::StoreUnavailable { .. }
        ));
    }

    #[test]
    fn only_a_dropped_or_refused_connection_is_unavailable() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            context(false).classify(&refused),
            Error::StoreUnavailable { .. }
        ));
        let other = server_error("NOTOURS", "whatever 'at-secret'");
        let err = context(false).classify(&other);
        assert!(matches!(err, Error::Store { .. }), "{err:?}");
        assert!(!err.to_string().contains("at-secret"));
    }
}
