//! The narrow byte store under the session layer: opaque values with a time to live. It knows
//! nothing of sessions, OIDC or Envoy, and never sees plaintext: values are sealed above it, keys
//! are hashes. Every store implementation passes the same conformance suite
//! (`tests/store_conformance.rs`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// Hears which keys changed in a store that other processes write too (Redis shared by replicas),
/// so it can forget what it remembered of them (`cache.rs`). Called from the store's invalidation
/// feed, synchronously: implementations must not block.
pub trait InvalidationListener: Send + Sync + 'static {
    /// These keys (without the store's own key prefix) changed, expired or were deleted.
    fn invalidated(&self, keys: &[&str]);

    /// Anything may have changed: forget everything. `live` says whether the feed reports every
    /// change from now on (`false`: it was lost, or is not yet there).
    fn reset(&self, live: bool);
}

/// The store could not answer. The caller cannot decide and must fail closed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores `value` under `key` for `ttl`, replacing what was there.
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError>;

    /// Stores `value` under `key` for `ttl` only if `key` is absent; says whether it did.
    /// Used for locks and for remembering single-use identifiers.
    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Replaces the value under `key`, and its TTL, only if `key` is present; says whether it did.
    /// One atomic step: of an update and a `delete`/`take` racing, the deletion is never undone.
    /// Used to write back sessions, which a logout may have ended meanwhile.
    async fn put_if_present(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Returns and removes the value in one atomic step: of two concurrent takes, one wins.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Deletes `key` only if it holds exactly `expected`, in one atomic step. Used to release a
    /// lock only by its holder: a lock that expired and was taken by someone else stays theirs.
    /// Says whether it deleted; after a lost reply (Redis) it may say `false` having deleted, so
    /// callers must not depend on the answer beyond logging it.
    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError>;

    /// Adds `member` to the set at `key` and extends the set's life to at least `ttl`.
    async fn add_to_set(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError>;

    /// Removes `member` from the set at `key`, leaving the set's life as it was; a set left empty
    /// is gone (as if taken). A missing set or member is not an error.
    async fn remove_from_set(&self, key: &str, member: &str) -> Result<(), StoreError>;

    /// Returns and removes every member of the set at `key`.
    async fn take_set(&self, key: &str) -> Result<Vec<String>, StoreError>;

    /// Puts `member` at the head of the list at `key` (moving it there if it is already listed),
    /// keeps the newest `max_len` members, sets the list's life to `ttl`, and returns the members
    /// pushed out, oldest first. One atomic step: of concurrent pushes, each dropped member is
    /// returned to exactly one of them. Used to bound the pending logins of one login cookie.
    async fn push_bounded(
        &self,
        key: &str,
        member: &str,
        max_len: usize,
        ttl: Duration,
    ) -> Result<Vec<String>, StoreError>;

    /// Whether the store answers; for the readiness probe.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Reports every change to keys starting with `prefix` to `listener` (replacing any earlier
    /// listener, which is told the feed is gone), as long as the store has a live feed of them;
    /// says whether this store can have one at all. Only a store that other processes write needs
    /// one; the default has none.
    fn watch_changes(&self, prefix: &str, listener: Arc<dyn InvalidationListener>) -> bool {
        let _ = (prefix, listener);
        false
    }
}
