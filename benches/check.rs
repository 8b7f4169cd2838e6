//! The hot path: a Check for a request that carries a valid session cookie (memory store, no IdP
//! call), end to end through the Envoy adapter and through `Flow::check` alone, and its pieces:
//! cookie MAC sign/verify and record seal/open.
//!
//! Run: `cargo bench --bench check` (about 20 s), or `cargo bench --bench check -- --quick`.
//! Criterion's `time: [low estimate high]` lines are nanoseconds (or µs) per operation.
//!
//! The session is created honestly: the login is run through `Flow::check` with a fake IdP (start
//! login → state from the redirect → callback with code and login cookie → session cookie).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use oidc_authz::authz::AuthzService;
use oidc_authz::clock::{Clock, ManualClock};
use oidc_authz::crypto::KeyRing;
use oidc_authz::crypto::cookie::{self, CookiePurpose};
use oidc_authz::crypto::seal;
use oidc_authz::flow::{Decision, Flow, RequestView};
use oidc_authz::oidc::{
    IdTokenClaims, IdTokenError, IdentityProvider, LogoutClaims, ProviderMetadata, TokenError,
    TokenSet,
};
use oidc_authz::secret::Secret;
use oidc_authz::server::App;
use oidc_authz::session::SessionStore;
use oidc_authz::session::memory::MemoryStore;

const NOW: i64 = 1_750_000_000;
const SESSION_SECRET: &str = "bench-session-secret-0123456789abcdef";
const HOST: &str = "127.0.0.1:8000";

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

    async fn verify_logout_token(&self, _logout_token: &Secret) -> Result<LogoutClaims, String> {
        Err("not used by the benchmark".into())
    }
}

/// Typical browser headers as Envoy forwards them (lower-case names).
fn browser_headers(cookie: Option<&str>) -> HashMap<String, String> {
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

fn view(path: &str, query: &str, cookie: Option<&str>) -> RequestView {
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
async fn log_in(flow: &Flow) -> String {
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

struct Setup {
    runtime: tokio::runtime::Runtime,
    flow: Arc<Flow>,
    authz: AuthzService,
    cookie_header: String,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (config, _warnings) =
        oidc_authz::config::load_from_str(CONFIG, "bench", Vec::new()).expect("config");
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
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

fn check_request(cookie: &str) -> CheckRequest {
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

fn bench_check(c: &mut Criterion) {
    let Setup {
        runtime,
        flow,
        authz,
        cookie_header,
    } = setup();

    // The answer is what the hot path should give, or the numbers mean nothing.
    let request = view("/anything", "page=2", Some(&cookie_header));
    match runtime.block_on(flow.check(&request)) {
        Ok(Decision::Allow {
            set_upstream_headers,
            set_cookies,
            ..
        }) => {
            assert!(
                set_cookies.is_empty(),
                "nothing to re-issue: {set_cookies:?}"
            );
            assert!(
                set_upstream_headers.iter().any(
                    |h| h.name == "authorization" && h.value.expose().starts_with("Bearer eyJ")
                ),
                "access token injected"
            );
        }
        other => panic!("a valid session is let through, got {other:?}"),
    }
    let response = runtime
        .block_on(authz.check(tonic::Request::new(check_request(&cookie_header))))
        .expect("check")
        .into_inner();
    assert_eq!(response.status.map(|s| s.code), Some(0), "gRPC OK");
    assert!(matches!(
        response.http_response,
        Some(HttpResponse::OkResponse(_))
    ));

    let mut group = c.benchmark_group("check");
    group.bench_function("flow_check_valid_session", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(flow.check(black_box(&request)).await.unwrap()) });
    });
    let envoy_request = check_request(&cookie_header);
    group.bench_function("authz_check_valid_session", |b| {
        // The clone stays outside the measurement (Envoy's request arrives decoded, not cloned).
        b.to_async(&runtime).iter_batched(
            || tonic::Request::new(envoy_request.clone()),
            |request| async { black_box(authz.check(request).await.unwrap()) },
            BatchSize::SmallInput,
        );
    });
    let anonymous_api = RequestView {
        headers: [("accept".to_owned(), "application/json".to_owned())].into(),
        ..view("/api/items", "", None)
    };
    group.bench_function("flow_check_no_cookie_api_401", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(flow.check(black_box(&anonymous_api)).await.unwrap()) });
    });
    group.finish();
}

fn bench_crypto(c: &mut Criterion) {
    let keys = KeyRing::from_secrets(&[Secret::new(SESSION_SECRET)]).expect("keys");
    let id = [42u8; 16];
    let signed = cookie::sign(&keys, CookiePurpose::Session, &id);
    let record: Vec<u8> = (0..2048u32).map(|i| (i * 31 % 251) as u8).collect();
    let associated = b"session:5d41402abc4b2a76b9719d911017c592".as_slice();
    let sealed = seal::seal(&keys, associated, &record).expect("seal");
    assert_eq!(
        seal::open(&keys, associated, &sealed).map(|o| o.plaintext),
        Some(record.clone())
    );

    let mut group = c.benchmark_group("crypto");
    group.bench_function("cookie_sign", |b| {
        b.iter(|| cookie::sign(&keys, CookiePurpose::Session, black_box(&id)))
    });
    group.bench_function("cookie_verify", |b| {
        b.iter(|| cookie::verify(&keys, CookiePurpose::Session, black_box(&signed)).expect("valid"))
    });
    group.bench_function("seal_2KiB", |b| {
        b.iter(|| seal::seal(&keys, associated, black_box(&record)).expect("seal"))
    });
    group.bench_function("open_2KiB", |b| {
        b.iter(|| seal::open(&keys, associated, black_box(&sealed)).expect("open"))
    });
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = quick();
    targets = bench_check, bench_crypto
}
criterion_main!(benches);
