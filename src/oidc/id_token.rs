//! ID-token validation (OIDC Core §3.1.3.7): signature by a JWKS key (or the client secret for HS*
//! when configured), algorithm from an allow-list, `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`.
//! Pure: keys and "now" come in as arguments, so every rejection reason is a unit test.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::crypto::constant_time_eq;

/// Why an ID token was refused. The text is for logs; it never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("ID token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("ID token algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(Algorithm),
    #[error("no IdP key matches the ID token's kid")]
    UnknownKey,
    #[error("ID token signature is invalid")]
    BadSignature,
    #[error("ID token issuer is not the configured issuer")]
    WrongIssuer,
    #[error("ID token audience does not include our client_id")]
    WrongAudience,
    #[error("ID token azp is missing or not our client_id")]
    WrongAuthorizedParty,
    #[error("ID token has expired")]
    Expired,
    #[error("ID token was issued in the future")]
    IssuedInFuture,
    #[error("ID token nonce does not match the login's nonce")]
    NonceMismatch,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub(crate) fn values(&self) -> Vec<&str> {
        match self {
            Audience::One(one) => vec![one.as_str()],
            Audience::Many(many) => many.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct RawClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    iat: i64,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    /// Every other claim (`email`, `name`, `groups`...), for claim headers.
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// The claims we keep from a valid ID token.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IdTokenClaims {
    pub subject: String,
    pub idp_session_id: Option<String>,
    pub expires_at: i64,
    /// The claims not named above, plus `sub` and `sid`, as the IdP sent them.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// What a valid ID token must match.
pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The client secret, used only when an HS* algorithm is allowed.
    pub client_secret: &'a str,
    pub allowed_algorithms: &'a [Algorithm],
    pub leeway_seconds: i64,
    pub now_unix: i64,
    /// `Some` at login; `None` for refreshed ID tokens, which carry no new nonce.
    pub nonce: Option<&'a str>,
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// The header's algorithm and `kid`, checked against the allow-list; the first step, so the caller
/// knows which keys to offer.
pub fn header(
    token: &str,
    allowed: &[Algorithm],
) -> Result<(Algorithm, Option<String>), IdTokenError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|error| IdTokenError::Malformed(error.to_string()))?;
    if !allowed.contains(&header.alg) {
        return Err(IdTokenError::AlgorithmNotAllowed(header.alg));
    }
    Ok((header.alg, header.kid))
}

/// Validates `token` against `expect`, trying each candidate key (the JWKS keys matching its kid).
/// `Err(UnknownKey)` tells the caller to refetch the JWKS and try once more.
pub fn verify(
    token: &str,
    candidates: &[Jwk],
    expect: &Expectations,
) -> Result<IdTokenClaims, IdTokenError> {
    let claims: RawClaims = verify_signature(
        token,
        candidates,
        expect.allowed_algorithms,
        expect.client_secret,
    )?;
    check_claims(&claims, expect)?;
    let mut other = claims.other;
    other.insert("sub".into(), claims.sub.clone().into());
    if let Some(sid) = &claims.sid {
        other.insert("sid".into(), sid.clone().into());
    }
    Ok(IdTokenClaims {
        subject: claims.sub,
        idp_session_id: claims.sid,
        expires_at: claims.exp,
        claims: other,
    })
}

/// Checks a JWT's algorithm and signature and decodes its claims; checks no claim. Shared by ID
/// tokens and back-channel logout tokens.
pub fn verify_signature<T: serde::de::DeserializeOwned>(
    token: &str,
    candidates: &[Jwk],
    allowed_algorithms: &[Algorithm],
    client_secret: &str,
) -> Result<T, IdTokenError> {
    let (alg, _) = header(token, allowed_algorithms)?;
    let mut validation = Validation::new(alg);
    // Every claim is checked by the caller against our own clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();

    let keys: Vec<DecodingKey> = if is_hmac(alg) {
        vec![DecodingKey::from_secret(client_secret.as_bytes())]
    } else {
        candidates
            .iter()
            .filter(|jwk| {
                // A key that names its algorithm may only verify that algorithm.
                jwk.common
                    .key_algorithm
                    .is_none_or(|key_alg| key_alg.to_string() == format!("{alg:?}"))
            })
            .filter_map(|jwk| DecodingKey::from_jwk(jwk).ok())
            .collect()
    };
    if keys.is_empty() {
        return Err(IdTokenError::UnknownKey);
    }
    let mut last_error = IdTokenError::BadSignature;
    for key in &keys {
        match jsonwebtoken::decode::<T>(token, key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(error) => {
                use jsonwebtoken::errors::ErrorKind;
                last_error = match error.kind() {
                    ErrorKind::InvalidSignature
                    | ErrorKind::InvalidKeyFormat
                    | ErrorKind::InvalidAlgorithm => IdTokenError::BadSignature,
                    _ => IdTokenError::Malformed(error.to_string()),
                };
            }
        }
    }
    Err(last_error)
}

