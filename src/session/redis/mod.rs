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
//!
//! Layout: `topology.rs` (where the Redis is, and the connection factory for it),
//! `connection.rs` (the shared connection, reconnects, resends, timeouts), `commands.rs` (the
//! `SessionStore` commands).

mod commands;
mod connection;
mod topology;

use std::sync::Arc;
use std::time::Duration;

use super::reconnect::ReconnectPacer;
use super::redis_changes::ChangeFeed;
use crate::log_limit::RateLimitedLog;
use connection::Connection;
use topology::{Pool, single_connection_info};
pub use topology::{RedisConfigError, RedisTls, RedisTopology};

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

impl RedisStore {
    /// A store on one Redis at `url`; see `with_topology`.
    pub fn new(
        url: &str,
        key_prefix: &str,
        pool_size: usize,
        command_timeout: Duration,
    ) -> Result<Self, RedisConfigError> {
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
    ) -> Result<Self, RedisConfigError> {
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
    ) -> Result<Self, RedisConfigError> {
        let pool = Pool::new(topology, tls, pool_config(pool_size, command_timeout))?;
        let changes = change_feed(topology, tls, key_prefix)?;
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
}

/// The pool's size, and `command_timeout` for waiting on it, connecting and recycling.
fn pool_config(pool_size: usize, command_timeout: Duration) -> deadpool_redis::PoolConfig {
    deadpool_redis::PoolConfig {
        max_size: pool_size,
        timeouts: deadpool_redis::Timeouts {
            wait: Some(command_timeout),
            create: Some(command_timeout),
            recycle: Some(command_timeout),
        },
        ..Default::default()
    }
}

/// One server's invalidation feed; none for a Cluster or Sentinel.
fn change_feed(
    topology: &RedisTopology,
    tls: &RedisTls,
    key_prefix: &str,
) -> Result<Option<Arc<ChangeFeed>>, RedisConfigError> {
    Ok(match topology {
        RedisTopology::Single { url } => Some(ChangeFeed::new(
            single_connection_info(url, tls)?,
            key_prefix,
        )),
        RedisTopology::Cluster { .. } | RedisTopology::Sentinel { .. } => None,
    })
}
