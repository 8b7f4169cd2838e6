//! The `SessionStore` conformance suite: one set of cases (`suite`), run against every store
//! implementation (`memory::*`, and `RedisStore` against one server `redis::*`, a Redis Cluster
//! `cluster::*`, a Sentinel-watched master `sentinel::*` and one behind `requirepass`
//! `sentinel_auth::*`), plus Redis-only cases for what only a networked store can do wrong (key
//! prefixes, an unreachable or hung server, a server restarted under the pool, a missing or wrong
//! master password).
//!
//! The Redis cases start their own `redis-server`s on free loopback ports (never the system
//! instance) and kill them when done. They FAIL, not skip, when `redis-server` or `redis-cli` is not
//! on PATH: `scripts/install-deps` installs them.
//!
//! Time: the memory store reads `tokio::time::Instant`, so its cases run on a paused clock and
//! `sleep` advances instantly; the Redis cases use real, short TTLs.

mod support;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oidc_authz::session::memory::MemoryStore;
use oidc_authz::session::redis::{RedisStore, RedisTls, RedisTopology};
use oidc_authz::session::store::{SessionStore, StoreError};
use support::redis::{
    REDIS_COMMAND_TIMEOUT, RedisServer, ReplyDroppingProxy, SENTINEL_ACL_PASSWORD,
    SENTINEL_ACL_USER, SENTINEL_MASTER_NAME, SENTINEL_MASTER_PASSWORD, TlsRedis, command, commands,
    free_port, shared_cluster, shared_redis, shared_sentinel, shared_sentinel_with_password,
    shared_tls_redis, shared_tls_sentinel,
};

/// TTLs for one store: `short` is what the expiry cases wait out, `long` never expires during a test.
#[derive(Clone, Copy)]
struct Timing {
    short: Duration,
    long: Duration,
}

const MEMORY_TIMING: Timing = Timing {
    short: Duration::from_secs(10),
    long: Duration::from_secs(3600),
};

const REDIS_TIMING: Timing = Timing {
    short: Duration::from_millis(300),
    long: Duration::from_secs(60),
};

/// Upper bound on any single store call in the suite: a hang fails the test instead of stalling it.
const CALL_BOUND: Duration = Duration::from_secs(5);

async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> T {
    match tokio::time::timeout(CALL_BOUND, call).await {
        Ok(result) => result,
        Err(_) => panic!("{what} did not return within {CALL_BOUND:?}"),
    }
}

/// The cases, each written once against `dyn SessionStore`.
mod suite {
    use super::*;

    async fn get(store: &dyn SessionStore, key: &str) -> Option<Vec<u8>> {
        bounded("get", store.get(key)).await.expect("get")
    }

    async fn put(store: &dyn SessionStore, key: &str, value: &[u8], ttl: Duration) {
        bounded("put", store.put(key, value.to_vec(), ttl))
            .await
            .expect("put");
    }

    async fn take_set_sorted(store: &dyn SessionStore, key: &str) -> Vec<String> {
        let mut members = bounded("take_set", store.take_set(key))
            .await
            .expect("take_set");
        members.sort();
        members
    }

    /// Waits a little longer than `ttl`; on the paused clock this returns at once.
    async fn outlive(ttl: Duration) {
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    }

