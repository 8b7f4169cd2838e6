//! The IdP's signing keys. Parsed key by key, so one key of a type we do not know (or an encryption
//! key) does not hide the others. The cache follows the IdP's rotation three ways:
//! - **on a schedule**: keys are fresh for the JWKS response's `Cache-Control: max-age` (clamped to
//!   `MIN_FRESH`..`MAX_FRESH`, `DEFAULT_FRESH` without one); stale keys are refetched before use,
//!   and keys the IdP no longer publishes are dropped with them;
//! - **on a `kid` never seen**: refetched at once, then that `kid` is remembered as unknown for
//!   `UNKNOWN_KID_MEMORY` (bounded in count), so forged `kid`s cannot make us hammer the IdP, and
//!   any refetch is at least `MIN_REFETCH_INTERVAL` after the previous one;
//! - **on failure**: the keys we have stay in use; consecutive failures are counted so the provider
//!   can re-run discovery (the `jwks_uri` may have moved).
//!
//! Times are tokio `Instant`s, so tests move the clock with `tokio::time::pause`/`advance`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// No two fetches closer than this, whatever triggers them.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(1);
/// How long a `kid` that a refetch did not produce is not worth another refetch.
pub const UNKNOWN_KID_MEMORY: Duration = Duration::from_secs(60);
/// At most this many unknown `kid`s remembered; when full, the memory starts afresh.
pub const MAX_UNKNOWN_KIDS: usize = 1024;
pub const MIN_FRESH: Duration = Duration::from_secs(60);
pub const MAX_FRESH: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_FRESH: Duration = Duration::from_secs(600);
/// After a failed scheduled refetch, the keys count as fresh again for this long.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// One fetch of the key set: the usable keys and the response's `max-age`, if any.
pub struct FetchedKeys {
    pub keys: Vec<Jwk>,
    pub max_age: Option<Duration>,
}

/// How long keys fetched with this `max-age` are fresh.
pub fn freshness(max_age: Option<Duration>) -> Duration {
    max_age.map_or(DEFAULT_FRESH, |age| age.clamp(MIN_FRESH, MAX_FRESH))
}

