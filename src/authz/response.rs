//! `Decision` (or a refusing `Error`) → `CheckResponse`. Headers toward the upstream overwrite:
//! both the legacy `append = false` and `OVERWRITE_IF_EXISTS_OR_ADD` are set, because Envoy 1.37
//! changed the default and envoy-types leaves `append` unset. Each `Set-Cookie` on a denied response
//! is its own `HeaderValueOption` with `append` unset, so none replaces another.

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::pb::google::rpc;

use crate::flow::{Decision, Forbidden, UpstreamHeader, html_escape};

/// gRPC status codes Envoy reads in `CheckResponse.status`.
const GRPC_OK: i32 = 0;
const GRPC_UNAUTHENTICATED: i32 = 16;
const GRPC_PERMISSION_DENIED: i32 = 7;

// `append` is deprecated in Envoy's API, but Envoy 1.40 still reads it and treats an unset value
// inconsistently (REAL-STACK.md): we set it on purpose.
#[allow(deprecated)]
fn overwrite(name: String, value: String) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name,
            value,
            ..Default::default()
        }),
        append: Some(BoolValue { value: false }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

fn added(name: impl Into<String>, value: impl Into<String>) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.into(),
            value: value.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn status(code: i32) -> Option<rpc::Status> {
    Some(rpc::Status {
        code,
        ..Default::default()
    })
}

/// A small page for a person; empty for an empty message.
pub fn page(status: u16, message: &str) -> String {
    if message.is_empty() {
        return String::new();
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{status}</title></head>\
         <body><h1>{status}</h1><p>{}</p></body></html>\n",
        html_escape(message)
    )
}

/// The `_` spelling of a header name that has a `-` (`x-user-email` → `x_user_email`).
/// CGI/WSGI/Rack/PHP upstreams read both as `HTTP_X_USER_EMAIL`, so a client's `x_user_email`
/// would shadow (or be read instead of) the header we set. Envoy should reject such requests
/// outright (`headers_with_underscores_action: REJECT_REQUEST`, see `envoy/envoy.yaml`); removing
/// the variant also covers a proxy left at Envoy's default, `ALLOW`. Mixed spellings
/// (`x_user-email`) are left to that Envoy setting: there are 2^n of them.
fn underscore_variant(name: &str) -> Option<String> {
    name.contains('-').then(|| name.replace('-', "_"))
}

/// What the upstream must not get: the headers we have no value for, and the `_` variant of
/// every header we set or remove.
fn headers_to_remove(set: &[UpstreamHeader], removed: Vec<String>) -> Vec<String> {
    let variants: Vec<String> = set
        .iter()
        .map(|header| header.name.as_str())
        .chain(removed.iter().map(String::as_str))
        .filter_map(underscore_variant)
        .collect();
    let mut all = removed;
    all.extend(variants);
    all
}

/// The page that asks a person to confirm a logout that came from another site. Inline, no
/// script, no external resources; the CSP allows nothing to load and no site to frame it (so the
/// button cannot be clickjacked). No `form-action`: browsers apply it to the redirect that
/// follows the POST, which goes to the IdP.
pub fn logout_confirmation_page(action: &str, method: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Log out?</title></head>\
         <body><h1>Log out?</h1><p>Another site asked to log you out of this one.</p>\
         <form method=\"{method}\" action=\"{}\"><button type=\"submit\">Log out</button></form>\
         </body></html>\n",
        html_escape(action)
    )
}

/// The 403 page for a person the policy refuses: who they are signed in as, and a way to sign in
/// as someone else. Never a redirect to log in: the same account would be refused again.
pub fn forbidden_page(signed_in_as: &str, logout_path: Option<&str>) -> String {
    let logout = logout_path
        .map(|path| {
            format!(
                " <a href=\"{}\">Sign out</a> to use another account.",
                html_escape(path)
            )
        })
        .unwrap_or_default();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>403</title></head>\
         <body><h1>403</h1><p>You are signed in as {}, and this account is not allowed here.{logout}</p>\
         </body></html>\n",
        html_escape(signed_in_as)
    )
}

