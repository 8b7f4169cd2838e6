//! The shipped Envoy configurations and the oidc-authz configurations they run with agree: every
//! policy an Envoy route names (`check_settings.context_extensions.policy`) exists in the
//! oidc-authz config used with it. A name that does not would fail closed at run time (503 on
//! that route), so it is caught here instead. Every shipped ext_authz filter (and Envoy Gateway
//! SecurityPolicy) sends oidc-authz the same `allowed_headers` as envoy/envoy.yaml, the list
//! tests/allowed_headers.rs proves complete.

use std::path::{Path, PathBuf};

use oidc_authz::config::load_from_str;
use serde::Deserialize;
use serde_yaml::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// What the e2e stack (tests/e2e/stack.mjs) runs envoy/envoy.yaml with: its generated config
/// takes `policies:` from tests/e2e/policies.json.
fn e2e_config() -> String {
    let policies =
        std::fs::read_to_string(Path::new(ROOT).join("tests/e2e/policies.json")).unwrap();
    format!(
        "issuer: http://127.0.0.1:19000\nclient_id: envoy\nclient_secret: s\n\
         session_secret: {}\npolicies: {policies}\n",
        "x".repeat(48)
    )
}

fn file(relative: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(relative))
        .unwrap_or_else(|error| panic!("{relative}: {error}"))
}

/// A `data` entry of the ConfigMap in a (multi-document) Kubernetes manifest.
fn configmap_entry(relative: &str, key: &str) -> String {
    for document in serde_yaml::Deserializer::from_str(&file(relative)) {
        let document = Value::deserialize(document).unwrap();
        if document.get("kind").and_then(Value::as_str) != Some("ConfigMap") {
            continue;
        }
        if let Some(text) = document
            .get("data")
            .and_then(|data| data.get(key))
            .and_then(Value::as_str)
        {
            return text.to_owned();
        }
    }
    panic!("{relative}: no ConfigMap with data.{key}")
}

/// Each shipped Envoy config (its file, its text) and the oidc-authz config it is used with.
fn pairs() -> Vec<(&'static str, String, String)> {
    let sidecar = "deploy/kubernetes/sidecar/configmap.yaml";
    let gateway = "deploy/kubernetes/shared-service/gateway-envoy.yaml";
    vec![
        ("envoy/envoy.yaml", file("envoy/envoy.yaml"), e2e_config()),
        (
            "envoy/envoy-unix-socket.yaml",
            file("envoy/envoy-unix-socket.yaml"),
            e2e_config(),
        ),
        (
            "envoy/envoy-compose.yaml",
            file("envoy/envoy-compose.yaml"),
            file("deploy/compose/oidc-authz.yaml"),
        ),
        (
            sidecar,
            configmap_entry(sidecar, "envoy.yaml"),
            configmap_entry(sidecar, "oidc-authz.yaml"),
        ),
        (
            gateway,
            configmap_entry(gateway, "envoy.yaml"),
            configmap_entry(
                "deploy/kubernetes/shared-service/configmap.yaml",
                "oidc-authz.yaml",
            ),
        ),
    ]
}

/// The policies an oidc-authz config defines: `default` and the names under `policies:`. (Read
/// from the YAML: the deploy configs name secret files that exist only in a Pod.)
fn defined_policies(oidc_authz_yaml: &str) -> Vec<String> {
    let config: Value = serde_yaml::from_str(oidc_authz_yaml).unwrap();
    let mut names = vec!["default".to_owned()];
    if let Some(Value::Mapping(policies)) = config.get("policies") {
        names.extend(policies.keys().filter_map(Value::as_str).map(str::to_owned));
    }
    names
}

/// Every `context_extensions.policy` anywhere in an Envoy config.
fn named_policies(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                if key.as_str() == Some("context_extensions")
                    && let Some(name) = child.get("policy").and_then(Value::as_str)
                {
                    found.push(name.to_owned());
                }
                named_policies(child, found);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|item| named_policies(item, found)),
        _ => {}
    }
}

/// YAML files under `dir` (recursively) that are Envoy bootstrap configs.
fn envoy_configs(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            envoy_configs(&path, found);
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
            && std::fs::read_to_string(&path)
                .unwrap()
                .contains("static_resources:")
        {
            found.push(path);
        }
    }
}

