//! `Gateway`: one `Flow` per provider (`providers:` in the config, `default` first), and which
//! of them decides a request. A provider's callback, logout and back-channel logout paths always
//! go to that provider's flow; any other request goes to the provider its route selects
//! (`provider_for_route`). Each flow has its own IdP client, cookies and session namespace, so a
//! session of one provider never satisfies another's route, and one IdP being down fails only
//! the routes of its provider. Knows nothing of Envoy's protos.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::DEFAULT_PROVIDER;
use crate::error::Error;
use crate::flow::{Decision, Flow, RequestView};
use crate::metrics::Metrics;

/// The route's key that names its provider (Envoy: the ext_authz per-route
/// `check_settings.context_extensions`).
pub const PROVIDER_EXTENSION: &str = "provider";

/// TEMPORARY (issue 9, until policies choose providers with `provider:`): the provider a route
/// selects, from its per-route settings (`context_extensions: { provider: NAME }`); none means
/// `default`. The one place that decides it: replace this function, not its callers.
pub fn provider_for_route(route_settings: &HashMap<String, String>) -> &str {
    route_settings
        .get(PROVIDER_EXTENSION)
        .map_or(DEFAULT_PROVIDER, String::as_str)
}

/// A provider's flow, by name.
pub struct NamedFlow {
    pub name: String,
    pub flow: Arc<Flow>,
}

pub struct Gateway {
    /// `default` first.
    flows: Vec<NamedFlow>,
    /// Each flow's own paths (callback, logout, back-channel logout) → its index in `flows`.
    /// Config validation makes them distinct across providers.
    own_paths: HashMap<String, usize>,
    /// Shared by every flow.
    metrics: Arc<Metrics>,
}

impl Gateway {
    /// `flows` must start with `default` and share `metrics` (`Flow::with_metrics`).
    pub fn new(flows: Vec<NamedFlow>, metrics: Arc<Metrics>) -> Self {
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
        Gateway {
            flows,
            own_paths,
            metrics,
        }
    }

    pub fn default_flow(&self) -> &Arc<Flow> {
        &self.flows[0].flow
    }

    /// Every provider's flow, `default` first.
    pub fn flows(&self) -> &[NamedFlow] {
        &self.flows
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Decides one request with the flow that owns its path, else the one its route selects.
    pub async fn check(
        &self,
        request: &RequestView,
        route_settings: &HashMap<String, String>,
    ) -> Result<Decision, Error> {
        self.flow_for(request, route_settings)?.check(request).await
    }

    fn flow_for(
        &self,
        request: &RequestView,
        route_settings: &HashMap<String, String>,
    ) -> Result<&Flow, Error> {
        if let Some(&index) = self.own_paths.get(&request.path) {
            return Ok(&self.flows[index].flow);
        }
        let name = provider_for_route(route_settings);
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

    fn settings(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_route_selects_its_provider_and_none_means_default() {
        assert_eq!(provider_for_route(&settings(&[])), "default");
        assert_eq!(provider_for_route(&settings(&[("policy", "x")])), "default");
        assert_eq!(
            provider_for_route(&settings(&[("provider", "corp")])),
            "corp"
        );
    }

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
