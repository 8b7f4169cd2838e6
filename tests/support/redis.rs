//! A `redis-server` of the test's own on a free loopback port (never the system instance), killed
//! on drop. Tests FAIL, not skip, when `redis-server` is not on PATH: `scripts/install-deps`
//! installs it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use oidc_authz::session::redis::RedisStore;
use oidc_authz::session::store::SessionStore;

/// How long a starting redis-server may take to answer PING.
const REDIS_START_BOUND: Duration = Duration::from_secs(10);
pub const REDIS_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// A `redis-server` child on a loopback port; killed on drop.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Whether something on `port` answers a RESP `PING` with `+PONG`.
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
        && &reply == b"+PONG\r\n"
}

impl RedisServer {
    /// Starts a server on a free port (a few attempts, in case another process takes the port).
    pub fn start() -> RedisServer {
        let mut last_error = String::new();
        for _ in 0..5 {
            let server = RedisServer {
                port: free_port(),
                dir: std::env::temp_dir().join(format!(
                    "oidc-authz-store-conformance-{}-{}",
                    std::process::id(),
                    free_port()
                )),
                child: Mutex::new(None),
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(error) => last_error = error,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
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
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(server) = shared.upgrade() {
        return server;
    }
    let server = Arc::new(RedisServer::start());
    *shared = Arc::downgrade(&server);
    server
}
