//! `policies:` and the top-level policy keys, read into `policy::Policies`.
//!
//! The merge rule: the top-level policy keys (`auth_methods`, `groups_required`,
//! `upstream_access_token_header`, ...) form the `default` policy, so a configuration without
//! `policies:` means what it always meant. `policies.default`, when given, adds to them key by
//! key; a key set in both places is an error (one place decides, never an order of precedence
//! to remember). Every other policy stands alone: it starts from the built-in defaults, not from
//! the top-level keys.

mod build;

use serde_yaml::{Mapping, Value};

use super::UpstreamHeader;
use super::fields::upstream_header;
use super::providers::NamedProvider;
use super::reader::Reader;
use crate::policy::{AuthMethods, ClaimPath, DEFAULT_POLICY, DEFAULT_PROVIDER, Policies};
use build::build;

/// The keys a policy takes; at the top level they form the `default` policy.
pub(super) const POLICY_KEYS: &[&str] = &[
    "auth_methods",
    "anonymous",
    "groups_required",
    "roles_required",
    "scopes_required",
    "audience_required",
    "groups_claim",
    "roles_claim",
    "scopes_claim",
    "audience_claim",
    "claims_required",
    "email_domains",
    "upstream_access_token_header",
    "upstream_id_token_header",
    "upstream_headers_claims",
    "upstream_headers_names",
    "provider",
];

const AUTH_METHODS: &[&str] = &["authorization_code", "session", "bearer", "introspection"];

/// Each key as given (`None`: absent), before defaults, so that two sources can be merged.
#[derive(Default)]
struct PolicyKeys {
    auth_methods: Option<AuthMethods>,
    anonymous: Option<bool>,
    groups_required: Option<Vec<String>>,
    roles_required: Option<Vec<String>>,
    scopes_required: Option<Vec<String>>,
    audience_required: Option<Vec<String>>,
    groups_claim: Option<ClaimPath>,
    roles_claim: Option<ClaimPath>,
    scopes_claim: Option<ClaimPath>,
    audience_claim: Option<ClaimPath>,
    claims_required: Option<Vec<(ClaimPath, serde_json::Value)>>,
    email_domains: Option<Vec<String>>,
    /// `Some(None)`: given as empty (no such header).
    upstream_access_token_header: Option<Option<UpstreamHeader>>,
    upstream_id_token_header: Option<Option<UpstreamHeader>>,
    upstream_headers_claims: Option<Vec<String>>,
    upstream_headers_names: Option<Vec<String>>,
    provider: Option<String>,
}

/// `top` (the top level's keys) and `explicit` (`policies.default`), key by key; a key in both is
/// reported at its `policies.default` path.
macro_rules! merge_keys {
    ($top:expr, $explicit:expr, $errors:expr, [$($field:ident),* $(,)?]) => {{
        let (top, explicit) = ($top, $explicit);
        PolicyKeys {
            $($field: match (top.$field, explicit.$field) {
                (Some(_), Some(value)) => {
                    $errors.push(format!(
                        "policies.default.{}: also set at the top level; set it in one place",
                        stringify!($field)
                    ));
                    Some(value)
                }
                (top, explicit) => explicit.or(top),
            },)*
        }
    }};
}

/// Reads `policies` and the top-level policy keys from the root reader.
pub(super) fn policies(root: &mut Reader) -> Policies {
    let top_level = read_keys(root);
    let mut policies = Vec::new();
    let mut explicit_default = None;
    if let Some(map) = root.mapping("policies") {
        for (name, value) in map {
            let Some((name, keys)) = named_policy_keys(root, name, value) else {
                continue;
            };
            if name == DEFAULT_POLICY {
                explicit_default = Some(keys);
            } else {
                policies.push(build(name, &format!("policies.{name}"), keys, root.errors));
            }
        }
    }
    let default_keys = match explicit_default {
        None => top_level,
        Some(explicit) => merge_default_keys(top_level, explicit, root.errors),
    };
    // Cross-key problems of the default policy are reported at the top level's paths.
    policies.push(build(DEFAULT_POLICY, "", default_keys, root.errors));
    Policies::new(policies)
}

/// One entry of `policies:`: its name checked and its keys read; `None` (reported) when either
/// is unusable.
fn named_policy_keys<'a>(
    root: &mut Reader,
    name: &'a Value,
    value: &Value,
) -> Option<(&'a str, PolicyKeys)> {
    let Some(name) = name.as_str().filter(|name| is_policy_name(name)) else {
        root.error(
            &format!("policies.{}", key_text(name)),
            "a policy name uses letters, digits, `-` and `_` (at most 64)",
        );
        return None;
    };
    let path = format!("policies.{name}");
    let empty = Mapping::new();
    let map = match value {
        Value::Mapping(map) => map,
        Value::Null => &empty,
        _ => {
            root.error(&path, "expected a mapping of policy keys");
            return None;
        }
    };
    let mut reader = Reader::new(Some(map), &path, root.errors);
    let keys = read_keys(&mut reader);
    reader.finish();
    Some((name, keys))
}