/// The 403 body for a script or API client (RFC 6750 error names).
const FORBIDDEN_JSON: &str = "{\"error\":\"insufficient_scope\",\"error_description\":\"the credentials do not meet this route's policy\"}\n";
const INSUFFICIENT_SCOPE_CHALLENGE: &str =
    "Bearer realm=\"oidc-authz\", error=\"insufficient_scope\"";

const CONFIRMATION_PAGE_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

pub fn check_response(decision: Decision) -> CheckResponse {
    match decision {
        Decision::Allow {
            set_upstream_headers,
            remove_upstream_headers,
            set_cookies,
        } => allowed(set_upstream_headers, remove_upstream_headers, set_cookies),
        Decision::Redirect {
            status: http_status,
            location,
            set_cookies,
        } => redirect(http_status, &location, &set_cookies),
        Decision::ConfirmLogout { action, method } => confirm_logout(&action, method),
        Decision::Forbidden(forbidden) => forbidden_response(&forbidden),
        Decision::Deny {
            status: http_status,
            message,
            headers,
            set_cookies,
        } => deny(http_status, &message, &headers, &set_cookies),
    }
}

/// OK: the upstream headers set (overwriting) and removed, cookies for the browser.
fn allowed(
    set_upstream_headers: Vec<UpstreamHeader>,
    remove_upstream_headers: Vec<String>,
    set_cookies: Vec<String>,
) -> CheckResponse {
    let headers_to_remove = headers_to_remove(&set_upstream_headers, remove_upstream_headers);
    CheckResponse {
        status: status(GRPC_OK),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers: set_upstream_headers
                .into_iter()
                .map(|h| overwrite(h.name, h.value.into_exposed()))
                .collect(),
            headers_to_remove,
            response_headers_to_add: set_cookies
                .into_iter()
                .map(|c| added("set-cookie", c))
                .collect(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A redirect (to the IdP, or back to the original URL), never cached.
fn redirect(http_status: u16, location: &str, set_cookies: &[String]) -> CheckResponse {
    let mut headers = vec![
        added("location", location),
        added("cache-control", "no-store"),
    ];
    headers.extend(set_cookies.iter().map(|c| added("set-cookie", c)));
    denied(GRPC_UNAUTHENTICATED, http_status, headers, String::new())
}

/// The page that asks before a cross-site logout; never framed.
fn confirm_logout(action: &str, method: &str) -> CheckResponse {
    let headers = vec![
        added("cache-control", "no-store"),
        added("content-type", "text/html; charset=utf-8"),
        added("content-security-policy", CONFIRMATION_PAGE_CSP),
        added("x-frame-options", "DENY"),
    ];
    let body = logout_confirmation_page(action, method);
    denied(GRPC_PERMISSION_DENIED, 200, headers, body)
}

/// 403: a page for a browser, RFC 6750 JSON and a challenge for a script.
fn forbidden_response(forbidden: &Forbidden) -> CheckResponse {
    let mut headers = vec![added("cache-control", "no-store")];
    let body = if forbidden.for_browser {
        headers.push(added("content-type", "text/html; charset=utf-8"));
        headers.push(added("content-security-policy", CONFIRMATION_PAGE_CSP));
        forbidden_page(&forbidden.signed_in_as, forbidden.logout_path.as_deref())
    } else {
        headers.push(added("content-type", "application/json"));
        headers.push(added("www-authenticate", INSUFFICIENT_SCOPE_CHALLENGE));
        FORBIDDEN_JSON.to_owned()
    };
    headers.extend(forbidden.set_cookies.iter().map(|c| added("set-cookie", c)));
    denied(GRPC_PERMISSION_DENIED, 403, headers, body)
}

/// Any other denial: the flow's status, page, headers and cookies.
fn deny(
    http_status: u16,
    message: &str,
    headers: &[(String, String)],
    set_cookies: &[String],
) -> CheckResponse {
    // `no-store` unless the flow chose its own `Cache-Control`: one header, not two.
    let chooses_cache_control = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("cache-control"));
    let mut all = Vec::with_capacity(headers.len() + 2);
    if !chooses_cache_control {
        all.push(added("cache-control", "no-store"));
    }
    let body = page(http_status, message);
    if !body.is_empty() {
        all.push(added("content-type", "text/html; charset=utf-8"));
    }
    all.extend(headers.iter().map(|(name, value)| added(name, value)));
    all.extend(set_cookies.iter().map(|c| added("set-cookie", c)));
    let grpc = if http_status == 401 {
        GRPC_UNAUTHENTICATED
    } else {
        GRPC_PERMISSION_DENIED
    };
    denied(grpc, http_status, all, body)
}

fn denied(
    grpc: i32,
    http_status: u16,
    headers: Vec<HeaderValueOption>,
    body: String,
) -> CheckResponse {
    CheckResponse {
        status: status(grpc),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(http_status),
            }),
            headers,
            body,
        })),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn allowed(set: &[&str], removed: &[&str]) -> OkHttpResponse {
        let decision = Decision::Allow {
            set_upstream_headers: set
                .iter()
                .map(|name| UpstreamHeader {
                    name: name.to_string(),
                    value: Secret::new("v"),
                })
                .collect(),
            remove_upstream_headers: removed.iter().map(|name| name.to_string()).collect(),
            set_cookies: Vec::new(),
        };
        match check_response(decision).http_response {
            Some(HttpResponse::OkResponse(ok)) => ok,
            other => panic!("expected an OK response, got {other:?}"),
        }
    }

    fn denied_parts(decision: Decision) -> (i32, Vec<(String, String)>, String) {
        match check_response(decision).http_response {
            Some(HttpResponse::DeniedResponse(denied)) => (
                denied.status.unwrap().code,
                denied
                    .headers
                    .iter()
                    .filter_map(|option| option.header.as_ref())
                    .map(|header| (header.key.clone(), header.value.clone()))
                    .collect(),
                denied.body,
            ),
            other => panic!("expected a denied response, got {other:?}"),
        }
    }

    #[test]
    fn forbidden_is_a_page_for_browsers_and_json_with_a_challenge_for_apis() {
        let forbidden = |for_browser, logout_path: Option<&str>| {
            Decision::Forbidden(crate::flow::Forbidden {
                signed_in_as: "<b>eve</b>@example.com".into(),
                logout_path: logout_path.map(str::to_owned),
                for_browser,
                set_cookies: Vec::new(),
            })
        };
        let (status, headers, body) = denied_parts(forbidden(true, Some("/logout")));
        assert_eq!(status, 403);
        assert!(
            body.contains("signed in as &lt;b&gt;eve&lt;/b&gt;@example.com")
                && body.contains("href=\"/logout\""),
            "{body}"
        );
        assert!(!headers.iter().any(|(name, _)| name == "www-authenticate"));
        let (_, _, body) = denied_parts(forbidden(true, None));
        assert!(!body.contains("href"), "{body}");

        let (status, headers, body) = denied_parts(forbidden(false, Some("/logout")));
        assert_eq!(status, 403);
        assert!(body.contains("\"error\":\"insufficient_scope\"") && !body.contains("eve"));
        assert!(headers.contains(&(
            "www-authenticate".into(),
            "Bearer realm=\"oidc-authz\", error=\"insufficient_scope\"".into()
        )));
    }

    #[test]
    fn underscore_variants_of_our_headers_never_reach_the_upstream() {
        let ok = allowed(
            &["authorization", "x-user-email"],
            &["cookie", "x-user-phone"],
        );
        assert_eq!(
            ok.headers_to_remove,
            ["cookie", "x-user-phone", "x_user_email", "x_user_phone"]
        );
        let set: Vec<&str> = ok
            .headers
            .iter()
            .filter_map(|option| option.header.as_ref())
            .map(|header| header.key.as_str())
            .collect();
        assert_eq!(set, ["authorization", "x-user-email"]);
    }
}
