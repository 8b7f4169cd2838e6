//! Readers for the kinds of value the configuration holds (addresses, durations, secrets with
//! their `_file` twin, PEM files, paths, header specs), each reporting its own problems with the
//! key path. The Redis topology's keys are `redis_topology.rs`'s.

use std::net::SocketAddr;
use std::time::Duration;

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
