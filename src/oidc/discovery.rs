//! The discovery document (`{issuer}/.well-known/openid-configuration`): the few fields we use,
//! checked when fetched (the issuer must match the configured one exactly, per OIDC Discovery §4.3).

use serde::Deserialize;
use url::Url;

#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub jwks_uri: Url,
    #[serde(default)]
    pub end_session_endpoint: Option<Url>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    pub response_modes_supported: Option<Vec<String>>,
}

impl ProviderMetadata {
    pub fn supports_pkce_s256(&self) -> bool {
        self.code_challenge_methods_supported
            .iter()
            .any(|method| method == "S256")
    }
}

/// The discovery URL for an issuer: the issuer with any trailing `/` removed, then the well-known path.
pub fn discovery_url(issuer: &Url) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.as_str().trim_end_matches('/')
    )
}

/// Parses and checks a discovery document against the configured issuer.
pub fn parse(issuer: &Url, body: &[u8]) -> Result<ProviderMetadata, String> {
    let metadata: ProviderMetadata = serde_json::from_slice(body)
        .map_err(|error| format!("discovery document is not valid: {error}"))?;
    let expected = issuer.as_str().trim_end_matches('/');
    if metadata.issuer.trim_end_matches('/') != expected {
        return Err(format!(
            "discovery document names issuer `{}`, but the configured issuer is `{expected}`",
            metadata.issuer
        ));
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> Url {
        Url::parse("https://idp.example/realms/demo").unwrap()
    }

    #[test]
    fn discovery_url_is_under_the_issuer() {
        assert_eq!(
            discovery_url(&issuer()),
            "https://idp.example/realms/demo/.well-known/openid-configuration"
        );
    }

    #[test]
    fn issuer_mismatch_is_rejected_and_pkce_read() {
        let body = br#"{"issuer":"https://idp.example/realms/demo","authorization_endpoint":"https://idp.example/auth",
            "token_endpoint":"https://idp.example/token","jwks_uri":"https://idp.example/jwks",
            "code_challenge_methods_supported":["plain","S256"]}"#;
        let metadata = parse(&issuer(), body).unwrap();
        assert!(metadata.supports_pkce_s256());
        assert!(metadata.end_session_endpoint.is_none());
        let other = Url::parse("https://evil.example").unwrap();
        assert!(
            parse(&other, body)
                .unwrap_err()
                .contains("configured issuer")
        );
        assert!(parse(&issuer(), b"{}").is_err());
    }
}
