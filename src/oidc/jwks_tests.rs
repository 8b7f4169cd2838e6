//! Unit tests of `jwks.rs`: the key cache's schedule, refetches and key parsing.

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
    assert!(matches!(parse_key_set(b"[]"), Err(JwksError::Invalid(_))));
}

fn key(kid: &str) -> Jwk {
    serde_json::from_value(serde_json::json!(
        {"kty":"RSA","kid":kid,"use":"sig","alg":"RS256","n":"sXchTx0","e":"AQAB"}
    ))
    .unwrap()
}

fn kids(keys: &[Jwk]) -> Vec<String> {
    keys.iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect()
}

#[derive(Debug, thiserror::Error)]
#[error("IdP down")]
struct IdpDown;

/// A JWKS endpoint whose answer the test changes, counting fetches.
struct Idp {
    published: std::sync::Mutex<Result<Vec<&'static str>, ()>>,
    max_age: Option<Duration>,
    fetches: std::sync::atomic::AtomicUsize,
}

impl Idp {
    fn new(kids: Vec<&'static str>, max_age: Option<Duration>) -> Self {
        Idp {
            published: std::sync::Mutex::new(Ok(kids)),
            max_age,
            fetches: Default::default(),
        }
    }
    fn publish(&self, kids: Result<Vec<&'static str>, ()>) {
        *self.published.lock().unwrap() = kids;
    }
    fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
    async fn fetch(&self) -> Result<FetchedKeys, IdpDown> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match &*self.published.lock().unwrap() {
            Ok(kids) => Ok(FetchedKeys {
                keys: kids.iter().map(|kid| key(kid)).collect(),
                max_age: self.max_age,
            }),
            Err(()) => Err(IdpDown),
        }
    }
    fn cache(&self) -> JwksCache {
        let kids = self.published.lock().unwrap().clone().unwrap();
        JwksCache::new(FetchedKeys {
            keys: kids.iter().map(|kid| key(kid)).collect(),
            max_age: self.max_age,
        })
    }
}

#[test]
fn max_age_is_read_and_clamped() {
    assert_eq!(
        max_age("public, max-age=300"),
        Some(Duration::from_secs(300))
    );
    assert_eq!(max_age("no-cache"), Some(Duration::ZERO));
    assert_eq!(max_age("private"), None);
    assert_eq!(freshness(Some(Duration::ZERO)), MIN_FRESH);
    assert_eq!(
        freshness(Some(Duration::from_secs(10 * 24 * 3600))),
        MAX_FRESH
    );
    assert_eq!(freshness(None), DEFAULT_FRESH);
}

#[tokio::test(start_paused = true)]
async fn a_new_kid_right_after_start_is_fetched_at_once_and_forged_kids_are_remembered() {
    let idp = Idp::new(vec!["k1"], None);
    let cache = idp.cache();
    idp.publish(Ok(vec!["k1", "k2"]));
    let keys = cache
        .refetch_for_unknown_kid(Some("k2"), || idp.fetch())
        .await;
    assert_eq!(
        kids(&keys),
        ["k1", "k2"],
        "no waiting window after the startup fetch"
    );
    assert_eq!(idp.fetches(), 1);
    // A forged kid: one fetch, then remembered.
    tokio::time::advance(MIN_REFETCH_INTERVAL).await;
    cache
        .refetch_for_unknown_kid(Some("forged"), || idp.fetch())
        .await;
    assert_eq!(idp.fetches(), 2);
    // Another forged kid within MIN_REFETCH_INTERVAL of a fetch waits its turn.
    cache
        .refetch_for_unknown_kid(Some("forged-2"), || idp.fetch())
        .await;
    assert_eq!(idp.fetches(), 2);
    tokio::time::advance(MIN_REFETCH_INTERVAL).await;
    cache
        .refetch_for_unknown_kid(Some("forged"), || idp.fetch())
        .await;
    assert_eq!(idp.fetches(), 2, "remembered as unknown");
    tokio::time::advance(UNKNOWN_KID_MEMORY).await;
    cache
        .refetch_for_unknown_kid(Some("forged"), || idp.fetch())
        .await;
    assert_eq!(idp.fetches(), 3, "forgotten after UNKNOWN_KID_MEMORY");
}

#[tokio::test(start_paused = true)]
async fn stale_keys_are_refetched_and_withdrawn_keys_dropped() {
    let idp = Idp::new(vec!["old", "new"], Some(Duration::from_secs(120)));
    let cache = idp.cache();
    idp.publish(Ok(vec!["new"]));
    cache.refresh_if_stale(|| idp.fetch()).await;
    assert_eq!(idp.fetches(), 0, "fresh for max-age");
    tokio::time::advance(Duration::from_secs(120)).await;
    let keys = cache.refresh_if_stale(|| idp.fetch()).await;
    assert_eq!(
        kids(&keys),
        ["new"],
        "the withdrawn key is no longer trusted"
    );
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refetch_keeps_the_keys_and_counts() {
    let idp = Idp::new(vec!["k1"], None);
    let cache = idp.cache();
    idp.publish(Err(()));
    tokio::time::advance(DEFAULT_FRESH).await;
    let keys = cache.refresh_if_stale(|| idp.fetch()).await;
    assert_eq!(kids(&keys), ["k1"]);
    assert_eq!(cache.consecutive_failures().await, 1);
    cache.refresh_if_stale(|| idp.fetch()).await;
    assert_eq!(idp.fetches(), 1, "retried only after RETRY_AFTER_FAILURE");
    tokio::time::advance(RETRY_AFTER_FAILURE).await;
    idp.publish(Ok(vec!["k1"]));
    cache.refresh_if_stale(|| idp.fetch()).await;
    assert_eq!(cache.consecutive_failures().await, 0);
}
