//! What the IdP sends us besides keys: the discovery document (`oidc::discovery::parse`, the
//! openidconnect crate's `ProviderMetadata` plus our extras) and the token endpoint's answer
//! (`TokenEndpointResponse`, with the crate's ID-token parsing inside). A hostile or broken IdP
//! must get an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oidc_authz::oidc::discovery;
use oidc_authz::oidc::token::TokenEndpointResponse;

fuzz_target!(|data: &[u8]| {
    let issuer = url::Url::parse("https://idp.example").expect("issuer");
    if let Ok(metadata) = discovery::parse(&issuer, data) {
        let _ = metadata.supports_pkce_s256();
        let _ = metadata.end_session_endpoint();
    }
    if let Ok(response) = serde_json::from_slice::<TokenEndpointResponse>(data) {
        let _ = response.into_token_set();
    }
});
