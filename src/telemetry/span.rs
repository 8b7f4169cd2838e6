//! The span of one Check (`check_telemetry`): what it carries (config names, a standard method, a
//! checked `x-request-id`, the decision), when it is made (up front, or when the Check first logs:
//! `lazy.rs`) and, with traces exported, the trace it continues.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::TRACES_EXPORTED;
use super::lazy::DeferredCheck;
use crate::flow::RequestView;

/// Longer request ids are cut (Envoy's are UUIDs, 36 characters).
const MAX_REQUEST_ID_LEN: usize = 128;

/// Which policy and provider decide a Check, as the gateway routed it (`None`: not known, e.g. the
/// route named an unknown policy, or a provider's own path has no policy).
#[derive(Clone, Copy, Debug, Default)]
pub struct RouteLabels<'a> {
    pub policy: Option<&'a str>,
    pub provider: Option<&'a str>,
}

/// How a Check gets the context of its log lines (and, with traces exported, its trace): a span
/// with its fields, or one whose fields `LazyCheckSpans` records when the Check first logs.
pub enum CheckTelemetry {
    Span(tracing::Span),
    /// A span without fields, and what to record on it if the Check logs.
    Deferred(DeferredCheck),
}

/// The context of one Check. Its log-line context (`http.request.method`, a checked
/// `x-request-id` as `request_id`, then `policy` and `provider` as the gateway routed it) is the
/// same with or without traces. At ERROR level so that every log line of the Check, at any log
/// level, carries `request_id`. Without traces, under `LazyCheckSpans`, the fields are formatted
/// only when the Check logs. With traces exported (`init` installed the OpenTelemetry layer) the span
/// is made at once: it continues the caller's trace, W3C `traceparent`/`tracestate` from the
/// Check call's own gRPC metadata (Envoy with tracing on sends its ext_authz span there), else
/// from the forwarded request headers (the client's), and records `decision` and
/// `otel.status_code` at the end.
pub fn check_telemetry(
    view: &RequestView,
    metadata: &tonic::metadata::MetadataMap,
    route: RouteLabels<'_>,
) -> CheckTelemetry {
    let method = http_method(&view.method);
    let id = view
        .headers
        .get("x-request-id")
        .and_then(|id| request_id(id));
    if TRACES_EXPORTED.load(Ordering::Relaxed) {
        return CheckTelemetry::Span(traced_check_span(method, id, route, metadata, view));
    }
    if super::lazy::installed() {
        let labels = CheckLabels {
            method,
            request_id: id.map(Box::from),
            policy: route.policy.map(Box::from),
            provider: route.provider.map(Box::from),
        };
        return CheckTelemetry::Deferred(DeferredCheck::new(unlabelled_check_span(), labels));
    }
    CheckTelemetry::Span(logged_check_span(method, id, route))
}

/// The span of a Check when traces are exported: every field, and the caller's trace as parent.
fn traced_check_span(
    method: &'static str,
    id: Option<&str>,
    route: RouteLabels<'_>,
    metadata: &tonic::metadata::MetadataMap,
    view: &RequestView,
) -> tracing::Span {
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

/// What a Check's span shows on log lines, kept (owned) until a line needs the span.
pub struct CheckLabels {
    method: &'static str,
    request_id: Option<Box<str>>,
    policy: Option<Box<str>>,
    provider: Option<Box<str>>,
}

impl CheckLabels {
    /// Records these labels on a span from `unlabelled_check_span`, in the order
    /// `logged_check_span` gives them, so that its lines read the same. A label without a value
    /// is not recorded: an empty record would still add a separator.
    pub(super) fn record_on(&self, span: &tracing::Span) {
        span.record("http.request.method", self.method);
        let optional = [
            ("request_id", &self.request_id),
            ("policy", &self.policy),
            ("provider", &self.provider),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                span.record(name, &**value);
            }
        }
    }
}

/// The span of a Check under `LazyCheckSpans`: `logged_check_span`'s fields, none given yet.
fn unlabelled_check_span() -> tracing::Span {
    tracing::error_span!(
        "check",
        http.request.method = tracing::field::Empty,
        request_id = tracing::field::Empty,
        policy = tracing::field::Empty,
        provider = tracing::field::Empty,
    )
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
pub(super) fn trace_headers(
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
pub(super) fn request_id(value: &str) -> Option<&str> {
    // `None` when the cut falls inside a multi-byte character: not ASCII anyway.
    let value = value.get(..value.len().min(MAX_REQUEST_ID_LEN))?;
    let printable = !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic());
    printable.then_some(value)
}

/// The method when it is a standard one, `_OTHER` otherwise (OpenTelemetry's HTTP conventions).
pub(super) fn http_method(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("_OTHER")
}

/// Records the Check's decision (`allow`, `redirect`, `deny` or `error`) on its span (the current
/// one), when traces are exported (no log line shows it: it comes after the last one).
pub fn record_decision(decision: &'static str) {
    if !TRACES_EXPORTED.load(Ordering::Relaxed) {
        return;
    }
    let span = tracing::Span::current();
    span.record("decision", decision);
    if decision == "error" {
        span.record("otel.status_code", "ERROR");
    }
}

#[cfg(test)]
impl CheckTelemetry {
    /// Runs `check` in this context. (The Check itself matches on the two: its future is large,
    /// and an async layer around it would move it once more.)
    pub async fn run<F: std::future::Future>(self, check: F) -> F::Output {
        use tracing::Instrument;
        match self {
            CheckTelemetry::Span(span) => check.instrument(span).await,
            CheckTelemetry::Deferred(deferred) => deferred.run(check).await,
        }
    }
}