    pub async fn round_trip_binary_values(store: Arc<dyn SessionStore>, t: Timing) {
        let store = &*store;
        let every_byte: Vec<u8> = (0..=255u8).collect();
        let big: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 251) as u8).collect();
        let cases: [(&str, &[u8]); 5] = [
            ("bin:every-byte", &every_byte),
            ("bin:nul-and-crlf", b"\0\r\n\0$-1\r\n*3\r\n"),
            ("bin:invalid-utf8", &[0xff, 0xfe, 0xc3, 0x28, 0x80]),
            ("bin:empty", b""),
            ("bin:big", &big),
        ];
        for (key, value) in cases {
            put(store, key, value, t.long).await;
        }
        for (key, value) in cases {
            assert_eq!(get(store, key).await.as_deref(), Some(value), "{key}");
        }
        // Keys are distinct strings, including ones that differ only in case or by a suffix.
        put(store, "case:k", b"lower", t.long).await;
        put(store, "case:K", b"upper", t.long).await;
        put(store, "case:k2", b"suffix", t.long).await;
        assert_eq!(get(store, "case:k").await.as_deref(), Some(&b"lower"[..]));
        assert_eq!(get(store, "case:K").await.as_deref(), Some(&b"upper"[..]));
        assert_eq!(get(store, "never-written").await, None);
    }

    pub async fn put_overwrites_value_and_ttl(store: Arc<dyn SessionStore>, t: Timing) {
        let store = &*store;
        put(store, "over:k", b"first", t.long).await;
        put(store, "over:k", b"second", t.long).await;
        assert_eq!(get(store, "over:k").await.as_deref(), Some(&b"second"[..]));
        // The overwrite's TTL replaces the old one, in both directions.
        put(store, "over:k", b"third", t.short).await;
        outlive(t.short).await;
        assert_eq!(get(store, "over:k").await, None, "shorter TTL applied");
        put(store, "over:j", b"short", t.short).await;
        put(store, "over:j", b"long", t.long).await;
        outlive(t.short).await;
        assert_eq!(get(store, "over:j").await.as_deref(), Some(&b"long"[..]));
    }

    pub async fn values_expire_after_their_ttl(store: Arc<dyn SessionStore>, t: Timing) {
        let store = &*store;
        let written = tokio::time::Instant::now();
        put(store, "ttl:k", b"v", t.short).await;
        put(store, "ttl:long", b"v", t.long).await;
        if written.elapsed() < t.short / 2 {
            // Skipped only if the machine was too slow to read back before the TTL could pass.
            assert_eq!(get(store, "ttl:k").await.as_deref(), Some(&b"v"[..]));
        }
        outlive(t.short).await;
        assert_eq!(get(store, "ttl:k").await, None, "get after expiry");
        assert_eq!(
            bounded("take", store.take("ttl:k")).await.expect("take"),
            None,
            "take after expiry"
        );
        assert_eq!(get(store, "ttl:long").await.as_deref(), Some(&b"v"[..]));
        // An expired key can be written again.
        put(store, "ttl:k", b"again", t.long).await;
        assert_eq!(get(store, "ttl:k").await.as_deref(), Some(&b"again"[..]));
    }

    pub async fn take_returns_once_and_removes(store: Arc<dyn SessionStore>, t: Timing) {
        let store = &*store;
        put(store, "take:k", b"single-use", t.long).await;
        assert_eq!(
            bounded("take", store.take("take:k")).await.expect("take"),
            Some(b"single-use".to_vec())
        );
        assert_eq!(
            bounded("take", store.take("take:k")).await.expect("take"),
            None
        );
        assert_eq!(get(store, "take:k").await, None);
        assert_eq!(
            bounded("take", store.take("take:missing"))
                .await
                .expect("take"),
            None
        );
    }

    pub async fn concurrent_takes_have_one_winner(store: Arc<dyn SessionStore>, t: Timing) {
        const TAKERS: usize = 20;
        for round in 0..5 {
            let key = format!("race:take:{round}");
            put(&*store, &key, format!("value-{round}").as_bytes(), t.long).await;
            let barrier = Arc::new(tokio::sync::Barrier::new(TAKERS));
            let tasks: Vec<_> = (0..TAKERS)
                .map(|_| {
                    let (store, key, barrier) = (Arc::clone(&store), key.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        bounded("take", store.take(&key)).await
                    })
                })
                .collect();
            let mut winners = Vec::new();
            for task in tasks {
                if let Some(value) = task.await.expect("task").expect("take") {
                    winners.push(value);
                }
            }
            assert_eq!(
                winners,
                vec![format!("value-{round}").into_bytes()],
                "round {round}: exactly one take wins"
            );
        }
    }

    pub async fn put_if_absent_semantics(store: Arc<dyn SessionStore>, t: Timing) {
        let store = &*store;
        let pia = |key: &'static str, value: &'static [u8], ttl: Duration| async move {
            bounded(
                "put_if_absent",
                store.put_if_absent(key, value.to_vec(), ttl),
            )
            .await
            .expect("put_if_absent")
        };
        assert!(pia("pia:k", b"first", t.long).await, "absent: stored");
        assert!(!pia("pia:k", b"second", t.long).await, "present: refused");
        assert_eq!(get(store, "pia:k").await.as_deref(), Some(&b"first"[..]));

        // Free again after delete...
        bounded("delete", store.delete("pia:k"))
            .await
            .expect("delete");
        assert!(pia("pia:k", b"third", t.long).await, "after delete");
        assert_eq!(get(store, "pia:k").await.as_deref(), Some(&b"third"[..]));

        // ...after take...
        bounded("take", store.take("pia:k")).await.expect("take");
        assert!(pia("pia:k", b"fourth", t.short).await, "after take");

        // ...and after expiry.
        assert!(!pia("pia:k", b"too-early", t.long).await);
        outlive(t.short).await;
        assert!(pia("pia:k", b"fifth", t.long).await, "after expiry");
        assert_eq!(get(store, "pia:k").await.as_deref(), Some(&b"fifth"[..]));

        // A value written by `put` counts as present.
        put(store, "pia:put", b"p", t.long).await;
        assert!(!pia("pia:put", b"q", t.long).await);
    }

    pub async fn concurrent_put_if_absent_has_one_winner(store: Arc<dyn SessionStore>, t: Timing) {
        const WRITERS: usize = 20;
        for round in 0..5 {
            let key = format!("race:lock:{round}");
            let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
            let tasks: Vec<_> = (0..WRITERS)
                .map(|writer| {
                    let (store, key, barrier) = (Arc::clone(&store), key.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        let stored = bounded(
                            "put_if_absent",
                            store.put_if_absent(&key, vec![writer as u8], t.long),
                        )
                        .await
                        .expect("put_if_absent");
                        stored.then_some(writer as u8)
                    })
                })
                .collect();
            let mut winners = Vec::new();
            for task in tasks {
                winners.extend(task.await.expect("task"));
            }
            assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
            assert_eq!(get(&*store, &key).await, Some(winners));
        }
    }

    pub async fn put_if_present_semantics(store: Arc<dyn SessionStore>, t: Timing) {
        let store = &*store;
        let pip = |key: &'static str, value: &'static [u8], ttl: Duration| async move {
            bounded(
                "put_if_present",
                store.put_if_present(key, value.to_vec(), ttl),
            )
            .await
            .expect("put_if_present")
        };
        assert!(!pip("pip:k", b"never", t.long).await, "absent: refused");
        assert_eq!(get(store, "pip:k").await, None, "and nothing written");

        put(store, "pip:k", b"first", t.long).await;
        assert!(pip("pip:k", b"second", t.long).await, "present: replaced");
        assert_eq!(get(store, "pip:k").await.as_deref(), Some(&b"second"[..]));

        // The TTL is replaced too, in both directions.
        assert!(pip("pip:k", b"short", t.short).await);
        put(store, "pip:j", b"short", t.short).await;
        assert!(pip("pip:j", b"long", t.long).await);
        outlive(t.short).await;
        assert_eq!(get(store, "pip:k").await, None, "shorter TTL applied");
        assert_eq!(get(store, "pip:j").await.as_deref(), Some(&b"long"[..]));

        // Expired, deleted or taken: absent, and not brought back.
        assert!(!pip("pip:k", b"after-expiry", t.long).await);
        assert_eq!(get(store, "pip:k").await, None);
        bounded("delete", store.delete("pip:j"))
            .await
            .expect("delete");
        assert!(!pip("pip:j", b"after-delete", t.long).await);
        assert_eq!(get(store, "pip:j").await, None);
        put(store, "pip:t", b"v", t.long).await;
        bounded("take", store.take("pip:t")).await.expect("take");
        assert!(!pip("pip:t", b"after-take", t.long).await);
        assert_eq!(get(store, "pip:t").await, None);
    }

    pub async fn put_if_present_racing_delete_never_revives(
        store: Arc<dyn SessionStore>,
        t: Timing,
    ) {
        const WRITERS: usize = 8;
        for round in 0..5 {
            let key = format!("race:pip:{round}");
            put(&*store, &key, b"live", t.long).await;
            let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS + 1));
            let mut tasks: Vec<_> = (0..WRITERS)
                .map(|writer| {
                    let (store, key, barrier) = (Arc::clone(&store), key.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        bounded(
                            "put_if_present",
                            store.put_if_present(&key, vec![writer as u8], t.long),
                        )
                        .await
                        .map(drop)
                    })
                })
                .collect();
            let (deleter, deleted_key) = (Arc::clone(&store), key.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                bounded("delete", deleter.delete(&deleted_key)).await
            }));
            for task in tasks {
                task.await.expect("task").expect("store call");
            }
            assert_eq!(
                get(&*store, &key).await,
                None,
                "round {round}: the delete is never undone"
            );
        }
    }

    pub async fn delete_if_equals_semantics(store: Arc<dyn SessionStore>, t: Timing) {
        let store = &*store;
        let die = |key: &'static str, expected: &'static [u8]| async move {
            bounded("delete_if_equals", store.delete_if_equals(key, expected))
                .await
                .expect("delete_if_equals")
        };
        assert!(!die("die:missing", b"x").await, "missing: nothing deleted");
        assert_eq!(get(store, "die:missing").await, None, "and nothing made");

        let holder: &[u8] = b"holder\0\r\n\xff";
        put(store, "die:lock", holder, t.long).await;
        for other in [&b"other"[..], b"holder", b"holder\0\r\n\xff!", b""] {
            assert!(!die("die:lock", other).await, "{other:?} is not the holder");
        }
        assert_eq!(
            get(store, "die:lock").await.as_deref(),
            Some(holder),
            "kept"
        );
        assert!(die("die:lock", holder).await, "the holder deletes");
        assert_eq!(get(store, "die:lock").await, None);
        assert!(!die("die:lock", holder).await, "once");

        // An expired value is absent: nothing to compare, nothing deleted.
        put(store, "die:short", b"h", t.short).await;
        outlive(t.short).await;
        assert!(!die("die:short", b"h").await);
        // Another holder's value, written after the first one's expired, stays.
        put(store, "die:short", b"next", t.long).await;
        assert!(!die("die:short", b"h").await);
        assert_eq!(get(store, "die:short").await.as_deref(), Some(&b"next"[..]));
    }

    pub async fn sets_collect_members_and_take_empties(store: Arc<dyn SessionStore>, t: Timing) {
        let store = &*store;
        for member in ["session:c", "session:a", "session:b", "session:a", "ü/ß 😀"] {
            bounded("add_to_set", store.add_to_set("set:k", member, t.long))
                .await
                .expect("add_to_set");
        }
        assert_eq!(
            take_set_sorted(store, "set:k").await,
            ["session:a", "session:b", "session:c", "ü/ß 😀"],
            "members once each"
        );
        assert!(take_set_sorted(store, "set:k").await.is_empty(), "emptied");
        assert!(take_set_sorted(store, "set:missing").await.is_empty());

        // Sets under different keys are separate.
        bounded("add_to_set", store.add_to_set("set:x", "1", t.long))
            .await
            .expect("add_to_set");
        bounded("add_to_set", store.add_to_set("set:y", "2", t.long))
            .await
            .expect("add_to_set");
        assert_eq!(take_set_sorted(store, "set:x").await, ["1"]);
        assert_eq!(take_set_sorted(store, "set:y").await, ["2"]);

        // A set can be built again after it was taken.
        bounded("add_to_set", store.add_to_set("set:k", "again", t.long))
            .await
            .expect("add_to_set");
        assert_eq!(take_set_sorted(store, "set:k").await, ["again"]);
    }

    pub async fn set_ttl_only_lengthens(store: Arc<dyn SessionStore>, t: Timing) {
        let store = &*store;
        let add = |key: &'static str, member: &'static str, ttl: Duration| async move {
            bounded("add_to_set", store.add_to_set(key, member, ttl))
                .await
                .expect("add_to_set");
        };
        // A set on its own expires with its TTL.
        add("setttl:alone", "m", t.short).await;
        outlive(t.short).await;
        assert!(take_set_sorted(store, "setttl:alone").await.is_empty());

        // Long then short: the short add must not shorten the set's life.
        add("setttl:long-short", "a", t.long).await;
        add("setttl:long-short", "b", t.short).await;
        // Short then long: the long add lengthens it.
        add("setttl:short-long", "a", t.short).await;
        add("setttl:short-long", "b", t.long).await;
        outlive(t.short).await;
        assert_eq!(
            take_set_sorted(store, "setttl:long-short").await,
            ["a", "b"]
        );
        assert_eq!(
            take_set_sorted(store, "setttl:short-long").await,
            ["a", "b"]
        );

        // An expired set starts afresh: old members are gone.
        add("setttl:reborn", "old", t.short).await;
        outlive(t.short).await;
        add("setttl:reborn", "new", t.long).await;
        assert_eq!(take_set_sorted(store, "setttl:reborn").await, ["new"]);
    }

    pub async fn concurrent_take_set_partitions_members(store: Arc<dyn SessionStore>, t: Timing) {
        const TAKERS: usize = 8;
        let expected: Vec<String> = (0..30).map(|i| format!("m{i:02}")).collect();
        for round in 0..3 {
            let key = format!("race:set:{round}");
            for member in &expected {
                bounded("add_to_set", store.add_to_set(&key, member, t.long))
                    .await
                    .expect("add_to_set");
            }
            let barrier = Arc::new(tokio::sync::Barrier::new(TAKERS));
            let tasks: Vec<_> = (0..TAKERS)
                .map(|_| {
                    let (store, key, barrier) = (Arc::clone(&store), key.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        bounded("take_set", store.take_set(&key)).await
                    })
                })
                .collect();
            let mut all = Vec::new();
            let mut non_empty = 0;
            for task in tasks {
                let members = task.await.expect("task").expect("take_set");
                non_empty += usize::from(!members.is_empty());
                all.extend(members);
            }
            all.sort();
            assert_eq!(all, expected, "round {round}: every member exactly once");
            assert_eq!(non_empty, 1, "round {round}: one take_set got them all");
        }
    }

    pub async fn remove_from_set_removes_one_member(store: Arc<dyn SessionStore>, t: Timing) {
        let store = &*store;
        let add = |key: &'static str, member: &'static str, ttl: Duration| async move {
            bounded("add_to_set", store.add_to_set(key, member, ttl))
                .await
                .expect("add_to_set");
        };
        let remove = |key: &'static str, member: &'static str| async move {
            bounded("remove_from_set", store.remove_from_set(key, member))
                .await
                .expect("remove_from_set");
        };
        for member in ["session:a", "session:b", "session:c"] {
            add("srem:k", member, t.long).await;
        }
        remove("srem:k", "session:b").await;
        remove("srem:k", "session:b").await; // twice: nothing left to remove, no error
        remove("srem:k", "never-added").await;
        remove("srem:missing", "session:a").await; // no such set: no error, and none made
        assert!(take_set_sorted(store, "srem:missing").await.is_empty());
        assert_eq!(
            take_set_sorted(store, "srem:k").await,
            ["session:a", "session:c"],
            "only the removed member is gone"
        );
        // Other sets keep the member.
        add("srem:x", "m", t.long).await;
        add("srem:y", "m", t.long).await;
        remove("srem:x", "m").await;
        assert!(take_set_sorted(store, "srem:x").await.is_empty());
        assert_eq!(take_set_sorted(store, "srem:y").await, ["m"]);

        // Removing does not lengthen a set's life...
        add("srem:short", "a", t.short).await;
        add("srem:short", "b", t.short).await;
        remove("srem:short", "a").await;
        outlive(t.short).await;
        assert!(take_set_sorted(store, "srem:short").await.is_empty());
        // ...and a set emptied by removals is gone: a later add starts it with its own TTL.
        add("srem:emptied", "a", t.long).await;
        remove("srem:emptied", "a").await;
        add("srem:emptied", "b", t.short).await;
        outlive(t.short).await;
        assert!(take_set_sorted(store, "srem:emptied").await.is_empty());
    }

    pub async fn delete_is_idempotent(store: Arc<dyn SessionStore>, t: Timing) {
        let store = &*store;
        bounded("delete", store.delete("del:missing"))
            .await
            .expect("delete of a missing key");
        put(store, "del:k", b"v", t.long).await;
        put(store, "del:other", b"w", t.long).await;
        bounded("delete", store.delete("del:k"))
            .await
            .expect("delete");
        bounded("delete", store.delete("del:k"))
            .await
            .expect("second delete");
        assert_eq!(get(store, "del:k").await, None);
        assert_eq!(get(store, "del:other").await.as_deref(), Some(&b"w"[..]));
        // Deleting a set removes its members.
        bounded("add_to_set", store.add_to_set("del:set", "m", t.long))
            .await
            .expect("add_to_set");
        bounded("delete", store.delete("del:set"))
            .await
            .expect("delete set");
        assert!(take_set_sorted(store, "del:set").await.is_empty());
        // An expired key deletes fine too.
        put(store, "del:expired", b"v", t.short).await;
        outlive(t.short).await;
        bounded("delete", store.delete("del:expired"))
            .await
            .expect("delete expired");
    }

    async fn push(store: &dyn SessionStore, key: &str, member: &str, ttl: Duration) -> Vec<String> {
        bounded("push_bounded", store.push_bounded(key, member, 3, ttl))
            .await
            .expect("push_bounded")
    }

    pub async fn bounded_lists_keep_the_newest_and_return_the_dropped(
        store: Arc<dyn SessionStore>,
        t: Timing,
    ) {
        let store = &*store;
        for member in ["a", "b", "c"] {
            assert!(push(store, "list:k", member, t.long).await.is_empty());
        }
        assert_eq!(push(store, "list:k", "d", t.long).await, ["a"]);
        // A member pushed again moves to the head instead of being listed twice.
        assert!(push(store, "list:k", "b", t.long).await.is_empty());
        assert_eq!(push(store, "list:k", "e", t.long).await, ["c"]);
        assert_eq!(push(store, "list:k", "f", t.long).await, ["d"]);
        // Several dropped at once (a smaller bound), oldest first.
        let dropped = bounded("push_bounded", store.push_bounded("list:k", "g", 1, t.long))
            .await
            .expect("push_bounded");
        assert_eq!(dropped, ["b", "e", "f"]);
        // Lists are separate, expire with their TTL, and are deleted like any key.
        assert!(push(store, "list:other", "a", t.long).await.is_empty());
        for member in ["a", "b", "c"] {
            push(store, "list:short", member, t.short).await;
        }
        outlive(t.short).await;
        assert!(
            push(store, "list:short", "x", t.long).await.is_empty(),
            "expired"
        );
        bounded("delete", store.delete("list:other"))
            .await
            .expect("delete");
        for member in ["x", "y", "z"] {
            assert!(push(store, "list:other", member, t.long).await.is_empty());
        }
    }

    pub async fn concurrent_pushes_drop_each_member_once(store: Arc<dyn SessionStore>, t: Timing) {
        const PUSHERS: usize = 8;
        const PER_PUSHER: usize = 5;
        let barrier = Arc::new(tokio::sync::Barrier::new(PUSHERS));
        let tasks: Vec<_> = (0..PUSHERS)
            .map(|pusher| {
                let (store, barrier) = (Arc::clone(&store), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let mut dropped = Vec::new();
                    for index in 0..PER_PUSHER {
                        let member = format!("m{pusher}-{index}");
                        dropped.extend(push(&*store, "race:list", &member, t.long).await);
                    }
                    dropped
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("task"));
        }
        // Three fresh members push out the three still listed.
        for member in ["last-1", "last-2", "last-3"] {
            all.extend(push(&*store, "race:list", member, t.long).await);
        }
        all.sort();
        let mut expected: Vec<String> = (0..PUSHERS)
            .flat_map(|p| (0..PER_PUSHER).map(move |i| format!("m{p}-{i}")))
            .collect();
        expected.sort();
        assert_eq!(all, expected, "every member dropped exactly once");
    }

    pub async fn ping_answers(store: Arc<dyn SessionStore>, _t: Timing) {
        bounded("ping", store.ping()).await.expect("ping");
    }
}

