//! The token endpoint: authorization-code exchange and refresh (RFC 6749 §4.1.3, §6) through the
//! openidconnect crate's client, with `client_secret_basic` or `client_secret_post`, over our own
//! size-capped HTTP client. The response type is ours (`TokenEndpointResponse`): it reads
//! `expires_in` sent as a string and a missing `token_type` the way real IdPs send them, and keeps
//! the ID token as the IdP sent it, to be validated by `id_token::verify`. Errors keep the IdP's
//! `error` code so the flow can tell `invalid_grant` from an outage.

use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreIdToken,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, EmptyAdditionalClaims, EndpointNotSet, EndpointSet, OAuth2TokenResponse,
    RefreshToken, RequestTokenError, Scope, StandardErrorResponse,
};
use serde::{Deserialize, Serialize};

use super::http::HttpError;
use crate::secret::Secret;

/// Tokens from the token endpoint. No `Debug` of the values: they are `Secret`s.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: Secret,
    pub id_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    /// Seconds from now.
    pub expires_in: Option<u64>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The IdP answered with an OAuth error (`invalid_grant`, `invalid_client`...).
    #[error("token endpoint refused the request: {error}")]
    Rejected { error: String },
    /// No usable answer: connection failure, timeout, 5xx.
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    #[error("token endpoint sent an invalid response: {0}")]
    InvalidResponse(String),
}

impl TokenError {
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, TokenError::Rejected { error } if error == "invalid_grant")
    }

    /// No answer from the IdP (connection failure, timeout, 5xx): an outage, which says nothing
    /// about the grant. A refusal or an unreadable answer is not one.
    pub fn is_outage(&self) -> bool {
        matches!(self, TokenError::Unreachable(_))
    }
}

/// The crate's client, specialised to our token response type; by default with the authorization
/// and token endpoints set (the other endpoints are never used).
pub type RelyingPartyClient<HasAuthUrl = EndpointSet, HasTokenUrl = EndpointSet> =
    openidconnect::Client<
        EmptyAdditionalClaims,
        CoreAuthDisplay,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJsonWebKey,
        CoreAuthPrompt,
        StandardErrorResponse<CoreErrorResponseType>,
        TokenEndpointResponse,
        CoreTokenIntrospectionResponse,
        CoreRevocableToken,
        CoreRevocationErrorResponse,
        HasAuthUrl,
        EndpointNotSet,
        EndpointNotSet,
        EndpointNotSet,
        HasTokenUrl,
        EndpointNotSet,
    >;

/// A successful token response as IdPs really send it (RFC 6749 §5.1 with OIDC's `id_token`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "RawTokenResponse", into = "RawTokenResponse")]
pub struct TokenEndpointResponse {
    raw: RawTokenResponse,
    token_type: CoreTokenType,
    access_token: AccessToken,
    refresh_token: Option<RefreshToken>,
    /// The ID token as the crate parses it, for its `TokenResponse` trait; `None` when absent or
    /// unreadable (then `id_token::verify` of the raw text says why).
    parsed_id_token: Option<CoreIdToken>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RawTokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<String>,
}

impl From<RawTokenResponse> for TokenEndpointResponse {
    fn from(raw: RawTokenResponse) -> Self {
        let token_type = match raw.token_type.as_deref() {
            None => CoreTokenType::Bearer,
            Some(kind) if kind.eq_ignore_ascii_case("bearer") => CoreTokenType::Bearer,
            Some(kind) => CoreTokenType::Extension(kind.to_owned()),
        };
        TokenEndpointResponse {
            token_type,
            access_token: AccessToken::new(raw.access_token.clone()),
            refresh_token: raw.refresh_token.clone().map(RefreshToken::new),
            parsed_id_token: raw.id_token.as_deref().and_then(|t| t.parse().ok()),
            raw,
        }
    }
}

impl From<TokenEndpointResponse> for RawTokenResponse {
    fn from(response: TokenEndpointResponse) -> Self {
        response.raw
    }
}

impl OAuth2TokenResponse for TokenEndpointResponse {
    type TokenType = CoreTokenType;

    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &CoreTokenType {
        &self.token_type
    }

    fn expires_in(&self) -> Option<Duration> {
        self.expires_in_seconds().map(Duration::from_secs)
    }

    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        None
    }
}

impl
    openidconnect::TokenResponse<
        EmptyAdditionalClaims,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    > for TokenEndpointResponse
{
    fn id_token(&self) -> Option<&CoreIdToken> {
        self.parsed_id_token.as_ref()
    }
}

impl TokenEndpointResponse {
    /// Some IdPs send `expires_in` as a string.
    fn expires_in_seconds(&self) -> Option<u64> {
        match &self.raw.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        }
    }

    /// Our checks, then the tokens as `Secret`s.
    pub fn into_token_set(self) -> Result<TokenSet, TokenError> {
        if self.token_type != CoreTokenType::Bearer {
            return Err(TokenError::InvalidResponse(
                "token_type is not Bearer".into(),
            ));
        }
        if self.raw.access_token.is_empty() {
            return Err(TokenError::InvalidResponse("empty access_token".into()));
        }
        let expires_in = self.expires_in_seconds();
        let raw = self.raw;
        Ok(TokenSet {
            access_token: Secret::new(raw.access_token),
            id_token: raw.id_token.filter(|t| !t.is_empty()).map(Secret::new),
            refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(Secret::new),
            expires_in,
        })
    }
}

/// The crate's error, in our terms. A 5xx or a transport failure is an outage; an OAuth error body
/// is a refusal (`invalid_grant` ends a session); anything else is an invalid response. Texts are
/// fixed or the IdP's error *code*: never a body, which may echo a credential.
pub fn from_request_error(
    error: RequestTokenError<HttpError, StandardErrorResponse<CoreErrorResponseType>>,
) -> TokenError {
    match error {
        RequestTokenError::ServerResponse(response) => TokenError::Rejected {
            error: response.error().as_ref().to_owned(),
        },
        RequestTokenError::Request(error) => TokenError::Unreachable(error.to_string()),
        RequestTokenError::Parse(_, _) => {
            TokenError::InvalidResponse("not a token response".into())
        }
        RequestTokenError::Other(_) => {
            TokenError::InvalidResponse("unexpected answer from the token endpoint".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_success(body: &[u8]) -> Result<TokenSet, TokenError> {
        serde_json::from_slice::<TokenEndpointResponse>(body)
            .map_err(|_| TokenError::InvalidResponse("not a token response".into()))?
            .into_token_set()
    }

    #[test]
    fn token_responses_are_parsed_and_checked() {
        let set = parse_success(br#"{"access_token":"at","token_type":"bearer","expires_in":"60","id_token":"it","refresh_token":""}"#).unwrap();
        assert_eq!(set.access_token.expose(), "at");
        assert_eq!(set.expires_in, Some(60));
        assert_eq!(set.id_token.as_ref().map(Secret::expose), Some("it"));
        assert!(set.refresh_token.is_none());
        assert!(!format!("{set:?}").contains("at\""));
        assert!(matches!(
            parse_success(br#"{"access_token":"at","token_type":"mac"}"#),
            Err(TokenError::InvalidResponse(_))
        ));
        assert!(parse_success(br#"{"access_token":"at"}"#).is_ok());
        assert!(parse_success(b"not json").is_err());
        assert!(
            TokenError::Rejected {
                error: "invalid_grant".into()
            }
            .is_invalid_grant()
        );
    }
}
