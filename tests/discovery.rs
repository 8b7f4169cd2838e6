//! Startup while the IdP is down: discovery retries with a short cap (5 s) and at once (at most
//! once a second) when a login needs the IdP; until it succeeds, gRPC health says NOT_SERVING and
//! `/readyz` says why. Provider-level tests run on a paused clock (tokio's auto-advance), so a
//! 40 s outage takes no real time.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use oidc_authz::clock::SystemClock;
use oidc_authz::config::load_from_str;
use oidc_authz::oidc::IdentityProvider;
use oidc_authz::oidc::provider::{
    DISCOVERY_BACKOFF_CAP, Provider, ProviderSettings, next_discovery_backoff,
};
use support::{Authz, FakeIdp, KEY_A, Outcome, Req, SwitchableStore, idp};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

fn provider_for(idp: &FakeIdp) -> Arc<Provider> {
    let yaml = format!(
        "issuer: {}\nclient_id: {}\nclient_secret: {}\nsession_secret: [{KEY_A}]\n",
        idp.issuer,
        idp::CLIENT_ID,
        idp::CLIENT_SECRET
    );
    let (config, _) = load_from_str(&yaml, "test.yaml", Vec::new()).unwrap();
    Provider::new(
        ProviderSettings::from_config(&config),
        Arc::new(SystemClock),
    )
    .unwrap()
}

/// Sleeps (virtual time) in 100 ms steps until the provider is discovered; the time it took.
async fn discovered_within(provider: &Provider, bound: Duration) -> Option<Duration> {
    let started = tokio::time::Instant::now();
    while started.elapsed() <= bound {
        if provider.metadata().is_some() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[test]
fn the_discovery_backoff_never_exceeds_five_seconds() {
    let mut backoff = Duration::from_secs(1);
    for _ in 0..20 {
        backoff = next_discovery_backoff(backoff);
        assert!(backoff <= Duration::from_secs(5), "{backoff:?}");
    }
    assert_eq!(backoff, DISCOVERY_BACKOFF_CAP);
}

/// Issue 13: with a 30 s cap, an IdP back after 40 s was found only at 61 s.
#[tokio::test(start_paused = true)]
async fn an_idp_back_after_a_long_outage_is_discovered_within_five_seconds() {
    let idp = FakeIdp::start().await;
    idp.state.jwks_down.store(true, Ordering::SeqCst);
    let provider = provider_for(&idp);
    let discovery = provider.spawn_discovery();
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert!(provider.metadata().is_none(), "the IdP is down");

    idp.state.jwks_down.store(false, Ordering::SeqCst);
    let took = discovered_within(&provider, Duration::from_secs(6)).await;
    assert!(
        took.is_some_and(|took| took <= Duration::from_millis(5_100)),
        "discovered {took:?} after the IdP returned"
    );
    discovery.abort();
}

/// A login that finds the IdP undiscovered gets discovery retried at once, not at the next
/// backoff step; many logins start at most one attempt a second.
#[tokio::test(start_paused = true)]
async fn a_login_needing_the_idp_retries_discovery_at_once_at_most_once_a_second() {
    let idp = FakeIdp::start().await;
    idp.state.jwks_down.store(true, Ordering::SeqCst);
    let provider = provider_for(&idp);
    let discovery = provider.spawn_discovery();
    // Attempts at 0, 1 and 3 s; the next one is due at 7 s.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let attempts_before = idp.state.jwks_fetches.load(Ordering::SeqCst);
    for _ in 0..30 {
        provider.discovery_wanted();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let asked_for = idp.state.jwks_fetches.load(Ordering::SeqCst) - attempts_before;
    assert!(
        (2..=4).contains(&asked_for),
        "3 s of logins asking: {asked_for} attempts (at most one a second)"
    );

    idp.state.jwks_down.store(false, Ordering::SeqCst);
    provider.discovery_wanted();
    let took = discovered_within(&provider, Duration::from_secs(3)).await;
    assert!(
        took.is_some_and(|took| took <= Duration::from_millis(1_100)),
        "discovered {took:?} after a login asked"
    );
    discovery.abort();
}

async fn health(authz: &Authz) -> ServingStatus {
    authz
        .health_client()
        .check(HealthCheckRequest {
            service: "envoy.service.auth.v3.Authorization".into(),
        })
        .await
        .expect("the health service answers")
        .into_inner()
        .status()
}

/// The real server started while the IdP is down: NOT_SERVING and a `/readyz` that says why; a
/// browser navigation brings discovery forward, and then health says SERVING.
#[tokio::test]
async fn the_server_is_not_serving_until_discovery_and_a_navigation_brings_it_forward() {
    let idp = FakeIdp::start().await;
    idp.state.jwks_down.store(true, Ordering::SeqCst);
    let yaml = format!(
        "issuer: {}\nclient_id: {}\nclient_secret: {}\nsession_secret: [{KEY_A}]\n",
        idp.issuer,
        idp::CLIENT_ID,
        idp::CLIENT_SECRET
    );
    let authz = Authz::start_with_yaml(&yaml, SwitchableStore::memory(), false).await;
    // Attempts at 0, 1 and 3 s; the next one is due at 7 s.
    tokio::time::sleep(Duration::from_millis(3_300)).await;
    assert_eq!(health(&authz).await, ServingStatus::NotServing);
    let ready = reqwest::get(format!("http://{}/readyz", authz.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let reason = ready.text().await.unwrap();
    assert!(
        reason.starts_with("OpenID Provider not discovered yet: last attempt: GET ")
            && reason.contains("/jwks"),
        "{reason}"
    );

    idp.state.jwks_down.store(false, Ordering::SeqCst);
    let mut browser = authz.browser();
    let first = browser.send(Req::navigate("/app")).await;
    assert!(matches!(first, Outcome::Error(_)), "{first:?}");
    let mut outcome = first;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        outcome = browser.send(Req::navigate("/app")).await;
        if !matches!(outcome, Outcome::Error(_)) {
            break;
        }
    }
    assert_eq!(outcome.status(), 302, "a login within 1.5 s: {outcome:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(health(&authz).await, ServingStatus::Serving);
    authz.stop().await;
}
