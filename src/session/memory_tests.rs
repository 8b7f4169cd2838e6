//! Unit tests of `memory.rs`: the byte bound, expiry sweeps and eviction order.

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(start_paused = true)]
async fn a_flood_of_pending_logins_stays_within_the_bound_and_evicts_no_session() {
    let store = MemoryStore::with_max_bytes(256 * 1024);
    for index in 0..20 {
        let key = format!("session:{index}");
        store.put(&key, vec![7; 2000], HOUR).await.unwrap();
    }
    for index in 0..50_000 {
        let key = format!("login:{index}");
        store.put(&key, vec![1; 300], HOUR / 6).await.unwrap();
        assert!(store.bytes() <= 256 * 1024);
    }
    for index in 0..20 {
        let key = format!("session:{index}");
        assert!(store.get(&key).await.unwrap().is_some(), "{key}");
    }
    assert!(store.get("login:49999").await.unwrap().is_some(), "newest");
    assert!(store.get("login:0").await.unwrap().is_none(), "oldest");
}

#[tokio::test(start_paused = true)]
async fn sessions_are_evicted_soonest_expiring_first_once_no_login_is_left() {
    let store = MemoryStore::with_max_bytes(64 * 1024);
    store.put("login:x", vec![0; 100], HOUR).await.unwrap();
    store
        .put("session:late", vec![0; 20_000], 2 * HOUR)
        .await
        .unwrap();
    store
        .put("session:soon", vec![0; 20_000], HOUR)
        .await
        .unwrap();
    store
        .put("session:new", vec![0; 30_000], 3 * HOUR)
        .await
        .unwrap();
    assert!(store.get("login:x").await.unwrap().is_none());
    assert!(store.get("session:soon").await.unwrap().is_none());
    assert_eq!(store.sessions_evicted(), 1, "the login is not counted");
    assert!(store.get("session:late").await.unwrap().is_some());
    assert!(store.get("session:new").await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn expired_entries_are_swept_on_insert_and_their_bytes_returned() {
    let store = MemoryStore::with_max_bytes(DEFAULT_MAX_BYTES);
    for index in 0..100 {
        let key = format!("session:{index}");
        store.put(&key, vec![0; 1000], HOUR).await.unwrap();
    }
    tokio::time::advance(2 * HOUR).await;
    store.put("session:fresh", vec![0; 10], HOUR).await.unwrap();
    let only_fresh = ENTRY_OVERHEAD_BYTES + 2 * "session:fresh".len() + 10;
    assert_eq!(store.bytes(), only_fresh);
    store.delete("session:fresh").await.unwrap();
    assert_eq!(store.bytes(), 0);
}
