//! Logging and traces. Logs: `tracing` to stderr, as text or JSON, level from config or
//! `RUST_LOG`. Traces: OpenTelemetry over OTLP/gRPC, off unless `otel.endpoint` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`/`OTEL_EXPORTER_OTLP_ENDPOINT` names a collector; only
//! this crate's spans are exported (one `check` span per Check, `store.*` and `idp.*` children).
//!
//! Tokens, codes, cookies and keys never reach a log line or a span: they are `Secret`s or
//! sealed records, and the `check` span carries only the decision, policy, provider, HTTP method
//! and a checked `x-request-id` (`check_span`), never a header value otherwise, a query or a body.
//!
//! An unreachable collector never slows a Check: spans go to a bounded queue (drops are logged
//! once, then counted and logged at shutdown by the SDK) exported by the SDK's own thread, which
//! drives the gRPC client on a one-worker runtime of its own (`OnOwnRuntime`).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{CollectorUrlError, LogFormat, OtelSettings, collector_url};
use crate::flow::RequestView;

pub const DEFAULT_SERVICE_NAME: &str = "oidc-authz";
const TRACES_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const SERVICE_NAME_VAR: &str = "OTEL_SERVICE_NAME";
/// One export may take this long; the SDK thread waits, Checks do not.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Spans waiting for export; beyond this they are dropped.
const MAX_QUEUED_SPANS: usize = 4096;
/// Longer request ids are cut (Envoy's are UUIDs, 36 characters).
const MAX_REQUEST_ID_LEN: usize = 128;

/// Set once `init` has installed the OpenTelemetry layer. Without it a Check's span serves only
/// its log lines, and `check_span` gives it only the fields they show (the fmt layer formats every
/// field of every span, created or recorded, whether a line is ever logged in it or not).
static TRACES_EXPORTED: AtomicBool = AtomicBool::new(false);

/// Where traces go, once the config and the environment are combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceTarget {
    pub endpoint: String,
    pub service_name: String,
}

/// Why traces are off although a collector was named (printed after "traces off: ").
#[derive(Debug, thiserror::Error)]
pub enum TracesOff {
    /// An endpoint variable that is no collector address; the text names the variable only.
    #[error("{variable}: {problem}")]
    BadEndpointVariable {
        variable: &'static str,
        problem: CollectorUrlError,
    },
    #[error("cannot start the export runtime: {0}")]
    ExportRuntime(std::io::Error),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(opentelemetry_otlp::ExporterBuildError),
}

/// `otel.endpoint`, else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`;
/// `None`: traces off. `otel.service_name`, else `OTEL_SERVICE_NAME`, else `oidc-authz`. A bad
/// endpoint in the environment is an error (the config's was checked at load).
pub fn trace_target(
    otel: &OtelSettings,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<TraceTarget>, TracesOff> {
    let from_env = [TRACES_ENDPOINT_VAR, ENDPOINT_VAR]
        .into_iter()
        .find_map(|name| env(name).filter(|v| !v.is_empty()).map(|v| (name, v)));
    let endpoint = match (&otel.endpoint, from_env) {
        (Some(url), _) => url.to_string(),
        (None, Some((name, value))) => collector_url(&value)
            .map_err(|problem| TracesOff::BadEndpointVariable {
                variable: name,
                problem,
            })?
            .to_string(),
        (None, None) => return Ok(None),
    };
    let service_name = otel
        .service_name
        .clone()
        .or_else(|| env(SERVICE_NAME_VAR).filter(|v| !v.is_empty()))
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
    Ok(Some(TraceTarget {
        endpoint,
        service_name,
    }))
}

/// Keeps the trace exporter; dropping it exports what is queued (bounded by the export timeout).
#[must_use = "dropping it stops trace export"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn traces_enabled(&self) -> bool {
        self.traces.is_some()
    }

    /// Exports every span ended so far (blocks for at most the export timeout).
    pub fn flush(&self) {
        if let Some(provider) = &self.traces
            && let Err(error) = provider.force_flush()
        {
            tracing::warn!(%error, "trace export failed");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.traces.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("oidc-authz: trace export at shutdown failed: {error}");
        }
    }
}

/// Installs the global subscriber: logs, plus traces when `trace_target` names a collector.
/// A second call (tests) keeps the first subscriber and exports nothing of its own.
pub fn init(format: LogFormat, level: &str, otel: &OtelSettings) -> Telemetry {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = match format {
        // Colours only for a person at a terminal: escape codes are noise in a log pipeline, and
        // painting every span field costs more than formatting it.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(filter);
    let target = match trace_target(otel, |name| std::env::var(name).ok()) {
        Ok(target) => target,
        Err(problem) => {
            eprintln!("oidc-authz: traces off: {problem}");
            None
        }
    };
    let provider = target
        .as_ref()
        .and_then(|target| match tracer_provider(target) {
            Ok(provider) => Some(provider),
            Err(problem) => {
                eprintln!("oidc-authz: traces off: {problem}");
                None
            }
        });
    // Only this crate's spans (and events inside them): not tonic's, hyper's or the exporter's own.
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(DEFAULT_SERVICE_NAME))
            .with_filter(
                tracing_subscriber::filter::Targets::new().with_target("oidc_authz", Level::INFO),
            )
    });
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .is_ok();
    if !installed && let Some(provider) = &provider {
        let _ = provider.shutdown();
    }
    if installed && provider.is_some() {
        TRACES_EXPORTED.store(true, Ordering::Relaxed);
    }
    Telemetry {
        traces: provider.filter(|_| installed),
    }
}

