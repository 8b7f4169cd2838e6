//! The session and login cookies: their names (`__Host-` prefixed when `Secure` and host-only),
//! attributes, and `Set-Cookie` values. The values themselves are signed in `crypto::cookie`.

use std::time::Duration;

use super::request::RequestView;
use crate::config::{Config, CookieSecure, ResponseMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieKind {
    Session,
    /// Binds a login in progress to the browser that started it.
    Login,
}

/// Every name our cookies may have, computed once from the config (not per request): `[session,
/// __Host-session, session_login, __Host-session_login]` for `session_cookie_name: session`.
pub struct CookieNames {
    all: [String; 4],
    /// Ours and, with several providers, every other provider's: none reaches an upstream (a
    /// session cookie of one app's provider is a credential the other app must not see).
    hidden_from_upstream: Vec<String>,
}

/// The four names of a session cookie name: session and login cookie, each plain and `__Host-`.
fn names_of(session_cookie_name: &str) -> [String; 4] {
    let session = session_cookie_name.to_owned();
    let login = format!("{session}_login");
    [
        format!("__Host-{session}"),
        session,
        format!("__Host-{login}"),
        login,
    ]
}

impl CookieNames {
    pub fn new(config: &Config) -> Self {
        let all = names_of(&config.session_cookie_name);
        CookieNames {
            hidden_from_upstream: all.to_vec(),
            all,
        }
    }

    /// Also hides the cookies of these session cookie names (the other providers') from upstreams.
    pub fn hiding_also(mut self, session_cookie_names: &[String]) -> Self {
        for name in session_cookie_names {
            for cookie in names_of(name) {
                if !self.hidden_from_upstream.contains(&cookie) {
                    self.hidden_from_upstream.push(cookie);
                }
            }
        }
        self
    }

    fn index(kind: CookieKind) -> usize {
        match kind {
            CookieKind::Session => 0,
            CookieKind::Login => 2,
        }
    }

    fn prefixed(&self, kind: CookieKind) -> &str {
        &self.all[Self::index(kind)]
    }

    fn plain(&self, kind: CookieKind) -> &str {
        &self.all[Self::index(kind) + 1]
    }
}

/// Cookie settings resolved for one request.
pub struct CookieJar<'a> {
    config: &'a Config,
    names: &'a CookieNames,
    secure: bool,
}

impl<'a> CookieJar<'a> {
    pub fn for_request(config: &'a Config, names: &'a CookieNames, request: &RequestView) -> Self {
        let secure = match config.session_cookie_secure {
            CookieSecure::Always => true,
            CookieSecure::Never => false,
            CookieSecure::Auto => request.is_https(),
        };
        CookieJar {
            config,
            names,
            secure,
        }
    }

    /// The name we set: `__Host-` where the browser allows it (Secure, Path=/, no Domain), which
    /// stops a sibling subdomain from planting the cookie.
    pub fn name(&self, kind: CookieKind) -> &str {
        if self.uses_prefix() {
            self.names.prefixed(kind)
        } else {
            self.names.plain(kind)
        }
    }

    /// Whether our cookies carry the `__Host-` prefix for this request.
    fn uses_prefix(&self) -> bool {
        self.secure && self.config.session_cookie_domain.is_none()
    }

