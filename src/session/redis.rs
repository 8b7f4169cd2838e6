//! The Redis store, for replicas that share sessions. One pooled connection per command; every
//! command has a timeout so a hung Redis turns into an error (fail closed), not a hung Check.
//! Single-use values are taken with `GETDEL` (Redis 6.2+), locks use `SET NX PX`.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::{self, AsyncCommands};
use deadpool_redis::{Config as PoolConfig, Pool, Runtime};

use super::store::{SessionStore, StoreError};

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
    /// Builds the pool; connects lazily, so a Redis that is down at start is reported by the first
    /// Check (and the readiness probe), not by a crash.
    pub fn new(
        url: &str,
        key_prefix: &str,
        pool_size: usize,
        command_timeout: Duration,
    ) -> Result<Self, String> {
        let mut config = PoolConfig::from_url(url);
        config.pool = Some(deadpool_redis::PoolConfig {
            max_size: pool_size,
            timeouts: deadpool_redis::Timeouts {
                wait: Some(command_timeout),
                create: Some(command_timeout),
                recycle: Some(command_timeout),
            },
            ..Default::default()
        });
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|error| format!("invalid Redis configuration: {error}"))?;
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
        F: AsyncFnOnce(&mut deadpool_redis::Connection) -> redis::RedisResult<T>,
    {
        let attempt = async {
            let mut connection = self.pool.get().await.map_err(unavailable)?;
            command(&mut connection).await.map_err(unavailable)
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
