//! The whole login flow through the real gRPC server against an in-process IdP: redirect →
//! callback (query and form_post) → session cookie → OK with Bearer, and the ways it must refuse.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use oidc_authz::session::memory::MemoryStore;
use support::idp::AuthorizationResponse;
use support::{Authz, Browser, FakeIdp, Outcome, Req, SwitchableStore};

fn query(location: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

async fn setup(extra: &str) -> (FakeIdp, Authz, Arc<SwitchableStore>) {
    let idp = FakeIdp::start().await;
    let store = SwitchableStore::memory();
    let authz = Authz::start(&idp, extra, store.clone()).await;
    (idp, authz, store)
}

async fn logged_in(idp: &FakeIdp, authz: &Authz) -> Browser {
    let mut browser = authz.browser();
    let done = browser.login(idp, "/anything?hello=world").await;
    assert_eq!(done.status(), 302, "{done:?}");
    browser
}

#[tokio::test]
async fn query_mode_login_returns_to_the_original_url_with_a_bearer_token() {
    let (idp, authz, _) = setup("response_mode: query").await;
    let mut browser = authz.browser();

    let start = browser
        .send(Req::navigate("/anything?hello=world&x=%2F1"))
        .await;
    assert_eq!(start.status(), 302);
    let location = start.location();
    assert!(
        location.starts_with(&format!("{}/authorize?", idp.issuer)),
        "{location}"
    );
    let params = query(location);
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["scope"], "openid profile email");
    assert_eq!(params["redirect_uri"], "http://app.test/callback");
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["state"].len(), 43);
    assert_ne!(params["state"], params["nonce"]);
    assert!(!params.contains_key("response_mode"));
    assert!(
        browser.cookies.contains_key("session_login"),
        "{:?}",
        browser.cookies
    );

    let authorization = idp.authorize(location);
    let done = browser.callback(&authorization).await;
    assert_eq!(done.status(), 302);
    assert_eq!(done.location(), "/anything?hello=world&x=%2F1");
    assert!(browser.cookies.contains_key("session"));
    assert!(
        !browser.cookies.contains_key("session_login"),
        "login cookie cleared"
    );

    let page = browser.send(Req::navigate("/anything?hello=world")).await;
    let bearer = page
        .upstream("authorization")
        .expect("Authorization injected");
    assert!(bearer.starts_with("Bearer at-"), "{bearer}");
    // Overwrite, never append: both the legacy flag and the new action.
    let Outcome::Allowed { set, .. } = &page else {
        unreachable!()
    };
    #[allow(deprecated)]
    let append = set[0].append;
    assert_eq!(append.map(|b| b.value), Some(false));
    assert_eq!(
        set[0].append_action,
        HeaderAppendAction::OverwriteIfExistsOrAdd as i32
    );
    // Our cookies do not travel upstream; the application's own cookies do.
    let Outcome::Allowed { removed, .. } = &page else {
        unreachable!()
    };
    assert_eq!(removed, &["cookie"]);
    browser.cookies.insert("app_pref".into(), "dark".into());
    let page_with_app_cookie = browser.send(Req::navigate("/anything")).await;
    assert_eq!(
        page_with_app_cookie.upstream("cookie"),
        Some("app_pref=dark")
    );
    browser.cookies.remove("app_pref");
    // No token ever reached a URL the browser saw.
    for url in [location, done.location()] {
        assert!(!url.contains("at-") && !url.contains("eyJ"), "{url}");
    }
    assert_eq!(idp.code_exchanges(), 1);
    // The session path does not touch the IdP.
    for _ in 0..5 {
        assert_eq!(browser.send(Req::navigate("/other")).await.status(), 200);
    }
    assert_eq!(idp.code_exchanges(), 1);
    authz.stop().await;
}

