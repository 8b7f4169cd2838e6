//! Reload without restart (SIGHUP): the config file and its secret files are read again the way
//! the binary reads them at start (`config::load`, with the `OIDC_AUTHZ_*` overrides), validated
//! whole, and only then put in force by swapping the gateway's flows (`Gateway::replace`). A bad
//! config, a session key list that does not make a key ring, or a changed IdP client that cannot
//! be discovered within its `http_timeout` refuses the reload: the config in force keeps serving,
//! every problem is logged on its own line and `oidc_authz_config_reloads_total{result="refused"}`
//! counts it.
//!
//! Kept across a reload: the session store (built once; a changed `session_storage`, `memory` or
//! `redis` is reported as needing a restart) and each IdP client whose settings did not change
//! (no rediscovery gap). Settings read once at start (`RESTART_ONLY`) are reported by key when they
//! changed, and not applied.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::{self, Config, ConfigError};
use crate::gateway::Gateway;
use crate::oidc::provider::{Provider, ProviderError, ProviderSettings};
use crate::server::{IdentityProviders, build_flows};
use crate::session::SessionStore;

/// Applies re-read configs to a running gateway, one at a time.
pub struct Reloader {
    gateway: Arc<Gateway>,
    /// Held for a whole reload: two SIGHUPs in a row apply one after the other, each against the
    /// config the previous one put in force.
    in_force: tokio::sync::Mutex<InForce>,
    /// The background discovery of each IdP client `App::build` started, by provider: stopped
    /// when a reload replaces or removes that client, so an undiscovered old client does not go
    /// on asking its IdP forever.
    discovery_tasks: std::sync::Mutex<Vec<(String, tokio::task::AbortHandle)>>,
}

/// What the flows in force were built from.
struct InForce {
    /// The config the process started with: the settings read once at start come from it, so a
    /// start-only key changed by the file is reported at every reload until a restart.
    started_with: Config,
    /// The config of the flows in force.
    config: Config,
    store: Arc<dyn SessionStore>,
    /// The IdP client of each provider in force.
    providers: IdentityProviders,
    clock: Arc<dyn Clock>,
}

/// A reload put in force.
#[derive(Debug, PartialEq, Eq)]
pub struct Reloaded {
    /// Start-only keys that changed: not applied until a restart.
    pub needs_restart: Vec<&'static str>,
    /// Providers whose IdP client changed, discovered anew before the swap.
    pub new_idp_clients: Vec<String>,
}

/// A reload refused: the config in force keeps serving.
#[derive(Debug)]
pub struct Refused {
    /// One line each, as at start (key paths included).
    pub problems: Vec<String>,
}

impl Reloader {
    pub(crate) fn new(
        gateway: Arc<Gateway>,
        config: Config,
        store: Arc<dyn SessionStore>,
        providers: IdentityProviders,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Reloader {
            gateway,
            in_force: tokio::sync::Mutex::new(InForce {
                started_with: config.clone(),
                config,
                store,
                providers,
                clock,
            }),
            discovery_tasks: std::sync::Mutex::default(),
        }
    }

    /// Remembers `provider`'s background discovery, to stop it when a reload replaces the client.
    pub(crate) fn discovery_started(&self, provider: &str, task: tokio::task::AbortHandle) {
        self.discovery_tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((provider.to_owned(), task));
    }

