//! Cryptography, and the only module that holds key bytes: cookie MACs (`cookie`), sealing of
//! stored records (`seal`), random values (`random`). Keys come from configured secrets as a list:
//! the first signs and encrypts, all verify and decrypt, so keys rotate without logging anyone out.

pub mod cookie;
pub mod random;
pub mod seal;

use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// The shortest secret we accept: 32 bytes is 256 bits if it is random, and HKDF stretches nothing.
pub const MIN_SECRET_LEN: usize = 32;

/// Why no `KeyRing` could be made from the configured secrets. Fixed texts: never a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    #[error("no session secret configured")]
    NoSecret,
    #[error("a session secret is shorter than {MIN_SECRET_LEN} characters")]
    SecretTooShort,
    #[error("key derivation failed")]
    Derivation,
}

/// Keys derived from one configured secret. Each purpose gets its own key, so a cookie MAC can never
/// be confused with a ciphertext key.
#[derive(Clone)]
pub(crate) struct DerivedKeys {
    /// HMAC-SHA256 keyed with the cookie MAC key, its inner and outer pads hashed once: each
    /// sign or verify clones it instead of setting the key up again.
    pub(crate) cookie_mac: hmac::Hmac<Sha256>,
    /// The AES-256-GCM key for sealing records, its key schedule expanded once.
    pub(crate) seal_cipher: aes_gcm::Aes256Gcm,
}

/// All configured keys, newest first.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<DerivedKeys>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRing({} keys, [redacted])", self.keys.len())
    }
}

impl KeyRing {
    /// Derives keys from each secret. The caller (config) has checked there is at least one and that
    /// each is long enough; this is checked again so the type cannot exist without keys.
    pub fn from_secrets(secrets: &[Secret]) -> Result<Self, KeyRingError> {
        if secrets.is_empty() {
            return Err(KeyRingError::NoSecret);
        }
        let mut keys = Vec::with_capacity(secrets.len());
        for secret in secrets {
            if secret.expose().len() < MIN_SECRET_LEN {
                return Err(KeyRingError::SecretTooShort);
            }
            let hkdf = Hkdf::<Sha256>::new(Some(b"oidc-authz v1"), secret.expose().as_bytes());
            let mut cookie_mac = [0u8; 32];
            let mut seal = [0u8; 32];
            hkdf.expand(b"cookie mac", &mut cookie_mac)
                .and_then(|_| hkdf.expand(b"record seal", &mut seal))
                .map_err(|_| KeyRingError::Derivation)?;
            let seal_cipher = <aes_gcm::Aes256Gcm as aes_gcm::KeyInit>::new((&seal).into());
            let cookie_mac = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(&cookie_mac)
                .map_err(|_| KeyRingError::Derivation)?;
            keys.push(DerivedKeys {
                cookie_mac,
                seal_cipher,
            });
        }
        Ok(KeyRing { keys })
    }

    pub(crate) fn keys(&self) -> &[DerivedKeys] {
        &self.keys
    }

    pub(crate) fn current(&self) -> &DerivedKeys {
        &self.keys[0]
    }
}

/// SHA-256 with a domain label, for store keys and binding hashes: a stored hash of a session id or
/// a state cannot be turned back into the value, so a store dump cannot be replayed as a cookie.
pub fn labelled_hash(label: &str, value: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(label.as_bytes());
    hasher.update([0u8]);
    hasher.update(value);
    hasher.finalize().into()
}

/// Constant-time equality for secrets of any length (nonces, binding hashes).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
pub(crate) fn test_keyring(secrets: &[&str]) -> KeyRing {
    let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
    KeyRing::from_secrets(&secrets).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_missing_secrets_are_refused() {
        assert!(KeyRing::from_secrets(&[]).is_err());
        assert!(KeyRing::from_secrets(&[Secret::new("short")]).is_err());
        assert!(KeyRing::from_secrets(&[Secret::new("x".repeat(32))]).is_ok());
    }

    #[test]
    fn refusals_say_why_without_the_secret() {
        let short = Secret::new("short-secret");
        let refusal = KeyRing::from_secrets(&[Secret::new("x".repeat(32)), short]).unwrap_err();
        assert_eq!(refusal, KeyRingError::SecretTooShort);
        assert_eq!(
            refusal.to_string(),
            "a session secret is shorter than 32 characters"
        );
        assert_eq!(
            KeyRing::from_secrets(&[]).unwrap_err(),
            KeyRingError::NoSecret
        );
    }

    #[test]
    fn purposes_get_different_keys_and_debug_hides_them() {
        let ring = test_keyring(&["0123456789abcdef0123456789abcdef"]);
        let mut seal = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"oidc-authz v1"), b"0123456789abcdef0123456789abcdef")
            .expand(b"record seal", &mut seal)
            .unwrap();
        let mac_with = |key: &[u8]| {
            let mut mac = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(key).unwrap();
            hmac::Mac::update(&mut mac, b"x");
            hmac::Mac::finalize(mac).into_bytes()
        };
        let cookie_tag = {
            let mut mac = ring.current().cookie_mac.clone();
            hmac::Mac::update(&mut mac, b"x");
            hmac::Mac::finalize(mac).into_bytes()
        };
        assert_ne!(cookie_tag, mac_with(&seal));
        assert_eq!(format!("{ring:?}"), "KeyRing(1 keys, [redacted])");
    }

    #[test]
    fn labelled_hash_separates_domains() {
        assert_ne!(labelled_hash("session", b"x"), labelled_hash("state", b"x"));
    }
}
