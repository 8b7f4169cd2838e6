//! The stored records (protobuf from `proto/oidc_authz/v1/records.proto`, compiled by `build.rs`)
//! with `Debug`s that print no token, nonce or verifier, and `SessionId`, the random name of a
//! session.

use std::fmt;

use crate::crypto::random::random_bytes;
use crate::error::Error;

include!(concat!(env!("OUT_DIR"), "/oidc_authz.v1.rs"));

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("subject", &self.subject)
            .field("idp_session_id", &self.idp_session_id)
            .field("access_token", &"[redacted]")
            .field("id_token", &"[redacted]")
            .field("has_refresh_token", &!self.refresh_token.is_empty())
            .field("access_token_expires_at", &self.access_token_expires_at)
            .field("created_at", &self.created_at)
            .field("last_active_at", &self.last_active_at)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl fmt::Debug for PendingLoginRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLoginRecord")
            .field("nonce", &"[redacted]")
            .field("pkce_verifier", &"[redacted]")
            .field("original_url", &self.original_url)
            .field("redirect_uri", &self.redirect_uri)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// 128 random bits naming a session; it travels only inside the signed session cookie.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionId(pub [u8; 16]);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

impl SessionId {
    pub fn random() -> Result<Self, Error> {
        Ok(SessionId(random_bytes::<16>()?))
    }
}
