//! The login flow's decision tree, one Check at a time. `Flow::check` routes a request to the step
//! that owns it: the callback (`callback`), logout (`logout`, `backchannel`, `frontchannel`), or
//! the route's policy (`access`): a bearer token or the session (`session`) and the policy's
//! rules, else an anonymous pass, a new login (`login`) or 401; `upstream` sets the headers of an
//! allowed request. IO sits behind `SessionStore` and
//! `IdentityProvider`, time behind `Clock`, so every branch runs in unit tests. Knows nothing of
//! Envoy's protos (`authz` translates).

mod access;
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
mod refresh_backoff;
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
    /// Sessions whose refresh failed for an IdP outage a moment ago (`refresh_backoff`).
    refresh_backoff: refresh_backoff::RefreshBackoff,
    /// Shared with refreshes running in their own tasks.
    refresh_logs: Arc<refresh::RefreshLogs>,
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
            refresh_backoff: refresh_backoff::RefreshBackoff::default(),
            refresh_logs: Arc::default(),
        }
    }

    /// Takes the other providers' cookies (by their session cookie names) out of what upstreams
    /// get, as well as this flow's own.
    pub fn hiding_cookies_of(self, session_cookie_names: &[String]) -> Self {
        Flow {
            cookie_names: self.cookie_names.hiding_also(session_cookie_names),
            ..self
        }
    }

    /// Shares `metrics` (one set of counters for every provider's flow); its session store
    /// commands are counted there too.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        Flow {
            sessions: self.sessions.instrumented(Arc::clone(&metrics)),
            metrics,
            ..self
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The paths this flow owns whatever the route: its callback, logout and back-channel
    /// logout paths (`gateway` sends them here).
    pub fn own_paths(&self) -> Vec<&str> {
        [
            Some(self.config.redirect_uri.path()),
            self.config.logout_path.as_deref(),
            self.config.backchannel_logout_path.as_deref(),
            self.config.frontchannel_logout_path.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Every configured policy (the same for every provider).
    pub fn policies(&self) -> &crate::policy::Policies {
        &self.config.policies
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
        if self.config.frontchannel_logout_path.as_deref() == Some(path) {
            return self.frontchannel_logout(request).await;
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
