//! ID-token validation: a valid token, and one test per rejection reason, with generated keys.
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

fn check(token: &str, keys: &[Jwk], expect: &Expectations) -> Result<IdTokenClaims, IdTokenError> {
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

/// Found by `fuzz/fuzz_targets/id_token.rs`: the openidconnect crate panicked verifying an HMAC
/// signature of any length but the hash's (`GenericArray` from a slice of the wrong length).
#[test]
fn hmac_signatures_of_the_wrong_length_are_refused_without_panicking() {
    let allow_hs = Expectations {
        allowed_algorithms: &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
        ..expect()
    };
    let secret = EncodingKey::from_secret(b"client-secret");
    for (alg, length) in [
        (Algorithm::HS256, 32),
        (Algorithm::HS384, 48),
        (Algorithm::HS512, 64),
    ] {
        let token = sign(&claims(), &secret, alg, None);
        assert!(check(&token, &[], &allow_hs).is_ok(), "{alg:?}");
        let signing_input = token.rsplit_once('.').unwrap().0;
        for wrong in [0, 1, length - 1, length + 1, 125] {
            let signature = URL_SAFE_NO_PAD.encode(vec![0x41; wrong]);
            assert_eq!(
                check(&format!("{signing_input}.{signature}"), &[], &allow_hs),
                Err(IdTokenError::BadSignature),
                "{alg:?} with a {wrong}-byte signature"
            );
        }
    }
}

/// Errors from tokens anyone can send (the back-channel endpoint is unauthenticated) are logged:
/// their text must be ours, never the token's.
mod untrusted_text_tests {
    use super::super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const INJECTED: &str = "INJECTED\nlevel=error fake log line";

    #[test]
    fn an_unknown_alg_is_reported_without_quoting_it() {
        let header =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{}"}}"#, INJECTED.replace('\n', "\\n")));
        let token = format!("{header}.e30.sig");
        let error = header_text(&token);
        assert!(
            !error.contains("INJECTED") && !error.contains('\n'),
            "{error}"
        );
    }

    #[test]
    fn claims_of_the_wrong_shape_are_reported_without_quoting_them() {
        let claims = serde_json::json!({ "iss": "x", "events": INJECTED });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Shape {
            events: serde_json::Map<String, serde_json::Value>,
        }
        let error = verify_signature::<Shape>(&token, &[], &[Algorithm::HS256], "secret")
            .unwrap_err()
            .to_string();
        assert!(
            !error.contains("INJECTED") && !error.contains('\n'),
            "{error}"
        );
    }

    fn header_text(token: &str) -> String {
        header(token, &[Algorithm::RS256]).unwrap_err().to_string()
    }
}
