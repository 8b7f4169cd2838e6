//! The real `Provider` against the in-process IdP: a token naming a `kid` we have never seen makes
//! us refetch the key set at once (no waiting window after the startup fetch), the same forged
//! `kid` is not refetched again, and when the key set keeps failing, discovery runs again.
mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oidc_authz::clock::SystemClock;
use oidc_authz::config::load_from_str;
use oidc_authz::metrics::{Metrics, ProviderView};
use oidc_authz::oidc::IdentityProvider;
use oidc_authz::oidc::provider::{Provider, ProviderSettings};
use oidc_authz::secret::Secret;
use support::{FakeIdp, idp};

const OTHER_RSA_PEM: &[u8] = include_bytes!("fixtures/other-rsa.pem");

async fn provider(idp: &FakeIdp) -> Arc<Provider> {
    let yaml = format!(
        "issuer: {}\nclient_id: {}\nclient_secret: {}\nsession_secret: {}\n",
        idp.issuer,
        idp::CLIENT_ID,
        idp::CLIENT_SECRET,
        support::KEY_A
    );
    let (config, _) = load_from_str(&yaml, "test.yaml", Vec::new()).unwrap();
    let provider = Provider::new(
        ProviderSettings::from_config(&config),
        Arc::new(SystemClock),
    )
    .unwrap();
    provider.discover().await.unwrap();
    provider
}

/// A logout token signed by a key the IdP does not have, under `kid`.
fn forged_logout_token(issuer: &str, kid: &str) -> Secret {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": issuer, "aud": idp::CLIENT_ID, "iat": now, "jti": kid, "sub": "alice",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}}
    });
    let key = EncodingKey::from_rsa_pem(OTHER_RSA_PEM).unwrap();
    Secret::new(jsonwebtoken::encode(&header, &claims, &key).unwrap())
}

#[tokio::test]
async fn an_unknown_kid_is_fetched_at_once_and_a_forged_one_only_once() {
    let idp = FakeIdp::start().await;
    let provider = provider(&idp).await;
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 1);
    // Right after the startup fetch: a new kid is looked up at once.
    let token = forged_logout_token(&idp.issuer, "rotated-1");
    assert!(provider.verify_logout_token(&token).await.is_err());
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(provider.verify_logout_token(&token).await.is_err());
    assert_eq!(
        idp.state.jwks_fetches.load(Ordering::SeqCst),
        2,
        "a kid the IdP did not publish is remembered"
    );
    let metrics = Metrics::default().render(&[ProviderView {
        name: "default",
        ready: true,
        idp: provider.idp_metrics(),
    }]);
    for line in [
        "oidc_authz_jwks_refetches_total{provider=\"default\"} 1",
        "oidc_authz_idp_request_duration_seconds_count{provider=\"default\",endpoint=\"jwks\",outcome=\"ok\"} 2",
        "oidc_authz_idp_request_duration_seconds_count{provider=\"default\",endpoint=\"discovery\",outcome=\"ok\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn discovery_runs_again_when_the_key_set_keeps_failing() {
    let idp = FakeIdp::start().await;
    let provider = provider(&idp).await;
    assert_eq!(idp.state.discoveries.load(Ordering::SeqCst), 1);
    idp.state.jwks_down.store(true, Ordering::SeqCst);
    for attempt in 0..3 {
        let token = forged_logout_token(&idp.issuer, &format!("kid-{attempt}"));
        assert!(provider.verify_logout_token(&token).await.is_err());
        tokio::time::sleep(Duration::from_millis(1050)).await;
    }
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 1 + 3 + 1);
    assert_eq!(
        idp.state.discoveries.load(Ordering::SeqCst),
        2,
        "three failed key-set fetches in a row run discovery again"
    );
    // The IdP is back: keys work again, and discovery is not re-run on every request.
    idp.state.jwks_down.store(false, Ordering::SeqCst);
    let token = forged_logout_token(&idp.issuer, "kid-after");
    assert!(provider.verify_logout_token(&token).await.is_err());
    assert_eq!(idp.state.discoveries.load(Ordering::SeqCst), 2);
}
