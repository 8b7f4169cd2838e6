//! A small in-process OpenID Provider for integration tests: discovery, JWKS, and a token endpoint
//! that really checks client authentication, single-use codes, redirect_uri and PKCE, and issues
//! RS256-signed ID tokens. The "user" logs in by `FakeIdp::authorize(location)`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sha2::{Digest, Sha256};

const RSA_PEM: &[u8] = include_bytes!("../fixtures/idp-rsa.pem");
pub const CLIENT_ID: &str = "envoy";
pub const CLIENT_SECRET: &str = "envoy-secret";
pub const SUBJECT: &str = "alice";
const KID: &str = "test-key-1";

struct IssuedCode {
    redirect_uri: String,
    nonce: String,
    code_challenge: Option<String>,
}

pub struct IdpState {
    issuer: String,
    key: EncodingKey,
    codes: Mutex<HashMap<String, IssuedCode>>,
    refresh_tokens: Mutex<HashMap<String, String>>,
    counter: AtomicU64,
    /// Seconds the issued access tokens live.
    pub expires_in: AtomicU64,
    pub code_exchanges: AtomicUsize,
    pub refreshes: AtomicUsize,
    /// Answer every token request with 503.
    pub token_endpoint_down: AtomicBool,
    /// Expect client_secret_post instead of client_secret_basic.
    pub expect_post_auth: AtomicBool,
    /// Discovery documents and key sets served.
    pub discoveries: AtomicUsize,
    pub jwks_fetches: AtomicUsize,
    /// Answer the JWKS endpoint with 503.
    pub jwks_down: AtomicBool,
    /// Put an `at_hash` in ID tokens that does not match the access token.
    pub wrong_at_hash: AtomicBool,
    /// The IdP session id put in ID tokens (`sid`).
    pub session_id: Mutex<String>,
    /// While set, a refresh is answered only after `FakeIdp::release_refreshes` (or 10 s): the
    /// refresh token is rotated at once, as a real IdP does when the request arrives, and only the
    /// answer waits. For races with a refresh in flight.
    pub hold_refreshes: AtomicBool,
    refresh_answers: tokio::sync::Semaphore,
    /// Refresh requests received, answered or not (`refreshes` counts those that got through).
    pub refresh_requests: AtomicUsize,
    /// While set, a token request that arrives gets no answer for 10 s (then 503) and changes
    /// nothing: a hung IdP (stopped process, black-holed connection), unlike `hold_refreshes`.
    pub token_endpoint_hangs: AtomicBool,
    /// Opaque access tokens the introspection endpoint knows: token → its members (active).
    pub opaque_tokens: Mutex<HashMap<String, serde_json::Value>>,
    pub introspections: AtomicUsize,
    /// What the userinfo endpoint adds to `sub` for the holder of any access token we issued.
    pub userinfo_claims: Mutex<serde_json::Value>,
    pub userinfo_requests: AtomicUsize,
}

