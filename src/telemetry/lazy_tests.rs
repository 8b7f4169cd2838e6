//! The Check span made on demand (`lazy.rs`): none for a Check that logs nothing, one (closed at
//! the end) for a Check that logs, and log lines the same, text and JSON, as with a span made up
//! front.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing::Instrument;
use tracing::span::Id;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{EnvFilter, Layer};

use super::tests::Lines;
use super::*;
use crate::flow::RequestView;

/// Counts spans made, entered and closed, and the span field values given or recorded.
#[derive(Clone, Default)]
struct SpanCounts {
    made: Arc<AtomicUsize>,
    entered: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    values: Arc<AtomicUsize>,
}

impl SpanCounts {
    fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
    fn add(counter: &AtomicUsize, n: usize) {
        counter.fetch_add(n, Ordering::SeqCst);
    }
}

/// Counts the values a field visitor is shown.
struct ValueCount(usize);

impl tracing::field::Visit for ValueCount {
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {
        self.0 += 1;
    }
}

impl<S: tracing::Subscriber> Layer<S> for SpanCounts {
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, _: &Id, _: Context<'_, S>) {
        let mut values = ValueCount(0);
        attrs.record(&mut values);
        Self::add(&self.made, 1);
        Self::add(&self.values, values.0);
    }
    fn on_record(&self, _: &Id, record: &tracing::span::Record<'_>, _: Context<'_, S>) {
        let mut values = ValueCount(0);
        record.record(&mut values);
        Self::add(&self.values, values.0);
    }
    fn on_enter(&self, _: &Id, _: Context<'_, S>) {
        Self::add(&self.entered, 1);
    }
    fn on_close(&self, _: Id, _: Context<'_, S>) {
        Self::add(&self.closed, 1);
    }
}

fn view() -> RequestView {
    RequestView {
        method: "POST".into(),
        headers: [("x-request-id".to_string(), "req-9".to_string())].into(),
        ..Default::default()
    }
}

const ROUTE: RouteLabels<'static> = RouteLabels {
    policy: Some("api"),
    provider: Some("corp"),
};

/// A Check that logs a line, then another inside a span of its own.
async fn check_that_logs() {
    tracing::warn!(status = 400, "request refused");
    async { tracing::info!(attempt = 2, "retrying") }
        .instrument(tracing::info_span!("store.load"))
        .await;
}

/// Runs `check` as a Check under `subscriber`.
async fn run_check<F>(subscriber: tracing::Dispatch, check: F)
where
    F: std::future::Future<Output = ()>,
{
    let _default = tracing::dispatcher::set_default(&subscriber);
    let view = view();
    let telemetry = check_telemetry(&view, &tonic::metadata::MetadataMap::new(), ROUTE);
    telemetry.run(check).await;
}

/// The subscriber `init` installs without traces (`lazy`), or its inner part alone (a Check's span
/// is then made whole up front), writing to `lines`, with `counts` counting spans and fields.
fn counted(lazy: bool, format: LogFormat, lines: &Lines, counts: &SpanCounts) -> tracing::Dispatch {
    let logging = tracing_subscriber::registry()
        .with(log_layer(
            format,
            EnvFilter::new("info"),
            false,
            lines.writer(),
        ))
        .with(counts.clone());
    if lazy {
        tracing::Dispatch::new(LazyCheckSpans::new(logging))
    } else {
        tracing::Dispatch::new(logging)
    }
}

fn counted_lazy(format: LogFormat, lines: &Lines, counts: &SpanCounts) -> tracing::Dispatch {
    counted(true, format, lines, counts)
}

#[tokio::test]
async fn a_check_that_logs_nothing_formats_no_field_and_enters_no_span() {
    let counts = SpanCounts::default();
    let lines = Lines::default();
    run_check(counted_lazy(LogFormat::Text, &lines, &counts), async {
        tokio::task::yield_now().await;
    })
    .await;
    assert_eq!(SpanCounts::get(&counts.values), 0);
    assert_eq!(SpanCounts::get(&counts.entered), 0);
    assert!(lines.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_check_whose_spans_log_nothing_formats_no_label() {
    let counts = SpanCounts::default();
    let lines = Lines::default();
    run_check(counted_lazy(LogFormat::Text, &lines, &counts), async {
        async {}.instrument(tracing::info_span!("store.load")).await;
    })
    .await;
    assert_eq!(SpanCounts::get(&counts.made), 2);
    assert_eq!(SpanCounts::get(&counts.values), 0);
}

#[tokio::test]
async fn a_check_that_logs_records_its_labels_once_and_closes_its_span_at_the_end() {
    let counts = SpanCounts::default();
    let lines = Lines::default();
    run_check(counted_lazy(LogFormat::Text, &lines, &counts), async {
        check_that_logs().await;
        tracing::warn!("again");
    })
    .await;
    // `check`, then `store.load` inside it.
    assert_eq!(SpanCounts::get(&counts.made), 2);
    assert_eq!(SpanCounts::get(&counts.closed), 2);
    // Method, request id, policy and provider, recorded once.
    assert_eq!(SpanCounts::get(&counts.values), 4);
}

/// The lines of `check_that_logs` with the timestamps taken out.
fn without_timestamps(format: LogFormat, lines: &Lines) -> Vec<String> {
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|line| match format {
            LogFormat::Text => line.split_once(' ').unwrap().1.trim_start().to_owned(),
            LogFormat::Json => {
                let mut json: serde_json::Value = serde_json::from_str(line).unwrap();
                json.as_object_mut().unwrap().remove("timestamp");
                json.to_string()
            }
        })
        .collect()
}

#[tokio::test]
async fn lines_are_the_same_as_with_a_span_made_up_front() {
    for format in [LogFormat::Text, LogFormat::Json] {
        let (eager, lazy) = (Lines::default(), Lines::default());
        let counts = SpanCounts::default();
        run_check(counted(false, format, &eager, &counts), check_that_logs()).await;
        run_check(counted_lazy(format, &lazy, &counts), check_that_logs()).await;
        let expected = without_timestamps(format, &eager);
        assert_eq!(expected.len(), 2, "{expected:?}");
        assert!(expected[0].contains("req-9"), "{expected:?}");
        assert!(expected[1].contains("store.load"), "{expected:?}");
        assert_eq!(without_timestamps(format, &lazy), expected);
    }
}

#[tokio::test]
async fn lines_outside_a_check_have_no_check_context() {
    let lines = Lines::default();
    let _default = tracing::subscriber::set_default(log_subscriber(
        LogFormat::Text,
        tracing::Level::INFO,
        lines.writer(),
    ));
    tracing::warn!("startup");
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("startup") && !text.contains("check"),
        "{text}"
    );
}

#[tokio::test]
async fn a_directive_naming_the_check_span_still_acts_inside_the_check() {
    let lines = Lines::default();
    let dispatch =
        untraced_subscriber(LogFormat::Text, "warn,[check]=debug", false, lines.writer());
    let _default = tracing::dispatcher::set_default(&dispatch);
    let view = view();
    let telemetry = check_telemetry(&view, &tonic::metadata::MetadataMap::new(), ROUTE);
    telemetry.run(async { tracing::debug!("deep") }).await;
    tracing::debug!("outside");
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("deep") && text.contains("req-9"), "{text}");
    assert!(!text.contains("outside"), "{text}");
}

#[test]
fn rust_log_wins_over_the_configured_level_when_it_parses() {
    assert_eq!(log_directives(Some("debug".into()), "warn"), "debug");
    assert_eq!(log_directives(Some("[=".into()), "warn"), "warn");
    assert_eq!(log_directives(None, "[="), "info");
}
