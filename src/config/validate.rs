//! `validate`: the whole configuration, key by key, into a `Config`; every problem is collected
//! (with its key path) instead of stopping at the first.

use std::collections::HashSet;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::fields::*;
use super::idp_client::{IdpClient, idp_client};
use super::limits::*;
use super::providers::{DefaultProvider, cookie_name, logout_redirect_uri, providers};
use super::reader::Reader;
use super::*;
use crate::crypto::MIN_SECRET_LEN;

pub(super) fn validate(root: &Mapping, errors: &mut Vec<String>) -> Config {
    let mut reader = Reader::new(Some(root), "", errors);

    let listen = listen_address(&mut reader, "listen", "127.0.0.1:9191");
    let admin_listen = parse_addr(&mut reader, "admin_listen", "127.0.0.1:9192");
    let log_format = reader.choice_or(
        "log_format",
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        LogFormat::Text,
    );
    let log_level = reader.string_or("log_level", "info");

    let client = idp_client(&mut reader, None);
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
    let leeway = seconds(&mut reader, "leeway", 60);
    let http_timeout = http_timeout(&mut reader);
    let userinfo = reader.bool_or("userinfo", false);
    let introspection_cache_ttl = seconds(&mut reader, "introspection_cache_ttl", 30);

    let storage_kind = reader.choice_or(
        "session_storage",
        &[("memory", false), ("redis", true)],
        false,
    );
    let memory_map = reader.mapping("memory");
    let memory_max_bytes = {
        let mut memory_reader = Reader::new(memory_map, "memory", reader.errors);
        let max_bytes = memory_max_bytes(&mut memory_reader);
        memory_reader.finish();
        max_bytes
    };
    let redis_map = reader.mapping("redis");
    let session_storage = {
        let mut redis_reader = Reader::new(redis_map, "redis", reader.errors);
        let mode = redis_mode(&mut redis_reader, storage_kind);
        let tls = redis_tls(&mut redis_reader, mode.as_ref());
        let key_prefix = redis_reader.string_or("key_prefix", "oidc-authz:");
        let pool_size = redis_reader.u64_or("pool_size", 16).max(1) as usize;
        let command_timeout =
            Duration::from_millis(redis_reader.u64_or("command_timeout_ms", 1000));
        redis_reader.finish();
        match (storage_kind, mode) {
            (true, Some(mode)) => SessionStorage::Redis(RedisConfig {
                mode,
                tls: Box::new(tls),
                key_prefix,
                pool_size,
                command_timeout,
            }),
            _ => SessionStorage::Memory,
        }
    };
    let session_cache_size = session_cache_size(&mut reader, &session_storage);

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
    let session_cookie_name = cookie_name(&mut reader, "session_cookie_name", "session");
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
    let max_pending_logins = max_pending_logins(&mut reader);
    let session_idling_timeout = seconds(&mut reader, "session_idling_timeout", 900);
    let session_absolute_timeout = seconds(&mut reader, "session_absolute_timeout", 86_400);
    let refresh_margin = seconds(&mut reader, "refresh_margin", 30);
    if login_timeout.is_zero() {
        reader.error("login_timeout", "must be at least 1 second");
    }
    if session_absolute_timeout.is_zero() {
        reader.error("session_absolute_timeout", "must be at least 1 second");
    }

    let policies = super::policies::policies(&mut reader);
    let trust_forwarded_headers = reader.bool_or("trust_forwarded_headers", false);
    let allowed_hosts = allowed_hosts(&mut reader);

    let logout_path = path_key(&mut reader, "logout_path", Some("/logout"));
    let logout_redirect_uri = logout_redirect_uri(&mut reader);
    let logout_methods: Vec<String> = reader
        .string_list("logout_methods")
        .unwrap_or_else(|| vec!["GET".into(), "POST".into()])
        .into_iter()
        .map(|method| method.to_ascii_uppercase())
        .collect();
    if logout_methods.is_empty()
        || logout_methods
            .iter()
            .any(|method| !matches!(method.as_str(), "GET" | "POST" | "DELETE"))
    {
        reader.error(
            "logout_methods",
            "must list one or more of GET, POST, DELETE",
        );
    }
    let logout_id_token_hint = reader.bool_or("logout_id_token_hint", true);
    let backchannel_logout_path = path_key(&mut reader, "backchannel_logout_path", None);
    let frontchannel_logout_path = path_key(&mut reader, "frontchannel_logout_path", None);
    let frontchannel_logout_sid_claim = reader.choice_or(
        "frontchannel_logout_sid_claim",
        &[
            ("sid", FrontchannelSidClaim::Sid),
            ("sub", FrontchannelSidClaim::Sub),
        ],
        FrontchannelSidClaim::Sid,
    );
    let mut special_paths = HashSet::new();
    for (key, path) in [
        ("redirect_uri", Some(client.redirect_uri.path())),
        ("logout_path", logout_path.as_deref()),
        (
            "backchannel_logout_path",
            backchannel_logout_path.as_deref(),
        ),
        (
            "frontchannel_logout_path",
            frontchannel_logout_path.as_deref(),
        ),
    ] {
        if let Some(path) = path
            && !special_paths.insert(path.to_owned())
        {
            reader.error(key, format!("`{path}` is already used by another endpoint"));
        }
    }

    let providers_map = reader.mapping("providers");
    let providers = providers(
        providers_map,
        &DefaultProvider {
            client: &client,
            session_cookie_name: &session_cookie_name,
            logout_path: logout_path.as_deref(),
            logout_redirect_uri: logout_redirect_uri.as_deref(),
            backchannel_logout_path: backchannel_logout_path.as_deref(),
        },
        reader.errors,
    );
    let shutdown = super::shutdown::shutdown_periods(&mut reader);
    let otel = super::otel::otel_settings(&mut reader);
    super::policies::check_providers(&mut reader, &policies, &providers);

    reader.finish();

    let IdpClient {
        issuer,
        client_id,
        client_secret,
        client_auth,
        scopes,
        redirect_uri,
        response_mode,
        pkce,
        authorization_params,
        id_token_signing_algs,
        idp_ca_pem,
    } = client;
    Config {
        listen,
        admin_listen,
        log_format,
        log_level,
        issuer,
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
        userinfo,
        introspection_cache_ttl,
        idp_ca_pem,
        session_storage,
        memory_max_bytes,
        session_cache_size,
        max_pending_logins,
        session_secrets,
        session_cookie_name,
        session_cookie_secure,
        session_cookie_domain,
        login_timeout,
        session_idling_timeout,
        session_absolute_timeout,
        refresh_margin,
        policies,
        trust_forwarded_headers,
        allowed_hosts,
        logout_path,
        logout_methods,
        logout_redirect_uri,
        logout_id_token_hint,
        backchannel_logout_path,
        providers,
        shutdown,
        frontchannel_logout_path,
        frontchannel_logout_sid_claim,
        otel,
    }
}