fn check_claims(claims: &RawClaims, expect: &Expectations) -> Result<(), IdTokenError> {
    if claims.iss != expect.issuer {
        return Err(IdTokenError::WrongIssuer);
    }
    let audiences = claims.aud.values();
    if !audiences.contains(&expect.client_id) {
        return Err(IdTokenError::WrongAudience);
    }
    // OIDC Core 3.1.3.7 (4, 5): with several audiences azp must be present, and if present it must
    // be us.
    match &claims.azp {
        Some(azp) if azp != expect.client_id => return Err(IdTokenError::WrongAuthorizedParty),
        None if audiences.len() > 1 => return Err(IdTokenError::WrongAuthorizedParty),
        _ => {}
    }
    if claims.exp + expect.leeway_seconds <= expect.now_unix {
        return Err(IdTokenError::Expired);
    }
    if claims.iat - expect.leeway_seconds > expect.now_unix {
        return Err(IdTokenError::IssuedInFuture);
    }
    if let Some(expected_nonce) = expect.nonce {
        let matches = claims
            .nonce
            .as_deref()
            .is_some_and(|nonce| constant_time_eq(nonce.as_bytes(), expected_nonce.as_bytes()));
        if !matches {
            return Err(IdTokenError::NonceMismatch);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const RSA_PEM: &[u8] = include_bytes!("../../tests/fixtures/idp-rsa.pem");
    const OTHER_RSA_PEM: &[u8] = include_bytes!("../../tests/fixtures/other-rsa.pem");
    const EC_PEM: &[u8] = include_bytes!("../../tests/fixtures/idp-ec.pem");
    const ALGS: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256];

    fn rsa_key(pem: &[u8]) -> EncodingKey {
        EncodingKey::from_rsa_pem(pem).unwrap()
    }

    fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
        jwk.common.key_id = Some(kid.into());
        jwk
    }

    fn claims() -> serde_json::Value {
        json!({
            "iss": "https://idp.example", "sub": "alice", "aud": "envoy",
            "exp": NOW + 300, "iat": NOW, "nonce": "n-1", "sid": "idp-session",
            "email": "alice@example.com", "groups": ["admins", "dev"]
        })
    }

    fn sign(
        claims: &serde_json::Value,
        key: &EncodingKey,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn expect() -> Expectations<'static> {
        Expectations {
            issuer: "https://idp.example",
            client_id: "envoy",
            client_secret: "client-secret",
            allowed_algorithms: ALGS,
            leeway_seconds: 30,
            now_unix: NOW,
            nonce: Some("n-1"),
        }
    }

    fn check(
        token: &str,
        keys: &[Jwk],
        expect: &Expectations,
    ) -> Result<IdTokenClaims, IdTokenError> {
        verify(token, keys, expect)
    }

    #[test]
    fn a_valid_token_yields_its_claims() {
        let key = rsa_key(RSA_PEM);
        let keys = [jwk(&key, Algorithm::RS256, "k1")];
        let token = sign(&claims(), &key, Algorithm::RS256, Some("k1"));
        let valid = check(&token, &keys, &expect()).unwrap();
        assert_eq!(valid.subject, "alice");
        assert_eq!(valid.idp_session_id.as_deref(), Some("idp-session"));
        assert_eq!(valid.expires_at, NOW + 300);
        assert_eq!(valid.claims["sub"], "alice");
        assert_eq!(valid.claims["email"], "alice@example.com");
        assert_eq!(valid.claims["groups"], json!(["admins", "dev"]));
        let ec = EncodingKey::from_ec_pem(EC_PEM).unwrap();
        let ec_token = sign(&claims(), &ec, Algorithm::ES256, Some("e1"));
        assert!(check(&ec_token, &[jwk(&ec, Algorithm::ES256, "e1")], &expect()).is_ok());
    }

    #[test]
    fn every_rejection_reason() {
        let key = rsa_key(RSA_PEM);
        let keys = [jwk(&key, Algorithm::RS256, "k1")];
        let with = |change: serde_json::Value| {
            let mut claims = claims();
            for (name, value) in change.as_object().unwrap() {
                if value.is_null() {
                    claims.as_object_mut().unwrap().remove(name);
                } else {
                    claims[name] = value.clone();
                }
            }
            sign(&claims, &key, Algorithm::RS256, Some("k1"))
        };
        let cases: Vec<(&str, String, IdTokenError)> = vec![
            (
                "issuer",
                with(json!({"iss": "https://evil.example"})),
                IdTokenError::WrongIssuer,
            ),
            (
                "audience",
                with(json!({"aud": "someone-else"})),
                IdTokenError::WrongAudience,
            ),
            (
                "azp missing with several audiences",
                with(json!({"aud": ["envoy", "api"]})),
                IdTokenError::WrongAuthorizedParty,
            ),
            (
                "azp not us",
                with(json!({"azp": "other"})),
                IdTokenError::WrongAuthorizedParty,
            ),
            (
                "expired beyond leeway",
                with(json!({"exp": NOW - 31})),
                IdTokenError::Expired,
            ),
            (
                "issued in the future",
                with(json!({"iat": NOW + 31})),
                IdTokenError::IssuedInFuture,
            ),
            (
                "wrong nonce",
                with(json!({"nonce": "n-2"})),
                IdTokenError::NonceMismatch,
            ),
            (
                "no nonce",
                with(json!({"nonce": null})),
                IdTokenError::NonceMismatch,
            ),
        ];
        for (name, token, expected) in cases {
            assert_eq!(check(&token, &keys, &expect()), Err(expected), "{name}");
        }
        // Within leeway is fine; several audiences with azp = us is fine.
        assert!(check(&with(json!({"exp": NOW - 29})), &keys, &expect()).is_ok());
        assert!(
            check(
                &with(json!({"aud": ["envoy", "api"], "azp": "envoy"})),
                &keys,
                &expect()
            )
            .is_ok()
        );
        assert!(matches!(
            check(&with(json!({"sub": null})), &keys, &expect()),
            Err(IdTokenError::Malformed(_))
        ));
    }

    #[test]
    fn signature_key_and_algorithm_are_enforced() {
        let key = rsa_key(RSA_PEM);
        let other = rsa_key(OTHER_RSA_PEM);
        let keys = [jwk(&key, Algorithm::RS256, "k1")];
        // Signed by a key the IdP does not have, under the IdP's kid.
        let forged = sign(&claims(), &other, Algorithm::RS256, Some("k1"));
        assert_eq!(
            check(&forged, &keys, &expect()),
            Err(IdTokenError::BadSignature)
        );
        // A kid we do not know: the caller refetches.
        let unknown = sign(&claims(), &key, Algorithm::RS256, Some("k2"));
        assert_eq!(
            check(
                &unknown,
                &JwksCache::candidates(&keys, Some("k2")),
                &expect()
            ),
            Err(IdTokenError::UnknownKey)
        );
        // HS256 signed with the client secret: refused unless allowed.
        let hmac = sign(
            &claims(),
            &EncodingKey::from_secret(b"client-secret"),
            Algorithm::HS256,
            None,
        );
        assert_eq!(
            check(&hmac, &keys, &expect()),
            Err(IdTokenError::AlgorithmNotAllowed(Algorithm::HS256))
        );
        let allow_hs = Expectations {
            allowed_algorithms: &[Algorithm::HS256],
            ..expect()
        };
        assert!(check(&hmac, &keys, &allow_hs).is_ok());
        // `alg: none` never parses as an allowed algorithm.
        let header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"alg":"none"}"#,
        );
        let body = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            claims().to_string(),
        );
        assert!(check(&format!("{header}.{body}."), &keys, &expect()).is_err());
        // A key that declares RS256 is not used for ES256 (algorithm confusion).
        let ec = EncodingKey::from_ec_pem(EC_PEM).unwrap();
        let ec_token = sign(&claims(), &ec, Algorithm::ES256, Some("k1"));
        assert_eq!(
            check(&ec_token, &keys, &expect()),
            Err(IdTokenError::UnknownKey)
        );
        assert!(check("not-a-jwt", &keys, &expect()).is_err());
    }

    use super::super::jwks::JwksCache;
}
