//! The refresh lock (issue 8, finding 7), through the real server against the fake IdP with its
//! refresh answers held: the lock is released by its holder only, lives as long as a refresh can
//! take (derived from `http_timeout`), and a refresh whose Check is cancelled (Envoy's ext_authz
//! timeout) still finishes, so a refresh token the IdP already rotated is not lost.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oidc_authz::clock::ManualClock;
use oidc_authz::flow::RequestView;
use oidc_authz::session::memory::MemoryStore;
use oidc_authz::session::{SessionStore, StoreError};
use support::idp::now;
use support::{Authz, Browser, FakeIdp, Outcome, Req};

/// A memory store that records every refresh lock taken: its key and TTL.
#[derive(Default)]
struct LockProbe {
    inner: MemoryStore,
    locks: Mutex<Vec<(String, Duration)>>,
    /// Releasing a refresh lock fails (the store went away between the refresh and its release).
    fail_unlock: AtomicBool,
}

impl LockProbe {
    fn last_lock(&self) -> (String, Duration) {
        self.locks
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a refresh lock was taken")
    }
}

/// Named by path, not imported: with `ForwardingStore` in scope, `store.get(..)` would be ambiguous.
impl oidc_authz::session::ForwardingStore for LockProbe {
    fn inner(&self) -> &dyn SessionStore {
        &self.inner
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let stored = self.inner.put_if_absent(key, value, ttl).await?;
        if stored && key.starts_with("refresh-lock:") {
            self.locks.lock().unwrap().push((key.to_owned(), ttl));
        }
        Ok(stored)
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        if key.starts_with("refresh-lock:") && self.fail_unlock.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("switched off by the test".into()));
        }
        self.inner.delete_if_equals(key, expected).await
    }
}

struct Setup {
    idp: FakeIdp,
    authz: Authz,
    clock: ManualClock,
    store: Arc<LockProbe>,
    browser: Browser,
}

/// A logged-in browser whose access token is due for refresh, with the IdP's refresh answers held.
async fn due_for_refresh(extra: &str) -> Setup {
    let idp = FakeIdp::start().await;
    idp.state.expires_in.store(60, Ordering::SeqCst);
    let clock = ManualClock::new(now());
    let store = Arc::new(LockProbe::default());
    let authz = Authz::start_with_clock(&idp, extra, store.clone(), Arc::new(clock.clone())).await;
    let mut browser = authz.browser();
    let done = browser.login(&idp, "/anything").await;
    assert_eq!(done.status(), 302, "{done:?}");
    idp.hold_refreshes();
    clock.advance(61);
    Setup {
        idp,
        authz,
        clock,
        store,
        browser,
    }
}

/// Polls `condition` every 10 ms for at most 5 s.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

fn bearer(outcome: &Outcome) -> String {
    outcome
        .upstream("authorization")
        .unwrap_or_else(|| panic!("expected an allowed request, got {outcome:?}"))
        .to_owned()
}

#[tokio::test]
async fn a_refresh_releases_only_its_own_lock() {
    let Setup {
        idp,
        authz,
        store,
        browser,
        ..
    } = due_for_refresh("").await;
    let mut tab = browser.clone();
    let refreshing = tokio::spawn(async move { tab.send(Req::navigate("/anything")).await });
    wait_until("the refresh reached the IdP", || idp.refreshes() == 1).await;
    // The holder outlives its lock, and another replica takes the lock.
    let (lock_key, lock_ttl) = store.last_lock();
    store.delete(&lock_key).await.unwrap();
    let other = b"another replica's holder token".to_vec();
    assert!(
        store
            .put_if_absent(&lock_key, other.clone(), lock_ttl)
            .await
            .unwrap()
    );
    idp.release_refreshes();
    let outcome = tokio::time::timeout(Duration::from_secs(10), refreshing)
        .await
        .expect("the refreshing Check answers")
        .unwrap();
    assert_eq!(outcome.status(), 200, "{outcome:?}");
    assert_eq!(
        store.get(&lock_key).await.unwrap(),
        Some(other),
        "the other replica's lock is still there"
    );
    authz.stop().await;
}

#[tokio::test]
async fn the_refresh_lock_lives_as_long_as_two_idp_requests() {
    for http_timeout in [1u64, 4] {
        let Setup {
            idp,
            authz,
            store,
            mut browser,
            ..
        } = due_for_refresh(&format!("http_timeout: {http_timeout}")).await;
        idp.release_refreshes();
        assert_eq!(browser.send(Req::navigate("/")).await.status(), 200);
        let (_, lock_ttl) = store.last_lock();
        let two_requests = 2 * Duration::from_secs(http_timeout);
        assert!(
            lock_ttl > two_requests && lock_ttl <= two_requests + Duration::from_secs(5),
            "http_timeout {http_timeout} s: lock TTL {lock_ttl:?}"
        );
        authz.stop().await;
    }
}

