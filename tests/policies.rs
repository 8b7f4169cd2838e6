//! Policies through the real gRPC server against the in-process IdP: the route's policy from
//! `context_extensions`, rules on a session's claims (403, never a login), anonymous routes, and
//! bearer access tokens (401 `invalid_token` vs 403 `insufficient_scope`).

mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use support::idp::{self, now};

use oidc_authz::clock::ManualClock;
use support::{Authz, Browser, FakeIdp, Outcome, Req, SwitchableStore};

const POLICIES: &str = "\
upstream_headers_claims: [email]
upstream_headers_names: [x-email]
policies:
  staff: { groups_required: ['admins dev', root], upstream_headers_claims: [email, groups], upstream_headers_names: [x-email, x-groups] }
  finance: { groups_required: [finance] }
  keycloak: { roles_required: [admin], roles_claim: realm_access.roles }
  public: { auth_methods: [session], anonymous: true, upstream_headers_claims: [email], upstream_headers_names: [x-email] }
  api:
    auth_methods: [bearer]
    audience_required: [orders-api]
    scopes_required: ['orders:read']
    upstream_headers_claims: [sub]
    upstream_headers_names: [x-user]
  mixed: { auth_methods: [session, bearer], audience_required: [orders-api, envoy] }
  opaque: { auth_methods: [introspection], audience_required: [orders-api], scopes_required: ['orders:read'] }
";

async fn setup() -> (FakeIdp, Authz) {
    let idp = FakeIdp::start().await;
    let authz = Authz::start(&idp, POLICIES, SwitchableStore::memory()).await;
    (idp, authz)
}

async fn logged_in(idp: &FakeIdp, authz: &Authz) -> Browser {
    let mut browser = authz.browser();
    let done = browser.login(idp, "/").await;
    assert_eq!(done.status(), 302, "{done:?}");
    browser
}

fn on_route(browser: &Browser, policy: &str) -> Browser {
    let mut browser = browser.clone();
    browser.route_policy = Some(policy.into());
    browser
}

fn removed(outcome: &Outcome) -> &[String] {
    match outcome {
        Outcome::Allowed { removed, .. } => removed,
        other => panic!("expected the request to be allowed, got {other:?}"),
    }
}

