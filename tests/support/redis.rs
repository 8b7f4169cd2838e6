//! Redis of the test's own on free loopback ports (never the system instance), killed on drop,
//! their temp dirs removed: one `redis-server` (`RedisServer`), a three-master Redis Cluster
//! (`RedisCluster`), or a master watched by one Sentinel (`RedisSentinel`, its master optionally
//! behind `requirepass` and an ACL user). Tests FAIL, not skip,
//! when `redis-server` or `redis-cli` is not on PATH: `scripts/install-deps` installs them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use oidc_authz::session::redis::{RedisStore, RedisTls, RedisTopology};
use oidc_authz::session::store::SessionStore;

/// How long a starting redis-server may take to answer PING.
const REDIS_START_BOUND: Duration = Duration::from_secs(10);
pub const REDIS_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// Over TLS a command may include a handshake (to the sentinel, then the master), which on a
/// loaded 2-core machine has taken more than 500 ms.
pub const REDIS_TLS_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// How long `redis-cli --cluster create` may take, and then the cluster to report `ok`.
const CLUSTER_CREATE_BOUND: Duration = Duration::from_secs(60);
const CLUSTER_OK_BOUND: Duration = Duration::from_secs(30);
/// How long a starting Sentinel may take to report a healthy master.
const SENTINEL_READY_BOUND: Duration = Duration::from_secs(20);
pub const SENTINEL_MASTER_NAME: &str = "mymaster";
/// The password-protected Sentinel setup: the master's `requirepass` (the sentinel logs in with
/// it too), and an ACL user of its own with every permission.
pub const SENTINEL_MASTER_PASSWORD: &str = "master-pw-4711";
pub const SENTINEL_ACL_USER: &str = "authz";
pub const SENTINEL_ACL_PASSWORD: &str = "authz-pw-0815";

/// The extra `redis-server` arguments for a port and a private dir; may write files there first.
type ArgsFor = Box<dyn Fn(u16, &Path) -> Vec<String> + Send + Sync>;

/// A `redis-server` child on a loopback port; killed on drop, its dir removed.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    args: ArgsFor,
    child: Mutex<Option<Child>>,
}

/// A fresh, not yet created, dir under the system temp dir.
fn temp_dir(kind: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "oidc-authz-{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Whether something on `port` answers a RESP `PING` with `+PONG`, or with `-NOAUTH` (a server
/// behind `requirepass`: up, but wants a password first).
pub fn answers_ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && (&reply == b"+PONG\r\n" || &reply == b"-NOAUTH")
}

impl RedisServer {
    /// Starts a plain server on a free port.
    pub fn start() -> RedisServer {
        Self::start_with("redis", Box::new(|_, _| Vec::new()))
    }

