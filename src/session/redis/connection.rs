//! The shared multiplexed connection and how commands travel on it: one connect at a time, paced
//! while Redis is down (`ReconnectPacer`), replaced after any error, and a command resent once on a
//! fresh connection only if it may be (`Replay`); every command under the store's timeout.

use deadpool_redis::redis::{self, aio::ConnectionLike};
use deadpool_redis::{cluster, sentinel};

use super::RedisStore;
use super::topology::Pool;
use crate::session::store::StoreError;

/// A multiplexed connection: cheap to clone, and concurrent commands on it are pipelined, so every
/// Check shares it and a command costs exactly one round trip. (A pool checkout per command would
/// add deadpool's `UNWATCH`+`PING` recycle round trip to every Check.)
#[derive(Clone)]
pub(super) enum Connection {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
    Sentinel(redis::aio::MultiplexedConnection),
}

impl Pool {
    /// A new connection, taken out of the pool for good (it is shared, not returned).
    async fn connect(&self) -> Result<Connection, ConnectError> {
        Ok(match self {
            Pool::Single(pool) => {
                Connection::Single(deadpool_redis::Connection::take(pool.get().await?))
            }
            Pool::Cluster(pool) => {
                Connection::Cluster(cluster::Connection::take(pool.get().await?))
            }
            Pool::Sentinel(pool) => {
                Connection::Sentinel(sentinel::Connection::take(pool.get().await?))
            }
            Pool::SentinelTls(client) => {
                Connection::Sentinel(client.lock().await.get_async_connection().await?)
            }
        })
    }
}

/// Why a connection attempt failed: the redis crate's or the pool's error, except the crate's
/// Sentinel one: "Master with given name not found in sentinel" is what it says when the sentinels
/// name no master that answers as one (the master is down, or a failover is under way), not when
/// the name is wrong.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error(
        "no master reachable through the sentinels (the master is down or a failover is in progress)"
    )]
    NoMasterReachable,
    #[error("{0}")]
    Redis(redis::RedisError),
    #[error("{0}")]
    Pool(deadpool_redis::PoolError),
}

impl From<redis::RedisError> for ConnectError {
    fn from(error: redis::RedisError) -> Self {
        match error.kind() {
            redis::ErrorKind::MasterNameNotFoundBySentinel => ConnectError::NoMasterReachable,
            _ => ConnectError::Redis(error),
        }
    }
}

impl From<deadpool_redis::PoolError> for ConnectError {
    fn from(error: deadpool_redis::PoolError) -> Self {
        match error {
            deadpool_redis::PoolError::Backend(error) => error.into(),
            other => ConnectError::Pool(other),
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

/// One command or one pipeline, built before sending so it can be sent again on a fresh connection.
pub(super) enum Request {
    Command(redis::Cmd),
    Pipeline(redis::Pipeline),
}

/// Whether a request may be sent again after its connection broke. A broken connection cannot say
/// whether the request reached Redis: only its reply may have been lost.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Replay {
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

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

impl RedisStore {
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
        self.pacer.may_attempt().map_err(unavailable)?;
        let _connecting = self.connecting.lock().await;
        if let Some(connection) = self.slot().clone() {
            return Ok((connection, false));
        }
        // Whoever held the lock before us may have just failed.
        self.pacer.may_attempt().map_err(unavailable)?;
        let connection = match self.pool.connect().await {
            Ok(connection) => connection,
            Err(error) => {
                if self.pacer.failed(&error.to_string())
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

    /// Sends `request` on the shared connection, within the command timeout (see `Replay`).
    pub(super) async fn run<T: redis::FromRedisValue>(
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
