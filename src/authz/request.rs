//! `CheckRequest` → `RequestView`. Envoy puts path *and query* in `http.path` and leaves `query`
//! empty; the body arrives in `raw_body` or `body` depending on `pack_as_bytes` and where it was
//! set. `X-Forwarded-Proto`/`-Host` count only when the operator trusts them, and then only their
//! rightmost value: the one the nearest (trusted) proxy appended; values to its left came from
//! the client or from proxies we know nothing about.

use std::collections::HashMap;

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;

use crate::flow::RequestView;

/// The `context_extensions` key that names the route's policy.
pub const POLICY_EXTENSION: &str = "policy";

pub fn request_view(check: CheckRequest, trust_forwarded_headers: bool) -> RequestView {
    let mut attributes = check.attributes.unwrap_or_default();
    let policy_name = attributes.context_extensions.remove(POLICY_EXTENSION);
    let http = attributes
        .request
        .and_then(|request| request.http)
        .unwrap_or_default();
    let headers = lower_case_names(http.headers);
    let mut path = http.path;
    let mut query = match path.find('?') {
        Some(mark) => {
            let query = path[mark + 1..].to_owned();
            path.truncate(mark);
            query
        }
        None => String::new(),
    };
    if query.is_empty() && !http.query.is_empty() {
        query = http.query;
    }
    let forwarded = |name: &str| {
        trust_forwarded_headers
            .then(|| headers.get(name))
            .flatten()
            .and_then(|value| value.rsplit(',').next())
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    let scheme = forwarded("x-forwarded-proto")
        .or_else(|| (!http.scheme.is_empty()).then_some(http.scheme))
        .unwrap_or_else(|| "http".to_owned());
    let host = forwarded("x-forwarded-host")
        .or_else(|| (!http.host.is_empty()).then_some(http.host))
        .or_else(|| headers.get(":authority").cloned())
        .or_else(|| headers.get("host").cloned())
        .unwrap_or_default();
    let body = if !http.raw_body.is_empty() {
        http.raw_body
    } else {
        http.body.into_bytes()
    };
    RequestView {
        method: http.method,
        scheme,
        host,
        path,
        query,
        headers,
        body,
        policy_name,
    }
}

/// The headers with lower-case names. Envoy sends them so (HTTP/2 and its HTTP/1 codec lower-case
/// every name): the map is then kept as it arrived, not rebuilt.
fn lower_case_names(headers: HashMap<String, String>) -> HashMap<String, String> {
    let all_lower_case = headers
        .keys()
        .all(|name| !name.bytes().any(|byte| byte.is_ascii_uppercase()));
    if all_lower_case {
        return headers;
    }
    headers
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};

    fn check(http: HttpRequest) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(http),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn path_query_host_and_body_are_taken_apart() {
        let view = request_view(
            check(HttpRequest {
                method: "POST".into(),
                path: "/callback?x=1".into(),
                host: "app.example".into(),
                scheme: "http".into(),
                body: "code=c&state=s".into(),
                headers: [("X-Forwarded-Proto".to_string(), "https".to_string())].into(),
                ..Default::default()
            }),
            false,
        );
        assert_eq!(
            (view.path.as_str(), view.query.as_str()),
            ("/callback", "x=1")
        );
        assert_eq!(view.origin(), "http://app.example");
        assert_eq!(view.body, b"code=c&state=s");
        assert_eq!(view.header("x-forwarded-proto"), Some("https"));
    }

    #[test]
    fn forwarded_headers_count_only_when_trusted_and_raw_body_wins() {
        let http = HttpRequest {
            method: "GET".into(),
            path: "/".into(),
            host: "internal:8000".into(),
            scheme: "http".into(),
            body: "ignored".into(),
            raw_body: b"raw".to_vec(),
            headers: [
                ("x-forwarded-proto".to_string(), "http, https".to_string()),
                (
                    "x-forwarded-host".to_string(),
                    "evil.example, app.example".to_string(),
                ),
            ]
            .into(),
            ..Default::default()
        };
        let view = request_view(check(http), true);
        assert_eq!(view.origin(), "https://app.example");
        assert_eq!(view.body, b"raw");
        assert_eq!(request_view(check(HttpRequest::default()), true).method, "");
    }

    #[test]
    fn the_route_policy_comes_from_context_extensions() {
        let mut request = check(HttpRequest::default());
        assert_eq!(request_view(request.clone(), false).policy_name, None);
        let attributes = request.attributes.as_mut().unwrap();
        attributes
            .context_extensions
            .insert("other".into(), "x".into());
        assert_eq!(request_view(request.clone(), false).policy_name, None);
        let attributes = request.attributes.as_mut().unwrap();
        attributes
            .context_extensions
            .insert(POLICY_EXTENSION.into(), "api".into());
        assert_eq!(
            request_view(request, false).policy_name.as_deref(),
            Some("api")
        );
        assert_eq!(
            request_view(CheckRequest::default(), false).policy_name,
            None
        );
    }
}
