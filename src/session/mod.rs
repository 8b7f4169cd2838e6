//! Sessions and pending logins: what is stored, under which key, sealed how. It knows nothing of
//! OIDC or Envoy. Records are protobuf (`proto/oidc_authz/v1/records.proto`) sealed with AES-GCM
//! (`crypto::seal`) under a store key that is a hash of the session id or state, never the value
//! itself: a dump of the store can be neither read nor replayed as a cookie.

pub mod cache;
mod forwarding;
mod instrumented;
pub mod memory;
pub mod reconnect;
pub mod redis;
mod redis_changes;
pub mod store;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;

use crate::crypto::random::random_bytes;
use crate::crypto::{KeyRing, labelled_hash, seal};
use crate::error::Error;
pub use cache::Keep;
use cache::{CachedSession, SessionCache};
pub use forwarding::{ForwardingStore, StoreCommand};
pub use store::{InvalidationListener, SessionStore, StoreError};

mod records {
    include!(concat!(env!("OUT_DIR"), "/oidc_authz.v1.rs"));
}
pub use records::{PendingLoginRecord, SessionRecord};

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("subject", &self.subject)
            .field("idp_session_id", &self.idp_session_id)
            .field("access_token", &"[redacted]")
            .field("id_token", &"[redacted]")
            .field("has_refresh_token", &!self.refresh_token.is_empty())
            .field("access_token_expires_at", &self.access_token_expires_at)
            .field("created_at", &self.created_at)
            .field("last_active_at", &self.last_active_at)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl fmt::Debug for PendingLoginRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLoginRecord")
            .field("nonce", &"[redacted]")
            .field("pkce_verifier", &"[redacted]")
            .field("original_url", &self.original_url)
            .field("redirect_uri", &self.redirect_uri)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Prefixes of the keys that are cheap to lose: pending logins (`login:`) and each login cookie's
/// list of them (`login-binding:`). A bounded store evicts these before anything else, so a
/// flood of login starts cannot push out sessions (see `memory.rs`; Redis: `volatile-ttl`, as
/// these have the shortest TTLs).
pub(crate) const EVICT_FIRST_KEY_PREFIXES: &[&str] = &["login:", "login-binding:"];

/// 128 random bits naming a session; it travels only inside the signed session cookie.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionId(pub [u8; 16]);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

