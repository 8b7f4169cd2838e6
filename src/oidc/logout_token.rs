//! Back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4, §2.6): a signed JWT
//! the IdP POSTs to end sessions. Checked like an ID token's signature, then its own rules: `iss`,
//! `aud`, `iat`, `exp`, the logout `events` member, `jti`, `sid` or `sub`, and no `nonce`.

use serde::Deserialize;

use super::id_token::Audience;

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

pub fn check(
    claims: RawLogoutClaims,
    issuer: &str,
    client_id: &str,
    leeway: i64,
    now: i64,
) -> Result<LogoutClaims, String> {
    if claims.iss != issuer {
        return Err("wrong issuer".into());
    }
    if !claims.aud.values().contains(&client_id) {
        return Err("wrong audience".into());
    }
    // Saturating: the numbers are the sender's, and an overflow must not panic or wrap.
    if claims.iat.saturating_sub(leeway) > now {
        return Err("issued in the future".into());
    }
    let expires = claims
        .exp
        .unwrap_or(claims.iat.saturating_add(DEFAULT_LIFETIME));
    if expires.saturating_add(leeway) <= now {
        return Err("expired".into());
    }
    // Its `jti` is remembered until it expires: a far-off `exp` would pin it (and a TTL Redis
    // refuses) for good. Logout tokens are meant to live minutes.
    if expires > now.saturating_add(MAX_LIFETIME) {
        return Err("expires too far in the future".into());
    }
    if claims.nonce.is_some() {
        return Err("a logout token must not carry a nonce".into());
    }
    if !matches!(
        claims.events.get(BACKCHANNEL_LOGOUT_EVENT),
        Some(serde_json::Value::Object(_))
    ) {
        return Err("no back-channel logout event".into());
    }
    if claims.sub.is_none() && claims.sid.is_none() {
        return Err("neither sub nor sid".into());
    }
    if claims.jti.is_empty() {
        return Err("empty jti".into());
    }
    Ok(LogoutClaims {
        subject: claims.sub,
        idp_session_id: claims.sid,
        jti: claims.jti,
        remember_until: expires.saturating_add(leeway),
    })
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

    fn checked(iat: i64, exp: Option<i64>) -> Result<LogoutClaims, String> {
        check(
            claims(iat, exp),
            "https://idp.example",
            "envoy",
            60,
            1_800_000_000,
        )
    }

    #[test]
    fn extreme_times_are_refused_without_overflow() {
        let now = 1_800_000_000;
        assert!(checked(now, Some(now + 120)).is_ok());
        assert_eq!(checked(i64::MIN, None).unwrap_err(), "expired");
        assert_eq!(checked(i64::MIN, Some(i64::MIN)).unwrap_err(), "expired");
        assert_eq!(checked(i64::MAX, None).unwrap_err(), "issued in the future");
        assert_eq!(
            checked(now, Some(i64::MAX)).unwrap_err(),
            "expires too far in the future"
        );
    }
}
