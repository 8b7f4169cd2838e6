//! Loading: YAML file → environment overrides (`OIDC_AUTHZ_<KEY>`, `__` for nesting, e.g.
//! `OIDC_AUTHZ_REDIS__URL`) → secrets read from `*_file` keys → one validated `Config`, or every
//! problem at once.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_yaml::{Mapping, Value};
use url::Url;

use super::reader::Reader;
use super::*;
use crate::crypto::MIN_SECRET_LEN;

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
    let warnings = apply_env_overrides(&mut root, env);
    let mut errors = Vec::new();
    let config = validate(&root, &mut errors);
    if errors.is_empty() {
        Ok((config, warnings))
    } else {
        Err(ConfigError::Invalid(errors))
    }
}

/// Keys that environment variables may set; anything else is warned about, not applied.
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
    "session_storage",
    "redis",
    "session_secret",
    "session_secret_file",
    "session_cookie_name",
    "session_cookie_secure",
    "session_cookie_domain",
    "login_timeout",
    "session_idling_timeout",
    "session_absolute_timeout",
    "refresh_margin",
    "upstream_access_token_header",
    "upstream_id_token_header",
    "upstream_headers_claims",
    "upstream_headers_names",
    "trust_forwarded_headers",
    "logout_path",
    "logout_redirect_uri",
    "backchannel_logout_path",
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
        if !TOP_LEVEL_KEYS.contains(&path[0].as_str()) {
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

fn parse_addr(reader: &mut Reader, key: &str, default: &str) -> SocketAddr {
    let text = reader.string_or(key, default);
    text.parse().unwrap_or_else(|_| {
        reader.error(
            key,
            format!("`{text}` is not an address like 127.0.0.1:9191"),
        );
        default.parse().expect("default address parses")
    })
}

fn seconds(reader: &mut Reader, key: &str, default: u64) -> Duration {
    Duration::from_secs(reader.u64_or(key, default))
}

/// A secret given inline (`key`) or in a file (`key_file`), exactly one of them.
fn secret_text(reader: &mut Reader, key: &str) -> Option<String> {
    let inline = reader.string(key);
    let file_key = format!("{key}_file");
    let file = reader.string(&file_key);
    match (inline, file) {
        (Some(_), Some(_)) => {
            reader.error(key, format!("set either {key} or {file_key}, not both"));
            None
        }
        (Some(text), None) => Some(text),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(error) => {
                reader.error(&file_key, format!("cannot read {path}: {error}"));
                None
            }
        },
        (None, None) => None,
    }
}

/// `redis.url`, `redis.cluster_urls` or `redis.sentinel`: exactly one when `required` (session
/// storage is Redis); each is checked whenever given. URLs are never echoed: they may hold passwords.
fn redis_mode(reader: &mut Reader, required: bool) -> Option<RedisMode> {
    // Given at all, even if malformed (that has its own error): counts towards "exactly one".
    let present = ["url", "cluster_urls", "sentinel"].map(|key| reader.value(key).is_some());
    let url = reader.string("url");
    if let Some(url) = &url
        && !(url.starts_with("redis://")
            || url.starts_with("rediss://")
            || url.starts_with("redis+unix://")
            || url.starts_with("unix://"))
    {
        reader.error("url", "must start with redis://, rediss:// or unix://");
    }
    let cluster_urls = reader
        .string_list("cluster_urls")
        .map(|urls| node_urls(reader, "cluster_urls", urls, true));
    let sentinel = reader.mapping("sentinel").map(|map| {
        let mut sentinel = Reader::new(Some(map), &reader.path("sentinel"), reader.errors);
        let urls = match sentinel.string_list("urls") {
            Some(urls) => node_urls(&mut sentinel, "urls", urls, false),
            None => {
                sentinel.error(
                    "urls",
                    "required: the sentinels, like [redis://127.0.0.1:26379]",
                );
                Vec::new()
            }
        };
        let master_name = sentinel.string("master_name").unwrap_or_default();
        if master_name.is_empty() {
            sentinel.error(
                "master_name",
                "required: the name the sentinels monitor the master under",
            );
        }
        let db = sentinel.u64_or("db", 0);
        let db = i64::try_from(db).unwrap_or_else(|_| {
            sentinel.error("db", "is too large");
            0
        });
        sentinel.finish();
        RedisMode::Sentinel {
            urls,
            master_name,
            db,
        }
    });

    let given: Vec<&str> = ["url", "cluster_urls", "sentinel"]
        .into_iter()
        .zip(present)
        .filter_map(|(key, present)| present.then_some(key))
        .collect();
    if given.len() > 1 {
        for key in &given[1..] {
            reader.error(
                key,
                format!(
                    "conflicts with {}; set exactly one of redis.url, redis.cluster_urls, redis.sentinel",
                    reader.path(given[0])
                ),
            );
        }
        return None;
    }
    if required && given.is_empty() {
        reader.error(
            "url",
            "required when session_storage is redis (or redis.cluster_urls, or redis.sentinel)",
        );
    }
    url.map(|url| RedisMode::Single {
        url: Secret::new(url),
    })
    .or(cluster_urls.map(|urls| RedisMode::Cluster { urls }))
    .or(sentinel)
}