/// Generates `memory::<case>`, `redis::<case>` (one server), `cluster::<case>` (a three-master Redis
/// Cluster), `sentinel::<case>` (a master found through Sentinel) and `sentinel_auth::<case>` (the
/// same, the master behind a password) for every case of the suite.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(start_paused = true)]
                async fn $case() {
                    let store: std::sync::Arc<dyn super::SessionStore> =
                        std::sync::Arc::new(super::MemoryStore::new());
                    super::suite::$case(store, super::MEMORY_TIMING).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let server = super::shared_redis();
                    // Each case has its own prefix, so cases sharing the server cannot collide.
                    let store = server.store(concat!("conformance:", stringify!($case), ":"));
                    super::suite::$case(store, super::REDIS_TIMING).await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let cluster = super::shared_cluster();
                    // Prefixes differ per case, so the cases' keys spread over the three masters.
                    let store = cluster.store(concat!("conformance:", stringify!($case), ":"));
                    super::suite::$case(store, super::REDIS_TIMING).await;
                }
            )*
        }
        mod sentinel {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let setup = super::shared_sentinel();
                    let store = setup.store(concat!("conformance:", stringify!($case), ":"));
                    super::suite::$case(store, super::REDIS_TIMING).await;
                }
            )*
        }
        mod tls {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    // `rediss://` to a server with the test's own CA (`redis.ca_file`).
                    let server = super::shared_tls_redis();
                    let store = server.store(concat!("conformance:", stringify!($case), ":"));
                    super::suite::$case(store, super::REDIS_TIMING).await;
                }
            )*
        }
        mod sentinel_tls {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    // The sentinel and the master it names, both over TLS.
                    let setup = super::shared_tls_sentinel();
                    let store = setup.store(concat!("conformance:", stringify!($case), ":"));
                    super::suite::$case(store, super::REDIS_TIMING).await;
                }
            )*
        }
        mod sentinel_auth {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    // The master has `requirepass`; the store logs in with
                    // `redis.sentinel.password`.
                    let setup = super::shared_sentinel_with_password();
                    let store = setup.store(concat!("conformance:", stringify!($case), ":"));
                    super::suite::$case(store, super::REDIS_TIMING).await;
                }
            )*
        }
    };
}

