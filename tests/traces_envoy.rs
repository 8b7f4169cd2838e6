//! Traces through the real Envoy (`.venv/bin/envoy`, skipped with a notice when absent), issue 12:
//! with tracing on in Envoy's HTTP connection manager, Envoy sends the W3C context of its ext_authz
//! span with the Check call, and oidc-authz's `check` span is that span's child, in the trace the
//! client started. Envoy exports its spans to the same in-test collector. Own binary: the
//! subscriber is global.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oidc_authz::config::{LogFormat, OtelSettings};
use oidc_authz::telemetry;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use support::{Authz, FakeIdp, SwitchableStore};

const ENVOY: &str = ".venv/bin/envoy";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN_ID: &str = "00f067aa0ba902b7";
/// The span Envoy's gRPC client opens around the Check call.
const ENVOY_CHECK_SPAN: &str = "async envoy.service.auth.v3.Authorization.Check egress";

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans);
        self.0.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Envoy, killed when dropped.
struct Envoy(Child);

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cluster(name: &str, port: u16) -> String {
    format!(
        r#"  - name: {name}
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: {name}
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }}] }}]
"#
    )
}

/// A listener on `port` with tracing to the `otel` cluster and ext_authz to the `authz` cluster.
fn envoy_config(port: u16, authz_port: u16, collector_port: u16) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          tracing:
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                grpc_service: {{ envoy_grpc: {{ cluster_name: otel }}, timeout: 1s }}
                service_name: envoy
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{{ match: {{ prefix: / }}, route: {{ cluster: otel }} }}]
          http_filters:
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              grpc_service: {{ envoy_grpc: {{ cluster_name: authz }}, timeout: 5s }}
              failure_mode_allow: false
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{}{}"#,
        cluster("authz", authz_port),
        cluster("otel", collector_port)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_span_is_the_child_of_envoys_ext_authz_span_in_the_clients_trace() {
    if !Path::new(ENVOY).exists() {
        eprintln!("skipped: no {ENVOY}");
        return;
    }
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let otel = OtelSettings {
        endpoint: Some(format!("http://{collector_addr}").parse().unwrap()),
        service_name: None,
    };
    let telemetry = Arc::new(telemetry::init(LogFormat::Text, "warn", &otel));
    let idp = FakeIdp::start().await;
    let authz = Authz::start(&idp, "", SwitchableStore::memory()).await;

    let port = free_port();
    let dir = std::env::temp_dir().join(format!("oidc-authz-traces-envoy-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("envoy.yaml");
    std::fs::write(
        &config,
        envoy_config(port, authz.addr.port(), collector_addr.port()),
    )
    .unwrap();
    let _envoy = Envoy(
        Command::new(ENVOY)
            .arg("-c")
            .arg(&config)
            .args(["--base-id", &port.to_string(), "-l", "error"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Until Envoy listens and answers with oidc-authz's redirect: at most 15 s.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = client
            .get(format!("http://127.0.0.1:{port}/private"))
            .header("accept", "text/html")
            .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN_ID}-01"))
            .send()
            .await;
        if answer.is_ok_and(|answer| answer.status() == 302) {
            break;
        }
        assert!(Instant::now() < deadline, "Envoy never answered 302");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Envoy exports every 5 s: at most 15 s for both sides' spans.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (check, envoy_span) = loop {
        let flushing = Arc::clone(&telemetry);
        tokio::task::spawn_blocking(move || flushing.flush())
            .await
            .unwrap();
        let spans = collector.0.lock().unwrap().clone();
        let check = spans
            .iter()
            .find(|span| span.name == "check" && hex(&span.trace_id) == TRACE_ID);
        if let Some(check) = check
            && let Some(parent) = spans
                .iter()
                .find(|span| span.span_id == check.parent_span_id)
        {
            break (check.clone(), parent.clone());
        }
        assert!(
            Instant::now() < deadline,
            "no check span with its Envoy parent: {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(envoy_span.name, ENVOY_CHECK_SPAN);
    assert_eq!(hex(&envoy_span.trace_id), TRACE_ID);
    assert_eq!(hex(&check.trace_id), TRACE_ID, "the client's trace");
    authz.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
