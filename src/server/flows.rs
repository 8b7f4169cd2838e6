//! The flows of a config: one per provider, each over its own namespace of the shared store and
//! its IdP client, with the session cache they share. Used at start (`App::assemble_providers`)
//! and by every reload (`reload.rs`).

use std::sync::Arc;

use super::{BuildError, IdentityProviders};
use crate::clock::Clock;
use crate::config::{Config, DEFAULT_PROVIDER};
use crate::crypto::KeyRing;
use crate::flow::Flow;
use crate::gateway::NamedFlow;
use crate::metrics::Metrics;
use crate::oidc::IdentityProvider;
use crate::session::cache::SessionCache;
use crate::session::{Keep, SessionStore, Sessions};

/// One flow per configured provider, each with the IdP client `providers` names for it, its own
/// cookies and its own namespace in the shared `store`, all counting into `metrics`. Used at start
/// and by every reload.
pub(crate) fn build_flows(
    config: &Config,
    store: &Arc<dyn SessionStore>,
    providers: &IdentityProviders,
    clock: &Arc<dyn Clock>,
    metrics: &Arc<Metrics>,
) -> Result<Vec<NamedFlow>, BuildError> {
    let keys = Arc::new(KeyRing::from_secrets(&config.session_secrets)?);
    let session_cookie_names = config.session_cookie_names();
    // One cache for every provider's sessions (their keys differ by namespace); a reload makes a
    // new one, so nothing opened under a removed key outlives the reload.
    let cache = Sessions::cache_for(
        store,
        config.session_cache_size,
        cache_keeps(config),
        metrics.session_cache(),
    );
    let mut flows = Vec::new();
    for name in config.provider_names() {
        let sessions = provider_sessions(name, store, &keys, cache.clone());
        let provider_config = config.for_provider(name).expect("a configured provider");
        let flow = Flow::new(
            Arc::new(provider_config),
            Arc::clone(&keys),
            sessions,
            idp_client_of(providers, name)?,
            Arc::clone(clock),
        )
        .with_metrics(Arc::clone(metrics))
        .hiding_cookies_of(&session_cookie_names);
        flows.push(NamedFlow {
            name: name.to_owned(),
            flow: Arc::new(flow),
        });
    }
    Ok(flows)
}

/// The IdP client `providers` gives for the provider `name`.
fn idp_client_of(
    providers: &IdentityProviders,
    name: &str,
) -> Result<Arc<dyn IdentityProvider>, BuildError> {
    providers
        .iter()
        .find(|(given, _)| given == name)
        .map(|(_, provider)| Arc::clone(provider))
        .ok_or_else(|| BuildError::NoIdpClient(name.to_owned()))
}

/// The sessions of the provider `name`: the `default` provider's keys as they were before
/// providers existed, any other's in its own namespace.
fn provider_sessions(
    name: &str,
    store: &Arc<dyn SessionStore>,
    keys: &Arc<KeyRing>,
    cache: Option<Arc<SessionCache>>,
) -> Sessions {
    let sessions = Sessions::new(Arc::clone(store), Arc::clone(keys)).with_cache(cache);
    if name == DEFAULT_PROVIDER {
        sessions
    } else {
        sessions.in_namespace(name)
    }
}

/// What the session cache must keep of a record for the policies of `config` to decide and send
/// their headers (`session/cache.rs`).
fn cache_keeps(config: &Config) -> Keep {
    let policies = &config.policies;
    Keep {
        id_token: policies
            .iter()
            .any(|policy| policy.upstream.id_token.is_some()),
        claims: policies
            .iter()
            .any(|policy| !policy.rules.is_empty() || !policy.upstream.claims.is_empty()),
    }
}
