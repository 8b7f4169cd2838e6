//! Several providers on one oidc-authz, through the real gRPC server against two in-process IdPs:
//! each route's provider (Envoy's `context_extensions: { provider: NAME }`), each provider's own
//! callback, cookies and sessions (which never satisfy another provider's route), and an IdP that
//! is down failing only its own provider's routes.

mod support;

use std::sync::Arc;

use oidc_authz::clock::SystemClock;
use oidc_authz::session::SessionStore;
use support::idp::{CLIENT_ID, CLIENT_SECRET};
use support::{Authz, Browser, FakeIdp, KEY_A, Outcome, Req, SwitchableStore};

/// Provider `default` at `idp_a`, provider `b` at `b_issuer`, with the IdP's session id (`sid`)
/// as an upstream header so a test sees which IdP a session came from.
fn two_providers_yaml(idp_a: &FakeIdp, b_issuer: &str) -> String {
    format!(
        "issuer: {}\nclient_id: {CLIENT_ID}\nclient_secret: {CLIENT_SECRET}\nsession_secret: [{KEY_A}]\n\
         upstream_headers_claims: [sid]\nupstream_headers_names: [x-idp-session]\n\
         providers:\n  b:\n    issuer: {b_issuer}\n    redirect_uri: /b/callback\n    logout_path: /b/logout\n    backchannel_logout_path: /b/backchannel\n\
         policies:\n  b:\n    provider: b\n    upstream_headers_claims: [sid]\n    upstream_headers_names: [x-idp-session]\n",
        idp_a.issuer
    )
}

struct TwoProviders {
    idp_a: FakeIdp,
    idp_b: FakeIdp,
    authz: Authz,
}

async fn two_providers() -> TwoProviders {
    two_providers_on(SwitchableStore::memory()).await
}

async fn two_providers_on(store: Arc<dyn SessionStore>) -> TwoProviders {
    let idp_a = FakeIdp::start().await;
    let idp_b = FakeIdp::start().await;
    *idp_b.state.session_id.lock().unwrap() = "idp-b-session".into();
    let yaml = two_providers_yaml(&idp_a, &idp_b.issuer);
    let authz =
        Authz::start_discovering(&yaml, store, &["*"], false, Arc::new(SystemClock), None).await;
    TwoProviders {
        idp_a,
        idp_b,
        authz,
    }
}

/// A page load on the route of provider `b`.
fn on_b(path: &str) -> Req<'_> {
    Req::navigate(path).on_route("policy", "b")
}

/// Logs in at `idp` starting from `start`, which must redirect to that IdP.
async fn log_in(browser: &mut Browser, idp: &FakeIdp, start: Req<'_>) -> Outcome {
    let redirect = browser.send(start).await;
    assert_eq!(redirect.status(), 302, "{redirect:?}");
    assert!(
        redirect
            .location()
            .starts_with(&format!("{}/authorize?", idp.issuer)),
        "{}",
        redirect.location()
    );
    let authorization = idp.authorize(redirect.location());
    browser.callback(&authorization).await
}

#[tokio::test]
async fn each_provider_logs_in_at_its_own_idp_with_its_own_callback_and_cookies() {
    let TwoProviders {
        idp_a,
        idp_b,
        authz,
    } = two_providers().await;
    let mut browser = authz.browser();

    let start_b = browser.send(on_b("/app-b/page")).await;
    let params: std::collections::HashMap<String, String> = url::Url::parse(start_b.location())
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(params["redirect_uri"], "http://app.test/b/callback");
    assert!(browser.cookies.contains_key("session-b_login"));
    let done = browser.callback(&idp_b.authorize(start_b.location())).await;
    assert_eq!(done.status(), 302, "{done:?}");
    assert_eq!(done.location(), "/app-b/page");
    assert!(browser.cookies.contains_key("session-b"));
    assert!(!browser.cookies.contains_key("session"));
    assert_eq!((idp_a.code_exchanges(), idp_b.code_exchanges()), (0, 1));

    let done = log_in(&mut browser, &idp_a, Req::navigate("/app-a")).await;
    assert_eq!(done.status(), 302, "{done:?}");
    assert_eq!((idp_a.code_exchanges(), idp_b.code_exchanges()), (1, 1));

    let page_a = browser.send(Req::navigate("/app-a")).await;
    assert_eq!(page_a.upstream("x-idp-session"), Some("idp-session-1"));
    let page_b = browser.send(on_b("/app-b/page")).await;
    assert_eq!(page_b.upstream("x-idp-session"), Some("idp-b-session"));
    authz.stop().await;
}

