//! The in-memory store: the default, for a single replica. Expiry is checked on every read, and
//! expired entries are swept whenever the map has doubled since the last sweep, so memory stays
//! bounded by the live entries without a background task.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::store::{SessionStore, StoreError};

enum Value {
    Bytes(Vec<u8>),
    Set(HashSet<String>),
}

struct Entry {
    value: Value,
    expires_at: Instant,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Size after the last sweep; the next sweep runs when the map is twice as large.
    swept_size: usize,
}

/// std `Mutex`, not tokio's: it is never held across an `.await`.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-updated (every update is a single
        // HashMap call), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        if self.entries.get(key).is_some_and(|e| e.expires_at <= now) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    fn insert(&mut self, key: &str, entry: Entry, now: Instant) {
        self.entries.insert(key.to_owned(), entry);
        if self.entries.len() >= 2 * self.swept_size.max(512) {
            self.entries.retain(|_, e| e.expires_at > now);
            self.swept_size = self.entries.len();
        }
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let entry = Entry {
            value: Value::Bytes(value),
            expires_at: now + ttl,
        };
        self.lock().insert(key, entry, now);
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
        let entry = Entry {
            value: Value::Bytes(value),
            expires_at: now + ttl,
        };
        inner.insert(key, entry, now);
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
        let mut inner = self.lock();
        if inner.live(key, Instant::now()).is_none() {
            return Ok(None);
        }
        Ok(match inner.entries.remove(key) {
            Some(Entry {
                value: Value::Bytes(bytes),
                ..
            }) => Some(bytes),
            _ => None,
        })
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.lock().entries.remove(key);
        Ok(())
    }

    async fn add_to_set(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.live(key, now) {
            Some(Entry {
                value: Value::Set(members),
                expires_at,
            }) => {
                members.insert(member.to_owned());
                *expires_at = (*expires_at).max(now + ttl);
            }
            _ => {
                let entry = Entry {
                    value: Value::Set(HashSet::from([member.to_owned()])),
                    expires_at: now + ttl,
                };
                inner.insert(key, entry, now);
            }
        }
        Ok(())
    }

    async fn remove_from_set(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(Entry {
            value: Value::Set(members),
            ..
        }) = inner.live(key, Instant::now())
        {
            members.remove(member);
            // As Redis does: an empty set is no set, so a later add starts it with a fresh TTL.
            if members.is_empty() {
                inner.entries.remove(key);
            }
        }
        Ok(())
    }

    async fn take_set(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let mut inner = self.lock();
        if inner.live(key, Instant::now()).is_none() {
            return Ok(Vec::new());
        }
        Ok(match inner.entries.remove(key) {
            Some(Entry {
                value: Value::Set(members),
                ..
            }) => members.into_iter().collect(),
            _ => Vec::new(),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
