//! Opaque access tokens (RFC 7662): the IdP's `introspection_endpoint` says whether a token is
//! active and what it carries. Answers are cached so an API under load does not ask the IdP on
//! every request: for at most `introspection_cache_ttl` and never past the token's `exp`, in a
//! cache bounded in entries (oldest first out) and in the size of what it keeps, keyed by a hash
//! of the token (the cache never holds a token). Inactive answers are cached too, so a client
//! repeating a dead token does not turn into IdP traffic. Pure but for the cache's lock: the
//! request itself is `Provider::introspect`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::crypto::labelled_hash;

/// Entries the cache holds at most.
pub const MAX_CACHED_ANSWERS: usize = 10_000;
/// An answer larger than this (claims as JSON) is used but not cached: the cache's memory stays
/// under `MAX_CACHED_ANSWERS` times this.
pub const MAX_CACHED_ANSWER_BYTES: usize = 8 * 1024;

/// What the IdP said about a token.
#[derive(Debug, Clone, PartialEq)]
pub enum Introspected {
    /// `active: true`, with the response's members (`scope`, `aud`, `sub`, `exp`, ...).
    Active(Arc<Map<String, Value>>),
    Inactive,
}

/// Why the introspection response could not be read (fixed texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntrospectionError {
    #[error("the introspection response is not a JSON object with a boolean `active`")]
    Malformed,
}

/// Reads an introspection response body (RFC 7662 section 2.2). An `active: true` token whose
/// `exp` is past (beyond leeway) is inactive, whatever the IdP's clock says.
pub fn parse(body: &[u8], now: i64, leeway: i64) -> Result<Introspected, IntrospectionError> {
    let members: Map<String, Value> =
        serde_json::from_slice(body).map_err(|_| IntrospectionError::Malformed)?;
    match members.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Ok(Introspected::Inactive),
        _ => return Err(IntrospectionError::Malformed),
    }
    if let Some(exp) = members.get("exp") {
        let exp = exp.as_i64().ok_or(IntrospectionError::Malformed)?;
        if exp.saturating_add(leeway) <= now {
            return Ok(Introspected::Inactive);
        }
    }
    Ok(Introspected::Active(Arc::new(members)))
}

/// The cache key: a hash of the token, never the token.
pub type TokenHash = [u8; 32];

pub fn token_hash(token: &str) -> TokenHash {
    labelled_hash("introspected token", token.as_bytes())
}

struct Entry {
    answer: Introspected,
    /// Unix seconds after which the entry is not used.
    expires_at: i64,
    /// Insertion number, to tell a replaced entry from the one in the eviction queue.
    generation: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<TokenHash, Entry>,
    /// Oldest first; stale pairs (replaced or removed entries) are skipped.
    order: VecDeque<(u64, TokenHash)>,
    next_generation: u64,
}

/// Bounded cache of introspection answers. A std `Mutex`: held only for map operations, never
/// across an `.await`.
pub struct IntrospectionCache {
    ttl_seconds: i64,
    max_entries: usize,
    inner: Mutex<Inner>,
}

impl IntrospectionCache {
    pub fn new(ttl_seconds: i64, max_entries: usize) -> Self {
        IntrospectionCache {
            ttl_seconds,
            max_entries,
            inner: Mutex::default(),
        }
    }

