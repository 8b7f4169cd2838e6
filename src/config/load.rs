//! Loading: YAML file → environment overrides (`OIDC_AUTHZ_<KEY>`, `__` for nesting, e.g.
//! `OIDC_AUTHZ_REDIS__URL`) → secrets read from `*_file` keys → one validated `Config`
//! (`validate`), or every problem at once.

use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::policies::POLICY_KEYS;
use super::validate::validate;
use super::{Config, CookieSecure, ResponseMode};

pub const ENV_PREFIX: &str = "OIDC_AUTHZ_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("config file {path} is not valid YAML: {error}")]
    Syntax {
        path: String,
        error: serde_yaml::Error,
    },
    #[error("invalid configuration ({} problems):\n  {}", .0.len(), .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// Loads `path` (or nothing: environment only) with the process environment.
pub fn load(path: Option<&Path>) -> Result<(Config, Vec<String>), ConfigError> {
    let text = match path {
        Some(path) => std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            error,
        })?,
        None => String::new(),
    };
    let source = path.map_or("<environment>".to_string(), |p| p.display().to_string());
    load_from_str(&text, &source, std::env::vars())
}

/// Loads from YAML text and an environment; returns the config and warnings to log.
pub fn load_from_str(
    yaml: &str,
    source: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let mut root = if yaml.trim().is_empty() {
        Mapping::new()
    } else {
        match serde_yaml::from_str::<Value>(yaml) {
            Ok(Value::Mapping(map)) => map,
            Ok(Value::Null) => Mapping::new(),
            Ok(_) => {
                return Err(ConfigError::Invalid(vec![format!(
                    "{source}: the top level must be a mapping of keys"
                )]));
            }
            Err(error) => {
                return Err(ConfigError::Syntax {
                    path: source.to_owned(),
                    error,
                });
            }
        }
    };
    let mut warnings = apply_env_overrides(&mut root, env);
    let mut errors = Vec::new();
    let config = validate(&root, &mut errors);
    let any_form_post = config.response_mode == ResponseMode::FormPost
        || config
            .providers
            .iter()
            .any(|provider| provider.client.response_mode == ResponseMode::FormPost);
    if any_form_post && config.session_cookie_secure == CookieSecure::Never {
        warnings.push(
            "response_mode: form_post with session_cookie_secure: never: browsers send the login \
             cookie on a cross-site form_post only when it is SameSite=None; Secure, so logins \
             through an IdP on another site will fail with 403"
                .into(),
        );
    }
    if errors.is_empty() {
        Ok((config, warnings))
    } else {
        Err(ConfigError::Invalid(errors))
    }
}

/// Keys that environment variables may set (with `policies::POLICY_KEYS`); anything else is
/// warned about, not applied.
const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "admin_listen",
    "log_format",
    "log_level",
    "issuer",
    "client_id",
    "client_secret",
    "client_secret_file",
    "client_auth",
    "scopes",
    "redirect_uri",
    "response_mode",
    "pkce",
    "preserve_query_args",
    "login_action",
    "login_tokens",
    "authorization_params",
    "id_token_signing_algs",
    "leeway",
    "http_timeout",
    "ext_authz_timeout",
    "ca_file",
    "introspection_cache_ttl",
    "userinfo",
    "session_storage",
    "memory",
    "redis",
    "session_cache_size",
    "session_secret",
    "session_secret_file",
    "session_cookie_name",
    "session_cookie_secure",
    "session_cookie_domain",
    "login_timeout",
    "max_pending_logins",
    "session_idling_timeout",
    "session_absolute_timeout",
    "refresh_margin",
    "policies",
    "trust_forwarded_headers",
    "allowed_hosts",
    "logout_path",
    "logout_methods",
    "logout_redirect_uri",
    "logout_id_token_hint",
    "backchannel_logout_path",
    "providers",
    "shutdown_drain_period",
    "shutdown_grace_period",
    "frontchannel_logout_path",
    "frontchannel_logout_sid_claim",
    "otel",
];

fn apply_env_overrides(
    root: &mut Mapping,
    env: impl IntoIterator<Item = (String, String)>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    overrides.sort();
    for (name, value) in overrides {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        let key = path[0].as_str();
        if !TOP_LEVEL_KEYS.contains(&key) && !POLICY_KEYS.contains(&key) {
            warnings.push(format!("ignored {name}: `{}` is not a config key", path[0]));
            continue;
        }
        let mut map = &mut *root;
        for segment in &path[..path.len() - 1] {
            let slot = map
                .entry(Value::String(segment.clone()))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if !slot.is_mapping() {
                *slot = Value::Mapping(Mapping::new());
            }
            map = slot.as_mapping_mut().expect("just made a mapping");
        }
        let last = path.last().expect("split yields one item at least").clone();
        map.insert(Value::String(last), Value::String(value));
    }
    warnings
}