conformance!(
    round_trip_binary_values,
    put_overwrites_value_and_ttl,
    values_expire_after_their_ttl,
    take_returns_once_and_removes,
    concurrent_takes_have_one_winner,
    put_if_absent_semantics,
    concurrent_put_if_absent_has_one_winner,
    put_if_present_semantics,
    put_if_present_racing_delete_never_revives,
    delete_if_equals_semantics,
    sets_collect_members_and_take_empties,
    set_ttl_only_lengthens,
    concurrent_take_set_partitions_members,
    remove_from_set_removes_one_member,
    delete_is_idempotent,
    bounded_lists_keep_the_newest_and_return_the_dropped,
    concurrent_pushes_drop_each_member_once,
    ping_answers,
);

// ---------------------------------------------------------------------------------------------
// Redis only.

/// Runs every operation once and checks each fails with `Unavailable` within about `timeout`.
async fn every_operation_is_unavailable(
    store: &dyn SessionStore,
    timeout: Duration,
    context: &str,
) {
    let slack = Duration::from_millis(1500);
    let ttl = Duration::from_secs(60);
    macro_rules! expect_unavailable {
        ($name:literal, $call:expr) => {{
            let started = Instant::now();
            let result = match tokio::time::timeout(timeout + slack, $call).await {
                Ok(result) => result,
                Err(_) => panic!("{context}: {} hung past {:?}", $name, timeout + slack),
            };
            let elapsed = started.elapsed();
            match result {
                Err(StoreError::Unavailable(message)) => {
                    assert!(
                        !message.is_empty(),
                        "{context}: {} gave an empty reason",
                        $name
                    )
                }
                #[allow(unreachable_patterns)]
                other => panic!("{context}: {} returned {other:?}", $name),
            }
            assert!(
                elapsed <= timeout + slack,
                "{context}: {} took {elapsed:?}",
                $name
            );
        }};
    }
    expect_unavailable!("ping", store.ping());
    expect_unavailable!("put", store.put("k", b"v".to_vec(), ttl));
    expect_unavailable!(
        "put_if_absent",
        store.put_if_absent("k", b"v".to_vec(), ttl)
    );
    expect_unavailable!(
        "put_if_present",
        store.put_if_present("k", b"v".to_vec(), ttl)
    );
    expect_unavailable!("get", store.get("k"));
    expect_unavailable!("take", store.take("k"));
    expect_unavailable!("delete", store.delete("k"));
    expect_unavailable!("delete_if_equals", store.delete_if_equals("k", b"v"));
    expect_unavailable!("add_to_set", store.add_to_set("s", "m", ttl));
    expect_unavailable!("remove_from_set", store.remove_from_set("s", "m"));
    expect_unavailable!("take_set", store.take_set("s"));
    expect_unavailable!("push_bounded", store.push_bounded("l", "m", 3, ttl));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_key_prefixes_isolate_stores() {
    let server = shared_redis();
    let a = server.store("isolation-a:");
    let b = server.store("isolation-b:");
    let ttl = Duration::from_secs(60);
    a.put("k", b"from-a".to_vec(), ttl).await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), None);
    assert!(b.put_if_absent("k", b"from-b".to_vec(), ttl).await.unwrap());
    assert_eq!(b.take("k").await.unwrap(), Some(b"from-b".to_vec()));
    b.delete("k").await.unwrap();
    assert_eq!(a.get("k").await.unwrap(), Some(b"from-a".to_vec()));

    a.add_to_set("s", "a-member", ttl).await.unwrap();
    assert!(b.take_set("s").await.unwrap().is_empty());
    assert_eq!(a.take_set("s").await.unwrap(), ["a-member"]);

    // The prefix is literally prepended to the key.
    let raw = server.store("");
    assert_eq!(
        raw.get("isolation-a:k").await.unwrap(),
        Some(b"from-a".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreachable_is_unavailable_quickly() {
    // A port nobody listens on: bound once to get it, then released.
    let port = free_port();
    let timeout = Duration::from_millis(300);
    let store = RedisStore::new(
        &format!("redis://127.0.0.1:{port}/"),
        "unreachable:",
        4,
        timeout,
    )
    .expect("the pool connects lazily, so building it succeeds");
    every_operation_is_unavailable(&store, timeout, "connection refused").await;
    // And again, with whatever the pool kept from the first round.
    every_operation_is_unavailable(&store, timeout, "connection refused, second round").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_that_never_answers_times_out() {
    // Accepts TCP connections (the kernel completes the handshake) but never replies.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let timeout = Duration::from_millis(300);
    let store =
        RedisStore::new(&format!("redis://127.0.0.1:{port}/"), "hung:", 4, timeout).expect("pool");
    every_operation_is_unavailable(&store, timeout, "silent server").await;
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_is_survived() {
    let server = RedisServer::start(); // its own: this case stops it
    let store = server.store("restart:");
    let ttl = Duration::from_secs(60);

    // Fill the pool with several live connections first.
    let writes: Vec<_> = (0..6)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.put(&format!("k{i}"), vec![i], ttl).await })
        })
        .collect();
    for write in writes {
        write.await.unwrap().expect("put before the restart");
    }

    server.stop();
    every_operation_is_unavailable(&*store, REDIS_COMMAND_TIMEOUT, "while Redis is down").await;

    server.restart();
    // Every pooled connection is now dead. The first command after the restart must already work:
    // a stale connection is the pool's to notice, not a request's to fail on.
    let mut failures = Vec::new();
    for i in 0..10u8 {
        if let Err(error) = bounded("put", store.put(&format!("after{i}"), vec![i], ttl)).await {
            failures.push(format!("sequential put {i}: {error}"));
        }
    }
    let concurrent: Vec<_> = (0..10u8)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.get(&format!("after{i}")).await })
        })
        .collect();
    for (i, task) in concurrent.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(value) if failures.is_empty() => assert_eq!(value, Some(vec![i as u8])),
            Ok(_) => {}
            Err(error) => failures.push(format!("concurrent get {i}: {error}")),
        }
    }
    assert!(failures.is_empty(), "after restart: {failures:#?}");
    // Nothing survives (no persistence), and everything works.
    assert_eq!(store.get("k0").await.unwrap(), None);
    store.ping().await.expect("ping after restart");
    store.add_to_set("s", "m", ttl).await.unwrap();
    assert_eq!(store.take_set("s").await.unwrap(), ["m"]);
}

