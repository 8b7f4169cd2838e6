//! Issue 8, finding 1: anonymous page loads must not be able to fill the session store. 100 000
//! cookieless navigations, each with an 8 KiB query, go straight to `Flow::check` (the gRPC layer
//! adds nothing here and would only slow a debug build down) while logged-in browsers exist; after
//! them every session still works, and with the memory store the process's RSS stays under
//! `RSS_GROWTH_BOUND`. Also: one login cookie holds at most `max_pending_logins` pending logins.
//!
//! The floods run one at a time (`SERIAL`): the RSS of one would count the other's garbage. In a
//! debug build on a shared 2-core machine the memory flood took ~31 s and the Redis one ~60 s.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oidc_authz::flow::{Decision, Flow, RequestView};
use oidc_authz::session::SessionStore;
use oidc_authz::session::memory::MemoryStore;
use support::redis::{RedisServer, command};
use support::{Authz, Browser, FakeIdp, Req};

const NAVIGATIONS: usize = 100_000;
const QUERY_BYTES: usize = 8 * 1024;
const CONCURRENT_CLIENTS: usize = 8;
const LOGGED_IN_BROWSERS: usize = 20;
/// The memory store's bound in the flood test (`memory.max_bytes`).
const MEMORY_MAX_BYTES: usize = 16 * 1024 * 1024;
/// How much the process may grow during the memory flood: the store's bound plus room for the
/// allocator's slack and the requests in flight (measured: 25 MiB in all). Without the fixes the
/// process passed it within 32 000 navigations (each kept its 8 KiB URL for 10 minutes).
const RSS_GROWTH_BOUND: usize = MEMORY_MAX_BYTES + 48 * 1024 * 1024;
/// No flood may take longer than this, even on a slow shared machine in a debug build.
const FLOOD_TIME_BOUND: Duration = Duration::from_secs(300);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

fn cookieless_navigation(index: usize) -> RequestView {
    let mut query = format!("n={index}&q=");
    query.push_str(&"x".repeat(QUERY_BYTES - query.len()));
    RequestView {
        method: "GET".into(),
        scheme: "http".into(),
        host: "app.test".into(),
        path: "/flood".into(),
        query,
        headers: HashMap::from([("accept".to_string(), "*/*".to_string())]),
        body: Vec::new(),
        policy_name: None,
    }
}

async fn logged_in_browsers(idp: &FakeIdp, authz: &Authz) -> Vec<Browser> {
    let mut browsers = Vec::new();
    for _ in 0..LOGGED_IN_BROWSERS {
        let mut browser = authz.browser();
        let done = browser.login(idp, "/anything").await;
        assert_eq!(done.status(), 302, "{done:?}");
        browsers.push(browser);
    }
    browsers
}

async fn assert_every_session_works(browsers: &mut [Browser]) {
    for (index, browser) in browsers.iter_mut().enumerate() {
        let page = browser.send(Req::navigate("/anything")).await;
        assert_eq!(
            page.status(),
            200,
            "browser {index} lost its session: {page:?}"
        );
    }
}

