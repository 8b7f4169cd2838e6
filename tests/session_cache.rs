//! The session cache (`session/cache.rs`) between replicas sharing a real Redis: a session served
//! from one replica's cache stops being served there within a second of being ended anywhere
//! (RP-initiated logout or back-channel logout on another replica, a deletion in Redis itself, a
//! timeout), and a replica whose invalidation feed is cut serves nothing from its cache.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use oidc_authz::clock::{Clock, ManualClock, SystemClock};
use support::idp::now;
use support::redis::{RedisServer, command};
use support::{Authz, Browser, FakeIdp, KEY_A, KEY_B, Req};

const PREFIX: &str = "shared:";

/// Ending a session on one replica must reach the other within this.
const ACROSS_REPLICAS: Duration = Duration::from_secs(1);

fn redis_yaml(redis: &RedisServer, extra: &str) -> String {
    format!(
        "session_storage: redis\nredis:\n  url: {}\n  key_prefix: '{PREFIX}'\n\
         backchannel_logout_path: /backchannel-logout\n{extra}",
        redis.url()
    )
}

async fn replica(idp: &FakeIdp, redis: &RedisServer, extra: &str, clock: Arc<dyn Clock>) -> Authz {
    let yaml = redis_yaml(redis, extra);
    Authz::start_with_clock(idp, &yaml, redis.store(PREFIX), clock).await
}

