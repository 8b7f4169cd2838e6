//! Configuration tests for Redis over TLS: `redis.ca_file`, `cert_file` and `key_file` are read
//! as PEM, for `rediss://` only, never with a Cluster; every mistake has its key path.

use super::redis_tests::{expect_exactly, redis_mode};
use super::tests::{MINIMAL, problems};

/// A CA certificate and a client key (PEM, not real ones) in a directory of `test`'s own; their
/// paths, and the directory to remove.
fn pem_files(test: &str) -> (String, String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("oidc-authz-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.crt");
    let key = dir.join("client.key");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nsecret-key\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    (ca.display().to_string(), key.display().to_string(), dir)
}

#[test]
fn redis_tls_files_are_read() {
    let (ca, key, dir) = pem_files("redis-tls-read");
    let redis = redis_mode(
        &format!(
            "redis:\n  url: rediss://127.0.0.1:6380\n  ca_file: {ca}\n  cert_file: {ca}\n  key_file: {key}\n"
        ),
        &[],
    );
    assert!(redis.tls.ca_pem.is_some_and(|pem| pem.contains("MIIB")));
    assert!(redis.tls.client_cert_pem.is_some());
    assert!(
        redis
            .tls
            .client_key_pem
            .is_some_and(|pem| pem.expose().contains("secret-key"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_tls_mistakes_have_their_key_path() {
    let (ca, key, dir) = pem_files("redis-tls-mistakes");
    let problems_of = |redis_yaml: String| {
        problems(&format!(
            "{MINIMAL}session_storage: redis\nredis:\n{redis_yaml}"
        ))
    };
    expect_exactly(
        &problems_of(format!("  url: redis://127.0.0.1:6379\n  ca_file: {ca}\n")),
        &["redis.ca_file: is only used with a rediss:// redis.url"],
    );
    expect_exactly(
        &problems_of(format!(
            "  cluster_urls: [rediss://127.0.0.1:7000]\n  ca_file: {ca}\n"
        )),
        &["redis.ca_file: is not supported with redis.cluster_urls"],
    );
    expect_exactly(
        &problems_of(format!(
            "  url: rediss://127.0.0.1:6380\n  cert_file: {ca}\n"
        )),
        &["redis.cert_file: needs redis.key_file"],
    );
    expect_exactly(
        &problems_of(format!(
            "  url: rediss://127.0.0.1:6380\n  ca_file: {key}\n"
        )),
        &[&format!(
            "redis.ca_file: {key} holds no PEM `BEGIN CERTIFICATE`"
        )],
    );
    expect_exactly(
        &problems_of("  url: rediss://127.0.0.1:6380\n  ca_file: /nonexistent/ca.crt\n".into()),
        &["redis.ca_file: cannot read /nonexistent/ca.crt"],
    );
    let found = problems_of(format!(
        "  sentinel:\n    master_name: m\n    urls: [rediss://127.0.0.1:26379, redis://127.0.0.1:26380]\n  ca_file: {ca}\n"
    ));
    expect_exactly(
        &found,
        &[
            "redis.sentinel.urls[1]: mixes redis:// and rediss://",
            "redis.ca_file: is only used with rediss:// redis.sentinel.urls",
        ],
    );
    expect_exactly(
        &problems_of(
            "  sentinel:\n    master_name: m\n    urls: ['rediss://:a@127.0.0.1:26379', 'rediss://:b@127.0.0.1:26380']\n".into(),
        ),
        &["redis.sentinel.urls[1]: must carry the same user and password"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}