/// The `default` policy: the top-level keys plus `policies.default`'s (see the module's doc).
fn merge_default_keys(
    top_level: PolicyKeys,
    explicit: PolicyKeys,
    errors: &mut Vec<String>,
) -> PolicyKeys {
    merge_keys!(
        top_level,
        explicit,
        errors,
        [
            auth_methods,
            anonymous,
            groups_required,
            roles_required,
            scopes_required,
            audience_required,
            groups_claim,
            roles_claim,
            scopes_claim,
            audience_claim,
            claims_required,
            email_domains,
            upstream_access_token_header,
            upstream_id_token_header,
            upstream_headers_claims,
            upstream_headers_names,
            provider,
        ]
    )
}

/// Every policy's `provider:` names a configured provider (`default` or one of `providers:`).
pub(super) fn check_providers(
    reader: &mut Reader,
    policies: &Policies,
    providers: &[NamedProvider],
) {
    let known: Vec<&str> = std::iter::once(DEFAULT_PROVIDER)
        .chain(providers.iter().map(|provider| provider.name.as_str()))
        .collect();
    for policy in policies.iter() {
        if known.contains(&policy.provider.as_str()) {
            continue;
        }
        let key = if policy.name == DEFAULT_POLICY && reader.value("provider").is_some() {
            "provider".to_owned()
        } else {
            format!("policies.{}.provider", policy.name)
        };
        reader.error(
            &key,
            format!(
                "`{}` is not a configured provider (known: {})",
                policy.provider,
                known.join(", ")
            ),
        );
    }
}

fn is_policy_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(text) => text.chars().take(64).collect(),
        other => format!("{other:?}").chars().take(64).collect(),
    }
}

fn read_keys(reader: &mut Reader) -> PolicyKeys {
    PolicyKeys {
        auth_methods: auth_methods(reader),
        anonymous: reader
            .value("anonymous")
            .is_some()
            .then(|| reader.bool_or("anonymous", false)),
        groups_required: reader.string_list("groups_required"),
        roles_required: reader.string_list("roles_required"),
        scopes_required: reader.string_list("scopes_required"),
        audience_required: reader.string_list("audience_required"),
        groups_claim: claim_path(reader, "groups_claim"),
        roles_claim: claim_path(reader, "roles_claim"),
        scopes_claim: claim_path(reader, "scopes_claim"),
        audience_claim: claim_path(reader, "audience_claim"),
        claims_required: claims_required(reader),
        email_domains: email_domains(reader),
        upstream_access_token_header: token_header(reader, "upstream_access_token_header"),
        upstream_id_token_header: token_header(reader, "upstream_id_token_header"),
        upstream_headers_claims: reader.string_list("upstream_headers_claims"),
        upstream_headers_names: reader.string_list("upstream_headers_names"),
        provider: reader.string("provider"),
    }
}

fn auth_methods(reader: &mut Reader) -> Option<AuthMethods> {
    let names = reader.string_list("auth_methods")?;
    let mut methods = AuthMethods::default();
    for (index, name) in names.iter().enumerate() {
        match name.as_str() {
            "authorization_code" => methods.authorization_code = true,
            "session" => methods.session = true,
            "bearer" => methods.bearer = true,
            "introspection" => methods.introspection = true,
            _ => reader.error(
                &format!("auth_methods[{index}]"),
                format!("`{name}` is not one of: {}", AUTH_METHODS.join(", ")),
            ),
        }
    }
    if names.is_empty() {
        reader.error(
            "auth_methods",
            format!("must list one or more of: {}", AUTH_METHODS.join(", ")),
        );
    }
    Some(methods)
}

fn claim_path(reader: &mut Reader, key: &str) -> Option<ClaimPath> {
    let text = reader.string(key)?;
    match ClaimPath::parse(&text) {
        Ok(path) => Some(path),
        Err(problem) => {
            reader.error(key, format!("`{text}` {problem}"));
            None
        }
    }
}

fn claims_required(reader: &mut Reader) -> Option<Vec<(ClaimPath, serde_json::Value)>> {
    let map = reader.mapping("claims_required")?;
    let mut required = Vec::new();
    for (claim, value) in map {
        let Some(text) = claim.as_str() else {
            reader.error("claims_required", "expected claim paths as keys");
            continue;
        };
        let path = match ClaimPath::parse(text) {
            Ok(path) => path,
            Err(problem) => {
                reader.error(
                    &format!("claims_required.{text}"),
                    format!("`{text}` {problem}"),
                );
                continue;
            }
        };
        match serde_json::to_value(value) {
            Ok(json) if !json.is_null() => required.push((path, json)),
            _ => reader.error(
                &format!("claims_required.{text}"),
                "expected a value the claim must equal (a string, number, true/false or list)",
            ),
        }
    }
    Some(required)
}

fn email_domains(reader: &mut Reader) -> Option<Vec<String>> {
    let domains: Vec<String> = reader
        .string_list("email_domains")?
        .into_iter()
        .map(|domain| domain.trim().trim_start_matches('@').to_ascii_lowercase())
        .collect();
    for (index, domain) in domains.iter().enumerate() {
        let well_formed = domain == "*"
            || (!domain.is_empty()
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
        if !well_formed {
            reader.error(
                &format!("email_domains[{index}]"),
                format!("`{domain}` is not a domain like example.com (or `*` for any)"),
            );
        }
    }
    Some(domains)
}

fn token_header(reader: &mut Reader, key: &str) -> Option<Option<UpstreamHeader>> {
    reader.value(key)?;
    Some(upstream_header(reader, key, None))
}