#[tokio::test]
async fn form_post_login_answers_303_and_uses_a_same_site_none_login_cookie() {
    let (idp, authz, _) = setup("response_mode: form_post\nsession_cookie_secure: always").await;
    let mut browser = authz.browser();
    let start = browser.send(Req::navigate("/anything?hello=world")).await;
    let set_cookie = start.header("set-cookie").unwrap();
    assert!(
        set_cookie.starts_with("__Host-session_login="),
        "{set_cookie}"
    );
    assert!(
        set_cookie.contains("SameSite=None") && set_cookie.contains("Secure"),
        "{set_cookie}"
    );
    assert_eq!(query(start.location())["response_mode"], "form_post");

    let authorization = idp.authorize(start.location());
    assert!(authorization.form_post);
    let done = browser.callback(&authorization).await;
    assert_eq!(done.status(), 303, "{done:?}");
    assert_eq!(done.location(), "/anything?hello=world");
    let session_cookie = done.header("set-cookie").unwrap();
    assert!(
        session_cookie.starts_with("__Host-session=v1."),
        "{session_cookie}"
    );
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"));
    let page = browser.send(Req::navigate("/anything?hello=world")).await;
    assert!(
        page.upstream("authorization")
            .unwrap()
            .starts_with("Bearer ")
    );
    authz.stop().await;
}

#[tokio::test]
async fn a_form_post_callback_whose_body_envoy_cut_short_is_refused() {
    let (idp, authz, _) = setup("response_mode: form_post\nsession_cookie_secure: always").await;
    let mut browser = authz.browser();
    let start = browser.send(Req::navigate("/app")).await;
    let authorization = idp.authorize(start.location());
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &authorization.code)
        .append_pair("state", &authorization.state)
        .finish();
    let cut = browser
        .send(Req {
            method: "POST",
            path: "/callback",
            headers: vec![
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-envoy-auth-partial-body", "true"),
            ],
            body: &body,
            context_extensions: Vec::new(),
        })
        .await;
    assert_eq!(cut.status(), 400, "{cut:?}");
    assert_eq!(idp.code_exchanges(), 0);
    authz.stop().await;
}

#[tokio::test]
async fn client_secret_post_and_pkce_never_are_honoured() {
    let idp = FakeIdp::start().await;
    idp.state.expect_post_auth.store(true, Ordering::SeqCst);
    let authz = Authz::start(
        &idp,
        "client_auth: client_secret_post\npkce: never",
        SwitchableStore::memory(),
    )
    .await;
    let mut browser = authz.browser();
    let start = browser.send(Req::navigate("/")).await;
    assert!(!query(start.location()).contains_key("code_challenge"));
    let done = browser.callback(&idp.authorize(start.location())).await;
    assert_eq!(done.status(), 302, "{done:?}");
    assert_eq!(browser.send(Req::navigate("/")).await.status(), 200);
    authz.stop().await;
}

#[tokio::test]
async fn preserve_query_args_false_drops_the_query() {
    let (idp, authz, _) = setup("preserve_query_args: false").await;
    let mut browser = authz.browser();
    let done = browser.login(&idp, "/anything?hello=world").await;
    assert_eq!(done.location(), "/anything");
    authz.stop().await;
}

#[tokio::test]
async fn hosts_outside_allowed_hosts_get_400_and_no_redirect_uri() {
    let (idp, authz, _) = setup("allowed_hosts: [App.Test]").await;
    let mut stranger = authz.browser();
    stranger.origin_host = "evil.test".into();
    let refused = stranger.send(Req::navigate("/anything")).await;
    assert_eq!(refused.status(), 400, "{refused:?}");
    assert!(stranger.cookies.is_empty(), "no login started");
    let mut browser = authz.browser();
    let done = browser.login(&idp, "/anything").await;
    assert_eq!(done.status(), 302, "{done:?}");
    authz.stop().await;
}

#[tokio::test]
async fn scripts_and_api_clients_get_401_not_a_redirect() {
    let (_idp, authz, _) = setup("").await;
    let mut browser = authz.browser();
    let xhr = browser
        .send(Req::navigate("/api").with_header("x-requested-with", "XMLHttpRequest"))
        .await;
    assert_eq!(xhr.status(), 401);
    assert_eq!(
        xhr.header("www-authenticate"),
        Some("Bearer realm=\"oidc-authz\"")
    );
    let json = Req {
        method: "GET",
        path: "/api",
        headers: vec![("accept", "application/json")],
        body: "",
        ..Default::default()
    };
    assert_eq!(browser.send(json).await.status(), 401);
    let post = Req {
        method: "POST",
        path: "/api",
        headers: vec![],
        body: "x=1",
        ..Default::default()
    };
    assert_eq!(browser.send(post).await.status(), 401);
    authz.stop().await;
}

