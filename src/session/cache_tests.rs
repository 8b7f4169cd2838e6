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

/// A session key as `Sessions` makes it, for session `name` of the `default` provider.
fn key(name: &str) -> String {
    key_in("", name)
}

/// A session key of the provider whose namespace is `namespace` (`""` or `"<provider>:"`).
fn key_in(namespace: &str, name: &str) -> String {
    let hash = crate::crypto::labelled_hash("session id", name.as_bytes());
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("session:{namespace}{hex}")
}

fn live_cache(capacity: usize) -> SessionCache {
    let cache = SessionCache::new(capacity, Keep::default());
    cache.reset(true);
    cache
}

#[test]
fn serves_nothing_until_the_feed_is_live_and_forgets_everything_when_it_is_lost() {
    let cache = SessionCache::new(10, Keep::default());
    cache.insert(&key("a"), &session("alice"), cache.ticket());
    assert!(
        cache.get(&key("a")).is_none(),
        "not live: nothing is stored"
    );
    cache.reset(true);
    cache.insert(&key("a"), &session("alice"), cache.ticket());
    assert_eq!(cache.get(&key("a")).unwrap().record.subject, "alice");
    cache.reset(false);
    assert!(cache.get(&key("a")).is_none());
    cache.reset(true);
    assert!(
        cache.get(&key("a")).is_none(),
        "the feed came back: nothing from before it"
    );
}

#[test]
fn a_read_that_raced_an_invalidation_is_not_stored() {
    let cache = live_cache(10);
    let ticket = cache.ticket();
    // Another replica logs the session out while our read is in flight.
    cache.invalidated(&[&key("a")]);
    cache.insert(&key("a"), &session("alice"), ticket);
    assert!(cache.get(&key("a")).is_none());
    // A read that began after the change is stored.
    cache.insert(&key("a"), &session("alice"), cache.ticket());
    assert!(cache.get(&key("a")).is_some());
}

#[test]
fn a_read_is_stored_when_only_other_keys_changed_meanwhile() {
    let cache = live_cache(10);
    let ticket = cache.ticket();
    cache.invalidated(&[&key("b"), &key("c")]);
    cache.insert(&key("a"), &session("alice"), ticket);
    assert!(
        cache.get(&key("a")).is_some(),
        "other sessions' writes do not stop caching"
    );
    let ticket = cache.ticket();
    cache.invalidated(&[&key("b")]);
    cache.invalidated(&[&key("a")]);
    cache.invalidated(&[&key("c")]);
    cache.insert(&key("a"), &session("alice"), ticket);
    assert!(
        cache.get(&key("a")).is_none(),
        "a change to this key among others is seen"
    );
}

#[test]
fn a_read_whose_window_saw_more_changes_than_are_remembered_is_not_stored() {
    let cache = live_cache(10);
    let ticket = cache.ticket();
    for index in 0..=RECENT_INVALIDATIONS {
        cache.invalidated(&[&key(&format!("other{index}"))]);
    }
    cache.insert(&key("a"), &session("alice"), ticket);
    assert!(cache.get(&key("a")).is_none(), "cannot tell: not stored");
    cache.insert(&key("a"), &session("alice"), cache.ticket());
    assert!(cache.get(&key("a")).is_some());
}

#[test]
fn a_read_that_raced_a_feed_restart_is_not_stored() {
    let cache = live_cache(10);
    let ticket = cache.ticket();
    cache.reset(false);
    cache.reset(true);
    cache.insert(&key("a"), &session("alice"), ticket);
    assert!(cache.get(&key("a")).is_none());
}

#[test]
fn invalidation_and_forget_remove_only_their_keys() {
    let cache = live_cache(10);
    for name in ["a", "b", "c"] {
        cache.insert(&key(name), &session(name), cache.ticket());
    }
    cache.invalidated(&[&key("a")]);
    cache.forget(&key("b"));
    assert!(cache.get(&key("a")).is_none() && cache.get(&key("b")).is_none());
    assert_eq!(cache.get(&key("c")).unwrap().record.subject, "c");
}

#[test]
fn stays_within_its_capacity() {
    let cache = live_cache(3);
    for index in 0..100 {
        let name = format!("k{index}");
        cache.insert(&key(&name), &session(&name), cache.ticket());
        assert!(cache.len() <= 3);
    }
    assert!(cache.get(&key("k99")).is_some(), "the newest entry is kept");
    let off = live_cache(0);
    off.insert(&key("a"), &session("alice"), off.ticket());
    assert!(off.is_empty());
}

