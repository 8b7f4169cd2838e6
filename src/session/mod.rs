//! Sessions and pending logins: what is stored, under which key, sealed how. It knows nothing of
//! OIDC or Envoy. Records are protobuf (`proto/oidc_authz/v1/records.proto`) sealed with AES-GCM
//! (`crypto::seal`) under a store key that is a hash of the session id or state, never the value
//! itself: a dump of the store can be neither read nor replayed as a cookie.

mod backchannel;
pub mod cache;
mod forwarding;
mod instrumented;
pub mod memory;
mod pending;
pub mod reconnect;
mod records;
pub mod redis;
mod redis_changes;
mod refresh_lock;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use prost::Message;

use crate::crypto::{KeyRing, labelled_hash, seal};
use crate::error::Error;
pub use cache::Keep;
use cache::{CachedSession, SessionCache};
pub use forwarding::{ForwardingStore, StoreCommand};
pub use records::{PendingLoginRecord, SessionId, SessionRecord};
pub use store::{InvalidationListener, SessionStore, StoreError};

/// Prefixes of the keys that are cheap to lose: pending logins (`login:`) and each login cookie's
/// list of them (`login-binding:`). A bounded store evicts these before anything else, so a
/// flood of login starts cannot push out sessions (see `memory.rs`; Redis: `volatile-ttl`, as
/// these have the shortest TTLs).
pub(crate) const EVICT_FIRST_KEY_PREFIXES: &[&str] = &["login:", "login-binding:"];

/// A session read from the store (or from the cache of what was read).
#[derive(Debug)]
pub struct LoadedSession {
    /// Shared with the cache on a cache hit (no copy per Check); `Arc::make_mut` to change it.
    pub record: Arc<SessionRecord>,
    /// Sealed under an old key: write it back so it moves to the current key.
    pub sealed_by_old_key: bool,
    /// Read from the store. `false` from the cache, which trims records (no refresh token; the ID
    /// token and claims only if a policy needs them): never write it back, and read it whole
    /// (`Sessions::load`) before a write, a refresh or a logout.
    pub complete: bool,
}

impl From<CachedSession> for LoadedSession {
    fn from(session: CachedSession) -> Self {
        LoadedSession {
            record: session.record,
            sealed_by_old_key: session.sealed_by_old_key,
            complete: session.complete,
        }
    }
}

/// Appends `bytes` as lower-case hex.
fn push_hex(text: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
}

/// The session layer over a byte store. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    keys: Arc<KeyRing>,
    /// `""`, or `"<provider>:"` for a provider other than `default`: put after each key's kind
    /// (`session:corp:<hash>`), so every key of one provider (sessions, pending logins, indexes,
    /// locks, used logout tokens) differs from every other provider's, and a record sealed under
    /// one provider's key does not open under another's (the store key is the associated data).
    /// The kind stays first, so `EVICT_FIRST_KEY_PREFIXES` still match.
    namespace: String,
    /// Opened records of a store shared with other replicas, while its invalidation feed is live
    /// (`cache.rs`); `None` for a store without one (memory).
    cache: Option<Arc<SessionCache>>,
}

/// What every session key starts with (`session:<namespace><hash>`): the keys the cache follows.
pub const SESSION_KEY_PREFIX: &str = "session:";

impl Sessions {
    /// The `default` provider's sessions (keys without a namespace, as before providers existed).
    pub fn new(store: Arc<dyn SessionStore>, keys: Arc<KeyRing>) -> Self {
        Sessions {
            store,
            keys,
            namespace: String::new(),
            cache: None,
        }
    }

    /// A cache of opened sessions for `store`, of at most `capacity` records, fed by the store's
    /// invalidations; `None` when the store has no such feed (or `capacity` is 0). Made once per
    /// configuration: a new one replaces the previous one's feed, which then serves nothing.
    pub fn cache_for(
        store: &Arc<dyn SessionStore>,
        capacity: usize,
        keep: Keep,
        metrics: crate::metrics::SessionCacheMetrics,
    ) -> Option<Arc<SessionCache>> {
        if capacity == 0 {
            return None;
        }
        let cache = Arc::new(SessionCache::new(capacity, keep).with_metrics(metrics));
        let listener: Arc<dyn InvalidationListener> = cache.clone();
        store
            .watch_changes(SESSION_KEY_PREFIX, listener)
            .then_some(cache)
    }

    /// The same sessions, served from `cache` while it can vouch for them.
    pub fn with_cache(self, cache: Option<Arc<SessionCache>>) -> Self {
        Sessions { cache, ..self }
    }

    /// Forgets a session this process just wrote or deleted.
    fn forget(&self, key: &str) {
        if let Some(cache) = &self.cache {
            cache.forget(key);
        }
    }

    /// The same store, keys in the namespace of `provider` (a provider name: `[a-z0-9_-]`, so it
    /// holds no `:` and no hex-only name can pass for a hash).
    pub fn in_namespace(self, provider: &str) -> Self {
        Sessions {
            namespace: format!("{provider}:"),
            ..self
        }
    }

