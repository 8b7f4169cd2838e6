//! `RequestView`: the parts of an HTTP request the flow looks at, independent of Envoy's protos.

use std::collections::HashMap;

/// `Debug` shows header *names* only and no body or query: cookies, codes and tokens travel there.
#[derive(Clone, Default)]
pub struct RequestView {
    pub method: String,
    /// `http` or `https`, as the client used it.
    pub scheme: String,
    /// The `Host` (authority) the client used, port included.
    pub host: String,
    /// The path, without query.
    pub path: String,
    /// The query string without `?`, possibly empty.
    pub query: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The policy Envoy named for this route (`context_extensions: { policy: NAME }`); `None`
    /// when the route names none (the `default` policy).
    pub policy_name: Option<String>,
}

impl std::fmt::Debug for RequestView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut header_names: Vec<&str> = self.headers.keys().map(String::as_str).collect();
        header_names.sort_unstable();
        f.debug_struct("RequestView")
            .field("method", &self.method)
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("path", &self.path)
            .field("query", &"[redacted]")
            .field("header_names", &header_names)
            .field("body_bytes", &self.body.len())
            .field("policy_name", &self.policy_name)
            .finish()
    }
}

impl RequestView {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn is_https(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("https")
    }

    /// Whether the request's host is one of `allowed_hosts` (lower-case `host[:port]`, as clients
    /// send it); an empty list allows any host.
    pub fn host_is_allowed(&self, allowed_hosts: &[String]) -> bool {
        allowed_hosts.is_empty()
            || allowed_hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(&self.host))
    }

    /// `scheme://host` of the request.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    /// Every value of the cookies named `name` (a browser may send several with one name).
    pub fn cookies<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.header("cookie")
            .into_iter()
            .flat_map(|header| header.split(';'))
            .filter_map(move |pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key == name).then(|| value.trim_matches('"'))
            })
    }

    /// The `Cookie` header without the cookies named in `names`; `None` when nothing is left.
    pub fn cookie_header_without(&self, names: &[String]) -> Option<String> {
        let kept: Vec<&str> = self
            .header("cookie")?
            .split(';')
            .map(str::trim)
            .filter(|pair| {
                let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
                !pair.is_empty() && !names.iter().any(|n| n == name)
            })
            .collect();
        (!kept.is_empty()).then(|| kept.join("; "))
    }

    /// The token of an `Authorization: Bearer` header (scheme case-insensitive), if any.
    pub fn bearer_token(&self) -> Option<&str> {
        let (scheme, token) = self.header("authorization")?.trim().split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }

    /// A person's browser loading a page, as opposed to a script or an API client: those get 401
    /// instead of a redirect they could not follow.
    pub fn is_browser_navigation(&self) -> bool {
        let safe_method = matches!(self.method.as_str(), "GET" | "HEAD");
        let scripted = self.header("x-requested-with").is_some();
        let fetch_mode_ok = self
            .header("sec-fetch-mode")
            .is_none_or(|mode| mode.eq_ignore_ascii_case("navigate"));
        let accepts_html = self.header("accept").is_none_or(|accept| {
            accept.split(',').any(|range| {
                let media = range.split(';').next().unwrap_or("").trim();
                matches!(
                    media,
                    "text/html" | "text/*" | "*/*" | "application/xhtml+xml"
                )
            })
        });
        safe_method && !scripted && fetch_mode_ok && accepts_html
    }

    /// The request's path and query as a same-origin relative reference for a `Location` header.
    /// A path starting with `//` or `/\` would be read by browsers as another host, so repeated
    /// leading slashes are folded into one. Every byte outside RFC 3986's path and query
    /// characters (controls, spaces, `\`, `"`, `<`, non-ASCII...) is percent-encoded, so the
    /// target cannot split a header or smuggle a second slash. A target longer than
    /// `MAX_RETURN_TARGET_BYTES` becomes `/`: it is stored with every pending login, and an
    /// attacker chooses its length.
    pub fn local_target(&self, with_query: bool) -> String {
        let path = self.path.trim_start_matches(['/', '\\']);
        let query = if with_query { self.query.as_str() } else { "" };
        // Encoding only lengthens: a target already too long is not worth encoding.
        if 1 + path.len() + usize::from(!query.is_empty()) + query.len() > MAX_RETURN_TARGET_BYTES {
            return "/".to_owned();
        }
        let mut target = String::from("/");
        percent_encode_into(&mut target, path.as_bytes(), is_path_byte);
        if !query.is_empty() {
            target.push('?');
            percent_encode_into(&mut target, query.as_bytes(), is_query_byte);
        }
        if target.len() > MAX_RETURN_TARGET_BYTES {
            return "/".to_owned();
        }
        target
    }
}

/// The longest return target kept with a pending login; a longer one returns to `/`.
pub const MAX_RETURN_TARGET_BYTES: usize = 2048;

/// RFC 3986 `pchar` and `/`: unreserved, sub-delims, `:`, `@`, and `%` (checked separately).
fn is_path_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&byte)
}

/// RFC 3986 `query`: `pchar`, `/` and `?`.
fn is_query_byte(byte: u8) -> bool {
    is_path_byte(byte) || byte == b'?'
}

