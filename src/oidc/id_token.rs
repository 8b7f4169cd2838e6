//! ID-token validation (OIDC Core §3.1.3.7) on the openidconnect crate's `IdTokenVerifier`:
//! signature by a JWKS key (or the client secret for HS* when configured), algorithm from an
//! allow-list, `iss`, `aud`, `exp`, `nonce`; then our own checks where the crate does none (`azp`,
//! `iat` in the future, leeway) and `at_hash`. Back-channel logout tokens, which the crate does not
//! model, share `verify_signature` (jsonwebtoken). Pure: keys and "now" come in as arguments, so
//! every rejection reason is a unit test. Error texts are fixed: they never quote the token.

use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKey, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    ClaimsVerificationError, ClientId, ClientSecret, IssuerUrl, JsonWebKeySet, Nonce,
    SignatureVerificationError,
};
use serde::Deserialize;

use crate::crypto::constant_time_eq;

/// Why an ID token was refused. The text is for logs; it never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("ID token is not a well-formed JWT: {0}")]
    Malformed(&'static str),
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
    #[error("ID token at_hash does not match the access token")]
    AccessTokenHashMismatch,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Audience::One(one) => one.clone().into(),
            Audience::Many(many) => many.clone().into(),
        }
    }

    pub(crate) fn values(&self) -> Vec<&str> {
        match self {
            Audience::One(one) => vec![one.as_str()],
            Audience::Many(many) => many.iter().map(String::as_str).collect(),
        }
    }
}

/// The payload of a verified ID token. `iss` and `nonce` were checked by the crate; they are
/// named here only so that they stay out of `other` (the claims passed to claim headers).
#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
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
    /// The claims not named above, plus `sub`, `sid`, `iss` and `aud`, as the IdP sent them (for
    /// policy rules and claim headers).
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
        // The parser's message may quote the header (an unknown `alg`, say): log a fixed reason.
        .map_err(|_| IdTokenError::Malformed("the JOSE header is not valid"))?;
    if !allowed.contains(&header.alg) {
        return Err(IdTokenError::AlgorithmNotAllowed(header.alg));
    }
    Ok((header.alg, header.kid))
}

/// Validates `token` against `expect` with the openidconnect crate's `IdTokenVerifier` (signature
/// by one of `candidates` — the JWKS keys matching its kid — or the client secret for HS*;
/// algorithm allow-list; `iss`; `aud`; `exp` with leeway; `nonce`), then the checks the crate
/// leaves to us: `azp` (OIDC Core §3.1.3.7 4-5) and `iat` not in the future.
/// `Err(UnknownKey)` tells the caller to refetch the JWKS and try once more.
pub fn verify(
    token: &str,
    candidates: &[Jwk],
    expect: &Expectations,
) -> Result<IdTokenClaims, IdTokenError> {
    let (alg, kid) = header(token, expect.allowed_algorithms)?;
    if !hmac_signature_has_its_length(token, alg) {
        return Err(IdTokenError::BadSignature);
    }
    let id_token = CoreIdToken::from_str(token)
        .map_err(|_| IdTokenError::Malformed("not a well-formed ID token"))?;
    let keys = crate_keys(candidates);
    // With a kid, the crate picks the key; without one it refuses to guess among several, so
    // each candidate is tried on its own (an IdP may publish two keys while rotating).
    let key_sets: Vec<Vec<CoreJsonWebKey>> = if kid.is_some() || keys.len() <= 1 {
        vec![keys]
    } else {
        keys.into_iter().map(|key| vec![key]).collect()
    };
    let mut outcome = Err(IdTokenError::UnknownKey);
    for key_set in key_sets {
        outcome = verify_with_crate(&id_token, key_set, alg, expect);
        if outcome.is_ok() {
            break;
        }
    }
    outcome?;
    let claims: RawClaims = decode_payload(token)?;
    check_claims_beyond_the_crate(&claims, expect)?;
    let mut other = claims.other;
    other.insert("sub".into(), claims.sub.clone().into());
    other.insert("iss".into(), claims.iss.clone().into());
    other.insert("aud".into(), claims.aud.to_json());
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

/// Whether an HS* token's signature is as long as its hash (other algorithms: always). The
/// openidconnect crate (4.0) panics verifying an HMAC signature of any other length
/// (`GenericArray` from a slice), so such a token must not reach it; found by `fuzz/`. Decoded as
/// the crate decodes it (base64url, no padding, trailing bits allowed).
fn hmac_signature_has_its_length(token: &str, alg: Algorithm) -> bool {
    let expected = match alg {
        Algorithm::HS256 => 32,
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => return true,
    };
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::general_purpose::NO_PAD.with_decode_allow_trailing_bits(true),
    );
    token
        .split('.')
        .nth(2)
        .and_then(|signature| engine.decode(signature).ok())
        .is_some_and(|signature| signature.len() == expected)
}

/// One run of the crate's verifier over one key set.
fn verify_with_crate(
    id_token: &CoreIdToken,
    keys: Vec<CoreJsonWebKey>,
    alg: Algorithm,
    expect: &Expectations,
) -> Result<(), IdTokenError> {
    let issuer = IssuerUrl::new(expect.issuer.to_owned()).map_err(|_| IdTokenError::WrongIssuer)?;
    // `exp` with leeway: the crate refuses once its clock reaches `exp`, so its clock runs
    // `leeway` behind ours.
    let lagging_now = DateTime::<Utc>::from_timestamp(expect.now_unix - expect.leeway_seconds, 0)
        .unwrap_or_default();
    let verifier = CoreIdTokenVerifier::new_confidential_client(
        ClientId::new(expect.client_id.to_owned()),
        ClientSecret::new(expect.client_secret.to_owned()),
        issuer,
        JsonWebKeySet::new(keys),
    )
    .set_allowed_algs(
        expect
            .allowed_algorithms
            .iter()
            .filter_map(|a| crate_algorithm(*a)),
    )
    // Other audiences are allowed when `azp` names us, which we check ourselves.
    .set_other_audience_verifier_fn(|_| true)
    .set_time_fn(move || lagging_now);
    let nonce_check = |nonce: Option<&Nonce>| match expect.nonce {
        None => Ok(()),
        Some(expected) => nonce
            .filter(|nonce| constant_time_eq(nonce.secret().as_bytes(), expected.as_bytes()))
            .map(|_| ())
            .ok_or_else(|| "nonce mismatch".to_owned()),
    };
    id_token
        .claims(&verifier, nonce_check)
        .map(|_| ())
        .map_err(|error| from_crate_error(error, alg))
}