    /// Starts a server with `args` on a free port (a few attempts, in case another process takes
    /// the port).
    fn start_with(kind: &str, args: ArgsFor) -> RedisServer {
        let mut server = RedisServer {
            port: 0,
            dir: temp_dir(kind),
            args,
            child: Mutex::new(None),
        };
        let mut last_error = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => return server,
                Err(error) => last_error = error,
            }
        }
        panic!("could not start redis-server ({kind}): {last_error}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A server that also speaks TLS (certificates of `ca`) on `tls_port`; with `auth_clients`
    /// it wants a client certificate signed by `ca`. Its plain `port` is for the test's checks.
    pub fn start_tls_on(ca: &Arc<TestCa>, tls_port: u16, auth_clients: bool) -> RedisServer {
        let ca = Arc::clone(ca);
        Self::start_with(
            "redis-tls",
            Box::new(move |_, dir| {
                let config = dir.join("tls.conf");
                std::fs::create_dir_all(dir).expect("tls dir");
                std::fs::write(
                    &config,
                    format!(
                        "tls-port {tls_port}\n{}",
                        ca.redis_config_lines(auth_clients)
                    ),
                )
                .expect("write tls.conf");
                vec![config.display().to_string()]
            }),
        )
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// Starts redis-server on `self.port` and waits (bounded) until it answers PING.
    fn spawn(&self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("create {:?}: {e}", self.dir))?;
        let port = self.port.to_string();
        let log = self.log_path();
        let spawned = Command::new("redis-server")
            // A config file, if any, must come first; then options override it.
            .args((self.args)(self.port, &self.dir))
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not on PATH: the Redis conformance tests need it and do not \
                 skip. Install it with scripts/install-deps (Debian: apt-get install redis-server)."
            ),
            Err(error) => panic!("cannot run redis-server: {error}"),
        };
        let deadline = Instant::now() + REDIS_START_BOUND;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "redis-server on port {port} exited with {status}; log:\n{log}"
                ));
            }
            if answers_ping(self.port) {
                *self.child.lock().unwrap() = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-server on port {port} did not answer PING within {REDIS_START_BOUND:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server and waits until the port no longer answers.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(!answers_ping(self.port), "redis-server still answers");
    }

    /// Sends `signal` (`STOP`, `CONT`) to the running server, as `kill -<signal>` would.
    pub fn signal(&self, signal: &str) {
        let pid = self
            .child
            .lock()
            .unwrap()
            .as_ref()
            .expect("redis-server running")
            .id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Starts the server again on the same port.
    pub fn restart(&self) {
        let mut last_error = String::new();
        for _ in 0..5 {
            match self.spawn() {
                Ok(()) => return,
                Err(error) => last_error = error,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "could not restart redis-server on port {}: {last_error}",
            self.port
        );
    }

    pub fn store(&self, key_prefix: &str) -> Arc<dyn SessionStore> {
        Arc::new(RedisStore::new(&self.url(), key_prefix, 8, REDIS_COMMAND_TIMEOUT).expect("pool"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self
            .child
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One server shared by the cases that run at the same time; the last user's drop kills it (a
/// `static` would never be dropped, leaking the process past the test binary).
pub fn shared_redis() -> Arc<RedisServer> {
    static SHARED: Mutex<Weak<RedisServer>> = Mutex::new(Weak::new());
    shared(&SHARED, RedisServer::start)
}

/// Sends one command in RESP and returns its reply flattened to text: a bulk or simple string as
/// is, an array as its elements in order, an error as `-ERR ...`. `None` if nothing answers.
pub fn command(port: u16, args: &[&str]) -> Option<Vec<String>> {
    commands(port, &[args])?.pop()
}

/// Sends commands in order on one connection (so `SELECT` applies to the next); their replies.
pub fn commands(port: u16, list: &[&[&str]]) -> Option<Vec<Vec<String>>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut replies = Vec::new();
    for args in list {
        let mut request = format!("*{}\r\n", args.len());
        for arg in *args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        (&stream).write_all(request.as_bytes()).ok()?;
        let mut reply = Vec::new();
        read_reply(&mut reader, &mut reply, 0)?;
        replies.push(reply);
    }
    Some(replies)
}

fn read_reply(reader: &mut impl BufRead, out: &mut Vec<String>, depth: usize) -> Option<()> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let line = line.strip_suffix("\r\n")?;
    let (kind, rest) = line.split_at_checked(1)?;
    match kind {
        "+" | ":" => out.push(rest.to_owned()),
        "-" => out.push(line.to_owned()),
        "$" => {
            let Ok(len) = usize::try_from(rest.parse::<i64>().ok()?) else {
                return Some(()); // null bulk
            };
            let mut bytes = vec![0; len + 2];
            reader.read_exact(&mut bytes).ok()?;
            bytes.truncate(len);
            out.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        "*" if depth < 4 => {
            let count = rest.parse::<i64>().ok()?.max(0);
            for _ in 0..count {
                read_reply(reader, out, depth + 1)?;
            }
        }
        _ => return None,
    }
    Some(())
}

/// Runs `program` with `args` to completion within `bound`, its output in `log`; kills it if it
/// overruns. Panics, with the install hint, when the program is not on PATH.
fn run_bounded(program: &str, args: &[String], log: &Path, bound: Duration) -> Result<(), String> {
    let output = std::fs::File::create(log).map_err(|e| format!("create {log:?}: {e}"))?;
    let errors = output.try_clone().map_err(|e| e.to_string())?;
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .spawn()
    {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "{program} is not on PATH: the Redis tests need it and do not skip. Install it with \
             scripts/install-deps (Debian: apt-get install redis-server redis-tools)."
        ),
        Err(error) => panic!("cannot run {program}: {error}"),
    };
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            return if status.success() {
                Ok(())
            } else {
                Err(format!("{program} exited with {status}:\n{text}"))
            };
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!(
                "{program} did not finish within {bound:?}:\n{text}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `ready` every 50 ms until it says yes or `bound` passes.
fn wait_until(bound: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Redis Cluster of three masters (no replicas) on loopback ports; every node killed on drop.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(
                    "redis-cluster-node",
                    Box::new(|_, _| {
                        [
                            "--cluster-enabled",
                            "yes",
                            "--cluster-config-file",
                            "nodes.conf",
                            "--cluster-node-timeout",
                            "5000",
                            // The bus port defaults to port + 10000, which may be taken or past
                            // 65535: take a free one.
                            "--cluster-port",
                            &free_port().to_string(),
                        ]
                        .map(str::to_owned)
                        .to_vec()
                    }),
                )
            })
            .collect();
        let cluster = RedisCluster { nodes };
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(
            cluster
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port)),
        );
        args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(str::to_owned));
        let log = cluster.nodes[0].dir.join("cluster-create.log");
        if let Err(error) = run_bounded("redis-cli", &args, &log, CLUSTER_CREATE_BOUND) {
            panic!("redis-cli --cluster create failed: {error}");
        }
        for node in &cluster.nodes {
            let ok = wait_until(CLUSTER_OK_BOUND, || {
                command(node.port, &["CLUSTER", "INFO"]).is_some_and(|reply| {
                    reply.iter().any(|text| {
                        text.lines().any(|l| l.trim() == "cluster_state:ok")
                            && text.lines().any(|l| l.trim() == "cluster_slots_ok:16384")
                    })
                })
            });
            assert!(
                ok,
                "the cluster node on port {} did not report cluster_state:ok within {CLUSTER_OK_BOUND:?}: {:?}",
                node.port,
                command(node.port, &["CLUSTER", "INFO"])
            );
        }
        cluster
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    pub fn store(&self, key_prefix: &str) -> Arc<dyn SessionStore> {
        let topology = RedisTopology::Cluster { urls: self.urls() };
        Arc::new(
            RedisStore::with_topology(&topology, key_prefix, 8, REDIS_COMMAND_TIMEOUT)
                .expect("cluster pool"),
        )
    }
}

/// One master watched by one Sentinel (quorum 1) as `mymaster`; both killed on drop. With
/// `master_password`, the master has `requirepass` (and `masterauth`, for replicas), an ACL user
/// `SENTINEL_ACL_USER`, and the sentinel logs in to it with `sentinel auth-pass`.
pub struct RedisSentinel {
    pub sentinel: RedisServer,
    pub master: RedisServer,
    pub master_password: Option<String>,
    /// With TLS: the sentinel's TLS port (`sentinel.port` stays plain, for the test's checks).
    pub sentinel_tls_port: Option<u16>,
}

impl RedisSentinel {
    pub fn start() -> RedisSentinel {
        Self::start_with(None)
    }

    /// The master behind `requirepass SENTINEL_MASTER_PASSWORD`.
    pub fn start_with_password() -> RedisSentinel {
        Self::start_with(Some(SENTINEL_MASTER_PASSWORD))
    }

    /// Sentinel and master over TLS (certificates of `ca`), each also on a plain port for the
    /// test's own checks; the sentinel reaches the master over TLS and names its TLS port.
    pub fn start_tls(ca: &Arc<TestCa>) -> RedisSentinel {
        Self::start_with_tls(None, Some(ca))
    }

    fn start_with(master_password: Option<&str>) -> RedisSentinel {
        Self::start_with_tls(master_password, None)
    }

    fn start_with_tls(master_password: Option<&str>, ca: Option<&Arc<TestCa>>) -> RedisSentinel {
        let master_tls_port = ca.map(|_| free_port());
        let master = match (master_password, ca) {
            (None, None) => RedisServer::start(),
            (None, Some(ca)) => RedisServer::start_tls_on(ca, master_tls_port.unwrap(), false),
            (Some(_), Some(_)) => unimplemented!("a TLS master with a password"),
            (Some(password), None) => {
                let password = password.to_owned();
                RedisServer::start_with(
                    "redis-master-auth",
                    Box::new(move |_, dir| {
                        // A config file, not arguments: the ACL rule has spaces and `>`.
                        let config = dir.join("master.conf");
                        std::fs::write(
                            &config,
                            format!(
                                "requirepass {password}\nmasterauth {password}\n\
                                 user {SENTINEL_ACL_USER} on >{SENTINEL_ACL_PASSWORD} ~* &* +@all\n"
                            ),
                        )
                        .expect("write master.conf");
                        vec![config.display().to_string()]
                    }),
                )
            }
        };
        let master_port = master_tls_port.unwrap_or(master.port);
        let sentinel_tls_port = ca.map(|_| free_port());
        let tls_lines = ca
            .map(|ca| {
                format!(
                    "tls-port {}\n{}tls-replication yes\n",
                    sentinel_tls_port.unwrap(),
                    ca.redis_config_lines(false)
                )
            })
            .unwrap_or_default();
        let auth_pass = master_password
            .map(|password| format!("sentinel auth-pass {SENTINEL_MASTER_NAME} {password}\n"))
            .unwrap_or_default();
        let sentinel = RedisServer::start_with(
            "redis-sentinel",
            Box::new(move |port, dir| {
                // Sentinel rewrites its config file: a fresh one per start, in its own dir.
                let config = dir.join("sentinel.conf");
                std::fs::create_dir_all(dir).expect("sentinel dir");
                std::fs::write(
                    &config,
                    format!(
                        "port {port}\nbind 127.0.0.1\n\
                         sentinel monitor {SENTINEL_MASTER_NAME} 127.0.0.1 {master_port} 1\n\
                         sentinel down-after-milliseconds {SENTINEL_MASTER_NAME} 5000\n\
                         {auth_pass}{tls_lines}"
                    ),
                )
                .expect("write sentinel.conf");
                vec![config.display().to_string(), "--sentinel".into()]
            }),
        );
        // Ready once the sentinel knows the master, has reached it, and sees it as a healthy master.
        let ready = wait_until(SENTINEL_READY_BOUND, || {
            command(sentinel.port, &["SENTINEL", "MASTER", SENTINEL_MASTER_NAME]).is_some_and(
                |reply| {
                    let field = |name: &str| {
                        reply
                            .iter()
                            .position(|f| f == name)
                            .and_then(|i| reply.get(i + 1))
                            .map(String::as_str)
                    };
                    field("flags") == Some("master")
                        && field("port") == Some(&master_port.to_string())
                        && field("role-reported") == Some("master")
                },
            )
        });
        assert!(
            ready,
            "the sentinel on port {} did not report master {SENTINEL_MASTER_NAME} within {SENTINEL_READY_BOUND:?}: {:?}",
            sentinel.port,
            command(sentinel.port, &["SENTINEL", "MASTER", SENTINEL_MASTER_NAME])
        );
        RedisSentinel {
            sentinel,
            master,
            master_password: master_password.map(str::to_owned),
            sentinel_tls_port,
        }
    }

    /// The sentinel's URL: `rediss://` to its TLS port when it has one.
    pub fn urls(&self) -> Vec<String> {
        match self.sentinel_tls_port {
            Some(port) => vec![format!("rediss://127.0.0.1:{port}")],
            None => vec![format!("redis://127.0.0.1:{}", self.sentinel.port)],
        }
    }

    /// This setup's master, in `db`, logged in as `username`/`password` (or not at all).
    pub fn topology(
        &self,
        db: i64,
        username: Option<&str>,
        password: Option<&str>,
    ) -> RedisTopology {
        RedisTopology::Sentinel {
            urls: self.urls(),
            master_name: SENTINEL_MASTER_NAME.into(),
            db,
            username: username.map(str::to_owned),
            password: password.map(str::to_owned),
        }
    }

    /// A store on the master, with the master's password if it has one.
    pub fn store(&self, key_prefix: &str) -> Arc<dyn SessionStore> {
        let topology = self.topology(0, None, self.master_password.as_deref());
        Arc::new(
            RedisStore::with_topology(&topology, key_prefix, 8, REDIS_COMMAND_TIMEOUT)
                .expect("sentinel pool"),
        )
    }
}

/// A master, one replica and a Sentinel (quorum 1) that fails over after 1 s without the master:
/// for outages that only a failover ends. All killed on drop.
pub struct SentinelFailover {
    pub sentinel: RedisServer,
    pub master: RedisServer,
    pub replica: RedisServer,
}

impl SentinelFailover {
    pub fn start() -> SentinelFailover {
        let master = RedisServer::start();
        let master_port = master.port;
        let replica = RedisServer::start_with(
            "redis-replica",
            Box::new(move |_, _| vec!["--replicaof".into(), format!("127.0.0.1 {master_port}")]),
        );
        let sentinel = RedisServer::start_with(
            "redis-sentinel-failover",
            Box::new(move |port, dir| {
                let config = dir.join("sentinel.conf");
                std::fs::create_dir_all(dir).expect("sentinel dir");
                std::fs::write(
                    &config,
                    format!(
                        "port {port}\nbind 127.0.0.1\n\
                         sentinel monitor {SENTINEL_MASTER_NAME} 127.0.0.1 {master_port} 1\n\
                         sentinel down-after-milliseconds {SENTINEL_MASTER_NAME} 1000\n\
                         sentinel failover-timeout {SENTINEL_MASTER_NAME} 5000\n"
                    ),
                )
                .expect("write sentinel.conf");
                vec![config.display().to_string(), "--sentinel".into()]
            }),
        );
        // Ready once the sentinel knows a replica that is in sync with the master.
        let ready = wait_until(SENTINEL_READY_BOUND, || {
            command(
                sentinel.port,
                &["SENTINEL", "REPLICAS", SENTINEL_MASTER_NAME],
            )
            .is_some_and(|reply| {
                reply.iter().any(|f| f == "master-link-status")
                    && reply.iter().any(|f| f == "ok")
                    && reply.iter().any(|f| f == &replica.port.to_string())
            })
        });
        assert!(
            ready,
            "the sentinel on port {} did not see the replica within {SENTINEL_READY_BOUND:?}",
            sentinel.port
        );
        SentinelFailover {
            sentinel,
            master,
            replica,
        }
    }

    /// The port of the master the sentinel names now.
    pub fn current_master_port(&self) -> Option<u16> {
        command(
            self.sentinel.port,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER_NAME],
        )
        .and_then(|reply| reply.get(1)?.parse().ok())
    }

    pub fn store(&self, key_prefix: &str) -> Arc<dyn SessionStore> {
        let topology = RedisTopology::Sentinel {
            urls: vec![format!("redis://127.0.0.1:{}", self.sentinel.port)],
            master_name: SENTINEL_MASTER_NAME.into(),
            db: 0,
            username: None,
            password: None,
        };
        Arc::new(
            RedisStore::with_topology(&topology, key_prefix, 8, REDIS_COMMAND_TIMEOUT)
                .expect("sentinel pool"),
        )
    }
}

