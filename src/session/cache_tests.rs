//! The session cache's unit tests (`cache.rs`): its invariant, its bound, what it keeps.

use super::*;

fn session(subject: &str) -> CachedSession {
    CachedSession {
        record: Arc::new(SessionRecord {
            subject: subject.into(),
            ..Default::default()
        }),
        sealed_by_old_key: false,
        complete: true,
    }
}

fn live_cache(capacity: usize) -> SessionCache {
    let cache = SessionCache::new(capacity, Keep::default());
    cache.reset(true);
    cache
}

#[test]
fn serves_nothing_until_the_feed_is_live_and_forgets_everything_when_it_is_lost() {
    let cache = SessionCache::new(10, Keep::default());
    cache.insert("a", &session("alice"), cache.ticket());
    assert!(cache.get("a").is_none(), "not live: nothing is stored");
    cache.reset(true);
    cache.insert("a", &session("alice"), cache.ticket());
    assert_eq!(cache.get("a").unwrap().record.subject, "alice");
    cache.reset(false);
    assert!(cache.get("a").is_none());
    cache.reset(true);
    assert!(
        cache.get("a").is_none(),
        "the feed came back: nothing from before it"
    );
}

#[test]
fn a_read_that_raced_an_invalidation_is_not_stored() {
    let cache = live_cache(10);
    let ticket = cache.ticket();
    // Another replica logs the session out while our read is in flight.
    cache.invalidated(&["a"]);
    cache.insert("a", &session("alice"), ticket);
    assert!(cache.get("a").is_none());
    // A read that began after the change is stored.
    cache.insert("a", &session("alice"), cache.ticket());
    assert!(cache.get("a").is_some());
}

#[test]
fn a_read_is_stored_when_only_other_keys_changed_meanwhile() {
    let cache = live_cache(10);
    let ticket = cache.ticket();
    cache.invalidated(&["b", "c"]);
    cache.insert("a", &session("alice"), ticket);
    assert!(
        cache.get("a").is_some(),
        "other sessions' writes do not stop caching"
    );
    let ticket = cache.ticket();
    cache.invalidated(&["b"]);
    cache.invalidated(&["a"]);
    cache.invalidated(&["c"]);
    cache.insert("a", &session("alice"), ticket);
    assert!(
        cache.get("a").is_none(),
        "a change to this key among others is seen"
    );
}

#[test]
fn a_read_whose_window_saw_more_changes_than_are_remembered_is_not_stored() {
    let cache = live_cache(10);
    let ticket = cache.ticket();
    for index in 0..=RECENT_INVALIDATIONS {
        cache.invalidated(&[format!("other{index}").as_str()]);
    }
    cache.insert("a", &session("alice"), ticket);
    assert!(cache.get("a").is_none(), "cannot tell: not stored");
    cache.insert("a", &session("alice"), cache.ticket());
    assert!(cache.get("a").is_some());
}

#[test]
fn a_read_that_raced_a_feed_restart_is_not_stored() {
    let cache = live_cache(10);
    let ticket = cache.ticket();
    cache.reset(false);
    cache.reset(true);
    cache.insert("a", &session("alice"), ticket);
    assert!(cache.get("a").is_none());
}

#[test]
fn invalidation_and_forget_remove_only_their_keys() {
    let cache = live_cache(10);
    for key in ["a", "b", "c"] {
        cache.insert(key, &session(key), cache.ticket());
    }
    cache.invalidated(&["a"]);
    cache.forget("b");
    assert!(cache.get("a").is_none() && cache.get("b").is_none());
    assert_eq!(cache.get("c").unwrap().record.subject, "c");
}

#[test]
fn stays_within_its_capacity() {
    let cache = live_cache(3);
    for index in 0..100 {
        let key = format!("k{index}");
        cache.insert(&key, &session(&key), cache.ticket());
        assert!(cache.len() <= 3);
    }
    assert!(cache.get("k99").is_some(), "the newest entry is kept");
    let off = live_cache(0);
    off.insert("a", &session("alice"), off.ticket());
    assert!(off.is_empty());
}

#[test]
fn entries_keep_only_what_a_check_that_allows_needs() {
    let full = CachedSession {
        record: Arc::new(SessionRecord {
            subject: "alice".into(),
            idp_session_id: "sid".into(),
            access_token: "at".into(),
            id_token: "it".into(),
            refresh_token: "rt".into(),
            access_token_expires_at: 3,
            created_at: 1,
            last_active_at: 2,
            claims: [("email".to_owned(), "a@x".to_owned())].into(),
            claims_json: "{}".into(),
        }),
        sealed_by_old_key: true,
        complete: true,
    };
    let lean = full.trimmed(Keep::default());
    let record = &lean.record;
    assert!(!lean.complete && lean.sealed_by_old_key);
    assert_eq!(
        (
            record.subject.as_str(),
            record.idp_session_id.as_str(),
            record.access_token.as_str()
        ),
        ("alice", "sid", "at")
    );
    assert_eq!(
        (
            record.access_token_expires_at,
            record.created_at,
            record.last_active_at
        ),
        (3, 1, 2)
    );
    assert!(record.refresh_token.is_empty() && record.id_token.is_empty());
    assert!(record.claims.is_empty() && record.claims_json.is_empty());

    let both = full.trimmed(Keep {
        id_token: true,
        claims: true,
    });
    assert_eq!(
        (
            both.record.id_token.as_str(),
            both.record.claims_json.as_str()
        ),
        ("it", "{}")
    );
    assert!(both.record.refresh_token.is_empty());

    // Claims of a record from before `claims_json` live in its ID token.
    let mut old = (*full.record).clone();
    old.claims_json.clear();
    let old = CachedSession {
        record: Arc::new(old),
        ..full
    };
    let claims_only = old.trimmed(Keep {
        id_token: false,
        claims: true,
    });
    assert_eq!(claims_only.record.id_token, "it");
}