fn tracer_provider(target: &TraceTarget) -> Result<SdkTracerProvider, TracesOff> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otel-export")
        .enable_all()
        .build()
        .map_err(TracesOff::ExportRuntime)?;
    let exporter = {
        let _entered = runtime.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(target.endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(TracesOff::Exporter)?
    };
    let processor = BatchSpanProcessor::builder(OnOwnRuntime {
        runtime,
        inner: exporter,
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUED_SPANS)
            .build(),
    )
    .build();
    let resource = opentelemetry_sdk::Resource::builder_empty()
        .with_service_name(target.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build())
}

/// The OTLP exporter run on a runtime of its own: the batch processor calls `export` on its own
/// thread (no runtime there), and tonic needs one. Dropped with the processor, on that thread.
#[derive(Debug)]
struct OnOwnRuntime {
    runtime: tokio::runtime::Runtime,
    inner: opentelemetry_otlp::SpanExporter,
}

impl opentelemetry_sdk::trace::SpanExporter for OnOwnRuntime {
    fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        std::future::ready(self.runtime.block_on(self.inner.export(batch)))
    }

    fn shutdown_with_timeout(
        &mut self,
        timeout: Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// Which policy and provider decide a Check, as the gateway routed it (`None`: not known, e.g. the
/// route named an unknown policy, or a provider's own path has no policy).
#[derive(Clone, Copy, Debug, Default)]
pub struct RouteLabels<'a> {
    pub policy: Option<&'a str>,
    pub provider: Option<&'a str>,
}

/// The span of one Check. Its log-line context (`http.request.method`, a checked `x-request-id`
/// as `request_id`, then `policy` and `provider` as the gateway routed it) is the same with or
/// without traces. At ERROR level so that every log line of the Check, at any log level, carries
/// `request_id`. With traces exported (`init` installed the OpenTelemetry layer) it also continues
/// the caller's trace, W3C `traceparent`/`tracestate` from the Check call's own gRPC metadata
/// (Envoy with tracing on sends its ext_authz span there), else from the forwarded request headers
/// (the client's), and records `decision` and `otel.status_code` at the end.
pub fn check_span(
    view: &RequestView,
    metadata: &tonic::metadata::MetadataMap,
    route: RouteLabels<'_>,
) -> tracing::Span {
    let method = http_method(&view.method);
    let id = view
        .headers
        .get("x-request-id")
        .and_then(|id| request_id(id));
    if !TRACES_EXPORTED.load(Ordering::Relaxed) {
        return logged_check_span(method, id, route);
    }
    let span = tracing::error_span!(
        "check",
        otel.kind = "server",
        http.request.method = method,
        request_id = id,
        decision = tracing::field::Empty,
        policy = route.policy,
        provider = route.provider,
        otel.status_code = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&trace_headers(metadata, &view.headers));
    // Fails only when the OpenTelemetry layer is not this span's subscriber's: nothing to continue.
    let _ = span.set_parent(parent);
    span
}

/// The span of a Check when no trace is exported: every field given at creation, so the fmt layer
/// formats them once and never again (a field recorded later is formatted a second time, which
/// cost a tenth of a cached Check), and no field that no log line shows (`decision` comes after
/// the last line).
fn logged_check_span(
    method: &'static str,
    request_id: Option<&str>,
    route: RouteLabels<'_>,
) -> tracing::Span {
    tracing::error_span!(
        "check",
        http.request.method = method,
        request_id = request_id,
        policy = route.policy,
        provider = route.provider,
    )
}

/// Only the propagation headers reach the propagator: the gRPC call's when it has a
/// `traceparent`, else the forwarded request's.
fn trace_headers(
    metadata: &tonic::metadata::MetadataMap,
    headers: &HashMap<String, String>,
) -> HashMap<String, String> {
    let from_metadata = |name: &str| Some(metadata.get(name)?.to_str().ok()?.to_owned());
    let from_request = |name: &str| headers.get(name).cloned();
    let lookup: &dyn Fn(&str) -> Option<String> = if from_metadata("traceparent").is_some() {
        &from_metadata
    } else {
        &from_request
    };
    ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), lookup(name)?)))
        .collect()
}

/// `x-request-id` when it is printable ASCII (no spaces), cut at `MAX_REQUEST_ID_LEN`.
fn request_id(value: &str) -> Option<&str> {
    // `None` when the cut falls inside a multi-byte character: not ASCII anyway.
    let value = value.get(..value.len().min(MAX_REQUEST_ID_LEN))?;
    let printable = !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic());
    printable.then_some(value)
}

