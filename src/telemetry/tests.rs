//! `trace_target`'s sources, the `check` span's fields and log lines, trace context precedence.

use std::collections::HashMap;

use tracing::Level;

use super::export::{ENDPOINT_VAR, SERVICE_NAME_VAR, TRACES_ENDPOINT_VAR};
use super::span::{http_method, request_id, trace_headers};
use super::*;
use crate::flow::RequestView;

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
pub(super) struct Lines(pub(super) std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Lines {
    /// A `MakeWriter` into these lines.
    pub(super) fn writer(&self) -> impl Fn() -> Lines + Send + Sync + 'static {
        let lines = self.clone();
        move || lines.clone()
    }
}

impl std::io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_log_line_of_a_check_carries_its_request_id_even_at_warn_level() {
    for lazy in [false, true] {
        let lines = Lines::default();
        let writer = lines.clone();
        let plain = || {
            tracing_subscriber::fmt()
                .with_max_level(Level::WARN)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish()
        };
        let _default = if lazy {
            tracing::subscriber::set_default(LazyCheckSpans::new(plain()))
        } else {
            tracing::subscriber::set_default(plain())
        };
        let view = RequestView {
            method: "GET".into(),
            headers: [
                ("x-request-id".to_string(), "req-7".to_string()),
                ("cookie".to_string(), "session=secret".to_string()),
            ]
            .into(),
            ..Default::default()
        };
        let route = RouteLabels {
            policy: Some("api"),
            provider: Some("default"),
        };
        let telemetry = check_telemetry(&view, &tonic::metadata::MetadataMap::new(), route);
        assert_eq!(matches!(telemetry, CheckTelemetry::Deferred(..)), lazy);
        telemetry
            .run(async { tracing::warn!("store unreachable") })
            .await;
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("request_id=\"req-7\""), "{text}");
        assert!(
            text.contains("policy=\"api\" provider=\"default\""),
            "{text}"
        );
        assert!(text.contains("store unreachable"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
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