fn body(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Denied { body, .. } => body,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn the_route_names_the_policy_and_an_unknown_name_fails_closed() {
    let (idp, authz) = setup().await;
    let browser = logged_in(&idp, &authz).await;
    let page = Req::navigate("/");
    assert_eq!(
        browser.clone().send(page).await.status(),
        200,
        "no name: default"
    );
    let finance = on_route(&browser, "finance").send(Req::navigate("/")).await;
    assert_eq!(
        finance.status(),
        403,
        "the route's policy applies: {finance:?}"
    );
    let unknown = on_route(&browser, "financ").send(Req::navigate("/")).await;
    let Outcome::Error(status) = &unknown else {
        panic!("expected a gRPC error (Envoy answers 503), got {unknown:?}");
    };
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let mut stranger = authz.browser();
    stranger.route_policy = Some("nope".into());
    assert_eq!(stranger.send(Req::navigate("/")).await.status(), 503);
    authz.stop().await;
}

#[tokio::test]
async fn a_user_in_the_groups_passes_and_one_outside_gets_403_not_a_login() {
    let (idp, authz) = setup().await;
    let browser = logged_in(&idp, &authz).await;
    let staff = on_route(&browser, "staff").send(Req::navigate("/")).await;
    assert_eq!(staff.status(), 200, "admins AND dev: {staff:?}");
    assert_eq!(staff.upstream("x-email"), Some("alice@example.com"));
    assert_eq!(staff.upstream("x-groups"), Some(r#"["admins","dev"]"#));
    assert!(
        staff
            .upstream("authorization")
            .unwrap()
            .starts_with("Bearer at-")
    );

    let mut finance = on_route(&browser, "finance");
    let page = finance.send(Req::navigate("/reports")).await;
    assert_eq!(page.status(), 403, "{page:?}");
    assert!(page.header("location").is_none(), "never a new login");
    let html = body(&page);
    assert!(
        html.contains("signed in as alice@example.com") && html.contains("href=\"/logout\""),
        "{html}"
    );
    assert!(
        page.header("www-authenticate").is_none(),
        "no bearer challenge for a browser"
    );
    assert!(finance.cookies.contains_key("session"), "the session stays");

    let api = finance.send(Req::api("/reports.json")).await;
    assert_eq!(api.status(), 403);
    assert_eq!(
        api.header("www-authenticate"),
        Some("Bearer realm=\"oidc-authz\", error=\"insufficient_scope\"")
    );
    let json: Value = serde_json::from_str(body(&api)).unwrap();
    assert_eq!(json["error"], "insufficient_scope");

    let missing_claim = on_route(&browser, "keycloak")
        .send(Req::navigate("/"))
        .await;
    assert_eq!(
        missing_claim.status(),
        403,
        "no realm_access claim: the rule fails"
    );
    authz.stop().await;
}

#[tokio::test]
async fn a_public_route_passes_without_identity_and_with_it_when_there_is_one() {
    let (idp, authz) = setup().await;
    let mut stranger = authz.browser();
    stranger.route_policy = Some("public".into());
    let anonymous = stranger
        .send(
            Req::navigate("/")
                .with_header("x-email", "admin@evil.example")
                .with_header("authorization", "Bearer spoofed"),
        )
        .await;
    assert_eq!(anonymous.status(), 200, "{anonymous:?}");
    assert_eq!(anonymous.upstream("x-email"), None);
    let removed_headers = removed(&anonymous);
    assert!(
        removed_headers.contains(&"x-email".to_string())
            && removed_headers.contains(&"authorization".to_string()),
        "client copies of identity headers are removed: {removed_headers:?}"
    );
    assert!(stranger.cookies.is_empty(), "no login started");

    let browser = logged_in(&idp, &authz).await;
    let known = on_route(&browser, "public").send(Req::navigate("/")).await;
    assert_eq!(known.upstream("x-email"), Some("alice@example.com"));
    authz.stop().await;
}

/// An access token as the IdP would issue it for the orders API.
fn access_token(idp: &FakeIdp, change: Value) -> String {
    let now = now();
    let mut claims = json!({
        "iss": idp.issuer, "sub": "service-7", "aud": ["orders-api"], "exp": now + 300,
        "iat": now, "scope": "openid orders:read", "client_id": idp::CLIENT_ID,
    });
    for (name, value) in change.as_object().unwrap() {
        claims[name] = value.clone();
    }
    idp.sign(&claims)
}

async fn call_api(authz: &Authz, policy: &str, token: Option<&str>) -> Outcome {
    let mut client = authz.browser();
    client.route_policy = Some(policy.into());
    let header = token.map(|token| format!("Bearer {token}"));
    let mut request = Req::api("/orders");
    if let Some(header) = &header {
        request = request.with_header("authorization", header);
    }
    client.send(request).await
}

#[tokio::test]
async fn a_valid_bearer_token_passes_with_its_own_authorization_header() {
    let (idp, authz) = setup().await;
    let token = access_token(&idp, json!({}));
    let allowed = call_api(&authz, "api", Some(&token)).await;
    assert_eq!(allowed.status(), 200, "{allowed:?}");
    assert_eq!(allowed.upstream("x-user"), Some("service-7"));
    assert_eq!(
        allowed.upstream("authorization"),
        None,
        "left as the client sent it"
    );
    assert!(!removed(&allowed).iter().any(|name| name == "authorization"));
    authz.stop().await;
}

#[tokio::test]
async fn bad_bearer_tokens_get_401_invalid_token_and_insufficient_ones_403() {
    let (idp, authz) = setup().await;
    let invalid = "Bearer realm=\"oidc-authz\", error=\"invalid_token\"";
    let forged = {
        let token = access_token(&idp, json!({}));
        let (signed, _) = token.rsplit_once('.').unwrap();
        format!("{signed}.{}", "A".repeat(342))
    };
    let cases = [
        ("forged", forged),
        ("expired", access_token(&idp, json!({"exp": now() - 3600}))),
        (
            "wrong audience",
            access_token(&idp, json!({"aud": "billing-api"})),
        ),
        (
            "wrong issuer",
            access_token(&idp, json!({"iss": "http://127.0.0.1:1"})),
        ),
        ("not a JWT", "opaque-token".to_owned()),
    ];
    for (reason, token) in cases {
        let outcome = call_api(&authz, "api", Some(&token)).await;
        assert_eq!(outcome.status(), 401, "{reason}: {outcome:?}");
        assert_eq!(
            outcome.header("www-authenticate"),
            Some(invalid),
            "{reason}"
        );
    }
    let no_scope = access_token(&idp, json!({"scope": "openid"}));
    let outcome = call_api(&authz, "api", Some(&no_scope)).await;
    assert_eq!(outcome.status(), 403, "{outcome:?}");
    assert_eq!(
        outcome.header("www-authenticate"),
        Some("Bearer realm=\"oidc-authz\", error=\"insufficient_scope\"")
    );
    authz.stop().await;
}

#[tokio::test]
async fn without_credentials_apis_get_a_challenge_and_browsers_a_page_never_a_redirect() {
    let (idp, authz) = setup().await;
    let api = call_api(&authz, "api", None).await;
    assert_eq!(api.status(), 401);
    assert_eq!(
        api.header("www-authenticate"),
        Some("Bearer realm=\"oidc-authz\"")
    );
    let mut browser = logged_in(&idp, &authz).await;
    browser.route_policy = Some("api".into());
    let page = browser.send(Req::navigate("/orders")).await;
    assert_eq!(
        page.status(),
        401,
        "a session does not count on a bearer route: {page:?}"
    );
    assert!(page.header("location").is_none() && page.header("www-authenticate").is_none());
    authz.stop().await;
}

#[tokio::test]
async fn a_route_may_take_a_session_or_a_bearer_token() {
    let (idp, authz) = setup().await;
    let token = access_token(&idp, json!({}));
    assert_eq!(call_api(&authz, "mixed", Some(&token)).await.status(), 200);
    let browser = logged_in(&idp, &authz).await;
    let session = on_route(&browser, "mixed").send(Req::api("/orders")).await;
    assert_eq!(
        session.status(),
        200,
        "the ID token's aud is envoy: {session:?}"
    );
    // The default policy takes no tokens: a bearer header there is not looked at.
    let mut stranger = authz.browser();
    let page = stranger
        .send(Req::navigate("/").with_header("authorization", &format!("Bearer {token}")))
        .await;
    assert_eq!(page.status(), 302, "a login, as before: {page:?}");
    authz.stop().await;
}

#[tokio::test]
async fn opaque_tokens_are_introspected_and_the_answers_cached_until_the_ttl() {
    let idp = FakeIdp::start().await;
    let clock = ManualClock::new(now());
    let authz = Authz::start_with_clock(
        &idp,
        &format!("{POLICIES}introspection_cache_ttl: 30\n"),
        SwitchableStore::memory(),
        Arc::new(clock.clone()),
    )
    .await;
    let exp = now() + 3600;
    idp.issue_opaque_token(
        "opaque-1",
        json!({"aud": "orders-api", "scope": "orders:read", "sub": "svc", "exp": exp}),
    );
    idp.issue_opaque_token(
        "opaque-no-scope",
        json!({"aud": "orders-api", "scope": "other", "exp": exp}),
    );
    idp.issue_opaque_token("opaque-other-api", json!({"aud": "billing", "exp": exp}));

    assert_eq!(
        call_api(&authz, "opaque", Some("opaque-1")).await.status(),
        200
    );
    assert_eq!(
        call_api(&authz, "opaque", Some("opaque-1")).await.status(),
        200
    );
    assert_eq!(
        idp.introspections(),
        1,
        "the second answer came from the cache"
    );
    clock.advance(31);
    assert_eq!(
        call_api(&authz, "opaque", Some("opaque-1")).await.status(),
        200
    );
    assert_eq!(idp.introspections(), 2, "the TTL ended the cached answer");

    let inactive = call_api(&authz, "opaque", Some("revoked-or-unknown")).await;
    assert_eq!(inactive.status(), 401, "{inactive:?}");
    assert_eq!(
        inactive.header("www-authenticate"),
        Some("Bearer realm=\"oidc-authz\", error=\"invalid_token\"")
    );
    assert_eq!(
        call_api(&authz, "opaque", Some("opaque-other-api"))
            .await
            .status(),
        401
    );
    assert_eq!(
        call_api(&authz, "opaque", Some("opaque-no-scope"))
            .await
            .status(),
        403
    );

    // The IdP down: could not decide (Envoy answers 503), never an allow or a 401.
    idp.state
        .token_endpoint_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let down = call_api(&authz, "opaque", Some("never-seen")).await;
    assert!(matches!(down, Outcome::Error(_)), "{down:?}");
    authz.stop().await;
}

#[tokio::test]
async fn userinfo_claims_count_from_login_and_are_fetched_again_at_refresh() {
    let idp = FakeIdp::start().await;
    let clock = ManualClock::new(now());
    let config = "userinfo: true\n\
                  upstream_headers_claims: [department]\n\
                  upstream_headers_names: [x-department]\n\
                  policies:\n  research: { claims_required: { department: research } }\n";
    let authz = Authz::start_with_clock(
        &idp,
        config,
        SwitchableStore::memory(),
        Arc::new(clock.clone()),
    )
    .await;
    let browser = logged_in(&idp, &authz).await;
    let mut research = on_route(&browser, "research");
    let page = research.send(Req::navigate("/")).await;
    assert_eq!(page.status(), 200, "the claim came from userinfo: {page:?}");
    let home = browser.clone().send(Req::navigate("/")).await;
    assert_eq!(home.upstream("x-department"), Some("research"));
    assert_eq!(
        idp.state
            .userinfo_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    *idp.state.userinfo_claims.lock().unwrap() = json!({ "department": "sales" });
    clock.advance(290); // the access token (300 s) is within refresh_margin (30 s): refresh
    let page = research.send(Req::navigate("/")).await;
    assert_eq!(idp.refreshes(), 1);
    assert_eq!(
        page.status(),
        403,
        "the refreshed userinfo counts: {page:?}"
    );
    authz.stop().await;
}