/// How long a held refresh waits for `release_refreshes` at most.
const HELD_REFRESH_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct FakeIdp {
    pub issuer: String,
    /// Where it listens (plain http).
    pub addr: SocketAddr,
    pub state: Arc<IdpState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// What the IdP sends the browser back with.
pub struct AuthorizationResponse {
    pub redirect_uri: String,
    pub code: String,
    pub state: String,
    pub form_post: bool,
}

fn query_map(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

impl FakeIdp {
    pub async fn start() -> FakeIdp {
        Self::start_with_issuer(None).await
    }

    /// An IdP whose issuer is `issuer` (e.g. the https address of a TLS proxy in front of it)
    /// instead of its own http address, which `addr` returns.
    pub async fn start_with_issuer(issuer: Option<String>) -> FakeIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let issuer = issuer.unwrap_or_else(|| format!("http://{addr}"));
        let state = Arc::new(IdpState {
            issuer: issuer.clone(),
            key: EncodingKey::from_rsa_pem(RSA_PEM).unwrap(),
            codes: Mutex::default(),
            refresh_tokens: Mutex::default(),
            counter: AtomicU64::new(0),
            expires_in: AtomicU64::new(300),
            code_exchanges: AtomicUsize::new(0),
            refreshes: AtomicUsize::new(0),
            token_endpoint_down: AtomicBool::new(false),
            expect_post_auth: AtomicBool::new(false),
            wrong_at_hash: AtomicBool::new(false),
            discoveries: AtomicUsize::new(0),
            jwks_fetches: AtomicUsize::new(0),
            jwks_down: AtomicBool::new(false),
            session_id: Mutex::new("idp-session-1".into()),
            hold_refreshes: AtomicBool::new(false),
            refresh_answers: tokio::sync::Semaphore::new(0),
            refresh_requests: AtomicUsize::new(0),
            token_endpoint_hangs: AtomicBool::new(false),
            opaque_tokens: Mutex::default(),
            introspections: AtomicUsize::new(0),
            userinfo_claims: Mutex::new(json!({ "department": "research" })),
            userinfo_requests: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .route("/introspect", post(introspect))
            .route("/userinfo", get(userinfo))
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeIdp {
            issuer,
            addr,
            state,
            server,
        }
    }

    /// The user logs in: checks the authorization request and issues a code.
    pub fn authorize(&self, location: &str) -> AuthorizationResponse {
        let url = url::Url::parse(location).expect("absolute authorization URL");
        assert_eq!(url.path(), "/authorize", "{location}");
        let params = query_map(&url);
        assert_eq!(params["response_type"], "code");
        assert_eq!(params["client_id"], CLIENT_ID);
        assert!(params["scope"].split(' ').any(|s| s == "openid"));
        if let Some(method) = params.get("code_challenge_method") {
            assert_eq!(method, "S256");
        }
        let code = format!("code-{}", self.state.counter.fetch_add(1, Ordering::SeqCst));
        self.state.codes.lock().unwrap().insert(
            code.clone(),
            IssuedCode {
                redirect_uri: params["redirect_uri"].clone(),
                nonce: params["nonce"].clone(),
                code_challenge: params.get("code_challenge").cloned(),
            },
        );
        AuthorizationResponse {
            redirect_uri: params["redirect_uri"].clone(),
            code,
            state: params["state"].clone(),
            form_post: params.get("response_mode").map(String::as_str) == Some("form_post"),
        }
    }

    /// A signed JWT with our key, for logout tokens and custom ID tokens.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KID.into());
        jsonwebtoken::encode(&header, claims, &self.state.key).unwrap()
    }

    pub fn logout_token(&self, sid: Option<&str>, sub: Option<&str>, jti: &str) -> String {
        let now = now();
        let mut claims = json!({
            "iss": self.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 120, "jti": jti,
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}}
        });
        if let Some(sid) = sid {
            claims["sid"] = json!(sid);
        }
        if let Some(sub) = sub {
            claims["sub"] = json!(sub);
        }
        self.sign(&claims)
    }

    pub fn code_exchanges(&self) -> usize {
        self.state.code_exchanges.load(Ordering::SeqCst)
    }

    pub fn refreshes(&self) -> usize {
        self.state.refreshes.load(Ordering::SeqCst)
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn discovery(State(state): State<Arc<IdpState>>) -> Json<serde_json::Value> {
    state.discoveries.fetch_add(1, Ordering::SeqCst);
    let issuer = &state.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/session/end"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks(State(state): State<Arc<IdpState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if state.jwks_down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let mut jwk = Jwk::from_encoding_key(&state.key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(KID.into());
    Json(json!({ "keys": [jwk] })).into_response()
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

fn authenticate(state: &IdpState, headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    if state.expect_post_auth.load(Ordering::SeqCst) {
        return headers.get("authorization").is_none()
            && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    }
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
        && !form.contains_key("client_secret")
}

/// A token response with access token `at-n` and a new (rotating) refresh token `rt-n`.
fn tokens(state: &IdpState, n: u64, id_token: Option<String>) -> Response {
    let refresh_token = format!("rt-{n}");
    state
        .refresh_tokens
        .lock()
        .unwrap()
        .insert(refresh_token.clone(), SUBJECT.into());
    let mut body = json!({
        "access_token": format!("at-{n}"), "token_type": "Bearer",
        "expires_in": state.expires_in.load(Ordering::SeqCst), "refresh_token": refresh_token,
    });
    if let Some(id_token) = id_token {
        body["id_token"] = json!(id_token);
    }
    Json(body).into_response()
}

async fn token(
    State(state): State<Arc<IdpState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
        state.refresh_requests.fetch_add(1, Ordering::SeqCst);
    }
    if state.token_endpoint_hangs.load(Ordering::SeqCst) {
        tokio::time::sleep(HELD_REFRESH_LIMIT).await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if state.token_endpoint_down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if !authenticate(&state, &headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let n = state.counter.fetch_add(1, Ordering::SeqCst);
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            state.code_exchanges.fetch_add(1, Ordering::SeqCst);
            let Some(issued) = form
                .get("code")
                .and_then(|code| state.codes.lock().unwrap().remove(code))
            else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            if form.get("redirect_uri") != Some(&issued.redirect_uri) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let verifier = form.get("code_verifier");
            let pkce_ok = match (&issued.code_challenge, verifier) {
                (Some(challenge), Some(verifier)) => {
                    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == *challenge
                }
                (None, None) => true,
                _ => false,
            };
            if !pkce_ok {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let now = now();
            let sid = state.session_id.lock().unwrap().clone();
            let id_token = {
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some(KID.into());
                let hashed = if state.wrong_at_hash.load(Ordering::SeqCst) {
                    "another access token".to_owned()
                } else {
                    format!("at-{n}")
                };
                let digest = Sha256::digest(hashed.as_bytes());
                let claims = json!({
                    "iss": state.issuer, "sub": SUBJECT, "aud": CLIENT_ID, "exp": now + 300,
                    "iat": now, "nonce": issued.nonce, "sid": sid,
                    "at_hash": URL_SAFE_NO_PAD.encode(&digest[..16]),
                    "email": "alice@example.com", "groups": ["admins", "dev"],
                });
                jsonwebtoken::encode(&header, &claims, &state.key).unwrap()
            };
            tokens(&state, n, Some(id_token))
        }
        Some("refresh_token") => {
            state.refreshes.fetch_add(1, Ordering::SeqCst);
            // Rotating refresh tokens: each is good once.
            let known = form
                .get("refresh_token")
                .and_then(|token| state.refresh_tokens.lock().unwrap().remove(token));
            if known.is_none() {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let answer = tokens(&state, n, None);
            if state.hold_refreshes.load(Ordering::SeqCst) {
                let released =
                    tokio::time::timeout(HELD_REFRESH_LIMIT, state.refresh_answers.acquire()).await;
                if let Ok(Ok(permit)) = released {
                    permit.forget();
                }
            }
            answer
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

/// RFC 7662: the client authenticates as at the token endpoint; a known opaque token is active
/// with its members, anything else inactive.
async fn introspect(
    State(state): State<Arc<IdpState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    state.introspections.fetch_add(1, Ordering::SeqCst);
    if state.token_endpoint_down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if !authenticate(&state, &headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let known = form
        .get("token")
        .and_then(|token| state.opaque_tokens.lock().unwrap().get(token).cloned());
    match known {
        Some(mut members) => {
            members["active"] = json!(true);
            Json(members).into_response()
        }
        None => Json(json!({ "active": false })).into_response(),
    }
}

/// OIDC Core 5.3: the claims of the holder of an access token we issued (`at-N`).
async fn userinfo(State(state): State<Arc<IdpState>>, headers: HeaderMap) -> Response {
    state.userinfo_requests.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer at-"));
    if token.is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut claims = state.userinfo_claims.lock().unwrap().clone();
    claims["sub"] = json!(SUBJECT);
    Json(claims).into_response()
}

impl FakeIdp {
    /// An opaque access token the introspection endpoint answers as active with `members`.
    pub fn issue_opaque_token(&self, token: &str, members: serde_json::Value) {
        self.state
            .opaque_tokens
            .lock()
            .unwrap()
            .insert(token.to_owned(), members);
    }

    pub fn introspections(&self) -> usize {
        self.state.introspections.load(Ordering::SeqCst)
    }

    /// Holds the answers to refresh requests until `release_refreshes` (see `hold_refreshes`).
    pub fn hold_refreshes(&self) {
        self.state.hold_refreshes.store(true, Ordering::SeqCst);
    }

    /// Lets one held refresh answer, and stops holding later ones.
    pub fn release_refreshes(&self) {
        self.state.hold_refreshes.store(false, Ordering::SeqCst);
        self.state.refresh_answers.add_permits(1);
    }

    /// Refresh requests received so far, answered or not (see `IdpState::refresh_requests`).
    pub fn refresh_requests(&self) -> usize {
        self.state.refresh_requests.load(Ordering::SeqCst)
    }

    /// Forgets every refresh token: the next refresh gets `invalid_grant`.
    pub fn revoke_refresh_tokens(&self) {
        self.state.refresh_tokens.lock().unwrap().clear();
    }
}
