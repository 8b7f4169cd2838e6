//! Refreshes during an IdP outage (issue 13), through the real server against the fake IdP with a
//! clock the test moves: an access token that is due for refresh but still valid keeps working
//! while the IdP is unreachable (retried after a short per-session backoff, not on every request),
//! a refused grant still ends the session, and the Check fails closed at the token's real expiry.
//! A hung IdP whose refresh outlived the Check that started it does not block the session's other
//! Checks once the IdP is back.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use oidc_authz::clock::ManualClock;
use oidc_authz::flow::RequestView;
use support::idp::now;
use support::{Authz, Browser, FakeIdp, Outcome, Req, SwitchableStore};

/// Access tokens live this long; `refresh_margin` is 30 s (the default), so they are due for
/// refresh from 30 s on and expire at 60 s.
const TOKEN_LIFETIME: u64 = 60;

struct Setup {
    idp: FakeIdp,
    authz: Authz,
    clock: ManualClock,
    browser: Browser,
    /// The access token the login gave.
    first_token: String,
}

async fn logged_in(extra: &str) -> Setup {
    let idp = FakeIdp::start().await;
    idp.state.expires_in.store(TOKEN_LIFETIME, Ordering::SeqCst);
    let clock = ManualClock::new(now());
    let store = SwitchableStore::memory();
    let authz = Authz::start_with_clock(&idp, extra, store, Arc::new(clock.clone())).await;
    let mut browser = authz.browser();
    let done = browser.login(&idp, "/anything").await;
    assert_eq!(done.status(), 302, "{done:?}");
    let first_token = bearer(&browser.send(Req::navigate("/anything")).await);
    Setup {
        idp,
        authz,
        clock,
        browser,
        first_token,
    }
}

fn bearer(outcome: &Outcome) -> String {
    outcome
        .upstream("authorization")
        .unwrap_or_else(|| panic!("expected an allowed request, got {outcome:?}"))
        .to_owned()
}

fn metric(authz: &Authz, line_start: &str) -> String {
    let text = authz
        .flow
        .metrics()
        .render(&[oidc_authz::metrics::ProviderView::ready("default")]);
    text.lines()
        .find(|line| line.starts_with(line_start))
        .unwrap_or_else(|| panic!("no `{line_start}` in\n{text}"))
        .to_owned()
}

#[tokio::test]
async fn a_still_valid_token_is_used_while_the_idp_is_down_and_fails_closed_at_expiry() {
    let Setup {
        idp,
        authz,
        clock,
        mut browser,
        first_token,
    } = logged_in("").await;
    idp.state.token_endpoint_down.store(true, Ordering::SeqCst);
    clock.advance(40);
    assert_eq!(
        bearer(&browser.send(Req::navigate("/anything")).await),
        first_token,
        "due for refresh, IdP down, token still valid: allowed with the current token"
    );
    assert_eq!(idp.refresh_requests(), 1);
    assert_eq!(
        bearer(&browser.send(Req::navigate("/anything")).await),
        first_token
    );
    assert_eq!(idp.refresh_requests(), 1, "within the backoff: no IdP call");

    clock.advance(21);
    let expired = browser.send(Req::navigate("/anything")).await;
    assert!(
        matches!(expired, Outcome::Error(_)),
        "an expired token with the IdP down fails closed: {expired:?}"
    );
    assert_eq!(
        idp.refresh_requests(),
        2,
        "at expiry the backoff does not apply"
    );

    idp.state.token_endpoint_down.store(false, Ordering::SeqCst);
    let refreshed = bearer(&browser.send(Req::navigate("/anything")).await);
    assert_ne!(refreshed, first_token, "the session survived the outage");
    assert_eq!(
        metric(&authz, "oidc_authz_stale_token_allows_total"),
        "oidc_authz_stale_token_allows_total 2"
    );
    assert_eq!(
        metric(&authz, "oidc_authz_refreshes_total{result=\"failed\"}"),
        "oidc_authz_refreshes_total{result=\"failed\"} 2"
    );
    authz.stop().await;
}

#[tokio::test]
async fn the_idp_is_asked_again_after_the_backoff_and_its_answer_is_used() {
    let Setup {
        idp,
        authz,
        clock,
        mut browser,
        first_token,
    } = logged_in("").await;
    idp.state.token_endpoint_down.store(true, Ordering::SeqCst);
    clock.advance(35);
    assert_eq!(bearer(&browser.send(Req::navigate("/")).await), first_token);
    clock.advance(2);
    assert_eq!(bearer(&browser.send(Req::navigate("/")).await), first_token);
    assert_eq!(idp.refresh_requests(), 1);
    clock.advance(5);
    assert_eq!(bearer(&browser.send(Req::navigate("/")).await), first_token);
    assert_eq!(
        idp.refresh_requests(),
        2,
        "the backoff is over: asked again"
    );

    idp.state.token_endpoint_down.store(false, Ordering::SeqCst);
    clock.advance(6);
    let refreshed = bearer(&browser.send(Req::navigate("/")).await);
    assert_ne!(refreshed, first_token);
    assert_eq!(idp.refreshes(), 1);
    authz.stop().await;
}

#[tokio::test]
async fn a_refused_grant_ends_the_session_even_while_the_token_is_valid() {
    let Setup {
        idp,
        authz,
        clock,
        mut browser,
        ..
    } = logged_in("").await;
    idp.revoke_refresh_tokens();
    clock.advance(40);
    let outcome = browser.send(Req::navigate("/anything")).await;
    assert_eq!(outcome.status(), 302, "{outcome:?}");
    assert!(outcome.location().starts_with(&idp.issuer));
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

#[tokio::test]
async fn a_hung_idp_does_not_block_the_session_once_it_is_back() {
    let Setup {
        idp,
        authz,
        clock,
        mut browser,
        first_token,
    } = logged_in("http_timeout: 2").await;
    clock.advance(40);
    idp.state.token_endpoint_hangs.store(true, Ordering::SeqCst);
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
    wait_until("the refresh reached the IdP", || {
        idp.refresh_requests() == 1
    })
    .await;
    // Envoy's ext_authz timeout cancels the Check; its refresh still waits on the hung IdP.
    check.abort();
    assert!(check.await.unwrap_err().is_cancelled());
    idp.state
        .token_endpoint_hangs
        .store(false, Ordering::SeqCst);

    let started = Instant::now();
    let outcome = browser.send(Req::navigate("/anything")).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "blocked {took:?} behind the refresh stuck on the hung IdP"
    );
    assert_eq!(bearer(&outcome), first_token, "the still-valid token");
    authz.stop().await;
}
