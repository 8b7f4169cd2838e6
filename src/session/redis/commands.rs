//! The `SessionStore` commands on Redis: each one key (so one Cluster slot), built as a `Request`
//! and sent through `RedisStore::run` with whether it may be resent (`Replay`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis;

use super::RedisStore;
use super::connection::{Replay, Request};
use crate::session::store::{InvalidationListener, SessionStore, StoreError};

/// Compare-and-delete in one step (Redis 7.0 has no conditional `DEL`): one key, so one Cluster
/// slot.
const DELETE_IF_EQUALS_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     return redis.call('DEL', KEYS[1]) else return 0 end";

fn millis(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

impl RedisStore {
    /// `SET key value NX|XX PX ttl`: whether it wrote.
    async fn set_if(
        &self,
        key: &str,
        value: Vec<u8>,
        condition: &str,
        ttl: Duration,
        replay: Replay,
    ) -> Result<bool, StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(self.key(key))
            .arg(value)
            .arg(condition)
            .arg("PX")
            .arg(millis(ttl));
        let reply: Option<String> = self.run(&Request::Command(set), replay).await?;
        Ok(reply.is_some())
    }
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
        self.set_if(key, value, "NX", ttl, Replay::Never).await
    }

    async fn put_if_present(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        // Resent after a lost reply, it finds its own value there and writes it again (true), or
        // finds the key deleted since and writes nothing (false, and true to the caller's intent).
        self.set_if(key, value, "XX", ttl, Replay::Safe).await
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
