//! Configuration tests: defaults, every problem reported with its key path, environment
//! overrides, secrets from files, the Redis topologies.

use super::load::*;
use super::*;

pub(super) const MINIMAL: &str = "
issuer: https://idp.example/realms/demo
client_id: envoy
client_secret: s3cr3t
session_secret: 0123456789abcdef0123456789abcdef
";

pub(super) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn problems(yaml: &str) -> Vec<String> {
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
        config.policies.default_policy().upstream.access_token,
        Some(UpstreamHeader {
            name: "authorization".into(),
            scheme: Some("Bearer".into())
        })
    );
    assert_eq!(config.logout_path.as_deref(), Some("/logout"));
    assert!(config.logout_id_token_hint);
    assert!(!config.id_token_signing_algs.contains(&Algorithm::HS256));
    assert_eq!(format!("{:?}", config.client_secret), "[redacted]");
    assert!(config.allowed_hosts.is_empty());
    assert_eq!(config.max_pending_logins, 10);
    assert_eq!(config.memory_max_bytes, 128 * 1024 * 1024);
    assert_eq!(config.http_timeout, std::time::Duration::from_secs(4));
}

#[test]
fn hardening_limits_are_read_and_checked_with_their_key_path() {
    let yaml = format!(
        "{MINIMAL}allowed_hosts: [App.Example, 'app.example:8443']\nmax_pending_logins: 3\nmemory:\n  max_bytes: 1048576\n"
    );
    let (config, _) = load_from_str(&yaml, "test.yaml", env(&[])).unwrap();
    assert_eq!(config.allowed_hosts, ["app.example", "app.example:8443"]);
    assert_eq!(config.max_pending_logins, 3);
    assert_eq!(config.memory_max_bytes, 1_048_576);
    let problems = problems(&format!(
        "{MINIMAL}allowed_hosts: ['https://app.example/']\nmax_pending_logins: 0\nmemory:\n  max_bytes: 10\n  max_entries: 5\n"
    ));
    for key in [
        "allowed_hosts[0]",
        "max_pending_logins",
        "memory.max_bytes",
        "memory.max_entries",
    ] {
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(&format!("test.yaml: {key}"))
                    || p.contains(&format!("{key}:"))),
            "{key} in {problems:?}"
        );
    }
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
logout_methods: [put]
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
        "logout_methods: must list one or more of GET, POST, DELETE",
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
        config.policies.default_policy().upstream.claims,
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
fn header_names_with_underscores_are_refused_with_their_key_path() {
    let problems = problems(&format!(
        "{MINIMAL}upstream_access_token_header: x_access_token\n\
         upstream_id_token_header: 'x_id_token:bearer'\n\
         upstream_headers_claims: [email, sub]\n\
         upstream_headers_names: [x-email, X_User]\n"
    ));
    let expected = [
        "upstream_access_token_header: contains `_`",
        "upstream_id_token_header: contains `_`",
        "upstream_headers_names[1]: contains `_`",
    ];
    assert_eq!(problems.len(), expected.len(), "{problems:?}");
    for (problem, start) in problems.iter().zip(expected) {
        assert!(problem.starts_with(start), "{problem} / {start}");
    }
}

#[test]
fn form_post_without_secure_cookies_is_warned_about() {
    let yaml = format!("{MINIMAL}response_mode: form_post\nsession_cookie_secure: never\n");
    let (_, warnings) = load_from_str(&yaml, "t", env(&[])).unwrap();
    assert!(warnings[0].contains("SameSite=None"), "{warnings:?}");
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

#[test]
fn the_idp_ca_file_must_hold_a_certificate() {
    let dir = std::env::temp_dir().join(format!("oidc-authz-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not-a-cert.txt");
    std::fs::write(&not_pem, "hello").unwrap();
    assert_eq!(
        problems(&format!("{MINIMAL}ca_file: {}\n", not_pem.display())),
        [format!(
            "ca_file: {} holds no PEM `BEGIN CERTIFICATE`",
            not_pem.display()
        )]
    );
    assert_eq!(
        problems(&format!("{MINIMAL}ca_file: /nonexistent/ca.crt\n")),
        ["ca_file: cannot read /nonexistent/ca.crt: No such file or directory (os error 2)"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn http_timeout_fits_twice_in_envoys_ext_authz_timeout() {
    let with = |seconds: &str| format!("{MINIMAL}http_timeout: {seconds}\n");
    let (config, _) = load_from_str(&with("1"), "test.yaml", env(&[])).unwrap();
    assert_eq!(config.http_timeout, std::time::Duration::from_secs(1));
    assert_eq!(
        problems(&with("10")),
        [
            "http_timeout: 10 s is more than the maximum of 4 s: a Check may wait for two IdP \
          requests in a row, and both must fit in Envoy's ext_authz timeout \
          (ext_authz_timeout: 10 s, as in envoy/*.yaml; raise both together)"
        ]
    );
    assert_eq!(problems(&with("0")), ["http_timeout: must be at least 1"]);
    // Stating a longer Envoy timeout allows a longer http_timeout, and is the default's base.
    let longer = format!("{MINIMAL}ext_authz_timeout: 25\nhttp_timeout: 10\n");
    assert_eq!(
        load_from_str(&longer, "test.yaml", env(&[]))
            .unwrap()
            .0
            .http_timeout,
        std::time::Duration::from_secs(10)
    );
    let (config, _) = load_from_str(MINIMAL, "test.yaml", env(&[])).unwrap();
    assert_eq!(config.http_timeout, std::time::Duration::from_secs(4));
    assert_eq!(
        problems(&format!("{MINIMAL}ext_authz_timeout: 2\n")),
        [
            "ext_authz_timeout: must be at least 3 (Envoy's ext_authz timeout must fit two IdP requests of at least 1 s)"
        ]
    );
}

#[test]
fn frontchannel_logout_path_is_a_path_of_its_own() {
    let yaml = format!("{MINIMAL}frontchannel_logout_path: /frontchannel-logout\n");
    let (config, _) = load_from_str(&yaml, "test.yaml", env(&[])).unwrap();
    assert_eq!(
        config.frontchannel_logout_path.as_deref(),
        Some("/frontchannel-logout")
    );
    let found = problems(&format!(
        "{MINIMAL}backchannel_logout_path: /bye\nfrontchannel_logout_path: /bye\n"
    ));
    assert!(
        found.iter().any(|p| p
            .starts_with("frontchannel_logout_path: `/bye` is already used by another endpoint")),
        "{found:?}"
    );
    let found = problems(&format!(
        "{MINIMAL}frontchannel_logout_sid_claim: session\n"
    ));
    assert!(
        found
            .iter()
            .any(|p| p
                .starts_with("frontchannel_logout_sid_claim: `session` is not one of: sid, sub")),
        "{found:?}"
    );
    let found = problems(&format!("{MINIMAL}frontchannel_logout_path: bye?x=1\n"));
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("frontchannel_logout_path: `bye?x=1` must be a path")),
        "{found:?}"
    );
}

#[test]
fn logout_id_token_hint_can_be_set_from_the_environment() {
    let (config, warnings) = load_from_str(
        MINIMAL,
        "t",
        env(&[("OIDC_AUTHZ_LOGOUT_ID_TOKEN_HINT", "false")]),
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(!config.logout_id_token_hint);
}
