//! Test harness: starts the real oidc-authz server on 127.0.0.1:0 against a `FakeIdp`, and a
//! `Browser` that speaks gRPC Check with a cookie jar, as Envoy would on its behalf.
#![allow(dead_code)]

pub mod binary;
pub mod idp;
pub mod log;
pub mod redis;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use oidc_authz::clock::{Clock, SystemClock};
use oidc_authz::config::load_from_str;
use oidc_authz::oidc::provider::{Provider, ProviderSettings};
use oidc_authz::server::{self, App, IdentityProviders};
use oidc_authz::session::memory::MemoryStore;
use oidc_authz::session::{
    ForwardingStore, InvalidationListener, SessionStore, StoreCommand, StoreError,
};
use tonic::transport::Channel;

pub use idp::FakeIdp;

pub const KEY_A: &str = "key-a-0123456789abcdef0123456789abcdef";
pub const KEY_B: &str = "key-b-0123456789abcdef0123456789abcdef";

/// A store that can be switched off, to test failing closed.
pub struct SwitchableStore {
    inner: Arc<dyn SessionStore>,
    pub down: AtomicBool,
    /// `get` waits 30 s before answering: a store that hangs (a Check stuck in flight).
    pub stall_reads: AtomicBool,
}

impl SwitchableStore {
    pub fn new(inner: Arc<dyn SessionStore>) -> Arc<Self> {
        Arc::new(SwitchableStore {
            inner,
            down: AtomicBool::new(false),
            stall_reads: AtomicBool::new(false),
        })
    }

    pub fn memory() -> Arc<Self> {
        Self::new(Arc::new(MemoryStore::new()))
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("switched off by the test".into()))
        } else {
            Ok(())
        }
    }
}

impl ForwardingStore for SwitchableStore {
    fn inner(&self) -> &dyn SessionStore {
        &*self.inner
    }

    async fn forward<T: Send>(
        &self,
        command: StoreCommand,
        run: impl Future<Output = Result<T, StoreError>> + Send,
    ) -> Result<T, StoreError> {
        self.check()?;
        if command == StoreCommand::Get && self.stall_reads.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        run.await
    }

    /// No change feed, whatever the store under it has: a session cache would serve sessions
    /// while the store is switched off.
    fn watch_changes(&self, _prefix: &str, _listener: Arc<dyn InvalidationListener>) -> bool {
        false
    }
}

/// A running oidc-authz.
pub struct Authz {
    /// The running server's flow, for tests that call `Flow::check` directly (no gRPC).
    pub flow: Arc<oidc_authz::flow::Flow>,
    /// What SIGHUP calls in the binary: re-reads a config file and puts it in force.
    pub reloader: Arc<oidc_authz::reload::Reloader>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    client: AuthorizationClient<Channel>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), server::ServeError>>>,
}

impl Authz {
    /// Starts oidc-authz with `extra` YAML on top of a config for `idp`, sessions in `store`.
    pub async fn start(idp: &FakeIdp, extra: &str, store: Arc<dyn SessionStore>) -> Authz {
        Self::start_with_clock(idp, extra, store, Arc::new(SystemClock)).await
    }

    /// Like `start`, with `session_secret` given in `extra` if wanted, and a clock of the test's.
    pub async fn start_with_clock(
        idp: &FakeIdp,
        extra: &str,
        store: Arc<dyn SessionStore>,
        clock: Arc<dyn Clock>,
    ) -> Authz {
        let secret = if extra.contains("session_secret") {
            String::new()
        } else {
            format!("session_secret: [{KEY_A}]\n")
        };
        let yaml = format!(
            "issuer: {}\nclient_id: {}\nclient_secret: {}\n{secret}{extra}",
            idp.issuer,
            idp::CLIENT_ID,
            idp::CLIENT_SECRET
        );
        Self::start_full(&yaml, store, true, clock, None).await
    }

    /// Like `start`, serving gRPC on `grpc_listener` (e.g. one bound with `SO_REUSEPORT`).
    pub async fn start_on(
        idp: &FakeIdp,
        extra: &str,
        store: Arc<dyn SessionStore>,
        grpc_listener: tokio::net::TcpListener,
    ) -> Authz {
        let yaml = format!(
            "issuer: {}\nclient_id: {}\nclient_secret: {}\nsession_secret: [{KEY_A}]\n{extra}",
            idp.issuer,
            idp::CLIENT_ID,
            idp::CLIENT_SECRET
        );
        Self::start_full(
            &yaml,
            store,
            true,
            Arc::new(SystemClock),
            Some(grpc_listener),
        )
        .await
    }

    pub async fn start_with_yaml(
        yaml: &str,
        store: Arc<dyn SessionStore>,
        wait_for_discovery: bool,
    ) -> Authz {
        Self::start_full(yaml, store, wait_for_discovery, Arc::new(SystemClock), None).await
    }

