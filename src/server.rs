//! Wiring: `App::build` turns a `Config` into the running parts (keys, store, IdP, flow);
//! `run` serves gRPC Check and the admin endpoint on listeners the caller bound, until `shutdown`.
//! Tests start the real server this way on port 0.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::authz::{AuthorizationServer, AuthzService};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, RedisMode, SessionStorage};
use crate::crypto::KeyRing;
use crate::flow::Flow;
use crate::oidc::IdentityProvider;
use crate::oidc::provider::{Provider, ProviderSettings};
use crate::secret::Secret;
use crate::session::memory::MemoryStore;
use crate::session::redis::{RedisStore, RedisTopology};
use crate::session::{SessionStore, Sessions};

/// The assembled service.
pub struct App {
    pub flow: Arc<Flow>,
    trust_forwarded_headers: bool,
}

impl App {
    /// Builds everything from `config` with the wall clock and the real IdP client; starts
    /// discovery in the background (so this needs a Tokio runtime).
    pub fn build(config: Config) -> Result<App, String> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let provider = Provider::new(ProviderSettings::from_config(&config), Arc::clone(&clock))?;
        provider.spawn_discovery();
        let store: Arc<dyn SessionStore> = match &config.session_storage {
            SessionStorage::Memory => {
                Arc::new(MemoryStore::with_max_bytes(config.memory_max_bytes))
            }
            SessionStorage::Redis(redis) => {
                let exposed =
                    |urls: &[Secret]| urls.iter().map(|u| u.expose().to_owned()).collect();
                let topology = match &redis.mode {
                    RedisMode::Single { url } => RedisTopology::Single {
                        url: url.expose().to_owned(),
                    },
                    RedisMode::Cluster { urls } => RedisTopology::Cluster {
                        urls: exposed(urls),
                    },
                    RedisMode::Sentinel {
                        urls,
                        master_name,
                        db,
                        username,
                        password,
                    } => RedisTopology::Sentinel {
                        urls: exposed(urls),
                        master_name: master_name.clone(),
                        db: *db,
                        username: username.clone(),
                        password: password.as_ref().map(|p| p.expose().to_owned()),
                    },
                };
                Arc::new(RedisStore::with_topology(
                    &topology,
                    &redis.key_prefix,
                    redis.pool_size,
                    redis.command_timeout,
                )?)
            }
        };
        Self::assemble(config, store, provider, clock)
    }

    /// Builds with the given parts; tests pass their own store, IdP and clock.
    pub fn assemble(
        config: Config,
        store: Arc<dyn SessionStore>,
        provider: Arc<dyn IdentityProvider>,
        clock: Arc<dyn Clock>,
    ) -> Result<App, String> {
        let keys = Arc::new(KeyRing::from_secrets(&config.session_secrets)?);
        let sessions = Sessions::new(store, Arc::clone(&keys));
        let trust_forwarded_headers = config.trust_forwarded_headers;
        let flow = Flow::new(Arc::new(config), keys, sessions, provider, clock);
        Ok(App {
            flow: Arc::new(flow),
            trust_forwarded_headers,
        })
    }
}

/// Serves until `shutdown` completes, then drains.
pub async fn run(
    grpc_listener: TcpListener,
    admin_listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AuthorizationServer<AuthzService>>()
        .await;
    let authz = AuthzService::new(Arc::clone(&app.flow), app.trust_forwarded_headers);

    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = axum::serve(admin_listener, crate::admin::router(Arc::clone(&app.flow)))
        .with_graceful_shutdown(async {
            let _ = admin_stopped.await;
        });
    let admin_task = tokio::spawn(async move { admin.await });

    let grpc = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(AuthorizationServer::new(authz))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await;
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    grpc.map_err(|error| format!("gRPC server failed: {error}"))
}
