//! Wiring: `App::build` turns a `Config` into the running parts (keys, store, one IdP client and
//! flow per provider, the gateway over them); `run` serves gRPC Check and the admin endpoint on
//! listeners the caller bound, until `shutdown`, then drains (NOT_SERVING while still answering,
//! then a bounded wait for Checks in flight).
//! Tests start the real server this way on port 0. The gRPC listener may be a Unix socket
//! (`GrpcListener::bind`), so that only Envoy can ask for Checks whose answers carry tokens; a TCP
//! one is bound with `SO_REUSEPORT`, so a new process can serve before the old one has left.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio_stream::StreamExt;

use crate::authz::{AuthorizationServer, AuthzService};
use crate::clock::{Clock, SystemClock};
use crate::config::{
    Config, DEFAULT_PROVIDER, ListenAddress, RedisMode, RedisTlsFiles, SessionStorage,
    ShutdownPeriods,
};
use crate::crypto::{KeyRing, KeyRingError};
use crate::flow::Flow;
use crate::gateway::{Gateway, NamedFlow};
use crate::grpc_socket::UnvectoredWrites;
use crate::metrics::Metrics;
use crate::oidc::IdentityProvider;
use crate::oidc::provider::{Provider, ProviderError, ProviderSettings};
use crate::readiness::Readiness;
use crate::reload::Reloader;
use crate::secret::Secret;
use crate::session::memory::MemoryStore;
use crate::session::redis::{RedisConfigError, RedisStore, RedisTls, RedisTopology};
use crate::session::{Keep, SessionStore, Sessions};

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
            let provider_config = config.for_provider(name).expect("a configured provider");
            let provider = Provider::new(
                ProviderSettings::from_config(&provider_config),
                Arc::clone(&clock),
            )
            .map_err(|error| BuildError::Provider {
                name: name.to_owned(),
                error,
            })?;
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
        let provider = providers
            .iter()
            .find(|(given, _)| given == name)
            .map(|(_, provider)| Arc::clone(provider))
            .ok_or_else(|| BuildError::NoIdpClient(name.to_owned()))?;
        let sessions =
            Sessions::new(Arc::clone(store), Arc::clone(&keys)).with_cache(cache.clone());
        let sessions = if name == DEFAULT_PROVIDER {
            sessions
        } else {
            sessions.in_namespace(name)
        };
        let provider_config = config.for_provider(name).expect("a configured provider");
        let flow = Flow::new(
            Arc::new(provider_config),
            Arc::clone(&keys),
            sessions,
            provider,
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

/// The session store `config` names. Built once: a reload keeps it (`reload.rs`).
fn build_store(config: &Config) -> Result<Arc<dyn SessionStore>, RedisConfigError> {
    let store: Arc<dyn SessionStore> = match &config.session_storage {
        SessionStorage::Memory => Arc::new(MemoryStore::with_max_bytes(config.memory_max_bytes)),
        SessionStorage::Redis(redis) => Arc::new(RedisStore::with_tls(
            &redis_topology(&redis.mode),
            &redis_tls(&redis.tls),
            &redis.key_prefix,
            redis.pool_size,
            redis.command_timeout,
        )?),
    };
    Ok(store)
}

/// The store's view of `redis.url` / `cluster_urls` / `sentinel`, secrets exposed for the client.
fn redis_topology(mode: &RedisMode) -> RedisTopology {
    let exposed = |urls: &[Secret]| urls.iter().map(|u| u.expose().to_owned()).collect();
    match mode {
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
    }
}

/// The store's view of `redis.ca_file` / `cert_file` / `key_file`.
fn redis_tls(files: &RedisTlsFiles) -> RedisTls {
    RedisTls {
        ca_pem: files.ca_pem.clone().map(String::into_bytes),
        client_pem: files
            .client_cert_pem
            .clone()
            .zip(files.client_key_pem.as_ref())
            .map(|(cert, key)| (cert.into_bytes(), key.expose().as_bytes().to_vec())),
    }
}

/// Where gRPC Check is served: a TCP port, or a Unix socket whose file is removed when serving ends.
pub enum GrpcListener {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        path: PathBuf,
        /// The socket file's inode: at exit the file is removed only if it is still ours, not one
        /// a newer process (started while this one drained) put in its place.
        inode: u64,
    },
}

impl From<TcpListener> for GrpcListener {
    fn from(listener: TcpListener) -> Self {
        GrpcListener::Tcp(listener)
    }
}

impl GrpcListener {
    /// Binds `address`. A socket file left by a previous run is replaced; any other file at the
    /// path is left alone (and binding fails).
    pub async fn bind(address: &ListenAddress) -> std::io::Result<GrpcListener> {
        match address {
            ListenAddress::Tcp(address) => Ok(GrpcListener::Tcp(bind_reusable(*address)?)),
            ListenAddress::Unix(path) => {
                use std::os::unix::fs::MetadataExt;
                remove_stale_socket(path)?;
                let listener = UnixListener::bind(path)?;
                Ok(GrpcListener::Unix {
                    listener,
                    path: path.clone(),
                    inode: std::fs::symlink_metadata(path)?.ino(),
                })
            }
        }
    }
}

/// Pending connections the kernel queues before `accept` (tokio's `TcpListener::bind` default).
const LISTEN_BACKLOG: u32 = 1024;

/// Binds `address` with `SO_REUSEPORT`: while an old process drains, a new one can bind the same
/// port and the kernel spreads new connections over both; when the old one closes its listener,
/// all go to the new one. Linux allows this only between sockets of the same user, so another
/// user cannot take over the port. Used for the admin port too: the new process must start while
/// the old one still answers `/readyz` ("draining").
pub fn bind_reusable(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Removes the socket file at `path` if it is the one this process bound (same inode).
fn remove_own_socket(path: &Path, inode: u64) {
    use std::os::unix::fs::MetadataExt;
    if std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.ino() == inode) {
        let _ = std::fs::remove_file(path);
    }
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
    let authz = AuthzService::new(Arc::clone(&app.gateway), app.trust_forwarded_headers);

    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_router = crate::admin::router(Arc::clone(&app.gateway), Arc::clone(&readiness));
    let admin = axum::serve(admin_listener, admin_router).with_graceful_shutdown(async {
        let _ = admin_stopped.await;
    });
    let admin_task = tokio::spawn(async move { admin.await });

    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(AuthorizationServer::new(authz));
    let (stop_accepting, accepting_stopped) = tokio::sync::oneshot::channel::<()>();
    let stop_accepting_signal = async {
        let _ = accepting_stopped.await;
    };
    let grpc = async move {
        match grpc_listener.into() {
            GrpcListener::Tcp(listener) => {
                let incoming = tonic::transport::server::TcpIncoming::from(listener)
                    .with_nodelay(Some(true))
                    .map(|accepted| accepted.map(UnvectoredWrites));
                router
                    .serve_with_incoming_shutdown(incoming, stop_accepting_signal)
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
                    .serve_with_incoming_shutdown(incoming, stop_accepting_signal)
                    .await;
                remove_own_socket(&path, inode);
                served
            }
        }
    };
    let served = drain_on(shutdown, grpc, &readiness, app.shutdown, stop_accepting).await;
    discovery_watch.abort();
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    Ok(served?)
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
