//! JWT access tokens presented as `Authorization: Bearer` (RFC 9068, RFC 6750): signature by the
//! IdP's JWKS keys with the configured algorithm allow-list (never HS*: an access token is not
//! signed with our client secret), `typ` (`at+jwt`, `JWT` or none), `iss`, `exp` (required) and
//! `nbf` with leeway, `iat` not in the future. The audience and every other rule are the policy's
//! (`policy::Rules`). Pure: keys and "now" come in as arguments. Error texts are fixed: they never
//! quote the token, which anyone can send.

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;
use serde_json::{Map, Value};

use super::id_token::{self, IdTokenError};

/// Why a bearer token was refused (all but `ProviderNotReady` mean 401 `invalid_token`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenError {
    #[error("the OpenID Provider has not been discovered yet")]
    ProviderNotReady,
    #[error("access token is not a well-formed JWT")]
    Malformed,
    #[error("access token algorithm is not allowed")]
    AlgorithmNotAllowed,
    #[error("access token typ is neither at+jwt nor JWT")]
    WrongType,
    #[error("no IdP key matches the access token's kid")]
    UnknownKey,
    #[error("access token signature is invalid")]
    BadSignature,
    #[error("access token issuer is not the configured issuer")]
    WrongIssuer,
    #[error("access token has no exp")]
    NoExpiry,
    #[error("access token has expired")]
    Expired,
    #[error("access token is not valid yet (nbf)")]
    NotYetValid,
    #[error("access token was issued in the future")]
    IssuedInFuture,
    /// RFC 7662: the IdP says the token is not active (expired, revoked, unknown).
    #[error("access token is not active (introspection)")]
    Inactive,
    /// The IdP could not be asked (down, refused our client credentials, no endpoint): not the
    /// token's fault, so "could not decide", not 401.
    #[error("token introspection is unavailable: {0}")]
    IntrospectionUnavailable(String),
}

impl From<IdTokenError> for AccessTokenError {
    fn from(error: IdTokenError) -> Self {
        match error {
            IdTokenError::AlgorithmNotAllowed(_) => AccessTokenError::AlgorithmNotAllowed,
            IdTokenError::UnknownKey => AccessTokenError::UnknownKey,
            IdTokenError::BadSignature => AccessTokenError::BadSignature,
            _ => AccessTokenError::Malformed,
        }
    }
}

/// What a valid access token must match.
pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub allowed_algorithms: &'a [Algorithm],
    pub leeway_seconds: i64,
    pub now_unix: i64,
}

/// The configured algorithms without HS*: the IdP signs access tokens with its own keys.
pub fn asymmetric(algorithms: &[Algorithm]) -> Vec<Algorithm> {
    algorithms
        .iter()
        .copied()
        .filter(|alg| !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        .collect()
}

/// The header's `typ` is acceptable: `at+jwt` (RFC 9068), `application/at+jwt`, `JWT`, or absent
/// (many IdPs, Keycloak among them, send `JWT`).
pub fn check_type(token: &str) -> Result<(), AccessTokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| AccessTokenError::Malformed)?;
    match header
        .typ
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("jwt" | "at+jwt" | "application/at+jwt") => Ok(()),
        Some(_) => Err(AccessTokenError::WrongType),
    }
}

/// Verifies `token` with `candidates` (the JWKS keys matching its kid) and checks its claims.
/// `Err(UnknownKey)` tells the caller to refetch the JWKS and try once more.
pub fn verify(
    token: &str,
    candidates: &[Jwk],
    expect: &Expectations,
) -> Result<Map<String, Value>, AccessTokenError> {
    let algorithms = asymmetric(expect.allowed_algorithms);
    check_type(token)?;
    // No client secret: HS* is not in `algorithms`, so it is never used.
    let claims: Map<String, Value> =
        id_token::verify_signature(token, candidates, &algorithms, "")?;
    check_claims(&claims, expect)?;
    Ok(claims)
}

