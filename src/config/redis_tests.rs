//! Configuration tests for the Redis topologies: single, Cluster, Sentinel (with master
//! credentials), from YAML and from the environment, and every mistake with its key path.

use super::tests::{MINIMAL, env, problems};
use super::*;

/// The Redis settings `yaml` (after `session_storage: redis`) and `env_pairs` give.
pub(super) fn redis_mode(yaml: &str, env_pairs: &[(&str, &str)]) -> RedisConfig {
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
            username: None,
            password: None,
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
            username: None,
            password: None,
        } => {
            assert_eq!(urls.len(), 2);
            assert_eq!((master_name.as_str(), *db), ("mymaster", 3));
        }
        other => panic!("expected sentinel, got {other:?}"),
    }
}

/// Every `expected` prefix matches a problem, and there are no others.
pub(super) fn expect_exactly(found: &[String], expected: &[&str]) {
    for needle in expected {
        assert!(
            found.iter().any(|p| p.starts_with(needle)),
            "missing `{needle}` in {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn redis_modes_are_exclusive() {
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
fn cluster_url_mistakes_have_their_key_path_and_hide_passwords() {
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
  cluster_urls: []
"
    ));
    expect_exactly(&found, &["redis.cluster_urls: must list at least one"]);
}

#[test]
fn sentinel_and_unknown_key_mistakes_have_their_key_path() {
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
}

#[test]
fn sentinel_master_credentials_inline_from_a_file_and_from_the_environment() {
    let redis = redis_mode(
        "redis:\n  sentinel:\n    urls: [redis://127.0.0.1:26379]\n    master_name: m\n    username: authz\n    password: ' m4ster-pw '\n",
        &[],
    );
    match &redis.mode {
        RedisMode::Sentinel {
            username, password, ..
        } => {
            assert_eq!(username.as_deref(), Some("authz"));
            assert_eq!(password.as_ref().map(Secret::expose), Some("m4ster-pw"));
        }
        other => panic!("expected sentinel, got {other:?}"),
    }
    assert!(
        !format!("{redis:?}").contains("m4ster-pw"),
        "the password is redacted"
    );

    let dir = std::env::temp_dir().join(format!("oidc-authz-sentinel-pw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("redis_password");
    std::fs::write(&file, "from-file\n").unwrap();
    let redis = redis_mode(
        &format!(
            "redis:\n  sentinel:\n    urls: [redis://127.0.0.1:26379]\n    master_name: m\n    password_file: {}\n",
            file.display()
        ),
        &[],
    );
    match &redis.mode {
        RedisMode::Sentinel {
            username: None,
            password: Some(password),
            ..
        } => assert_eq!(password.expose(), "from-file"),
        other => panic!("expected sentinel with a password, got {other:?}"),
    }
    std::fs::remove_dir_all(dir).unwrap();

    let redis = redis_mode(
        "",
        &[
            (
                "OIDC_AUTHZ_REDIS__SENTINEL__URLS",
                "redis://127.0.0.1:26379",
            ),
            ("OIDC_AUTHZ_REDIS__SENTINEL__MASTER_NAME", "m"),
            ("OIDC_AUTHZ_REDIS__SENTINEL__PASSWORD", "from-env"),
        ],
    );
    match &redis.mode {
        RedisMode::Sentinel {
            password: Some(password),
            ..
        } => assert_eq!(password.expose(), "from-env"),
        other => panic!("expected sentinel with a password, got {other:?}"),
    }
}

#[test]
fn sentinel_master_credential_mistakes_have_their_key_path() {
    let sentinel = |extra: &str| {
        problems(&format!(
            "{MINIMAL}session_storage: redis\nredis:\n  sentinel:\n    urls: [redis://127.0.0.1:26379]\n    master_name: m\n{extra}"
        ))
    };
    let found = sentinel("    password: hunter2\n    password_file: /nonexistent/pw\n");
    expect_exactly(
        &found,
        &["redis.sentinel.password: set either password or password_file, not both"],
    );
    assert!(!found.iter().any(|p| p.contains("hunter2")), "{found:#?}");
    // Given both, the username's password is there: only the conflict is reported.
    let found =
        sentinel("    username: u\n    password: hunter2\n    password_file: /nonexistent/pw\n");
    expect_exactly(
        &found,
        &["redis.sentinel.password: set either password or password_file, not both"],
    );
    expect_exactly(
        &sentinel("    password_file: /nonexistent/pw\n"),
        &["redis.sentinel.password_file: cannot read /nonexistent/pw"],
    );
    expect_exactly(
        &sentinel("    username: authz\n"),
        &["redis.sentinel.username: needs redis.sentinel.password"],
    );
    expect_exactly(
        &sentinel("    password: '  '\n"),
        &["redis.sentinel.password: is empty"],
    );
    expect_exactly(
        &sentinel("    pasword: x\n"),
        &["redis.sentinel.pasword: unknown key (did you mean `password`?)"],
    );
}

#[test]
fn the_session_cache_is_for_one_redis_server_and_refused_elsewhere() {
    let load = |yaml: &str| load_from_str(&format!("{MINIMAL}{yaml}"), "test.yaml", env(&[]));
    let size = |yaml: &str| load(yaml).unwrap().0.session_cache_size;
    let single = "session_storage: redis\nredis: { url: 'redis://127.0.0.1:6379' }\n";
    assert_eq!(size(single), 10_000);
    assert_eq!(size(&format!("{single}session_cache_size: 500\n")), 500);
    assert_eq!(size(&format!("{single}session_cache_size: 0\n")), 0);
    assert_eq!(size(""), 0, "the memory store caches nothing");
    let cluster = "session_storage: redis\nredis: { cluster_urls: ['redis://127.0.0.1:7000'] }\n";
    assert_eq!(
        size(cluster),
        0,
        "no feed for a Cluster yet: off by default"
    );
    assert_eq!(size(&format!("{cluster}session_cache_size: 0\n")), 0);
    for yaml in [
        format!("{cluster}session_cache_size: 100\n"),
        "session_cache_size: 100\n".to_owned(),
    ] {
        assert_eq!(
            problems(&format!("{MINIMAL}{yaml}")),
            [
                "session_cache_size: only applies to session_storage: redis with redis.url (one server); set 0 or remove it"
            ],
        );
    }
}
