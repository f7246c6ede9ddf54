//! Real `redis-server`s for tests: each started on a free loopback port in a directory of its
//! own, with no persistence and any extra configuration a test gives, and killed when dropped.
//! [`RedisServer::start_tls`] adds a TLS port with a certificate made by `openssl`;
//! [`RedisCluster`] is three masters in one cluster.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `redis-server` on `127.0.0.1`.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    /// Configuration beyond the defaults, given again at every restart.
    args: Vec<String>,
    /// The default user's password, when `--requirepass` is among the arguments.
    password: Option<String>,
    tls: Option<Tls>,
    child: Option<Child>,
}

/// A TLS port and the files made for it.
#[derive(Debug)]
struct Tls {
    port: u16,
    ca: PathBuf,
    untrusted_ca: PathBuf,
}

impl RedisServer {
    /// Starts one on a free port. Panics with a line saying how to install `redis-server` when
    /// it is missing (`cargo xtask ci` installs it).
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts one with extra configuration, as `redis-server` takes it on its command line
    /// (`["--maxmemory-policy", "allkeys-lru"]`); a restart keeps it. With `--requirepass`,
    /// [`cli`](Self::cli) gives the password.
    pub fn start_with(args: &[&str]) -> Self {
        let mut server = Self::prepare(free_port(), args);
        server.spawn();
        server
    }

    /// Starts one that also listens for TLS on a second port ([`url`](Self::url) names it,
    /// `rediss://`), with a certificate for `127.0.0.1` signed by a CA made for it with the
    /// `openssl` command ([`ca_file`](Self::ca_file)). Clients need no certificate.
    pub fn start_tls(args: &[&str]) -> Self {
        let mut server = Self::prepare(free_port(), args);
        let tls = make_certificates(&server.dir);
        let (cert, key) = (server.dir.join("server.crt"), server.dir.join("server.key"));
        let tls_port = free_port();
        let path = |p: &Path| p.to_str().expect("a UTF-8 temporary path").to_owned();
        server.args.extend([
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".to_owned(),
            path(&cert),
            "--tls-key-file".to_owned(),
            path(&key),
            "--tls-ca-cert-file".to_owned(),
            path(&tls.0),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ]);
        server.tls = Some(Tls {
            port: tls_port,
            ca: tls.0,
            untrusted_ca: tls.1,
        });
        server.spawn();
        server.wait_for_port(tls_port);
        server
    }

    fn prepare(port: u16, args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "partner-auth-redis-test-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let password = args
            .iter()
            .position(|a| *a == "--requirepass")
            .and_then(|at| args.get(at + 1))
            .map(|p| (*p).to_owned());
        Self {
            port,
            dir,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            password,
            tls: None,
            child: None,
        }
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "yes"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): install it (Debian: `apt-get install -y \
                     redis-server`), or run `cargo xtask ci`, which installs it"
                )
            });
        self.child = Some(child);
        self.wait_for_port(self.port);
    }

    fn wait_for_port(&self, port: u16) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..500 {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not listen on {addr} within 5 s");
    }

    /// The URL of database 0 (`rediss://` on the TLS port for a server started with TLS).
    pub fn url(&self) -> String {
        match &self.tls {
            Some(tls) => format!("rediss://127.0.0.1:{}/0", tls.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// The port (without TLS).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA certificate (PEM) that signed the TLS port's certificate.
    pub fn ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca.as_path())
    }

    /// A CA certificate (PEM) that did not sign the server's certificate.
    pub fn untrusted_ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.untrusted_ca.as_path())
    }

    /// Starts a replica of `primary` (`--replicaof`) and waits until it has copied the
    /// primary's data and follows its writes.
    pub fn replica_of(primary: &RedisServer) -> Self {
        let port = primary.port.to_string();
        let replica = Self::start_with(&["--replicaof", "127.0.0.1", &port]);
        for _ in 0..500 {
            if replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up")
            {
                return replica;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "the replica on port {} did not sync within 5 s",
            replica.port
        );
    }

    /// Kills the server (its data is gone: it keeps none on disk).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts a new, empty one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        if let Some(port) = self.tls.as_ref().map(|t| t.port) {
            self.wait_for_port(port);
        }
    }

    /// Runs `redis-cli` against this server with `args` (as the default user, with its
    /// password when it has one); its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(password) = &self.password {
            // Through the environment, not argv.
            cmd.env("REDISCLI_AUTH", password);
        }
        let out = cmd
            .args(args)
            .output()
            .expect("redis-cli (installed with redis-server)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters (no replicas) on loopback, each a [`RedisServer`].
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers, joins them with `redis-cli --cluster create` (the
    /// 16384 slots split among them) and waits until every node reports the cluster ok.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let mut node = RedisServer::prepare(
                    free_cluster_port(),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                    ],
                );
                node.spawn();
                node
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli (installed with redis-server)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { nodes };
        for _ in 0..1000 {
            let ready = cluster.nodes.iter().all(|n| {
                n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
                    && n.cli(&["CLUSTER", "SLOTS"]).lines().count() > 0
            });
            if ready {
                return cluster;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the cluster on {addresses:?} was not ok within 10 s");
    }

    /// `redis+cluster://` and every node's address.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The nodes, each a master.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// Makes a CA, a certificate for `127.0.0.1` and `localhost` signed by it, and a second CA that
/// signed nothing, in `dir` with the `openssl` command: the two CAs' paths.
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run openssl ({e}): install it (Debian: `apt-get install -y openssl`), \
                     or run `cargo xtask ci`, which installs it"
                )
            });
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    for (name, subject) in [
        ("ca", "/CN=partner-auth test CA"),
        ("other-ca", "/CN=unrelated CA"),
    ] {
        let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
        let mut args = vec!["req", "-x509", "-nodes", "-days", "2", "-subj", subject];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &crt]);
        openssl(&args);
    }
    let mut args = vec!["req", "-nodes", "-subj", "/CN=127.0.0.1"];
    args.extend(ec);
    args.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(&args);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write the certificate's extensions");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
    (dir.join("ca.crt"), dir.join("other-ca.crt"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A free port whose cluster bus port (the port + 10000) is free too.
fn free_cluster_port() -> u16 {
    for _ in 0..100 {
        let port = free_port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port with a free cluster bus port");
}
