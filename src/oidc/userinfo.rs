//! The userinfo endpoint (OIDC Core section 5.3), for IdPs that keep claims such as groups out of
//! the ID token. Fetched with the access token at login and at refresh (`userinfo: true`); its
//! claims are merged over the ID token's for rules and claim headers. Its `sub` must be the ID
//! token's (section 5.3.2), or the answer is refused. Only JSON answers are read (a signed JWT
//! answer is refused). Error texts are fixed or the transport's; never a token.

use serde_json::{Map, Value};

/// Why the userinfo answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserinfoError {
    #[error("the discovery document has no userinfo_endpoint")]
    NoEndpoint,
    #[error("the OpenID Provider has not been discovered yet")]
    ProviderNotReady,
    #[error("GET userinfo_endpoint: {0}")]
    Unavailable(String),
    #[error("the userinfo answer is not a JSON object")]
    Malformed,
    #[error("the userinfo answer's sub is not the ID token's")]
    WrongSubject,
}

/// Members the ID token decides; userinfo never replaces them.
const ID_TOKEN_MEMBERS: &[&str] = &["sub", "iss", "aud", "sid", "exp", "iat"];

/// Reads a userinfo answer for `subject`.
pub fn parse(body: &[u8], subject: &str) -> Result<Map<String, Value>, UserinfoError> {
    let claims: Map<String, Value> =
        serde_json::from_slice(body).map_err(|_| UserinfoError::Malformed)?;
    if claims.get("sub").and_then(Value::as_str) != Some(subject) {
        return Err(UserinfoError::WrongSubject);
    }
    Ok(claims)
}

/// `userinfo`'s claims over `claims`, except the ID token's own members.
pub fn merge(claims: &mut Map<String, Value>, userinfo: Map<String, Value>) {
    for (name, value) in userinfo {
        if !ID_TOKEN_MEMBERS.contains(&name.as_str()) {
            claims.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_answer_must_be_about_the_same_subject() {
        let body = json!({"sub": "alice", "groups": ["staff"]}).to_string();
        assert_eq!(
            parse(body.as_bytes(), "alice").unwrap()["groups"],
            json!(["staff"])
        );
        assert_eq!(
            parse(body.as_bytes(), "bob"),
            Err(UserinfoError::WrongSubject)
        );
        let no_sub = json!({"groups": []}).to_string();
        assert_eq!(
            parse(no_sub.as_bytes(), "alice"),
            Err(UserinfoError::WrongSubject)
        );
        assert_eq!(
            parse(b"eyJhbGciOi.x.y", "alice"),
            Err(UserinfoError::Malformed)
        );
    }

    #[test]
    fn userinfo_claims_win_except_the_id_tokens_own() {
        let mut claims = json!({"sub": "alice", "aud": "envoy", "email": "old@example.com"})
            .as_object()
            .unwrap()
            .clone();
        let userinfo =
            json!({"sub": "alice", "aud": "evil", "email": "new@example.com", "groups": ["g"]});
        merge(&mut claims, userinfo.as_object().unwrap().clone());
        assert_eq!(
            Value::Object(claims),
            json!({"sub": "alice", "aud": "envoy", "email": "new@example.com", "groups": ["g"]})
        );
    }
}
