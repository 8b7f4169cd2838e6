//! Regression: a back-channel logout must find an *active* session even when it is older than
//! `session_idling_timeout`. The by-sid/by-sub index once got the session's first TTL (the idle
//! timeout) while activity extended only the session, so the index expired first. Driven through
//! `Flow::check` with a fake IdP, the tokio clock and the flow's clock moved together.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oidc_authz::clock::{Clock, ManualClock};
use oidc_authz::flow::{Decision, Flow, RequestView};
use oidc_authz::oidc::*;
use oidc_authz::secret::Secret;
use oidc_authz::server::App;
use oidc_authz::session::SessionStore;
use oidc_authz::session::memory::MemoryStore;

const NOW: i64 = 1_750_000_000;

struct Idp(Arc<ProviderMetadata>, ManualClock);

#[async_trait]
impl IdentityProvider for Idp {
    fn metadata(&self) -> Option<Arc<ProviderMetadata>> {
        Some(self.0.clone())
    }
    async fn exchange_code(
        &self,
        _: &Secret,
        _: &str,
        _: Option<&str>,
    ) -> Result<TokenSet, TokenError> {
        Ok(TokenSet {
            access_token: "at".into(),
            id_token: Some("idt".into()),
            refresh_token: None,
            expires_in: None,
        })
    }
    async fn refresh(&self, _: &Secret) -> Result<TokenSet, TokenError> {
        unreachable!()
    }
    async fn verify_id_token(
        &self,
        _: &Secret,
        _: Option<&str>,
        _: Option<&Secret>,
    ) -> Result<IdTokenClaims, IdTokenError> {
        Ok(IdTokenClaims {
            subject: "alice".into(),
            idp_session_id: Some("sid-1".into()),
            expires_at: NOW + 3600,
            ..Default::default()
        })
    }
    async fn verify_logout_token(&self, _: &Secret) -> Result<LogoutClaims, LogoutTokenError> {
        Ok(LogoutClaims {
            subject: Some("alice".into()),
            idp_session_id: Some("sid-1".into()),
            jti: "jti-1".into(),
            remember_until: self.1.now_unix() + 300,
        })
    }
}

fn get(path: &str, query: &str, cookie: Option<&str>) -> RequestView {
    RequestView {
        method: "GET".into(),
        scheme: "http".into(),
        host: "127.0.0.1:8000".into(),
        path: path.into(),
        query: query.into(),
        headers: cookie
            .map(|c| ("cookie".to_string(), c.to_string()))
            .into_iter()
            .collect(),
        body: Vec::new(),
        policy_name: None,
    }
}
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn log_in(flow: &Flow) -> String {
    let Decision::Redirect {
        location,
        set_cookies,
        ..
    } = flow.check(&get("/app", "", None)).await.unwrap()
    else {
        panic!()
    };
    let state = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let query = format!("code=c&state={state}");
    let Decision::Redirect { set_cookies, .. } = flow
        .check(&get("/callback", &query, Some(&pair(&set_cookies[0]))))
        .await
        .unwrap()
    else {
        panic!()
    };
    pair(&set_cookies[0])
}

async fn pass(clock: &ManualClock, seconds: u64) {
    clock.advance(seconds as i64);
    tokio::time::advance(Duration::from_secs(seconds)).await;
}

#[tokio::test(start_paused = true)]
async fn backchannel_logout_ends_a_session_older_than_the_idle_timeout() {
    let yaml = "issuer: https://idp.example\nclient_id: c\nclient_secret: s\n\
                session_secret: 0123456789abcdef0123456789abcdef\nbackchannel_logout_path: /backchannel\n";
    let (config, _) = oidc_authz::config::load_from_str(yaml, "t", Vec::new()).unwrap();
    assert_eq!(config.session_idling_timeout, Duration::from_secs(900));
    let clock = ManualClock::new(NOW);
    let document = serde_json::json!({"issuer": "https://idp.example",
        "authorization_endpoint": "https://idp.example/auth", "token_endpoint": "https://idp.example/token",
        "jwks_uri": "https://idp.example/jwks", "response_types_supported": ["code"],
        "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"]});
    let metadata = oidc_authz::oidc::discovery::parse(
        &url::Url::parse("https://idp.example").unwrap(),
        document.to_string().as_bytes(),
    )
    .unwrap();
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let app = App::assemble(
        config,
        store,
        Arc::new(Idp(Arc::new(metadata), clock.clone())),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let flow = &app.flow;
    let cookie = log_in(flow).await;

    // The user stays active: a request every 10 minutes keeps the session alive past 900 s.
    for _ in 0..2 {
        pass(&clock, 600).await;
        assert!(matches!(
            flow.check(&get("/app", "", Some(&cookie))).await.unwrap(),
            Decision::Allow { .. }
        ));
    }
    // t = 1200 s: the IdP ends its session sid-1 and tells us.
    let logout = RequestView {
        method: "POST".into(),
        body: b"logout_token=x".to_vec(),
        ..get("/backchannel", "", None)
    };
    assert!(matches!(
        flow.check(&logout).await.unwrap(),
        Decision::Deny { status: 200, .. }
    ));
    // The session must be gone now.
    let after = flow.check(&get("/app", "", Some(&cookie))).await.unwrap();
    assert!(
        !matches!(after, Decision::Allow { .. }),
        "session survived the back-channel logout: {after:?}"
    );
}
