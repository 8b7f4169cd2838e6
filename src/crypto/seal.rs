//! Sealing of stored records with AES-256-GCM: `0x01 | 12-byte random nonce | ciphertext+tag`.
//! The associated data is the record's store key, so a record copied under another key fails to
//! open. Opening tries every key in the ring and says whether an old one was needed (re-seal).

use aes_gcm::Nonce;
use aes_gcm::aead::{Aead, Payload};

use super::KeyRing;
use super::random::{RandomError, random_bytes};

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;

/// An opened record, and whether it was sealed under an old key.
pub struct Opened {
    pub plaintext: Vec<u8>,
    pub sealed_by_old_key: bool,
}

pub fn seal(
    keys: &KeyRing,
    associated_data: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, RandomError> {
    let nonce_bytes = random_bytes::<NONCE_LEN>()?;
    let cipher = &keys.current().seal_cipher;
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce_bytes),
            Payload {
                msg: plaintext,
                aad: associated_data,
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer does not fail");
    let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    sealed.push(FORMAT_V1);
    sealed.extend_from_slice(&nonce_bytes);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// `None` when the bytes are not a record we sealed under any of our keys for this store key.
pub fn open(keys: &KeyRing, associated_data: &[u8], sealed: &[u8]) -> Option<Opened> {
    let (&format, rest) = sealed.split_first()?;
    if format != FORMAT_V1 || rest.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::from(<[u8; NONCE_LEN]>::try_from(nonce).ok()?);
    keys.keys().iter().enumerate().find_map(|(index, key)| {
        key.seal_cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: associated_data,
                },
            )
            .ok()
            .map(|plaintext| Opened {
                plaintext,
                sealed_by_old_key: index > 0,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_keyring;

    const KEY_A: &str = "a-first-secret-that-is-long-enough!!";
    const KEY_B: &str = "b-second-secret-that-is-long-enough!";

    #[test]
    fn round_trip_and_ciphertext_hides_plaintext() {
        let keys = test_keyring(&[KEY_A]);
        let sealed = seal(&keys, b"s:1", b"access-token-value").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"access"));
        let opened = open(&keys, b"s:1", &sealed).unwrap();
        assert_eq!(opened.plaintext, b"access-token-value");
        assert!(!opened.sealed_by_old_key);
    }

    #[test]
    fn wrong_associated_data_tampering_and_garbage_fail() {
        let keys = test_keyring(&[KEY_A]);
        let sealed = seal(&keys, b"s:1", b"payload").unwrap();
        assert!(open(&keys, b"s:2", &sealed).is_none());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(open(&keys, b"s:1", &flipped).is_none());
        let mut other_version = sealed.clone();
        other_version[0] = 2;
        assert!(open(&keys, b"s:1", &other_version).is_none());
        assert!(open(&keys, b"s:1", b"").is_none());
        assert!(open(&keys, b"s:1", &[1, 2, 3]).is_none());
    }

    #[test]
    fn rotation_opens_old_records_and_flags_them() {
        let sealed = seal(&test_keyring(&[KEY_A]), b"k", b"payload").unwrap();
        let opened = open(&test_keyring(&[KEY_B, KEY_A]), b"k", &sealed).unwrap();
        assert!(opened.sealed_by_old_key);
        assert!(open(&test_keyring(&[KEY_B]), b"k", &sealed).is_none());
    }
}
