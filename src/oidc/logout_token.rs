//! Back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4, §2.6): a signed JWT
//! the IdP POSTs to end sessions. Checked like an ID token's signature, then its own rules: `iss`,
//! `aud`, `iat`, `exp`, the logout `events` member, `jti`, `sid` or `sub`, and no `nonce`.

use serde::Deserialize;

use super::id_token::{Audience, IdTokenError};

pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

#[derive(Debug, Deserialize)]
pub struct RawLogoutClaims {
    iss: String,
    aud: Audience,
    iat: i64,
    #[serde(default)]
    exp: Option<i64>,
    jti: String,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    nonce: Option<serde_json::Value>,
    events: serde_json::Map<String, serde_json::Value>,
}

/// Why a back-channel logout was refused: fixed reasons for the log, never the token's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutTokenError {
    #[error("no logout_token in the body")]
    Missing,
    #[error("the OpenID Provider has not been discovered yet")]
    ProviderNotReady,
    /// Its JWT form or signature, checked as an ID token's.
    #[error(transparent)]
    Signature(#[from] IdTokenError),
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("issued in the future")]
    IssuedInFuture,
    #[error("expired")]
    Expired,
    #[error("expires too far in the future")]
    ExpiresTooFar,
    #[error("a logout token must not carry a nonce")]
    HasNonce,
    #[error("no back-channel logout event")]
    NoLogoutEvent,
    #[error("neither sub nor sid")]
    NoSubjectOrSession,
    #[error("empty jti")]
    EmptyJti,
    #[error("logout token replayed")]
    Replayed,
}

/// Who to log out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutClaims {
    pub subject: Option<String>,
    pub idp_session_id: Option<String>,
    pub jti: String,
    /// Unix seconds until which the `jti` must be remembered.
    pub remember_until: i64,
}

/// How long a logout token without `exp` counts as fresh.
pub const DEFAULT_LIFETIME: i64 = 300;
/// The furthest `exp` we accept: a day from now.
pub const MAX_LIFETIME: i64 = 24 * 3600;

/// Checks a logout token's claims (its signature already verified), in this order: who it is
/// for, when it is valid, what it says; the first failure is the answer.
pub fn check(
    claims: RawLogoutClaims,
    issuer: &str,
    client_id: &str,
    leeway: i64,
    now: i64,
) -> Result<LogoutClaims, LogoutTokenError> {
    check_addressee(&claims, issuer, client_id)?;
    let expires = check_validity_period(&claims, leeway, now)?;
    check_logout_content(&claims)?;
    Ok(LogoutClaims {
        subject: claims.sub,
        idp_session_id: claims.sid,
        jti: claims.jti,
        remember_until: expires.saturating_add(leeway),
    })
}

/// Sent by our IdP (`iss`) to us (`aud`).
fn check_addressee(
    claims: &RawLogoutClaims,
    issuer: &str,
    client_id: &str,
) -> Result<(), LogoutTokenError> {
    if claims.iss != issuer {
        return Err(LogoutTokenError::WrongIssuer);
    }
    if !claims.aud.values().contains(&client_id) {
        return Err(LogoutTokenError::WrongAudience);
    }
    Ok(())
}

/// Issued, not expired, and not valid for longer than `MAX_LIFETIME`; returns its expiry.
fn check_validity_period(
    claims: &RawLogoutClaims,
    leeway: i64,
    now: i64,
) -> Result<i64, LogoutTokenError> {
    // Saturating: the numbers are the sender's, and an overflow must not panic or wrap.
    if claims.iat.saturating_sub(leeway) > now {
        return Err(LogoutTokenError::IssuedInFuture);
    }
    let expires = claims
        .exp
        .unwrap_or(claims.iat.saturating_add(DEFAULT_LIFETIME));
    if expires.saturating_add(leeway) <= now {
        return Err(LogoutTokenError::Expired);
    }
    // Its `jti` is remembered until it expires: a far-off `exp` would pin it (and a TTL Redis
    // refuses) for good. Logout tokens are meant to live minutes.
    if expires > now.saturating_add(MAX_LIFETIME) {
        return Err(LogoutTokenError::ExpiresTooFar);
    }
    Ok(expires)
}

/// A logout token, not an ID token: no `nonce`, the back-channel logout event, someone to log
/// out (`sub` or `sid`), and a `jti` to refuse its replay by.
fn check_logout_content(claims: &RawLogoutClaims) -> Result<(), LogoutTokenError> {
    if claims.nonce.is_some() {
        return Err(LogoutTokenError::HasNonce);
    }
    if !matches!(
        claims.events.get(BACKCHANNEL_LOGOUT_EVENT),
        Some(serde_json::Value::Object(_))
    ) {
        return Err(LogoutTokenError::NoLogoutEvent);
    }
    if claims.sub.is_none() && claims.sid.is_none() {
        return Err(LogoutTokenError::NoSubjectOrSession);
    }
    if claims.jti.is_empty() {
        return Err(LogoutTokenError::EmptyJti);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: i64, exp: Option<i64>) -> RawLogoutClaims {
        serde_json::from_value(serde_json::json!({
            "iss": "https://idp.example", "aud": "envoy", "iat": iat, "exp": exp, "jti": "j1",
            "sid": "s1", "events": { BACKCHANNEL_LOGOUT_EVENT: {} }
        }))
        .unwrap()
    }

    fn checked(iat: i64, exp: Option<i64>) -> Result<LogoutClaims, LogoutTokenError> {
        check(
            claims(iat, exp),
            "https://idp.example",
            "envoy",
            60,
            1_800_000_000,
        )
    }

    #[test]
    fn refusals_are_fixed_reasons_that_never_quote_the_token() {
        let mut raw = claims(1_800_000_000, None);
        raw.iss = "https://evil.example/secret-looking-text".into();
        let refusal = check(raw, "https://idp.example", "envoy", 60, 1_800_000_000).unwrap_err();
        assert_eq!(refusal, LogoutTokenError::WrongIssuer);
        assert_eq!(refusal.to_string(), "wrong issuer");
        let mut raw = claims(1_800_000_000, None);
        raw.jti = String::new();
        let refusal = check(raw, "https://idp.example", "envoy", 60, 1_800_000_000).unwrap_err();
        assert_eq!(refusal, LogoutTokenError::EmptyJti);
        assert_eq!(
            LogoutTokenError::from(IdTokenError::BadSignature).to_string(),
            "ID token signature is invalid"
        );
    }

    #[test]
    fn extreme_times_are_refused_without_overflow() {
        let now = 1_800_000_000;
        assert!(checked(now, Some(now + 120)).is_ok());
        assert_eq!(
            checked(i64::MIN, None).unwrap_err(),
            LogoutTokenError::Expired
        );
        assert_eq!(
            checked(i64::MIN, Some(i64::MIN)).unwrap_err(),
            LogoutTokenError::Expired
        );
        assert_eq!(
            checked(i64::MAX, None).unwrap_err(),
            LogoutTokenError::IssuedInFuture
        );
        assert_eq!(
            checked(now, Some(i64::MAX)).unwrap_err(),
            LogoutTokenError::ExpiresTooFar
        );
    }
}
