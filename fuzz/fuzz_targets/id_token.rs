//! ID tokens (`oidc::id_token::verify`) from arbitrary strings against the fixed IdP keys, and
//! `at_hash` over the same string. Nothing may panic; a token that verifies (the seeds are signed
//! with the fixture keys) must still be refused for another nonce.
#![no_main]

use fuzz_harness::{expectations, idp_keys};
use libfuzzer_sys::fuzz_target;
use oidc_authz::oidc::{at_hash, id_token};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if id_token::verify(token, idp_keys(), &expectations(None)).is_ok() {
        let other_nonce = id_token::verify(token, idp_keys(), &expectations(Some("other")));
        assert!(other_nonce.is_err());
    }
    let _ = at_hash::check(token, "fuzz-access-token");
});
