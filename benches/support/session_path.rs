//! The session path as `benches/check.rs` and `examples/profile_check.rs` build it: a config, a
//! memory store (`Store::Memory`: every Check opens the sealed record, as with `storage: memory`;
//! or `Store::Cached`: behind the session cache, as with Redis), a stopped clock and a fake IdP; a session created honestly through `Flow::check`
//! (start login → state from the redirect → callback with code and login cookie → session cookie);
//! and the `CheckRequest` Envoy sends for a page request carrying that session's cookie.
//!
//! Included by `#[path]` from both targets: each uses only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use oidc_authz::authz::AuthzService;
use oidc_authz::clock::{Clock, ManualClock};
use oidc_authz::flow::{Decision, Flow, RequestView};
use oidc_authz::oidc::{
    IdTokenClaims, IdTokenError, IdentityProvider, LogoutClaims, LogoutTokenError,
    ProviderMetadata, TokenError, TokenSet,
};
use oidc_authz::secret::Secret;
use oidc_authz::server::App;
use oidc_authz::session::memory::MemoryStore;
use oidc_authz::session::{ForwardingStore, InvalidationListener, SessionStore};

pub const NOW: i64 = 1_750_000_000;
pub const SESSION_SECRET: &str = "bench-session-secret-0123456789abcdef";
pub const HOST: &str = "127.0.0.1:8000";

const CONFIG: &str = "
issuer: https://idp.bench.example
client_id: bench-client
client_secret: bench-client-secret
session_secret: bench-session-secret-0123456789abcdef
";

/// An IdP that answers instantly. Only the login (setup) calls it; the session path never does.
struct FakeIdp {
    metadata: Arc<ProviderMetadata>,
}