    /// The same sessions, every store command timed and its failures counted in `metrics`.
    pub fn instrumented(self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        let store = instrumented::InstrumentedStore::new(self.store, metrics);
        Sessions {
            store: Arc::new(store),
            ..self
        }
    }

    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// `<kind>:<namespace><hash of value under label>`, built in one allocation (every Check
    /// makes one).
    fn key(&self, kind: &str, label: &str, value: &[u8]) -> String {
        let hash = labelled_hash(label, value);
        let mut key = String::with_capacity(kind.len() + 1 + self.namespace.len() + 2 * hash.len());
        key.push_str(kind);
        key.push(':');
        key.push_str(&self.namespace);
        push_hex(&mut key, &hash);
        key
    }

    fn session_key(&self, id: &SessionId) -> String {
        self.key("session", "session id", &id.0)
    }

    fn sealed<M: Message>(&self, key: &str, record: &M) -> Result<Vec<u8>, Error> {
        Ok(seal::seal(
            &self.keys,
            key.as_bytes(),
            &record.encode_to_vec(),
        )?)
    }

    fn opened<M: Message + Default>(&self, key: &str, bytes: &[u8]) -> Option<(M, bool)> {
        let opened = seal::open(&self.keys, key.as_bytes(), bytes)?;
        let record = M::decode(opened.plaintext.as_slice()).ok()?;
        Some((record, opened.sealed_by_old_key))
    }

    /// Writes back a session that exists: activity, a refreshed token, a move to the current key.
    /// Returns `false`, writing nothing, when the session is gone: a logout (RP or back-channel)
    /// that landed between the caller's read and this write is final, so the caller must treat
    /// the session as ended. (An unconditional write would bring it back with a full TTL, out of
    /// the back-channel indexes its logout emptied.)
    #[tracing::instrument(skip_all, name = "store.update")]
    pub async fn update(
        &self,
        id: &SessionId,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let key = self.session_key(id);
        let sealed = self.sealed(&key, record)?;
        let written = self.store.put_if_present(&key, sealed, ttl).await;
        self.forget(&key);
        Ok(written?)
    }

    /// `None` when there is no such session, or it cannot be opened with any of our keys (a removed
    /// key): either way the user logs in again. Always read from the store (a refresh decides on
    /// it); see `load_cached` for the Check path.
    pub async fn load(&self, id: &SessionId) -> Result<Option<LoadedSession>, Error> {
        let key = self.session_key(id);
        Ok(self.read(&key).await?.map(LoadedSession::from))
    }

    /// Like `load`, served from the cache when it holds the session (`cache.rs`), and keeping
    /// what it reads there.
    pub async fn load_cached(&self, id: &SessionId) -> Result<Option<LoadedSession>, Error> {
        let Some(cache) = &self.cache else {
            return self.load(id).await;
        };
        let key = self.session_key(id);
        if let Some(hit) = cache.get(&key) {
            return Ok(Some(LoadedSession::from(hit)));
        }
        let ticket = cache.ticket();
        let read = self.read(&key).await?;
        if let Some(session) = &read {
            cache.insert(&key, session, ticket);
        }
        Ok(read.map(LoadedSession::from))
    }

    #[tracing::instrument(skip_all, name = "store.load")]
    async fn read(&self, key: &str) -> Result<Option<CachedSession>, Error> {
        let Some(bytes) = self.store.get(key).await? else {
            return Ok(None);
        };
        Ok(self
            .opened::<SessionRecord>(key, &bytes)
            .map(|(record, sealed_by_old_key)| CachedSession {
                record: Arc::new(record),
                sealed_by_old_key,
                complete: true,
            }))
    }

    /// Deletes a session whose record is not at hand; its index entries stay until the indexes
    /// expire (a later back-channel logout counts them but finds nothing to delete). Prefer `end`.
    #[tracing::instrument(skip_all, name = "store.delete")]
    pub async fn delete(&self, id: &SessionId) -> Result<(), Error> {
        let key = self.session_key(id);
        let deleted = self.store.delete(&key).await;
        self.forget(&key);
        Ok(deleted?)
    }

    /// Ends a session whose record is at hand: deletes it, then takes it out of the back-channel
    /// indexes `create` put it in. The session goes first: if the store fails after that, the
    /// session is already gone (the error still reaches the caller, who fails closed), whereas the
    /// other order could leave a live session that no back-channel logout can find.
    #[tracing::instrument(skip_all, name = "store.end")]
    pub async fn end(&self, id: &SessionId, record: &SessionRecord) -> Result<(), Error> {
        let key = self.session_key(id);
        let deleted = self.store.delete(&key).await;
        self.forget(&key);
        deleted?;
        for index in self.index_keys(record) {
            self.store.remove_from_set(&index, &key).await?;
        }
        Ok(())
    }

    /// Stores a new session (unconditionally: a fresh random id) and indexes it by the IdP's `sid` and by `sub`, so a back-channel
    /// logout can find it. The index lives as long as the session can (`max_lifetime`, the
    /// absolute timeout), not just as long as its first TTL: activity extends the session without
    /// touching the index.
    #[tracing::instrument(skip_all, name = "store.create")]
    pub async fn create(
        &self,
        id: &SessionId,
        record: &SessionRecord,
        ttl: Duration,
        max_lifetime: Duration,
    ) -> Result<(), Error> {
        let key = self.session_key(id);
        let sealed = self.sealed(&key, record)?;
        let written = self.store.put(&key, sealed, ttl).await;
        self.forget(&key);
        written?;
        for index in self.index_keys(record) {
            self.store.add_to_set(&index, &key, max_lifetime).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