/// The method when it is a standard one, `_OTHER` otherwise (OpenTelemetry's HTTP conventions).
fn http_method(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("_OTHER")
}

/// Records the Check's decision (`allow`, `redirect`, `deny` or `error`) on its span, when traces
/// are exported (no log line shows it: it comes after the last one).
pub fn record_decision(span: &tracing::Span, decision: &'static str) {
    if !TRACES_EXPORTED.load(Ordering::Relaxed) {
        return;
    }
    span.record("decision", decision);
    if decision == "error" {
        span.record("otel.status_code", "ERROR");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }

    #[test]
    fn traces_are_off_unless_an_endpoint_is_named() {
        let none = OtelSettings::default();
        assert_eq!(trace_target(&none, env(&[])).unwrap(), None);
        assert_eq!(
            trace_target(&none, env(&[(SERVICE_NAME_VAR, "x")])).unwrap(),
            None
        );
    }

    #[test]
    fn config_wins_then_the_traces_variable_then_the_generic_one() {
        let configured = OtelSettings {
            endpoint: Some("http://127.0.0.1:4317".parse().unwrap()),
            service_name: None,
        };
        let vars = env(&[
            (TRACES_ENDPOINT_VAR, "http://traces:4317"),
            (ENDPOINT_VAR, "http://generic:4317"),
            (SERVICE_NAME_VAR, "from-env"),
        ]);
        let target = trace_target(&configured, &vars).unwrap().unwrap();
        assert_eq!(target.endpoint, "http://127.0.0.1:4317/");
        assert_eq!(target.service_name, "from-env");
        let target = trace_target(&OtelSettings::default(), &vars)
            .unwrap()
            .unwrap();
        assert_eq!(target.endpoint, "http://traces:4317/");
        let target = trace_target(
            &OtelSettings::default(),
            env(&[(ENDPOINT_VAR, "http://generic:4317")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(target.endpoint, "http://generic:4317/");
        assert_eq!(target.service_name, DEFAULT_SERVICE_NAME);
    }

    #[test]
    fn a_bad_endpoint_in_the_environment_names_the_variable() {
        let error = trace_target(
            &OtelSettings::default(),
            env(&[(ENDPOINT_VAR, "collector:4317")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("OTEL_EXPORTER_OTLP_ENDPOINT: "),
            "{error}"
        );
    }

    #[test]
    fn request_ids_are_bounded_and_printable() {
        assert_eq!(request_id("abc-123"), Some("abc-123"));
        assert_eq!(request_id(&"a".repeat(500)).map(str::len), Some(128));
        assert_eq!(request_id("a b"), None);
        assert_eq!(request_id("a\u{1b}[31m"), None);
        assert_eq!(request_id("é"), None);
        assert_eq!(request_id(""), None);
    }

    /// Log lines written into a buffer.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_log_line_of_a_check_carries_its_request_id_even_at_warn_level() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let view = RequestView {
            method: "GET".into(),
            headers: [
                ("x-request-id".to_string(), "req-7".to_string()),
                ("cookie".to_string(), "session=secret".to_string()),
            ]
            .into(),
            ..Default::default()
        };
        tracing::subscriber::with_default(subscriber, || {
            let route = RouteLabels {
                policy: Some("api"),
                provider: Some("default"),
            };
            let span = check_span(&view, &tonic::metadata::MetadataMap::new(), route);
            let _entered = span.enter();
            tracing::warn!("store unreachable");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("request_id=\"req-7\""), "{text}");
        assert!(
            text.contains("policy=\"api\" provider=\"default\""),
            "{text}"
        );
        assert!(text.contains("store unreachable"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn the_check_calls_own_trace_context_wins_over_the_forwarded_one() {
        let forwarded: HashMap<String, String> = [
            ("traceparent".to_string(), "00-aa-01".to_string()),
            ("tracestate".to_string(), "client=1".to_string()),
            ("cookie".to_string(), "session=secret".to_string()),
        ]
        .into();
        let none = tonic::metadata::MetadataMap::new();
        assert_eq!(
            trace_headers(&none, &forwarded),
            [
                ("traceparent".to_string(), "00-aa-01".to_string()),
                ("tracestate".to_string(), "client=1".to_string()),
            ]
            .into()
        );
        let mut envoy = tonic::metadata::MetadataMap::new();
        envoy.insert("traceparent", "00-bb-01".parse().unwrap());
        assert_eq!(
            trace_headers(&envoy, &forwarded),
            [("traceparent".to_string(), "00-bb-01".to_string())].into(),
            "no mix of the two contexts"
        );
    }

    #[test]
    fn unknown_methods_are_not_echoed() {
        assert_eq!(http_method("POST"), "POST");
        assert_eq!(http_method("<script>"), "_OTHER");
    }
}
