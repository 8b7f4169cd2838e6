//! Session lifecycle through the real server with a clock the test moves: refresh (single-flight),
//! idle and absolute timeouts, RP-initiated and back-channel logout, key rotation.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use oidc_authz::clock::ManualClock;
use oidc_authz::session::StoreError;
use support::idp::now;
use support::{Authz, Browser, FakeIdp, KEY_A, KEY_B, Outcome, Req, SwitchableStore};

async fn setup(extra: &str) -> (FakeIdp, Authz, ManualClock, Arc<SwitchableStore>) {
    let idp = FakeIdp::start().await;
    let clock = ManualClock::new(now());
    let store = SwitchableStore::memory();
    let authz = Authz::start_with_clock(&idp, extra, store.clone(), Arc::new(clock.clone())).await;
    (idp, authz, clock, store)
}

async fn logged_in(idp: &FakeIdp, authz: &Authz) -> Browser {
    let mut browser = authz.browser();
    let done = browser.login(idp, "/anything").await;
    assert_eq!(done.status(), 302, "{done:?}");
    browser
}

/// A click on a logout link of the application's own pages.
fn same_origin_logout() -> Req<'static> {
    Req::navigate("/logout").with_header("sec-fetch-site", "same-origin")
}

fn bearer(outcome: &Outcome) -> String {
    outcome
        .upstream("authorization")
        .unwrap_or_else(|| panic!("expected an allowed request, got {outcome:?}"))
        .to_owned()
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_for_twenty_parallel_requests() {
    let (idp, authz, clock, _) = setup("").await;
    idp.state.expires_in.store(60, Ordering::SeqCst);
    let mut browser = logged_in(&idp, &authz).await;
    let before = bearer(&browser.send(Req::navigate("/anything")).await);
    assert_eq!(idp.refreshes(), 0);

    clock.advance(61);
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let mut tab = browser.clone();
        requests.spawn(async move { bearer(&tab.send(Req::navigate("/anything")).await) });
    }
    let tokens: Vec<String> = requests.join_all().await;
    assert_eq!(idp.refreshes(), 1, "single flight");
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    assert_ne!(tokens[0], before);
    // The rotated refresh token was stored: the next expiry refreshes again, successfully.
    clock.advance(61);
    let after = bearer(&browser.send(Req::navigate("/anything")).await);
    assert_ne!(after, tokens[0]);
    assert_eq!(idp.refreshes(), 2);
    authz.stop().await;
}

#[tokio::test]
async fn a_refused_refresh_ends_the_session() {
    let (idp, authz, clock, _) = setup("").await;
    idp.state.expires_in.store(60, Ordering::SeqCst);
    let mut browser = logged_in(&idp, &authz).await;
    let mut api_client = browser.clone();
    idp.revoke_refresh_tokens();
    clock.advance(61);
    let outcome = browser.send(Req::navigate("/anything")).await;
    assert_eq!(outcome.status(), 302, "{outcome:?}");
    assert!(outcome.location().starts_with(&idp.issuer));
    let xhr = api_client
        .send(Req::navigate("/api").with_header("x-requested-with", "XMLHttpRequest"))
        .await;
    assert_eq!(xhr.status(), 401, "the session is gone for every client");
    authz.stop().await;
}

