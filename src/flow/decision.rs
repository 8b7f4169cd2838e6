//! `Decision`: what the flow answers, as plain data. `authz` turns it into Envoy's `CheckResponse`.

/// A header to set on the request toward the upstream, replacing any copy the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamHeader {
    pub name: String,
    /// May be a token: never logged.
    pub value: crate::secret::Secret,
}

/// `Debug` prints cookie names, not values: a `Set-Cookie` carries a session.
#[derive(Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let the request through to the upstream.
    Allow {
        set_upstream_headers: Vec<UpstreamHeader>,
        /// Headers removed from the upstream request (ones we inject but have no value for now).
        remove_upstream_headers: Vec<String>,
        /// `Set-Cookie` values added to the response the client gets.
        set_cookies: Vec<String>,
    },
    /// Send the client elsewhere (302, or 303 after a POST).
    Redirect {
        status: u16,
        location: String,
        set_cookies: Vec<String>,
    },
    /// Ask the person to confirm a logout that did not come from our own pages (a cross-site link
    /// or form): a page whose button sends the logout to `action` with `method`, same-origin.
    ConfirmLogout {
        action: String,
        /// `post`, or `get` when `logout_methods` has no POST.
        method: &'static str,
    },
    /// 403 for someone authenticated whom the policy's rules refuse.
    Forbidden(Forbidden),
    /// Answer the client ourselves with this status and a short page.
    Deny {
        status: u16,
        message: String,
        headers: Vec<(String, String)>,
        set_cookies: Vec<String>,
    },
}

/// Who was refused, and how to tell them.
#[derive(Clone, PartialEq, Eq)]
pub struct Forbidden {
    /// The identity's name for the page (`email`, `preferred_username`, ...), unescaped.
    pub signed_in_as: String,
    /// Offered as a way to sign in as someone else.
    pub logout_path: Option<String>,
    /// A page for a person's browser; otherwise JSON and an `insufficient_scope` challenge.
    pub for_browser: bool,
    pub set_cookies: Vec<String>,
}

fn cookie_names(set_cookies: &[String]) -> Vec<&str> {
    set_cookies
        .iter()
        .map(|cookie| cookie.split('=').next().unwrap_or(""))
        .collect()
}

impl std::fmt::Debug for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Allow {
                set_upstream_headers,
                remove_upstream_headers,
                set_cookies,
            } => f
                .debug_struct("Allow")
                .field(
                    "set_upstream_headers",
                    &set_upstream_headers
                        .iter()
                        .map(|h| &h.name)
                        .collect::<Vec<_>>(),
                )
                .field("remove_upstream_headers", remove_upstream_headers)
                .field("set_cookies", &cookie_names(set_cookies))
                .finish(),
            Decision::Redirect {
                status,
                location,
                set_cookies,
            } => f
                .debug_struct("Redirect")
                .field("status", status)
                .field("location", location)
                .field("set_cookies", &cookie_names(set_cookies))
                .finish(),
            Decision::ConfirmLogout { action, method } => f
                .debug_struct("ConfirmLogout")
                .field("action", action)
                .field("method", method)
                .finish(),
            Decision::Forbidden(forbidden) => f
                .debug_struct("Forbidden")
                .field("for_browser", &forbidden.for_browser)
                .field("set_cookies", &cookie_names(&forbidden.set_cookies))
                .finish(),
            Decision::Deny {
                status,
                message,
                headers,
                set_cookies,
            } => f
                .debug_struct("Deny")
                .field("status", status)
                .field("message", message)
                .field("headers", headers)
                .field("set_cookies", &cookie_names(set_cookies))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_cookie_names_not_values() {
        let decision = Decision::Redirect {
            status: 302,
            location: "/".into(),
            set_cookies: vec!["session=v1.abc.def; Path=/".into()],
        };
        let printed = format!("{decision:?}");
        assert!(
            printed.contains("\"session\"") && !printed.contains("v1.abc"),
            "{printed}"
        );
    }
}