#[tokio::test]
async fn a_tampered_cookie_starts_a_new_login() {
    let (idp, authz, _) = setup("").await;
    let mut browser = logged_in(&idp, &authz).await;
    let cookie = browser.cookies.get_mut("session").unwrap();
    let last = cookie.pop().unwrap();
    cookie.push(if last == 'A' { 'B' } else { 'A' });
    let outcome = browser.send(Req::navigate("/anything")).await;
    assert_eq!(outcome.status(), 302);
    assert!(outcome.location().starts_with(&idp.issuer));
    assert!(
        !browser.cookies.contains_key("session"),
        "bad cookie cleared"
    );
    authz.stop().await;
}

#[tokio::test]
async fn a_replayed_callback_is_refused_and_creates_no_session() {
    let (idp, authz, _) = setup("").await;
    let mut browser = authz.browser();
    let start = browser.send(Req::navigate("/")).await;
    let authorization = idp.authorize(start.location());
    let login_cookies = browser.cookies.clone();
    assert_eq!(browser.callback(&authorization).await.status(), 302);

    let mut replay = authz.browser();
    replay.cookies = login_cookies;
    let outcome = replay.callback(&authorization).await;
    assert_eq!(outcome.status(), 400, "{outcome:?}");
    let Outcome::Denied { body, .. } = &outcome else {
        unreachable!()
    };
    assert!(body.contains("expired or was already used"), "{body}");
    assert!(!replay.cookies.contains_key("session"));
    assert_eq!(idp.code_exchanges(), 1);
    authz.stop().await;
}

#[tokio::test]
async fn a_callback_from_another_browser_is_refused() {
    let (idp, authz, _) = setup("").await;
    let mut victim = authz.browser();
    let start = victim.send(Req::navigate("/")).await;
    let authorization = idp.authorize(start.location());
    let mut attacker = authz.browser();
    let outcome = attacker.callback(&authorization).await;
    assert_eq!(outcome.status(), 403, "{outcome:?}");
    assert!(!attacker.cookies.contains_key("session"));
    assert_eq!(idp.code_exchanges(), 0, "no code was exchanged");
    authz.stop().await;
}

#[tokio::test]
async fn idp_errors_unknown_states_and_incomplete_callbacks_get_pages() {
    let (_idp, authz, _) = setup("").await;
    let mut browser = authz.browser();
    let denied = browser
        .send(Req::navigate(
            "/callback?error=access_denied&state=whatever",
        ))
        .await;
    assert_eq!(denied.status(), 403);
    assert_eq!(
        browser
            .send(Req::navigate("/callback?code=c&state=unknown"))
            .await
            .status(),
        400
    );
    assert_eq!(browser.send(Req::navigate("/callback")).await.status(), 400);
    let put = Req {
        method: "PUT",
        path: "/callback",
        headers: vec![],
        body: "",
        ..Default::default()
    };
    assert_eq!(browser.send(put).await.status(), 405);
    let error_page = browser
        .send(Req::navigate("/callback?error=%3Cscript%3E&state=s"))
        .await;
    let Outcome::Denied { body, status, .. } = error_page else {
        unreachable!()
    };
    assert_eq!(status, 400);
    assert!(!body.contains("<script>"), "{body}");
    authz.stop().await;
}

#[tokio::test]
async fn a_failed_code_exchange_is_a_502_page_and_no_session() {
    let (idp, authz, _) = setup("").await;
    let mut browser = authz.browser();
    let start = browser.send(Req::navigate("/")).await;
    let mut authorization = idp.authorize(start.location());
    authorization.code = "code-the-idp-never-issued".into();
    let outcome = browser.callback(&authorization).await;
    assert_eq!(outcome.status(), 502, "{outcome:?}");
    assert!(!browser.cookies.contains_key("session"));
    authz.stop().await;
}

#[tokio::test]
async fn an_id_token_whose_at_hash_does_not_match_the_access_token_is_refused() {
    let (idp, authz, _) = setup("").await;
    idp.state.wrong_at_hash.store(true, Ordering::SeqCst);
    let mut browser = authz.browser();
    let start = browser.send(Req::navigate("/")).await;
    let authorization = idp.authorize(start.location());
    let outcome = browser.callback(&authorization).await;
    assert_eq!(outcome.status(), 502, "{outcome:?}");
    assert!(!browser.cookies.contains_key("session"));
    authz.stop().await;
}