#[tokio::test]
async fn an_unreachable_idp_during_refresh_fails_closed_and_keeps_the_session() {
    let (idp, authz, clock, _) = setup("").await;
    idp.state.expires_in.store(60, Ordering::SeqCst);
    let mut browser = logged_in(&idp, &authz).await;
    clock.advance(61);
    idp.state.token_endpoint_down.store(true, Ordering::SeqCst);
    let outcome = browser.send(Req::navigate("/anything")).await;
    assert!(matches!(outcome, Outcome::Error(_)), "{outcome:?}");
    idp.state.token_endpoint_down.store(false, Ordering::SeqCst);
    assert_eq!(browser.send(Req::navigate("/anything")).await.status(), 200);
    assert_eq!(
        idp.refreshes(),
        1,
        "the outage answered 503 before counting; then one refresh"
    );
    authz.stop().await;
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

/// Issue 8, finding 4: a logout that lands while a refresh waits for the IdP is final. The
/// refresh's write-back finds the session gone and brings nothing back.
#[tokio::test]
async fn a_logout_during_an_in_flight_refresh_leaves_the_session_gone() {
    let (idp, authz, clock, _) = setup("").await;
    idp.state.expires_in.store(60, Ordering::SeqCst);
    let browser = logged_in(&idp, &authz).await;
    let (mut refreshing_tab, mut logout_tab, mut later) =
        (browser.clone(), browser.clone(), browser.clone());
    idp.hold_refreshes();
    clock.advance(61);
    let refreshing =
        tokio::spawn(async move { refreshing_tab.send(Req::navigate("/anything")).await });
    wait_until("the refresh reached the IdP", || idp.refreshes() == 1).await;
    assert_eq!(logout_tab.send(same_origin_logout()).await.status(), 302);
    idp.release_refreshes();

    let outcome = tokio::time::timeout(Duration::from_secs(10), refreshing)
        .await
        .expect("the refreshing Check answers")
        .unwrap();
    assert_eq!(outcome.status(), 302, "a new login: {outcome:?}");
    let outcome = later.send(Req::navigate("/anything")).await;
    assert_eq!(outcome.status(), 302, "still logged out: {outcome:?}");
    assert_eq!(idp.refreshes(), 1);
    authz.stop().await;
}

#[tokio::test]
async fn idle_and_absolute_timeouts_end_sessions_on_the_server() {
    let (idp, authz, clock, _) =
        setup("session_idling_timeout: 600\nsession_absolute_timeout: 2000").await;
    idp.state.expires_in.store(100_000, Ordering::SeqCst);
    let mut idle = logged_in(&idp, &authz).await;
    let mut busy = logged_in(&idp, &authz).await;
    // Used every 500 s: the idle timer keeps resetting (written back at most once a minute).
    for _ in 0..3 {
        clock.advance(500);
        assert_eq!(busy.send(Req::navigate("/")).await.status(), 200);
    }
    // 1500 s without use: idle session over.
    assert_eq!(idle.send(Req::navigate("/")).await.status(), 302);
    // Past the absolute timeout, activity does not help.
    clock.advance(501);
    assert_eq!(busy.send(Req::navigate("/")).await.status(), 302);
    authz.stop().await;
}

#[tokio::test]
async fn logout_ends_the_session_here_and_sends_the_browser_to_the_idp() {
    let (idp, authz, _, _) = setup("logout_redirect_uri: /goodbye").await;
    let mut browser = logged_in(&idp, &authz).await;
    let stolen = browser.clone();
    let outcome = browser.send(same_origin_logout()).await;
    assert_eq!(outcome.status(), 302);
    let location = url::Url::parse(outcome.location()).unwrap();
    assert_eq!(
        location.as_str().split('?').next().unwrap(),
        format!("{}/session/end", idp.issuer)
    );
    let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert!(params["id_token_hint"].starts_with("eyJ"));
    assert_eq!(params["client_id"], "envoy");
    assert_eq!(
        params["post_logout_redirect_uri"],
        "http://app.test/goodbye"
    );
    assert!(!browser.cookies.contains_key("session"), "cookie cleared");
    // The old cookie is worthless now.
    let mut replay = stolen;
    assert_eq!(replay.send(Req::navigate("/anything")).await.status(), 302);
    authz.stop().await;
}

#[tokio::test]
async fn backchannel_logout_kills_sessions_and_refuses_replays() {
    let (idp, authz, _, _) = setup("backchannel_logout_path: /backchannel-logout").await;
    let mut first = logged_in(&idp, &authz).await;
    let mut second = logged_in(&idp, &authz).await;
    *idp.state.session_id.lock().unwrap() = "idp-session-2".into();
    let mut other_idp_session = logged_in(&idp, &authz).await;

    let post = |token: String| async move { format!("logout_token={token}") };
    let mut idp_client = authz.browser();
    let send = |body: String| Req {
        method: "POST",
        path: "/backchannel-logout",
        headers: vec![("content-type", "application/x-www-form-urlencoded")],
        body: Box::leak(body.into_boxed_str()),
        ..Default::default()
    };
    let token = idp.logout_token(Some("idp-session-1"), None, "jti-1");
    let outcome = idp_client.send(send(post(token.clone()).await)).await;
    assert_eq!(outcome.status(), 200, "{outcome:?}");
    assert_eq!(outcome.header("cache-control"), Some("no-store"));
    assert_eq!(first.send(Req::navigate("/")).await.status(), 302);
    assert_eq!(second.send(Req::navigate("/")).await.status(), 302);
    assert_eq!(
        other_idp_session.send(Req::navigate("/")).await.status(),
        200
    );

    // The same token again: refused.
    assert_eq!(idp_client.send(send(post(token).await)).await.status(), 400);
    // Tokens that are not logout tokens, or not for us.
    let mut wrong_audience = serde_json::json!({
        "iss": idp.issuer, "aud": "someone-else", "iat": now(), "jti": "jti-2", "sid": "idp-session-2",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}}
    });
    assert_eq!(
        idp_client
            .send(send(post(idp.sign(&wrong_audience)).await))
            .await
            .status(),
        400
    );
    wrong_audience["aud"] = "envoy".into();
    wrong_audience["nonce"] = "n".into();
    assert_eq!(
        idp_client
            .send(send(post(idp.sign(&wrong_audience)).await))
            .await
            .status(),
        400
    );
    assert_eq!(
        idp_client
            .send(send("logout_token=garbage".into()))
            .await
            .status(),
        400
    );
    assert_eq!(
        other_idp_session.send(Req::navigate("/")).await.status(),
        200
    );

    // By subject: every session of the user.
    let by_subject = idp.logout_token(None, Some("alice"), "jti-3");
    assert_eq!(
        idp_client.send(send(post(by_subject).await)).await.status(),
        200
    );
    assert_eq!(
        other_idp_session.send(Req::navigate("/")).await.status(),
        302
    );
    authz.stop().await;
}

