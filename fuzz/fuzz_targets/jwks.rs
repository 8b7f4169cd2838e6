//! JWKS documents (`oidc::jwks::parse_key_set`) from arbitrary bytes, then every kept key offered
//! to ID-token and logout-token verification of a fixed token: a key we parse must not make
//! verification panic (huge or empty RSA moduli, odd curves, wrong `alg`s).
#![no_main]

use fuzz_harness::{ALGORITHMS, CLIENT_SECRET, expectations};
use libfuzzer_sys::fuzz_target;
use oidc_authz::oidc::id_token;
use oidc_authz::oidc::jwks::{JwksCache, parse_key_set};

/// A well-formed RS256 token (claims `{"sub":"alice"}`), so verification gets to the keys.
const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

fuzz_target!(|data: &[u8]| {
    let Ok(keys) = parse_key_set(data) else {
        return;
    };
    let candidates = JwksCache::candidates(&keys, Some("rsa"));
    for keys in [&keys, &candidates] {
        assert!(id_token::verify(TOKEN, keys, &expectations(None)).is_err());
        let verified =
            id_token::verify_signature::<serde_json::Value>(TOKEN, keys, ALGORITHMS, CLIENT_SECRET);
        assert!(verified.is_err());
    }
});