/// Shares one `T` among the cases that run at the same time; the last user's drop kills it.
fn shared<T>(slot: &Mutex<Weak<T>>, start: impl FnOnce() -> T) -> Arc<T> {
    let mut shared = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = shared.upgrade() {
        return existing;
    }
    let fresh = Arc::new(start());
    *shared = Arc::downgrade(&fresh);
    fresh
}

pub fn shared_cluster() -> Arc<RedisCluster> {
    static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
    shared(&SHARED, RedisCluster::start)
}

pub fn shared_sentinel() -> Arc<RedisSentinel> {
    static SHARED: Mutex<Weak<RedisSentinel>> = Mutex::new(Weak::new());
    shared(&SHARED, RedisSentinel::start)
}

pub fn shared_sentinel_with_password() -> Arc<RedisSentinel> {
    static SHARED: Mutex<Weak<RedisSentinel>> = Mutex::new(Weak::new());
    shared(&SHARED, RedisSentinel::start_with_password)
}

/// A TCP proxy on a loopback port in front of a Redis that can be told to lose the next reply:
/// the command reaches Redis and runs, and the proxy then closes the client's connection instead
/// of passing the reply on (as a network or a Redis failover can). Its tasks end on drop.
pub struct ReplyDroppingProxy {
    pub port: u16,
    drop_next_reply: Arc<std::sync::atomic::AtomicBool>,
    accepting: tokio::task::JoinHandle<()>,
}