#[tokio::test]
async fn rotating_keys_keeps_users_logged_in() {
    let idp = FakeIdp::start().await;
    let store = SwitchableStore::memory();
    let clock = ManualClock::new(now());
    let start = |secrets: &'static str| {
        let store = store.clone();
        let clock = clock.clone();
        let idp = &idp;
        async move {
            Authz::start_with_clock(
                idp,
                &format!("session_secret: {secrets}"),
                store,
                Arc::new(clock),
            )
            .await
        }
    };
    let old = start("[\"key-a-0123456789abcdef0123456789abcdef\"]").await;
    assert!(KEY_A.starts_with("key-a") && KEY_B.starts_with("key-b"));
    let mut returning = logged_in(&idp, &old).await;
    let mut away = logged_in(&idp, &old).await;
    let cookie_before = returning.cookies["session"].clone();
    old.stop().await;

    // New key first, old key still listed: both users stay in; the one who comes back gets a
    // cookie (and a record) under the new key.
    let rotating = start(
        "[\"key-b-0123456789abcdef0123456789abcdef\", \"key-a-0123456789abcdef0123456789abcdef\"]",
    )
    .await;
    let outcome = returning.send_via(&rotating, Req::navigate("/")).await;
    assert_eq!(outcome.status(), 200, "{outcome:?}");
    assert_ne!(
        returning.cookies["session"], cookie_before,
        "cookie re-issued under the new key"
    );
    rotating.stop().await;

    // Old key removed: the returning user is still in; the one who stayed away logs in again.
    let rotated = start("[\"key-b-0123456789abcdef0123456789abcdef\"]").await;
    assert_eq!(
        returning
            .send_via(&rotated, Req::navigate("/"))
            .await
            .status(),
        200
    );
    let outcome = away.send_via(&rotated, Req::navigate("/")).await;
    assert_eq!(
        outcome.status(),
        302,
        "a fresh login, never an error: {outcome:?}"
    );
    rotated.stop().await;
}

