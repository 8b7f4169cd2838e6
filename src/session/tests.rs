//! The session layer: what the store sees (hashes and ciphertext only), single-use pending
//! logins, key rotation, and the back-channel indexes.
use super::*;
use crate::crypto::test_keyring;
use crate::session::memory::MemoryStore;

const KEY_A: &str = "a-first-secret-that-is-long-enough!!";
const KEY_B: &str = "b-second-secret-that-is-long-enough!";

fn sessions(store: Arc<dyn SessionStore>, keys: &[&str]) -> Sessions {
    Sessions::new(store, Arc::new(test_keyring(keys)))
}

fn record() -> SessionRecord {
    SessionRecord {
        subject: "alice".into(),
        access_token: "secret-access-token".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_store_sees_neither_the_id_nor_the_tokens() {
    let store = Arc::new(MemoryStore::new());
    let sessions = sessions(store.clone(), &[KEY_A]);
    let id = SessionId([9; 16]);
    let ttl = Duration::from_secs(60);
    sessions.create(&id, &record(), ttl, ttl).await.unwrap();
    let key = Sessions::session_key(&id);
    assert!(!key.contains(&hex(&id.0)));
    let raw = store.get(&key).await.unwrap().unwrap();
    assert!(!raw.windows(6).any(|w| w == b"secret"));
    let loaded = sessions.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.record, record());
    assert!(!format!("{loaded:?}").contains("secret-access-token"));
}

#[tokio::test]
async fn ending_a_session_takes_it_out_of_the_logout_indexes() {
    let sessions = sessions(Arc::new(MemoryStore::new()), &[KEY_A]);
    let ttl = Duration::from_secs(60);
    let with_sid = SessionRecord {
        idp_session_id: "sid-1".into(),
        ..record()
    };
    let (ended, deleted, kept) = (SessionId([1; 16]), SessionId([2; 16]), SessionId([3; 16]));
    for id in [&ended, &deleted, &kept] {
        sessions.create(id, &with_sid, ttl, ttl).await.unwrap();
    }
    sessions.end(&ended, &with_sid).await.unwrap();
    sessions.delete(&deleted).await.unwrap();
    assert!(sessions.load(&ended).await.unwrap().is_none());
    // `end` left no index entry; `delete` (no record at hand) left its entries behind.
    assert_eq!(sessions.delete_by_idp_session("sid-1").await.unwrap(), 2);
    assert!(sessions.load(&kept).await.unwrap().is_none());
    // A back-channel logout by sid does not touch the subject index (the records are not
    // read): both keys are still listed there.
    assert_eq!(sessions.delete_by_subject("alice").await.unwrap(), 2);
    // Without a sid, only the subject index is involved.
    let id = SessionId([4; 16]);
    sessions.create(&id, &record(), ttl, ttl).await.unwrap();
    sessions.end(&id, &record()).await.unwrap();
    assert_eq!(sessions.delete_by_subject("alice").await.unwrap(), 0);
}

#[tokio::test]
async fn pending_logins_are_single_use() {
    let sessions = sessions(Arc::new(MemoryStore::new()), &[KEY_A]);
    let pending = PendingLoginRecord {
        nonce: "n".into(),
        ..Default::default()
    };
    sessions
        .put_pending("state-1", &pending, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        sessions.take_pending("state-1").await.unwrap(),
        Some(pending)
    );
    assert_eq!(sessions.take_pending("state-1").await.unwrap(), None);
}

#[tokio::test]
async fn rotated_keys_open_old_sessions_and_removed_keys_do_not() {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let id = SessionId([1; 16]);
    let ttl = Duration::from_secs(60);
    sessions(store.clone(), &[KEY_A])
        .create(&id, &record(), ttl, ttl)
        .await
        .unwrap();
    let rotated = sessions(store.clone(), &[KEY_B, KEY_A]);
    assert!(rotated.load(&id).await.unwrap().unwrap().sealed_by_old_key);
    let removed = sessions(store, &[KEY_B]);
    assert!(removed.load(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn an_update_writes_back_only_a_session_that_still_exists() {
    let sessions = sessions(Arc::new(MemoryStore::new()), &[KEY_A]);
    let ttl = Duration::from_secs(60);
    let id = SessionId([5; 16]);
    assert!(
        !sessions.update(&id, &record(), ttl).await.unwrap(),
        "never created"
    );
    assert!(sessions.load(&id).await.unwrap().is_none());
    sessions.create(&id, &record(), ttl, ttl).await.unwrap();
    let refreshed = SessionRecord {
        access_token: "refreshed".into(),
        ..record()
    };
    assert!(sessions.update(&id, &refreshed, ttl).await.unwrap());
    assert_eq!(sessions.load(&id).await.unwrap().unwrap().record, refreshed);
    // Ended while the caller held the record: the update brings nothing back.
    sessions.end(&id, &refreshed).await.unwrap();
    assert!(!sessions.update(&id, &refreshed, ttl).await.unwrap());
    assert!(sessions.load(&id).await.unwrap().is_none());
}
