//! `Decision`: what the flow answers, as plain data. `authz` turns it into Envoy's `CheckResponse`.

/// A header to set on the request toward the upstream, replacing any copy the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamHeader {
    pub name: String,
    /// May be a token: never logged.
    pub value: crate::secret::Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Answer the client ourselves with this status and a short page.
    Deny {
        status: u16,
        message: String,
        headers: Vec<(String, String)>,
        set_cookies: Vec<String>,
    },
}