/// A take whose reply is lost (the connection breaks after Redis ran it) must not be sent again:
/// the retry would find the value gone and answer "nothing there", so a back-channel logout would
/// answer 200 having deleted no session. The caller gets an error instead (and the IdP retries).
/// A read is still retried on a fresh connection, invisibly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_take_whose_reply_was_lost_is_an_error_not_a_retry() {
    let server = shared_redis();
    let proxy = ReplyDroppingProxy::start(server.port).await;
    let store = RedisStore::new(&proxy.url(), "lost-reply:", 4, REDIS_COMMAND_TIMEOUT).unwrap();
    let raw = server.store("lost-reply:");
    let ttl = Duration::from_secs(60);

    // The shared connection exists (and is reused) before each reply is lost.
    store.put("value", b"v".to_vec(), ttl).await.unwrap();
    proxy.drop_next_reply();
    assert_eq!(
        bounded("get", store.get("value"))
            .await
            .expect("a lost GET reply is retried"),
        Some(b"v".to_vec())
    );

    proxy.drop_next_reply();
    let taken = bounded("take", store.take("value")).await;
    assert!(
        matches!(taken, Err(StoreError::Unavailable(_))),
        "take: {taken:?}"
    );
    assert_eq!(raw.get("value").await.unwrap(), None, "GETDEL ran once");

    store.add_to_set("index", "session", ttl).await.unwrap();
    proxy.drop_next_reply();
    let members = bounded("take_set", store.take_set("index")).await;
    assert!(
        matches!(members, Err(StoreError::Unavailable(_))),
        "take_set: {members:?}"
    );
    assert!(raw.take_set("index").await.unwrap().is_empty(), "ran once");

    store.ping().await.expect("a fresh shared connection");
    proxy.drop_next_reply();
    let locked = bounded(
        "put_if_absent",
        store.put_if_absent("lock", b"me".to_vec(), ttl),
    )
    .await;
    assert!(
        matches!(locked, Err(StoreError::Unavailable(_))),
        "put_if_absent: {locked:?}"
    );
    assert_eq!(
        raw.get("lock").await.unwrap(),
        Some(b"me".to_vec()),
        "ran once"
    );

    // Releasing a lock and updating a present value are resent: the second send does what the
    // first did (or finds that done), never someone else's work.
    store.ping().await.expect("a fresh shared connection");
    proxy.drop_next_reply();
    bounded("delete_if_equals", store.delete_if_equals("lock", b"me"))
        .await
        .expect("a lost compare-and-delete reply is retried");
    assert_eq!(raw.get("lock").await.unwrap(), None, "released");
    store.put("session", b"v1".to_vec(), ttl).await.unwrap();
    proxy.drop_next_reply();
    let updated = bounded(
        "put_if_present",
        store.put_if_present("session", b"v2".to_vec(), ttl),
    )
    .await
    .expect("a lost SET XX reply is retried");
    assert!(updated, "the resent SET XX finds the key present");
    assert_eq!(raw.get("session").await.unwrap(), Some(b"v2".to_vec()));

    // And the store goes on working on a fresh connection.
    store.ping().await.expect("ping after the lost replies");
}

