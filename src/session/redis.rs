//! The Redis store, for replicas that share sessions: one Redis, a Redis Cluster, or a master found
//! through Redis Sentinel (`RedisTopology`). Every command goes over one shared multiplexed
//! connection (one round trip each, concurrent commands pipelined), replaced after an error; every
//! command has a timeout so a hung Redis turns into an error (fail closed), not a hung Check.
//! Single-use values are taken with `GETDEL` (Redis 6.2+); locks are taken with `SET NX PX` and
//! released by their holder only (a compare-and-delete script); sessions are updated with `SET XX`,
//! so an update cannot bring back a session a logout deleted. A command that failed on a broken
//! connection is sent once more on a fresh one only if it is idempotent (`Replay`): takes and lock
//! acquisitions never are, since their lost reply cannot be told from a lost request.
//!
//! Cluster: every command and every `MULTI` pipeline here touches exactly one key, hence one hash
//! slot, so each runs on the one node owning it (redirections are followed by the client); `PING`
//! (readiness) goes to every master and succeeds only if all answer.
//! Sentinel: each new connection asks the sentinels for the current master and checks its `ROLE`; a
//! connection that saw an error is dropped rather than pooled, so after a failover the pool does not
//! keep talking to a demoted master. The master's own credentials (`requirepass` or an ACL user)
//! are separate from the sentinels' (in their URLs).
//! TLS (`rediss://`, rustls): `RedisTls` adds a CA and a client certificate to one server, or to
//! the sentinels and the master they name (TLS to the master exactly when the sentinels' URLs are
//! `rediss://`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::{self, aio::ConnectionLike};
use deadpool_redis::{Runtime, cluster, sentinel};

use super::reconnect::ReconnectPacer;
use super::redis_changes::ChangeFeed;
use super::store::InvalidationListener;
use super::store::{SessionStore, StoreError};
use crate::log_limit::RateLimitedLog;

/// Where the Redis is. URLs may hold passwords: deliberately no `Debug`.
#[derive(Clone)]
pub enum RedisTopology {
    /// One server: `redis://`, `rediss://` or `unix://`.
    Single { url: String },
    /// Seed nodes of a Redis Cluster; the client discovers the rest.
    Cluster { urls: Vec<String> },
    /// Sentinels that know the master `master_name`; `db` is selected on the master. `username`
    /// and `password` log in to the master (`AUTH`); the URLs' credentials are the sentinels'.
    Sentinel {
        urls: Vec<String>,
        master_name: String,
        db: i64,
        username: Option<String>,
        password: Option<String>,
    },
}

/// Certificates for `rediss://` beyond the system's trust store (PEM). Deliberately no `Debug`:
/// it holds a private key.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// CA certificates that sign the servers' certificates (`redis.ca_file`).
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate and its key (`redis.cert_file`, `redis.key_file`), for servers with
    /// `tls-auth-clients yes`.
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl RedisTls {
    fn certificates(&self) -> Option<redis::TlsCertificates> {
        if self.ca_pem.is_none() && self.client_pem.is_none() {
            return None;
        }
        Some(redis::TlsCertificates {
            client_tls: self.client_pem.clone().map(|(client_cert, client_key)| {
                redis::ClientTlsConfig {
                    client_cert,
                    client_key,
                }
            }),
            root_cert: self.ca_pem.clone(),
        })
    }
}

/// One pool per topology, used as a connection factory: `connect` yields a `Connection` that hides
/// which.
enum Pool {
    Single(deadpool_redis::Pool),
    Cluster(cluster::Pool),
    Sentinel(sentinel::Pool),
    /// Sentinels over TLS: deadpool cannot pass certificates to them or to the master, so the
    /// redis crate's own client (which asks the sentinels, then checks the master's role) is the
    /// factory.
    SentinelTls(Box<tokio::sync::Mutex<redis::sentinel::SentinelClient>>),
}

/// A multiplexed connection: cheap to clone, and concurrent commands on it are pipelined, so every
/// Check shares it and a command costs exactly one round trip. (A pool checkout per command would
/// add deadpool's `UNWATCH`+`PING` recycle round trip to every Check.)
#[derive(Clone)]
enum Connection {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
    Sentinel(redis::aio::MultiplexedConnection),
}

