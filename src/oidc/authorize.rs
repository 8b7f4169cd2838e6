//! The authorization request (OIDC Core §3.1.2.1), built by the openidconnect crate's
//! `AuthorizationRequest`: `response_type=code`, our `state` and `nonce` (values from our own OS
//! CSPRNG, never the crate's RNG, because we store them with the pending login first), PKCE S256
//! when asked, the per-request redirect URI, `response_mode` and the configured extra parameters.

use std::borrow::Cow;

use openidconnect::core::{CoreClient, CoreResponseType};
use openidconnect::{
    AuthUrl, AuthenticationFlow, ClientId, CsrfToken, IssuerUrl, JsonWebKeySet, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};
use url::Url;

use super::ProviderMetadata;

/// What one login asks the IdP for.
pub struct AuthorizationRequest<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    /// As configured (they include `openid`; the crate's own `openid` is turned off).
    pub scopes: &'a [String],
    pub state: &'a str,
    pub nonce: &'a str,
    /// `Some` when PKCE is used: the verifier whose S256 challenge is sent.
    pub pkce_verifier: Option<&'a str>,
    /// `Some("form_post")` for form_post logins.
    pub response_mode: Option<&'a str>,
    pub extra_params: &'a [(String, String)],
}

/// Why no authorization URL could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAuthorizationRequest {
    #[error("the redirect URI is not a valid URL")]
    RedirectUri,
    /// RFC 7636 §4.1: 43 to 128 characters (the crate would panic on any other length).
    #[error("the PKCE verifier is not 43 to 128 characters long")]
    PkceVerifier,
}

/// The URL to send the browser to.
pub fn authorization_url(
    metadata: &ProviderMetadata,
    request: &AuthorizationRequest,
) -> Result<Url, InvalidAuthorizationRequest> {
    let redirect_uri = RedirectUrl::new(request.redirect_uri.to_owned())
        .map_err(|_| InvalidAuthorizationRequest::RedirectUri)?;
    let issuer = IssuerUrl::from_url(
        Url::parse(metadata.issuer()).map_err(|_| InvalidAuthorizationRequest::RedirectUri)?,
    );
    let client = CoreClient::new(
        ClientId::new(request.client_id.to_owned()),
        issuer,
        JsonWebKeySet::default(),
    )
    .set_auth_uri(AuthUrl::from_url(metadata.authorization_endpoint().clone()))
    .disable_openid_scope();
    let state = CsrfToken::new(request.state.to_owned());
    let nonce = Nonce::new(request.nonce.to_owned());
    let mut builder = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            move || state,
            move || nonce,
        )
        .set_redirect_uri(Cow::Owned(redirect_uri))
        .add_scopes(request.scopes.iter().cloned().map(Scope::new));
    if let Some(verifier) = request.pkce_verifier {
        if !(43..=128).contains(&verifier.len()) {
            return Err(InvalidAuthorizationRequest::PkceVerifier);
        }
        let verifier = PkceCodeVerifier::new(verifier.to_owned());
        builder =
            builder.set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier));
    }
    if let Some(mode) = request.response_mode {
        builder = builder.add_extra_param("response_mode", mode);
    }
    for (name, value) in request.extra_params {
        builder = builder.add_extra_param(name, value);
    }
    Ok(builder.url().0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn metadata() -> ProviderMetadata {
        let document = br#"{"issuer":"https://idp.example","authorization_endpoint":"https://idp.example/auth?tenant=a",
            "token_endpoint":"https://idp.example/token","jwks_uri":"https://idp.example/jwks",
            "response_types_supported":["code"],"subject_types_supported":["public"],
            "id_token_signing_alg_values_supported":["RS256"]}"#;
        super::super::discovery::parse(&Url::parse("https://idp.example").unwrap(), document)
            .unwrap()
    }

    const VERIFIER: &str = "verifier-0123456789-0123456789-0123456789-0123456789";

    #[test]
    fn the_url_carries_our_state_nonce_pkce_and_parameters() {
        let scopes = ["openid".to_owned(), "email".to_owned()];
        let extra = [("prompt".to_owned(), "login".to_owned())];
        let url = authorization_url(
            &metadata(),
            &AuthorizationRequest {
                state: "state-1",
                nonce: "nonce-1",
                pkce_verifier: Some(VERIFIER),
                response_mode: Some("form_post"),
                extra_params: &extra,
                ..request_like(&scopes)
            },
        )
        .unwrap();
        assert_eq!(url.path(), "/auth");
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            VERIFIER.to_owned(),
        ));
        for (name, value) in [
            ("tenant", "a"),
            ("response_type", "code"),
            ("client_id", "envoy"),
            ("redirect_uri", "https://app.example/callback"),
            ("scope", "openid email"),
            ("state", "state-1"),
            ("nonce", "nonce-1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("response_mode", "form_post"),
            ("prompt", "login"),
        ] {
            assert_eq!(query.get(name).map(String::as_str), Some(value), "{name}");
        }
    }

    #[test]
    fn without_pkce_or_response_mode_neither_is_sent() {
        let scopes = ["openid".to_owned()];
        let url = authorization_url(&metadata(), &request_like(&scopes)).unwrap();
        let names: Vec<String> = url
            .query_pairs()
            .map(|(name, _)| name.into_owned())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("code_challenge") || n == "response_mode")
        );
        assert!(
            authorization_url(
                &metadata(),
                &AuthorizationRequest {
                    redirect_uri: "not a url",
                    ..request_like(&scopes)
                }
            )
            .is_err()
        );
    }

    fn request_like(scopes: &[String]) -> AuthorizationRequest<'_> {
        AuthorizationRequest {
            client_id: "envoy",
            redirect_uri: "https://app.example/callback",
            scopes,
            state: "s",
            nonce: "n",
            pkce_verifier: None,
            response_mode: None,
            extra_params: &[],
        }
    }
}
