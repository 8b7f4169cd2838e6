//! Tests of `policies:` and the top-level policy keys: defaults, the merge rule of
//! `policies.default`, every problem with its key path.

use super::load::*;
use super::tests::{MINIMAL, env, problems};
use crate::policy::{AuthMethods, ClaimPath};
use serde_json::json;

fn load(extra: &str) -> super::Config {
    load_from_str(&format!("{MINIMAL}{extra}"), "t", env(&[]))
        .unwrap()
        .0
}

#[test]
fn a_config_without_policies_has_a_default_policy_like_before() {
    let config = load("");
    assert_eq!(config.policies.names().collect::<Vec<_>>(), ["default"]);
    let default = config.policies.default_policy();
    assert_eq!(
        default.auth_methods,
        AuthMethods {
            authorization_code: true,
            session: true,
            ..AuthMethods::default()
        }
    );
    assert!(!default.anonymous);
    assert!(default.rules.is_empty());
    assert_eq!(default.provider, "default");
    assert_eq!(
        default.rules.groups.claim,
        ClaimPath::parse("groups").unwrap()
    );
    assert_eq!(
        default.rules.scopes.claim,
        ClaimPath::parse("scope").unwrap()
    );
    assert_eq!(
        default.rules.audience.claim,
        ClaimPath::parse("aud").unwrap()
    );
}

#[test]
fn named_policies_stand_alone_and_the_top_level_forms_the_default() {
    let config = load(
        "groups_required: [staff]\n\
         upstream_headers_claims: [email]\n\
         upstream_headers_names: [x-email]\n\
         policies:\n\
         \x20 api: { auth_methods: [bearer], scopes_required: ['orders:read'], audience_required: [orders-api], roles_claim: realm_access.roles }\n\
         \x20 public: { auth_methods: [session], anonymous: true }\n\
         \x20 admin: { groups_required: ['admins mfa'], claims_required: { email_verified: true }, email_domains: ['@Example.com'] }\n",
    );
    let policies = &config.policies;
    assert_eq!(
        policies.names().collect::<Vec<_>>(),
        ["admin", "api", "default", "public"]
    );
    let default = policies.default_policy();
    assert!(!default.rules.groups.required.is_empty());
    assert_eq!(
        default.upstream.claims,
        [("email".into(), "x-email".into())]
    );
    let api = policies.get("api").unwrap();
    assert!(api.auth_methods.bearer && !api.auth_methods.session);
    assert!(api.rules.groups.required.is_empty(), "not inherited");
    assert!(api.upstream.claims.is_empty(), "not inherited");
    assert_eq!(
        api.rules.roles.claim,
        ClaimPath::parse("realm_access.roles").unwrap()
    );
    assert!(policies.get("public").unwrap().anonymous);
    let admin = policies.get("admin").unwrap();
    assert_eq!(
        admin.rules.claims_required,
        [(ClaimPath::parse("email_verified").unwrap(), json!(true))]
    );
    assert_eq!(admin.rules.email_domains, ["example.com"]);
}

#[test]
fn policies_default_adds_to_the_top_level_and_may_not_repeat_a_key() {
    let config = load(
        "upstream_headers_claims: [email]\n\
         upstream_headers_names: [x-email]\n\
         policies:\n  default: { groups_required: [staff] }\n",
    );
    let default = config.policies.default_policy();
    assert!(!default.rules.groups.required.is_empty());
    assert_eq!(
        default.upstream.claims.len(),
        1,
        "top-level keys still count"
    );

    let problems = problems(&format!(
        "{MINIMAL}groups_required: [a]\npolicies:\n  default: {{ groups_required: [b] }}\n"
    ));
    assert_eq!(
        problems,
        ["policies.default.groups_required: also set at the top level; set it in one place"]
    );
}

#[test]
fn selection_falls_back_to_default_and_refuses_unknown_names() {
    let config = load("policies:\n  public: { auth_methods: [session], anonymous: true }\n");
    let policies = &config.policies;
    assert_eq!(policies.select(None).unwrap().name, "default");
    assert_eq!(policies.select(Some("public")).unwrap().name, "public");
    let unknown = policies.select(Some("nope")).unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "the route names policy \"nope\", which is not configured (policies: ...)"
    );
    let long = "x".repeat(500);
    assert_eq!(policies.select(Some(&long)).unwrap_err().0.len(), 64);
}

#[test]
fn every_policy_problem_is_reported_with_its_key_path() {
    let problems = problems(&format!(
        "{MINIMAL}policies:\n\
         \x20 'bad name': {{}}\n\
         \x20 list: [1]\n\
         \x20 api: {{ auth_methods: [bearer, magic], audience_requird: [x] }}\n\
         \x20 public: {{ anonymous: true }}\n\
         \x20 paths: {{ groups_claim: 'a..b', roles_claim: 'a\\x', claims_required: {{ 'x.': 1, ok: null }} }}\n\
         \x20 mail: {{ email_domains: ['exa mple.com'], provider: corp }}\n\
         \x20 headers: {{ upstream_headers_claims: [a], upstream_headers_names: [x_a] }}\n\
         \x20 empty: {{ auth_methods: [] }}\n\
         \x20 opaque: {{ auth_methods: [introspection] }}\n\
         \x20 loop: {{ auth_methods: [authorization_code] }}\n"
    ));
    let expected = [
        "policies.bad name: a policy name uses letters",
        "policies.list: expected a mapping of policy keys",
        "policies.api.auth_methods[1]: `magic` is not one of: authorization_code, session, bearer, introspection",
        "policies.api.audience_requird: unknown key (did you mean `audience_required`?)",
        "policies.api.audience_required: required with auth_methods bearer or introspection",
        "policies.public.anonymous: anonymous: true never sends anyone to log in",
        "policies.paths.groups_claim: `a..b` has an empty member name",
        "policies.paths.roles_claim: `a\\x` has `\\x`",
        "policies.paths.claims_required.x.: `x.` has an empty member name",
        "policies.paths.claims_required.ok: expected a value",
        "policies.mail.email_domains[0]: `exa mple.com` is not a domain",
        "policies.mail.provider: `corp` is not a configured provider (known: default)",
        "policies.headers.upstream_headers_names[0]: contains `_`",
        "policies.empty.auth_methods: must list one or more of",
        "policies.opaque.audience_required: required with auth_methods bearer or introspection",
        "policies.loop.auth_methods: authorization_code needs session",
    ];
    for needle in expected {
        assert!(
            problems.iter().any(|problem| problem.starts_with(needle)),
            "missing `{needle}` in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
}

#[test]
fn policy_keys_can_be_set_from_the_environment() {
    let (config, warnings) = load_from_str(
        MINIMAL,
        "t",
        env(&[
            ("OIDC_AUTHZ_GROUPS_REQUIRED", "staff,admins"),
            ("OIDC_AUTHZ_POLICIES__API__AUTH_METHODS", "bearer"),
            ("OIDC_AUTHZ_POLICIES__API__AUDIENCE_REQUIRED", "orders-api"),
        ]),
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(
        !config
            .policies
            .default_policy()
            .rules
            .groups
            .required
            .is_empty()
    );
    assert!(config.policies.get("api").unwrap().auth_methods.bearer);
}