    async fn start_full(
        yaml: &str,
        store: Arc<dyn SessionStore>,
        wait_for_discovery: bool,
        clock: Arc<dyn Clock>,
        grpc_listener: Option<tokio::net::TcpListener>,
    ) -> Authz {
        let discover: &[&str] = if wait_for_discovery { &["*"] } else { &[] };
        Self::start_discovering(
            yaml,
            store,
            discover,
            !wait_for_discovery,
            clock,
            grpc_listener,
        )
        .await
    }

    /// Starts with one IdP client per configured provider; waits for the discovery of the
    /// providers named in `discover` (`*`: all). The others are discovered in the background as
    /// `App::build` does when `in_background`, else never (an IdP that is down from the start).
    pub async fn start_discovering(
        yaml: &str,
        store: Arc<dyn SessionStore>,
        discover: &[&str],
        in_background: bool,
        clock: Arc<dyn Clock>,
        grpc_listener: Option<tokio::net::TcpListener>,
    ) -> Authz {
        // Tests stop servers often and have no Envoy to move traffic: no drain unless asked for.
        let yaml = if yaml.contains("shutdown_drain_period") {
            yaml.to_owned()
        } else {
            format!("{yaml}\nshutdown_drain_period: 0\n")
        };
        let (config, _) = load_from_str(&yaml, "test.yaml", Vec::new()).expect("valid test config");
        let mut providers: IdentityProviders = Vec::new();
        for name in config.provider_names() {
            let provider_config = config.for_provider(name).unwrap();
            let settings = ProviderSettings {
                http_timeout: Duration::from_secs(2),
                ..ProviderSettings::from_config(&provider_config)
            };
            let provider = Provider::new(settings, Arc::clone(&clock)).unwrap();
            if discover.iter().any(|d| *d == "*" || *d == name) {
                provider
                    .discover()
                    .await
                    .expect("discovery of the fake IdP");
            } else if in_background {
                provider.spawn_discovery();
            }
            providers.push((name.to_owned(), provider));
        }
        let app = App::assemble_providers(config, store, providers, clock).unwrap();
        let flow = Arc::clone(&app.flow);
        let reloader = app.reloader();
        let grpc = match grpc_listener {
            Some(listener) => listener,
            None => tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, admin_addr) = (grpc.local_addr().unwrap(), admin.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::run(grpc, admin, app, async {
            let _ = stopped.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(20));
        let client = AuthorizationClient::new(channel.connect_lazy());
        Authz {
            flow,
            reloader,
            addr,
            admin: admin_addr,
            client,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Sends the shutdown signal (as SIGTERM would) and returns at once; `stopped_within` waits.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits (at most `bound`) for `run` to return after `begin_shutdown`; `None` on timeout.
    pub async fn stopped_within(
        &mut self,
        bound: Duration,
    ) -> Option<Result<(), server::ServeError>> {
        let task = self.task.as_mut()?;
        let outcome = tokio::time::timeout(bound, task).await.ok()?;
        self.task = None;
        Some(outcome.unwrap())
    }

    /// A client of this server's `grpc.health.v1` service.
    pub fn health_client(&self) -> tonic_health::pb::health_client::HealthClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(2));
        tonic_health::pb::health_client::HealthClient::new(channel.connect_lazy())
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server stops within 10 s")
                .unwrap()
                .unwrap();
        }
    }

    pub fn browser(&self) -> Browser {
        Browser {
            client: self.client.clone(),
            cookies: BTreeMap::new(),
            origin_host: "app.test".into(),
            route_policy: None,
        }
    }
}

/// What Envoy would do with a Check answer.
#[derive(Debug)]
pub enum Outcome {
    /// Forwarded to the upstream with these header changes.
    Allowed {
        set: Vec<HeaderValueOption>,
        removed: Vec<String>,
        response_headers: Vec<(String, String)>,
    },
    /// Answered by Envoy on our behalf.
    Denied {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// The Check failed: Envoy answers with status_on_error.
    Error(tonic::Status),
}

impl Outcome {
    pub fn status(&self) -> u16 {
        match self {
            Outcome::Allowed { .. } => 200,
            Outcome::Denied { status, .. } => *status,
            Outcome::Error(_) => 503,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        match self {
            Outcome::Denied { headers, .. }
            | Outcome::Allowed {
                response_headers: headers,
                ..
            } => headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            Outcome::Error(_) => None,
        }
    }

    pub fn location(&self) -> &str {
        self.header("location")
            .unwrap_or_else(|| panic!("expected a redirect, got {self:?}"))
    }

    /// The value set on the upstream request for `name`.
    pub fn upstream(&self, name: &str) -> Option<&str> {
        match self {
            Outcome::Allowed { set, .. } => set
                .iter()
                .filter_map(|o| o.header.as_ref())
                .find(|h| h.key.eq_ignore_ascii_case(name))
                .map(|h| h.value.as_str()),
            _ => None,
        }
    }
}

/// A browser (cookie jar) talking to oidc-authz through Check, as Envoy would forward it.
#[derive(Clone)]
pub struct Browser {
    client: AuthorizationClient<Channel>,
    pub cookies: BTreeMap<String, String>,
    pub origin_host: String,
    /// The policy Envoy's route names (`context_extensions: { policy: ... }`); `None`: none.
    pub route_policy: Option<String>,
}

#[derive(Default)]
pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a str,
    /// The route's `context_extensions`, as Envoy's per-route ext_authz settings send them.
    pub context_extensions: Vec<(&'a str, &'a str)>,
}

impl<'a> Req<'a> {
    /// A top-level page load.
    pub fn navigate(path: &'a str) -> Self {
        Req {
            method: "GET",
            path,
            headers: vec![
                ("accept", "text/html,application/xhtml+xml"),
                ("sec-fetch-mode", "navigate"),
            ],
            body: "",
            context_extensions: Vec::new(),
        }
    }

