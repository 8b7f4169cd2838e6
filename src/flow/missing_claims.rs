//! The warning for a configured claim (`upstream_headers_claims`) that the ID token did not carry
//! at login: its header then stays empty, which looks like a bug in the upstream unless someone
//! says why. Many IdPs keep profile claims out of the ID token unless told otherwise (OIDC Core
//! allows them in userinfo only), and oidc-authz reads claims from the ID token (and from userinfo
//! only with `userinfo: true`).
//!
//! One warning per claim name per process, not per login: the cause is the IdP's configuration,
//! and a warning per request would drown the log. Claim names come from our config, so they may be
//! logged; claim values never are.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};

/// Claim names already warned about. Bounded by the configured claim list.
static WARNED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

/// Warns once for each configured claim absent from `header_claims` (a session's claims as
/// `session::header_claims` kept them: a `null` counts as absent).
pub(super) fn warn_once_per_missing_claim(
    upstream_claim_headers: &[(String, String)],
    header_claims: &HashMap<String, String>,
) {
    for (claim, header) in upstream_claim_headers {
        if header_claims.contains_key(claim) || !first_time(claim) {
            continue;
        }
        tracing::warn!(
            claim = %claim,
            header = %header,
            "the ID token has no `{claim}` claim, so `{header}` stays empty: oidc-authz reads \
             claims from the ID token, and from userinfo only with `userinfo: true`. Turn that \
             on, or have the IdP put it in the ID token (Keycloak: the client scope mapper's \"Add to ID token\"; LemonLDAP::NG: the \
             relying party's IDTokenForceClaims) and check the requested scopes. Warned once per \
             claim until restart"
        );
    }
}

fn first_time(claim: &str) -> bool {
    // A poisoned lock only means a panic elsewhere while inserting a name: warn again then.
    match WARNED.lock() {
        Ok(mut warned) => warned.insert(claim.to_owned()),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_claim_is_new_only_once() {
        assert!(first_time("missing_claims_test_claim"));
        assert!(!first_time("missing_claims_test_claim"));
        assert!(first_time("missing_claims_other_claim"));
    }
}
