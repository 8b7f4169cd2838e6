//! The login flow's decision tree, one Check at a time. `Flow::check` routes a request to the step
//! that owns it: the callback (`callback`), logout (`logout`, `backchannel`, `frontchannel`), or the session check
//! (`session`), which falls back to starting a login (`login`). IO sits behind `SessionStore` and
//! `IdentityProvider`, time behind `Clock`, so every branch runs in unit tests. Knows nothing of
//! Envoy's protos (`authz` translates).

mod backchannel;
mod callback;
pub mod cookies;
mod decision;
mod frontchannel;
mod lifetime;
mod login;
mod logout;
mod missing_claims;
mod refresh;
pub mod request;
mod session;

use std::sync::Arc;

pub use decision::{Decision, UpstreamHeader};
pub use request::RequestView;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::KeyRing;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::oidc::IdentityProvider;
use crate::session::Sessions;
use cookies::CookieJar;

/// Everything a Check needs; shared by all requests.
pub struct Flow {
    config: Arc<Config>,
    keys: Arc<KeyRing>,
    sessions: Sessions,
    provider: Arc<dyn IdentityProvider>,
    clock: Arc<dyn Clock>,
    /// Shared with refreshes running in their own tasks (`refresh::Refresher`).
    metrics: Arc<Metrics>,
    cookie_names: cookies::CookieNames,
}

impl Flow {
    pub fn new(
        config: Arc<Config>,
        keys: Arc<KeyRing>,
        sessions: Sessions,
        provider: Arc<dyn IdentityProvider>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Flow {
            cookie_names: cookies::CookieNames::new(&config),
            config,
            keys,
            sessions,
            provider,
            clock,
            metrics: Arc::default(),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub fn provider(&self) -> &Arc<dyn IdentityProvider> {
        &self.provider
    }

    /// Decides one request. A host outside `allowed_hosts` is refused before anything can build a
    /// redirect URI from it; the back-channel logout path is exempt (the IdP calls it server to
    /// server, under whatever name it was registered with, and nothing there is built from it).
    /// The front-channel logout path is not: the browser loads it under a public name of the app.
    pub async fn check(&self, request: &RequestView) -> Result<Decision, Error> {
        let jar = CookieJar::for_request(&self.config, &self.cookie_names, request);
        let path = request.path.as_str();
        let is_backchannel = self.config.backchannel_logout_path.as_deref() == Some(path);
        if !is_backchannel && !request.host_is_allowed(&self.config.allowed_hosts) {
            return Err(Error::HostNotAllowed);
        }
        if path == self.config.redirect_uri.path() {
            return self.finish_login(request, &jar).await;
        }
        if self.config.logout_path.as_deref() == Some(path) {
            return self.logout(request, &jar).await;
        }
        if is_backchannel {
            return self.backchannel_logout(request).await;
        }
        if self.config.frontchannel_logout_path.as_deref() == Some(path) {
            return self.frontchannel_logout(request).await;
        }
        self.check_session(request, &jar).await
    }
}

/// Escapes text for an HTML page.
pub(crate) fn html_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}