    /// On a route whose ext_authz settings carry `context_extensions: { key: value }`.
    pub fn on_route(mut self, key: &'a str, value: &'a str) -> Self {
        self.context_extensions.push((key, value));
        self
    }

    /// A script or API client asking for JSON.
    pub fn api(path: &'a str) -> Self {
        Req {
            method: "GET",
            path,
            headers: vec![("accept", "application/json")],
            ..Default::default()
        }
    }

    pub fn with_header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl Browser {
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Sends through another server (a restarted or rotated one), keeping this jar.
    pub async fn send_via(&mut self, authz: &Authz, request: Req<'_>) -> Outcome {
        self.client = authz.client.clone();
        self.send(request).await
    }

    pub async fn send(&mut self, request: Req<'_>) -> Outcome {
        let mut headers: std::collections::HashMap<String, String> = request
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        if !self.cookies.is_empty() {
            headers.insert("cookie".into(), self.cookie_header());
        }
        headers.insert(":authority".into(), self.origin_host.clone());
        let check = CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(HttpRequest {
                        method: request.method.into(),
                        path: request.path.into(),
                        host: self.origin_host.clone(),
                        scheme: "http".into(),
                        headers,
                        body: request.body.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                context_extensions: request
                    .context_extensions
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .chain(
                        self.route_policy
                            .iter()
                            .map(|name| ("policy".to_string(), name.clone())),
                    )
                    .collect(),
                ..Default::default()
            }),
        };
        let response = match self.client.check(check).await {
            Ok(response) => response.into_inner(),
            Err(status) => return Outcome::Error(status),
        };
        let pairs = |options: &[HeaderValueOption]| -> Vec<(String, String)> {
            options
                .iter()
                .filter_map(|o| o.header.as_ref())
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect()
        };
        let outcome = match response.http_response {
            Some(HttpResponse::OkResponse(ok)) => Outcome::Allowed {
                response_headers: pairs(&ok.response_headers_to_add),
                set: ok.headers,
                removed: ok.headers_to_remove,
            },
            Some(HttpResponse::DeniedResponse(denied)) => Outcome::Denied {
                status: denied.status.map(|s| s.code as u16).unwrap_or(403),
                headers: pairs(&denied.headers),
                body: denied.body,
            },
            other => panic!("unexpected Check answer {other:?}"),
        };
        let set_cookies: Vec<String> = match &outcome {
            Outcome::Denied { headers, .. }
            | Outcome::Allowed {
                response_headers: headers,
                ..
            } => headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
                .map(|(_, v)| v.clone())
                .collect(),
            Outcome::Error(_) => Vec::new(),
        };
        for cookie in set_cookies {
            self.store_cookie(&cookie);
        }
        outcome
    }

    fn store_cookie(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let (name, value) = parts.next().unwrap().split_once('=').unwrap();
        let expired = parts.any(|attribute| attribute.trim() == "Max-Age=0");
        if expired || value.is_empty() {
            self.cookies.remove(name.trim());
        } else {
            self.cookies
                .insert(name.trim().to_owned(), value.to_owned());
        }
    }

    /// Logs in from `path`: redirect → IdP → callback. Returns the callback's answer.
    pub async fn login(&mut self, idp: &FakeIdp, path: &str) -> Outcome {
        let start = self.send(Req::navigate(path)).await;
        assert_eq!(start.status(), 302, "{start:?}");
        let authorization = idp.authorize(start.location());
        self.callback(&authorization).await
    }

    /// Sends the IdP's authorization response to the callback, as the browser would.
    pub async fn callback(&mut self, response: &idp::AuthorizationResponse) -> Outcome {
        let callback = url::Url::parse(&response.redirect_uri).unwrap();
        let params = form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &response.code)
            .append_pair("state", &response.state)
            .finish();
        if response.form_post {
            let request = Req {
                method: "POST",
                path: callback.path(),
                headers: vec![("content-type", "application/x-www-form-urlencoded")],
                body: &params,
                context_extensions: Vec::new(),
            };
            self.send(request).await
        } else {
            let path = format!("{}?{params}", callback.path());
            self.send(Req::navigate(&path)).await
        }
    }
}
