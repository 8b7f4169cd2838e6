//! Back-channel logout tokens: the signature path (`id_token::verify_signature` with the fixed
//! IdP keys and the client secret) on arbitrary strings, and the claim rules
//! (`logout_token::check`) on arbitrary JSON, as if the signature had verified.
#![no_main]

use fuzz_harness::{ALGORITHMS, CLIENT_ID, CLIENT_SECRET, ISSUER, LEEWAY_SECONDS, NOW, idp_keys};
use libfuzzer_sys::fuzz_target;
use oidc_authz::oidc::id_token;
use oidc_authz::oidc::logout_token::{self, RawLogoutClaims};

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        // The seeds are signed for real, so a token may verify; its claims then go through the
        // rules like any others.
        let verified = id_token::verify_signature::<RawLogoutClaims>(
            token,
            idp_keys(),
            ALGORITHMS,
            CLIENT_SECRET,
        );
        if let Ok(claims) = verified {
            let _ = logout_token::check(claims, ISSUER, CLIENT_ID, LEEWAY_SECONDS, NOW);
        }
    }
    if let Ok(claims) = serde_json::from_slice::<RawLogoutClaims>(data) {
        if let Ok(logout) = logout_token::check(claims, ISSUER, CLIENT_ID, LEEWAY_SECONDS, NOW) {
            assert!(logout.remember_until > NOW && !logout.jti.is_empty());
        }
    }
});