/// `session` as a cache trimming to `keep` gives it back.
fn kept(session: &CachedSession, keep: Keep) -> CachedSession {
    let cache = SessionCache::new(1, keep);
    cache.reset(true);
    cache.insert(&key("kept"), session, cache.ticket());
    cache.get(&key("kept")).expect("kept")
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
    let lean = kept(&full, Keep::default());
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

    let both = kept(
        &full,
        Keep {
            id_token: true,
            claims: true,
        },
    );
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
    let claims_only = kept(
        &old,
        Keep {
            id_token: false,
            claims: true,
        },
    );
    assert_eq!(claims_only.record.id_token, "it");
}

#[test]
fn every_kept_text_comes_back_whole_and_in_its_place() {
    let full = CachedSession {
        record: Arc::new(SessionRecord {
            subject: "a".repeat(36),
            idp_session_id: String::new(),
            access_token: "t".repeat(664),
            id_token: "i".repeat(900),
            refresh_token: "r".repeat(700),
            access_token_expires_at: 0,
            created_at: i64::MIN,
            last_active_at: i64::MAX,
            claims: Default::default(),
            claims_json: "{\"é\":\"ü\"}".into(),
        }),
        sealed_by_old_key: false,
        complete: true,
    };
    let all = Keep {
        id_token: true,
        claims: true,
    };
    let back = kept(&full, all);
    let expected = SessionRecord {
        refresh_token: String::new(),
        ..(*full.record).clone()
    };
    assert_eq!(*back.record, expected);
    assert!(!back.complete && !back.sealed_by_old_key);
}

#[test]
fn keys_of_other_namespaces_or_shapes_are_other_entries() {
    let cache = live_cache(10);
    let (default, corp) = (key("a"), key_in("corp:", "a"));
    cache.insert(&default, &session("default's"), cache.ticket());
    assert!(
        cache.get(&corp).is_none(),
        "one hash under another provider's namespace is another session"
    );
    cache.insert(&corp, &session("corp's"), cache.ticket());
    assert_eq!(cache.get(&default).unwrap().record.subject, "default's");
    assert_eq!(cache.get(&corp).unwrap().record.subject, "corp's");
    cache.invalidated(&[&corp]);
    assert!(cache.get(&corp).is_none());
    assert_eq!(cache.get(&default).unwrap().record.subject, "default's");

    // Only the lower-case hex `Sessions` writes names an entry: another spelling of the same
    // hash is another store key, never served this one's session.
    let upper = format!("session:{}", default["session:".len()..].to_uppercase());
    assert!(cache.get(&upper).is_none());
    for odd in [upper.as_str(), "session:", "session:abc", "login:a", ""] {
        cache.insert(odd, &session("odd"), cache.ticket());
        assert!(cache.get(odd).is_none(), "{odd:?} is not a session key");
    }
    assert_eq!(cache.len(), 1, "default's session alone");
}

#[test]
fn an_invalidation_of_a_key_never_cached_still_stops_a_racing_read() {
    let cache = live_cache(10);
    let corp = key_in("corp:", "a");
    let ticket = cache.ticket();
    // A namespace this cache has not seen yet: no entry, but the change is remembered.
    cache.invalidated(&[&corp]);
    cache.insert(&corp, &session("alice"), ticket);
    assert!(cache.get(&corp).is_none());
}

#[test]
fn an_entry_stays_small() {
    // The map's bucket: key and entry inline; the texts are one allocation besides. Growing it
    // costs about 1.6 times as much per cached session (the map is 60-87 % full).
    assert_eq!(std::mem::size_of::<EntryKey>(), 33);
    assert!(std::mem::size_of::<(EntryKey, CompactSession)>() <= 104);
}

#[test]
fn a_session_key_is_read_back_to_its_namespace_and_hash_or_not_at_all() {
    let hash = crate::crypto::labelled_hash("session id", b"a");
    assert_eq!(split_session_key(&key("a")), Some(("", hash)));
    assert_eq!(
        split_session_key(&key_in("corp:", "a")),
        Some(("corp:", hash))
    );
    let good = key("a");
    for position in "session:".len()..good.len() {
        for odd in ["g", "A", "F", "/", ":", " ", "é"] {
            let mut spelled = good.clone();
            spelled.replace_range(position..=position, odd);
            assert_eq!(split_session_key(&spelled), None, "{spelled}");
        }
    }
    for other in ["", "session:", "login:", &good[..good.len() - 1]] {
        assert_eq!(split_session_key(other), None, "{other}");
    }
}