/// Sends `NAVIGATIONS` cookieless navigations from `CONCURRENT_CLIENTS` tasks; each must start a
/// login. `watch` runs every 1 000 navigations of the first client and may stop the flood.
async fn flood(
    flow: Arc<Flow>,
    watch: impl Fn(usize) -> Result<(), String> + Send + Sync + 'static,
) {
    let started = Instant::now();
    let watch = Arc::new(watch);
    let per_client = NAVIGATIONS / CONCURRENT_CLIENTS;
    let clients: Vec<_> = (0..CONCURRENT_CLIENTS)
        .map(|client| {
            let (flow, watch) = (Arc::clone(&flow), Arc::clone(&watch));
            tokio::spawn(async move {
                for step in 0..per_client {
                    let request = cookieless_navigation(client * per_client + step);
                    match flow.check(&request).await {
                        Ok(Decision::Redirect { status: 302, .. }) => {}
                        other => return Err(format!("navigation {step}: {other:?}")),
                    }
                    if client == 0 && step % 1000 == 999 {
                        watch(step + 1)?;
                    }
                    if started.elapsed() > FLOOD_TIME_BOUND {
                        return Err(format!("still flooding after {FLOOD_TIME_BOUND:?}"));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for client in clients {
        client.await.expect("flood task").expect("flood");
    }
    eprintln!("{NAVIGATIONS} navigations in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_cookieless_navigations_leaves_memory_bounded_and_sessions_valid() {
    let _serial = SERIAL.lock().await;
    let idp = FakeIdp::start().await;
    let store = Arc::new(MemoryStore::with_max_bytes(MEMORY_MAX_BYTES));
    let authz = Authz::start(&idp, "", store.clone()).await;
    let mut browsers = logged_in_browsers(&idp, &authz).await;

    let rss_before = rss_bytes();
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(rss_before));
    let watched_peak = Arc::clone(&peak);
    flood(Arc::clone(&authz.flow), move |done| {
        let rss = rss_bytes();
        watched_peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
        let growth = rss.saturating_sub(rss_before);
        if growth > RSS_GROWTH_BOUND {
            return Err(format!(
                "RSS grew by {} MiB after {done} navigations per client (bound {} MiB)",
                growth >> 20,
                RSS_GROWTH_BOUND >> 20
            ));
        }
        Ok(())
    })
    .await;
    let growth = rss_bytes().max(peak.load(std::sync::atomic::Ordering::Relaxed)) - rss_before;
    eprintln!(
        "RSS grew by at most {} MiB; the store holds {} KiB",
        growth >> 20,
        store.bytes() >> 10
    );
    assert!(growth <= RSS_GROWTH_BOUND, "RSS grew by {growth} bytes");
    assert!(store.bytes() <= MEMORY_MAX_BYTES);
    assert_every_session_works(&mut browsers).await;
    authz.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_cookieless_navigations_evicts_no_session_from_a_volatile_ttl_redis() {
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start();
    // Small enough that the flood must evict: `volatile-ttl` drops the shortest TTLs first, and
    // pending logins (login_timeout, 600 s) live shorter than sessions (idling timeout, 900 s).
    for setting in [["maxmemory", "24mb"], ["maxmemory-policy", "volatile-ttl"]] {
        let reply = command(redis.port, &["CONFIG", "SET", setting[0], setting[1]]);
        assert_eq!(reply, Some(vec!["OK".to_string()]), "{setting:?}");
    }
    let store: Arc<dyn SessionStore> = redis.store("flood:");
    let idp = FakeIdp::start().await;
    let authz = Authz::start(&idp, "", store).await;
    let mut browsers = logged_in_browsers(&idp, &authz).await;

    flood(Arc::clone(&authz.flow), |_| Ok(())).await;

    let evicted = command(redis.port, &["INFO", "stats"])
        .unwrap_or_default()
        .concat()
        .lines()
        .find_map(|line| line.strip_prefix("evicted_keys:").map(str::to_owned))
        .unwrap_or_default();
    eprintln!("Redis evicted {evicted} keys");
    assert_ne!(evicted.trim(), "0", "the flood should have filled Redis");
    assert_every_session_works(&mut browsers).await;
    authz.stop().await;
}

#[tokio::test]
async fn one_login_cookie_holds_at_most_max_pending_logins() {
    let idp = FakeIdp::start().await;
    let store = Arc::new(MemoryStore::new());
    let authz = Authz::start(&idp, "max_pending_logins: 3", store).await;
    let mut browser = authz.browser();
    let mut starts = Vec::new();
    for _ in 0..5 {
        let start = browser.send(Req::navigate("/anything")).await;
        assert_eq!(start.status(), 302, "{start:?}");
        starts.push(idp.authorize(start.location()));
    }
    let login_cookie = browser.cookies["session_login"].clone();
    // The two oldest were dropped; the newest three are still pending.
    for oldest in &starts[..2] {
        let mut tab = browser.clone();
        assert_eq!(tab.callback(oldest).await.status(), 400);
    }
    let mut tab = browser.clone();
    assert_eq!(tab.callback(&starts[2]).await.status(), 302);
    assert_eq!(browser.cookies["session_login"], login_cookie, "reused");
    assert_eq!(browser.callback(&starts[4]).await.status(), 302);
    authz.stop().await;
}