/// Appends `input`, percent-encoding every byte `allowed` refuses and every `%` that does not
/// start a `%XX` escape (so an escape already in the request stays as the browser sent it).
fn percent_encode_into(output: &mut String, input: &[u8], allowed: fn(u8) -> bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (index, &byte) in input.iter().enumerate() {
        let is_escape = byte == b'%'
            && input
                .get(index + 1..index + 3)
                .is_some_and(|digits| digits.iter().all(u8::is_ascii_hexdigit));
        if is_escape || allowed(byte) {
            output.push(char::from(byte));
        } else {
            output.push('%');
            output.push(char::from(HEX[usize::from(byte >> 4)]));
            output.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, headers: &[(&str, &str)]) -> RequestView {
        RequestView {
            method: method.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn browser_navigation_is_told_apart_from_scripts() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
        let cases: &[Case] = &[
            (
                "GET",
                &[("accept", "text/html,application/xhtml+xml;q=0.9")],
                true,
            ),
            ("GET", &[], true),
            ("GET", &[("accept", "*/*")], true),
            ("HEAD", &[("accept", "text/html")], true),
            (
                "GET",
                &[("accept", "text/html"), ("sec-fetch-mode", "navigate")],
                true,
            ),
            ("GET", &[("accept", "application/json")], false),
            (
                "GET",
                &[
                    ("accept", "text/html"),
                    ("x-requested-with", "XMLHttpRequest"),
                ],
                false,
            ),
            (
                "GET",
                &[("accept", "*/*"), ("sec-fetch-mode", "cors")],
                false,
            ),
            ("POST", &[("accept", "text/html")], false),
        ];
        for (method, headers, expected) in cases {
            assert_eq!(
                request(method, headers).is_browser_navigation(),
                *expected,
                "{method} {headers:?}"
            );
        }
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let view = request(
            "GET",
            &[("cookie", "a=1; session=x; session_login=y; session=z")],
        );
        assert_eq!(view.cookies("session").collect::<Vec<_>>(), ["x", "z"]);
        assert_eq!(view.cookies("missing").count(), 0);
    }

    #[test]
    fn our_cookies_can_be_taken_out_of_the_header() {
        let names = ["session".to_string(), "__Host-session".to_string()];
        let view = request("GET", &[("cookie", "a=1; __Host-session=x;session=y; b=2")]);
        assert_eq!(
            view.cookie_header_without(&names).as_deref(),
            Some("a=1; b=2")
        );
        let only_ours = request("GET", &[("cookie", "session=y")]);
        assert_eq!(only_ours.cookie_header_without(&names), None);
    }

    #[test]
    fn debug_output_hides_cookies_codes_and_bodies() {
        let mut view = request("POST", &[("cookie", "session=v1.secret")]);
        view.query = "code=the-code".into();
        view.body = b"code=the-code".to_vec();
        let printed = format!("{view:?}");
        assert!(printed.contains("\"cookie\""), "{printed}");
        assert!(
            !printed.contains("secret") && !printed.contains("the-code"),
            "{printed}"
        );
    }

    #[test]
    fn local_targets_cannot_leave_the_origin() {
        let mut view = request("GET", &[]);
        view.path = "//evil.example/x".into();
        view.query = "a=1".into();
        assert_eq!(view.local_target(true), "/evil.example/x?a=1");
        view.path = "/\\evil.example".into();
        assert_eq!(view.local_target(false), "/evil.example");
        view.path = "/anything".into();
        assert_eq!(view.local_target(true), "/anything?a=1");
    }

    #[test]
    fn local_targets_percent_encode_what_rfc_3986_does_not_allow() {
        let mut view = request("GET", &[]);
        view.path = "/a b\tc\r\nSet-Cookie:x\\y\"<é>".into();
        view.query = "q=1 2&r=%zz%41#f?ok=/:@".into();
        assert_eq!(
            view.local_target(true),
            "/a%20b%09c%0D%0ASet-Cookie:x%5Cy%22%3C%C3%A9%3E?q=1%202&r=%25zz%41%23f?ok=/:@"
        );
        view.path = "/\\\t/evil.example".into();
        assert_eq!(view.local_target(false), "/%09/evil.example");
    }

    #[test]
    fn long_local_targets_return_to_the_root() {
        let mut view = request("GET", &[]);
        view.path = "/p".into();
        view.query = "a".repeat(MAX_RETURN_TARGET_BYTES - 3);
        assert_eq!(view.local_target(true).len(), MAX_RETURN_TARGET_BYTES);
        view.query.push('a');
        assert_eq!(view.local_target(true), "/");
        view.query = " ".repeat(MAX_RETURN_TARGET_BYTES / 3);
        assert_eq!(view.local_target(true), "/", "the encoded length counts");
        assert_eq!(view.local_target(false), "/p");
    }

    #[test]
    fn only_listed_hosts_are_allowed_when_a_list_is_given() {
        let mut view = request("GET", &[]);
        view.host = "App.Example:8443".into();
        let allowed = ["app.example:8443".to_string()];
        assert!(view.host_is_allowed(&allowed));
        assert!(view.host_is_allowed(&[]), "no list: any host");
        view.host = "app.example".into();
        assert!(!view.host_is_allowed(&allowed), "the port counts");
        view.host = "evil.example".into();
        assert!(!view.host_is_allowed(&allowed));
    }
}
