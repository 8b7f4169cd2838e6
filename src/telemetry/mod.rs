//! Logging and traces. Logs: `tracing` to stderr, as text or JSON, level from config or
//! `RUST_LOG`. Traces: OpenTelemetry over OTLP/gRPC, off unless `otel.endpoint` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`/`OTEL_EXPORTER_OTLP_ENDPOINT` names a collector; only
//! this crate's spans are exported (one `check` span per Check, `store.*` and `idp.*` children).
//!
//! Tokens, codes, cookies and keys never reach a log line or a span: they are `Secret`s or
//! sealed records, and the `check` span carries only the decision, policy, provider, HTTP method
//! and a checked `x-request-id` (`check_telemetry`), never a header value otherwise, a query or a body.
//!
//! An unreachable collector never slows a Check: spans go to a bounded queue (drops are logged
//! once, then counted and logged at shutdown by the SDK) exported by the SDK's own thread, which
//! drives the gRPC client on a one-worker runtime of its own (`OnOwnRuntime`).
//!
//! Layout: `mod.rs` (`init`: the log and trace layers, and `Telemetry`, which keeps the
//! exporter), `export.rs` (where traces go and the OTLP exporter on its own runtime), `span.rs`
//! (the `check` span and what it may carry), `lazy.rs` (without traces: the span made only when
//! the Check logs).

mod export;
mod lazy;
#[cfg(test)]
mod lazy_tests;
mod span;
#[cfg(test)]
mod tests;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{LogFormat, OtelSettings};
use export::tracer_provider;
pub use export::{TraceTarget, TracesOff, trace_target};
pub use lazy::{DeferredCheck, LazyCheckSpans};
pub use span::{CheckTelemetry, RouteLabels, check_telemetry, record_decision};

pub const DEFAULT_SERVICE_NAME: &str = "oidc-authz";

/// Set once `init` has installed the OpenTelemetry layer. Without it a Check's span serves only
/// its log lines: it is made only when the Check logs (`lazy.rs`), with only the fields they show (the fmt layer formats every
/// field of every span, created or recorded, whether a line is ever logged in it or not).
static TRACES_EXPORTED: AtomicBool = AtomicBool::new(false);

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
    let provider = exporting_provider(otel);
    let ansi = std::io::stderr().is_terminal();
    let directives = log_directives(std::env::var("RUST_LOG").ok(), level);
    let installed = match &provider {
        Some(provider) => traced_subscriber(format, EnvFilter::new(&directives), ansi, provider)
            .try_init()
            .is_ok(),
        None => untraced_subscriber(format, &directives, ansi, std::io::stderr)
            .try_init()
            .is_ok(),
    };
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

/// The subscriber `init` installs when no trace is exported, at `level` (`RUST_LOG` is not
/// read), writing to `writer` without colours: for tests that read the lines a Check logs.
pub fn log_subscriber<W>(format: LogFormat, level: Level, writer: W) -> LazyCheckSpans
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let filter = EnvFilter::default().add_directive(level.into());
    LazyCheckSpans::new(logging(format, filter, false, writer))
}

/// Log lines only. A Check's span gets its fields when it first logs (`LazyCheckSpans`), unless
/// a directive names a span (`[check]=debug`, `[{request_id=...}]=trace`): such a directive acts
/// while its span is entered and matches the fields it was made with, so then the span is made
/// whole and entered, as with traces.
fn untraced_subscriber<W>(
    format: LogFormat,
    directives: &str,
    ansi: bool,
    writer: W,
) -> tracing::Dispatch
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let logging = logging(format, EnvFilter::new(directives), ansi, writer);
    if directives.contains('[') {
        tracing::Dispatch::new(logging)
    } else {
        tracing::Dispatch::new(LazyCheckSpans::new(logging))
    }
}

/// The log directives: `rust_log` (`RUST_LOG`) when it parses, else `level` when it does, else
/// `info`.
fn log_directives(rust_log: Option<String>, level: &str) -> String {
    let parses = |directives: &str| EnvFilter::try_new(directives).is_ok();
    match rust_log {
        Some(directives) if parses(&directives) => directives,
        _ if parses(level) => level.to_owned(),
        _ => "info".to_owned(),
    }
}

/// Log lines and traces: a Check's span is made up front (it carries the trace context).
fn traced_subscriber(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    provider: &SdkTracerProvider,
) -> impl tracing::Subscriber + Send + Sync {
    // Only this crate's spans (and events inside them): not tonic's, hyper's or the exporter's own.
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(DEFAULT_SERVICE_NAME))
        .with_filter(
            tracing_subscriber::filter::Targets::new().with_target("oidc_authz", Level::INFO),
        );
    tracing_subscriber::registry()
        .with(log_layer(format, filter, ansi, std::io::stderr))
        .with(traces)
}

/// Log lines only.
fn logging<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> impl tracing::Subscriber
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    tracing_subscriber::registry().with(log_layer(format, filter, ansi, writer))
}

/// Log lines to `writer`, as text or JSON, those `filter` lets through.
fn log_layer<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> impl Layer<Registry> + Send + Sync
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    match format {
        // Colours only for a person at a terminal: escape codes are noise in a log pipeline, and
        // painting every span field costs more than formatting it.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(writer)
            .boxed(),
    }
    .with_filter(filter)
}

/// The tracer provider exporting to the collector `otel` or the environment names; `None` (said
/// on stderr when a collector was named) when traces are off.
fn exporting_provider(otel: &OtelSettings) -> Option<SdkTracerProvider> {
    let target = match trace_target(otel, |name| std::env::var(name).ok()) {
        Ok(target) => target,
        Err(problem) => {
            eprintln!("oidc-authz: traces off: {problem}");
            None
        }
    };
    target
        .as_ref()
        .and_then(|target| match tracer_provider(target) {
            Ok(provider) => Some(provider),
            Err(problem) => {
                eprintln!("oidc-authz: traces off: {problem}");
                None
            }
        })
}