/// How many `GET`s Redis has answered so far.
fn gets(redis: &RedisServer) -> u64 {
    let stats = command(redis.port, &["INFO", "commandstats"]).expect("INFO");
    stats
        .join("\n")
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

/// Sends `/anything` through `authz` until it is answered with `status`, for at most `within`;
/// how long that took, or `None`.
async fn answered_within(
    browser: &mut Browser,
    authz: &Authz,
    status: u16,
    within: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    for _ in 0..200 {
        if browser
            .send_via(authz, Req::navigate("/anything"))
            .await
            .status()
            == status
        {
            return Some(started.elapsed());
        }
        if started.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

fn backchannel_logout(token: &str) -> Req<'static> {
    Req {
        method: "POST",
        path: "/backchannel-logout",
        headers: vec![("content-type", "application/x-www-form-urlencoded")],
        body: Box::leak(format!("logout_token={token}").into_boxed_str()),
        ..Default::default()
    }
}

/// Two replicas, logged in on the first and served from the second's cache.
async fn two_replicas_and_a_cached_session(
    redis: &RedisServer,
    idp: &FakeIdp,
) -> (Authz, Authz, Browser) {
    let first = replica(idp, redis, "", Arc::new(SystemClock)).await;
    let second = replica(idp, redis, "", Arc::new(SystemClock)).await;
    let mut browser = first.browser();
    assert_eq!(browser.login(idp, "/anything").await.status(), 302);
    // The second replica's feed comes up in the background; then it caches what it reads.
    let warm = answered_within(&mut browser, &second, 200, Duration::from_secs(5)).await;
    assert!(warm.is_some(), "the session is valid on the other replica");
    let before = gets(redis);
    for _ in 0..20 {
        let outcome = browser.send_via(&second, Req::navigate("/anything")).await;
        assert_eq!(outcome.status(), 200, "{outcome:?}");
    }
    assert!(
        gets(redis) - before <= 1,
        "twenty Checks of one session read Redis at most once: {} GETs",
        gets(redis) - before
    );
    (first, second, browser)
}

#[tokio::test]
async fn a_logout_on_one_replica_ends_the_cached_session_on_the_other_within_a_second() {
    let redis = RedisServer::start();
    let idp = FakeIdp::start().await;
    let (first, second, mut browser) = two_replicas_and_a_cached_session(&redis, &idp).await;

    let logout = Req::navigate("/logout").with_header("sec-fetch-site", "same-origin");
    let mut elsewhere = browser.clone();
    let outcome = elsewhere.send_via(&first, logout).await;
    assert!([302, 303].contains(&outcome.status()), "{outcome:?}");
    let took = answered_within(&mut browser, &second, 302, ACROSS_REPLICAS).await;
    assert!(
        took.is_some(),
        "the other replica still serves the logged-out session"
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn a_backchannel_logout_on_one_replica_ends_the_cached_session_on_the_other() {
    let redis = RedisServer::start();
    let idp = FakeIdp::start().await;
    let (first, second, mut browser) = two_replicas_and_a_cached_session(&redis, &idp).await;

    let token = idp.logout_token(Some("idp-session-1"), None, "jti-cache");
    let outcome = first.browser().send(backchannel_logout(&token)).await;
    assert_eq!(outcome.status(), 200, "{outcome:?}");
    let took = answered_within(&mut browser, &second, 302, ACROSS_REPLICAS).await;
    assert!(took.is_some(), "the other replica still serves the session");
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn a_session_deleted_in_redis_itself_is_not_served_from_the_cache() {
    let redis = RedisServer::start();
    let idp = FakeIdp::start().await;
    let (first, second, mut browser) = two_replicas_and_a_cached_session(&redis, &idp).await;

    // An operator flushing Redis, or its eviction: no replica wrote anything.
    assert_eq!(command(redis.port, &["FLUSHALL"]).unwrap(), ["OK"]);
    let took = answered_within(&mut browser, &second, 302, ACROSS_REPLICAS).await;
    assert!(took.is_some(), "a flushed session is still served");
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn a_replica_that_lost_its_invalidation_feed_serves_nothing_from_its_cache() {
    let redis = RedisServer::start();
    let idp = FakeIdp::start().await;
    let (first, second, mut browser) = two_replicas_and_a_cached_session(&redis, &idp).await;

    // Cut every tracking connection (flag `t`), then delete every session while the feeds are
    // down: what the cache held must not be served.
    let clients = command(redis.port, &["CLIENT", "LIST"]).unwrap().join("\n");
    let tracking: Vec<&str> = clients
        .lines()
        .filter(|line| {
            line.split(' ')
                .any(|field| field.starts_with("flags=") && field.contains('t'))
        })
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .collect();
    assert_eq!(tracking.len(), 2, "one feed per replica: {clients}");
    for id in &tracking {
        command(redis.port, &["CLIENT", "KILL", "ID", id]).unwrap();
    }
    let keys = command(redis.port, &["KEYS", &format!("{PREFIX}session:*")]).unwrap();
    assert!(!keys.is_empty());
    for key in &keys {
        // A raw delete through a connection that is not tracked, and a replica that never heard.
        command(redis.port, &["CLIENT", "TRACKING", "OFF"]).unwrap();
        command(redis.port, &["DEL", key]).unwrap();
    }
    // Long enough for the replica to read the closed connection, shorter than its reconnect.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let outcome = browser.send_via(&second, Req::navigate("/anything")).await;
    assert_eq!(
        outcome.status(),
        302,
        "served a deleted session: {outcome:?}"
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn the_idle_timeout_applies_to_a_cached_session() {
    let redis = RedisServer::start();
    let idp = FakeIdp::start().await;
    let clock = ManualClock::new(now());
    let extra = "session_idling_timeout: 60\n";
    let first = replica(&idp, &redis, extra, Arc::new(clock.clone())).await;
    let second = replica(&idp, &redis, extra, Arc::new(clock.clone())).await;
    let mut browser = first.browser();
    assert_eq!(browser.login(&idp, "/anything").await.status(), 302);
    assert!(
        answered_within(&mut browser, &second, 200, Duration::from_secs(5))
            .await
            .is_some()
    );
    clock.advance(61);
    let outcome = browser.send_via(&second, Req::navigate("/anything")).await;
    assert_eq!(outcome.status(), 302, "{outcome:?}");
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn after_a_key_rotation_by_reload_the_new_cache_serves_and_follows_changes() {
    let redis = RedisServer::start();
    let idp = FakeIdp::start().await;
    let (first, second, mut browser) = two_replicas_and_a_cached_session(&redis, &idp).await;
    let dir = std::env::temp_dir().join(format!("oidc-authz-cache-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.yaml");
    let config = |keys: &str| {
        format!(
            "issuer: {}\nclient_id: {}\nclient_secret: {}\nsession_secret: [{keys}]\n{}",
            idp.issuer,
            support::idp::CLIENT_ID,
            support::idp::CLIENT_SECRET,
            redis_yaml(&redis, "")
        )
    };

    // A rotation that keeps the old key: the session stays, served by the new cache.
    std::fs::write(&file, config(&format!("{KEY_B}, {KEY_A}"))).unwrap();
    second.reloader.reload(Some(&file)).await.unwrap();
    assert!(
        answered_within(&mut browser, &second, 200, Duration::from_secs(5))
            .await
            .is_some()
    );
    let before = gets(&redis);
    for _ in 0..5 {
        assert_eq!(
            browser.send_via(&second, Req::navigate("/")).await.status(),
            200
        );
    }
    assert!(
        gets(&redis) - before <= 1,
        "the new cache serves the session"
    );
    // ... and hears of another replica's changes (a back-channel logout there: the browser's
    // cookie is now signed with KEY_B, which the other replica does not know).
    *idp.state.session_id.lock().unwrap() = "idp-session-2".into();
    let mut fresh = first.browser();
    assert_eq!(fresh.login(&idp, "/anything").await.status(), 302);
    let token = idp.logout_token(Some("idp-session-1"), None, "jti-reload");
    let outcome = first.browser().send(backchannel_logout(&token)).await;
    assert_eq!(outcome.status(), 200, "{outcome:?}");
    let took = answered_within(&mut browser, &second, 302, ACROSS_REPLICAS).await;
    assert!(took.is_some(), "a logout elsewhere after the reload");

    let _ = std::fs::remove_dir_all(&dir);
    first.stop().await;
    second.stop().await;
}

/// The cache keeps a trimmed copy (no refresh token, no ID token unless a policy sends it): what
/// a replica writes back after a cache hit, refreshes with, or logs out with is the whole record.
#[tokio::test]
async fn writes_refreshes_and_logouts_after_cache_hits_use_the_whole_record() {
    let redis = RedisServer::start();
    let idp = FakeIdp::start().await;
    idp.state
        .expires_in
        .store(600, std::sync::atomic::Ordering::SeqCst);
    let clock = ManualClock::new(now());
    let first = replica(&idp, &redis, "", Arc::new(clock.clone())).await;
    let second = replica(&idp, &redis, "", Arc::new(clock.clone())).await;
    let mut browser = first.browser();
    assert_eq!(browser.login(&idp, "/anything").await.status(), 302);
    assert!(
        answered_within(&mut browser, &second, 200, Duration::from_secs(5))
            .await
            .is_some()
    );
    let before = gets(&redis);
    assert_eq!(
        browser.send_via(&second, Req::navigate("/")).await.status(),
        200
    );
    assert_eq!(gets(&redis), before, "a cache hit");

    // Activity is due: the second replica writes the session back.
    clock.advance(120);
    assert_eq!(
        browser.send_via(&second, Req::navigate("/")).await.status(),
        200
    );
    // The token is due: the refresh token must have survived that write.
    clock.advance(500);
    let outcome = browser.send_via(&second, Req::navigate("/")).await;
    assert_eq!(outcome.status(), 200, "{outcome:?}");
    assert_eq!(idp.refreshes(), 1);

    // A logout from a cache hit still sends the ID token as a hint.
    assert_eq!(
        browser.send_via(&second, Req::navigate("/")).await.status(),
        200
    );
    let logout = Req::navigate("/logout").with_header("sec-fetch-site", "same-origin");
    let outcome = browser.send_via(&second, logout).await;
    let location = url::Url::parse(outcome.location()).unwrap();
    let hint = location
        .query_pairs()
        .find(|(name, _)| name == "id_token_hint")
        .map(|(_, value)| value.into_owned());
    assert!(
        hint.is_some_and(|hint| hint.starts_with("eyJ")),
        "{location}"
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn the_cache_reports_its_hits_misses_and_feed() {
    let redis = RedisServer::start();
    let idp = FakeIdp::start().await;
    let (first, second, _browser) = two_replicas_and_a_cached_session(&redis, &idp).await;
    let metrics = reqwest::get(format!("http://{}/metrics", second.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing: {metrics}"))
    };
    assert_eq!(value("oidc_authz_session_cache_feed_up "), 1.0);
    assert!(value("oidc_authz_session_cache_lookups_total{result=\"hit\"} ") >= 19.0);
    assert!(value("oidc_authz_session_cache_lookups_total{result=\"miss\"} ") >= 1.0);
    first.stop().await;
    second.stop().await;
}
