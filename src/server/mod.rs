//! Wiring: `App::build` turns a `Config` into the running parts (keys, store, one IdP client and
//! flow per provider, the gateway over them); `run` serves gRPC Check and the admin endpoint on
//! listeners the caller bound, until `shutdown`, then drains (NOT_SERVING while still answering,
//! then a bounded wait for Checks in flight).
//! Tests start the real server this way on port 0. The gRPC listener may be a Unix socket
//! (`GrpcListener::bind`), so that only Envoy can ask for Checks whose answers carry tokens; a TCP
//! one is bound with `SO_REUSEPORT`, so a new process can serve before the old one has left.

mod flows;
mod listener;
mod store;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::StreamExt;

use crate::authz::{AuthorizationServer, AuthzService};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, DEFAULT_PROVIDER, ShutdownPeriods};
use crate::crypto::KeyRingError;
use crate::flow::Flow;
use crate::gateway::Gateway;
use crate::grpc_socket::UnvectoredWrites;
use crate::metrics::Metrics;
use crate::oidc::IdentityProvider;
use crate::oidc::provider::{Provider, ProviderError, ProviderSettings};
use crate::readiness::Readiness;
use crate::reload::Reloader;
use crate::session::SessionStore;
use crate::session::redis::RedisConfigError;
pub(crate) use flows::build_flows;
pub use listener::{GrpcListener, bind_reusable};
use store::build_store;

/// The assembled service.
pub struct App {
    pub gateway: Arc<Gateway>,
    /// The `default` provider's flow at start (the only one without `providers:`); after a
    /// reload, `gateway.default_flow()` is the one in force.
    pub flow: Arc<Flow>,
    trust_forwarded_headers: bool,
    shutdown: ShutdownPeriods,
    /// Applies a re-read config to `gateway` (SIGHUP).
    reloader: Arc<Reloader>,
}