fn check_claims(
    claims: &Map<String, Value>,
    expect: &Expectations,
) -> Result<(), AccessTokenError> {
    if claims.get("iss").and_then(Value::as_str) != Some(expect.issuer) {
        return Err(AccessTokenError::WrongIssuer);
    }
    let time = |name: &str| {
        claims
            .get(name)
            .map(|value| value.as_i64().ok_or(AccessTokenError::Malformed))
    };
    let leeway = expect.leeway_seconds;
    let now = expect.now_unix;
    // Saturating: the numbers are the sender's, and an overflow must not panic or wrap.
    let exp = time("exp").ok_or(AccessTokenError::NoExpiry)??;
    if exp.saturating_add(leeway) <= now {
        return Err(AccessTokenError::Expired);
    }
    if let Some(nbf) = time("nbf")
        && nbf?.saturating_sub(leeway) > now
    {
        return Err(AccessTokenError::NotYetValid);
    }
    if let Some(iat) = time("iat")
        && iat?.saturating_sub(leeway) > now
    {
        return Err(AccessTokenError::IssuedInFuture);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://idp.example";
    const RSA_PEM: &[u8] = include_bytes!("../../tests/fixtures/idp-rsa.pem");
    const OTHER_RSA_PEM: &[u8] = include_bytes!("../../tests/fixtures/other-rsa.pem");
    const EC_PEM: &[u8] = include_bytes!("../../tests/fixtures/idp-ec.pem");
    const ALGS: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256, Algorithm::HS256];

    fn rsa() -> EncodingKey {
        EncodingKey::from_rsa_pem(RSA_PEM).unwrap()
    }

    fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
        jwk.common.key_id = Some(kid.into());
        jwk
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "sub": "client-1", "aud": "orders-api", "exp": NOW + 300,
            "iat": NOW, "nbf": NOW, "scope": "orders:read", "client_id": "cli"
        })
    }

    fn sign(claims: &Value, key: &EncodingKey, alg: Algorithm, typ: Option<&str>) -> String {
        let mut header = Header::new(alg);
        header.kid = Some("k1".into());
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn expect() -> Expectations<'static> {
        Expectations {
            issuer: ISSUER,
            allowed_algorithms: ALGS,
            leeway_seconds: 30,
            now_unix: NOW,
        }
    }

    fn check(token: &str) -> Result<Map<String, Value>, AccessTokenError> {
        verify(token, &[jwk(&rsa(), Algorithm::RS256, "k1")], &expect())
    }

    fn with(change: Value) -> Value {
        let mut claims = claims();
        for (name, value) in change.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }

    #[test]
    fn valid_tokens_yield_their_claims_with_any_accepted_typ() {
        for typ in [
            Some("at+jwt"),
            Some("application/at+jwt"),
            Some("JWT"),
            None,
        ] {
            let token = sign(&claims(), &rsa(), Algorithm::RS256, typ);
            let claims = check(&token).unwrap_or_else(|e| panic!("{typ:?}: {e}"));
            assert_eq!(claims["scope"], "orders:read");
        }
        let ec = EncodingKey::from_ec_pem(EC_PEM).unwrap();
        let token = sign(&claims(), &ec, Algorithm::ES256, Some("at+jwt"));
        assert!(verify(&token, &[jwk(&ec, Algorithm::ES256, "k1")], &expect()).is_ok());
        let within_leeway = with(json!({"exp": NOW - 29, "nbf": NOW + 29, "iat": NOW + 29}));
        assert!(check(&sign(&within_leeway, &rsa(), Algorithm::RS256, None)).is_ok());
    }

    #[test]
    fn every_rejection_reason() {
        let rs = |claims: Value| sign(&claims, &rsa(), Algorithm::RS256, Some("at+jwt"));
        let other = EncodingKey::from_rsa_pem(OTHER_RSA_PEM).unwrap();
        let hmac = EncodingKey::from_secret(b"client-secret");
        let cases: Vec<(String, AccessTokenError)> = vec![
            ("not a jwt".into(), AccessTokenError::Malformed),
            (
                sign(&claims(), &rsa(), Algorithm::RS256, Some("id+jwt")),
                AccessTokenError::WrongType,
            ),
            (
                sign(&claims(), &other, Algorithm::RS256, None),
                AccessTokenError::BadSignature,
            ),
            (
                sign(&claims(), &hmac, Algorithm::HS256, None),
                AccessTokenError::AlgorithmNotAllowed,
            ),
            (
                sign(&claims(), &rsa(), Algorithm::RS384, None),
                AccessTokenError::AlgorithmNotAllowed,
            ),
            (
                rs(with(json!({"iss": "https://evil.example"}))),
                AccessTokenError::WrongIssuer,
            ),
            (
                rs(with(json!({"iss": null}))),
                AccessTokenError::WrongIssuer,
            ),
            (rs(with(json!({"exp": null}))), AccessTokenError::NoExpiry),
            (
                rs(with(json!({"exp": NOW - 30}))),
                AccessTokenError::Expired,
            ),
            (
                rs(with(json!({"exp": "tomorrow"}))),
                AccessTokenError::Malformed,
            ),
            (
                rs(with(json!({"nbf": NOW + 31}))),
                AccessTokenError::NotYetValid,
            ),
            (
                rs(with(json!({"iat": NOW + 31}))),
                AccessTokenError::IssuedInFuture,
            ),
            (rs(with(json!({"nbf": 1.5}))), AccessTokenError::Malformed),
        ];
        for (token, expected) in cases {
            assert_eq!(check(&token).unwrap_err(), expected);
        }
        let unknown_kid = verify(&rs(claims()), &[], &expect()).unwrap_err();
        assert_eq!(unknown_kid, AccessTokenError::UnknownKey);
    }

    #[test]
    fn extreme_times_neither_panic_nor_wrap() {
        let rs = |claims: Value| sign(&claims, &rsa(), Algorithm::RS256, None);
        assert!(
            check(&rs(with(
                json!({"exp": i64::MAX, "nbf": i64::MIN, "iat": i64::MIN})
            )))
            .is_ok()
        );
        assert_eq!(
            check(&rs(with(json!({"exp": i64::MIN})))).unwrap_err(),
            AccessTokenError::Expired
        );
        assert_eq!(
            check(&rs(with(json!({"nbf": i64::MAX})))).unwrap_err(),
            AccessTokenError::NotYetValid
        );
    }
}