/// `rediss://` verifies the server: without the test's CA (`redis.ca_file`), or in plain text to
/// the TLS port, every operation is `Unavailable`, quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tls_verifies_the_server_certificate() {
    let server = shared_tls_redis();
    let timeout = Duration::from_millis(300);
    let single = RedisTopology::Single { url: server.url() };
    let untrusted = RedisStore::with_topology(&single, "tls-untrusted:", 4, timeout).unwrap();
    every_operation_is_unavailable(&untrusted, timeout, "a CA the system does not trust").await;
    let plain_url = format!("redis://127.0.0.1:{}/", server.tls_port);
    let plain = RedisStore::new(&plain_url, "tls-plain:", 4, timeout).unwrap();
    every_operation_is_unavailable(&plain, timeout, "plain text to the TLS port").await;

    let sentinel = shared_tls_sentinel();
    let topology = sentinel.setup.topology(0, None, None);
    let untrusted = RedisStore::with_topology(&topology, "tls-untrusted:", 4, timeout).unwrap();
    every_operation_is_unavailable(&untrusted, timeout, "sentinel: an untrusted CA").await;
}

/// The Sentinel TLS store writes to the master (read back over the master's plain test port).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_tls_store_writes_to_the_master() {
    let sentinel = shared_tls_sentinel();
    let store = sentinel.store("tls-master:");
    bounded(
        "put",
        store.put("k", b"v".to_vec(), Duration::from_secs(60)),
    )
    .await
    .expect("put");
    assert_eq!(
        command(sentinel.setup.master.port, &["GET", "tls-master:k"]),
        Some(vec!["v".to_owned()])
    );
}

