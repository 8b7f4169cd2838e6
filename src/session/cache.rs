//! Opened session records kept in memory, so a Check with a known session needs neither a store
//! round trip nor opening the sealed record. Only for a store other replicas write too (Redis),
//! and only while that store's invalidation feed is live (`SessionStore::watch_changes`).
//!
//! Invariant: an entry is served only if no change to its key can have happened since it was
//! read without this cache hearing of it. Hence:
//! - nothing is served or stored while the feed is not live; losing the feed (or a reload) forgets
//!   everything;
//! - every invalidation bumps a generation and is remembered (the last `RECENT_INVALIDATIONS`); a
//!   record read from the store is stored only if no invalidation of its key came after the
//!   generation seen *before* the read (`Ticket`), so a change that raced the read is never hidden
//!   by it. When more invalidations came than are remembered, or the feed was reset, the read is
//!   not stored;
//! - our own writes forget the key after writing (`forget`).
//!
//! Timeouts need no invalidation: they are enforced on every Check from the record's timestamps.
//! Bounded by a count of entries (`session_cache_size`); when full, an arbitrary entry goes.
//!
//! Entries are trimmed to what a Check that only allows needs (`Keep`): never the refresh token,
//! the ID token only when a policy sends it upstream, the claims only when a policy reads them.
//! A trimmed record is never written back: whoever writes (activity, refresh, key move) or logs
//! out reads the whole record from the store first (`LoadedSession::complete`).
//!
//! Entries are compact (`cache/entry.rs`, for issue 10's memory target): keyed by the 32-byte hash
//! the store key is made from (and the provider's namespace, by number), the kept texts in one
//! allocation, the timestamps inline. A hit builds from it, after the lock is released, the
//! trimmed `SessionRecord` the flow reads (an `Arc` and one `String` per non-empty text: four
//! allocations and a copy of about 740 bytes with `Keep::default()`), rather than the cache
//! keeping that record, its mostly empty `String`s and an allocation per text:
//! `examples/cache_memory.rs` counts 924 live bytes and one allocation per cached session (it was
//! 1107 bytes and five). The price is on the hit: about 1900 instructions instead of 490 (its
//! `hits` under callgrind, release build), of a cached Check's 44 000; it would be none again if
//! `LoadedSession` could carry the cached texts instead of a `SessionRecord`.

mod entry;

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use super::SessionRecord;
use super::store::InvalidationListener;
use crate::metrics::{CacheLookup, SessionCacheMetrics};
use entry::{CompactSession, EntryKey, EntryKeyHashing, split_session_key};

/// A record as opened from the store (`complete`), or as the cache gives it back: trimmed.
#[derive(Clone)]
pub struct CachedSession {
    pub record: Arc<SessionRecord>,
    pub sealed_by_old_key: bool,
    pub complete: bool,
}

/// What of a record the cache keeps beyond the access token, subject, IdP session id and
/// timestamps; decided from the policies in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keep {
    /// A policy sends the ID token upstream.
    pub id_token: bool,
    /// A policy has rules or claim headers.
    pub claims: bool,
}

/// The generation seen before a store read; see `SessionCache::insert`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(u64);

/// How many invalidated keys are remembered to tell whether one raced a read. A read whose window
/// saw more invalidations than this is not stored (it is read again next time).
const RECENT_INVALIDATIONS: usize = 4096;

/// A cache's namespaces are its providers'; a key of a 257th is not cached.
const MAX_NAMESPACES: usize = u8::MAX as usize + 1;

#[derive(Default)]
struct State {
    entries: HashMap<EntryKey, CompactSession, EntryKeyHashing>,
    /// The namespaces of the keys cached so far (`""`, `"corp:"`), numbered for `EntryKey`.
    namespaces: Vec<Box<str>>,
    /// Counts invalidations and resets.
    generation: u64,
    /// The generation of the last reset (feed up or down, flush): reads from before it are stale.
    reset_at: u64,
    /// The most recent invalidations, oldest first: (generation after it, the key's `key_hasher`
    /// hash). A hash, not the key: 16 bytes an entry instead of about a hundred. Two keys of one
    /// hash only make a read look raced, so it is not stored: never the other way round.
    recent: VecDeque<(u64, u64)>,
    /// Keyed at random per process, so no one can choose keys that collide.
    key_hasher: RandomState,
    live: bool,
}

