//! Where a store connects: the URL forms it takes, each checked before anything is sent, and the
//! URL as messages show it (never with its password).
//!
//! | form | meaning |
//! | --- | --- |
//! | `redis://[USER@]HOST[:PORT][/DB]` | one server (or a primary); `valkey://` is the same |
//! | `rediss://…` | the same over TLS; `valkeys://` is the same |
//! | `redis+unix:///PATH` | a Unix socket; `unix://` and `valkey+unix://` are the same |
//! | `redis+cluster://[USER@]HOST:PORT[,HOST:PORT…]` | a Redis Cluster, from any of its nodes; `rediss+cluster://` over TLS (`valkey+cluster://`, `valkeys+cluster://`) |
//!
//! Schemes are case-insensitive. The query may hold `db=N` (the database, where the path does
//! not give one) and, for a socket, `user=NAME`; any other parameter, and a fragment, is
//! refused rather than ignored. A cluster has database 0 only.

use std::path::PathBuf;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use token_provider::Error;

/// The schemes, as the crate docs list them.
const FORMS: &str = "redis://, rediss://, redis+unix://, unix://, redis+cluster://, \
                     rediss+cluster:// (valkey in place of redis in each)";

/// What a URL names: one server or a cluster's nodes.
#[derive(Clone, Debug)]
pub(crate) enum Topology {
    Single(Box<ConnectionInfo>),
    Cluster(Vec<ConnectionInfo>),
}

/// A parsed URL.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) topology: Topology,
    /// The URL as messages show it: scheme, host(s) and port(s) or path, database; never the
    /// user or password.
    pub(crate) shown: String,
    pub(crate) username: Option<String>,
    /// Whether the URL carried a password.
    pub(crate) has_password: bool,
}

impl Target {
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.topology, Topology::Cluster(_))
    }

    /// Sets the password (given apart from the URL) on every node.
    pub(crate) fn with_password(mut self, password: &str) -> Self {
        let set = |info: &mut ConnectionInfo| {
            let settings = info.redis_settings().clone().set_password(password);
            *info = info.clone().set_redis_settings(settings);
        };
        match &mut self.topology {
            Topology::Single(info) => set(info),
            Topology::Cluster(nodes) => nodes.iter_mut().for_each(set),
        }
        self
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Tls,
    Unix,
    Cluster { tls: bool },
}

/// `url` parsed and checked; the error (field `store`) names what is wrong and never quotes a
/// password.
pub(crate) fn parse(url: &str) -> Result<Target, Error> {
    let url = url.trim();
    let refuse = |what: String| Error::config("store", what);
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(refuse(format!(
            "is not a Redis URL: give one of {FORMS} (with the `//`)"
        )));
    };
    let scheme = scheme.to_ascii_lowercase();
    let kind = match scheme.as_str() {
        "redis" | "valkey" => Kind::Tcp,
        "rediss" | "valkeys" => Kind::Tls,
        "redis+unix" | "valkey+unix" | "unix" => Kind::Unix,
        "redis+cluster" | "valkey+cluster" => Kind::Cluster { tls: false },
        "rediss+cluster" | "valkeys+cluster" => Kind::Cluster { tls: true },
        _ => {
            return Err(refuse(format!(
                "has a scheme this store does not speak: give one of {FORMS}"
            )));
        }
    };
    if rest.contains('#') {
        return Err(refuse(
            "has a fragment (`#…`), which this store does not read: remove it".to_owned(),
        ));
    }
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let query = parse_query(query, kind)?;
    match kind {
        Kind::Unix => unix(&scheme, rest, query),
        Kind::Tcp | Kind::Tls => {
            let node = node(&scheme, rest, kind == Kind::Tls, query.db)?;
            let db = node.db.unwrap_or(0);
            let info = with_settings(node.info, db, node.user.as_deref());
            Ok(Target {
                topology: Topology::Single(Box::new(info)),
                shown: format!("{scheme}://{}/{db}", node.shown),
                username: node.user,
                has_password: node.has_password,
            })
        }
        Kind::Cluster { tls } => cluster(&scheme, rest, tls, query.db),
    }
}

/// The query's parameters.
#[derive(Default)]
struct Query {
    db: Option<i64>,
    user: Option<String>,
}

