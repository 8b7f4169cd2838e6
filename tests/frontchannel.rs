//! Front-channel logout through the real gRPC server against the in-process IdP: the IdP's logout
//! page loads `frontchannel_logout_path?iss=…&sid=…` in a cross-site iframe, which carries no
//! session cookie; every session of that `sid`, and only those, ends.

mod support;

use support::{Authz, Browser, FakeIdp, Outcome, Req, SwitchableStore};

const CONFIG: &str = "frontchannel_logout_path: /frontchannel-logout";

async fn logged_in(idp: &FakeIdp, authz: &Authz) -> Browser {
    let mut browser = authz.browser();
    let done = browser.login(idp, "/anything").await;
    assert_eq!(done.status(), 302, "{done:?}");
    browser
}

/// The IdP's iframe: a cross-site subresource load, so no cookie of ours comes with it.
fn iframe_load(path: &str) -> Req<'_> {
    Req {
        method: "GET",
        path,
        headers: vec![
            ("accept", "text/html"),
            ("sec-fetch-dest", "iframe"),
            ("sec-fetch-site", "cross-site"),
        ],
        body: "",
        context_extensions: Vec::new(),
    }
}

fn frontchannel_path(iss: &str, sid: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("iss", iss)
        .append_pair("sid", sid)
        .finish();
    format!("/frontchannel-logout?{query}")
}

fn body(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Denied { body, .. } => body,
        other => panic!("expected a page, got {other:?}"),
    }
}

#[tokio::test]
async fn a_sid_ends_only_its_own_sessions_and_needs_no_cookie() {
    let idp = FakeIdp::start().await;
    let authz = Authz::start(&idp, CONFIG, SwitchableStore::memory()).await;
    let mut first = logged_in(&idp, &authz).await;
    let mut second = logged_in(&idp, &authz).await;
    *idp.state.session_id.lock().unwrap() = "idp-session-2".into();
    let mut other_idp_session = logged_in(&idp, &authz).await;

    let mut iframe = authz.browser();
    assert!(iframe.cookies.is_empty());
    let path = frontchannel_path(&idp.issuer, "idp-session-1");
    let outcome = iframe.send(iframe_load(&path)).await;
    assert_eq!(outcome.status(), 200, "{outcome:?}");
    assert_eq!(outcome.header("cache-control"), Some("no-cache, no-store"));
    assert!(body(&outcome).contains("Signed out."), "{outcome:?}");
    assert_eq!(outcome.header("set-cookie"), None);

    assert_eq!(first.send(Req::navigate("/")).await.status(), 302);
    assert_eq!(second.send(Req::navigate("/")).await.status(), 302);
    assert_eq!(
        other_idp_session.send(Req::navigate("/")).await.status(),
        200
    );
    // The same load again (a second iframe, a reload): nothing left, still a page.
    assert_eq!(iframe.send(iframe_load(&path)).await.status(), 200);
    authz.stop().await;
}

#[tokio::test]
async fn a_wrong_or_missing_iss_or_a_missing_sid_is_refused_and_ends_nothing() {
    let idp = FakeIdp::start().await;
    let authz = Authz::start(&idp, CONFIG, SwitchableStore::memory()).await;
    let mut user = logged_in(&idp, &authz).await;
    let mut iframe = authz.browser();

    let wrong_issuer = frontchannel_path("https://attacker.example", "idp-session-1");
    let trailing_slash = frontchannel_path(&format!("{}/", idp.issuer), "idp-session-1");
    let no_issuer = "/frontchannel-logout?sid=idp-session-1".to_owned();
    let no_sid = format!(
        "/frontchannel-logout?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("iss", &idp.issuer)
            .finish()
    );
    for path in [wrong_issuer, trailing_slash, no_issuer, no_sid] {
        let outcome = iframe.send(iframe_load(&path)).await;
        assert_eq!(outcome.status(), 400, "{path}: {outcome:?}");
        assert!(
            body(&outcome).contains("Invalid front-channel logout request."),
            "{outcome:?}"
        );
        assert!(
            !body(&outcome).contains("attacker"),
            "no request text in the page"
        );
    }
    let post = Req {
        method: "POST",
        ..iframe_load("/frontchannel-logout")
    };
    assert_eq!(iframe.send(post).await.status(), 405);

    assert_eq!(user.send(Req::navigate("/")).await.status(), 200);
    authz.stop().await;
}

#[tokio::test]
async fn without_the_option_the_path_is_an_ordinary_page() {
    let idp = FakeIdp::start().await;
    let authz = Authz::start(&idp, "", SwitchableStore::memory()).await;
    let mut user = logged_in(&idp, &authz).await;
    let path = frontchannel_path(&idp.issuer, "idp-session-1");
    assert_eq!(
        authz.browser().send(iframe_load(&path)).await.status(),
        302,
        "a login starts, as for any page"
    );
    assert_eq!(user.send(Req::navigate("/")).await.status(), 200);
    authz.stop().await;
}

#[tokio::test]
async fn with_sid_claim_sub_the_sid_parameter_names_the_user() {
    let idp = FakeIdp::start().await;
    let by_sub = format!("{CONFIG}\nfrontchannel_logout_sid_claim: sub");
    let authz = Authz::start(&idp, &by_sub, SwitchableStore::memory()).await;
    let mut first = logged_in(&idp, &authz).await;
    *idp.state.session_id.lock().unwrap() = "idp-session-2".into();
    let mut second = logged_in(&idp, &authz).await;
    let mut iframe = authz.browser();

    // An IdP session id means nothing in this mode.
    let path = frontchannel_path(&idp.issuer, "idp-session-1");
    assert_eq!(iframe.send(iframe_load(&path)).await.status(), 200);
    assert_eq!(first.send(Req::navigate("/")).await.status(), 200);

    // The user's sub (what LemonLDAP::NG 2.16 sends as `sid`): all of the user's sessions end.
    let path = frontchannel_path(&idp.issuer, "alice");
    assert_eq!(iframe.send(iframe_load(&path)).await.status(), 200);
    assert_eq!(first.send(Req::navigate("/")).await.status(), 302);
    assert_eq!(second.send(Req::navigate("/")).await.status(), 302);
    authz.stop().await;
}

#[tokio::test]
async fn by_default_a_sub_in_sid_ends_nothing() {
    let idp = FakeIdp::start().await;
    let authz = Authz::start(&idp, CONFIG, SwitchableStore::memory()).await;
    let mut user = logged_in(&idp, &authz).await;
    let path = frontchannel_path(&idp.issuer, "alice");
    assert_eq!(authz.browser().send(iframe_load(&path)).await.status(), 200);
    assert_eq!(user.send(Req::navigate("/")).await.status(), 200);
    authz.stop().await;
}
