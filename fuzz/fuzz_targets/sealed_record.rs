//! Sealed records (`crypto::seal::open`) from arbitrary bytes: what a store (or someone who can
//! write to it) hands back. Nothing we did not seal may open; the record decoders
//! (`SessionRecord`, `PendingLoginRecord`) take arbitrary plaintext without panicking.
#![no_main]

use fuzz_harness::key_ring;
use libfuzzer_sys::fuzz_target;
use oidc_authz::crypto::seal;
use oidc_authz::session::{PendingLoginRecord, SessionRecord};
use prost::Message;

fuzz_target!(|data: &[u8]| {
    assert!(seal::open(key_ring(), b"session:fuzz", data).is_none());
    let _ = SessionRecord::decode(data).map(|record| format!("{record:?}"));
    let _ = PendingLoginRecord::decode(data).map(|record| format!("{record:?}"));
    // The same bytes sealed for real open again, under their key only.
    let sealed = seal::seal(key_ring(), b"session:fuzz", data).expect("random nonce");
    let opened = seal::open(key_ring(), b"session:fuzz", &sealed).expect("opens");
    assert_eq!(opened.plaintext, data);
    assert!(seal::open(key_ring(), b"session:other", &sealed).is_none());
});