/// The nodes of a cluster or the sentinels: at least one `redis://host:port` (or `rediss://`). A
/// cluster has only database 0.
fn node_urls(reader: &mut Reader, key: &str, urls: Vec<String>, cluster: bool) -> Vec<Secret> {
    if urls.is_empty() {
        reader.error(key, "must list at least one redis://host:port");
    }
    for (index, text) in urls.iter().enumerate() {
        let problem = match Url::parse(text) {
            Ok(url) if !matches!(url.scheme(), "redis" | "rediss") || url.host().is_none() => {
                Some("must be a redis://host:port or rediss://host:port URL")
            }
            Ok(url) if cluster && !matches!(url.path(), "" | "/" | "/0") => {
                Some("a Redis Cluster has only database 0: leave the path empty")
            }
            Ok(url) if url.query().is_some() || url.fragment().is_some() => {
                Some("takes no query or fragment")
            }
            Ok(_) => None,
            Err(_) => Some("is not a URL like redis://127.0.0.1:6379"),
        };
        if let Some(problem) = problem {
            reader.error(&format!("{key}[{index}]"), problem);
        }
    }
    urls.into_iter().map(Secret::new).collect()
}

fn path_key(reader: &mut Reader, key: &str, default: Option<&str>) -> Option<String> {
    let path = reader.string(key).or(default.map(str::to_owned))?;
    if path.is_empty() {
        return None;
    }
    if !path.starts_with('/') || path.contains(['?', '#']) {
        reader.error(
            key,
            format!("`{path}` must be a path starting with / (no query)"),
        );
        return None;
    }
    Some(path)
}

fn upstream_header(
    reader: &mut Reader,
    key: &str,
    default: Option<&str>,
) -> Option<UpstreamHeader> {
    let text = reader.string(key).or(default.map(str::to_owned))?;
    if text.is_empty() {
        return None;
    }
    let (name, scheme) = match text.split_once(':') {
        Some((name, scheme)) => (name.trim(), Some(scheme.trim())),
        None => (text.trim(), None),
    };
    if !is_header_name(name)
        || scheme.is_some_and(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        reader.error(
            key,
            format!("`{text}` must look like `authorization:bearer` or `x-access-token`"),
        );
        return None;
    }
    let scheme = scheme.map(|s| {
        // `bearer` is written `Bearer` on the wire (RFC 6750).
        let mut chars = s.chars();
        chars
            .next()
            .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
            .unwrap_or_default()
    });
    Some(UpstreamHeader {
        name: name.to_ascii_lowercase(),
        scheme,
    })
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Kong's pair of lists: `upstream_headers_claims[i]` goes upstream as `upstream_headers_names[i]`.
fn claim_headers(
    reader: &mut Reader,
    token_headers: [&Option<UpstreamHeader>; 2],
) -> Vec<(String, String)> {
    let claims = reader
        .string_list("upstream_headers_claims")
        .unwrap_or_default();
    let names = reader
        .string_list("upstream_headers_names")
        .unwrap_or_default();
    if claims.len() != names.len() {
        reader.error(
            "upstream_headers_names",
            format!(
                "has {} names for {} upstream_headers_claims; give one header name per claim",
                names.len(),
                claims.len()
            ),
        );
        return Vec::new();
    }
    let mut pairs = Vec::new();
    for (index, (claim, name)) in claims.into_iter().zip(names).enumerate() {
        let name = name.to_ascii_lowercase();
        let taken = token_headers
            .iter()
            .any(|header| header.as_ref().is_some_and(|h| h.name == name));
        if !is_header_name(&name) || matches!(name.as_str(), "cookie" | "host") || taken {
            reader.error(
                &format!("upstream_headers_names[{index}]"),
                format!("`{name}` is not a header name we may set"),
            );
        } else {
            pairs.push((claim, name));
        }
    }
    pairs
}

const DEFAULT_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

const RESERVED_AUTHORIZATION_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
];