impl ReplyDroppingProxy {
    pub async fn start(upstream_port: u16) -> ReplyDroppingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let drop_next_reply = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let armed = Arc::clone(&drop_next_reply);
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(Self::relay(client, upstream_port, Arc::clone(&armed)));
            }
        });
        ReplyDroppingProxy {
            port,
            drop_next_reply,
            accepting,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The next reply from Redis, on any connection, is lost and its connection closed.
    pub fn drop_next_reply(&self) {
        self.drop_next_reply.store(true, Ordering::SeqCst);
    }

    /// Copies requests to Redis and replies back until either side closes, or until a reply is
    /// to be lost: then both connections are closed with the reply unsent.
    async fn relay(
        client: tokio::net::TcpStream,
        upstream_port: u16,
        armed: Arc<std::sync::atomic::AtomicBool>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(upstream) = tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await
        else {
            return;
        };
        let (mut client_read, mut client_write) = client.into_split();
        let (mut upstream_read, mut upstream_write) = upstream.into_split();
        let requests = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
        });
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match upstream_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) if armed.swap(false, Ordering::SeqCst) => break,
                Ok(read) => {
                    if client_write.write_all(&buffer[..read]).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Both halves of both sockets dropped: the client sees its connection closed.
        requests.abort();
    }
}

impl Drop for ReplyDroppingProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// A CA made for the test (openssl CLI) with a server certificate for 127.0.0.1/localhost and a
/// client certificate, all PEM files in a temp dir removed on drop.
pub struct TestCa {
    pub dir: PathBuf,
}

