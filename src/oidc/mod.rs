//! The OpenID Provider side, on the openidconnect crate: discovery (`discovery`), the
//! authorization request (`authorize`), the token endpoint (`token`), ID-token validation
//! (`id_token`), bearer access tokens (`access_token`, and `introspection` for opaque ones), the userinfo
//! endpoint (`userinfo`), the JWKS cache (`jwks`), back-channel logout tokens (`logout_token`, on
//! jsonwebtoken: the crate does not model them) and the capped HTTP client (`http`), tied together
//! by `Provider`, the real `IdentityProvider`. Knows nothing of Envoy or sessions.

pub mod access_token;
pub mod at_hash;
pub mod authorize;
pub mod discovery;
pub mod end_session;
pub mod http;
pub mod id_token;
pub mod introspection;
pub mod jwks;
pub mod logout_token;
pub mod provider;
pub mod token;
pub mod userinfo;

use async_trait::async_trait;

pub use access_token::AccessTokenError;
pub use authorize::{AuthorizationRequest, authorization_url};
pub use discovery::ProviderMetadata;
pub use id_token::{IdTokenClaims, IdTokenError};
pub use logout_token::{LogoutClaims, LogoutTokenError};
pub use provider::Provider;
pub use token::{TokenError, TokenSet};
pub use userinfo::UserinfoError;

use crate::secret::Secret;

/// What the flow needs from an IdP. Behind a trait so the flow's branches are testable without IO.
#[async_trait]
pub trait IdentityProvider: Send + Sync + 'static {
    /// The discovery document, `None` until discovery has succeeded.
    fn metadata(&self) -> Option<std::sync::Arc<ProviderMetadata>>;

    /// A login needs the IdP and found it undiscovered: retry discovery now (rate-limited).
    fn discovery_wanted(&self) {}

    /// This client's request metrics, for `/metrics`; `None` for a client that keeps none.
    fn idp_metrics(&self) -> Option<&crate::metrics::IdpMetrics> {
        None
    }

    /// Why the IdP cannot be used yet (for `/readyz`), `None` once it is discovered.
    fn not_ready_reason(&self) -> Option<String> {
        self.metadata()
            .is_none()
            .then(|| "OpenID Provider not discovered yet".into())
    }

    async fn exchange_code(
        &self,
        code: &Secret,
        redirect_uri: &str,
        pkce_verifier: Option<&str>,
    ) -> Result<TokenSet, TokenError>;

    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenSet, TokenError>;

    /// Validates an ID token: signature, algorithm, `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`
    /// when one is expected, and `at_hash` (when the token has one) against `access_token`.
    async fn verify_id_token(
        &self,
        id_token: &Secret,
        expected_nonce: Option<&str>,
        access_token: Option<&Secret>,
    ) -> Result<IdTokenClaims, IdTokenError>;

    /// Validates a JWT access token presented as `Authorization: Bearer` (see `access_token`) and
    /// returns its claims. The default refuses every token: an IdP that cannot check them.
    async fn verify_access_token(
        &self,
        _access_token: &Secret,
    ) -> Result<serde_json::Map<String, serde_json::Value>, AccessTokenError> {
        Err(AccessTokenError::UnknownKey)
    }

    /// Asks the IdP about an opaque access token (RFC 7662), through a short-lived cache, and
    /// returns what it says the token carries. The default: no introspection, every token refused.
    async fn introspect(
        &self,
        _access_token: &Secret,
    ) -> Result<serde_json::Map<String, serde_json::Value>, AccessTokenError> {
        Err(AccessTokenError::IntrospectionUnavailable(
            "this IdP client cannot introspect".into(),
        ))
    }

    /// The userinfo endpoint's claims for the holder of `access_token`, who must be `subject`.
    async fn userinfo(
        &self,
        _access_token: &Secret,
        _subject: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, UserinfoError> {
        Err(UserinfoError::NoEndpoint)
    }

    /// Validates a back-channel logout token; the error says why it was refused.
    async fn verify_logout_token(
        &self,
        logout_token: &Secret,
    ) -> Result<LogoutClaims, LogoutTokenError>;
}
