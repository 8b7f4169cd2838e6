//! Readers for the kinds of value the configuration holds (addresses, durations, secrets with
//! their `_file` twin, paths, header specs, the Redis topology), each reporting its own problems
//! with the key path.

use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

use super::reader::Reader;
use super::*;

pub(super) fn parse_addr(reader: &mut Reader, key: &str, default: &str) -> SocketAddr {
    let text = reader.string_or(key, default);
    socket_addr(reader, key, &text, default)
}

fn socket_addr(reader: &mut Reader, key: &str, text: &str, default: &str) -> SocketAddr {
    text.parse().unwrap_or_else(|_| {
        reader.error(
            key,
            format!("`{text}` is not an address like 127.0.0.1:9191"),
        );
        default.parse().expect("default address parses")
    })
}

/// Longest Unix socket path the kernel takes (`sun_path` is 108 bytes with its final NUL).
const MAX_UNIX_SOCKET_PATH: usize = 107;

/// `host:port`, or `unix:/absolute/path` for a Unix socket.
pub(super) fn listen_address(reader: &mut Reader, key: &str, default: &str) -> ListenAddress {
    let text = reader.string_or(key, default);
    let Some(path) = text.strip_prefix("unix:") else {
        return ListenAddress::Tcp(socket_addr(reader, key, &text, default));
    };
    if !path.starts_with('/') || path.ends_with('/') {
        reader.error(
            key,
            format!("`{text}` needs an absolute socket path, like unix:/run/oidc-authz/grpc.sock"),
        );
    } else if path.len() > MAX_UNIX_SOCKET_PATH {
        reader.error(
            key,
            format!(
                "the socket path is {} bytes; Unix sockets take at most {MAX_UNIX_SOCKET_PATH}",
                path.len()
            ),
        );
    }
    ListenAddress::Unix(path.into())
}

pub(super) fn seconds(reader: &mut Reader, key: &str, default: u64) -> Duration {
    Duration::from_secs(reader.u64_or(key, default))
}

/// `ext_authz_timeout`'s default: the ext_authz gRPC `timeout` of the shipped `envoy/*.yaml`.
const DEFAULT_EXT_AUTHZ_TIMEOUT_SECS: u64 = 10;

/// `http_timeout`: seconds for each request to the IdP. A Check may wait for two IdP requests in a
/// row (the token endpoint, then a JWKS refetch for an ID token signed by a new key), and both,
/// with the store round trips around them, must fit in Envoy's ext_authz timeout (`ext_authz_timeout`,
/// which states Envoy's setting), or Envoy gives up on a Check that would have succeeded. So it is
/// at most `(ext_authz_timeout - 1) / 2`, which is also its default (4 s for Envoy's 10 s).
pub(super) fn http_timeout(reader: &mut Reader) -> Duration {
    let envoy = reader.u64_or("ext_authz_timeout", DEFAULT_EXT_AUTHZ_TIMEOUT_SECS);
    if envoy < 3 {
        reader.error(
            "ext_authz_timeout",
            "must be at least 3 (Envoy's ext_authz timeout must fit two IdP requests of at least 1 s)",
        );
    }
    let maximum = (envoy.saturating_sub(1) / 2).max(1);
    let key = "http_timeout";
    let seconds = reader.u64_or(key, maximum);
    if seconds == 0 {
        reader.error(key, "must be at least 1");
    } else if seconds > maximum {
        reader.error(
            key,
            format!(
                "{seconds} s is more than the maximum of {maximum} s: a Check may wait for two IdP \
                 requests in a row, and both must fit in Envoy's ext_authz timeout \
                 (ext_authz_timeout: {envoy} s, as in envoy/*.yaml; raise both together)"
            ),
        );
    }
    Duration::from_secs(seconds.clamp(1, maximum))
}

/// A secret given inline (`key`) or in a file (`key_file`), exactly one of them.
pub(super) fn secret_text(reader: &mut Reader, key: &str) -> Option<String> {
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
pub(super) fn redis_mode(reader: &mut Reader, required: bool) -> Option<RedisMode> {
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
            Some(urls) => {
                let urls = node_urls(&mut sentinel, "urls", urls, false);
                sentinels_agree(&mut sentinel, "urls", &urls);
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
        // The master's own login (`requirepass` or an ACL user), apart from the sentinels'.
        let password_given = ["password", "password_file"].map(|key| sentinel.value(key).is_some());
        let password = secret_text(&mut sentinel, "password").map(|text| Secret::new(text.trim()));
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
        sentinel.finish();
        RedisMode::Sentinel {
            urls,
            master_name,
            db,
            username,
            password,
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

/// The text of the PEM file named at `key`, which must contain `marker`. Never echoes contents.
pub(super) fn pem_file(reader: &mut Reader, key: &str, marker: &str) -> Option<String> {
    let path = reader.string(key)?;
    match std::fs::read_to_string(&path) {
        Ok(text) if text.contains(marker) => Some(text),
        Ok(_) => {
            reader.error(
                key,
                format!("{path} holds no PEM `{}`", marker.trim_matches('-')),
            );
            None
        }
        Err(error) => {
            reader.error(key, format!("cannot read {path}: {error}"));
            None
        }
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

pub(super) fn path_key(reader: &mut Reader, key: &str, default: Option<&str>) -> Option<String> {
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

pub(super) fn upstream_header(
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
    if name.contains('_') {
        reader.error(key, UNDERSCORE_PROBLEM);
        return None;
    }
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

/// Why a header name with `_` is refused: CGI, WSGI, Rack and PHP upstreams read `x_email` and
/// `x-email` as the same variable, so a client's `x_email` could shadow the one we set; our
/// names use `-` only (Envoy is configured to reject requests carrying `_` in header names).
pub(super) const UNDERSCORE_PROBLEM: &str = "contains `_`: upstreams that map headers to variables (CGI, WSGI, Rack, PHP) read `_` and `-` alike, so a client's copy could shadow ours; use `-`";

/// Letters, digits and `-` (no `_`: see `UNDERSCORE_PROBLEM`).
pub(super) fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Kong's pair of lists: `upstream_headers_claims[i]` goes upstream as `upstream_headers_names[i]`.
pub(super) fn claim_headers(
    claims: Vec<String>,
    names: Vec<String>,
    token_headers: [&Option<UpstreamHeader>; 2],
    at: &dyn Fn(&str) -> String,
    errors: &mut Vec<String>,
) -> Vec<(String, String)> {
    if claims.len() != names.len() {
        errors.push(format!(
            "{}: has {} names for {} upstream_headers_claims; give one header name per claim",
            at("upstream_headers_names"),
            names.len(),
            claims.len()
        ));
        return Vec::new();
    }
    let mut pairs = Vec::new();
    for (index, (claim, name)) in claims.into_iter().zip(names).enumerate() {
        let name = name.to_ascii_lowercase();
        let key = at(&format!("upstream_headers_names[{index}]"));
        let taken = token_headers
            .iter()
            .any(|header| header.as_ref().is_some_and(|h| h.name == name));
        if name.contains('_') {
            errors.push(format!("{key}: {UNDERSCORE_PROBLEM}"));
        } else if !is_header_name(&name) || matches!(name.as_str(), "cookie" | "host") || taken {
            errors.push(format!("{key}: `{name}` is not a header name we may set"));
        } else {
            pairs.push((claim, name));
        }
    }
    pairs
}
