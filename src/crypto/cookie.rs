//! Signed cookie values: `v1.<base64url id>.<base64url HMAC-SHA256>`. The MAC covers the purpose
//! (session or login cookie), the version and the id, so one kind of cookie cannot stand in for
//! another. Verification is constant-time and tries every key in the ring (rotation).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::KeyRing;

const VERSION: &str = "v1";

/// What a cookie is for; part of the MAC input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookiePurpose {
    Session,
    Login,
}

impl CookiePurpose {
    fn label(self) -> &'static [u8] {
        match self {
            CookiePurpose::Session => b"session",
            CookiePurpose::Login => b"login",
        }
    }
}

/// A verified cookie: the id it carries, and whether it was signed by an old key (then it should be
/// re-issued under the current one). `Debug` hides the id.
#[derive(PartialEq, Eq)]
pub struct VerifiedCookie {
    pub id: [u8; 16],
    pub signed_by_old_key: bool,
}

impl std::fmt::Debug for VerifiedCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCookie")
            .field("id", &"[redacted]")
            .field("signed_by_old_key", &self.signed_by_old_key)
            .finish()
    }
}

/// The MAC of a cookie, from the key's ready-keyed HMAC state (no key setup per cookie).
fn mac(keyed: &Hmac<Sha256>, purpose: CookiePurpose, encoded_id: &str) -> Hmac<Sha256> {
    let mut mac = keyed.clone();
    mac.update(purpose.label());
    mac.update(b".");
    mac.update(VERSION.as_bytes());
    mac.update(b".");
    mac.update(encoded_id.as_bytes());
    mac
}

/// Signs a 128-bit id with the current key.
pub fn sign(keys: &KeyRing, purpose: CookiePurpose, id: &[u8; 16]) -> String {
    let encoded_id = URL_SAFE_NO_PAD.encode(id);
    let tag = mac(&keys.current().cookie_mac, purpose, &encoded_id)
        .finalize()
        .into_bytes();
    format!("{VERSION}.{encoded_id}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Verifies a cookie value; `None` for anything malformed, of another version, or not signed by
/// one of our keys.
pub fn verify(keys: &KeyRing, purpose: CookiePurpose, value: &str) -> Option<VerifiedCookie> {
    let mut parts = value.split('.');
    let (version, encoded_id, encoded_tag) = (parts.next()?, parts.next()?, parts.next()?);
    if version != VERSION || parts.next().is_some() {
        return None;
    }
    let id: [u8; 16] = URL_SAFE_NO_PAD.decode(encoded_id).ok()?.try_into().ok()?;
    let tag = URL_SAFE_NO_PAD.decode(encoded_tag).ok()?;
    keys.keys()
        .iter()
        .position(|key| {
            // `verify_slice` compares in constant time.
            mac(&key.cookie_mac, purpose, encoded_id)
                .verify_slice(&tag)
                .is_ok()
        })
        .map(|index| VerifiedCookie {
            id,
            signed_by_old_key: index > 0,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_keyring;

    const KEY_A: &str = "a-first-secret-that-is-long-enough!!";
    const KEY_B: &str = "b-second-secret-that-is-long-enough!";

    #[test]
    fn signed_cookie_verifies() {
        let keys = test_keyring(&[KEY_A]);
        let value = sign(&keys, CookiePurpose::Session, &[7; 16]);
        assert!(value.starts_with("v1."));
        assert_eq!(
            verify(&keys, CookiePurpose::Session, &value),
            Some(VerifiedCookie {
                id: [7; 16],
                signed_by_old_key: false
            })
        );
    }

    #[test]
    fn tampering_is_rejected() {
        let keys = test_keyring(&[KEY_A]);
        let value = sign(&keys, CookiePurpose::Session, &[7; 16]);
        let other_id = sign(&keys, CookiePurpose::Session, &[8; 16]);
        let (_, other_encoded_id) = other_id.split_once('.').unwrap();
        let other_encoded_id = other_encoded_id.split('.').next().unwrap();
        let parts: Vec<&str> = value.split('.').collect();
        let cases = [
            format!("v1.{other_encoded_id}.{}", parts[2]), // id swapped, MAC kept
            format!("v2.{}.{}", parts[1], parts[2]),       // version changed
            format!("{value}x"),                           // MAC changed
            format!("{value}.extra"),                      // extra part
            "v1..".to_string(),
            "".to_string(),
            "garbage".to_string(),
        ];
        for case in cases {
            assert_eq!(verify(&keys, CookiePurpose::Session, &case), None, "{case}");
        }
    }

    #[test]
    fn a_login_cookie_is_not_a_session_cookie() {
        let keys = test_keyring(&[KEY_A]);
        let login = sign(&keys, CookiePurpose::Login, &[1; 16]);
        assert_eq!(verify(&keys, CookiePurpose::Session, &login), None);
    }

    #[test]
    fn old_keys_verify_and_removed_keys_do_not() {
        let old = test_keyring(&[KEY_A]);
        let value = sign(&old, CookiePurpose::Session, &[3; 16]);
        let rotated = test_keyring(&[KEY_B, KEY_A]);
        assert_eq!(
            verify(&rotated, CookiePurpose::Session, &value),
            Some(VerifiedCookie {
                id: [3; 16],
                signed_by_old_key: true
            })
        );
        let removed = test_keyring(&[KEY_B]);
        assert_eq!(verify(&removed, CookiePurpose::Session, &value), None);
    }
}
