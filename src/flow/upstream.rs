//! What an allowed request carries to the upstream: the policy's token and claim headers for the
//! identity that passed (a session, a bearer token, or nobody), any client copy of them replaced
//! or removed, and our own cookies taken out.

use serde_json::{Map, Value};

use super::cookies::CookieJar;
use super::{Decision, RequestView, UpstreamHeader};
use crate::config::{self, Config};
use crate::policy::Policy;
use crate::secret::Secret;
use crate::session::SessionRecord;

/// Who passed.
pub(super) enum Identity<'a> {
    Session {
        record: &'a SessionRecord,
        claims: &'a Map<String, Value>,
    },
    /// The token stays in the request's own `Authorization` header, untouched.
    Bearer {
        token: &'a str,
        claims: &'a Map<String, Value>,
    },
    /// Nobody (an `anonymous` policy): no identity header reaches the upstream.
    Anonymous,
}

/// The header a bearer token arrives in; never set or removed for a bearer request.
const AUTHORIZATION: &str = "authorization";

/// Lets the request through with `policy`'s headers for `identity`.
pub(super) fn allow(
    request: &RequestView,
    jar: &CookieJar<'_>,
    policy: &Policy,
    identity: Identity<'_>,
    set_cookies: Vec<String>,
) -> Decision {
    let mut set = Vec::new();
    let mut remove = Vec::new();
    match request.cookie_header_without(jar.all_names()) {
        Some(cookie) => set.push(UpstreamHeader {
            name: "cookie".into(),
            value: Secret::new(cookie),
        }),
        None => remove.push("cookie".into()),
    }
    let is_bearer = matches!(identity, Identity::Bearer { .. });
    let mut inject = |header: &Option<config::UpstreamHeader>, token: Option<&str>| {
        let Some(header) = header else { return };
        if is_bearer && header.name == AUTHORIZATION {
            return;
        }
        match token.filter(|token| !token.is_empty()) {
            None => remove.push(header.name.clone()),
            Some(token) => set.push(UpstreamHeader {
                name: header.name.clone(),
                value: Secret::new(match &header.scheme {
                    Some(scheme) => format!("{scheme} {token}"),
                    None => token.to_owned(),
                }),
            }),
        }
    };
    let (access_token, id_token, claims) = match &identity {
        Identity::Session { record, claims } => (
            Some(record.access_token.as_str()),
            Some(record.id_token.as_str()),
            Some(*claims),
        ),
        Identity::Bearer { token, claims } => (Some(*token), None, Some(*claims)),
        Identity::Anonymous => (None, None, None),
    };
    inject(&policy.upstream.access_token, access_token);
    inject(&policy.upstream.id_token, id_token);
    // Claim headers: ours, or none at all; never a copy the client sent.
    for (claim, header) in &policy.upstream.claims {
        match claims
            .and_then(|claims| claims.get(claim))
            .and_then(header_text)
        {
            Some(value) => set.push(UpstreamHeader {
                name: header.clone(),
                value: Secret::new(value),
            }),
            None => remove.push(header.clone()),
        }
    }
    Decision::Allow {
        set_upstream_headers: set,
        remove_upstream_headers: remove,
        set_cookies,
    }
}

/// A claim as header-safe text: strings as they are, other JSON values (numbers, lists) as JSON,
/// control characters dropped; `null` is no value.
fn header_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    Some(text.chars().filter(|c| !c.is_control()).collect())
}

/// The claim headers of every policy as text, for the record's `claims` field (read by older
/// versions during a rolling upgrade).
pub(super) fn header_claims(
    config: &Config,
    claims: &Map<String, Value>,
) -> std::collections::HashMap<String, String> {
    config
        .policies
        .iter()
        .flat_map(|policy| policy.upstream.claims.iter())
        .filter_map(|(claim, _)| Some((claim.clone(), header_text(claims.get(claim)?)?)))
        .collect()
}

/// Every claim, for the record's `claims_json`.
pub(super) fn claims_json(claims: &Map<String, Value>) -> String {
    Value::Object(claims.clone()).to_string()
}

/// A session's claims: `claims_json`, or for records written before it existed, the stored ID
/// token's payload (verified when it was stored). Unreadable: no claims, so every rule fails.
pub(super) fn session_claims(record: &SessionRecord) -> Map<String, Value> {
    let parsed = if record.claims_json.is_empty() {
        crate::oidc::id_token::decode_payload::<Map<String, Value>>(&record.id_token).ok()
    } else {
        serde_json::from_str(&record.claims_json).ok()
    };
    parsed.unwrap_or_default()
}