/// The crate's reasons, in our terms (fixed texts: the crate's messages quote token contents).
fn from_crate_error(error: ClaimsVerificationError, alg: Algorithm) -> IdTokenError {
    match error {
        ClaimsVerificationError::Expired(_) => IdTokenError::Expired,
        ClaimsVerificationError::InvalidAudience(_) => IdTokenError::WrongAudience,
        ClaimsVerificationError::InvalidIssuer(_) => IdTokenError::WrongIssuer,
        ClaimsVerificationError::InvalidNonce(_) => IdTokenError::NonceMismatch,
        ClaimsVerificationError::SignatureVerification(error) => match error {
            SignatureVerificationError::NoMatchingKey => IdTokenError::UnknownKey,
            SignatureVerificationError::DisallowedAlg(_) => IdTokenError::AlgorithmNotAllowed(alg),
            _ => IdTokenError::BadSignature,
        },
        _ => IdTokenError::Malformed("ID token claims are not acceptable"),
    }
}

/// Our JWKS keys (jsonwebtoken's type, shared with logout tokens) as the crate's keys; a key the
/// crate cannot read is left out, as the JWKS parser leaves out keys we cannot use.
fn crate_keys(candidates: &[Jwk]) -> Vec<CoreJsonWebKey> {
    candidates
        .iter()
        .filter_map(|jwk| serde_json::to_value(jwk).ok())
        .filter_map(|value| serde_json::from_value(value).ok())
        .collect()
}

/// The same algorithm in the crate's enum (both use the JOSE names).
fn crate_algorithm(alg: Algorithm) -> Option<CoreJwsSigningAlgorithm> {
    serde_json::from_value(serde_json::Value::String(format!("{alg:?}"))).ok()
}

/// The payload of a token whose signature has been verified.
pub(crate) fn decode_payload<T: serde::de::DeserializeOwned>(
    token: &str,
) -> Result<T, IdTokenError> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or(IdTokenError::Malformed("not a JWT"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| IdTokenError::Malformed("payload is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| IdTokenError::Malformed("claims are not valid"))
}

/// Checks a JWT's algorithm and signature and decodes its claims; checks no claim. For back-channel
/// logout tokens, which the openidconnect crate does not model.
pub fn verify_signature<T: serde::de::DeserializeOwned>(
    token: &str,
    candidates: &[Jwk],
    allowed_algorithms: &[Algorithm],
    client_secret: &str,
) -> Result<T, IdTokenError> {
    let (alg, _) = header(token, allowed_algorithms)?;
    let keys = decoding_keys(alg, candidates, client_secret);
    if keys.is_empty() {
        return Err(IdTokenError::UnknownKey);
    }
    decode_with_any(token, &keys, &signature_only(alg))
}

/// jsonwebtoken's validation of `alg` and the signature only: every claim is checked by the
/// caller against our own clock.
fn signature_only(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation
}

/// The keys that may verify a token signed with `alg`: the client secret for HMAC, else the
/// candidates that do not name another algorithm.
fn decoding_keys(alg: Algorithm, candidates: &[Jwk], client_secret: &str) -> Vec<DecodingKey> {
    if is_hmac(alg) {
        return vec![DecodingKey::from_secret(client_secret.as_bytes())];
    }
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
}

/// The claims of `token` under the first of `keys` that verifies it; else why the last one did not.
fn decode_with_any<T: serde::de::DeserializeOwned>(
    token: &str,
    keys: &[DecodingKey],
    validation: &Validation,
) -> Result<T, IdTokenError> {
    let mut last_error = IdTokenError::BadSignature;
    for key in keys {
        match jsonwebtoken::decode::<T>(token, key, validation) {
            Ok(data) => return Ok(data.claims),
            Err(error) => {
                use jsonwebtoken::errors::ErrorKind;
                last_error = match error.kind() {
                    ErrorKind::InvalidSignature
                    | ErrorKind::InvalidKeyFormat
                    | ErrorKind::InvalidAlgorithm => IdTokenError::BadSignature,
                    _ => IdTokenError::Malformed("the claims are not valid"),
                };
            }
        }
    }
    Err(last_error)
}

/// What the crate does not check: `azp` with several audiences or naming someone else, and `iat`
/// in the future (beyond leeway).
fn check_claims_beyond_the_crate(
    claims: &RawClaims,
    expect: &Expectations,
) -> Result<(), IdTokenError> {
    let audiences = claims.aud.values();
    match &claims.azp {
        Some(azp) if azp != expect.client_id => return Err(IdTokenError::WrongAuthorizedParty),
        None if audiences.len() > 1 => return Err(IdTokenError::WrongAuthorizedParty),
        _ => {}
    }
    if claims.iat.saturating_sub(expect.leeway_seconds) > expect.now_unix {
        return Err(IdTokenError::IssuedInFuture);
    }
    Ok(())
}

#[cfg(test)]
#[path = "id_token_tests.rs"]
mod tests;