#[tokio::test]
async fn a_session_of_one_provider_never_satisfies_another_providers_route() {
    sessions_do_not_cross(two_providers().await).await;
}

#[tokio::test]
async fn sessions_do_not_cross_in_redis_either() {
    let redis = support::redis::shared_redis();
    sessions_do_not_cross(two_providers_on(redis.store("providers-test:")).await).await;
}

async fn sessions_do_not_cross(
    TwoProviders {
        idp_a,
        idp_b,
        authz,
    }: TwoProviders,
) {
    let mut browser = authz.browser();
    let done = log_in(&mut browser, &idp_a, Req::navigate("/app-a")).await;
    assert_eq!(done.status(), 302, "{done:?}");
    assert_eq!(browser.send(Req::navigate("/app-a")).await.status(), 200);

    // Logged in at `default`: `b`'s route starts a login at b's IdP.
    let on_b_route = browser.send(on_b("/app-b")).await;
    assert_eq!(on_b_route.status(), 302, "{on_b_route:?}");
    assert!(
        on_b_route
            .location()
            .starts_with(&format!("{}/authorize?", idp_b.issuer))
    );

    // The same signed session cookie under b's name: b's sessions are elsewhere.
    let mut forger = authz.browser();
    let session_a = browser.cookies["session"].clone();
    forger.cookies.insert("session-b".into(), session_a.clone());
    let forged = forger.send(on_b("/app-b")).await;
    assert_eq!(forged.status(), 302, "{forged:?}");
    assert!(
        forged
            .location()
            .starts_with(&format!("{}/authorize?", idp_b.issuer))
    );
    // The other way round too.
    let mut browser_b = authz.browser();
    let done = log_in(&mut browser_b, &idp_b, on_b("/app-b")).await;
    assert_eq!(done.status(), 302, "{done:?}");
    let mut forger = authz.browser();
    forger
        .cookies
        .insert("session".into(), browser_b.cookies["session-b"].clone());
    assert_eq!(forger.send(Req::navigate("/app-a")).await.status(), 302);
    authz.stop().await;
}

#[tokio::test]
async fn no_provider_sees_another_providers_cookies_upstream() {
    let TwoProviders {
        idp_a,
        idp_b,
        authz,
    } = two_providers().await;
    let mut browser = authz.browser();
    log_in(&mut browser, &idp_a, Req::navigate("/app-a")).await;
    log_in(&mut browser, &idp_b, on_b("/app-b")).await;
    browser.cookies.insert("theme".into(), "dark".into());
    for page in [
        browser.send(Req::navigate("/app-a")).await,
        browser.send(on_b("/app-b")).await,
    ] {
        assert_eq!(page.upstream("cookie"), Some("theme=dark"), "{page:?}");
    }
    authz.stop().await;
}

#[tokio::test]
async fn a_callback_reaches_only_its_own_providers_pending_logins() {
    let TwoProviders { idp_b, authz, .. } = two_providers().await;
    let mut browser = authz.browser();
    // A login started on b's route, answered at the default provider's callback path.
    let start = browser.send(on_b("/app-b")).await;
    let mut authorization = idp_b.authorize(start.location());
    authorization.redirect_uri = "http://app.test/callback".into();
    let wrong = browser.callback(&authorization).await;
    assert_eq!(wrong.status(), 400, "{wrong:?}");
    assert_eq!(idp_b.code_exchanges(), 0);
    authz.stop().await;
}