#[tokio::test]
async fn an_unreachable_store_fails_closed() {
    let (idp, authz, store) = setup("").await;
    let mut browser = logged_in(&idp, &authz).await;
    store.down.store(true, Ordering::SeqCst);
    let outcome = browser.send(Req::navigate("/anything")).await;
    assert!(
        matches!(&outcome, Outcome::Error(status) if status.code() == tonic::Code::Unavailable),
        "{outcome:?}"
    );
    let mut stranger = authz.browser();
    assert!(matches!(
        stranger.send(Req::navigate("/")).await,
        Outcome::Error(_)
    ));
    // Back up: the same session works again; nothing was lost.
    store.down.store(false, Ordering::SeqCst);
    assert_eq!(browser.send(Req::navigate("/anything")).await.status(), 200);
    authz.stop().await;
}

#[tokio::test]
async fn before_discovery_a_check_cannot_be_decided() {
    let yaml = format!(
        "issuer: http://127.0.0.1:9\nclient_id: c\nclient_secret: s\nsession_secret: {}\n",
        support::KEY_A
    );
    let authz = Authz::start_with_yaml(&yaml, Arc::new(MemoryStore::new()), false).await;
    let mut browser = authz.browser();
    assert!(matches!(
        browser.send(Req::navigate("/")).await,
        Outcome::Error(_)
    ));
    let ready = reqwest::get(format!("http://{}/readyz", authz.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let live = reqwest::get(format!("http://{}/healthz", authz.admin))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    authz.stop().await;
}

#[tokio::test]
async fn a_second_tab_finishing_after_the_first_just_goes_where_it_wanted() {
    let (idp, authz, _) = setup("").await;
    let mut browser = authz.browser();
    let tab1 = browser.send(Req::navigate("/one")).await;
    let tab2 = browser.send(Req::navigate("/two?x=1")).await;
    let (auth1, auth2): (AuthorizationResponse, AuthorizationResponse) = (
        idp.authorize(tab1.location()),
        idp.authorize(tab2.location()),
    );
    assert_ne!(auth1.state, auth2.state);
    assert_eq!(browser.callback(&auth1).await.location(), "/one");
    // The first callback cleared the login cookie; the session cookie vouches for the browser.
    let second = browser.callback(&auth2).await;
    assert_eq!(second.status(), 302, "{second:?}");
    assert_eq!(second.location(), "/two?x=1");
    assert_eq!(idp.code_exchanges(), 1);
    authz.stop().await;
}

#[tokio::test]
async fn open_redirects_through_the_original_url_are_impossible() {
    let (idp, authz, _) = setup("").await;
    let mut browser = authz.browser();
    let done = browser.login(&idp, "//evil.example/path?q=1").await;
    assert_eq!(done.location(), "/evil.example/path?q=1");
    authz.stop().await;
}

#[tokio::test]
async fn the_redis_store_carries_the_flow_and_survives_a_redis_restart() {
    let redis = support::redis::RedisServer::start();
    let idp = FakeIdp::start().await;
    let store = redis.store("flow-test:");
    let authz = Authz::start(&idp, "", store).await;
    let mut browser = logged_in(&idp, &authz).await;
    assert!(
        browser
            .send(Req::navigate("/anything"))
            .await
            .upstream("authorization")
            .is_some()
    );
    // A replayed state is refused by Redis' GETDEL just as by memory.
    let mut other = authz.browser();
    let start = other.send(Req::navigate("/")).await;
    let authorization = idp.authorize(start.location());
    let jar = other.cookies.clone();
    assert_eq!(other.callback(&authorization).await.status(), 302);
    other.cookies = jar;
    assert_eq!(other.callback(&authorization).await.status(), 400);

    redis.stop();
    let outcome = browser.send(Req::navigate("/anything")).await;
    assert!(
        matches!(outcome, Outcome::Error(_)),
        "fail closed: {outcome:?}"
    );
    // redis-server keeps nothing across a restart here (--save ''), so the session is gone and
    // the browser is sent to log in again: no error, no allow.
    redis.restart();
    let outcome = browser.send(Req::navigate("/anything")).await;
    assert_eq!(outcome.status(), 302, "{outcome:?}");
    authz.stop().await;
}

#[tokio::test]
async fn claims_reach_the_upstream_as_headers_and_client_copies_never_do() {
    let (idp, authz, _) = setup(
        "upstream_headers_claims: [email, groups, phone_number]\n\
         upstream_headers_names: [X-User-Email, x-user-groups, x-user-phone]\n\
         upstream_id_token_header: x-id-token",
    )
    .await;
    let mut browser = logged_in(&idp, &authz).await;
    let page = browser
        .send(
            Req::navigate("/anything")
                .with_header("x-user-email", "admin@evil.example")
                .with_header("x-user-phone", "spoofed"),
        )
        .await;
    assert_eq!(page.upstream("x-user-email"), Some("alice@example.com"));
    assert_eq!(page.upstream("x-user-groups"), Some(r#"["admins","dev"]"#));
    assert!(page.upstream("x-id-token").unwrap().starts_with("eyJ"));
    let Outcome::Allowed { removed, .. } = &page else {
        unreachable!()
    };
    assert!(removed.contains(&"x-user-phone".to_string()), "{removed:?}");
    authz.stop().await;
}

#[tokio::test]
async fn the_admin_endpoint_reports_readiness_and_metrics() {
    let (idp, authz, store) = setup("").await;
    let mut browser = logged_in(&idp, &authz).await;
    assert_eq!(browser.send(Req::navigate("/anything")).await.status(), 200);
    let admin = format!("http://{}", authz.admin);
    assert_eq!(
        reqwest::get(format!("{admin}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "oidc_authz_checks_total{outcome=\"allow\"} 1",
        "oidc_authz_checks_total{outcome=\"redirect\"} 2",
        "oidc_authz_logins_total 1",
        "oidc_authz_idp_ready 1",
        "oidc_authz_sessions_created_total 1",
        "oidc_authz_idp_request_duration_seconds_count{provider=\"default\",endpoint=\"discovery\",outcome=\"ok\"} 1",
        "oidc_authz_idp_request_duration_seconds_count{provider=\"default\",endpoint=\"jwks\",outcome=\"ok\"} 1",
        "oidc_authz_idp_request_duration_seconds_count{provider=\"default\",endpoint=\"token\",outcome=\"ok\"} 1",
        "oidc_authz_idp_request_duration_seconds_count{provider=\"default\",endpoint=\"token\",outcome=\"error\"} 0",
        "oidc_authz_store_errors_total{operation=\"read\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in\n{metrics}"
        );
    }
    assert!(
        !metrics.contains("alice") && !metrics.contains("at-"),
        "no user or token in metrics"
    );
    store.down.store(true, Ordering::SeqCst);
    assert_eq!(
        reqwest::get(format!("{admin}/readyz"))
            .await
            .unwrap()
            .status(),
        503
    );
    authz.stop().await;
}

/// Secure host-only cookies are `__Host-` prefixed; a plain-named copy can be planted by a sibling
/// subdomain or an on-path attacker over http, so it must count for nothing.
#[tokio::test]
async fn a_plain_named_login_cookie_is_ignored_when_prefixed_names_are_in_use() {
    let (idp, authz, _) = setup("session_cookie_secure: always").await;
    // The attacker starts a login in his own browser and stops at the callback.
    let mut attacker = authz.browser();
    let start = attacker.send(Req::navigate("/")).await;
    let attacker_login_cookie = attacker.cookies["__Host-session_login"].clone();
    let authorization = idp.authorize(start.location());

    // He plants his login cookie under the plain name on the victim and sends her his callback.
    let mut victim = authz.browser();
    victim
        .cookies
        .insert("session_login".into(), attacker_login_cookie);
    let outcome = victim.callback(&authorization).await;
    assert_eq!(outcome.status(), 403, "login CSRF refused: {outcome:?}");
    assert!(
        !victim.cookies.contains_key("__Host-session"),
        "{:?}",
        victim.cookies
    );
    assert_eq!(idp.code_exchanges(), 0, "no code was exchanged");
    authz.stop().await;
}

#[tokio::test]
async fn a_plain_named_session_cookie_is_ignored_when_prefixed_names_are_in_use() {
    let (idp, authz, _) = setup("session_cookie_secure: always").await;
    // The attacker's own session cookie, planted under the plain name, fixes no session.
    let mut owner = authz.browser();
    assert_eq!(owner.login(&idp, "/").await.status(), 302);
    let attacker_session = owner.cookies["__Host-session"].clone();
    assert_eq!(owner.send(Req::navigate("/anything")).await.status(), 200);
    let mut fixated = authz.browser();
    fixated.cookies.insert("session".into(), attacker_session);
    let page = fixated.send(Req::navigate("/anything")).await;
    assert_eq!(page.status(), 302, "plain-named session ignored: {page:?}");
    assert!(page.location().starts_with(&idp.issuer));
    authz.stop().await;
}