    pub fn get(&self, key: &TokenHash, now: i64) -> Option<Introspected> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .entries
            .get(key)
            .filter(|entry| entry.expires_at > now)
            .map(|entry| entry.answer.clone())
    }

    /// Keeps `answer` until `now + ttl`, or the token's `exp` if sooner; not at all when that
    /// is not in the future, when the TTL is 0, or when the answer is too large.
    pub fn put(&self, key: TokenHash, answer: Introspected, now: i64) {
        let mut expires_at = now.saturating_add(self.ttl_seconds);
        if let Introspected::Active(members) = &answer {
            if let Some(exp) = members.get("exp").and_then(Value::as_i64) {
                expires_at = expires_at.min(exp);
            }
            if Value::Object((**members).clone()).to_string().len() > MAX_CACHED_ANSWER_BYTES {
                return;
            }
        }
        if expires_at <= now || self.max_entries == 0 {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let generation = inner.next_generation;
        inner.next_generation += 1;
        inner.entries.insert(
            key,
            Entry {
                answer,
                expires_at,
                generation,
            },
        );
        inner.order.push_back((generation, key));
        while inner.entries.len() > self.max_entries {
            let Some((generation, oldest)) = inner.order.pop_front() else {
                break;
            };
            if inner.entries.get(&oldest).map(|e| e.generation) == Some(generation) {
                inner.entries.remove(&oldest);
            }
        }
        // Stale queue pairs of replaced entries: keep the queue within twice the bound.
        if inner.order.len() > 2 * self.max_entries.max(1) {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|(generation, key)| {
                entries.get(key).map(|e| e.generation) == Some(*generation)
            });
        }
    }

    pub fn len(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn body(value: Value) -> Vec<u8> {
        value.to_string().into_bytes()
    }

    fn active(value: Value) -> Introspected {
        Introspected::Active(Arc::new(value.as_object().unwrap().clone()))
    }

    #[test]
    fn active_and_inactive_answers_are_read() {
        let answer = json!({"active": true, "scope": "orders:read", "exp": NOW + 60});
        assert_eq!(parse(&body(answer.clone()), NOW, 0), Ok(active(answer)));
        assert_eq!(
            parse(&body(json!({"active": false})), NOW, 0),
            Ok(Introspected::Inactive)
        );
        let expired = json!({"active": true, "exp": NOW - 31});
        assert_eq!(parse(&body(expired), NOW, 30), Ok(Introspected::Inactive));
        for malformed in [
            json!({"active": "true"}),
            json!({"scope": "x"}),
            json!([1]),
            json!({"active": true, "exp": "soon"}),
        ] {
            assert_eq!(
                parse(&body(malformed.clone()), NOW, 0),
                Err(IntrospectionError::Malformed),
                "{malformed}"
            );
        }
        assert_eq!(parse(b"<html>", NOW, 0), Err(IntrospectionError::Malformed));
    }

    #[test]
    fn answers_expire_at_the_ttl_or_the_tokens_exp_whichever_is_first() {
        let cache = IntrospectionCache::new(60, 10);
        let long_lived = token_hash("a");
        cache.put(
            long_lived,
            active(json!({"active": true, "exp": NOW + 3600})),
            NOW,
        );
        assert!(cache.get(&long_lived, NOW + 59).is_some());
        assert!(
            cache.get(&long_lived, NOW + 60).is_none(),
            "the TTL ends it"
        );

        let short_lived = token_hash("b");
        cache.put(
            short_lived,
            active(json!({"active": true, "exp": NOW + 10})),
            NOW,
        );
        assert!(cache.get(&short_lived, NOW + 9).is_some());
        assert!(cache.get(&short_lived, NOW + 10).is_none(), "exp ends it");

        let dead = token_hash("c");
        cache.put(dead, Introspected::Inactive, NOW);
        assert_eq!(cache.get(&dead, NOW + 1), Some(Introspected::Inactive));

        let no_ttl = IntrospectionCache::new(0, 10);
        no_ttl.put(dead, Introspected::Inactive, NOW);
        assert!(no_ttl.is_empty());
    }

    #[test]
    fn the_cache_is_bounded_oldest_first_and_keyed_by_a_hash() {
        let cache = IntrospectionCache::new(60, 3);
        for token in ["t1", "t2", "t3", "t4"] {
            cache.put(token_hash(token), Introspected::Inactive, NOW);
        }
        assert_eq!(cache.len(), 3);
        assert!(
            cache.get(&token_hash("t1"), NOW).is_none(),
            "the oldest went first"
        );
        assert!(cache.get(&token_hash("t4"), NOW).is_some());
        // Replacing an entry does not make it the next to go.
        for _ in 0..20 {
            cache.put(token_hash("t2"), Introspected::Inactive, NOW);
        }
        cache.put(token_hash("t5"), Introspected::Inactive, NOW);
        assert!(cache.get(&token_hash("t2"), NOW).is_some());
        assert!(cache.get(&token_hash("t3"), NOW).is_none());
        assert_ne!(token_hash("t2").to_vec(), b"t2".to_vec());

        let big = json!({"active": true, "blob": "x".repeat(MAX_CACHED_ANSWER_BYTES)});
        cache.put(token_hash("big"), active(big), NOW);
        assert!(
            cache.get(&token_hash("big"), NOW).is_none(),
            "too large to keep"
        );
    }
}
