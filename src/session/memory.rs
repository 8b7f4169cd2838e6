//! The in-memory store: the default, for a single replica. It is bounded: it holds at most
//! `max_bytes` of keys and values (an estimate: their lengths plus `ENTRY_OVERHEAD_BYTES` per
//! entry), so no stream of requests can grow it until the process dies. When an insert goes over
//! the bound, expired entries go first, then the entries `Sessions` marks as cheap to lose
//! (pending logins and their per-cookie lists, keys starting with one of
//! `EVICT_FIRST_KEY_PREFIXES`), soonest-expiring first, and only then anything else (sessions),
//! soonest-expiring first: a flood of logins evicts other logins, never a session while a login is
//! left. Expiry is also checked on every read; expired entries are swept on every insert, oldest
//! first, without a background task.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::EVICT_FIRST_KEY_PREFIXES;
use super::store::{SessionStore, StoreError};

/// The default bound: 128 MiB of keys and values.
pub const DEFAULT_MAX_BYTES: usize = 128 * 1024 * 1024;

/// What an entry costs beyond its key and value bytes: the map slot, the eviction-order node
/// (which holds a second copy of the key, counted separately) and allocator rounding. An estimate
/// on the generous side, so `max_bytes` bounds the real heap use rather than undercounting it.
const ENTRY_OVERHEAD_BYTES: usize = 192;
/// What a set or list member costs beyond its bytes.
const MEMBER_OVERHEAD_BYTES: usize = 48;

enum Value {
    Bytes(Vec<u8>),
    Set(HashSet<String>),
    /// Newest first.
    List(VecDeque<String>),
}

impl Value {
    fn bytes(&self) -> usize {
        let members = |lengths: &mut dyn Iterator<Item = usize>| {
            lengths.map(|length| length + MEMBER_OVERHEAD_BYTES).sum()
        };
        match self {
            Value::Bytes(bytes) => bytes.len(),
            Value::Set(set) => members(&mut set.iter().map(String::len)),
            Value::List(list) => members(&mut list.iter().map(String::len)),
        }
    }
}

/// Where an entry stands in its rank's eviction order: by expiry, then by a sequence number that
/// tells apart entries expiring at the same instant.
type EvictionSlot = (Instant, u64);

struct Entry {
    value: Value,
    expires_at: Instant,
    rank: usize,
    slot: EvictionSlot,
    bytes: usize,
}

struct Inner {
    entries: HashMap<String, Entry>,
    /// Every entry's key, by rank: rank 0 (cheap to lose) is evicted before rank 1, each in
    /// order of expiry.
    eviction_order: [BTreeMap<EvictionSlot, String>; 2],
    /// The estimated size of every entry together; at most `max_bytes` after each insert.
    bytes: usize,
    max_bytes: usize,
    next_sequence: u64,
    /// Sessions (rank 1) evicted to make room: the store is too small for its users.
    sessions_evicted: u64,
    /// When the last "sessions evicted" warning was logged (at most one a minute).
    last_eviction_warning: Option<Instant>,
}

/// How often "the memory store is evicting sessions" may be logged.
const EVICTION_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// std `Mutex`, not tokio's: it is never held across an `.await`.
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_max_bytes(DEFAULT_MAX_BYTES)
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sessions evicted so far to stay within `max_bytes` (pending logins are not counted).
    pub fn sessions_evicted(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sessions_evicted
    }

    /// A store that holds at most `max_bytes` (estimated) of keys and values.
    pub fn with_max_bytes(max_bytes: usize) -> Self {
        MemoryStore {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                eviction_order: [BTreeMap::new(), BTreeMap::new()],
                bytes: 0,
                max_bytes,
                next_sequence: 0,
                sessions_evicted: 0,
                last_eviction_warning: None,
            }),
        }
    }

    /// The estimated size of what the store holds now; never above `max_bytes` after an insert.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot break the invariants that matter (an entry's
        // bytes and slot are set before it is linked in), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn eviction_rank(key: &str) -> usize {
    let cheap = EVICT_FIRST_KEY_PREFIXES
        .iter()
        .any(|prefix| key.starts_with(prefix));
    if cheap { 0 } else { 1 }
}

