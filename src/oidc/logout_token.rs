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
    if claims.iat - leeway > now {
        return Err("issued in the future".into());
    }
    let expires = claims.exp.unwrap_or(claims.iat + DEFAULT_LIFETIME);
    if expires + leeway <= now {
        return Err("expired".into());
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
        remember_until: expires + leeway,
    })
}
