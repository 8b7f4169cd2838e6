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
#[path = "id_token_tests.rs"]
mod tests;
