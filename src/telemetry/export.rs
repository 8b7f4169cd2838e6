//! Where traces go (`trace_target`: the config, else the standard OpenTelemetry variables) and
//! the OTLP/gRPC exporter behind a bounded batch queue, on a one-worker runtime of its own
//! (`OnOwnRuntime`), so an unreachable collector never slows a Check.

use std::time::Duration;

use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};

use super::DEFAULT_SERVICE_NAME;
use crate::config::{CollectorUrlError, OtelSettings, collector_url};

pub(super) const TRACES_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub(super) const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub(super) const SERVICE_NAME_VAR: &str = "OTEL_SERVICE_NAME";
/// One export may take this long; the SDK thread waits, Checks do not.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Spans waiting for export; beyond this they are dropped.
const MAX_QUEUED_SPANS: usize = 4096;

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

pub(super) fn tracer_provider(target: &TraceTarget) -> Result<SdkTracerProvider, TracesOff> {
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