#[tokio::test]
async fn two_replicas_sharing_redis_refresh_once() {
    let redis = support::redis::RedisServer::start();
    let idp = FakeIdp::start().await;
    idp.state.expires_in.store(60, Ordering::SeqCst);
    let clock = ManualClock::new(now());
    let replica = |prefix: &'static str| {
        let store = redis.store(prefix);
        let clock = Arc::new(clock.clone());
        let idp = &idp;
        async move { Authz::start_with_clock(idp, "", store, clock).await }
    };
    let (first, second) = (replica("shared:").await, replica("shared:").await);
    let mut on_first = logged_in(&idp, &first).await;
    let mut on_second = on_first.clone();
    assert_eq!(
        on_second
            .send_via(&second, Req::navigate("/"))
            .await
            .status(),
        200
    );

    clock.advance(61);
    let mut requests = tokio::task::JoinSet::new();
    for index in 0..20 {
        let mut tab = if index % 2 == 0 {
            on_first.clone()
        } else {
            on_second.clone()
        };
        requests.spawn(async move { bearer(&tab.send(Req::navigate("/anything")).await) });
    }
    let tokens: Vec<String> = requests.join_all().await;
    assert_eq!(idp.refreshes(), 1, "one refresh across both replicas");
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    assert_eq!(bearer(&on_first.send(Req::navigate("/")).await), tokens[0]);
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn logout_methods_limit_what_the_logout_path_answers() {
    let (idp, authz, _, _) = setup("logout_methods: [post]").await;
    let mut browser = logged_in(&idp, &authz).await;
    assert_eq!(browser.send(Req::navigate("/logout")).await.status(), 405);
    assert_eq!(
        browser.send(Req::navigate("/anything")).await.status(),
        200,
        "still logged in"
    );
    let post = Req {
        method: "POST",
        path: "/logout",
        headers: vec![("origin", "http://app.test")],
        body: "",
        ..Default::default()
    };
    assert_eq!(browser.send(post).await.status(), 303);
    assert_eq!(browser.send(Req::navigate("/anything")).await.status(), 302);
    authz.stop().await;
}

/// Records what back-channel logouts find in the session indexes (`take_set`), and can make
/// `remove_from_set` fail; everything else goes to a `SwitchableStore` over memory.
struct IndexProbe {
    inner: Arc<SwitchableStore>,
    taken: std::sync::Mutex<Vec<usize>>,
    fail_remove_from_set: std::sync::atomic::AtomicBool,
}

impl IndexProbe {
    fn new() -> Arc<Self> {
        Arc::new(IndexProbe {
            inner: SwitchableStore::memory(),
            taken: std::sync::Mutex::new(Vec::new()),
            fail_remove_from_set: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// How many members each `take_set` since the last call returned.
    fn taken(&self) -> Vec<usize> {
        std::mem::take(&mut *self.taken.lock().unwrap())
    }
}

impl oidc_authz::session::ForwardingStore for IndexProbe {
    fn inner(&self) -> &dyn oidc_authz::session::SessionStore {
        &*self.inner
    }

    async fn remove_from_set(&self, key: &str, member: &str) -> Result<(), StoreError> {
        if self.fail_remove_from_set.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("remove_from_set failed".into()));
        }
        self.inner.remove_from_set(key, member).await
    }

    async fn take_set(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let members = self.inner.take_set(key).await?;
        self.taken.lock().unwrap().push(members.len());
        Ok(members)
    }
}

fn backchannel_request(token: &str) -> Req<'static> {
    Req {
        method: "POST",
        path: "/backchannel-logout",
        headers: vec![("content-type", "application/x-www-form-urlencoded")],
        body: Box::leak(format!("logout_token={token}").into_boxed_str()),
        ..Default::default()
    }
}

#[tokio::test]
async fn logout_takes_the_session_out_of_the_backchannel_indexes() {
    let idp = FakeIdp::start().await;
    let store = IndexProbe::new();
    let authz = Authz::start(
        &idp,
        "backchannel_logout_path: /backchannel-logout",
        store.clone(),
    )
    .await;
    let mut leaving = logged_in(&idp, &authz).await; // sid idp-session-1, sub alice
    *idp.state.session_id.lock().unwrap() = "idp-session-2".into();
    let mut staying = logged_in(&idp, &authz).await;

    assert_eq!(leaving.send(same_origin_logout()).await.status(), 302);
    assert_eq!(leaving.send(Req::navigate("/")).await.status(), 302);

    // The IdP tells us about the same logout: its sid's index is already empty.
    let mut idp_client = authz.browser();
    let token = idp.logout_token(Some("idp-session-1"), None, "jti-after-logout-1");
    let outcome = idp_client.send(backchannel_request(&token)).await;
    assert_eq!(outcome.status(), 200, "{outcome:?}");
    assert_eq!(store.taken(), [0], "no session left to end for the sid");
    assert_eq!(staying.send(Req::navigate("/")).await.status(), 200);

    // By subject: only the remaining session is listed, and it ends.
    let token = idp.logout_token(None, Some("alice"), "jti-after-logout-2");
    let outcome = idp_client.send(backchannel_request(&token)).await;
    assert_eq!(outcome.status(), 200, "{outcome:?}");
    assert_eq!(store.taken(), [1], "only the session that was still live");
    assert_eq!(staying.send(Req::navigate("/")).await.status(), 302);
    authz.stop().await;
}

