//! Wiring: `App::build` turns a `Config` into the running parts (keys, store, IdP, flow);
//! `run` serves gRPC Check and the admin endpoint on listeners the caller bound, until `shutdown`.
//! Tests start the real server this way on port 0. The gRPC listener may be a Unix socket
//! (`GrpcListener::bind`), so that only Envoy can ask for Checks whose answers carry tokens.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{TcpListener, UnixListener};

use crate::authz::{AuthorizationServer, AuthzService};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ListenAddress, RedisMode, SessionStorage};
use crate::crypto::KeyRing;
use crate::flow::Flow;
use crate::oidc::IdentityProvider;
use crate::oidc::provider::{Provider, ProviderSettings};
use crate::secret::Secret;
use crate::session::memory::MemoryStore;
use crate::session::redis::{RedisStore, RedisTls, RedisTopology};
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
        let provider = Provider::new(ProviderSettings::from_config(&config), Arc::clone(&clock))
            .map_err(|error| error.to_string())?;
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
    let authz = AuthzService::new(Arc::clone(&app.flow), app.trust_forwarded_headers);

    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = axum::serve(admin_listener, crate::admin::router(Arc::clone(&app.flow)))
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
