//! The IdP's signing keys. Parsed key by key, so one key of a type we do not know (or an encryption
//! key) does not hide the others. An unknown `kid` triggers one refetch, at most once per
//! `MIN_REFETCH_INTERVAL`, so forged `kid`s cannot make us hammer the IdP.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use tokio::sync::Mutex;
use tokio::time::Instant;

pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Parses a JWKS document, keeping the signature keys we can use.
pub fn parse_key_set(body: &[u8]) -> Result<Vec<Jwk>, String> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet =
        serde_json::from_slice(body).map_err(|error| format!("JWKS is not valid: {error}"))?;
    Ok(raw
        .keys
        .into_iter()
        .filter_map(|key| serde_json::from_value::<Jwk>(key).ok())
        .filter(|key| !matches!(key.common.public_key_use, Some(PublicKeyUse::Encryption)))
        // Public keys only: a symmetric key in a JWKS is a misconfiguration, and `Other` is a key
        // type we cannot use.
        .filter(|key| {
            matches!(
                key.algorithm,
                AlgorithmParameters::RSA(_)
                    | AlgorithmParameters::EllipticCurve(_)
                    | AlgorithmParameters::OctetKeyPair(_)
            )
        })
        .collect())
}

/// Cached keys plus what is needed to refresh them.
pub struct JwksCache {
    keys: RwLock<Arc<Vec<Jwk>>>,
    /// Held while refetching: concurrent misses wait for one fetch instead of each fetching.
    refetch: Mutex<Option<Instant>>,
}

impl JwksCache {
    pub fn new(keys: Vec<Jwk>) -> Self {
        JwksCache {
            keys: RwLock::new(Arc::new(keys)),
            refetch: Mutex::new(Some(Instant::now())),
        }
    }

    pub fn keys(&self) -> Arc<Vec<Jwk>> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Keys that may verify a token with this `kid` (all keys when the token names none).
    pub fn candidates(keys: &[Jwk], kid: Option<&str>) -> Vec<Jwk> {
        keys.iter()
            .filter(|key| kid.is_none() || key.common.key_id.as_deref() == kid)
            .cloned()
            .collect()
    }

    /// Refetches with `fetch` unless a fetch happened within `MIN_REFETCH_INTERVAL`; returns the
    /// keys after that.
    pub async fn refetch<F, Fut>(&self, fetch: F) -> Arc<Vec<Jwk>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Jwk>, String>>,
    {
        let mut last_fetch = self.refetch.lock().await;
        let recently = last_fetch.is_some_and(|at| at.elapsed() < MIN_REFETCH_INTERVAL);
        if !recently {
            *last_fetch = Some(Instant::now());
            match fetch().await {
                Ok(keys) => {
                    *self
                        .keys
                        .write()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
                }
                Err(error) => tracing::warn!(%error, "refetching the IdP's JWKS failed"),
            }
        }
        self.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_and_encryption_keys_are_skipped() {
        let body = br#"{"keys":[
            {"kty":"RSA","kid":"sig","use":"sig","alg":"RS256","n":"sXchTx0","e":"AQAB"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"sXchTx0","e":"AQAB"},
            {"kty":"weird","kid":"unknown"}
        ]}"#;
        let keys = parse_key_set(body).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].common.key_id.as_deref(), Some("sig"));
        assert_eq!(JwksCache::candidates(&keys, Some("other")).len(), 0);
        assert_eq!(JwksCache::candidates(&keys, None).len(), 1);
        assert!(parse_key_set(b"[]").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn refetch_is_rate_limited() {
        let cache = JwksCache::new(Vec::new());
        let fetches = std::sync::atomic::AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Vec::new())
        };
        cache.refetch(fetch).await;
        assert_eq!(
            fetches.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "just fetched at start"
        );
        tokio::time::advance(MIN_REFETCH_INTERVAL).await;
        cache.refetch(fetch).await;
        cache.refetch(fetch).await;
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