#[tokio::test]
async fn logout_fails_closed_when_the_indexes_cannot_be_updated() {
    let idp = FakeIdp::start().await;
    let store = IndexProbe::new();
    let authz = Authz::start(&idp, "", store.clone()).await;
    let mut browser = logged_in(&idp, &authz).await;
    store.fail_remove_from_set.store(true, Ordering::SeqCst);
    let outcome = browser.send(same_origin_logout()).await;
    assert!(matches!(outcome, Outcome::Error(_)), "{outcome:?}");
    // The session went first: the cookie it still holds opens nothing.
    store.fail_remove_from_set.store(false, Ordering::SeqCst);
    assert_eq!(browser.send(Req::navigate("/")).await.status(), 302);
    authz.stop().await;
}

#[tokio::test]
async fn a_logout_from_another_site_only_gets_a_confirmation_page() {
    let (idp, authz, _, _) = setup("").await;
    let mut browser = logged_in(&idp, &authz).await;
    let cross_site_link = Req::navigate("/logout").with_header("sec-fetch-site", "cross-site");
    let cross_site_form = Req {
        method: "POST",
        path: "/logout",
        headers: vec![("origin", "https://evil.example")],
        body: "",
        ..Default::default()
    };
    let sibling_link = Req::navigate("/logout").with_header("sec-fetch-site", "same-site");
    let unknown_origin = Req::navigate("/logout");
    for request in [
        cross_site_link,
        cross_site_form,
        sibling_link,
        unknown_origin,
    ] {
        let outcome = browser.send(request).await;
        let Outcome::Denied {
            status,
            headers,
            body,
        } = &outcome
        else {
            panic!("expected a confirmation page, got {outcome:?}");
        };
        assert_eq!(*status, 200, "{outcome:?}");
        assert!(
            body.contains("<form method=\"post\" action=\"/logout\">"),
            "{body}"
        );
        assert!(!body.contains("src=") && !body.contains("href="), "{body}");
        let csp = outcome.header("content-security-policy").unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(
            !headers.iter().any(|(name, _)| name == "set-cookie"),
            "{headers:?}"
        );
        assert_eq!(
            browser.send(Req::navigate("/anything")).await.status(),
            200,
            "still logged in"
        );
    }
    // The page's button: a same-origin POST, which logs out.
    let confirmed = Req {
        method: "POST",
        path: "/logout",
        headers: vec![("sec-fetch-site", "same-origin")],
        body: "",
        ..Default::default()
    };
    assert_eq!(browser.send(confirmed).await.status(), 303);
    assert_eq!(browser.send(Req::navigate("/anything")).await.status(), 302);
    authz.stop().await;
}

#[tokio::test]
async fn a_logout_without_a_session_cookie_clears_no_cookie() {
    let (idp, authz, _, _) = setup("").await;
    let mut stranger = authz.browser();
    let outcome = stranger.send(same_origin_logout()).await;
    assert_eq!(outcome.status(), 302, "{outcome:?}");
    assert!(outcome.location().starts_with(&idp.issuer));
    assert_eq!(outcome.header("set-cookie"), None, "{outcome:?}");
    authz.stop().await;
}

#[tokio::test]
async fn logout_id_token_hint_false_puts_no_token_in_the_end_session_url() {
    let (idp, authz, _, _) = setup("logout_id_token_hint: false").await;
    let mut browser = logged_in(&idp, &authz).await;
    let outcome = browser.send(same_origin_logout()).await;
    let location = url::Url::parse(outcome.location()).unwrap();
    let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert!(!params.contains_key("id_token_hint"), "{location}");
    assert_eq!(params["client_id"], "envoy");
    assert_eq!(params["logout_hint"], "idp-session-1", "the IdP's sid");
    assert!(!location.as_str().contains("eyJ"), "{location}");
    authz.stop().await;
}