#[tokio::test]
async fn a_refresh_whose_check_was_cancelled_still_stores_the_rotated_token() {
    let Setup {
        idp,
        authz,
        clock,
        mut browser,
        ..
    } = due_for_refresh("").await;
    let request = RequestView {
        method: "GET".into(),
        scheme: "http".into(),
        host: browser.origin_host.clone(),
        path: "/anything".into(),
        query: String::new(),
        headers: [("cookie".to_owned(), browser.cookie_header())].into(),
        body: Vec::new(),
        policy_name: None,
    };
    let flow = Arc::clone(&authz.flow);
    let check = tokio::spawn(async move { flow.check(&request).await.map(drop) });
    wait_until("the refresh reached the IdP", || idp.refreshes() == 1).await;
    // Envoy's ext_authz timeout: the Check's future is dropped while the IdP has already rotated
    // the refresh token and is about to answer with the new one.
    check.abort();
    assert!(check.await.unwrap_err().is_cancelled());
    idp.release_refreshes();

    let refreshed = bearer(&browser.send(Req::navigate("/anything")).await);
    assert_eq!(
        idp.refreshes(),
        1,
        "the started refresh finished and was stored"
    );
    // And the rotated refresh token it stored works.
    clock.advance(61);
    let again = bearer(&browser.send(Req::navigate("/anything")).await);
    assert_ne!(again, refreshed);
    assert_eq!(idp.refreshes(), 2);
    authz.stop().await;
}

#[tokio::test]
async fn a_lock_its_holder_could_not_release_is_counted_and_the_refresh_still_counts() {
    let Setup {
        idp,
        authz,
        store,
        mut browser,
        ..
    } = due_for_refresh("").await;
    idp.release_refreshes();
    store.fail_unlock.store(true, Ordering::SeqCst);
    let outcome = browser.send(Req::navigate("/anything")).await;
    assert_eq!(
        outcome.status(),
        200,
        "the tokens were refreshed and stored: {outcome:?}"
    );
    let text = authz
        .flow
        .metrics()
        .render(&[oidc_authz::metrics::ProviderView::ready("default")]);
    assert!(
        text.lines()
            .any(|line| line == "oidc_authz_refresh_locks_abandoned_total 1"),
        "{text}"
    );
    authz.stop().await;
}

#[tokio::test]
async fn a_check_its_caller_gave_up_on_is_counted_as_cancelled() {
    let Setup {
        idp,
        authz,
        browser,
        ..
    } = due_for_refresh("").await;
    let mut tab = browser.clone();
    // Envoy's ext_authz timeout: the gRPC call is abandoned while the refresh waits on the IdP.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(300),
        tab.send(Req::navigate("/anything")),
    )
    .await;
    assert!(gave_up.is_err(), "the Check was still waiting on the IdP");
    let cancelled = || {
        authz
            .flow
            .metrics()
            .render(&[oidc_authz::metrics::ProviderView::ready("default")])
            .lines()
            .any(|line| line == "oidc_authz_checks_cancelled_total 1")
    };
    wait_until("the cancelled Check is counted", cancelled).await;
    idp.release_refreshes();
    authz.stop().await;
}

#[tokio::test]
async fn a_check_that_finds_the_refresh_lock_held_is_counted_as_contended() {
    let Setup {
        idp,
        authz,
        browser,
        ..
    } = due_for_refresh("").await;
    let mut first = browser.clone();
    let refreshing = tokio::spawn(async move { first.send(Req::navigate("/anything")).await });
    wait_until("the refresh reached the IdP", || idp.refreshes() == 1).await;
    let mut second = browser.clone();
    let waiting = tokio::spawn(async move { second.send(Req::navigate("/anything")).await });
    let contended = "oidc_authz_refresh_lock_contended_total 1";
    let rendered = || {
        authz
            .flow
            .metrics()
            .render(&[oidc_authz::metrics::ProviderView::ready("default")])
    };
    wait_until("the second Check found the lock held", || {
        rendered().lines().any(|line| line == contended)
    })
    .await;
    idp.release_refreshes();
    for check in [refreshing, waiting] {
        let outcome = tokio::time::timeout(Duration::from_secs(10), check)
            .await
            .expect("the Check answers")
            .unwrap();
        assert_eq!(outcome.status(), 200, "{outcome:?}");
    }
    assert_eq!(idp.refreshes(), 1, "one refresh for both Checks");
    authz.stop().await;
}
