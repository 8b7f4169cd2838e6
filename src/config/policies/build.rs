//! One policy's keys, read and merged, into a `Policy`: defaults applied (Kong's claim names,
//! the access token as `Authorization: Bearer`), and the rules between keys checked (methods,
//! `anonymous`, `audience_required`, claim headers that may not shadow the tokens' headers).

use super::PolicyKeys;
use crate::config::UpstreamHeader;
use crate::config::fields::claim_headers;
use crate::policy::rules::{ClaimRule, Requirement, StringClaim};
use crate::policy::{AuthMethods, ClaimPath, DEFAULT_PROVIDER, Policy, Rules, UpstreamHeaders};

/// Defaults applied, cross-key rules checked; problems are reported under `path` (`""` for the
/// top level, `policies.NAME` otherwise).
pub(super) fn build(
    name: &str,
    path: &str,
    mut keys: PolicyKeys,
    errors: &mut Vec<String>,
) -> Policy {
    let at = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    let auth_methods = keys.auth_methods.unwrap_or(AuthMethods {
        authorization_code: true,
        session: true,
        ..AuthMethods::default()
    });
    let anonymous = keys.anonymous.unwrap_or(false);
    let audience_required = keys.audience_required.take().unwrap_or_default();
    check_methods(
        &auth_methods,
        anonymous,
        !audience_required.is_empty(),
        &at,
        errors,
    );
    Policy {
        name: name.to_owned(),
        auth_methods,
        anonymous,
        rules: rules(&mut keys, audience_required),
        upstream: upstream_headers(&mut keys, &at, errors),
        // Checked against `providers:` by `check_providers`, once those are read.
        provider: keys.provider.unwrap_or_else(|| DEFAULT_PROVIDER.to_owned()),
    }
}

/// The rules between `auth_methods`, `anonymous` and `audience_required`.
fn check_methods(
    auth_methods: &AuthMethods,
    anonymous: bool,
    audience_given: bool,
    at: &dyn Fn(&str) -> String,
    errors: &mut Vec<String>,
) {
    if auth_methods.authorization_code && !auth_methods.session {
        errors.push(format!(
            "{}: authorization_code needs session: a login ends in a session cookie, and a \
             route that does not take it would send the browser to log in again and again",
            at("auth_methods")
        ));
    }
    if anonymous && auth_methods.authorization_code {
        errors.push(format!(
            "{}: anonymous: true never sends anyone to log in, but auth_methods has \
             authorization_code (the default); list the others, e.g. [session]",
            at("anonymous")
        ));
    }
    if auth_methods.takes_tokens() && !audience_given {
        errors.push(format!(
            "{}: required with auth_methods bearer or introspection: an access token must be \
             meant for this API (RFC 9068 section 4), or any token the IdP issued (even an ID \
             token) would pass",
            at("audience_required")
        ));
    }
}

/// The claim rules, with Kong's default claim names.
fn rules(keys: &mut PolicyKeys, audience_required: Vec<String>) -> Rules {
    let rule =
        |required: Option<Vec<String>>, claim: Option<ClaimPath>, default, strings| ClaimRule {
            claim: claim
                .unwrap_or_else(|| ClaimPath::parse(default).expect("built-in claim names parse")),
            required: Requirement::new(&required.unwrap_or_default()),
            strings,
        };
    Rules {
        groups: rule(
            keys.groups_required.take(),
            keys.groups_claim.take(),
            "groups",
            StringClaim::Single,
        ),
        roles: rule(
            keys.roles_required.take(),
            keys.roles_claim.take(),
            "roles",
            StringClaim::Single,
        ),
        scopes: rule(
            keys.scopes_required.take(),
            keys.scopes_claim.take(),
            "scope",
            StringClaim::SpaceSeparated,
        ),
        audience: rule(
            Some(audience_required),
            keys.audience_claim.take(),
            "aud",
            StringClaim::Single,
        ),
        claims_required: keys.claims_required.take().unwrap_or_default(),
        email_domains: keys.email_domains.take().unwrap_or_default(),
    }
}

/// The tokens' headers (the access token as `Authorization: Bearer` unless set otherwise) and
/// the claim headers, which may not shadow them.
fn upstream_headers(
    keys: &mut PolicyKeys,
    at: &dyn Fn(&str) -> String,
    errors: &mut Vec<String>,
) -> UpstreamHeaders {
    let access_token = keys.upstream_access_token_header.take().unwrap_or_else(|| {
        Some(UpstreamHeader {
            name: "authorization".into(),
            scheme: Some("Bearer".into()),
        })
    });
    let id_token = keys.upstream_id_token_header.take().unwrap_or(None);
    let claims = claim_headers(
        keys.upstream_headers_claims.take().unwrap_or_default(),
        keys.upstream_headers_names.take().unwrap_or_default(),
        [&access_token, &id_token],
        at,
        errors,
    );
    UpstreamHeaders {
        access_token,
        id_token,
        claims,
    }
}