impl State {
    /// Where `key` is (or would be) kept; `None` for a key that is not a session's, or of a
    /// namespace never cached (then no entry has it).
    fn entry_key(&self, key: &str) -> Option<EntryKey> {
        let (namespace, hash) = split_session_key(key)?;
        let index = self
            .namespaces
            .iter()
            .position(|known| **known == *namespace)?;
        Some(EntryKey {
            namespace: u8::try_from(index).ok()?,
            hash,
        })
    }

    /// Where `key` is to be kept, numbering its namespace if it is new.
    fn new_entry_key(&mut self, key: &str) -> Option<EntryKey> {
        if let Some(known) = self.entry_key(key) {
            return Some(known);
        }
        let (namespace, _) = split_session_key(key)?;
        if self.namespaces.len() == MAX_NAMESPACES {
            return None;
        }
        self.namespaces.push(namespace.into());
        self.entry_key(key)
    }

    /// Whether `key` may have changed after `ticket` was taken.
    fn changed_since(&self, key: &str, ticket: Ticket) -> bool {
        if ticket.0 < self.reset_at {
            return true;
        }
        let since = self.generation - ticket.0;
        if since == 0 {
            return false;
        }
        if since > self.recent.len() as u64 {
            return true;
        }
        let key = self.key_hasher.hash_one(key);
        self.recent
            .iter()
            .rev()
            .take_while(|(generation, _)| *generation > ticket.0)
            .any(|(_, changed)| *changed == key)
    }
}

pub struct SessionCache {
    state: Mutex<State>,
    capacity: usize,
    keep: Keep,
    metrics: SessionCacheMetrics,
}

impl SessionCache {
    /// An empty cache of at most `capacity` records trimmed to `keep`, serving nothing until its
    /// feed is live.
    pub fn new(capacity: usize, keep: Keep) -> Self {
        SessionCache {
            state: Mutex::new(State::default()),
            capacity,
            keep,
            metrics: SessionCacheMetrics::default(),
        }
    }

    /// The same cache, counting its lookups and feed state in `metrics`.
    pub fn with_metrics(self, metrics: SessionCacheMetrics) -> Self {
        SessionCache { metrics, ..self }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The session kept under `key`, as a trimmed record built afresh.
    pub fn get(&self, key: &str) -> Option<CachedSession> {
        let state = self.state();
        let hit = state
            .live
            .then(|| state.entry_key(key))
            .flatten()
            .and_then(|entry_key| state.entries.get(&entry_key).cloned());
        drop(state);
        let hit = hit.as_ref().map(CompactSession::session);
        let result = if hit.is_some() {
            CacheLookup::Hit
        } else {
            CacheLookup::Miss
        };
        self.metrics.record_lookup(result);
        hit
    }

    /// Take before reading `key` from the store; give to `insert` with what was read.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.state().generation)
    }

    /// Keeps `session`, trimmed, under `key` unless anything was invalidated (or the feed
    /// changed) since `ticket` was taken: the read may predate that change.
    pub fn insert(&self, key: &str, session: &CachedSession, ticket: Ticket) {
        if self.capacity == 0 {
            return;
        }
        let Some(session) = CompactSession::new(session, self.keep) else {
            return;
        };
        let mut state = self.state();
        if !state.live || state.changed_since(key, ticket) {
            return;
        }
        let Some(entry_key) = state.new_entry_key(key) else {
            return;
        };
        if state.entries.len() >= self.capacity && !state.entries.contains_key(&entry_key) {
            let victim = state.entries.keys().next().copied();
            if let Some(victim) = victim {
                state.entries.remove(&victim);
            }
        }
        state.entries.insert(entry_key, session);
    }

    /// Forgets `key` after this process wrote or deleted it.
    pub fn forget(&self, key: &str) {
        self.invalidated(&[key]);
    }

    /// How many records are cached (for tests and metrics).
    pub fn len(&self) -> usize {
        self.state().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl InvalidationListener for SessionCache {
    fn invalidated(&self, keys: &[&str]) {
        let mut state = self.state();
        for key in keys {
            state.generation += 1;
            let generation = state.generation;
            if let Some(entry_key) = state.entry_key(key) {
                state.entries.remove(&entry_key);
            }
            if state.recent.len() == RECENT_INVALIDATIONS {
                state.recent.pop_front();
            }
            let hash = state.key_hasher.hash_one(*key);
            state.recent.push_back((generation, hash));
        }
    }

    fn reset(&self, live: bool) {
        let mut state = self.state();
        state.generation += 1;
        state.reset_at = state.generation;
        state.recent.clear();
        state.entries.clear();
        state.live = live;
        self.metrics.set_feed_up(live);
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