/// `max-age` from a `Cache-Control` value; `no-cache`/`no-store` count as zero (then `MIN_FRESH`).
pub fn max_age(cache_control: &str) -> Option<Duration> {
    let mut age = None;
    for directive in cache_control.split(',').map(str::trim) {
        let directive = directive.to_ascii_lowercase();
        if directive == "no-cache" || directive == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = directive.strip_prefix("max-age=") {
            age = seconds
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age
}

/// Why a JWKS document could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS is not valid: {0}")]
    Invalid(#[source] serde_json::Error),
}

/// Parses a JWKS document, keeping the signature keys we can use.
pub fn parse_key_set(body: &[u8]) -> Result<Vec<Jwk>, JwksError> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet = serde_json::from_slice(body).map_err(JwksError::Invalid)?;
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

struct KeySet {
    keys: Arc<Vec<Jwk>>,
    fresh_until: Instant,
}

/// What the refetch lock guards.
#[derive(Default)]
struct RefetchState {
    last_fetch: Option<Instant>,
    unknown_kids: HashMap<String, Instant>,
    consecutive_failures: u32,
}

/// Cached keys plus what is needed to refresh them.
pub struct JwksCache {
    current: RwLock<KeySet>,
    /// Held while refetching: concurrent misses wait for one fetch instead of each fetching.
    refetch: Mutex<RefetchState>,
}

impl JwksCache {
    /// Keys from discovery's fetch. That fetch does not hold back the next one: a `kid` the IdP
    /// starts using right after our start is fetched at once.
    pub fn new(fetched: FetchedKeys) -> Self {
        JwksCache {
            current: RwLock::new(KeySet {
                keys: Arc::new(fetched.keys),
                fresh_until: Instant::now() + freshness(fetched.max_age),
            }),
            refetch: Mutex::new(RefetchState::default()),
        }
    }

    pub fn keys(&self) -> Arc<Vec<Jwk>> {
        Arc::clone(&self.read().keys)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeySet> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    fn is_stale(&self) -> bool {
        Instant::now() >= self.read().fresh_until
    }

    /// Refetches failed in a row (reset by any success).
    pub async fn consecutive_failures(&self) -> u32 {
        self.refetch.lock().await.consecutive_failures
    }

    /// Keys that may verify a token with this `kid` (all keys when the token names none).
    pub fn candidates(keys: &[Jwk], kid: Option<&str>) -> Vec<Jwk> {
        keys.iter()
            .filter(|key| kid.is_none() || key.common.key_id.as_deref() == kid)
            .cloned()
            .collect()
    }

    /// Before use: refetches keys past their freshness; on failure keeps them a little longer.
    pub async fn refresh_if_stale<F, Fut, E>(&self, fetch: F) -> Arc<Vec<Jwk>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<FetchedKeys, E>>,
        E: std::fmt::Display,
    {
        if self.is_stale() {
            let mut state = self.refetch.lock().await;
            // Another task may have refreshed them while we waited for the lock.
            if self.is_stale() && !Self::fetched_recently(&state) {
                self.fetch_into(&mut state, fetch).await;
            }
        }
        self.keys()
    }

    /// After a `kid` matched no key: refetches at once unless this `kid` was just looked for (or
    /// any fetch happened within `MIN_REFETCH_INTERVAL`); returns the keys after that.
    pub async fn refetch_for_unknown_kid<F, Fut, E>(
        &self,
        kid: Option<&str>,
        fetch: F,
    ) -> Arc<Vec<Jwk>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<FetchedKeys, E>>,
        E: std::fmt::Display,
    {
        let mut state = self.refetch.lock().await;
        let kid_key = kid.unwrap_or_default().to_owned();
        let known_now = !Self::candidates(&self.keys(), kid).is_empty();
        let remembered = state
            .unknown_kids
            .get(&kid_key)
            .is_some_and(|since| since.elapsed() < UNKNOWN_KID_MEMORY);
        if known_now || remembered || Self::fetched_recently(&state) {
            return self.keys();
        }
        self.fetch_into(&mut state, fetch).await;
        if Self::candidates(&self.keys(), kid).is_empty() {
            if state.unknown_kids.len() >= MAX_UNKNOWN_KIDS {
                state.unknown_kids.clear();
            }
            state.unknown_kids.insert(kid_key, Instant::now());
        }
        self.keys()
    }

    fn fetched_recently(state: &RefetchState) -> bool {
        state
            .last_fetch
            .is_some_and(|at| at.elapsed() < MIN_REFETCH_INTERVAL)
    }

    /// `fetch`'s error is logged: the provider's `ProviderError`, whose text is fixed or the
    /// IdP's, never a token's.
    async fn fetch_into<F, Fut, E>(&self, state: &mut RefetchState, fetch: F)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<FetchedKeys, E>>,
        E: std::fmt::Display,
    {
        state.last_fetch = Some(Instant::now());
        let mut current = match fetch().await {
            Ok(fetched) => {
                state.consecutive_failures = 0;
                KeySet {
                    keys: Arc::new(fetched.keys),
                    fresh_until: Instant::now() + freshness(fetched.max_age),
                }
            }
            Err(error) => {
                state.consecutive_failures += 1;
                tracing::warn!(%error, failures = state.consecutive_failures, "refetching the IdP's JWKS failed; keeping the keys we have");
                KeySet {
                    keys: self.keys(),
                    fresh_until: Instant::now() + RETRY_AFTER_FAILURE,
                }
            }
        };
        std::mem::swap(
            &mut *self.current.write().unwrap_or_else(|p| p.into_inner()),
            &mut current,
        );
    }
}

#[cfg(test)]
#[path = "jwks_tests.rs"]
mod tests;
