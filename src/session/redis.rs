//! The Redis store, for replicas that share sessions: one Redis, a Redis Cluster, or a master found
//! through Redis Sentinel (`RedisTopology`). One pooled connection per command; every command has a
//! timeout so a hung Redis turns into an error (fail closed), not a hung Check. Single-use values
//! are taken with `GETDEL` (Redis 6.2+), locks use `SET NX PX`.
//!
//! Cluster: every command and every `MULTI` pipeline here touches exactly one key, hence one hash
//! slot, so each runs on the one node owning it (redirections are followed by the client); `PING`
//! (readiness) goes to every master and succeeds only if all answer.
//! Sentinel: each new connection asks the sentinels for the current master and checks its `ROLE`; a
//! connection that saw an error is dropped rather than pooled, so after a failover the pool does not
//! keep talking to a demoted master.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::{self, AsyncCommands, aio::ConnectionLike};
use deadpool_redis::{Runtime, cluster, sentinel};

use super::store::{SessionStore, StoreError};

/// Where the Redis is. URLs may hold passwords: deliberately no `Debug`.
#[derive(Clone)]
pub enum RedisTopology {
    /// One server: `redis://`, `rediss://` or `unix://`.
    Single { url: String },
    /// Seed nodes of a Redis Cluster; the client discovers the rest.
    Cluster { urls: Vec<String> },
    /// Sentinels that know the master `master_name`; `db` is selected on the master.
    Sentinel {
        urls: Vec<String>,
        master_name: String,
        db: i64,
    },
}

/// One pool per topology; `get` yields a `Connection` that hides which.
enum Pool {
    Single(deadpool_redis::Pool),
    Cluster(cluster::Pool),
    Sentinel(sentinel::Pool),
}

enum Connection {
    Single(deadpool_redis::Connection),
    Cluster(cluster::Connection),
    Sentinel(sentinel::Connection),
}

impl Pool {
    async fn get(&self) -> Result<Connection, String> {
        Ok(match self {
            Pool::Single(pool) => Connection::Single(pool.get().await.map_err(|e| e.to_string())?),
            Pool::Cluster(pool) => {
                Connection::Cluster(pool.get().await.map_err(|e| e.to_string())?)
            }
            Pool::Sentinel(pool) => {
                Connection::Sentinel(pool.get().await.map_err(|e| e.to_string())?)
            }
        })
    }
}

impl Connection {
    /// Removes the connection from its pool, so dropping it closes it instead of pooling it.
    fn discard(self) {
        match self {
            Connection::Single(c) => drop(deadpool_redis::Connection::take(c)),
            Connection::Cluster(c) => drop(cluster::Connection::take(c)),
            Connection::Sentinel(c) => drop(sentinel::Connection::take(c)),
        }
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

pub struct RedisStore {
    pool: Pool,
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
                        ..Default::default()
                    }),
                });
                config.pool = Some(pool_config);
                Pool::Sentinel(config.create_pool(runtime).map_err(|e| invalid(&e))?)
            }
        };
        Ok(RedisStore {
            pool,
            key_prefix: key_prefix.to_owned(),
            command_timeout,
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    async fn run<T, F>(&self, command: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Connection) -> redis::RedisResult<T>,
    {
        let attempt = async {
            let mut connection = self.pool.get().await.map_err(unavailable)?;
            match command(&mut connection).await {
                Ok(value) => Ok(value),
                Err(error) => {
                    // Broken, or a demoted master answering READONLY: not worth pooling.
                    connection.discard();
                    Err(unavailable(error))
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
        let key = self.key(key);
        self.run(async |c| c.pset_ex::<_, _, ()>(&key, value, millis(ttl)).await)
            .await
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = self.key(key);
        self.run(async |c| {
            let reply: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl))
                .query_async(c)
                .await?;
            Ok(reply.is_some())
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(key);
        self.run(async |c| c.get(&key).await).await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(key);
        self.run(async |c| c.get_del(&key).await).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let key = self.key(key);
        self.run(async |c| c.del::<_, ()>(&key).await).await
    }

    async fn add_to_set(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let key = self.key(key);
        self.run(async |c| {
            // Extend the set's life to at least `ttl`: PEXPIRE GT only lengthens an existing TTL, and
            // the plain PEXPIRE NX gives a new set its first one.
            redis::pipe()
                .atomic()
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
                .ignore()
                .query_async::<()>(c)
                .await
        })
        .await
    }

    async fn take_set(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let key = self.key(key);
        self.run(async |c| {
            let (members,): (Vec<String>,) = redis::pipe()
                .atomic()
                .smembers(&key)
                .del(&key)
                .ignore()
                .query_async(c)
                .await?;
            Ok(members)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(async |c| redis::cmd("PING").query_async::<()>(c).await)
            .await
    }
}
