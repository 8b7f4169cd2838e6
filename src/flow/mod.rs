//! The login flow's decision tree, one Check at a time. `Flow::check` routes a request to the step
//! that owns it: the callback (`callback`), logout (`logout`, `backchannel`), or the route's
//! policy (`access`): a bearer token or the session (`session`) and the policy's rules, else an
//! anonymous pass, a new login (`login`) or 401; `upstream` sets the headers of an allowed request. IO sits behind `SessionStore` and
//! `IdentityProvider`, time behind `Clock`, so every branch runs in unit tests. Knows nothing of
//! Envoy's protos (`authz` translates).

mod access;
mod backchannel;
mod callback;
pub mod cookies;
mod decision;
mod lifetime;
mod login;
mod logout;
mod refresh;
pub mod request;
mod session;
mod upstream;

use std::sync::Arc;

pub use decision::{Decision, Forbidden, UpstreamHeader};
pub use request::RequestView;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::KeyRing;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::oidc::IdentityProvider;
use crate::policy::Policy;
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

    /// Decides one request under the policy its route names (`RequestView::policy_name`; none:
    /// `default`). A name we do not know is an error (fail closed): guessing could let the wrong
    /// people in.
    pub async fn check(&self, request: &RequestView) -> Result<Decision, Error> {
        let policy = self
            .config
            .policies
            .select(request.policy_name.as_deref())?;
        self.check_policy(request, policy).await
    }

    /// Decides one request under `policy`. A host outside `allowed_hosts` is refused before
    /// anything can build a redirect URI from it; the back-channel logout path is exempt (the IdP
    /// calls it server to server, under whatever name it was registered with, and nothing there
    /// is built from it). The callback and logout paths are the same for every policy.
    pub async fn check_policy(
        &self,
        request: &RequestView,
        policy: &Policy,
    ) -> Result<Decision, Error> {
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
        self.authorize(request, &jar, policy).await
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
