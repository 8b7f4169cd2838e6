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
    let key = sessions.session_key(&id);
    let mut id_hex = String::new();
    push_hex(&mut id_hex, &id.0);
    assert_eq!(id_hex, "09".repeat(16));
    assert!(!key.contains(&id_hex));
    assert_eq!(key.len(), "session:".len() + 64, "{key}");
    let raw = store.get(&key).await.unwrap().unwrap();
    assert!(!raw.windows(6).any(|w| w == b"secret"));
    let loaded = sessions.load(&id).await.unwrap().unwrap();
    assert_eq!(*loaded.record, record());
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
    assert_eq!(
        *sessions.load(&id).await.unwrap().unwrap().record,
        refreshed
    );
    // Ended while the caller held the record: the update brings nothing back.
    sessions.end(&id, &refreshed).await.unwrap();
    assert!(!sessions.update(&id, &refreshed, ttl).await.unwrap());
    assert!(sessions.load(&id).await.unwrap().is_none());
}

/// Two providers share one store: nothing one provider stores (sessions, pending logins,
/// back-channel indexes, used logout tokens, refresh locks) is visible to the other, and the
/// `default` provider keeps the keys it had before providers existed.
#[tokio::test]
async fn providers_share_a_store_but_not_a_single_key() {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let default = sessions(Arc::clone(&store), &[KEY_A]);
    let corp = sessions(Arc::clone(&store), &[KEY_A]).in_namespace("corp");
    let id = SessionId([7; 16]);
    let ttl = Duration::from_secs(60);

    assert!(default.session_key(&id).starts_with("session:"));
    assert!(!default.session_key(&id)["session:".len()..].contains(':'));
    assert!(corp.session_key(&id).starts_with("session:corp:"));
    assert!(corp.pending_key("s").starts_with("login:corp:"));
    assert!(
        corp.pending_list_key(b"b")
            .starts_with("login-binding:corp:")
    );

    corp.create(&id, &record(), ttl, ttl).await.unwrap();
    assert!(default.load(&id).await.unwrap().is_none());
    assert!(corp.load(&id).await.unwrap().is_some());
    // A back-channel logout of `alice` at the default provider's IdP leaves corp's alice alone.
    assert_eq!(default.delete_by_subject("alice").await.unwrap(), 0);
    assert!(corp.load(&id).await.unwrap().is_some());

    corp.put_pending("state-1", &PendingLoginRecord::default(), ttl)
        .await
        .unwrap();
    assert!(default.take_pending("state-1").await.unwrap().is_none());
    assert!(corp.take_pending("state-1").await.unwrap().is_some());

    corp.remember_logout_token("jti-1", ttl).await.unwrap();
    assert!(!default.logout_token_seen("jti-1").await.unwrap());
    assert!(corp.try_lock_refresh(&id, b"a", ttl).await.unwrap());
    assert!(default.try_lock_refresh(&id, b"b", ttl).await.unwrap());

    // A record copied under the other provider's key does not open there.
    let sealed = store.get(&corp.session_key(&id)).await.unwrap().unwrap();
    store
        .put(&default.session_key(&id), sealed, ttl)
        .await
        .unwrap();
    assert!(default.load(&id).await.unwrap().is_none());
}
