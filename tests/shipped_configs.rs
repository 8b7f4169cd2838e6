//! The shipped Envoy configurations and the oidc-authz configurations they run with agree: every
//! policy an Envoy route names (`check_settings.context_extensions.policy`) exists in the
//! oidc-authz config used with it. A name that does not would fail closed at run time (503 on
//! that route), so it is caught here instead.

use std::path::{Path, PathBuf};

use oidc_authz::config::load_from_str;
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

/// Each shipped Envoy config and the oidc-authz config it is used with.
fn pairs() -> Vec<(&'static str, String)> {
    vec![
        ("envoy/envoy.yaml", e2e_config()),
        ("envoy/envoy-unix-socket.yaml", e2e_config()),
        (
            "envoy/envoy-compose.yaml",
            file("deploy/compose/oidc-authz.yaml"),
        ),
    ]
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
        .map(|(envoy, _)| Path::new(ROOT).join(envoy))
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
    for (envoy, oidc_authz_yaml) in pairs() {
        let envoy_yaml: Value = serde_yaml::from_str(&file(envoy)).unwrap();
        let mut names = Vec::new();
        named_policies(&envoy_yaml, &mut names);
        let (config, _) = load_from_str(&oidc_authz_yaml, envoy, Vec::new())
            .unwrap_or_else(|error| panic!("the oidc-authz config for {envoy}: {error}"));
        for name in names {
            assert!(
                config.policies.get(&name).is_some(),
                "{envoy} names policy `{name}`, which its oidc-authz config lacks (has: {:?})",
                config.policies.names().collect::<Vec<_>>()
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "envoy/envoy.yaml's example routes were found");
}
