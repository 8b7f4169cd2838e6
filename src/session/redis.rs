//! The Redis store, for replicas that share sessions: one Redis, a Redis Cluster, or a master found
//! through Redis Sentinel (`RedisTopology`). Every command goes over one shared multiplexed
//! connection (one round trip each, concurrent commands pipelined), replaced after an error; every
//! command has a timeout so a hung Redis turns into an error (fail closed), not a hung Check. Single-use values
//! are taken with `GETDEL` (Redis 6.2+), locks use `SET NX PX`.
//!
//! Cluster: every command and every `MULTI` pipeline here touches exactly one key, hence one hash
//! slot, so each runs on the one node owning it (redirections are followed by the client); `PING`
//! (readiness) goes to every master and succeeds only if all answer.
//! Sentinel: each new connection asks the sentinels for the current master and checks its `ROLE`; a
//! connection that saw an error is dropped rather than pooled, so after a failover the pool does not
//! keep talking to a demoted master. The master's own credentials (`requirepass` or an ACL user)
//! are separate from the sentinels' (in their URLs).

use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::{self, aio::ConnectionLike};
use deadpool_redis::{Runtime, cluster, sentinel};

use super::store::{SessionStore, StoreError};

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

/// One pool per topology, used as a connection factory: `connect` yields a `Connection` that hides
/// which.
enum Pool {
    Single(deadpool_redis::Pool),
    Cluster(cluster::Pool),
    Sentinel(sentinel::Pool),
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
                pool.get().await.map_err(|e| e.to_string())?,
            )),
            Pool::Cluster(pool) => Connection::Cluster(cluster::Connection::take(
                pool.get().await.map_err(|e| e.to_string())?,
            )),
            Pool::Sentinel(pool) => Connection::Sentinel(sentinel::Connection::take(
                pool.get().await.map_err(|e| e.to_string())?,
            )),
        })
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
    /// The shared connection; replaced after any error (a broken socket, or a demoted master
    /// answering READONLY after a Sentinel failover). std `Mutex`: never held across an `.await`.
    shared: std::sync::Mutex<Option<Connection>>,
    key_prefix: String,
    command_timeout: Duration,
}

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

    /// Builds the pool; connects lazily, so a Redis that is down at start is reported by the first
    /// Check (and the readiness probe), not by a crash.
    pub fn with_topology(
        topology: &RedisTopology,
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
        Ok(RedisStore {
            pool,
            shared: std::sync::Mutex::new(None),
            key_prefix: key_prefix.to_owned(),
            command_timeout,
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
    /// shared (and so may have gone stale). Two commands racing to connect may both connect; the
    /// last one stays shared, the other is dropped after its command.
    async fn connection(&self) -> Result<(Connection, bool), StoreError> {
        if let Some(connection) = self.slot().clone() {
            return Ok((connection, true));
        }
        let connection = self.pool.connect().await.map_err(unavailable)?;
        *self.slot() = Some(connection.clone());
        Ok((connection, false))
    }

    async fn run<T: redis::FromRedisValue>(&self, request: &Request) -> Result<T, StoreError> {
        let attempt = async {
            let (mut connection, reused) = self.connection().await?;
            match request.send(&mut connection).await {
                Ok(value) => Ok(value),
                Err(error) => {
                    // Broken, or a demoted master answering READONLY: connect anew.
                    self.slot().take();
                    // A shared connection found dead (Redis restarted while we were idle) gets
                    // one more try on a fresh one, so a restart does not fail a request. Safe for
                    // every command here: a retried GETDEL or SET NX can only find the work done.
                    let stale = error.is_connection_dropped() || error.is_io_error();
                    if !(reused && stale) {
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

#[async_trait]
impl SessionStore for RedisStore {
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(self.key(key)).arg(value).arg("PX").arg(millis(ttl));
        self.run::<()>(&Request::Command(set)).await
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
        let reply: Option<String> = self.run(&Request::Command(set)).await?;
        Ok(reply.is_some())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut get = redis::cmd("GET");
        get.arg(self.key(key));
        self.run(&Request::Command(get)).await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut get_del = redis::cmd("GETDEL");
        get_del.arg(self.key(key));
        self.run(&Request::Command(get_del)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut del = redis::cmd("DEL");
        del.arg(self.key(key));
        self.run::<()>(&Request::Command(del)).await
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
        self.run::<()>(&Request::Pipeline(pipe)).await
    }

    async fn remove_from_set(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let mut srem = redis::cmd("SREM");
        srem.arg(self.key(key)).arg(member);
        self.run::<()>(&Request::Command(srem)).await
    }

    async fn take_set(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let key = self.key(key);
        let mut pipe = redis::pipe();
        pipe.atomic().smembers(&key).del(&key).ignore();
        let (members,): (Vec<String>,) = self.run(&Request::Pipeline(pipe)).await?;
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
        // LREM first makes a retried push (see `run`) move the member instead of listing it twice.
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
        let (mut dropped,): (Vec<String>,) = self.run(&Request::Pipeline(pipe)).await?;
        dropped.reverse();
        Ok(dropped)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run::<()>(&Request::Command(redis::cmd("PING"))).await
    }
}
