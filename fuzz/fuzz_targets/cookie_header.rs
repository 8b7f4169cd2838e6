//! The `Cookie` header and cookie values: finding our cookies by name, taking them out of the
//! header the upstream gets, and verifying each value as a session and as a login cookie
//! (`crypto::cookie::verify`). Must never panic; a value must never verify unless we signed it.
#![no_main]

use fuzz_harness::key_ring;
use libfuzzer_sys::fuzz_target;
use oidc_authz::crypto::cookie::{self, CookiePurpose};
use oidc_authz::flow::RequestView;

const NAMES: &[&str] = &["__Host-session", "__Host-session_login", "session", ""];

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data).into_owned();
    for purpose in [CookiePurpose::Session, CookiePurpose::Login] {
        assert!(cookie::verify(key_ring(), purpose, &header).is_none());
    }
    let view = RequestView {
        headers: [("cookie".to_owned(), header)].into(),
        ..Default::default()
    };
    for name in NAMES {
        for value in view.cookies(name) {
            for purpose in [CookiePurpose::Session, CookiePurpose::Login] {
                assert!(cookie::verify(key_ring(), purpose, value).is_none());
            }
        }
    }
    let names: Vec<String> = NAMES.iter().map(|name| (*name).to_owned()).collect();
    if let Some(kept) = view.cookie_header_without(&names) {
        assert!(!kept.is_empty());
    }
});