    /// Stops the background discovery of every client not in `kept` any more.
    fn stop_discovery_of_replaced(&self, kept: &IdentityProviders, in_force: &IdentityProviders) {
        let replaced = |name: &str| {
            let old = in_force.iter().find(|(given, _)| given == name);
            let new = kept.iter().find(|(given, _)| given == name);
            match (old, new) {
                (Some((_, old)), Some((_, new))) => !Arc::ptr_eq(old, new),
                _ => true,
            }
        };
        self.discovery_tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(name, task)| {
                if replaced(name) {
                    task.abort();
                    false
                } else {
                    true
                }
            });
    }

    /// Reads `path` (and the secret files it names, and the environment) as at start and puts the
    /// result in force, or refuses it; logs and counts either way.
    pub async fn reload(&self, path: Option<&Path>) -> Result<Reloaded, Refused> {
        let outcome = match config::load(path) {
            Ok((config, warnings)) => {
                for warning in &warnings {
                    tracing::warn!("config reload: {warning}");
                }
                self.apply(config).await
            }
            Err(error) => Err(Refused {
                problems: problems_of(error),
            }),
        };
        self.gateway.metrics().record_config_reload(outcome.is_ok());
        match &outcome {
            Ok(reloaded) => {
                for key in &reloaded.needs_restart {
                    tracing::warn!(
                        key,
                        "config reload: `{key}` changed; it takes effect only after a restart"
                    );
                }
                tracing::info!(new_idp_clients = ?reloaded.new_idp_clients, "config reloaded");
            }
            Err(refused) => {
                for problem in &refused.problems {
                    tracing::error!(
                        "config reload refused, the config in force keeps serving: {problem}"
                    );
                }
            }
        }
        outcome
    }

    /// Builds the flows of `config` with the store in force and the IdP clients it can keep
    /// (new ones discovered first), then swaps them in.
    async fn apply(&self, config: Config) -> Result<Reloaded, Refused> {
        let mut in_force = self.in_force.lock().await;
        let (providers, new_idp_clients) = idp_clients_for(&in_force, &config).await?;
        let flows = build_flows(
            &config,
            &in_force.store,
            &providers,
            &in_force.clock,
            &self.gateway.shared_metrics(),
        )
        .map_err(|problem| Refused {
            problems: vec![problem.to_string()],
        })?;
        self.gateway.replace(flows);
        self.stop_discovery_of_replaced(&providers, &in_force.providers);
        let needs_restart = restart_only_changes(&in_force.started_with, &config);
        in_force.config = config;
        in_force.providers = providers;
        Ok(Reloaded {
            needs_restart,
            new_idp_clients,
        })
    }
}

/// Every problem of a config that did not load, one line each.
fn problems_of(error: ConfigError) -> Vec<String> {
    match error {
        ConfigError::Invalid(problems) => problems,
        other => vec![other.to_string()],
    }
}

/// The IdP client of each provider of `config`: the one in force when its settings are the same,
/// else a new one, discovered within its `http_timeout` (or the reload is refused). Also the
/// names of the providers that got a new one.
async fn idp_clients_for(
    in_force: &InForce,
    config: &Config,
) -> Result<(IdentityProviders, Vec<String>), Refused> {
    let mut providers: IdentityProviders = Vec::new();
    let mut new_idp_clients = Vec::new();
    let mut problems = Vec::new();
    for name in config.provider_names() {
        let settings = settings_of(config, name);
        let kept = in_force
            .providers
            .iter()
            .find(|(given, _)| given == name)
            .filter(|_| {
                in_force.config.provider_names().contains(&name)
                    && settings_of(&in_force.config, name) == settings
            });
        if let Some((_, provider)) = kept {
            providers.push((name.to_owned(), Arc::clone(provider)));
            continue;
        }
        match discovered_provider(name, settings, &in_force.clock).await {
            Ok(provider) => {
                providers.push((name.to_owned(), provider));
                new_idp_clients.push(name.to_owned());
            }
            Err(problem) => problems.push(problem.to_string()),
        }
    }
    if problems.is_empty() {
        Ok((providers, new_idp_clients))
    } else {
        Err(Refused { problems })
    }
}

fn settings_of(config: &Config, provider: &str) -> ProviderSettings {
    let provider_config = config
        .for_provider(provider)
        .expect("a provider of this config");
    ProviderSettings::from_config(&provider_config)
}

/// Why a changed IdP client cannot be put in force; its text is one of the reload's problems.
#[derive(Debug, thiserror::Error)]
enum NewIdpClientError {
    #[error("provider `{name}`: {error}")]
    Build { name: String, error: ProviderError },
    #[error("provider `{name}`: its IdP client changed and discovery failed: {error}")]
    Discovery { name: String, error: ProviderError },
    #[error(
        "provider `{name}`: its IdP client changed and discovery did not finish within http_timeout ({bound:?})"
    )]
    DiscoveryTimeout { name: String, bound: Duration },
}

/// A new IdP client for `name`, discovered (discovery document and key set) within the
/// settings' `http_timeout`, so the swap leaves no provider undiscovered.
async fn discovered_provider(
    name: &str,
    settings: ProviderSettings,
    clock: &Arc<dyn Clock>,
) -> Result<Arc<dyn crate::oidc::IdentityProvider>, NewIdpClientError> {
    let bound: Duration = settings.http_timeout;
    let name = name.to_owned();
    let provider = match Provider::new(settings, Arc::clone(clock)) {
        Ok(provider) => provider,
        Err(error) => return Err(NewIdpClientError::Build { name, error }),
    };
    match tokio::time::timeout(bound, provider.discover()).await {
        Ok(Ok(())) => Ok(provider),
        Ok(Err(error)) => Err(NewIdpClientError::Discovery { name, error }),
        Err(_) => Err(NewIdpClientError::DiscoveryTimeout { name, bound }),
    }
}

