//! Opened session records kept in memory, so a Check with a known session needs neither a store
//! round trip nor opening the sealed record. Only for a store other replicas write too (Redis),
//! and only while that store's invalidation feed is live (`SessionStore::watch_changes`).
//!
//! Invariant: an entry is served only if no change to its key can have happened since it was
//! read without this cache hearing of it. Hence:
//! - nothing is served or stored while the feed is not live; losing the feed (or a reload) forgets
//!   everything;
//! - every invalidation bumps a generation; a record read from the store is stored only if the
//!   generation is the one seen *before* the read (`Ticket`), so a change that raced the read is
//!   never hidden by it;
//! - our own writes forget the key after writing (`forget`).
//!
//! Timeouts need no invalidation: they are enforced on every Check from the record's timestamps.
//! Bounded by a count of entries (`session_cache_size`); when full, an arbitrary entry goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::SessionRecord;
use super::store::InvalidationListener;

/// A record as opened from the store.
#[derive(Clone)]
pub struct CachedSession {
    pub record: Arc<SessionRecord>,
    pub sealed_by_old_key: bool,
}

/// The generation seen before a store read; see `SessionCache::insert`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(u64);

#[derive(Default)]
struct State {
    entries: HashMap<String, CachedSession>,
    generation: u64,
    live: bool,
}

pub struct SessionCache {
    state: Mutex<State>,
    capacity: usize,
}

impl SessionCache {
    /// An empty cache of at most `capacity` records, serving nothing until its feed is live.
    pub fn new(capacity: usize) -> Self {
        SessionCache {
            state: Mutex::new(State::default()),
            capacity,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<CachedSession> {
        let state = self.state();
        if !state.live {
            return None;
        }
        state.entries.get(key).cloned()
    }

    /// Take before reading `key` from the store; give to `insert` with what was read.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.state().generation)
    }

    /// Keeps `session` under `key` unless anything was invalidated (or the feed changed) since
    /// `ticket` was taken: the read may predate that change.
    pub fn insert(&self, key: &str, session: CachedSession, ticket: Ticket) {
        if self.capacity == 0 {
            return;
        }
        let mut state = self.state();
        if !state.live || state.generation != ticket.0 {
            return;
        }
        if state.entries.len() >= self.capacity && !state.entries.contains_key(key) {
            let victim = state.entries.keys().next().cloned();
            if let Some(victim) = victim {
                state.entries.remove(&victim);
            }
        }
        state.entries.insert(key.to_owned(), session);
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
        state.generation += 1;
        for key in keys {
            state.entries.remove(*key);
        }
    }

    fn reset(&self, live: bool) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.clear();
        state.live = live;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(subject: &str) -> CachedSession {
        CachedSession {
            record: Arc::new(SessionRecord {
                subject: subject.into(),
                ..Default::default()
            }),
            sealed_by_old_key: false,
        }
    }

    fn live_cache(capacity: usize) -> SessionCache {
        let cache = SessionCache::new(capacity);
        cache.reset(true);
        cache
    }

    #[test]
    fn serves_nothing_until_the_feed_is_live_and_forgets_everything_when_it_is_lost() {
        let cache = SessionCache::new(10);
        cache.insert("a", session("alice"), cache.ticket());
        assert!(cache.get("a").is_none(), "not live: nothing is stored");
        cache.reset(true);
        cache.insert("a", session("alice"), cache.ticket());
        assert_eq!(cache.get("a").unwrap().record.subject, "alice");
        cache.reset(false);
        assert!(cache.get("a").is_none());
        cache.reset(true);
        assert!(
            cache.get("a").is_none(),
            "the feed came back: nothing from before it"
        );
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_stored() {
        let cache = live_cache(10);
        let ticket = cache.ticket();
        // Another replica logs the session out while our read is in flight.
        cache.invalidated(&["a"]);
        cache.insert("a", session("alice"), ticket);
        assert!(cache.get("a").is_none());
        // A read that began after the change is stored.
        cache.insert("a", session("alice"), cache.ticket());
        assert!(cache.get("a").is_some());
    }

    #[test]
    fn a_read_that_raced_a_feed_restart_is_not_stored() {
        let cache = live_cache(10);
        let ticket = cache.ticket();
        cache.reset(false);
        cache.reset(true);
        cache.insert("a", session("alice"), ticket);
        assert!(cache.get("a").is_none());
    }

    #[test]
    fn invalidation_and_forget_remove_only_their_keys() {
        let cache = live_cache(10);
        for key in ["a", "b", "c"] {
            cache.insert(key, session(key), cache.ticket());
        }
        cache.invalidated(&["a"]);
        cache.forget("b");
        assert!(cache.get("a").is_none() && cache.get("b").is_none());
        assert_eq!(cache.get("c").unwrap().record.subject, "c");
    }

    #[test]
    fn stays_within_its_capacity() {
        let cache = live_cache(3);
        for index in 0..100 {
            let key = format!("k{index}");
            cache.insert(&key, session(&key), cache.ticket());
            assert!(cache.len() <= 3);
        }
        assert!(cache.get("k99").is_some(), "the newest entry is kept");
        let off = live_cache(0);
        off.insert("a", session("alice"), off.ticket());
        assert!(off.is_empty());
    }
}