impl Pool {
    /// A new connection, taken out of the pool for good (it is shared, not returned).
    async fn connect(&self) -> Result<Connection, String> {
        Ok(match self {
            Pool::Single(pool) => Connection::Single(deadpool_redis::Connection::take(
                pool.get().await.map_err(|e| pool_error(&e))?,
            )),
            Pool::Cluster(pool) => Connection::Cluster(cluster::Connection::take(
                pool.get().await.map_err(|e| pool_error(&e))?,
            )),
            Pool::Sentinel(pool) => Connection::Sentinel(sentinel::Connection::take(
                pool.get().await.map_err(|e| pool_error(&e))?,
            )),
            Pool::SentinelTls(client) => Connection::Sentinel(
                client
                    .lock()
                    .await
                    .get_async_connection()
                    .await
                    .map_err(|e| redis_error(&e))?,
            ),
        })
    }
}

/// A pool's error in words; see `redis_error`.
fn pool_error(error: &deadpool_redis::PoolError) -> String {
    match error {
        deadpool_redis::PoolError::Backend(error) => redis_error(error),
        other => other.to_string(),
    }
}

/// The redis crate's error in words, except its Sentinel one: "Master with given name not found
/// in sentinel" is what it says when the sentinels name no master that answers as one (the master
/// is down, or a failover is under way), not when the name is wrong.
fn redis_error(error: &redis::RedisError) -> String {
    match error.kind() {
        redis::ErrorKind::MasterNameNotFoundBySentinel => {
            "no master reachable through the sentinels (the master is down or a failover is in progress)".into()
        }
        _ => error.to_string(),
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
            Connection::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(cmd, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Connection::Sentinel(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
            Connection::Sentinel(c) => c.get_db(),
        }
    }
}

/// One command or one pipeline, built before sending so it can be sent again on a fresh connection.
enum Request {
    Command(redis::Cmd),
    Pipeline(redis::Pipeline),
}

/// Whether a request may be sent again after its connection broke. A broken connection cannot say
/// whether the request reached Redis: only its reply may have been lost.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// Sending it twice does what sending it once does, and the second reply is as true as the
    /// first: `GET`, `SET`, `SET XX`, `DEL`, compare-and-delete (`EVAL`), `SREM`,
    /// `SADD`+`PEXPIRE NX|GT`, `PING`.
    Safe,
    /// The first send may have done the work, and a second would report that work as someone
    /// else's: a retried `GETDEL` or `SMEMBERS`+`DEL` finds nothing (a back-channel logout would
    /// answer 200 having deleted nothing), a retried `SET NX` finds its own value and says "taken".
    /// The error goes to the caller instead (fail closed; the IdP or browser retries).
    Never,
}

impl Request {
    async fn send<T: redis::FromRedisValue>(
        &self,
        connection: &mut Connection,
    ) -> redis::RedisResult<T> {
        match self {
            Request::Command(command) => command.query_async(connection).await,
            Request::Pipeline(pipeline) => pipeline.query_async(connection).await,
        }
    }
}

pub struct RedisStore {
    pool: Pool,
    /// One server's invalidation feed (`redis_changes.rs`), for the session cache; none for a
    /// Cluster (a feed per node) or Sentinel (the feed would have to follow failovers) yet.
    changes: Option<Arc<ChangeFeed>>,
    /// The shared connection; replaced after any error (a broken socket, or a demoted master
    /// answering READONLY after a Sentinel failover). std `Mutex`: never held across an `.await`.
    shared: std::sync::Mutex<Option<Connection>>,
    /// Held while connecting, so that one connect serves every command waiting for it.
    connecting: tokio::sync::Mutex<()>,
    key_prefix: String,
    command_timeout: Duration,
    /// Spaces out connection attempts while Redis is down (`reconnect`).
    pacer: ReconnectPacer,
    /// "Redis went down" lines, at most one a second (a flapping Redis).
    down_log: RateLimitedLog,
}

/// Compare-and-delete in one step (Redis 7.0 has no conditional `DEL`): one key, so one Cluster
/// slot.
const DELETE_IF_EQUALS_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     return redis.call('DEL', KEYS[1]) else return 0 end";

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