impl SessionId {
    pub fn random() -> Result<Self, Error> {
        Ok(SessionId(random_bytes::<16>()?))
    }
}

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

    fn pending_key(&self, state: &str) -> String {
        self.key("login", "state", state.as_bytes())
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

    fn index_key(&self, kind: &str, value: &str) -> String {
        self.key(&format!("by-{kind}"), kind, value.as_bytes())
    }

    /// The back-channel indexes a session of `record` is listed in: by `sid` (when the IdP gave
    /// one) and by `sub`.
    fn index_keys(&self, record: &SessionRecord) -> Vec<String> {
        let mut keys = Vec::with_capacity(2);
        if !record.idp_session_id.is_empty() {
            keys.push(self.index_key("sid", &record.idp_session_id));
        }
        keys.push(self.index_key("sub", &record.subject));
        keys
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

    /// Deletes the sessions listed in an index. If the store fails midway, the keys not yet deleted
    /// go back into the index so a retried logout still finds them.
    async fn delete_indexed(&self, index: &str) -> Result<usize, Error> {
        let keys = self.store.take_set(index).await?;
        for (done, key) in keys.iter().enumerate() {
            let deleted = self.store.delete(key).await;
            self.forget(key);
            if let Err(error) = deleted {
                for remaining in &keys[done..] {
                    // Best effort: the store just failed, this may fail too.
                    let _ = self
                        .store
                        .add_to_set(index, remaining, Duration::from_secs(86_400))
                        .await;
                }
                return Err(error.into());
            }
        }
        Ok(keys.len())
    }

    /// Deletes every session of this IdP session; returns how many index entries there were.
    #[tracing::instrument(skip_all, name = "store.delete_by_idp_session")]
    pub async fn delete_by_idp_session(&self, idp_session_id: &str) -> Result<usize, Error> {
        self.delete_indexed(&self.index_key("sid", idp_session_id))
            .await
    }

    #[tracing::instrument(skip_all, name = "store.delete_by_subject")]
    pub async fn delete_by_subject(&self, subject: &str) -> Result<usize, Error> {
        self.delete_indexed(&self.index_key("sub", subject)).await
    }

    fn logout_token_key(&self, jti: &str) -> String {
        self.key("jti", "jti", jti.as_bytes())
    }

    /// Whether a logout token's `jti` was already used.
    #[tracing::instrument(skip_all, name = "store.logout_token_seen")]
    pub async fn logout_token_seen(&self, jti: &str) -> Result<bool, Error> {
        Ok(self.store.get(&self.logout_token_key(jti)).await?.is_some())
    }

    /// Records a used logout token's `jti` until it expires.
    #[tracing::instrument(skip_all, name = "store.remember_logout_token")]
    pub async fn remember_logout_token(&self, jti: &str, ttl: Duration) -> Result<(), Error> {
        self.store
            .put(&self.logout_token_key(jti), vec![1], ttl)
            .await?;
        Ok(())
    }

    fn refresh_lock_key(&self, id: &SessionId) -> String {
        self.key("refresh-lock", "session id", &id.0)
    }

    /// Takes the session's refresh lock as `holder` (a random token of the caller's) for `ttl`;
    /// `false` when another refresher holds it.
    #[tracing::instrument(skip_all, name = "store.try_lock_refresh")]
    pub async fn try_lock_refresh(
        &self,
        id: &SessionId,
        holder: &[u8],
        ttl: Duration,
    ) -> Result<bool, Error> {
        Ok(self
            .store
            .put_if_absent(&self.refresh_lock_key(id), holder.to_vec(), ttl)
            .await?)
    }

    /// Releases the session's refresh lock if `holder` still holds it: a lock that expired under
    /// a slow holder and was taken by another refresher stays theirs.
    #[tracing::instrument(skip_all, name = "store.unlock_refresh")]
    pub async fn unlock_refresh(&self, id: &SessionId, holder: &[u8]) -> Result<(), Error> {
        self.store
            .delete_if_equals(&self.refresh_lock_key(id), holder)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, name = "store.put_pending")]
    pub async fn put_pending(
        &self,
        state: &str,
        record: &PendingLoginRecord,
        ttl: Duration,
    ) -> Result<(), Error> {
        let key = self.pending_key(state);
        let sealed = self.sealed(&key, record)?;
        self.store.put(&key, sealed, ttl).await?;
        Ok(())
    }

    fn pending_list_key(&self, browser_binding: &[u8]) -> String {
        self.key("login-binding", "pending logins of", browser_binding)
    }

    /// Lists the pending login for `state` under its browser's login cookie (`browser_binding`)
    /// and deletes the ones beyond the newest `max_pending`: one browser, however many tabs or
    /// requests, holds at most `max_pending` pending logins.
    #[tracing::instrument(skip_all, name = "store.bound_pending_per_browser")]
    pub async fn bound_pending_per_browser(
        &self,
        browser_binding: &[u8],
        state: &str,
        max_pending: usize,
        ttl: Duration,
    ) -> Result<(), Error> {
        let dropped = self
            .store
            .push_bounded(
                &self.pending_list_key(browser_binding),
                &self.pending_key(state),
                max_pending,
                ttl,
            )
            .await?;
        for pending_key in dropped {
            self.store.delete(&pending_key).await?;
        }
        Ok(())
    }

    /// Takes the pending login for `state` exactly once: a replayed callback finds nothing.
    #[tracing::instrument(skip_all, name = "store.take_pending")]
    pub async fn take_pending(&self, state: &str) -> Result<Option<PendingLoginRecord>, Error> {
        let key = self.pending_key(state);
        let Some(bytes) = self.store.take(&key).await? else {
            return Ok(None);
        };
        Ok(self
            .opened::<PendingLoginRecord>(&key, &bytes)
            .map(|(record, _)| record))
    }
}

#[cfg(test)]
mod tests;