impl FakeIdp {
    fn new() -> Self {
        let document = serde_json::json!({
            "issuer": "https://idp.bench.example",
            "authorization_endpoint": "https://idp.bench.example/authorize",
            "token_endpoint": "https://idp.bench.example/token",
            "jwks_uri": "https://idp.bench.example/jwks",
            "code_challenge_methods_supported": ["S256"],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let metadata = oidc_authz::oidc::discovery::parse(
            &url::Url::parse("https://idp.bench.example").expect("issuer"),
            document.to_string().as_bytes(),
        )
        .expect("metadata");
        FakeIdp {
            metadata: Arc::new(metadata),
        }
    }
}

/// Token-sized strings, so the sealed session record is the size of a real one (~2–3 KiB).
fn fake_jwt(kind: &str, len: usize) -> String {
    let mut token = format!("eyJhbGciOiJSUzI1NiJ9.{kind}.");
    while token.len() < len {
        token.push_str("AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_");
    }
    token.truncate(len);
    token
}

#[async_trait]
impl IdentityProvider for FakeIdp {
    fn metadata(&self) -> Option<Arc<ProviderMetadata>> {
        Some(Arc::clone(&self.metadata))
    }

    async fn exchange_code(
        &self,
        code: &Secret,
        _redirect_uri: &str,
        _pkce_verifier: Option<&str>,
    ) -> Result<TokenSet, TokenError> {
        assert_eq!(code.expose(), "bench-code");
        Ok(TokenSet {
            access_token: Secret::new(fake_jwt("access", 1200)),
            id_token: Some(Secret::new(fake_jwt("id", 900))),
            refresh_token: Some(Secret::new(fake_jwt("refresh", 400))),
            expires_in: Some(3600),
        })
    }

    async fn refresh(&self, _refresh_token: &Secret) -> Result<TokenSet, TokenError> {
        panic!("the benchmarked path must not refresh")
    }

    async fn verify_id_token(
        &self,
        _id_token: &Secret,
        _expected_nonce: Option<&str>,
        _access_token: Option<&Secret>,
    ) -> Result<IdTokenClaims, IdTokenError> {
        Ok(IdTokenClaims {
            subject: "alice".into(),
            idp_session_id: Some("idp-session-1".into()),
            expires_at: NOW + 3600,
            ..Default::default()
        })
    }

    /// Not used by the benchmark: this IdP has no keys.
    async fn verify_logout_token(
        &self,
        _logout_token: &Secret,
    ) -> Result<LogoutClaims, LogoutTokenError> {
        Err(IdTokenError::UnknownKey.into())
    }
}

/// Typical browser headers as Envoy forwards them (lower-case names).
pub fn browser_headers(cookie: Option<&str>) -> HashMap<String, String> {
    let mut headers: HashMap<String, String> = [
        (":authority", HOST),
        (":method", "GET"),
        (":path", "/anything"),
        (":scheme", "http"),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-encoding", "gzip, deflate, br"),
        ("accept-language", "en-US,en;q=0.5"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "4f1c2b9e-0d51-4a8e-9d0b-7b6b2d0f3e11"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    if let Some(cookie) = cookie {
        headers.insert("cookie".into(), cookie.to_owned());
    }
    headers
}

pub fn view(path: &str, query: &str, cookie: Option<&str>) -> RequestView {
    RequestView {
        method: "GET".into(),
        scheme: "http".into(),
        host: HOST.into(),
        path: path.into(),
        query: query.into(),
        headers: browser_headers(cookie),
        body: Vec::new(),
        policy_name: None,
    }
}

/// `name=value` of a `Set-Cookie` header value.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// Logs in through `Flow::check` and returns the `Cookie` header of the new session (with an
/// unrelated cookie before it, as browsers send).
pub async fn log_in(flow: &Flow) -> String {
    let Decision::Redirect {
        location,
        set_cookies,
        ..
    } = flow
        .check(&view("/anything", "x=1", None))
        .await
        .expect("start login")
    else {
        panic!("a browser without a session is sent to the IdP");
    };
    let state = url::Url::parse(&location)
        .expect("authorization URL")
        .query_pairs()
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned())
        .expect("state in the authorization URL");
    let login_cookie = cookie_pair(&set_cookies[0]);

    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", "bench-code")
        .append_pair("state", &state)
        .finish();
    let Decision::Redirect { set_cookies, .. } = flow
        .check(&view("/callback", &query, Some(&login_cookie)))
        .await
        .expect("callback")
    else {
        panic!("the callback redirects back");
    };
    let session_cookie = set_cookies
        .iter()
        .map(|c| cookie_pair(c))
        .find(|pair| pair.starts_with("session="))
        .expect("session cookie set");
    format!("_ga=GA1.1.123456789.1700000000; {session_cookie}")
}

/// Where the session is read from on the measured path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// The memory store: every Check opens the sealed record.
    Memory,
    /// The session cache in front of it (the Redis hot path without Redis): every Check after the
    /// first is a cache hit.
    Cached,
}

/// A memory store with an invalidation feed that is live at once and never reports a change
/// (nothing else writes it), so the session cache serves from it as it does from Redis.
struct FedMemoryStore(MemoryStore);

impl ForwardingStore for FedMemoryStore {
    fn inner(&self) -> &dyn SessionStore {
        &self.0
    }

    fn watch_changes(&self, _prefix: &str, listener: Arc<dyn InvalidationListener>) -> bool {
        listener.reset(true);
        true
    }
}

pub struct Setup {
    pub runtime: tokio::runtime::Runtime,
    pub flow: Arc<Flow>,
    pub authz: AuthzService,
    pub cookie_header: String,
}

pub fn setup() -> Setup {
    setup_with(Store::Memory)
}

pub fn setup_with(kind: Store) -> Setup {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut config, _warnings) =
        oidc_authz::config::load_from_str(CONFIG, "bench", Vec::new()).expect("config");
    if kind == Store::Cached {
        // The config allows a cache only with `redis.url`; the fed store stands in for it.
        config.session_cache_size = 10_000;
    }
    let store: Arc<dyn SessionStore> = match kind {
        Store::Memory => Arc::new(MemoryStore::new()),
        Store::Cached => Arc::new(FedMemoryStore(MemoryStore::new())),
    };
    // A clock that stands still: no activity write-back and no refresh is ever due, so every
    // iteration is the read-only hot path.
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let app = App::assemble(config, store, Arc::new(FakeIdp::new()), clock).expect("assemble");
    let flow = Arc::clone(&app.flow);
    let cookie_header = runtime.block_on(log_in(&flow));
    let authz = AuthzService::new(Arc::clone(&app.gateway), false);
    Setup {
        runtime,
        flow,
        authz,
        cookie_header,
    }
}

pub fn check_request(cookie: &str) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "12345678901234567890".into(),
                    method: "GET".into(),
                    path: "/anything?page=2".into(),
                    host: HOST.into(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: browser_headers(Some(cookie)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}
