//! The OpenID Provider side: discovery (`discovery`), the JWKS cache (`jwks`), ID-token validation
//! (`id_token`), and the token endpoint (`token`), tied together by `Provider`, the real
//! `IdentityProvider`. Knows nothing of Envoy or sessions.

pub mod discovery;
pub mod id_token;
pub mod jwks;
pub mod logout_token;
pub mod provider;
pub mod token;

use async_trait::async_trait;

pub use discovery::ProviderMetadata;
pub use id_token::{IdTokenClaims, IdTokenError};
pub use logout_token::LogoutClaims;
pub use provider::Provider;
pub use token::{TokenError, TokenSet};

use crate::secret::Secret;

/// What the flow needs from an IdP. Behind a trait so the flow's branches are testable without IO.
#[async_trait]
pub trait IdentityProvider: Send + Sync + 'static {
    /// The discovery document, `None` until discovery has succeeded.
    fn metadata(&self) -> Option<std::sync::Arc<ProviderMetadata>>;

    async fn exchange_code(
        &self,
        code: &Secret,
        redirect_uri: &str,
        pkce_verifier: Option<&str>,
    ) -> Result<TokenSet, TokenError>;

    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenSet, TokenError>;

    /// Validates an ID token: signature, algorithm, `iss`, `aud`, `azp`, `exp`, `iat`, and `nonce`
    /// when one is expected.
    async fn verify_id_token(
        &self,
        id_token: &Secret,
        expected_nonce: Option<&str>,
    ) -> Result<IdTokenClaims, IdTokenError>;

    /// Validates a back-channel logout token; the error text says why it was refused.
    async fn verify_logout_token(&self, logout_token: &Secret) -> Result<LogoutClaims, String>;
}
