//! A claim named in `upstream_headers_claims` that the ID token lacks is logged once per claim
//! name per process, naming the claim and where to fix it, however many logins follow. Its own
//! test binary: the "already warned" set is process-wide.

mod support;

use support::log::CapturedLog;
use support::{Authz, FakeIdp, SwitchableStore};

// current_thread (the default): the server's tasks run on this thread, under this subscriber.
#[tokio::test]
async fn a_claim_missing_from_the_id_token_is_warned_about_once_by_name() {
    let (log, _guard) = CapturedLog::warnings();

    let idp = FakeIdp::start().await;
    let authz = Authz::start(
        &idp,
        "upstream_headers_claims: [email, phone_number, preferred_username]\n\
         upstream_headers_names: [x-user-email, x-user-phone, x-user-name]",
        SwitchableStore::memory(),
    )
    .await;
    for _ in 0..3 {
        let mut browser = authz.browser();
        assert_eq!(browser.login(&idp, "/").await.status(), 302);
    }
    authz.stop().await;

    let text = log.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    for claim in ["phone_number", "preferred_username"] {
        let about: Vec<&&str> = warnings
            .iter()
            .filter(|line| line.contains(&format!("no `{claim}` claim")))
            .collect();
        assert_eq!(about.len(), 1, "one warning for {claim}: {text}");
        assert!(
            about[0].contains("IDTokenForceClaims") && about[0].contains("userinfo"),
            "{text}"
        );
    }
    assert!(
        !warnings.iter().any(|line| line.contains("`email`")),
        "email is in the ID token: {text}"
    );
    assert!(
        !text.contains("alice@example.com"),
        "no claim value in the log"
    );
}
