//! `at_hash` (OIDC Core §3.1.3.8, §3.3.2.11): an ID token may bind the access token issued with
//! it; when it does, the access token must hash to it. The openidconnect crate leaves this check
//! to the caller (it needs the verified token's key); here it is a pure function.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::id_token::{IdTokenError, decode_payload};
use crate::crypto::constant_time_eq;

/// When the ID token carries one, it must be the left
/// half of the access token's hash, with the hash of the token's signing algorithm.
pub fn check(id_token: &str, access_token: &str) -> Result<(), IdTokenError> {
    #[derive(Deserialize)]
    struct AtHash {
        #[serde(default)]
        at_hash: Option<String>,
    }
    let Some(at_hash) = decode_payload::<AtHash>(id_token)?.at_hash else {
        return Ok(());
    };
    let alg = jsonwebtoken::decode_header(id_token)
        .map_err(|_| IdTokenError::Malformed("header is not valid"))?
        .alg;
    let digest: Vec<u8> = match alg {
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 | Algorithm::HS384 => {
            Sha384::digest(access_token.as_bytes()).to_vec()
        }
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::HS512 | Algorithm::EdDSA => {
            Sha512::digest(access_token.as_bytes()).to_vec()
        }
        _ => Sha256::digest(access_token.as_bytes()).to_vec(),
    };
    let expected = URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2]);
    if constant_time_eq(expected.as_bytes(), at_hash.as_bytes()) {
        Ok(())
    } else {
        Err(IdTokenError::AccessTokenHashMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    fn id_token(alg: Algorithm, key: &EncodingKey, at_hash: Option<&str>) -> String {
        let claims = serde_json::json!({ "sub": "alice", "at_hash": at_hash });
        jsonwebtoken::encode(&Header::new(alg), &claims, key).unwrap()
    }

    fn left_half(digest: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
    }

    #[test]
    fn the_access_token_must_hash_to_at_hash_with_the_token_algorithm() {
        let key = EncodingKey::from_secret(b"secret");
        let good = left_half(&Sha256::digest(b"access-1"));
        assert_eq!(
            check(&id_token(Algorithm::HS256, &key, Some(&good)), "access-1"),
            Ok(())
        );
        assert_eq!(
            check(&id_token(Algorithm::HS256, &key, Some(&good)), "access-2"),
            Err(IdTokenError::AccessTokenHashMismatch)
        );
        // HS384 hashes with SHA-384: a SHA-256 half does not match.
        assert_eq!(
            check(&id_token(Algorithm::HS384, &key, Some(&good)), "access-1"),
            Err(IdTokenError::AccessTokenHashMismatch)
        );
        let good_384 = left_half(&Sha384::digest(b"access-1"));
        assert_eq!(
            check(
                &id_token(Algorithm::HS384, &key, Some(&good_384)),
                "access-1"
            ),
            Ok(())
        );
    }

    #[test]
    fn a_token_without_at_hash_binds_nothing() {
        let key = EncodingKey::from_secret(b"secret");
        assert_eq!(
            check(&id_token(Algorithm::HS256, &key, None), "anything"),
            Ok(())
        );
        assert!(check("not-a-jwt", "anything").is_err());
    }
}