    /// Every cookie value the request carries for `kind`. With prefixed names only the prefixed
    /// name counts: the browser guarantees a `__Host-` cookie was set by this host over https,
    /// while anyone on a sibling subdomain (`Domain=`) or on the path over http can plant the plain
    /// name, and a planted login or session cookie is a login CSRF or a fixed session. Without
    /// the prefix both names count (the `secure` setting may have changed since the cookie was
    /// set, and a `__Host-` cookie is never weaker than a plain one).
    pub fn values<'r>(&self, request: &'r RequestView, kind: CookieKind) -> Vec<&'r str> {
        let mut values: Vec<&'r str> = request.cookies(self.names.prefixed(kind)).collect();
        if !self.uses_prefix() {
            values.extend(request.cookies(self.names.plain(kind)));
        }
        values
    }

    /// Every name our cookies may have, prefixed or not: the upstream never needs them, so they
    /// are taken out of the request it gets.
    pub fn all_names(&self) -> &[String] {
        &self.names.hidden_from_upstream
    }

    /// The login cookie travels on the IdP's cross-site form_post, which `SameSite=Lax` cookies do
    /// not: there it must be `SameSite=None`, which browsers accept only with `Secure`.
    fn same_site(&self, kind: CookieKind) -> &'static str {
        match kind {
            CookieKind::Login
                if self.config.response_mode == ResponseMode::FormPost && self.secure =>
            {
                "None"
            }
            _ => "Lax",
        }
    }

    fn attributes(&self, kind: CookieKind, max_age: u64) -> String {
        let mut attributes = format!(
            "Path=/; Max-Age={max_age}; HttpOnly; SameSite={}",
            self.same_site(kind)
        );
        if self.secure {
            attributes.push_str("; Secure");
        }
        if let Some(domain) = &self.config.session_cookie_domain {
            attributes.push_str("; Domain=");
            attributes.push_str(domain);
        }
        attributes
    }

    pub fn set(&self, kind: CookieKind, value: &str, max_age: Duration) -> String {
        format!(
            "{}={value}; {}",
            self.name(kind),
            self.attributes(kind, max_age.as_secs())
        )
    }

    pub fn clear(&self, kind: CookieKind) -> String {
        format!("{}=; {}", self.name(kind), self.attributes(kind, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_from_str;

    fn config(extra: &str) -> Config {
        let yaml = format!(
            "issuer: https://idp.example\nclient_id: c\nclient_secret: s\nsession_secret: 0123456789abcdef0123456789abcdef\n{extra}"
        );
        load_from_str(&yaml, "t", Vec::new()).unwrap().0
    }

    /// Leaked so a test can hold a jar in a `let`; tests only.
    fn names(config: &Config) -> &'static CookieNames {
        Box::leak(Box::new(CookieNames::new(config)))
    }

    fn request(scheme: &str) -> RequestView {
        RequestView {
            scheme: scheme.into(),
            ..Default::default()
        }
    }

    #[test]
    fn secure_cookies_get_the_host_prefix() {
        let config = config("");
        let https = CookieJar::for_request(&config, names(&config), &request("https"));
        assert_eq!(
            https.set(CookieKind::Session, "v1.x.y", Duration::from_secs(60)),
            "__Host-session=v1.x.y; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        let http = CookieJar::for_request(&config, names(&config), &request("http"));
        assert_eq!(http.name(CookieKind::Session), "session");
        assert_eq!(
            http.clear(CookieKind::Login),
            "session_login=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn form_post_login_cookie_is_same_site_none() {
        let config = config("response_mode: form_post\nsession_cookie_secure: always");
        let jar = CookieJar::for_request(&config, names(&config), &request("http"));
        let cookie = jar.set(CookieKind::Login, "v", Duration::from_secs(600));
        assert!(cookie.starts_with("__Host-session_login=v;"), "{cookie}");
        assert!(
            cookie.contains("SameSite=None") && cookie.contains("Secure"),
            "{cookie}"
        );
        assert!(
            jar.set(CookieKind::Session, "v", Duration::from_secs(1))
                .contains("SameSite=Lax")
        );
    }

    #[test]
    fn domain_cookies_drop_the_prefix() {
        let config = config("session_cookie_domain: example.com\nsession_cookie_secure: always");
        let jar = CookieJar::for_request(&config, names(&config), &request("https"));
        let cookie = jar.set(CookieKind::Session, "v", Duration::from_secs(1));
        assert!(
            cookie.starts_with("session=v;") && cookie.ends_with("; Domain=example.com"),
            "{cookie}"
        );
    }
}
