//! The discovery document (`{issuer}/.well-known/openid-configuration`), parsed by the
//! openidconnect crate's `ProviderMetadata` (which checks the fields OIDC Discovery §3 requires)
//! plus the two members it does not model: the end-session endpoint (RP-Initiated Logout 1.0) and
//! `code_challenge_methods_supported` (RFC 8414). The issuer must match the configured one exactly
//! (OIDC Discovery §4.3), ignoring only a trailing `/` that URL normalisation may add.

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{AdditionalProviderMetadata, EndSessionUrl};
use serde::{Deserialize, Serialize};
use url::Url;

/// Discovery members the crate's `ProviderMetadata` leaves to its extension point.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct DiscoveryExtras {
    #[serde(default)]
    pub end_session_endpoint: Option<EndSessionUrl>,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 8414 / RFC 7662: where opaque access tokens are introspected.
    #[serde(default)]
    pub introspection_endpoint: Option<Url>,
}

impl AdditionalProviderMetadata for DiscoveryExtras {}

/// The crate's discovery document with our extras.
pub type DiscoveryDocument = openidconnect::ProviderMetadata<
    DiscoveryExtras,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A checked discovery document: it names our issuer and has a token endpoint.
#[derive(Debug, Clone)]
pub struct ProviderMetadata {
    document: DiscoveryDocument,
    token_endpoint: Url,
}

/// Why a discovery document was refused. The text names the problem, never a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DiscoveryError {
    #[error("discovery document is not valid: {0}")]
    Invalid(String),
    #[error("discovery document names issuer `{found}`, but the configured issuer is `{expected}`")]
    IssuerMismatch { found: String, expected: String },
    #[error("discovery document has no token_endpoint")]
    NoTokenEndpoint,
}

impl ProviderMetadata {
    pub fn issuer(&self) -> &str {
        self.document.issuer().as_str()
    }

    pub fn authorization_endpoint(&self) -> &Url {
        self.document.authorization_endpoint().url()
    }

    pub fn token_endpoint(&self) -> &Url {
        &self.token_endpoint
    }

    pub fn jwks_uri(&self) -> &Url {
        self.document.jwks_uri().url()
    }

    pub fn end_session_endpoint(&self) -> Option<&Url> {
        self.extras().end_session_endpoint.as_ref().map(|e| e.url())
    }

    pub fn userinfo_endpoint(&self) -> Option<&Url> {
        self.document
            .userinfo_endpoint()
            .map(|endpoint| endpoint.url())
    }

    pub fn introspection_endpoint(&self) -> Option<&Url> {
        self.extras().introspection_endpoint.as_ref()
    }

    pub fn supports_pkce_s256(&self) -> bool {
        self.extras()
            .code_challenge_methods_supported
            .iter()
            .flatten()
            .any(|method| method == "S256")
    }

    /// The crate's document, for building its request types.
    pub fn document(&self) -> &DiscoveryDocument {
        &self.document
    }

    fn extras(&self) -> &DiscoveryExtras {
        self.document.additional_metadata()
    }
}

/// The discovery URL for an issuer: the issuer with any trailing `/` removed, then the well-known path.
pub fn discovery_url(issuer: &Url) -> Result<Url, DiscoveryError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.as_str().trim_end_matches('/')
    );
    Url::parse(&url).map_err(|error| DiscoveryError::Invalid(error.to_string()))
}

/// Parses and checks a discovery document against the configured issuer.
pub fn parse(issuer: &Url, body: &[u8]) -> Result<ProviderMetadata, DiscoveryError> {
    let document: DiscoveryDocument =
        serde_json::from_slice(body).map_err(|error| DiscoveryError::Invalid(error.to_string()))?;
    let expected = issuer.as_str().trim_end_matches('/');
    let found = document.issuer().as_str();
    if found.trim_end_matches('/') != expected {
        return Err(DiscoveryError::IssuerMismatch {
            found: found.to_owned(),
            expected: expected.to_owned(),
        });
    }
    let token_endpoint = document
        .token_endpoint()
        .ok_or(DiscoveryError::NoTokenEndpoint)?
        .url()
        .clone();
    Ok(ProviderMetadata {
        document,
        token_endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> Url {
        Url::parse("https://idp.example/realms/demo").unwrap()
    }

    const DOCUMENT: &[u8] = br#"{"issuer":"https://idp.example/realms/demo","authorization_endpoint":"https://idp.example/auth",
        "token_endpoint":"https://idp.example/token","jwks_uri":"https://idp.example/jwks",
        "response_types_supported":["code"],"subject_types_supported":["public"],
        "id_token_signing_alg_values_supported":["RS256"],
        "code_challenge_methods_supported":["plain","S256"]}"#;

    #[test]
    fn discovery_url_is_under_the_issuer() {
        assert_eq!(
            discovery_url(&issuer()).unwrap().as_str(),
            "https://idp.example/realms/demo/.well-known/openid-configuration"
        );
    }

    #[test]
    fn issuer_mismatch_is_rejected_and_pkce_read() {
        let metadata = parse(&issuer(), DOCUMENT).unwrap();
        assert!(metadata.supports_pkce_s256());
        assert!(metadata.end_session_endpoint().is_none());
        assert_eq!(
            metadata.token_endpoint().as_str(),
            "https://idp.example/token"
        );
        let other = Url::parse("https://evil.example").unwrap();
        assert!(matches!(
            parse(&other, DOCUMENT),
            Err(DiscoveryError::IssuerMismatch { .. })
        ));
        assert!(parse(&issuer(), b"{}").is_err());
    }

    #[test]
    fn end_session_endpoint_is_read_and_token_endpoint_required() {
        let mut document: serde_json::Value = serde_json::from_slice(DOCUMENT).unwrap();
        document["end_session_endpoint"] = "https://idp.example/logout".into();
        let metadata = parse(&issuer(), document.to_string().as_bytes()).unwrap();
        assert_eq!(
            metadata.end_session_endpoint().map(Url::as_str),
            Some("https://idp.example/logout")
        );
        document.as_object_mut().unwrap().remove("token_endpoint");
        assert!(matches!(
            parse(&issuer(), document.to_string().as_bytes()),
            Err(DiscoveryError::NoTokenEndpoint)
        ));
    }
}
