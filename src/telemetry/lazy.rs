//! Check span fields formatted only when a line needs them. Without exported traces a Check's span
//! serves only its log lines, yet formatting its fields (method, request id, policy, provider)
//! and entering it on every poll cost about a fifth of a cached Check, whether a line is logged or
//! not. So the Check's span is made without fields and not entered; the Check runs in a
//! task-local `CheckScope` holding the span and its labels. `LazyCheckSpans`, the outermost
//! subscriber, enters the span around each line and span the Check makes outside any span (so
//! `store.*` and `idp.*` spans are its children), and records the labels on it the first time the
//! Check logs a line. Log lines are the same as with the fields given up front (`lazy_tests.rs`
//! compares them, text and JSON).
//!
//! Why record into a span made up front rather than make the span when the first line comes: a
//! span can only be made through the current dispatcher, which `tracing` does not hand out inside
//! a subscriber's own calls; a made span records through its own dispatcher.

use std::cell::Cell;
use std::future::Future;

use tokio::task::futures::TaskLocalFuture;
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Span, Subscriber};
use tracing_core::span::Current;

use super::span::CheckLabels;

tokio::task_local! {
    static CHECK: CheckScope;
}

/// A Check's span (made without fields; closed when the Check ends, with the scope) and the
/// labels to record on it when a line needs them.
pub struct CheckScope {
    span: Span,
    labels: CheckLabels,
    recorded: Cell<bool>,
}

impl CheckScope {
    /// Records the labels on the span, the first time.
    fn record_labels(&self) {
        if !self.recorded.replace(true) {
            self.labels.record_on(&self.span);
        }
    }
}

/// A Check whose span gets its labels only if the Check logs.
pub struct DeferredCheck(CheckScope);

impl DeferredCheck {
    pub(super) fn new(span: Span, labels: CheckLabels) -> Self {
        DeferredCheck(CheckScope {
            span,
            labels,
            recorded: Cell::new(false),
        })
    }

    /// Runs `check` as this Check (a plain function, not `async`: the Check's future is large,
    /// and each async layer would move it once more).
    pub fn run<F: Future>(self, check: F) -> TaskLocalFuture<CheckScope, F> {
        CHECK.scope(self.0, check)
    }
}

/// Whether the current subscriber records a Check's labels on demand (else a Check gives its span
/// every field up front, e.g. under a test's own subscriber).
pub(super) fn installed() -> bool {
    tracing::dispatcher::get_default(|dispatch| dispatch.is::<LazyCheckSpans>())
}

/// The subscriber that gives a Check's lines and spans the Check's span as parent, its labels
/// recorded the first time; everything else goes to `inner` unchanged. Install it with traces off
/// only: with traces exported the span is made whole and entered (it carries the trace context and
/// the decision).
pub struct LazyCheckSpans {
    inner: Box<dyn Subscriber + Send + Sync>,
}

impl LazyCheckSpans {
    pub fn new(inner: impl Subscriber + Send + Sync + 'static) -> Self {
        LazyCheckSpans {
            inner: Box::new(inner),
        }
    }

    /// The Check's span as the parent of a span made inside a Check with no span entered.
    fn parent_of_span(&self, contextual: bool) -> Option<Id> {
        CHECK
            .try_with(|scope| self.parent(scope, contextual))
            .ok()
            .flatten()
    }

    /// For a line logged inside a Check: its labels recorded (the line shows them, whatever span
    /// it is in), and the Check's span as the parent when no span is entered.
    fn parent_of_line(&self, contextual: bool) -> Option<Id> {
        CHECK
            .try_with(|scope| {
                scope.record_labels();
                self.parent(scope, contextual)
            })
            .ok()
            .flatten()
    }

    /// The Check's span, for what is made in the current context with no span entered (the
    /// Check's span itself never is).
    fn parent(&self, scope: &CheckScope, contextual: bool) -> Option<Id> {
        if !contextual || self.inner.current_span().id().is_some() {
            return None;
        }
        scope.span.id()
    }

    /// Runs `f` with `span` (if any) entered.
    fn inside<T>(&self, span: Option<Id>, f: impl FnOnce() -> T) -> T {
        let Some(span) = span else { return f() };
        self.inner.enter(&span);
        let out = f();
        self.inner.exit(&span);
        out
    }
}

impl Subscriber for LazyCheckSpans {
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        self.inner.on_register_dispatch(dispatch);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.inner.max_level_hint()
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn event_enabled(&self, event: &Event<'_>) -> bool {
        self.inner.event_enabled(event)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let check = self.parent_of_span(span.is_contextual());
        self.inside(check, || self.inner.new_span(span))
    }

    fn event(&self, event: &Event<'_>) {
        let check = self.parent_of_line(event.is_contextual());
        self.inside(check, || self.inner.event(event));
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.inner.record(span, values);
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.inner.record_follows_from(span, follows);
    }

    fn enter(&self, span: &Id) {
        self.inner.enter(span);
    }

    fn exit(&self, span: &Id) {
        self.inner.exit(span);
    }

    fn clone_span(&self, span: &Id) -> Id {
        self.inner.clone_span(span)
    }

    fn try_close(&self, span: Id) -> bool {
        self.inner.try_close(span)
    }

    fn current_span(&self) -> Current {
        self.inner.current_span()
    }
}