#[test]
fn every_shipped_envoy_config_has_a_known_oidc_authz_config() {
    let mut found = Vec::new();
    envoy_configs(&Path::new(ROOT).join("envoy"), &mut found);
    envoy_configs(&Path::new(ROOT).join("deploy"), &mut found);
    let known: Vec<PathBuf> = pairs()
        .iter()
        .map(|(envoy, _, _)| Path::new(ROOT).join(envoy))
        .collect();
    for path in found {
        assert!(
            known.contains(&path),
            "{}: add it to pairs() with the oidc-authz config it runs with",
            path.display()
        );
    }
}

#[test]
fn every_policy_a_shipped_envoy_route_names_is_configured() {
    let mut checked = 0;
    for (envoy, envoy_text, oidc_authz_yaml) in pairs() {
        let envoy_yaml: Value = serde_yaml::from_str(&envoy_text).unwrap();
        let mut names = Vec::new();
        named_policies(&envoy_yaml, &mut names);
        let defined = defined_policies(&oidc_authz_yaml);
        for name in names {
            assert!(
                defined.contains(&name),
                "{envoy} names policy `{name}`, which its oidc-authz config lacks (has: {defined:?})"
            );
            checked += 1;
        }
    }
    // The e2e config is the one a test can load: it must also be valid as a whole.
    load_from_str(&e2e_config(), "e2e", Vec::new()).expect("the e2e oidc-authz config is valid");
    assert!(checked >= 3, "envoy/envoy.yaml's example routes were found");
}

/// The value of the first `key` anywhere in a YAML tree.
fn find_key<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Mapping(map) => map.iter().find_map(|(name, child)| {
            if name.as_str() == Some(key) {
                Some(child)
            } else {
                find_key(child, key)
            }
        }),
        Value::Sequence(items) => items.iter().find_map(|item| find_key(item, key)),
        _ => None,
    }
}

/// The header names of envoy/envoy.yaml's ext_authz `allowed_headers` (exact patterns).
fn reference_allowed_headers() -> (Value, Vec<String>) {
    let envoy: Value = serde_yaml::from_str(&file("envoy/envoy.yaml")).unwrap();
    let list = find_key(&envoy, "allowed_headers")
        .expect("envoy/envoy.yaml sets allowed_headers")
        .clone();
    let names = list["patterns"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|pattern| pattern["exact"].as_str().unwrap().to_owned())
        .collect();
    (list, names)
}

#[test]
fn every_shipped_ext_authz_filter_sends_the_same_allowed_headers() {
    let (reference, names) = reference_allowed_headers();
    assert!(names.contains(&"cookie".to_owned()), "{names:?}");
    for (envoy, envoy_text, _) in pairs() {
        let envoy_yaml: Value = serde_yaml::from_str(&envoy_text).unwrap();
        let filters = envoy_text
            .lines()
            .filter(|line| line.trim_end().ends_with("ext_authz.v3.ExtAuthz"))
            .count();
        assert_eq!(filters, 1, "{envoy}: one ext_authz filter expected");
        assert_eq!(
            find_key(&envoy_yaml, "allowed_headers"),
            Some(&reference),
            "{envoy}: its ext_authz allowed_headers differ from envoy/envoy.yaml's"
        );
    }
    let mut policies = 0;
    let gateway = "deploy/envoy-gateway/securitypolicy.yaml";
    for document in serde_yaml::Deserializer::from_str(&file(gateway)) {
        let document = Value::deserialize(document).unwrap();
        if document.get("kind").and_then(Value::as_str) != Some("SecurityPolicy") {
            continue;
        }
        let listed: Vec<&str> = document["spec"]["extAuth"]["headersToExtAuth"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{gateway}: a SecurityPolicy without headersToExtAuth"))
            .iter()
            .map(|name| name.as_str().unwrap())
            .collect();
        assert_eq!(
            listed, names,
            "{gateway}: headersToExtAuth differs from envoy/envoy.yaml"
        );
        policies += 1;
    }
    assert_eq!(
        policies, 2,
        "{gateway}: the app's and the callbacks' SecurityPolicy"
    );
}