/// A server with `tls-auth-clients yes` lets in only a client with a certificate of its CA
/// (`redis.cert_file`, `redis.key_file`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tls_client_certificate_is_presented() {
    let server = TlsRedis::start(true); // its own: it wants client certificates
    let timeout = Duration::from_millis(300);
    let single = RedisTopology::Single { url: server.url() };
    let without = RedisStore::with_tls(&single, &server.ca_only(), "mtls:", 4, timeout).unwrap();
    every_operation_is_unavailable(&without, timeout, "no client certificate").await;

    let with_certificate = RedisTls {
        ca_pem: Some(server.ca.pem("ca.crt")),
        client_pem: Some((server.ca.pem("client.crt"), server.ca.pem("client.key"))),
    };
    let store = RedisStore::with_tls(
        &single,
        &with_certificate,
        "mtls:",
        4,
        REDIS_COMMAND_TIMEOUT,
    )
    .unwrap();
    bounded(
        "put",
        store.put("k", b"v".to_vec(), Duration::from_secs(60)),
    )
    .await
    .expect("put with a client certificate");
    assert_eq!(
        bounded("get", store.get("k"))
            .await
            .expect("get")
            .as_deref(),
        Some(&b"v"[..])
    );
}

// ---------------------------------------------------------------------------------------------
// Redis Cluster and Sentinel only.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_keys_spread_over_every_master() {
    let cluster = shared_cluster();
    let store = cluster.store("spread:");
    let ttl = Duration::from_secs(60);
    // 40 keys of each kind land on all three masters (16384 slots split in three).
    for i in 0..40u8 {
        bounded("put", store.put(&format!("k{i}"), vec![i], ttl))
            .await
            .expect("put");
        bounded("add_to_set", store.add_to_set(&format!("s{i}"), "m", ttl))
            .await
            .expect("add_to_set");
    }
    for node in &cluster.nodes {
        let keys = command(node.port, &["DBSIZE"]).expect("DBSIZE");
        let count: u64 = keys[0].parse().expect("a number");
        assert!(count > 0, "the master on {} holds no keys", node.port);
    }
    for i in 0..40u8 {
        assert_eq!(
            bounded("take", store.take(&format!("k{i}"))).await.unwrap(),
            Some(vec![i])
        );
        assert_eq!(
            bounded("take_set", store.take_set(&format!("s{i}")))
                .await
                .unwrap(),
            ["m"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_unreachable_is_unavailable_quickly() {
    let timeout = Duration::from_millis(300);
    let urls = vec![
        format!("redis://127.0.0.1:{}", free_port()),
        format!("redis://127.0.0.1:{}", free_port()),
    ];
    let store = RedisStore::with_topology(&RedisTopology::Cluster { urls }, "c:", 4, timeout)
        .expect("the pool connects lazily");
    every_operation_is_unavailable(&store, timeout, "no cluster node listens").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_store_writes_to_the_master_in_its_db() {
    let setup = shared_sentinel();
    let topology = setup.topology(3, None, None);
    let store = RedisStore::with_topology(&topology, "db3:", 4, REDIS_COMMAND_TIMEOUT).unwrap();
    bounded(
        "put",
        store.put("k", b"v".to_vec(), Duration::from_secs(60)),
    )
    .await
    .expect("put");
    let replies = commands(
        setup.master.port,
        &[
            &["SELECT", "3"],
            &["GET", "db3:k"],
            &["SELECT", "0"],
            &["EXISTS", "db3:k"],
        ],
    )
    .expect("the master answers");
    assert_eq!(replies[1], ["v"], "written to db 3 of the master");
    assert_eq!(replies[3], ["0"], "not to db 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_problems_are_unavailable_quickly() {
    let setup = shared_sentinel();
    let timeout = Duration::from_millis(300);
    let unknown_master = RedisTopology::Sentinel {
        urls: setup.urls(),
        master_name: "no-such-master".into(),
        db: 0,
        username: None,
        password: None,
    };
    let store = RedisStore::with_topology(&unknown_master, "s:", 4, timeout).unwrap();
    every_operation_is_unavailable(&store, timeout, "unknown master name").await;

    let no_sentinel = RedisTopology::Sentinel {
        urls: vec![format!("redis://127.0.0.1:{}", free_port())],
        master_name: SENTINEL_MASTER_NAME.into(),
        db: 0,
        username: None,
        password: None,
    };
    let store = RedisStore::with_topology(&no_sentinel, "s:", 4, timeout).unwrap();
    every_operation_is_unavailable(&store, timeout, "no sentinel listens").await;
}

/// A master behind `requirepass`: the store logs in with the master password (or an ACL user and
/// its password) and writes there; without it, or with a wrong one, every operation is
/// `Unavailable`, quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_master_password_is_used_and_required() {
    let setup = shared_sentinel_with_password();
    let ttl = Duration::from_secs(60);
    for (username, password, prefix) in [
        (None, SENTINEL_MASTER_PASSWORD, "auth-default:"),
        (Some(SENTINEL_ACL_USER), SENTINEL_ACL_PASSWORD, "auth-acl:"),
    ] {
        let topology = setup.topology(2, username, Some(password));
        let store = RedisStore::with_topology(&topology, prefix, 4, REDIS_COMMAND_TIMEOUT).unwrap();
        bounded("ping", store.ping()).await.expect("ping");
        bounded("put", store.put("k", b"v".to_vec(), ttl))
            .await
            .expect("put");
        assert_eq!(
            bounded("get", store.get("k"))
                .await
                .expect("get")
                .as_deref(),
            Some(&b"v"[..])
        );
        let key = format!("{prefix}k");
        let replies = commands(
            setup.master.port,
            &[
                &["GET", &key],
                &["AUTH", SENTINEL_MASTER_PASSWORD],
                &["SELECT", "2"],
                &["GET", &key],
            ],
        )
        .expect("the master answers");
        assert!(
            replies[0][0].starts_with("-NOAUTH"),
            "the master wants a password: {replies:?}"
        );
        assert_eq!(replies[3], ["v"], "written to db 2 of the master");
    }

    let timeout = Duration::from_millis(300);
    for (username, password, context) in [
        (None, None, "no master password"),
        (None, Some("wrong-password"), "a wrong master password"),
        (
            Some(SENTINEL_ACL_USER),
            Some(SENTINEL_MASTER_PASSWORD),
            "the ACL user with another user's password",
        ),
        (
            Some("nobody"),
            Some(SENTINEL_ACL_PASSWORD),
            "an unknown ACL user",
        ),
    ] {
        let topology = setup.topology(0, username, password);
        let store = RedisStore::with_topology(&topology, "auth-refused:", 4, timeout).unwrap();
        every_operation_is_unavailable(&store, timeout, context).await;
    }
}

/// The hot path costs one round trip per command: no per-command `PING`/`UNWATCH` (a pool
/// checkout's recycle check), and a Redis restarted while the store was idle costs no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_commands_are_single_round_trips_and_idle_restarts_are_invisible() {
    let server = RedisServer::start(); // its own: this case restarts it
    let store = server.store("trips:");
    let ttl = Duration::from_secs(60);
    store.put("k", b"v".to_vec(), ttl).await.unwrap();
    support::redis::command(server.port, &["CONFIG", "RESETSTAT"]).expect("RESETSTAT");
    for _ in 0..20 {
        assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    }
    let stats = support::redis::command(server.port, &["INFO", "commandstats"])
        .expect("INFO")
        .join("\n");
    assert!(stats.contains("cmdstat_get:calls=20,"), "{stats}");
    assert!(
        !stats.contains("cmdstat_ping") && !stats.contains("cmdstat_unwatch"),
        "{stats}"
    );

    // Restarted while idle: the next command finds the shared connection dead and retries once.
    server.stop();
    server.restart();
    store
        .put("after", b"1".to_vec(), ttl)
        .await
        .expect("first command after an idle restart");
    assert_eq!(
        store.get("after").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
}