/// The query's parameters, each checked: `db` (digits), `user` (a socket's); no other, none
/// twice.
fn parse_query(query: &str, kind: Kind) -> Result<Query, Error> {
    let mut out = Query::default();
    let twice = |name: &str| Error::config("store", format!("gives `{name}` twice in its query"));
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match (name.as_ref(), kind) {
            ("db", _) => {
                if out.db.replace(database(&value)?).is_some() {
                    return Err(twice("db"));
                }
            }
            ("user", Kind::Unix) => {
                if out.user.replace(value.into_owned()).is_some() {
                    return Err(twice("user"));
                }
            }
            ("pass" | "password", _) => {
                return Err(Error::config(
                    "store",
                    "carries a password in its query: give it apart from the URL (the \
                     `password` setting; PARTNER_AUTH_REDIS_PASSWORD in the CLI)",
                ));
            }
            _ => {
                return Err(Error::config(
                    "store",
                    format!(
                        "has a query parameter this store does not read ({}): remove it (only \
                         `db`, and `user` for a socket, are read)",
                        printable(&name)
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// A database number: digits only.
fn database(text: &str) -> Result<i64, Error> {
    text.parse::<i64>()
        .ok()
        .filter(|db| *db >= 0 && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            Error::config(
                "store",
                "names a database that is not a number (`/DB` or `?db=`: 0, 1, …)",
            )
        })
}

/// One node of a URL.
struct Node {
    info: ConnectionInfo,
    /// `host:port` as shown.
    shown: String,
    db: Option<i64>,
    user: Option<String>,
    has_password: bool,
}

/// One `[USER[:PASSWORD]@]HOST[:PORT][/DB]` node, as `scheme` (lowercase) gives it.
fn node(scheme: &str, rest: &str, tls: bool, query_db: Option<i64>) -> Result<Node, Error> {
    let parsed = url::Url::parse(&format!("redis://{rest}")).map_err(|_| {
        Error::config(
            "store",
            format!("is not a valid {scheme}:// URL ({scheme}://[USER@]HOST[:PORT][/DB])"),
        )
    })?;
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => {
            return Err(Error::config(
                "store",
                format!("names no host ({scheme}://[USER@]HOST[:PORT][/DB])"),
            ));
        }
    };
    let port = parsed.port().unwrap_or(6379);
    let path_db = match parsed.path().trim_start_matches('/') {
        "" => None,
        text if !text.contains('/') => Some(database(text)?),
        _ => {
            return Err(Error::config(
                "store",
                format!("has a path that is not a database number ({scheme}://HOST[:PORT][/DB])"),
            ));
        }
    };
    let db = match (path_db, query_db) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::config(
                "store",
                "names two databases (in the path and in `?db=`): give one",
            ));
        }
        (a, b) => a.or(b),
    };
    let user = decoded(parsed.username())?.filter(|u| !u.is_empty());
    let password = decoded(parsed.password().unwrap_or(""))?.filter(|p| !p.is_empty());
    let addr = if tls {
        ConnectionAddr::TcpTls {
            host: host.clone(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.clone(), port)
    };
    let mut info = connection_info(addr)?;
    if let Some(password) = &password {
        let settings = info.redis_settings().clone().set_password(password);
        info = info.set_redis_settings(settings);
    }
    let shown = match parsed.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    };
    Ok(Node {
        info,
        shown,
        db,
        user,
        has_password: password.is_some(),
    })
}

fn unix(scheme: &str, rest: &str, query: Query) -> Result<Target, Error> {
    if !rest.starts_with('/') {
        return Err(Error::config(
            "store",
            format!(
                "names no socket: give its absolute path ({scheme}:///PATH, three slashes); a \
                 user goes in `?user=`"
            ),
        ));
    }
    let path = PathBuf::from(
        url::form_urlencoded::parse(format!("p={}", rest.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, p)| p.into_owned())
            .unwrap_or_default(),
    );
    let db = query.db.unwrap_or(0);
    let user = query.user.filter(|user| !user.is_empty());
    let info = Box::new(with_settings(
        connection_info(ConnectionAddr::Unix(path.clone()))?,
        db,
        user.as_deref(),
    ));
    let db_shown = if db == 0 {
        String::new()
    } else {
        format!("?db={db}")
    };
    Ok(Target {
        topology: Topology::Single(info),
        shown: format!("{scheme}://{}{db_shown}", path.display()),
        username: user,
        has_password: false,
    })
}

fn cluster(scheme: &str, rest: &str, tls: bool, query_db: Option<i64>) -> Result<Target, Error> {
    // `[USER[:PASSWORD]@]HOST:PORT[,HOST:PORT…][/DB]`: the user and password are the first
    // node's and go to every node.
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let mut nodes = Vec::new();
    let mut shown = Vec::new();
    let (mut user, mut has_password) = (None, false);
    for (i, host) in hosts.split(',').enumerate() {
        if host.is_empty() {
            return Err(Error::config(
                "store",
                format!("lists an empty node ({scheme}://HOST:PORT[,HOST:PORT…])"),
            ));
        }
        let node_rest = if i == 0 {
            format!("{userinfo}{host}{path}")
        } else {
            format!("{host}{path}")
        };
        let node = node(scheme, &node_rest, tls, query_db)?;
        if node.db.unwrap_or(0) != 0 {
            return Err(Error::config(
                "store",
                "names a database other than 0: a Redis Cluster has database 0 only",
            ));
        }
        if i == 0 {
            (user, has_password) = (node.user, node.has_password);
        }
        nodes.push(node.info);
        shown.push(node.shown);
    }
    let password = nodes[0].redis_settings().password().map(str::to_owned);
    let nodes = nodes
        .into_iter()
        .map(|info| {
            let mut info = with_settings(info, 0, user.as_deref());
            if let Some(password) = &password {
                let settings = info.redis_settings().clone().set_password(password);
                info = info.set_redis_settings(settings);
            }
            info
        })
        .collect();
    Ok(Target {
        topology: Topology::Cluster(nodes),
        shown: format!("{scheme}://{}", shown.join(",")),
        username: user,
        has_password,
    })
}

fn connection_info(addr: ConnectionAddr) -> Result<ConnectionInfo, Error> {
    addr.into_connection_info()
        .map_err(|_| Error::config("store", "is not a Redis address this client can use"))
}

fn with_settings(info: ConnectionInfo, db: i64, user: Option<&str>) -> ConnectionInfo {
    let mut settings = info.redis_settings().clone().set_db(db);
    if let Some(user) = user {
        settings = settings.set_username(user);
    }
    info.set_redis_settings(settings)
}

/// A percent-decoded user or password; `None` when empty.
fn decoded(text: &str) -> Result<Option<String>, Error> {
    if text.is_empty() {
        return Ok(None);
    }
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| Some(v.into_owned()))
        .ok_or_else(|| Error::config("store", "has a user or password that does not decode"))
}