impl Inner {
    /// The entry under `key` unless it has expired (an expired one is removed).
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        if self.entries.get(key).is_some_and(|e| e.expires_at <= now) {
            self.remove(key);
        }
        self.entries.get_mut(key)
    }

    /// Removes and returns the live value under `key`.
    fn take_live(&mut self, key: &str, now: Instant) -> Option<Value> {
        self.live(key, now)?;
        self.remove(key).map(|entry| entry.value)
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.eviction_order[entry.rank].remove(&entry.slot);
        self.bytes -= entry.bytes;
        Some(entry)
    }

    /// Stores `value` under `key` (replacing what was there), then sweeps expired entries and
    /// evicts until the store is within `max_bytes` again.
    fn insert(&mut self, key: &str, value: Value, expires_at: Instant, now: Instant) {
        self.remove(key);
        let rank = eviction_rank(key);
        let slot = (expires_at, self.next_sequence);
        self.next_sequence += 1;
        let bytes = ENTRY_OVERHEAD_BYTES + 2 * key.len() + value.bytes();
        self.eviction_order[rank].insert(slot, key.to_owned());
        self.entries.insert(
            key.to_owned(),
            Entry {
                value,
                expires_at,
                rank,
                slot,
                bytes,
            },
        );
        self.bytes += bytes;
        self.sweep_expired(now);
        self.evict_until_within_bound(now);
    }

    /// Removes expired entries: each rank's eviction order is by expiry, so they are at its front.
    fn sweep_expired(&mut self, now: Instant) {
        for rank in 0..self.eviction_order.len() {
            while let Some(key) = self.eviction_order[rank]
                .first_key_value()
                .filter(|((expires_at, _), _)| *expires_at <= now)
                .map(|(_, key)| key.clone())
            {
                self.remove(&key);
            }
        }
    }

    fn evict_until_within_bound(&mut self, now: Instant) {
        while self.bytes > self.max_bytes {
            let Some(key) = self
                .eviction_order
                .iter()
                .find_map(|order| order.first_key_value())
                .map(|(_, key)| key.clone())
            else {
                return;
            };
            if self.remove(&key).is_some_and(|entry| entry.rank == 1) {
                self.sessions_evicted += 1;
                self.warn_of_session_evictions(now);
            }
        }
    }

    /// Evicting pending logins is the bound working; evicting sessions logs users out, so the
    /// operator hears of it (once a minute, with the running count).
    fn warn_of_session_evictions(&mut self, now: Instant) {
        let due = self
            .last_eviction_warning
            .is_none_or(|at| now.duration_since(at) >= EVICTION_WARNING_INTERVAL);
        if due {
            self.last_eviction_warning = Some(now);
            tracing::warn!(
                sessions_evicted = self.sessions_evicted,
                max_bytes = self.max_bytes,
                "the memory session store is full and evicts sessions; raise memory.max_bytes or use Redis"
            );
        }
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        self.lock().insert(key, Value::Bytes(value), now + ttl, now);
        Ok(())
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.live(key, now).is_some() {
            return Ok(false);
        }
        inner.insert(key, Value::Bytes(value), now + ttl, now);
        Ok(true)
    }

    async fn put_if_present(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.live(key, now).is_none() {
            return Ok(false);
        }
        inner.insert(key, Value::Bytes(value), now + ttl, now);
        Ok(true)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut inner = self.lock();
        Ok(match inner.live(key, Instant::now()) {
            Some(Entry {
                value: Value::Bytes(bytes),
                ..
            }) => Some(bytes.clone()),
            _ => None,
        })
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(match self.lock().take_live(key, Instant::now()) {
            Some(Value::Bytes(bytes)) => Some(bytes),
            _ => None,
        })
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.lock().remove(key);
        Ok(())
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let holds_expected = matches!(
            inner.live(key, Instant::now()),
            Some(Entry { value: Value::Bytes(bytes), .. }) if bytes.as_slice() == expected
        );
        if holds_expected {
            inner.remove(key);
        }
        Ok(holds_expected)
    }

    async fn add_to_set(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        // Taken out and put back, so its size and place in the eviction order are recomputed.
        let previous_expiry = inner.live(key, now).map(|entry| entry.expires_at);
        let (mut members, expires_at) = match (inner.take_live(key, now), previous_expiry) {
            (Some(Value::Set(members)), Some(expiry)) => (members, expiry.max(now + ttl)),
            _ => (HashSet::new(), now + ttl),
        };
        members.insert(member.to_owned());
        inner.insert(key, Value::Set(members), expires_at, now);
        Ok(())
    }

    async fn remove_from_set(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(expires_at) = inner.live(key, now).map(|entry| entry.expires_at) else {
            return Ok(());
        };
        if let Some(Value::Set(mut members)) = inner.take_live(key, now) {
            members.remove(member);
            // As Redis does: an empty set is no set, so a later add starts it with a fresh TTL.
            if !members.is_empty() {
                inner.insert(key, Value::Set(members), expires_at, now);
            }
        }
        Ok(())
    }

    async fn take_set(&self, key: &str) -> Result<Vec<String>, StoreError> {
        Ok(match self.lock().take_live(key, Instant::now()) {
            Some(Value::Set(members)) => members.into_iter().collect(),
            _ => Vec::new(),
        })
    }

    async fn push_bounded(
        &self,
        key: &str,
        member: &str,
        max_len: usize,
        ttl: Duration,
    ) -> Result<Vec<String>, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut list = match inner.take_live(key, now) {
            Some(Value::List(list)) => list,
            _ => VecDeque::new(),
        };
        list.retain(|existing| existing != member);
        list.push_front(member.to_owned());
        let dropped: Vec<String> = list.drain(max_len.clamp(1, list.len())..).rev().collect();
        inner.insert(key, Value::List(list), now + ttl, now);
        Ok(dropped)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
