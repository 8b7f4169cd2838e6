//! The token endpoint, through the openidconnect crate's client built at discovery: the code
//! exchange (with the login's redirect URI and PKCE verifier) and the refresh grant.

use std::borrow::Cow;

use openidconnect::{AuthorizationCode, PkceCodeVerifier, RedirectUrl, RefreshToken};

use super::Provider;
use crate::metrics::IdpEndpoint;
use crate::oidc::token::{self, TokenError, TokenSet};
use crate::secret::Secret;

impl Provider {
    pub(super) async fn request_tokens_for_code(
        &self,
        code: &Secret,
        redirect_uri: &str,
        pkce_verifier: Option<&str>,
    ) -> Result<TokenSet, TokenError> {
        let discovered = self.discovered().ok_or_else(Self::not_ready)?;
        let redirect_uri = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|_| TokenError::InvalidResponse("the redirect URI is not a URL".into()))?;
        let mut request = discovered
            .client
            .exchange_code(AuthorizationCode::new(code.expose().to_owned()))
            .set_redirect_uri(Cow::Owned(redirect_uri));
        if let Some(verifier) = pkce_verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()));
        }
        (self
            .metrics
            .time(IdpEndpoint::Token, request.request_async(&self.http))
            .await)
            .map_err(token::from_request_error)?
            .into_token_set()
    }

    pub(super) async fn request_refreshed_tokens(
        &self,
        refresh_token: &Secret,
    ) -> Result<TokenSet, TokenError> {
        let discovered = self.discovered().ok_or_else(Self::not_ready)?;
        let refresh_token = RefreshToken::new(refresh_token.expose().to_owned());
        let request = discovered.client.exchange_refresh_token(&refresh_token);
        (self
            .metrics
            .time(IdpEndpoint::Token, request.request_async(&self.http))
            .await)
            .map_err(token::from_request_error)?
            .into_token_set()
    }

    fn not_ready() -> TokenError {
        TokenError::Unreachable("the OpenID Provider has not been discovered yet".into())
    }
}
