//! Property tests (proptest, 256 cases each) for the round trips that must hold for every input,
//! not just the examples in the unit tests: sealing and opening records, signing and verifying
//! cookies, and the post-login return target `RequestView::local_target` (same-origin, RFC 3986
//! characters only, bounded).

use oidc_authz::crypto::KeyRing;
use oidc_authz::crypto::cookie::{self, CookiePurpose, VerifiedCookie};
use oidc_authz::crypto::seal;
use oidc_authz::flow::RequestView;
use oidc_authz::flow::request::MAX_RETURN_TARGET_BYTES;
use oidc_authz::secret::Secret;
use proptest::prelude::*;

const CURRENT: &str = "properties-current-secret-0123456789";
const PREVIOUS: &str = "properties-previous-secret-012345678";

fn ring(secrets: &[&str]) -> KeyRing {
    let secrets: Vec<Secret> = secrets.iter().map(|secret| Secret::new(*secret)).collect();
    KeyRing::from_secrets(&secrets).expect("test secrets are long enough")
}

fn purpose() -> impl Strategy<Value = CookiePurpose> {
    prop_oneof![Just(CookiePurpose::Session), Just(CookiePurpose::Login)]
}

fn other(purpose: CookiePurpose) -> CookiePurpose {
    match purpose {
        CookiePurpose::Session => CookiePurpose::Login,
        CookiePurpose::Login => CookiePurpose::Session,
    }
}

/// Paths and queries heavy in what matters to `local_target`: slashes, backslashes, `%`
/// (escapes and broken ones), `?`, `#`, controls, spaces, non-ASCII; sometimes over the bound.
fn target_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_owned()),
        Just("\\".to_owned()),
        Just("%".to_owned()),
        Just("%41".to_owned()),
        Just("?".to_owned()),
        "[#\"<> \t\r\n:@!$&'()*+,;=~._-]",
        "[a-zA-Z0-9]{1,8}",
        any::<char>().prop_map(String::from),
    ];
    prop_oneof![
        8 => prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat()),
        1 => ("[a-z/%]{0,4}", 600..1100usize).prop_map(|(head, n)| format!("{head}{}", " é".repeat(n))),
    ]
}

/// RFC 3986 `pchar` / `query` characters (`/` and `?` included); `%` only as an escape.
fn is_rfc3986_target_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&byte)
}

fn escapes_are_well_formed(target: &str) -> bool {
    let bytes = target.as_bytes();
    bytes.iter().enumerate().all(|(index, &byte)| {
        byte != b'%'
            || bytes
                .get(index + 1..index + 3)
                .is_some_and(|digits| digits.iter().all(u8::is_ascii_hexdigit))
    })
}

fn view(path: &str, query: &str) -> RequestView {
    RequestView {
        method: "GET".into(),
        path: path.into(),
        query: query.into(),
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sealed_records_open_under_their_key_only(
        plaintext in prop::collection::vec(any::<u8>(), 0..512),
        associated_data in prop::collection::vec(any::<u8>(), 0..64),
        flip in any::<prop::sample::Index>(),
    ) {
        let keys = ring(&[CURRENT]);
        let sealed = seal::seal(&keys, &associated_data, &plaintext).unwrap();
        let opened = seal::open(&keys, &associated_data, &sealed).unwrap();
        prop_assert_eq!(&opened.plaintext, &plaintext);
        prop_assert!(!opened.sealed_by_old_key);

        let rotated = seal::open(&ring(&[PREVIOUS, CURRENT]), &associated_data, &sealed).unwrap();
        prop_assert_eq!(&rotated.plaintext, &plaintext);
        prop_assert!(rotated.sealed_by_old_key);
        prop_assert!(seal::open(&ring(&[PREVIOUS]), &associated_data, &sealed).is_none());

        let mut moved = associated_data.clone();
        moved.push(0);
        prop_assert!(seal::open(&keys, &moved, &sealed).is_none());
        let mut tampered = sealed.clone();
        tampered[flip.index(sealed.len())] ^= 0x01;
        prop_assert!(seal::open(&keys, &associated_data, &tampered).is_none());
    }

    #[test]
    fn signed_cookies_verify_for_their_purpose_only(
        id in any::<[u8; 16]>(),
        purpose in purpose(),
        flip in any::<prop::sample::Index>(),
    ) {
        let keys = ring(&[CURRENT]);
        let value = cookie::sign(&keys, purpose, &id);
        prop_assert_eq!(
            cookie::verify(&keys, purpose, &value),
            Some(VerifiedCookie { id, signed_by_old_key: false })
        );
        prop_assert_eq!(
            cookie::verify(&ring(&[PREVIOUS, CURRENT]), purpose, &value),
            Some(VerifiedCookie { id, signed_by_old_key: true })
        );
        prop_assert_eq!(cookie::verify(&keys, other(purpose), &value), None);
        prop_assert_eq!(cookie::verify(&ring(&[PREVIOUS]), purpose, &value), None);

        // Any one changed character (the value is ASCII) breaks it.
        let mut tampered = value.clone().into_bytes();
        let at = flip.index(tampered.len());
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        prop_assert_eq!(cookie::verify(&keys, purpose, &tampered), None);
    }

    #[test]
    fn arbitrary_strings_never_verify_as_cookies(value in ".{0,120}", purpose in purpose()) {
        prop_assert_eq!(cookie::verify(&ring(&[CURRENT, PREVIOUS]), purpose, &value), None);
    }

    #[test]
    fn return_targets_stay_on_the_origin(
        path in target_text(),
        query in target_text(),
        with_query in any::<bool>(),
    ) {
        let target = view(&path, &query).local_target(with_query);
        prop_assert!(target.starts_with('/'), "{}", target);
        prop_assert!(!target.starts_with("//") && !target.starts_with("/\\"), "{}", target);
        prop_assert!(target.len() <= MAX_RETURN_TARGET_BYTES, "{} bytes", target.len());
        prop_assert!(target.bytes().all(is_rfc3986_target_char), "{}", target);
        prop_assert!(escapes_are_well_formed(&target), "{}", target);
        if !with_query {
            prop_assert!(!target.contains('?'), "{}", target);
        }
        // Idempotent: a target read back as a request gives itself.
        let (again_path, again_query) = target.split_once('?').unwrap_or((&target, ""));
        prop_assert_eq!(view(again_path, again_query).local_target(true), target.clone());
    }
}