/// Whether two configs agree on one setting.
type SameSetting = fn(&Config, &Config) -> bool;

/// The settings read once at start (listeners, logging, the session store, request parsing,
/// shutdown timing), by key: a change is reported, not applied.
const RESTART_ONLY: &[(&str, SameSetting)] = &[
    ("listen", |a, b| a.listen == b.listen),
    ("admin_listen", |a, b| a.admin_listen == b.admin_listen),
    ("log_format", |a, b| a.log_format == b.log_format),
    ("log_level", |a, b| a.log_level == b.log_level),
    ("session_storage", |a, b| {
        std::mem::discriminant(&a.session_storage) == std::mem::discriminant(&b.session_storage)
    }),
    ("memory.max_bytes", |a, b| {
        a.memory_max_bytes == b.memory_max_bytes
    }),
    ("redis", |a, b| {
        let same_kind = std::mem::discriminant(&a.session_storage)
            == std::mem::discriminant(&b.session_storage);
        !same_kind || a.session_storage == b.session_storage
    }),
    ("trust_forwarded_headers", |a, b| {
        a.trust_forwarded_headers == b.trust_forwarded_headers
    }),
    ("shutdown_drain_period", |a, b| {
        a.shutdown.drain == b.shutdown.drain
    }),
    ("shutdown_grace_period", |a, b| {
        a.shutdown.grace == b.shutdown.grace
    }),
];

/// The start-only keys whose value differs between `started_with` and `new`.
fn restart_only_changes(started_with: &Config, new: &Config) -> Vec<&'static str> {
    RESTART_ONLY
        .iter()
        .filter(|(_, same)| !same(started_with, new))
        .map(|(key, _)| *key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "issuer: https://idp.example\nclient_id: app\nclient_secret: s3cr3t\n\
                        session_secret: [0123456789abcdef0123456789abcdef]\n";

    fn config(extra: &str) -> Config {
        config::load_from_str(&format!("{BASE}{extra}"), "t.yaml", Vec::new())
            .expect("valid")
            .0
    }

    #[test]
    fn a_new_idp_clients_refusal_keeps_its_text() {
        let error = || ProviderError::HttpClient("no TLS roots".into());
        let name = || "corp".to_owned();
        let texts = [
            NewIdpClientError::Build {
                name: name(),
                error: error(),
            }
            .to_string(),
            NewIdpClientError::Discovery {
                name: name(),
                error: error(),
            }
            .to_string(),
            NewIdpClientError::DiscoveryTimeout {
                name: name(),
                bound: Duration::from_secs(2),
            }
            .to_string(),
        ];
        assert_eq!(
            texts,
            [
                "provider `corp`: cannot build the HTTP client: no TLS roots",
                "provider `corp`: its IdP client changed and discovery failed: cannot build the HTTP client: no TLS roots",
                "provider `corp`: its IdP client changed and discovery did not finish within http_timeout (2s)",
            ]
        );
    }

    #[test]
    fn start_only_keys_that_changed_are_named() {
        let started = config("listen: 127.0.0.1:9001\n");
        let same = config("listen: 127.0.0.1:9001\nsession_cookie_name: other\n");
        assert_eq!(restart_only_changes(&started, &same), Vec::<&str>::new());
        let moved = config(
            "listen: 127.0.0.1:9002\nadmin_listen: 127.0.0.1:9902\nshutdown_grace_period: 3\n",
        );
        assert_eq!(
            restart_only_changes(&started, &moved),
            vec!["listen", "admin_listen", "shutdown_grace_period"]
        );
    }

    #[test]
    fn a_store_change_is_named_by_its_key() {
        let memory = config("");
        let redis = config("session_storage: redis\nredis:\n  url: redis://127.0.0.1:6379\n");
        let other_redis = config("session_storage: redis\nredis:\n  url: redis://127.0.0.1:6380\n");
        assert_eq!(
            restart_only_changes(&memory, &redis),
            vec!["session_storage"]
        );
        assert_eq!(restart_only_changes(&redis, &other_redis), vec!["redis"]);
    }

    #[test]
    fn a_client_secret_change_makes_a_new_idp_client() {
        let before = config("");
        let after = config("");
        assert!(settings_of(&before, "default") == settings_of(&after, "default"));
        let rotated = config::load_from_str(&BASE.replace("s3cr3t", "n3w"), "t.yaml", Vec::new())
            .unwrap()
            .0;
        assert!(settings_of(&before, "default") != settings_of(&rotated, "default"));
    }
}
