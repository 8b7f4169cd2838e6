//! OpenTelemetry traces (issue 12) through the real server: with `otel.endpoint` naming an
//! in-test OTLP/gRPC collector, a Check that carries a W3C `traceparent` yields a `check` span
//! in the caller's trace (its trace id, its parent span id) with the decision and the request
//! id, and child spans for the store calls it made. One test per binary: the subscriber is global.

mod support;

use std::net::SocketAddr;
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
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use support::{Authz, FakeIdp, Outcome, Req, SwitchableStore};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

/// An OTLP trace collector that keeps every span it is sent.
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

impl Collector {
    async fn start() -> (Collector, SocketAddr) {
        let collector = Collector::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(collector.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (collector, addr)
    }

    fn spans(&self) -> Vec<Span> {
        self.0.lock().unwrap().clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(text) => Some(text.as_str()),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_continues_the_callers_trace_with_its_decision_and_store_spans() {
    let (collector, collector_addr) = Collector::start().await;
    let endpoint = format!("http://{collector_addr}");
    let otel = OtelSettings {
        endpoint: Some(endpoint.parse().unwrap()),
        service_name: None,
    };
    let telemetry = Arc::new(telemetry::init(LogFormat::Text, "warn", &otel));
    assert!(telemetry.traces_enabled());

    let idp = FakeIdp::start().await;
    let extra = format!("otel:\n  endpoint: {endpoint}\n");
    let authz = Authz::start(&idp, &extra, SwitchableStore::memory()).await;
    let mut browser = authz.browser();
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    let outcome = browser
        .send(
            Req::navigate("/private?token=secret-in-query")
                .with_header("traceparent", &traceparent)
                .with_header("x-request-id", "req-42"),
        )
        .await;
    assert!(
        matches!(outcome, Outcome::Denied { status: 302, .. }),
        "a new visitor goes to the IdP"
    );

    // The batch exporter's delay is 5 s: flush rather than wait. Bounded: 10 s in all.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (check, children) = loop {
        // `flush` blocks (at most the export timeout): not on a runtime worker.
        let flushing = Arc::clone(&telemetry);
        tokio::task::spawn_blocking(move || flushing.flush())
            .await
            .unwrap();
        let spans = collector.spans();
        if let Some(check) = spans.iter().find(|span| span.name == "check").cloned() {
            let children: Vec<Span> = spans
                .into_iter()
                .filter(|span| span.parent_span_id == check.span_id)
                .collect();
            if !children.is_empty() {
                break (check, children);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no check span with children reached the collector: {:?}",
            collector
                .spans()
                .iter()
                .map(|s| &s.name)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert_eq!(hex(&check.trace_id), TRACE_ID, "the caller's trace");
    assert_eq!(
        hex(&check.parent_span_id),
        PARENT_SPAN_ID,
        "the caller's span"
    );
    assert_eq!(attribute(&check, "decision"), Some("redirect"));
    assert_eq!(attribute(&check, "request_id"), Some("req-42"));
    assert_eq!(attribute(&check, "http.request.method"), Some("GET"));
    assert_eq!(attribute(&check, "provider"), Some("default"));
    assert_eq!(attribute(&check, "policy"), Some("default"));
    for kv in &check.attributes {
        let text = format!("{:?}", kv.value);
        assert!(
            !text.contains("secret-in-query") && !text.contains("/private"),
            "the span carries no path or query: {kv:?}"
        );
    }
    assert!(
        children
            .iter()
            .all(|child| child.trace_id == check.trace_id),
        "children are in the same trace"
    );
    assert!(
        children
            .iter()
            .any(|child| child.name.starts_with("store.")),
        "a store call under the check: {:?}",
        children.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    authz.stop().await;
}