fn validate(root: &Mapping, errors: &mut Vec<String>) -> Config {
    let mut reader = Reader::new(Some(root), "", errors);

    let listen = parse_addr(&mut reader, "listen", "127.0.0.1:9191");
    let admin_listen = parse_addr(&mut reader, "admin_listen", "127.0.0.1:9192");
    let log_format = reader.choice_or(
        "log_format",
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        LogFormat::Text,
    );
    let log_level = reader.string_or("log_level", "info");

    let issuer = match reader.string("issuer") {
        None => {
            reader.error("issuer", "required (the IdP's issuer URL; discovery is at {issuer}/.well-known/openid-configuration)");
            None
        }
        Some(text) => match Url::parse(&text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(url)
            }
            _ => {
                reader.error("issuer", format!("`{text}` is not an http(s) URL"));
                None
            }
        },
    };
    let client_id = reader.string("client_id").unwrap_or_else(|| {
        reader.error("client_id", "required");
        String::new()
    });
    let client_secret = secret_text(&mut reader, "client_secret")
        .map(|text| Secret::new(text.trim()))
        .unwrap_or_else(|| {
            reader.error("client_secret", "required (or client_secret_file)");
            Secret::default()
        });
    let client_auth = reader.choice_or(
        "client_auth",
        &[
            ("client_secret_basic", ClientAuth::ClientSecretBasic),
            ("client_secret_post", ClientAuth::ClientSecretPost),
        ],
        ClientAuth::ClientSecretBasic,
    );
    let scopes = reader
        .string_list("scopes")
        .unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        reader.error("scopes", "must include `openid`");
    }
    let redirect_text = reader.string_or("redirect_uri", "/callback");
    let redirect_uri = if redirect_text.starts_with('/') && !redirect_text.contains(['?', '#']) {
        RedirectUri::Path(redirect_text)
    } else {
        match Url::parse(&redirect_text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.query().is_none() => {
                RedirectUri::Absolute(url)
            }
            _ => {
                reader.error(
                    "redirect_uri",
                    format!("`{redirect_text}` must be a path like /callback or an absolute http(s) URI without query"),
                );
                RedirectUri::Path("/callback".into())
            }
        }
    };
    let response_mode = reader.choice_or(
        "response_mode",
        &[
            ("query", ResponseMode::Query),
            ("form_post", ResponseMode::FormPost),
        ],
        ResponseMode::Query,
    );
    let pkce = reader.choice_or(
        "pkce",
        &[
            ("auto", PkceMode::Auto),
            ("always", PkceMode::Always),
            ("never", PkceMode::Never),
        ],
        PkceMode::Auto,
    );
    let preserve_query_args = reader.bool_or("preserve_query_args", true);
    reader.choice_or("login_action", &[("redirect", ())], ());
    match reader.value("login_tokens") {
        None => {}
        Some(Value::Sequence(items)) if items.is_empty() => {}
        Some(Value::String(text)) if text.is_empty() => {}
        Some(_) => reader.error(
            "login_tokens",
            "must be empty: oidc-authz never hands tokens to the browser (they reach the upstream as headers)",
        ),
    }
    let mut authorization_params = Vec::new();
    if let Some(map) = reader.mapping("authorization_params") {
        for (key, value) in map {
            let (Some(key), Some(value)) = (key.as_str(), value.as_str()) else {
                reader.error(
                    "authorization_params",
                    "expected a mapping of strings to strings",
                );
                continue;
            };
            if RESERVED_AUTHORIZATION_PARAMS.contains(&key) {
                reader.error(
                    &format!("authorization_params.{key}"),
                    "is set by oidc-authz itself; use the matching option instead",
                );
            } else {
                authorization_params.push((key.to_owned(), value.to_owned()));
            }
        }
    }
    let alg_names = reader
        .string_list("id_token_signing_algs")
        .unwrap_or_else(|| DEFAULT_ALGS.iter().map(|s| s.to_string()).collect());
    let mut id_token_signing_algs = Vec::new();
    for name in &alg_names {
        match name.parse::<Algorithm>() {
            Ok(alg) => id_token_signing_algs.push(alg),
            Err(_) => reader.error(
                "id_token_signing_algs",
                format!("`{name}` is not a JWS algorithm (`none` is never accepted)"),
            ),
        }
    }
    if id_token_signing_algs.is_empty() {
        reader.error("id_token_signing_algs", "must list at least one algorithm");
    }
    let leeway = seconds(&mut reader, "leeway", 60);
    let http_timeout = seconds(&mut reader, "http_timeout", 10);

    let storage_kind = reader.choice_or(
        "session_storage",
        &[("memory", false), ("redis", true)],
        false,
    );
    let redis_map = reader.mapping("redis");
    let session_storage = {
        let mut redis_reader = Reader::new(redis_map, "redis", reader.errors);
        let mode = redis_mode(&mut redis_reader, storage_kind);
        let key_prefix = redis_reader.string_or("key_prefix", "oidc-authz:");
        let pool_size = redis_reader.u64_or("pool_size", 16).max(1) as usize;
        let command_timeout =
            Duration::from_millis(redis_reader.u64_or("command_timeout_ms", 1000));
        redis_reader.finish();
        match (storage_kind, mode) {
            (true, Some(mode)) => SessionStorage::Redis(RedisConfig {
                mode,
                key_prefix,
                pool_size,
                command_timeout,
            }),
            _ => SessionStorage::Memory,
        }
    };

    let session_secrets: Vec<Secret> = {
        let from_list = reader.string_list("session_secret");
        let from_file = reader.string("session_secret_file");
        let texts = match (from_list, from_file) {
            (Some(_), Some(_)) => {
                reader.error(
                    "session_secret",
                    "set either session_secret or session_secret_file, not both",
                );
                Vec::new()
            }
            (Some(list), None) => list,
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) => text
                    .lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .map(str::to_owned)
                    .collect(),
                Err(error) => {
                    reader.error(
                        "session_secret_file",
                        format!("cannot read {path}: {error}"),
                    );
                    Vec::new()
                }
            },
            (None, None) => {
                reader.error(
                    "session_secret",
                    "required (or session_secret_file): one or more keys of 32+ random characters, newest first",
                );
                Vec::new()
            }
        };
        for (index, text) in texts.iter().enumerate() {
            if text.len() < MIN_SECRET_LEN {
                reader.error(
                    &format!("session_secret[{index}]"),
                    format!(
                        "is {} characters; use at least {MIN_SECRET_LEN} random characters",
                        text.len()
                    ),
                );
            }
        }
        texts.into_iter().map(Secret::new).collect()
    };
    let session_cookie_name = reader.string_or("session_cookie_name", "session");
    if session_cookie_name.is_empty()
        || !session_cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        reader.error("session_cookie_name", "use letters, digits, - and _ only");
    }
    let session_cookie_secure = reader.choice_or(
        "session_cookie_secure",
        &[
            ("auto", CookieSecure::Auto),
            ("always", CookieSecure::Always),
            ("never", CookieSecure::Never),
        ],
        CookieSecure::Auto,
    );
    let session_cookie_domain = reader
        .string("session_cookie_domain")
        .filter(|d| !d.is_empty());
    let login_timeout = seconds(&mut reader, "login_timeout", 600);
    let session_idling_timeout = seconds(&mut reader, "session_idling_timeout", 900);
    let session_absolute_timeout = seconds(&mut reader, "session_absolute_timeout", 86_400);
    let refresh_margin = seconds(&mut reader, "refresh_margin", 30);
    if login_timeout.is_zero() {
        reader.error("login_timeout", "must be at least 1 second");
    }
    if session_absolute_timeout.is_zero() {
        reader.error("session_absolute_timeout", "must be at least 1 second");
    }

    let upstream_access_token_header = upstream_header(
        &mut reader,
        "upstream_access_token_header",
        Some("authorization:bearer"),
    );
    let upstream_id_token_header = upstream_header(&mut reader, "upstream_id_token_header", None);
    let upstream_claim_headers = claim_headers(
        &mut reader,
        [&upstream_access_token_header, &upstream_id_token_header],
    );
    let trust_forwarded_headers = reader.bool_or("trust_forwarded_headers", false);

    let logout_path = path_key(&mut reader, "logout_path", Some("/logout"));
    let logout_redirect_uri = reader
        .string("logout_redirect_uri")
        .filter(|s| !s.is_empty());
    if let Some(uri) = &logout_redirect_uri
        && !uri.starts_with('/')
        && Url::parse(uri).is_err()
    {
        reader.error(
            "logout_redirect_uri",
            format!("`{uri}` must be a path or an absolute URL"),
        );
    }
    let backchannel_logout_path = path_key(&mut reader, "backchannel_logout_path", None);
    let mut special_paths = HashSet::new();
    for (key, path) in [
        ("redirect_uri", Some(redirect_uri.path())),
        ("logout_path", logout_path.as_deref()),
        (
            "backchannel_logout_path",
            backchannel_logout_path.as_deref(),
        ),
    ] {
        if let Some(path) = path
            && !special_paths.insert(path.to_owned())
        {
            reader.error(key, format!("`{path}` is already used by another endpoint"));
        }
    }

    reader.finish();

    Config {
        listen,
        admin_listen,
        log_format,
        log_level,
        issuer: issuer.unwrap_or_else(|| Url::parse("http://invalid.invalid").expect("valid")),
        client_id,
        client_secret,
        client_auth,
        scopes,
        redirect_uri,
        response_mode,
        pkce,
        preserve_query_args,
        authorization_params,
        id_token_signing_algs,
        leeway,
        http_timeout,
        session_storage,
        session_secrets,
        session_cookie_name,
        session_cookie_secure,
        session_cookie_domain,
        login_timeout,
        session_idling_timeout,
        session_absolute_timeout,
        refresh_margin,
        upstream_access_token_header,
        upstream_id_token_header,
        upstream_claim_headers,
        trust_forwarded_headers,
        logout_path,
        logout_redirect_uri,
        backchannel_logout_path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "
issuer: https://idp.example/realms/demo
client_id: envoy
client_secret: s3cr3t
session_secret: 0123456789abcdef0123456789abcdef
";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn problems(yaml: &str) -> Vec<String> {
        match load_from_str(yaml, "test.yaml", env(&[])) {
            Err(ConfigError::Invalid(problems)) => problems,
            other => panic!("expected invalid config, got {other:?}"),
        }
    }

    #[test]
    fn minimal_config_gets_the_documented_defaults() {
        let (config, warnings) = load_from_str(MINIMAL, "test.yaml", env(&[])).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(config.listen.to_string(), "127.0.0.1:9191");
        assert_eq!(config.admin_listen.to_string(), "127.0.0.1:9192");
        assert_eq!(config.client_auth, ClientAuth::ClientSecretBasic);
        assert_eq!(config.scopes, ["openid", "profile", "email"]);
        assert_eq!(config.redirect_uri, RedirectUri::Path("/callback".into()));
        assert_eq!(config.pkce, PkceMode::Auto);
        assert!(matches!(config.session_storage, SessionStorage::Memory));
        assert_eq!(
            config.upstream_access_token_header,
            Some(UpstreamHeader {
                name: "authorization".into(),
                scheme: Some("Bearer".into())
            })
        );
        assert_eq!(config.logout_path.as_deref(), Some("/logout"));
        assert!(!config.id_token_signing_algs.contains(&Algorithm::HS256));
        assert_eq!(format!("{:?}", config.client_secret), "[redacted]");
    }

    #[test]
    fn every_problem_is_reported_with_its_key_path() {
        let problems = problems(
            "
issuer: not a url
client_auth: client_secret_jwt
scopes: [profile]
redirect_uri: callback
response_mode: fragment
session_storage: redis
redis: { urll: redis://x }
session_secret: [short]
login_tokens: [id_token]
upstream_access_token_header: 'bad header:'
logout_path: /callback
colour: blue
sesion_secret: x
",
        );
        let expected = [
            "issuer: `not a url` is not an http(s) URL",
            "client_id: required",
            "client_secret: required (or client_secret_file)",
            "client_auth: `client_secret_jwt` is not one of: client_secret_basic, client_secret_post",
            "scopes: must include `openid`",
            "redirect_uri: `callback` must be a path",
            "response_mode: `fragment` is not one of: query, form_post",
            "redis.url: required when session_storage is redis",
            "redis.urll: unknown key",
            "session_secret[0]: is 5 characters",
            "login_tokens: must be empty",
            "upstream_access_token_header: `bad header:`",
            "logout_path: `/callback` is already used by another endpoint",
            "colour: unknown key",
            "sesion_secret: unknown key (did you mean `session_secret`?)",
        ];
        for needle in expected {
            assert!(
                problems.iter().any(|p| p.starts_with(needle)),
                "missing `{needle}` in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    }

    #[test]
    fn claim_headers_pair_up_and_may_not_shadow_token_headers() {
        let yaml = format!(
            "{MINIMAL}upstream_headers_claims: [email, groups]\nupstream_headers_names: [X-User-Email, x-groups]\n"
        );
        let (config, _) = load_from_str(&yaml, "t", env(&[])).unwrap();
        assert_eq!(
            config.upstream_claim_headers,
            [
                ("email".to_string(), "x-user-email".to_string()),
                ("groups".into(), "x-groups".into())
            ]
        );
        let mismatched = problems(&format!("{MINIMAL}upstream_headers_claims: [email]\n"));
        assert!(
            mismatched[0].starts_with("upstream_headers_names: has 0 names for 1"),
            "{mismatched:?}"
        );
        let shadowing = problems(&format!(
            "{MINIMAL}upstream_headers_claims: [email]\nupstream_headers_names: [Authorization]\n"
        ));
        assert!(
            shadowing[0].starts_with("upstream_headers_names[0]: `authorization`"),
            "{shadowing:?}"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let error =
            load_from_str("issuer: [unclosed\nclient_id: x\n", "bad.yaml", env(&[])).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("bad.yaml"), "{message}");
        assert!(message.contains("line"), "{message}");
    }

    #[test]
    fn environment_overrides_win_and_unknown_ones_are_warned_about() {
        let (config, warnings) = load_from_str(
            MINIMAL,
            "test.yaml",
            env(&[
                ("OIDC_AUTHZ_CLIENT_ID", "from-env"),
                ("OIDC_AUTHZ_SESSION_STORAGE", "redis"),
                ("OIDC_AUTHZ_REDIS__URL", "redis://127.0.0.1:6390/0"),
                ("OIDC_AUTHZ_SCOPES", "openid,email"),
                ("OIDC_AUTHZ_PRESERVE_QUERY_ARGS", "false"),
                ("OIDC_AUTHZ_BINARY", "/usr/bin/x"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.client_id, "from-env");
        assert_eq!(config.scopes, ["openid", "email"]);
        assert!(!config.preserve_query_args);
        match config.session_storage {
            SessionStorage::Redis(RedisConfig {
                mode: RedisMode::Single { url },
                ..
            }) => assert_eq!(url.expose(), "redis://127.0.0.1:6390/0"),
            other => panic!("expected redis, got {other:?}"),
        }
        assert_eq!(
            warnings,
            ["ignored OIDC_AUTHZ_BINARY: `binary` is not a config key"]
        );
    }

    fn redis_mode(yaml: &str, env_pairs: &[(&str, &str)]) -> RedisConfig {
        let yaml = format!("{MINIMAL}session_storage: redis\n{yaml}");
        match load_from_str(&yaml, "test.yaml", env(env_pairs))
            .unwrap()
            .0
            .session_storage
        {
            SessionStorage::Redis(redis) => redis,
            other => panic!("expected redis, got {other:?}"),
        }
    }

    #[test]
    fn redis_cluster_and_sentinel_are_read() {
        let redis = redis_mode(
            "redis:\n  cluster_urls: [redis://127.0.0.1:7000, 'redis://:pw@127.0.0.1:7001']\n  key_prefix: 'p:'\n  pool_size: 4\n  command_timeout_ms: 250\n",
            &[],
        );
        match &redis.mode {
            RedisMode::Cluster { urls } => assert_eq!(
                urls.iter().map(Secret::expose).collect::<Vec<_>>(),
                ["redis://127.0.0.1:7000", "redis://:pw@127.0.0.1:7001"]
            ),
            other => panic!("expected cluster, got {other:?}"),
        }
        assert_eq!(
            (redis.key_prefix.as_str(), redis.pool_size),
            ("p:", 4),
            "the shared keys apply to every mode"
        );
        assert_eq!(redis.command_timeout, Duration::from_millis(250));
        assert!(!format!("{redis:?}").contains("pw"), "URLs are redacted");

        let redis = redis_mode(
            "redis:\n  sentinel:\n    urls: [redis://127.0.0.1:26379, redis://127.0.0.1:26380]\n    master_name: mymaster\n    db: 2\n",
            &[],
        );
        match &redis.mode {
            RedisMode::Sentinel {
                urls,
                master_name,
                db,
            } => {
                assert_eq!(urls.len(), 2);
                assert_eq!((master_name.as_str(), *db), ("mymaster", 2));
            }
            other => panic!("expected sentinel, got {other:?}"),
        }
        assert_eq!(redis.key_prefix, "oidc-authz:");
        assert_eq!(redis.pool_size, 16);
        let redis = redis_mode(
            "redis:\n  sentinel: { urls: [redis://127.0.0.1:26379], master_name: m }\n",
            &[],
        );
        assert!(matches!(redis.mode, RedisMode::Sentinel { db: 0, .. }));
    }

    #[test]
    fn redis_cluster_and_sentinel_come_from_the_environment() {
        let redis = redis_mode(
            "",
            &[(
                "OIDC_AUTHZ_REDIS__CLUSTER_URLS",
                "redis://127.0.0.1:7000,redis://127.0.0.1:7001",
            )],
        );
        match &redis.mode {
            RedisMode::Cluster { urls } => assert_eq!(
                urls.iter().map(Secret::expose).collect::<Vec<_>>(),
                ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
            ),
            other => panic!("expected cluster, got {other:?}"),
        }
        let redis = redis_mode(
            "",
            &[
                (
                    "OIDC_AUTHZ_REDIS__SENTINEL__URLS",
                    "redis://127.0.0.1:26379,redis://127.0.0.1:26380",
                ),
                ("OIDC_AUTHZ_REDIS__SENTINEL__MASTER_NAME", "mymaster"),
                ("OIDC_AUTHZ_REDIS__SENTINEL__DB", "3"),
            ],
        );
        match &redis.mode {
            RedisMode::Sentinel {
                urls,
                master_name,
                db,
            } => {
                assert_eq!(urls.len(), 2);
                assert_eq!((master_name.as_str(), *db), ("mymaster", 3));
            }
            other => panic!("expected sentinel, got {other:?}"),
        }
    }

    /// Every `expected` prefix matches a problem, and there are no others.
    fn expect_exactly(found: &[String], expected: &[&str]) {
        for needle in expected {
            assert!(
                found.iter().any(|p| p.starts_with(needle)),
                "missing `{needle}` in {found:#?}"
            );
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
    }

    #[test]
    fn redis_modes_are_exclusive_and_every_mistake_has_its_key_path() {
        let found = problems(&format!(
            "{MINIMAL}session_storage: redis
redis:
  url: redis://127.0.0.1:6379
  cluster_urls: [redis://127.0.0.1:7000]
  sentinel: {{ urls: [redis://127.0.0.1:26379], master_name: m }}
"
        ));
        let expected = [
            "redis.cluster_urls: conflicts with redis.url; set exactly one of",
            "redis.sentinel: conflicts with redis.url; set exactly one of",
        ];
        expect_exactly(&found, &expected);

        let found = problems(&format!(
            "{MINIMAL}session_storage: redis
redis:
  cluster_urls: ['http://:hunter2@127.0.0.1:7000', 'redis://:hunter2@127.0.0.1:7001/1', not a url, redis://127.0.0.1:7002]
"
        ));
        let expected = [
            "redis.cluster_urls[0]: must be a redis://host:port or rediss://host:port URL",
            "redis.cluster_urls[1]: a Redis Cluster has only database 0",
            "redis.cluster_urls[2]: is not a URL",
        ];
        expect_exactly(&found, &expected);
        assert!(
            !found.iter().any(|p| p.contains("hunter2")),
            "URLs (which may hold passwords) are not echoed: {found:#?}"
        );

        let found = problems(&format!(
            "{MINIMAL}session_storage: redis
redis:
  sentinel:
    url: redis://127.0.0.1:26379
    master_nmae: mymaster
    db: minus one
"
        ));
        let expected = [
            "redis.sentinel.urls: required",
            "redis.sentinel.master_name: required",
            "redis.sentinel.db: expected a whole number",
            "redis.sentinel.url: unknown key (did you mean `urls`?)",
            "redis.sentinel.master_nmae: unknown key (did you mean `master_name`?)",
        ];
        expect_exactly(&found, &expected);

        let found = problems(&format!(
            "{MINIMAL}session_storage: redis
redis:
  cluster_urls: []
  sentinel_urls: [redis://127.0.0.1:26379]
"
        ));
        let expected = [
            "redis.cluster_urls: must list at least one",
            "redis.sentinel_urls: unknown key",
        ];
        expect_exactly(&found, &expected);

        let found = problems(&format!(
            "{MINIMAL}session_storage: redis\nredis: {{ sentinel: [redis://127.0.0.1:26379] }}\n"
        ));
        expect_exactly(&found, &["redis.sentinel: expected a mapping"]);
        // Without any of the three, the error names all of them.
        let found = problems(&format!("{MINIMAL}session_storage: redis\n"));
        assert_eq!(
            found,
            [
                "redis.url: required when session_storage is redis (or redis.cluster_urls, or redis.sentinel)"
            ]
        );
    }

    #[test]
    fn secrets_come_from_files() {
        let dir = std::env::temp_dir().join(format!("oidc-authz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let client_secret = dir.join("client_secret");
        let session_keys = dir.join("session_keys");
        std::fs::write(&client_secret, "from-file\n").unwrap();
        std::fs::write(
            &session_keys,
            "# newest first\nnew-key-new-key-new-key-new-key-new-key\n\nold-key-old-key-old-key-old-key-old-key\n",
        )
        .unwrap();
        let yaml = format!(
            "issuer: https://idp.example\nclient_id: envoy\nclient_secret_file: {}\nsession_secret_file: {}\n",
            client_secret.display(),
            session_keys.display()
        );
        let (config, _) = load_from_str(&yaml, "test.yaml", env(&[])).unwrap();
        assert_eq!(config.client_secret.expose(), "from-file");
        assert_eq!(config.session_secrets.len(), 2);
        assert_eq!(
            config.session_secrets[0].expose(),
            "new-key-new-key-new-key-new-key-new-key"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
