//! Wiring: `App::build` turns a `Config` into the running parts (keys, store, one IdP client and
//! flow per provider, the gateway over them);
//! `run` serves gRPC Check and the admin endpoint on listeners the caller bound, until `shutdown`.
//! Tests start the real server this way on port 0. The gRPC listener may be a Unix socket
//! (`GrpcListener::bind`), so that only Envoy can ask for Checks whose answers carry tokens.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{TcpListener, UnixListener};

use crate::authz::{AuthorizationServer, AuthzService};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, DEFAULT_PROVIDER, ListenAddress, RedisMode, SessionStorage};
use crate::crypto::KeyRing;
use crate::flow::Flow;
use crate::gateway::{Gateway, NamedFlow};
use crate::metrics::Metrics;
use crate::oidc::IdentityProvider;
use crate::oidc::provider::{Provider, ProviderSettings};
use crate::secret::Secret;
use crate::session::memory::MemoryStore;
use crate::session::redis::{RedisStore, RedisTls, RedisTopology};
use crate::session::{SessionStore, Sessions};

/// The assembled service.
pub struct App {
    pub gateway: Arc<Gateway>,
    /// The `default` provider's flow (the only one without `providers:`).
    pub flow: Arc<Flow>,
    trust_forwarded_headers: bool,
}

/// Each provider's IdP client, by provider name.
pub type IdentityProviders = Vec<(String, Arc<dyn IdentityProvider>)>;

impl App {
    /// Builds everything from `config` with the wall clock and the real IdP clients (one per
    /// provider); starts their discovery in the background (so this needs a Tokio runtime).
    pub fn build(config: Config) -> Result<App, String> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut providers: IdentityProviders = Vec::new();
        for name in config.provider_names() {
            let provider_config = config.for_provider(name).expect("a configured provider");
            let provider = Provider::new(
                ProviderSettings::from_config(&provider_config),
                Arc::clone(&clock),
            )
            .map_err(|error| format!("provider `{name}`: {error}"))?;
            provider.spawn_discovery();
            providers.push((name.to_owned(), provider));
        }
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
                let tls = RedisTls {
                    ca_pem: redis.tls.ca_pem.clone().map(String::into_bytes),
                    client_pem: redis
                        .tls
                        .client_cert_pem
                        .clone()
                        .zip(redis.tls.client_key_pem.as_ref())
                        .map(|(cert, key)| (cert.into_bytes(), key.expose().as_bytes().to_vec())),
                };
                Arc::new(RedisStore::with_tls(
                    &topology,
                    &tls,
                    &redis.key_prefix,
                    redis.pool_size,
                    redis.command_timeout,
                )?)
            }
        };
        Self::assemble_providers(config, store, providers, clock)
    }

    /// Builds with the given parts for a config with only the `default` provider; tests pass
    /// their own store, IdP and clock.
    pub fn assemble(
        config: Config,
        store: Arc<dyn SessionStore>,
        provider: Arc<dyn IdentityProvider>,
        clock: Arc<dyn Clock>,
    ) -> Result<App, String> {
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
        mut providers: IdentityProviders,
        clock: Arc<dyn Clock>,
    ) -> Result<App, String> {
        let keys = Arc::new(KeyRing::from_secrets(&config.session_secrets)?);
        let metrics = Arc::new(Metrics::default());
        let session_cookie_names = config.session_cookie_names();
        let mut flows = Vec::new();
        for name in config.provider_names() {
            let position = providers
                .iter()
                .position(|(given, _)| given == name)
                .ok_or_else(|| format!("no IdP client given for provider `{name}`"))?;
            let (_, provider) = providers.swap_remove(position);
            let sessions = Sessions::new(Arc::clone(&store), Arc::clone(&keys));
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
                Arc::clone(&clock),
            )
            .with_metrics(Arc::clone(&metrics))
            .hiding_cookies_of(&session_cookie_names);
            flows.push(NamedFlow {
                name: name.to_owned(),
                flow: Arc::new(flow),
            });
        }
        let gateway = Gateway::new(flows, metrics);
        Ok(App {
            flow: Arc::clone(gateway.default_flow()),
            gateway: Arc::new(gateway),
            trust_forwarded_headers: config.trust_forwarded_headers,
        })
    }
}

/// Where gRPC Check is served: a TCP port, or a Unix socket whose file is removed when serving ends.
pub enum GrpcListener {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        path: PathBuf,
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
            ListenAddress::Tcp(address) => Ok(GrpcListener::Tcp(TcpListener::bind(address).await?)),
            ListenAddress::Unix(path) => {
                remove_stale_socket(path)?;
                Ok(GrpcListener::Unix {
                    listener: UnixListener::bind(path)?,
                    path: path.clone(),
                })
            }
        }
    }
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

/// Serves until `shutdown` completes, then drains.
pub async fn run(
    grpc_listener: impl Into<GrpcListener>,
    admin_listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AuthorizationServer<AuthzService>>()
        .await;
    let authz = AuthzService::new(Arc::clone(&app.gateway), app.trust_forwarded_headers);

    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = axum::serve(
        admin_listener,
        crate::admin::router(Arc::clone(&app.gateway)),
    )
    .with_graceful_shutdown(async {
        let _ = admin_stopped.await;
    });
    let admin_task = tokio::spawn(async move { admin.await });

    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(AuthorizationServer::new(authz));
    let grpc = match grpc_listener.into() {
        GrpcListener::Tcp(listener) => {
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        GrpcListener::Unix { listener, path } => {
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            let served = router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await;
            let _ = std::fs::remove_file(path);
            served
        }
    };
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    grpc.map_err(|error| format!("gRPC server failed: {error}"))
}