/// A query parameter's name as a message shows it: printable ASCII, at most 32 characters.
fn printable(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    format!("`{clean}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(url: &str) -> String {
        parse(url).unwrap().shown
    }

    fn refused(url: &str) -> String {
        let err = parse(url).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{url}: {err:?}");
        err.to_string()
    }

    #[test]
    fn every_form_parses_and_shows_no_password() {
        assert_eq!(shown("redis://h"), "redis://h:6379/0");
        assert_eq!(shown("REDIS://:pw-1@h:1/2"), "redis://h:1/2");
        assert_eq!(shown("Rediss://u:pw-1@h:1"), "rediss://h:1/0");
        assert_eq!(shown("valkey://h:1/?db=6"), "valkey://h:1/6");
        assert_eq!(shown("valkeys://[::1]:7/3"), "valkeys://[::1]:7/3");
        assert_eq!(shown("unix:///run/redis.sock"), "unix:///run/redis.sock");
        assert_eq!(
            shown("redis+unix:///run/r.sock?db=3&user=app"),
            "redis+unix:///run/r.sock?db=3"
        );
        assert_eq!(
            shown("redis+cluster://app:pw-1@a:1,b:2,c:3"),
            "redis+cluster://a:1,b:2,c:3"
        );
        let cluster = parse("rediss+cluster://app:pw-1@a:1,b:2").unwrap();
        assert!(cluster.is_cluster() && cluster.has_password);
        assert_eq!(cluster.username.as_deref(), Some("app"));
        let Topology::Cluster(nodes) = &cluster.topology else {
            panic!()
        };
        for node in nodes {
            assert_eq!(node.redis_settings().password(), Some("pw-1"));
            assert_eq!(node.redis_settings().username(), Some("app"));
            assert!(matches!(node.addr(), ConnectionAddr::TcpTls { .. }));
        }
        let single = parse("redis://app:p%40ss@h:1/4").unwrap();
        let Topology::Single(info) = &single.topology else {
            panic!()
        };
        assert_eq!(info.redis_settings().password(), Some("p@ss"));
        assert_eq!(info.redis_settings().db(), 4);
    }

    #[test]
    fn what_is_not_read_is_refused() {
        for url in [
            "redis:h:6379",
            "memcached://h:1",
            "http://h/",
            "redis://h:1/0?protocol=resp3",
            "redis://h:1/0?x=1",
            "redis://h:1/1?db=2",
            "redis://h:1/0#insecure",
            "redis://h:1/zero",
            "redis://h:1/0/1",
            "redis://h:1/-1",
            "redis://:1/0",
            "redis+unix://run/r.sock",
            "unix:///r.sock?pass=pw-1",
            "redis+cluster://a:1,b:2/1",
            "redis+cluster://a:1,,b:2",
            "redis://h:1/0?db=1&db=1",
        ] {
            let text = refused(url);
            assert!(!text.contains("pw-1"), "{text}");
        }
        assert!(refused("redis:h:6379").contains("//"));
        assert!(refused("redis://h/0?secret-looking=1").contains("`secret-looking`"));
    }
}
