//! `Gateway`: one `Flow` per provider (`providers:` in the config, `default` first), and which
//! of them decides a request. A provider's callback, logout and back-channel (and front-channel)
//! logout paths always go to that provider's flow; any other request is decided under the policy
//! its route names (`RequestView::policy_name`, none: `default`) by the flow of the policy's
//! `provider:`. Each flow has its own IdP client, cookies and session namespace, so a session of
//! one provider never satisfies another's policy, and one IdP being down fails only the routes of
//! its provider. A reload replaces the flows whole (`Gateway::replace`). Knows nothing of Envoy's
//! protos.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::config::DEFAULT_PROVIDER;
use crate::error::Error;
use crate::flow::{Decision, Flow, RequestView};
use crate::metrics::Metrics;
use crate::policy::{Policies, Policy};
use crate::telemetry::RouteLabels;

/// A provider's flow, by name.
#[derive(Clone)]
pub struct NamedFlow {
    pub name: String,
    pub flow: Arc<Flow>,
}

/// The flows of one configuration, and which of them decides a request. Replaced whole by a
/// reload (`Gateway::replace`); a Check keeps the one it started with.
pub struct Routes {
    /// `default` first.
    flows: Vec<NamedFlow>,
    /// Each flow's own paths (callback, logout, back-channel logout) → its index in `flows`.
    /// Config validation makes them distinct across providers.
    own_paths: HashMap<String, usize>,
    /// Every policy (the same in every provider's config).
    policies: Policies,
}

pub struct Gateway {
    /// The routes in force. A Check reads it once (a read lock held for one `Arc` clone, never
    /// across an `.await`), so a reload never waits for Checks and a Check never sees half of two
    /// configurations.
    current: RwLock<Arc<Routes>>,
    /// Shared by every flow, and kept across reloads.
    metrics: Arc<Metrics>,
}

impl Gateway {
    /// `flows` must start with `default` and share `metrics` (`Flow::with_metrics`).
    pub fn new(flows: Vec<NamedFlow>, metrics: Arc<Metrics>) -> Self {
        Gateway {
            current: RwLock::new(Arc::new(Routes::new(flows))),
            metrics,
        }
    }

    /// Puts `flows` (of a new configuration, sharing this gateway's `metrics`) in force for the
    /// next Checks; Checks in flight finish with the flows they started with.
    pub fn replace(&self, flows: Vec<NamedFlow>) {
        let routes = Arc::new(Routes::new(flows));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = routes;
    }

    /// The routes in force now; a Check routes and decides with the same ones.
    pub fn routes(&self) -> Arc<Routes> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The `default` provider's flow in force now.
    pub fn default_flow(&self) -> Arc<Flow> {
        Arc::clone(&self.routes().flows[0].flow)
    }

    /// Every provider's flow in force now, `default` first.
    pub fn flows(&self) -> Vec<NamedFlow> {
        self.routes().flows.clone()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The counters every flow shares, for the flows of a reloaded configuration.
    pub fn shared_metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Decides one request with the routes in force when it arrived.
    pub async fn check(&self, request: &RequestView) -> Result<Decision, Error> {
        self.routes().route(request)?.check(request).await
    }
}

/// Which flow decides a request, under which policy: `Routes::route`'s answer.
pub struct Route<'a> {
    flow: &'a Flow,
    /// None on a provider's own path (callback, logout, back-channel logout).
    policy: Option<&'a Policy>,
    provider: &'a str,
}

impl Route<'_> {
    /// The policy's and provider's names, for the Check's log lines and span.
    pub fn labels(&self) -> RouteLabels<'_> {
        RouteLabels {
            policy: self.policy.map(|policy| policy.name.as_str()),
            provider: Some(self.provider),
        }
    }

    /// Decides the request with this route's flow, under its policy.
    pub async fn check(&self, request: &RequestView) -> Result<Decision, Error> {
        match self.policy {
            None => self.flow.check(request).await,
            Some(policy) => self.flow.check_policy(request, policy).await,
        }
    }
}

impl Routes {
    fn new(flows: Vec<NamedFlow>) -> Self {
        assert!(
            flows.first().is_some_and(|f| f.name == DEFAULT_PROVIDER),
            "the default provider's flow comes first"
        );
        let mut own_paths = HashMap::new();
        for (index, named) in flows.iter().enumerate() {
            for path in named.flow.own_paths() {
                own_paths.entry(path.to_owned()).or_insert(index);
            }
        }
        let policies = flows[0].flow.policies().clone();
        Routes {
            flows,
            own_paths,
            policies,
        }
    }

    /// Which flow decides `request`: the flow that owns its path, else the flow of the provider of
    /// the policy its route names. An unknown policy fails closed (`Error::UnknownPolicy`).
    pub fn route(&self, request: &RequestView) -> Result<Route<'_>, Error> {
        if let Some(&index) = self.own_paths.get(&request.path) {
            let named = &self.flows[index];
            return Ok(Route {
                flow: &named.flow,
                policy: None,
                provider: &named.name,
            });
        }
        let policy = self.policies.select(request.policy_name.as_deref())?;
        Ok(Route {
            flow: self.flow_named(&policy.provider)?,
            policy: Some(policy),
            provider: &policy.provider,
        })
    }

    /// Config validation makes every policy's provider a configured one; an unknown name here
    /// would be a bug, answered "could not decide" like any other.
    fn flow_named(&self, name: &str) -> Result<&Flow, Error> {
        self.flows
            .iter()
            .find(|named| named.name == name)
            .map(|named| named.flow.as_ref())
            .ok_or_else(|| Error::UnknownProvider(loggable_name(name)))
    }
}

/// The name quoted, when it is a possible provider name; a fixed text otherwise, so a log line
/// never carries arbitrary text.
fn loggable_name(name: &str) -> String {
    let plausible = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if plausible {
        format!("`{name}`")
    } else {
        "(a name that is not a valid provider name)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_logged_only_when_they_look_like_names() {
        assert_eq!(loggable_name("corp-2"), "`corp-2`");
        assert_eq!(
            loggable_name("x\nFAKE LOG LINE"),
            "(a name that is not a valid provider name)"
        );
        assert_eq!(
            loggable_name(""),
            "(a name that is not a valid provider name)"
        );
    }
}
