//! A refused request is logged with a fixed reason, never with text the client chose: the path
//! (and query) of a request is the attacker's to write, newlines and fake log lines included.

mod support;

use support::log::CapturedLog;
use support::{Authz, FakeIdp, Outcome, Req, SwitchableStore};

/// Text a client puts in its request path to forge a log line of its own.
const MARKER: &str = "FORGED-LINE";

// current_thread (the default): the server's tasks run on this thread, under this subscriber.
#[tokio::test]
async fn a_refused_request_is_logged_without_its_path() {
    let (log, _guard) = CapturedLog::warnings();

    let idp = FakeIdp::start().await;
    let authz = Authz::start(
        &idp,
        "allowed_hosts: [app.example]",
        SwitchableStore::memory(),
    )
    .await;
    let mut browser = authz.browser();
    browser.origin_host = "elsewhere.example".into();
    let path = format!("/page\n2026-01-01T00:00:00Z ERROR {MARKER} admin logged in");
    let outcome = browser.send(Req::navigate(&path)).await;
    assert!(
        matches!(outcome, Outcome::Denied { status: 400, .. }),
        "a host outside allowed_hosts is refused: {outcome:?}"
    );
    authz.stop().await;

    let text = log.text();
    assert!(
        text.contains("request refused") && text.contains("allowed_hosts"),
        "the refusal and its reason are logged: {text}"
    );
    assert!(
        text.contains("policy=\"default\" provider=\"default\""),
        "the line names the route's policy and provider: {text}"
    );
    assert!(!text.contains(MARKER), "no client text in the log: {text}");
}

/// A method the logout path does not answer is refused; the method (the caller's text: a direct
/// gRPC caller may send any string) is not in the log.
#[tokio::test]
async fn a_refused_method_is_logged_without_the_method() {
    let (log, _guard) = CapturedLog::warnings();

    let idp = FakeIdp::start().await;
    let authz = Authz::start(&idp, "logout_path: /logout", SwitchableStore::memory()).await;
    let method = format!("PATCH\n2026-01-01T00:00:00Z ERROR {MARKER} admin logged in");
    let request = Req {
        method: Box::leak(method.into_boxed_str()),
        path: "/logout",
        ..Default::default()
    };
    let outcome = authz.browser().send(request).await;
    assert!(
        matches!(outcome, Outcome::Denied { status: 405, .. }),
        "{outcome:?}"
    );
    authz.stop().await;

    let text = log.text();
    assert!(
        text.contains("request refused"),
        "the refusal is logged: {text}"
    );
    assert!(
        text.contains("provider=\"default\"") && !text.contains("policy="),
        "a provider's own path has a provider and no policy: {text}"
    );
    assert!(!text.contains(MARKER), "no client text in the log: {text}");
}
