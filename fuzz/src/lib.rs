//! What the fuzz targets share: fixed keys (a session key ring, the IdP's RSA and EC keys from
//! `tests/fixtures`), ID-token expectations, and a real `Flow`/`AuthzService` over the memory store
//! with an IdP stand-in that answers instantly and never touches the network. Built once per fuzz
//! process (`OnceLock`); every target is a small `fuzz_target!` over these.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use oidc_authz::authz::AuthzService;
use oidc_authz::clock::{Clock, ManualClock};
use oidc_authz::crypto::KeyRing;
use oidc_authz::flow::{Decision, Flow, RequestView};
use oidc_authz::oidc::id_token::Expectations;
use oidc_authz::oidc::logout_token::{self, RawLogoutClaims};
use oidc_authz::oidc::{
    IdTokenClaims, IdTokenError, IdentityProvider, LogoutClaims, LogoutTokenError, ProviderMetadata, TokenError,
    TokenSet,
};
use oidc_authz::secret::Secret;
use oidc_authz::server::App;
use oidc_authz::session::SessionStore;
use oidc_authz::session::memory::MemoryStore;

/// "Now" for every clock in the fuzz targets.
pub const NOW: i64 = 1_800_000_000;
pub const ISSUER: &str = "https://idp.fuzz.example";
pub const CLIENT_ID: &str = "fuzz-client";
pub const CLIENT_SECRET: &str = "fuzz-client-secret";
pub const LEEWAY_SECONDS: i64 = 30;
/// HS256 included: the client-secret path is a parser too.
pub const ALGORITHMS: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256, Algorithm::HS256];

const RSA_PEM: &[u8] = include_bytes!("../../tests/fixtures/idp-rsa.pem");
const EC_PEM: &[u8] = include_bytes!("../../tests/fixtures/idp-ec.pem");

/// Configured paths, so a target can steer a request to each step of the flow.
pub const PATHS: &[&str] = &["/callback", "/logout", "/backchannel", "/app", "//app"];

const CONFIG: &str = "
issuer: https://idp.fuzz.example
client_id: fuzz-client
client_secret: fuzz-client-secret
session_secret: fuzz-session-secret-0123456789abcdef
backchannel_logout_path: /backchannel
upstream_headers_claims: [email, groups]
upstream_headers_names: [x-user-email, x-user-groups]
memory:
  max_bytes: 1048576
";

/// A current and an old session key, so rotation paths run too.
pub fn key_ring() -> &'static KeyRing {
    static KEYS: OnceLock<KeyRing> = OnceLock::new();
    KEYS.get_or_init(|| {
        KeyRing::from_secrets(&[
            Secret::new("fuzz-current-secret-0123456789abcdef"),
            Secret::new("fuzz-previous-secret-0123456789abcde"),
        ])
        .expect("fuzz keys")
    })
}

/// The IdP's public keys: RSA (`kid` "rsa") and EC (`kid` "ec"), from the test fixtures.
pub fn idp_keys() -> &'static [Jwk] {
    static KEYS: OnceLock<Vec<Jwk>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = EncodingKey::from_rsa_pem(RSA_PEM).expect("RSA fixture");
        let ec = EncodingKey::from_ec_pem(EC_PEM).expect("EC fixture");
        [(rsa, Algorithm::RS256, "rsa"), (ec, Algorithm::ES256, "ec")]
            .into_iter()
            .map(|(key, alg, kid)| {
                let mut jwk = Jwk::from_encoding_key(&key, alg).expect("JWK");
                jwk.common.key_id = Some(kid.into());
                jwk
            })
            .collect()
    })
}

pub fn expectations(nonce: Option<&str>) -> Expectations<'_> {
    Expectations {
        issuer: ISSUER,
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        allowed_algorithms: ALGORITHMS,
        leeway_seconds: LEEWAY_SECONDS,
        now_unix: NOW,
        nonce,
    }
}

/// An IdP that answers at once: every code exchanges, every ID token is "valid", and a logout
/// token is taken as its JSON claims (as if its signature had verified), so the claim rules and
/// what the flow does with them get fuzzed past the signature no fuzzer can forge.
struct FakeIdp {
    metadata: Arc<ProviderMetadata>,
}

#[async_trait]
impl IdentityProvider for FakeIdp {
    fn metadata(&self) -> Option<Arc<ProviderMetadata>> {
        Some(Arc::clone(&self.metadata))
    }

    async fn exchange_code(
        &self,
        _code: &Secret,
        _redirect_uri: &str,
        _pkce_verifier: Option<&str>,
    ) -> Result<TokenSet, TokenError> {
        Ok(TokenSet {
            access_token: Secret::new("fuzz-access-token"),
            id_token: Some(Secret::new("fuzz-id-token")),
            refresh_token: Some(Secret::new("fuzz-refresh-token")),
            expires_in: Some(3600),
        })
    }