impl TestCa {
    pub fn create() -> TestCa {
        let dir = temp_dir("tls-ca");
        std::fs::create_dir_all(&dir).expect("ca dir");
        let ca = TestCa { dir };
        let extensions = ca.dir.join("server.ext");
        std::fs::write(
            &extensions,
            "subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth, clientAuth\n",
        )
        .expect("write server.ext");
        let client_extensions = ca.dir.join("client.ext");
        std::fs::write(&client_extensions, "extendedKeyUsage = clientAuth\n")
            .expect("write client.ext");
        let path = |name: &str| ca.path(name).display().to_string();
        let steps: Vec<Vec<String>> = vec![
            vec![
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=oidc-authz test CA",
                "-keyout",
                &path("ca.key"),
                "-out",
                &path("ca.crt"),
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            vec![
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &path("server.key"),
                "-out",
                &path("server.csr"),
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            vec![
                "x509",
                "-req",
                "-in",
                &path("server.csr"),
                "-CA",
                &path("ca.crt"),
                "-CAkey",
                &path("ca.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &extensions.display().to_string(),
                "-out",
                &path("server.crt"),
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            vec![
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=oidc-authz",
                "-keyout",
                &path("client.key"),
                "-out",
                &path("client.csr"),
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            vec![
                "x509",
                "-req",
                "-in",
                &path("client.csr"),
                "-CA",
                &path("ca.crt"),
                "-CAkey",
                &path("ca.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &client_extensions.display().to_string(),
                "-out",
                &path("client.crt"),
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
        ];
        for (index, args) in steps.iter().enumerate() {
            let log = ca.dir.join(format!("openssl-{index}.log"));
            if let Err(error) = run_bounded("openssl", args, &log, Duration::from_secs(30)) {
                panic!("openssl step {index} failed: {error}");
            }
        }
        ca
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn pem(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read a PEM file")
    }

    /// `redis.conf` lines that serve the server certificate and trust this CA.
    fn redis_config_lines(&self, auth_clients: bool) -> String {
        format!(
            "tls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\ntls-auth-clients {}\n",
            self.path("server.crt").display(),
            self.path("server.key").display(),
            self.path("ca.crt").display(),
            if auth_clients { "yes" } else { "no" }
        )
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A single `redis-server` over TLS with its own CA (see `TestCa`), for `rediss://` cases.
pub struct TlsRedis {
    pub server: RedisServer,
    pub tls_port: u16,
    pub ca: Arc<TestCa>,
}

impl TlsRedis {
    pub fn start(auth_clients: bool) -> TlsRedis {
        let ca = Arc::new(TestCa::create());
        let tls_port = free_port();
        let server = RedisServer::start_tls_on(&ca, tls_port, auth_clients);
        TlsRedis {
            server,
            tls_port,
            ca,
        }
    }

    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.tls_port)
    }

    /// `redis.ca_file`'s worth: trust this test's CA.
    pub fn ca_only(&self) -> RedisTls {
        RedisTls {
            ca_pem: Some(self.ca.pem("ca.crt")),
            client_pem: None,
        }
    }

    pub fn store(&self, key_prefix: &str) -> Arc<dyn SessionStore> {
        let topology = RedisTopology::Single { url: self.url() };
        Arc::new(
            RedisStore::with_tls(
                &topology,
                &self.ca_only(),
                key_prefix,
                8,
                REDIS_TLS_COMMAND_TIMEOUT,
            )
            .expect("tls pool"),
        )
    }
}

/// A Sentinel and its master, both over TLS with their own CA.
pub struct TlsSentinel {
    pub setup: RedisSentinel,
    pub ca: Arc<TestCa>,
}

impl TlsSentinel {
    pub fn start() -> TlsSentinel {
        let ca = Arc::new(TestCa::create());
        TlsSentinel {
            setup: RedisSentinel::start_tls(&ca),
            ca,
        }
    }

    pub fn store(&self, key_prefix: &str) -> Arc<dyn SessionStore> {
        let topology = self.setup.topology(0, None, None);
        let tls = RedisTls {
            ca_pem: Some(self.ca.pem("ca.crt")),
            client_pem: None,
        };
        Arc::new(
            RedisStore::with_tls(&topology, &tls, key_prefix, 8, REDIS_TLS_COMMAND_TIMEOUT)
                .expect("tls sentinel pool"),
        )
    }
}

pub fn shared_tls_redis() -> Arc<TlsRedis> {
    static SHARED: Mutex<Weak<TlsRedis>> = Mutex::new(Weak::new());
    shared(&SHARED, || TlsRedis::start(false))
}

pub fn shared_tls_sentinel() -> Arc<TlsSentinel> {
    static SHARED: Mutex<Weak<TlsSentinel>> = Mutex::new(Weak::new());
    shared(&SHARED, TlsSentinel::start)
}