#[tokio::test]
async fn logging_out_of_one_provider_leaves_the_other_logged_in() {
    let TwoProviders {
        idp_a,
        idp_b,
        authz,
    } = two_providers().await;
    let mut browser = authz.browser();
    log_in(&mut browser, &idp_a, Req::navigate("/app-a")).await;
    log_in(&mut browser, &idp_b, on_b("/app-b")).await;
    let logout = browser
        .send(Req::navigate("/b/logout").with_header("sec-fetch-site", "same-origin"))
        .await;
    assert_eq!(logout.status(), 302, "{logout:?}");
    assert!(!browser.cookies.contains_key("session-b"));
    assert_eq!(browser.send(on_b("/app-b")).await.status(), 302);
    assert_eq!(browser.send(Req::navigate("/app-a")).await.status(), 200);
    authz.stop().await;
}

#[tokio::test]
async fn the_routes_policy_chooses_the_provider_and_an_unknown_policy_fails_closed() {
    let TwoProviders { idp_a, authz, .. } = two_providers().await;
    let mut browser = authz.browser();
    log_in(&mut browser, &idp_a, Req::navigate("/app-a")).await;
    let unknown = browser
        .send(Req::navigate("/app-a").on_route("policy", "nope"))
        .await;
    assert!(matches!(unknown, Outcome::Error(_)), "{unknown:?}");
    // Only a policy chooses a provider: any other route setting changes nothing.
    let other = browser
        .send(Req::navigate("/app-a").on_route("provider", "b"))
        .await;
    assert_eq!(other.status(), 200);
    authz.stop().await;
}

#[tokio::test]
async fn an_idp_that_is_down_fails_only_its_providers_routes() {
    let idp_a = FakeIdp::start().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down_issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let yaml = two_providers_yaml(&idp_a, &down_issuer);
    let authz = Authz::start_discovering(
        &yaml,
        SwitchableStore::memory(),
        &["default"],
        true,
        Arc::new(SystemClock),
        None,
    )
    .await;
    let mut browser = authz.browser();

    let on_down = browser.send(on_b("/app-b")).await;
    assert!(matches!(on_down, Outcome::Error(_)), "{on_down:?}");
    assert_eq!(on_down.status(), 503);

    let done = log_in(&mut browser, &idp_a, Req::navigate("/app-a")).await;
    assert_eq!(done.status(), 302, "{done:?}");
    assert_eq!(browser.send(Req::navigate("/app-a")).await.status(), 200);
    assert_eq!(browser.send(on_b("/app-b")).await.status(), 503);

    let admin = format!("http://{}", authz.admin);
    let ready = reqwest::get(format!("{admin}/readyz")).await.unwrap();
    // Ready: the default provider's routes work; `b`'s fail on their own, named here.
    assert_eq!(ready.status(), 200);
    let body = ready.text().await.unwrap();
    assert!(
        body.starts_with("ready; provider `b`: OpenID Provider not discovered yet"),
        "{body}"
    );
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "oidc_authz_idp_ready 0",
        "oidc_authz_provider_ready{provider=\"default\"} 1",
        "oidc_authz_provider_ready{provider=\"b\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    authz.stop().await;
}

#[tokio::test]
async fn a_backchannel_logout_ends_only_its_providers_sessions_of_that_user() {
    let TwoProviders {
        idp_a,
        idp_b,
        authz,
    } = two_providers().await;
    let mut browser = authz.browser();
    log_in(&mut browser, &idp_a, Req::navigate("/app-a")).await;
    log_in(&mut browser, &idp_b, on_b("/app-b")).await;
    // The same user (`sub`) at both IdPs; b's IdP logs them out.
    let token = idp_b.logout_token(None, Some(support::idp::SUBJECT), "jti-b-1");
    let body = format!("logout_token={token}");
    let logout = authz
        .browser()
        .send(Req {
            method: "POST",
            path: "/b/backchannel",
            headers: vec![("content-type", "application/x-www-form-urlencoded")],
            body: &body,
            ..Default::default()
        })
        .await;
    assert_eq!(logout.status(), 200, "{logout:?}");
    assert_eq!(browser.send(on_b("/app-b")).await.status(), 302);
    assert_eq!(browser.send(Req::navigate("/app-a")).await.status(), 200);
    authz.stop().await;
}