    async fn refresh(&self, _refresh_token: &Secret) -> Result<TokenSet, TokenError> {
        Err(TokenError::Unreachable(
            "the fuzz IdP does not refresh".into(),
        ))
    }

    async fn verify_id_token(
        &self,
        _id_token: &Secret,
        _expected_nonce: Option<&str>,
        _access_token: Option<&Secret>,
    ) -> Result<IdTokenClaims, IdTokenError> {
        let claims = serde_json::json!({"email": "alice@example.com", "groups": ["a", "b"]});
        Ok(IdTokenClaims {
            subject: "alice".into(),
            idp_session_id: Some("idp-session".into()),
            expires_at: NOW + 3600,
            claims: claims.as_object().cloned().unwrap_or_default(),
        })
    }

    async fn verify_logout_token(
        &self,
        logout_token: &Secret,
    ) -> Result<LogoutClaims, LogoutTokenError> {
        let claims: RawLogoutClaims = serde_json::from_str(logout_token.expose())
            .map_err(|_| IdTokenError::Malformed("not JSON claims"))?;
        logout_token::check(claims, ISSUER, CLIENT_ID, LEEWAY_SECONDS, NOW)
    }
}

fn fake_idp() -> FakeIdp {
    let document = serde_json::json!({
        "issuer": ISSUER,
        "authorization_endpoint": "https://idp.fuzz.example/authorize",
        "token_endpoint": "https://idp.fuzz.example/token",
        "jwks_uri": "https://idp.fuzz.example/jwks",
        "end_session_endpoint": "https://idp.fuzz.example/logout",
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let issuer = url::Url::parse(ISSUER).expect("issuer");
    let metadata = oidc_authz::oidc::discovery::parse(&issuer, document.to_string().as_bytes())
        .expect("metadata");
    FakeIdp {
        metadata: Arc::new(metadata),
    }
}

/// A real flow and Envoy adapter, a runtime to drive them, and the `Cookie` header of a session
/// logged in through the flow (so targets can send requests that get past the session check).
pub struct FlowFixture {
    pub runtime: tokio::runtime::Runtime,
    pub flow: Arc<Flow>,
    pub authz: AuthzService,
    pub session_cookie: String,
}

pub fn flow_fixture() -> &'static FlowFixture {
    static FIXTURE: OnceLock<FlowFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let (config, _) =
            oidc_authz::config::load_from_str(CONFIG, "fuzz", Vec::new()).expect("config");
        let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
        let app = App::assemble(config, store, Arc::new(fake_idp()), clock).expect("assemble");
        let flow = Arc::clone(&app.flow);
        let (state, login_cookie) = runtime.block_on(start_login(&flow));
        let session_cookie = runtime.block_on(finish_login(&flow, &state, &login_cookie));
        FlowFixture {
            runtime,
            authz: AuthzService::new(Arc::clone(&app.gateway), true),
            flow,
            session_cookie,
        }
    })
}

fn browser_request(path: &str, query: &str, cookie: Option<&str>) -> RequestView {
    let mut headers = std::collections::HashMap::from([("accept".into(), "text/html".into())]);
    if let Some(cookie) = cookie {
        headers.insert("cookie".into(), cookie.to_owned());
    }
    RequestView {
        method: "GET".into(),
        scheme: "https".into(),
        host: "app.fuzz.example".into(),
        path: path.into(),
        query: query.into(),
        headers,
        body: Vec::new(),
        policy_name: None,
    }
}

/// `name=value` of a `Set-Cookie` value.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// Starts a login as a browser would: the `state` it was given and its login cookie (`name=value`).
pub async fn start_login(flow: &Flow) -> (String, String) {
    let Ok(Decision::Redirect {
        location,
        set_cookies,
        ..
    }) = flow.check(&browser_request("/app", "", None)).await
    else {
        panic!("a browser without a session is sent to the IdP");
    };
    let state = url::Url::parse(&location)
        .expect("authorization URL")
        .query_pairs()
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned())
        .expect("state");
    (state, cookie_pair(&set_cookies[0]))
}

async fn finish_login(flow: &Flow, state: &str, login_cookie: &str) -> String {
    let query = format!("code=c&state={state}");
    let Ok(Decision::Redirect { set_cookies, .. }) = flow
        .check(&browser_request("/callback", &query, Some(login_cookie)))
        .await
    else {
        panic!("the callback redirects back");
    };
    set_cookies
        .iter()
        .map(|value| cookie_pair(value))
        .find(|pair| pair.contains("session=v1."))
        .expect("session cookie")
}