/// Why the service could not be built from a config: printed at start (`oidc-authz: ...`, exit
/// 64), or a reload's refusal. Fixed texts and config names: never a secret or a URL.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("provider `{name}`: {error}")]
    Provider { name: String, error: ProviderError },
    #[error("no IdP client given for provider `{0}`")]
    NoIdpClient(String),
    #[error(transparent)]
    Keys(#[from] KeyRingError),
    #[error(transparent)]
    Store(#[from] RedisConfigError),
}

/// Why serving stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
#[error("gRPC server failed: {0}")]
pub struct ServeError(#[from] tonic::transport::Error);

/// Each provider's IdP client, by provider name.
pub type IdentityProviders = Vec<(String, Arc<dyn IdentityProvider>)>;

impl App {
    /// Builds everything from `config` with the wall clock and the real IdP clients (one per
    /// provider); starts their discovery in the background (so this needs a Tokio runtime).
    pub fn build(config: Config) -> Result<App, BuildError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut providers: IdentityProviders = Vec::new();
        let mut discovery_tasks = Vec::new();
        for name in config.provider_names() {
            let provider = start_provider(&config, name, &clock)?;
            discovery_tasks.push((name.to_owned(), provider.spawn_discovery().abort_handle()));
            providers.push((name.to_owned(), provider));
        }
        let store = build_store(&config)?;
        let app = Self::assemble_providers(config, store, providers, clock)?;
        for (name, task) in discovery_tasks {
            app.reloader.discovery_started(&name, task);
        }
        Ok(app)
    }

    /// Builds with the given parts for a config with only the `default` provider; tests pass
    /// their own store, IdP and clock.
    pub fn assemble(
        config: Config,
        store: Arc<dyn SessionStore>,
        provider: Arc<dyn IdentityProvider>,
        clock: Arc<dyn Clock>,
    ) -> Result<App, BuildError> {
        Self::assemble_providers(
            config,
            store,
            vec![(DEFAULT_PROVIDER.to_owned(), provider)],
            clock,
        )
    }

    /// Builds with the given parts: one flow per configured provider, each with the IdP client
    /// `providers` names for it, its own cookies and its own namespace in the shared `store`.
    pub fn assemble_providers(
        config: Config,
        store: Arc<dyn SessionStore>,
        providers: IdentityProviders,
        clock: Arc<dyn Clock>,
    ) -> Result<App, BuildError> {
        let metrics = Arc::new(Metrics::default());
        let flows = build_flows(&config, &store, &providers, &clock, &metrics)?;
        let gateway = Arc::new(Gateway::new(flows, metrics));
        let reloader = Arc::new(Reloader::new(
            Arc::clone(&gateway),
            config.clone(),
            store,
            providers,
            clock,
        ));
        Ok(App {
            flow: gateway.default_flow(),
            gateway,
            trust_forwarded_headers: config.trust_forwarded_headers,
            shutdown: config.shutdown,
            reloader,
        })
    }

    /// What the signal handler calls on SIGHUP: re-reads the config and applies it to this app's
    /// gateway, or keeps the one in force (`reload.rs`).
    pub fn reloader(&self) -> Arc<Reloader> {
        Arc::clone(&self.reloader)
    }
}

/// The real IdP client of the provider `name` of `config`.
fn start_provider(
    config: &Config,
    name: &str,
    clock: &Arc<dyn Clock>,
) -> Result<Arc<Provider>, BuildError> {
    let provider_config = config.for_provider(name).expect("a configured provider");
    Provider::new(
        ProviderSettings::from_config(&provider_config),
        Arc::clone(clock),
    )
    .map_err(|error| BuildError::Provider {
        name: name.to_owned(),
        error,
    })
}

/// Serves until `shutdown` completes, then drains: health and `/readyz` say NOT_SERVING / draining
/// at once, Checks are still answered for `shutdown_drain_period` (long enough for Envoy's health
/// checks to move traffic elsewhere), then the listener closes (connections get an HTTP/2 GOAWAY)
/// and Checks in flight get `shutdown_grace_period` to finish; whatever is left after that is
/// dropped, and `run` returns. gRPC health is NOT_SERVING until the IdP has been discovered.
pub async fn run(
    grpc_listener: impl Into<GrpcListener>,
    admin_listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let readiness = Arc::new(Readiness::new(health_reporter).await);
    let discovery_watch = tokio::spawn(serve_once_discovered(
        Arc::clone(&app.gateway),
        Arc::clone(&readiness),
    ));
    let admin = AdminServer::start(admin_listener, &app.gateway, &readiness);
    let authz = AuthzService::new(Arc::clone(&app.gateway), app.trust_forwarded_headers);
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(AuthorizationServer::new(authz));
    let (stop_accepting, accepting_stopped) = oneshot::channel::<()>();
    let grpc = serve_grpc(router, grpc_listener.into(), async {
        let _ = accepting_stopped.await;
    });
    let served = drain_on(shutdown, grpc, &readiness, app.shutdown, stop_accepting).await;
    discovery_watch.abort();
    admin.stop().await;
    Ok(served?)
}

/// The admin endpoint (`/healthz`, `/readyz`, `/metrics`) on a task of its own.
struct AdminServer {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl AdminServer {
    fn start(listener: TcpListener, gateway: &Arc<Gateway>, readiness: &Arc<Readiness>) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let router = crate::admin::router(Arc::clone(gateway), Arc::clone(readiness));
        let admin = axum::serve(listener, router).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        let task = tokio::spawn(async move { admin.await });
        AdminServer { stop, task }
    }

    /// Stops it and waits until it has.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Serves gRPC on `listener` until `stop_accepting` completes and the Checks in flight are
/// answered; a Unix socket's file is removed then (if still ours).
async fn serve_grpc(
    router: tonic::transport::server::Router,
    listener: GrpcListener,
    stop_accepting: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    match listener {
        GrpcListener::Tcp(listener) => {
            let incoming = tonic::transport::server::TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .map(|accepted| accepted.map(UnvectoredWrites));
            router
                .serve_with_incoming_shutdown(incoming, stop_accepting)
                .await
        }
        GrpcListener::Unix {
            listener,
            path,
            inode,
        } => {
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener)
                .map(|accepted| accepted.map(UnvectoredWrites));
            let served = router
                .serve_with_incoming_shutdown(incoming, stop_accepting)
                .await;
            listener::remove_own_socket(&path, inode);
            served
        }
    }
}

/// Runs `grpc` until `shutdown`; then NOT_SERVING, the drain period, `stop_accepting`, and at most
/// the grace period for `grpc` to finish the Checks in flight.
async fn drain_on<E>(
    shutdown: impl Future<Output = ()>,
    grpc: impl Future<Output = Result<(), E>>,
    readiness: &Readiness,
    periods: ShutdownPeriods,
    stop_accepting: tokio::sync::oneshot::Sender<()>,
) -> Result<(), E> {
    let mut grpc = std::pin::pin!(grpc);
    tokio::select! {
        served = &mut grpc => return served,
        () = shutdown => {}
    }
    readiness.start_draining().await;
    tracing::info!(drain = ?periods.drain, grace = ?periods.grace, "shutting down: NOT_SERVING, still answering Checks while Envoy moves traffic");
    tokio::select! {
        served = &mut grpc => return served,
        () = tokio::time::sleep(periods.drain) => {}
    }
    let _ = stop_accepting.send(());
    match tokio::time::timeout(periods.grace, grpc).await {
        Ok(served) => served,
        Err(_) => {
            tracing::warn!(grace = ?periods.grace, "Checks still in flight at the end of shutdown_grace_period; exiting without them");
            Ok(())
        }
    }
}

/// SERVING once the IdP has been discovered: before that, a Check that needs the IdP can only
/// answer "could not decide", so Envoy should prefer a replica that can. Polls every 50 ms
/// (discovery is the provider's background task); stops once discovered, or when `run` aborts it.
/// Asks the gateway each time: a reload may have put in force a default provider already
/// discovered, replacing one that never will be.
async fn serve_once_discovered(gateway: Arc<Gateway>, readiness: Arc<Readiness>) {
    const POLL: std::time::Duration = std::time::Duration::from_millis(50);
    while gateway.default_flow().provider().metadata().is_none() {
        tokio::time::sleep(POLL).await;
    }
    readiness.mark_discovered().await;
}
