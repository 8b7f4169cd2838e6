//! The `redis:` mapping's topology and TLS keys: exactly one of `url`, `cluster_urls` and
//! `sentinel` (with the sentinels' and the master's logins), and the PEM files for `rediss://`.
//! URLs are never echoed in a problem: they may hold passwords.

use url::Url;

use super::fields::{pem_file, secret_text};
use super::reader::Reader;
use super::*;

/// `redis.url`, `redis.cluster_urls` or `redis.sentinel`: exactly one when `required` (session
/// storage is Redis); each is checked whenever given. URLs are never echoed: they may hold passwords.
pub(super) fn redis_mode(reader: &mut Reader, required: bool) -> Option<RedisMode> {
    // Given at all, even if malformed (that has its own error): counts towards "exactly one".
    let present = TOPOLOGY_KEYS.map(|key| reader.value(key).is_some());
    let url = single_url(reader);
    let cluster_urls = reader
        .string_list("cluster_urls")
        .map(|urls| node_urls(reader, "cluster_urls", urls, true));
    let sentinel = reader.mapping("sentinel").map(|map| {
        let mut sentinel_reader = Reader::new(Some(map), &reader.path("sentinel"), reader.errors);
        let sentinel = sentinel(&mut sentinel_reader);
        sentinel_reader.finish();
        sentinel
    });
    if !exactly_one_topology(reader, present, required) {
        return None;
    }
    url.map(|url| RedisMode::Single {
        url: Secret::new(url),
    })
    .or(cluster_urls.map(|urls| RedisMode::Cluster { urls }))
    .or(sentinel)
}

/// The keys that each name a Redis topology.
const TOPOLOGY_KEYS: [&str; 3] = ["url", "cluster_urls", "sentinel"];

/// `redis.url`: one server, over TCP, TLS or a Unix socket.
fn single_url(reader: &mut Reader) -> Option<String> {
    let url = reader.string("url");
    if let Some(url) = &url
        && !(url.starts_with("redis://")
            || url.starts_with("rediss://")
            || url.starts_with("redis+unix://")
            || url.starts_with("unix://"))
    {
        reader.error("url", "must start with redis://, rediss:// or unix://");
    }
    url
}

/// False when more than one topology is given (each extra one is reported); a missing one is
/// reported when `required`.
fn exactly_one_topology(reader: &mut Reader, present: [bool; 3], required: bool) -> bool {
    let given: Vec<&str> = TOPOLOGY_KEYS
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
        return false;
    }
    if required && given.is_empty() {
        reader.error(
            "url",
            "required when session_storage is redis (or redis.cluster_urls, or redis.sentinel)",
        );
    }
    true
}

/// `redis.sentinel`: the sentinels, the master's name and database, and the master's login.
fn sentinel(sentinel: &mut Reader) -> RedisMode {
    let urls = match sentinel.string_list("urls") {
        Some(urls) => {
            let urls = node_urls(sentinel, "urls", urls, false);
            sentinels_agree(sentinel, "urls", &urls);
            urls
        }
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
    let (username, password) = master_login(sentinel);
    RedisMode::Sentinel {
        urls,
        master_name,
        db,
        username,
        password,
    }
}

/// The master's own login (`requirepass` or an ACL user), apart from the sentinels'.
fn master_login(sentinel: &mut Reader) -> (Option<String>, Option<Secret>) {
    let password_given = ["password", "password_file"].map(|key| sentinel.value(key).is_some());
    let password = secret_text(sentinel, "password").map(|text| Secret::new(text.trim()));
    if password.as_ref().is_some_and(Secret::is_empty) {
        sentinel.error("password", "is empty");
    }
    let username = sentinel.string("username");
    if username.as_deref() == Some("") {
        sentinel.error("username", "is empty");
    } else if username.is_some() && password_given == [false, false] {
        sentinel.error(
            "username",
            "needs redis.sentinel.password (or password_file): Redis logs a user in with both",
        );
    }
    (username, password)
}

/// `redis.ca_file`, `redis.cert_file`, `redis.key_file`: PEM files for `rediss://` (one server, or
/// the sentinels and their master). A Cluster's TLS trusts the system's CAs only.
pub(super) fn redis_tls(reader: &mut Reader, mode: Option<&RedisMode>) -> RedisTlsFiles {
    let ca_pem = pem_file(reader, "ca_file", "-----BEGIN CERTIFICATE-----");
    let client_cert_pem = pem_file(reader, "cert_file", "-----BEGIN CERTIFICATE-----");
    let client_key_pem = pem_file(reader, "key_file", "PRIVATE KEY-----").map(Secret::new);
    match (&client_cert_pem, &client_key_pem) {
        (Some(_), None) if reader.value("key_file").is_none() => reader.error(
            "cert_file",
            "needs redis.key_file (the certificate's private key)",
        ),
        (None, Some(_)) if reader.value("cert_file").is_none() => {
            reader.error("key_file", "needs redis.cert_file (the client certificate)")
        }
        _ => {}
    }
    let given: Vec<&str> = ["ca_file", "cert_file", "key_file"]
        .into_iter()
        .filter(|key| reader.value(key).is_some())
        .collect();
    if let (Some(first), Some(mode)) = (given.first(), mode) {
        let problem = match mode {
            RedisMode::Cluster { .. } => Some(
                "is not supported with redis.cluster_urls (a Cluster over rediss:// trusts the system's CAs)",
            ),
            RedisMode::Single { url } if !url.expose().starts_with("rediss://") => {
                Some("is only used with a rediss:// redis.url")
            }
            RedisMode::Sentinel { urls, .. }
                if !urls.iter().all(|url| url.expose().starts_with("rediss://")) =>
            {
                Some("is only used with rediss:// redis.sentinel.urls")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            reader.error(first, problem);
        }
    }
    RedisTlsFiles {
        ca_pem,
        client_cert_pem,
        client_key_pem,
    }
}

/// The sentinels over TLS share one scheme and one login (the redis crate's TLS Sentinel client
/// takes one set of sentinel credentials).
fn sentinels_agree(reader: &mut Reader, key: &str, urls: &[Secret]) {
    let parsed: Vec<Url> = urls
        .iter()
        .filter_map(|url| Url::parse(url.expose()).ok())
        .collect();
    let Some(first) = parsed.first() else {
        return;
    };
    for (index, url) in parsed.iter().enumerate().skip(1) {
        if url.scheme() != first.scheme() {
            reader.error(
                &format!("{key}[{index}]"),
                "mixes redis:// and rediss://: the sentinels are all one or the other",
            );
        } else if url.scheme() == "rediss"
            && (url.username() != first.username() || url.password() != first.password())
        {
            reader.error(
                &format!("{key}[{index}]"),
                "must carry the same user and password as the first sentinel's URL (over TLS the sentinels share one login)",
            );
        }
    }
}

/// The nodes of a cluster or the sentinels: at least one `redis://host:port` (or `rediss://`). A
/// cluster has only database 0.
pub(super) fn node_urls(
    reader: &mut Reader,
    key: &str,
    urls: Vec<String>,
    cluster: bool,
) -> Vec<Secret> {
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