fn millis(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

impl RedisStore {
    /// A store on one Redis at `url`; see `with_topology`.
    pub fn new(
        url: &str,
        key_prefix: &str,
        pool_size: usize,
        command_timeout: Duration,
    ) -> Result<Self, String> {
        Self::with_topology(
            &RedisTopology::Single {
                url: url.to_owned(),
            },
            key_prefix,
            pool_size,
            command_timeout,
        )
    }

    /// A store on `topology`, trusting the system's CAs for `rediss://`; see `with_tls`.
    pub fn with_topology(
        topology: &RedisTopology,
        key_prefix: &str,
        pool_size: usize,
        command_timeout: Duration,
    ) -> Result<Self, String> {
        Self::with_tls(
            topology,
            &RedisTls::default(),
            key_prefix,
            pool_size,
            command_timeout,
        )
    }

    /// Builds the pool; connects lazily, so a Redis that is down at start is reported by the first
    /// Check (and the readiness probe), not by a crash. `tls` applies to `rediss://` URLs: one
    /// server, or the sentinels and then the master they name (TLS to the master exactly when the
    /// sentinels' URLs are `rediss://`). Not to a Cluster (the configuration refuses that).
    pub fn with_tls(
        topology: &RedisTopology,
        tls: &RedisTls,
        key_prefix: &str,
        pool_size: usize,
        command_timeout: Duration,
    ) -> Result<Self, String> {
        let pool_config = deadpool_redis::PoolConfig {
            max_size: pool_size,
            timeouts: deadpool_redis::Timeouts {
                wait: Some(command_timeout),
                create: Some(command_timeout),
                recycle: Some(command_timeout),
            },
            ..Default::default()
        };
        let invalid =
            |error: &dyn std::fmt::Display| format!("invalid Redis configuration: {error}");
        let runtime = Some(Runtime::Tokio1);
        let pool = match topology {
            RedisTopology::Single { url } if url.starts_with("rediss://") => {
                let connection_info = single_connection_info(url, tls).map_err(|e| invalid(&e))?;
                let manager =
                    deadpool_redis::Manager::new(connection_info).map_err(|e| invalid(&e))?;
                Pool::Single(
                    deadpool_redis::Pool::builder(manager)
                        .config(pool_config)
                        .runtime(Runtime::Tokio1)
                        .build()
                        .map_err(|e| invalid(&e))?,
                )
            }
            RedisTopology::Sentinel {
                urls,
                master_name,
                db,
                username,
                password,
            } if urls.iter().any(|url| url.starts_with("rediss://")) => {
                let client = sentinel_tls_client(
                    urls,
                    master_name,
                    *db,
                    username.as_deref(),
                    password.as_deref(),
                    tls,
                )
                .map_err(|e| invalid(&e))?;
                Pool::SentinelTls(Box::new(tokio::sync::Mutex::new(client)))
            }
            RedisTopology::Single { url } => {
                let mut config = deadpool_redis::Config::from_url(url.as_str());
                config.pool = Some(pool_config);
                Pool::Single(config.create_pool(runtime).map_err(|e| invalid(&e))?)
            }
            RedisTopology::Cluster { urls } => {
                let mut config = cluster::Config::from_urls(urls.clone());
                config.pool = Some(pool_config);
                Pool::Cluster(config.create_pool(runtime).map_err(|e| invalid(&e))?)
            }
            RedisTopology::Sentinel {
                urls,
                master_name,
                db,
                username,
                password,
            } => {
                let mut config = sentinel::Config::from_urls(
                    urls.clone(),
                    master_name.clone(),
                    sentinel::SentinelServerType::Master,
                );
                config.node_connection_info = Some(sentinel::SentinelNodeConnectionInfo {
                    tls_mode: None,
                    redis_connection_info: Some(deadpool_redis::RedisConnectionInfo {
                        db: *db,
                        username: username.clone(),
                        password: password.clone(),
                        ..Default::default()
                    }),
                });
                config.pool = Some(pool_config);
                Pool::Sentinel(config.create_pool(runtime).map_err(|e| invalid(&e))?)
            }
        };
        let changes = match topology {
            RedisTopology::Single { url } => Some(ChangeFeed::new(
                single_connection_info(url, tls).map_err(|e| invalid(&e))?,
                key_prefix,
            )),
            RedisTopology::Cluster { .. } | RedisTopology::Sentinel { .. } => None,
        };
        Ok(RedisStore {
            pool,
            changes,
            shared: std::sync::Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            key_prefix: key_prefix.to_owned(),
            command_timeout,
            pacer: ReconnectPacer::default(),
            down_log: RateLimitedLog::per_second(),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Connection>> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The shared connection, connecting first if there is none; says whether it was already
    /// shared (and so may have gone stale). Commands that find none wait for one connect instead
    /// of each making their own (a burst of TLS handshakes at start or after a failover); while
    /// Redis is down, attempts are paced (`ReconnectPacer`) and commands in between fail at once.
    async fn connection(&self) -> Result<(Connection, bool), StoreError> {
        if let Some(connection) = self.slot().clone() {
            return Ok((connection, true));
        }
        self.pacer.may_attempt().map_err(StoreError::Unavailable)?;
        let _connecting = self.connecting.lock().await;
        if let Some(connection) = self.slot().clone() {
            return Ok((connection, false));
        }
        // Whoever held the lock before us may have just failed.
        self.pacer.may_attempt().map_err(StoreError::Unavailable)?;
        let connection = match self.pool.connect().await {
            Ok(connection) => connection,
            Err(error) => {
                if self.pacer.failed(&error)
                    && let Some(suppressed) = self.down_log.admit()
                {
                    tracing::warn!(%error, suppressed, "session store unreachable; reconnecting with backoff");
                }
                return Err(unavailable(error));
            }
        };
        if let Some(failed_attempts) = self.pacer.succeeded() {
            tracing::info!(failed_attempts, "session store reachable again");
        }
        *self.slot() = Some(connection.clone());
        Ok((connection, false))
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        request: &Request,
        replay: Replay,
    ) -> Result<T, StoreError> {
        let attempt = async {
            let (mut connection, reused) = self.connection().await?;
            match request.send(&mut connection).await {
                Ok(value) => Ok(value),
                Err(error) => {
                    // Broken, or a demoted master answering READONLY: connect anew.
                    self.slot().take();
                    // A shared connection found dead (Redis restarted while we were idle) gets
                    // one more try on a fresh one, so a restart does not fail a request; but only
                    // for a request that may be replayed (see `Replay`).
                    let stale = error.is_connection_dropped() || error.is_io_error();
                    if !(reused && stale && replay == Replay::Safe) {
                        return Err(unavailable(error));
                    }
                    let (mut fresh, _) = self.connection().await?;
                    request.send(&mut fresh).await.map_err(|error| {
                        self.slot().take();
                        unavailable(error)
                    })
                }
            }
        };
        tokio::time::timeout(self.command_timeout, attempt)
            .await
            .map_err(|_| StoreError::Unavailable("Redis command timed out".into()))?
    }
}

/// Where one server is: its URL, with `tls`'s certificates for `rediss://`.
fn single_connection_info(url: &str, tls: &RedisTls) -> redis::RedisResult<redis::ConnectionInfo> {
    match tls.certificates() {
        Some(certificates) if url.starts_with("rediss://") => {
            Ok(redis::Client::build_with_tls(url, certificates)?
                .get_connection_info()
                .clone())
        }
        _ => redis::IntoConnectionInfo::into_connection_info(url),
    }
}

/// A Sentinel client that speaks TLS to the sentinels and to the master, with `tls`'s
/// certificates for both. The sentinels share one login (the first URL's): the redis crate's
/// builder takes one; the configuration refuses URLs with different ones.
fn sentinel_tls_client(
    urls: &[String],
    master_name: &str,
    db: i64,
    username: Option<&str>,
    password: Option<&str>,
    tls: &RedisTls,
) -> Result<redis::sentinel::SentinelClient, String> {
    let sentinels = urls
        .iter()
        .map(|url| redis::IntoConnectionInfo::into_connection_info(url.as_str()))
        .collect::<redis::RedisResult<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    if urls.iter().any(|url| !url.starts_with("rediss://")) {
        return Err("the sentinels' URLs are all rediss:// or all redis://".into());
    }
    let login = |info: &redis::ConnectionInfo| {
        let settings = info.redis_settings();
        (
            settings.username().map(str::to_owned),
            settings.password().map(str::to_owned),
        )
    };
    let sentinel_login = sentinels.first().map(login).unwrap_or_default();
    if sentinels.iter().any(|info| login(info) != sentinel_login) {
        return Err("the sentinels' URLs must all carry the same user and password".into());
    }
    let mut builder = redis::sentinel::SentinelClientBuilder::new(
        sentinels.iter().map(|info| info.addr().clone()),
        master_name,
        redis::sentinel::SentinelServerType::Master,
    )
    .map_err(|e| e.to_string())?
    .set_client_to_redis_db(db)
    .set_client_to_redis_tls_mode(redis::TlsMode::Secure);
    if let Some(certificates) = tls.certificates() {
        builder = builder
            .set_client_to_sentinel_certificates(certificates.clone())
            .set_client_to_redis_certificates(certificates);
    }
    if let Some(sentinel_username) = &sentinel_login.0 {
        builder = builder.set_client_to_sentinel_username(sentinel_username);
    }
    if let Some(sentinel_password) = &sentinel_login.1 {
        builder = builder.set_client_to_sentinel_password(sentinel_password);
    }
    if let Some(username) = username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = password {
        builder = builder.set_client_to_redis_password(password);
    }
    builder.build().map_err(|e| e.to_string())
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(self.key(key)).arg(value).arg("PX").arg(millis(ttl));
        self.run::<()>(&Request::Command(set), Replay::Safe).await
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl));
        let reply: Option<String> = self.run(&Request::Command(set), Replay::Never).await?;
        Ok(reply.is_some())
    }

    async fn put_if_present(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(self.key(key))
            .arg(value)
            .arg("XX")
            .arg("PX")
            .arg(millis(ttl));
        // Resent after a lost reply, it finds its own value there and writes it again (true), or
        // finds the key deleted since and writes nothing (false, and true to the caller's intent).
        let reply: Option<String> = self.run(&Request::Command(set), Replay::Safe).await?;
        Ok(reply.is_some())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut get = redis::cmd("GET");
        get.arg(self.key(key));
        self.run(&Request::Command(get), Replay::Safe).await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut get_del = redis::cmd("GETDEL");
        get_del.arg(self.key(key));
        self.run(&Request::Command(get_del), Replay::Never).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut del = redis::cmd("DEL");
        del.arg(self.key(key));
        self.run::<()>(&Request::Command(del), Replay::Safe).await
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let mut eval = redis::cmd("EVAL");
        eval.arg(DELETE_IF_EQUALS_SCRIPT)
            .arg(1)
            .arg(self.key(key))
            .arg(expected);
        // Resent after a lost reply, it finds the key gone and deletes nothing: the same end state
        // (see the trait: the answer may then be `false`).
        let deleted: i64 = self.run(&Request::Command(eval), Replay::Safe).await?;
        Ok(deleted == 1)
    }

    async fn add_to_set(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let key = self.key(key);
        // Extend the set's life to at least `ttl`: PEXPIRE GT only lengthens an existing TTL, and
        // the plain PEXPIRE NX gives a new set its first one.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .sadd(&key, member)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(millis(ttl))
            .arg("NX")
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(millis(ttl))
            .arg("GT")
            .ignore();
        self.run::<()>(&Request::Pipeline(pipe), Replay::Safe).await
    }

    async fn remove_from_set(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let mut srem = redis::cmd("SREM");
        srem.arg(self.key(key)).arg(member);
        self.run::<()>(&Request::Command(srem), Replay::Safe).await
    }

    async fn take_set(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let key = self.key(key);
        let mut pipe = redis::pipe();
        pipe.atomic().smembers(&key).del(&key).ignore();
        let (members,): (Vec<String>,) = self.run(&Request::Pipeline(pipe), Replay::Never).await?;
        Ok(members)
    }

    async fn push_bounded(
        &self,
        key: &str,
        member: &str,
        max_len: usize,
        ttl: Duration,
    ) -> Result<Vec<String>, StoreError> {
        let (key, max_len) = (self.key(key), max_len.max(1) as isize);
        // Never resent: a second send would report no dropped members, and their pending logins
        // would outlive the bound. (LREM first still keeps a member from being listed twice.)
        let mut pipe = redis::pipe();
        pipe.atomic()
            .lrem(&key, 0, member)
            .ignore()
            .lpush(&key, member)
            .ignore()
            .lrange(&key, max_len, -1)
            .ltrim(&key, 0, max_len - 1)
            .ignore()
            .pexpire(&key, millis(ttl) as i64)
            .ignore();
        let (mut dropped,): (Vec<String>,) =
            self.run(&Request::Pipeline(pipe), Replay::Never).await?;
        dropped.reverse();
        Ok(dropped)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run::<()>(&Request::Command(redis::cmd("PING")), Replay::Safe)
            .await
    }

    fn watch_changes(&self, prefix: &str, listener: Arc<dyn InvalidationListener>) -> bool {
        self.changes
            .as_ref()
            .is_some_and(|changes| changes.watch(prefix, listener))
    }
}
